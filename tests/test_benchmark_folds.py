"""benchmarks/folds.py and ``benchmarks.tabular --folds``: K-fold scoring,
and the paired comparison with pm on the same masks."""
import csv
import gzip
import json

import numpy as np
import pytest

import conftest
import test_benchmark_tabular  # puts the repo on sys.path for benchmarks/
from benchmarks import folds  # pylint: disable=g-import-not-at-top,wrong-import-order
from benchmarks import tabular  # pylint: disable=g-import-not-at-top,wrong-import-order
from pm_zoo.errors import UserError


def test_folds_partition_the_rows_near_equally():
  parts = folds.fold_indices(11, 3, seed=4)
  assert sorted(len(p) for p in parts) == [3, 4, 4]
  assert sorted(np.concatenate(parts).tolist()) == list(range(11))
  assert all((np.diff(p) > 0).all() for p in parts)
  again = folds.fold_indices(11, 3, seed=4)
  assert all((a == b).all() for a, b in zip(parts, again))
  assert any((a.shape != b.shape) or (a != b).any()
             for a, b in zip(parts, folds.fold_indices(11, 3, seed=5)))
  for bad in (1, 12):
    with pytest.raises(UserError, match=f'--folds={bad}: give 2..11'):
      folds.fold_indices(11, bad, seed=0)


@pytest.mark.parametrize('suffix', ['.csv', '.csv.gz', '.npy'])
def test_fold_files_keep_the_format_and_split_every_row_once(tmp_path,
                                                             suffix):
  rows = [['3', 'red', ''], ['1.5', 'blue', '2'], ['x y', 'red', '7'],
          ['4', '', '1'], ['5', 'green', '0']]
  path = str(tmp_path / ('t' + suffix))
  if suffix == '.npy':
    np.save(path, np.arange(15, dtype=np.float32).reshape(5, 3))
  else:
    opener = gzip.open if suffix.endswith('.gz') else open
    with opener(path, 'wt', newline='') as f:
      csv.writer(f).writerows([['a', 'b', 'c']] + rows)
  header, original = folds._read(path)  # pylint: disable=protected-access
  pairs = folds.write_folds(path, 2, seed=0, folder=str(tmp_path / 'f'))
  assert len(pairs) == 2
  tested = []
  for k, (train, test) in enumerate(pairs):
    assert train.endswith('fold-%d/train%s' % (k, suffix))
    assert test.endswith('fold-%d/test%s' % (k, suffix))
    got = [folds._read(p) for p in (train, test)]  # pylint: disable=protected-access
    assert all(h == header for h, _ in got)
    assert len(got[0][1]) + len(got[1][1]) == 5
    tested += [tuple(np.asarray(r, object).tolist()) for r in got[1][1]]
  assert sorted(tested) == sorted(tuple(np.asarray(r, object).tolist())
                                  for r in original)


def _row(nrmse, pfc, test_rows, digest, ll=None):
  return {'nrmse_trials': nrmse, 'pfc_trials': pfc, 'll_trials': ll,
          'test_rows': test_rows, 'train_rows': 10, 'train_missing': 0.2,
          'fit_seconds': 2.0, 'impute_seconds': 1.0, 'trials': len(nrmse),
          'masks_sha256': digest, 'model_dir': '/r', 'nrmse_mean': 0.0}


def test_pooling_concatenates_the_trials_of_every_fold():
  pooled = folds.pool_folds([
      {'pm': _row([0.1, 0.3], [0.5, 0.3], 4, 'a', ll=[-1.0, -2.0]),
       'knn': _row([0.2, 0.2], [0.4, 0.4], 4, 'a')},
      {'pm': _row([0.5, 0.7], [0.1, 0.3], 3, 'b', ll=[-3.0, -4.0]),
       'knn': _row([0.6, 0.6], [0.2, 0.2], 3, 'b')}])
  pm = pooled['pm']
  assert pm['nrmse_trials'] == [0.1, 0.3, 0.5, 0.7] and pm['trials'] == 4
  assert pm['nrmse_mean'] == pytest.approx(0.4)
  assert pm['nrmse_std'] == pytest.approx(np.std([0.1, 0.3, 0.5, 0.7]))
  assert pm['pfc_mean'] == pytest.approx(0.3)
  assert pm['ll_mean'] == pytest.approx(-2.5)
  assert pm['test_rows'] == 7 and len(pm['folds']) == 2
  assert 'model_dir' not in pm and pm['folds'][0]['model_dir'] == '/r'
  assert pooled['knn']['ll_mean'] is None
  assert pm['masks_sha256'] == pooled['knn']['masks_sha256']
  with pytest.raises(ValueError, match='different methods'):
    folds.pool_folds([{'pm': pm}, {'knn': pm}])


