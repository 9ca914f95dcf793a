"""Per-feature standardisation, fitted on the training split, saved as JSON."""
import json
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from pm_zoo.errors import UserError

# Features whose training std is below this are constant for all purposes;
# they get std 1 so that transform() stays finite.
MIN_STD = 1e-6


class Standardizer:
  """Maps x to (x - mean) / std per feature, and back.

  `mean` and `std` are float32 arrays of the feature shape (e.g. [D] for a
  table, [H, W, C] for images), so they broadcast against batches
  [B, *feature_shape]. `transform` and `inverse_transform` use plain arithmetic
  and therefore work on numpy arrays and on float32 tf tensors alike (also
  inside a tf.function).
  """

  def __init__(self, mean, std, constant=None):
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    self._constant = (np.zeros(mean.shape, bool) if constant is None
                      else np.asarray(constant, bool).reshape(mean.shape))
    if mean.shape != std.shape:
      raise UserError(f'standardizer mean has shape {mean.shape} but std has '
                      f'{std.shape}: give both the feature shape')
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and
            np.all(std > 0)):
      raise UserError('standardizer has non-finite mean/std or std <= 0: '
                      'refit it with Standardizer.from_data(train)')
    self._mean = mean
    self._std = std

  @classmethod
  def from_data(cls, train: np.ndarray,
                passthrough: Optional[Sequence[int]] = None
                ) -> 'Standardizer':
    """Fits mean and std per feature on `train` [N, *feature_shape] only.

    NaN entries are missing cells: the statistics come from the observed
    cells only (a complete table gives exactly the plain mean and std).
    Features with std < MIN_STD (constant columns) get std 1 and are marked
    ``constant``. ``passthrough``: table columns left as they are (mean 0,
    std 1; categorical codes).
    """
    train = np.asarray(train)
    if train.ndim < 2 or train.shape[0] == 0:
      raise UserError(f'cannot fit a standardizer on data of shape '
                      f'{train.shape}: pass the training split [N, ...]')
    # Accumulate in float64: float32 sums over many rows lose precision.
    if np.isnan(train).any():
      train = np.asarray(train, np.float64)
      if np.isnan(train).all(axis=0).any():
        raise UserError('a feature has no observed value in the training '
                        'split: drop that column')
      mean = np.nanmean(train, axis=0)
      std = np.nanstd(train, axis=0)
    else:
      mean = train.mean(axis=0, dtype=np.float64)
      std = train.std(axis=0, dtype=np.float64)
    constant = std < MIN_STD
    std = np.where(constant, 1.0, std)
    if passthrough:
      index = list(passthrough)
      mean[..., index], std[..., index] = 0.0, 1.0
      constant[..., index] = False
    return cls(mean, std, constant if constant.any() else None)

  @classmethod
  def identity(cls, feature_shape: Sequence[int]) -> 'Standardizer':
    """The standardizer that changes nothing (mean 0, std 1)."""
    shape = tuple(int(d) for d in feature_shape)
    return cls(np.zeros(shape, np.float32), np.ones(shape, np.float32))

  @property
  def mean(self) -> np.ndarray:
    """float32 [*feature_shape]."""
    return self._mean

  @property
  def std(self) -> np.ndarray:
    """float32 [*feature_shape], floored (constant features have 1)."""
    return self._std

  @property
  def constant(self) -> np.ndarray:
    """bool [*feature_shape]: features that were constant in training (their
    imputations are that constant, the mean)."""
    return self._constant

  @property
  def scale(self) -> np.ndarray:
    """float32 [*feature_shape]: the unit of a standardised feature in raw
    units. An error measured in standardised units is already divided by it,
    i.e. normalised as in NRMSE; multiply by it to go back to raw units."""
    return self._std

  @property
  def feature_shape(self):
    return self._mean.shape

  def transform(self, x):
    """Raw -> standardised. x: [..., *feature_shape], numpy or tf float32."""
    return (x - self._mean) / self._std

  def inverse_transform(self, z):
    """Standardised -> raw. z: [..., *feature_shape], numpy or tf float32."""
    return z * self._std + self._mean

  def to_dict(self) -> Dict[str, Any]:
    out = {
        'feature_shape': list(self.feature_shape),
        'mean': self._mean.reshape(-1).tolist(),
        'std': self._std.reshape(-1).tolist(),
    }
    if self._constant.any():
      out['constant'] = self._constant.reshape(-1).tolist()
    return out

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> 'Standardizer':
    try:
      shape = tuple(int(s) for s in d['feature_shape'])
      mean = np.asarray(d['mean'], np.float32).reshape(shape)
      std = np.asarray(d['std'], np.float32).reshape(shape)
      constant = d.get('constant')
      if constant is not None:
        constant = np.asarray(constant, bool).reshape(shape)
    except (KeyError, TypeError, ValueError) as e:
      raise UserError(f'standardizer data is malformed ({e}): expected keys '
                      f'feature_shape, mean, std as written by '
                      f'Standardizer.save') from None
    return cls(mean, std, constant)

  def save(self, path: str) -> None:
    """Writes JSON atomically: to path + '.tmp', then renames over `path`."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(self.to_dict(), f)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> 'Standardizer':
    if not os.path.isfile(path):
      raise UserError(f'standardizer file {path} does not exist: pass the '
                      f'standardizer.json written with the model')
    try:
      with open(path) as f:
        d = json.load(f)
    except (OSError, ValueError) as e:
      raise UserError(f'standardizer file {path} is not valid JSON ({e}): '
                      f'rewrite it with Standardizer.save') from None
    return cls.from_dict(d)

  def __eq__(self, other):
    return (isinstance(other, Standardizer) and
            np.array_equal(self._mean, other._mean) and
            np.array_equal(self._std, other._std) and
            np.array_equal(self._constant, other._constant))

  def __repr__(self):
    return f'Standardizer(feature_shape={self.feature_shape})'
