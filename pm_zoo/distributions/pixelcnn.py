"""A conditional gated PixelCNN over a grid of code indices: q_theta(k | x_o).

The partial posterior of a VQ-VAE: a distribution over int32 code grids
``k [h, w]`` with values in {0..K-1}, factorised in raster order

  q_theta(k | x_o) = prod_{p = 1..hw} Categorical(k_p; softmax(l_p(k_<p, c))),

where ``c = Linear_512(flatten(ConvResNet(concat(x * b, b))))`` is the
conditioning vector of the observed pixels and l_p are the logits at grid
position p.

Network (a gated PixelCNN with vertical and horizontal stacks and no blind
spot, in the shifted-convolution form of PixelCNN++):

* codes are embedded (K -> ``filters``);
* the vertical stack v only sees rows above (a 2x3 convolution over the rows
  i-1..i of a map that is already shifted down one row), the horizontal
  stack h sees the positions before p in raster order (2x2 convolutions over
  a map shifted right one column, plus v), so that together they cover the
  whole causal past;
* every gated block is ``y = x + a * sigmoid(g)``, with
  ``[a, g] = conv(dropout(celu(conv(celu(x)) + nin(celu(aux))))) + W c``
  (concat-ELU ``celu(t) = elu([t, -t])``, dropout, the conditioning vector c
  mapped by a linear layer to 2 x filters and added before the gate);
* an "up" pass of ``num_blocks // 2`` blocks per stack keeps its outputs,
  a "down" pass of the rest takes them back as skips (aux inputs); there is
  no change of resolution (grids are small: 7 x 7 on MNIST);
* logits: a 1x1 layer from elu(h) to K.

Why not ``tfd.PixelCNN``: it models ordered intensities with a discretized
logistic mixture (its network reads the pixel values and emits mixture
parameters); code indices are unordered categories, so they are embedded on
the way in and need a categorical head on the way out. The shifted-conv
structure, concat-ELU gated residual blocks, dropout and the additive
conditioning follow ``tfd.PixelCNN``'s design; the layers are Keras'.

Sampling is one ``tf.while_loop`` over the hw positions, batched over rows
and samples: at step p the network runs on the current grid and position p
is drawn by inverse CDF from one uniform per (sample, row, position). The
uniforms come from one stateless seed (``sample``) or from one seed per row
(``sample_rows``, the row-keyed draws of ``pm_zoo.tasks.imputation``).
"""
from typing import Optional, Sequence

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.matching import observed_input

tfd = tfp.distributions


def concat_elu(t: tf.Tensor) -> tf.Tensor:
  """elu([t, -t]) on the channel axis (doubles the channels)."""
  return tf.nn.elu(tf.concat([t, -t], axis=-1))


def down_shift(t: tf.Tensor) -> tf.Tensor:
  """Moves ``[B, h, w, C]`` one row down (zeros in row 0)."""
  return tf.pad(t, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]


def right_shift(t: tf.Tensor) -> tf.Tensor:
  """Moves ``[B, h, w, C]`` one column right (zeros in column 0)."""
  return tf.pad(t, [[0, 0], [0, 0], [1, 0], [0, 0]])[:, :, :-1]


