"""Acquisition episodes: start from nothing, acquire greedily, score each step.

For every instance x, an episode starts from the empty mask and repeats
``num_acquisitions`` times: impute the unobserved features (the mean of
``imputation_samples`` imputations from q_theta(z | x_o), as pm_zoo's
``Imputer``), record the RMSE on the unobserved features
(``metrics.rmse_missing``), then let the policy pick the next feature and
observe it. The result holds the RMSE before the first and after every
acquisition (T + 1 values per instance) and the acquisition order.

Instances are processed in batches (the policy and the imputer see a batch
at a time); imputation seeds depend on (step, batch) only, so every policy is
scored with the same random numbers at the same step.
"""
import dataclasses
import time
from typing import List

from absl import logging
import numpy as np
import tensorflow as tf

from pm_zoo import metrics as metrics_lib
from pm_zoo.acquisition import features
from pm_zoo.tasks.imputation import Imputer


@dataclasses.dataclass
class Episodes:
  """What ``run_episodes`` returns.

  Attributes:
    rmse: float64 [N, T + 1]; column t is the RMSE after t acquisitions.
    order: int64 [N, T]; the feature acquired at each step.
    first_imputations: float32 [T + 1, *feature_shape]; the imputation of the
      first instance at every step (for the trajectory picture).
    policy_seconds: time spent in the policy's batched steps, except the
      first step of each batch (tracing and compilation for a new shape).
    policy_calls: how many batched steps that time covers.
    seconds: wall time of the whole run.
  """
  rmse: np.ndarray
  order: np.ndarray
  first_imputations: np.ndarray
  policy_seconds: float
  policy_calls: int
  seconds: float

  def masks_of_first(self, feature_shape) -> np.ndarray:
    """The first instance's masks at steps 0..T: ``[T + 1, *feature_shape]``."""
    num = features.num_features(feature_shape)
    steps = self.order.shape[1]
    units = np.zeros([steps + 1, num], np.float32)
    for t in range(steps):
      units[t + 1:, self.order[0, t]] = 1.0
    return features.to_mask(tf.constant(units), feature_shape).numpy()


def _step_seed(seed: int, step: int, start: int) -> int:
  return (seed * 1_000_003 + step * 10_007 + start) % (2**31 - 1)


def run_episodes(model, policy, x: np.ndarray, num_acquisitions: int,
                 imputation_samples: int = 50, batch_size: int = 100,
                 seed: int = 0, name: str = '') -> Episodes:
  """Runs one episode per instance of ``x`` (model input space) with ``policy``.

  Args:
    model: the ``PosteriorMatchingVAE`` that imputes.
    policy: a ``policies.Policy``.
    x: float32 [N, *feature_shape], fully observed ground truth.
    num_acquisitions: T, acquisitions per episode (at most num_features).
    imputation_samples: imputations averaged into the point imputation.
    batch_size: instances per batch.
    seed: seeds the imputations and the policy's randomness.
    name: shown in the progress log.
  """
  feature_shape = tuple(model.feature_shape)
  num = features.num_features(feature_shape)
  steps = min(int(num_acquisitions), num)
  x = np.asarray(x, np.float32)
  rmse = np.zeros([len(x), steps + 1])
  order = np.zeros([len(x), steps], np.int64)
  first: List[np.ndarray] = []
  imputer = Imputer(model, batch_size=batch_size)
  policy_seconds, policy_calls = 0.0, 0
  start_time = time.time()
  for start in range(0, len(x), batch_size):
    xb = x[start:start + batch_size]
    units = np.zeros([len(xb), num], np.float32)
    x_tensor = tf.constant(xb)
    for t in range(steps + 1):
      mask = features.to_mask(tf.constant(units), feature_shape).numpy()
      mean = imputer.mean(xb, mask, imputation_samples,
                          seed=_step_seed(seed, t, start))
      for i in range(len(xb)):
        rmse[start + i, t] = metrics_lib.rmse_missing(
            xb[i:i + 1], mean[i:i + 1], mask[i:i + 1])
      if start == 0:
        first.append(mean[0])
      if t == steps:
        break
      tick = time.perf_counter()
      index, _ = policy.next_feature(
          x_tensor, tf.constant(mask),
          tf.constant([seed, _step_seed(seed, t, start)], tf.int64))
      index = index.numpy()
      if t > 0:
        policy_calls += 1
        policy_seconds += time.perf_counter() - tick
      units[np.arange(len(xb)), index] = 1.0
      order[start:start + len(xb), t] = index
    logging.info('acquisition %s: %d/%d instances, RMSE after %d: %.4f',
                 name, start + len(xb), len(x), steps,
                 rmse[:start + len(xb), steps].mean())
  return Episodes(rmse=rmse, order=order, first_imputations=np.stack(first),
                  policy_seconds=policy_seconds,
                  policy_calls=policy_calls,
                  seconds=time.time() - start_time)
