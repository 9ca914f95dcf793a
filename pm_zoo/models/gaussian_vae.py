"""VAE with a Gaussian latent: q_psi(z | x), p_phi(x | z), p(z) = N(0, I).

Real tables (incomplete rows, mixed column types; ``pm_zoo.data.schema``):

* ``cardinalities`` (K per column, 0 = numeric; a categorical cell holds its
  integer code) makes the decoder a ``distributions.tabular.MixedTable``
  (Gaussian for numeric columns, one categorical likelihood per categorical
  column) and gives the encoder each categorical cell as a one-hot block.
* ``observed_inputs`` (set for data with missing cells) makes the encoder
  see ``concat(x * m, m)`` with the per-cell data mask m (one bit per
  column), and the ELBO counts only observed cells:

    ELBO_m(x) = E_{q_psi(z | x_m)} [ sum_j m_j log p_phi(x_j | z) ]
                - KL(q_psi(z | x_m) || p(z)),

  which is the ELBO of the observed part x_m under the same model (the
  decoder factorises over columns, so marginalising the missing cells out of
  p(x | z) just drops their terms): a lower bound on log p(x_m). With m = 1
  everywhere both are the complete-data ELBO. ``pm_zoo.matching`` explains
  why Posterior Matching stays valid on such rows under MCAR.

Neither is set for a complete all-numeric table, whose model is exactly the
one it always was.
"""
import functools
from typing import Callable, Optional, Sequence

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import tabular
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
    decoder_head: head class over ``feature_shape`` (Bernoulli, Gaussian);
      replaced by ``MixedTable`` when a column is categorical.
    cardinalities: runtime, from the table's schema: K per column (0 =
      numeric), or None (every column numeric).
    observed_inputs: runtime: the data have missing cells; the encoder sees
      ``concat(x * m, m)`` (see the module doc).
  """

  def __init__(self, feature_shape: Sequence[int], latent_dim: int = 16,
               encoder_network: Callable = mlp.ResidualMLP,
               decoder_network: Callable = mlp.ResidualMLP,
               encoder_head: Callable = heads.FullCovarianceGaussian,
               decoder_head: Callable = heads.Gaussian,
               cardinalities: Optional[Sequence[int]] = None,
               observed_inputs: bool = False,
               name: str = 'vae', **kwargs):
    super().__init__(name=name, **kwargs)
    if latent_dim < 1:
      raise UserError(f'GaussianVAE.latent_dim must be >= 1, got {latent_dim}')
    self.feature_shape = tuple(int(s) for s in feature_shape)
    self.cardinalities = (None if cardinalities is None
                          else tuple(int(k) for k in cardinalities))
    self.observed_inputs = bool(observed_inputs)
    if self.cardinalities is not None and (
        len(self.feature_shape) != 1 or
        len(self.cardinalities) != self.feature_shape[0]):
      raise UserError(f'GaussianVAE got {len(self.cardinalities)} column '
                      f'cardinalities for examples of shape '
                      f'{list(self.feature_shape)}: give one per column')
    if tabular.has_categorical(self.cardinalities):
      decoder_head = functools.partial(tabular.MixedTable,
                                       cardinalities=self.cardinalities)
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
    """The partial encoder factory takes the latent size (and, for a mixed
    table, the column cardinalities, so that it one-hot encodes too)."""
    if tabular.has_categorical(self.cardinalities):
      return factory(self.latent_dim, cardinalities=self.cardinalities)
    return factory(self.latent_dim)

  def training_terms(self, x, kl_weight, training=True, noise=None,
                     seed=None, observed: Optional[tf.Tensor] = None
                     ) -> base.VAETerms:
    """-ELBO with KL weight ``kl_weight``; one z per row (see the class).

    With ``observed`` (m, x's shape) the ELBO of the observed cells: the
    encoder sees concat(x * m, m) and only observed cells enter
    log p(x | z) (module doc). Needs a model built with
    ``observed_inputs``.
    """
    if observed is not None and not self.observed_inputs:
      raise UserError('this GaussianVAE was built for complete rows '
                      '(observed_inputs=False) but the data have missing '
                      'cells: train a new model on them')
    posterior = self.encode(x, training=training, observed=observed)
    if noise is not None:
      z = posterior.loc + posterior.scale.matvec(noise)
    else:
      z = posterior.sample(seed=seed)
    decoded = self.decode(z, training=training)
    if observed is None:
      log_likelihood = decoded.log_prob(x)
    else:
      per_cell = heads.elementwise_log_prob(decoded, x)
      log_likelihood = tf.reduce_sum(tf.reshape(
          tf.cast(observed, per_cell.dtype) * per_cell,
          [tf.shape(x)[0], -1]), axis=1)
    kl = tfd.kl_divergence(posterior, self.prior())
    return base.VAETerms(
        loss=-(log_likelihood - kl_weight * kl),
        scalars={'elbo': log_likelihood - kl,
                 'log_likelihood': log_likelihood, 'kl': kl},
        target=z, posterior=posterior)

  def prior(self) -> tfd.Distribution:
    return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))

  def encoder_input(self, x, observed=None) -> tf.Tensor:
    """What the encoder network sees: x itself for a complete all-numeric
    table (and images); one-hot blocks for categorical columns; with
    ``observed_inputs``, concat(x * m, m) (m = 1 when ``observed`` is
    None, i.e. a complete row)."""
    if self.cardinalities is None and not self.observed_inputs:
      return x
    cards = self.cardinalities or (0,) * int(x.shape[-1])
    if not self.observed_inputs:
      return tabular.expand(x, cards)
    m = (tf.ones_like(x) if observed is None
         else tf.cast(observed, x.dtype))
    return tabular.observed_input(tf.where(m > 0, x, tf.zeros_like(x)), m,
                                  cards)

  def encode(self, x, training=False, observed=None) -> tfd.Distribution:
    """q_psi(z | x_m), batch shape [B], event [latent_dim] (``observed``:
    the data mask m, None = every cell observed)."""
    return self.encoder_head.distribution(
        self.encoder_network(self.encoder_input(x, observed),
                             training=training))

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
