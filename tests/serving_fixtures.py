"""One tiny fitted PosteriorMatchingImputer and its SavedModel, built once per
test session and shared by test_sklearn_api, test_export and test_impute_cli.

The imputer is fitted inside a scikit-learn Pipeline (so that path is what
every serving test stands on); its run directory is a pm-train run that the
export and the CLI take.
"""
import os
import subprocess
import sys

import numpy as np

from conftest import launcher_env
from conftest import REPO
from conftest import write_linear_table

# num_samples and random_state are the export's --num_samples and --seed, so
# that the SavedModel's `impute` equals the imputer's `transform`.
# 300 steps at lr 1e-2 (~10 s) impute the linear table clearly better than
# the column means (mean absolute error ~0.55 vs ~0.93 over 3 mask draws).
TINY = dict(latent_dim=3, hidden_units=16, num_blocks=1, num_steps=300,
            batch_size=32, learning_rate=1e-2, validation_fraction=0.2,
            num_samples=6, random_state=3)
SUBPROCESS_TIMEOUT = 300
_CACHE = {}


def table(tmp_path_factory):
  """(X [400, 5], y [400]) of a 2-factor linear model."""
  if 'table' not in _CACHE:
    path = tmp_path_factory.mktemp('serving_data') / 'linear.csv'
    x = write_linear_table(path, rows=400, columns=5, seed=1)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.3
    _CACHE['table'] = (x, y)
  return _CACHE['table']


def fitted_pipeline(tmp_path_factory):
  """A fitted Pipeline([PosteriorMatchingImputer, LinearRegression])."""
  if 'pipeline' not in _CACHE:
    # pylint: disable=g-import-not-at-top
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from pm_zoo import PosteriorMatchingImputer
    x, y = table(tmp_path_factory)
    run = tmp_path_factory.mktemp('serving_run') / 'run'
    pipeline = Pipeline([
        ('impute', PosteriorMatchingImputer(model_dir=str(run), **TINY)),
        ('regress', LinearRegression())])
    _CACHE['pipeline'] = pipeline.fit(x, y)
  return _CACHE['pipeline']


def fitted_imputer(tmp_path_factory):
  return fitted_pipeline(tmp_path_factory).named_steps['impute']


def exported(tmp_path_factory):
  """(export base, version dir) of the fitted run, with a test provider.

  The provider adds an ``add_offset`` signature that reads a variable it
  tracks, as an acquisition signature would: the export must carry both.
  """
  if 'export' not in _CACHE:
    # pylint: disable=g-import-not-at-top
    from pm_zoo.serving import export
    from pm_zoo.serving import module
    imputer = fitted_imputer(tmp_path_factory)
    base = str(tmp_path_factory.mktemp('serving_export') / 'models' / 'tiny')
    config = module.ServingConfig(num_samples=TINY['num_samples'],
                                  seed=TINY['random_state'])
    path = export.export(imputer.model_dir_, base, config,
                         providers=list(export.SIGNATURE_PROVIDERS)
                         + [offset_provider])
    _CACHE['export'] = (base, path)
  return _CACHE['export']


OFFSET_SIGNATURE = 'add_offset'


def offset_provider(context):
  """A test signature provider: ``add_offset`` -> x + v, v a tracked variable.

  v = 1.5 * [0, 1, ..., D-1], so a caller can check that the variable (not
  a constant folded into the graph) was saved and restored.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  width = context.module.feature_shape[0]
  offset = tf.Variable(1.5 * tf.range(width, dtype=tf.float32),
                       trainable=False)
  context.track('test_offset', offset)
  fn = tf.function(lambda x, mask: {'y': x + offset},
                   input_signature=context.input_signature())
  return {OFFSET_SIGNATURE: fn.get_concrete_function()}


def launch(launcher, *args, cwd=REPO, env=None):
  """Runs ``python -m launch.<launcher>`` (from the repo) in a subprocess."""
  return subprocess.run(
      [sys.executable, '-m', f'launch.{launcher}', *map(str, args)],
      cwd=cwd, env=env or launcher_env(), capture_output=True, text=True,
      timeout=SUBPROCESS_TIMEOUT, check=False)


def files_under(directory):
  """Every file under ``directory``, relative (to check nothing was written)."""
  return sorted(os.path.relpath(os.path.join(d, f), directory)
                for d, _, names in os.walk(directory) for f in names)
