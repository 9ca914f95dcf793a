"""Evaluation of imputation quality over several mask draws.

Tables get the paper's NRMSE (per feature: RMSE over its missing entries
divided by the feature's test-set std, averaged over features); images get
PSNR of the mean of ``num_imputations`` imputations. Each metric is reported as
``{"mean", "std", "trials"}`` over ``trials`` independent draws of the test
masks (one seed per trial, so every method evaluated with the same seed sees
the same masks).
"""
import dataclasses
import os
from typing import Callable, Dict, Optional

from absl import logging
import gin
import numpy as np

from pm_zoo import figures
from pm_zoo import masks as masks_lib
from pm_zoo import metrics as metrics_lib
from pm_zoo.errors import UserError
from pm_zoo.tasks.imputation import Imputer


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
  """
  trials: int = 5
  eval_mask: Optional[Callable] = None
  num_imputations: int = 10
  batch_size: int = 256
  seed: int = 20221
  max_examples: Optional[int] = None
  figure_examples: int = 8
  figure_samples: int = 4

  def mask_for(self, kind: str):
    if self.eval_mask is not None:
      return self.eval_mask
    if kind == 'image':
      return masks_lib.mnist_mixture_mask()
    return masks_lib.BernoulliMask(0.5)


def evaluate_imputation(model, test: np.ndarray, kind: str,
                        config: EvalConfig,
                        figure_path: Optional[str] = None
                        ) -> Dict[str, Dict[str, float]]:
  """Metrics of ``model`` on ``test`` (already in the model's input space).

  Returns ``{"nrmse": {...}}`` for tables or ``{"psnr": {...}}`` for images,
  and writes the inpainting figure for images when ``figure_path`` is given.
  """
  if config.trials < 1 or config.num_imputations < 1:
    raise UserError('EvalConfig.trials and num_imputations must be >= 1')
  if config.max_examples:
    test = test[:config.max_examples]
  if len(test) == 0:
    raise UserError('the test split is empty: nothing to evaluate')
  imputer = Imputer(model, config.batch_size)
  mask_dist = config.mask_for(kind)
  values = []
  for trial in range(config.trials):
    mask = masks_lib.make_eval_masks(mask_dist, test.shape[1:], len(test),
                                     seed=config.seed + trial)
    mean = imputer.mean(test, mask, config.num_imputations,
                        seed=config.seed + 1000 * (trial + 1))
    if kind == 'image':
      values.append(metrics_lib.psnr(test, mean))
    else:
      values.append(metrics_lib.nrmse(test, mean, mask))
    logging.info('evaluation trial %d/%d: %s %.4f on %d examples',
                 trial + 1, config.trials,
                 'psnr' if kind == 'image' else 'nrmse', values[-1],
                 len(test))
    if trial == 0 and kind == 'image' and figure_path:
      n = min(config.figure_examples, len(test))
      samples = imputer.samples(test[:n], mask[:n],
                                max(config.figure_samples, 1),
                                seed=config.seed)
      figures.save_inpainting_grid(
          figure_path, test[:n], mask[:n], samples[:config.figure_samples],
          mean=samples.mean(axis=0))
  name = 'psnr' if kind == 'image' else 'nrmse'
  return {name: metrics_lib.summarize_trials(values)}


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
