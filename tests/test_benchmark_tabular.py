"""benchmarks/tabular.py on a tiny run: every method scored on pm-eval's masks."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import conftest

REPO = conftest.REPO
if REPO not in sys.path:  # benchmarks/ is a source-tree folder, not installed
  sys.path.insert(0, REPO)
from benchmarks import tabular  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """A tiny tabular pm-train run plus what pm-eval wrote for it."""
  root = tmp_path_factory.mktemp('bench')
  csv = root / 'linear.csv'
  conftest.write_linear_table(csv)
  model_dir = str(root / 'run')
  subprocess.run(
      [sys.executable, '-m', 'launch.train', '--gin_file=tiny/table.gin',
       f'--data_path={csv}', f'--model_dir={model_dir}', '--noevaluate'],
      cwd=REPO, env=conftest.launcher_env(), check=True, capture_output=True)
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  metrics = experiment.evaluate(model_dir)  # pm-eval, in process
  return model_dir, metrics, root


def run_benchmark(capsys, output, *args):
  """Runs the benchmark; returns (table name, rows, printed text).

  Also checks that the JSON written to ``output`` is what main returned.
  """
  tables = tabular.main([*args, f'--output={output}'])
  printed = capsys.readouterr().out
  with open(output) as f:
    written = json.load(f)
  assert written == json.loads(json.dumps(tables))
  assert written.pop('environment')['versions']['tensorflow']
  (name, rows), = written.items()
  return name, rows, printed


def test_every_method_scored_on_pm_eval_masks(tiny_run, capsys):
  model_dir, metrics, root = tiny_run
  assert metrics['nrmse']['trials'] == 2  # tiny/table.gin's EvalConfig
  name, rows, printed = run_benchmark(
      capsys, root / 'bench.json', f'--model_dir={model_dir}', '--trials=2')
  assert name == 'linear'
  assert set(rows) == {'pm-full-covariance-gaussian', 'mean', 'knn',
                       'iterative-bayesridge', 'iterative-extratrees'}
  for method, row in rows.items():
    assert method in printed
    assert math.isfinite(row['nrmse_mean']) and row['nrmse_mean'] > 0
    assert math.isfinite(row['nrmse_std']) and len(row['nrmse_trials']) == 2
    assert row['impute_seconds'] >= 0
    if method.startswith('pm-'):
      assert math.isfinite(row['ll_mean'])
    else:
      assert row['ll_mean'] is None
    assert row['fit_seconds'] is not None and row['fit_seconds'] >= 0
  # pm's fit time is the training time pm-train recorded in the run.
  with open(os.path.join(model_dir, 'training.json')) as f:
    assert rows['pm-full-covariance-gaussian']['fit_seconds'] == (
        json.load(f)['seconds'])
  # The same masks went to every method.
  assert len({row['masks_sha256'] for row in rows.values()}) == 1
  # A correlated linear table: regression beats the column means (there
  # ~0.78 vs ~1.0; exact Gaussian conditioning gets ~0.76).
  assert (rows['iterative-bayesridge']['nrmse_mean'] <
          0.85 * rows['mean']['nrmse_mean'])
  # PM's row is pm-eval's number: same rows, masks and sampling seeds.
  pm = rows['pm-full-covariance-gaussian']
  assert pm['nrmse_mean'] == pytest.approx(metrics['nrmse']['mean'], abs=1e-6)
  assert pm['nrmse_std'] == pytest.approx(metrics['nrmse']['std'], abs=1e-6)
  # ...and its LL is pm-eval's log_likelihood (same K, seeds, masks, units).
  assert pm['ll_samples'] == 512
  assert pm['ll_mean'] == pytest.approx(metrics['log_likelihood']['mean'],
                                        rel=1e-5, abs=1e-5)
  assert 'LL' in printed


def test_trial_masks_are_pm_eval_masks(tiny_run):
  model_dir, _, _ = tiny_run
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  from pm_zoo import masks as masks_lib
  from pm_zoo.tasks import evaluation
  experiment.restore_for_eval(model_dir)
  config = evaluation.EvalConfig()
  first = tabular.trial_masks(config, (5,), 80, 3)
  again = tabular.trial_masks(config, (5,), 80, 3)
  assert tabular.masks_digest(first) == tabular.masks_digest(again)
  for t, mask in enumerate(first):
    np.testing.assert_array_equal(mask, again[t])
    np.testing.assert_array_equal(mask, masks_lib.make_eval_masks(
        masks_lib.BernoulliMask(0.5), [5], 80, seed=config.seed + t))
  assert not np.array_equal(first[0], first[1])
  assert 0.3 < first[0].mean() < 0.7


def test_cli_rejects_bad_flags_in_one_line(tiny_run, capsys):
  model_dir, _, _ = tiny_run
  with pytest.raises(SystemExit) as exit_info:
    tabular.main([f'--model_dir={model_dir}', '--methods=mean,missforest'])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and 'missforest' in err
  with pytest.raises(SystemExit):
    tabular.main([f'--model_dir={model_dir}', '--name=a', '--name=b'])
  assert 'one --name per --model_dir' in capsys.readouterr().err


def test_kebab_names():
  assert tabular.kebab('FullCovarianceGaussian') == 'full-covariance-gaussian'
  assert tabular.kebab('MAFPosterior') == 'maf-posterior'
  assert tabular.kebab('Gaussian') == 'gaussian'


def test_training_mode_trains_one_run_per_head(tmp_path, capsys):
  csv = tmp_path / 'tiny.csv'
  conftest.write_linear_table(csv)
  name, rows, printed = run_benchmark(
      capsys, tmp_path / 'bench.json', f'--table={csv}',
      '--gin_file=tiny/table.gin', '--steps=20',
      '--heads=full-covariance-gaussian,masked-autoregressive-flow',
      '--ll_samples=8', '--trials=2', f'--work_dir={tmp_path / "runs"}')
  assert name == 'tiny'
  assert set(rows) == {'pm-full-covariance-gaussian',
                       'pm-masked-autoregressive-flow', 'mean', 'knn',
                       'iterative-bayesridge', 'iterative-extratrees'}
  for method, row in rows.items():
    assert method in printed
    for key in ('nrmse_mean', 'nrmse_std', 'll_mean', 'fit_seconds',
                'impute_seconds'):
      assert key in row
    assert math.isfinite(row['nrmse_mean']) and row['nrmse_mean'] > 0
    assert math.isfinite(row['nrmse_std']) and len(row['nrmse_trials']) == 2
    if method.startswith('pm-'):
      assert math.isfinite(row['ll_mean']) and row['ll_samples'] == 8
      assert len(row['ll_trials']) == 2
    else:
      assert row['ll_mean'] is None
  assert len({row['masks_sha256'] for row in rows.values()}) == 1
  assert len({row['test_rows'] for row in rows.values()}) == 1
  # One run per head, trained for --steps with that head.
  for head in ('full-covariance-gaussian', 'masked-autoregressive-flow'):
    run = tmp_path / 'runs' / 'tiny' / head
    with open(run / 'training.json') as f:
      assert json.load(f)['step'] == 20
    config = (run / 'config.gin').read_text()
    cls = tabular.head_names()[head]
    assert f'@partial/{cls}' in config
    assert rows[f'pm-{head}']['model_dir'] == str(run)


def test_training_mode_rejects_bad_input_in_one_line(tmp_path, capsys):
  csv = tmp_path / 'tiny.csv'
  conftest.write_linear_table(csv)
  with pytest.raises(SystemExit) as exit_info:
    tabular.main([f'--table={csv}', '--heads=full-covariance-gaussian,nope'])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and len(err.strip().splitlines()) == 1
  assert 'nope' in err
  for head in tabular.HEADS:
    assert tabular.kebab(head) in err
  with pytest.raises(SystemExit) as exit_info:
    tabular.main([f'--table={tmp_path / "absent.csv"}'])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and 'absent.csv' in err
  assert len(err.strip().splitlines()) == 1
  assert not (tmp_path / 'runs').exists()


def test_default_tables_need_the_shared_folder(tmp_path):
  # pylint: disable=g-import-not-at-top
  from pm_zoo.errors import UserError
  with pytest.raises(UserError, match='does not exist'):
    tabular.default_tables(str(tmp_path / 'nowhere'))
  assert tabular.SHARED_DATA == os.path.join(
      os.path.dirname(REPO), 'shared', 'data')
  assert [t[0] for t in tabular.DEFAULT_TABLES] == [
      'winequality_white', 'parkinsons', 'miniboone']


def test_parse_table_and_heads():
  assert tabular.parse_heads('masked-autoregressive-flow,FullCovarianceGaussian'
                             ) == ['MaskedAutoregressiveFlow',
                                   'FullCovarianceGaussian']
  assert set(tabular.head_names().values()) == set(tabular.HEADS)


def test_imputer_fit_time_benchmark_times_every_method(tmp_path):
  output = tmp_path / 'fit_time.json'
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.imputer_fit_time', '--rows=200',
       '--columns=4', '--num_steps=20', f'--output={output}'],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(output.read_text())
  assert set(result['fit_seconds']) == {'pm', 'knn', 'iterative-bayesridge'}
  assert all(v > 0 for v in result['fit_seconds'].values())
  assert result['ratio_to_pm']['pm'] == 1.0
  assert result['pm_num_steps'] == 20
  assert 'tensorflow' in result['environment']['versions']
  bad = subprocess.run(
      [sys.executable, '-m', 'benchmarks.imputer_fit_time', '--missing=1.5'],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith('error: --missing=1.5')
