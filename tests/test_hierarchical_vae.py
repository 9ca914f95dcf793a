"""The hierarchical VAE: block strings, pixel likelihood, contract, PM loss."""
import functools

import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from pm_zoo import matching
from pm_zoo.distributions import heads
from pm_zoo.distributions import logistic_mixture
from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.models import hierarchical_vae as hv
from pm_zoo.tasks import likelihood

PAPER_ENCODER = '28x6,28d2,14x4,14d2,7x2,7d2,3x2,3d2,1x2'
PAPER_DECODER = '1x2,3m1,3x2,7m3,7x2,14m7,14x4,28m14,28x6'
TINY = dict(encoder_blocks='8x1,8d2,4x1,4d2,2x1',
            decoder_blocks='2x1,4m2,4x1,8m4,8x1', width=8, latent_channels=2,
            num_components=3)


def tiny_model(covariance='diag', seed=0):
  tf.keras.utils.set_random_seed(seed)  # pylint: disable=no-member
  model = matching.PosteriorMatchingVAE(
      (8, 8, 1), vae=functools.partial(hv.HierarchicalVAE, **TINY),
      partial_encoder=functools.partial(hv.HierarchicalPartialEncoder,
                                        covariance=covariance),
      pm_loss='analytic_kl', stop_gradient=True)
  x = images(3)
  model(x, tf.ones_like(x))
  return model


def images(n, seed=0):
  rng = np.random.default_rng(seed)
  return tf.constant(rng.integers(0, 256, size=(n, 8, 8, 1)) / 255.0,
                     tf.float32)


def test_the_papers_block_strings_give_twenty_latent_layers():
  enc = hv.parse_blocks(PAPER_ENCODER, 'encoder')
  dec = hv.parse_blocks(PAPER_DECODER, 'decoder')
  assert len(enc) == 6 + 1 + 4 + 1 + 2 + 1 + 2 + 1 + 2
  assert len(dec) == 20
  assert [s.mixin for s in dec if s.mixin] == [1, 3, 7, 14]
  hv._check_structure(enc, dec, 28)  # pylint: disable=protected-access


@pytest.mark.parametrize('text,kind,match', [
    ('28x6,28q2', 'encoder', "bad token '28q2'"),
    ('', 'decoder', 'empty'),
    ('28x0', 'encoder', 'positive'),
    ('3m3', 'decoder', 'lower resolution'),
    ('28m14', 'encoder', "bad token '28m14'"),
])
def test_bad_block_strings_are_one_line_errors(text, kind, match):
  with pytest.raises(UserError, match=match) as info:
    hv.parse_blocks(text, kind)
  assert '\n' not in str(info.value)


def test_block_strings_that_do_not_fit_the_image_are_refused():
  with pytest.raises(UserError, match='image size 8'):
    hv.HierarchicalVAE((8, 8, 1), encoder_blocks='28x1',
                       decoder_blocks='28x1')
  # '8d2' keeps its output at resolution 4 only: nothing to read at 8.
  with pytest.raises(UserError, match=r'decoder block at resolution 8 has no '
                     r'encoder activation at that resolution \(encoder has '
                     r'\[4\]\)'):
    hv.HierarchicalVAE((8, 8, 1), encoder_blocks='8d2',
                       decoder_blocks='4x1,8m4')
  with pytest.raises(UserError, match='no earlier decoder block'):
    hv.HierarchicalVAE((8, 8, 1), encoder_blocks='8x1,8d2,4x1',
                       decoder_blocks='8m4')