class ShiftedConv(keras.layers.Layer):
  """A causal 'valid' convolution after padding.

  ``mode='down'``: output (i, j) sees rows i-kh+1..i and columns
  j-(kw-1)/2..j+(kw-1)/2 (kw odd). ``mode='down_right'``: rows i-kh+1..i
  and columns j-kw+1..j. Shapes ``[B, h, w, C] -> [B, h, w, filters]``.
  """

  def __init__(self, filters: int, kernel: Sequence[int], mode: str,
               **kwargs):
    super().__init__(**kwargs)
    kh, kw = kernel
    if mode == 'down':
      self.pad = [[0, 0], [kh - 1, 0], [(kw - 1) // 2, (kw - 1) // 2], [0, 0]]
    else:
      self.pad = [[0, 0], [kh - 1, 0], [kw - 1, 0], [0, 0]]
    self.conv = keras.layers.Conv2D(filters, (kh, kw), padding='valid',
                                    name='conv')

  def call(self, t):
    return self.conv(tf.pad(t, self.pad))


class GatedBlock(keras.layers.Layer):
  """``x + a * sigmoid(g)`` (see the module docstring); shape preserving."""

  def __init__(self, filters: int, kernel: Sequence[int], mode: str,
               dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.conv_in = ShiftedConv(filters, kernel, mode, name='conv_in')
    self.aux = keras.layers.Dense(filters, name='aux')
    self.dropout = keras.layers.Dropout(dropout)
    self.conv_out = ShiftedConv(2 * filters, kernel, mode, name='conv_out')
    self.condition = keras.layers.Dense(2 * filters, name='condition')

  def call(self, x, condition, aux=None, training=False):
    c = self.conv_in(concat_elu(x))
    if aux is not None:
      c = c + self.aux(concat_elu(aux))
    c = self.dropout(concat_elu(c), training=training)
    c = self.conv_out(c) + self.condition(condition)[:, tf.newaxis, tf.newaxis]
    a, gate = tf.split(c, 2, axis=-1)
    return x + a * tf.sigmoid(gate)


class PixelCNNNetwork(keras.layers.Layer):
  """Codes ``[B, h, w]`` int32 and conditioning ``[B, C]`` -> logits ``[B, h, w, K]``.

  Logits at (i, j) depend only on codes before (i, j) in raster order and
  on the conditioning (tests check it by perturbation).
  """

  def __init__(self, num_codes: int, filters: int = 128, num_blocks: int = 8,
               dropout: float = 0.5, **kwargs):
    super().__init__(**kwargs)
    self.num_codes = int(num_codes)
    self.embedding = keras.layers.Embedding(num_codes, filters,
                                            name='embedding')
    self.v_init = ShiftedConv(filters, (2, 3), 'down', name='v_init')
    self.h_init_v = ShiftedConv(filters, (1, 3), 'down', name='h_init_v')
    self.h_init_h = ShiftedConv(filters, (2, 1), 'down_right',
                                name='h_init_h')
    up = max(num_blocks // 2, 1)
    down = max(num_blocks - up, 0)
    block = lambda kernel, mode, name: GatedBlock(filters, kernel, mode,
                                                  dropout, name=name)
    self.v_up = [block((2, 3), 'down', f'v_up_{i}') for i in range(up)]
    self.h_up = [block((2, 2), 'down_right', f'h_up_{i}') for i in range(up)]
    self.v_down = [block((2, 3), 'down', f'v_down_{i}') for i in range(down)]
    self.h_down = [block((2, 2), 'down_right', f'h_down_{i}')
                   for i in range(down)]
    self.logits = keras.layers.Dense(num_codes, name='logits')

  def call(self, codes, condition, training=False):
    e = self.embedding(codes)
    v = down_shift(self.v_init(e))
    h = down_shift(self.h_init_v(e)) + right_shift(self.h_init_h(e))
    skips = []
    for v_block, h_block in zip(self.v_up, self.h_up):
      v = v_block(v, condition, training=training)
      h = h_block(h, condition, aux=v, training=training)
      skips.append((v, h))
    for v_block, h_block in zip(self.v_down, self.h_down):
      v_skip, h_skip = skips.pop() if skips else (v, h)
      v = v_block(v, condition, aux=v_skip, training=training)
      h = h_block(h, condition, aux=tf.concat([v, h_skip], -1),
                  training=training)
    return self.logits(tf.nn.elu(h))


class CodeGridDistribution(tfd.Distribution):
  """q_theta(k | x_o) over int32 grids: batch ``[B]``, event ``[h, w]``.

  ``log_prob(k)`` for ``k [..., B, h, w]`` (teacher forcing: one network
  pass); ``sample(n, seed)`` gives ``[n, B, h, w]``; ``sample_rows(n,
  seeds)`` with one int32 seed ``[2]`` per row gives ``[B, n, h, w]``.
  Holds the network (not a tensor) and the conditioning vectors ``[B, C]``;
  it lives inside a step or a signature, never crosses one.
  """

  def __init__(self, network: PixelCNNNetwork, condition: tf.Tensor,
               grid_shape: Sequence[int], training: bool = False,
               jit_compile: bool = False, name: str = 'CodeGridPixelCNN'):
    parameters = dict(locals())
    self.network = network
    self.condition = tf.convert_to_tensor(condition)
    self.grid = tuple(int(s) for s in grid_shape)
    self.training = training
    self.jit_compile = jit_compile
    super().__init__(
        dtype=tf.int32,
        reparameterization_type=tfd.NOT_REPARAMETERIZED,
        validate_args=False, allow_nan_stats=True, parameters=parameters,
        name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return {}

  def _batch_shape(self):
    return self.condition.shape[:1]

  def _batch_shape_tensor(self):
    return tf.shape(self.condition)[:1]

  def _event_shape(self):
    return tf.TensorShape(self.grid)

  def _event_shape_tensor(self):
    return tf.constant(self.grid, tf.int32)

  def logits(self, codes: tf.Tensor) -> tf.Tensor:
    """Logits ``[..., B, h, w, K]`` of every position given ``codes [..., B, h, w]``."""
    codes = tf.cast(codes, tf.int32)
    shape = tf.shape(codes)
    rows = tf.shape(self.condition)[0]
    flat = tf.reshape(codes, [-1, rows, *self.grid])
    copies = tf.shape(flat)[0]
    condition = tf.tile(self.condition, [copies, 1])
    logits = self.network(tf.reshape(flat, [-1, *self.grid]), condition,
                          training=self.training)
    return tf.reshape(logits, tf.concat(
        [shape, [self.network.num_codes]], axis=0))

  def _log_prob(self, codes):
    log_probs = tf.nn.log_softmax(self.logits(codes))
    picked = tf.reduce_sum(
        log_probs * tf.one_hot(codes, self.network.num_codes,
                               dtype=log_probs.dtype), axis=-1)
    return tf.reduce_sum(picked, axis=[-2, -1])

  def _sample_n(self, n, seed=None):
    seed = tfp.random.sanitize_seed(seed)
    rows = tf.shape(self.condition)[0]
    uniforms = tf.random.stateless_uniform(
        [n, rows, self.grid[0] * self.grid[1]], seed=seed)
    return self.sample_from_uniforms(uniforms)

  def sample_rows(self, num_samples, seeds: tf.Tensor) -> tf.Tensor:
    """Row-keyed draws ``[B, S, h, w]``: row r's uniforms come from ``seeds[r]``.

    Only the (cheap) uniform draws loop over rows; the network runs on all
    rows and samples at once.
    """
    size = self.grid[0] * self.grid[1]
    uniforms = tf.vectorized_map(
        lambda s: tf.random.stateless_uniform([num_samples, size], seed=s),
        seeds, fallback_to_while_loop=True)  # [B, S, hw]
    codes = self.sample_from_uniforms(tf.transpose(uniforms, [1, 0, 2]))
    return tf.transpose(codes, [1, 0, 2, 3])

  def sample_from_uniforms(self, uniforms: tf.Tensor) -> tf.Tensor:
    """Codes ``[S, B, h, w]`` from uniforms ``[S, B, hw]`` (inverse CDF).

    One compiled loop over the hw positions; each step runs the network on
    the whole batch of S x B grids (rows 0..i for a position in row i) and
    fills position p.
    """
    size = self.grid[0] * self.grid[1]
    samples, rows = tf.shape(uniforms)[0], tf.shape(uniforms)[1]
    flat_u = tf.reshape(uniforms, [samples * rows, size])
    condition = tf.tile(self.condition, [samples, 1])
    network, grid, num_codes = self.network, self.grid, self.network.num_codes

    height, width = grid

    def loop(flat_u, condition):
      # Rows below i do not influence row i (every convolution is causal),
      # so row i is sampled with the network on rows 0..i only: static
      # shapes (Python loop over rows), a while loop over the columns.
      codes = tf.zeros([tf.shape(flat_u)[0], height, width], tf.int32)
      for i in range(height):
        def step(j, codes, i=i):
          logits = network(codes[:, :i + 1], condition, training=False)
          cdf = tf.cumsum(tf.nn.softmax(tf.gather(logits[:, i], j, axis=1)),
                          axis=-1)
          u = tf.gather(flat_u, i * width + j, axis=1)[:, tf.newaxis]
          code = tf.minimum(
              tf.reduce_sum(tf.cast(cdf < u, tf.int32), axis=-1),
              num_codes - 1)
          update = tf.one_hot(i * width + j, height * width, dtype=tf.int32)
          return j + 1, codes + code[:, tf.newaxis, tf.newaxis] * tf.reshape(
              update, [1, height, width])

        _, codes = tf.while_loop(lambda j, _: j < width, step,
                                 (tf.constant(0), codes))
      return codes

    if self.jit_compile:
      loop = tf.function(loop, jit_compile=True)
    codes = loop(flat_u, condition)
    return tf.reshape(codes, [samples, rows, *grid])


@gin.configurable
class ConditionalPixelCNN(keras.Model):
  """Partial posterior factory: ``(x, b) -> CodeGridDistribution``.

  Conditioning: a conv residual encoder (the VQ-VAE encoder's sizes) over
  ``concat(x * b, b)``, flattened, one linear layer to ``conditioning_dim``.

  Args:
    grid_shape: ``(h, w)`` of the code grid (from the base VAE).
    num_codes: K (from the base VAE).
    filters: channels of the PixelCNN.
    num_blocks: gated blocks per stack (vertical, horizontal), split between
      the up and the down pass.
    dropout: dropout rate inside the gated blocks.
    conditioning_dim: size of the conditioning vector.
    conditioning_hidden: channels of the conditioning conv network.
    conditioning_channels: output channels of that network before the
      flatten.
    sample_jit_compile: compile the sampling loop with XLA.
  """

  def __init__(self, grid_shape=None, num_codes: Optional[int] = None,
               filters: int = 128, num_blocks: int = 8, dropout: float = 0.5,
               conditioning_dim: int = 512, conditioning_hidden: int = 32,
               conditioning_channels: int = 64,
               sample_jit_compile: bool = False,
               name: str = 'partial_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    if (grid_shape is None or num_codes is None or
        not isinstance(grid_shape, (tuple, list)) or len(grid_shape) != 2):
      raise UserError(
          'ConditionalPixelCNN is a partial posterior over a grid of code '
          f'indices, but the base VAE gave {grid_shape!r} (a vector latent?): '
          'use it with a VQVAE, or a vector head (PartialEncoder) here')
    # Imported here: pm_zoo.models imports the distributions.
    from pm_zoo.models.vq_vae import VQEncoder  # pylint: disable=g-import-not-at-top
    self.grid = tuple(int(s) for s in grid_shape)
    self.num_codes = int(num_codes)
    self.sample_jit_compile = bool(sample_jit_compile)
    self.conditioner = VQEncoder(conditioning_channels, conditioning_hidden,
                                 name='conditioner')
    self.flatten = keras.layers.Flatten()
    self.to_condition = keras.layers.Dense(conditioning_dim,
                                           name='to_condition')
    self.network = PixelCNNNetwork(num_codes, filters, num_blocks, dropout,
                                   name='pixelcnn')

  def condition(self, x, mask, training=False) -> tf.Tensor:
    """The conditioning vectors ``[B, conditioning_dim]``."""
    h = self.conditioner(observed_input(x, mask))
    return self.to_condition(self.flatten(h))

  def call(self, x, mask, training=False) -> CodeGridDistribution:
    condition = self.condition(x, mask, training=training)
    dist = CodeGridDistribution(self.network, condition, self.grid,
                                training=training,
                                jit_compile=self.sample_jit_compile)
    # Build the network's variables on the first call.
    if not self.network.built:
      dist.logits(tf.zeros([tf.shape(condition)[0], *self.grid], tf.int32))
    return dist
