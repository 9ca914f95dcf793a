"""VQ-VAE and the conditional PixelCNN over code grids: contracts at tiny sizes."""
import functools
import re

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import keras_api
from pm_zoo import matching
from pm_zoo.distributions import pixelcnn
from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.models.gaussian_vae import GaussianVAE
from pm_zoo.models.vq_vae import VQVAE
from pm_zoo.tasks import imputation
from pm_zoo.tasks.likelihood import ConditionalLikelihood

SHAPE = (8, 8, 1)
TINY_VQ = functools.partial(VQVAE, num_codes=6, embedding_dim=3, hidden=4,
                            residual_hidden=4, num_residual_blocks=1)
TINY_CNN = functools.partial(pixelcnn.ConditionalPixelCNN, filters=6,
                             num_blocks=2, dropout=0.0, conditioning_dim=5,
                             conditioning_hidden=4, conditioning_channels=2)


def tiny_model(**vq):
  model = matching.PosteriorMatchingVAE(
      SHAPE, vae=functools.partial(TINY_VQ, **vq), partial_encoder=TINY_CNN)
  x = tf.random.stateless_uniform([4, *SHAPE], seed=[1, 2])
  model(x, tf.ones_like(x))
  return model, x


def test_pixelcnn_logits_depend_only_on_earlier_codes_and_see_all_of_them():
  """Perturbing code q changes the logits at p iff q < p (raster order).

  "only": causality; "all of them": no blind spot (the vertical and
  horizontal stacks together reach every earlier position).
  """
  grid, k = (4, 5), 7
  network = pixelcnn.PixelCNNNetwork(k, filters=8, num_blocks=4, dropout=0.0)
  condition = tf.random.stateless_normal([1, 3], seed=[0, 1])
  codes = tf.random.stateless_uniform([1, *grid], seed=[3, 4], maxval=k,
                                      dtype=tf.int32)
  base_logits = network(codes, condition).numpy()[0]
  size = grid[0] * grid[1]
  for q in range(size):
    i, j = divmod(q, grid[1])
    changed = codes.numpy().copy()
    changed[0, i, j] = (changed[0, i, j] + 1) % k
    logits = network(tf.constant(changed), condition).numpy()[0]
    moved = np.abs(logits - base_logits).max(axis=-1).reshape(-1)
    assert np.all(moved[:q + 1] == 0.0), f'position <= {q} saw code {q}'
    assert np.all(moved[q + 1:] > 0.0), f'a position after {q} missed it'
  # The conditioning reaches the first position.
  other = network(codes, condition + 1.0).numpy()[0]
  assert np.abs(other[0, 0] - base_logits[0, 0]).max() > 0


def test_spatial_conditioning_is_per_position_and_keeps_codes_causal():
  """With ``spatial_condition`` the map at every cell q moves the logits at
  q (it is really per position), and the logits still depend on earlier
  codes only. (The map may reach other positions too: it is a function of
  x_o, not of the codes, so the vertical stack may carry it anywhere.)"""
  grid, k = (3, 4), 5
  network = pixelcnn.PixelCNNNetwork(k, filters=8, num_blocks=2, dropout=0.0,
                                     spatial_condition=True)
  condition = tf.random.stateless_normal([1, 3], seed=[0, 1])
  cmap = tf.random.stateless_normal([1, *grid, 2], seed=[1, 2]).numpy()
  codes = tf.random.stateless_uniform([1, *grid], seed=[3, 4], maxval=k,
                                      dtype=tf.int32)
  base_logits = network(codes, condition, condition_map=cmap).numpy()[0]
  size = grid[0] * grid[1]
  for q in range(size):
    i, j = divmod(q, grid[1])
    changed = cmap.copy()
    changed[0, i, j] += 1.0
    logits = network(codes, condition, condition_map=changed).numpy()[0]
    assert np.abs(logits[i, j] - base_logits[i, j]).max() > 0.0, (
        f'position {q} missed its own map')
    changed_codes = codes.numpy().copy()
    changed_codes[0, i, j] = (changed_codes[0, i, j] + 1) % k
    logits = network(tf.constant(changed_codes), condition,
                     condition_map=cmap).numpy()[0]
    moved = np.abs(logits - base_logits).max(axis=-1).reshape(-1)
    assert np.all(moved[:q + 1] == 0.0), f'position <= {q} saw code {q}'
    assert np.all(moved[q + 1:] > 0.0), f'a position after {q} missed it'
  with pytest.raises(ValueError, match='condition_map'):
    network(codes, condition)