def test_cross_validated_benchmark_tests_every_row_once(tmp_path, capsys):
  path = tmp_path / 'tiny.csv'
  conftest.write_linear_table(path, rows=80)
  work = tmp_path / 'runs'
  name, rows, printed = test_benchmark_tabular.run_benchmark(
      capsys, tmp_path / 'bench.json', f'--table={path}', '--folds=2',
      '--gin_file=tiny/table.gin', '--steps=4', '--ll_samples=0',
      '--trials=2', '--methods=pm,mean,knn', f'--work_dir={work}',
      '--heads=full-covariance-gaussian')
  assert name == 'tiny'
  assert '(2 folds)' in printed
  assert 'paired on the same masks: baseline - pm' in printed
  pm = rows['pm-full-covariance-gaussian']
  assert 'paired_with_pm' not in pm
  for method in ('mean', 'knn'):
    paired = rows[method]['paired_with_pm']
    d = np.subtract(rows[method]['nrmse_trials'], pm['nrmse_trials'])
    assert paired['nrmse']['mean'] == pytest.approx(d.mean())
    assert paired['nrmse']['pairs'] == 4 and paired['pfc'] is None
    assert paired['reference'] == 'pm-full-covariance-gaussian'
    assert (f'tiny  {method} - pm-full-covariance-gaussian: NRMSE '
            f'{d.mean():+.4f}') in printed
  for method, row in rows.items():
    assert row['test_rows'] == 80 and row['trials'] == 4
    assert len(row['nrmse_trials']) == 4 and len(row['folds']) == 2
    assert row['nrmse_mean'] == pytest.approx(np.mean(row['nrmse_trials']))
    assert [f['test_rows'] for f in row['folds']] == [40, 40], method
  for k in range(2):
    run = work / 'tiny' / f'fold-{k}' / 'full-covariance-gaussian'
    assert json.loads((run / 'training.json').read_text())['step'] == 4
    assert rows['pm-full-covariance-gaussian']['folds'][k]['model_dir'] == (
        str(run))


def test_folds_refuse_a_table_with_a_test_file_and_k_below_two(tmp_path,
                                                                capsys):
  path = tmp_path / 'tiny.csv'
  conftest.write_linear_table(path, rows=20)
  for args, message in (
      ([f'--table={path},{path}', '--folds=3'], 'has a TEST file'),
      ([f'--table={path}', '--folds=1'], '--folds=1: give K >= 2')):
    with pytest.raises(SystemExit) as exit_info:
      tabular.main(args + ['--gin_file=tiny/table.gin',
                           f'--work_dir={tmp_path / "runs"}'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and message in err
    assert len(err.strip().splitlines()) == 1
  assert not (tmp_path / 'runs' / 'tiny').exists()


def test_paired_differences_count_the_trials_pm_wins():
  rows = {'pm-x': {'nrmse_trials': [0.5, 0.5, 0.5], 'pfc_trials': [0.2, 0.3,
                                                                    0.4]},
          'knn': {'nrmse_trials': [0.6, 0.5, 0.7], 'pfc_trials': [0.1, 0.3,
                                                                   0.6]},
          'mean': {'nrmse_trials': [0.9], 'pfc_trials': None}}
  tabular.paired_with_pm(rows)
  knn = rows['knn']['paired_with_pm']
  assert knn['nrmse']['mean'] == pytest.approx(0.1)
  assert knn['nrmse']['se'] == pytest.approx(np.std([0.1, 0.0, 0.2], ddof=1)
                                             / np.sqrt(3))
  assert (knn['nrmse']['pm_lower'], knn['nrmse']['ties']) == (2, 1)
  assert (knn['pfc']['pm_lower'], knn['pfc']['ties']) == (1, 1)
  # One trial, or none: no standard error, so no comparison.
  assert rows['mean']['paired_with_pm'] == {'reference': 'pm-x',
                                            'nrmse': None, 'pfc': None}
  assert 'paired_with_pm' not in rows['pm-x']
  text = tabular.format_paired({'t': rows})
  assert 'knn - pm-x: NRMSE +0.1000 ± 0.0577 (2/3), PFC +0.0333' in text
  assert 'mean:' not in text
