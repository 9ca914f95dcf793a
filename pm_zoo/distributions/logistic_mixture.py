"""Discretized mixture of logistics over 8-bit pixels (PixelCNN++ / VDVAE).

A pixel value y in {0, ..., 255} has probability

  P(y) = sum_k pi_k [ F_k(y + 1/2) - F_k(y - 1/2) ],   F_k(t) = sigmoid((t - mu_k) / s_k),

with the edges taking all the mass outside: P(0) = sum_k pi_k F_k(1/2) and
P(255) = sum_k pi_k [1 - F_k(254.5)]. The sampler is TFP's
``tfd.MixtureSameFamily(Categorical(logits), QuantizedDistribution(
Logistic(mu - 1/2, s), low=0, high=255))`` (the -1/2 shift makes
``QuantizedDistribution``'s ``G(y) - G(y - 1)`` the bin [y - 1/2, y + 1/2]).
The log-probability is computed in closed form, because TFP's is a difference
of two log-CDFs, which cancels: with a = (y - 1/2 - mu) / s and
b = (y + 1/2 - mu) / s, one component's mass is exactly

  sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - exp(-1 / s)),

so  log mass = -softplus(-b) - softplus(a) + log(-expm1(-1 / s)),
and P(0) = sigmoid(b), P(255) = sigmoid(-a) (the same terms with the
missing edge dropped). Every term is accurate in float32 for any y, mu and
s: no subtraction of nearly equal numbers and no infinite branch, so neither
the value nor the gradient is ever NaN. (TFP's form gave NaN gradients with
finite losses, through unselected branches: a quantized mixture has no
survival function, so log(1 - G) is -inf for pixels ~17 scales above every
component; quantized components cancel for components broader than ~1e6
levels. The small HVAE's training stopped on both, at step ~700 and ~40,
docs/models-hierarchical.md.) The mixture is a log-sum-exp over components.

The model's pixels are in [0, 1] (``x = y / 255``); this distribution takes
and gives values in those units: ``log_prob(x)`` scores ``round(255 x)``,
``sample`` returns ``y / 255`` and ``mean`` (what imputation decodes) is the
mean of the mixture clipped to [0, 255], per component in closed form,

  E[clip(Y_k, 0, 255)] = s_k softplus(mu_k / s_k) - s_k softplus((mu_k - 255) / s_k),

within half a level of the quantized mean (the scale capped at 1e4 levels
against float32 cancellation, which moves it by at most 0.8 levels). Not
the mean of the clipped locations, sum_k pi_k clip(mu_k): a trained HVAE
explains white pixels by broad components centred at 0 whose tails fill the
open top bin (log s ~ 4.6, weight 0.99), and the clipped locations then
decode every pixel as black.

Shapes: parameters ``[..., K]`` per pixel; batch shape ``[...]`` (e.g.
``[B, H, W, C]``), scalar events. ``pixel_likelihood`` wraps it in
``tfd.Independent`` over ``[H, W, C]``, the factorised decoder form that
``heads.elementwise_log_prob`` reads per-pixel log-probabilities from.
"""
import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

NUM_LEVELS = 256
# PixelCNN++ clips log s at -7 on its [-1, 1] pixel scale, where one level is
# 2 / 255 wide; on this distribution's [0, 255] scale that is -7 + log(127.5)
# (s >= 0.12 levels: sharper components put no more mass in their bin).
MIN_LOG_SCALE = -7.0 + math.log(127.5)
# mean() caps the scale here (float32 cancellation beyond): it moves a
# broader component's clipped mean, ~127.5, by at most 255^2 / (8 s) = 0.8
# levels at s = 1e4.
MAX_MEAN_SCALE = 1e4


