"""VQ-VAE (van den Oord et al., 2017) with an EMA codebook, as a base VAE.

Encoder E maps an image ``x [B, H, W, C]`` to a grid of vectors
``z_e = E(x) [B, h, w, D]`` (two stride-2 convolutions: h = H / 4,
w = W / 4). Each vector is replaced by its nearest codebook entry
``e_k [D]``, k = 1..K:

  k_ij = argmin_k ||z_e,ij - e_k||^2,      z_q,ij = e_{k_ij},

and the decoder gives p_phi(x | z_q). The code grid ``k [B, h, w]`` (int32)
is the posterior target that Posterior Matching scores: q_psi(k | x) is a
point mass, so L_PM = -log q_theta(k | x_o) is a cross-entropy over codes.

Training terms per example (``training_terms``):

  loss = -log p_phi(x | z_q^st) + beta * sum_ij ||z_e,ij - sg(z_q,ij)||^2

with the straight-through estimator z_q^st = z_e + sg(z_q - z_e) (the
decoder's gradient is copied to the encoder) and commitment cost beta. The
codebook has no gradient: it follows exponential moving averages of the
assignment counts N_k and of the sums m_k of the vectors assigned to it
(decay gamma), with Laplace smoothing of the counts (epsilon):

  N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) sum_{i: k_i = k} z_e,i,
  e_k = m_k / ((N_k + eps) / (sum_j N_j + K eps) * sum_j N_j).

These updates happen only with ``training=True`` (a frozen VQ-VAE in the
'partial' objective never moves). Under ``tf.distribute`` the batch counts
and sums are all-reduced (summed) across replicas before the update, so
every replica applies the same update, the one a single device would apply
to the global batch (the variables aggregate ONLY_FIRST_REPLICA).

Dead codes: a code whose EMA count N_k falls below ``dead_code_threshold``
is restarted at a vector z of the current batch (chosen by a stateless draw
from the update counter), with N_k = 2 t and m_k = 2 t z for the threshold
t: unless the batch starts to use it, it is dead again after
log(1/2) / log(gamma) ~ 69 updates (gamma = 0.99) and moves to another
vector. An encoder that starts with nearly constant outputs thus still ends
up using most codes within a few hundred steps.

Logged per example (broadcast scalars of the batch): ``reconstruction``
(-log p(x | z_q)), ``commitment``, ``perplexity`` = exp(H(code usage in the
batch)) and ``dead_codes`` (codes with N_k below the threshold).

Pixel likelihood: 'gaussian' (Normal with a linear mean and one learned
scalar scale, the paper's; ``decode`` clips the mean to the pixel range
[0, 1], as the paper's imputation clips: a sigmoid mean saturated and
stalled training at the start) or 'bernoulli' (the Bernoulli
cross-entropy of the grey levels, -x log p - (1 - x) log(1 - p), as the
Gaussian VAE's MNIST decoder; not normalised over [0, 1] as a continuous
Bernoulli would be; ``decode``'s mean is p).

The VQ-VAE has no posterior density and no generative prior (it was trained
with a uniform prior over codes, which PM never needs), so it declares none
of GAUSSIAN_LATENT, MARGINAL_LIKELIHOOD, GENERATIVE_PRIOR, REPARAMETERIZED:
tasks that need them refuse it with a one-line error.
"""
import math
from typing import Callable, Optional, Sequence

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base

tfd = tfp.distributions

LIKELIHOODS = ('gaussian', 'bernoulli')
# Stride of the encoder: two 4x4 stride-2 convolutions.
DOWNSAMPLING = 4