def test_logistic_mixture_matches_a_hand_computation():
  rng = np.random.default_rng(1)
  k = 4
  logits = rng.normal(size=(5, k))
  loc = rng.uniform(-20, 275, size=(5, k))
  log_scale = rng.uniform(-1, 3, size=(5, k))
  y = np.array([0, 3, 128, 254, 255], np.float64)
  dist = logistic_mixture.DiscretizedLogisticMixture(logits, loc, log_scale)
  got = dist.log_prob(tf.constant(y / 255.0, tf.float32)).numpy()
  # By hand: sum_k pi_k [F_k(y + 1/2) - F_k(y - 1/2)], the edges open.
  s = np.exp(log_scale)
  upper = np.where(y[:, None] == 255, 1.0,
                   special.expit((y[:, None] + 0.5 - loc) / s))
  lower = np.where(y[:, None] == 0, 0.0,
                   special.expit((y[:, None] - 0.5 - loc) / s))
  weights = special.softmax(logits, axis=-1)
  want = np.log(np.sum(weights * (upper - lower), axis=-1))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # A distribution over the 256 levels.
  levels = tf.constant(np.arange(256)[:, None] / 255.0, tf.float32)
  total = tf.reduce_sum(tf.exp(dist.log_prob(levels)), axis=0).numpy()
  np.testing.assert_allclose(total, 1.0, rtol=1e-4)
  # The mean is the quantized distribution's, within half a level.
  levels = np.arange(256.0)
  grid = levels[:, None, None]
  upper = np.where(grid == 255, 1.0, special.expit((grid + 0.5 - loc) / s))
  lower = np.where(grid == 0, 0.0, special.expit((grid - 0.5 - loc) / s))
  mean = np.sum(levels[:, None] * np.sum(weights * (upper - lower), -1), 0)
  np.testing.assert_allclose(dist.mean().numpy() * 255, mean, atol=0.5)


def _stable_log_mass(y, loc, log_scale):
  """float64 log sum_k pi_k [F_k(y + 1/2) - F_k(y - 1/2)] with uniform pi,
  each component's mass from its CDF left of its median and its survival
  function right of it (both exact for a logistic), edges open."""
  s = np.exp(log_scale)
  a = np.where(y[:, None] == 0, -np.inf, (y[:, None] - 0.5 - loc) / s)
  b = np.where(y[:, None] == 255, np.inf, (y[:, None] + 0.5 - loc) / s)
  right = y[:, None] > loc
  mass = np.where(right, special.expit(-a) - special.expit(-b),
                  special.expit(b) - special.expit(a))
  return special.logsumexp(np.log(mass), axis=-1) - np.log(loc.shape[-1])


def test_logistic_mixture_is_finite_far_in_both_tails():
  # Components of scale 1 level at 100-140: pixels 200 and 255 are 60-155
  # scales above all of them (mass ~1e-26 and less), pixel 0 100 below.
  # The quantized mixture gave NaN log-probabilities and gradients here.
  loc = np.array([[100., 120., 140.]] * 4)
  log_scale = np.zeros((4, 3))
  y = np.array([0., 30., 200., 255.])
  logits = tf.Variable(tf.zeros([4, 3]))
  loc_var = tf.Variable(tf.constant(loc, tf.float32))
  scale_var = tf.Variable(tf.constant(log_scale, tf.float32))
  with tf.GradientTape() as tape:
    log_prob = logistic_mixture.DiscretizedLogisticMixture(
        logits, loc_var, scale_var).log_prob(tf.constant(y / 255, tf.float32))
    total = tf.reduce_sum(log_prob)
  gradients = tape.gradient(total, [logits, loc_var, scale_var])
  np.testing.assert_allclose(log_prob.numpy(),
                             _stable_log_mass(y, loc, log_scale), rtol=1e-5)
  for gradient in gradients:
    assert np.all(np.isfinite(gradient.numpy()))
  # Pulling every component towards the far pixel 200 raises its mass.
  assert np.all(gradients[1].numpy()[2] > 0)


def test_logistic_mixture_is_finite_for_very_broad_components():
  # s = e^16 ~ 9e6 levels: a bin's mass ~1e-7 is below float32's resolution
  # of a CDF near 1/2; as a difference of log-CDFs it was log 0 = -inf, and
  # the mixture's gradient NaN although the other component kept the loss
  # finite.
  loc = np.array([[0., 128.]] * 3)
  log_scale = np.array([[16., 1.]] * 3)
  y = np.array([0., 3., 255.])
  loc_var = tf.Variable(tf.constant(loc, tf.float32))
  scale_var = tf.Variable(tf.constant(log_scale, tf.float32))
  with tf.GradientTape() as tape:
    log_prob = logistic_mixture.DiscretizedLogisticMixture(
        tf.zeros([3, 2]), loc_var, scale_var).log_prob(
            tf.constant(y / 255, tf.float32))
    total = tf.reduce_sum(log_prob)
  gradients = tape.gradient(total, [loc_var, scale_var])
  np.testing.assert_allclose(log_prob.numpy(),
                             _stable_log_mass(y, loc, log_scale), rtol=1e-5)
  for gradient in gradients:
    assert np.all(np.isfinite(gradient.numpy()))


