"""VAE with a Gaussian latent: q_psi(z | x), p_phi(x | z), p(z) = N(0, I)."""
from typing import Callable, Optional, Sequence

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.networks import mlp

tfd = tfp.distributions


@gin.configurable
class GaussianVAE(base.BaseVAE):
  """A VAE whose encoder, decoder and their heads are chosen from gin.

  Shapes: ``x`` is ``[B, *feature_shape]`` (tables ``[B, D]``, images
  ``[B, H, W, C]``), ``z`` is ``[B, latent_dim]``.

  ``encode(x)`` returns q_psi(z | x) (a head over ``[latent_dim]``),
  ``decode(z)`` returns p_phi(x | z) (a factorised head over ``feature_shape``),
  ``prior()`` returns N(0, I). The ELBO is
  ``E_q[log p(x | z)] - KL(q(z | x) || p(z))`` with the KL in closed form;
  ``training_terms`` minimises ``-(E_q[log p(x | z)] - beta KL)`` with one
  reparameterised draw ``z = mu + L eps`` per row, which is also the
  posterior target of L_PM.

  Args:
    feature_shape: shape of one example (runtime, from the data).
    latent_dim: size of z.
    encoder_network: backbone factory ``f(output_shape=..., name=...)``.
    decoder_network: backbone factory ``f(output_shape=..., name=...)``.
    encoder_head: head class over ``[latent_dim]`` (diagonal or full covariance).
    decoder_head: head class over ``feature_shape`` (Bernoulli, Gaussian).
  """

  def __init__(self, feature_shape: Sequence[int], latent_dim: int = 16,
               encoder_network: Callable = mlp.ResidualMLP,
               decoder_network: Callable = mlp.ResidualMLP,
               encoder_head: Callable = heads.FullCovarianceGaussian,
               decoder_head: Callable = heads.Gaussian,
               name: str = 'vae', **kwargs):
    super().__init__(name=name, **kwargs)
    if latent_dim < 1:
      raise UserError(f'GaussianVAE.latent_dim must be >= 1, got {latent_dim}')
    self.feature_shape = tuple(int(s) for s in feature_shape)
    self.latent_dim = int(latent_dim)
    self.encoder_head = encoder_head([latent_dim], name='encoder_head')
    self.decoder_head = decoder_head(self.feature_shape, name='decoder_head')
    self.encoder_network = encoder_network(
        output_shape=self.encoder_head.params_shape, name='encoder')
    self.decoder_network = decoder_network(
        output_shape=self.decoder_head.params_shape, name='decoder')

  capabilities = frozenset({base.GAUSSIAN_LATENT, base.MARGINAL_LIKELIHOOD,
                            base.GENERATIVE_PRIOR, base.REPARAMETERIZED})

  @property
  def latent_shape(self) -> tuple:
    return (self.latent_dim,)

  @property
  def noise_size(self) -> int:
    return self.latent_dim

  def make_partial_encoder(self, factory: Callable):
    """The partial encoder factory takes the latent size."""
    return factory(self.latent_dim)

  def training_terms(self, x, kl_weight, training=True, noise=None,
                     seed=None, observed: Optional[tf.Tensor] = None
                     ) -> base.VAETerms:
    """-ELBO with KL weight ``kl_weight``; one z per row (see the class)."""
    if observed is not None:
      raise UserError('GaussianVAE does not train on incomplete data yet: '
                      'pass fully observed rows')
    posterior = self.encode(x, training=training)
    if noise is not None:
      z = posterior.loc + posterior.scale.matvec(noise)
    else:
      z = posterior.sample(seed=seed)
    log_likelihood = self.decode(z, training=training).log_prob(x)
    kl = tfd.kl_divergence(posterior, self.prior())
    return base.VAETerms(
        loss=-(log_likelihood - kl_weight * kl),
        scalars={'elbo': log_likelihood - kl,
                 'log_likelihood': log_likelihood, 'kl': kl},
        target=z, posterior=posterior)

  def prior(self) -> tfd.Distribution:
    return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))

  def encode(self, x, training=False) -> tfd.Distribution:
    """q_psi(z | x), batch shape [B], event [latent_dim]."""
    return self.encoder_head.distribution(
        self.encoder_network(x, training=training))

  def decode(self, z, training=False) -> tfd.Distribution:
    """p_phi(x | z) for z [..., latent_dim]: batch shape [...], event feature_shape."""
    z = tf.convert_to_tensor(z)
    batch_shape = tf.shape(z)[:-1]
    params = self.decoder_network(
        tf.reshape(z, [-1, self.latent_dim]), training=training)
    params = tf.reshape(params, tf.concat(
        [batch_shape, self.decoder_head.params_shape], axis=0))
    return self.decoder_head.distribution(params)

  def call(self, x, training=False):
    """Builds every variable; returns the decoder mean at the posterior mean."""
    q = self.encode(x, training=training)
    return self.decode(q.mean(), training=training).mean()
