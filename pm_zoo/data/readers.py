"""Parsers for the file formats the data sources read: idx, .npy, .csv(.gz).

Every function returns numpy arrays and raises `UserError` with a one-line
message for a missing, corrupt or non-numeric file.
"""
import csv
import gzip
import io
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pm_zoo.data import schema as schema_lib
from pm_zoo.errors import UserError

TABLE_SUFFIXES = ('.npy', '.csv', '.csv.gz', '.tsv', '.tsv.gz', '.txt',
                  '.txt.gz')

# Cells read as a missing value (NaN), compared lower-cased and stripped.
_MISSING = frozenset(['', 'na', 'nan', 'n/a', '?', 'null', 'none'])

# idx type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {
    0x08: np.dtype('u1'),
    0x09: np.dtype('i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}


def _require(path: str, is_dir: bool, what: str, flag: str) -> str:
  """Returns ``path`` if it is an existing directory (``is_dir``) or file,
  else raises a one-line UserError that names the mix-up or the absence."""
  noun, other = ('directory', 'file') if is_dir else ('file', 'directory')
  if path and os.path.exists(path) and os.path.isdir(path) != is_dir:
    raise UserError(f'data {noun} {path} is a {other}: pass {flag} pointing '
                    f'to {what}')
  if not path or not os.path.exists(path):
    raise UserError(f'data {noun} {path} does not exist: pass {flag} '
                    f'pointing to {what}')
  return path


def require_file(path: str, what: str, flag: str = '--data_path') -> str:
  """Returns `path` if it is an existing file, else raises UserError."""
  return _require(path, False, f'an existing {what}', flag)


def require_dir(path: str, what: str) -> str:
  """Returns `path` if it is an existing directory, else raises UserError."""
  return _require(path, True, f'a directory holding {what}', '--data_path')


def _read_bytes(path: str) -> bytes:
  try:
    if path.endswith('.gz'):
      with gzip.open(path, 'rb') as f:
        return f.read()
    with open(path, 'rb') as f:
      return f.read()
  except (OSError, EOFError) as e:
    raise UserError(f'cannot read {path} ({e}): replace it with an intact '
                    f'copy') from None


def read_idx(path: str) -> np.ndarray:
  """Reads an idx file (MNIST format, optionally gzipped) into its own dtype.

  Layout: two zero bytes, a type byte, the number of dims n, n big-endian
  uint32 sizes, then the values in row-major order, big-endian.
  """
  raw = _read_bytes(path)
  bad = (f'{path} is not a valid idx file ({{}}): replace it with an intact '
         f'copy of the MNIST-format file')
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise UserError(bad.format(f'bad magic number {raw[:4].hex() or "-"}'))
  ndim = raw[3]
  header = 4 + 4 * ndim
  if ndim == 0 or len(raw) < header:
    raise UserError(bad.format(f'header for {ndim} dims is truncated'))
  dims = tuple(int(d) for d in np.frombuffer(raw, '>u4', ndim, offset=4))
  dtype = _IDX_DTYPES[raw[2]]
  expected = header + int(np.prod(dims)) * dtype.itemsize
  if len(raw) != expected:
    raise UserError(bad.format(f'{len(raw)} bytes, expected {expected} for '
                               f'shape {dims}'))
  return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def read_npy(path: str) -> np.ndarray:
  """Reads a numeric .npy array (no pickles)."""
  try:
    array = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f'cannot read {path} as .npy ({e}): give a numeric array '
                    f'saved with numpy.save') from None
  if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
    raise UserError(f'{path} holds dtype {array.dtype}: give a numeric array')
  return array


def _open_text(path: str):
  if path.endswith('.gz'):
    return io.TextIOWrapper(gzip.open(path, 'rb'), encoding='utf-8-sig',
                            newline='')
  return open(path, encoding='utf-8-sig', newline='')


def _is_number(cell: str) -> bool:
  try:
    float(cell)
    return True
  except ValueError:
    return False


