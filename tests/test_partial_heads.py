"""Expressive partial posterior heads: density, sampling, tracking, restore."""
import functools

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo import masks
from pm_zoo import matching
from pm_zoo.data import train_batches
from pm_zoo.distributions import autoregressive
from pm_zoo.distributions import flows
from pm_zoo.distributions import heads
from pm_zoo.distributions import kl
from pm_zoo.distributions import made as made_lib
from pm_zoo.distributions import mixtures
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import gaussian_vae
from pm_zoo.networks import mlp
from pm_zoo.training import trainer as trainer_lib

tfd = tfp.distributions

# Tiny configurations of every partial posterior head.
HEADS = {
    'mixture': functools.partial(mixtures.GaussianMixture, num_components=3),
    'ar_mixture': functools.partial(
        autoregressive.AutoregressiveGaussianMixture, num_components=3,
        hidden_units=(16, 16), context_size=8),
    'maf': functools.partial(flows.MaskedAutoregressiveFlow, num_flows=2,
                             hidden_units=(16, 16), context_size=8),
    'iaf': functools.partial(flows.InverseAutoregressiveFlow, num_flows=2,
                             hidden_units=(16, 16), context_size=8,
                             base='full'),
}
AUTOREGRESSIVE = ['ar_mixture', 'maf', 'iaf']


def _params(head, batch, seed=0, scale=1.0):
  return scale * tf.random.stateless_normal([batch, head.params_size],
                                            seed=[seed, 7])


def _mades(head):
  if isinstance(head, autoregressive.AutoregressiveGaussianMixture):
    return [head.made]
  return list(getattr(head, 'mades', []))


