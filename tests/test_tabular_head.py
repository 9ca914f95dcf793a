"""Mixed-type rows: one-hot encoder inputs and the MixedTable likelihood."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import tabular
from pm_zoo.errors import UserError

CARDS = (0, 3, 0, 2)  # numeric, 3 categories, numeric, binary


def test_expand_and_observed_input_one_hot_blocks_one_bit_per_column():
  x = tf.constant([[0.5, 2.0, -1.0, 1.0], [1.5, 0.0, 3.0, 0.0]])
  mask = tf.constant([[1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0]])
  np.testing.assert_array_equal(
      tabular.expand(x, CARDS).numpy(),
      [[0.5, 0, 0, 1, -1.0, 0, 1], [1.5, 1, 0, 0, 3.0, 1, 0]])
  inp = tabular.observed_input(x, mask, CARDS).numpy()
  assert inp.shape == (2, tabular.expanded_width(CARDS) + 4)
  np.testing.assert_array_equal(inp[0], [0.5, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1])
  np.testing.assert_array_equal(inp[1], [1.5, 0, 0, 0, 3.0, 1, 0, 1, 0, 1, 1])
  # An all-numeric table: exactly concat(x * b, b).
  numeric = tabular.observed_input(x, mask, (0, 0, 0, 0)).numpy()
  np.testing.assert_array_equal(numeric,
                                tf.concat([x * mask, mask], -1).numpy())


def test_mixed_table_log_prob_matches_the_closed_form():
  head = tabular.MixedTable([4], cardinalities=CARDS, init_scale=0.7)
  assert head.params_shape == (7,)
  rng = np.random.default_rng(0)
  params = tf.constant(rng.normal(size=(5, 7)), tf.float32)
  x = tf.constant([[0.3, 2, -0.2, 1]] * 5, tf.float32)
  dist = head.distribution(params)
  per = heads.elementwise_log_prob(dist, x).numpy()
  p = params.numpy()
  normal = tfp.distributions.Normal(p[:, [0, 4]], 0.7)
  expected = np.stack([
      normal.log_prob([0.3, -0.2]).numpy()[:, 0],
      tf.nn.log_softmax(p[:, 1:4]).numpy()[:, 2],
      normal.log_prob([0.3, -0.2]).numpy()[:, 1],
      tf.nn.log_softmax(p[:, 5:7]).numpy()[:, 1]], axis=1)
  np.testing.assert_allclose(per, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dist.log_prob(x).numpy(), expected.sum(1),
                             rtol=1e-5)
  mean = dist.mean().numpy()
  np.testing.assert_allclose(mean[:, [0, 2]], p[:, [0, 4]], rtol=1e-6)
  np.testing.assert_array_equal(mean[:, 1], p[:, 1:4].argmax(1))
  np.testing.assert_array_equal(mean[:, 3], p[:, 5:7].argmax(1))
  # Extra batch axes ([S, B, ...]) as the imputation code decodes them.
  dist = head.distribution(tf.reshape(tf.tile(params, [2, 1]), [2, 5, 7]))
  assert dist.mean().shape == (2, 5, 4)
  assert dist.log_prob(tf.zeros([2, 5, 4])).shape == (2, 5)
  draw = dist.sample(tf.constant([1, 2], tf.int32)).numpy()
  assert draw.shape == (2, 5, 4)
  assert set(np.unique(draw[..., 1])) <= {0, 1, 2}


def test_mixed_table_refuses_bad_layouts():
  with pytest.raises(UserError, match='2 cardinalities for 3 columns'):
    tabular.MixedTable([3], cardinalities=(0, 2))
  with pytest.raises(UserError, match='cardinality -1'):
    tabular.slot_layout((0, -1))


def test_categorical_point_imputation_is_the_posterior_predictive_mode():
  """Three draws of z: two lean to category 1 (p = 0.6), one is sure of 0
  (p = 0.99). The vote of the per-draw codes says 1; the posterior
  predictive mean(p) = (0.597, 0.403) says 0, and that is what is imputed;
  an observed cell keeps its value."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import imputation
  head = tabular.MixedTable([2], cardinalities=(0, 2), init_scale=1.0)
  logits = np.log([[0.4, 0.6], [0.4, 0.6], [0.99, 0.01]])
  params = np.concatenate([np.zeros((3, 1)), logits], axis=1)
  dist = head.distribution(tf.constant(params[:, None, :], tf.float32))
  per_draw = dist.mean().numpy()[:, 0, 1]                   # [S]
  assert np.bincount(per_draw.astype(int)).argmax() == 1
  codes = imputation.predictive_codes(dist, sample_axis=0)
  assert [j for j, _ in codes] == [1]
  np.testing.assert_array_equal(codes[0][1].numpy(), [0])
  point = tf.constant([[0.5, 1.0], [0.5, 1.0]])
  x = tf.constant([[0.0, 1.0], [0.0, 1.0]])
  mask = tf.constant([[1.0, 0.0], [1.0, 1.0]])
  both = [(1, tf.constant([0, 0], tf.int64))]
  np.testing.assert_array_equal(
      imputation.with_predictive_codes(point, x, mask, both).numpy(),
      [[0.5, 0.0], [0.5, 1.0]])
  # Decoders without categorical columns are left alone.
  assert imputation.predictive_codes(
      tfp.distributions.Normal(tf.zeros([3, 2]), 1.0), sample_axis=0) == []
