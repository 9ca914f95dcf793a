"""A killed run resumes from its last complete checkpoint.

``pm-train`` is killed with SIGKILL after its first checkpoint and started
again; saves interrupted at each stage of ``tf.train.CheckpointManager``'s
write (shards written, files renamed, state file not yet replaced) leave the
previous checkpoint as the one restored; an unreadable newest checkpoint is
skipped in favour of the one before it.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management
from tensorflow.python.ops import gen_io_ops

from conftest import launcher_env
from conftest import REPO
from conftest import write_linear_table
from pm_zoo import run_dir
from pm_zoo.errors import UserError
import test_distributed
import test_trainer

# Seconds each launcher run may take (a tiny run needs ~15 s on two cores).
RUN_TIMEOUT = 240
NUM_STEPS, EVERY = 400, 20
# Weights of the killed-and-resumed run vs an uninterrupted one in this
# process: the same batches in the same order, so float32 round-off only.
RTOL, ATOL = 1e-4, 1e-5


BINDINGS = ['TrainConfig.batch_size = 32',
            f'TrainConfig.checkpoint_every = {EVERY}',
            f'TrainConfig.log_every = {EVERY}',
            f'TrainConfig.summary_every = {EVERY}']


def _latest_step(model_dir):
  latest = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  return int(latest.rsplit('-', 1)[1]) if latest else None


def test_sigkilled_run_resumes_from_its_checkpoint(tmp_path):
  csv = tmp_path / 'table.csv'
  write_linear_table(csv, rows=256)
  # Both runs start from one checkpoint (step EVERY, trained here), so that
  # they share their initial weights.
  model_dir, straight = tmp_path / 'run', tmp_path / 'straight'
  test_distributed.train_here(model_dir, csv, EVERY, BINDINGS)
  shutil.copytree(model_dir, straight)
  args = ([sys.executable, '-m', 'launch.train', '--gin_file=tiny/table.gin',
           f'--data_path={csv}', f'--model_dir={model_dir}', '--noevaluate'] +
          [f'--gin_bindings={b}' for b in BINDINGS] +
          [f'--gin_bindings=TrainConfig.num_steps = {NUM_STEPS}'])
  with open(tmp_path / 'killed.log', 'w') as log:
    proc = subprocess.Popen(args, cwd=REPO, env=launcher_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
      deadline = time.monotonic() + RUN_TIMEOUT
      while (_latest_step(model_dir) == EVERY and proc.poll() is None
             and time.monotonic() < deadline):
        time.sleep(0.02)
      assert proc.poll() is None, (
          f'the run ended (exit {proc.returncode}) before it could be killed: '
          + open(tmp_path / 'killed.log').read()[-3000:])
      os.kill(proc.pid, signal.SIGKILL)
      proc.wait(timeout=30)
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  assert proc.returncode == -signal.SIGKILL
  killed_at = _latest_step(model_dir)
  assert EVERY < killed_at < NUM_STEPS
  assert run_dir.read_json(model_dir / run_dir.TRAINING)['step'] == EVERY
  resumed = subprocess.run(args, cwd=REPO, env=launcher_env(),
                           capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, check=False)
  log = resumed.stdout + resumed.stderr
  assert resumed.returncode == 0, log[-4000:]
  resume_lines = [l for l in log.splitlines() if 'resumed from' in l]
  print('killed after checkpoint', killed_at, '| rerun:', resume_lines)
  assert len(resume_lines) == 1
  assert resume_lines[0].endswith(f'ckpt-{killed_at} at step {killed_at}')
  record = run_dir.read_json(model_dir / run_dir.TRAINING)
  assert record['step'] == NUM_STEPS and record['segments'] == 2
  assert _latest_step(model_dir) == NUM_STEPS
  # The resumed run saw the batches an uninterrupted run sees.
  test_distributed.train_here(straight, csv, NUM_STEPS, BINDINGS)
  got = test_distributed.model_weights(model_dir)
  want = test_distributed.model_weights(straight)
  worst = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
  print(f'killed at {killed_at} and resumed vs uninterrupted, '
        f'{NUM_STEPS} steps: max |dw| = {worst:.3g}')
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL,
                               err_msg=key)


class Killed(Exception):
  """Stands for the process dying at a point of a checkpoint save."""


def _dies_saving(step):
  """Raises Killed when called for the checkpoint of ``step``."""
  def effect(*args, **kwargs):
    text = ' '.join(str(a.numpy() if hasattr(a, 'numpy') else a)
                    for a in list(args) + list(kwargs.values()))
    if f'ckpt-{step}' in text:
      raise Killed(f'died saving ckpt-{step}')
    return None
  return effect


def test_interrupted_and_broken_saves_restore_the_last_complete_one(
    tmp_path, caplog):
  cfg = test_trainer.config()  # 6 steps, checkpoints at 3 and 6
  run = test_trainer.make_trainer(tmp_path, cfg)
  directory = os.path.join(tmp_path, 'checkpoints')
  data = test_trainer.dataset_fn(cfg)
  # 1. Dies after writing the shards of ckpt-6, before renaming them.
  merge = gen_io_ops.merge_v2_checkpoints
  with mock.patch.object(gen_io_ops, 'merge_v2_checkpoints',
                         side_effect=lambda *a, **k: (
                             _dies_saving(6)(*a, **k) or merge(*a, **k))):
    with pytest.raises(Killed):
      run.train(data)
  assert os.path.isdir(os.path.join(directory, 'ckpt-6_temp'))
  assert run.restore_or_initialize() == 3
  assert not os.path.exists(os.path.join(directory, 'ckpt-6_temp'))
  # 2. Dies after renaming them, before the state file names ckpt-6.
  update = checkpoint_management.update_checkpoint_state_internal
  with mock.patch.object(checkpoint_management,
                         'update_checkpoint_state_internal',
                         side_effect=lambda *a, **k: (
                             _dies_saving(6)(*a, **k) or update(*a, **k))):
    with pytest.raises(Killed):
      run.train(data)
  assert os.path.exists(os.path.join(directory, 'ckpt-6.index'))
  assert tf.train.latest_checkpoint(directory).endswith('ckpt-3')
  assert run.restore_or_initialize() == 3
  # The run then finishes and its last checkpoint restores.
  run.train(data)
  assert run.restore_or_initialize() == 6
  # 3. An unreadable newest checkpoint: the one before it is used.
  with open(os.path.join(directory, 'ckpt-6.data-00000-of-00001'), 'r+b') as f:
    f.truncate(16)
  caplog.clear()
  assert run.restore_or_initialize() == 3
  assert 'cannot restore' in caplog.text and 'ckpt-6 (' in caplog.text
  # 4. None readable: an error, not a silent fresh start.
  with open(os.path.join(directory, 'ckpt-3.index'), 'wb') as f:
    f.write(b'not a checkpoint')
  with pytest.raises(UserError, match='no checkpoint .* restores'):
    run.restore_or_initialize()
