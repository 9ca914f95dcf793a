"""The base-VAE contract: the Gaussian VAE on it trains exactly as before.

``legacy_per_example_losses`` is the objective as ``PosteriorMatchingVAE``
computed it before the contract existed (Gaussian latent assumed inline); a
model that uses it and one that goes through ``BaseVAE.training_terms`` are
trained side by side from the same weights on the same batches, for the
sampled and the analytic-KL loss and for every objective.
"""
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo import masks
from pm_zoo import matching
from pm_zoo.distributions import kl as kl_lib
from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.training import trainer as trainer_lib
from test_matching import make_model
from test_trainer import dataset_fn

tfd = tfp.distributions
STEPS = 20


def legacy_per_example_losses(model, x, mask, kl_weight, objective='joint',
                              training=True, seed=None, noise=None,
                              observed=None):
  """The pre-contract objective (Gaussian posterior assumed inline)."""
  del observed
  posterior = model.vae.encode(x, training=training and objective != 'partial')
  if noise is not None:
    z = posterior.loc + posterior.scale.matvec(noise)
  else:
    z = posterior.sample(seed=seed)
  log_likelihood = model.vae.decode(
      z, training=training and objective != 'partial').log_prob(x)
  kl = tfd.kl_divergence(posterior, model.vae.prior())
  outputs = {'elbo': log_likelihood - kl, 'log_likelihood': log_likelihood,
             'kl': kl}
  vae_loss = -(log_likelihood - kl_weight * kl)
  if objective == 'vae':
    outputs.update(pm_loss=tf.zeros_like(kl), loss=vae_loss)
    return outputs
  frozen = model.stop_gradient or objective == 'partial'
  partial = model.partial_encoder(x, mask, training=training)
  if model.pm_loss == 'analytic_kl':
    target = posterior
    if frozen:
      target = tfd.MultivariateNormalTriL(
          loc=tf.stop_gradient(posterior.loc),
          scale_tril=tf.stop_gradient(posterior.scale.to_dense()))
    pm_loss = kl_lib.posterior_matching_kl(target, partial)
  else:
    pm_loss = -partial.log_prob(tf.stop_gradient(z) if frozen else z)
  outputs['pm_loss'] = pm_loss
  outputs['loss'] = (pm_loss if objective == 'partial'
                     else vae_loss + model.pm_weight * pm_loss)
  return outputs


def _legacy(model):
  """``model`` with the legacy objective in place of the contract's."""
  model.per_example_losses = types.MethodType(legacy_per_example_losses,
                                              model)
  return model


def _train(model, model_dir, cfg):
  trainer = trainer_lib.Trainer(model, tf.distribute.get_strategy(),
                                str(model_dir), cfg)
  trainer.train(dataset_fn(cfg))
  return trainer


@pytest.mark.parametrize('pm_loss,objective,stop_gradient', [
    ('sampled', 'joint', True), ('sampled', 'joint', False),
    ('analytic_kl', 'joint', True), ('sampled', 'partial', True),
    ('sampled', 'vae', True)])
def test_gaussian_vae_on_the_contract_trains_to_the_same_weights(
    tmp_path, pm_loss, objective, stop_gradient):
  cfg = trainer_lib.TrainConfig(
      num_steps=STEPS, batch_size=16, learning_rate=1e-2, objective=objective,
      train_mask=masks.BernoulliMask(0.5), checkpoint_every=STEPS,
      log_every=STEPS, summary_every=STEPS, image_summary_every=0,
      steps_per_loop=5)
  new = make_model(stop_gradient=stop_gradient, pm_loss=pm_loss)
  old = make_model(stop_gradient=stop_gradient, pm_loss=pm_loss)
  old.set_weights(new.get_weights())
  start = new.get_weights()
  if objective == 'partial':  # the frozen VAE is restored from a run
    cfg.vae_checkpoint = str(tmp_path / 'vae')
    tf.train.Checkpoint(model=new).save(str(tmp_path / 'vae' / 'ckpt'))
  _train(new, tmp_path / 'new', cfg)
  _train(_legacy(old), tmp_path / 'old', cfg)
  diffs = [float(np.max(np.abs(a - b)))
           for a, b in zip(new.get_weights(), old.get_weights())]
  print(f'{pm_loss}/{objective}/stop_gradient={stop_gradient}: contract vs '
        f'legacy after {STEPS} steps: max |dw| = {max(diffs):.3g}')
  # Tolerance: the same ops in the same order, so the weights agree to the
  # last bit on one device; 1e-6 leaves room for a reordered reduction.
  assert max(diffs) <= 1e-6
  moved = [not np.allclose(a, b) for a, b in zip(start, new.get_weights())]
  assert any(moved)  # it trained


def test_gaussian_vae_declares_its_latent():
  model = make_model()
  assert model.vae.latent_shape == (2,)
  assert model.noise_size == 2 and model.latent_dim == 2
  for capability in (base.GAUSSIAN_LATENT, base.MARGINAL_LIKELIHOOD,
                     base.GENERATIVE_PRIOR, base.REPARAMETERIZED):
    assert model.vae.has(capability)


class _CodeGridVAE(base.BaseVAE):
  """A minimal non-Gaussian family: a deterministic 2x2 grid of codes."""

  latent_dtype = tf.int32

  def __init__(self, feature_shape):
    super().__init__()
    self.feature_shape = tuple(feature_shape)
    self.logits = tf.Variable(tf.zeros([4]))

  @property
  def latent_shape(self):
    return (2, 2)

  def call(self, x, training=False):
    return x

  def training_terms(self, x, kl_weight, training=True, noise=None,
                     seed=None, observed=None):
    codes = tf.cast(x[:, :4] > 0, tf.int32)
    loss = tf.reduce_sum(self.logits ** 2) * tf.ones(tf.shape(x)[:1])
    return base.VAETerms(loss=loss, scalars={'reconstruction': loss},
                         target=tf.reshape(codes, [-1, 2, 2]))

  def decode(self, z, training=False):
    return tfd.Independent(tfd.Normal(tf.cast(z, tf.float32), 1.0), 2)


def test_a_family_without_a_capability_is_refused_in_one_line():
  vae = _CodeGridVAE((4,))
  with pytest.raises(UserError) as error:
    vae.require(base.GAUSSIAN_LATENT, 'the lookahead network')
  message = str(error.value)
  assert '\n' not in message
  assert 'lookahead network' in message and '_CodeGridVAE' in message
  with pytest.raises(UserError, match='reparameterised'):
    matching.PosteriorMatchingVAE(
        (4,), vae=_CodeGridVAE,
        partial_encoder=lambda vae: None, stop_gradient=False)


def test_analytic_kl_needs_a_posterior_density():

  class _Grid(tf.Module):
    def __call__(self, x, mask, training=False):
      return tfd.Independent(tfd.Categorical(logits=tf.zeros([2, 2, 2, 2])),
                             2)

  model = matching.PosteriorMatchingVAE(
      (4,), vae=_CodeGridVAE, partial_encoder=lambda vae: _Grid(),
      pm_loss='analytic_kl')
  x = tf.ones([2, 4])
  with pytest.raises(UserError, match="pm_loss='sampled'"):
    model.per_example_losses(x, tf.ones_like(x), 1.0)
  model.pm_loss = 'sampled'
  terms = model.per_example_losses(x, tf.ones_like(x), 1.0)
  # Two positions x two cells, each categorical over 2 codes: 4 log 2.
  np.testing.assert_allclose(terms['pm_loss'].numpy(), 4 * np.log(2.0),
                             rtol=1e-6)
  assert set(terms) == {'loss', 'pm_loss', 'reconstruction'}