def test_parameter_counts():
  d = 4
  assert mixtures.GaussianMixture([d], num_components=3).params_shape == (
      3 + 3 * (d + d * (d + 1) // 2),)
  assert autoregressive.AutoregressiveGaussianMixture(
      [d], context_size=5, hidden_units=(8,)).params_shape == (5,)
  assert flows.MaskedAutoregressiveFlow(
      [d], context_size=5, hidden_units=(8,)).params_shape == (2 * d + 5,)
  assert flows.InverseAutoregressiveFlow(
      [d], context_size=5, hidden_units=(8,), base='full').params_shape == (
          d + d * (d + 1) // 2 + 5,)


@pytest.mark.parametrize('name', sorted(HEADS))
def test_shapes_of_log_prob_sample_and_mean(name):
  head = HEADS[name]([3])
  dist = head.distribution(_params(head, 5))
  assert dist.batch_shape == [5] and dist.event_shape == [3]
  z = dist.sample(4, seed=[1, 2])
  assert z.shape == (4, 5, 3)
  assert dist.log_prob(z).shape == (4, 5)
  assert dist.log_prob(z[0]).shape == (5,)
  assert np.all(np.isfinite(dist.log_prob(z).numpy()))
  assert dist.mean().shape == (5, 3)
  # Stateless: the same seed gives the same draw.
  np.testing.assert_array_equal(z.numpy(),
                                dist.sample(4, seed=[1, 2]).numpy())


def _banana(n, seed=0):
  """z1 ~ N(0, 1), z2 = z1^2 - 1 + 0.3 eps: strongly dependent coordinates."""
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=n)
  return np.stack([z1, z1**2 - 1 + 0.3 * rng.normal(size=n)],
                  -1).astype(np.float32)


def _fit(head, data, steps, learning_rate=1e-2, seed=2):
  """Maximum likelihood on ``data`` with context/parameters as a variable."""
  params = tf.Variable(_params(head, 1, seed=seed, scale=0.3))
  variables = [params] + head.trainable_variables
  optimizer = keras.optimizers.Adam(learning_rate)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(head.distribution(params).log_prob(data))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return params, [float(step()) for _ in range(steps)]


@pytest.mark.parametrize('name', sorted(HEADS))
def test_density_integrates_to_one_and_matches_its_samples(name):
  """Fitted to a banana (z2 ~ z1^2) on d = 2: a grid integral of
  exp(log_prob) is 1, and grid expectations of z1, z2, z1 z2 and z1^2 z2 equal
  sample averages, so log_prob and sample describe the same distribution,
  dependence included (for the IAF: the sequential inverse agrees with the
  one-pass forward; for the autoregressive mixture: the d-step sampler agrees
  with the one-pass density)."""
  head = HEADS[name]([2])
  params, _ = _fit(head, _banana(256), steps=100, learning_rate=2e-2)
  dist = head.distribution(params)
  samples = dist.sample(8000, seed=[5, 6]).numpy()[:, 0].astype(np.float64)
  lo = np.percentile(samples, 0.05, axis=0) - 1.0
  hi = np.percentile(samples, 99.95, axis=0) + 1.0
  n = 240
  g0, g1 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
  grid = np.stack(np.meshgrid(g0, g1, indexing='ij'), -1).reshape(-1, 1, 2)
  density = np.exp(dist.log_prob(grid.astype(np.float32)).numpy()[:, 0])
  cell = (g0[1] - g0[0]) * (g1[1] - g1[0])
  assert abs(density.sum() * cell - 1.0) < 0.02
  features = lambda z: np.stack([z[..., 0], z[..., 1], z[..., 0] * z[..., 1],
                                 z[..., 0]**2 * z[..., 1]], -1)
  by_grid = (density[:, None] * features(grid[:, 0])).sum(0) * cell
  by_samples = features(samples)
  tolerance = 0.05 + 4 * by_samples.std(0) / np.sqrt(len(samples))
  np.testing.assert_array_less(np.abs(by_grid - by_samples.mean(0)),
                               tolerance)
  # The dependence was learned (so the check above can see a wrong sampler).
  assert by_grid[3] > 0.8
  if name != 'mixture':  # Monte Carlo mean from head.mean_samples draws
    np.testing.assert_array_less(
        np.abs(dist.mean().numpy()[0] - samples.mean(0)),
        5 * samples.std(0) / np.sqrt(head.mean_samples))


def test_mixture_of_one_is_the_full_covariance_gaussian():
  d = 3
  mixture = mixtures.GaussianMixture([d], num_components=1)
  single = heads.FullCovarianceGaussian([d])
  params = _params(single, 4)
  z = tf.random.stateless_normal([4, d], seed=[0, 3])
  expected = single.distribution(params).log_prob(z).numpy()
  got = mixture.distribution(
      tf.concat([tf.zeros([4, 1]), params], -1)).log_prob(z).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_mixture_is_the_weighted_sum_of_its_components():
  head = mixtures.GaussianMixture([2], num_components=3)
  params = _params(head, 2)
  dist = head.distribution(params)
  z = np.array([[0.3, -0.2], [1.0, 0.5]], np.float32)
  weights = tf.nn.softmax(params[:, :3]).numpy()
  components = dist.components_distribution
  per_component = components.prob(z[:, None, :]).numpy()  # [2, 3]
  np.testing.assert_allclose(dist.prob(z).numpy(),
                             (weights * per_component).sum(-1), rtol=1e-5)


def test_mixture_can_be_bimodal_where_a_gaussian_cannot():
  """Fitted by maximum likelihood to two separated clusters, the mixture beats
  the best single Gaussian by a wide margin."""
  rng = np.random.default_rng(0)
  data = np.concatenate([rng.normal(-3, 0.3, (200, 2)),
                         rng.normal(3, 0.3, (200, 2))]).astype(np.float32)
  losses = {}
  for name, head in (('mixture', mixtures.GaussianMixture([2],
                                                          num_components=2)),
                     ('gaussian', heads.FullCovarianceGaussian([2]))):
    params = tf.Variable(_params(head, 1, seed=1, scale=0.5))
    optimizer = keras.optimizers.Adam(0.05)

    @tf.function
    def step(head=head, params=params, optimizer=optimizer):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(head.distribution(params).log_prob(data))
      optimizer.apply_gradients([(tape.gradient(loss, params), params)])
      return loss

    for _ in range(300):
      loss = step()
    losses[name] = float(loss)
  assert losses['mixture'] < losses['gaussian'] - 1.0


@pytest.mark.parametrize('name', AUTOREGRESSIVE)
def test_training_lowers_nll_and_keeps_the_made_autoregressive(name):
  """Adam steps through the head: the NLL falls, and each MADE output i still
  depends only on z_<i (the masks survive the optimizer's updates)."""
  d = 3
  head = HEADS[name]([d])
  rng = np.random.default_rng(1)
  data = rng.normal(size=(128, d)).astype(np.float32)
  data[:, 1] = np.abs(data[:, 0]) + 0.1 * data[:, 1]  # non-Gaussian coupling
  _, losses = _fit(head, data, steps=40)
  assert losses[-1] < losses[0] - 0.3
  z = tf.constant(rng.normal(size=(2, d)), tf.float32)
  context = tf.constant(rng.normal(size=(2, head.context_size)), tf.float32)
  for made in _mades(head):
    with tf.GradientTape() as tape:
      tape.watch(z)
      out = made(z, conditional_input=context)  # [2, d, P]
    jacobian = tape.batch_jacobian(out, z).numpy()  # [2, d, P, d]
    for i in range(d):
      assert np.all(jacobian[:, i, :, i:] == 0), (i, made.name)
      if i > 0:
        assert np.any(jacobian[:, i, :, :i] != 0)


@pytest.mark.parametrize('name', AUTOREGRESSIVE)
def test_made_weights_are_tracked_by_the_head_and_the_model(name):
  head = HEADS[name]([3])
  made_weights = [w for made in _mades(head) for w in made.trainable_weights]
  assert made_weights  # built at construction, before any call
  head_refs = {w.ref() for w in head.trainable_weights}
  assert {w.ref() for w in made_weights} <= head_refs
  model = _model(HEADS[name])
  partial = {v.ref() for v in model.trainable_variables_for('partial')}
  made_refs = {w.ref() for made in _mades(model.partial_encoder.head)
               for w in made.trainable_weights}
  assert made_refs and made_refs <= partial


def _small_mlp(output_shape, name=None):
  return mlp.ResidualMLP(output_shape=output_shape, units=16, num_blocks=1,
                         name=name)


def _model(partial_head, features=4, latent_dim=3):
  vae = lambda fs: gaussian_vae.GaussianVAE(
      fs, latent_dim=latent_dim, encoder_network=_small_mlp,
      decoder_network=_small_mlp)
  partial = lambda d: matching.PartialEncoder(d, network=_small_mlp,
                                              head=partial_head)
  model = matching.PosteriorMatchingVAE([features], vae=vae,
                                        partial_encoder=partial)
  x = tf.zeros([2, features])
  model(x, tf.ones_like(x))  # builds every variable (through q.mean())
  return model


@pytest.mark.parametrize('name', sorted(HEADS))
def test_checkpoint_restores_the_same_function(name, tmp_path):
  """A fresh head / model restored from a checkpoint computes the same
  log_prob and samples exactly (weights, masks and orderings)."""
  head = HEADS[name]([3])
  params = _params(head, 4)
  z = tf.random.stateless_normal([4, 3], seed=[4, 4])
  path = tf.train.Checkpoint(head=head).save(str(tmp_path / 'head'))
  fresh = HEADS[name]([3])
  if name != 'mixture':  # the mixture head has no weights of its own
    assert not np.allclose(fresh.distribution(params).log_prob(z).numpy(),
                           head.distribution(params).log_prob(z).numpy())
  tf.train.Checkpoint(head=fresh).restore(path).assert_consumed()
  np.testing.assert_array_equal(fresh.distribution(params).log_prob(z).numpy(),
                                head.distribution(params).log_prob(z).numpy())

  model, other = _model(HEADS[name]), _model(HEADS[name])
  x = tf.random.stateless_normal([4, 4], seed=[1, 1])
  mask = tf.constant([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]],
                     tf.float32)
  z = tf.random.stateless_normal([4, 3], seed=[2, 2])
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / 'model'))
  status = tf.train.Checkpoint(model=other).restore(path)
  status.assert_existing_objects_matched()
  q, q_restored = model.partial_encoder(x, mask), other.partial_encoder(x, mask)
  np.testing.assert_array_equal(q_restored.log_prob(z).numpy(),
                                q.log_prob(z).numpy())
  np.testing.assert_array_equal(q_restored.sample(2, seed=[3, 3]).numpy(),
                                q.sample(2, seed=[3, 3]).numpy())


