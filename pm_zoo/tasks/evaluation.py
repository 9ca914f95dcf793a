"""Evaluation of imputation quality over several mask draws.

Tables get the paper's NRMSE (per feature: RMSE over its missing entries
divided by the feature's test-set std, averaged over features); images get
PSNR of the mean of ``num_imputations`` imputations. Each metric is reported as
``{"mean", "std", "trials"}`` over ``trials`` independent draws of the test
masks (one seed per trial, so every method evaluated with the same seed sees
the same masks).
"""
import dataclasses
from typing import Callable, Dict, Optional

from absl import logging
import gin
import numpy as np

from pm_zoo import figures
from pm_zoo import masks as masks_lib
from pm_zoo import metrics as metrics_lib
from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.tasks.imputation import Imputer
from pm_zoo.tasks.likelihood import ConditionalLikelihood


@gin.configurable
@dataclasses.dataclass
class EvalConfig:
  """How a model is evaluated (bound from gin).

  Attributes:
    trials: number of independent test-mask draws.
    eval_mask: mask distribution of the test masks; default Bernoulli(0.5) for
      tables and the paper's MNIST mixture for images.
    num_imputations: imputations averaged into the point imputation.
    batch_size: rows per compiled imputation call.
    seed: seed of the test masks (trial t uses seed + t) and of the samples.
    max_examples: evaluate on the first N test rows only (None: all).
    figure_examples: images shown in figures/inpainting.png.
    figure_samples: sample rows in that figure.
    log_likelihood_samples: K importance samples per row for the tables'
      conditional log-likelihood log p(x_u | x_o) (0: not computed).
    log_likelihood_chunk: samples decoded at once (bounds memory).
  """
  trials: int = 5
  eval_mask: Optional[Callable] = None
  num_imputations: int = 10
  batch_size: int = 256
  seed: int = 20221
  max_examples: Optional[int] = None
  figure_examples: int = 8
  figure_samples: int = 4
  log_likelihood_samples: int = 512
  log_likelihood_chunk: int = 64

  def mask_for(self, kind: str):
    if self.eval_mask is not None:
      return self.eval_mask
    if kind == 'image':
      return masks_lib.mnist_mixture_mask()
    return masks_lib.BernoulliMask(0.5)


