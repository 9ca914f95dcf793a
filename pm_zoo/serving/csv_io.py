"""Streaming CSV tables for ``pm-impute``: read in batches, write atomically.

The reading rules are those of ``pm-train``'s table reader
(``pm_zoo.data.readers``): the delimiter (',', ';', tab, else whitespace) is
detected from the first lines, a first row with no numeric cell is a header,
blank lines are skipped, and an empty cell or NA/NaN/?/null marks a missing
value. Unlike that reader, ``CsvTable`` never holds the whole file: it scans
it once (delimiter, header, row count) and then yields batches of rows, each
with the cells as written, so that a writer can copy the observed cells
verbatim (and the header line as it is).
"""
import dataclasses
import os
import tempfile
from typing import Iterator, List, Optional

import numpy as np

from pm_zoo.data import readers
from pm_zoo.errors import UserError

# pylint: disable=protected-access
# The table reader's own parsing rules, shared rather than copied.
_split_line = readers._split_line
_is_number = readers._is_number
_MISSING = readers._MISSING
_cells_to_float = readers._cells_to_float
# pylint: enable=protected-access

_SNIFF_LINES = 20


@dataclasses.dataclass
class Batch:
  """Consecutive data rows of a ``CsvTable``.

  Attributes:
    line_numbers: 1-based line of each row in the file.
    cells: each row's cells as written.
    values: float64 ``[rows, columns]``, NaN where missing.
  """
  line_numbers: List[int]
  cells: List[List[str]]
  values: np.ndarray


class CsvTable:
  """A delimited numeric text file, scanned once, then read batch by batch.

  Args:
    path: the file (``.csv``, ``.tsv``, ``.txt``; not compressed).
    flag: the flag that named it, for error messages.
    schema: the model's ``TableSchema``; with categorical columns their
      cells are read as category text and encoded as codes (``values``).
    unknown: 'error' or 'missing', for a category the model never saw.
  """

  def __init__(self, path: str, flag: str = '--input', schema=None,
               unknown: str = 'error'):
    readers.require_file(path, 'CSV file', flag)
    self.path = path
    self.schema = (schema if schema is not None and not schema.numeric_only
                   else None)
    self.unknown = unknown
    sample = []
    with self._open() as f:
      for line in f:
        if line.strip():
          sample.append(line.rstrip('\r\n'))
          if len(sample) == _SNIFF_LINES:
            break
    if not sample:
      raise UserError(f'{path} is empty: give a CSV file with one row per '
                      'record (and optionally a header)')
    self.delimiter = readers.detect_delimiter(sample)
    first = _split_line(sample[0], self.delimiter)
    stripped = [c.strip() for c in first]
    self.header: Optional[List[str]] = None
    self.header_line: Optional[str] = None  # as written, for the output
    if (not any(_is_number(c) for c in stripped) and
        any(c.lower() not in _MISSING for c in stripped)):
      self.header = first
      self.header_line = sample[0]
    self.width = len(first)
    self.num_rows = sum(1 for _ in self._lines()) - (1 if self.header else 0)
    if self.num_rows == 0:
      raise UserError(f'{path} has a header but no data rows: give at least '
                      'one row of numbers')

  def _open(self):
    try:
      return open(self.path, encoding='utf-8-sig', newline='')
    except OSError as e:
      raise UserError(f'cannot read {self.path} ({e}): pass a readable CSV '
                      'file') from None

  def _lines(self) -> Iterator:
    """(line number, line) of every non-blank line."""
    with self._open() as f:
      try:
        for number, line in enumerate(f, start=1):
          if line.strip():
            yield number, line.rstrip('\r\n')
      except UnicodeDecodeError as e:
        raise UserError(f'{self.path} is not UTF-8 text ({e}): give a CSV '
                        'file') from None

  def batches(self, batch_size: int) -> Iterator[Batch]:
    """The data rows, ``batch_size`` at a time (the header skipped)."""
    lines = self._lines()
    if self.header is not None:
      next(lines)
    numbers, cells = [], []
    for number, line in lines:
      numbers.append(number)
      cells.append(_split_line(line, self.delimiter))
      if len(cells) == batch_size:
        yield self._batch(numbers, cells)
        numbers, cells = [], []
    if cells:
      yield self._batch(numbers, cells)

  def _batch(self, numbers, cells) -> Batch:
    if self.schema is None or self.schema.width != self.width:
      values = _cells_to_float(self.path, cells, numbers, self.width,
                               self.header)
      return Batch(numbers, cells, values)
    for row, line in zip(cells, numbers):
      if len(row) != self.width:
        raise UserError(f'{self.path} line {line} has {len(row)} fields, '
                        f'expected {self.width}: give every row the same '
                        'number of columns')
    try:
      values = self.schema.encode(np.asarray(cells, dtype=object),
                                  what=self.path, unknown=self.unknown)
    except UserError as e:  # Name the line, not the row of the batch.
      message = str(e)
      for i, line in enumerate(numbers):
        if f' row {i} ' in message:
          message = message.replace(f' row {i} ', f' line {line} ', 1)
          break
      raise UserError(message) from None
    return Batch(numbers, cells, values)


class PendingFile:
  """A file written under a temporary name beside ``path``; ``commit`` renames.

  Nothing appears at ``path`` until ``commit``; ``discard`` removes the
  temporary file. The file gets the permissions of a plain ``open``.
  """

  def __init__(self, path: str):
    self.path = os.path.abspath(path)
    directory = os.path.dirname(self.path)
    if not os.path.isdir(directory):
      raise UserError(f'the folder of {path} does not exist: create it or '
                      'pass another path')
    fd, self.tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-pm-impute-')
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(self.tmp, 0o666 & ~umask)

  def commit(self) -> None:
    os.replace(self.tmp, self.path)

  def discard(self) -> None:
    if os.path.exists(self.tmp):
      os.remove(self.tmp)


def format_value(value: float) -> str:
  """The shortest text that reads back as the same float32."""
  return str(np.float32(value))


def cell_formatters(schema, width: int):
  """One function per column: imputed value (float) -> its cell text.

  Numeric columns: ``format_value``; integer columns: the rounded integer;
  categorical columns: the category's text.
  """
  formatters = [format_value] * width
  if schema is None or schema.width != width:
    return formatters
  for j, column in enumerate(schema.columns):
    if column.kind == 'integer':
      formatters[j] = lambda v: str(int(round(float(v))))
    elif column.kind == 'categorical':
      categories = column.categories
      formatters[j] = (lambda v, c=categories:
                       str(c[int(min(max(round(float(v)), 0), len(c) - 1))]))
  return formatters