class ResidualStack(keras.layers.Layer):
  """``num_blocks`` x (h + conv1x1(relu(conv3x3(relu(h))))), then ReLU.

  Shapes: ``[B, h, w, hidden] -> [B, h, w, hidden]``.
  """

  def __init__(self, hidden: int, residual_hidden: int = 32,
               num_blocks: int = 2, **kwargs):
    super().__init__(**kwargs)
    self.blocks = [
        (keras.layers.Conv2D(residual_hidden, 3, padding='same',
                             name=f'res{i}_3x3'),
         keras.layers.Conv2D(hidden, 1, name=f'res{i}_1x1'))
        for i in range(num_blocks)]

  def call(self, h):
    for conv3, conv1 in self.blocks:
      h = h + conv1(tf.nn.relu(conv3(tf.nn.relu(h))))
    return tf.nn.relu(h)


@gin.configurable
class VQEncoder(keras.layers.Layer):
  """``[B, H, W, C] -> [B, H/4, W/4, embedding_dim]``.

  4x4 stride-2 conv (hidden/2) -> ReLU -> 4x4 stride-2 conv (hidden) -> ReLU
  -> 3x3 conv (hidden) -> residual stack -> 1x1 conv to ``embedding_dim``.
  """

  def __init__(self, embedding_dim: int, hidden: int = 32,
               residual_hidden: int = 32, num_residual_blocks: int = 2,
               **kwargs):
    super().__init__(**kwargs)
    self.convs = [
        keras.layers.Conv2D(hidden // 2, 4, strides=2, padding='same',
                            activation='relu', name='down_1'),
        keras.layers.Conv2D(hidden, 4, strides=2, padding='same',
                            activation='relu', name='down_2'),
        keras.layers.Conv2D(hidden, 3, padding='same', name='conv_3x3')]
    self.residual = ResidualStack(hidden, residual_hidden,
                                  num_residual_blocks, name='residual')
    self.output_conv = keras.layers.Conv2D(embedding_dim, 1, name='to_codes')

  def call(self, x):
    h = x
    for conv in self.convs:
      h = conv(h)
    return self.output_conv(self.residual(h))


@gin.configurable
class VQDecoder(keras.layers.Layer):
  """``[B, h, w, D] -> [B, 4h, 4w, channels]`` (the encoder mirrored).

  3x3 conv (hidden) -> residual stack -> 4x4 stride-2 transposed conv
  (hidden/2) -> ReLU -> 4x4 stride-2 transposed conv to ``channels``.
  """

  def __init__(self, channels: int, hidden: int = 32,
               residual_hidden: int = 32, num_residual_blocks: int = 2,
               **kwargs):
    super().__init__(**kwargs)
    self.input_conv = keras.layers.Conv2D(hidden, 3, padding='same',
                                          name='conv_3x3')
    self.residual = ResidualStack(hidden, residual_hidden,
                                  num_residual_blocks, name='residual')
    self.up_1 = keras.layers.Conv2DTranspose(
        hidden // 2, 4, strides=2, padding='same', activation='relu',
        name='up_1')
    self.up_2 = keras.layers.Conv2DTranspose(channels, 4, strides=2,
                                             padding='same', name='up_2')

  def call(self, z):
    return self.up_2(self.up_1(self.residual(self.input_conv(z))))


def _replica_sum(value):
  """Sums ``value`` over the replicas in sync (identity on one device)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return value
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _replica_gather(value):
  """Concatenates ``value`` over the replicas on axis 0, in replica order."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return value
  return ctx.all_gather(value, axis=0)


