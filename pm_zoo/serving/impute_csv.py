"""What ``pm-impute`` does: impute the missing cells of a CSV file.

  summary = impute_csv(runner, 'in.csv', 'out.csv', num_samples=10, seed=0)

The output has the input's header, column order, rows and delimiter; the
observed cells are copied as written and each missing cell (empty, NA, NaN,
...) gets the mean of ``num_samples`` imputations. A model with text
(categorical) columns reads their cells as category text and writes an
imputed cell as the category (the most probable under the posterior
predictive of the imputations' draws); an integer
column's imputations are written as integers. A category the model never
saw is an error naming the line and column, or, with
``unknown='missing'`` (``--handle_unknown=missing``), a cell to impute. ``samples_output`` (a
``.npy``) receives every imputation, float32 ``[rows, num_samples,
columns]`` in the data's units, observed values included. The file is read
and imputed in batches (memory does not grow with its length) and progress
is reported; the outputs are written under temporary names and renamed only
when every row has been imputed, so a failure leaves nothing behind.
"""
import contextlib
import csv
import os
import time
from typing import Callable, Dict, Optional

import numpy as np

from pm_zoo.errors import UserError
from pm_zoo.serving import csv_io
from pm_zoo.serving import inputs

PROGRESS_SECONDS = 2.0


def check_outputs(input_path: str, output_path: str,
                  samples_output: Optional[str], overwrite: bool) -> None:
  """Refuses existing outputs (unless ``overwrite``) and clashing paths."""
  paths = [p for p in (output_path, samples_output) if p]
  if samples_output and not samples_output.endswith('.npy'):
    raise UserError(f'--samples_output={samples_output}: give a .npy path')
  if len(set(os.path.abspath(p) for p in paths)) != len(paths):
    raise UserError('--output and --samples_output name the same file: give '
                    'two paths')
  for path in paths:
    if os.path.abspath(path) == os.path.abspath(input_path):
      raise UserError(f'{path} is the input file: write the output elsewhere')
    if os.path.isdir(path):
      raise UserError(f'{path} is a directory: give a file path')
    if os.path.exists(path) and not overwrite:
      raise UserError(f'{path} exists: pass --overwrite to replace it, or '
                      'another path')


def _progress_logger(total: int, log: Callable[[str], None]):
  start = time.perf_counter()
  last = {'time': start, 'done': -1}

  def report(done: int, final: bool = False):
    now = time.perf_counter()
    if (now - last['time'] < PROGRESS_SECONDS and not final) or (
        done == last['done']):
      return
    last.update(time=now, done=done)
    rate = done / max(now - start, 1e-9)
    eta = (total - done) / rate if rate > 0 else float('inf')
    log(f'pm-impute: {done}/{total} rows ({100.0 * done / total:.0f}%), '
        f'{rate:.0f} rows/s, ETA {eta:.0f} s')
  return report


def impute_csv(runner, input_path: str, output_path: str,
               num_samples: int = 10, seed: int = 0, batch_size: int = 1024,
               samples_output: Optional[str] = None, overwrite: bool = False,
               log: Callable[[str], None] = print,
               unknown: str = 'error') -> Dict:
  """Imputes ``input_path`` into ``output_path`` (see the module docstring).

  Args:
    runner: ``loading.InProcess`` or ``loading.SavedModelRunner``.
    input_path: the CSV to impute.
    output_path: where the completed CSV goes.
    num_samples: S imputations averaged per missing cell.
    seed: seed of the row-keyed draws (same seed, same imputations).
    batch_size: rows per model call.
    samples_output: optional ``.npy`` for all S imputations.
    overwrite: replace existing outputs.
    log: progress and summary lines.

  Returns:
    ``{"rows", "missing_values", "rows_with_missing", "seconds"}``.
  """
  for name, value in (('num_samples', num_samples),
                      ('batch_size', batch_size)):
    if int(value) < 1:
      raise UserError(f'--{name}={value}: pass a positive number')
  check_outputs(input_path, output_path, samples_output, overwrite)
  schema = getattr(runner, 'schema', None)
  table = csv_io.CsvTable(input_path, schema=schema, unknown=unknown)
  inputs.check_width(table.width, runner.feature_shape, what=input_path)
  formatters = csv_io.cell_formatters(schema, table.width)
  start = time.perf_counter()
  report = _progress_logger(table.num_rows, log)
  done = missing_values = rows_with_missing = 0
  pending = []
  try:
    pending.append(csv_io.PendingFile(output_path))
    samples = None
    if samples_output:
      pending.append(csv_io.PendingFile(samples_output))
      samples = np.lib.format.open_memmap(
          pending[-1].tmp, mode='w+', dtype=np.float32,
          shape=(table.num_rows, int(num_samples), table.width))
    with open(pending[0].tmp, 'w', encoding='utf-8', newline='') as out:
      writer = csv.writer(out, delimiter=table.delimiter or ' ',
                          lineterminator='\n')
      if table.header_line is not None:
        out.write(table.header_line + '\n')
      for batch in table.batches(int(batch_size)):
        mask = inputs.missing_mask(
            batch.values, what=input_path,
            row_names=[f'line {n}' for n in batch.line_numbers])
        mean, drawn = runner.sample(batch.values.astype(np.float32), mask,
                                    int(num_samples), int(seed))
        _write_rows(writer, batch.cells, mask, mean, formatters)
        if samples is not None:
          samples[done:done + len(mask)] = drawn
        done += len(mask)
        missing_values += int((mask == 0).sum())
        rows_with_missing += int((mask == 0).any(axis=1).sum())
        report(done)
    if samples is not None:
      samples.flush()
      del samples
    for f in pending:
      f.commit()
  except BaseException:
    with contextlib.suppress(OSError):
      for f in pending:
        f.discard()
    raise
  report(done, final=True)
  seconds = time.perf_counter() - start
  log(f'imputed {missing_values} missing values in {rows_with_missing} of '
      f'{done} rows (mean of {num_samples} samples, seed {seed}) -> '
      f'{output_path}' + (f' and {samples_output}' if samples_output else ''))
  return {'rows': done, 'missing_values': missing_values,
          'rows_with_missing': rows_with_missing, 'seconds': seconds}


def _write_rows(writer, cells, mask, mean, formatters) -> None:
  """Observed cells as written, missing ones as the imputed value."""
  for row_cells, row_mask, row_mean in zip(cells, mask, mean):
    writer.writerow([cell if observed else fmt(value)
                     for cell, observed, value, fmt in
                     zip(row_cells, row_mask, row_mean, formatters)])
