"""Importance-sampled likelihoods of a two-layer hierarchy vs its closed form.

A linear-Gaussian hierarchy with a flat latent z = [z1, z2], as the
hierarchical VAE's contract has it:

  z1 ~ N(0, I_2),  z2 | z1 ~ N(A z1, s2^2 I_2),  x | z ~ N(V z1 + W z2, sx^2 I_5).

x is Gaussian, N(0, J S_z J^T + sx^2 I) with J = [V, W], so log p(x),
log p(x_o) and log p(x_u | x_o) are known exactly. Every density over z is a
two-layer chain q(z1) q(z2 | z1) over the flat vector (sampled layer by
layer, scored layer by layer). With the exact posteriors p(z | x) and
p(z | x_o) as proposals every importance weight equals the marginal, so
pm_zoo.tasks.likelihood must reproduce the closed form for any K, and its
log p(x_u | x_o) must not be log p(x_o) (the authors' script subtracts
twice and prints the latter under the former's name).
"""
import types

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from pm_zoo.models import base
from pm_zoo.tasks import likelihood

tfd = tfp.distributions
K1, K2, D = 2, 2, 5
RNG = np.random.default_rng(3)
A = RNG.normal(size=(K2, K1))
V = RNG.normal(size=(D, K1))
W = RNG.normal(size=(D, K2))
S2, SX = 0.5, 0.4
J = np.concatenate([V, W], axis=1)
# Prior covariance of [z1, z2].
PRIOR_COV = np.block([[np.eye(K1), A.T], [A, A @ A.T + S2 ** 2 * np.eye(K2)]])
X_COV = J @ PRIOR_COV @ J.T + SX ** 2 * np.eye(D)


class Chain(tfd.Distribution):
  """A Gaussian over [z1, z2] as q(z1) q(z2 | z1): batch [B] or []."""

  def __init__(self, mean, cov):
    self.mean_ = tf.convert_to_tensor(mean, tf.float32)
    cov = tf.convert_to_tensor(cov, tf.float32)
    s11, s12 = cov[..., :K1, :K1], cov[..., :K1, K1:]
    s21, s22 = cov[..., K1:, :K1], cov[..., K1:, K1:]
    self.gain = tf.linalg.matmul(s21, tf.linalg.inv(s11))  # [.., K2, K1]
    self.first = tfd.MultivariateNormalTriL(self.mean_[..., :K1],
                                            tf.linalg.cholesky(s11))
    self.second_tril = tf.linalg.cholesky(
        s22 - tf.linalg.matmul(self.gain, s12))
    super().__init__(dtype=tf.float32,
                     reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                     validate_args=False, allow_nan_stats=True, parameters={})

  def _second(self, z1):
    loc = self.mean_[..., K1:] + tf.linalg.matvec(
        self.gain, z1 - self.mean_[..., :K1])
    return tfd.MultivariateNormalTriL(loc, self.second_tril)

  def _batch_shape(self):
    return self.mean_.shape[:-1]

  def _event_shape(self):
    return tf.TensorShape([K1 + K2])

  def _log_prob(self, z):
    z1, z2 = z[..., :K1], z[..., K1:]
    return self.first.log_prob(z1) + self._second(z1).log_prob(z2)

  def _sample_n(self, n, seed=None):
    s1, s2 = tfp.random.split_seed(seed)
    z1 = self.first.sample(n, seed=s1)
    return tf.concat([z1, self._second(z1).sample(seed=s2)], axis=-1)


def exact_posterior(x, mask):
  """p(z | x_o) of every row: precision S_z^-1 + J^T diag(b) J / sx^2."""
  j = tf.constant(J, tf.float32)
  prec = (tf.constant(np.linalg.inv(PRIOR_COV), tf.float32) +
          tf.einsum('di,bd,dj->bij', j, mask, j) / SX ** 2)
  cov = tf.linalg.inv(prec)
  mean = tf.linalg.matvec(cov, tf.linalg.matvec(j, mask * x,
                                                transpose_a=True)) / SX ** 2
  return Chain(mean, cov)


class LinearHierarchy(base.BaseVAE):
  capabilities = frozenset({base.MARGINAL_LIKELIHOOD, base.GENERATIVE_PRIOR})
  feature_shape = (D,)

  @property
  def latent_shape(self):
    return (K1 + K2,)

  def decode(self, z, training=False):
    loc = tf.linalg.matvec(tf.constant(J, tf.float32), z)
    return tfd.Independent(tfd.Normal(loc, SX), reinterpreted_batch_ndims=1)

  def encode(self, x, training=False):
    return exact_posterior(x, tf.ones_like(x))

  def prior(self):
    return Chain(tf.zeros([K1 + K2]), PRIOR_COV)


def test_two_layer_hierarchy_likelihoods_match_the_closed_form():
  model = types.SimpleNamespace(
      vae=LinearHierarchy(), feature_shape=(D,),
      partial_encoder=lambda x, mask, training=False: exact_posterior(
          x, mask))
  x = RNG.multivariate_normal(np.zeros(D), X_COV, size=6).astype(np.float32)
  mask = (RNG.uniform(size=(6, D)) < 0.5).astype(np.float32)
  mask[:, 0], mask[:, 1] = 1.0, 0.0  # something observed and unobserved
  estimator = likelihood.ConditionalLikelihood(model, num_samples=3,
                                               samples_per_chunk=2)
  joint = stats.multivariate_normal(np.zeros(D), X_COV).logpdf(x)
  observed = np.array([
      stats.multivariate_normal(np.zeros(int(m.sum())),
                                X_COV[np.ix_(m > 0, m > 0)]).logpdf(r[m > 0])
      for r, m in zip(x, mask)])
  np.testing.assert_allclose(estimator.log_prob_joint(x), joint, atol=2e-3)
  np.testing.assert_allclose(estimator.log_prob_observed(x, mask), observed,
                             atol=2e-3)
  conditional = estimator.conditional_log_prob(x, mask)
  np.testing.assert_allclose(conditional, joint - observed, atol=3e-3)
  # What is reported is log p(x_u | x_o), never log p(x_o).
  assert np.all(np.abs(conditional - observed) > 0.1)
  np.testing.assert_allclose(estimator.bits_per_dim(x),
                             -joint / (D * np.log(2.0)), atol=1e-3)
