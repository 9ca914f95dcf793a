"""Conditional autoregressive flows as partial posterior heads.

  z = T_h(u),   u ~ N(mu(h), Sigma(h)),   log q(z | h) = log N(T_h^{-1}(z)) +
                                               log |det d T_h^{-1}(z) / dz|,

where h is the output of the x_o network. The base Gaussian's parameters come
from h (diagonal or full covariance), and T_h is a stack of ``num_flows``
affine autoregressive layers ``y_i = x_i exp(a_i) + b_i``, whose (b_i, a_i) come
from a conditional MADE that also takes h, with fixed permutations between
layers (``made.fixed_permutation``).

Two directions of the same layer:

* ``MaskedAutoregressiveFlow`` (MAF, Papamakarios et al., 2017): (b_i, a_i) are
  functions of the layer's output y_<i. ``log_prob`` (the inverse direction)
  needs no loop: the MADE runs on y once for the inverse and once more for its
  log-determinant (TFP does not share the two), 2 evaluations per layer;
  ``sample`` is d sequential evaluations per layer.
* ``InverseAutoregressiveFlow`` (IAF, Kingma et al., 2016): each layer is
  ``tfb.Invert`` of a MAF layer, so (b_i, a_i) are functions of the layer's
  input x_<i. ``sample`` is one evaluation per layer, and ``log_prob`` is
  d + 1 sequential evaluations per layer (the loop, then the log-determinant).
  Posterior Matching trains on ``log_prob`` only, so an IAF partial posterior
  costs about (d + 1) / 2 times a MAF's per training step (measured by counting
  MADE calls: d = 6, 2 layers: MAF 4, IAF 14); prefer the MAF unless fast
  sampling (imputation) dominates.

The per-layer log-scale is bounded, ``a = max_log_scale * tanh(raw /
max_log_scale)``, so an untrained flow cannot overflow.
"""
import functools

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import made as made_lib
from pm_zoo.errors import UserError

tfd = tfp.distributions
tfb = tfp.bijectors

BASES = ('diag', 'full')


