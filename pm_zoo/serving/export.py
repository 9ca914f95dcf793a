"""Exports a run as a SavedModel in TF Serving's layout, atomically.

  path = export(model_dir)                 # -> <model_dir>/export/<version>

TF Serving serves a *model base path* holding numbered version directories
and picks the highest; ``export`` writes version ``max(existing) + 1``. The
SavedModel is written aside, in a hidden directory under the base path (TF
Serving ignores names that are not numbers), and then renamed to its version
number, so a server never sees a half-written version.

Each version holds the ``ServingModule``'s signatures (see
``pm_zoo.serving.module``), the model's variables and
``assets.extra/pm_zoo_export.json``: where it came from (run, step), the
feature shape, the ``impute`` settings and every signature's inputs and
outputs; a table model with a column schema also gets
``assets.extra/pm_zoo_schema.json`` (``pm_zoo.data.schema.TableSchema``:
each column's name, kind and, for a categorical column, its categories,
code k = ``categories[k]``). The signatures take and return the numeric
encoding (categorical cells as float codes): to serve string columns, map
each string to its index in ``categories`` before the call and each
returned code back to ``categories[code]`` after it (``TableSchema.encode``
and ``decode`` do both; see docs/tables.md).

Extra signatures (extension point). Code that adds a signature to the export
when a run holds more than the Posterior Matching VAE (e.g. a lookahead
network for active acquisition: ``next_feature``) writes a *signature
provider*::

  def next_feature_signatures(context: ExportContext) -> Dict[str, Any]:
    if not <context.model_dir holds a trained lookahead network>:
      return {}                                    # nothing to add
    network = <restore it>
    context.track('lookahead_variables', network.variables)
    fn = tf.function(lambda x, mask: {...},
                     input_signature=context.input_signature())
    return {'next_feature': fn.get_concrete_function()}

and lists it in ``SIGNATURE_PROVIDERS`` as ``'module.path:function'`` (or
passes it to ``export(..., providers=[...])``). Every provider is called on
every export, after the core signatures are built; it returns ``{}`` when
the run has nothing for it. Anything its functions use that holds variables
must be attached with ``context.track`` so that the SavedModel saves them.
Signature names must not clash with the core ones.
"""
import contextlib
import dataclasses
import importlib
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import tensorflow as tf

import pm_zoo
from pm_zoo import run_dir
from pm_zoo.errors import UserError
from pm_zoo.serving import loading
from pm_zoo.serving import module as module_lib

EXPORT_SUBDIR = 'export'
METADATA_DIR = 'assets.extra'
METADATA_FILE = 'pm_zoo_export.json'

# Optional signature providers, 'package.module:function', imported at
# export time (see the module docstring).
SIGNATURE_PROVIDERS: Sequence[str] = (
    'pm_zoo.acquisition.export:next_feature_signatures',
    'pm_zoo.serving.cluster:cluster_signatures')


@dataclasses.dataclass
class ExportContext:
  """What a signature provider gets.

  Attributes:
    model_dir: the pm-train run being exported.
    module: the ``ServingModule`` that becomes the SavedModel's root object.
    step: the checkpoint step of the exported model.
  """
  model_dir: str
  module: module_lib.ServingModule
  step: int

  @property
  def model(self):
    """The restored ``PosteriorMatchingVAE``."""
    return self.module.model

  def track(self, name: str, value) -> None:
    """Attaches variables (or any trackable) to the exported root object."""
    if hasattr(self.module, name):
      raise ValueError(f'the serving module already has an attribute {name!r}')
    setattr(self.module, name, value)

  def input_signature(self) -> List[tf.TensorSpec]:
    """``[x, mask]`` specs: float32 ``[None, *feature_shape]`` each."""
    shape = [None, *self.module.feature_shape]
    return [tf.TensorSpec(shape, tf.float32, name='x'),
            tf.TensorSpec(shape, tf.float32, name='mask')]


Provider = Callable[[ExportContext], Dict[str, Any]]


def _load_provider(spec: Union[str, Provider]) -> Provider:
  if callable(spec):
    return spec
  module_name, _, function = spec.partition(':')
  return getattr(importlib.import_module(module_name), function)


def collect_optional_signatures(
    context: ExportContext,
    providers: Optional[Sequence[Union[str, Provider]]] = None
) -> Dict[str, Any]:
  """The extra signatures every provider adds for this run (often none)."""
  found = {}
  for spec in (SIGNATURE_PROVIDERS if providers is None else providers):
    for name, function in _load_provider(spec)(context).items():
      if name in module_lib.CORE_SIGNATURES or name in found:
        raise ValueError(f'signature provider {spec!r} adds {name!r}, which '
                         'another signature already uses')
      found[name] = function
  return found