def evaluate_imputation(model, test: np.ndarray, kind: str,
                        config: EvalConfig,
                        figure_path: Optional[str] = None,
                        feature_scale: Optional[np.ndarray] = None,
                        cardinalities=None
                        ) -> Dict[str, Dict[str, float]]:
  """Metrics of ``model`` on ``test`` (already in the model's input space).

  Returns ``{"nrmse": {...}, "log_likelihood": {...}}`` for tables or
  ``{"psnr": {...}}`` for images, and writes the inpainting figure for images
  when ``figure_path`` is given. ``log_likelihood`` is the mean over rows of
  log p(x_u | x_o) (importance sampling, ``log_likelihood_samples``), in the
  data's own units: with the model on standardised features z = (x - m) / s,
  log p(x_u | x_o) = log p(z_u | z_o) - sum_{i in u} log s_i, where
  ``feature_scale`` holds s (None: the model's units).

  Mixed tables (``cardinalities``: K per column, 0 = numeric): ``nrmse``
  covers the numeric columns and ``pfc`` (proportion of falsely classified
  cells, ``metrics.pfc``) the categorical ones. Incomplete test rows (NaN):
  a trial's mask is the drawn mask times the observed-data mask, and only
  cells that were observed and then hidden are scored; the log-likelihood is
  then log p(x_h | x_o) = log p(x_{o+h}) - log p(x_o) over the hidden
  observed cells h.
  """
  if config.trials < 1 or config.num_imputations < 1:
    raise UserError('EvalConfig.trials and num_imputations must be >= 1')
  if config.max_examples:
    test = test[:config.max_examples]
  if len(test) == 0:
    raise UserError('the test split is empty: nothing to evaluate')
  observed = np.isfinite(test).astype(np.float32)
  incomplete = kind == 'table' and not observed.all()
  if incomplete:
    test = np.where(observed > 0, test, 0.0).astype(np.float32)
  cards = tuple(int(k) for k in (cardinalities or ()))
  numeric = [j for j in range(test.shape[-1]) if not cards or not cards[j]]
  categorical = [j for j, k in enumerate(cards) if k]
  if kind == 'image':
    numeric = None
  std = None
  if incomplete and numeric:
    std = np.array([np.std(test[observed[:, j] > 0, j]) for j in numeric])
  imputer = Imputer(model, config.batch_size)
  mask_dist = config.mask_for(kind)
  pfcs = []
  values, log_likelihoods = [], []
  likelihood = None
  if (kind == 'table' and config.log_likelihood_samples > 0 and
      not model.vae.has(base.MARGINAL_LIKELIHOOD)):
    logging.info('no log-likelihood: the %s base VAE has no posterior '
                 'density', model.vae.family)
  elif kind == 'table' and config.log_likelihood_samples > 0:
    likelihood = ConditionalLikelihood(
        model, num_samples=config.log_likelihood_samples,
        samples_per_chunk=config.log_likelihood_chunk,
        batch_size=config.batch_size, seed=config.seed)
    log_scale = (np.zeros(test.shape[1:]) if feature_scale is None else
                 np.log(np.asarray(feature_scale, np.float64)))
  for trial in range(config.trials):
    mask = masks_lib.make_eval_masks(mask_dist, test.shape[1:], len(test),
                                     seed=config.seed + trial)
    if incomplete:
      mask = mask * observed
    # Scored: hidden cells whose truth is known.
    scored = 1.0 - (1.0 - mask) * observed if incomplete else mask
    mean = imputer.mean(test, mask, config.num_imputations,
                        seed=config.seed + 1000 * (trial + 1))
    if kind == 'image':
      values.append(metrics_lib.psnr(test, mean))
    elif numeric:
      values.append(metrics_lib.nrmse(
          test[:, numeric], mean[:, numeric], scored[:, numeric],
          feature_std=std))
    if categorical:
      pfcs.append(metrics_lib.pfc(test[:, categorical],
                                  mean[:, categorical],
                                  scored[:, categorical]))
    if values:
      logging.info('evaluation trial %d/%d: %s %.4f on %d examples',
                   trial + 1, config.trials,
                   'psnr' if kind == 'image' else 'nrmse', values[-1],
                   len(test))
    if likelihood is not None:
      if incomplete:
        per_row = (likelihood.log_prob_observed(test, observed) -
                   likelihood.log_prob_observed(test, mask))
      else:
        per_row = likelihood.conditional_log_prob(test, mask)
      per_row = per_row - ((1.0 - scored) * log_scale).sum(axis=1)
      log_likelihoods.append(float(per_row.mean()))
      logging.info('evaluation trial %d/%d: log_likelihood %.4f (K=%d)',
                   trial + 1, config.trials, log_likelihoods[-1],
                   config.log_likelihood_samples)
    if trial == 0 and kind == 'image' and figure_path:
      n = min(config.figure_examples, len(test))
      samples = imputer.samples(test[:n], mask[:n],
                                max(config.figure_samples, 1),
                                seed=config.seed)
      figures.save_inpainting_grid(
          figure_path, test[:n], mask[:n], samples[:config.figure_samples],
          mean=samples.mean(axis=0))
  name = 'psnr' if kind == 'image' else 'nrmse'
  result = {name: metrics_lib.summarize_trials(values)} if values else {}
  if pfcs:
    result['pfc'] = metrics_lib.summarize_trials(pfcs)
  if log_likelihoods:
    result['log_likelihood'] = metrics_lib.summarize_trials(log_likelihoods)
  return result


