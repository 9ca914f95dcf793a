"""End-to-end tests of the launchers, run as subprocesses from the source tree.

Every launcher start costs seconds of TensorFlow import, so the runs are
shared: one table run trained in two halves (which also tests resuming), one
image run, and the bad-input runs, started a few at a time in parallel. The
console-script test runs the installed ``pm-train``/``pm-eval``
(``pip install .[test]`` first).
"""
import concurrent.futures
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import launcher_env
from conftest import REPO
from conftest import write_linear_table

# Seconds a launcher may take (a tiny run needs ~20 s on two cores).
TRAIN_TIMEOUT = 300
ERROR_TIMEOUT = 180
# Bad-input launchers started at once (each is mostly TensorFlow start-up).
PARALLEL_RUNS = 3
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


# ------------------------------------------------------------ helpers ----


def _launch(launcher, *args, timeout=TRAIN_TIMEOUT):
  """Runs ``python -m launch.<launcher> args`` from the source tree."""
  return subprocess.run(
      [sys.executable, '-m', f'launch.{launcher}', *map(str, args)],
      cwd=REPO, env=launcher_env(), capture_output=True, text=True,
      timeout=timeout, check=False)


def _describe(proc):
  return (f'exit {proc.returncode}\n--- stdout\n{proc.stdout}\n'
          f'--- stderr (tail)\n{proc.stderr[-4000:]}')


def _snapshot(directory):
  """{relative path: (mtime_ns, sha256)} of every file under ``directory``."""
  files = {}
  for dirpath, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      files[os.path.relpath(path, directory)] = (os.stat(path).st_mtime_ns,
                                                 digest)
  return files


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _latest_step(model_dir):
  latest = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  assert latest, f'no checkpoint in {model_dir}/checkpoints'
  return int(latest.rsplit('-', 1)[1])


def _summaries(model_dir):
  """[(tag, step, plugin name)] of every summary in ``model_dir``/train."""
  train_dir = os.path.join(model_dir, 'train')
  files = sorted(f for f in os.listdir(train_dir) if 'tfevents' in f)
  assert files, f'no events file in {train_dir}'
  found = []
  for name in files:
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(train_dir, name)):
      for value in event.summary.value:
        found.append((value.tag, event.step,
                      value.metadata.plugin_data.plugin_name))
  return found


def _check_metric(metrics, name, trials):
  assert set(metrics[name]) == {'mean', 'std', 'trials'}, metrics
  assert metrics[name]['trials'] == trials, metrics
  assert math.isfinite(metrics[name]['mean']), metrics
  assert math.isfinite(metrics[name]['std']), metrics
  assert metrics[name]['std'] >= 0, metrics


# ------------------------------------------------------------ fixtures ----


@pytest.fixture(scope='module')
def table_run(tmp_path_factory):
  """The tiny table config trained to step 10, then resumed to step 20."""
  root = tmp_path_factory.mktemp('table')
  csv = root / 'linear.csv'
  write_linear_table(csv)
  model_dir = root / 'run'
  command = ['--gin_file=tiny/table.gin', f'--data_path={csv}',
             f'--model_dir={model_dir}']
  first = _launch('train', *command, '--gin_bindings=TrainConfig.num_steps=10')
  assert first.returncode == 0, _describe(first)
  first_step = _latest_step(model_dir)
  first_metrics = _read_json(model_dir / 'metrics.json')
  second = _launch('train', *command,
                   '--gin_bindings=TrainConfig.num_steps=20')
  return {'csv': str(csv), 'model_dir': str(model_dir), 'command': command,
          'first': first, 'first_step': first_step,
          'first_metrics': first_metrics, 'second': second}


