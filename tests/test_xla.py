"""The train step of every shipped model compiles with XLA, as TPUs need.

A TPU compiles the whole step with XLA. Here the gin experiments' models
(shrunk: 8 units, one block, latent size 2, a two-layer conv stack on 8x8
images) and the partial posterior heads take two steps of the ``Trainer``'s
``replica_step`` (forward, backward, finiteness check, conditional update,
counters) under ``tf.function(jit_compile=True)`` on CPU: one XLA
computation per step; ``jit_compile=True`` fails rather than falling back
when an op cannot be compiled.

XLA compiles op by op, so the test compiles a set of models that together
hold every layer type and every training setting (objective, KL and
learning-rate schedules, stop-gradient, PM loss) of every shipped model:
picked greedily, each covering the most features not yet covered.
"""
import functools

import numpy as np
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo import masks
from pm_zoo.training import trainer as trainer_lib
import test_gin_files
import test_partial_heads

TABLE_SOURCES = ('table', 'uci')
# The partial heads of test_partial_heads, smaller still.
HEAD_SHRINK = {
    'mixture': dict(num_components=2),
    'ar_mixture': dict(num_components=2, hidden_units=(8,), context_size=4),
    'maf': dict(num_flows=1, hidden_units=(8,), context_size=4),
    'iaf': dict(num_flows=1, hidden_units=(8,), context_size=4),
}
SHRINK = [
    'TrainConfig.batch_size = 4', 'GaussianVAE.latent_dim = 2',
    'VaDE.latent_dim = 2', 'VaDE.num_clusters = 2',
    'ConvEncoder.layers = ((4, 3, 2), (4, 2, 1))',
    'ConvDecoder.layers = ((4, 2, 1), (4, 3, 2), (4, 3, 2))',
    'ConvDecoder.output_kernel = 3',
    'partial/AutoregressiveGaussianMixture.num_components = 2',
    'partial/AutoregressiveGaussianMixture.hidden_units = (8,)',
    'partial/AutoregressiveGaussianMixture.context_size = 4',
    # The hierarchical VAE on the 8x8 images: the fewest blocks holding every
    # block kind (plain and down-sampling encoder blocks, a top-down block
    # and an unpooling one); XLA's compile time grows with the block count.
    "HierarchicalVAE.encoder_blocks = '8x1,8d2'",
    "HierarchicalVAE.decoder_blocks = '4x1,8m4'",
    'HierarchicalVAE.width = 4', 'HierarchicalVAE.latent_channels = 2',
    'HierarchicalVAE.num_components = 2',
    'VQVAE.num_codes = 4', 'VQVAE.embedding_dim = 2', 'VQVAE.hidden = 4',
    'VQVAE.residual_hidden = 4', 'VQVAE.grid_shape = None',
    'ConditionalPixelCNN.filters = 4', 'ConditionalPixelCNN.num_blocks = 2',
    'ConditionalPixelCNN.conditioning_dim = 4',
    'ConditionalPixelCNN.conditioning_hidden = 4',
    'ConditionalPixelCNN.conditioning_channels = 2',
] + [f'{scope}ResidualMLP.{key}'
     for scope in ('', 'encoder/', 'decoder/', 'partial/')
     for key in ('units = 8', 'num_blocks = 1')]


def _features(model, cfg):
  """What the compiled step is made of: layer types and training settings."""
  return frozenset(
      [f'layer {type(m).__name__}' for m in model.submodules] +
      [f'objective {cfg.objective}',
       f'kl {type(cfg.kl_schedule).__name__}',
       f'learning rate {type(cfg.learning_rate).__name__}',
       f'clip {bool(cfg.grad_clip_norm)}',
       f'stop gradient {getattr(model, "stop_gradient", None)}',
       f'pm loss {getattr(model, "pm_loss", None)}'])


def _candidates():
  """(name, features, build) for every experiment and partial head."""
  found = []
  for name in test_gin_files.EXPERIMENTS:
    configs.parse([name], SHRINK)
    image = experiment.dataset()['source'] not in TABLE_SOURCES
    cfg = trainer_lib.TrainConfig()
    model = experiment.build_model((8, 8, 1) if image else (6,),
                                   tf.distribute.get_strategy())
    found.append((name, _features(model, cfg), (model, cfg)))
  configs.reset()
  for name, head in sorted(test_partial_heads.HEADS.items()):
    head = functools.partial(head, **HEAD_SHRINK.get(name, {}))
    model = test_partial_heads._model(  # pylint: disable=protected-access
        head, latent_dim=2)
    cfg = trainer_lib.TrainConfig(batch_size=4,
                                  train_mask=masks.BernoulliMask(0.5))
    found.append((f'head {name}', _features(model, cfg), (model, cfg)))
  return found


def _cover(candidates):
  """Greedy set cover: [(name, [names it covers])] whose union is all."""
  left = frozenset().union(*(f for _, f, _ in candidates))
  chosen = []
  while left:
    name, features, build = max(candidates, key=lambda c: len(c[1] & left))
    chosen.append((name, features & left, build))
    left -= features
  return chosen


def _train_compiled(model, cfg, tmp_dir):
  """Two steps of the Trainer's whole replica step compiled by XLA."""
  # The variables the objective trains ('partial' leaves the VAE frozen,
  # 'vae' the partial posterior).
  trained = model.trainable_variables_for(cfg.objective)
  before = [w.numpy() for w in trained]
  run = trainer_lib.Trainer(model, tf.distribute.get_strategy(), tmp_dir, cfg)
  shape = [cfg.batch_size, *model.feature_shape]
  batch = {
      'x': tf.random.stateless_uniform(shape, seed=[0, 1]),
      'mask': cfg.train_mask(shape, tf.constant([0, 2], tf.int64)),
      'noise': tf.random.stateless_normal([cfg.batch_size, model.latent_dim],
                                          seed=[0, 3])}
  step = tf.function(run.replica_step, jit_compile=True)
  for _ in range(2):
    metrics = step(batch)
  assert int(run.global_step.numpy()) == 2
  assert int(run.nonfinite_steps.numpy()) == 0
  assert np.isfinite(float(metrics['loss']))
  moved = [not np.array_equal(a, w.numpy())
           for a, w in zip(before, trained)]
  assert sum(moved) >= len(moved) // 2, moved


def test_every_model_trains_with_an_xla_compiled_step(tmp_path):
  candidates = _candidates()
  chosen = _cover(candidates)
  covered = frozenset().union(*(f for _, f, _ in chosen))
  assert all(features <= covered for _, features, _ in candidates)
  print('XLA-compiled:', {name: sorted(new) for name, new, _ in chosen})
  for name, _, (model, cfg) in chosen:
    _train_compiled(model, cfg, str(tmp_path / name.replace('/', '_')))
  # Conv and MLP nets, LayerNorm and dropout, four kinds of partial heads.
  assert len(chosen) >= 4
