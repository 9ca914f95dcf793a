"""Active acquisition: entropies, the lookahead network and its objective,
the greedy policies, the XLA-compiled lookahead train step and the
next_feature function on raw inputs."""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo import masks
from pm_zoo.acquisition import entropy as entropy_lib
from pm_zoo.acquisition import features
from pm_zoo.acquisition import objective
from pm_zoo.acquisition import policies
from pm_zoo.acquisition.lookahead import LookaheadNetwork
from pm_zoo.acquisition.objective import LookaheadModel
from pm_zoo.acquisition.serving import NextFeature
from pm_zoo.data import Standardizer
from pm_zoo.distributions import mixtures
from test_matching import make_model
from test_matching import small_mlp

tfd = tfp.distributions
D = 4  # make_model's feature count; its latent size is 2.


def randomize(layer, seed=0, scale=0.3):
  """Gives every weight of ``layer`` a random value (heads start at zero)."""
  rng = np.random.default_rng(seed)
  for v in layer.weights:
    v.assign(scale * rng.normal(size=v.shape).astype(np.float32))


def lookahead_network(feature_shape=(D,), latent_dim=2, seed=0):
  net = LookaheadNetwork(feature_shape, latent_dim, network=small_mlp,
                         hidden_units=8)
  x = tf.zeros([1, *feature_shape])
  net(x, x)
  randomize(net, seed)
  return net


def random_batch(rows=5, seed=0, observed=0.4):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(rows, D)).astype(np.float32)
  mask = (rng.random((rows, D)) < observed).astype(np.float32)
  mask[:, 0] = 0.0  # Something is always left to acquire.
  return x, mask


# ------------------------------------------------------------ entropies ----


def test_analytic_and_monte_carlo_entropy_and_moments_agree():
  dist = tfd.MultivariateNormalTriL(
      loc=[[1.0, -2.0]], scale_tril=[[[1.5, 0.0], [0.7, 0.4]]])
  seed = tf.constant([3, 4])
  mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=[[0.0]]),
                                  tfd.MultivariateNormalTriL(
                                      loc=dist.loc[:, None],
                                      scale_tril=dist.scale.to_dense()[:, None]))
  assert entropy_lib.is_gaussian(dist)
  assert not entropy_lib.is_gaussian(mixture)
  np.testing.assert_allclose(entropy_lib.entropy(mixture, 20000, seed),
                             entropy_lib.entropy(dist, 1, seed), atol=0.03)
  mc_mean, mc_var = entropy_lib.moments(mixture, 20000, seed)
  mean, var = entropy_lib.moments(dist, 1, seed)
  np.testing.assert_allclose(mean, [[1.0, -2.0]])
  np.testing.assert_allclose(var, [[2.25, 0.65]], rtol=1e-6)
  np.testing.assert_allclose(mc_mean, mean, atol=0.05)
  np.testing.assert_allclose(mc_var, var, rtol=0.05)


def test_diagonal_cross_entropy_is_the_expected_negative_log_likelihood():
  target = tfd.MultivariateNormalDiag([0.5, -1.0], [0.8, 1.3])
  loc, log_scale = tf.constant([0.2, 0.1]), tf.constant([0.3, -0.2])
  z = target.sample(200000, seed=tf.constant([1, 2]))
  monte_carlo = -tf.reduce_mean(
      tfd.MultivariateNormalDiag(loc, tf.exp(log_scale)).log_prob(z))
  exact = entropy_lib.diagonal_cross_entropy(
      target.mean(), target.variance(), loc, log_scale)
  np.testing.assert_allclose(exact, monte_carlo, rtol=2e-3)
  np.testing.assert_allclose(
      entropy_lib.diagonal_entropy(log_scale),
      tfd.MultivariateNormalDiag(loc, tf.exp(log_scale)).entropy(), rtol=1e-6)


# ------------------------------------------------------ lookahead network ----


def test_lookahead_network_gives_one_gaussian_per_feature():
  net = lookahead_network()
  x, mask = random_batch()
  dist = net.distribution(x, mask)
  assert dist.batch_shape == [5, D] and dist.event_shape == [2]
  np.testing.assert_allclose(net.entropies(x, mask), dist.entropy(), rtol=1e-5)
  # Unobserved values do not reach the network.
  other = np.where(mask > 0, x, 100.0).astype(np.float32)
  np.testing.assert_allclose(net.entropies(other, mask),
                             net.entropies(x, mask), rtol=1e-6)