@pytest.fixture(scope='module')
def image_run(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('image') / 'run'
  proc = _launch('train', '--gin_file=tiny/image.gin',
                 f'--model_dir={model_dir}')
  return {'model_dir': str(model_dir), 'proc': proc}


def _bad_cases(root, table):
  """name -> (launcher, args, directory that must stay as it was, expected).

  ``expected`` is a piece of the one-line error message.
  """
  other_csv = root / 'three_columns.csv'
  write_linear_table(other_csv, columns=3)
  not_a_run = root / 'not_a_run'
  not_a_run.mkdir()
  (not_a_run / 'notes.txt').write_text('not a pm_zoo run\n')
  gin = '--gin_file=tiny/table.gin'
  data = f"--data_path={table['csv']}"
  model_dir = f"--model_dir={table['model_dir']}"
  return {
      'missing_data_file': (
          'train', [gin, f"--data_path={root / 'missing.csv'}",
                    f"--model_dir={root / 'new_missing'}"],
          root / 'new_missing', 'missing.csv'),
      'unknown_source': (
          'train', [gin, data, "--gin_bindings=dataset.source = 'nope'",
                    f"--model_dir={root / 'new_source'}"],
          root / 'new_source', "'nope'"),
      'gin_parameter_typo': (
          'train', [gin, data, '--gin_bindings=TrainConfig.num_stepz = 3',
                    f"--model_dir={root / 'new_typo'}"],
          root / 'new_typo', 'num_stepz'),
      'gin_file_typo': (
          'train', ['--gin_file=tiny/tabel.gin', data,
                    f"--model_dir={root / 'new_file'}"],
          root / 'new_file', 'tabel.gin'),
      'other_feature_count': (
          'train', [gin, f'--data_path={other_csv}', model_dir],
          table['model_dir'], 'features of shape'),
      'other_model': (
          'train', [gin, data, '--gin_bindings=GaussianVAE.latent_dim=5',
                    model_dir],
          table['model_dir'], 'different model'),
      'eval_not_a_run': (
          'eval', [f'--model_dir={not_a_run}'], not_a_run, 'config.gin'),
  }


@pytest.fixture(scope='module')
def bad_runs(tmp_path_factory, table_run):
  """Runs every bad-input case; name -> (proc, before, after, expected)."""
  assert table_run['second'].returncode == 0, _describe(table_run['second'])
  root = tmp_path_factory.mktemp('bad')
  cases = _bad_cases(root, table_run)
  before = {name: _snapshot(case[2]) if os.path.exists(case[2]) else None
            for name, case in cases.items()}
  with concurrent.futures.ThreadPoolExecutor(PARALLEL_RUNS) as pool:
    futures = {name: pool.submit(_launch, launcher, *args,
                                 timeout=ERROR_TIMEOUT)
               for name, (launcher, args, _, _) in cases.items()}
    procs = {name: f.result() for name, f in futures.items()}
  return {name: (procs[name], before[name],
                 _snapshot(case[2]) if os.path.exists(case[2]) else None,
                 case[3])
          for name, case in cases.items()}


# ------------------------------------------------------------ table run ----


def test_table_run_writes_a_complete_run_dir(table_run):
  from pm_zoo.data import load_dataset  # pylint: disable=g-import-not-at-top
  second = table_run['second']
  assert second.returncode == 0, _describe(second)
  assert 'nrmse' in second.stdout and 'metrics written to' in second.stdout
  model_dir = table_run['model_dir']
  for name in ('config.gin', 'operative_config.gin', 'data.json',
               'standardizer.json', 'model_spec.json', 'metrics.json'):
    assert os.path.isfile(os.path.join(model_dir, name)), name

  with open(os.path.join(model_dir, 'config.gin')) as f:
    assert "dataset.source = 'table'" in f.read()
  with open(os.path.join(model_dir, 'operative_config.gin')) as f:
    operative = f.read()
  assert operative.strip() and 'TrainConfig' in operative

  data = _read_json(os.path.join(model_dir, 'data.json'))
  assert data['source'] == 'table'
  assert data['path'] == os.path.abspath(table_run['csv'])

  # Statistics of the train split only, not of all rows.
  splits = load_dataset('table', table_run['csv'])
  everything = np.concatenate([splits.train, splits.test])
  standardizer = _read_json(os.path.join(model_dir, 'standardizer.json'))
  assert standardizer['feature_shape'] == [5]
  np.testing.assert_allclose(standardizer['mean'], splits.train.mean(0),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(standardizer['std'], splits.train.std(0),
                             rtol=1e-5, atol=1e-5)
  assert not np.allclose(standardizer['mean'], everything.mean(0),
                         rtol=1e-5, atol=1e-5)

  spec = _read_json(os.path.join(model_dir, 'model_spec.json'))
  assert spec['kind'] == 'table' and spec['feature_shape'] == [5]
  assert spec['latent_dim'] == 3 and spec['variable_shapes']

  assert _latest_step(model_dir) == 20
  summaries = _summaries(model_dir)
  assert ('loss', 20) in {(tag, step) for tag, step, _ in summaries}

  metrics = _read_json(os.path.join(model_dir, 'metrics.json'))
  assert metrics['step'] == 20 and metrics['test_examples'] == len(splits.test)
  _check_metric(metrics, 'nrmse', trials=2)


def test_table_run_resumes_from_its_checkpoint(table_run):
  first, second = table_run['first'], table_run['second']
  assert first.returncode == 0 and second.returncode == 0, _describe(second)
  assert 'resumed from' not in first.stderr
  assert table_run['first_step'] == 10
  assert table_run['first_metrics']['step'] == 10
  resumed = [line for line in second.stderr.splitlines()
             if 'resumed from' in line]
  assert len(resumed) == 1, second.stderr[-4000:]
  assert 'ckpt-10' in resumed[0] and 'at step 10' in resumed[0]
  # It trained steps 11-20 only: no log line of step 10.
  assert 'step 20/20' in second.stderr
  assert 'step 10/20' not in second.stderr
  assert _latest_step(table_run['model_dir']) == 20


def test_eval_rewrites_the_same_metrics(table_run):
  assert table_run['second'].returncode == 0, _describe(table_run['second'])
  path = os.path.join(table_run['model_dir'], 'metrics.json')
  with open(path) as f:
    written_by_train = f.read()
  os.remove(path)
  proc = _launch('eval', f"--model_dir={table_run['model_dir']}")
  assert proc.returncode == 0, _describe(proc)
  assert 'nrmse' in proc.stdout and 'trials' in proc.stdout
  assert 'step 20' in proc.stdout
  with open(path) as f:
    assert f.read() == written_by_train


def test_train_at_num_steps_does_nothing(table_run):
  assert table_run['second'].returncode == 0, _describe(table_run['second'])
  checkpoints = os.path.join(table_run['model_dir'], 'checkpoints')
  before = _snapshot(checkpoints)
  proc = _launch('train', *table_run['command'],
                 '--gin_bindings=TrainConfig.num_steps=20')
  assert proc.returncode == 0, _describe(proc)
  assert 'nothing to do' in proc.stderr
  assert 'training done' not in proc.stdout
  assert 'step 20/20' not in proc.stderr
  assert _snapshot(checkpoints) == before
  assert _latest_step(table_run['model_dir']) == 20


# ------------------------------------------------------------ image run ----


def test_image_run_writes_psnr_figure_and_image_summary(image_run):
  proc, model_dir = image_run['proc'], image_run['model_dir']
  assert proc.returncode == 0, _describe(proc)
  metrics = _read_json(os.path.join(model_dir, 'metrics.json'))
  _check_metric(metrics, 'psnr', trials=2)
  assert 'nrmse' not in metrics
  assert metrics['step'] == 10
  figure = os.path.join(model_dir, 'figures', 'inpainting.png')
  with open(figure, 'rb') as f:
    assert f.read(8) == PNG_MAGIC
  images = {step for tag, step, plugin in _summaries(model_dir)
            if tag == 'inpainting' and plugin == 'images'}
  assert images == {5, 10}


# ------------------------------------------------------------ bad input ----


@pytest.mark.parametrize('name', [
    'missing_data_file', 'unknown_source', 'gin_parameter_typo',
    'gin_file_typo', 'other_feature_count', 'other_model', 'eval_not_a_run'])
def test_bad_input_is_one_line_and_writes_nothing(bad_runs, name):
  proc, before, after, expected = bad_runs[name]
  assert proc.returncode == 2, _describe(proc)
  assert 'Traceback' not in proc.stderr, _describe(proc)
  # Exactly one line: TensorFlow's start-up lines are hidden too.
  lines = proc.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), _describe(proc)
  assert expected in lines[0], lines[0]
  assert after == before  # None: the new model_dir was never created.


# ------------------------------------------------------------ installed ----


def _installed_script(name):
  bin_dir = os.path.dirname(sys.executable)
  path = shutil.which(name, path=bin_dir + os.pathsep +
                      os.environ.get('PATH', ''))
  if path is None:
    pytest.fail(f'console script {name} not found: run `pip install .[test]` '
                'in the repository first')
  return path


def test_console_scripts_are_installed(tmp_path):
  assert _installed_script('pm-train')
  env = launcher_env()
  env.pop('PYTHONPATH')  # The installed package, not the source tree.
  proc = subprocess.run([_installed_script('pm-eval'), '--help'],
                        cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=ERROR_TIMEOUT, check=False)
  assert proc.returncode == 0, (
      f'{_describe(proc)}\n(an old install? run `pip install .[test]` again)')
  assert '--model_dir' in proc.stdout
  assert 'pm-eval' in proc.stdout
