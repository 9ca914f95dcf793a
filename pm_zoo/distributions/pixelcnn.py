"""A conditional gated PixelCNN over a grid of code indices: q_theta(k | x_o).

The partial posterior of a VQ-VAE: a distribution over int32 code grids
``k [h, w]`` with values in {0..K-1}, factorised in raster order

  q_theta(k | x_o) = prod_{p = 1..hw} Categorical(k_p; softmax(l_p(k_<p, c))),

where ``c = Linear_512(flatten(ConvResNet(concat(x * b, b))))`` is the
conditioning vector of the observed pixels and l_p are the logits at grid
position p (optionally also conditioned on the map ``ConvResNet(...)`` at
p's grid cell: ``ConditionalPixelCNN.spatial_conditioning``).

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

Sampling runs position by position, batched over rows and samples, and
draws position p by inverse CDF from one uniform per (sample, row, position).
It never reruns the network on the whole grid: every convolution looks at
most one row up and (in the horizontal stack) kw - 1 columns left, so each
reads its inputs there from caches (the "fast PixelCNN" idea of Ramachandran
et al. 2017). Per grid row: one vertical-stack pass over that row (row i
depends on rows < i only); per position: one horizontal-stack pass over that
position alone and the logits there. The loop is compiled with XLA by
default (``sample_jit_compile``): on a CPU that removes the per-op dispatch
which dominates small batches. ``benchmarks/pixelcnn_sampling.py`` measures
both choices against the whole-grid reference, and a test checks that the
draws are the inverse CDF of the teacher-forced logits at every position.
The uniforms come from one stateless seed (``sample``) or from one seed per
row (``sample_rows``, the row-keyed draws of ``pm_zoo.tasks.imputation``).
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

  def call(self, t, above=None, left=None):
    """``t [B, r, w, C] -> [B, r, w, filters]``.

    ``above=None``: ``t`` is the whole grid, zeros above row 0. Otherwise
    ``t`` is one row and ``above [B, kh - 1, w, C]`` the input rows just
    above it (the row-by-row sampler's cache): the same output row as the
    whole-grid call gives there.

    With ``left`` (``mode='down_right'`` only; the position-by-position
    sampler): ``t [B, 1, 1, C]`` is the input at one position (i, j),
    ``left [B, 1, kw - 1, C]`` the inputs at (i, j-kw+1..j-1) and ``above
    [B, kh - 1, kw, C]`` those at rows i-kh+1..i-1, columns j-kw+1..j (zeros
    outside the grid): the output ``[B, 1, 1, filters]`` at (i, j).
    """
    if left is not None:
      if self.pad[2][1]:
        raise ValueError('a one-position call needs a causal '
                         "('down_right') convolution")
      t = tf.concat([left, t], axis=2)
      if self.pad[1][0]:
        t = tf.concat([above, t], axis=1)
      return self.one_position(t)
    if above is None:
      return self.conv(tf.pad(t, self.pad))
    if self.pad[1][0]:
      t = tf.concat([above, t], axis=1)
    return self.conv(tf.pad(t, [[0, 0], [0, 0], self.pad[2], [0, 0]]))

  def one_position(self, window: tf.Tensor) -> tf.Tensor:
    """The 'valid' convolution of one kernel-sized window, as one matmul.

    ``window [B, kh, kw, C] -> [B, 1, 1, filters]``: sum over (a, b, c) of
    window[:, a, b, c] * kernel[a, b, c, :] + bias, i.e. the window and the
    kernel flattened in the same (row, column, channel) order. The same
    numbers as ``self.conv(window)``; a matmul of [B, kh kw C] is cheaper to
    dispatch than a convolution of a 1 x 1 output (the sampler runs one per
    block and position).
    """
    kh, kw = self.conv.kernel_size
    if tuple(window.shape[1:3]) != (kh, kw):
      raise ValueError(f'{self.name}: a one-position window is {kh} x {kw}, '
                       f'got {tuple(window.shape[1:3])}')
    if not self.conv.built:
      self.conv.build(window.shape)
    flat = tf.reshape(window, [-1, kh * kw * window.shape[-1]])
    kernel = tf.reshape(self.conv.kernel, [-1, self.conv.filters])
    out = tf.matmul(flat, kernel) + self.conv.bias
    return out[:, tf.newaxis, tf.newaxis]

  @property
  def kernel_width(self) -> int:
    return int(self.conv.kernel_size[1])


class GatedBlock(keras.layers.Layer):
  """``x + a * sigmoid(g)`` (see the module docstring); shape preserving."""

  def __init__(self, filters: int, kernel: Sequence[int], mode: str,
               dropout: float, spatial_condition: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.conv_in = ShiftedConv(filters, kernel, mode, name='conv_in')
    self.aux = keras.layers.Dense(filters, name='aux')
    self.dropout = keras.layers.Dropout(dropout)
    self.conv_out = ShiftedConv(2 * filters, kernel, mode, name='conv_out')
    self.condition = keras.layers.Dense(2 * filters, name='condition')
    self.condition_map = (
        keras.layers.Dense(2 * filters, use_bias=False, name='condition_map')
        if spatial_condition else None)

  def condition_bias(self, condition, condition_map=None):
    """What the block adds before its gate: ``W c [B, 1, 1, 2f]``, plus
    ``V m [B, h, w, 2f]`` per position where the block has a conditioning
    map (``spatial_condition``; ``condition_map [B, h, w, C_m]``)."""
    bias = self.vector_bias(condition)
    if self.condition_map is None:
      return bias
    return bias + self.map_bias(condition_map)

  def vector_bias(self, condition):
    """``W c``: ``[B, 1, 1, 2f]`` from ``condition [B, C]``."""
    return self.condition(condition)[:, tf.newaxis, tf.newaxis]

  def map_bias(self, condition_map):
    """``V m``: ``[B, h', w', 2f]`` from ``condition_map [B, h', w', C_m]``
    (any part of the grid: the sampler passes one row)."""
    if condition_map is None:
      raise ValueError(f'{self.name} is spatially conditioned: pass its '
                       'condition_map [B, h, w, C_m]')
    return self.condition_map(condition_map)

  def call(self, x, condition, aux=None, training=False, condition_map=None):
    return self.forward(x, self.condition_bias(condition, condition_map), aux,
                        training)[0]

  def forward(self, x, bias, aux=None, training=False, above=None,
              left=None):
    """``(y, inputs)``: the block's output and its two convolutions' inputs.

    ``bias``: ``condition_bias`` at ``x``'s positions (``[B, 1, 1, 2f]``
    broadcasts to any).

    ``above`` (the row-by-row sampler): the ``inputs`` of the row above,
    ``x`` being one row; ``None`` for the whole grid. ``left`` (the
    position-by-position sampler, ``x`` one position): the ``inputs`` just
    left of it, ``above`` then the windows of the row above (see
    ``ShiftedConv.call``).
    """
    above = above or (None, None)
    left = left or (None, None)
    conv_in_input = concat_elu(x)
    c = self.conv_in(conv_in_input, above=above[0], left=left[0])
    if aux is not None:
      c = c + self.aux(concat_elu(aux))
    conv_out_input = self.dropout(concat_elu(c), training=training)
    c = self.conv_out(conv_out_input, above=above[1], left=left[1]) + bias
    a, gate = tf.split(c, 2, axis=-1)
    return x + a * tf.sigmoid(gate), (conv_in_input, conv_out_input)


class PixelCNNNetwork(keras.layers.Layer):
  """Codes ``[B, h, w]`` int32 and conditioning ``[B, C]`` -> logits ``[B, h, w, K]``.

  Logits at (i, j) depend only on codes before (i, j) in raster order and
  on the conditioning (tests check it by perturbation). With
  ``spatial_condition`` every block also adds a linear map of a
  conditioning map ``[B, h, w, C_m]`` at each position (location-dependent
  conditioning, van den Oord et al. 2016): it does not depend on the codes,
  so causality is untouched.
  """

  def __init__(self, num_codes: int, filters: int = 128, num_blocks: int = 8,
               dropout: float = 0.5, spatial_condition: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.num_codes = int(num_codes)
    self.filters = int(filters)
    self.embedding = keras.layers.Embedding(num_codes, filters,
                                            name='embedding')
    self.v_init = ShiftedConv(filters, (2, 3), 'down', name='v_init')
    self.h_init_v = ShiftedConv(filters, (1, 3), 'down', name='h_init_v')
    self.h_init_h = ShiftedConv(filters, (2, 1), 'down_right',
                                name='h_init_h')
    up = max(num_blocks // 2, 1)
    down = max(num_blocks - up, 0)
    block = lambda kernel, mode, name: GatedBlock(
        filters, kernel, mode, dropout, spatial_condition, name=name)
    self.v_up = [block((2, 3), 'down', f'v_up_{i}') for i in range(up)]
    self.h_up = [block((2, 2), 'down_right', f'h_up_{i}') for i in range(up)]
    self.v_down = [block((2, 3), 'down', f'v_down_{i}') for i in range(down)]
    self.h_down = [block((2, 2), 'down_right', f'h_down_{i}')
                   for i in range(down)]
    self.logits = keras.layers.Dense(num_codes, name='logits')

  @property
  def num_blocks(self) -> int:
    """Gated blocks per stack (up and down pass together)."""
    return len(self.h_up) + len(self.h_down)

  def call(self, codes, condition, condition_map=None, training=False):
    e = self.embedding(codes)
    v_biases, h_biases = self.condition_biases(condition, condition_map)
    v_states, _ = self.vertical(down_shift(self.v_init(e)), v_biases,
                                training)
    h = down_shift(self.h_init_v(e)) + right_shift(self.h_init_h(e))
    h, _ = self.horizontal(h, v_states, h_biases, training)
    return self.logits(tf.nn.elu(h))

  def condition_biases(self, condition, condition_map=None):
    """Every block's ``GatedBlock.condition_bias``: ``(vertical, horizontal)``
    lists, each ``[B, 1, 1, 2f]`` or (spatial) ``[B, h, w, 2f]``."""
    def biases(blocks):
      return [b.condition_bias(condition, condition_map) for b in blocks]
    return biases(self.vertical_blocks), biases(self.horizontal_blocks)

  def vertical(self, v, biases, training=False, above=None):
    """The vertical stack from its input ``v``: ``(states, inputs)``.

    ``states``: its output after every block, ``[v_up_0, ..., v_down_last]``
    (row i of each depends on the rows above i only); ``inputs``: each
    block's convolution inputs. Whole grid (``above=None``) or one row with
    ``above`` = the ``inputs`` of the row above (see ``horizontal``).
    ``biases``: ``condition_biases(...)[0]`` at ``v``'s positions.
    """
    return self._stack(self.v_up, self.v_down, v, biases, training, above,
                       aux=lambda n, skip: skip)

  def horizontal(self, h, v_states, biases, training=False, above=None,
                 left=None):
    """The horizontal stack from its input ``h``: ``(h_out, inputs)``.

    Whole grid (``above=None``), or one position (the sampler) with
    ``left`` = the ``inputs`` this call returned for the position to its
    left and ``above`` = windows of those of the row above (one pair per
    block; see ``ShiftedConv.call``); ``h``, ``v_states`` and ``biases``
    (``condition_biases(...)[1]``) are then that position's.
    """
    def aux(n, skip):
      return v_states[n] if skip is None else tf.concat(
          [v_states[n], skip], -1)
    outputs, inputs = self._stack(self.h_up, self.h_down, h, biases,
                                  training, above, aux, left)
    return outputs[-1], inputs

  @property
  def vertical_blocks(self):
    return list(self.v_up) + list(self.v_down)

  @property
  def horizontal_blocks(self):
    return list(self.h_up) + list(self.h_down)

  @staticmethod
  def _stack(up_blocks, down_blocks, x, biases, training, above, aux,
             left=None):
    """One stack's up and down pass: ``(outputs, inputs)`` per block.

    A down block takes the output of its mirrored up block as ``skip`` (its
    own input where the up pass is shorter), an up block ``None``;
    ``aux(n, skip)`` gives block n's aux input from it.
    """
    blocks = list(up_blocks) + list(down_blocks)
    above = above or [None] * len(blocks)
    left = left or [None] * len(blocks)
    outputs, inputs, skips = [], [], []
    for n, block in enumerate(blocks):
      up = n < len(up_blocks)
      skip = None if up else (skips.pop() if skips else x)
      x, block_inputs = block.forward(x, biases[n], aux=aux(n, skip),
                                      training=training, above=above[n],
                                      left=left[n])
      if up:
        skips.append(x)
      outputs.append(x)
      inputs.append(block_inputs)
    return outputs, inputs


def tile_rows(t: Optional[tf.Tensor], copies) -> Optional[tf.Tensor]:
  """``t [B, ...]`` repeated ``copies`` times along the rows: ``[copies * B, ...]``."""
  if t is None:
    return None
  return tf.tile(t, tf.concat([[copies], tf.ones([tf.rank(t) - 1], tf.int32)],
                              axis=0))


def inverse_cdf(logits: tf.Tensor, uniforms: tf.Tensor) -> tf.Tensor:
  """Categorical draws ``[...]`` int32 from ``logits [..., K]`` and
  ``uniforms [...]``: the least k with CDF(k) >= u (K - 1 at most, against
  rounding)."""
  cdf = tf.cumsum(tf.nn.softmax(logits), axis=-1)
  return tf.minimum(
      tf.reduce_sum(tf.cast(cdf < uniforms[..., tf.newaxis], tf.int32),
                    axis=-1), logits.shape[-1] - 1)


def columns(t: tf.Tensor, start, count: int) -> tf.Tensor:
  """Columns ``start .. start + count - 1`` of ``t [B, r, w, C]``: ``[B, r, count, C]``.

  A contraction with a one-hot selection ``S [w, count]`` (``S[c, k] = 1``
  iff ``c = start + k``), exact for finite ``t``, instead of a dynamic
  ``tf.slice``: XLA's CPU pipeline lowers a dynamic slice of a loop-carried
  tensor through a pad that doubles every dimension (16 x the tensor for a
  4-D one): the compiled 64 x 8 sampler peaked at 3.2 MB per grid (6.3 MB
  spatially conditioned) where it now peaks at 2.0 (2.4), XLA's compile
  included, at 1,000 grids (``benchmarks/pixelcnn_sampling.py --memory``).
  """
  width = t.shape[2] if t.shape[2] is not None else tf.shape(t)[2]
  selection = tf.one_hot(start + tf.range(count), width, dtype=t.dtype,
                         axis=0)                                # [w, count]
  return tf.einsum('brwc,wk->brkc', t, selection)


class CodeGridDistribution(tfd.Distribution):
  """q_theta(k | x_o) over int32 grids: batch ``[B]``, event ``[h, w]``.

  ``log_prob(k)`` for ``k [..., B, h, w]`` (teacher forcing: one network
  pass); ``sample(n, seed)`` gives ``[n, B, h, w]``; ``sample_rows(n,
  seeds)`` with one int32 seed ``[2]`` per row gives ``[B, n, h, w]``.
  Holds the network (not a tensor), the conditioning vectors ``[B, C]``
  and, for a spatially conditioned network, the conditioning maps
  ``[B, h, w, C_m]``; it lives inside a step or a signature, never crosses
  one.
  """

  def __init__(self, network: PixelCNNNetwork, condition: tf.Tensor,
               grid_shape: Sequence[int], training: bool = False,
               jit_compile: bool = False, condition_map=None,
               name: str = 'CodeGridPixelCNN'):
    parameters = dict(locals())
    self.network = network
    self.condition = tf.convert_to_tensor(condition)
    self.condition_map = (None if condition_map is None
                          else tf.convert_to_tensor(condition_map))
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
    logits = self.network(tf.reshape(flat, [-1, *self.grid]),
                          tile_rows(self.condition, copies),
                          condition_map=tile_rows(self.condition_map, copies),
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

    Row by row over the S x B grids at once (see the module docstring):
    code (i, j) = min{k : CDF_(i,j)(k) >= u_(i,j)} of the categorical at
    (i, j) given the codes drawn before it.
    """
    size = self.grid[0] * self.grid[1]
    samples, rows = tf.shape(uniforms)[0], tf.shape(uniforms)[1]
    flat_u = tf.reshape(uniforms, [samples * rows, size])
    condition = tile_rows(self.condition, samples)
    condition_map = tile_rows(self.condition_map, samples)
    network, grid = self.network, self.grid

    height, width = grid

    def column_of(bias, j):
      return bias if bias.shape[2] == 1 else columns(bias, j, 1)

    def loop(flat_u, condition, condition_map):
      # Row by row (a Python loop: static shapes), position by position (a
      # while loop). Row i of the vertical stack depends on rows < i only:
      # one pass per row over that row, its convolutions reading the row
      # above from `v_above` (their inputs at row i - 1; zeros for row 0, as
      # the whole-grid padding). The horizontal stack at (i, j) runs on that
      # one position: each causal 2 x kw convolution reads the kw inputs of
      # row i - 1 ending at column j (`above`, the row's inputs padded with
      # kw - 1 zero columns on the left) and the kw - 1 inputs of row i just
      # left of j (`left`). The inputs at (i, j) depend on codes before
      # (i, j) only, so once computed they are final: they become `left`
      # for j + 1 and column j of `row_inputs`, the next row's `above`.
      n = tf.shape(flat_u)[0]
      f = network.filters
      # What each block adds before its gate: W c once per draw; V m one
      # row at a time, so that only one row's [n, 1, w, 2f] per block is
      # needed at once, not the whole grid's [n, h, w, 2f].
      v_blocks = network.vertical_blocks
      h_blocks = network.horizontal_blocks
      v_vector = [b.vector_bias(condition) for b in v_blocks]
      h_vector = [b.vector_bias(condition) for b in h_blocks]

      def row_biases(blocks, vector, i):
        if condition_map is None:
          return vector
        row_map = condition_map[:, i:i + 1]
        return [v + b.map_bias(row_map) for b, v in zip(blocks, vector)]
      codes = tf.zeros([n, height, width], tf.int32)
      zeros = tf.zeros([n, 1, width, 2 * f])
      v_above = [(zeros, zeros)] * network.num_blocks
      above = [(zeros, zeros)] * network.num_blocks
      no_codes = tf.zeros([n, 1, width, f])
      e_rows = [no_codes, no_codes]         # embedded rows i - 2, i - 1
      widths = [(b.conv_in.kernel_width, b.conv_out.kernel_width)
                for b in network.horizontal_blocks]
      no_left = [tuple(tf.zeros([n, 1, kw - 1, 2 * f]) for kw in pair)
                 for pair in widths]

      def pad_left(t, count):
        return tf.pad(t, [[0, 0], [0, 0], [count, 0], [0, 0]])

      for i in range(height):
        # Row i of the vertical input is v_init at row i - 1 (a 2-row
        # convolution over rows i - 2, i - 1); zeros for row 0.
        v = network.v_init(e_rows[1], above=e_rows[0]) if i else no_codes
        v_rows, v_above = network.vertical(
            v, row_biases(v_blocks, v_vector, i), above=v_above)
        h_row_biases = row_biases(h_blocks, h_vector, i)
        e_above = e_rows[1]
        h_from_above = network.h_init_v(e_above) if i else no_codes
        # h_init_h is right-shifted: position j reads (i - 1, j - 1) and
        # (i, j - 1), column 0 of the padded row above is the zero column.
        e_above_padded = pad_left(e_above, 1)
        above_padded = [tuple(pad_left(t, kw - 1) for t, kw in zip(pair, ws))
                        for pair, ws in zip(above, widths)]

        def step(j, codes, left, row_inputs, e_left, i=i, v_rows=v_rows,
                 h_from_above=h_from_above, e_above_padded=e_above_padded,
                 above_padded=above_padded, h_row_biases=h_row_biases):
          shifted = network.h_init_h(
              e_left, above=columns(e_above_padded, j, 1),
              left=e_left[:, :, :0])
          h = (columns(h_from_above, j, 1)
               + tf.cast(j > 0, shifted.dtype) * shifted)
          windows = [tuple(columns(t, j, kw) for t, kw in zip(pair, ws))
                     for pair, ws in zip(above_padded, widths)]
          h, inputs = network.horizontal(
              h, [columns(t, j, 1) for t in v_rows],
              [column_of(b, j) for b in h_row_biases],
              above=windows, left=left)
          logits = network.logits(tf.nn.elu(h[:, 0, 0]))
          code = inverse_cdf(logits, tf.gather(flat_u, i * width + j, axis=1))
          update = tf.one_hot(i * width + j, height * width, dtype=tf.int32)
          codes = codes + code[:, tf.newaxis, tf.newaxis] * tf.reshape(
              update, [1, height, width])
          left = [tuple(tf.concat([l, t], axis=2)[:, :, 1:]
                        for l, t in zip(pair, new))
                  for pair, new in zip(left, inputs)]
          column = tf.reshape(tf.one_hot(j, width), [1, 1, width, 1])
          row_inputs = [tuple(r + column * t for r, t in zip(pair, new))
                        for pair, new in zip(row_inputs, inputs)]
          e_left = network.embedding(code)[:, tf.newaxis, tf.newaxis]
          return j + 1, codes, left, row_inputs, e_left

        _, codes, _, above, _ = tf.while_loop(
            lambda j, *_: j < width, step,
            (tf.constant(0), codes, no_left,
             [(zeros, zeros)] * network.num_blocks,
             tf.zeros([n, 1, 1, f])))
        e_rows = [e_above, network.embedding(codes[:, i])[:, tf.newaxis]]
      return codes

    if self.jit_compile:
      loop = tf.function(loop, jit_compile=True)
    codes = loop(flat_u, condition, condition_map)
    return tf.reshape(codes, [samples, rows, *grid])