def test_spatially_conditioned_partial_encoder_trains_and_samples():
  model = matching.PosteriorMatchingVAE(
      SHAPE, vae=TINY_VQ,
      partial_encoder=functools.partial(TINY_CNN, spatial_conditioning=True))
  x = tf.random.stateless_uniform([4, *SHAPE], seed=[1, 2])
  mask = tf.cast(tf.random.stateless_uniform(x.shape, seed=[3, 3]) > 0.5,
                 tf.float32)
  q = model.partial_encoder(x, mask)
  assert q.condition_map.shape == (4, 2, 2, 2)
  codes = q.sample(3, seed=[5, 6])
  assert codes.shape == (3, 4, 2, 2)
  variables = model.partial_encoder.trainable_variables
  assert any('condition_map' in v.name for v in variables)
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(model.partial_encoder(x, mask).log_prob(codes))
  grads = tape.gradient(loss, variables)
  conditioner = [g for v, g in zip(variables, grads)
                 if 'conditioner' in v.name]
  assert conditioner and all(
      g is not None and np.any(g.numpy() != 0) for g in conditioner)


def test_code_grid_log_prob_is_the_sum_of_categoricals_and_samples_match():
  model, x = tiny_model()
  q = model.partial_encoder(x, tf.ones_like(x))
  assert q.batch_shape == [4] and q.event_shape == [2, 2]
  codes = q.sample(3, seed=[5, 6])
  assert codes.shape == (3, 4, 2, 2) and codes.dtype == tf.int32
  assert np.all((codes.numpy() >= 0) & (codes.numpy() < 6))
  logits = q.logits(codes)
  expected = tf.reduce_sum(tfd_categorical_log_prob(logits, codes), [-2, -1])
  np.testing.assert_allclose(q.log_prob(codes), expected, rtol=1e-5)
  # Probabilities over all 6**4 grids of one row sum to one.
  grids = np.stack(np.meshgrid(*[range(6)] * 4, indexing='ij'), -1)
  grids = grids.reshape(-1, 1, 2, 2)
  one = model.partial_encoder(x[:1], tf.ones_like(x[:1]))
  total = tf.reduce_sum(tf.exp(one.log_prob(tf.constant(grids, tf.int32))))
  np.testing.assert_allclose(total.numpy(), 1.0, rtol=1e-4)


def tfd_categorical_log_prob(logits, codes):
  return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=codes,
                                                         logits=logits)


def test_sampler_draws_the_model_distribution():
  """Frequencies of many draws of one row match exp(log_prob)."""
  model, x = tiny_model()
  q = model.partial_encoder(x[:1], tf.ones_like(x[:1]))
  draws = q.sample(4000, seed=[7, 8]).numpy().reshape(4000, 4)
  first = np.bincount(draws[:, 0], minlength=6) / 4000
  logits = q.logits(tf.zeros([1, 1, 2, 2], tf.int32))[0, 0, 0, 0]
  np.testing.assert_allclose(first, tf.nn.softmax(logits).numpy(), atol=0.03)


@pytest.mark.parametrize('grid,blocks,jit,spatial,seed', [
    ((4, 5), 4, False, False, 3), ((3, 3), 3, True, False, 3),
    ((4, 5), 3, False, True, 5), ((3, 4), 2, True, True, 4)])
def test_cached_sampler_draws_the_inverse_cdf_of_the_full_logits(
    grid, blocks, jit, spatial, seed):
  """Every drawn code is the inverse CDF of its uniform under the logits
  that the whole-grid network (teacher forcing) gives at that position.

  The sampler runs the vertical stack one grid row at a time and the
  horizontal stack one position at a time, from caches of the inputs above
  and to the left; the whole-grid pass is the definition it must reproduce.
  """
  k = 7
  # Seeded weights: with some initialisations the spread-out logits put one
  # code everywhere and the last assertion (rightly) fails.
  condition = tf.random.stateless_normal([5, 3], seed=[0, 1])
  # With `spatial`, every position has its own conditioning (the sampler
  # must read each block's at the position it draws).
  condition_map = (tf.random.stateless_normal([5, *grid, 2], seed=[2, 3])
                   if spatial else None)
  with keras_api.seeded_initializers(seed):
    network = pixelcnn.PixelCNNNetwork(k, filters=8, num_blocks=blocks,
                                       dropout=0.5, spatial_condition=spatial)
    network(tf.zeros([1, *grid], tf.int32), condition[:1],
            condition_map=None if condition_map is None else condition_map[:1])
  for v in network.trainable_variables:   # spread the categoricals out
    v.assign(v * 3.0 + 0.1)
  dist = pixelcnn.CodeGridDistribution(network, condition, grid,
                                       jit_compile=jit,
                                       condition_map=condition_map)
  uniforms = tf.random.stateless_uniform([3, 5, grid[0] * grid[1]],
                                         seed=[4, 5])
  codes = dist.sample_from_uniforms(uniforms)
  assert codes.shape == (3, 5, *grid)
  cdf = tf.cumsum(tf.nn.softmax(dist.logits(codes)), axis=-1)
  expected = tf.minimum(tf.reduce_sum(tf.cast(
      cdf < tf.reshape(uniforms, [3, 5, *grid, 1]), tf.int32), -1), k - 1)
  np.testing.assert_array_equal(codes.numpy(), expected.numpy())
  assert len(np.unique(codes.numpy())) > 1     # not one code everywhere


