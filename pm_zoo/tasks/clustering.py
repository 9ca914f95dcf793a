r"""Partially observed clustering (paper Sec. 5.4, Fig. 6).

A base VAE with the ``CLUSTERS`` capability (VaDE) gives p(c | z). With the
partial posterior of Posterior Matching, an instance is clustered from its
observed features alone:

  p(c | x_o) ~= (1/S) sum_s p(c | z_s),   z_s ~ q_theta(z | x_o),

and the cluster is ``argmax_c`` (``weighting='mean'``, the paper's). With
``weighting='importance'`` the same draws are self-normalised importance
samples of the VaDE's own posterior p(z | x_o) (``likelihood.
importance_samples``):

  p(c | x_o) ~= sum_s w_s p(c | z_s),  w = softmax_s(log p(x_o | z_s)
                + log p(z_s) - log q_theta(z_s | x_o)),

consistent for the generative model's p(c | x_o) as S grows, whatever
q_theta's errors, at the cost of decoding the S draws. With everything
observed the VaDE itself assigns ``(1/S) sum_s p(c | z_s)``, z_s ~ q_psi(z | x).

Scores against labels (clusters are unordered): accuracy after the
Hungarian matching of clusters to labels (``linear_sum_assignment`` on the
contingency table, maximising the matched count), NMI and ARI
(``sklearn.metrics``).

The paper's baseline (``MaskedClassifier``): a classifier with the partial
encoder's trunk over ``concat(x * b, b)``, trained by cross-entropy on the
VaDE's full-observation cluster assignments of the training rows, under the
masks PM was trained with. It is what a supervised model given the VaDE's
clusters can do from x_o; PM should match it.

Fig. 6: accuracy vs the fraction p observed, per-pixel Bernoulli(p) masks
with p in ``fractions`` steps from 0 to 1, ``trials`` mask draws per p.
"""
import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from pm_zoo import masks as masks_lib
from pm_zoo import matching
from pm_zoo import run_dir
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base
from pm_zoo.tasks import likelihood

CLUSTERING_JSON = 'clustering.json'
# How S draws of q_theta(z | x_o) become p(c | x_o) (module docstring).
WEIGHTINGS = ('mean', 'importance')


def check_weighting(weighting: str) -> str:
  """``weighting`` if it is one of ``WEIGHTINGS``, else a one-line UserError."""
  if weighting not in WEIGHTINGS:
    raise UserError(f'weighting must be one of {WEIGHTINGS}, got '
                    f'{weighting!r}')
  return weighting


@gin.configurable
@dataclasses.dataclass
class ClusterConfig:
  """How clustering is evaluated (bound from gin or flags).

  Attributes:
    fractions: number of observed fractions p, evenly from 0 to 1.
    trials: Bernoulli mask draws per fraction.
    num_samples: S draws of z per row averaged into p(c | x_o).
    weighting: 'mean' (the paper's average of p(c | z_s)) or 'importance'
      (self-normalised importance weights; module docstring).
    max_examples: the first N test rows (None: all).
    batch_size: rows per compiled call.
    seed: seed of the masks (trial t of fraction i: ``[seed + t, i]``).
    baseline_steps: training steps of the supervised baseline (0: none).
    baseline_batch_size / baseline_learning_rate: its Adam training.
    baseline_examples: training rows labelled by the VaDE for it.
  """
  fractions: int = 21
  trials: int = 5
  num_samples: int = 50
  weighting: str = 'mean'
  max_examples: Optional[int] = None
  batch_size: int = 250
  seed: int = 0
  baseline_steps: int = 5000
  baseline_batch_size: int = 128
  baseline_learning_rate: float = 1e-3
  baseline_examples: int = 60000

  def __post_init__(self):
    for name in ('fractions', 'trials', 'num_samples', 'batch_size'):
      if int(getattr(self, name)) < 1:
        raise UserError(f'ClusterConfig.{name} must be >= 1, got '
                        f'{getattr(self, name)}')
    check_weighting(self.weighting)

  @property
  def observed_fractions(self) -> np.ndarray:
    return np.linspace(0.0, 1.0, int(self.fractions))


