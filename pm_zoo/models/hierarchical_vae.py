"""A VDVAE-style hierarchical VAE (Child, 2021) and its per-layer partial posterior.

Generative model, L latent layers top-down (``decoder_blocks``):

  p(z) = prod_i p(z_i | z_<i),   p(x | z) = DMoL(x | f(h_L)),

where the top-down state h carries everything drawn so far: block i reads
the state h_{i-1} at its resolution (plus, for an ``RmM`` block, the state
at resolution M up-sampled by nearest neighbour), computes the prior
N(mu_p, sigma_p) and a feature from h_{i-1}, and updates
``h_i = resblock(h_{i-1} + feature + proj(z_i))``. Latents are per position:
z_i is ``[R, R, C_z]`` at the block's resolution R, with a diagonal
Gaussian over its channels. The pixel likelihood is a discretized mixture of
K logistics on [0, 255] (``distributions.logistic_mixture``).

Posterior: q(z | x) = prod_i q(z_i | z_<i, x), each a diagonal Gaussian from
``concat(h_{i-1}, a_R(x))``, where a_R is the bottom-up encoder's last
activation at resolution R (``encoder_blocks``). The ELBO is

  ELBO = E_q [log p(x | z)] - sum_i E_q [KL(q(z_i | z_<i, x) || p(z_i | z_<i))],

with every layer's KL analytic and the outer expectation over one
reparameterised trajectory.

Partial posterior (``HierarchicalPartialEncoder``):
q_theta(z | x_o) = prod_i q_theta(z_i | z_<i, x_o), a second bottom-up
encoder over ``concat(x * b, b)`` and in every top-down block a
partial-posterior block over ``concat(stop_gradient(h_{i-1}), a'_R(x_o))``
(diagonal or full covariance over the C_z channels of each position). It
shares the VAE's top-down path and prior blocks, which the ELBO alone
trains: its ``log_prob(z)`` runs the top-down pass teacher-forced along z,
its ``sample`` runs its own top-down pass.

Block strings (VDVAE's): comma-separated tokens. Encoder: ``RxN`` = N
residual blocks at resolution R, ``RdF`` = one block at R, then average
pooling by F (``28d2``: 28 -> 14; ``7d2``: 7 -> 3). Decoder: ``RxN`` = N
latent blocks at R, ``RmM`` = one latent block at R that first adds the
state of resolution M, up-sampled. Every decoder resolution needs an encoder
activation at that resolution; the last one is the image's.

Contract (``pm_zoo.models.base``): the posterior target is every layer's z_i
flattened and concatenated, one float vector of ``latent_size`` =
sum_i R_i^2 C_z per row (so code written for ``[B, S, *latent_shape]``
handles it); ``noise_size`` equals it (the trainer's normals drive the
reparameterised draws layer by layer, in that order); ``encode(x)``,
``prior()`` and the partial posterior are ``TopDownDistribution`` objects
over the flat vector.
"""
import math
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo import matching
from pm_zoo.distributions import logistic_mixture
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base

tfd = tfp.distributions
tfb = tfp.bijectors

COVARIANCES = ('diag', 'full')


# ------------------------------------------------------------ block strings
class BlockSpec(NamedTuple):
  """One block: its resolution, and a down-sampling factor (encoder) or the
  resolution it mixes in (decoder), or None."""
  res: int
  down: Optional[int] = None
  mixin: Optional[int] = None


