"""Mixed-type tables: the encoders' inputs and the decoder's likelihood.

A row of a table is encoded as ``x [D]``, one entry per column
(``pm_zoo.data.schema``): a numeric column holds its (standardised) value, a
categorical column with K categories the integer code k in 0..K-1. The
column layout is given by ``cardinalities`` (K per column, 0 = numeric).

Encoders' inputs (``expand`` / ``observed_input``). The networks see every
categorical cell as a one-hot block of K slots and every numeric cell as one
slot; with a mask (1 = observed, per COLUMN, ``[B, D]``) the input is

  concat( expand(x) * expand(mask), mask )     [B, S + D],

S = sum_j max(K_j, 1) slots: one mask bit per column, so a categorical column
is observed or missing as a whole, and nothing of a missing cell reaches the
network. For an all-numeric table expand is the identity and this is exactly
``concat(x * b, b)``.

Decoder (``MixedTable`` head). ``params_shape = [S]``: a location per numeric
column and K logits per categorical column; the likelihood factorises over
columns,

  log p(x | z) = sum_{j numeric} log N(x_j; mu_j(z), s^2)
               + sum_{j categorical} log softmax(l_j(z))[x_j],

with s a learned scale (one scalar, or one per numeric column), as the
``Gaussian`` head. ``elementwise_log_prob`` gives the per-column terms
``[..., D]`` (what a likelihood restricted to observed cells sums);
``mean()`` is the decoder's point value per column: mu_j for numeric
columns, the most probable code argmax l_j for categorical ones.
"""
import math
from typing import Sequence, Tuple

import gin
import numpy as np
import tensorflow as tf

from pm_zoo.distributions import heads
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras


