"""Column schema of a table: which columns are numeric and which categorical.

A real table mixes column types. pm_zoo models one encoded row ``x [D]``,
one entry per column:

* ``numeric``: the value (standardised, Gaussian likelihood);
* ``integer``: numeric, rounded back to an integer when decoded
  (counts, ordinal scores, years);
* ``categorical``: the integer code ``k`` of the category
  ``categories[k]`` (one categorical likelihood with ``K`` logits; in the
  encoders' inputs a one-hot block of ``K`` plus ONE mask bit for the column,
  so a categorical column is observed or missing as a whole).

A missing cell is NaN in the encoded table, whatever the kind. The schema is
inferred from a pandas DataFrame, an object / numeric NumPy array, or the
cells of a CSV file, with user overrides (``{'column': 'categorical'}``),
stored with the run (``schema.json``) and in every SavedModel
(``assets.extra/pm_zoo_schema.json``), and used to give results back in the
input's own types and category strings.

Inference rules (``max_categories`` bounds what counts as "few"):

=====================================  ==========================
input column                           kind
=====================================  ==========================
bool, pandas ``category``              categorical
float                                  numeric
int (NumPy or pandas nullable Int*)    integer
text / object with <= max_categories   categorical
  distinct values
text with more                         error: drop it or override
datetime                               error: convert to numbers
entirely empty                         error: drop it
CSV column: every cell a number        numeric (declare integer
                                       columns with an override)
CSV column: every cell text            categorical
CSV column: numbers and text mixed     error naming both lines
=====================================  ==========================

Categories are the distinct non-missing values, sorted (a pandas
``category`` dtype keeps its own order; booleans are ``[False, True]``).
"""
import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from pm_zoo.errors import UserError

NUMERIC, INTEGER, CATEGORICAL = 'numeric', 'integer', 'categorical'
KINDS = (NUMERIC, INTEGER, CATEGORICAL)
MAX_CATEGORIES = 50
SCHEMA_FILE = 'schema.json'
UNKNOWN_POLICIES = ('error', 'missing')

# Cells of a text file read as missing, compared lower-cased and stripped
# (the same set as the numeric reader's).
MISSING_TEXT = frozenset(['', 'na', 'nan', 'n/a', '?', 'null', 'none',
                          '<na>'])


@dataclasses.dataclass(frozen=True)
class Column:
  """One column of a table.

  Attributes:
    name: its name (a DataFrame column, a CSV header cell, or ``c<j>``).
    kind: one of KINDS.
    categories: the values of a categorical column, code k = categories[k]
      (JSON values: str, int, float or bool); () otherwise.
    dtype: the input's dtype name (``float64``, ``int64``, ``Int64``,
      ``bool``, ``category``, ``object``, ``str``, ``text`` for a CSV
      cell), so that results come back in it.
  """
  name: str
  kind: str
  categories: Tuple[Any, ...] = ()
  dtype: str = 'float64'

  @property
  def cardinality(self) -> int:
    """K for a categorical column, 0 for a numeric or integer one."""
    return len(self.categories) if self.kind == CATEGORICAL else 0

  def to_dict(self) -> Dict[str, Any]:
    out = {'name': self.name, 'kind': self.kind, 'dtype': self.dtype}
    if self.kind == CATEGORICAL:
      out['categories'] = [_json_value(c) for c in self.categories]
    return out


def _json_value(value):
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    return float(value)
  return str(value)


