"""The trainer: strategies agree, resume is exact, bad steps are skipped."""
import os

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import masks
from pm_zoo.data import train_batches
from pm_zoo.errors import UserError
from pm_zoo.training import strategy as strategy_lib
from pm_zoo.training import trainer as trainer_lib
from test_matching import make_model

ROWS, FEATURES, BATCH = 64, 4, 16


def table():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(ROWS, 2))
  return (z @ rng.normal(size=(2, FEATURES))).astype(np.float32)


def config(**overrides):
  values = dict(num_steps=6, batch_size=BATCH, learning_rate=1e-2,
                train_mask=masks.BernoulliMask(0.5), checkpoint_every=3,
                log_every=3, summary_every=3, image_summary_every=0)
  values.update(overrides)
  return trainer_lib.TrainConfig(**values)


def make_trainer(model_dir, cfg, strategy=None, init_weights=None):
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = make_model()
  if init_weights is not None:
    model.set_weights(init_weights)
  return trainer_lib.Trainer(model, strategy, str(model_dir), cfg)


def dataset_fn(cfg, x=None):
  x = table() if x is None else x
  return lambda start: train_batches(x, cfg.batch_size, seed=cfg.seed,
                                     start_step=start,
                                     mask_sampler=cfg.train_mask)


@pytest.fixture(scope='module')
def init_weights():
  return make_model().get_weights()


def test_two_mirrored_devices_match_one_device(tmp_path, init_weights):
  cfg = config()
  single = make_trainer(tmp_path / 'one', cfg, init_weights=init_weights)
  single_metrics = single.train(dataset_fn(cfg))
  mirrored = strategy_lib.make_strategy('mirrored')
  assert mirrored.num_replicas_in_sync == 2
  double = make_trainer(tmp_path / 'two', cfg, strategy=mirrored,
                        init_weights=init_weights)
  double_metrics = double.train(dataset_fn(cfg))
  assert int(double.global_step.numpy()) == cfg.num_steps
  assert single_metrics['loss'] == pytest.approx(double_metrics['loss'],
                                                 rel=1e-4)
  pairs = list(zip(single.model.get_weights(), double.model.get_weights()))
  print('1 vs 2 mirrored devices after 6 steps: max |dw| = '
        f'{max(float(np.max(np.abs(a - b))) for a, b in pairs):.3g}')
  for a, b in pairs:
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  moved = [not np.allclose(a, b) for a, b in
           zip(init_weights, single.model.get_weights())]
  assert all(moved[:-1])  # every layer trained


