"""Tests for pm_zoo.masks: shapes, values, statistics, seeding, XLA."""
import gin
import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import masks
from pm_zoo.errors import UserError

SEED = tf.constant([11, 22], tf.int32)
OTHER_SEED = tf.constant([11, 23], tf.int32)

# (name, factory, works on tables, random)
DISTS = [
    ("bernoulli", lambda: masks.BernoulliMask(0.5), True, True),
    ("uniform_count", lambda: masks.UniformCountMask(), True, True),
    ("half_top", lambda: masks.HalfImageMask("top"), False, False),
    ("square", lambda: masks.SquareMask(), False, True),
    ("rectangle", lambda: masks.RandomRectangleMask(), False, True),
    ("mnist_mixture", masks.mnist_mixture_mask, False, True),
    ("fully_observed", masks.FullyObservedMask, True, False),
]
DIST_IDS = [d[0] for d in DISTS]


def _draw(dist, shape, seed=SEED):
  return dist(shape, seed).numpy()


def _is_binary(m):
  return bool(np.all((m == 0) | (m == 1)))


def _hidden_boxes(unobserved):
  """Per row: (is_rectangle, top, left, height, width) of the hidden set.

  Args:
    unobserved: bool [N, H, W].
  """
  rows_any = unobserved.any(axis=2)
  cols_any = unobserved.any(axis=1)
  heights = rows_any.sum(axis=1)
  widths = cols_any.sum(axis=1)
  count = unobserved.sum(axis=(1, 2))
  # A non-empty hidden set is an axis-aligned rectangle iff it fills its
  # bounding box (rows/cols with hidden pixels must then be contiguous too).
  top = rows_any.argmax(axis=1)
  left = cols_any.argmax(axis=1)
  contiguous_rows = (np.diff(rows_any.astype(int), axis=1) != 0).sum(1) <= 2
  contiguous_cols = (np.diff(cols_any.astype(int), axis=1) != 0).sum(1) <= 2
  is_rect = ((count > 0) & (heights * widths == count) & contiguous_rows &
             contiguous_cols)
  return is_rect, top, left, heights, widths


@pytest.mark.parametrize("name,factory,tabular,random", DISTS, ids=DIST_IDS)
def test_shape_dtype_binary_and_seeding(name, factory, tabular, random):
  dist = factory()
  shape = [32, 10] if tabular else [32, 12, 10, 1]
  m = dist(shape, SEED)
  assert m.dtype == tf.float32
  assert m.shape.as_list() == shape
  m = m.numpy()
  assert _is_binary(m)
  np.testing.assert_array_equal(m, _draw(dist, shape, SEED))
  other = _draw(dist, shape, OTHER_SEED)
  if random:
    assert not np.array_equal(m, other), name
    # Rows are independent draws, not copies of one row.
    assert len({r.tobytes() for r in m}) > 1, name
  else:
    np.testing.assert_array_equal(m, other)


@pytest.mark.parametrize("name,factory,tabular,random", DISTS, ids=DIST_IDS)
def test_channel_broadcast(name, factory, tabular, random):
  del tabular, random
  dist = factory()
  rgb = _draw(dist, [16, 8, 6, 3])
  assert rgb.shape == (16, 8, 6, 3)
  # One decision per pixel, copied to every channel...
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
  # ...and the same decision as for a one-channel or channel-less image.
  np.testing.assert_array_equal(rgb[..., :1], _draw(dist, [16, 8, 6, 1]))
  np.testing.assert_array_equal(rgb[..., 0], _draw(dist, [16, 8, 6]))


@pytest.mark.parametrize("name,factory,tabular,random", DISTS, ids=DIST_IDS)
def test_jit_compiles_and_matches_eager(name, factory, tabular, random):
  del tabular, random
  dist = factory()
  shape = [8, 8, 8, 3]
  compiled = tf.function(lambda s: dist(shape, s), jit_compile=True,
                         autograph=False)
  out = compiled(SEED)
  assert out.shape.as_list() == shape
  # Integer Philox draws are bit-identical under XLA and TF's kernels.
  np.testing.assert_array_equal(out.numpy(), _draw(dist, shape), name)


def test_works_inside_tf_data_with_int64_seed():
  dist = masks.BernoulliMask(0.5)
  ds = tf.data.Dataset.range(3).map(
      lambda i: dist([4, 5], tf.stack([tf.constant(0, tf.int64), i])))
  batches = [b.numpy() for b in ds]
  assert all(b.shape == (4, 5) and _is_binary(b) for b in batches)
  assert not np.array_equal(batches[0], batches[1])


def test_bernoulli_mean_close_to_p():
  for p in (0.2, 0.5, 0.9):
    m = _draw(masks.BernoulliMask(p), [1000, 100])
    assert abs(m.mean() - p) < 0.01, p
  assert _draw(masks.BernoulliMask(0.0), [50, 20]).sum() == 0
  assert _draw(masks.BernoulliMask(1.0), [50, 20]).min() == 1