class TableSchema:
  """The columns of a table, in order; encodes and decodes rows.

  ``encode`` maps a table to float64 ``[N, D]`` (codes for categorical
  columns, NaN = missing); ``decode`` maps an encoded table back to the
  input's kind (DataFrame with the original dtypes, or a NumPy array).
  """

  def __init__(self, columns: Sequence[Column]):
    self.columns = tuple(columns)
    if not self.columns:
      raise UserError('a table schema needs at least one column')
    names = [c.name for c in self.columns]
    if len(set(names)) != len(names):
      dup = sorted({n for n in names if names.count(n) > 1})
      raise UserError(f'the table has duplicate column names {dup}: give '
                      'every column its own name')
    for c in self.columns:
      if c.kind not in KINDS:
        raise UserError(f'column {c.name!r} has kind {c.kind!r}: use one of '
                        f'{", ".join(KINDS)}')
      if c.kind == CATEGORICAL and len(c.categories) < 1:
        raise UserError(f'categorical column {c.name!r} has no categories: '
                        'give it at least one observed value')

  # ------------------------------------------------------------ properties
  @property
  def names(self) -> Tuple[str, ...]:
    return tuple(c.name for c in self.columns)

  @property
  def kinds(self) -> Tuple[str, ...]:
    return tuple(c.kind for c in self.columns)

  @property
  def cardinalities(self) -> Tuple[int, ...]:
    """Per column: K for categorical, 0 otherwise (what the model needs)."""
    return tuple(c.cardinality for c in self.columns)

  @property
  def width(self) -> int:
    return len(self.columns)

  @property
  def numeric_only(self) -> bool:
    return all(c.kind != CATEGORICAL for c in self.columns)

  def indices(self, *kinds: str) -> List[int]:
    return [j for j, c in enumerate(self.columns) if c.kind in kinds]

  def __eq__(self, other):
    return isinstance(other, TableSchema) and self.to_dict() == other.to_dict()

  def __repr__(self):
    return ('TableSchema(' + ', '.join(f'{c.name}:{c.kind}'
                                       for c in self.columns) + ')')

  # ------------------------------------------------------------ encode
  def encode(self, table, what: str = 'X', unknown: str = 'error',
             check_names: bool = True) -> np.ndarray:
    """A table (DataFrame, array, list of rows) -> float64 ``[N, D]``.

    Missing (NaN, None, pd.NA, NaT, the text markers) -> NaN. A category
    never seen in fit: ``unknown='error'`` raises a UserError naming the
    column and value; ``unknown='missing'`` treats the cell as missing (it
    is then imputed).
    """
    if unknown not in UNKNOWN_POLICIES:
      raise UserError(f'handle_unknown={unknown!r}: use one of '
                      f'{", ".join(UNKNOWN_POLICIES)}')
    columns = _columns_of(table, what)
    if len(columns) != self.width:
      raise UserError(f'{what} has {len(columns)} columns but the model was '
                      f'trained on {self.width}: give the same columns, in '
                      'the same order')
    frame_names = _frame_names(table)
    if (check_names and frame_names is not None and
        tuple(str(n) for n in frame_names) != self.names):
      raise UserError(f'{what} has the columns {list(frame_names)} but the '
                      f'model was trained on {list(self.names)}: give the '
                      'same columns, in the same order')
    out = np.empty((len(columns[0]) if columns else 0, self.width),
                   np.float64)
    for j, (column, values) in enumerate(zip(self.columns, columns)):
      out[:, j] = _encode_column(column, values, what, unknown)
    return out

  # ------------------------------------------------------------ decode
  def decode(self, encoded: np.ndarray, like=None):
    """Encoded ``[N, D]`` (finite) -> the kind of ``like``.

    ``like`` a DataFrame: a DataFrame with its index, columns and each
    column's original dtype (categories as strings, booleans, ...). Else a
    NumPy array: float64 if the schema is numeric-only (integers rounded),
    else an object array holding the categories.
    """
    encoded = np.asarray(encoded, np.float64)
    values = [self._decode_column(c, encoded[..., j])
              for j, c in enumerate(self.columns)]
    if _is_frame(like):
      import pandas as pd  # pylint: disable=g-import-not-at-top
      data = {}
      for c, v, name in zip(self.columns, values, like.columns):
        data[name] = _restore_dtype(pd, c, v, like[name].dtype)
      return pd.DataFrame(data, index=like.index, columns=like.columns)
    if self.numeric_only:
      return np.stack(values, axis=-1).astype(np.float64)
    return np.stack([np.asarray(v, object) for v in values], axis=-1)

  def _decode_column(self, column: Column, values: np.ndarray):
    if column.kind == NUMERIC:
      return values
    if column.kind == INTEGER:
      return np.round(values)
    codes = np.clip(np.round(values), 0, column.cardinality - 1).astype(int)
    categories = np.asarray(column.categories + (None,), object)[:-1]
    return categories[codes]

  def round_trip_numeric(self, encoded: np.ndarray) -> np.ndarray:
    """Encoded values with integers rounded and codes snapped to valid codes
    (float64, the form ``pm-eval`` and the benchmark score)."""
    encoded = np.array(encoded, np.float64)
    for j, c in enumerate(self.columns):
      if c.kind == INTEGER:
        encoded[..., j] = np.round(encoded[..., j])
      elif c.kind == CATEGORICAL:
        encoded[..., j] = np.clip(np.round(encoded[..., j]), 0,
                                  c.cardinality - 1)
    return encoded

  # ------------------------------------------------------------ persistence
  def to_dict(self) -> Dict[str, Any]:
    return {'columns': [c.to_dict() for c in self.columns]}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> 'TableSchema':
    try:
      return cls([Column(name=str(c['name']), kind=str(c['kind']),
                         categories=tuple(c.get('categories', ())),
                         dtype=str(c.get('dtype', 'float64')))
                  for c in d['columns']])
    except (KeyError, TypeError) as e:
      raise UserError(f'the table schema is malformed ({e}): expected '
                      '{"columns": [{"name", "kind", ...}]} as written by '
                      'TableSchema.save') from None

  def save(self, path: str) -> None:
    """Writes JSON atomically (path + '.tmp', then a rename)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(self.to_dict(), f, indent=1)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> 'TableSchema':
    try:
      with open(path) as f:
        return cls.from_dict(json.load(f))
    except (OSError, ValueError) as e:
      raise UserError(f'cannot read the table schema {path} ({e}): rewrite '
                      'it with TableSchema.save') from None

  @classmethod
  def numeric(cls, width: int, names: Optional[Sequence[str]] = None
              ) -> 'TableSchema':
    """Every column numeric (what a float table has always been)."""
    names = list(names) if names else [f'c{j}' for j in range(width)]
    return cls([Column(n, NUMERIC) for n in names])


# ---------------------------------------------------------------- inference


def infer(table, overrides: Optional[Mapping[str, str]] = None,
          max_categories: int = MAX_CATEGORIES, what: str = 'X'
          ) -> TableSchema:
  """The schema of a DataFrame, a NumPy array or a list of rows.

  Args:
    table: the training table.
    overrides: ``{column name (or index): kind}`` that replace the inferred
      kinds; a name the table does not have is an error.
    max_categories: a text column with more distinct values is refused.
    what: the table's name in messages.
  """
  columns = _columns_of(table, what)
  names = _frame_names(table)
  names = ([str(n) for n in names] if names is not None
           else [f'c{j}' for j in range(len(columns))])
  overrides = _check_overrides(overrides, names)
  dtypes = _dtypes_of(table, len(columns))
  return TableSchema([
      _infer_column(name, values, dtype, overrides.get(name), max_categories,
                    what)
      for name, values, dtype in zip(names, columns, dtypes)])


def infer_from_cells(names: Sequence[str], rows: Sequence[Sequence[str]],
                     line_numbers: Sequence[int], path: str,
                     overrides: Optional[Mapping[str, str]] = None,
                     max_categories: int = MAX_CATEGORIES) -> TableSchema:
  """The schema of a text table's cells (see the module doc's CSV rules)."""
  overrides = _check_overrides(overrides, list(names))
  columns = []
  for j, name in enumerate(names):
    kind = overrides.get(name)
    number_line = text_line = None
    distinct = set()
    for row, line in zip(rows, line_numbers):
      cell = row[j].strip()
      if cell.lower() in MISSING_TEXT:
        continue
      distinct.add(cell)
      if kind == CATEGORICAL:
        continue
      value = _number(cell)
      if value is None:
        text_line = text_line or (line, cell)
      else:
        number_line = number_line or (line, cell)
      if number_line and text_line and kind is None:
        raise UserError(
            f'{path}: column {name!r} changes type: line {number_line[0]} '
            f'holds the number {number_line[1]!r} but line {text_line[0]} the '
            f'text {text_line[1]!r}; make the column consistent, or declare '
            f'it categorical (column_types={{{name!r}: "categorical"}})')
    if not distinct:
      raise UserError(f'{path}: column {name!r} is entirely empty: drop it '
                      '(drop_columns) or give it values')
    if kind is None:
      kind = CATEGORICAL if text_line else NUMERIC
    if kind in (NUMERIC, INTEGER):
      if text_line:
        raise UserError(f'{path}: column {name!r} is declared {kind} but '
                        f'line {text_line[0]} holds the text '
                        f'{text_line[1]!r}: declare it categorical')
      columns.append(Column(name, kind, dtype='text'))
      continue
    categories = _sorted_categories(list(distinct))
    if len(categories) > max_categories and name not in overrides:
      raise UserError(
          f'{path}: column {name!r} holds {len(categories)} distinct text '
          f'values (more than max_categories={max_categories}): drop it '
          '(drop_columns), or raise max_categories')
    columns.append(Column(name, CATEGORICAL, tuple(categories), 'text'))
  return TableSchema(columns)


def _check_overrides(overrides, names: Sequence[str]) -> Dict[str, str]:
  out = {}
  for key, kind in dict(overrides or {}).items():
    name = key
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
      if not 0 <= key < len(names):
        raise UserError(f'column_types names column index {key}, out of '
                        f'range for {len(names)} columns: use 0..'
                        f'{len(names) - 1} or a column name')
      name = names[key]
    name = str(name)
    if name not in names:
      raise UserError(f'column_types names column {name!r}, which the table '
                      f'does not have: use one of {", ".join(names)}')
    if kind not in KINDS:
      raise UserError(f'column_types[{name!r}] = {kind!r}: use one of '
                      f'{", ".join(KINDS)}')
    out[name] = kind
  return out


def _number(cell: str) -> Optional[float]:
  try:
    return float(cell)
  except ValueError:
    return None


def _sorted_categories(values: List[Any]) -> List[Any]:
  try:
    return sorted(values)
  except TypeError:  # Mixed types: order by their text.
    return sorted(values, key=str)


def _is_frame(table) -> bool:
  return type(table).__name__ == 'DataFrame' and hasattr(table, 'iloc')


def _frame_names(table) -> Optional[List[Any]]:
  if _is_frame(table):
    return list(table.columns)
  return None


def _columns_of(table, what: str) -> List[Any]:
  """The table's columns: pandas Series for a DataFrame, else 1-D arrays."""
  if _is_frame(table):
    if table.shape[0] == 0 or table.shape[1] == 0:
      raise UserError(f'{what} has shape {list(table.shape)}: give at least '
                      'one row and one column')
    return [table.iloc[:, j] for j in range(table.shape[1])]
  array = np.asarray(table)
  if array.dtype.kind not in 'biufO' and array.dtype.kind not in 'US':
    raise UserError(f'{what} has dtype {array.dtype}: give numbers, text or '
                    'a pandas DataFrame')
  require_table_shape(array, what)
  return [array[:, j] for j in range(array.shape[1])]