def _split_line(line: str, delimiter: Optional[str]) -> List[str]:
  if delimiter is None:
    return line.split()
  return next(csv.reader([line], delimiter=delimiter))


def detect_delimiter(lines: Sequence[str]) -> Optional[str]:
  """Picks ',', ';' or tab: the one that splits every sample line into the
  same number (> 1) of fields, the most fields winning (if none does, the one
  that splits the first line the most). None means whitespace."""
  best, best_fields = None, 1
  for delimiter in (',', ';', '\t'):
    counts = {len(_split_line(line, delimiter)) for line in lines}
    if len(counts) == 1:
      fields = counts.pop()
      if fields > best_fields:
        best, best_fields = delimiter, fields
  if best is None:  # Ragged sample: go by the first line (a later check
    for delimiter in (',', ';', '\t'):  # reports the ragged row).
      fields = len(_split_line(lines[0], delimiter))
      if fields > best_fields:
        best, best_fields = delimiter, fields
  return best


def _read_csv_rows(path: str) -> Tuple[List[List[str]], List[int],
                                      Optional[List[str]]]:
  """Returns (rows of cells, their 1-based line numbers, header or None)."""
  try:
    with _open_text(path) as f:
      lines = f.read().splitlines()
  except (OSError, EOFError, UnicodeDecodeError) as e:
    raise UserError(f'cannot read {path} as text ({e}): give a .csv file '
                    f'(optionally .gz)') from None
  numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
  if not numbered:
    raise UserError(f'{path} is empty: give a file with at least one row')
  delimiter = detect_delimiter([line for _, line in numbered[:20]])
  rows = [_split_line(line, delimiter) for _, line in numbered]
  line_numbers = [n for n, _ in numbered]
  first = [c.strip() for c in rows[0]]
  header = None
  if (not any(_is_number(c) for c in first) and
      any(c.lower() not in _MISSING for c in first)):
    header = first
    rows, line_numbers = rows[1:], line_numbers[1:]
  return rows, line_numbers, header


def _check_rows(path, rows, line_numbers, width) -> None:
  """Every row has ``width`` fields and there is at least one; else UserError."""
  for row, line in zip(rows, line_numbers):
    if len(row) != width:
      raise UserError(f'{path} line {line} has {len(row)} fields, expected '
                      f'{width}: give every row the same number of columns')
  if not rows:
    raise UserError(f'{path} has a header but no data rows: give at least '
                    f'one row of numbers')


def _cells_to_float(path, rows, line_numbers, width, names) -> np.ndarray:
  """Converts cells to float64; missing markers -> NaN; else UserError."""
  _check_rows(path, rows, line_numbers, width)
  try:
    return np.asarray(rows, dtype=np.float64)
  except ValueError:
    pass  # Slow path below finds missing markers and the first bad cell.
  out = np.empty((len(rows), width), np.float64)
  for i, (row, line) in enumerate(zip(rows, line_numbers)):
    for j, cell in enumerate(row):
      try:
        out[i, j] = float(cell)
      except ValueError:
        if cell.strip().lower() in _MISSING:
          out[i, j] = np.nan
        else:
          column = f'column {j + 1}' + (f' ({names[j]!r})' if names else '')
          raise UserError(
              f'{path} line {line}, {column}: {cell!r} is not a number: make '
              f'every cell numeric (empty or NA marks a missing value) or '
              f'drop that column with drop_columns') from None
  return out


def _drop(array: np.ndarray, names: Optional[List[str]],
          drop_columns: Sequence[Union[str, int]], path: str):
  """Removes columns given by name or index; returns (array, names)."""
  if not drop_columns:
    return array, names
  width = array.shape[1]
  drop = set()
  for column in drop_columns:
    if names is not None and isinstance(column, str) and column in names:
      drop.add(names.index(column))
      continue
    try:
      index = int(column)
    except (TypeError, ValueError):
      known = ', '.join(names) if names else f'indices 0..{width - 1}'
      raise UserError(f'drop_columns names {column!r}, which {path} does not '
                      f'have: use one of {known}') from None
    if not -width <= index < width:
      raise UserError(f'drop_columns index {index} is out of range for the '
                      f'{width} columns of {path}: use 0..{width - 1}')
    drop.add(index % width)
  keep = [j for j in range(width) if j not in drop]
  if not keep:
    raise UserError(f'drop_columns removes all {width} columns of {path}: '
                    f'keep at least one')
  return array[:, keep], (None if names is None else [names[j] for j in keep])


