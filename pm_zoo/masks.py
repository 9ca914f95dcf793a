"""Mask distributions: which features a row observes, drawn with TF ops.

Convention (see DESIGN.md): a mask ``b`` is float32 with the same shape as the
data ``x``; ``b = 1`` marks an observed feature and ``b = 0`` an unobserved one.

Every distribution is a gin-configurable class whose instances are callables

  mask = dist(shape, seed)

* ``shape`` is a static python list ``[B, *feature_shape]``:
  ``[B, D]`` for tables, ``[B, H, W]`` or ``[B, H, W, C]`` for images.
* ``seed`` is an integer tensor of shape ``[2]`` (the ``tf.random.stateless_*``
  convention). The same ``(shape, seed)`` always gives the same mask.
* Rows are independent draws.
* For ``[B, H, W, C]`` the decision is made per pixel (an ``[B, H, W]`` mask)
  and broadcast over the channels; the returned mask has the full shape.

Sampling uses only stateless TF ops with static shapes (no NumPy, no
``tf.py_function``), so it runs inside ``tf.data`` pipelines, inside a
``tf.function`` train step and under XLA (``jit_compile=True``, TPUs). All
randomness comes from integer Philox draws, which XLA and TF's own kernels
compute identically, so a seed gives the same mask eagerly and jit-compiled
(tested on CPU; only RandomRectangleMask also uses log/exp, whose last-ulp
differences between backends could in rare cases move a rectangle edge).

The paper's MNIST training distribution is :func:`mnist_mixture_mask`.
:func:`make_eval_masks` draws a fixed NumPy set of test masks so that every
method is evaluated on identical masks.
"""
import functools
import math
import numbers
import operator

import gin
import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError

__all__ = [
    "MaskDistribution",
    "BernoulliMask",
    "UniformCountMask",
    "HalfImageMask",
    "SquareMask",
    "RandomRectangleMask",
    "MixtureMask",
    "FullyObservedMask",
    "mnist_mixture_mask",
    "make_eval_masks",
]

_HALF_SIDES = ("top", "bottom", "left", "right")
# Random numbers: Philox everywhere (explicit, so XLA and TF kernels agree),
# uniforms with 24 random bits (float32's mantissa).
_ALG = "philox"
_UNIFORM_LEVELS = 1 << 24


# ---------------------------------------------------------------------------
# Input checks.
# ---------------------------------------------------------------------------


def _check_shape(shape, who, image_only=False):
  """Returns ``shape`` as a list of python ints, or raises UserError."""
  if isinstance(shape, tf.TensorShape):
    if not shape.is_fully_defined():
      raise UserError(
          f"{who}: shape {shape} is not fully defined; pass a static python "
          "list [B, *feature_shape] of positive ints.")
    shape = shape.as_list()
  if isinstance(shape, (tf.Tensor, np.ndarray)) or not isinstance(
      shape, (list, tuple)):
    raise UserError(
        f"{who}: shape must be a static python list [B, *feature_shape], got "
        f"{type(shape).__name__}; use e.g. x.shape.as_list().")
  dims = []
  for d in shape:
    try:
      d = operator.index(d)
    except TypeError:
      raise UserError(
          f"{who}: shape {list(shape)} must hold python ints; a batch size of "
          "None is not allowed (static shapes only, use drop_remainder=True)."
      ) from None
    dims.append(d)
  if not 2 <= len(dims) <= 4:
    raise UserError(
        f"{who}: shape {dims} has rank {len(dims)}; expected [B, D], [B, H, W] "
        "or [B, H, W, C].")
  if any(d <= 0 for d in dims):
    raise UserError(f"{who}: shape {dims} has a non-positive dimension; all "
                    "dimensions must be >= 1.")
  if image_only and len(dims) == 2:
    raise UserError(
        f"{who} is an image mask but got the table shape {dims}; pass an image "
        "shape [B, H, W] or [B, H, W, C].")
  return dims


