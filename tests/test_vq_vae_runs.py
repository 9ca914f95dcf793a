"""A tiny VQ-VAE run end to end: stage 1, stage 2 (frozen), eval, export, TF-only serving."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo.errors import UserError
from pm_zoo.serving import export
from pm_zoo.serving import loading
from pm_zoo.serving import tf_only as tf_only_lib
from pm_zoo.training import trainer as trainer_lib

TF_ONLY = tf_only_lib.script(r'''
path, work = sys.argv[1:]
loaded = tf.saved_model.load(path)
x = np.load(work + '/x.npy')
mask = np.load(work + '/mask.npy')
out = {'signatures': sorted(loaded.signatures)}
s = loaded.signatures['sample'](x=tf.constant(x), mask=tf.constant(mask),
                                num_samples=tf.constant(3),
                                seed=tf.constant(7, tf.int64))
again = loaded.signatures['sample'](x=tf.constant(x[1:2]),
                                    mask=tf.constant(mask[1:2]),
                                    num_samples=tf.constant(3),
                                    seed=tf.constant(7, tf.int64))
imp = loaded.signatures['impute'](x=tf.constant(x), mask=tf.constant(mask))
out['samples_shape'] = list(s['samples'].shape)
out['row_keyed'] = bool(np.allclose(s['samples'][1:2], again['samples']))
out['impute_shape'] = list(imp['x'].shape)
out['observed_kept'] = bool(np.allclose(
    imp['x'].numpy()[mask > 0], x[mask > 0]))
out['imported'] = blocked_imports()
with open(work + '/out.json', 'w') as f:
  json.dump(out, f)
''')


def _weights(model_dir, prefix):
  reader = tf.train.load_checkpoint(os.path.join(model_dir, 'checkpoints'))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith(prefix) and 'OPTIMIZER_SLOT' not in k}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp('vq_runs')
  stage1, stage2 = str(base / 'stage1'), str(base / 'stage2')
  configs.parse(['tiny/vqvae.gin'])
  experiment.train(stage1)
  configs.parse(['tiny/vqvae_partial.gin'])
  experiment.train(stage2, vae_checkpoint=stage1)
  return base, stage1, stage2


def test_stage_two_trains_the_pixelcnn_and_leaves_the_vq_vae_frozen(runs):
  _, stage1, stage2 = runs
  vae1 = _weights(stage1, 'model/vae/')
  vae2 = _weights(stage2, 'model/vae/')
  assert vae1 and vae1.keys() == vae2.keys()
  for key in vae1:  # codebook and EMA statistics included
    np.testing.assert_array_equal(vae1[key], vae2[key], err_msg=key)
  with open(os.path.join(stage1, 'training.json')) as f:
    assert json.load(f)['step'] == 10
  # Resuming at num_steps does nothing (both stages resume).
  configs.parse(['tiny/vqvae_partial.gin'])
  assert experiment.train(stage2, vae_checkpoint=stage1) == {}


def test_eval_gives_psnr_and_the_training_curve_hook_works(runs):
  _, _, stage2 = runs
  configs.parse(['tiny/vqvae_partial.gin'])
  metrics = experiment.evaluate(stage2)
  assert np.isfinite(metrics['psnr']['mean'])
  assert metrics['psnr']['trials'] == 2


def test_eval_curve_is_written_along_training(tmp_path):
  configs.parse(['tiny/vqvae.gin'], ['TrainConfig.eval_every = 5',
                                     'TrainConfig.eval_examples = 8'])
  experiment.train(str(tmp_path / 'run'))
  with open(tmp_path / 'run' / trainer_lib.EVAL_CURVE) as f:
    curve = json.load(f)
  assert [p['step'] for p in curve] == [5, 10]
  assert all(np.isfinite(p['reconstruction_psnr']) for p in curve)
  assert all('psnr' not in p for p in curve)  # stage 1: no partial posterior


def test_gaussian_only_paths_refuse_a_vq_vae_run(runs):
  _, _, stage2 = runs
  from pm_zoo.tasks import likelihood  # pylint: disable=g-import-not-at-top
  model, _ = experiment.restore_for_eval(stage2)
  with pytest.raises(UserError, match='VQVAE') as e:
    likelihood.ConditionalLikelihood(model)
  assert '\n' not in str(e.value)
  from pm_zoo.acquisition import objective  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match='Gaussian posterior'):
    objective.LookaheadModel(model)
  # The in-process runner (pm-impute --model_dir, the imputer) refuses the
  # density in one line, as the SavedModel runner does.
  configs.parse(['tiny/vqvae_partial.gin'])
  module, _ = loading.from_model_dir(stage2)
  runner = loading.InProcess(module)
  x = np.zeros((2, 8, 8, 1), np.float32)
  with pytest.raises(UserError, match='conditional_log_prob needs') as e:
    runner.conditional_log_prob(x, np.ones_like(x), 4)
  assert '\n' not in str(e.value)


def test_export_serves_impute_and_sample_with_tensorflow_only(runs):
  base, _, stage2 = runs
  configs.parse(['tiny/vqvae_partial.gin'])
  path = export.export(stage2, str(base / 'export'))
  work = base / 'tf_only'
  work.mkdir()
  x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
  mask = (np.random.default_rng(1).uniform(size=x.shape) > 0.5).astype(
      np.float32)
  np.save(work / 'x.npy', x)
  np.save(work / 'mask.npy', mask)
  (work / 'run.py').write_text(TF_ONLY)
  proc = subprocess.run([sys.executable, str(work / 'run.py'), path,
                         str(work)], cwd=str(work),
                        env=tf_only_lib.environment(), capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(work / 'out.json') as f:
    out = json.load(f)
  assert {'impute', 'sample', 'encode'} <= set(out['signatures'])
  assert 'conditional_log_prob' not in out['signatures']
  assert out['samples_shape'] == [3, 3, 8, 8, 1]
  assert out['impute_shape'] == [3, 8, 8, 1]
  assert out['row_keyed'] and out['observed_kept']
  assert out['imported'] == []


def test_spatially_conditioned_stage_two_exports_and_serves(runs):
  """``ConditionalPixelCNN.spatial_conditioning``: trains from the same
  stage 1, and its SavedModel draws row-keyed samples that keep the
  observed pixels (the per-cell maps go through the compiled sampler)."""
  base, stage1, _ = runs
  spatial = ['ConditionalPixelCNN.spatial_conditioning = True']
  run = str(base / 'stage2_spatial')
  configs.parse(['tiny/vqvae_partial.gin'], spatial)
  experiment.train(run, vae_checkpoint=stage1)
  assert any('condition_map' in k for k in _weights(run, 'model/'))
  configs.parse(['tiny/vqvae_partial.gin'], spatial)
  loaded = tf.saved_model.load(export.export(run, str(base / 'export_s')))
  x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
  mask = (np.random.default_rng(1).uniform(size=x.shape) > 0.5).astype(
      np.float32)
  sample = loaded.signatures['sample']
  draws = sample(x=tf.constant(x), mask=tf.constant(mask),
                 num_samples=tf.constant(3),
                 seed=tf.constant(7, tf.int64))['samples'].numpy()
  alone = sample(x=tf.constant(x[1:2]), mask=tf.constant(mask[1:2]),
                 num_samples=tf.constant(3),
                 seed=tf.constant(7, tf.int64))['samples'].numpy()
  assert draws.shape == (3, 3, 8, 8, 1)
  np.testing.assert_allclose(draws[1:2], alone, rtol=1e-5, atol=1e-6)
  observed = np.broadcast_to(mask[:, None] > 0, draws.shape)  # [rows, S, ...]
  np.testing.assert_allclose(draws[observed],
                             np.broadcast_to(x[:, None], draws.shape)[observed])


def test_inpainting_benchmark_scores_a_vq_vae_run(runs, tmp_path):
  """benchmarks/inpainting.py end to end on the two stages (a subprocess:
  its absl flags are process-global)."""
  import conftest  # pylint: disable=g-import-not-at-top
  _, stage1, stage2 = runs
  output = tmp_path / 'inpainting.json'
  done = subprocess.run(
      [sys.executable, '-m', 'benchmarks.inpainting', '--source=sklearn_digits',
       '--num_test=6', '--trials=2', '--num_samples=2',
       '--precision_recall=false', f'--model=vq={stage2}+{stage1}',
       f'--output={output}'],
      cwd=conftest.REPO, capture_output=True, text=True, check=False,
      env={**os.environ, 'PYTHONPATH': conftest.REPO})
  assert done.returncode == 0, done.stderr[-2000:]
  methods = json.loads(output.read_text())['methods']
  assert sorted(methods) == ['KNN-10', 'train-mean fill', 'vq', 'zero fill']
  vq = methods['vq']
  assert vq['psnr']['trials'] == 2 and np.isfinite(vq['psnr']['mean'])
  assert vq['one_image_ms'] > 0 and vq['impute_seconds_per_1000'] > 0
  assert vq['step'] == 10
  assert 'vq' in done.stdout