def parse_blocks(text: str, kind: str) -> List[BlockSpec]:
  """VDVAE block string -> one ``BlockSpec`` per block (see the module).

  ``kind`` is 'encoder' (tokens ``RxN``, ``RdF``) or 'decoder' (``RxN``,
  ``RmM``). A bad string raises a one-line ``UserError``.
  """
  letters = {'encoder': 'xd', 'decoder': 'xm'}[kind]
  what = (f'{kind} block string {text!r}: use comma-separated tokens '
          f'like ' + ("'28x6,28d2'" if kind == 'encoder' else "'1x2,3m1'"))
  if not isinstance(text, str) or not text.strip():
    raise UserError(f'empty or non-string {what}')
  specs = []
  for token in text.replace(' ', '').split(','):
    match = re.fullmatch(rf'(\d+)([{letters}])(\d+)', token)
    if not match:
      raise UserError(f'bad token {token!r} in the {what}')
    res, op, arg = int(match.group(1)), match.group(2), int(match.group(3))
    if res < 1 or arg < 1:
      raise UserError(f'token {token!r} in the {what} needs positive numbers')
    if op == 'x':
      specs.extend([BlockSpec(res)] * arg)
    elif op == 'd':
      if arg < 2 or res // arg < 1:
        raise UserError(f'token {token!r} in the {what} must down-sample '
                        'by a factor in [2, resolution]')
      specs.append(BlockSpec(res, down=arg))
    else:
      if arg >= res:
        raise UserError(f'token {token!r} in the {what} must mix in a lower '
                        'resolution')
      specs.append(BlockSpec(res, mixin=arg))
  return specs


