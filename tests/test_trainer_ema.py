"""Skipping huge-gradient updates and the EMA of the weights (VDVAE's
skip_threshold and EMA 0.999): counted, checkpointed, resumed, evaluated."""
import os

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import experiment
from pm_zoo.errors import UserError
from pm_zoo.training import trainer as trainer_lib
import test_distributed
from test_trainer import config, dataset_fn, make_trainer

EVERY = 3


@pytest.fixture(scope='module')
def init_weights():
  from test_matching import make_model  # pylint: disable=g-import-not-at-top
  return make_model().get_weights()


def test_steps_above_the_skip_threshold_apply_no_update(tmp_path,
                                                        init_weights):
  cfg = config(num_steps=4, grad_skip_threshold=1e-9,
               max_consecutive_nonfinite=100)
  run = make_trainer(tmp_path, cfg, init_weights=init_weights)
  metrics = run.train(dataset_fn(cfg))
  assert metrics['nonfinite_steps'] == 4
  assert int(run.optimizer.iterations.numpy()) == 0
  for a, b in zip(init_weights, run.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  # A threshold no gradient reaches skips nothing.
  cfg = config(num_steps=4, grad_skip_threshold=1e9)
  run = make_trainer(tmp_path / 'high', cfg, init_weights=init_weights)
  assert run.train(dataset_fn(cfg))['nonfinite_steps'] == 0


def test_ema_follows_the_weights_and_resumes_intact(tmp_path, init_weights):
  decay = 0.5
  straight = make_trainer(tmp_path / 'a', config(ema_decay=decay),
                          init_weights=init_weights)
  straight.train(dataset_fn(config()))
  # ema_N = decay^N w_0 + (1 - decay) sum_k decay^(N-k) w_k: not the weights.
  for average, var in zip(straight.ema, straight.variables):
    assert not np.allclose(average.numpy(), var.numpy())
  # The same run stopped after its first checkpoint and started again.
  first = make_trainer(tmp_path / 'b', config(num_steps=EVERY,
                                              ema_decay=decay),
                       init_weights=init_weights)
  first.train(dataset_fn(config()))
  again = make_trainer(tmp_path / 'b', config(ema_decay=decay))
  again.train(dataset_fn(config()))
  for a, b in zip(straight.ema, again.ema):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_settings_are_one_line_errors():
  with pytest.raises(UserError, match='ema_decay'):
    trainer_lib.TrainConfig(ema_decay=1.0)
  with pytest.raises(UserError, match='grad_skip_threshold'):
    trainer_lib.TrainConfig(grad_skip_threshold=0.0)


def test_evaluation_restores_the_ema_weights(tmp_path, linear_csv):
  model_dir = tmp_path / 'run'
  test_distributed.train_here(model_dir, linear_csv, 6,
                              ['TrainConfig.ema_decay = 0.9',
                               'TrainConfig.batch_size = 32'])
  latest = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  reader = tf.train.load_checkpoint(latest)
  averages = sorted(k for k in reader.get_variable_to_shape_map()
                    if k.startswith('ema/') and 'OPTIMIZER' not in k)
  assert averages
  model, step = experiment.restore_for_eval(str(model_dir))
  assert step == 6
  restored = {tuple(v.shape): v.numpy() for v in model.trainable_variables}
  ema = [reader.get_tensor(k) for k in averages]
  # Every stored average is one of the restored model's weights.
  matched = sum(any(np.array_equal(e, w) for w in
                    [v.numpy() for v in model.trainable_variables])
                for e in ema)
  assert matched == len(ema), (matched, len(ema), len(restored))


def test_periodic_evaluation_scores_the_ema_and_optionally_the_raw_weights(
    tmp_path, init_weights):
  """eval_curve rows: the EMA's metrics, and ``raw_*`` from the weights."""
  import json  # pylint: disable=g-import-not-at-top
  holder = {}

  def weight_sum():
    return {'score': float(sum(np.sum(v.numpy())
                               for v in holder['run'].variables))}

  def run_with(raw, directory):
    cfg = config(num_steps=6, eval_every=3, ema_decay=0.5,
                 eval_raw_weights=raw)
    holder['run'] = trainer_lib.Trainer(
        make_trainer(directory, cfg, init_weights=init_weights).model,
        tf.distribute.get_strategy(), str(directory), cfg, eval_fn=weight_sum)
    holder['run'].train(dataset_fn(cfg))
    with open(directory / trainer_lib.EVAL_CURVE) as f:
      return json.load(f), holder['run']

  curve, run = run_with(True, tmp_path / 'raw')
  assert [row['step'] for row in curve] == [3, 6]
  last = curve[-1]
  # The last evaluation is at the final step: the run holds those weights.
  ema_sum = sum(float(np.sum(a.numpy())) for a in run.ema)
  raw_sum = sum(float(np.sum(v.numpy())) for v in run.variables)
  np.testing.assert_allclose(last['score'], ema_sum, rtol=1e-5)
  np.testing.assert_allclose(last['raw_score'], raw_sum, rtol=1e-5)
  assert abs(last['score'] - last['raw_score']) > 1e-3
  # Off by default: only the EMA is scored.
  curve, _ = run_with(False, tmp_path / 'ema_only')
  assert all('raw_score' not in row for row in curve)
