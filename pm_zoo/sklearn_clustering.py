"""``PosteriorMatchingClusterer``: VaDE + Posterior Matching as a scikit-learn clusterer.

  from pm_zoo import PosteriorMatchingClusterer
  clusterer = PosteriorMatchingClusterer(n_clusters=7).fit(X_train)
  labels = clusterer.predict(X)          # NaN = missing, any pattern per row
  proba = clusterer.predict_proba(X)     # [N, n_clusters]
  clusterer.save('runs/my_clusterer')    # three pm-train runs, pm-export-able

``fit`` runs the three VaDE stages of ``docs/models-vade.md`` as ``pm-train``
would, into ``model_dir/pretrain``, ``model_dir/elbo`` and
``model_dir/partial``: the autoencoder pre-training, the ELBO after the
GaussianMixture initialisation of the prior, and the partial posterior with
the VaDE frozen. Tables ``[N, D]`` use ``vade_table.gin``; image arrays
``[N, H, W]`` or ``[N, H, W, C]`` (grey levels in [0, 1], or uint8) use
``vade_mnist.gin`` (28x28 conv nets; other sizes: pass a ``gin_file``).

``predict_proba`` averages p(c | z_s) over ``num_samples`` row-keyed draws
z_s ~ q_theta(z | x_o) of the observed entries: a row's probabilities depend
only on the row (and ``random_state``), and equal the exported SavedModel's
``cluster`` signature (``pm-export --model_dir=<model_dir>/partial``).
Training rows must be complete (``fit`` says how many are not); predicting
is what accepts missing values.

Arguments left at None keep the gin file's value; the others become gin
bindings: ``n_clusters`` -> VaDE.num_clusters, ``latent_dim`` ->
VaDE.latent_dim, ``pretrain_steps`` / ``elbo_steps`` / ``partial_steps`` ->
TrainConfig.num_steps of each stage, ``batch_size``, ``learning_rate`` ->
exponential_decay.initial, ``random_state`` -> seeds.

Global state: ``fit`` and ``load`` parse gin (clearing any config you had).
"""
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.base import ClusterMixin
from sklearn.utils.validation import check_is_fitted

from pm_zoo import run_dir
from pm_zoo import sklearn_runs
from pm_zoo.errors import UserError

ESTIMATOR_FILE = 'clusterer.json'
FIT_TABLE = 'fit_data.npy'
FIT_IMAGES = 'fit_images.npz'
STAGES = (('pretrain', 'pretrain'), ('elbo', 'vae'), ('partial', 'partial'))


