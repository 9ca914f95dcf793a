"""The base-VAE contract: what Posterior Matching needs from any VAE.

Posterior Matching (paper Eq. 5) needs four things of a VAE, whatever its
latent looks like:

1. **its own training terms**: what the VAE minimises per example and the
   scalars it logs (a Gaussian VAE: -ELBO = -E_q log p(x|z) + beta KL; a
   VQ-VAE: reconstruction + codebook + commitment terms; a hierarchy: the
   per-layer KLs summed);
2. **a posterior target**: one draw per row from q_psi(z | x), of any
   structure the family has (a vector, a grid of code indices, the
   per-layer latents flattened into one vector), which the partial
   posterior scores: L_PM = -log q_theta(target | x_o);
3. ``decode(z) -> p(x | z)``, a distribution over the features for a
   target z with any leading batch axes;
4. a **partial posterior** for that target: a network over
   ``concat(x * b, b)`` returning a ``tfd.Distribution`` with ``log_prob``
   and ``sample`` (and, where the family has one, an analytic KL from the
   full posterior), built by ``make_partial_encoder``. Optionally the
   distribution has ``sample_rows(num_samples, seeds [B, 2]) -> [B, S,
   *latent_shape]``, row r's draws a function of ``seeds[r]`` alone: the
   row-keyed imputation then calls it instead of vectorizing ``sample``
   over rows (an autoregressive sampler runs its loop once for all rows).

Shapes: ``x`` is ``[B, *feature_shape]``; a target ``z`` is
``[B, *latent_shape]`` of ``latent_dtype`` (float32 vectors, int32 code
grids); ``decode`` maps ``[..., *latent_shape]`` to a distribution of batch
shape ``[...]`` and event shape ``feature_shape``.

What a family supports beyond that is declared in ``capabilities`` and
checked with ``require``: a task never tests for a family by name, it asks
for a capability and a family that lacks it refuses with a one-line
``UserError`` that says what would work.

Randomness: the trainer draws ``noise_size`` standard normals per example in
the input pipeline (as a function of seed and step, so every strategy sees
the same numbers) and hands them to ``training_terms``; a family without
reparameterised sampling (a VQ-VAE's encoder is deterministic) has
``noise_size == 0``.
"""
import math
from typing import Callable, Dict, NamedTuple, Optional

import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras

tfd = tfp.distributions

# ------------------------------------------------------------ capabilities
# encode(x) is a Gaussian over a vector latent: the lookahead network and
# the sampling-based acquisition rule (Gaussian entropies over z) rely on it.
GAUSSIAN_LATENT = 'gaussian_latent'
# encode(x) is a proper density q_psi(z | x) covering the posterior and
# prior() a proper p(z): importance-sampled log p(x), log p(x_o) and
# log p(x_u | x_o) are available.
MARGINAL_LIKELIHOOD = 'marginal_likelihood'
# prior() is the model's own generative prior, so that it is the exact
# posterior of a row with nothing observed (a VQ-VAE trained with a uniform
# prior has none: its partial posterior given nothing is its prior).
GENERATIVE_PRIOR = 'generative_prior'
# The VAE has a reparameterised posterior sample, so L_PM can train the VAE
# encoder jointly (stop_gradient=False).
REPARAMETERIZED = 'reparameterized'
# The prior is a mixture over clusters and cluster_probabilities(z) gives
# p(c | z): partially observed clustering (pm_zoo.tasks.clustering).
CLUSTERS = 'clusters'

_DESCRIPTIONS = {
    GAUSSIAN_LATENT: 'a Gaussian posterior over a vector latent',
    MARGINAL_LIKELIHOOD: 'a tractable posterior density and prior (for '
                         'importance-sampled likelihoods)',
    GENERATIVE_PRIOR: 'a generative prior p(z)',
    REPARAMETERIZED: 'a reparameterised posterior sample',
    CLUSTERS: 'a cluster posterior p(c | z)',
}
# What to use instead, where it is not a Gaussian-latent model.
_SUGGESTIONS = {
    CLUSTERS: 'a model with a mixture prior (VaDE, e.g. vade_mnist.gin)',
}
_DEFAULT_SUGGESTION = 'a model with a Gaussian latent (GaussianVAE)'



class VAETerms(NamedTuple):
  """What one training pass of a base VAE gives, per example.

  Attributes:
    loss: ``[B]``, what the VAE itself minimises (e.g. -ELBO with the KL
      weight of the step).
    scalars: ``{name: [B]}``, the terms to log (``elbo``, ``kl``,
      ``log_likelihood``, or ``reconstruction``, ``commitment``, ...).
    target: ``[B, *latent_shape]``, one draw of q_psi(z | x) per row: what
      the partial posterior is matched to.
    posterior: q_psi(z | x) as a distribution with batch ``[B]`` (for the
      analytic-KL form of L_PM), or None where the family has no density.
  """
  loss: tf.Tensor
  scalars: Dict[str, tf.Tensor]
  target: tf.Tensor
  posterior: Optional[tfd.Distribution] = None