def _check_structure(enc: List[BlockSpec], dec: List[BlockSpec],
                     image_size: int) -> None:
  """Resolutions fit together (one-line UserErrors)."""
  res = image_size
  for spec in enc:
    if spec.res != res:
      raise UserError(f'encoder block at resolution {spec.res} follows '
                      f'resolution {res}: the encoder string must start at the '
                      f'image size {image_size} and follow its down-sampling')
    if spec.down:
      res = spec.res // spec.down
  # BottomUp keeps each block's output, at the resolution after the block:
  # a down-sampling block leaves nothing at its input resolution.
  encoded = {s.res // s.down if s.down else s.res for s in enc}
  seen = set()
  for spec in dec:
    if spec.res not in encoded:
      raise UserError(f'decoder block at resolution {spec.res} has no encoder '
                      f'activation at that resolution (encoder has '
                      f'{sorted(encoded)})')
    if spec.mixin is not None and spec.mixin not in seen:
      raise UserError(f'decoder block {spec.res}m{spec.mixin} mixes in '
                      f'resolution {spec.mixin}, which no earlier decoder '
                      'block has')
    seen.add(spec.res)
  if dec[-1].res != image_size:
    raise UserError(f'the decoder string ends at resolution {dec[-1].res}, '
                    f'not at the image size {image_size}')


# ------------------------------------------------------------ layers
class BottleneckBlock(keras.layers.Layer):
  """GELU -> 1x1 -> GELU -> 3x3 -> GELU -> 3x3 -> GELU -> 1x1 (+ input).

  ``[B, R, R, C_in] -> [B, R, R, C_out]``; the 3x3 convolutions are 1x1 at
  resolutions <= 2 (as VDVAE). The last convolution's initial weights are
  scaled by ``last_scale`` (VDVAE: 1/sqrt(number of blocks) on residual
  branches) or zero (``last_scale=0``).
  """

  def __init__(self, middle: int, out: int, residual: bool, res: int,
               last_scale: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    k = 3 if res > 2 else 1
    last_init = ('zeros' if last_scale == 0 else
                 keras.initializers.VarianceScaling(
                     scale=float(last_scale) ** 2, mode='fan_in',
                     distribution='truncated_normal'))
    self.residual = bool(residual)
    self.convs = [
        keras.layers.Conv2D(middle, 1, name='c1'),
        keras.layers.Conv2D(middle, k, padding='same', name='c2'),
        keras.layers.Conv2D(middle, k, padding='same', name='c3'),
        keras.layers.Conv2D(out, 1, kernel_initializer=last_init, name='c4')]

  def call(self, x):
    h = x
    for conv in self.convs:
      h = conv(tf.nn.gelu(h))
    return x + h if self.residual else h


class BottomUp(keras.layers.Layer):
  """Bottom-up encoder: ``[B, R, R, C] -> {resolution: [B, r, r, width]}``,
  the last activation at every resolution the block string visits."""

  def __init__(self, specs: Sequence[BlockSpec], width: int, middle: int,
               **kwargs):
    super().__init__(**kwargs)
    self.specs = list(specs)
    self.in_conv = keras.layers.Conv2D(width, 3, padding='same',
                                       name='in_conv')
    scale = math.sqrt(1.0 / len(self.specs))
    self.blocks = [BottleneckBlock(middle, width, True, s.res, scale,
                                   name=f'block_{i}')
                   for i, s in enumerate(self.specs)]

  def call(self, x) -> Dict[int, tf.Tensor]:
    h = self.in_conv(x)
    acts = {}
    for spec, block in zip(self.specs, self.blocks):
      h = block(h)
      if spec.down:
        h = tf.nn.avg_pool2d(h, spec.down, spec.down, 'VALID')
      acts[int(h.shape[1])] = h
    return acts


class TopDownBlock(keras.layers.Layer):
  """One latent layer: prior p(z_i | z_<i), posterior q(z_i | z_<i, x), update.

  ``prior(h) -> (mu_p, sigma_p, feature)``, ``posterior(h, a) -> (mu_q,
  sigma_q)``, ``update(h, feature, z) = resblock(h + feature + proj(z))``,
  all ``[N, R, R, .]``.
  """

  def __init__(self, spec: BlockSpec, width: int, middle: int,
               latent_channels: int, num_blocks: int, **kwargs):
    super().__init__(**kwargs)
    self.res, self.mixin = spec.res, spec.mixin
    self.latent_channels = int(latent_channels)
    scale = math.sqrt(1.0 / num_blocks)
    self.prior_block = BottleneckBlock(middle, 2 * latent_channels + width,
                                       False, spec.res, 0.0, name='prior')
    self.posterior_block = BottleneckBlock(middle, 2 * latent_channels, False,
                                           spec.res, name='posterior')
    self.z_proj = keras.layers.Conv2D(
        width, 1, name='z_proj',
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=scale ** 2, mode='fan_in', distribution='truncated_normal'))
    self.resnet = BottleneckBlock(middle, width, True, spec.res, scale,
                                  name='resnet')

  def prior(self, h):
    c = self.latent_channels
    # tf.split, not slicing: the gradient of a split is one concat, that of
    # each slice a zero-padded copy of the whole tensor.
    loc, log_scale, feature = tf.split(self.prior_block(h),
                                       [c, c, -1], axis=-1)
    return loc, tf.exp(log_scale), feature

  def posterior(self, h, acts):
    loc, log_scale = tf.split(
        self.posterior_block(tf.concat([h, acts], axis=-1)), 2, axis=-1)
    return loc, tf.exp(log_scale)

  def update(self, h, feature, z):
    return self.resnet(h + feature + self.z_proj(z))


def diagonal(loc, scale) -> tfd.Distribution:
  """Per-position diagonal Gaussian: batch [N], event [R, R, C]."""
  return tfd.Independent(tfd.MultivariateNormalDiag(loc, scale),
                         reinterpreted_batch_ndims=2)


def full_covariance(loc, scale_tril) -> tfd.Distribution:
  """Per-position full-covariance Gaussian over the C channels."""
  return tfd.Independent(tfd.MultivariateNormalTriL(loc, scale_tril),
                         reinterpreted_batch_ndims=2)


def _draw(dist: tfd.Distribution, eps):
  """loc + scale eps for a per-position Gaussian (reparameterised)."""
  mvn = dist.distribution
  return mvn.loc + mvn.scale.matvec(eps)


def upsample_nearest(x, size: int):
  """``[N, m, m, C] -> [N, size, size, C]``, nearest neighbour.

  Row i of the output is row ``floor((i + 1/2) m / size)`` of the input (as
  ``tf.image.resize(method='nearest')``), by gathers: XLA has no kernel for
  the gradient of the resize op, and compiles gathers.
  """
  m = int(x.shape[1])
  index = [int((i + 0.5) * m / size) for i in range(size)]
  return tf.gather(tf.gather(x, index, axis=1), index, axis=2)


class TopDownPass(NamedTuple):
  """What one top-down pass gives (N rows)."""
  z: tf.Tensor                 # [N, latent_size]
  log_q: tf.Tensor             # [N] sum_i log q_i(z_i), 0 without q
  log_p: tf.Tensor             # [N] sum_i log p_i(z_i)
  kls: List[tf.Tensor]         # per layer KL(q_i || p_i) [N] (with q)
  states: List[tf.Tensor]      # per layer h_{i-1} (mixed in), [N, R, R, W]
  layers: List[tfd.Distribution]  # per layer q_i (or p_i without q)
  out: tf.Tensor               # [N, H, W, W] final state


# ------------------------------------------------------------ the VAE
@gin.configurable
class HierarchicalVAE(base.BaseVAE):
  """VDVAE-style hierarchical VAE on images ``[B, H, H, C]`` in [0, 1].

  Args:
    feature_shape: ``(H, H, C)`` (runtime, from the data).
    encoder_blocks: VDVAE encoder string (module docstring).
    decoder_blocks: VDVAE decoder string.
    width: channels of every block's state.
    latent_channels: C_z, latent channels per position.
    bottleneck: the residual blocks' middle width is ``bottleneck * width``.
    num_components: K, logistics per pixel.
  """

  capabilities = frozenset({base.MARGINAL_LIKELIHOOD, base.GENERATIVE_PRIOR,
                            base.REPARAMETERIZED})

  def __init__(self, feature_shape: Sequence[int],
               encoder_blocks: str = '28x6,28d2,14x4,14d2,7x2,7d2,3x2,3d2,1x2',
               decoder_blocks: str = ('1x2,3m1,3x2,7m3,7x2,14m7,14x4,28m14,'
                                      '28x6'),
               width: int = 192, latent_channels: int = 16,
               bottleneck: float = 0.25, num_components: int = 10,
               name: str = 'hierarchical_vae', **kwargs):
    super().__init__(name=name, **kwargs)
    self.feature_shape = tuple(int(s) for s in feature_shape)
    if len(self.feature_shape) != 3 or (
        self.feature_shape[0] != self.feature_shape[1]):
      raise UserError(f'HierarchicalVAE needs square images [H, H, C], got '
                      f'feature shape {list(self.feature_shape)}')
    for arg, value in (('width', width), ('latent_channels', latent_channels),
                       ('num_components', num_components)):
      if int(value) < 1:
        raise UserError(f'HierarchicalVAE.{arg} must be >= 1, got {value}')
    if not 0 < bottleneck <= 1:
      raise UserError(f'HierarchicalVAE.bottleneck must be in (0, 1], got '
                      f'{bottleneck}')
    self.image_size, self.channels = self.feature_shape[0], self.feature_shape[2]
    self.encoder_specs = parse_blocks(encoder_blocks, 'encoder')
    self.decoder_specs = parse_blocks(decoder_blocks, 'decoder')
    _check_structure(self.encoder_specs, self.decoder_specs, self.image_size)
    self.width, self.latent_channels = int(width), int(latent_channels)
    self.middle = max(1, int(width * bottleneck))
    self.num_components = int(num_components)
    self.encoder = BottomUp(self.encoder_specs, self.width, self.middle,
                            name='encoder')
    n = len(self.decoder_specs)
    self.blocks = [TopDownBlock(s, self.width, self.middle,
                                self.latent_channels, n, name=f'top_down_{i}')
                   for i, s in enumerate(self.decoder_specs)]
    self.resolutions = sorted({s.res for s in self.decoder_specs})
    # String keys: Keras checkpoints only dicts keyed by strings.
    self.biases = {}
    for r in self.resolutions:
      self.biases[str(r)] = self.add_weight(
          name=f'bias_{r}', shape=[r, r, self.width], initializer='zeros')
    self.out_conv = keras.layers.Conv2D(
        self.channels * logistic_mixture.num_params(num_components), 1,
        name='out_conv')
    self.layer_sizes = [s.res * s.res * self.latent_channels
                        for s in self.decoder_specs]

  # ------------------------------------------------------------ contract
  @property
  def latent_shape(self) -> tuple:
    return (int(sum(self.layer_sizes)),)

  @property
  def noise_size(self) -> int:
    return self.latent_size

  @property
  def num_layers(self) -> int:
    return len(self.blocks)

  def make_partial_encoder(self, factory: Callable):
    """The partial posterior's factory gets the VAE (shared top-down path)."""
    return factory(self)

  def scaled(self, x):
    """Pixels [0, 1] -> the encoders' input scale [-1, 1]."""
    return 2.0 * x - 1.0

  def bottom_up(self, x, training=False) -> Dict[int, tf.Tensor]:
    return self.encoder(self.scaled(x), training=training)

  def posterior_layer(self, acts: Dict[int, tf.Tensor]):
    """q_fn of the full posterior for activations of N rows."""

    def q_fn(i, h):
      block = self.blocks[i]
      return diagonal(*block.posterior(h, acts[block.res]))

    return q_fn

  def top_down(self, n, q_fn=None, z=None, noise=None, seed=None,
               with_kl=False) -> TopDownPass:
    """One top-down pass over N rows.

    Layer i draws z_i from q_i = ``q_fn(i, h_{i-1})`` (or the prior p_i when
    ``q_fn`` is None), unless ``z [N, latent_size]`` gives it
    (teacher-forced); draws are ``loc + scale eps`` with eps the layer's
    slice of ``noise [N, latent_size]`` or stateless normals from ``seed``.
    """
    c = self.latent_channels
    if seed is not None:
      seed = tfp.random.sanitize_seed(seed)
    states = {}
    zs, kls, kept, layers = [], [], [], []
    log_q = log_p = tf.zeros([n])
    offset = 0
    for i, (block, size) in enumerate(zip(self.blocks, self.layer_sizes)):
      r = block.res
      if r not in states:
        states[r] = tf.tile(self.biases[str(r)][tf.newaxis], [n, 1, 1, 1])
      h = states[r]
      if block.mixin is not None:
        h = h + upsample_nearest(states[block.mixin], r)
      p_loc, p_scale, feature = block.prior(h)
      p = diagonal(p_loc, p_scale)
      q = q_fn(i, h) if q_fn is not None else None
      dist = q if q is not None else p
      if z is not None:
        z_i = tf.reshape(z[:, offset:offset + size], [n, r, r, c])
      else:
        if noise is not None:
          eps = tf.reshape(noise[:, offset:offset + size], [n, r, r, c])
        else:
          eps = tf.random.stateless_normal(
              [n, r, r, c], seed=tf.random.experimental.stateless_fold_in(
                  seed, i))
        z_i = _draw(dist, eps)
      log_p += p.log_prob(z_i)
      if q is not None:
        log_q += q.log_prob(z_i)
        if with_kl:
          kls.append(tfd.kl_divergence(q, p))
      kept.append(h)
      layers.append(dist)
      zs.append(tf.reshape(z_i, [n, size]))
      states[r] = block.update(h, feature, z_i)
      offset += size
    return TopDownPass(z=tf.concat(zs, axis=1) if z is None else z,
                       log_q=log_q, log_p=log_p, kls=kls, states=kept,
                       layers=layers, out=states[self.image_size])

  def likelihood(self, out: tf.Tensor) -> tfd.Distribution:
    """p(x | z) from the final top-down state ``[N, H, H, W]``."""
    return logistic_mixture.pixel_likelihood(
        self.out_conv(tf.nn.gelu(out)), self.num_components)

  def training_terms(self, x, kl_weight, training=True, noise=None,
                     seed=None, observed: Optional[tf.Tensor] = None
                     ) -> base.VAETerms:
    """-ELBO with KL weight ``kl_weight``: one reparameterised trajectory.

    ``loss = -log p(x | z) + kl_weight sum_i KL_i``; scalars ``elbo``,
    ``kl``, ``log_likelihood``, ``bits_per_dim`` (-ELBO / (D ln 2)) and
    ``kl_layer_<i>`` per latent layer.
    """
    if observed is not None:
      raise UserError('HierarchicalVAE does not train on incomplete data: '
                      'pass fully observed images')
    if noise is None and seed is None:
      seed = tf.constant([0, 0])
    n = tf.shape(x)[0]
    acts = self.bottom_up(x, training=training)
    q_fn = self.posterior_layer(acts)
    run = self.top_down(n, q_fn, noise=noise, seed=seed, with_kl=True)
    log_likelihood = self.likelihood(run.out).log_prob(x)
    kl = tf.add_n(run.kls)
    elbo = log_likelihood - kl
    scalars = {'elbo': elbo, 'log_likelihood': log_likelihood, 'kl': kl,
               'bits_per_dim': -elbo / (math.prod(self.feature_shape)
                                        * math.log(2.0))}
    for i, kl_i in enumerate(run.kls):
      scalars[f'kl_layer_{i:02d}'] = kl_i
    posterior = TopDownDistribution(
        self, acts=acts, batch_shape=[x.shape[0]],
        trajectory=Trajectory(states=run.states, layers=run.layers))
    return base.VAETerms(loss=-(log_likelihood - kl_weight * kl),
                         scalars=scalars, target=run.z, posterior=posterior)

  def encode(self, x, training=False) -> tfd.Distribution:
    """q(z | x) over the flat latent, batch [B]."""
    return TopDownDistribution(self, acts=self.bottom_up(x, training=training),
                               batch_shape=[x.shape[0]])

  def prior(self) -> tfd.Distribution:
    """p(z) over the flat latent, batch []."""
    return TopDownDistribution(self, acts=None, batch_shape=[])

  def decode(self, z, training=False) -> tfd.Distribution:
    """p(x | z) for ``z [..., latent_size]``: batch [...], event (H, H, C)."""
    z = tf.convert_to_tensor(z)
    lead = tf.shape(z)[:-1]
    flat = tf.reshape(z, [-1, self.latent_size])
    run = self.top_down(tf.shape(flat)[0], z=flat)
    params = self.out_conv(tf.nn.gelu(run.out))
    params = tf.reshape(params, tf.concat(
        [lead, tf.shape(params)[1:]], axis=0))
    return logistic_mixture.pixel_likelihood(params, self.num_components)

  def call(self, x, training=False):
    """Builds every variable; returns the mean of p(x | z), z ~ q(z | x)."""
    terms = self.training_terms(x, tf.constant(1.0), training=training,
                                seed=tf.constant([0, 0]))
    return self.decode(terms.target).mean()


class Trajectory(NamedTuple):
  """A full-posterior trajectory: per layer the state h_{i-1} and q_i."""
  states: List[tf.Tensor]
  layers: List[tfd.Distribution]


# ------------------------------------------------------------ distributions
def _tile(acts, reps):
  if acts is None:
    return None
  return {r: tf.tile(a, [reps, 1, 1, 1]) for r, a in acts.items()}


class TopDownDistribution(tfd.Distribution):
  """A hierarchical density over the flat latent vector, ``[..., latent_size]``.

  ``q_fn_maker(acts) -> q_fn`` gives the per-layer distributions from
  activations tiled to the rows of a pass: the full posterior (default, from
  the VAE's bottom-up activations), a partial posterior (from the masked
  encoder's), or the prior (``acts=None``: p_i at every layer).

  ``log_prob(z)`` runs the top-down pass teacher-forced along z and sums
  ``log q_i(z_i | z_<i)``; ``sample(n)`` runs the pass drawing from q_i.
  Batch ``[B]`` (the rows of ``acts``) or ``[]`` (prior); a ``z`` of shape
  ``[S, B, d]`` is scored row b against activation b.

  ``trajectory`` (the training pass's states and layers) makes the per-layer
  KL of ``kl_along_trajectory`` possible; ``stop_gradient()`` gives a copy
  with every trajectory tensor behind ``tf.stop_gradient``.
  """

  def __init__(self, vae: HierarchicalVAE, acts=None, batch_shape=(),
               q_fn_maker=None, trajectory=None, name=None):
    self.vae = vae
    self.acts = acts
    self.trajectory = trajectory
    self._q_fn_maker = (q_fn_maker if q_fn_maker is not None else
                        vae.posterior_layer)
    self._static_batch = tf.TensorShape(batch_shape)
    super().__init__(dtype=tf.float32,
                     reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                     validate_args=False, allow_nan_stats=True,
                     parameters={}, name=name or 'TopDownDistribution')

  def _batch_shape(self):
    return self._static_batch

  def _batch_shape_tensor(self):
    if self.acts is None:
      return tf.constant([], tf.int32)
    return tf.shape(next(iter(self.acts.values())))[:1]

  def _event_shape(self):
    return tf.TensorShape([self.vae.latent_size])

  def _event_shape_tensor(self):
    return tf.constant([self.vae.latent_size], tf.int32)

  def _q_fn(self, reps):
    if self.acts is None:
      return None
    return self._q_fn_maker(_tile(self.acts, reps))

  def _rows(self):
    return (1 if self.acts is None else
            tf.shape(next(iter(self.acts.values())))[0])

  def _log_prob(self, z):
    z = tf.convert_to_tensor(z, tf.float32)
    d = self.vae.latent_size
    lead = tf.shape(z)[:-1]
    flat = tf.reshape(z, [-1, d])
    n = tf.shape(flat)[0]
    run = self.vae.top_down(n, self._q_fn(n // self._rows()), z=flat)
    out = run.log_q if self.acts is not None else run.log_p
    return tf.reshape(out, lead)

  def _sample_n(self, n, seed=None):
    rows = self._rows()
    run = self.vae.top_down(n * rows, self._q_fn(n), seed=seed)
    shape = [n, self.vae.latent_size] if self.acts is None else [
        n, rows, self.vae.latent_size]
    return tf.reshape(run.z, shape)

  def stop_gradient(self) -> 'TopDownDistribution':
    """The same density with its trajectory and activations held constant."""
    sg = lambda t: tf.nest.map_structure(tf.stop_gradient, t,
                                         expand_composites=True)
    return TopDownDistribution(
        self.vae, acts=None if self.acts is None else sg(self.acts),
        batch_shape=self._static_batch, q_fn_maker=self._q_fn_maker,
        trajectory=None if self.trajectory is None else Trajectory(
            states=[tf.stop_gradient(s) for s in self.trajectory.states],
            layers=[sg(layer) for layer in self.trajectory.layers]))


def kl_along_trajectory(full: TopDownDistribution,
                        partial: TopDownDistribution) -> tf.Tensor:
  """sum_i KL(q_i(z_i | z_<i, x) || q_theta,i(z_i | z_<i, x_o)), ``[B]``.

  Along the full posterior's trajectory (its training pass, one draw of
  z_<i): each layer's KL is analytic, the sum over layers is the one-sample
  estimate of KL(q(z | x) || q_theta(z | x_o)) by the chain rule. The
  partial layers are evaluated at the trajectory's (stop-gradient) states.
  """
  if full.trajectory is None:
    raise NotImplementedError(
        'the KL between two top-down densities needs the full posterior of a '
        'training pass (HierarchicalVAE.training_terms().posterior)')
  if partial.acts is None:
    raise NotImplementedError('the second density must be a posterior')
  q_fn = partial._q_fn(1)  # pylint: disable=protected-access
  kls = [tfd.kl_divergence(q_i, q_fn(i, tf.stop_gradient(h)))
         for i, (h, q_i) in enumerate(zip(full.trajectory.states,
                                          full.trajectory.layers))]
  return tf.add_n(kls)


@tfd.RegisterKL(TopDownDistribution, TopDownDistribution)
def _kl_top_down(full, partial, name=None):
  del name
  return kl_along_trajectory(full, partial)


# ------------------------------------------------------------ partial posterior
@gin.configurable
class HierarchicalPartialEncoder(keras.Model):
  """q_theta(z | x_o) = prod_i q_theta(z_i | z_<i, x_o) for a HierarchicalVAE.

  A second bottom-up encoder over ``concat((2x - 1) * b, b)`` and one
  partial-posterior block per latent layer over
  ``concat(stop_gradient(h_{i-1}), a'_R(x_o))``, a Gaussian per position:
  diagonal (2 C_z outputs) or full covariance over the C_z channels
  (C_z + C_z (C_z + 1) / 2 outputs, a Cholesky factor with softplus
  diagonal). The VAE's top-down path and prior are shared, not owned: the
  VAE is held out of this model's variables, so ``objective='partial'``
  trains only theta.

  Args:
    vae: the ``HierarchicalVAE``.
    covariance: 'diag' or 'full'.
    encoder_blocks: the masked encoder's block string (default the VAE's).
  """

  def __init__(self, vae: HierarchicalVAE, covariance: str = 'diag',
               encoder_blocks: Optional[str] = None,
               name: str = 'partial_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    if not isinstance(vae, HierarchicalVAE):
      raise UserError('HierarchicalPartialEncoder is the partial posterior of '
                      f'a HierarchicalVAE, got a {type(vae).__name__}: use '
                      'PartialEncoder for other base VAEs')
    if covariance not in COVARIANCES:
      raise UserError(f'HierarchicalPartialEncoder.covariance must be one of '
                      f'{list(COVARIANCES)}, got {covariance!r}')
    self._vae = _Untracked(vae)
    self.covariance = covariance
    specs = (vae.encoder_specs if encoder_blocks is None else
             parse_blocks(encoder_blocks, 'encoder'))
    _check_structure(specs, vae.decoder_specs, vae.image_size)
    self.encoder = BottomUp(specs, vae.width, vae.middle, name='encoder')
    c = vae.latent_channels
    outputs = 2 * c if covariance == 'diag' else c + c * (c + 1) // 2
    self.blocks = [BottleneckBlock(vae.middle, outputs, False, s.res,
                                   name=f'partial_{i}')
                   for i, s in enumerate(vae.decoder_specs)]
    self._tril = tfb.FillScaleTriL(diag_shift=1e-5)

  @property
  def vae(self) -> HierarchicalVAE:
    return self._vae.value

  def layer_fn(self, acts):
    """q_fn: layer i's q_theta from the (stop-gradient) state and a'_R."""
    c = self.vae.latent_channels

    def q_fn(i, h):
      res = self.vae.blocks[i].res
      out = self.blocks[i](tf.concat([tf.stop_gradient(h), acts[res]], -1))
      loc, rest = tf.split(out, [c, -1], axis=-1)
      if self.covariance == 'diag':
        return diagonal(loc, tf.exp(rest))
      return full_covariance(loc, self._tril(rest))

    return q_fn

  def call(self, x, mask, training=False) -> TopDownDistribution:
    """q_theta(z | x_o) over the flat latent, batch [B]."""
    vae = self.vae
    mask = tf.broadcast_to(tf.cast(mask, x.dtype), tf.shape(x))
    acts = self.encoder(matching.observed_input(vae.scaled(x), mask),
                        training=training)
    return TopDownDistribution(vae, acts=acts, batch_shape=[x.shape[0]],
                               q_fn_maker=self.layer_fn)


class _Untracked:
  """Holds an object out of Keras' attribute tracking."""

  def __init__(self, value):
    self.value = value