def test_columns_selects_like_a_slice():
  t = tf.random.stateless_normal([3, 2, 6, 4], seed=[1, 2])
  for start, count in ((0, 1), (2, 3), (5, 1), (3, 3)):
    np.testing.assert_array_equal(
        pixelcnn.columns(t, tf.constant(start), count).numpy(),
        t[:, :, start:start + count].numpy())


@pytest.mark.parametrize('spatial', [False, True])
def test_compiled_sampler_slices_no_cache_dynamically(spatial):
  """The XLA sampler holds its caches, not padded copies of them.

  XLA's CPU pipeline lowers a dynamic slice of a 4-D loop tensor through a
  pad that doubles every dimension (16 x the tensor): sampling the 64 x 8
  network peaked at 3.2 MB per grid instead of 2.0. The column reads are
  one-hot contractions (``pixelcnn.columns``); no 4-D ``dynamic-slice``
  may come back into the optimized program.
  """
  condition = tf.random.stateless_normal([2, 3], seed=[0, 1])
  condition_map = (tf.random.stateless_normal([2, 3, 3, 2], seed=[2, 3])
                   if spatial else None)
  network = pixelcnn.PixelCNNNetwork(5, filters=4, num_blocks=2, dropout=0.,
                                     spatial_condition=spatial)
  network(tf.zeros([1, 3, 3], tf.int32), condition[:1],
          condition_map=None if condition_map is None else condition_map[:1])
  dist = pixelcnn.CodeGridDistribution(network, condition, (3, 3),
                                       jit_compile=True,
                                       condition_map=condition_map)
  compiled = tf.function(dist.sample_from_uniforms, jit_compile=True)
  hlo = compiled.experimental_get_compiler_ir(
      tf.random.stateless_uniform([2, 2, 9], seed=[4, 5]))(
          stage='optimized_hlo')
  assert 'while' in hlo and 'convolution' in hlo   # the sampler's program
  four_d_dynamic_slices = re.findall(
      r'= f32\[\d+,\d+,\d+,\d+\]\S* dynamic-slice\(', hlo)
  assert not four_d_dynamic_slices


def test_row_keyed_draws_do_not_depend_on_the_batch():
  model, x = tiny_model()
  mask = tf.cast(tf.random.stateless_uniform(x.shape, seed=[1, 1]) > 0.5,
                 tf.float32)
  seeds = imputation.row_seeds(x, mask, 3)
  z = imputation.row_keyed_latents(model, x, mask, 2, seeds)
  assert z.shape == (4, 2, 2, 2) and z.dtype == tf.int32
  alone = imputation.row_keyed_latents(model, x[2:3], mask[2:3], 2, seeds[2:3])
  np.testing.assert_array_equal(z[2:3], alone)
  empty = imputation.row_keyed_latents(model, x[:0], mask[:0], 2, seeds[:0])
  assert empty.shape == (0, 2, 2, 2)


def test_vq_vae_contract_and_ema_moves_only_when_training():
  model, x = tiny_model()
  vae = model.vae
  assert vae.latent_shape == (2, 2) and vae.latent_dtype == tf.int32
  assert vae.noise_size == 0 and not vae.capabilities
  before = vae.codebook.numpy().copy()
  out = model.per_example_losses(x, tf.ones_like(x), tf.constant(1.0),
                                 objective='partial', training=True)
  np.testing.assert_array_equal(vae.codebook.numpy(), before)
  assert set(out) >= {'loss', 'pm_loss', 'reconstruction', 'commitment',
                      'perplexity', 'dead_codes'}
  np.testing.assert_allclose(out['loss'], out['pm_loss'])
  out = model.per_example_losses(x, tf.ones_like(x), tf.constant(1.0),
                                 objective='vae', training=True)
  assert not np.allclose(vae.codebook.numpy(), before)
  np.testing.assert_allclose(out['loss'],
                             out['reconstruction'] + out['commitment'],
                             rtol=1e-5)
  assert 1.0 <= float(out['perplexity'][0]) <= 6.0
  decoded = vae.decode(tf.zeros([3, 4, 2, 2], tf.int32))
  assert decoded.batch_shape == [3, 4] and decoded.event_shape == SHAPE
  mean = decoded.mean().numpy()
  assert mean.min() >= 0.0 and mean.max() <= 1.0


