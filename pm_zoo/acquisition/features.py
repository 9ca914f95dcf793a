"""What a "feature" is for acquisition: a table column or an image pixel.

Acquisition observes one feature at a time. For a table ``[D]`` a feature is
a column; for an image ``[H, W, C]`` it is a pixel with all its channels (the
masks' convention: one decision per pixel, broadcast over channels). The
candidates are numbered ``0 .. num_features - 1`` in row-major order of the
unit shape (``[D]`` or ``[H, W]``).
"""
import math
from typing import Sequence, Tuple

import tensorflow as tf

from pm_zoo.errors import UserError


def unit_shape(feature_shape: Sequence[int]) -> Tuple[int, ...]:
  """``[D]`` -> ``(D,)``; ``[H, W, C]`` -> ``(H, W)``."""
  feature_shape = tuple(int(s) for s in feature_shape)
  return feature_shape[:-1] if len(feature_shape) == 3 else feature_shape


def num_features(feature_shape: Sequence[int]) -> int:
  """How many candidates an example has (columns, or pixels)."""
  return int(math.prod(unit_shape(feature_shape)))


def unit_mask(mask: tf.Tensor, feature_shape: Sequence[int]) -> tf.Tensor:
  """``[B, *feature_shape]`` mask -> ``[B, num_features]`` (1 = observed)."""
  if len(feature_shape) == 3:
    mask = mask[..., 0]
  return tf.reshape(mask, [-1, num_features(feature_shape)])


def to_mask(units: tf.Tensor, feature_shape: Sequence[int]) -> tf.Tensor:
  """``[..., num_features]`` -> ``[..., *feature_shape]`` (channels copied)."""
  feature_shape = tuple(int(s) for s in feature_shape)
  lead = tf.shape(units)[:-1]
  out = tf.reshape(units, tf.concat([lead, unit_shape(feature_shape)], 0))
  if len(feature_shape) == 3:
    out = tf.repeat(out[..., tf.newaxis], feature_shape[-1], axis=-1)
  return out


def check_instance(x, mask, feature_shape: Sequence[int], who: str):
  """Refuses masks of the wrong shape and instances with nothing left.

  ``x`` and ``mask`` are NumPy arrays ``[N, *feature_shape]``; returns
  nothing, raises ``UserError`` with a one-line fix.
  """
  feature_shape = tuple(int(s) for s in feature_shape)
  if tuple(x.shape[1:]) != feature_shape:
    raise UserError(f'{who}: instances have shape {list(x.shape[1:])} but the '
                    f'model takes {list(feature_shape)}')
  if tuple(mask.shape) != tuple(x.shape):
    raise UserError(f'{who}: the mask has shape {list(mask.shape)} but x has '
                    f'{list(x.shape)}: give one 0/1 entry per feature '
                    '(1 = observed)')
  units = mask[..., 0] if len(feature_shape) == 3 else mask
  full = units.reshape(len(units), -1).min(axis=1) > 0
  if full.any():
    raise UserError(f'{who}: instance {int(full.argmax())} has every feature '
                    'observed: there is nothing left to acquire')
