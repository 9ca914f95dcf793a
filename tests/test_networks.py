"""Backbones: output shapes and the paper's layer stacks."""
import numpy as np
import pytest
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.networks import conv
from pm_zoo.networks import mlp


def test_residual_mlp_shapes_and_parameter_count():
  net = mlp.ResidualMLP(output_shape=[7], units=8, num_blocks=2)
  out = net(tf.zeros([3, 5]))
  assert out.shape == (3, 7)
  # input 5*8+8, two blocks of 2 x (8*8+8), output 8*7+7
  assert net.count_params() == (5 * 8 + 8) + 2 * 2 * (8 * 8 + 8) + (8 * 7 + 7)


def test_dense_mlp_shapes_and_parameter_count():
  net = mlp.DenseMLP(output_shape=[2, 3], units=(8, 4))
  out = net(tf.zeros([5, 2, 2]))          # flattened to 4 inputs
  assert out.shape == (5, 2, 3)
  assert net.count_params() == (4 * 8 + 8) + (8 * 4 + 4) + (4 * 6 + 6)
  # ReLU between the layers: negating the input does not negate the output.
  x = tf.random.stateless_normal([5, 4], seed=[0, 2])
  assert not np.allclose(net(-x).numpy(), -net(x).numpy() +
                         2 * net(tf.zeros_like(x)).numpy())


def test_residual_mlp_dropout_only_in_training():
  net = mlp.ResidualMLP(output_shape=[4], units=16, num_blocks=1,
                        layer_norm=True, dropout=0.5)
  x = tf.random.stateless_normal([8, 3], seed=[0, 1])
  np.testing.assert_allclose(net(x).numpy(), net(x).numpy())
  assert not np.allclose(net(x, training=True).numpy(), net(x).numpy())


def test_paper_mnist_encoder_reaches_one_by_one():
  enc = conv.ConvEncoder(output_shape=[10])
  out = enc(tf.zeros([2, 28, 28, 2]))
  assert out.shape == (2, 10)
  # The last conv is 7x7 'valid' over a 7x7 map: 128 features feed the head.
  assert enc.output_dense.kernel.shape == (128, 10)


def test_paper_mnist_decoder_reaches_28():
  dec = conv.ConvDecoder(output_shape=[28, 28, 1])
  assert dec(tf.zeros([2, 32])).shape == (2, 28, 28, 1)


def test_decoder_that_misses_the_image_size_is_refused():
  with pytest.raises(UserError, match='16x16'):
    conv.ConvDecoder(output_shape=[16, 16, 1])  # paper's 28x28 stack


def test_conv_encoder_refuses_tables():
  with pytest.raises(UserError, match='ResidualMLP'):
    conv.ConvEncoder(output_shape=[4])(tf.zeros([2, 5]))