def test_straight_through_gradients_reach_the_encoder_not_the_codebook():
  model, x = tiny_model()
  vae = model.vae
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(vae.training_terms(x, 1.0, training=False).loss)
  grads = tape.gradient(loss, vae.encoder.trainable_variables)
  assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
  assert all(v is not vae.codebook for v in vae.trainable_variables)


def test_dead_codes_restart_from_encoder_outputs():
  # Seeded weights: which codes die in 3 updates depends on the initial
  # encoder and codebook, which unseeded depend on what the process built
  # before (seed 0 restarts 3 of the 6 codes).
  with keras_api.seeded_initializers(0):
    model, x = tiny_model(dead_code_threshold=0.5)
  vae = model.vae
  for _ in range(3):
    vae.training_terms(x, 1.0, training=True)
  z_e = tf.reshape(vae.encoder(x), [-1, 3]).numpy()
  counts = vae.ema_count.numpy()
  restarted = np.isclose(counts, 1.0)  # 2 x threshold
  assert restarted.any()
  for k in np.flatnonzero(restarted):
    assert np.min(np.abs(z_e - vae.codebook.numpy()[k]).sum(1)) < 1e-4


def test_bad_configurations_are_one_line_user_errors():
  with pytest.raises(UserError, match='grid_shape'):
    VQVAE(SHAPE, grid_shape=(7, 7))
  with pytest.raises(UserError, match='multiples of 4'):
    VQVAE((10, 10, 1))
  with pytest.raises(UserError, match='vector latent'):
    matching.PosteriorMatchingVAE(
        SHAPE, vae=functools.partial(GaussianVAE, latent_dim=3),
        partial_encoder=TINY_CNN)
  model, _ = tiny_model()
  with pytest.raises(UserError, match='VQVAE base VAE') as e:
    ConditionalLikelihood(model)
  assert '\n' not in str(e.value)
  with pytest.raises(UserError, match='reparameterised'):
    matching.PosteriorMatchingVAE(SHAPE, vae=TINY_VQ,
                                  partial_encoder=TINY_CNN,
                                  stop_gradient=False)
  with pytest.raises(UserError, match='analytic_kl'):
    bad = matching.PosteriorMatchingVAE(SHAPE, vae=TINY_VQ,
                                        partial_encoder=TINY_CNN,
                                        pm_loss='analytic_kl')
    x = tf.zeros([2, *SHAPE])
    bad(x, tf.ones_like(x))
    bad.per_example_losses(x, tf.ones_like(x), 1.0, objective='joint')
  assert not model.vae.has(base.GAUSSIAN_LATENT)


def test_ema_codebook_under_mirrored_strategy_equals_one_device():
  """Two replicas, each with half of the batch, make the EMA update (counts,
  sums, dead-code restarts from the gathered encoder outputs) that one
  device makes with the whole batch: every replica ends with that codebook."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo.training import strategy as strategy_lib
  strategy = strategy_lib.make_strategy('mirrored')
  assert strategy.num_replicas_in_sync == 2
  settings = dict(dead_code_threshold=0.5)
  with keras_api.seeded_initializers(0):
    single, x = tiny_model(**settings)
  with strategy.scope(), keras_api.seeded_initializers(0):
    mirrored, _ = tiny_model(**settings)
  for v_single, v_mirrored in zip(single.variables, mirrored.variables):
    np.testing.assert_array_equal(v_single.numpy(), v_mirrored.numpy())
  batches = iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(x).repeat(3)))

  @tf.function
  def mirrored_step(batch):
    strategy.run(lambda b: mirrored.vae.training_terms(b, 1.0, training=True),
                 args=(batch,))

  for _ in range(3):
    single.vae.training_terms(x, 1.0, training=True)
    mirrored_step(next(batches))
  vae = mirrored.vae
  assert int(vae.ema_updates.numpy()) == 3
  for name in ('codebook', 'ema_count', 'ema_sum'):
    want = getattr(single.vae, name).numpy()
    for replica_value in strategy.experimental_local_results(
        getattr(vae, name)):
      np.testing.assert_allclose(replica_value.numpy(), want, rtol=1e-5,
                                 atol=1e-6, err_msg=name)
  assert np.isclose(single.vae.ema_count.numpy(), 1.0).any()  # restarts ran
