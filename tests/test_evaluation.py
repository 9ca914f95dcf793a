"""The evaluation task: NRMSE and conditional log-likelihood for tables."""
import numpy as np
import pytest

from pm_zoo import masks
from pm_zoo.tasks import evaluation
from test_matching import make_model


def config(**overrides):
  values = dict(trials=2, num_imputations=3, log_likelihood_samples=16,
                log_likelihood_chunk=8, seed=7)
  values.update(overrides)
  return evaluation.EvalConfig(**values)


@pytest.fixture(scope='module')
def model_and_data():
  rng = np.random.default_rng(0)
  return make_model(), rng.normal(size=(40, 4)).astype(np.float32)


def test_tables_get_nrmse_and_log_likelihood(model_and_data):
  model, x = model_and_data
  metrics = evaluation.evaluate_imputation(model, x, 'table', config())
  assert set(metrics) == {'nrmse', 'log_likelihood'}
  for m in metrics.values():
    assert m['trials'] == 2 and np.isfinite(m['mean']) and m['std'] >= 0
  without = evaluation.evaluate_imputation(
      model, x, 'table', config(log_likelihood_samples=0))
  assert set(without) == {'nrmse'}
  assert without['nrmse'] == metrics['nrmse']


def test_log_likelihood_is_reported_in_the_datas_units(model_and_data):
  """Standardised by s: log p(x_u|x_o) = log p(z_u|z_o) - sum_u log s_u."""
  model, x = model_and_data
  cfg = config()
  model_units = evaluation.evaluate_imputation(model, x, 'table', cfg)
  scale = np.array([2.0, 1.0, 0.5, 4.0])
  data_units = evaluation.evaluate_imputation(model, x, 'table', cfg,
                                              feature_scale=scale)
  shifts = []
  for trial in range(cfg.trials):
    mask = masks.make_eval_masks(cfg.mask_for('table'), x.shape[1:], len(x),
                                 seed=cfg.seed + trial)
    shifts.append(-((1 - mask) * np.log(scale)).sum(axis=1).mean())
  assert data_units['log_likelihood']['mean'] == pytest.approx(
      model_units['log_likelihood']['mean'] + np.mean(shifts), abs=1e-6)
  assert data_units['nrmse'] == model_units['nrmse']


def test_the_imputer_traces_once_for_every_batch_size(model_and_data):
  """A last, shorter batch and calls with other row counts reuse one graph
  (each new batch shape used to trace the model again)."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks.imputation import Imputer
  model, x = model_and_data
  imputer = Imputer(model, batch_size=16)
  mask = (np.random.default_rng(1).random(x.shape) < 0.5).astype(np.float32)
  first = imputer.mean(x, mask, num_samples=3, seed=2)  # batches 16, 16, 8
  again = imputer.mean(x[:5], mask[:5], num_samples=4, seed=2)
  assert first.shape == (40, 4) and again.shape == (5, 4)
  np.testing.assert_allclose(first[mask > 0], x[mask > 0], rtol=1e-6)
  assert imputer._sample.experimental_get_tracing_count() == 1  # pylint: disable=protected-access