def test_uniform_count_range_and_uniformity():
  dist = masks.UniformCountMask(min_observed=2, max_observed=6)
  m = _draw(dist, [6000, 10])
  counts = m.sum(axis=1).astype(int)
  assert counts.min() == 2 and counts.max() == 6
  freq = np.bincount(counts, minlength=7)[2:] / len(counts)
  np.testing.assert_allclose(freq, 0.2, atol=0.03)
  # The subset is uniform: every feature observed with prob E[k] / D = 0.4.
  np.testing.assert_allclose(m.mean(axis=0), 0.4, atol=0.03)


def test_uniform_count_default_covers_zero_to_all_pixels():
  m = _draw(masks.UniformCountMask(), [3000, 2, 2, 3])
  counts = m[..., 0].sum(axis=(1, 2)).astype(int)  # counts pixels, not values
  freq = np.bincount(counts, minlength=5) / len(counts)
  assert freq.shape == (5,)
  np.testing.assert_allclose(freq, 0.2, atol=0.03)


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
@pytest.mark.parametrize("height,width", [(6, 8), (7, 5)])
def test_half_image(side, height, width):
  m = _draw(masks.HalfImageMask(side), [3, height, width, 1])[..., 0]
  expected = np.ones((height, width), np.float32)
  if side == "top":
    expected[:height // 2] = 0
  elif side == "bottom":
    expected[height - height // 2:] = 0
  elif side == "left":
    expected[:, :width // 2] = 0
  else:
    expected[:, width - width // 2:] = 0
  for row in m:
    np.testing.assert_array_equal(row, expected)
  if height % 2 == 0 and side in ("top", "bottom"):
    assert m.mean() == 0.5


def test_square_default_is_14x14_on_mnist_and_position_uniform():
  m = _draw(masks.SquareMask(), [600, 28, 28, 1])[..., 0]
  unobserved = m == 0
  assert np.all(unobserved.sum(axis=(1, 2)) == 14 * 14)
  is_rect, top, left, heights, widths = _hidden_boxes(unobserved)
  assert is_rect.all()
  assert np.all(heights == 14) and np.all(widths == 14)
  # Corners range over all 15 positions, extremes included.
  assert top.min() == 0 and top.max() == 14
  assert left.min() == 0 and left.max() == 14
  assert abs(top.mean() - 7.0) < 0.7


def test_square_custom_size_non_square_image():
  m = _draw(masks.SquareMask(size=5), [100, 12, 9])
  is_rect, _, _, heights, widths = _hidden_boxes(m == 0)
  assert is_rect.all() and np.all(heights == 5) and np.all(widths == 5)


@pytest.mark.parametrize("min_area,max_area", [(0.3, 1.0), (0.1, 0.2)])
def test_rectangle_area_within_bounds(min_area, max_area):
  dist = masks.RandomRectangleMask(min_area, max_area)
  m = _draw(dist, [3000, 28, 28])
  unobserved = m == 0
  is_rect, _, _, heights, widths = _hidden_boxes(unobserved)
  assert is_rect.all()
  area = unobserved.mean(axis=(1, 2))
  assert area.min() >= min_area and area.max() <= max_area
  # Area fraction is uniform on the interval (up to whole pixels)...
  assert abs(area.mean() - (min_area + max_area) / 2) < 0.02
  assert area.max() - area.min() > 0.8 * (max_area - min_area)
  # ...and the aspect is symmetric in height and width.
  assert abs(heights.mean() - widths.mean()) < 0.5
  assert heights.std() > 1 and widths.std() > 1


def test_mnist_mixture_frequencies_follow_weights():
  n, size = 5000, 28
  m = _draw(masks.mnist_mixture_mask(), [n, size, size, 1])[..., 0]
  unobserved = m == 0
  is_rect, _, _, heights, widths = _hidden_boxes(unobserved)
  halves = [_draw(masks.HalfImageMask(s), [1, size, size])[0] == 0
            for s in ("top", "bottom", "left", "right")]
  labels = np.full(n, -1)
  labels[~is_rect] = 0  # Bernoulli(0.5): scattered pixels.
  for k, half in enumerate(halves):
    labels[np.all(unobserved == half, axis=(1, 2))] = 1 + k
  rest = is_rect & (labels == -1)
  labels[rest & (heights == 14) & (widths == 14)] = 5  # The 14x14 square.
  labels[rest & (heights * widths >= 0.3 * size * size)] = 6  # Rectangle.
  assert np.all(labels >= 0)
  freq = np.bincount(labels, minlength=7) / n
  expected = np.array([2, 1, 1, 1, 1, 2, 2]) / 10
  # A random rectangle can equal a half image (rarely): small tolerance.
  np.testing.assert_allclose(freq, expected, atol=0.025)


def test_mixture_weights_zero_never_picked_and_nested():
  top, left = masks.HalfImageMask("top"), masks.HalfImageMask("left")
  inner = masks.MixtureMask([masks.FullyObservedMask(), top], [1, 1])
  dist = masks.MixtureMask([inner, left, masks.HalfImageMask("right")],
                           [2, 2, 0])
  m = _draw(dist, [4000, 4, 4])
  full = np.all(m == 1, axis=(1, 2))
  is_top = np.all(m == _draw(top, [1, 4, 4]), axis=(1, 2))
  is_left = np.all(m == _draw(left, [1, 4, 4]), axis=(1, 2))
  assert np.all(full | is_top | is_left)  # never the weight-0 right half
  np.testing.assert_allclose(
      [full.mean(), is_top.mean(), is_left.mean()], [0.25, 0.25, 0.5],
      atol=0.03)


def test_make_eval_masks_fixed_and_extendable():
  dist = masks.BernoulliMask(0.5)
  a = masks.make_eval_masks(dist, [7], 50, seed=3, batch_size=16)
  assert isinstance(a, np.ndarray) and a.dtype == np.float32
  assert a.shape == (50, 7) and _is_binary(a)
  np.testing.assert_array_equal(
      a, masks.make_eval_masks(dist, [7], 50, seed=3, batch_size=16))
  # Batches use different seeds: no repeated block.
  assert not np.array_equal(a[:16], a[16:32])
  longer = masks.make_eval_masks(dist, [7], 70, seed=3, batch_size=16)
  np.testing.assert_array_equal(longer[:50], a)
  assert not np.array_equal(
      a, masks.make_eval_masks(dist, [7], 50, seed=4, batch_size=16))
  img = masks.make_eval_masks(masks.SquareMask(), (8, 8, 3), 5, seed=0)
  assert img.shape == (5, 8, 8, 3)
  assert np.all((img == 0).sum(axis=(1, 2, 3)) == 16 * 3)


def test_gin_binds_constructor_arguments():
  try:
    gin.parse_config("""
        BernoulliMask.p_observed = 0.25
        SquareMask.size = 3
    """)
    assert masks.BernoulliMask().p_observed == 0.25
    m = _draw(masks.SquareMask(), [4, 8, 8])
    assert np.all((m == 0).sum(axis=(1, 2)) == 9)
  finally:
    gin.clear_config()


@pytest.mark.parametrize("make", [
    lambda: masks.BernoulliMask(1.5),
    lambda: masks.BernoulliMask(-0.1),
    lambda: masks.BernoulliMask("half"),
    lambda: masks.UniformCountMask(min_observed=-1),
    lambda: masks.UniformCountMask(min_observed=5, max_observed=2),
    lambda: masks.HalfImageMask("middle"),
    lambda: masks.SquareMask(size=0),
    lambda: masks.RandomRectangleMask(0.0, 1.0),
    lambda: masks.RandomRectangleMask(0.8, 0.5),
    lambda: masks.MixtureMask([]),
    lambda: masks.MixtureMask([masks.BernoulliMask()], [1, 2]),
    lambda: masks.MixtureMask([masks.BernoulliMask()], [-1]),
    lambda: masks.MixtureMask([masks.BernoulliMask()], [0]),
])
def test_bad_arguments_raise_user_error(make):
  with pytest.raises(UserError):
    make()


@pytest.mark.parametrize("dist,shape,seed", [
    (masks.BernoulliMask(), [8], SEED),  # rank 1
    (masks.BernoulliMask(), [2, 3, 4, 5, 6], SEED),  # rank 5
    (masks.BernoulliMask(), [None, 4], SEED),  # dynamic batch
    (masks.BernoulliMask(), [0, 4], SEED),  # empty batch
    (masks.BernoulliMask(), tf.constant([2, 4]), SEED),  # not static
    (masks.BernoulliMask(), [2, 4], 7),  # scalar seed
    (masks.BernoulliMask(), [2, 4], [1, 2, 3]),  # seed shape
    (masks.BernoulliMask(), [2, 4], tf.constant([0.5, 1.0])),  # float seed
    (masks.HalfImageMask("top"), [2, 16], SEED),  # image mask on a table
    (masks.SquareMask(size=9), [2, 8, 8, 1], SEED),  # does not fit
    (masks.UniformCountMask(0, 20), [2, 10], SEED),  # more than D
    (masks.mnist_mixture_mask(), [2, 16], SEED),
])
def test_bad_calls_raise_user_error(dist, shape, seed):
  with pytest.raises(UserError) as err:
    dist(shape, seed)
  assert "\n" not in str(err.value)


def test_make_eval_masks_bad_arguments():
  with pytest.raises(UserError):
    masks.make_eval_masks(masks.BernoulliMask(), [4], 0, seed=0)
  with pytest.raises(UserError):
    masks.make_eval_masks("bernoulli", [4], 10, seed=0)
