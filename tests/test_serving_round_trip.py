"""benchmarks/serving_round_trip.py on a tiny table: Python, both pm-impute
paths and the SavedModel in a TensorFlow-only process impute the same cells
with the same bits; a fitted model is reused only with the same settings."""
import json
import os
import re
import sys

import numpy as np
import pytest

import conftest
from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo import metrics
from pm_zoo import run_dir
from pm_zoo.data import load_dataset
from pm_zoo.data import readers
from pm_zoo.data import Standardizer
from pm_zoo.errors import UserError
import serving_fixtures

if conftest.REPO not in sys.path:  # benchmarks/ is not installed
  sys.path.insert(0, conftest.REPO)
# pylint: disable-next=g-import-not-at-top,wrong-import-position
from benchmarks import serving_round_trip

ROWS = 300
FLAGS = ['--gin_file=tiny/table.gin', '--steps=50', '--num_samples=4',
         '--seed=2', '--rest_column=c3']


@pytest.fixture(scope='module')
def round_trip(tmp_path_factory):
  """(results, JSON written, work_dir, table path): one run of main."""
  root = tmp_path_factory.mktemp('round_trip')
  table = root / 'linear.csv'
  conftest.write_linear_table(table, rows=ROWS, columns=5, seed=4)
  work = root / 'work'
  results = serving_round_trip.main([f'--table={table}', f'--work_dir={work}',
                                     *FLAGS])
  with open(work / 'round_trip.json') as f:
    written = json.load(f)
  return results, written, work, table


def test_every_path_imputes_the_same_cells(round_trip):
  results, written, work, _ = round_trip
  assert written == json.loads(json.dumps(results))
  given, names = readers.read_table(str(work / 'incomplete.csv'))
  assert names == ('c0', 'c1', 'c2', 'c3', 'c4')
  assert len(given) == results['fit']['held_out_rows'] == ROWS // 10
  holes = np.isnan(given)
  assert holes[0].all() and not holes[1].any()  # nothing observed / complete
  cells = int(holes.sum())
  assert results['imputed_cells'] == cells > len(given)
  assert set(results['paths']) == set(serving_round_trip.PATHS)
  for row in results['paths'].values():
    assert row == {'max_abs_diff': 0.0, 'cells_equal': cells}
  assert results['observed_identical']
  assert results['tf_only']['blocked_imports'] == []
  assert results['tf_only']['importable_blocked'] == []
  assert 'serving_default' in results['tf_only']['signatures']
  assert results['agree']
  # The CLIs' files themselves: finite everywhere, observed cells kept.
  for name in ('cli_model_dir.csv', 'cli_saved_model.csv'):
    values, _ = readers.read_table(str(work / name))
    assert np.isfinite(values).all()
    np.testing.assert_array_equal(values[~holes], given[~holes])


def test_nrmse_is_scored_against_the_held_out_truth(round_trip):
  results, _, work, _ = round_trip
  model_dir = str(work / 'model')
  configs.parse([os.path.join(model_dir, run_dir.CONFIG)])
  truth = load_dataset(**experiment.data_options(model_dir)).test
  given, _ = readers.read_table(str(work / 'incomplete.csv'))
  observed = np.isfinite(given).astype(np.float32)
  np.testing.assert_array_equal(given[observed > 0], truth[observed > 0])
  imputed, _ = readers.read_table(str(work / 'cli_saved_model.csv'))
  means = Standardizer.load(os.path.join(model_dir, run_dir.STANDARDIZER)).mean
  assert results['nrmse']['posterior_matching'] == pytest.approx(
      metrics.nrmse(truth, imputed, observed), rel=1e-6)
  assert results['nrmse']['column_means'] == pytest.approx(
      metrics.nrmse(truth, np.broadcast_to(means, truth.shape), observed),
      rel=1e-6)


def test_rest_bodies_answered_without_pm_zoo(round_trip):
  results, _, work, _ = round_trip
  rest = results['rest']
  assert rest['column_name'] == 'c3' and rest['column'] == 3
  # impute, and sample with the export's S and seed, answer as transform.
  assert rest['impute'] == rest['python_transform'] == rest['sample']
  assert np.isfinite(rest['conditional_log_prob'])
  assert rest['encode_shapes']['samples'] == [1, 4, 3]  # S=4, latent 3
  with open(work / 'rest_requests.json') as f:
    requests = json.load(f)
  body = requests['conditional_log_prob']['inputs']
  assert body['mask'] == [[1.0, 1.0, 1.0, 0.0, 1.0]]
  # Held-out row 1 as written in the CSV: the same float32 values.
  given, _ = readers.read_table(str(work / 'incomplete.csv'))
  np.testing.assert_array_equal(np.float32(body['x'][0]), given[1])
  assert body['x'][0][3] == rest['true_value']
  assert requests['impute']['inputs']['x'][0][3] == 0.0  # missing: sent as 0
  assert requests['sample']['inputs']['num_samples'] == 4


def test_a_fitted_model_is_reused_only_with_its_settings(round_trip, capsys):
  results, _, work, table = round_trip
  model_dir = str(work / 'model')
  x, _ = readers.read_table(str(table))
  training = os.path.join(model_dir, run_dir.TRAINING)
  stamp = os.stat(training).st_mtime_ns
  imputer, seconds = serving_round_trip.fitted_imputer(
      x, model_dir, 'tiny/table.gin', 50, 2, log=lambda line: None)
  assert seconds is None and imputer.step_ == results['fit']['step'] == 50
  assert os.stat(training).st_mtime_ns == stamp  # not trained again
  with pytest.raises(UserError, match='num_steps=50 .asked: 60.'):
    serving_round_trip.fitted_imputer(x, model_dir, 'tiny/table.gin', 60, 2)
  with pytest.raises(UserError, match='rows'):
    serving_round_trip.fitted_imputer(x[:-1], model_dir, 'tiny/table.gin',
                                      50, 2)
  before = serving_fixtures.files_under(work)
  with pytest.raises(SystemExit) as exit_info:
    serving_round_trip.main([f'--table={table}', f'--work_dir={work}',
                             *FLAGS[:1], '--steps=60', *FLAGS[2:]])
  assert exit_info.value.code == 2
  errors = [l for l in capsys.readouterr().err.splitlines()
            if l.startswith('error:')]
  assert len(errors) == 1 and 'num_steps=50' in errors[0]
  assert serving_fixtures.files_under(work) == before


@pytest.mark.parametrize('flags, message', [
    (['--table={tmp}/absent.csv'], '--table=.*absent.csv does not exist'),
    (['--blank_fraction=1.0'], 'blank_fraction'),
    (['--rest_column=pH'], "--rest_column='pH' is not a column.*c0, c1"),
])
def test_bad_flags_stop_before_anything_is_written(tmp_path, capsys, flags,
                                                   message):
  table = tmp_path / 'linear.csv'
  conftest.write_linear_table(table, rows=20, columns=5)
  work = tmp_path / 'work'
  with pytest.raises(SystemExit) as exit_info:
    serving_round_trip.main([f'--table={table}', f'--work_dir={work}',
                             *[f.format(tmp=tmp_path) for f in flags]])
  assert exit_info.value.code == 2
  lines = [l for l in capsys.readouterr().err.splitlines()
           if l.startswith('error:')]
  assert len(lines) == 1
  assert re.search(message, lines[0]), lines[0]
  assert not work.exists()