def _check_seed(seed, who):
  """Returns ``seed`` as an int32/int64 tensor of shape [2], or raises."""
  if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
    raise UserError(
        f"{who}: seed must be an int tensor of shape [2] (stateless RNG "
        f"convention), got the scalar {seed}; pass e.g. [0, {seed}].")
  try:
    seed = tf.convert_to_tensor(seed)
  except (TypeError, ValueError):
    raise UserError(f"{who}: seed must be an int tensor of shape [2], got "
                    f"{seed!r}.") from None
  if not seed.dtype.is_integer:
    raise UserError(f"{who}: seed must have an integer dtype, got "
                    f"{seed.dtype.name}; pass e.g. tf.constant([0, 1]).")
  if seed.shape.rank is not None and seed.shape.as_list() != [2]:
    raise UserError(f"{who}: seed must have shape [2], got "
                    f"{seed.shape.as_list()}.")
  if seed.dtype not in (tf.int32, tf.int64):
    seed = tf.cast(seed, tf.int64)
  return seed


def _check_fraction(value, name, who, low_open=False):
  """Returns ``value`` as a float in [0, 1] ((0, 1] if low_open), or raises."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise UserError(f"{who}: {name} must be a number, got {value!r}.")
  value = float(value)
  ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
  if not ok:
    interval = "(0, 1]" if low_open else "[0, 1]"
    raise UserError(f"{who}: {name}={value} is outside {interval}; pass a "
                    f"fraction in {interval}.")
  return value


def _check_count(value, name, who, allow_none=False):
  if value is None and allow_none:
    return None
  try:
    if isinstance(value, bool):
      raise TypeError
    value = operator.index(value)
  except TypeError:
    raise UserError(f"{who}: {name} must be an int, got {value!r}.") from None
  if value < 0:
    raise UserError(f"{who}: {name}={value} is negative; pass an int >= 0.")
  return value


def _fold(seed, i):
  """A new stateless seed derived from ``seed`` and the python int ``i``."""
  return tf.random.experimental.stateless_fold_in(seed, i, alg=_ALG)


def _uniform_bits(shape, seed):
  """Uniform int32 in [0, 2^24), Philox, bit-identical eagerly and under XLA."""
  return tf.random.stateless_uniform(shape, seed, minval=0,
                                     maxval=_UNIFORM_LEVELS, dtype=tf.int32,
                                     alg=_ALG)


def _uniform(shape, seed):
  """float32 ``u ~ U[0, 1)`` on the grid k / 2^24 (exact in float32).

  ``tf.random.stateless_uniform`` with a float dtype converts bits to floats
  differently under XLA than in TF's CPU kernels, so the same seed would give
  different masks in a jit-compiled step and in eager evaluation code. Integer
  draws with an explicit algorithm agree, so floats are made from those.
  """
  return tf.cast(_uniform_bits(shape, seed), tf.float32) * (
      1.0 / _UNIFORM_LEVELS)


def _finish(observed, shape):
  """Turns a per-unit bool array into a float32 mask of the full ``shape``.

  Args:
    observed: bool tensor [B, *unit_shape], True where a unit is observed;
      ``unit_shape`` is ``shape[1:]``, or ``shape[1:3]`` for rank-4 shapes.
    shape: list of ints, the requested mask shape.

  Returns:
    float32 tensor of shape ``shape`` (1 = observed, 0 = unobserved), for
    rank-4 shapes broadcast over the channel axis.
  """
  mask = tf.cast(observed, tf.float32)
  if len(shape) == 4:
    mask = tf.broadcast_to(mask[..., tf.newaxis], shape)
  return tf.ensure_shape(mask, shape)


# ---------------------------------------------------------------------------
# Distributions.
# ---------------------------------------------------------------------------


class MaskDistribution:
  """Base class: checks ``shape``/``seed`` and broadcasts over channels.

  Subclasses implement ``_sample(batch, unit_shape, seed)`` returning a bool
  tensor ``[batch, *unit_shape]`` that is True where a unit is OBSERVED.
  ``unit_shape`` is the feature shape (``[D]`` or ``[H, W]``), or ``[H, W]``
  for ``[B, H, W, C]`` inputs (one decision per pixel).
  """

  # True for distributions that only make sense on images.
  image_only = False

  def __call__(self, shape, seed):
    """Draws a mask.

    Args:
      shape: static python list ``[B, *feature_shape]``.
      seed: int tensor of shape [2].

    Returns:
      float32 tensor of shape ``shape``; 1 = observed, 0 = unobserved.
    """
    who = type(self).__name__
    shape = _check_shape(shape, who, image_only=self.image_only)
    seed = _check_seed(seed, who)
    unit_shape = shape[1:3] if len(shape) == 4 else shape[1:]
    with tf.name_scope(who):
      observed = self._sample(shape[0], unit_shape, seed)
      return _finish(observed, shape)

  def _sample(self, batch, unit_shape, seed):
    raise NotImplementedError

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
    return f"{type(self).__name__}({args})"

  def _repr_args(self):
    return {}


@gin.configurable
class FullyObservedMask(MaskDistribution):
  """Every feature observed: ``b = 1`` everywhere (e.g. plain VAE training)."""

  def _sample(self, batch, unit_shape, seed):
    del seed
    return tf.ones([batch] + unit_shape, tf.bool)


@gin.configurable
class BernoulliMask(MaskDistribution):
  """Each feature (each pixel for images) observed independently.

  ``b_ij ~ Bernoulli(p_observed)``, i.e. ``b_ij = [u_ij < p]`` with
  ``u_ij ~ U[0, 1)``. ``p_observed = 1`` observes everything, ``0`` nothing.
  The paper trains the UCI models and evaluates NRMSE with ``p = 0.5``.
  """

  def __init__(self, p_observed=0.5):
    self.p_observed = _check_fraction(p_observed, "p_observed",
                                      "BernoulliMask")

  def _sample(self, batch, unit_shape, seed):
    u = _uniform([batch] + unit_shape, seed)
    return u < self.p_observed

  def _repr_args(self):
    return {"p_observed": self.p_observed}


@gin.configurable
class UniformCountMask(MaskDistribution):
  """A uniformly random number of observed features, then a random subset.

  Per row: ``k ~ Uniform{min_observed, ..., max_observed}`` and the observed set
  is a uniformly random subset of size exactly ``k`` of the ``D`` features
  (pixels for images: ``D = H * W``). The subset is the ``k`` smallest entries
  of i.i.d. uniform noise ``u`` [B, D]: ``b_j = [rank(u_j) < k]``, with the
  rank from a double argsort, so the count is exact. Sort keys are
  ``bits_j * D + j`` (int64): distinct, so ties between equal noise values are
  broken the same way by every sort implementation.

  Used to train for active acquisition, where masks with few observed
  features must be common.
  """

  def __init__(self, min_observed=0, max_observed=None):
    who = "UniformCountMask"
    self.min_observed = _check_count(min_observed, "min_observed", who)
    self.max_observed = _check_count(max_observed, "max_observed", who,
                                     allow_none=True)
    if (self.max_observed is not None and
        self.max_observed < self.min_observed):
      raise UserError(f"{who}: max_observed={self.max_observed} < "
                      f"min_observed={self.min_observed}; swap or fix them.")

  def _sample(self, batch, unit_shape, seed):
    num_features = math.prod(unit_shape)
    high = num_features if self.max_observed is None else self.max_observed
    if high > num_features or self.min_observed > num_features:
      raise UserError(
          f"UniformCountMask: asks for up to {max(high, self.min_observed)} "
          f"observed features but the shape has only {num_features}; lower "
          "min_observed/max_observed.")
    count_seed, subset_seed = _fold(seed, 0), _fold(seed, 1)
    # k in [min, high] inclusive; int stateless_uniform excludes maxval.
    k = tf.random.stateless_uniform([batch, 1], count_seed,
                                    minval=self.min_observed,
                                    maxval=high + 1, dtype=tf.int32, alg=_ALG)
    bits = tf.cast(_uniform_bits([batch, num_features], subset_seed),
                   tf.int64)
    keys = bits * num_features + tf.range(num_features, dtype=tf.int64)
    rank = tf.argsort(tf.argsort(keys, axis=-1), axis=-1)
    observed = rank < k
    return tf.reshape(observed, [batch] + unit_shape)

  def _repr_args(self):
    return {"min_observed": self.min_observed,
            "max_observed": self.max_observed}


def _image_hw(unit_shape):
  return unit_shape[0], unit_shape[1]


@gin.configurable
class HalfImageMask(MaskDistribution):
  """One half of the image is UNOBSERVED, the other half observed.

  ``side`` names the missing half: ``top`` hides rows ``[0, H//2)``,
  ``bottom`` rows ``[H - H//2, H)``, ``left`` columns ``[0, W//2)`` and
  ``right`` columns ``[W - W//2, W)``. For odd sizes the middle row/column
  stays observed. Deterministic: the seed is accepted and ignored.
  """

  image_only = True

  def __init__(self, side="top"):
    if side not in _HALF_SIDES:
      raise UserError(f"HalfImageMask: side={side!r} is unknown; use one of "
                      f"{', '.join(_HALF_SIDES)}.")
    self.side = side

  def _sample(self, batch, unit_shape, seed):
    del seed
    height, width = _image_hw(unit_shape)
    rows = tf.range(height)[:, tf.newaxis]  # [H, 1]
    cols = tf.range(width)[tf.newaxis, :]  # [1, W]
    if self.side == "top":
      hidden = rows < height // 2
    elif self.side == "bottom":
      hidden = rows >= height - height // 2
    elif self.side == "left":
      hidden = cols < width // 2
    else:
      hidden = cols >= width - width // 2
    hidden = tf.broadcast_to(hidden, [batch, height, width])
    return tf.logical_not(hidden)

  def _repr_args(self):
    return {"side": self.side}


def _box(top, left, box_h, box_w, height, width):
  """Bool [B, H, W], True inside the per-row boxes.

  Args:
    top, left, box_h, box_w: int32 [B] corner and size of each row's box.
    height, width: python ints, image size.
  """
  rows = tf.range(height)[tf.newaxis, :]  # [1, H]
  cols = tf.range(width)[tf.newaxis, :]  # [1, W]
  in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])  # [B, H]
  in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])
  return in_rows[:, :, tf.newaxis] & in_cols[:, tf.newaxis, :]


def _uniform_offset(u, span):
  """Uniform int in {0, ..., span} per row from ``u ~ U[0, 1)``.

  Args:
    u: float32 [B] uniform noise.
    span: int32 [B] (or python int) >= 0, the largest allowed offset.
  """
  span = tf.cast(span, tf.float32)
  offset = tf.floor(u * (span + 1.0))
  return tf.cast(tf.minimum(offset, span), tf.int32)


@gin.configurable
class SquareMask(MaskDistribution):
  """A ``size x size`` square at a uniformly random position is UNOBSERVED.

  The top-left corner is uniform over the ``(H - size + 1) * (W - size + 1)``
  positions where the square fits. ``size`` defaults to ``min(H, W) // 2``
  (14 on 28x28 MNIST, as in the paper).
  """

  image_only = True

  def __init__(self, size=None):
    self.size = _check_count(size, "size", "SquareMask", allow_none=True)
    if self.size == 0:
      raise UserError("SquareMask: size=0 hides nothing; pass size >= 1 or "
                      "None for min(H, W) // 2.")

  def _sample(self, batch, unit_shape, seed):
    height, width = _image_hw(unit_shape)
    size = max(1, min(height, width) // 2) if self.size is None else self.size
    if size > min(height, width):
      raise UserError(f"SquareMask: size={size} does not fit a {height}x"
                      f"{width} image; pass size <= {min(height, width)}.")
    u = _uniform([batch, 2], seed)
    top = _uniform_offset(u[:, 0], height - size)
    left = _uniform_offset(u[:, 1], width - size)
    side = tf.fill([batch], size)
    return tf.logical_not(_box(top, left, side, side, height, width))

  def _repr_args(self):
    return {"size": self.size}


@gin.configurable
class RandomRectangleMask(MaskDistribution):
  """A random axis-aligned rectangle covering ``[min_area, max_area]`` of the
  image is UNOBSERVED.

  Per row, with ``A = H * W`` pixels:

  1. area fraction ``a ~ U[min_area, max_area]``;
  2. height fraction ``f_h`` log-uniform on ``[a, 1]`` and width fraction
     ``f_w = a / f_h``, which is then also log-uniform on ``[a, 1]``: the
     aspect ratio is symmetric in height and width, and both fractions are
     <= 1, so the rectangle always fits;
  3. whole pixels: ``h = round(f_h * H)`` clipped to
     ``[ceil(min_area * H), min(H, floor(max_area * A))]`` (so a width <= W can
     reach ``min_area`` and a width >= 1 stays under ``max_area``), then
     ``w = round(a * A / h)`` clipped to
     ``[max(1, ceil(min_area * A / h)), min(W, floor(max_area * A / h))]``;
  4. the top-left corner is uniform over the positions where it fits.

  Hence ``h * w / A`` lies in ``[min_area, max_area]`` exactly whenever that
  range contains a whole-pixel area for the chosen ``h`` (always true with the
  default ``max_area = 1``); for very narrow ranges the area never exceeds
  ``max_area`` and is the closest whole-pixel area below it.
  """

  image_only = True

  def __init__(self, min_area=0.3, max_area=1.0):
    who = "RandomRectangleMask"
    self.min_area = _check_fraction(min_area, "min_area", who, low_open=True)
    self.max_area = _check_fraction(max_area, "max_area", who, low_open=True)
    if self.min_area > self.max_area:
      raise UserError(f"{who}: min_area={self.min_area} > max_area="
                      f"{self.max_area}; pass min_area <= max_area.")

  def _sample(self, batch, unit_shape, seed):
    height, width = _image_hw(unit_shape)
    total = float(height * width)
    min_pixels = self.min_area * total
    max_pixels = self.max_area * total
    u = _uniform([batch, 4], seed)
    area = self.min_area + (self.max_area - self.min_area) * u[:, 0]  # [B]
    log_frac_h = u[:, 1] * tf.math.log(area)  # log-uniform on [area, 1].
    frac_h = tf.exp(log_frac_h)

    # Small epsilons guard ceil/floor against float round-off at integers.
    h_low = max(1, math.ceil(self.min_area * height - 1e-6))
    h_high = max(1, min(height, math.floor(max_pixels + 1e-6)))
    h_low = min(h_low, h_high)
    box_h = tf.clip_by_value(
        tf.round(frac_h * height), float(h_low), float(h_high))
    w_low = tf.maximum(1.0, tf.math.ceil(min_pixels / box_h - 1e-6))
    w_high = tf.minimum(float(width), tf.floor(max_pixels / box_h + 1e-6))
    box_w = tf.minimum(tf.maximum(tf.round(area * total / box_h), w_low),
                       w_high)
    box_h = tf.cast(box_h, tf.int32)
    box_w = tf.cast(box_w, tf.int32)
    top = _uniform_offset(u[:, 2], height - box_h)
    left = _uniform_offset(u[:, 3], width - box_w)
    return tf.logical_not(_box(top, left, box_h, box_w, height, width))

  def _repr_args(self):
    return {"min_area": self.min_area, "max_area": self.max_area}


@gin.configurable
class MixtureMask(MaskDistribution):
  """Per row, one component chosen with probability ``weights[k] / sum``.

  All components are drawn for the whole batch (each with its own seed folded
  from ``seed``) and each row keeps the one picked for it:
  ``b = sum_k onehot(c)_k * b^(k)``. The choice is an inverse-CDF draw,
  ``c = #{k < K-1 : u >= P_k}`` with ``u ~ U[0, 1)`` and ``P_k`` the cumulative
  probabilities (a component of weight 0 is never picked), which, unlike
  ``tf.random.stateless_categorical``, gives the same result under XLA.
  This costs K draws but keeps static shapes and no data-dependent control
  flow (XLA friendly).

  Components are any callables ``(shape, seed) -> mask``, so mixtures nest.
  """

  def __init__(self, components, weights=None):
    who = "MixtureMask"
    components = list(components)
    if not components:
      raise UserError(f"{who}: components is empty; pass at least one mask "
                      "distribution.")
    for c in components:
      if not callable(c):
        raise UserError(f"{who}: component {c!r} is not callable; pass mask "
                        "distribution instances such as BernoulliMask().")
    if weights is None:
      weights = [1.0] * len(components)
    weights = list(weights)
    if len(weights) != len(components):
      raise UserError(f"{who}: {len(weights)} weights for {len(components)} "
                      "components; pass one weight per component.")
    for w in weights:
      if (isinstance(w, bool) or not isinstance(w, numbers.Real) or
          not math.isfinite(w) or w < 0):
        raise UserError(f"{who}: weights {weights} must be finite numbers "
                        ">= 0.")
    if sum(weights) <= 0:
      raise UserError(f"{who}: weights {weights} sum to 0; give at least one "
                      "component a positive weight.")
    self.components = components
    self.weights = [float(w) for w in weights]
    total = sum(self.weights)
    self.probs = [w / total for w in self.weights]
    # Threshold k closes component k; past the last positive weight no
    # threshold can be reached, so round-off never picks a weight-0 tail.
    self._thresholds = []
    for k in range(len(self.weights) - 1):
      tail = sum(self.weights[k + 1:])
      self._thresholds.append(
          sum(self.weights[:k + 1]) / total if tail > 0 else 2.0)

  def __call__(self, shape, seed):
    who = type(self).__name__
    shape = _check_shape(shape, who)
    seed = _check_seed(seed, who)
    batch = shape[0]
    with tf.name_scope(who):
      u = _uniform([batch, 1], _fold(seed, 0))
      thresholds = tf.constant([self._thresholds], tf.float32)  # [1, K-1]
      choice = tf.reduce_sum(tf.cast(u >= thresholds, tf.int32), axis=1)
      onehot = tf.one_hot(choice, len(self.components), dtype=tf.float32)
      mask = tf.zeros(shape, tf.float32)
      for k, component in enumerate(self.components):
        b_k = tf.ensure_shape(
            tf.cast(component(shape, _fold(seed, k + 1)), tf.float32), shape)
        pick = tf.reshape(onehot[:, k], [batch] + [1] * (len(shape) - 1))
        mask += pick * b_k
      return mask

  def _repr_args(self):
    return {"components": self.components, "weights": self.weights}


@gin.configurable
def mnist_mixture_mask():
  """The paper's MNIST training mask distribution.

  A per-row mixture with weights (2, 1, 1, 1, 1, 2, 2) (probabilities
  0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2) over, in this order:
  pixel ``BernoulliMask(0.5)``; the four ``HalfImageMask`` sides top, bottom,
  left, right (that half unobserved); ``SquareMask()`` (an unobserved random
  ``H//2 x H//2`` square, 14x14 on MNIST); ``RandomRectangleMask(0.3, 1.0)``.

  Returns:
    a :class:`MixtureMask`.
  """
  components = [BernoulliMask(0.5)]
  components += [HalfImageMask(side) for side in _HALF_SIDES]
  components += [SquareMask(), RandomRectangleMask(0.3, 1.0)]
  return MixtureMask(components, [2, 1, 1, 1, 1, 2, 2])


@functools.lru_cache(maxsize=32)
def _compiled_draw(mask_dist, shape):
  """One compiled sampler per (distribution, shape), reused across calls."""
  return tf.function(lambda s: mask_dist(list(shape), s), autograph=False)


def make_eval_masks(mask_dist, feature_shape, num_rows, seed, batch_size=1024):
  """Draws a fixed set of test masks, so every method sees the same masks.

  Batch ``i`` is ``mask_dist([batch_size, *feature_shape], fold_in(s, i))``
  with ``s = [0, seed]``; the last batch is cut to ``num_rows``. The result
  depends only on (mask_dist, feature_shape, seed, batch_size) and the row
  index, so a larger ``num_rows`` extends a smaller one.

  Args:
    mask_dist: a mask distribution (callable ``(shape, seed) -> mask``).
    feature_shape: python list/tuple, the shape of one row (e.g. ``[D]`` or
      ``[28, 28, 1]``).
    num_rows: int >= 1, how many masks.
    seed: python int, or an int pair ``[s0, s1]``.
    batch_size: int >= 1, rows drawn per TF call.

  Returns:
    np.ndarray float32 of shape ``[num_rows, *feature_shape]``, values 0/1.
  """
  who = "make_eval_masks"
  if not callable(mask_dist):
    raise UserError(f"{who}: mask_dist {mask_dist!r} is not callable; pass a "
                    "mask distribution such as BernoulliMask().")
  if isinstance(feature_shape, (numbers.Integral,)):
    feature_shape = [feature_shape]
  feature_shape = _check_shape([1] + list(feature_shape), who)[1:]
  num_rows = _check_count(num_rows, "num_rows", who)
  batch_size = _check_count(batch_size, "batch_size", who)
  if num_rows < 1 or batch_size < 1:
    raise UserError(f"{who}: num_rows={num_rows} and batch_size={batch_size} "
                    "must both be >= 1.")
  if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
    base = tf.constant([0, int(seed)], tf.int64)
  else:
    base = _check_seed(seed, who)
  draw = _compiled_draw(mask_dist, tuple([batch_size] + feature_shape))
  chunks = []
  for i in range(-(-num_rows // batch_size)):
    chunks.append(draw(_fold(base, i)).numpy())
  masks = np.concatenate(chunks, axis=0)[:num_rows]
  return masks.astype(np.float32, copy=False)