def _dtypes_of(table, width: int) -> List[Any]:
  if _is_frame(table):
    return list(table.dtypes)
  return [np.asarray(table).dtype] * width


def _is_missing(value) -> bool:
  if value is None:
    return True
  if isinstance(value, (float, np.floating)):
    return math.isnan(value)
  if isinstance(value, str):
    return value.strip().lower() in MISSING_TEXT
  try:
    import pandas as pd  # pylint: disable=g-import-not-at-top
    return bool(pd.isna(value)) if np.ndim(value) == 0 else False
  except (ImportError, TypeError, ValueError):
    return False


def _dtype_name(dtype) -> str:
  return str(getattr(dtype, 'name', dtype))


def _infer_column(name, values, dtype, kind, max_categories, what) -> Column:
  dtype_name = _dtype_name(dtype)
  kind_char = getattr(dtype, 'kind', 'O')
  if kind_char == 'M' or dtype_name.startswith(('datetime', 'timedelta')):
    raise UserError(f'{what}: column {name!r} holds dates ({dtype_name}): '
                    f'convert it to numbers (e.g. df[{name!r}].dt.year) or '
                    'drop it')
  missing = np.array([_is_missing(v) for v in values], bool)
  if missing.all():
    raise UserError(f'{what}: column {name!r} is entirely empty: drop it or '
                    'give it values')
  present = [v for v, m in zip(list(values), missing) if not m]
  if dtype_name == 'category':
    categories = tuple(_json_value(c) for c in values.cat.categories)
    if kind in (None, CATEGORICAL):
      return Column(name, CATEGORICAL, categories, 'category')
  if kind is None:
    if kind_char == 'b' or dtype_name == 'boolean':
      kind = CATEGORICAL
    elif kind_char == 'f' or dtype_name.startswith('Float'):
      kind = NUMERIC
    elif kind_char in 'iu' or dtype_name.startswith(('Int', 'UInt')):
      kind = INTEGER
    elif all(isinstance(v, (bool, np.bool_)) for v in present):
      kind = CATEGORICAL
    elif all(isinstance(v, (int, float, np.integer, np.floating))
             for v in present):
      kind = (INTEGER if all(float(v).is_integer() for v in present)
              else NUMERIC)
    else:
      kind = CATEGORICAL
      distinct = len(set(present))
      if distinct > max_categories:
        raise UserError(
            f'{what}: column {name!r} holds {distinct} distinct text values '
            f'(more than max_categories={max_categories}): drop it, or raise '
            'max_categories')
  if kind in (NUMERIC, INTEGER):
    try:
      np.asarray([float(v) for v in present], np.float64)
    except (TypeError, ValueError):
      raise UserError(f'{what}: column {name!r} is declared {kind} but holds '
                      f'non-numbers such as {present[0]!r}: declare it '
                      'categorical') from None
    return Column(name, kind, dtype=dtype_name)
  categories = tuple(_json_value(v) for v in
                     _sorted_categories(list({_json_value(v)
                                              for v in present})))
  return Column(name, CATEGORICAL, categories, dtype_name)


