"""Autoregressive Gaussian mixture over the latent dimensions (paper, tables).

  q(z | h) = prod_{i=1..d} sum_{k=1..K} pi_ik(z_<i, h) N(z_i; mu_ik(z_<i, h),
                                                        s_ik(z_<i, h)^2),

where h is the output of the x_o network (the head's parameter tensor) and the
per-dimension mixture parameters come from one conditional MADE over z. Each
conditional p(z_i | z_<i, h) is a K-component 1-D mixture, so the joint can be
multimodal and non-Gaussian in every direction, and ``log_prob`` still costs a
single network pass.
"""
import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import made as made_lib

tfd = tfp.distributions


class AutoregressiveMixtureDistribution(tfd.Distribution):
  """The distribution built by ``AutoregressiveGaussianMixture``.

  Batch shape ``context.shape[:-1]``, event ``[d]``.

  * ``log_prob(z)``: one MADE pass, ``[..., d, 3K]`` -> per-dimension mixture
    log-densities ``[..., d]`` -> sum over d.
  * ``sample(n)``: d sequential MADE passes. The randomness (Gumbel noise
    ``[n, ..., d, K]`` for the component, standard normal ``[n, ..., d]`` for
    the value) is drawn once; iteration t recomputes every dimension from the
    current z, and after iteration t the first t dimensions are final, so d
    iterations give an exact ancestral sample. Not reparameterised (L_PM only
    needs ``log_prob``).
  * ``mean()``: no closed form; a Monte Carlo estimate from ``mean_samples``
    draws with a fixed seed (``made.monte_carlo_mean``).

  Args:
    network: conditional MADE, (z [..., d], h [..., c]) -> [..., d, 3K].
    context: h, ``[..., c]``.
    num_components: K.
    min_scale: lower bound on the component scales s = softplus(.) + min_scale.
    mean_samples: draws used by ``mean()``.
  """

  def __init__(self, network, context, num_components, min_scale=1e-4,
               mean_samples=64, validate_args=False, allow_nan_stats=True,
               name='AutoregressiveMixture'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._network = network
      self._context = tf.convert_to_tensor(context, name='context')
      self._num_components = int(num_components)
      self._min_scale = float(min_scale)
      self._mean_samples = int(mean_samples)
      self._event_size = int(network.event_shape[-1])
      super().__init__(
          dtype=self._context.dtype,
          reparameterization_type=tfd.NOT_REPARAMETERIZED,
          validate_args=validate_args, allow_nan_stats=allow_nan_stats,
          parameters=parameters, name=name)

  @property
  def context(self):
    return self._context

  def _batch_shape(self):
    return self._context.shape[:-1]

  def _batch_shape_tensor(self):
    return tf.shape(self._context)[:-1]

  def _event_shape(self):
    return tf.TensorShape([self._event_size])

  def _event_shape_tensor(self):
    return tf.constant([self._event_size], tf.int32)

  def _mixture_params(self, z):
    """(log pi [..., d, K], mu [..., d, K], s [..., d, K]) given z [..., d]."""
    out = made_lib.call_made(self._network, z, self._context)
    logits, loc, raw_scale = tf.split(out, 3, axis=-1)
    scale = tf.nn.softplus(raw_scale) + self._min_scale
    return tf.nn.log_softmax(logits, axis=-1), loc, scale

  def _log_prob(self, z):
    log_pi, loc, scale = self._mixture_params(z)
    z = tf.convert_to_tensor(z, self.dtype)[..., tf.newaxis]
    log_components = tfd.Normal(loc, scale).log_prob(z)  # [..., d, K]
    per_dimension = tf.reduce_logsumexp(log_pi + log_components, axis=-1)
    return tf.reduce_sum(per_dimension, axis=-1)

  def _sample_n(self, n, seed=None):
    gumbel_seed, normal_seed = tfp.random.split_seed(seed, n=2)
    shape = tf.concat([[n], self._batch_shape_tensor(), [self._event_size]],
                      axis=0)
    uniform = tf.random.stateless_uniform(
        tf.concat([shape, [self._num_components]], axis=0), seed=gumbel_seed,
        minval=1e-20, maxval=1.0, dtype=self.dtype)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    noise = tf.random.stateless_normal(shape, seed=normal_seed,
                                       dtype=self.dtype)

    def refine(z):
      log_pi, loc, scale = self._mixture_params(z)
      pick = tf.one_hot(tf.argmax(log_pi + gumbel, axis=-1),
                        self._num_components, dtype=self.dtype)
      z_next = (tf.reduce_sum(pick * loc, axis=-1)
                + tf.reduce_sum(pick * scale, axis=-1) * noise)
      # Under tf.vectorized_map (row-keyed serving draws) the MADE output
      # loses the static batch size; z keeps its shape across iterations.
      return (tf.ensure_shape(z_next, z.shape),)

    (z,) = tf.while_loop(lambda _: True, refine, (tf.zeros(shape, self.dtype),),
                         maximum_iterations=self._event_size)
    return z

  def _mean(self):
    return made_lib.monte_carlo_mean(self, self._mean_samples)


@gin.configurable
class AutoregressiveGaussianMixture(heads.DistributionHead):
  """An autoregressive mixture of 1-D Gaussians, conditioned on the x_o network.

  q(z | h) = prod_i sum_k pi_ik N(z_i; mu_ik, s_ik^2) with
  (logit_ik, mu_ik, raw_ik) = MADE(z_<i, h)_ik and s_ik = softplus(raw_ik) +
  min_scale; i runs left to right (a fixed order, see ``made``).

  Parameters ``[..., context_size]``: the context h itself. The backbone in
  front of the head (the partial encoder's network) outputs h; the MADE's
  weights belong to the head and are tracked by it.

  Cost: ``log_prob`` is one MADE pass; ``sample`` is d passes (d is the latent
  size, 10-64 in the zoo's models).

  Args:
    event_shape: ``[d]``.
    num_components: K >= 1 components per dimension (the paper: 10).
    hidden_units: widths of the MADE's hidden layers.
    context_size: size of h (the backbone's output).
    activation: hidden activation of the MADE.
    min_scale: lower bound on the component scales.
    mean_samples: draws used by the distribution's Monte Carlo ``mean()``.
  """

  def __init__(self, event_shape, num_components: int = 10,
               hidden_units=(256, 256), context_size: int = 64,
               activation: str = 'relu', min_scale: float = 1e-4,
               mean_samples: int = 64, **kwargs):
    super().__init__(event_shape, **kwargs)
    who = type(self).__name__
    d = made_lib.check_vector_event(who, self.event_shape)
    self.num_components = made_lib.check_int(who, 'num_components',
                                             num_components)
    self.hidden_units = made_lib.check_hidden_units(who, hidden_units)
    self.context_size = made_lib.check_int(who, 'context_size', context_size)
    self.min_scale = made_lib.check_positive(who, 'min_scale', min_scale)
    self.mean_samples = made_lib.check_int(who, 'mean_samples', mean_samples)
    self.made = made_lib.conditional_made(
        d, 3 * self.num_components, self.context_size, self.hidden_units,
        activation, name='made')

  @property
  def params_shape(self):
    return (self.context_size,)

  def distribution(self, params):
    params = self._check_params(params)
    return AutoregressiveMixtureDistribution(
        self.made, params, self.num_components, min_scale=self.min_scale,
        mean_samples=self.mean_samples)
