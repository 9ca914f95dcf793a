"""Clustering: metrics, masks, the baseline, pm-cluster, the clusterer."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
import pm_zoo
from pm_zoo.errors import UserError
from pm_zoo.tasks import clustering


def _brute_force_accuracy(labels, clusters):
  k = max(labels.max(), clusters.max()) + 1
  return max(np.mean(np.asarray(perm)[clusters] == labels)
             for perm in itertools.permutations(range(k)))


def test_hungarian_accuracy_is_the_best_relabelling():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 60)
  assert clustering.hungarian_accuracy(labels, (labels + 1) % 4) == 1.0
  for _ in range(5):
    clusters = np.where(rng.random(60) < 0.6, (labels * 3) % 4,
                        rng.integers(0, 4, 60))
    assert clustering.hungarian_accuracy(labels, clusters) == pytest.approx(
        _brute_force_accuracy(labels, clusters))
  scores = clustering.clustering_scores(labels, labels)
  assert scores == {'accuracy': 1.0, 'nmi': 1.0, 'ari': 1.0}
  # More clusters than labels: the unmatched cluster counts as wrong.
  assert clustering.hungarian_accuracy(np.array([0, 0, 1, 1]),
                                       np.array([0, 2, 1, 1])) == 0.75


def test_bernoulli_masks_observe_the_fraction_per_pixel():
  none = clustering.bernoulli_masks(0.0, [5, 5, 2], 10, 0, 0)
  full = clustering.bernoulli_masks(1.0, [5, 5, 2], 10, 0, 0)
  half = clustering.bernoulli_masks(0.3, [28, 28, 2], 50, 0, 3)
  assert none.sum() == 0 and full.min() == 1
  np.testing.assert_array_equal(half[..., 0], half[..., 1])
  assert abs(half.mean() - 0.3) < 0.01
  np.testing.assert_array_equal(
      half, clustering.bernoulli_masks(0.3, [28, 28, 2], 50, 0, 3))
  assert not np.array_equal(
      half, clustering.bernoulli_masks(0.3, [28, 28, 2], 50, 1, 3))


def _blobs(n=300, seed=0):
  from sklearn.datasets import make_blobs
  x, y = make_blobs(n, n_features=4, centers=3, random_state=seed,
                    cluster_std=0.6)
  return x, y


@pytest.fixture(scope='module')
def fitted(tmp_path_factory):
  x, y = _blobs()
  model_dir = str(tmp_path_factory.mktemp('clusterer') / 'run')
  clusterer = pm_zoo.PosteriorMatchingClusterer(
      n_clusters=3, gin_file='tiny/vade_table.gin', pretrain_steps=150,
      elbo_steps=150, partial_steps=150, num_samples=8, model_dir=model_dir)
  labels = clusterer.fit_predict(x)
  return clusterer, x, y, labels


def test_clusterer_fits_predicts_with_missing_values_and_saves(fitted,
                                                               tmp_path):
  from sklearn.metrics import adjusted_rand_score
  clusterer, x, y, labels = fitted
  assert labels.shape == (len(x),) and set(labels) <= {0, 1, 2}
  np.testing.assert_array_equal(labels, clusterer.labels_)
  # Well-separated blobs: the VaDE finds them (a random labelling has ARI 0).
  assert adjusted_rand_score(y, labels) > 0.5
  holes = x.copy()
  holes[np.random.default_rng(1).random(x.shape) < 0.3] = np.nan
  holes[0] = np.nan                                   # nothing observed
  proba = clusterer.predict_proba(holes)
  assert proba.shape == (len(x), 3)
  np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
  assert np.isfinite(proba).all()
  np.testing.assert_array_equal(clusterer.predict(holes), proba.argmax(1))
  path = clusterer.save(str(tmp_path / 'saved'))
  loaded = pm_zoo.PosteriorMatchingClusterer.load(path)
  np.testing.assert_allclose(loaded.predict_proba(holes), proba, atol=1e-6)
  with pytest.raises(UserError, match='columns'):
    clusterer.predict_proba(x[:, :3])
  with pytest.raises(UserError, match='fully'):
    pm_zoo.PosteriorMatchingClusterer(n_clusters=3).fit(holes)


@pytest.mark.parametrize('weighting', ['mean', 'importance'])
def test_cluster_signature_runs_with_tensorflow_alone(fitted, tmp_path,
                                                      weighting):
  import copy
  from pm_zoo.serving import export
  from pm_zoo.serving import module
  fitted_clusterer, x, _, _ = fitted
  clusterer = copy.copy(fitted_clusterer).set_params(weighting=weighting)
  clusterer._restore(fitted_clusterer.model_dir_)  # pylint: disable=protected-access
  holes = x[:20].copy()
  holes[np.random.default_rng(2).random(holes.shape) < 0.4] = np.nan
  version = export.export(
      os.path.join(clusterer.model_dir_, 'partial'), str(tmp_path / 'export'),
      module.ServingConfig(num_samples=clusterer.num_samples, seed=0,
                           cluster_weighting=weighting))
  np.save(tmp_path / 'x.npy', np.nan_to_num(holes).astype(np.float32))
  np.save(tmp_path / 'm.npy', np.isfinite(holes).astype(np.float32))
  script = (
      'import sys, numpy as np, tensorflow as tf\n'
      f'm = tf.saved_model.load({version!r})\n'
      f"out = m.signatures['cluster'](x=tf.constant(np.load({str(tmp_path / 'x.npy')!r})),"
      f" mask=tf.constant(np.load({str(tmp_path / 'm.npy')!r})))\n"
      f"np.save({str(tmp_path / 'p.npy')!r}, out['probabilities'].numpy())\n"
      "assert 'pm_zoo' not in sys.modules\n")
  subprocess.run([sys.executable, '-c', script], check=True, cwd=tmp_path,
                 env={**os.environ, 'PYTHONPATH': ''})
  proba = clusterer.predict_proba(holes)
  np.testing.assert_allclose(np.load(tmp_path / 'p.npy'), proba, atol=1e-5)
  np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
  if weighting == 'importance':
    # The same draws, weighted: not the plain average.
    plain = fitted_clusterer.predict_proba(holes)
    assert np.abs(proba - plain).max() > 1e-3
    # A row with nothing observed is drawn from the prior p(z) (imputation.
    # row_keyed_latents), so its weights p(z) / p(z) are uniform: the plain
    # average of the same row-keyed draws.
    empty = np.full([1, x.shape[1]], np.nan)
    np.testing.assert_allclose(clusterer.predict_proba(empty),
                               fitted_clusterer.predict_proba(empty),
                               atol=1e-6)


def test_clusterer_refuses_an_unknown_weighting_before_writing(tmp_path):
  x, _ = _blobs(60)
  with pytest.raises(UserError, match='weighting must be one of'):
    pm_zoo.PosteriorMatchingClusterer(
        n_clusters=3, weighting='median',
        model_dir=str(tmp_path / 'run')).fit(x)
  assert not (tmp_path / 'run').exists()
  with pytest.raises(UserError, match='weighting must be one of'):
    from pm_zoo.serving import module
    module.ServingConfig(cluster_weighting='median')


def test_importance_weighting_recovers_the_prior_from_nothing_observed():
  """With x_o empty, p(x_o | z) = 1 and sum_s w_s p(c | z_s) -> p(c) = pi_c.

  Self-normalised importance sampling of the VaDE's p(z | x_o) = p(z) with an
  untrained q_theta (~N(0, 0.7^2 I)) as the proposal: the estimate is the
  prior's mixture weights whatever the proposal, up to Monte Carlo error. The
  components are narrow (std 0.3) inside the proposal's bulk so that the
  weights are bounded: the error is ~0.005 at 4 rows x 4,000 draws, against
  0.05 with the -log q term dropped and 0.34 for the plain average of
  p(c | z_s) (E_q[p(c | z)] for whatever q_theta is); tolerance 0.02.
  """
  from pm_zoo import configs, matching
  tf.keras.utils.set_random_seed(0)  # pylint: disable=no-member
  configs.parse(['tiny/vade_table.gin'])
  model = matching.PosteriorMatchingVAE((4,))
  x = tf.constant(np.random.default_rng(0).normal(size=[4, 4]), tf.float32)
  model(x, tf.ones_like(x))
  vade = model.vae
  # The least likely component sits where the proposal is densest.
  vade.mixture_logits.assign([-1.0, 0.0, 1.0])
  vade.component_means.assign([[0.0, 0.0], [0.8, 0.0], [0.0, 0.8]])
  vade.component_log_stds.assign(np.full([3, 2], np.log(0.3), np.float32))
  clusterer = clustering.Clusterer(model)
  nothing = np.zeros([4, 4], np.float32)
  probs = clusterer.probabilities(x.numpy(), nothing, num_samples=4000,
                                  weighting='importance')
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  pi = tf.nn.softmax(vade.mixture_logits).numpy()
  np.testing.assert_allclose(probs.mean(0), pi, atol=0.02)
  plain = clusterer.probabilities(x.numpy(), nothing, num_samples=4000)
  assert np.abs(plain.mean(0) - pi).max() > 0.1
  # Observed features move it off the prior (the decoder's p(x_o | z)).
  everything = np.ones([4, 4], np.float32)
  seen = clusterer.probabilities(x.numpy(), everything, num_samples=4000,
                                 weighting='importance')
  assert np.abs(seen - pi).max() > 0.05
  with pytest.raises(UserError, match='weighting must be one of'):
    clusterer.probabilities(x.numpy(), nothing, weighting='median')
  with pytest.raises(UserError, match='weighting must be one of'):
    clustering.ClusterConfig(weighting='median')


def test_pm_cluster_refuses_data_without_labels(fitted):
  clusterer, _, _, _ = fitted
  run = os.path.join(clusterer.model_dir_, 'partial')
  # The clusterer trains on unlabelled rows: nothing to score against.
  with pytest.raises(UserError, match='labels'):
    clustering.evaluate_run(run)


def test_pm_cluster_on_tiny_images(tmp_path):
  from pm_zoo import configs, experiment
  previous = None
  for stage in ('pretrain', 'vae', 'partial'):
    configs.parse(['tiny/vade_image.gin'],
                  [f"TrainConfig.objective = '{stage}'",
                   'TrainConfig.num_steps = 4'])
    experiment.train(str(tmp_path / stage), vae_checkpoint=previous)
    previous = str(tmp_path / stage)
  proc = subprocess.run(
      [sys.executable, '-m', 'pm_zoo.launch.cluster',
       f'--model_dir={previous}',
       '--gin_bindings=ClusterConfig.fractions = 3',
       '--gin_bindings=ClusterConfig.trials = 2',
       '--gin_bindings=ClusterConfig.num_samples = 3',
       '--gin_bindings=ClusterConfig.max_examples = 60',
       '--gin_bindings=ClusterConfig.baseline_steps = 5'],
      capture_output=True, text=True, cwd=os.getcwd())
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.load(open(os.path.join(previous, 'clustering.json')))
  assert result['fractions'] == [0.0, 0.5, 1.0]
  assert set(result['methods']) == {'PM-VaDE', 'supervised baseline'}
  accuracy = result['methods']['PM-VaDE']['accuracy']['mean']
  assert len(accuracy) == 3 and all(0 < a <= 1 for a in accuracy)
  assert result['latent_map']['method'] in ('UMAP', 't-SNE')
  for name in ('clustering.png', 'latent_map.png'):
    assert os.path.getsize(os.path.join(previous, 'figures', name)) > 1000
  assert 'PM-VaDE' in proc.stdout
  # benchmarks/clustering.py on the same run: every method on the same masks.
  output = tmp_path / 'bench' / 'clustering.json'
  output.parent.mkdir()
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.clustering', f'--model_dir={previous}',
       '--max_examples=40', '--fractions=3', '--trials=2', '--num_samples=3',
       '--baseline_steps=0', '--fit_examples=100', f'--output={output}'],
      capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  bench = json.load(open(output))
  assert bench['test_examples'] == 40 and bench['fractions'] == [0.0, 0.5, 1.0]
  assert set(bench['methods']) == {'PM-VaDE', 'PM-VaDE (importance-weighted)',
                                   'k-means (mean-imputed)',
                                   'GMM (mean-imputed)'}
  for method in bench['methods'].values():
    assert all(0 < a <= 1 for a in method['accuracy']['mean'])
  assert os.path.getsize(output.parent / 'clustering.png') > 1000
  assert bench['figure'] == str(output.parent / 'clustering.png')
  # benchmarks/gmm_init.py on the pre-training run: one row per seed of
  # N2D's initialisation (the GMM way's sweep: tests/test_vade.py).
  output = tmp_path / 'bench' / 'gmm_init.json'
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.gmm_init',
       f"--model_dir={tmp_path / 'pretrain'}", '--seeds=2',
       '--prior_init=umap', '--covariance=full',
       '--test_examples=40', f'--output={output}'],
      capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  sweep = json.load(open(output))
  assert [r['seed'] for r in sweep['seeds']] == [0, 1]
  assert sweep['prior_init'] == 'umap' and "prior_init='umap'" in proc.stdout
  assert sweep['covariance'] == 'full'
  assert all(0 < r['accuracy'] <= 1 and np.isfinite(r['log_likelihood'])
             for r in sweep['seeds'])
  assert sweep['summary']['highest_likelihood_seed'] in (0, 1)
  assert 'highest-likelihood seed' in proc.stdout
