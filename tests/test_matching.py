"""The partial encoder and the Posterior Matching objective."""
import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import keras_api
from pm_zoo import matching
from pm_zoo.distributions import heads
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import gaussian_vae
from pm_zoo.networks import mlp


def small_mlp(output_shape, name=None):
  return mlp.ResidualMLP(output_shape=output_shape, units=16, num_blocks=1,
                         name=name)


def make_model(stop_gradient=True, partial_head=heads.FullCovarianceGaussian,
               features=4, pm_loss='sampled'):
  vae = lambda fs: gaussian_vae.GaussianVAE(
      fs, latent_dim=2, encoder_network=small_mlp, decoder_network=small_mlp,
      encoder_head=heads.FullCovarianceGaussian, decoder_head=heads.Gaussian)
  partial = lambda d: matching.PartialEncoder(d, network=small_mlp,
                                              head=partial_head)
  model = matching.PosteriorMatchingVAE([features], vae=vae,
                                        partial_encoder=partial,
                                        stop_gradient=stop_gradient,
                                        pm_loss=pm_loss)
  x = tf.zeros([2, features])
  model(x, tf.ones_like(x))
  return model


def test_observed_input_hides_unobserved_values():
  x = tf.constant([[1.0, 2.0, 3.0]])
  b = tf.constant([[1.0, 0.0, 1.0]])
  np.testing.assert_array_equal(matching.observed_input(x, b).numpy(),
                                [[1.0, 0.0, 3.0, 1.0, 0.0, 1.0]])


def test_partial_posterior_ignores_unobserved_features():
  model = make_model()
  mask = tf.constant([[1.0, 0.0, 1.0, 0.0]])
  x1 = tf.constant([[0.5, 9.0, -1.0, 3.0]])
  x2 = tf.constant([[0.5, -7.0, -1.0, 0.0]])
  q1 = model.partial_encoder(x1, mask)
  q2 = model.partial_encoder(x2, mask)
  np.testing.assert_allclose(q1.mean().numpy(), q2.mean().numpy())
  x3 = tf.constant([[0.6, 9.0, -1.0, 3.0]])  # an observed value changes
  assert not np.allclose(model.partial_encoder(x3, mask).mean().numpy(),
                         q1.mean().numpy())


def _pm_loss_gradient_on_encoder(stop_gradient):
  model = make_model(stop_gradient=stop_gradient)
  x = tf.random.stateless_normal([8, 4], seed=[0, 1])
  mask = tf.cast(tf.random.stateless_uniform([8, 4], seed=[0, 2]) < 0.5,
                 tf.float32)
  with tf.GradientTape() as tape:
    terms = model.per_example_losses(x, mask, 1.0, seed=[3, 4])
    pm = tf.reduce_sum(terms['pm_loss'])
  grads = tape.gradient(pm, model.vae.encoder_network.trainable_variables,
                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
  return tf.linalg.global_norm(grads).numpy()


def test_stop_gradient_keeps_pm_loss_off_the_vae_encoder():
  assert _pm_loss_gradient_on_encoder(stop_gradient=True) == 0.0
  assert _pm_loss_gradient_on_encoder(stop_gradient=False) > 0.0


def test_objectives_choose_their_variables():
  model = make_model()
  partial = model.trainable_variables_for('partial')
  vae = model.trainable_variables_for('vae')
  assert {v.ref() for v in partial} == {
      v.ref() for v in model.partial_encoder.trainable_variables}
  assert {v.ref() for v in vae} == {v.ref() for v in model.vae.trainable_variables}
  assert len(model.trainable_variables_for('joint')) == len(partial) + len(vae)
  with pytest.raises(UserError, match='objective'):
    model.trainable_variables_for('both')


def test_loss_terms_are_consistent():
  model = make_model()
  x = tf.random.stateless_normal([5, 4], seed=[0, 1])
  mask = tf.ones_like(x)
  terms = model.per_example_losses(x, mask, 0.5, seed=[1, 1])
  for value in terms.values():
    assert value.shape == (5,)
  np.testing.assert_allclose(
      terms['elbo'].numpy(),
      (terms['log_likelihood'] - terms['kl']).numpy(), rtol=1e-5)
  np.testing.assert_allclose(
      terms['loss'].numpy(),
      (-(terms['log_likelihood'] - 0.5 * terms['kl']) + terms['pm_loss']
       ).numpy(), rtol=1e-5)
  assert np.all(terms['kl'].numpy() >= 0)


@pytest.mark.parametrize('partial_head', [heads.DiagonalGaussian,
                                          heads.FullCovarianceGaussian])
def test_pm_loss_decreases_with_a_frozen_vae(partial_head):
  """Training only theta lowers -E_q(z|x)[log q_theta(z|x_o)]."""
  model = make_model(partial_head=partial_head)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(256, 2)) @ rng.normal(size=(2, 4)),
                  tf.float32)
  variables = model.trainable_variables_for('partial')
  vae_before = [v.numpy() for v in model.vae.trainable_variables]
  optimizer = keras.optimizers.Adam(1e-2)

  @tf.function
  def step(i):
    mask = tf.cast(tf.random.stateless_uniform(x.shape, seed=[1, i]) < 0.5,
                   tf.float32)
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(model.per_example_losses(
          x, mask, 1.0, objective='partial', seed=[2, i])['loss'])
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  # A tensor step index: a Python int would retrace the function each step.
  losses = [float(step(tf.constant(i))) for i in range(80)]
  assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
  for before, v in zip(vae_before, model.vae.trainable_variables):
    np.testing.assert_array_equal(before, v.numpy())


