"""VaDE: the prior's GMM initialisation, the closed-form ELBO, the stages."""
import os

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo import matching
from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.models import vade as vade_lib
from pm_zoo.networks import mlp
from pm_zoo.tasks import clustering


def _vade(d=2, k=3, features=4, **kwargs):
  def net(output_shape, name):
    return mlp.ResidualMLP(output_shape=output_shape, units=8, num_blocks=1,
                           name=name)
  model = vade_lib.VaDE([features], num_clusters=k, latent_dim=d,
                        encoder_network=net, decoder_network=net, **kwargs)
  model(tf.zeros([1, features]))
  return model


def assert_prior_is_the_gmms(model, gmm, points):
  """The VaDE's prior has the fitted GMM's density and responsibilities."""
  np.testing.assert_allclose(
      model.prior().log_prob(points.astype(np.float32)).numpy(),
      gmm.score_samples(points), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      model.cluster_probabilities(points.astype(np.float32)).numpy(),
      gmm.predict_proba(points), atol=1e-4)


def assert_scales_make_the_covariances(model, covariances):
  """L_c L_c^T of a covariance='full' VaDE equals ``covariances``."""
  scale = model.component_scale_tril().numpy()
  np.testing.assert_allclose(scale @ np.swapaxes(scale, -1, -2),
                             covariances, rtol=1e-4, atol=1e-5)


def test_gmm_variances_become_log_standard_deviations():
  """The prior built from a fitted GMM has the GMM's density (not exp(var))."""
  from sklearn.mixture import GaussianMixture
  rng = np.random.default_rng(0)
  points = np.concatenate([rng.normal(-3, 0.3, [300, 2]),
                           rng.normal([2, 1], [2.0, 0.5], [200, 2])])
  gmm = GaussianMixture(2, covariance_type='diag', random_state=0).fit(points)
  logits, means, log_stds, off_diagonal = vade_lib.gmm_to_prior_parameters(
      gmm.weights_, gmm.means_, gmm.covariances_)
  assert off_diagonal is None
  np.testing.assert_allclose(np.exp(2 * log_stds), gmm.covariances_,
                             rtol=1e-5)
  model = _vade(d=2, k=2)
  model.set_prior(logits, means, log_stds)
  # The density, and the cluster posterior is the GMM's responsibility.
  assert_prior_is_the_gmms(model, gmm, points)
  with pytest.raises(UserError):
    vade_lib.gmm_to_prior_parameters([0.5, 0.5], means, np.zeros([2, 2]))


def test_full_covariance_prior_has_the_full_gmms_density():
  """covariance='full': Cholesky factors, the GMM's density and posterior."""
  from sklearn.mixture import GaussianMixture
  rng = np.random.default_rng(0)
  points = np.concatenate([
      rng.multivariate_normal([-3, 0], [[1.0, 0.8], [0.8, 1.0]], 300),
      rng.multivariate_normal([2, 1], [[2.0, -0.5], [-0.5, 0.5]], 200)])
  gmm = GaussianMixture(2, covariance_type='full', random_state=0).fit(points)
  model = _vade(d=2, k=2, covariance='full')
  model.set_prior(*vade_lib.gmm_to_prior_parameters(
      gmm.weights_, gmm.means_, gmm.covariances_))
  assert_scales_make_the_covariances(model, gmm.covariances_)
  assert_prior_is_the_gmms(model, gmm, points)
  diagonal = vade_lib.gmm_to_prior_parameters([0.5, 0.5], gmm.means_,
                                              np.ones([2, 2]))
  with pytest.raises(UserError, match='full'):
    model.set_prior(*diagonal)
  with pytest.raises(UserError, match="'diag' or 'full'"):
    _vade(covariance='spherical')


def test_full_covariance_kl_is_tfps():
  """component_kls with covariance='full' against tfd.kl_divergence."""
  tfd = vade_lib.tfd
  model = _vade(d=3, k=2, features=4, covariance='full')
  rng = np.random.default_rng(3)
  model.set_prior(np.log([0.3, 0.7]).astype(np.float32),
                  rng.normal(size=[2, 3]).astype(np.float32),
                  (0.3 * rng.normal(size=[2, 3])).astype(np.float32),
                  rng.normal(size=[2, 3, 3]).astype(np.float32))
  m = tf.constant(rng.normal(size=[5, 3]).astype(np.float32))
  s = tf.constant(np.exp(0.4 * rng.normal(size=[5, 3])).astype(np.float32))
  expected = tfd.kl_divergence(
      tfd.MultivariateNormalDiag(m[:, None], s[:, None]), model.components())
  np.testing.assert_allclose(model.component_kls(m, s).numpy(),
                             expected.numpy(), rtol=1e-4, atol=1e-4)