class BaseVAE(keras.Model):
  """The contract of a base VAE (see the module docstring).

  Subclasses set ``feature_shape`` and implement ``latent_shape``,
  ``training_terms`` and ``decode``; where they can, ``encode`` and
  ``prior``, declared in ``capabilities``.
  """

  #: What the family supports beyond the core contract (see above).
  capabilities = frozenset()
  #: dtype of the posterior target (int32 for code indices).
  latent_dtype = tf.float32

  @property
  def family(self) -> str:
    """A readable name of the family, for messages."""
    return type(self).__name__

  @property
  def latent_shape(self) -> tuple:
    """Shape of one row's posterior target (without the batch axis)."""
    raise NotImplementedError

  @property
  def latent_size(self) -> int:
    return int(math.prod(self.latent_shape))

  @property
  def noise_size(self) -> int:
    """Standard normals per example that ``training_terms`` consumes."""
    return 0

  def has(self, capability: str) -> bool:
    return capability in self.capabilities

  def require(self, capability: str, task: str) -> None:
    """Raises a one-line ``UserError`` if the family lacks ``capability``."""
    if capability not in self.capabilities:
      raise UserError(
          f'{task} needs {_DESCRIPTIONS.get(capability, capability)}, which '
          f'the {self.family} base VAE does not have: use '
          f'{_SUGGESTIONS.get(capability, _DEFAULT_SUGGESTION)} for it')

  # ------------------------------------------------------------ the contract
  def training_terms(self, x: tf.Tensor, kl_weight: tf.Tensor,
                     training: bool = True, noise: Optional[tf.Tensor] = None,
                     seed=None, observed: Optional[tf.Tensor] = None
                     ) -> VAETerms:
    """The VAE's own per-example terms and one posterior draw per row.

    Args:
      x: ``[B, *feature_shape]`` in the model's units.
      kl_weight: scalar weight of the KL (or the family's regulariser).
      training: Keras training flag (dropout, batch statistics, EMA updates
        of a codebook).
      noise: ``[B, noise_size]`` standard normals for the posterior draw (the
        trainer's), or None to draw with the stateless ``seed``.
      seed: int32 ``[2]`` stateless seed, used when ``noise`` is None.
      observed: the per-cell data mask m of x's shape (1 = present in the
        data), or None when every cell is present.
    """
    raise NotImplementedError

  def decode(self, z: tf.Tensor, training: bool = False) -> tfd.Distribution:
    """p_phi(x | z) for ``z [..., *latent_shape]``: batch ``[...]``."""
    raise NotImplementedError

  def encode(self, x: tf.Tensor, training: bool = False) -> tfd.Distribution:
    """q_psi(z | x), batch ``[B]``, event ``latent_shape``."""
    raise UserError(f'the {self.family} base VAE has no posterior density')

  def prior(self) -> tfd.Distribution:
    """p(z) over one target, event ``latent_shape``."""
    raise UserError(f'the {self.family} base VAE has no prior density')

  def cluster_probabilities(self, z: tf.Tensor) -> tf.Tensor:
    """p(c | z) ``[..., K]`` for ``z [..., *latent_shape]`` (CLUSTERS)."""
    raise UserError(f'the {self.family} base VAE has no clusters')

  # ------------------------------------------------ family training stages
  #: Extra training objectives the family defines (e.g. VaDE's 'pretrain'
  #: autoencoder stage), besides the trainer's 'joint' | 'vae' | 'partial'.
  stages = ()

  def stage_terms(self, stage: str, x: tf.Tensor, kl_weight: tf.Tensor,
                  training: bool = True, noise: Optional[tf.Tensor] = None,
                  seed=None, observed: Optional[tf.Tensor] = None,
                  mask: Optional[tf.Tensor] = None) -> VAETerms:
    """Per-example terms of one of ``stages`` (arguments as training_terms).

    ``mask`` is the trainer's mask b of x's shape for this batch (drawn from
    ``TrainConfig.train_mask``, a pure function of seed and step, so every
    strategy and a resumed run see the same one), or None outside training;
    a stage may use it as its corruption (VaDE's denoising pre-training).
    """
    raise UserError(f'the {self.family} base VAE has no training stage '
                    f'{stage!r}; its stages are {list(self.stages)}')

  def stage_variables(self, stage: str):
    """The variables a family stage trains (default: all of the VAE's)."""
    return self.trainable_variables

  def begin_stage(self, stage: str, train_x) -> None:
    """Runs once when a run of objective ``stage`` starts from step 0.

    Called after the VAE was warm-started from ``TrainConfig.vae_checkpoint``
    (where given) and before the first step, with the training rows
    ``train_x`` (numpy, model units); the changes it makes are in the first
    checkpoint. Default: nothing (VaDE fits its mixture prior here).
    """
    del stage, train_x

  def make_partial_encoder(self, factory: Callable) -> keras.Model:
    """Builds the partial encoder from its (gin) factory.

    The family decides what the factory is told: a Gaussian VAE passes its
    ``latent_dim``, a VQ-VAE its code grid, a hierarchy itself (its partial
    posterior shares the top-down path). The default passes the VAE.
    """
    return factory(self)


def stop_gradient_distribution(dist: tfd.Distribution) -> tfd.Distribution:
  """The same distribution with every parameter behind ``tf.stop_gradient``.

  tfp distributions are composite tensors, so their parameter tensors can be
  mapped over; a family's own distribution that is not one gives the copy
  by its ``stop_gradient()`` method.
  """
  if callable(getattr(dist, 'stop_gradient', None)):
    return dist.stop_gradient()
  return tf.nest.map_structure(tf.stop_gradient, dist, expand_composites=True)
