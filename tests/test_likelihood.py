"""Importance-sampled conditional likelihoods against a closed form.

The closed form is probabilistic PCA, a linear-Gaussian VAE:

  z ~ N(0, I_d),   x = W z + mu + eps,   eps ~ N(0, s^2 I_D),

so p(x) = N(mu, W W^T + s^2 I) and every marginal p(x_o) is the Gaussian on
the observed rows of mu and of that covariance, hence log p(x_u | x_o) =
log p(x) - log p(x_o) exactly. The posteriors are Gaussian too:

  p(z | x_o) = N(m, S),   S = (I + W^T B W / s^2)^{-1},
                          m = S W^T B (x - mu) / s^2,   B = diag(b).

The decoder is a real ``GaussianVAE`` decoder (one Dense layer set to W, mu and
a scalar ``heads.Gaussian`` scale s), the encoder and partial encoder return
the exact posteriors (then every importance weight equals the marginal and the
estimate is exact for any K), or the exact mean with an inflated scale (then
the estimate must converge as K grows).

Run ``python tests/test_likelihood.py`` to print the table
"K, mean |estimate - exact|" of the conditional log-likelihood.
"""
import functools
import os
import sys

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo import matching
from pm_zoo.distributions import flows
from pm_zoo.distributions import heads
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base
from pm_zoo.models import gaussian_vae
from pm_zoo.networks import mlp
from pm_zoo.tasks import likelihood

tfd = tfp.distributions

FEATURES, LATENT, NOISE = 5, 2, 0.5


class _ExactPosterior:
  """p(z | x_o) of the PPCA model, its scale multiplied by ``inflate``."""

  def __init__(self, w, mu, scale, inflate):
    self.w = tf.constant(w, tf.float64)  # [D, d]
    self.mu = tf.constant(mu, tf.float64)  # [D]
    self.scale = float(scale)
    self.inflate = float(inflate)

  def __call__(self, x, mask, training=False):
    del training
    x, b = tf.cast(x, tf.float64), tf.cast(mask, tf.float64)  # [B, D]
    precision = tf.eye(LATENT, dtype=tf.float64) + tf.einsum(
        'di,bd,dj->bij', self.w, b, self.w) / self.scale**2
    covariance = tf.linalg.inv(precision)  # [B, d, d]
    mean = tf.einsum('bij,dj,bd->bi', covariance, self.w,
                     b * (x - self.mu)) / self.scale**2
    scale_tril = self.inflate * tf.linalg.cholesky(covariance)
    return tfd.MultivariateNormalTriL(tf.cast(mean, tf.float32),
                                      tf.cast(scale_tril, tf.float32))


class _PPCAVAE(base.BaseVAE):
  """encode = exact q(z | x); decode and prior from a real GaussianVAE."""

  capabilities = frozenset({base.MARGINAL_LIKELIHOOD, base.GENERATIVE_PRIOR})

  def __init__(self, vae, posterior):
    super().__init__()
    self._vae = vae
    self._posterior = posterior

  @property
  def latent_shape(self):
    return self._vae.latent_shape

  def encode(self, x, training=False):
    return self._posterior(x, tf.ones_like(x), training)

  def decode(self, z, training=False):
    return self._vae.decode(z, training=training)

  def prior(self):
    return self._vae.prior()


class PPCAModel:
  """The interface ``ConditionalLikelihood`` needs, with exact closed forms.

  Args:
    inflate: multiplies the proposals' Cholesky factors (1: exact posteriors).
    seed: draws W and mu.
  """

  def __init__(self, inflate=1.0, seed=0):
    rng = np.random.default_rng(seed)
    self.w = rng.normal(size=(FEATURES, LATENT))
    self.mu = rng.normal(size=FEATURES)
    self.feature_shape = (FEATURES,)
    linear = lambda output_shape, name: keras.layers.Dense(output_shape[0],
                                                           name=name)
    vae = gaussian_vae.GaussianVAE(
        [FEATURES], latent_dim=LATENT, encoder_network=linear,
        decoder_network=linear,
        decoder_head=functools.partial(heads.Gaussian, scale='scalar',
                                       init_scale=NOISE))
    vae(tf.zeros([1, FEATURES]))
    vae.decoder_network.set_weights([self.w.T, self.mu])
    # The scale the decoder really uses (softplus(raw) + min_scale).
    self.scale = float(vae.decode(tf.zeros([1, LATENT])).stddev()[0, 0])
    assert abs(self.scale - NOISE) < 1e-5
    posterior = _ExactPosterior(self.w, self.mu, self.scale, inflate)
    self.vae = _PPCAVAE(vae, posterior)
    self.partial_encoder = posterior

  def sample(self, n, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, LATENT))
    noise = self.scale * rng.normal(size=(n, FEATURES))
    return (z @ self.w.T + self.mu + noise).astype(np.float32)

  def exact_log_prob(self, x, mask):
    """log p(x_o) per row, in float64 (mask all ones: log p(x))."""
    cov = self.w @ self.w.T + self.scale**2 * np.eye(FEATURES)
    out = np.zeros(len(x))
    for i, (row, b) in enumerate(zip(np.asarray(x, np.float64), mask > 0)):
      if b.any():
        diff = row[b] - self.mu[b]
        c = cov[np.ix_(b, b)]
        out[i] = -0.5 * (diff @ np.linalg.solve(c, diff)
                         + np.linalg.slogdet(2 * np.pi * c)[1])
    return out

  def exact_conditional(self, x, mask):
    return (self.exact_log_prob(x, np.ones_like(mask))
            - self.exact_log_prob(x, mask))


