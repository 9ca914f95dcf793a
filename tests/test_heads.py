"""Distribution heads: shapes, parameter counts and closed-form densities."""
import numpy as np
import pytest
import tensorflow as tf

from pm_zoo.distributions import heads
from pm_zoo.errors import UserError


def test_diagonal_gaussian_matches_closed_form():
  head = heads.DiagonalGaussian([3])
  assert head.params_shape == (6,)
  params = tf.constant([[0.5, -1.0, 2.0, 0.1, 0.2, 0.3]])
  dist = head.distribution(params)
  scale = np.log1p(np.exp([0.1, 0.2, 0.3])) + head.min_scale
  x = np.array([[0.0, 0.0, 0.0]])
  expected = np.sum(-0.5 * ((x - [0.5, -1.0, 2.0]) / scale) ** 2
                    - np.log(scale) - 0.5 * np.log(2 * np.pi))
  np.testing.assert_allclose(dist.log_prob(x).numpy(), [expected], rtol=1e-5)


def test_full_covariance_gaussian_is_valid_and_correlated():
  d = 4
  head = heads.FullCovarianceGaussian([d])
  assert head.params_shape == (d + d * (d + 1) // 2,)
  params = tf.random.stateless_normal([5, head.params_size], seed=[1, 2])
  dist = head.distribution(params)
  cov = dist.covariance().numpy()
  assert cov.shape == (5, d, d)
  np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-5)
  assert np.all(np.linalg.eigvalsh(cov) > 0)
  assert np.abs(cov[..., 0, 1]).max() > 1e-3  # off-diagonals are learned
  x = np.zeros([5, d], np.float32)
  mean = dist.mean().numpy()
  expected = [
      -0.5 * (x[i] - mean[i]) @ np.linalg.solve(cov[i], x[i] - mean[i])
      - 0.5 * np.linalg.slogdet(2 * np.pi * cov[i])[1] for i in range(5)]
  np.testing.assert_allclose(dist.log_prob(x).numpy(), expected, rtol=1e-4,
                             atol=1e-4)


def test_bernoulli_on_grey_levels_is_the_continuous_cross_entropy():
  head = heads.Bernoulli([2, 2, 1])
  logits = tf.constant([[[[0.3], [-1.0]], [[2.0], [0.0]]]])
  x = np.array([[[[0.25], [1.0]], [[0.0], [0.5]]]], np.float32)
  p = 1 / (1 + np.exp(-logits.numpy()))
  expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
  dist = head.distribution(logits)
  assert dist.event_shape == [2, 2, 1]
  np.testing.assert_allclose(dist.log_prob(x).numpy(), [expected], rtol=1e-5)
  np.testing.assert_allclose(
      tf.reduce_sum(heads.elementwise_log_prob(dist, x)).numpy(), expected,
      rtol=1e-5)


@pytest.mark.parametrize('scale,shape', [('scalar', ()), ('feature', (3,))])
def test_gaussian_decoder_learns_its_scale(scale, shape):
  head = heads.Gaussian([3], scale=scale, init_scale=2.0)
  assert tuple(head.raw_scale.shape) == shape
  assert head.trainable_weights == [head.raw_scale]
  dist = head.distribution(tf.zeros([4, 3]))
  np.testing.assert_allclose(dist.stddev().numpy(), 2.0, rtol=1e-5)
  with tf.GradientTape() as tape:
    lp = tf.reduce_sum(head.distribution(tf.zeros([4, 3])).log_prob(
        tf.ones([4, 3])))
  assert tape.gradient(lp, head.raw_scale) is not None


def test_bad_head_arguments_are_user_errors():
  with pytest.raises(UserError, match='scale'):
    heads.Gaussian([3], scale='matrix')
  with pytest.raises(UserError, match='vectors'):
    heads.FullCovarianceGaussian([2, 2])
  with pytest.raises(ValueError, match='trailing shape'):
    heads.DiagonalGaussian([3]).distribution(tf.zeros([2, 5]))