class FlowDistribution(tfd.Distribution):
  """A ``TransformedDistribution`` with a Monte Carlo ``mean()``.

  ``log_prob`` and ``sample`` are those of ``transformed`` (a flow has no
  closed-form mean, and ``PosteriorMatchingVAE`` builds its variables through
  the partial posterior's ``mean()``); ``mean()`` averages ``mean_samples``
  draws under a fixed seed.

  Args:
    transformed: the ``tfd.TransformedDistribution`` (batch [...], event [d]).
    mean_samples: draws used by ``mean()``.
  """

  def __init__(self, transformed, mean_samples=64, validate_args=False,
               allow_nan_stats=True, name='Flow'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._transformed = transformed
      self._mean_samples = int(mean_samples)
      super().__init__(
          dtype=transformed.dtype,
          reparameterization_type=transformed.reparameterization_type,
          validate_args=validate_args, allow_nan_stats=allow_nan_stats,
          parameters=parameters, name=name)

  @property
  def transformed(self):
    return self._transformed

  def _batch_shape(self):
    return self._transformed.batch_shape

  def _batch_shape_tensor(self):
    return self._transformed.batch_shape_tensor()

  def _event_shape(self):
    return self._transformed.event_shape

  def _event_shape_tensor(self):
    return self._transformed.event_shape_tensor()

  def _log_prob(self, z):
    # The sequential direction (IAF log_prob, MAF sample) iterates in place,
    # so give z the full batch shape first.
    z = tf.convert_to_tensor(z, self.dtype)
    batch = tf.broadcast_dynamic_shape(tf.shape(z)[:-1],
                                       self._batch_shape_tensor())
    z = tf.broadcast_to(z, tf.concat([batch, tf.shape(z)[-1:]], axis=0))
    return self._transformed.log_prob(z)

  def _sample_n(self, n, seed=None):
    return self._transformed.sample(n, seed=seed)

  def _mean(self):
    return made_lib.monte_carlo_mean(self, self._mean_samples)


class _AutoregressiveFlow(heads.DistributionHead):
  """Shared by MAF and IAF: base head, MADE stack, permutations.

  Parameters ``[..., base_size + context_size]``: the first ``base_size`` feed
  the base Gaussian head (``DiagonalGaussian``: 2d, ``FullCovarianceGaussian``:
  d + d(d+1)/2), the last ``context_size`` are the context h of every MADE.

  Args:
    event_shape: ``[d]``.
    num_flows: number of autoregressive layers (>= 1).
    hidden_units: widths of each MADE's hidden layers.
    base: ``'diag'`` or ``'full'`` covariance of the base Gaussian.
    context_size: size of h.
    activation: hidden activation of the MADEs.
    max_log_scale: bound on each layer's |log-scale|.
    min_scale: lower bound on the base Gaussian's scale.
    mean_samples: draws used by the distribution's Monte Carlo ``mean()``.
  """

  inverted = False

  def __init__(self, event_shape, num_flows: int = 2,
               hidden_units=(256, 256), base: str = 'diag',
               context_size: int = 64, activation: str = 'relu',
               max_log_scale: float = 3.0, min_scale: float = 1e-4,
               mean_samples: int = 64, **kwargs):
    super().__init__(event_shape, **kwargs)
    who = type(self).__name__
    d = made_lib.check_vector_event(who, self.event_shape)
    self.num_flows = made_lib.check_int(who, 'num_flows', num_flows)
    self.hidden_units = made_lib.check_hidden_units(who, hidden_units)
    if base not in BASES:
      raise UserError(f'{who}.base must be one of {list(BASES)}, got {base!r}')
    self.base = base
    self.context_size = made_lib.check_int(who, 'context_size', context_size)
    self.max_log_scale = made_lib.check_positive(who, 'max_log_scale',
                                                 max_log_scale)
    self.mean_samples = made_lib.check_int(who, 'mean_samples', mean_samples)
    base_head = (heads.DiagonalGaussian if base == 'diag'
                 else heads.FullCovarianceGaussian)
    self.base_head = base_head(
        [d], min_scale=made_lib.check_positive(who, 'min_scale', min_scale),
        name='base')
    self.mades = [
        made_lib.conditional_made(d, 2, self.context_size, self.hidden_units,
                                  activation, name=f'made_{k}')
        for k in range(self.num_flows)]
    # permutations[k] reorders z between layer k and layer k + 1.
    self.permutations = tuple(made_lib.fixed_permutation(d, k)
                              for k in range(self.num_flows - 1))

  @property
  def params_shape(self):
    return (self.base_head.params_size + self.context_size,)

  def _shift_and_log_scale(self, made, context, y):
    out = made_lib.call_made(made, y, context)
    shift, raw = tf.unstack(out, num=2, axis=-1)
    return shift, self.max_log_scale * tf.tanh(raw / self.max_log_scale)

  def bijector(self, context: tf.Tensor) -> tfb.Bijector:
    """T_h: base sample u [..., d] -> z [..., d], for context h [..., c]."""
    layers = []  # in the order they act on u
    for k, made in enumerate(self.mades):
      if k > 0:
        layers.append(tfb.Permute(list(self.permutations[k - 1])))
      maf = tfb.MaskedAutoregressiveFlow(
          shift_and_log_scale_fn=functools.partial(
              self._shift_and_log_scale, made, context),
          name=f'maf_{k}')
      layers.append(tfb.Invert(maf) if self.inverted else maf)
    return tfb.Chain(layers[::-1])  # Chain applies its last bijector first

  def distribution(self, params):
    params = self._check_params(params)
    size = self.base_head.params_size
    base = self.base_head.distribution(params[..., :size])
    transformed = tfd.TransformedDistribution(
        distribution=base, bijector=self.bijector(params[..., size:]))
    return FlowDistribution(transformed, mean_samples=self.mean_samples)


@gin.configurable
class MaskedAutoregressiveFlow(_AutoregressiveFlow):
  """Conditional MAF partial posterior: z = T_h(u), u ~ N(mu(h), Sigma(h)).

  Layer k: y_i = x_i exp(a_i(y_<i, h)) + b_i(y_<i, h). ``log_prob`` inverts
  every layer without a loop (2 MADE evaluations per layer); ``sample`` runs d
  sequential evaluations per layer. Arguments and parameter layout: see
  ``_AutoregressiveFlow``.
  """
  inverted = False


@gin.configurable
class InverseAutoregressiveFlow(_AutoregressiveFlow):
  """Conditional IAF partial posterior: each layer is ``tfb.Invert`` of a MAF.

  Layer k: y_i = (x_i - b_i(x_<i, h)) exp(-a_i(x_<i, h)). ``sample`` is one
  MADE evaluation per layer; ``log_prob`` runs d + 1 sequential evaluations per
  layer, about (d + 1) / 2 times a MAF's cost per Posterior Matching step
  (which needs only ``log_prob``). Arguments and parameter layout: see
  ``_AutoregressiveFlow``.
  """
  inverted = True
