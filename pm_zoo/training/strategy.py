"""tf.distribute strategy from a flag: default, mirrored, multi_worker, tpu.

One strategy object per kind per process: ``make_strategy`` returns the same
object when asked twice. Every ``MirroredStrategy`` numbers the collective ops
it builds from the same start (group key 1, instance key 100, ...), so two of
them in one process give different all-reduces the same key and the second
one fails ("Shape mismatch in the collective instance 100"); one strategy
shared by every model numbers them all apart. A TPU system is initialised
once, and a ``MultiWorkerMirroredStrategy`` starts the process's only gRPC
server.
"""
import json
import os
import shutil
import tempfile
from typing import Dict, Optional, Tuple
import urllib.error

import tensorflow as tf

from pm_zoo.errors import UserError

STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')

_MADE: Dict[Tuple, tf.distribute.Strategy] = {}


def split_cpu(num_devices: int) -> None:
  """Splits the host CPU into ``num_devices`` logical devices.

  Lets ``MirroredStrategy`` run several replicas on one CPU (tests, and a way
  to check that several devices give the same numbers). Must run before
  TensorFlow initialises its devices. The logical devices share the process's
  thread pools, so one replica still uses every core.
  """
  if num_devices <= 1:
    return
  cpus = tf.config.list_physical_devices('CPU')
  current = tf.config.get_logical_device_configuration(cpus[0])
  if current and len(current) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise UserError(f'cannot split the CPU into {num_devices} devices after '
                    f'TensorFlow has started ({e}); do it first') from e


def make_strategy(name: str = 'default', tpu: Optional[str] = None
                  ) -> tf.distribute.Strategy:
  """Returns the strategy called ``name`` (the same object on every call).

  - ``default``: no distribution (one device).
  - ``mirrored``: synchronous replicas on every local GPU (or every logical
    CPU device when there is no GPU).
  - ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from
    the ``TF_CONFIG`` environment variable.
  - ``tpu``: ``TPUStrategy`` on the TPU named by ``tpu`` (``local`` on a Cloud
    TPU VM, the TPU's name or grpc:// address for a TPU node; None: what the
    Cloud environment says); connects and initialises the TPU system.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    gpus = tf.config.list_logical_devices('GPU')
    devices = tuple(d.name for d in gpus) or tuple(
        d.name for d in tf.config.list_logical_devices('CPU'))
    key = (name, devices)
    factory = lambda: tf.distribute.MirroredStrategy(devices=list(devices))
  elif name == 'multi_worker':
    key = (name, _tf_config())
    factory = tf.distribute.MultiWorkerMirroredStrategy
  elif name == 'tpu':
    key = (name, tpu)
    factory = lambda: _tpu_strategy(tpu)
  else:
    raise UserError(f'unknown --strategy={name!r}; use one of '
                    f'{list(STRATEGIES)}')
  if key not in _MADE:
    _MADE[key] = factory()
  return _MADE[key]


def _tf_config() -> str:
  """The TF_CONFIG variable, checked to be JSON with a cluster and a task."""
  text = os.environ.get('TF_CONFIG')
  if not text:
    raise UserError('--strategy=multi_worker needs the TF_CONFIG '
                    'environment variable describing the cluster, e.g. '
                    '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                    '"task": {"type": "worker", "index": 0}}')
  try:
    config = json.loads(text)
  except ValueError as e:
    raise UserError(f'TF_CONFIG is not valid JSON: {e}') from e
  if not isinstance(config, dict) or not {'cluster', 'task'} <= set(config):
    raise UserError('TF_CONFIG needs a "cluster" and a "task" entry, e.g. '
                    '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                    '"task": {"type": "worker", "index": 0}}')
  return text


def _tpu_strategy(tpu: Optional[str]) -> tf.distribute.Strategy:
  """Resolves, connects to and initialises a TPU; returns its strategy."""
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu='' if tpu is None else tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError, urllib.error.URLError,
          OSError) as e:
    raise UserError(f'cannot reach TPU {tpu!r}: {str(e).splitlines()[0]}; '
                    'pass --tpu=local on a Cloud TPU VM, or the name of a '
                    'TPU node') from e
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints, summaries and files."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == 'chief':
    return True
  cluster = resolver.cluster_spec().as_dict()
  return (resolver.task_type == 'worker' and resolver.task_id == 0
          and 'chief' not in cluster)


class WorkerDir:
  """Where this worker writes checkpoints: the run's dir, or scratch space.

  Under MultiWorkerMirroredStrategy every worker takes part in saving a
  checkpoint, but only the chief's copy is kept: the other workers save into
  a temporary directory outside the run, emptied after every save
  (``discard``), so nothing of theirs lands in the model directory.
  """

  def __init__(self, directory: str, strategy: tf.distribute.Strategy):
    self.is_chief = is_chief(strategy)
    if self.is_chief:
      self.path = directory
    else:
      resolver = strategy.cluster_resolver
      self.path = tempfile.mkdtemp(
          prefix=f'pm_zoo_{resolver.task_type}_{resolver.task_id}_')

  def discard(self) -> None:
    """Removes what a non-chief worker wrote (nothing on the chief)."""
    if not self.is_chief:
      shutil.rmtree(self.path, ignore_errors=True)
