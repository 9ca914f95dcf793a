"""Residual MLP backbone (the paper's tabular network)."""
import math
from typing import Optional, Sequence

import gin
import tensorflow as tf

from pm_zoo.keras_api import keras


def activation_fn(name: str):
  """The Keras activation ``name``, with relu computed as ``max(x, 0)``.

  TF 2.18's oneDNN graph rewriter mis-fuses MatMul + BiasAdd + Relu when the
  BiasAdd output also feeds the residual Add: it logs "empty op name" errors
  and drops its rewrites for the whole graph. ``max(x, 0)`` is the same
  function and does not match that pattern.
  """
  if name == 'relu':
    return lambda t: tf.maximum(t, 0.0)
  return keras.activations.get(name)


class _ResidualBlock(keras.layers.Layer):
  """h + W2 act(W1 act(norm(h))) (pre-activation), with optional dropout."""

  def __init__(self, units, activation, layer_norm, dropout, **kwargs):
    super().__init__(**kwargs)
    self.norm = keras.layers.LayerNormalization() if layer_norm else None
    self.dense1 = keras.layers.Dense(units)
    self.dense2 = keras.layers.Dense(units)
    self.dropout = keras.layers.Dropout(dropout) if dropout > 0 else None
    self.activation = activation_fn(activation)

  def call(self, h, training=False):
    y = self.norm(h) if self.norm is not None else h
    y = self.dense1(self.activation(y))
    if self.dropout is not None:
      y = self.dropout(y, training=training)
    y = self.dense2(self.activation(y))
    return h + y


@gin.configurable
class ResidualMLP(keras.layers.Layer):
  """Maps any input ``[B, ...]`` (flattened) to ``[B, *output_shape]``.

  ``Dense(units) -> num_blocks x residual block -> act -> Dense(prod(output_shape))``.
  The paper's UCI models use units=256 with 2 blocks (MINIBOONE: 5 blocks with
  LayerNorm and dropout 0.5).

  Args:
    output_shape: shape of one output (e.g. a head's ``params_shape``).
    units: width of every hidden layer.
    num_blocks: number of residual blocks.
    layer_norm: LayerNorm at the start of each block.
    dropout: dropout rate inside each block (training only).
    activation: hidden activation.
    output_initializer: initializer of the output layer's kernel; 'zeros'
      starts a distribution head at its bias (e.g. N(0, c I)) instead of at a
      random, often badly conditioned, distribution.
  """

  def __init__(self, output_shape: Sequence[int], units: int = 256,
               num_blocks: int = 2, layer_norm: bool = False,
               dropout: float = 0.0, activation: str = 'relu',
               output_initializer: str = 'glorot_uniform', **kwargs):
    super().__init__(**kwargs)
    self.out_shape = tuple(int(s) for s in output_shape)
    self.flatten = keras.layers.Flatten()
    self.input_dense = keras.layers.Dense(units)
    self.blocks = [
        _ResidualBlock(units, activation, layer_norm, dropout,
                       name=f'block_{i}') for i in range(num_blocks)]
    self.final_norm = keras.layers.LayerNormalization() if layer_norm else None
    self.activation = activation_fn(activation)
    self.output_dense = keras.layers.Dense(
        int(math.prod(self.out_shape)), kernel_initializer=output_initializer)

  def call(self, inputs, training=False):
    h = self.input_dense(self.flatten(inputs))
    for block in self.blocks:
      h = block(h, training=training)
    if self.final_norm is not None:
      h = self.final_norm(h)
    out = self.output_dense(self.activation(h))
    return tf.reshape(out, [-1, *self.out_shape])


@gin.configurable
class DenseMLP(keras.layers.Layer):
  """A plain feed-forward stack: ``[B, ...]`` (flattened) -> ``[B, *output_shape]``.

  ``Dense(units[0]) -> act -> ... -> Dense(units[-1]) -> act ->
  Dense(prod(output_shape))``, hidden widths free to differ (unlike
  ``ResidualMLP``). The VaDE paper's MNIST encoder is ``units=(500, 500,
  2000)`` and its decoder ``units=(2000, 500, 500)``.

  Args:
    output_shape: shape of one output (e.g. a head's ``params_shape``).
    units: widths of the hidden layers, in order.
    activation: hidden activation.
    output_initializer: initializer of the output layer's kernel (see
      ``ResidualMLP``).
  """

  def __init__(self, output_shape: Sequence[int],
               units: Sequence[int] = (500, 500, 2000),
               activation: str = 'relu',
               output_initializer: str = 'glorot_uniform', **kwargs):
    super().__init__(**kwargs)
    self.out_shape = tuple(int(s) for s in output_shape)
    self.flatten = keras.layers.Flatten()
    self.hidden = [keras.layers.Dense(int(u), name=f'dense_{i}')
                   for i, u in enumerate(units)]
    self.activation = activation_fn(activation)
    self.output_dense = keras.layers.Dense(
        int(math.prod(self.out_shape)), kernel_initializer=output_initializer)

  def call(self, inputs, training=False):
    h = self.flatten(inputs)
    for dense in self.hidden:
      h = self.activation(dense(h))
    return tf.reshape(self.output_dense(h), [-1, *self.out_shape])
