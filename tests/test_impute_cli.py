"""pm-impute: CSV in, CSV out, the same imputations as the Python imputer and
the SavedModel; streaming, atomic outputs and every bad input refused."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import launcher_env
from pm_zoo.errors import UserError
from pm_zoo.launch import common
from pm_zoo.serving import impute_csv
from pm_zoo.serving import loading
import serving_fixtures


@pytest.fixture(scope='module')
def imputer(tmp_path_factory):
  return serving_fixtures.fitted_imputer(tmp_path_factory)


@pytest.fixture(scope='module')
def runner(imputer):
  return loading.InProcess(imputer.serving_module_)


@pytest.fixture(scope='module')
def incomplete(tmp_path_factory):
  """(path, values with NaN): header, 30 rows of linear data with empty,
  NaN and NA cells; row 0 has nothing observed, row 1 nothing missing."""
  x = serving_fixtures.table(tmp_path_factory)[0][50:80]
  holes = np.random.default_rng(2).random(x.shape) < 0.4
  holes[0], holes[1] = True, False
  lines = ['"c0",c1,c2,c3,c4']  # a quoted name: the header is kept as written
  for row, row_holes in zip(x, holes):
    lines.append(','.join(['', 'NaN', 'NA'][j % 3] if hole else f'{v:.6g}'
                          for j, (v, hole) in enumerate(zip(row, row_holes))))
  path = tmp_path_factory.mktemp('impute_cli') / 'incomplete.csv'
  path.write_text('\n'.join(lines) + '\n')
  values = np.array([[float(c) if c not in ('', 'NaN', 'NA') else np.nan
                      for c in line.split(',')] for line in lines[1:]])
  return str(path), values


@pytest.fixture(scope='module')
def launched(imputer, incomplete, tmp_path_factory):
  """pm-impute runs, started together: --saved_model and --model_dir (on
  the imputer's saved copy)."""
  base, _ = serving_fixtures.exported(tmp_path_factory)
  work = tmp_path_factory.mktemp('impute_cli_runs')
  saved = imputer.save(str(work / 'saved_imputer'))
  runs = {
      'saved_model': [f'--saved_model={base}', f'--output={work}/a.csv',
                      f'--samples_output={work}/a.npy', '--batch_size=7'],
      'model_dir': [f'--model_dir={saved}', f'--output={work}/b.csv'],
  }
  common_args = [f'--input={incomplete[0]}',
                 f'--num_samples={serving_fixtures.TINY["num_samples"]}',
                 f'--seed={serving_fixtures.TINY["random_state"]}']
  procs = {name: subprocess.Popen(
      [sys.executable, '-m', 'launch.impute', *args, *common_args],
      cwd=serving_fixtures.REPO, env=launcher_env(), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for name, args in runs.items()}
  results = {name: (p.wait(timeout=serving_fixtures.SUBPROCESS_TIMEOUT),
                    p.stdout.read(), p.stderr.read())
             for name, p in procs.items()}
  return work, results


def _read(path):
  with open(path) as f:
    lines = f.read().splitlines()
  return lines[0], np.array([[float(c) for c in l.split(',')]
                             for l in lines[1:]])


def test_cli_saved_model_and_model_dir_agree_with_python(launched, imputer,
                                                         incomplete):
  work, results = launched
  for name in ('saved_model', 'model_dir'):
    code, _, err = results[name]
    assert code == 0, err[-3000:]
    assert 'pm-impute: 30/30 rows (100%)' in err
  header_a, a = _read(work / 'a.csv')
  header_b, b = _read(work / 'b.csv')
  assert header_a == header_b == '"c0",c1,c2,c3,c4'
  python = imputer.transform(incomplete[1])
  # Same draws; batches of other sizes (7 here, 1024 in Python) may round
  # the network's float32 sums differently, by ~1e-7.
  np.testing.assert_allclose(a, python, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  samples = np.load(work / 'a.npy')
  assert samples.shape == (30, serving_fixtures.TINY['num_samples'], 5)
  np.testing.assert_allclose(samples.mean(axis=1), a, rtol=1e-5, atol=1e-6)


def test_cli_copies_observed_cells_verbatim(launched, incomplete):
  work, _ = launched
  with open(incomplete[0]) as f:
    given = f.read().splitlines()
  with open(work / 'a.csv') as f:
    written = f.read().splitlines()
  assert len(written) == len(given)
  assert written[2] == given[2]  # row 1: nothing missing, unchanged
  # Row 0: nothing observed, imputed from the prior.
  assert set(given[1].split(',')) <= {'', 'NaN', 'NA'}
  assert all(float(c) == float(c) for c in written[1].split(','))
  for row_in, row_out in zip(given[1:], written[1:]):
    for cell_in, cell_out in zip(row_in.split(','), row_out.split(',')):
      if cell_in not in ('', 'NaN', 'NA'):
        assert cell_out == cell_in


def test_batches_and_delimiter_do_not_change_the_result(runner, incomplete,
                                                        tmp_path):
  path, _ = incomplete
  logged = []
  impute_csv.impute_csv(runner, path, str(tmp_path / 'one.csv'),
                        num_samples=3, seed=1, batch_size=1024,
                        log=logged.append)
  with open(path) as f:
    (tmp_path / 'semi.csv').write_text(f.read().replace(',', ';'))
  impute_csv.impute_csv(runner, str(tmp_path / 'semi.csv'),
                        str(tmp_path / 'many.csv'), num_samples=3, seed=1,
                        batch_size=4, log=logged.append)
  one = (tmp_path / 'one.csv').read_text().splitlines()
  many = (tmp_path / 'many.csv').read_text().splitlines()
  assert many[0] == '"c0";c1;c2;c3;c4' and len(many) == len(one)
  np.testing.assert_allclose(
      [[float(c) for c in line.split(';')] for line in many[1:]],
      [[float(c) for c in line.split(',')] for line in one[1:]],
      rtol=1e-5, atol=1e-6)
  assert any(l.startswith('imputed ') for l in logged)


def _bad_inputs(tmp_path):
  good_row = '0.1,0.2,0.3,0.4,0.5\n'
  return {
      'columns': ('c0,c1,c2\n1,2,3\n', 'has 3 columns but the model was '
                  'trained on 5'),
      'non_numeric': ('c0,c1,c2,c3,c4\n' + good_row + '1,2,abc,4,5\n',
                      r"line 3, column 3 \('c2'\): 'abc' is not a number"),
      'empty': ('', 'is empty'),
      'blank_lines': ('\n \n\n', 'is empty'),
      'header_only': ('c0,c1,c2,c3,c4\n', 'header but no data rows'),
      'inf': ('c0,c1,c2,c3,c4\n' + good_row + '1,inf,3,4,5\n',
              r'1 infinite values \(first at line 3, column 2\)'),
      'ragged': ('c0,c1,c2,c3,c4\n' + good_row + '1,2,3\n',
                 'line 3 has 3 fields, expected 5'),
  }


@pytest.mark.parametrize('case', sorted(_bad_inputs(None)))
def test_bad_csv_gets_one_line_exit_2_and_writes_nothing(runner, tmp_path,
                                                         capsys, case):
  text, message = _bad_inputs(tmp_path)[case]
  path = tmp_path / 'in.csv'
  path.write_text(text)
  out = tmp_path / 'out.csv'
  with pytest.raises(UserError, match=message):
    impute_csv.impute_csv(runner, str(path), str(out),
                          samples_output=str(tmp_path / 's.npy'),
                          batch_size=1, log=lambda line: None)
  # What the launcher makes of it: one line on stderr, exit status 2.
  with pytest.raises(SystemExit) as exit_info:
    common.run_guarded(lambda: impute_csv.impute_csv(
        runner, str(path), str(out), log=lambda line: None))
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and err.startswith('error: ')
  assert serving_fixtures.files_under(tmp_path) == ['in.csv']


def test_outputs_are_checked_before_anything_runs(runner, incomplete,
                                                  tmp_path):
  path, _ = incomplete
  (tmp_path / 'out.csv').write_text('old\n')
  with pytest.raises(UserError, match='exists: pass --overwrite'):
    impute_csv.impute_csv(runner, path, str(tmp_path / 'out.csv'))
  with pytest.raises(UserError, match='same file'):
    impute_csv.impute_csv(runner, path, str(tmp_path / 'x.npy'),
                          samples_output=str(tmp_path / 'x.npy'))
  with pytest.raises(UserError, match='is the input file'):
    impute_csv.impute_csv(runner, path, path, overwrite=True)
  impute_csv.impute_csv(runner, path, str(tmp_path / 'out.csv'),
                        overwrite=True, log=lambda line: None)
  assert (tmp_path / 'out.csv').read_text().startswith('"c0",c1')
  assert sorted(os.listdir(tmp_path)) == ['out.csv']


def test_model_dir_without_checkpoint_is_refused(imputer, tmp_path):
  run = tmp_path / 'run'  # stopped before its first checkpoint
  shutil.copytree(imputer.model_dir_, run,
                  ignore=shutil.ignore_patterns('checkpoints'))
  with pytest.raises(UserError, match='has no checkpoint yet'):
    loading.from_model_dir(str(run))
  with pytest.raises(UserError, match='holds no SavedModel'):
    loading.SavedModelRunner(str(tmp_path))
