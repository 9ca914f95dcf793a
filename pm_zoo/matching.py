"""Partial encoder q_theta(z | x_o) and the Posterior Matching objective.

Posterior Matching (Strauss & Oliva, 2022, Eq. 5) trains a partial encoder
q_theta(z | x_o), which sees only the observed features, to match the VAE's
full posterior q_psi(z | x):

  L_PM(x, b) = - E_{z ~ q_psi(z | x)} [ log q_theta(z | x_o) ],

with one z per row and a fresh bitmask b per row (1 = observed). It needs only
``log_prob`` of q_theta, so any density with a tractable likelihood serves as
the partial posterior. Minimising it maximises log p(x_u | x_o) plus a KL
regulariser (paper Theorem 3.1). With the VAE's negative ELBO

  -ELBO(x) = - E_q[log p_phi(x | z)] + beta * KL(q_psi(z | x) || p(z))

the joint objective is ``-ELBO + pm_weight * L_PM``; in the frozen-VAE mode only
L_PM is minimised, over theta alone.
"""
from typing import Callable, Dict

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import kl as kl_lib
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models.gaussian_vae import GaussianVAE
from pm_zoo.networks import mlp

tfd = tfp.distributions

OBJECTIVES = ('joint', 'vae', 'partial')
PM_LOSSES = ('sampled', 'analytic_kl')


def observed_input(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """``concat(x * b, b)`` on the last (feature or channel) axis.

  ``x`` and ``mask`` are ``[B, *feature_shape]``; the result is
  ``[B, ..., 2 * last]``. Unobserved values are zeroed so that nothing of x_u
  reaches the partial encoder.
  """
  mask = tf.cast(mask, x.dtype)
  return tf.concat([x * mask, mask], axis=-1)


@gin.configurable
class PartialEncoder(keras.Model):
  """q_theta(z | x_o): a backbone over ``concat(x * b, b)`` and a latent head.

  Args:
    latent_dim: size of z (the VAE's).
    network: backbone factory ``f(output_shape=..., name=...)``.
    head: head class over ``[latent_dim]``; any density with ``log_prob``.
  """

  def __init__(self, latent_dim: int, network: Callable = mlp.ResidualMLP,
               head: Callable = heads.FullCovarianceGaussian,
               name: str = 'partial_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    self.latent_dim = int(latent_dim)
    self.head = head([latent_dim], name='partial_head')
    self.network = network(output_shape=self.head.params_shape,
                           name='partial_network')

  def call(self, x, mask, training=False) -> tfd.Distribution:
    """Returns q_theta(z | x_o), batch shape [B], event [latent_dim]."""
    return self.head.distribution(
        self.network(observed_input(x, mask), training=training))


@gin.configurable
class PosteriorMatchingVAE(keras.Model):
  """A base VAE and its partial encoder, trained by ``-ELBO + L_PM``.

  Args:
    feature_shape: shape of one example (runtime, from the data).
    vae: base VAE factory (``f(feature_shape)``), e.g. ``GaussianVAE``.
    partial_encoder: partial encoder factory (``f(latent_dim)``).
    stop_gradient: treat z as a constant in L_PM, so that L_PM does not move
      the VAE encoder (the paper's tabular setting).
    pm_weight: weight of L_PM in the joint objective.
    pm_loss: 'sampled' (paper Eq. 5, one z ~ q_psi(z|x) per row; any
      partial posterior) or 'analytic_kl' (paper Eq. 3: KL(q_psi(z|x) ||
      q_theta(z|x_o)) in closed form; both posteriors Gaussian). The two
      differ by the entropy of q_psi, which does not depend on theta.
  """

  def __init__(self, feature_shape, vae: Callable = GaussianVAE,
               partial_encoder: Callable = PartialEncoder,
               stop_gradient: bool = True, pm_weight: float = 1.0,
               pm_loss: str = 'sampled', name: str = 'pm_vae', **kwargs):
    super().__init__(name=name, **kwargs)
    self.feature_shape = tuple(int(s) for s in feature_shape)
    self.vae = vae(self.feature_shape)
    self.partial_encoder = partial_encoder(self.vae.latent_dim)
    self.stop_gradient = bool(stop_gradient)
    self.pm_weight = float(pm_weight)
    if pm_loss not in PM_LOSSES:
      raise UserError(f'PosteriorMatchingVAE.pm_loss must be one of '
                      f'{list(PM_LOSSES)}, got {pm_loss!r}')
    self.pm_loss = pm_loss

  @property
  def latent_dim(self) -> int:
    return self.vae.latent_dim

  def call(self, x, mask=None, training=False):
    """Builds every variable; returns the partial posterior's mean."""
    self.vae(x, training=training)
    mask = tf.ones_like(x) if mask is None else mask
    return self.partial_encoder(x, mask, training=training).mean()

  def trainable_variables_for(self, objective: str):
    """The variables an objective updates: 'partial' leaves the VAE frozen."""
    if objective not in OBJECTIVES:
      raise UserError(f'unknown objective {objective!r}; use one of '
                      f'{list(OBJECTIVES)}')
    if objective == 'partial':
      return self.partial_encoder.trainable_variables
    if objective == 'vae':
      return self.vae.trainable_variables
    return self.trainable_variables

  def per_example_losses(self, x: tf.Tensor, mask: tf.Tensor,
                         kl_weight: tf.Tensor, objective: str = 'joint',
                         training: bool = True, seed=None,
                         noise=None) -> Dict[str, tf.Tensor]:
    """Every term of the objective, per example (shape [B]).

    One z per row is drawn from q_psi(z | x): with ``noise`` (standard normal,
    [B, latent_dim]) as ``z = mu + L noise``, so that the draw belongs to the
    example and not to the device that processes it (every strategy then
    computes the same numbers); otherwise with the stateless ``seed``.

    Returns a dict with ``loss`` (what is minimised), ``elbo``,
    ``log_likelihood`` (E_q log p(x|z), one sample), ``kl`` and ``pm_loss``.
    The caller averages over the global batch.
    """
    if objective not in OBJECTIVES:
      raise UserError(f'unknown objective {objective!r}; use one of '
                      f'{list(OBJECTIVES)}')
    posterior = self.vae.encode(x, training=training and objective != 'partial')
    if noise is not None:
      z = posterior.loc + posterior.scale.matvec(noise)
    else:
      z = posterior.sample(seed=seed)
    log_likelihood = self.vae.decode(
        z, training=training and objective != 'partial').log_prob(x)
    kl = tfd.kl_divergence(posterior, self.vae.prior())
    elbo = log_likelihood - kl
    vae_loss = -(log_likelihood - kl_weight * kl)
    outputs = {'elbo': elbo, 'log_likelihood': log_likelihood, 'kl': kl}
    if objective == 'vae':
      outputs['pm_loss'] = tf.zeros_like(elbo)
      outputs['loss'] = vae_loss
      return outputs
    frozen = self.stop_gradient or objective == 'partial'
    partial = self.partial_encoder(x, mask, training=training)
    if self.pm_loss == 'analytic_kl':
      target = posterior
      if frozen:
        target = tfd.MultivariateNormalTriL(
            loc=tf.stop_gradient(posterior.loc),
            scale_tril=tf.stop_gradient(posterior.scale.to_dense()))
      pm_loss = kl_lib.posterior_matching_kl(target, partial)
    else:
      pm_loss = -partial.log_prob(tf.stop_gradient(z) if frozen else z)
    outputs['pm_loss'] = pm_loss
    if objective == 'partial':
      outputs['loss'] = pm_loss
    else:
      outputs['loss'] = vae_loss + self.pm_weight * pm_loss
    return outputs