def test_analytic_kl_is_the_sampled_loss_minus_the_posterior_entropy():
  """KL(q_psi || q_theta) = E_{q_psi}[-log q_theta(z)] - H(q_psi) (Eq. 3 vs 5)."""
  # Seeded weights: unseeded, they depend on what the process built before,
  # and with some the Monte Carlo error of 20k draws neared the tolerance.
  with keras_api.seeded_initializers(0):
    model = make_model(pm_loss='analytic_kl')
  x = tf.random.stateless_normal([3, 4], seed=[5, 6])
  mask = tf.constant([[1.0, 0.0, 1.0, 0.0]] * 3)
  kl = model.per_example_losses(x, mask, 1.0, seed=[1, 2])['pm_loss'].numpy()
  posterior = model.vae.encode(x)
  z = posterior.sample(200000, seed=[3, 4])
  cross_entropy = -tf.reduce_mean(
      model.partial_encoder(x, mask).log_prob(z), axis=0)
  expected = (cross_entropy - posterior.entropy()).numpy()
  np.testing.assert_allclose(kl, expected, rtol=0.02, atol=0.02)
  assert np.all(kl >= 0)


def test_analytic_kl_respects_stop_gradient():
  for stop, moves in ((True, False), (False, True)):
    model = make_model(stop_gradient=stop, pm_loss='analytic_kl')
    x = tf.random.stateless_normal([8, 4], seed=[0, 1])
    with tf.GradientTape() as tape:
      pm = tf.reduce_sum(model.per_example_losses(
          x, tf.ones_like(x), 1.0, seed=[3, 4])['pm_loss'])
    grads = tape.gradient(pm, model.vae.encoder_network.trainable_variables,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    assert (tf.linalg.global_norm(grads).numpy() > 0) == moves


def test_analytic_kl_needs_gaussian_posteriors_and_a_known_name():
  from pm_zoo.distributions import mixtures  # pylint: disable=g-import-not-at-top
  model = make_model(pm_loss='analytic_kl',
                     partial_head=lambda shape, name=None:
                     mixtures.GaussianMixture(shape, num_components=2,
                                              name=name))
  x = tf.zeros([2, 4])
  with pytest.raises(UserError, match='Gaussian'):
    model.per_example_losses(x, tf.ones_like(x), 1.0, seed=[1, 1])
  with pytest.raises(UserError, match='pm_loss'):
    make_model(pm_loss='exact')
