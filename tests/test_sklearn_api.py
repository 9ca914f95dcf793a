"""PosteriorMatchingImputer: the scikit-learn contract, NaN as missing,
row-keyed seeding, the prior for empty rows, save/load, bad input."""
import os

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from pm_zoo import PosteriorMatchingImputer
from pm_zoo.errors import UserError
import serving_fixtures


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  return serving_fixtures.table(tmp_path_factory)


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
  return serving_fixtures.fitted_pipeline(tmp_path_factory)


@pytest.fixture(scope='module')
def imputer(pipeline):
  return pipeline.named_steps['impute']


def _with_holes(x, seed=0, rows=40):
  """The first ``rows`` rows with ~40% NaN; row 0 all NaN, row 1 none."""
  x = x[:rows].copy()
  holes = np.random.default_rng(seed).random(x.shape) < 0.4
  holes[0], holes[1] = True, False
  x[holes] = np.nan
  return x


def test_fit_trains_a_pm_train_run_with_the_given_sizes(imputer):
  assert imputer.step_ == serving_fixtures.TINY['num_steps']
  assert imputer.n_features_in_ == 5
  config = open(os.path.join(imputer.model_dir_, 'config.gin')).read()
  for binding in ('GaussianVAE.latent_dim = 3', 'ResidualMLP.units = 16',
                  'ResidualMLP.num_blocks = 1', 'TrainConfig.num_steps = 300',
                  'TrainConfig.batch_size = 32',
                  'exponential_decay.initial = 0.01'):
    assert binding in config
  model = imputer.serving_module_.model
  assert model.latent_dim == 3


def test_transform_keeps_observed_values_and_fills_the_rest(imputer, data):
  x = _with_holes(data[0])
  out = imputer.transform(x)
  observed = ~np.isnan(x)
  assert out.dtype == np.float64 and out.shape == x.shape
  np.testing.assert_array_equal(out[observed], x[observed])  # exactly
  assert np.isfinite(out).all()
  np.testing.assert_array_equal(out[1], x[1])  # nothing missing: unchanged
  # Imputations track the data: closer to the truth than the column means.
  # The margin of this 300-step tiny model depends on its initial weights,
  # which depend on what the test process built before (unseeded Keras
  # initialisers): 0.75-0.82 of the means' error across test orders seen.
  truth = data[0][:40]
  missing = ~observed
  model_error = np.abs(out - truth)[missing].mean()
  mean_error = np.abs(truth.mean(axis=0) - truth)[missing].mean()
  assert model_error < 0.9 * mean_error


def test_row_keyed_imputations_ignore_batching_and_order(imputer, data):
  x = _with_holes(data[0], seed=1)
  reference = imputer.transform(x)
  order = np.random.default_rng(0).permutation(len(x))
  params = imputer.get_params()
  try:
    imputer.set_params(transform_batch_size=3)
    np.testing.assert_allclose(imputer.transform(x[order]), reference[order],
                               rtol=1e-6, atol=1e-6)
    imputer.set_params(random_state=11)
    assert np.abs(imputer.transform(x) - reference).max() > 1e-3
  finally:
    imputer.set_params(**params)


def test_sample_returns_the_draws_whose_mean_transform_gives(imputer, data):
  x = _with_holes(data[0], seed=2)
  draws = imputer.sample(x, serving_fixtures.TINY['num_samples'])
  assert draws.shape == (serving_fixtures.TINY['num_samples'], *x.shape)
  missing = np.isnan(x)
  observed = ~missing
  np.testing.assert_array_equal(draws[:, observed], np.broadcast_to(
      x[observed], draws[:, observed].shape))
  assert np.std(draws[:, missing], axis=0).min() > 0  # not averaged
  np.testing.assert_allclose(draws.mean(axis=0), imputer.transform(x),
                             rtol=1e-5, atol=1e-5)