def test_orderings_are_fixed_functions_of_the_size():
  assert made_lib.fixed_permutation(6, 0) == (2, 0, 5, 1, 3, 4)
  for size in (1, 2, 5, 16, 64):
    for k in range(3):
      perm = made_lib.fixed_permutation(size, k)
      assert sorted(perm) == list(range(size))
      assert perm == made_lib.fixed_permutation(size, k)
      if size > 1:
        assert perm != tuple(range(size))
  a = flows.MaskedAutoregressiveFlow([5], num_flows=3, hidden_units=(8,))
  b = flows.MaskedAutoregressiveFlow([5], num_flows=3, hidden_units=(8,))
  assert a.permutations == b.permutations and len(a.permutations) == 2
  # The MADE masks (zero patterns of the kernels) are the same in both.
  for made_a, made_b in zip(a.mades, b.mades):
    for wa, wb in zip(made_a.trainable_weights, made_b.trainable_weights):
      np.testing.assert_array_equal(wa.numpy() == 0, wb.numpy() == 0)


@pytest.mark.parametrize('build', [
    lambda: mixtures.GaussianMixture([3], num_components=0),
    lambda: mixtures.GaussianMixture([3], num_components=2.5),
    lambda: mixtures.GaussianMixture([2, 2]),
    lambda: autoregressive.AutoregressiveGaussianMixture([3],
                                                         num_components=0),
    lambda: autoregressive.AutoregressiveGaussianMixture([3],
                                                         hidden_units=64),
    lambda: autoregressive.AutoregressiveGaussianMixture([3],
                                                         hidden_units=(8, 0)),
    lambda: autoregressive.AutoregressiveGaussianMixture([3], context_size=0),
    lambda: flows.MaskedAutoregressiveFlow([3], num_flows=0),
    lambda: flows.MaskedAutoregressiveFlow([3], base='cholesky'),
    lambda: flows.InverseAutoregressiveFlow([3], max_log_scale=0.0),
    lambda: flows.InverseAutoregressiveFlow([3, 1]),
    lambda: flows.InverseAutoregressiveFlow([3], activation='rleu'),
])
def test_bad_arguments_are_user_errors(build):
  with pytest.raises(UserError):
    build()