def test_resumed_run_equals_uninterrupted_run(tmp_path, init_weights):
  straight = make_trainer(tmp_path / 'a', config(), init_weights=init_weights)
  straight.train(dataset_fn(config()))
  # The same run, stopped at step 3 and started again in a new trainer.
  first = make_trainer(tmp_path / 'b', config(num_steps=3),
                       init_weights=init_weights)
  first.train(dataset_fn(config()))
  second = make_trainer(tmp_path / 'b', config())
  assert second.restore_or_initialize() == 3
  second.train(dataset_fn(config()))
  assert int(second.global_step.numpy()) == 6
  for a, b in zip(straight.model.get_weights(), second.model.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_nonfinite_steps_are_skipped_then_stop(tmp_path, init_weights):
  cfg = config(num_steps=3)
  run = make_trainer(tmp_path, cfg, init_weights=init_weights)
  run.train(dataset_fn(cfg))
  good = run.model.get_weights()
  iterations = int(run.optimizer.iterations.numpy())
  bad = table()
  bad[:] = np.inf  # non-finite values (NaN would be a missing cell now)
  cfg = config(num_steps=20, max_consecutive_nonfinite=4)
  resumed = make_trainer(tmp_path, cfg)
  with pytest.raises(trainer_lib.TrainingDivergedError, match='4 non-finite'):
    resumed.train(dataset_fn(cfg, bad))
  assert int(resumed.nonfinite_steps.numpy()) == 4
  assert int(resumed.optimizer.iterations.numpy()) == iterations
  for a, b in zip(good, resumed.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  latest = tf.train.latest_checkpoint(os.path.join(tmp_path, 'checkpoints'))
  assert latest.endswith('ckpt-3')


def test_frozen_vae_mode_restores_and_keeps_the_vae(tmp_path, init_weights):
  vae_run = make_trainer(tmp_path / 'vae', config(objective='vae'),
                         init_weights=init_weights)
  vae_run.train(dataset_fn(config()))
  trained_vae = vae_run.model.vae.get_weights()
  cfg = config(objective='partial', vae_checkpoint=str(tmp_path / 'vae'))
  partial = make_trainer(tmp_path / 'pm', cfg)
  partial_before = partial.model.partial_encoder.get_weights()
  partial.train(dataset_fn(cfg))
  for a, b in zip(trained_vae, partial.model.vae.get_weights()):
    np.testing.assert_array_equal(a, b)
  changed = [not np.array_equal(a, b) for a, b in zip(
      partial_before, partial.model.partial_encoder.get_weights())]
  assert all(changed)
  with pytest.raises(UserError, match='vae_checkpoint'):
    make_trainer(tmp_path / 'none', config(objective='partial')
                 ).restore_or_initialize()
  with pytest.raises(UserError, match='no checkpoint'):
    make_trainer(tmp_path / 'x', config(
        objective='partial', vae_checkpoint=str(tmp_path / 'none'))
                 ).restore_or_initialize()


def test_xla_compiled_step_matches_the_plain_step(tmp_path, init_weights):
  cfg = config(num_steps=3)
  plain = make_trainer(tmp_path / 'plain', cfg, init_weights=init_weights)
  plain.train(dataset_fn(cfg))
  xla_cfg = config(num_steps=3, jit_compile=True)
  xla = make_trainer(tmp_path / 'xla', xla_cfg, init_weights=init_weights)
  xla.train(dataset_fn(xla_cfg))
  for a, b in zip(plain.model.get_weights(), xla.model.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  assert not np.allclose(init_weights[0], xla.model.get_weights()[0])


def test_the_run_seed_fixes_the_initial_weights():
  # pylint: disable=g-import-not-at-top
  from pm_zoo import configs
  from pm_zoo import experiment
  configs.parse(['tiny/table.gin'])
  try:
    strategy = tf.distribute.get_strategy()

    def weights(seed):
      return experiment.build_model((FEATURES,), strategy, seed).get_weights()

    numpy_before = np.random.get_state()[1].copy()
    first, again, other = weights(3), weights(3), weights(4)
    # The caller's own NumPy generator is left where it was.
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_before)
  finally:
    configs.reset()
  assert len(first) > 4
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(np.any(a != c) for a, c in zip(first, other))


def test_training_clock_sums_segments_without_evaluations(tmp_path,
                                                          init_weights):
  """eval_curve's train_seconds: cumulative over resumes, evals left out."""
  import json  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  pause = 0.4

  def slow_eval():
    time.sleep(pause)
    return {'score': 1.0}

  def segment(steps):
    cfg = config(num_steps=steps, eval_every=3)
    trainer = trainer_lib.Trainer(
        make_model(), tf.distribute.get_strategy(), str(tmp_path), cfg,
        eval_fn=slow_eval)
    start = time.time()
    result = trainer.train(dataset_fn(cfg))
    return result, time.time() - start

  first, first_wall = segment(6)
  second, second_wall = segment(12)
  with open(tmp_path / trainer_lib.EVAL_CURVE) as f:
    curve = json.load(f)
  assert [row['step'] for row in curve] == [3, 6, 9, 12]
  clock = [row['train_seconds'] for row in curve]
  assert clock == sorted(clock) and clock[2] > clock[1]  # no reset on resume
  # Each segment evaluated twice: 2 x pause of its wall time is not training.
  assert first['train_seconds'] <= first_wall - 2 * pause + 0.05
  assert second['train_seconds'] - first['train_seconds'] <= (
      second_wall - 2 * pause + 0.05)
  assert second['train_seconds'] > first['train_seconds'] > 0
  # The final checkpoint is written after the last evaluation.
  assert 0 <= second['train_seconds'] - curve[-1]['train_seconds'] < 1.0


def test_a_checkpoint_without_the_training_clock_still_restores(
    tmp_path, init_weights):
  """Checkpoints written before the clock existed resume (clock at 0)."""
  trainer = make_trainer(tmp_path, config(num_steps=3),
                         init_weights=init_weights)
  trainer.train(dataset_fn(config()))
  old_style = tf.train.Checkpoint(**trainer._restorable)  # pylint: disable=protected-access
  path = old_style.save(str(tmp_path / 'old' / 'ckpt'))
  fresh = make_trainer(tmp_path / 'other', config())
  fresh._restore(path)  # pylint: disable=protected-access
  assert int(fresh.global_step.numpy()) == 3
  assert float(fresh.train_seconds.numpy()) == 0.0
  for a, b in zip(trainer.model.get_weights(), fresh.model.get_weights()):
    np.testing.assert_array_equal(a, b)