# --------------------------------------------------------------- metrics
def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
  """Accuracy of ``clusters`` after the best one-to-one map to ``labels``.

  ``max_m (1/N) sum_i [labels_i == m(clusters_i)]`` over injective maps m,
  found by ``scipy.optimize.linear_sum_assignment`` on the contingency
  table (clusters without a label partner count as wrong).
  """
  # pylint: disable=g-import-not-at-top
  from scipy.optimize import linear_sum_assignment
  labels = np.asarray(labels).reshape(-1)
  clusters = np.asarray(clusters).reshape(-1)
  if labels.shape != clusters.shape or labels.size == 0:
    raise UserError(f'hungarian_accuracy needs equal, non-empty label and '
                    f'cluster arrays, got {labels.size} and {clusters.size}')
  _, label_ids = np.unique(labels, return_inverse=True)
  _, cluster_ids = np.unique(clusters, return_inverse=True)
  size = max(label_ids.max(), cluster_ids.max()) + 1
  table = np.zeros([size, size], np.int64)
  np.add.at(table, (cluster_ids, label_ids), 1)
  rows, cols = linear_sum_assignment(table, maximize=True)
  return float(table[rows, cols].sum() / labels.size)


def clustering_scores(labels: np.ndarray, clusters: np.ndarray
                      ) -> Dict[str, float]:
  """``{'accuracy', 'nmi', 'ari'}`` of a clustering against labels."""
  # pylint: disable=g-import-not-at-top
  from sklearn import metrics
  labels = np.asarray(labels).reshape(-1)
  clusters = np.asarray(clusters).reshape(-1)
  return {
      'accuracy': hungarian_accuracy(labels, clusters),
      'nmi': float(metrics.normalized_mutual_info_score(labels, clusters)),
      'ari': float(metrics.adjusted_rand_score(labels, clusters)),
  }


# --------------------------------------------------------------- the model
def weighted_cluster_probabilities(vae, z: tf.Tensor,
                                   log_weights: Optional[tf.Tensor] = None
                                   ) -> tf.Tensor:
  """sum_s w_s p(c | z_s) ``[B, K]`` from draws z ``[S, B, *latent_shape]``.

  w = softmax_s(``log_weights`` ``[S, B]``), self-normalised importance
  weights; w_s = 1/S where ``log_weights`` is None (the plain average).
  """
  per_draw = vae.cluster_probabilities(z)                  # [S, B, K]
  if log_weights is None:
    return tf.reduce_mean(per_draw, axis=0)
  weights = tf.nn.softmax(log_weights, axis=0)             # [S, B]
  return tf.einsum('sb,sbk->bk', weights, per_draw)


class Clusterer:
  """Compiled, batched cluster probabilities of a ``PosteriorMatchingVAE``.

  Args:
    model: a built ``PosteriorMatchingVAE`` whose base VAE has ``CLUSTERS``.
    batch_size: rows per compiled call.
  """

  def __init__(self, model, batch_size: int = 250):
    model.vae.require(base.CLUSTERS, 'clustering')
    self.model = model
    self.batch_size = int(batch_size)
    self._partial = tf.function(self._partial_batch)
    self._importance = tf.function(self._importance_batch)
    self._full = tf.function(self._full_batch)

  @property
  def num_clusters(self) -> int:
    z = tf.zeros([1, *self.model.vae.latent_shape])
    return int(self.model.vae.cluster_probabilities(z).shape[-1])

  def _partial_batch(self, x, mask, num_samples, seed):
    posterior = self.model.partial_encoder(x, mask, training=False)
    z = posterior.sample(num_samples, seed=seed)           # [S, B, d]
    return weighted_cluster_probabilities(self.model.vae, z)

  def _importance_batch(self, x, mask, num_samples, seed):
    z, log_w = likelihood.importance_samples(
        self.model, likelihood.OBSERVED, x, mask, num_samples, seed)
    return weighted_cluster_probabilities(self.model.vae, z, log_w)

  def _full_batch(self, x, num_samples, seed):
    posterior = self.model.vae.encode(x, training=False)
    z = posterior.sample(num_samples, seed=seed)
    return weighted_cluster_probabilities(self.model.vae, z)

  def _batched(self, fn, arrays, num_samples, seed):
    out = []
    n = len(arrays[0])
    for i, start in enumerate(range(0, n, self.batch_size)):
      part = [tf.constant(a[start:start + self.batch_size]) for a in arrays]
      out.append(fn(*part, tf.constant(int(num_samples), tf.int32),
                    tf.constant([seed, i], tf.int32)).numpy())
    return np.concatenate(out) if out else np.zeros([0, self.num_clusters],
                                                    np.float32)

  def probabilities(self, x: np.ndarray, mask: np.ndarray,
                    num_samples: int = 50, seed: int = 0,
                    weighting: str = 'mean') -> np.ndarray:
    """p(c | x_o) ``[N, K]`` from S draws of q_theta(z | x_o).

    ``weighting``: 'mean' averages p(c | z_s); 'importance' weights the
    draws by p(x_o | z_s) p(z_s) / q_theta(z_s | x_o), self-normalised
    (needs a family with ``MARGINAL_LIKELIHOOD``).
    """
    if check_weighting(weighting) == 'importance':
      self.model.vae.require(base.MARGINAL_LIKELIHOOD,
                             'importance-weighted clustering')
      fn = self._importance
    else:
      fn = self._partial
    x = np.asarray(x, np.float32)
    mask = np.broadcast_to(np.asarray(mask, np.float32), x.shape)
    probs = self._batched(fn, (np.where(mask > 0, x, 0.0), mask),
                          num_samples, seed)
    bad = ~np.isfinite(probs).all(axis=-1)
    if bad.any():
      raise UserError(
          f'cluster probabilities are not finite for {int(bad.sum())} rows: '
          'the decoder gives no finite log p(x_o | z) there; check that x is '
          'scaled like the training data')
    return probs

  def full_probabilities(self, x: np.ndarray, num_samples: int = 50,
                         seed: int = 0) -> np.ndarray:
    """The VaDE's own q(c | x) ``[N, K]`` from S draws of q_psi(z | x)."""
    return self._batched(self._full, (np.asarray(x, np.float32),),
                         num_samples, seed)