def test_heads_are_chosen_and_configured_from_gin():
  try:
    gin.parse_config("""
        PartialEncoder.head = @partial/AutoregressiveGaussianMixture
        partial/AutoregressiveGaussianMixture.num_components = 4
        partial/AutoregressiveGaussianMixture.hidden_units = (8,)
        partial/AutoregressiveGaussianMixture.context_size = 6
    """)
    encoder = matching.PartialEncoder(3, network=_small_mlp)
    assert isinstance(encoder.head,
                      autoregressive.AutoregressiveGaussianMixture)
    assert encoder.head.num_components == 4
    assert encoder.head.params_shape == (6,)
    gin.parse_config(
        'partial/AutoregressiveGaussianMixture.num_components = 0')
    with pytest.raises(UserError, match='num_components'):
      matching.PartialEncoder(3, network=_small_mlp)
    for name in ('GaussianMixture', 'MaskedAutoregressiveFlow',
                 'InverseAutoregressiveFlow'):
      gin.parse_config(f'PartialEncoder.head = @partial/{name}')
    with pytest.raises(Exception, match='NoSuchHead'):
      gin.parse_config('PartialEncoder.head = @partial/NoSuchHead')
  finally:
    gin.clear_config()


def test_pm_loss_trains_an_autoregressive_partial_posterior():
  """The frozen-VAE Posterior Matching step runs (and lowers L_PM) with an
  autoregressive partial posterior, compiled with XLA as the trainer does."""
  model = _model(HEADS['maf'])
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(128, 2)) @ rng.normal(size=(2, 4)),
                  tf.float32)
  variables = model.trainable_variables_for('partial')
  optimizer = keras.optimizers.Adam(1e-2)
  compute = tf.function(jit_compile=True)(
      lambda mask, seed: model.per_example_losses(
          x, mask, 1.0, objective='partial', seed=seed)['loss'])

  @tf.function
  def step(i):
    mask = tf.cast(tf.random.stateless_uniform(x.shape, seed=[1, i]) < 0.5,
                   tf.float32)
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(compute(mask, tf.stack([2, i])))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  losses = [float(step(tf.constant(i))) for i in range(25)]
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


