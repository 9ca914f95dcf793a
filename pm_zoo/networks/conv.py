"""Convolutional encoder and transposed-convolution decoder (the paper's MNIST nets)."""
import math
from typing import Optional, Sequence, Tuple

import gin
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras

LayerSpec = Tuple[int, int, int]  # (filters, kernel size, stride)

# The paper's MNIST encoder: 28x28 -> 14 -> 7 -> (7x7 valid) 1x1x128.
MNIST_ENCODER = ((32, 5, 1), (32, 5, 2), (64, 5, 1), (64, 5, 2), (128, 7, 1))
# The paper's MNIST decoder from 1x1: 7x7 -> 14 -> 28, then the output layer.
MNIST_DECODER = ((64, 7, 1), (64, 5, 2), (32, 5, 1), (32, 5, 2), (32, 5, 1))


@gin.configurable
class ConvEncoder(keras.layers.Layer):
  """Image ``[B, H, W, C]`` -> ``[B, *output_shape]``.

  Conv layers ``(filters, kernel, stride)`` with 'same' padding, except the
  last one, which is 'valid' (on MNIST a 7x7 kernel over the 7x7 map gives a
  1x1 feature vector, as in the paper); then flatten and a linear layer.
  """

  def __init__(self, output_shape: Sequence[int],
               layers: Sequence[LayerSpec] = MNIST_ENCODER,
               activation: str = 'relu', **kwargs):
    super().__init__(**kwargs)
    self.out_shape = tuple(int(s) for s in output_shape)
    self.convs = []
    for i, (filters, kernel, stride) in enumerate(layers):
      last = i == len(layers) - 1
      self.convs.append(keras.layers.Conv2D(
          filters, kernel, strides=stride,
          padding='valid' if last else 'same', activation=activation,
          name=f'conv_{i}'))
    self.flatten = keras.layers.Flatten()
    self.output_dense = keras.layers.Dense(int(math.prod(self.out_shape)))

  def build(self, input_shape):
    if len(input_shape) != 4:
      raise UserError(f'ConvEncoder needs images [batch, H, W, C], got shape '
                      f'{list(input_shape)}: use a ResidualMLP for tables')
    super().build(input_shape)

  def call(self, inputs, training=False):
    h = inputs
    for conv in self.convs:
      h = conv(h)
    return tf.reshape(self.output_dense(self.flatten(h)),
                      [-1, *self.out_shape])


@gin.configurable
class ConvDecoder(keras.layers.Layer):
  """Latent ``[B, d]`` -> parameters ``[B, H, W, K]`` (``output_shape``).

  The latent vector is a 1x1 map; transposed convolutions grow it: the first
  layer is 'valid' (a kxk kernel gives a kxk map), the others 'same'. The last
  layer is a transposed conv with ``output_kernel`` and K filters, no
  activation. The spatial size reached must equal the output's.
  """

  def __init__(self, output_shape: Sequence[int],
               layers: Sequence[LayerSpec] = MNIST_DECODER,
               output_kernel: int = 5, activation: str = 'relu', **kwargs):
    super().__init__(**kwargs)
    self.out_shape = tuple(int(s) for s in output_shape)
    if len(self.out_shape) != 3:
      raise UserError(f'ConvDecoder makes images [H, W, K]; got output shape '
                      f'{list(self.out_shape)}: use a ResidualMLP for tables')
    size = 1
    self.deconvs = []
    for i, (filters, kernel, stride) in enumerate(layers):
      first = i == 0
      size = size - 1 + kernel if first else size * stride
      if first and stride != 1:
        raise UserError('ConvDecoder: the first layer must have stride 1')
      self.deconvs.append(keras.layers.Conv2DTranspose(
          filters, kernel, strides=stride,
          padding='valid' if first else 'same', activation=activation,
          name=f'deconv_{i}'))
    if (size, size) != self.out_shape[:2]:
      raise UserError(
          f'ConvDecoder layers {list(layers)} make {size}x{size} maps but the '
          f'data is {self.out_shape[0]}x{self.out_shape[1]}: bind '
          'ConvDecoder.layers to a stack that reaches the image size')
    self.output_layer = keras.layers.Conv2DTranspose(
        self.out_shape[2], output_kernel, padding='same', name='output')

  def call(self, z, training=False):
    h = tf.reshape(z, [-1, 1, 1, z.shape[-1]])
    for deconv in self.deconvs:
      h = deconv(h)
    return self.output_layer(h)
