"""K-fold cross-validation for the tabular benchmark: every row tested once.

A small table's single 80/20 split scores a few dozen hidden cells per mask
draw (cars: 81 test rows, about 40 hidden ``Origin`` cells), so two imputers
a few cells apart cannot be told apart on it. ``--folds=K`` instead splits
the rows into K folds by a seeded permutation (``--fold_seed``), runs the
whole benchmark on each (fold k is the test split, the other K - 1 folds
train; ``--train_missing`` removes cells of each fold's train split), and
pools the per-trial scores of the K runs: each method's mean and std are
over the K x trials values, so every row of the table is scored, and every
method is scored on the same folds and masks.

``write_folds`` writes the fold files in the table's own format (CSV rows
are copied field by field, so the readers infer the same column types as on
the whole file); ``pool_folds`` merges the per-fold result rows.
"""
import csv
import gzip
import hashlib
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from pm_zoo import metrics as metrics_lib


def _read(path: str):
  """(header or None, rows): CSV rows as lists of strings, .npy as an array."""
  if path.lower().endswith('.npy'):
    return None, np.load(path)
  opener = gzip.open if path.lower().endswith('.gz') else open
  with opener(path, 'rt', newline='') as f:
    rows = list(csv.reader(f))
  return rows[0], rows[1:]


def _write(path: str, header, rows) -> None:
  if header is None:
    np.save(path, rows)
    return
  opener = gzip.open if path.lower().endswith('.gz') else open
  with opener(path, 'wt', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def _suffix(path: str) -> str:
  for suffix in ('.csv.gz', '.csv', '.npy'):
    if path.lower().endswith(suffix):
      return suffix
  raise ValueError(f'{path}: not a .csv, .csv.gz or .npy file')


def fold_indices(num_rows: int, folds: int, seed: int) -> List[np.ndarray]:
  """The test rows of each fold: a seeded permutation cut into ``folds``
  near-equal parts (sorted within a fold)."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if not 2 <= folds <= num_rows:
    raise UserError(f'--folds={folds}: give 2..{num_rows} (the table has '
                    f'{num_rows} rows)')
  order = np.random.default_rng(seed).permutation(num_rows)
  return [np.sort(part) for part in np.array_split(order, folds)]


def write_folds(path: str, folds: int, seed: int,
                folder: str) -> List[Tuple[str, str]]:
  """Writes ``<folder>/fold-<k>/{train,test}<suffix>`` for k < ``folds``;
  returns the (train, test) paths of every fold."""
  header, rows = _read(path)
  suffix = _suffix(path)
  paths = []
  for k, test_rows in enumerate(fold_indices(len(rows), folds, seed)):
    in_test = np.zeros(len(rows), bool)
    in_test[test_rows] = True
    fold_dir = os.path.join(folder, f'fold-{k}')
    os.makedirs(fold_dir, exist_ok=True)
    pair = (os.path.join(fold_dir, 'train' + suffix),
            os.path.join(fold_dir, 'test' + suffix))
    for target, keep in zip(pair, (~in_test, in_test)):
      part = (rows[keep] if header is None else
              [r for r, kept in zip(rows, keep) if kept])
      _write(target, header, part)
    paths.append(pair)
  return paths


def pool_folds(per_fold: Sequence[Dict[str, Dict]]) -> Dict[str, Dict]:
  """Per-fold ``{method: row}`` results -> one ``{method: row}``.

  NRMSE, PFC and LL trials are concatenated over folds (mean and
  population std over all K x trials values); ``test_rows`` is the total
  (every row once), ``train_rows``, ``train_missing`` and the times are
  means over folds; ``masks_sha256`` hashes the folds' hashes in order;
  ``folds`` holds each fold's own row.
  """
  methods = list(per_fold[0])
  for rows in per_fold[1:]:
    if list(rows) != methods:
      raise ValueError(f'folds scored different methods: {methods} vs '
                       f'{list(rows)}')
  pooled = {}
  for method in methods:
    rows = [fold[method] for fold in per_fold]
    row = dict(rows[0])
    for metric in ('nrmse', 'pfc', 'll'):
      trials = [v for r in rows for v in (r.get(f'{metric}_trials') or [])]
      row[f'{metric}_trials'] = trials or None
      if metric == 'll':  # as benchmark_run: a mean, no std
        row['ll_mean'] = float(np.mean(trials)) if trials else None
      else:
        summary = (metrics_lib.summarize_trials(trials) if trials
                   else {'mean': None, 'std': None})
        row[f'{metric}_mean'], row[f'{metric}_std'] = (summary['mean'],
                                                       summary['std'])
    row['test_rows'] = int(sum(r['test_rows'] for r in rows))
    for key in ('train_rows', 'train_missing', 'fit_seconds',
                'impute_seconds'):
      values = [r[key] for r in rows if r.get(key) is not None]
      row[key] = float(np.mean(values)) if values else None
    row['trials'] = int(sum(r['trials'] for r in rows))
    row['masks_sha256'] = hashlib.sha256(
        ''.join(r['masks_sha256'] for r in rows).encode()).hexdigest()
    row['folds'] = [dict(r) for r in rows]
    row.pop('model_dir', None)
    pooled[method] = row
  return pooled