def _data(n=48, seed=1):
  model = PPCAModel()
  x = model.sample(n, seed)
  mask = (np.random.default_rng(seed + 1).uniform(size=x.shape) < 0.5)
  mask = mask.astype(np.float32)
  mask[0], mask[1] = 1.0, 0.0  # one row fully observed, one with nothing
  return x, mask


def test_exact_posteriors_give_exact_likelihoods_for_any_k():
  """Constant importance weights: exact for K = 5 in chunks of 2 (the last
  chunk is partly past K, so a wrong normaliser would show)."""
  model = PPCAModel(inflate=1.0)
  x, mask = _data()
  estimator = likelihood.ConditionalLikelihood(
      model, num_samples=5, samples_per_chunk=2, batch_size=16)
  np.testing.assert_allclose(estimator.log_prob_joint(x),
                             model.exact_log_prob(x, np.ones_like(mask)),
                             atol=2e-3)
  np.testing.assert_allclose(estimator.log_prob_observed(x, mask),
                             model.exact_log_prob(x, mask), atol=2e-3)
  conditional = estimator.conditional_log_prob(x, mask)
  np.testing.assert_allclose(conditional, model.exact_conditional(x, mask),
                             atol=3e-3)
  assert conditional.shape == (len(x),) and conditional.dtype == np.float64
  assert conditional[0] == 0.0  # nothing unobserved
  assert estimator.log_prob_observed(x, mask)[1] == 0.0  # nothing observed


def closed_form_errors(ks=(16, 128, 512), inflate=1.5, rows=64):
  """Mean over rows of |estimate - exact| of log p(x_u | x_o), per K.

  The proposals have the exact posterior means and ``inflate`` times their
  Cholesky factors, so the importance weights vary and the estimate is only
  asymptotically exact.
  """
  model = PPCAModel(inflate=inflate)
  x, mask = _data(rows)
  exact = model.exact_conditional(x, mask)
  errors = {}
  for k in ks:
    estimate = likelihood.ConditionalLikelihood(
        model, num_samples=k, samples_per_chunk=64).conditional_log_prob(
            x, mask)
    errors[k] = float(np.mean(np.abs(estimate - exact)))
  return errors


def test_estimate_converges_to_the_closed_form_as_k_grows():
  errors = closed_form_errors()
  print('\nK, mean |estimate - exact| of log p(x_u|x_o):', errors)
  assert errors[512] < 0.05
  assert errors[512] < errors[128] < errors[16]


def test_chunking_and_batching_bound_memory_not_the_answer():
  x, mask = _data()
  exact_model = PPCAModel(inflate=1.0)
  whole = likelihood.ConditionalLikelihood(exact_model, num_samples=64,
                                           samples_per_chunk=64)
  chunked = likelihood.ConditionalLikelihood(exact_model, num_samples=64,
                                             samples_per_chunk=8, batch_size=7)
  np.testing.assert_allclose(chunked.conditional_log_prob(x, mask),
                             whole.conditional_log_prob(x, mask), atol=2e-3)
  # With varying weights, chunks draw other samples: both estimates are as
  # close to the exact value as their Monte Carlo error allows, and each is
  # reproducible.
  model = PPCAModel(inflate=1.5)
  exact = model.exact_conditional(x, mask)
  whole = likelihood.ConditionalLikelihood(model, num_samples=256,
                                           samples_per_chunk=256)
  chunked = likelihood.ConditionalLikelihood(model, num_samples=256,
                                             samples_per_chunk=32)
  a = whole.conditional_log_prob(x, mask)
  b = chunked.conditional_log_prob(x, mask)
  assert np.mean(np.abs(a - exact)) < 0.08
  assert np.mean(np.abs(b - exact)) < 0.08
  np.testing.assert_array_equal(b, chunked.conditional_log_prob(x, mask))
  other_seed = likelihood.ConditionalLikelihood(
      model, num_samples=256, samples_per_chunk=32, seed=1)
  assert not np.array_equal(b, other_seed.conditional_log_prob(x, mask))