def slot_layout(cardinalities: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
  """(column of each slot int32 [S], category of each slot int32 [S], -1 for
  a numeric slot)."""
  columns, codes = [], []
  for j, k in enumerate(cardinalities):
    k = int(k)
    if k < 0:
      raise UserError(f'column {j} has cardinality {k}: give 0 (numeric) or '
                      'the number of categories')
    if k == 0:
      columns.append(j)
      codes.append(-1)
    else:
      columns.extend([j] * k)
      codes.extend(range(k))
  return np.asarray(columns, np.int32), np.asarray(codes, np.int32)


def expanded_width(cardinalities: Sequence[int]) -> int:
  """S: numeric columns count 1, categorical ones K."""
  return int(sum(max(int(k), 1) for k in cardinalities))


def expand(x: tf.Tensor, cardinalities: Sequence[int]) -> tf.Tensor:
  """``[..., D]`` encoded rows -> ``[..., S]``: values and one-hot blocks."""
  columns, codes = slot_layout(cardinalities)
  gathered = tf.gather(x, columns, axis=-1)
  if (codes < 0).all():
    return gathered
  codes = tf.constant(codes, x.dtype)
  one_hot = tf.cast(tf.equal(tf.round(gathered), codes), x.dtype)
  return tf.where(codes >= 0, one_hot, gathered)


def expand_mask(mask: tf.Tensor, cardinalities: Sequence[int]) -> tf.Tensor:
  """A per-column mask ``[..., D]`` -> per-slot ``[..., S]``."""
  columns, _ = slot_layout(cardinalities)
  return tf.gather(mask, columns, axis=-1)


def observed_input(x: tf.Tensor, mask: tf.Tensor,
                   cardinalities: Sequence[int]) -> tf.Tensor:
  """``concat(expand(x) * expand(mask), mask)``, ``[..., S + D]``."""
  mask = tf.cast(mask, x.dtype)
  return tf.concat([expand(x, cardinalities) *
                    expand_mask(mask, cardinalities), mask], axis=-1)


def has_categorical(cardinalities) -> bool:
  return cardinalities is not None and any(int(k) > 0 for k in cardinalities)


class MixedTableDistribution:
  """p(x | z) of ``MixedTable``: batch shape ``params.shape[:-1]``, event [D].

  Not a ``tfd.Distribution`` (its event mixes reals and codes); it has what
  the tasks use: ``log_prob``, ``elementwise_log_prob``, ``mean``,
  ``sample`` and ``probs`` (per categorical column).
  """

  def __init__(self, params: tf.Tensor, scale: tf.Tensor,
               cardinalities: Sequence[int]):
    self.params = params
    self.cardinalities = tuple(int(k) for k in cardinalities)
    columns, codes = slot_layout(self.cardinalities)
    self._numeric_slots = np.flatnonzero(codes < 0).astype(np.int32)
    self._numeric_columns = columns[codes < 0]
    self._scale = scale  # [num_numeric] or scalar
    self._blocks = []  # (column, first slot, K)
    start = 0
    for j, k in enumerate(self.cardinalities):
      if k:
        self._blocks.append((j, start, k))
      start += max(k, 1)

  @property
  def event_size(self) -> int:
    return len(self.cardinalities)

  def _scatter(self, numeric: tf.Tensor, categorical) -> tf.Tensor:
    """Per-column values [..., D] from numeric [..., n] and a list of
    (column, [...]) for the categorical columns."""
    parts = [None] * self.event_size
    for i, j in enumerate(self._numeric_columns):
      parts[j] = numeric[..., i]
    for j, value in categorical:
      parts[j] = value
    return tf.stack(parts, axis=-1)

  def logits(self, j_block: int) -> tf.Tensor:
    _, start, k = self._blocks[j_block]
    return self.params[..., start:start + k]

  def elementwise_log_prob(self, x: tf.Tensor) -> tf.Tensor:
    """log p(x_j | z) per column, ``batch + [D]``."""
    x = tf.convert_to_tensor(x, self.params.dtype)
    loc = tf.gather(self.params, self._numeric_slots, axis=-1)
    value = tf.gather(x, self._numeric_columns, axis=-1)
    scale = tf.cast(self._scale, loc.dtype)
    numeric = (-0.5 * tf.square((value - loc) / scale) - tf.math.log(scale)
               - 0.5 * math.log(2.0 * math.pi))
    categorical = []
    for i, (j, _, k) in enumerate(self._blocks):
      code = tf.cast(tf.clip_by_value(tf.round(x[..., j]), 0, k - 1),
                     tf.int32)
      log_probs = tf.nn.log_softmax(self.logits(i), axis=-1)
      categorical.append((j, tf.reduce_sum(
          tf.one_hot(code, k, dtype=log_probs.dtype) * log_probs, axis=-1)))
    return self._scatter(numeric, categorical)

  def log_prob(self, x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(self.elementwise_log_prob(x), axis=-1)

  def mean(self) -> tf.Tensor:
    """mu_j for numeric columns, the most probable code for categorical."""
    loc = tf.gather(self.params, self._numeric_slots, axis=-1)
    categorical = [(j, tf.cast(tf.argmax(self.logits(i), axis=-1),
                               self.params.dtype))
                   for i, (j, _, _) in enumerate(self._blocks)]
    return self._scatter(loc, categorical)

  def probs(self):
    """[(column, probabilities batch + [K])] of the categorical columns."""
    return [(j, tf.nn.softmax(self.logits(i), axis=-1))
            for i, (j, _, _) in enumerate(self._blocks)]

  def sample(self, seed) -> tf.Tensor:
    """One draw per batch element (stateless ``seed`` int32 [2])."""
    loc = tf.gather(self.params, self._numeric_slots, axis=-1)
    noise = tf.random.stateless_normal(tf.shape(loc), seed, dtype=loc.dtype)
    numeric = loc + tf.cast(self._scale, loc.dtype) * noise
    categorical = []
    for i, (j, _, k) in enumerate(self._blocks):
      logits = self.logits(i)
      flat = tf.reshape(logits, [-1, k])
      draw = tf.random.stateless_categorical(
          flat, 1, tf.random.experimental.stateless_fold_in(seed, i + 1))
      categorical.append((j, tf.cast(tf.reshape(draw, tf.shape(logits)[:-1]),
                                     logits.dtype)))
    return self._scatter(numeric, categorical)


@gin.configurable
class MixedTable(heads.DistributionHead):
  """p(x | z) over a row of numeric and categorical columns (module doc).

  Args:
    event_shape: ``[D]``, the columns.
    cardinalities: K per column (0 = numeric), D entries.
    scale: 'scalar' (one learned s, the paper's tabular decoder) or
      'feature' (one per numeric column).
    init_scale, min_scale: s = softplus(raw) + min_scale, starting at
      init_scale.
  """

  def __init__(self, event_shape, cardinalities: Sequence[int] = (),
               scale: str = 'scalar', init_scale: float = 1.0,
               min_scale: float = 1e-3, **kwargs):
    super().__init__(event_shape, **kwargs)
    if len(self.event_shape) != 1:
      raise UserError(f'MixedTable is over table rows; got event shape '
                      f'{list(self.event_shape)}')
    self.cardinalities = tuple(int(k) for k in cardinalities)
    if len(self.cardinalities) != self.event_shape[0]:
      raise UserError(f'MixedTable has {len(self.cardinalities)} '
                      f'cardinalities for {self.event_shape[0]} columns: give '
                      'one per column')
    if scale not in ('scalar', 'feature'):
      raise UserError(f"MixedTable.scale must be 'scalar' or 'feature', got "
                      f'{scale!r}')
    if init_scale <= min_scale:
      raise UserError(f'MixedTable.init_scale ({init_scale}) must exceed '
                      f'min_scale ({min_scale})')
    self.min_scale = min_scale
    numeric = sum(1 for k in self.cardinalities if k == 0)
    shape = () if scale == 'scalar' else (max(numeric, 1),)
    self.raw_scale = self.add_weight(
        name='raw_scale', shape=shape,
        initializer=keras.initializers.Constant(
            math.log(math.expm1(init_scale - min_scale))), trainable=True)

  @property
  def params_shape(self):
    return (expanded_width(self.cardinalities),)

  def distribution(self, params) -> MixedTableDistribution:
    params = self._check_params(params)
    scale = tf.nn.softplus(tf.cast(self.raw_scale, params.dtype)) + \
        self.min_scale
    return MixedTableDistribution(params, scale, self.cardinalities)