def test_rows_with_nothing_observed_are_drawn_from_the_prior(imputer):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import imputation  # pylint: disable=g-import-not-at-top
  x = np.full((2, 5), np.nan)
  num = 4
  draws = imputer.sample(x, num)  # [S, 2, 5]
  # Same key, same draws, up to float32 rounding: the two rows sit at
  # different positions of one batch, and a clean-checkout CI run once saw
  # them differ by 2.4e-7 (Eigen's matmul kernels round edge rows on their
  # own path). Draws for different keys differ by O(1).
  np.testing.assert_allclose(draws[:, 0], draws[:, 1], rtol=1e-5, atol=1e-6)
  module = imputer.serving_module_
  mask = tf.zeros([1, 5])
  seed = imputation.row_seeds(tf.zeros([1, 5]), mask,
                              serving_fixtures.TINY['random_state'])[0]
  z = module.model.vae.prior().sample(num, seed=seed)
  decoded = module.model.vae.decode(z).mean().numpy()
  expected = (decoded * module.standardizer.std
              + module.standardizer.mean)
  np.testing.assert_allclose(draws[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_conditional_log_prob_is_the_tested_estimator_in_raw_units(
    imputer, data):
  from pm_zoo.tasks.likelihood import ConditionalLikelihood  # pylint: disable=g-import-not-at-top
  x = data[0][:30]
  mask = (np.random.default_rng(3).random(x.shape) < 0.5).astype(np.float32)
  mask[0], mask[1] = 0.0, 1.0
  got = imputer.conditional_log_prob(x, mask, num_samples=32)
  module = imputer.serving_module_
  std = module.standardizer.std
  z = module.standardizer.transform(x)
  estimator = ConditionalLikelihood(module.model, num_samples=32,
                                    seed=serving_fixtures.TINY['random_state'])
  expected = (estimator.conditional_log_prob(z, mask)
              - ((1 - mask) * np.log(std)).sum(axis=1))
  assert got[1] == 0.0  # nothing unobserved
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_clone_get_set_params_and_pipeline_predict_with_nan(pipeline, data):
  imputer = pipeline.named_steps['impute']
  params = clone(imputer).get_params()
  for key, value in serving_fixtures.TINY.items():
    assert params[key] == value
  assert clone(imputer).set_params(latent_dim=7).latent_dim == 7
  predictions = pipeline.predict(_with_holes(data[0], seed=4))
  assert predictions.shape == (40,) and np.isfinite(predictions).all()


def test_fit_refuses_an_empty_column_or_inf_and_writes_nothing(data,
                                                               tmp_path):
  x = data[0].copy()
  x[:, 2] = np.nan
  with pytest.raises(UserError, match="column 'c2' is entirely empty"):
    PosteriorMatchingImputer(model_dir=str(tmp_path / 'run')).fit(x)
  x = data[0].copy()
  x[3, 1] = np.inf
  with pytest.raises(UserError, match='1 infinite values'):
    PosteriorMatchingImputer(model_dir=str(tmp_path / 'run')).fit(x)
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('make_x, message', [
    (lambda x: x[:, :4], 'has 4 columns but the model was trained on 5'),
    (lambda x: np.where(np.eye(5, dtype=bool)[:1], np.inf, x[:1]),
     '1 infinite values'),
    (lambda x: np.zeros((0, 5)), 'at least one row'),
    (lambda x: [['a'] * 5], 'not numeric'),
])
def test_transform_bad_input_one_line_errors(imputer, data, make_x, message):
  with pytest.raises(UserError, match=message) as error:
    imputer.transform(make_x(data[0][:3]))
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('mask, message', [
    (np.full((3, 5), 0.5), 'only 0 .* and 1'),
    (np.ones((3, 4)), r'shape \[3, 4\] but X has \[3, 5\]'),
])
def test_conditional_log_prob_bad_mask(imputer, data, mask, message):
  with pytest.raises(UserError, match=message):
    imputer.conditional_log_prob(data[0][:3], mask)


def test_unfitted_imputer_says_so():
  with pytest.raises(NotFittedError):
    PosteriorMatchingImputer().transform(np.zeros((2, 3)))


def test_save_load_round_trip_gives_a_run_pm_eval_accepts(imputer, data,
                                                          tmp_path):
  from pm_zoo import experiment  # pylint: disable=g-import-not-at-top
  x = _with_holes(data[0], seed=5)
  path = imputer.save(str(tmp_path / 'saved'))
  with pytest.raises(UserError, match='exists'):
    imputer.save(path)
  assert [n for n in os.listdir(tmp_path) if n.startswith('.')] == []
  loaded = PosteriorMatchingImputer.load(path)
  assert loaded.get_params() == {**imputer.get_params(), 'model_dir': None}
  np.testing.assert_array_equal(loaded.transform(x), imputer.transform(x))
  metrics = experiment.evaluate(path, gin_bindings=[
      'EvalConfig.trials = 1', 'EvalConfig.log_likelihood_samples = 4'])
  assert metrics['test_examples'] == 80  # the held-out 20% of the fit rows
  assert np.isfinite(metrics['nrmse']['mean'])