def test_folded_entropy_head_equals_the_full_network():
  net = lookahead_network(feature_shape=(3, 3, 1), latent_dim=4)
  rng = np.random.default_rng(1)
  x = rng.random((6, 3, 3, 1)).astype(np.float32)
  mask = (rng.random((6, 3, 3, 1)) < 0.5).astype(np.float32)
  step = NextFeature(net)
  kernel, _ = net.folded_entropy_head()
  assert kernel.shape == (8, 9)  # hidden x pixels: latent_dim times smaller.
  np.testing.assert_allclose(step.entropies(x, mask), net.entropies(x, mask),
                             rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- objective ----


def lookahead_model(target='expected_covariance', partial_head=None, pm=None):
  if pm is None:
    pm = make_model() if partial_head is None else make_model(
        partial_head=partial_head)
    randomize(pm.partial_encoder, 0)
  model = LookaheadModel(pm, network=lambda fs, d: LookaheadNetwork(
      fs, d, network=small_mlp, hidden_units=8), num_imputations=3,
                         num_candidates=2, target=target)
  x = tf.zeros([2, D])
  model(x, x)
  return model


def test_lookahead_objective_uses_only_unobserved_candidates():
  model = lookahead_model()
  assert model.noise_size == 3 * 2 + D  # imputation noise + candidate keys
  x, _ = random_batch(rows=3)
  mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], np.float32)
  noise = tf.random.stateless_normal([3, model.noise_size], seed=[0, 1])
  terms = model.per_example_losses(x, mask, 0.0, noise=noise)
  assert terms['loss'].shape == [3]
  assert terms['loss'][1] == 0.0  # nothing left to acquire in row 1
  assert np.all(np.isfinite(terms['loss']))
  # Row 0's only candidate is feature 3: the loss is its cross-entropy, the
  # same whatever the keys of the observed features.
  keys = noise.numpy()
  keys[0, 6:9] += 50.0
  again = model.per_example_losses(x, mask, 0.0, noise=tf.constant(keys))
  np.testing.assert_allclose(again['loss'][0], terms['loss'][0], rtol=1e-6)
  # The VAE and partial encoder are frozen: only the network trains.
  names = {v.name for v in model.trainable_variables_for('lookahead')}
  assert names == {v.name for v in model.network.trainable_variables}


def test_lookahead_targets_differ_by_the_spread_of_posterior_means():
  x, mask = random_batch(rows=4, seed=3)
  noise = tf.random.stateless_normal([4, 3 * 2 + D], seed=[2, 2])
  paper = lookahead_model('posterior')
  ours = lookahead_model('expected_covariance', pm=paper.pm)
  ours.network.set_weights(paper.network.get_weights())
  a = paper.per_example_losses(x, mask, 0.0, noise=noise)
  b = ours.per_example_losses(x, mask, 0.0, noise=noise)
  # Re-centring the targets at their mean removes a non-negative term.
  assert np.all(b['loss'].numpy() <= a['loss'].numpy() + 1e-6)
  assert np.any(b['loss'].numpy() < a['loss'].numpy() - 1e-4)
  np.testing.assert_allclose(a['target_entropy'], b['target_entropy'])


