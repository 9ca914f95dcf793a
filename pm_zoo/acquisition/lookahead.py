"""Lookahead posteriors: one Gaussian q_omega^(i)(z | x_o) per feature i (Eq. 7).

A trunk network reads ``concat(x * b, b)`` (as the partial encoder does) and
ends in ``hidden_units`` features h = relu(trunk(.)); two linear maps give,
for every candidate feature i and latent dimension j,

  loc_ij       = (h W_loc + c_loc)_ij,
  log_scale_ij = (h W_s + c_s)_ij,          q_omega^(i) = N(loc_i, diag(exp(2 log_scale_i))).

The scale is exp of a linear map on purpose: the entropy that the greedy step
needs is then linear in h,

  H_i = d/2 log(2 pi e) + sum_j log_scale_ij = h . (sum_j W_s[:, i, j]) + const_i,

so ``folded_entropy_head`` sums the log-scale weights over j once, and a
greedy step reads a ``[hidden_units, num_features]`` matrix instead of the
``[hidden_units, num_features * d]`` one (d times fewer weights; the step is
memory-bound at batch 1). The full Gaussians stay available (``call``,
``distribution``) for training and inspection.

Both output layers start at zero: every q_omega^(i) starts at N(0, I).
"""
from typing import Callable, Sequence, Tuple

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.acquisition import entropy as entropy_lib
from pm_zoo.acquisition import features
from pm_zoo.keras_api import keras
from pm_zoo.matching import observed_input
from pm_zoo.networks import mlp

tfd = tfp.distributions


@gin.configurable
class LookaheadNetwork(keras.layers.Layer):
  """Diagonal Gaussians q_omega^(i)(z | x_o) for every feature i, one pass.

  Args:
    feature_shape: shape of one example (runtime, from the data).
    latent_dim: size of z (the VAE's).
    network: trunk factory ``f(output_shape=..., name=...)`` over
      ``concat(x * b, b)``, e.g. ``ResidualMLP`` or a ``ConvEncoder`` (the
      paper used a copy of the VAE's encoder).
    hidden_units: width of the trunk's output (the features h).
  """

  def __init__(self, feature_shape: Sequence[int], latent_dim: int,
               network: Callable = mlp.ResidualMLP, hidden_units: int = 128,
               name: str = 'lookahead', **kwargs):
    super().__init__(name=name, **kwargs)
    self.feature_shape = tuple(int(s) for s in feature_shape)
    self.latent_dim = int(latent_dim)
    self.num_features = features.num_features(self.feature_shape)
    self.hidden_units = int(hidden_units)
    self.trunk = network(output_shape=[self.hidden_units],
                         name='lookahead_network')
    size = self.num_features * self.latent_dim
    self.loc_dense = keras.layers.Dense(size, kernel_initializer='zeros',
                                        name='loc')
    self.log_scale_dense = keras.layers.Dense(size, kernel_initializer='zeros',
                                              name='log_scale')

  def hidden(self, x, mask, training=False) -> tf.Tensor:
    """h = relu(trunk(concat(x * b, b))), ``[B, hidden_units]``."""
    return tf.maximum(self.trunk(observed_input(x, mask), training=training),
                      0.0)

  def call(self, x, mask, training=False) -> Tuple[tf.Tensor, tf.Tensor]:
    """(loc, log_scale), each ``[B, num_features, latent_dim]``."""
    h = self.hidden(x, mask, training=training)
    shape = [-1, self.num_features, self.latent_dim]
    return (tf.reshape(self.loc_dense(h), shape),
            tf.reshape(self.log_scale_dense(h), shape))

  def distribution(self, x, mask) -> tfd.Distribution:
    """q_omega^(i)(z | x_o): batch shape ``[B, num_features]``, event ``[d]``."""
    loc, log_scale = self(x, mask)
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.exp(log_scale))

  def entropies(self, x, mask) -> tf.Tensor:
    """H(q_omega^(i)) for every i, ``[B, num_features]`` (unfolded path)."""
    return entropy_lib.diagonal_entropy(self(x, mask)[1])

  def folded_entropy_head(self) -> Tuple[np.ndarray, np.ndarray]:
    """(kernel ``[hidden_units, num_features]``, bias ``[num_features]``).

    ``hidden(x, b) @ kernel + bias`` equals ``entropies(x, b)`` (up to float
    rounding): the log-scale layer summed over the latent axis, plus the
    constant d/2 log(2 pi e).
    """
    kernel = self.log_scale_dense.kernel.numpy().reshape(
        self.hidden_units, self.num_features, self.latent_dim).sum(axis=-1)
    bias = self.log_scale_dense.bias.numpy().reshape(
        self.num_features, self.latent_dim).sum(axis=-1)
    bias = bias + self.latent_dim * entropy_lib.HALF_LOG_2PI_E
    return kernel.astype(np.float32), bias.astype(np.float32)
