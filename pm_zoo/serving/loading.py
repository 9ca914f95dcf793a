"""The two ways to run a trained model's signatures, behind one interface.

``InProcess`` builds a ``ServingModule`` from a ``pm-train`` run directory
and calls its tf.functions; ``SavedModelRunner`` loads an exported SavedModel
(what TF Serving runs) and calls its signatures. Both take and return NumPy
arrays in raw units and run large inputs in batches, so the Python imputer,
``pm-impute`` and the serving benchmark use either one the same way. Since
imputations are row-keyed, the batch size does not change them.
"""
import os
import re
from typing import Dict, Iterator, Tuple

import numpy as np
import tensorflow as tf

from pm_zoo import experiment
from pm_zoo import run_dir
from pm_zoo.data import Standardizer
from pm_zoo.data import schema as schema_lib
from pm_zoo.errors import UserError
from pm_zoo.serving import module as module_lib

SAVED_MODEL_FILE = 'saved_model.pb'
# The column schema of a table model, beside pm_zoo_export.json.
SCHEMA_ASSET = os.path.join('assets.extra', 'pm_zoo_schema.json')


def from_model_dir(model_dir: str,
                   config: module_lib.ServingConfig = module_lib.ServingConfig()
                   ) -> Tuple[module_lib.ServingModule, int]:
  """(ServingModule, checkpoint step) of a run's latest checkpoint.

  Raises ``UserError`` for a directory that is not a trained run (missing,
  no config, no checkpoint, no ``standardizer.json``).
  """
  if not model_dir or not os.path.isdir(model_dir):
    raise UserError(f'model_dir {model_dir} does not exist: pass the '
                    '--model_dir of a pm-train run')
  model, step = experiment.restore_for_eval(model_dir)
  path = os.path.join(model_dir, run_dir.STANDARDIZER)
  if not os.path.exists(path):
    raise UserError(f'{model_dir} has no {run_dir.STANDARDIZER}: it is not a '
                    'complete pm-train run; train it with pm-train')
  schema = schema_lib.read_run_schema(model_dir)
  return module_lib.ServingModule(model, Standardizer.load(path), config,
                                  schema=schema), step


def versions(export_base: str) -> Dict[int, str]:
  """``{version: path}`` of the numbered SavedModels under a base path."""
  if not os.path.isdir(export_base):
    return {}
  found = {}
  for name in os.listdir(export_base):
    path = os.path.join(export_base, name)
    if name.isdigit() and os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
      found[int(name)] = path
  return found


def resolve_saved_model(path: str) -> str:
  """A SavedModel directory: ``path`` itself, or its highest version.

  ``path`` may be a version directory (holding ``saved_model.pb``) or a
  model base path in TF Serving's layout (numbered version directories), of
  which the highest version is taken, as TF Serving does.
  """
  if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
    return path
  found = versions(path)
  if not found:
    raise UserError(f'{path} holds no SavedModel ({SAVED_MODEL_FILE}) and no '
                    'numbered version directory with one: pass what pm-export '
                    'wrote (the export base or one version under it)')
  return found[max(found)]


class _Runner:
  """Batched NumPy calls of ``sample`` and ``conditional_log_prob``."""

  feature_shape: Tuple[int, ...]

  def _sample(self, x, mask, num_samples, seed) -> Dict[str, tf.Tensor]:
    raise NotImplementedError

  def _log_prob(self, x, mask, num_samples) -> Dict[str, tf.Tensor]:
    raise NotImplementedError

  def sample(self, x: np.ndarray, mask: np.ndarray, num_samples: int,
             seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(mean imputation [B, *fs], samples [B, S, *fs]) of one batch."""
    out = _call(self._sample, tf.constant(x, tf.float32),
                tf.constant(mask, tf.float32),
                tf.constant(num_samples, tf.int32), tf.constant(seed, tf.int64))
    return out['x'].numpy(), out['samples'].numpy()

  def conditional_log_prob(self, x: np.ndarray, mask: np.ndarray,
                           num_samples: int) -> np.ndarray:
    """log p(x_u | x_o) [B] of one batch, raw units."""
    out = _call(self._log_prob, tf.constant(x, tf.float32),
                tf.constant(mask, tf.float32),
                tf.constant(num_samples, tf.int32))
    return out['log_prob'].numpy()

  def sample_batches(self, x: np.ndarray, mask: np.ndarray, num_samples: int,
                     seed: int, batch_size: int
                     ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """``sample`` on consecutive slices of ``batch_size`` rows."""
    for start in range(0, len(x), batch_size):
      stop = start + batch_size
      yield self.sample(x[start:stop], mask[start:stop], num_samples, seed)


def _call(fn, *args):
  """Runs a signature; its in-graph assertion becomes a one-line UserError."""
  try:
    return fn(*args)
  except tf.errors.InvalidArgumentError as e:
    found = re.search(r'\[pm_zoo: ([^\]]*)\]', e.message)
    raise UserError(found.group(1) if found else
                    ' '.join(e.message.split())[:300]) from None


class InProcess(_Runner):
  """The ServingModule of a live model (``from_model_dir`` or your own)."""

  def __init__(self, serving_module: module_lib.ServingModule):
    self.module = serving_module
    self.feature_shape = serving_module.feature_shape
    self.schema = serving_module.schema

  def _sample(self, x, mask, num_samples, seed):
    return self.module.sample(x, mask, num_samples, seed)

  def _log_prob(self, x, mask, num_samples):
    # The module holds no conditional_log_prob where the base VAE has no
    # density: the contract's one-line refusal, as the SavedModel runner's.
    self.module.model.vae.require(
        module_lib.SIGNATURE_NEEDS[module_lib.CONDITIONAL_LOG_PROB],
        'conditional_log_prob')
    return self.module.conditional_log_prob(x, mask, num_samples)


class SavedModelRunner(_Runner):
  """The signatures of an exported SavedModel (``resolve_saved_model``)."""

  def __init__(self, path: str):
    self.path = resolve_saved_model(path)
    try:
      self.loaded = tf.saved_model.load(self.path)
    except (OSError, ValueError, tf.errors.OpError) as e:
      raise UserError(f'cannot load the SavedModel in {self.path} ('
                      f'{str(e).splitlines()[0][:200]}): pass a directory '
                      'written by pm-export') from None
    missing = [name for name in (module_lib.SAMPLE,)
               if name not in self.loaded.signatures]
    if missing:
      raise UserError(f'the SavedModel in {self.path} has no signature '
                      f'{", ".join(missing)}: pass one written by pm-export')
    self.signatures = self.loaded.signatures
    spec = self.signatures[module_lib.SAMPLE].structured_input_signature[1]
    self.feature_shape = tuple(int(s) for s in spec['x'].shape[1:])
    schema_path = os.path.join(self.path, SCHEMA_ASSET)
    self.schema = (schema_lib.TableSchema.load(schema_path)
                   if os.path.exists(schema_path) else None)

  def _sample(self, x, mask, num_samples, seed):
    return self.signatures[module_lib.SAMPLE](
        x=x, mask=mask, num_samples=num_samples, seed=seed)

  def _log_prob(self, x, mask, num_samples):
    if module_lib.CONDITIONAL_LOG_PROB not in self.signatures:
      raise UserError(f'the SavedModel in {self.path} serves no '
                      'conditional_log_prob: its base VAE has no posterior '
                      'density')
    return self.signatures[module_lib.CONDITIONAL_LOG_PROB](
        x=x, mask=mask, num_samples=num_samples)
