"""Distribution heads: layers that turn a parameter tensor into a tfp distribution.

A head knows how many parameters its distribution needs for a given event
shape (``params_shape``) and builds the distribution from a tensor of that
shape (``distribution``). Networks produce the parameters; heads own the
parameterisation and any free parameters of their own (for example a learned
observation scale). Heads are Keras layers so that their variables are tracked
by the model, its checkpoint and its trainable variables, but the distribution
is built by the ``distribution`` method, never returned from ``__call__``:
nothing that crosses ``strategy.run``, a checkpoint or a SavedModel signature is
a distribution object.
"""
import math
from typing import Sequence

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras

tfd = tfp.distributions
tfb = tfp.bijectors


class DistributionHead(keras.layers.Layer):
  """Base class: ``params_shape(event_shape)`` and ``distribution(params)``.

  Args:
    event_shape: shape of one draw, e.g. ``[d]`` for a latent vector or
      ``[H, W, C]`` for an image.
  """

  def __init__(self, event_shape: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    self.event_shape = tuple(int(s) for s in event_shape)
    if not self.event_shape or min(self.event_shape) < 1:
      raise UserError(
          f'{type(self).__name__} needs a non-empty event shape of positive '
          f'sizes, got {list(event_shape)}')

  @property
  def event_size(self) -> int:
    return int(math.prod(self.event_shape))

  @property
  def params_shape(self) -> tuple:
    """Shape of the parameters of one distribution (without batch axes)."""
    raise NotImplementedError

  @property
  def params_size(self) -> int:
    return int(math.prod(self.params_shape))

  def distribution(self, params: tf.Tensor) -> tfd.Distribution:
    """Builds the distribution from ``params`` of shape ``batch + params_shape``."""
    raise NotImplementedError

  def call(self, params):  # pragma: no cover - heads are used via distribution()
    raise TypeError(
        f'{type(self).__name__}: call .distribution(params) to build the '
        'distribution')

  def _check_params(self, params: tf.Tensor) -> tf.Tensor:
    params = tf.convert_to_tensor(params)
    tail = tuple(params.shape[-len(self.params_shape):])
    if None not in tail and tail != self.params_shape:
      raise ValueError(
          f'{self.name}: expected parameters with trailing shape '
          f'{self.params_shape}, got {tuple(params.shape)}')
    return params


def _positive(raw: tf.Tensor, min_scale: float) -> tf.Tensor:
  return tf.nn.softplus(raw) + min_scale


@gin.configurable
class DiagonalGaussian(DistributionHead):
  """q(z) = N(mu, diag(sigma^2)) over a flat event of size d.

  Parameters ``[..., 2d]``: ``mu = p[:d]``, ``sigma = softplus(p[d:]) + min_scale``.
  """

  def __init__(self, event_shape, min_scale: float = 1e-4, **kwargs):
    super().__init__(event_shape, **kwargs)
    if len(self.event_shape) != 1:
      raise UserError(f'DiagonalGaussian is over vectors; got event shape '
                      f'{list(self.event_shape)}')
    self.min_scale = min_scale

  @property
  def params_shape(self):
    return (2 * self.event_size,)

  def distribution(self, params):
    params = self._check_params(params)
    loc, raw_scale = tf.split(params, 2, axis=-1)
    return tfd.MultivariateNormalDiag(
        loc=loc, scale_diag=_positive(raw_scale, self.min_scale))


@gin.configurable
class FullCovarianceGaussian(DistributionHead):
  """q(z) = N(mu, L L^T) with a lower-triangular Cholesky factor L.

  Parameters ``[..., d + d(d+1)/2]``: the mean, then the d(d+1)/2 entries of L
  filled row-wise by ``tfb.FillScaleTriL`` (diagonal through
  ``softplus(.) + min_scale`` so that L is a valid Cholesky factor).
  """

  def __init__(self, event_shape, min_scale: float = 1e-4, **kwargs):
    super().__init__(event_shape, **kwargs)
    if len(self.event_shape) != 1:
      raise UserError(f'FullCovarianceGaussian is over vectors; got event '
                      f'shape {list(self.event_shape)}')
    self.min_scale = min_scale
    self._fill_tril = tfb.FillScaleTriL(
        diag_bijector=tfb.Chain([tfb.Shift(min_scale), tfb.Softplus()]),
        diag_shift=None)

  @property
  def params_shape(self):
    d = self.event_size
    return (d + d * (d + 1) // 2,)

  def distribution(self, params):
    params = self._check_params(params)
    d = self.event_size
    loc, raw_tril = params[..., :d], params[..., d:]
    return tfd.MultivariateNormalTriL(
        loc=loc, scale_tril=self._fill_tril.forward(raw_tril))


@gin.configurable
class Bernoulli(DistributionHead):
  """p(x | z) = prod_i Bernoulli(x_i; sigmoid(logit_i)), one logit per element.

  Targets may be continuous in [0, 1] (the paper's MNIST model is trained on
  grey levels, not binarised pixels): the log-probability is then the
  continuous cross-entropy ``x log p + (1 - x) log(1 - p)``.
  """

  @property
  def params_shape(self):
    return self.event_shape

  def distribution(self, params):
    params = self._check_params(params)
    return tfd.Independent(
        tfd.Bernoulli(logits=params, dtype=params.dtype),
        reinterpreted_batch_ndims=len(self.event_shape))


@gin.configurable
class Gaussian(DistributionHead):
  """p(x | z) = prod_i N(x_i; mu_i, s^2) with a learned scale s.

  ``scale='scalar'`` learns one s shared by every element (the paper's tabular
  decoder); ``scale='feature'`` learns one s per element of the event.
  s = softplus(raw) + min_scale with raw initialised so that s = init_scale.
  """

  def __init__(self, event_shape, scale: str = 'scalar',
               init_scale: float = 1.0, min_scale: float = 1e-3, **kwargs):
    super().__init__(event_shape, **kwargs)
    if scale not in ('scalar', 'feature'):
      raise UserError(f"Gaussian.scale must be 'scalar' or 'feature', got "
                      f'{scale!r}')
    if init_scale <= min_scale:
      raise UserError(f'Gaussian.init_scale ({init_scale}) must exceed '
                      f'min_scale ({min_scale})')
    self.scale_kind = scale
    self.min_scale = min_scale
    raw_init = math.log(math.expm1(init_scale - min_scale))
    shape = () if scale == 'scalar' else self.event_shape
    self.raw_scale = self.add_weight(
        name='raw_scale', shape=shape,
        initializer=keras.initializers.Constant(raw_init), trainable=True)

  @property
  def params_shape(self):
    return self.event_shape

  def distribution(self, params):
    params = self._check_params(params)
    scale = _positive(tf.cast(self.raw_scale, params.dtype), self.min_scale)
    scale = tf.broadcast_to(scale, tf.shape(params))
    return tfd.Independent(
        tfd.Normal(loc=params, scale=scale),
        reinterpreted_batch_ndims=len(self.event_shape))


def elementwise_log_prob(dist: tfd.Distribution, x: tf.Tensor) -> tf.Tensor:
  """log p(x_i | z) for every element, shape ``batch + event_shape``.

  Decoder heads return ``tfd.Independent`` over a factorised base, so the
  per-element terms are the base distribution's log-probabilities. They are
  what a likelihood restricted to the observed features sums over:
  ``log p(x_o | z) = sum_i b_i log p(x_i | z)``.
  """
  if hasattr(dist, 'elementwise_log_prob'):  # tabular.MixedTableDistribution
    return dist.elementwise_log_prob(x)
  if not isinstance(dist, tfd.Independent):
    raise TypeError('elementwise_log_prob needs a factorised (Independent) '
                    f'decoder distribution, got {type(dist).__name__}')
  return dist.distribution.log_prob(x)