def read_table(path: str, drop_columns: Sequence[Union[str, int]] = ()
               ) -> Tuple[np.ndarray, Optional[Tuple[str, ...]]]:
  """A numeric table (see ``read_table_with_schema``): (float32, names)."""
  array, names, schema = read_table_with_schema(path, drop_columns)
  if not schema.numeric_only:
    column = schema.columns[schema.indices(schema_lib.CATEGORICAL)[0]]
    raise UserError(f'{path}: column {column.name!r} holds text: this reader '
                    'takes numbers only; drop that column (drop_columns)')
  return array, names


def read_table_with_schema(
    path: str, drop_columns: Sequence[Union[str, int]] = (),
    column_types: Optional[Dict[str, str]] = None,
    max_categories: int = schema_lib.MAX_CATEGORIES
) -> Tuple[np.ndarray, Optional[Tuple[str, ...]], 'schema_lib.TableSchema']:
  """Reads a numeric table from .npy or delimited text (.csv, .csv.gz, ...).

  Text: the delimiter (',', ';', tab, else whitespace) is detected from the
  first lines; a first row with no numeric cell is a header. Empty/NA/? cells
  become NaN (and are rejected later by DataSplits).

  Args:
    path: the file.
    drop_columns: columns to remove, by header name or 0-based index.

  Text columns are categorical (``pm_zoo.data.schema``): their cells become
  integer codes. ``column_types`` overrides inferred kinds by name.

  Returns:
    (float32 [N, D] with NaN where missing and category codes in categorical
    columns, header names or None, the column schema).
  """
  require_file(path, 'table (' + '/'.join(TABLE_SUFFIXES) + ')')
  lower = path.lower()
  if not lower.endswith(TABLE_SUFFIXES):
    raise UserError(f'{path} has an unknown table extension: give one of '
                    f'{", ".join(TABLE_SUFFIXES)}')
  if lower.endswith('.npy'):
    array = read_npy(path)
    if array.ndim == 1:
      array = array[:, None]
    if array.ndim != 2:
      raise UserError(f'{path} has shape {array.shape}: a table must be '
                      f'[rows, columns]')
    names = None
    array, names = _drop(array, names, drop_columns, path)
    schema = schema_lib.TableSchema.numeric(array.shape[1], names)
    if column_types:
      schema_lib._check_overrides(column_types, schema.names)  # pylint: disable=protected-access
      raise UserError(f'{path} is a .npy of numbers: column_types applies to '
                      'text tables; drop it, or save the table as .csv')
  else:
    rows, line_numbers, names = _read_csv_rows(path)
    width = len(names) if names else len(rows[0])
    _check_rows(path, rows, line_numbers, width)
    keep, names = _kept_columns(width, names, drop_columns, path)
    rows = [[row[j] for j in keep] for row in rows]
    header = names or [f'c{j}' for j in keep]
    schema = schema_lib.infer_from_cells(header, rows, line_numbers, path,
                                         column_types, max_categories)
    if schema.numeric_only:
      array = _cells_to_float(path, rows, line_numbers, len(keep), names)
    else:
      array = schema.encode(np.asarray(rows, dtype=object), what=path)
  return (array.astype(np.float32),
          None if names is None else tuple(names), schema)


def _kept_columns(width: int, names: Optional[List[str]],
                  drop_columns: Sequence[Union[str, int]], path: str):
  """(indices kept, their names or None) after ``drop_columns``."""
  index = np.arange(width, dtype=np.float64)[None]
  kept, kept_names = _drop(index, names, drop_columns, path)
  return [int(j) for j in kept[0]], kept_names