def test_logistic_mixture_mean_counts_the_open_edges():
  # A broad component at 0 (s = 100 levels) puts 7.6% of its mass in the
  # open top bin: its mean is 61.8 levels, not its clipped location 0.
  dist = logistic_mixture.DiscretizedLogisticMixture(
      tf.zeros([1, 1]), tf.zeros([1, 1]), tf.fill([1, 1], float(np.log(100.0))))
  np.testing.assert_allclose(dist.mean().numpy() * 255, [61.796], atol=0.01)


def test_logistic_mixture_clips_scales_at_pixelcnnpp_minimum():
  # -7 on PixelCNN++'s [-1, 1] scale = -7 + log(127.5) on [0, 255]: a
  # component centred on a level puts 2 sigmoid(0.5 / s) - 1 in it.
  dist = logistic_mixture.DiscretizedLogisticMixture(
      tf.zeros([1, 1]), tf.fill([1, 1], 100.0), tf.fill([1, 1], -50.0))
  s = np.exp(-7.0) * 127.5
  want = np.log(2 * special.expit(0.5 / s) - 1)
  np.testing.assert_allclose(dist.log_prob([100 / 255]).numpy(), [want],
                             rtol=1e-4, atol=1e-6)


def test_pixel_likelihood_gives_per_pixel_log_probs():
  params = tf.random.stateless_normal([2, 8, 8, 3 * 3], seed=[0, 1])
  dist = logistic_mixture.pixel_likelihood(params, 3)
  x = images(2)
  per_pixel = heads.elementwise_log_prob(dist, x)
  assert per_pixel.shape == (2, 8, 8, 1)
  np.testing.assert_allclose(tf.reduce_sum(per_pixel, [1, 2, 3]).numpy(),
                             dist.log_prob(x).numpy(), rtol=1e-5)