@contextlib.contextmanager
def tracing_as_saved(options: tf.saved_model.SaveOptions):
  """Traces in the context ``tf.saved_model.save(..., options=options)``
  traces in, so that the save reuses these traces.

  A tf.function's trace cache is keyed on, among others, the save context's
  variable policy (TensorFlow's ``function_context.make_function_context``),
  so functions traced outside a save are traced again by it (TensorFlow
  issue 56370): an export paid for every signature twice. This enters
  that context (TensorFlow's private ``save_context``; where a TensorFlow
  lacks it, nothing is entered and the save traces again, as before).
  """
  try:
    from tensorflow.python.saved_model import save_context  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    context = save_context.save_context(options)
  except (ImportError, AttributeError):
    context = contextlib.nullcontext()
  with context:
    yield


def _describe(signatures) -> Dict[str, Dict]:
  """``{name: {"inputs": {arg: [dtype, shape]}, "outputs": {...}}}``."""
  described = {}
  for name, fn in signatures.items():
    args, kwargs = fn.structured_input_signature
    inputs = kwargs or {spec.name: spec for spec in tf.nest.flatten(args)}
    described[name] = {
        'inputs': {k: [v.dtype.name, v.shape.as_list()]
                   for k, v in sorted(inputs.items())},
        'outputs': {k: [v.dtype.name, v.shape.as_list()]
                    for k, v in sorted(fn.structured_outputs.items())},
    }
  return described


def next_version(export_base: str) -> int:
  """One more than the highest numbered directory under ``export_base``."""
  numbers = [int(n) for n in os.listdir(export_base) if n.isdigit()]
  return max(numbers, default=0) + 1


def write_versioned(export_base: str, write: Callable[[str], None],
                    attempts: int = 100) -> str:
  """Runs ``write(tmp_dir)`` aside, then renames it to the next version.

  The directory appears under its version number complete or not at all;
  if another writer takes the same number first, the next one is used.
  Returns the version directory.
  """
  created = not os.path.isdir(export_base)
  os.makedirs(export_base, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.tmp-export-', dir=export_base)
  try:
    write(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide it from a server
    for _ in range(attempts):
      target = os.path.join(export_base, str(next_version(export_base)))
      try:
        os.rename(tmp, target)  # Fails on an existing non-empty directory.
        return target
      except OSError:
        if not os.path.exists(target):
          raise
    raise UserError(f'could not claim a version number under {export_base} '
                    f'in {attempts} attempts: is another export racing?')
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if created and not os.listdir(export_base):
      os.rmdir(export_base)
    raise


def export(model_dir: str, export_base: Optional[str] = None,
           config: module_lib.ServingConfig = module_lib.ServingConfig(),
           providers: Optional[Sequence[Union[str, Provider]]] = None) -> str:
  """Exports the latest checkpoint of ``model_dir``; returns the version dir.

  Args:
    model_dir: a pm-train run.
    export_base: TF Serving's model base path (default
      ``<model_dir>/export``).
    config: S and seed of ``impute``/``encode``, seed of
      ``conditional_log_prob``.
    providers: signature providers (default ``SIGNATURE_PROVIDERS``).
  """
  serving, step = loading.from_model_dir(model_dir, config)
  options = tf.saved_model.SaveOptions()
  with tracing_as_saved(options):
    signatures = serving.signatures()
    signatures.update(collect_optional_signatures(
        ExportContext(model_dir, serving, step), providers))
  export_base = os.path.abspath(
      export_base or os.path.join(model_dir, EXPORT_SUBDIR))
  metadata = {
      'pm_zoo_version': pm_zoo.__version__,
      'model_dir': os.path.abspath(model_dir),
      'step': step,
      'feature_shape': list(serving.feature_shape),
      'latent_dim': serving.latent_dim,
      'impute': {'num_samples': config.num_samples, 'seed': config.seed},
      'conditional_log_prob': {'seed': config.seed},
      'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
      'signatures': _describe(signatures),
  }

  if serving.schema is not None:
    metadata['schema'] = loading.SCHEMA_ASSET

  def write(path):
    tf.saved_model.save(serving, path, signatures=signatures,
                        options=options)
    run_dir.write_json(os.path.join(path, METADATA_DIR, METADATA_FILE),
                       metadata)
    if serving.schema is not None:
      serving.schema.save(os.path.join(path, loading.SCHEMA_ASSET))

  return write_versioned(export_base, write)