def test_expected_covariance_fits_the_scale_to_the_mean_posterior_variance():
  rng = np.random.default_rng(6)
  mean = tf.constant(rng.normal(size=(5, 2, 3, 4)), tf.float32)  # [S, B, C, d]
  variance = tf.constant(rng.random((5, 2, 3, 4)) + 0.1, tf.float32)
  loc = tf.constant(rng.normal(size=(2, 3, 4)), tf.float32)
  log_scale = tf.Variable(rng.normal(size=(2, 3, 4)) * 0.1, dtype=tf.float32)

  def loss_and_grad(target, loc):
    with tf.GradientTape() as tape:
      loss = objective.target_cross_entropy(mean, variance, loc, log_scale,
                                            target)
      total = tf.reduce_sum(loss)
    return loss, tape.gradient(total, log_scale)

  paper, _ = loss_and_grad('posterior', loc)
  np.testing.assert_allclose(paper, tf.reduce_mean(
      entropy_lib.diagonal_cross_entropy(mean, variance, loc, log_scale),
      axis=0), rtol=1e-6)
  ours, grad = loss_and_grad('expected_covariance', loc)
  np.testing.assert_allclose(ours, entropy_lib.diagonal_cross_entropy(
      tf.reduce_mean(mean, 0), tf.reduce_mean(variance, 0), loc, log_scale),
                             rtol=1e-6)
  # The location error does not move the scale, whose optimum (zero
  # gradient) is log sqrt(mean_s v).
  _, far_grad = loss_and_grad('expected_covariance', loc + 10.0)
  np.testing.assert_allclose(far_grad, grad, rtol=1e-5)
  log_scale.assign(0.5 * tf.math.log(tf.reduce_mean(variance, 0)))
  np.testing.assert_allclose(loss_and_grad('expected_covariance', loc)[1], 0.0,
                             atol=1e-5)


def test_lookahead_objective_handles_non_gaussian_partial_posteriors():
  model = lookahead_model(partial_head=mixtures.GaussianMixture)
  x, mask = random_batch(rows=3)
  noise = tf.random.stateless_normal([3, model.noise_size], seed=[0, 5])
  terms = model.per_example_losses(x, mask, 0.0, noise=noise)
  assert np.all(np.isfinite(terms['loss'])) and np.all(terms['loss'] > -50)


def test_xla_compiled_lookahead_train_step_matches_the_plain_step():
  """The trainer's per-replica step (loss and gradients) under XLA."""
  model = lookahead_model()
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(8, D)).astype(np.float32))
  mask = masks.UniformCountMask()([8, D], tf.constant([0, 3]))
  noise = tf.random.stateless_normal([8, model.noise_size], seed=[4, 4])
  variables = model.trainable_variables_for('lookahead')

  def step(x, mask, noise):
    with tf.GradientTape() as tape:
      terms = model.per_example_losses(x, mask, 0.0, 'lookahead', True,
                                       noise=noise)
      loss = tf.reduce_mean(terms['loss'])
    return loss, tape.gradient(loss, variables)

  plain_loss, plain_grads = tf.function(step)(x, mask, noise)
  xla_loss, xla_grads = tf.function(step, jit_compile=True)(x, mask, noise)
  assert np.isfinite(xla_loss)
  np.testing.assert_allclose(xla_loss, plain_loss, rtol=1e-5)
  for a, b in zip(plain_grads, xla_grads):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
  # The heads start at zero, but their gradients do not vanish.
  assert max(float(tf.reduce_max(tf.abs(g))) for g in xla_grads) > 0


# -------------------------------------------------------------- policies ----