def test_the_flat_latent_and_teacher_forcing():
  model = tiny_model()
  vae = model.vae
  assert vae.latent_shape == (sum(s.res ** 2 * 2 for s in vae.decoder_specs),)
  assert vae.noise_size == vae.latent_size
  x = images(3)
  noise = tf.random.stateless_normal([3, vae.noise_size], seed=[1, 2])
  terms = vae.training_terms(x, tf.constant(1.0), training=False, noise=noise)
  again = vae.training_terms(x, tf.constant(1.0), training=False, noise=noise)
  np.testing.assert_array_equal(terms.target.numpy(), again.target.numpy())
  assert terms.target.shape == (3, vae.latent_size)
  # decode / encode / prior run the top-down pass teacher-forced along z.
  np.testing.assert_allclose(
      vae.decode(terms.target).log_prob(x).numpy(),
      terms.scalars['log_likelihood'].numpy(), rtol=1e-4)
  log_q = vae.encode(x).log_prob(terms.target)
  log_p = vae.prior().log_prob(terms.target)
  # The draw is loc + scale eps: log q = sum_i log N(eps_i) - log scales.
  assert log_q.shape == log_p.shape == (3,)
  z = vae.prior().sample(2, seed=[3, 4])
  assert z.shape == (2, vae.latent_size)
  decoded = vae.decode(tf.stack([terms.target, terms.target]))
  assert decoded.batch_shape == (2, 3) and decoded.event_shape == (8, 8, 1)
  assert decoded.mean().numpy().min() >= 0 and decoded.mean().numpy().max() <= 1
  np.testing.assert_allclose(
      np.sum(terms.scalars['kl_layer_00'].numpy() * 0 + sum(
          terms.scalars[f'kl_layer_{i:02d}'] for i in range(vae.num_layers)
      ).numpy()), np.sum(terms.scalars['kl'].numpy()), rtol=1e-5)


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_the_pm_loss_trains_only_the_partial_posterior(covariance):
  model = tiny_model(covariance)
  vae_ids = {id(v) for v in model.vae.trainable_variables}
  partial = model.partial_encoder.trainable_variables
  assert partial and not vae_ids & {id(v) for v in partial}
  x = images(3)
  mask = tf.cast(tf.random.stateless_uniform(x.shape, [5, 6]) > 0.5,
                 tf.float32)
  noise = tf.random.stateless_normal([3, model.noise_size], seed=[1, 2])
  with tf.GradientTape(persistent=True) as tape:
    out = model.per_example_losses(x, mask, tf.constant(1.0), noise=noise)
    pm = tf.reduce_sum(out['pm_loss'])
  assert np.all(out['pm_loss'].numpy() >= 0)
  vae_grads = tape.gradient(pm, model.vae.trainable_variables)
  assert all(g is None or not np.any(g.numpy()) for g in vae_grads)
  partial_grads = tape.gradient(pm, partial)
  assert sum(g is not None and np.any(g.numpy()) for g in partial_grads) >= (
      len(partial) // 2)


def test_the_pm_kl_is_zero_for_a_partial_posterior_equal_to_the_full_one():
  """Along the trajectory, KL_i(q_i || q_theta,i) = 0 when q_theta,i = q_i:
  the per-layer KL is evaluated at the trajectory's states, layer by layer."""
  model = tiny_model()
  vae = model.vae
  x = images(2)
  terms = vae.training_terms(x, tf.constant(1.0), training=False,
                             seed=tf.constant([1, 1]))
  acts = vae.bottom_up(x)
  same = hv.TopDownDistribution(vae, acts=acts, batch_shape=[2])
  kl = hv.kl_along_trajectory(terms.posterior, same).numpy()
  np.testing.assert_allclose(kl, 0.0, atol=1e-4)
  other = model.partial_encoder(x, tf.zeros_like(x))
  assert np.all(hv.kl_along_trajectory(terms.posterior, other).numpy() > 1e-3)


def test_imputation_and_likelihoods_run_through_the_contract():
  model = tiny_model('full')
  x = images(2)
  mask = tf.concat([tf.ones([2, 4, 8, 1]), tf.zeros([2, 4, 8, 1])], axis=1)
  posterior = model.partial_encoder(x, mask)
  z = posterior.sample(3, seed=[1, 2])
  assert z.shape == (3, 2, model.vae.latent_size)
  assert posterior.log_prob(z).shape == (3, 2)
  estimator = likelihood.ConditionalLikelihood(model, num_samples=2,
                                               batch_size=2)
  joint = estimator.log_prob_joint(x.numpy())
  observed = estimator.log_prob_observed(x.numpy(), mask.numpy())
  conditional = estimator.conditional_log_prob(x.numpy(), mask.numpy())
  np.testing.assert_allclose(conditional, joint - observed, rtol=1e-5)
  assert np.all(observed > joint)  # more pixels, less probability
  bpd = estimator.bits_per_dim(x.numpy())
  np.testing.assert_allclose(bpd, -joint / (64 * np.log(2)), rtol=1e-5)


def test_the_partial_posterior_refuses_other_families():
  with pytest.raises(UserError, match='HierarchicalVAE'):
    hv.HierarchicalPartialEncoder(object())
  with pytest.raises(UserError, match='covariance'):
    hv.HierarchicalPartialEncoder(tiny_model().vae, covariance='banded')
  assert base.MARGINAL_LIKELIHOOD in hv.HierarchicalVAE.capabilities
  assert base.GAUSSIAN_LATENT not in hv.HierarchicalVAE.capabilities


@pytest.mark.parametrize('source,size', [(1, 3), (3, 7), (7, 14), (2, 4)])
def test_upsampling_is_the_nearest_neighbour_resize(source, size):
  x = tf.random.stateless_normal([2, source, source, 3], seed=[0, source])
  np.testing.assert_array_equal(
      hv.upsample_nearest(x, size).numpy(),
      tf.image.resize(x, [size, size], method='nearest').numpy())