def test_trainer_runs_on_mirrored_replicas(tmp_path):
  """The real trainer (two replicas) trains a model with an autoregressive
  partial posterior; the MADE masks survive its updates of mirrored
  variables."""
  name = 'ar_mixture'
  # Reduction through one device: no collective ops, whose instance keys
  # would collide with those of other MirroredStrategy objects in the process.
  strategy = tf.distribute.MirroredStrategy(
      ['/cpu:0', '/cpu:1'],
      cross_device_ops=tf.distribute.ReductionToOneDevice())
  with strategy.scope():
    model = _model(HEADS[name])
  mades = _mades(model.partial_encoder.head)
  before = [w.numpy() for made in mades for w in made.trainable_weights]
  cfg = trainer_lib.TrainConfig(
      num_steps=4, batch_size=16, learning_rate=1e-2,
      train_mask=masks.BernoulliMask(0.5), checkpoint_every=4, log_every=4,
      summary_every=4, image_summary_every=0)
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(64, 2)) @ rng.normal(size=(2, 4))).astype(np.float32)
  trainer = trainer_lib.Trainer(model, strategy, str(tmp_path), cfg)
  metrics = trainer.train(lambda start: train_batches(
      x, cfg.batch_size, seed=cfg.seed, start_step=start,
      mask_sampler=cfg.train_mask))
  assert int(trainer.global_step.numpy()) == 4
  assert int(trainer.nonfinite_steps.numpy()) == 0
  assert np.isfinite(metrics['pm_loss'])
  after = [w.numpy() for made in mades for w in made.trainable_weights]
  masked_kernels = 0
  for old, new in zip(before, after):
    assert not np.array_equal(old, new)  # the MADE was trained
    if old.ndim == 2 and np.any(old == 0):  # a masked kernel
      masked_kernels += 1
      assert np.all(new[old == 0] == 0)
  assert masked_kernels > 0


# ----------------------------------------------------------- analytic KL
def test_analytic_kl_is_the_gaussian_closed_form():
  full_head, diag_head = heads.FullCovarianceGaussian([3]), \
      heads.DiagonalGaussian([3])
  q_params = _params(full_head, 2, seed=1)
  q = full_head.distribution(q_params)
  r = full_head.distribution(
      q_params + _params(full_head, 2, seed=2, scale=0.3))
  got = kl.posterior_matching_kl(q, r).numpy()
  assert got.shape == (2,)
  m1, m2 = q.mean().numpy(), r.mean().numpy()
  s1, s2 = q.covariance().numpy(), r.covariance().numpy()
  for i in range(2):
    inv = np.linalg.inv(s2[i])
    diff = m2[i] - m1[i]
    expected = 0.5 * (np.trace(inv @ s1[i]) + diff @ inv @ diff - 3
                      + np.linalg.slogdet(s2[i])[1]
                      - np.linalg.slogdet(s1[i])[1])
    np.testing.assert_allclose(got[i], expected, rtol=1e-4)
  np.testing.assert_allclose(kl.posterior_matching_kl(q, q).numpy(), 0,
                             atol=1e-5)
  # L_PM = KL + H[q]: the sampled loss and the KL differ by q's entropy.
  z = q.sample(20000, seed=[0, 1])
  neg_log_q = -r.log_prob(z).numpy()
  standard_error = neg_log_q.std(0) / np.sqrt(len(neg_log_q))
  np.testing.assert_array_less(
      np.abs(neg_log_q.mean(0) - (got + q.entropy().numpy())),
      5 * standard_error)
  # Diagonal and Independent(Normal) posteriors mix with full ones.
  diag = diag_head.distribution(_params(diag_head, 2, seed=3))
  independent = tfd.Independent(tfd.Normal(diag.mean(), diag.stddev()), 1)
  np.testing.assert_allclose(kl.posterior_matching_kl(q, independent).numpy(),
                             kl.posterior_matching_kl(q, diag).numpy(),
                             rtol=1e-5)


def test_analytic_kl_refuses_non_gaussian_posteriors():
  full_head = heads.FullCovarianceGaussian([3])
  q = full_head.distribution(_params(full_head, 2))
  for name in sorted(HEADS):
    head = HEADS[name]([3])
    with pytest.raises(UserError, match='Gaussian'):
      kl.posterior_matching_kl(q, head.distribution(_params(head, 2)))
  with pytest.raises(UserError, match='latent'):
    kl.posterior_matching_kl(
        q, heads.DiagonalGaussian([2]).distribution(tf.zeros([2, 4])))