@gin.configurable
class ConditionalPixelCNN(keras.Model):
  """Partial posterior factory: ``(x, b) -> CodeGridDistribution``.

  Conditioning: a conv residual encoder (the VQ-VAE encoder's sizes) over
  ``concat(x * b, b)`` down to the code grid, ``m [B, h, w, C_m]``;
  flattened, one linear layer to the vector ``c [B, conditioning_dim]``
  that every gated block adds (the paper's). With ``spatial_conditioning``
  each block also adds a linear map of ``m`` at each position, so the
  observed pixels over grid cell (i, j) reach the logits there without
  passing through the vector.

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
    spatial_conditioning: also condition every block on the map ``m`` per
      position (off: the paper's vector only).
    sample_jit_compile: compile the sampling loop with XLA (default: on a
      2-core CPU, one image x 10 samples at 32 filters / 4 blocks took 21 ms
      with XLA and 102 ms without; 100 images equal; see
      ``benchmarks/pixelcnn_sampling.py``). Each new batch shape compiles
      once.
  """

  def __init__(self, grid_shape=None, num_codes: Optional[int] = None,
               filters: int = 128, num_blocks: int = 8, dropout: float = 0.5,
               conditioning_dim: int = 512, conditioning_hidden: int = 32,
               conditioning_channels: int = 64,
               spatial_conditioning: bool = False,
               sample_jit_compile: bool = True,
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
    self.spatial_conditioning = bool(spatial_conditioning)
    self.network = PixelCNNNetwork(num_codes, filters, num_blocks, dropout,
                                   spatial_condition=spatial_conditioning,
                                   name='pixelcnn')

  def conditioning(self, x, mask, training=False):
    """``(c [B, conditioning_dim], m [B, h, w, C_m] or None)``: the vector,
    and the map where ``spatial_conditioning`` is on."""
    del training  # The conditioner has no dropout or batch statistics.
    m = self.conditioner(observed_input(x, mask))
    c = self.to_condition(self.flatten(m))
    if not self.spatial_conditioning:
      return c, None
    if tuple(m.shape[1:3]) != self.grid:
      raise UserError(
          f'ConditionalPixelCNN.spatial_conditioning needs the conditioning '
          f'network to reach the code grid {self.grid}, but it gives '
          f'{tuple(m.shape[1:3])}: set spatial_conditioning=False, or give '
          'the images the size the VQ-VAE was built for')
    return c, m

  def call(self, x, mask, training=False) -> CodeGridDistribution:
    condition, condition_map = self.conditioning(x, mask, training=training)
    dist = CodeGridDistribution(self.network, condition, self.grid,
                                training=training,
                                jit_compile=self.sample_jit_compile,
                                condition_map=condition_map)
    # Build the network's variables on the first call.
    if not self.network.built:
      dist.logits(tf.zeros([tf.shape(condition)[0], *self.grid], tf.int32))
    return dist