def test_elbo_kl_terms_match_monte_carlo():
  """sum_c gamma_c KL(q || p(z|c)) + KL(gamma || pi), checked by sampling."""
  model = _vade(d=2, k=3)
  rng = np.random.default_rng(1)
  model.set_prior(rng.normal(size=3).astype(np.float32),
                  rng.normal(size=[3, 2]).astype(np.float32),
                  (0.3 * rng.normal(size=[3, 2])).astype(np.float32))
  x = tf.constant(rng.normal(size=[2, 4]).astype(np.float32))
  noise = tf.constant(rng.normal(size=[2, 2]).astype(np.float32))
  terms = model.training_terms(x, tf.constant(1.0), training=False,
                               noise=noise)
  gamma = model.cluster_probabilities(terms.target).numpy()      # [B, K]
  q = model.encode(x)
  z = q.sample(200000, seed=[3, 4])                               # [N, B, d]
  log_q = q.log_prob(z).numpy()
  log_p = model.components().log_prob(z[..., None, :]).numpy()   # [N, B, K]
  kl_z = np.mean(np.sum(gamma * (log_q[..., None] - log_p), -1), axis=0)
  log_pi = tf.nn.log_softmax(model.mixture_logits).numpy()
  kl_cat = np.sum(gamma * (np.log(gamma) - log_pi), -1)
  np.testing.assert_allclose(terms.scalars['kl_cluster'].numpy(), kl_cat,
                             rtol=1e-4)
  np.testing.assert_allclose(terms.scalars['kl'].numpy(), kl_z + kl_cat,
                             rtol=2e-2)
  ll = model.decode(terms.target).log_prob(x).numpy()
  np.testing.assert_allclose(terms.loss.numpy(),
                             -(ll - terms.scalars['kl'].numpy()), rtol=1e-5)


def test_vade_declares_what_it_can_do():
  model = _vade()
  for capability in (base.GAUSSIAN_LATENT, base.MARGINAL_LIKELIHOOD,
                     base.GENERATIVE_PRIOR, base.REPARAMETERIZED,
                     base.CLUSTERS):
    assert model.has(capability)
  assert model.stages == ('pretrain',)
  prior = {id(v) for v in model.prior_variables}
  trained = {id(v) for v in model.stage_variables('pretrain')}
  assert not prior & trained and trained
  with pytest.raises(UserError, match='stage'):
    model.stage_terms('nonsense', tf.zeros([1, 4]), 1.0)


def test_denoising_pretraining_encodes_the_masked_rows_only_in_training():
  """pretrain_denoising: -log p(x | m(x * b)) in training, m(x) otherwise."""
  model = _vade()
  model.pretrain_denoising = True
  rng = np.random.default_rng(2)
  x = tf.constant(rng.normal(size=[3, 4]).astype(np.float32))
  mask = tf.constant([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], tf.float32)

  def reconstruction(inputs):
    m = model.encode(inputs).loc
    return -model.decode(m).log_prob(x).numpy()

  # Plain networks (no dropout or batch statistics), so training=True and
  # False differ by the corruption alone.
  denoising = model.stage_terms('pretrain', x, 1.0, training=True,
                                mask=mask)
  np.testing.assert_allclose(denoising.loss.numpy(),
                             reconstruction(x * mask), rtol=1e-6)
  clean = model.stage_terms('pretrain', x, 1.0, training=False, mask=mask)
  np.testing.assert_allclose(clean.loss.numpy(), reconstruction(x),
                             rtol=1e-6)
  assert not np.allclose(denoising.loss.numpy()[:2], clean.loss.numpy()[:2])
  # The fully observed row is not corrupted.
  np.testing.assert_allclose(denoising.loss.numpy()[2],
                             clean.loss.numpy()[2], rtol=1e-6)
  with pytest.raises(UserError, match='train_mask'):
    model.stage_terms('pretrain', x, 1.0, training=True)


def test_the_trainers_mask_reaches_the_denoising_stage():
  """per_example_losses hands its mask b to the family stage."""
  configs.parse(['tiny/vade_table.gin'], ['VaDE.pretrain_denoising = True'])
  model = matching.PosteriorMatchingVAE([4])
  x = tf.constant(np.random.default_rng(4).normal(size=[2, 4]), tf.float32)
  model(x, tf.ones([2, 4]))
  nothing = model.per_example_losses(x, tf.zeros([2, 4]), tf.constant(1.0),
                                     objective='pretrain')
  everything = model.per_example_losses(x, tf.ones([2, 4]), tf.constant(1.0),
                                        objective='pretrain')
  vae = model.vae
  from_zeros = -vae.decode(vae.encode(tf.zeros([2, 4])).loc).log_prob(x)
  from_x = -vae.decode(vae.encode(x).loc).log_prob(x)
  np.testing.assert_allclose(nothing['loss'].numpy(), from_zeros.numpy(),
                             rtol=1e-5)
  np.testing.assert_allclose(everything['loss'].numpy(), from_x.numpy(),
                             rtol=1e-5)


