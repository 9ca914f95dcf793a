"""Training the lookahead network on a frozen Posterior Matching model.

``LookaheadModel`` has the interface of ``pm_zoo.training.Trainer``
(``per_example_losses``, ``trainable_variables_for``, ``noise_size``), so the
generic trainer trains it: its own checkpoints, summaries and resume, with the
Posterior Matching model restored and frozen (only the lookahead network's
variables are trainable; every call into the PM model uses training=False).

The objective, per row (x, b) of a training batch:

1. S imputations from the model: z_s ~ q_theta(z | x_o) and
   x~_s = E_{p(x | z_s)}[x] (decoder mean, the imputations pm_zoo makes).
2. C candidates: a uniformly random subset of C unobserved features i_c.
3. Targets: q_theta(z | x_o, x~_{s, i_c}), the posterior after observing
   candidate i_c at its imputed value, with mean m_sc and variances v_sc.
4. Loss, averaged over the candidates: how well q_omega^(i_c)(z | x_o) fits
   the targets, from their moments (``target_cross_entropy``; z is
   integrated out analytically instead of sampled as in the paper's Eq. 7):

   target = 'posterior'            z ~ q_theta(z | x_o, x~_i) (paper Eq. 7):
       the optimum is the diagonal Gaussian with the moments of the mixture
       over x~_i: variance E[v] + Var[m].
   target = 'expected_covariance'  the scale is fit to the mean over
       imputations of v alone and the location to the mean of m (with the
       scale held fixed in that term): the optimum is N(E[m], diag E[v]), so
       H(q_omega^(i)) estimates the expected entropy E_{x_i} H(q(z|x_o,x_i))
       that the greedy rule (Eq. 6) minimises, without a bias that depends
       on S. The mixture's extra Var[m] is how much x_i moves the posterior,
       i.e. what acquiring it teaches about z; counting it as uncertainty
       ranks informative features too late.

All randomness comes from the trainer's per-example noise (standard normal,
width ``noise_size``, see there), so one device and mirrored replicas draw
the same imputations and candidates for an example.
"""
from typing import Callable, Dict

import gin
import tensorflow as tf

from pm_zoo.acquisition import entropy as entropy_lib
from pm_zoo.acquisition import features
from pm_zoo.acquisition.lookahead import LookaheadNetwork
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base

OBJECTIVE = 'lookahead'
TARGETS = ('expected_covariance', 'posterior')


def target_cross_entropy(mean: tf.Tensor, variance: tf.Tensor,
                         loc: tf.Tensor, log_scale: tf.Tensor,
                         target: str) -> tf.Tensor:
  """The lookahead loss of one candidate per row, ``[B, C]``.

  Args:
    mean, variance: moments of the S targets q_theta(z | x_o, x~_s),
      ``[S, B, C, d]``.
    loc, log_scale: the candidates' lookahead Gaussians, ``[B, C, d]``.
    target: 'posterior' (mean over s of the cross-entropy of each target)
      or 'expected_covariance' (see the module docstring: same value as the
      cross-entropy of N(mean_s m, mean_s v), but the location error does
      not move the scale).
  """
  if target == 'posterior':
    return tf.reduce_mean(entropy_lib.diagonal_cross_entropy(
        mean, variance, loc[tf.newaxis], log_scale[tf.newaxis]), axis=0)
  mean = tf.reduce_mean(mean, axis=0)
  variance = tf.reduce_mean(variance, axis=0)
  fixed_loc = tf.stop_gradient(loc)
  scale_term = entropy_lib.diagonal_cross_entropy(fixed_loc, variance,
                                                  fixed_loc, log_scale)
  location_term = 0.5 * tf.reduce_sum(
      tf.square(mean - loc) * tf.stop_gradient(tf.exp(-2.0 * log_scale)),
      axis=-1)
  return scale_term + location_term


def sample_latents(posterior, eps: tf.Tensor, seed) -> tf.Tensor:
  """z_s ~ posterior for eps ``[B, S, d]`` standard normal -> ``[S, B, d]``.

  Gaussians: z = mu + L eps (reparameterised from the given noise); other
  heads: ``posterior.sample(S, seed)``.
  """
  if entropy_lib.is_gaussian(posterior):
    # scale [B, d, d] applied to eps^T [B, d, S] -> [B, d, S].
    z = posterior.scale.matmul(eps, adjoint_arg=True)
    return tf.transpose(z, [2, 0, 1]) + posterior.loc[tf.newaxis]
  return posterior.sample(eps.shape[1], seed=seed)