def _encode_column(column: Column, values, what: str,
                   unknown: str) -> np.ndarray:
  values = list(values)
  missing = np.array([_is_missing(v) for v in values], bool)
  out = np.full(len(values), np.nan)
  if column.kind in (NUMERIC, INTEGER):
    for i, (v, m) in enumerate(zip(values, missing)):
      if m:
        continue
      try:
        out[i] = float(v)
      except (TypeError, ValueError):
        raise UserError(f'{what}: column {column.name!r} row {i} holds {v!r}, '
                        'which is not numeric, but the column is: give a '
                        'number or a missing value') from None
    if np.isinf(out).any():
      row = int(np.argmax(np.isinf(out)))
      raise UserError(f'{what}: column {column.name!r} row {row} is infinite:'
                      ' give a finite number, or leave it empty to impute it')
    return out
  codes, texts = {}, {}
  for k, c in enumerate(column.categories):
    codes[_key(c)] = k
    texts.setdefault(str(_json_value(c)).strip(), k)
  for i, (v, m) in enumerate(zip(values, missing)):
    if m:
      continue
    code = codes.get(_key(v))
    if code is None and isinstance(v, str):  # A CSV cell: match by text.
      code = texts.get(v.strip())
    if code is None:
      if unknown == 'missing':
        continue
      raise UserError(
          f'{what}: column {column.name!r} row {i} holds {v!r}, a category '
          f'not seen in fit (known: {list(column.categories)[:10]}): fix it, '
          "or pass handle_unknown='missing' to impute such cells")
    out[i] = code
  return out