def test_denoising_pretrain_gin_corrupts_a_fifth_of_the_pixels():
  from pm_zoo.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  configs.parse(['vade_mnist_mlp_pretrain_denoising.gin'])
  model = matching.PosteriorMatchingVAE([28, 28, 1])
  assert model.vae.pretrain_denoising
  mask = trainer_lib.TrainConfig().train_mask([2000, 28, 28, 1],
                                              tf.constant([0, 1]))
  assert abs(float(np.mean(mask)) - 0.8) < 0.01


def test_gmm_sweep_seed_is_the_prior_stage_two_starts_from():
  """benchmarks.gmm_init's row for seed s is what gmm_seed=s initialises."""
  from benchmarks import gmm_init  # pylint: disable=g-import-not-at-top
  x, y = _blobs(n=300, d=4)
  model = _vade(d=2, k=3)
  model.gmm_examples = 200
  rows = gmm_init.sweep(model, x, x[:100], y[:100], seeds=2)
  assert [r['seed'] for r in rows] == [0, 1]
  for seed, row in enumerate(rows):
    model.gmm_seed = seed
    model.fit_prior(x)
    clusters = model.cluster_probabilities(
        model.latent_means(x[:100])).numpy().argmax(-1)
    assert row['accuracy'] == clustering.hungarian_accuracy(y[:100], clusters)
    assert row['fit_rows'] == 200
  summary = gmm_init.summarise(rows)
  assert summary['accuracy_min'] <= summary['accuracy_mean'] <= (
      summary['accuracy_max'])


def test_a_family_without_clusters_refuses_clustering():
  configs.parse(['tiny/table.gin'])
  model = matching.PosteriorMatchingVAE([4])
  model(tf.zeros([2, 4]), tf.ones([2, 4]))
  with pytest.raises(UserError, match='VaDE'):
    clustering.Clusterer(model)


def _blobs(n=240, d=4, seed=0):
  from sklearn.datasets import make_blobs
  x, y = make_blobs(n, n_features=d, centers=3, random_state=seed)
  return x.astype(np.float32), y


