"""Acquisition over whole runs: the lookahead stage, the episodes, the
outputs, pm-acquire end to end and its bad inputs."""
import json
import os
import shutil
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from conftest import launcher_env
from conftest import REPO
from conftest import write_linear_table
from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo import matching
from pm_zoo import run_dir
from pm_zoo.acquisition import task
from pm_zoo.errors import UserError

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
TIMEOUT = 300


def _is_png(path):
  with open(path, 'rb') as f:
    return f.read(8) == PNG_MAGIC


@pytest.fixture(scope='module')
def image_run(tmp_path_factory):
  """tiny/acquisition_image.gin trained, its lookahead trained, episodes run."""
  model_dir = str(tmp_path_factory.mktemp('image') / 'run')
  configs.parse(['tiny/acquisition_image.gin'])
  experiment.train(model_dir)
  run = task.load_run(model_dir)
  first = task.train_lookahead(run)
  result = task.acquire(run)
  configs.reset()
  return {'model_dir': model_dir, 'train': first, 'result': result}


def test_episodes_write_curves_and_trajectories(image_run):
  model_dir, result = image_run['model_dir'], image_run['result']
  assert image_run['train']['nonfinite_steps'] == 0
  with open(os.path.join(model_dir, 'acquisition.json')) as f:
    stored = json.load(f)
  assert stored == json.loads(json.dumps(result))
  assert result['num_instances'] == 6 and result['num_acquisitions'] == 5
  assert result['lookahead_step'] == 6 and result['model_step'] == 10
  assert result['entropy'] == 'analytic'
  assert set(result['methods']) == {'random', 'lookahead', 'sampling'}
  first = {m: r['rmse'][0] for m, r in result['methods'].items()}
  for name, curve in result['methods'].items():
    assert len(curve['rmse']) == len(curve['rmse_sem']) == 6
    assert all(np.isfinite(curve['rmse'])) and min(curve['rmse']) > 0
    # Step 0 is the same for every method: empty mask, same imputation seeds.
    assert curve['rmse'][0] == first['random']
    acquired = result['trajectory']['methods'][name]['acquired']
    assert len(set(acquired)) == 5 and max(acquired) < 64
  assert result['report_steps'] == [0]
  assert 'mean_relative_difference' in result['lookahead_vs_sampling']
  figures = os.path.join(model_dir, 'figures')
  for name in ('acquisition.png', 'acquisition_trajectory_random.png',
               'acquisition_trajectory_lookahead.png',
               'acquisition_trajectory_sampling.png'):
    assert _is_png(os.path.join(figures, name)), name
  lookahead = task.lookahead_dir(model_dir)
  for name in ('base.json', 'config.gin', 'operative_config.gin',
               'model_spec.json', 'training.json'):
    assert os.path.exists(os.path.join(lookahead, name)), name
  assert tf.train.latest_checkpoint(os.path.join(lookahead, 'checkpoints'))


def test_acquirer_answers_and_refuses_bad_instances(image_run):
  acquirer = task.Acquirer.from_run(image_run['model_dir'],
                                    sampling_samples=2)
  x = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
  mask = np.zeros_like(x)
  mask[0, 0, :4] = 1.0
  for method in ('lookahead', 'sampling'):
    index, scores = acquirer.next_feature(x, mask, method)
    assert scores.shape == (2, 64) and np.all(np.isinf(scores[0, :4]))
    assert index[0] >= 4 and 0 <= index[1] < 64
  with pytest.raises(UserError, match='mask has shape'):
    acquirer.next_feature(x, mask[:, :4])
  with pytest.raises(UserError, match='every feature observed'):
    acquirer.next_feature(x, np.ones_like(x))
  with pytest.raises(UserError, match="'lookahead' or 'sampling'"):
    acquirer.next_feature(x, mask, 'oracle')


def test_a_lookahead_network_of_another_model_step_is_refused(image_run):
  model_dir = image_run['model_dir']
  base = os.path.join(task.lookahead_dir(model_dir), task.BASE)
  run_dir.write_json(base, {'step': 3})
  try:
    with pytest.raises(UserError, match='trained on step 3'):
      run = task.load_run(model_dir)
      task.restore_lookahead(model_dir, run.model, run.step)
  finally:
    run_dir.write_json(base, {'step': 10})


def test_unknown_methods_are_refused(image_run):
  run = task.load_run(image_run['model_dir'],
                      gin_bindings=["AcquisitionConfig.methods = ['oracle']"])
  with pytest.raises(UserError, match='oracle'):
    task.acquire(run, output_dir=os.path.join(image_run['model_dir'], 'x'))
  assert not os.path.exists(os.path.join(image_run['model_dir'], 'x'))