@gin.configurable
class LookaheadModel(keras.Model):
  """A frozen ``PosteriorMatchingVAE`` plus a trainable ``LookaheadNetwork``.

  Args:
    pm_model: the trained (restored) Posterior Matching model; frozen.
    network: lookahead network factory ``f(feature_shape, latent_dim)``.
    num_imputations: S, imputations per row and step.
    num_candidates: C, candidate features per row and step (fewer if fewer
      are unobserved).
    target: 'expected_covariance' or 'posterior' (see the module docstring).
    entropy_samples: Monte Carlo samples for the moments and entropies of
      non-Gaussian partial posteriors.
  """

  def __init__(self, pm_model, network: Callable = LookaheadNetwork,
               num_imputations: int = 8, num_candidates: int = 16,
               target: str = 'expected_covariance', entropy_samples: int = 16,
               name: str = 'lookahead_model', **kwargs):
    super().__init__(name=name, **kwargs)
    if target not in TARGETS:
      raise UserError(f'LookaheadModel.target must be one of {list(TARGETS)}, '
                      f'got {target!r}')
    if num_imputations < 1 or num_candidates < 1:
      raise UserError('LookaheadModel.num_imputations and num_candidates must '
                      'be >= 1')
    pm_model.vae.require(base.GAUSSIAN_LATENT, 'the lookahead network')
    self.pm = pm_model
    self.feature_shape = tuple(pm_model.feature_shape)
    self.pm_latent_dim = int(pm_model.latent_dim)
    self.num_features = features.num_features(self.feature_shape)
    self.num_imputations = int(num_imputations)
    self.num_candidates = min(int(num_candidates), self.num_features)
    self.target = target
    self.entropy_samples = int(entropy_samples)
    self.network = network(self.feature_shape, self.pm_latent_dim)

  @property
  def noise_size(self) -> int:
    """Width of the per-example noise the trainer draws for this model.

    S x d normals for the imputations, then one key per feature for the
    candidate subset (the C largest keys among the unobserved features).
    """
    return self.num_imputations * self.pm_latent_dim + self.num_features

  def call(self, x, mask, training=False):
    """Builds the network; returns the lookahead entropies ``[B, D]``."""
    return self.network.entropies(x, mask)

  def trainable_variables_for(self, objective: str):
    if objective != OBJECTIVE:
      raise UserError(f'a lookahead model trains with objective '
                      f'{OBJECTIVE!r}, got {objective!r}')
    return self.network.trainable_variables

  def per_example_losses(self, x: tf.Tensor, mask: tf.Tensor,
                         kl_weight: tf.Tensor = None,
                         objective: str = OBJECTIVE, training: bool = True,
                         seed=None, noise=None) -> Dict[str, tf.Tensor]:
    """Loss terms per example, ``[B]`` each.

    ``loss``: the lookahead cross-entropy (module docstring), averaged over
    the row's valid candidates (0 for a row with nothing unobserved);
    ``lookahead_entropy``: mean H(q_omega^(i)) over those candidates;
    ``target_entropy``: mean H(q_theta(z | x_o, x~_i)) over candidates and
    imputations (what the sampling-based rule averages). ``kl_weight`` is
    unused (the trainer passes one).
    """
    del kl_weight
    if objective != OBJECTIVE:
      raise UserError(f'a lookahead model trains with objective '
                      f'{OBJECTIVE!r}, got {objective!r}')
    s, d, c = self.num_imputations, self.pm_latent_dim, self.num_candidates
    batch = tf.shape(x)[0]
    if noise is None:
      noise = tf.random.stateless_normal(
          [batch, self.noise_size],
          seed=tf.constant([0, 0]) if seed is None else seed)
    fallback_seed = tf.bitcast(noise[0, :2], tf.int32)
    eps = tf.reshape(noise[:, :s * d], [batch, s, d])
    keys = noise[:, s * d:]

    # 1. Imputations x~_s = E[x | z_s], z_s ~ q_theta(z | x_o): [S, B, *fs].
    posterior = self.pm.partial_encoder(x, mask, training=False)
    z = sample_latents(posterior, eps, fallback_seed)
    imputed = self.pm.vae.decode(z, training=False).mean()

    # 2. C random unobserved candidates per row: [B, C].
    observed = features.unit_mask(mask, self.feature_shape) > 0
    keys = tf.where(observed, tf.constant(-float('inf'), keys.dtype), keys)
    top, index = tf.math.top_k(keys, k=c)
    valid = tf.cast(top > -float('inf'), x.dtype)
    candidate = features.to_mask(tf.one_hot(index, self.num_features,
                                            dtype=x.dtype),
                                 self.feature_shape)  # [B, C, *fs]

    # 3. Targets q_theta(z | x_o, x~_{s, i_c}) over S x B x C rows.
    x_in = ((x * mask)[tf.newaxis, :, tf.newaxis] +
            candidate[tf.newaxis] * imputed[:, :, tf.newaxis])
    m_in = tf.maximum(mask[tf.newaxis, :, tf.newaxis], candidate[tf.newaxis])
    m_in = tf.broadcast_to(m_in, tf.shape(x_in))
    flat = [-1, *self.feature_shape]
    target = self.pm.partial_encoder(tf.reshape(x_in, flat),
                                     tf.reshape(m_in, flat), training=False)
    mean, variance = entropy_lib.moments(target, self.entropy_samples,
                                         fallback_seed)
    target_entropy = entropy_lib.entropy(target, self.entropy_samples,
                                         fallback_seed)
    shape = [s, batch, c, d]
    mean = tf.stop_gradient(tf.reshape(mean, shape))
    variance = tf.stop_gradient(tf.reshape(variance, shape))
    target_entropy = tf.reduce_mean(
        tf.reshape(target_entropy, [s, batch, c]), axis=0)

    # 4. The targets under q_omega^(i_c)(z | x_o).
    loc, log_scale = self.network(x, mask, training=training)
    loc = tf.gather(loc, index, batch_dims=1)  # [B, C, d]
    log_scale = tf.gather(log_scale, index, batch_dims=1)
    cross_entropy = target_cross_entropy(mean, variance, loc, log_scale,
                                         self.target)
    count = tf.maximum(tf.reduce_sum(valid, axis=-1), 1.0)
    per_row = lambda t: tf.reduce_sum(t * valid, axis=-1) / count
    return {
        'loss': per_row(cross_entropy),
        'lookahead_entropy': per_row(entropy_lib.diagonal_entropy(log_scale)),
        'target_entropy': per_row(target_entropy),
    }
