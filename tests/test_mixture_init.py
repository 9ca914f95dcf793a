"""VaDE's initial mixture: the M-step, the built mixture, the UMAP way."""
import sys

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.models import mixture_init
from pm_zoo.models import vade as vade_lib
from pm_zoo.networks import mlp
from pm_zoo.tasks import clustering
from pm_zoo.tasks import latent_map
from test_vade import assert_scales_make_the_covariances


def test_hard_responsibilities_give_each_groups_mean_and_variance():
  rng = np.random.default_rng(0)
  points = rng.normal(size=[90, 3])
  groups = np.repeat([0, 1, 2], [20, 30, 40])
  moments = mixture_init.responsibility_moments(points, np.eye(3)[groups],
                                                reg_covar=1e-3)
  weights, means, variances = moments
  np.testing.assert_allclose(weights, [20 / 90, 30 / 90, 40 / 90])
  for c in range(3):
    np.testing.assert_allclose(means[c], points[groups == c].mean(0))
    np.testing.assert_allclose(variances[c],
                               points[groups == c].var(0) + 1e-3)


def test_full_moments_are_each_groups_covariance():
  rng = np.random.default_rng(0)
  points = rng.normal(size=[50, 3]) @ rng.normal(size=[3, 3])
  groups = np.repeat([0, 1], [20, 30])
  _, means, covariances = mixture_init.responsibility_moments(
      points, np.eye(2)[groups], reg_covar=1e-3, full=True)
  for c in range(2):
    np.testing.assert_allclose(means[c], points[groups == c].mean(0))
    np.testing.assert_allclose(
        covariances[c],
        np.cov(points[groups == c].T, bias=True) + 1e-3 * np.eye(3))


def test_soft_responsibilities_weight_the_moments():
  points = np.array([[0.0], [2.0], [4.0]])
  r = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
  weights, means, variances = mixture_init.responsibility_moments(
      points, r, reg_covar=0.0)
  np.testing.assert_allclose(weights, [0.5, 0.5])
  np.testing.assert_allclose(means[:, 0], [2 / 3, 10 / 3])
  # E[m^2] - mu^2 for component 0: (0 + 0.5 * 4) / 1.5 - (2/3)^2.
  np.testing.assert_allclose(variances[0, 0], 2 / 1.5 - 4 / 9)


def test_an_empty_component_is_a_clear_error():
  points = np.zeros([10, 2])
  with pytest.raises(UserError, match='got no rows'):
    mixture_init.responsibility_moments(points, np.eye(2)[np.zeros(10, int)])


def test_the_built_mixture_has_the_diagonal_gaussian_mixture_density():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  weights = np.array([0.3, 0.7])
  means = np.array([[0.0, 1.0], [2.0, -1.0]])
  variances = np.array([[1.0, 0.5], [2.0, 0.25]])
  gmm = mixture_init.built_mixture(weights, means, variances)
  x = np.random.default_rng(1).normal(size=[5, 2])
  density = sum(w * stats.multivariate_normal(m, np.diag(v)).pdf(x)
                for w, m, v in zip(weights, means, variances))
  np.testing.assert_allclose(gmm.score_samples(x), np.log(density),
                             rtol=1e-10)
  np.testing.assert_array_equal(gmm.predict(x),
                                gmm.predict_proba(x).argmax(-1))
  covariances = np.array([[[1.0, 0.3], [0.3, 0.5]], [[2.0, -0.6], [-0.6, 0.4]]])
  full = mixture_init.built_mixture(weights, means, covariances)
  density = sum(w * stats.multivariate_normal(m, c).pdf(x)
                for w, m, c in zip(weights, means, covariances))
  np.testing.assert_allclose(full.score_samples(x), np.log(density),
                             rtol=1e-10)


def _ring_and_core(n=400, seed=0):
  """A ring around a core: EM on the raw points cannot find the two."""
  rng = np.random.default_rng(seed)
  angle = rng.uniform(0, 2 * np.pi, n)
  ring = 6.0 * np.stack([np.cos(angle), np.sin(angle)], -1)
  core = rng.normal(scale=0.5, size=[n, 2])
  points = np.concatenate([ring, core]) + rng.normal(scale=0.2, size=[2 * n, 2])
  return points, np.repeat([0, 1], n)


