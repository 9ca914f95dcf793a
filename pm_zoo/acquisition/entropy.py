"""Entropies and moments of latent posteriors, analytic where they exist.

The greedy rule (paper Eq. 6) ranks candidates by the entropy of
q_theta(z | x_o, x_i); the lookahead network (Eq. 7) is fit to the moments of
the same posteriors. Gaussian partial posteriors (``DiagonalGaussian``,
``FullCovarianceGaussian``) have both in closed form:

  H(N(mu, S)) = d/2 log(2 pi e) + 1/2 log det S,    E[z] = mu,  Var[z_j] = S_jj.

Other heads (mixtures, autoregressive mixtures, flows) get Monte Carlo
estimates from ``num_samples`` draws: H ~ -1/M sum_m log q(z_m), and the
sample mean and variance.
"""
import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def is_gaussian(dist: tfd.Distribution) -> bool:
  """True for multivariate normals (any covariance structure)."""
  return isinstance(dist, tfd.MultivariateNormalLinearOperator)


def diagonal_entropy(log_scale: tf.Tensor) -> tf.Tensor:
  """H(N(mu, diag(exp(log_scale))^2)) over the last axis: ``[..., d] -> [...]``."""
  d = log_scale.shape[-1]
  return d * HALF_LOG_2PI_E + tf.reduce_sum(log_scale, axis=-1)


def entropy(dist: tfd.Distribution, num_samples: int, seed) -> tf.Tensor:
  """H(q) per batch member: analytic for Gaussians, else Monte Carlo."""
  if is_gaussian(dist):
    return dist.entropy()
  z = dist.sample(num_samples, seed=seed)
  return -tf.reduce_mean(dist.log_prob(z), axis=0)


def moments(dist: tfd.Distribution, num_samples: int, seed):
  """(mean, marginal variance) ``[..., d]`` each: analytic or Monte Carlo."""
  if is_gaussian(dist):
    return dist.mean(), dist.variance()
  z = dist.sample(num_samples, seed=seed)
  return tf.nn.moments(z, axes=[0])


def diagonal_cross_entropy(mean: tf.Tensor, variance: tf.Tensor,
                           loc: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
  """E_{z ~ p}[-log N(z; loc, diag(exp(log_scale))^2)], summed over the last axis.

  Only p's mean and marginal variances enter:

    sum_j 1/2 log(2 pi) + log_scale_j
          + (variance_j + (mean_j - loc_j)^2) / (2 exp(2 log_scale_j)).

  This is the expected negative log-likelihood of z ~ p under the diagonal
  Gaussian, without sampling z (Rao-Blackwellised).
  """
  sq = variance + tf.square(mean - loc)
  terms = HALF_LOG_2PI + log_scale + 0.5 * sq * tf.exp(-2.0 * log_scale)
  return tf.reduce_sum(terms, axis=-1)