def periodic_eval_fn(model, test: np.ndarray, kind: str, config: EvalConfig,
                     objective: str = 'joint',
                     labels: Optional[np.ndarray] = None
                     ) -> Callable[[], Dict[str, float]]:
  """The metrics of one fixed mask draw on ``test``, for curves along training.

  Images: ``reconstruction_psnr`` (the decoder mean at the base VAE's own
  posterior target of the full image, or in a family stage that stage's
  target: what the VAE alone reaches) and ``psnr`` of the mean of
  ``config.num_imputations`` inpaintings; tables:
  ``nrmse``. The masks and seeds are those of the first evaluation trial,
  the same at every call, so a curve moves with the model only. With
  ``objective == 'vae'`` or a family stage (``vae.stages``, e.g. VaDE's
  'pretrain') the partial posterior is not trained, so only the
  reconstruction is scored (images) and nothing else. A clustering family
  (``CLUSTERS``) given the test ``labels`` also logs ``cluster_accuracy``:
  the Hungarian-matched accuracy of argmax_c q(c | x), the mean of p(c | z)
  over ``config.num_imputations`` draws z ~ q(z | x) of the full rows
  (not in a family stage: VaDE's prior is fitted when its ELBO starts).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  test = np.asarray(test, np.float32)
  mask = masks_lib.make_eval_masks(config.mask_for(kind), test.shape[1:],
                                   len(test), seed=config.seed)
  imputer = Imputer(model, config.batch_size)
  family_stage = objective in model.vae.stages
  clusterer = None
  if (labels is not None and model.vae.has(base.CLUSTERS)
      and not family_stage):
    from pm_zoo.tasks import clustering  # pylint: disable=g-import-not-at-top
    clusterer = clustering.Clusterer(model, config.batch_size)
    labels = np.asarray(labels)[:len(test)]

  @tf.function
  def reconstruct(x):
    # A family stage trains its own target (VaDE's 'pretrain': the
    # encoder mean, its scale untrained), so it is scored on that one.
    seed = tf.constant([config.seed, 0])
    if family_stage:
      terms = model.vae.stage_terms(objective, x, tf.constant(1.0),
                                    training=False, seed=seed)
    else:
      terms = model.vae.training_terms(x, tf.constant(1.0), training=False,
                                       seed=seed)
    return model.vae.decode(terms.target, training=False).mean()

  def evaluate():
    out = {}
    if kind == 'image':
      recon = np.concatenate([
          reconstruct(tf.constant(test[i:i + config.batch_size])).numpy()
          for i in range(0, len(test), config.batch_size)])
      out['reconstruction_psnr'] = metrics_lib.psnr(test, np.clip(recon, 0, 1))
    if clusterer is not None:
      probabilities = clusterer.full_probabilities(
          test, config.num_imputations, seed=config.seed)
      out['cluster_accuracy'] = clustering.hungarian_accuracy(
          labels, probabilities.argmax(-1))
    if objective != 'vae' and not family_stage:
      mean = imputer.mean(test, mask, config.num_imputations,
                          seed=config.seed + 1000)
      if kind == 'image':
        out['psnr'] = metrics_lib.psnr(test, mean)
      else:
        out['nrmse'] = metrics_lib.nrmse(test, mean, mask)
    return out
  return evaluate


def inpainting_summary_fn(model, images: np.ndarray, seed: int = 0,
                          num_samples: int = 3) -> Callable[[], np.ndarray]:
  """A callable giving a [1, H', W', 3] inpainting grid for TensorBoard."""
  mask = masks_lib.make_eval_masks(masks_lib.mnist_mixture_mask(),
                                   images.shape[1:], len(images), seed=seed)
  imputer = Imputer(model, len(images))

  def summary():
    samples = imputer.samples(images, mask, num_samples, seed=seed)
    return figures.inpainting_grid_image(images, mask, samples,
                                         mean=samples.mean(axis=0))
  return summary


def format_table(metrics: Dict[str, Dict[str, float]]) -> str:
  """A small aligned text table of ``{"name": {"mean", "std", "trials"}}``."""
  lines = [f'{"metric":<16}{"mean":>12}{"std":>12}{"trials":>8}']
  for name, m in metrics.items():
    if isinstance(m, dict) and 'mean' in m:
      lines.append(f'{name:<16}{m["mean"]:>12.4f}{m["std"]:>12.4f}'
                   f'{m["trials"]:>8d}')
  return '\n'.join(lines)


def format_report(metrics: Dict, model_dir: str) -> str:
  """What the launchers print after an evaluation (see ``experiment.evaluate``)."""
  head = (f"{metrics['dataset']}: step {metrics['step']}, "
          f"{metrics['test_examples']} test examples")
  table = format_table({k: v for k, v in metrics.items()
                        if isinstance(v, dict)})
  return f'{head}\n{table}\nmetrics written to {model_dir}/metrics.json'