def _key(value):
  """Category lookup key: text stripped; numbers and bools by value, so that
  a CSV's '1' matches a code fitted from the int 1 only as text."""
  value = _json_value(value)
  if isinstance(value, str):
    return ('s', value.strip())
  if isinstance(value, bool):
    return ('b', value)
  if isinstance(value, float) and value.is_integer():
    return ('n', int(value))
  return ('n', value)


def _restore_dtype(pd, column: Column, values, original_dtype):
  """A decoded column in the input column's dtype (no missing left)."""
  name = _dtype_name(original_dtype)
  if column.kind == CATEGORICAL:
    if name == 'category':
      return pd.Categorical(list(values),
                            categories=original_dtype.categories)
    try:
      return pd.array(list(values), dtype=original_dtype)
    except (TypeError, ValueError):
      return pd.array(list(values), dtype=object)
  try:
    return pd.array(np.asarray(values, np.float64), dtype=original_dtype) if (
        name not in ('object',)) else np.asarray(values, np.float64)
  except (TypeError, ValueError):
    return np.asarray(values, np.float64)


def read_run_schema(model_dir: str) -> Optional[TableSchema]:
  """The schema stored in a run directory, or None (a run from before
  schemas, whose columns are all numeric)."""
  path = os.path.join(model_dir, SCHEMA_FILE)
  return TableSchema.load(path) if os.path.exists(path) else None


def require_table_shape(array: np.ndarray, what: str) -> None:
  """A one-line UserError unless ``array`` is 2-D with rows and columns."""
  if array.ndim != 2:
    raise UserError(f'{what} has shape {list(array.shape)}: give a table '
                    '[rows, columns]')
  if array.shape[0] == 0 or array.shape[1] == 0:
    raise UserError(f'{what} has shape {list(array.shape)}: give at least '
                    'one row and one column')