def test_unobserved_values_may_be_nan_for_the_observed_marginal():
  model = PPCAModel(inflate=1.5)
  x, mask = _data()
  estimator = likelihood.ConditionalLikelihood(model, num_samples=32)
  expected = estimator.log_prob_observed(x, mask)
  holes = np.where(mask > 0, x, np.nan)
  np.testing.assert_array_equal(estimator.log_prob_observed(holes, mask),
                                expected)
  # Without a mask, NaN marks the unobserved entries.
  np.testing.assert_array_equal(estimator.log_prob_observed(holes), expected)


def _one_line_user_error(match, fn, *args, **kwargs):
  with pytest.raises(UserError, match=match) as error:
    fn(*args, **kwargs)
  assert '\n' not in str(error.value)


def test_bad_input_is_a_one_line_user_error():
  model = PPCAModel()
  x, mask = _data(8)
  for kwargs in ({'num_samples': 0}, {'samples_per_chunk': 0},
                 {'batch_size': 0}, {'num_samples': 2.5}):
    _one_line_user_error(next(iter(kwargs)), likelihood.ConditionalLikelihood,
                         model, **kwargs)
  estimator = likelihood.ConditionalLikelihood(model, num_samples=4)
  _one_line_user_error(r'rows of shape \[4\].*built for \[5\]',
                       estimator.conditional_log_prob, x[:, :4], mask[:, :4])
  _one_line_user_error('non-empty batch', estimator.log_prob_joint, x[0])
  observed_nan = x.copy()
  observed_nan[2, np.flatnonzero(mask[2])[0]] = np.nan
  _one_line_user_error('NaN', estimator.log_prob_observed, observed_nan, mask)
  unobserved_nan = np.where(mask > 0, x, np.nan)
  # x_u is where the conditional density is evaluated: it must be given.
  _one_line_user_error('NaN', estimator.conditional_log_prob, unobserved_nan,
                       mask)
  _one_line_user_error('NaN', estimator.log_prob_joint, unobserved_nan)
  _one_line_user_error('mask', estimator.conditional_log_prob, x, mask[:, :3])
  _one_line_user_error('0 .* and 1', estimator.conditional_log_prob, x,
                       0.5 * mask)


def _small_mlp(output_shape, name=None):
  return mlp.ResidualMLP(output_shape=output_shape, units=16, num_blocks=1,
                         name=name)


def test_works_with_a_posterior_matching_vae_and_a_flow_posterior():
  head = functools.partial(flows.MaskedAutoregressiveFlow, num_flows=1,
                           hidden_units=(8,), context_size=4)
  model = matching.PosteriorMatchingVAE(
      [FEATURES],
      vae=lambda fs: gaussian_vae.GaussianVAE(
          fs, latent_dim=LATENT, encoder_network=_small_mlp,
          decoder_network=_small_mlp),
      partial_encoder=lambda d: matching.PartialEncoder(
          d, network=_small_mlp, head=head))
  x, mask = _data(10)
  model(tf.constant(x), tf.constant(mask))
  estimator = likelihood.ConditionalLikelihood(model, num_samples=20,
                                               samples_per_chunk=8,
                                               batch_size=4)
  out = estimator.conditional_log_prob(x, mask)
  assert out.shape == (10,) and np.all(np.isfinite(out))
  assert out[0] == 0.0
  assert out[1] == estimator.log_prob_joint(x)[1]  # nothing observed


def main():
  """Prints the closed-form table for the report."""
  inflated = closed_form_errors(inflate=1.5)
  exact = closed_form_errors(inflate=1.0)
  model = PPCAModel()
  x, mask = _data(64)
  scale = np.mean(np.abs(model.exact_conditional(x, mask)))
  print(f'log p(x_u | x_o) by importance sampling vs closed form: PPCA with '
        f'D={FEATURES}, d={LATENT}, s={NOISE}; 64 rows, Bernoulli(0.5) masks; '
        f'mean |exact| = {scale:.3f}')
  print('proposals q(z|x), q(z|x_o): exact posterior means with 1.5 x their '
        'Cholesky factors (inflated) or the exact posteriors (exact)')
  print('K, mean |estimate - exact| (inflated), mean |estimate - exact| '
        '(exact)')
  for k in inflated:
    print(f'{k}, {inflated[k]:.4f}, {exact[k]:.1e}')


if __name__ == '__main__':
  sys.exit(main())
