"""A tiny hierarchical VAE run end to end: pm-train (with EMA, skip
threshold and the PSNR curve), pm-eval, pm-export, and the SavedModel's
impute / sample signatures in a process with TensorFlow alone."""
import json
import subprocess
import sys

import numpy as np

from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo.serving import export
from pm_zoo.serving import tf_only as tf_only_lib
import serving_fixtures

BINDINGS = ['TrainConfig.num_steps = 4', 'TrainConfig.checkpoint_every = 2',
            'TrainConfig.log_every = 2', 'TrainConfig.summary_every = 2',
            'TrainConfig.image_summary_every = 0',
            'TrainConfig.eval_every = 2', 'TrainConfig.eval_examples = 8',
            'EvalConfig.max_examples = 8', 'EvalConfig.trials = 1',
            'EvalConfig.num_imputations = 2',
            # Two latent layers at two resolutions: every block kind, and
            # half the graph of tiny/vdvae.gin's five (trace, export).
            "HierarchicalVAE.encoder_blocks = '8x1,8d2'",
            "HierarchicalVAE.decoder_blocks = '4x1,8m4'"]

SCRIPT = tf_only_lib.script(r'''
path, out = sys.argv[1:]
loaded = tf.saved_model.load(path)
x = np.linspace(0, 1, 2 * 64, dtype=np.float32).reshape(2, 8, 8, 1)
mask = np.zeros_like(x)
mask[:, :4] = 1.0
imputed = loaded.signatures['impute'](x=tf.constant(x), mask=tf.constant(mask))
drawn = loaded.signatures['sample'](
    x=tf.constant(x), mask=tf.constant(mask),
    num_samples=tf.constant(3), seed=tf.constant(5, tf.int64))
json.dump({'signatures': sorted(loaded.signatures),
           'impute_x': imputed['x'].numpy().tolist(),
           'samples_shape': list(drawn['samples'].shape),
           'imported': blocked_imports()}, open(out, 'w'))
''')


def test_tiny_hierarchical_run_trains_evaluates_and_exports(tmp_path):
  model_dir = tmp_path / 'run'
  configs.parse(['tiny/vdvae.gin'], BINDINGS)
  result = experiment.train(str(model_dir))
  assert result['nonfinite_steps'] == 0
  curve = json.loads((model_dir / 'eval_curve.json').read_text())
  assert [row['step'] for row in curve] == [2, 4]
  assert all(row['ema'] and np.isfinite(row['psnr']) for row in curve)
  metrics = experiment.evaluate(str(model_dir))
  assert metrics['step'] == 4 and np.isfinite(metrics['psnr']['mean'])
  version = export.export(str(model_dir))
  script = tmp_path / 'tf_only.py'
  script.write_text(SCRIPT)
  out = tmp_path / 'out.json'
  proc = subprocess.run([sys.executable, str(script), version, str(out)],
                        env=tf_only_lib.environment(), capture_output=True,
                        text=True,
                        timeout=serving_fixtures.SUBPROCESS_TIMEOUT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(out.read_text())
  assert got['imported'] == []
  assert {'impute', 'sample', 'conditional_log_prob'} <= set(
      got['signatures'])
  assert got['samples_shape'] == [2, 3, 8, 8, 1]
  imputed = np.asarray(got['impute_x'])
  x = np.linspace(0, 1, 2 * 64, dtype=np.float32).reshape(2, 8, 8, 1)
  np.testing.assert_allclose(imputed[:, :4], x[:, :4], rtol=1e-6)
  assert imputed.min() >= 0 and imputed.max() <= 1