@gin.configurable
class MaskedClassifier(keras.Model):
  """The supervised baseline: logits ``[B, K]`` from ``concat(x * b, b)``.

  Args:
    num_classes: K.
    network: trunk factory ``f(output_shape=..., name=...)`` (the partial
      encoder's network class by default; see ``make_baseline``).
  """

  def __init__(self, num_classes: int, network: Callable, name='baseline',
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes = int(num_classes)
    self.network = network(output_shape=[self.num_classes],
                           name='baseline_network')

  def call(self, x, mask, training=False):
    return self.network(matching.observed_input(x, mask), training=training)


def make_baseline(model, num_classes: int) -> MaskedClassifier:
  """A ``MaskedClassifier`` with the trunk of ``model``'s partial encoder.

  The trunk class is the partial encoder's network's, built in the gin scope
  'partial' so that it takes the partial encoder's hyperparameters.
  """
  network = getattr(model.partial_encoder, 'network', None)
  if network is None:
    raise UserError('the supervised clustering baseline copies the partial '
                    'encoder\'s network, which this partial encoder does not '
                    'expose as .network')
  with gin.config_scope('partial'):
    classifier = MaskedClassifier(num_classes, type(network))
  return classifier


def train_baseline(classifier: MaskedClassifier, x: np.ndarray,
                   targets: np.ndarray, mask_dist, steps: int,
                   batch_size: int = 128, learning_rate: float = 1e-3,
                   seed: int = 0, log_every: int = 500) -> float:
  """Cross-entropy on ``targets`` under masks ``mask_dist``; last loss.

  Batch t: rows from a seeded permutation stream, masks
  ``mask_dist([B, *fs], [seed + 1, t])``.
  """
  x = tf.constant(np.asarray(x, np.float32))
  targets = tf.constant(np.asarray(targets, np.int32))
  n = int(x.shape[0])
  batch_size = min(int(batch_size), n)
  shape = [batch_size, *x.shape[1:]]
  optimizer = keras.optimizers.Adam(learning_rate)
  classifier(x[:2], tf.ones_like(x[:2]))

  @tf.function
  def step(t):
    idx = tf.random.stateless_uniform([batch_size], [seed, t], 0, n,
                                      dtype=tf.int32)
    xb, yb = tf.gather(x, idx), tf.gather(targets, idx)
    mask = mask_dist(shape, tf.stack([seed + 1, t]))
    with tf.GradientTape() as tape:
      logits = classifier(xb * mask, mask, training=True)
      loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
    grads = tape.gradient(loss, classifier.trainable_variables)
    optimizer.apply_gradients(zip(grads, classifier.trainable_variables))
    return loss

  loss = float('nan')
  for t in range(int(steps)):
    loss = float(step(tf.constant(t, tf.int32)))
    if log_every and (t + 1) % log_every == 0:
      logging.info('baseline step %d/%d  cross-entropy %.4f', t + 1, steps,
                   loss)
  return loss


def classifier_probabilities(classifier, x, mask, batch_size=250):
  """softmax of the baseline's logits, ``[N, K]`` (NaN-free inputs)."""
  fn = getattr(classifier, '_probabilities_fn', None)
  if fn is None:
    fn = tf.function(lambda a, b: tf.nn.softmax(classifier(a, b)))
    classifier._probabilities_fn = fn  # pylint: disable=protected-access
  x = np.asarray(x, np.float32)
  mask = np.broadcast_to(np.asarray(mask, np.float32), x.shape)
  return np.concatenate([
      fn(tf.constant(np.where(mask[i:i + batch_size] > 0,
                              x[i:i + batch_size], 0.0)),
         tf.constant(mask[i:i + batch_size])).numpy()
      for i in range(0, len(x), batch_size)])


# --------------------------------------------------------------- Fig. 6
@tf.function
def _bernoulli(shape, fraction, seed):
  return tf.cast(tf.random.stateless_uniform(shape, seed, alg='philox')
                 < fraction, tf.float32)


def bernoulli_masks(fraction: float, feature_shape, n: int, seed: int,
                    index: int) -> np.ndarray:
  """The shared test masks of one (fraction, trial): every method sees them.

  Each feature (each pixel, shared by its channels) is observed with
  probability ``fraction``: ``b = [u < p]``, ``u`` stateless uniform with
  seed ``[seed, index]``. float32 ``[n, *feature_shape]``.
  """
  feature_shape = list(feature_shape)
  unit = feature_shape[:2] if len(feature_shape) == 3 else feature_shape
  mask = _bernoulli(tf.constant([n, *unit], tf.int32),
                    tf.constant(float(fraction), tf.float32),
                    tf.constant([seed, index], tf.int32)).numpy()
  if len(feature_shape) == 3:
    mask = np.broadcast_to(mask[..., None], [n, *feature_shape]).copy()
  return mask


def accuracy_curves(methods: Dict[str, Callable], x: np.ndarray,
                    labels: np.ndarray, config: ClusterConfig) -> Dict:
  """Scores of each method at every observed fraction.

  Args:
    methods: name -> ``f(x, mask) -> cluster ids [N]``.
    x, labels: test rows and their labels.

  Returns:
    ``{'fractions': [...], 'methods': {name: {metric: {'mean': [...],
    'std': [...]}}}}`` over ``config.trials`` mask draws per fraction.
  """
  fractions = config.observed_fractions
  raw = {name: {m: np.zeros([len(fractions), config.trials])
                for m in ('accuracy', 'nmi', 'ari')} for name in methods}
  for i, p in enumerate(fractions):
    for t in range(config.trials):
      mask = bernoulli_masks(p, x.shape[1:], len(x), config.seed + t, i)
      for name, predict in methods.items():
        scores = clustering_scores(labels, predict(x, mask))
        for metric, value in scores.items():
          raw[name][metric][i, t] = value
    logging.info('p=%.2f  %s', p, '  '.join(
        f"{name} {raw[name]['accuracy'][i].mean():.4f}" for name in methods))
  return {
      'fractions': fractions.tolist(),
      'trials': int(config.trials),
      'methods': {name: {metric: {'mean': v.mean(axis=1).tolist(),
                                  'std': v.std(axis=1).tolist()}
                         for metric, v in per.items()}
                  for name, per in raw.items()},
  }


def save_accuracy_figure(path: str, curves: Dict, title: str = '') -> str:
  # pylint: disable=g-import-not-at-top
  from pm_zoo import figures
  lines = {name: (curves['fractions'], per['accuracy']['mean'],
                  per['accuracy']['std'])
           for name, per in curves['methods'].items()}
  return figures.save_curves(path, lines, xlabel='fraction observed',
                             ylabel='clustering accuracy', title=title)


def format_table(curves: Dict, metric: str = 'accuracy') -> str:
  """A fixed-width table: one row per fraction, one column per method."""
  names = list(curves['methods'])
  widths = [max(18, len(n)) for n in names]
  head = 'p_obs  ' + '  '.join(f'{n:>{w}s}' for n, w in zip(names, widths))
  rows = [head]
  for i, p in enumerate(curves['fractions']):
    cells = []
    for n, w in zip(names, widths):
      m = curves['methods'][n][metric]
      cells.append(f"{m['mean'][i]:.4f} ±{m['std'][i]:.4f}".rjust(w))
    rows.append(f'{p:5.2f}  ' + '  '.join(cells))
  return '\n'.join(rows)


# --------------------------------------------------------------- a run
def restore_labelled_run(model_dir: str, who: str,
                         data_path: Optional[str] = None,
                         test_data_path: Optional[str] = None,
                         tfds_data_dir: Optional[str] = None,
                         gin_bindings: Sequence[str] = ()):
  """(model, step, splits) of a clustering run whose test split has labels.

  The run's model restored for evaluation (its EMA weights where it kept
  them) and its data as it was trained on (``experiment.data_options``);
  ``who`` names the caller in the one-line error for a family without
  clusters. Raises ``UserError`` where the test split has no labels.
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  model, step = experiment.restore_for_eval(model_dir, gin_bindings)
  model.vae.require(base.CLUSTERS, who)
  options = experiment.data_options(model_dir, data_path, test_data_path,
                                    tfds_data_dir)
  splits, _ = experiment.load_standardized(options, model_dir, fit=False)
  if splits.test_labels is None:
    raise UserError(f'the {splits.name} data has no labels to score '
                    'clusters against: use a labelled dataset')
  return model, step, splits


def evaluate_run(model_dir: str, data_path: Optional[str] = None,
                 test_data_path: Optional[str] = None,
                 tfds_data_dir: Optional[str] = None,
                 gin_bindings: Sequence[str] = (),
                 latent_map: bool = True) -> Dict:
  """Fig. 6 (and Fig. 4) for a trained run; writes JSON and figures.

  Writes ``clustering.json``, ``figures/clustering.png`` and, with
  ``latent_map``, ``figures/latent_map.png`` into ``model_dir``. The
  supervised baseline is trained (``ClusterConfig.baseline_steps``) under
  the run's training masks and kept in ``model_dir/baseline/``.
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import latent_map as latent_map_lib
  from pm_zoo.training import trainer as trainer_lib
  model, step, splits = restore_labelled_run(
      model_dir, 'pm-cluster', data_path, test_data_path, tfds_data_dir,
      gin_bindings)
  config = ClusterConfig()
  train_config = trainer_lib.TrainConfig()
  n = len(splits.test) if config.max_examples is None else min(
      len(splits.test), int(config.max_examples))
  x, labels = splits.test[:n], np.asarray(splits.test_labels[:n])
  clusterer = Clusterer(model, config.batch_size)
  k = clusterer.num_clusters
  full = clusterer.full_probabilities(x, config.num_samples, config.seed)
  result = {'dataset': splits.name, 'step': step, 'test_examples': n,
            'num_clusters': k, 'num_samples': config.num_samples,
            'weighting': config.weighting,
            'full_observation_vade': clustering_scores(labels,
                                                       full.argmax(-1))}
  logging.info('VaDE at full observation: %s', result['full_observation_vade'])

  def pm(xs, mask):
    return clusterer.probabilities(xs, mask, config.num_samples,
                                   config.seed, config.weighting).argmax(-1)

  methods = {'PM-VaDE': pm}
  if config.baseline_steps:
    classifier = baseline_for_run(model, clusterer, splits.train, model_dir,
                                  config, train_config.train_mask)
    methods['supervised baseline'] = (
        lambda xs, mask: classifier_probabilities(
            classifier, xs, mask, config.batch_size).argmax(-1))
  result.update(accuracy_curves(methods, x, labels, config))
  figures_dir = os.path.join(model_dir, run_dir.FIGURES)
  save_accuracy_figure(os.path.join(figures_dir, 'clustering.png'), result,
                       title=f'{splits.name}: clustering from x_o')
  if latent_map and splits.kind == 'image':
    result['latent_map'] = latent_map_lib.save_latent_map(
        os.path.join(figures_dir, 'latent_map.png'), model, x, labels,
        seed=config.seed)
  run_dir.write_json(os.path.join(model_dir, CLUSTERING_JSON), result)
  return result


def baseline_for_run(model, clusterer: Clusterer, train_x: np.ndarray,
                     model_dir: Optional[str], config: ClusterConfig,
                     mask_dist) -> MaskedClassifier:
  """The supervised baseline of a run, trained once and kept in the run."""
  classifier = make_baseline(model, clusterer.num_clusters)
  classifier(tf.zeros([1, *train_x.shape[1:]]),
             tf.ones([1, *train_x.shape[1:]]))
  ckpt = tf.train.Checkpoint(classifier=classifier)
  directory = (os.path.join(model_dir, 'baseline', f'steps_{config.baseline_steps}')
               if model_dir else None)
  latest = directory and tf.train.latest_checkpoint(directory)
  if latest:
    ckpt.restore(latest).assert_existing_objects_matched()
    logging.info('restored the supervised baseline from %s', latest)
    return classifier
  rows = train_x[:config.baseline_examples]
  targets = clusterer.full_probabilities(rows, config.num_samples,
                                         config.seed + 1).argmax(-1)
  mask_dist = mask_dist or masks_lib.UniformCountMask()
  loss = train_baseline(classifier, rows, targets, mask_dist,
                        config.baseline_steps, config.baseline_batch_size,
                        config.baseline_learning_rate, seed=config.seed)
  logging.info('supervised baseline trained: cross-entropy %.4f', loss)
  if directory:
    ckpt.save(os.path.join(directory, 'ckpt'))
  return classifier
