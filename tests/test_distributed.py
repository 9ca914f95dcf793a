"""Distributed training gives the numbers of one process.

Two ``pm-train`` workers on loopback (``MultiWorkerMirroredStrategy``, each
with half of every global batch) continue a run to the weights that one
process reaches from the same checkpoint, and only the chief writes into the
run directory. One mirrored strategy serves several models in one process.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import launcher_env
from conftest import REPO
from conftest import write_linear_table
from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo.training import strategy as strategy_lib
from pm_zoo.training import trainer as trainer_lib
import test_trainer

# Both workers must be done within this many seconds (a run needs ~20 s).
WORKERS_TIMEOUT = 240
# Weights after 3 steps on two workers vs one process (float32 sums in
# another order); observed differences are printed.
RTOL, ATOL = 1e-4, 1e-5
BINDINGS = ['TrainConfig.batch_size = 32', 'TrainConfig.checkpoint_every = 3',
            'TrainConfig.log_every = 3', 'TrainConfig.summary_every = 3']


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def model_weights(model_dir):
  """{checkpoint key: array} of the model's variables in the latest ckpt."""
  reader = tf.train.load_checkpoint(os.path.join(model_dir, 'checkpoints'))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith('model/') and k.endswith('VARIABLE_VALUE')
          and 'OPTIMIZER_SLOT' not in k}


def train_here(model_dir, csv, num_steps, bindings=BINDINGS):
  """pm-train's training of tiny/table.gin, in this process."""
  configs.parse(['tiny/table.gin'],
                list(bindings) + [f'TrainConfig.num_steps = {num_steps}'])
  return experiment.train(str(model_dir), 'default', data_path=str(csv))


def _files(directory):
  return sorted(os.path.relpath(os.path.join(d, n), directory)
                for d, _, names in os.walk(directory) for n in names)


def _run_workers(model_dir, csv, tmp_path, num_steps):
  """Runs two pm-train workers to the end; returns their logs."""
  ports = _free_ports(2)
  cluster = {'worker': [f'127.0.0.1:{p}' for p in ports]}
  procs, logs = [], []
  deadline = time.monotonic() + WORKERS_TIMEOUT
  try:
    for index in range(2):
      env = launcher_env()
      env['TF_CONFIG'] = json.dumps(
          {'cluster': cluster, 'task': {'type': 'worker', 'index': index}})
      # Scratch space of the worker (a non-chief saves its copy there).
      env['TMPDIR'] = str(tmp_path / f'tmp_{index}')
      os.makedirs(env['TMPDIR'])
      log = open(tmp_path / f'worker_{index}.log', 'w+')
      logs.append(log)
      procs.append(subprocess.Popen(
          [sys.executable, '-m', 'launch.train', '--gin_file=tiny/table.gin',
           *[f'--gin_bindings={b}' for b in BINDINGS],
           f'--gin_bindings=TrainConfig.num_steps = {num_steps}',
           f'--data_path={csv}', f'--model_dir={model_dir}',
           '--strategy=multi_worker', '--noevaluate'],
          cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
      proc.wait(timeout=max(1.0, deadline - time.monotonic()))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  texts = []
  for log in logs:
    log.seek(0)
    texts.append(log.read())
    log.close()
  for index, (proc, text) in enumerate(zip(procs, texts)):
    assert proc.returncode == 0, f'worker {index}:\n{text[-4000:]}'
  return texts


def test_two_workers_continue_a_run_like_one_process(tmp_path):
  csv = tmp_path / 'table.csv'
  write_linear_table(csv, rows=256)
  # A 3-step run, then the same run continued to step 6 once in this process
  # and once by two workers on loopback, from the same checkpoint.
  single, workers = tmp_path / 'single', tmp_path / 'workers'
  train_here(single, csv, 3)
  shutil.copytree(single, workers)
  start = model_weights(workers)
  before = set(_files(workers))
  train_here(single, csv, 6)
  texts = _run_workers(workers, csv, tmp_path, 6)
  assert 'resumed from' in texts[0] and 'at step 3' in texts[0]
  assert 'resumed from' in texts[1] and 'at step 3' in texts[1]
  assert os.path.basename(tf.train.latest_checkpoint(
      os.path.join(workers, 'checkpoints'))) == 'ckpt-6'
  # Only the chief wrote into the run: one new events file, the step-6
  # checkpoint, and nothing of worker 1's (whose scratch space is empty).
  new = set(_files(workers)) - before
  events = [f for f in new if f.startswith('train' + os.sep)]
  assert len(events) == 1, sorted(new)
  assert {f for f in new if f.startswith('checkpoints')} == {
      os.path.join('checkpoints', 'ckpt-6.index'),
      os.path.join('checkpoints', 'ckpt-6.data-00000-of-00001')}
  assert not any('worker' in f for f in _files(workers))
  assert _files(tmp_path / 'tmp_1') == []
  got, want = model_weights(workers), model_weights(single)
  assert sorted(got) == sorted(want) and len(want) > 4
  worst = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
  print(f'two workers vs one process after 3 steps: max |dw| = {worst:.3g}')
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL,
                               err_msg=key)
  assert all(not np.allclose(got[k], start[k]) for k in want
             if 'kernel' in k and 'output' not in k)


def test_one_mirrored_strategy_trains_several_models(tmp_path):
  """Two MirroredStrategy objects in one process number their collective
  ops alike and the second one's all-reduce fails; make_strategy hands out
  one strategy, which then trains models of different shapes."""
  strategy = strategy_lib.make_strategy('mirrored')
  assert strategy is strategy_lib.make_strategy('mirrored')
  assert strategy.num_replicas_in_sync == 2
  for features in (4, 7):
    cfg = test_trainer.config(num_steps=2)
    x = np.random.default_rng(features).normal(
        size=(64, features)).astype(np.float32)
    with strategy.scope():
      model = test_trainer.make_model(features=features)
    run = trainer_lib.Trainer(model, strategy, str(tmp_path / str(features)),
                              cfg)
    result = run.train(test_trainer.dataset_fn(cfg, x))
    assert np.isfinite(result['loss'])
    assert int(run.global_step.numpy()) == 2


def test_batch_must_split_evenly_over_replicas(tmp_path):
  strategy = strategy_lib.make_strategy('mirrored')
  with strategy.scope():
    model = test_trainer.make_model()
  with pytest.raises(trainer_lib.UserError, match='multiple of 2'):
    trainer_lib.Trainer(model, strategy, str(tmp_path),
                        test_trainer.config(batch_size=15))


def test_tpu_strategy_without_a_tpu_is_a_user_error(monkeypatch):
  monkeypatch.delenv('TPU_NAME', raising=False)
  with pytest.raises(trainer_lib.UserError, match='--tpu=local'):
    strategy_lib.make_strategy('tpu')