def test_stages_warm_start_fit_the_prior_once_and_resume(tmp_path,
                                                          monkeypatch):
  x, _ = _blobs()
  data = str(tmp_path / 'blobs.npy')
  np.save(data, x)
  calls = []
  fit = vade_lib.VaDE.fit_prior
  monkeypatch.setattr(vade_lib.VaDE, 'fit_prior',
                      lambda self, rows: calls.append(len(rows)) or
                      fit(self, rows))
  runs = {}
  previous = None
  for stage in ('pretrain', 'vae', 'partial'):
    configs.parse(['tiny/vade_table.gin'],
                  [f"TrainConfig.objective = '{stage}'"])
    runs[stage] = str(tmp_path / stage)
    experiment.train(runs[stage], data_path=data, vae_checkpoint=previous)
    previous = runs[stage]
  assert len(calls) == 1           # the ELBO stage, at its step 0
  # Resuming the ELBO stage to more steps does not refit the prior.
  configs.parse(['tiny/vade_table.gin'], ["TrainConfig.objective = 'vae'",
                                          'TrainConfig.num_steps = 15'])
  experiment.train(runs['vae'], data_path=data,
                   vae_checkpoint=runs['pretrain'])
  assert len(calls) == 1
  # The pretrain stage leaves the prior at its initial values; the ELBO
  # stage starts from the GMM and the partial stage leaves the VaDE as is.
  models = {s: experiment.restore_for_eval(runs[s])[0] for s in runs}
  np.testing.assert_array_equal(
      models['pretrain'].vae.mixture_logits.numpy(), np.zeros(3))
  assert np.any(models['vae'].vae.mixture_logits.numpy() != 0)
  # The partial stage froze the ELBO run's checkpoint of that time (step 10).
  elbo = models['vae']
  tf.train.Checkpoint(model=elbo).restore(
      os.path.join(runs['vae'], 'checkpoints', 'ckpt-10')).expect_partial()
  for a, b in zip(elbo.vae.variables, models['partial'].vae.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert os.path.exists(os.path.join(runs['partial'], 'operative_config.gin'))


def test_unknown_stage_is_a_one_line_error():
  configs.parse(['tiny/vade_table.gin'])
  model = matching.PosteriorMatchingVAE([4])
  model(tf.zeros([2, 4]), tf.ones([2, 4]))
  with pytest.raises(UserError, match='pretrain'):
    model.trainable_variables_for('warmup')


def test_eval_curve_logs_cluster_accuracy_from_the_elbo_stage_on(tmp_path):
  """The ELBO stage's curve scores q(c | x) against the test labels."""
  import json  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import evaluation  # pylint: disable=g-import-not-at-top
  from pm_zoo.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  runs = {}
  previous = None
  for stage in ('pretrain', 'vae'):
    configs.parse(['tiny/vade_image.gin'],
                  [f"TrainConfig.objective = '{stage}'",
                   'TrainConfig.eval_every = 5'])
    runs[stage] = str(tmp_path / stage)
    experiment.train(runs[stage], vae_checkpoint=previous)
    previous = runs[stage]
  curves = {}
  for stage, run in runs.items():
    with open(os.path.join(run, trainer_lib.EVAL_CURVE)) as f:
      curves[stage] = json.load(f)
  # Pre-training: the prior is not fitted yet and the partial posterior is
  # untrained, so only the reconstruction is scored.
  assert [p['step'] for p in curves['pretrain']] == [5, 10]
  # ... of the autoencoder that stage trains: decode(m(x)), not decode(z)
  # at the encoder's untrained scale.
  model, _ = experiment.restore_for_eval(runs['pretrain'])
  splits, _ = experiment.load_standardized(
      experiment.data_options(runs['pretrain'], None, None, None),
      runs['pretrain'], fit=False)
  x = splits.test.astype(np.float32)
  mean = model.vae.decode(model.vae.encode(x).loc).mean().numpy()
  from pm_zoo import metrics  # pylint: disable=g-import-not-at-top
  assert curves['pretrain'][-1]['reconstruction_psnr'] == pytest.approx(
      metrics.psnr(x, np.clip(mean, 0, 1)), abs=1e-4)
  assert all(np.isfinite(p['reconstruction_psnr']) and
             'cluster_accuracy' not in p and 'psnr' not in p
             for p in curves['pretrain'])
  assert [p['step'] for p in curves['vae']] == [5, 10]
  # training.json: the checkpointed clock leaves the evaluations out.
  with open(os.path.join(runs['vae'], 'training.json')) as f:
    training = json.load(f)
  assert 0 < curves['vae'][-1]['train_seconds'] <= training['train_seconds']
  assert training['train_seconds'] < training['seconds']
  last = curves['vae'][-1]['cluster_accuracy']
  # The logged value is the accuracy of the final weights on the same rows.
  model, _ = experiment.restore_for_eval(runs['vae'])
  splits, _ = experiment.load_standardized(
      experiment.data_options(runs['vae'], None, None, None), runs['vae'],
      fit=False)
  config = evaluation.EvalConfig()
  clusterer = clustering.Clusterer(model, config.batch_size)
  probabilities = clusterer.full_probabilities(
      splits.test, config.num_imputations, seed=config.seed)
  assert last == pytest.approx(clustering.hungarian_accuracy(
      splits.test_labels, probabilities.argmax(-1)), abs=1e-9)
  assert 0.0 < last <= 1.0


def test_a_diagonal_run_warm_starts_a_full_covariance_stage(tmp_path):
  """Both kinds checkpoint the same variables (the off-diagonal untrained)."""
  from pm_zoo.training import trainer  # pylint: disable=g-import-not-at-top
  diagonal = _vade()
  assert not any('off_diagonal' in v.name
                 for v in diagonal.trainable_variables)
  for v in diagonal.weights:   # trained weights differ from a fresh model's
    v.assign_add(tf.ones_like(v))
  prefix = tf.train.Checkpoint(model=tf.train.Checkpoint(vae=diagonal)).save(
      str(tmp_path / 'ckpt'))

  class Holder:
    vae = _vade(covariance='full')

  trainer.restore_vae(Holder, prefix)
  assert len(diagonal.weights) == len(Holder.vae.weights)
  for a, b in zip(diagonal.weights, Holder.vae.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert any('off_diagonal' in v.name
             for v in Holder.vae.trainable_variables)
  # The other way round is refused: a diagonal stage would drop L's
  # off-diagonal part.
  Holder.vae.component_scale_off_diagonal.assign(
      tf.ones_like(Holder.vae.component_scale_off_diagonal))
  full_prefix = tf.train.Checkpoint(
      model=tf.train.Checkpoint(vae=Holder.vae)).save(str(tmp_path / 'full'))
  Holder.vae = _vade()
  trainer.restore_vae(Holder, full_prefix)
  with pytest.raises(UserError, match="covariance = 'full' in this stage"):
    Holder.vae.begin_stage('partial', np.zeros([4, 4], np.float32))