def test_greedy_choice_skips_observed_features():
  scores = tf.constant([[0.0, 1.0, 2.0], [5.0, 4.0, 3.0], [1.0, 1.0, 1.0]])
  mask = tf.constant([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
  index, masked = policies.greedy_choice(scores, mask, (3,))
  np.testing.assert_array_equal(index, [1, 1, -1])
  assert masked[0, 0] == np.inf and masked[0, 2] == 2.0


def test_random_policy_picks_every_unobserved_feature_and_nothing_else():
  policy = policies.RandomPolicy((D,))
  mask = tf.constant([[1.0, 0.0, 1.0, 0.0]])
  picks = {int(policy.next_feature(tf.zeros([1, D]), mask,
                                   tf.constant([0, s]))[0][0])
           for s in range(40)}
  assert picks == {1, 3}


def test_sampling_policy_is_eq6_computed_candidate_by_candidate():
  model = make_model()
  randomize(model.partial_encoder, 2)
  x, mask = random_batch(rows=2, seed=4)
  seed = tf.constant([7, 8])
  policy = policies.SamplingPolicy(model, num_samples=6, rows_per_call=8,
                                   jit_compile=False)
  assert policy._chunk(2) == 1  # 8 rows: one sample of 2 x 4 candidates
  scores = policy.scores(tf.constant(x), tf.constant(mask), seed).numpy()
  # Reference: the same imputations, one candidate at a time.
  sample_seed = tf.random.experimental.stateless_split(seed, 2)[0]
  z = model.partial_encoder(x, mask).sample(6, seed=sample_seed)
  imputed = model.vae.decode(z).mean().numpy()  # [K, B, D]
  for b in range(2):
    for i in range(D):
      m = mask[b].copy()
      m[i] = 1.0
      rows = np.repeat((x[b] * mask[b])[None], 6, axis=0)
      if not mask[b, i]:  # re-observing an observed feature is a no-op
        rows[:, i] = imputed[:, b, i]
      h = model.partial_encoder(rows, np.repeat(m[None], 6, axis=0)).entropy()
      np.testing.assert_allclose(scores[b, i], h.numpy().mean(), rtol=1e-5)
  # Chunking is an implementation detail: one big chunk gives the same.
  whole = policies.SamplingPolicy(model, num_samples=6, rows_per_call=10**6)
  np.testing.assert_allclose(
      whole.scores(tf.constant(x), tf.constant(mask), seed), scores,
      rtol=1e-5)
  index, masked = policy.next_feature(tf.constant(x), tf.constant(mask), seed)
  assert np.all(mask[np.arange(2), index.numpy()] == 0)
  assert np.all(np.isinf(masked.numpy()[mask > 0]))


def test_sampling_policy_uses_monte_carlo_entropy_for_mixtures():
  model = make_model(partial_head=mixtures.GaussianMixture)
  assert policies.entropy_method(model) == 'monte carlo'
  policy = policies.SamplingPolicy(model, num_samples=2, entropy_samples=4)
  x, mask = random_batch(rows=2)
  index, scores = policy.next_feature(tf.constant(x), tf.constant(mask),
                                      tf.constant([1, 1]))
  assert np.all(np.isfinite(scores.numpy()[mask == 0]))
  assert np.all(mask[np.arange(2), index.numpy()] == 0)


# ---------------------------------------------------------- next_feature ----


def test_next_feature_takes_raw_inputs_and_nan_as_missing(tmp_path):
  net = lookahead_network()
  rng = np.random.default_rng(5)
  raw = rng.normal(5.0, 3.0, size=(50, D)).astype(np.float32)
  standardizer = Standardizer.from_data(raw)
  step = NextFeature(net, standardizer)
  x, mask = raw[:4], np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1],
                               [0, 1, 0, 1]], np.float32)
  out = step.next_feature(x, mask)
  expected = net.entropies(standardizer.transform(x) * mask, mask).numpy()
  expected[mask > 0] = np.inf
  np.testing.assert_allclose(out['expected_entropy'], expected, rtol=1e-5)
  np.testing.assert_array_equal(out['index'][:2], expected[:2].argmin(axis=1))
  assert out['index'][2] == -1  # every feature observed
  # NaN means missing, whatever the mask says.
  with_nan = x.copy()
  with_nan[0, 2] = np.nan
  nan_out = step.next_feature(with_nan, mask)
  mask_out = step.next_feature(x, mask * np.array([1, 1, 0, 1], np.float32))
  np.testing.assert_allclose(nan_out['expected_entropy'][0],
                             mask_out['expected_entropy'][0], rtol=1e-6)
  # Through a SavedModel signature, reloaded.
  path = str(tmp_path / 'saved')
  tf.saved_model.save(step, path, signatures={'next_feature': step.signature()})
  served = tf.saved_model.load(path).signatures['next_feature']
  reloaded = served(x=tf.constant(x), mask=tf.constant(mask))
  np.testing.assert_array_equal(reloaded['index'], out['index'])
  np.testing.assert_allclose(reloaded['expected_entropy'],
                             out['expected_entropy'], rtol=1e-6)


def test_features_of_images_are_pixels():
  fs = (2, 3, 2)
  assert features.num_features(fs) == 6
  units = tf.constant([[0, 1, 0, 0, 0, 1]], tf.float32)
  mask = features.to_mask(units, fs).numpy()
  assert mask.shape == (1, 2, 3, 2)
  np.testing.assert_array_equal(mask[0, 0, 1], [1, 1])
  np.testing.assert_array_equal(features.unit_mask(mask, fs), units)
