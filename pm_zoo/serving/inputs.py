"""Checks of user data before it reaches a model, with one-line errors.

The user-facing entry points (``PosteriorMatchingImputer``, ``pm-impute``)
take tables ``[N, D]`` where NaN means missing; an infinite value is an
error (there is no way to keep it), as is a mask that is not 0/1 or not of
the data's shape. Each check raises ``UserError`` naming what to fix.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from pm_zoo.data import schema as schema_lib
from pm_zoo.errors import UserError


def as_table(values, what: str = 'X') -> np.ndarray:
  """``values`` as a non-empty float64 ``[N, D]`` array (NaN kept)."""
  try:
    table = np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise UserError(f'{what} is not numeric ({e}): give numbers, with NaN '
                    'for missing values') from None
  schema_lib.require_table_shape(table, what)
  return table


def check_width(columns: int, feature_shape: Sequence[int],
                what: str = 'X') -> None:
  """Refuses ``columns`` per row unless the model takes rows of that size."""
  if len(feature_shape) != 1:
    raise UserError(f'the model takes examples of shape {list(feature_shape)}, '
                    'not table rows: use its SavedModel signatures directly')
  if columns != feature_shape[0]:
    raise UserError(f'{what} has {columns} columns but the model was trained '
                    f'on {feature_shape[0]}: give the same columns, in the '
                    'same order')


def first_bad(bad: np.ndarray) -> Tuple[int, int]:
  """(row, column) of the first True entry of a 2-D boolean array."""
  row, column = np.argwhere(bad)[0]
  return int(row), int(column)


def missing_mask(table: np.ndarray, what: str = 'X',
                 row_names: Optional[Sequence[str]] = None) -> np.ndarray:
  """The mask of a table, float32: 0 where NaN (missing), 1 elsewhere.

  Raises ``UserError`` on +-inf. ``row_names`` (e.g. CSV line numbers)
  name the rows in the message instead of their 0-based index.
  """
  infinite = np.isinf(table)
  if infinite.any():
    row, column = first_bad(infinite)
    where = (row_names[row] if row_names is not None else f'row {row}')
    raise UserError(f'{what} holds {int(infinite.sum())} infinite values '
                    f'(first at {where}, column {column + 1}): give finite '
                    'numbers, or leave a value empty/NaN to impute it')
  return (~np.isnan(table)).astype(np.float32)


def refuse_missing(table: np.ndarray, what: str) -> None:
  """Refuses NaN or inf anywhere (data that must be fully observed)."""
  bad = ~np.isfinite(table)
  if bad.any():
    rows = int(bad.any(axis=1).sum())
    raise UserError(f'{what} must be fully observed (for now): {rows} of '
                    f'{len(table)} rows have NaN or inf values; drop or fill '
                    'those rows first')


def check_mask(mask, table: np.ndarray) -> np.ndarray:
  """A 0/1 mask of ``table``'s shape as float32, else ``UserError``."""
  try:
    mask = np.asarray(mask, dtype=np.float32)
  except (TypeError, ValueError) as e:
    raise UserError(f'the mask is not numeric ({e}): give 0 (missing) and 1 '
                    '(observed) per value') from None
  if mask.shape != table.shape:
    raise UserError(f'the mask has shape {list(mask.shape)} but X has '
                    f'{list(table.shape)}: give one 0/1 entry per value of X')
  if not np.all((mask == 0) | (mask == 1)):
    raise UserError('the mask must hold only 0 (missing) and 1 (observed)')
  return mask