def test_mnist16_experiments_carry_the_papers_acquisition_model():
  configs.parse(['mnist16_conv.gin'])
  assert gin.query_parameter('GaussianVAE.latent_dim') == 10
  assert tuple(gin.query_parameter('ConvEncoder.layers')) == (
      (32, 3, 1), (32, 3, 2), (64, 3, 2), (64, 1, 1))
  assert experiment.dataset()['image_size'] == 16
  mask = gin.query_parameter('TrainConfig.train_mask').scoped_configurable_fn()
  assert (mask.min_observed, mask.max_observed) == (0, 51)
  model = matching.PosteriorMatchingVAE((16, 16, 1))
  x = tf.zeros([2, 16, 16, 1])
  assert model(x, x).shape == [2]  # log q_theta(target | x_o) per row
  assert model.latent_shape == (10,)
  assert model.vae(x).shape == [2, 16, 16, 1]
  configs.parse(['mnist16_mlp.gin'])
  model = matching.PosteriorMatchingVAE((16, 16, 1))
  assert model.vae(x).shape == [2, 16, 16, 1]


# ------------------------------------------------------------ launcher ----


def _acquire(*args):
  return subprocess.Popen(
      [sys.executable, '-m', 'launch.acquire', *map(str, args)],
      cwd=REPO, env=launcher_env(), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def _finish(proc):
  stdout, stderr = proc.communicate(timeout=TIMEOUT)
  return proc.returncode, stdout, stderr


def test_pm_acquire_on_a_table_end_to_end(tmp_path):
  csv = tmp_path / 'linear.csv'
  write_linear_table(csv, rows=200)
  model_dir = tmp_path / 'run'
  configs.parse(['tiny/acquisition_table.gin'])
  experiment.train(str(model_dir), data_path=str(csv))
  # A copy without a lookahead network: one error line, exit 2, nothing
  # written; the run itself trains one and runs the episodes.
  bare = tmp_path / 'bare'
  shutil.copytree(model_dir, bare)
  before = sorted(os.listdir(bare))
  refused = _acquire(f'--model_dir={bare}')
  done = _acquire(f'--model_dir={model_dir}', '--train_lookahead')
  code, _, stderr = _finish(refused)
  assert code == 2, stderr[-3000:]
  lines = stderr.strip().splitlines()
  assert lines[-1].startswith('error: ') and '--train_lookahead' in lines[-1]
  assert sorted(os.listdir(bare)) == before
  code, stdout, stderr = _finish(done)
  assert code == 0, stdout + stderr[-3000:]
  assert 'lookahead training done' in stdout
  for method in ('random', 'lookahead', 'sampling'):
    assert any(line.startswith(method) for line in stdout.splitlines())
  with open(model_dir / 'acquisition.json') as f:
    result = json.load(f)
  # 5 columns: the episodes acquire all of them, one at a time.
  assert result['num_acquisitions'] == 5 and result['num_instances'] == 7
  assert result['rmse_units'].startswith('standardised')
  for name, curve in result['methods'].items():
    assert len(curve['rmse']) == 6 and curve['rmse'][-1] == 0.0
    assert all(v > 0 for v in curve['rmse'][:-1]), name
    trajectory = result['trajectory']['methods'][name]
    assert sorted(trajectory['acquired']) == [0, 1, 2, 3, 4]
    assert sorted(trajectory['acquired_names']) == ['c0', 'c1', 'c2', 'c3',
                                                    'c4']
  assert _is_png(model_dir / 'figures' / 'acquisition.png')
  assert not os.path.exists(model_dir / 'figures' /
                            'acquisition_trajectory_random.png')


def test_export_adds_next_feature_when_the_run_has_a_lookahead(image_run,
                                                                tmp_path):
  # pylint: disable=g-import-not-at-top
  from pm_zoo.acquisition import export as acquisition_export
  from pm_zoo.serving import export as export_lib
  model_dir = image_run['model_dir']
  assert acquisition_export.PROVIDER in export_lib.SIGNATURE_PROVIDERS
  path = export_lib.export(model_dir, str(tmp_path / 'export'))
  loaded = tf.saved_model.load(path)
  served = loaded.signatures['next_feature']
  x = np.random.default_rng(1).random((3, 8, 8, 1)).astype(np.float32)
  mask = np.zeros_like(x)
  mask[:, 2:4] = 1.0
  out = served(x=tf.constant(x), mask=tf.constant(mask))
  acquirer = task.Acquirer.from_run(model_dir)
  index, scores = acquirer.next_feature(x, mask)
  np.testing.assert_array_equal(out['index'], index)
  np.testing.assert_allclose(out['expected_entropy'], scores, rtol=1e-5)


def test_export_adds_nothing_without_a_lookahead(tmp_path):
  # pylint: disable=g-import-not-at-top
  from pm_zoo.acquisition import export as acquisition_export

  class Context:
    model_dir = str(tmp_path)

  assert acquisition_export.next_feature_signatures(Context()) == {}