def _as_array(X, what):  # pylint: disable=invalid-name
  try:
    x = np.asarray(X, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise UserError(f'{what} is not numeric ({e}): give numbers, NaN for '
                    'missing values') from None
  if x.ndim not in (2, 3, 4) or 0 in x.shape:
    raise UserError(f'{what} has shape {list(x.shape)}: give a table [N, D] '
                    'or images [N, H, W] / [N, H, W, C]')
  if x.ndim == 3:
    x = x[..., None]
  if np.isinf(x).any():
    raise UserError(f'{what} holds {int(np.isinf(x).sum())} infinite values: '
                    'give finite numbers, NaN for missing ones')
  return x


class PosteriorMatchingClusterer(sklearn_runs.RunBackedEstimator,
                                 ClusterMixin, BaseEstimator):
  """Clusters rows or images from whatever is observed (see module doc).

  Args:
    n_clusters: K, the mixture components of the VaDE prior.
    gin_file: the experiment (None: vade_table.gin for tables,
      vade_mnist.gin for images).
    latent_dim: the latent size (None: the gin file's, 10).
    pretrain_steps, elbo_steps, partial_steps: steps of the three stages.
    batch_size, learning_rate: training (None: the gin file's).
    num_samples: S draws of q_theta(z | x_o) averaged per row.
    weighting: 'mean' (the PM paper's plain average of p(c | z_s)) or
      'importance' (the draws weighted by p(x_o | z_s) p(z_s) /
      q_theta(z_s | x_o), self-normalised: the VaDE's own p(c | x_o);
      docs/models-vade.md measures both).
    random_state: int seed of training and of the draws.
    predict_batch_size: rows per model call.
    model_dir: where ``fit`` trains (new or empty); None: a temporary one.
    gin_bindings: extra bindings for every stage.
    verbose: log training progress.

  Fitted attributes: ``model_dir_``, ``labels_`` (clusters of the training
  rows), ``n_features_in_`` (tables) and ``feature_shape_``.
  """

  ESTIMATOR_FILE = ESTIMATOR_FILE
  RUN_PREFIX = 'clusterer'
  RUN_SUBDIRS = tuple(name for name, _ in STAGES)

  def __init__(self, n_clusters: int = 10, gin_file: Optional[str] = None,
               latent_dim: Optional[int] = None,
               pretrain_steps: Optional[int] = None,
               elbo_steps: Optional[int] = None,
               partial_steps: Optional[int] = None,
               batch_size: Optional[int] = None,
               learning_rate: Optional[float] = None, num_samples: int = 20,
               weighting: str = 'mean',
               random_state: Optional[int] = 0,
               predict_batch_size: int = 512,
               model_dir: Optional[str] = None,
               gin_bindings: Sequence[str] = (), verbose: bool = False):
    self.n_clusters = n_clusters
    self.gin_file = gin_file
    self.latent_dim = latent_dim
    self.pretrain_steps = pretrain_steps
    self.elbo_steps = elbo_steps
    self.partial_steps = partial_steps
    self.batch_size = batch_size
    self.learning_rate = learning_rate
    self.num_samples = num_samples
    self.weighting = weighting
    self.random_state = random_state
    self.predict_batch_size = predict_batch_size
    self.model_dir = model_dir
    self.gin_bindings = gin_bindings
    self.verbose = verbose

  # ------------------------------------------------------------ training
  def _bindings(self, objective: str, rows: int):
    if int(self.n_clusters) < 1:
      raise UserError(f'n_clusters={self.n_clusters}: give a positive number')
    bindings = [f'VaDE.num_clusters = {int(self.n_clusters)}',
                f"TrainConfig.objective = '{objective}'"]
    steps = {'pretrain': self.pretrain_steps, 'vae': self.elbo_steps,
             'partial': self.partial_steps}[objective]
    for value, name in ((self.latent_dim, 'VaDE.latent_dim'),
                        (steps, 'TrainConfig.num_steps'),
                        (self.learning_rate, 'exponential_decay.initial')):
      if value is not None:
        bindings.append(f'{name} = {value!r}')
    if self.random_state is not None:
      bindings += [f'TrainConfig.seed = {int(self.random_state)}',
                   f'VaDE.gmm_seed = {int(self.random_state)}']
    if self.batch_size is not None:
      if not 1 <= int(self.batch_size) <= rows:
        raise UserError(f'batch_size={self.batch_size}: give 1..{rows} (the '
                        'training rows)')
      bindings.append(f'TrainConfig.batch_size = {int(self.batch_size)}')
    return bindings + list(self.gin_bindings)

  def fit(self, X, y=None):  # pylint: disable=invalid-name
    """Trains the three stages on the complete rows ``X``; ``y`` is ignored."""
    del y
    # pylint: disable=g-import-not-at-top
    import gin
    from pm_zoo import configs
    from pm_zoo import experiment
    from pm_zoo.tasks import clustering
    clustering.check_weighting(self.weighting)  # before anything is written
    x = _as_array(X, 'PosteriorMatchingClusterer.fit: X')
    table = x.ndim == 2
    bad = np.isnan(x).reshape(len(x), -1).any(axis=1)
    if bad.any():
      raise UserError(
          'PosteriorMatchingClusterer.fit: the training rows must be fully '
          f'observed, but {int(bad.sum())} of {len(x)} have NaN; drop them '
          '(X[~np.isnan(X).any(axis=1)]) or fill them before fitting; '
          'predict and predict_proba accept missing values')
    gin_file = self.gin_file or ('vade_table.gin' if table
                                 else 'vade_mnist.gin')
    if len(x) < int(self.n_clusters):
      raise UserError(f'{len(x)} rows cannot make {self.n_clusters} clusters: '
                      'give more rows or fewer clusters')
    # Configuration errors surface before anything is written.
    stage_bindings = {}
    for _, objective in STAGES:
      bindings = self._bindings(objective, len(x))
      configs.parse([gin_file], bindings)
      if self.batch_size is None and gin.query_parameter(
          'TrainConfig.batch_size') > len(x):
        bindings.append(f'TrainConfig.batch_size = {len(x)}')
      stage_bindings[objective] = bindings
    model_dir = self._new_run_dir()
    if table:
      data_path = os.path.join(model_dir, FIT_TABLE)
      np.save(data_path, x.astype(np.float32))
      data_bindings = ["dataset.source = 'table'"]
    else:
      data_path = os.path.join(model_dir, FIT_IMAGES)
      np.savez(data_path, x_train=x.astype(np.float32),
               x_test=x[:1].astype(np.float32))
      data_bindings = ["dataset.source = 'mnist_npz'"]
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.INFO if self.verbose else logging.WARNING)
    try:
      previous = None
      for name, objective in STAGES:
        configs.parse([gin_file], stage_bindings[objective] + data_bindings)
        stage_dir = os.path.join(model_dir, name)
        experiment.train(stage_dir, data_path=data_path,
                         test_data_path=data_path if table else None,
                         vae_checkpoint=previous)
        previous = stage_dir
    finally:
      logging.set_verbosity(verbosity)
    run_dir.write_json(os.path.join(model_dir, ESTIMATOR_FILE),
                       self._saved_params())
    self._restore(model_dir)
    self.labels_ = self.predict(X)
    return self

  def _restore(self, model_dir: str) -> None:
    # pylint: disable=g-import-not-at-top
    from pm_zoo.serving import cluster
    from pm_zoo.serving import loading
    from pm_zoo.serving import module
    partial = os.path.join(model_dir, 'partial')
    serving, step = loading.from_model_dir(partial, module.ServingConfig(
        num_samples=int(self.num_samples), seed=int(self.random_state or 0),
        cluster_weighting=self.weighting))
    self._serving = serving
    self._cluster = cluster.cluster_function(serving)
    self.model_dir_ = model_dir
    self.step_ = step
    self.feature_shape_ = tuple(serving.feature_shape)
    if len(self.feature_shape_) == 1:
      self.n_features_in_ = self.feature_shape_[0]

  # ------------------------------------------------------------ using
  def predict_proba(self, X):  # pylint: disable=invalid-name
    """p(c | x_o) per row, float64 ``[N, n_clusters]`` (NaN = missing)."""
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf
    check_is_fitted(self, 'model_dir_')
    x = _as_array(X, 'X')
    if x.ndim == 4 and len(self.feature_shape_) == 3 and (
        x.shape[-1] != self.feature_shape_[-1]):
      x = x[..., :self.feature_shape_[-1]]
    if tuple(x.shape[1:]) != self.feature_shape_:
      raise UserError(f'X has rows of shape {list(x.shape[1:])} but the '
                      f'clusterer was fitted on {list(self.feature_shape_)}: '
                      'give the same columns (or image size)')
    mask = np.isfinite(x).astype(np.float32)
    x = np.where(mask > 0, x, 0.0).astype(np.float32)
    step = int(self.predict_batch_size)
    out = [self._cluster(tf.constant(x[i:i + step]),
                         tf.constant(mask[i:i + step]))['probabilities']
           .numpy() for i in range(0, len(x), step)]
    return np.concatenate(out).astype(np.float64)

  def predict(self, X):  # pylint: disable=invalid-name
    """The most probable cluster of each row, int64 ``[N]``."""
    return self.predict_proba(X).argmax(axis=1)

  def fit_predict(self, X, y=None):  # pylint: disable=invalid-name
    return self.fit(X, y).labels_

  # ------------------------------------------------------------ persistence
  @classmethod
  def load(cls, path: str) -> 'PosteriorMatchingClusterer':
    """The clusterer saved in ``path``."""
    params = run_dir.read_json(os.path.join(path, ESTIMATOR_FILE))
    if params is None:
      raise UserError(f'{path} holds no {ESTIMATOR_FILE}: pass a directory '
                      'written by PosteriorMatchingClusterer.save')
    params['gin_bindings'] = tuple(params.get('gin_bindings', ()))
    clusterer = cls(**params)
    clusterer._restore(os.path.abspath(path))  # pylint: disable=protected-access
    return clusterer
