"""tf.data input pipelines over in-memory arrays.

Only TF ops (no tf.py_function), static batch shapes in training: the
pipelines run under tf.distribute on CPU, GPU and TPU hosts.

Incomplete tables: NaN in the features marks a missing cell. The batches
then carry the observed-data mask ``observed`` (m, 1 where the cell was
given), the missing cells of ``x`` are 0, and the training mask of the
partial encoder is drawn within m: ``mask = b * m`` for the sampler's b, so
that the partial encoder never conditions on a cell nobody observed (see
``pm_zoo.matching``). Complete data give exactly the batches they always
did, without ``observed``.

Training order is a pure function of (seed, step): epoch e visits the rows in
the order argsort(stateless_uniform([N], seed=[seed, e])), cut into
N // batch_size batches (the remainder of each epoch is dropped), so a run
resumed at step s sees exactly the batches the uninterrupted run would have.
"""
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError

# mask_sampler(shape, seed) -> float32 mask of `shape` (1 = observed), where
# shape is the static python list [B, *feature_shape] and seed an int64 [2]
# tensor for tf.random.stateless_* ops.
MaskSampler = Callable[[Sequence[int], tf.Tensor], tf.Tensor]

# Pinned so the order is the same on every device type ('auto_select' may
# pick a different generator per device).
_RNG_ALG = 'philox'


def epoch_permutation(n: int, seed: int, epoch) -> tf.Tensor:
  """int32 [n]: the order of the rows in `epoch` (an int or int64 scalar).

  Uniform draws are float64 so that ties (which float32 would give for about
  n^2 / 2^25 pairs) cannot occur in practice; the sort is stable anyway.
  """
  key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
  u = tf.random.stateless_uniform([n], seed=key, dtype=tf.float64,
                                  alg=_RNG_ALG)
  return tf.argsort(u, stable=True)


def _as_float32(features, what: str) -> np.ndarray:
  features = np.asarray(features, dtype=np.float32)
  if features.ndim < 2:
    raise UserError(f'{what} has shape {features.shape}: pass examples as '
                    f'[N, *feature_shape]')
  return features


def train_batches(features: np.ndarray, batch_size: int, *, seed: int,
                  start_step: int = 0,
                  mask_sampler: Optional[MaskSampler] = None,
                  mask_seed: Optional[int] = None) -> tf.data.Dataset:
  """An endless, resumable stream of training batches.

  Args:
    features: float32 [N, *feature_shape] (already standardised if wanted).
    batch_size: B; needs N >= B. Each epoch has N // B batches.
    seed: seeds the per-epoch permutations.
    start_step: the first step to produce (resume from a checkpoint's step).
    mask_sampler: see MaskSampler; called with seed [mask_seed, step]. None:
      every feature observed (mask of ones).
    mask_seed: defaults to seed + 1.

  Returns:
    Dataset of {'x': float32 [B, *feature_shape], 'mask': float32
    [B, *feature_shape], 'step': int64 []} for steps start_step, start_step+1,
    ... forever; with NaN in ``features`` also 'observed' (m, float32 of x's
    shape), x is 0 where m is and 'mask' is b * m.

  Under a multi-replica strategy, `experimental_distribute_dataset` cannot
  rebatch the scalar 'step' (it fails with an IndexError): map the elements to
  {'x', 'mask'} before distributing and take the step from the trainer's own
  counter (they agree: element k is step start_step + k).
  """
  features = _as_float32(features, 'training data')
  n = features.shape[0]
  batch_size = int(batch_size)
  if batch_size < 1:
    raise UserError(f'batch_size is {batch_size}: pass a positive batch size')
  if n < batch_size:
    raise UserError(f'batch_size {batch_size} is larger than the {n} training '
                    f'examples: lower the batch size or use more data')
  if start_step < 0:
    raise UserError(f'start_step is {start_step}: pass a step >= 0')
  steps_per_epoch = n // batch_size
  start_epoch, offset = divmod(int(start_step), steps_per_epoch)
  mask_seed = seed + 1 if mask_seed is None else mask_seed
  shape = [batch_size] + list(features.shape[1:])
  missing = np.isnan(features)
  incomplete = bool(missing.any())
  data = tf.constant(np.where(missing, np.float32(0), features))
  observed_data = (tf.constant((~missing).astype(np.float32)) if incomplete
                   else None)

  def epoch_batches(epoch):
    perm = epoch_permutation(n, seed, epoch)[:steps_per_epoch * batch_size]
    return tf.data.Dataset.from_tensor_slices(
        tf.reshape(perm, [steps_per_epoch, batch_size]))

  indices = (tf.data.Dataset.counter(start_epoch)
             .flat_map(epoch_batches)
             .skip(offset))
  steps = tf.data.Dataset.counter(int(start_step))

  def make_batch(step, idx):
    x = tf.gather(data, idx)
    if mask_sampler is None:
      mask = tf.ones(shape, tf.float32)
    else:
      key = tf.stack([tf.constant(mask_seed, tf.int64), step])
      mask = tf.ensure_shape(tf.cast(mask_sampler(shape, key), tf.float32),
                             shape)
    if not incomplete:
      return {'x': x, 'mask': mask, 'step': step}
    observed = tf.gather(observed_data, idx)
    return {'x': x, 'mask': mask * observed, 'observed': observed,
            'step': step}

  return (tf.data.Dataset.zip((steps, indices))
          .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
               deterministic=True)
          .prefetch(tf.data.AUTOTUNE))


def eval_batches(features: np.ndarray, batch_size: int,
                 masks: Optional[np.ndarray] = None,
                 labels: Optional[np.ndarray] = None) -> tf.data.Dataset:
  """One ordered pass over `features`, the last (smaller) batch kept.

  Args:
    features: float32 [N, *feature_shape].
    batch_size: B.
    masks: optional float32 [N, *feature_shape] (1 = observed); default ones.
    labels: optional int [N].

  Returns:
    Dataset of {'x': [b, *feature_shape], 'mask': same, and 'label': int64
    [b] if labels were given}, b = B except possibly for the last batch.
  """
  features = _as_float32(features, 'evaluation data')
  n = features.shape[0]
  if int(batch_size) < 1:
    raise UserError(f'batch_size is {batch_size}: pass a positive batch size')
  elements = {'x': features}
  if masks is not None:
    masks = np.asarray(masks, np.float32)
    if masks.shape != features.shape:
      raise UserError(f'masks have shape {masks.shape} but the data has '
                      f'{features.shape}: give one mask value per feature')
    elements['mask'] = masks
  if labels is not None:
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (n,):
      raise UserError(f'labels have shape {labels.shape}: give one label per '
                      f'example ({n})')
    elements['label'] = labels
  ds = tf.data.Dataset.from_tensor_slices(elements)
  if masks is None:
    ds = ds.map(lambda e: dict(e, mask=tf.ones_like(e['x'])))
  return ds.batch(int(batch_size), drop_remainder=False).prefetch(
      tf.data.AUTOTUNE)