class DiscretizedLogisticMixture(
    tfd.distribution.AutoCompositeTensorDistribution):
  """Per-pixel discretized logistic mixture over x = y / 255 (see module).

  A composite tensor (as tfp's own distributions), so that ``tfd.Independent``
  over it is the ``tfd.Independent`` class that
  ``heads.elementwise_log_prob`` reads.

  Args:
    logits: ``[..., K]`` mixture logits.
    loc: ``[..., K]`` locations mu_k on the [0, 255] scale.
    log_scale: ``[..., K]`` log s_k on the [0, 255] scale (clipped below at
      ``MIN_LOG_SCALE``, PixelCNN++'s -7 on its [-1, 1] scale).
  """

  def __init__(self, logits, loc, log_scale, validate_args=False,
               allow_nan_stats=True, name='DiscretizedLogisticMixture'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._logits = tf.convert_to_tensor(logits, tf.float32)
      self._loc = tf.convert_to_tensor(loc, tf.float32)
      self._log_scale = tf.maximum(
          tf.convert_to_tensor(log_scale, tf.float32), MIN_LOG_SCALE)
      # (Not tf.nn.log_softmax: oneDNN's softmax kernels take at most 5
      # dimensions, and sampled batches have 6.)
      self._log_weights = self._logits - tf.reduce_logsumexp(
          self._logits, axis=-1, keepdims=True)
      # Draws only: its log_prob is TFP's difference of log-CDFs (module
      # docstring), which _log_prob replaces.
      self._sampler = tfd.MixtureSameFamily(
          mixture_distribution=tfd.Categorical(logits=self._logits),
          components_distribution=tfd.QuantizedDistribution(
              tfd.Logistic(loc=self._loc - 0.5,
                           scale=tf.exp(self._log_scale)),
              low=0., high=NUM_LEVELS - 1.))
      super().__init__(
          dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
          validate_args=validate_args, allow_nan_stats=allow_nan_stats,
          parameters=parameters, name=name)

  def _batch_shape(self):
    return self._logits.shape[:-1]

  def _batch_shape_tensor(self):
    return tf.shape(self._logits)[:-1]

  def _event_shape(self):
    return tf.TensorShape([])

  def _event_shape_tensor(self):
    return tf.constant([], tf.int32)

  def _log_prob(self, x):
    y = tf.clip_by_value(tf.round(x * (NUM_LEVELS - 1)), 0., NUM_LEVELS - 1.)
    y = y[..., tf.newaxis]
    inv_scale = tf.exp(-self._log_scale)
    a = (y - 0.5 - self._loc) * inv_scale
    b = (y + 0.5 - self._loc) * inv_scale
    # log sigmoid(b) (mass below the bin's top; 0 at the top edge), log
    # sigmoid(-a) (above its bottom; 0 at the bottom edge), log of the bin's
    # width factor (1 at either edge).
    below_top = tf.where(y < NUM_LEVELS - 1., -tf.math.softplus(-b), 0.)
    above_bottom = tf.where(y > 0., -tf.math.softplus(a), 0.)
    interior = tf.logical_and(y > 0., y < NUM_LEVELS - 1.)
    width = tf.where(interior, tf.math.log(-tf.math.expm1(-inv_scale)), 0.)
    return tf.reduce_logsumexp(
        self._log_weights + below_top + above_bottom + width, axis=-1)

  def _sample_n(self, n, seed=None):
    return self._sampler.sample(n, seed=seed) / (NUM_LEVELS - 1)

  def _mean(self):
    weights = tf.exp(self._log_weights)
    scale = tf.minimum(tf.exp(self._log_scale), MAX_MEAN_SCALE)
    top = NUM_LEVELS - 1.
    clipped_mean = scale * (tf.math.softplus(self._loc / scale) -
                            tf.math.softplus((self._loc - top) / scale))
    return tf.reduce_sum(weights * clipped_mean, axis=-1) / top


def num_params(num_components: int) -> int:
  """Channels per pixel channel: logits, locations, log-scales."""
  return 3 * int(num_components)


def pixel_likelihood(params: tf.Tensor, num_components: int,
                     event_ndims: int = 3) -> tfd.Distribution:
  """p(x | z) from ``params [..., H, W, C * 3K]``: Independent over [H, W, C].

  The last axis holds, per image channel, K logits, K locations (an
  unconstrained value mapped to [0, 255] as ``127.5 (tanh + 1)``) and K
  log-scales (relative to the 8-bit scale: s = 127.5 exp(raw)).
  """
  k = int(num_components)
  shape = tf.shape(params)
  params = tf.reshape(params, tf.concat([shape[:-1], [-1, 3, k]], axis=0))
  logits, raw_loc, raw_log_scale = tf.unstack(params, axis=-2)
  loc = 127.5 * (tf.tanh(raw_loc) + 1.0)
  log_scale = raw_log_scale + tf.math.log(127.5)
  return tfd.Independent(
      DiscretizedLogisticMixture(logits, loc, log_scale),
      reinterpreted_batch_ndims=event_ndims)