@gin.configurable
class VQVAE(base.BaseVAE):
  """VQ-VAE on images; posterior target = the int32 code grid ``[h, w]``.

  See the module docstring for the math. Shapes: ``x [B, H, W, C]`` with
  H and W multiples of 4; codes ``[B, H/4, W/4]``.

  Args:
    feature_shape: ``[H, W, C]`` (runtime, from the data).
    num_codes: codebook size K.
    embedding_dim: D, the size of a code vector.
    hidden: channels of the encoder/decoder (the first conv has hidden/2).
    residual_hidden: channels inside a residual block.
    num_residual_blocks: residual blocks in the encoder and the decoder.
    commitment_cost: beta.
    decay: gamma of the EMA codebook.
    epsilon: Laplace smoothing of the EMA counts.
    likelihood: 'gaussian' (one learned scalar scale) or 'bernoulli'.
    init_scale: initial scale of the Gaussian likelihood.
    dead_code_threshold: restart a code whose EMA count falls below this
      (0 disables restarts; a uniform use of 256 codes by batches of
      32 x 49 vectors gives counts near 6).
    grid_shape: optional ``(h, w)``; must equal ``(H/4, W/4)`` (checked so
      that a config written for another image size fails early).
  """

  capabilities = frozenset()
  latent_dtype = tf.int32

  def __init__(self, feature_shape: Sequence[int], num_codes: int = 256,
               embedding_dim: int = 64, hidden: int = 32,
               residual_hidden: int = 32, num_residual_blocks: int = 2,
               commitment_cost: float = 0.25, decay: float = 0.99,
               epsilon: float = 1e-5, likelihood: str = 'gaussian',
               init_scale: float = 0.3, dead_code_threshold: float = 0.1,
               grid_shape: Optional[Sequence[int]] = None,
               name: str = 'vq_vae', **kwargs):
    super().__init__(name=name, **kwargs)
    self.feature_shape = tuple(int(s) for s in feature_shape)
    if len(self.feature_shape) != 3:
      raise UserError(f'VQVAE needs images [H, W, C]; got feature shape '
                      f'{list(self.feature_shape)}: use a GaussianVAE for '
                      'tables')
    height, width, channels = self.feature_shape
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
      raise UserError(
          f'VQVAE: the encoder downsamples by {DOWNSAMPLING} (two stride-2 '
          f'convs) but the images are {height}x{width}: resize them to '
          f'multiples of {DOWNSAMPLING} (dataset.image_size)')
    self.grid = (height // DOWNSAMPLING, width // DOWNSAMPLING)
    if grid_shape is not None and tuple(int(s) for s in grid_shape) != self.grid:
      raise UserError(
          f'VQVAE.grid_shape={list(grid_shape)} does not match the encoder: '
          f'{height}x{width} images downsampled by {DOWNSAMPLING} give a '
          f'{self.grid[0]}x{self.grid[1]} grid; bind VQVAE.grid_shape = '
          f'{self.grid} or resize the images')
    if likelihood not in LIKELIHOODS:
      raise UserError(f'VQVAE.likelihood must be one of {list(LIKELIHOODS)}, '
                      f'got {likelihood!r}')
    if num_codes < 2 or embedding_dim < 1 or hidden < 2:
      raise UserError('VQVAE needs num_codes >= 2, embedding_dim >= 1 and '
                      'hidden >= 2')
    if not 0.0 <= decay < 1.0:
      raise UserError(f'VQVAE.decay must be in [0, 1), got {decay}')
    self.num_codes = int(num_codes)
    self.embedding_dim = int(embedding_dim)
    self.commitment_cost = float(commitment_cost)
    self.decay = float(decay)
    self.epsilon = float(epsilon)
    self.likelihood = likelihood
    self.dead_code_threshold = float(dead_code_threshold)
    self.encoder = VQEncoder(embedding_dim, hidden, residual_hidden,
                             num_residual_blocks, name='encoder')
    self.decoder = VQDecoder(channels, hidden, residual_hidden,
                             num_residual_blocks, name='decoder')
    if likelihood == 'gaussian':
      self.raw_scale = self.add_weight(
          name='raw_scale', shape=(),
          initializer=keras.initializers.Constant(
              math.log(math.expm1(init_scale))), trainable=True)
    # The codebook: not trainable (EMA), identical on every replica.
    sync = dict(trainable=False,
                synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.codebook = self.add_weight(
        name='codebook', shape=(num_codes, embedding_dim),
        initializer=keras.initializers.VarianceScaling(
            1.0, 'fan_in', 'uniform'), **sync)
    self.ema_count = self.add_weight(
        name='ema_count', shape=(num_codes,),
        initializer=keras.initializers.Zeros(), **sync)
    self.ema_sum = self.add_weight(
        name='ema_sum', shape=(num_codes, embedding_dim),
        initializer=keras.initializers.Zeros(), **sync)
    self.ema_updates = self.add_weight(
        name='ema_updates', shape=(), dtype=tf.int64,
        initializer=keras.initializers.Zeros(), **sync)
    self._ema_initialized = self.add_weight(
        name='ema_initialized', shape=(), dtype=tf.bool,
        initializer=keras.initializers.Constant(False), **sync)

  # ------------------------------------------------------------ shapes
  @property
  def latent_shape(self) -> tuple:
    return self.grid

  def make_partial_encoder(self, factory: Callable):
    """The partial posterior factory gets the code grid and the codebook size."""
    return factory(grid_shape=self.grid, num_codes=self.num_codes)

  # ------------------------------------------------------------ quantizer
  def quantize(self, z_e: tf.Tensor) -> tf.Tensor:
    """Nearest codes ``[..., h, w]`` int32 of encoder outputs ``[..., h, w, D]``."""
    flat = tf.reshape(z_e, [-1, self.embedding_dim])
    codebook = tf.convert_to_tensor(self.codebook)
    distances = (tf.reduce_sum(flat ** 2, axis=1, keepdims=True)
                 - 2.0 * tf.matmul(flat, codebook, transpose_b=True)
                 + tf.reduce_sum(codebook ** 2, axis=1)[tf.newaxis])
    codes = tf.argmin(distances, axis=1, output_type=tf.int32)
    return tf.reshape(codes, tf.shape(z_e)[:-1])

  def embed(self, codes: tf.Tensor) -> tf.Tensor:
    """Code vectors ``[..., D]`` of int codes ``[...]``."""
    return tf.gather(tf.convert_to_tensor(self.codebook), codes)

  def encode_codes(self, x: tf.Tensor) -> tf.Tensor:
    """The code grid ``[B, h, w]`` of images ``[B, H, W, C]``."""
    return self.quantize(self.encoder(x))

  def _ema_update(self, flat: tf.Tensor, codes: tf.Tensor):
    """One EMA step of the codebook from vectors ``[N, D]`` and codes ``[N]``.

    Counts and sums are summed over replicas first (see the module
    docstring). Returns the op to depend on.
    """
    one_hot = tf.one_hot(codes, self.num_codes, dtype=flat.dtype)
    counts = _replica_sum(tf.reduce_sum(one_hot, axis=0))
    sums = _replica_sum(tf.matmul(one_hot, flat, transpose_a=True))
    gamma = self.decay
    # First update: start the averages from the batch (no zero bias).
    first = tf.logical_not(self._ema_initialized.read_value())
    new_count = tf.where(first, counts,
                         gamma * self.ema_count + (1 - gamma) * counts)
    new_sum = tf.where(first, sums, gamma * self.ema_sum + (1 - gamma) * sums)
    total = tf.reduce_sum(new_count)
    smoothed = ((new_count + self.epsilon) /
                (total + self.num_codes * self.epsilon) * total)
    new_codebook = new_sum / smoothed[:, tf.newaxis]
    if self.dead_code_threshold > 0:
      everything = _replica_gather(flat)
      seed = tf.stack([tf.constant(104729, tf.int64), self.ema_updates])
      pick = tf.random.stateless_uniform(
          [self.num_codes], seed=seed, minval=0,
          maxval=tf.shape(everything, out_type=tf.int64)[0], dtype=tf.int64,
          alg='philox')
      fresh = tf.gather(everything, pick)
      dead = new_count < self.dead_code_threshold
      new_codebook = tf.where(dead[:, tf.newaxis], fresh, new_codebook)
      new_sum = tf.where(dead[:, tf.newaxis],
                         2.0 * self.dead_code_threshold * fresh, new_sum)
      new_count = tf.where(dead, tf.fill(tf.shape(new_count),
                                         2.0 * self.dead_code_threshold),
                           new_count)
    return tf.group(
        self.ema_count.assign(new_count), self.ema_sum.assign(new_sum),
        self.codebook.assign(new_codebook),
        self.ema_updates.assign_add(1), self._ema_initialized.assign(True))

  # ------------------------------------------------------------ contract
  def training_terms(self, x, kl_weight, training=True, noise=None, seed=None,
                     observed: Optional[tf.Tensor] = None) -> base.VAETerms:
    """Reconstruction + commitment per example; the code grid as target.

    ``kl_weight``, ``noise`` and ``seed`` are unused (a deterministic
    encoder). With ``training=True`` the codebook takes one EMA step from
    this batch, after the codes of the batch were assigned with the old
    codebook.
    """
    del kl_weight, noise, seed
    if observed is not None:
      raise UserError('VQVAE does not train on incomplete data: pass fully '
                      'observed images')
    x = tf.convert_to_tensor(x)
    z_e = self.encoder(x, training=training)
    codes = self.quantize(z_e)
    z_q = tf.stop_gradient(self.embed(codes))
    commitment = self.commitment_cost * tf.reduce_sum(
        (z_e - z_q) ** 2, axis=[1, 2, 3])
    z_st = z_e + tf.stop_gradient(z_q - z_e)
    reconstruction = -self._likelihood(
        self.decoder(z_st, training=training)).log_prob(x)
    flat = tf.reshape(z_e, [-1, self.embedding_dim])
    flat_codes = tf.reshape(codes, [-1])
    usage = tf.reduce_mean(tf.one_hot(flat_codes, self.num_codes), axis=0)
    perplexity = tf.exp(-tf.reduce_sum(
        usage * tf.math.log(usage + 1e-10)))
    if training:
      update = self._ema_update(tf.stop_gradient(flat), flat_codes)
      with tf.control_dependencies([update]):
        reconstruction = tf.identity(reconstruction)
    dead = tf.reduce_sum(tf.cast(
        self.ema_count <= self.dead_code_threshold, tf.float32))
    batch = tf.ones_like(reconstruction)
    return base.VAETerms(
        loss=reconstruction + commitment,
        scalars={'reconstruction': reconstruction, 'commitment': commitment,
                 'perplexity': perplexity * batch, 'dead_codes': dead * batch},
        target=codes, posterior=None)

  def _likelihood(self, params: tf.Tensor, clip: bool = False
                  ) -> tfd.Distribution:
    """p(x | params): Bernoulli logits, or a Normal mean (clipped if asked)."""
    if self.likelihood == 'bernoulli':
      base_dist = tfd.Bernoulli(logits=params, dtype=params.dtype)
    else:
      scale = tf.nn.softplus(tf.cast(self.raw_scale, params.dtype)) + 1e-3
      loc = tf.clip_by_value(params, 0.0, 1.0) if clip else params
      base_dist = tfd.Normal(loc=loc,
                             scale=tf.broadcast_to(scale, tf.shape(loc)))
    return tfd.Independent(base_dist, reinterpreted_batch_ndims=3)

  def decode(self, z, training=False) -> tfd.Distribution:
    """p_phi(x | codes) for int codes ``[..., h, w]``: batch ``[...]``.

    A Gaussian's mean is clipped to [0, 1] here (not in training).
    """
    z = tf.convert_to_tensor(z)
    if z.dtype.is_floating:
      raise UserError('VQVAE.decode takes int32 code grids, not float '
                      'latents')
    batch_shape = tf.shape(z)[:-2]
    flat = tf.reshape(z, [-1, *self.grid])
    params = self.decoder(self.embed(flat), training=training)
    params = tf.reshape(params, tf.concat(
        [batch_shape, self.feature_shape], axis=0))
    return self._likelihood(params, clip=True)

  def call(self, x, training=False):
    """Builds every variable; returns the reconstruction mean."""
    return self.decode(self.encode_codes(x), training=training).mean()
