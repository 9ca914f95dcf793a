"""The in-memory result of loading a dataset: train/test(/validation) arrays."""
import dataclasses
from typing import Any, Optional, Tuple

import numpy as np

from pm_zoo.errors import UserError

KINDS = ('image', 'table')


@dataclasses.dataclass(frozen=True)
class DataSplits:
  """A dataset split into train/test (and optionally validation), in memory.

  Attributes:
    name: a short name for messages and run directories, e.g. 'embedded_digits'.
    kind: 'image' or 'table'.
    train: float32; images [N, H, W, C] scaled to [0, 1]; tables [N, D] in raw
      units (standardise with `Standardizer.from_data(train)`).
    test: float32 [M, *feature_shape].
    validation: optional float32 [V, *feature_shape].
    train_labels: optional int64 [N] class labels, where the source has them.
    test_labels: optional int64 [M].
    feature_names: optional names of the D table columns (a CSV header).
    schema: optional ``pm_zoo.data.schema.TableSchema`` of a table (None:
      every column numeric). Categorical columns hold integer codes.

  Tables may be incomplete: NaN marks a missing cell (the observed-data mask
  m = ~isnan(x) travels with the rows, see ``pm_zoo.data.pipeline``); inf is
  refused. Images must be complete.
  """
  name: str
  kind: str
  train: np.ndarray
  test: np.ndarray
  validation: Optional[np.ndarray] = None
  train_labels: Optional[np.ndarray] = None
  test_labels: Optional[np.ndarray] = None
  feature_names: Optional[Tuple[str, ...]] = None
  schema: Optional[Any] = None

  @property
  def incomplete(self) -> bool:
    """Whether any split has a missing (NaN) cell."""
    return any(bool(np.isnan(a).any()) for _, a in self._arrays())

  @property
  def feature_shape(self) -> Tuple[int, ...]:
    """The shape of one example: (H, W, C) for images, (D,) for tables."""
    return tuple(self.train.shape[1:])

  def __post_init__(self):
    if self.kind not in KINDS:
      raise UserError(f'dataset {self.name!r} has kind {self.kind!r}: '
                      f'kind must be one of {", ".join(KINDS)}')
    want_ndim = 4 if self.kind == 'image' else 2
    for split, array in self._arrays():
      if not isinstance(array, np.ndarray):
        raise UserError(f'dataset {self.name!r} {split} split is a '
                        f'{type(array).__name__}: pass a numpy array')
      if array.dtype != np.float32:
        raise UserError(f'dataset {self.name!r} {split} split has dtype '
                        f'{array.dtype}: convert it to float32')
      if array.ndim != want_ndim:
        raise UserError(
            f'dataset {self.name!r} {split} split has shape {array.shape}: '
            f'{self.kind} data must have {want_ndim} axes '
            f'({"[N, H, W, C]" if self.kind == "image" else "[N, D]"})')
      if array.shape[1:] != self.feature_shape:
        raise UserError(
            f'dataset {self.name!r} {split} split has examples of shape '
            f'{array.shape[1:]} but train has {self.feature_shape}: give every '
            f'split the same features (same columns / image size)')
      if array.shape[0] == 0:
        raise UserError(f'dataset {self.name!r} {split} split is empty: '
                        f'give it at least one example')
      self._check_finite(split, array)
    self._check_labels('train', self.train_labels, self.train)
    self._check_labels('test', self.test_labels, self.test)
    if self.feature_names is not None:
      if self.kind != 'table' or len(self.feature_names) != self.train.shape[1]:
        raise UserError(
            f'dataset {self.name!r} has {len(self.feature_names)} feature '
            f'names for feature shape {self.feature_shape}: give one name per '
            f'table column, or none')

  def _arrays(self):
    yield 'train', self.train
    yield 'test', self.test
    if self.validation is not None:
      yield 'validation', self.validation

  def _check_finite(self, split: str, array: np.ndarray):
    if self.kind == 'table':
      infinite = np.isinf(array)
      if infinite.any():
        raise UserError(
            f'dataset {self.name!r} {split} split has '
            f'{int(infinite.any(axis=1).sum())} of {array.shape[0]} rows with '
            f'inf values: give '
            'finite numbers (an empty cell or NaN marks a missing value)')
      empty = np.isnan(array).all(axis=0)
      if split == 'train' and empty.any():
        j = int(np.argmax(empty))
        name = (f' ({self.feature_names[j]!r})' if self.feature_names
                else '')
        raise UserError(
            f'dataset {self.name!r}: column {j}{name} is entirely empty in '
            'the train split: drop it (drop_columns) or give it values')
      return
    finite = np.isfinite(array).reshape(array.shape[0], -1).all(axis=1)
    bad = int(array.shape[0] - np.count_nonzero(finite))
    if bad:
      raise UserError(
          f'dataset {self.name!r} {split} split has {bad} of '
          f'{array.shape[0]} rows with NaN/inf values: images must be fully '
          f'observed (pm_zoo draws the missingness masks itself); drop or '
          f'impute those images first')

  def _check_labels(self, split: str, labels, array: np.ndarray):
    if labels is None:
      return
    if (not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or
        labels.shape != (array.shape[0],)):
      shape = getattr(labels, 'shape', None)
      dtype = getattr(labels, 'dtype', type(labels).__name__)
      raise UserError(
          f'dataset {self.name!r} {split} labels have shape {shape} and dtype '
          f'{dtype}: give an int64 array with one label per example '
          f'({array.shape[0]})')