def test_clusters_found_on_the_embedding_set_the_latent_mixture():
  """The partition is the embedding's, the parameters are in z."""
  points, labels = _ring_and_core()
  radius = lambda p, dim, seed: np.linalg.norm(p, axis=1, keepdims=True)
  gmm = mixture_init.manifold_mixture(points, 2, seed=0, embed=radius)
  raw = mixture_init.fit_gaussian_mixture(points, 2, seed=0)
  assert clustering.hungarian_accuracy(labels, raw.predict(points)) < 0.8
  # Both components are centred (ring and core share a centre), so in z
  # the latent mixture tells them apart by their variances.
  np.testing.assert_allclose(gmm.means_, 0.0, atol=0.5)
  assert clustering.hungarian_accuracy(labels, gmm.predict(points)) > 0.97
  np.testing.assert_allclose(gmm.weights_, [0.5, 0.5], atol=0.02)


def test_umap_finds_separated_groups():
  """The real UMAP path (umap-learn is a test dependency)."""
  from sklearn.datasets import make_blobs  # pylint: disable=g-import-not-at-top
  points, labels = make_blobs(300, n_features=4, centers=3, random_state=0)
  gmm = mixture_init.manifold_mixture(points, 3, seed=0, n_neighbors=15)
  assert clustering.hungarian_accuracy(labels, gmm.predict(points)) > 0.98


def _vade(**kwargs):
  def net(output_shape, name):
    return mlp.ResidualMLP(output_shape=output_shape, units=8, num_blocks=1,
                           name=name)
  model = vade_lib.VaDE([4], num_clusters=3, latent_dim=2,
                        encoder_network=net, decoder_network=net, **kwargs)
  model(tf.zeros([1, 4]))
  return model


def test_vade_refuses_an_unknown_prior_init():
  with pytest.raises(UserError, match="prior_init must be one of"):
    _vade(prior_init='kmeans')


def test_umap_init_without_umap_learn_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'umap', None)
  with pytest.raises(UserError, match='pip install umap-learn'):
    mixture_init.umap_embedding(np.zeros([50, 2]), 2, seed=0)


def test_vade_umap_init_sets_the_prior_it_reports():
  from sklearn.datasets import make_blobs  # pylint: disable=g-import-not-at-top
  x, _ = make_blobs(200, n_features=4, centers=3, random_state=1)
  model = _vade(prior_init='umap', umap_neighbors=10, gmm_examples=150)
  gmm, rows, means = model.initial_mixture(x.astype(np.float32))
  assert len(rows) == 150 and means.shape == (150, 2)
  model.fit_prior(x.astype(np.float32))
  np.testing.assert_allclose(model.component_means.numpy(), gmm.means_,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.exp(2 * model.component_log_stds.numpy()),
                             gmm.covariances_, rtol=1e-4)


def test_vade_full_covariance_umap_init_sets_the_full_mixture():
  from sklearn.datasets import make_blobs  # pylint: disable=g-import-not-at-top
  x, _ = make_blobs(200, n_features=4, centers=3, random_state=1)
  model = _vade(prior_init='umap', umap_neighbors=10, gmm_examples=150,
                covariance='full')
  gmm, _, _ = model.initial_mixture(x.astype(np.float32))
  assert gmm.covariances_.shape == (3, 2, 2)
  model.fit_prior(x.astype(np.float32))
  assert_scales_make_the_covariances(model, gmm.covariances_)


def test_latent_map_uses_umap_where_installed_and_tsne_where_not(
    monkeypatch):
  rng = np.random.default_rng(0)
  points, extra = rng.normal(size=[60, 3]), rng.normal(size=[4, 3])
  emb, emb_extra, method = latent_map.embed_2d(points, extra)
  assert method == 'UMAP' and emb.shape == (60, 2)
  assert emb_extra.shape == (4, 2)
  monkeypatch.setitem(sys.modules, 'umap', None)
  emb, emb_extra, method = latent_map.embed_2d(points, extra)
  assert method == 't-SNE' and emb.shape == (60, 2)
  assert emb_extra.shape == (4, 2)
