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
L_PM is minimised, over theta alone. For a VAE of another family the ELBO is
replaced by that family's own training terms and z by its posterior target
(``pm_zoo.models.base``).

Training on incomplete rows. Real tables arrive with cells missing. Each
row then carries its data mask m (1 = the cell was in the data), and the
objective becomes

  -ELBO_m(x) + pm_weight * L_PM(x, b),   b = b' * m,  b' ~ the mask
                                          distribution,
  L_PM(x, b) = - E_{z ~ q_psi(z | x_m)} [ log q_theta(z | x_b) ],

with ELBO_m the ELBO of the observed cells (the VAE encoder sees
concat(x * m, m), the decoder's log-likelihood counts observed cells only;
``pm_zoo.models.gaussian_vae``). So the VAE models p(x_m), the full
posterior q_psi(z | x_m) becomes the *target* on that row, and the partial
encoder learns to match it from a random subset b <= m of what was
observed: exactly the complete-data recipe with the row's observed cells in
place of the row.

Why this stays a valid PM objective under MCAR (missing completely at
random: m independent of x). The PM argument (paper Thm 3.1) needs, for
each conditioning set o, that the target posterior is a posterior of the
same generative model given MORE than x_o. Here the pair (o, m) has o <= m,
and q_psi(z | x_m) approximates p(z | x_m), a posterior given a superset of
x_o; the tower property E_{p(z | x_m)}[.] averaged over x_{m - o} ~ p(x_{m
- o} | x_o) equals E_{p(z | x_o)}[.], so minimising E[-log q_theta(z |
x_o)] over rows still drives q_theta(z | x_o) to p(z | x_o), as with
complete rows. MCAR is what makes the rows' x_m an unbiased view of p(x)
restricted to m (no selection on the values), so the ELBO_m terms fit the
same p(x) as complete rows would, and the conditioning sets o drawn within
m cover every subset with positive probability as long as every cell is
observed sometimes. Under MAR/MNAR the model would fit p(x_m | m), which
is not p(x_m); pm_zoo does not correct for that. The cost is statistical
(fewer observed cells per row, noisier targets), not a bias; the test in
tests/test_tables.py measures it.
"""
from typing import Callable, Dict

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import kl as kl_lib
from pm_zoo.distributions import tabular
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base
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
               cardinalities=None,
               name: str = 'partial_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    self.latent_dim = int(latent_dim)
    # A mixed table (K per column, 0 = numeric): categorical cells enter as
    # one-hot blocks, one mask bit per column (distributions.tabular).
    self.cardinalities = (None if cardinalities is None
                          else tuple(int(k) for k in cardinalities))
    self.head = head([latent_dim], name='partial_head')
    self.network = network(output_shape=self.head.params_shape,
                           name='partial_network')

  def call(self, x, mask, training=False) -> tfd.Distribution:
    """Returns q_theta(z | x_o), batch shape [B], event [latent_dim]."""
    if tabular.has_categorical(self.cardinalities):
      inputs = tabular.observed_input(x, mask, self.cardinalities)
    else:
      inputs = observed_input(x, mask)
    return self.head.distribution(self.network(inputs, training=training))


@gin.configurable
class PosteriorMatchingVAE(keras.Model):
  """A base VAE and its partial encoder, trained by ``-ELBO + L_PM``.

  The base VAE is any ``pm_zoo.models.base.BaseVAE``: this class asks it for
  its own training terms and one posterior draw per row (the target), and
  scores the target under the partial posterior. Nothing here depends on the
  family; what a family cannot do it refuses through ``BaseVAE.require``.

  Args:
    feature_shape: shape of one example (runtime, from the data).
    vae: base VAE factory (``f(feature_shape)``), e.g. ``GaussianVAE``.
    cardinalities: runtime, a mixed table's K per column (0 = numeric);
      handed to the base VAE (None: every column numeric).
    observed_inputs: runtime, the training rows have missing cells; handed
      to the base VAE (its encoder then sees concat(x * m, m)).
    partial_encoder: partial encoder factory; the base VAE decides what it
      is called with (``BaseVAE.make_partial_encoder``: the latent size for
      a Gaussian VAE).
    stop_gradient: treat the target as a constant in L_PM, so that L_PM does
      not move the VAE encoder (the paper's tabular setting). A family
      without reparameterised draws (code indices) always stops it.
    pm_weight: weight of L_PM in the joint objective.
    pm_loss: 'sampled' (paper Eq. 5, one z ~ q_psi(z|x) per row; any
      partial posterior) or 'analytic_kl' (paper Eq. 3: KL(q_psi(z|x) ||
      q_theta(z|x_o)) in closed form, where tfp knows it for the two
      posteriors, e.g. both Gaussian). The two differ by the entropy of
      q_psi, which does not depend on theta.
  """

  def __init__(self, feature_shape, vae: Callable = GaussianVAE,
               partial_encoder: Callable = PartialEncoder,
               stop_gradient: bool = True, pm_weight: float = 1.0,
               pm_loss: str = 'sampled', cardinalities=None,
               observed_inputs: bool = False, name: str = 'pm_vae',
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.feature_shape = tuple(int(s) for s in feature_shape)
    self.cardinalities = (None if cardinalities is None
                          else tuple(int(k) for k in cardinalities))
    # Runtime table options (module doc), passed on only when set, so that
    # any base-VAE factory works on complete numeric data as before.
    table = {}
    if self.cardinalities is not None:
      table['cardinalities'] = self.cardinalities
    if observed_inputs:
      table['observed_inputs'] = True
    try:
      self.vae = vae(self.feature_shape, **table)
    except TypeError as e:
      if not table:
        raise
      raise UserError(f'the base VAE ({getattr(vae, "__name__", vae)}) takes '
                      f'no {", ".join(table)} ({e}): use GaussianVAE for '
                      'tables with missing cells or categorical '
                      'columns') from None
    if not isinstance(self.vae, base.BaseVAE):
      raise UserError(
          f'PosteriorMatchingVAE.vae must build a pm_zoo.models.base.BaseVAE, '
          f'got a {type(self.vae).__name__}')
    self.partial_encoder = self.vae.make_partial_encoder(partial_encoder)
    self.stop_gradient = bool(stop_gradient)
    self.pm_weight = float(pm_weight)
    if pm_loss not in PM_LOSSES:
      raise UserError(f'PosteriorMatchingVAE.pm_loss must be one of '
                      f'{list(PM_LOSSES)}, got {pm_loss!r}')
    if not self.stop_gradient:
      self.vae.require(base.REPARAMETERIZED,
                       'PosteriorMatchingVAE.stop_gradient=False')
    self.pm_loss = pm_loss

  @property
  def latent_dim(self) -> int:
    """Size of one row's posterior target (flattened)."""
    return self.vae.latent_size

  @property
  def latent_shape(self) -> tuple:
    return tuple(self.vae.latent_shape)

  @property
  def noise_size(self) -> int:
    """Standard normals per example the trainer draws for a step."""
    return self.vae.noise_size

  def call(self, x, mask=None, training=False):
    """Builds every variable; returns log q_theta(target | x_o) per row."""
    mask = tf.ones_like(x) if mask is None else mask
    self.vae(x, training=training)
    terms = self.vae.training_terms(x, tf.constant(1.0), training=False,
                                    seed=tf.constant([0, 0]))
    partial = self.partial_encoder(x, mask, training=training)
    return partial.log_prob(tf.stop_gradient(terms.target))

  @property
  def objectives(self) -> tuple:
    """The trainer's objectives and the base VAE's own stages."""
    return OBJECTIVES + tuple(self.vae.stages)

  def _check_objective(self, objective: str) -> None:
    if objective not in self.objectives:
      raise UserError(f'unknown objective {objective!r}; use one of '
                      f'{list(self.objectives)}')

  def begin_stage(self, objective: str, train_x) -> None:
    """Once, before the first step of a run from step 0 (see BaseVAE)."""
    self.vae.begin_stage(objective, train_x)

  def trainable_variables_for(self, objective: str):
    """The variables an objective updates: 'partial' leaves the VAE frozen."""
    self._check_objective(objective)
    if objective in self.vae.stages:
      return self.vae.stage_variables(objective)
    if objective == 'partial':
      return self.partial_encoder.trainable_variables
    if objective == 'vae':
      return self.vae.trainable_variables
    return self.trainable_variables

  def per_example_losses(self, x: tf.Tensor, mask: tf.Tensor,
                         kl_weight: tf.Tensor, objective: str = 'joint',
                         training: bool = True, seed=None,
                         noise=None, observed=None) -> Dict[str, tf.Tensor]:
    """Every term of the objective, per example (shape [B]).

    The base VAE draws one posterior target per row: with ``noise``
    (``[B, noise_size]`` standard normals from the input pipeline), so that
    the draw belongs to the example and not to the device that processes it
    (every strategy then computes the same numbers); otherwise with the
    stateless ``seed``. ``observed`` is the data's own per-cell mask m
    (None: complete rows); the partial encoder then sees ``b * m``.

    Returns a dict with ``loss`` (what is minimised), ``pm_loss`` and the
    base VAE's own scalars (``elbo``, ``log_likelihood``, ``kl`` for a
    Gaussian VAE). The caller averages over the global batch.
    """
    self._check_objective(objective)
    if objective in self.vae.stages:
      # A family stage (e.g. VaDE's autoencoder pre-training): the VAE's own
      # terms for it, no partial encoder.
      terms = self.vae.stage_terms(objective, x, kl_weight, training=training,
                                   noise=noise, seed=seed, observed=observed,
                                   mask=mask)
      outputs = dict(terms.scalars)
      outputs['pm_loss'] = tf.zeros_like(terms.loss)
      outputs['loss'] = terms.loss
      return outputs
    vae_training = training and objective != 'partial'
    terms = self.vae.training_terms(x, kl_weight, training=vae_training,
                                    noise=noise, seed=seed, observed=observed)
    outputs = dict(terms.scalars)
    if objective == 'vae':
      outputs['pm_loss'] = tf.zeros_like(terms.loss)
      outputs['loss'] = terms.loss
      return outputs
    frozen = self.stop_gradient or objective == 'partial'
    if observed is not None:
      mask = mask * tf.cast(observed, mask.dtype)
    partial = self.partial_encoder(x, mask, training=training)
    if self.pm_loss == 'analytic_kl':
      if terms.posterior is None:
        raise UserError(
            f"PosteriorMatchingVAE.pm_loss='analytic_kl' needs the posterior "
            f"density, which the {self.vae.family} base VAE does not give: "
            "use pm_loss='sampled'")
      target = terms.posterior
      if frozen:
        target = base.stop_gradient_distribution(target)
      pm_loss = kl_lib.posterior_matching_kl(target, partial)
    else:
      target = terms.target
      pm_loss = -partial.log_prob(tf.stop_gradient(target) if frozen
                                  else target)
    outputs['pm_loss'] = pm_loss
    if objective == 'partial':
      outputs['loss'] = pm_loss
    else:
      outputs['loss'] = terms.loss + self.pm_weight * pm_loss
    return outputs
