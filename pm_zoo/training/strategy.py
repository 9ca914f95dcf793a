"""tf.distribute strategy from a flag: default, mirrored, multi_worker, tpu."""
import json
import os
from typing import Optional

import tensorflow as tf

from pm_zoo.errors import UserError

STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')


def split_cpu(num_devices: int) -> None:
  """Splits the host CPU into ``num_devices`` logical devices.

  Lets ``MirroredStrategy`` run several replicas on one CPU (tests, and a way
  to check that several devices give the same numbers). Must run before
  TensorFlow initialises its devices.
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
  """Returns the strategy called ``name``.

  - ``default``: no distribution (one device).
  - ``mirrored``: synchronous replicas on every local GPU (or every logical
    CPU device when there is no GPU).
  - ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from
    the ``TF_CONFIG`` environment variable.
  - ``tpu``: ``TPUStrategy`` on the TPU named by ``tpu`` ('' or 'local' on a
    Cloud TPU VM); connects and initialises the TPU system.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    gpus = tf.config.list_logical_devices('GPU')
    devices = [d.name for d in gpus] or [
        d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(devices=devices)
  if name == 'multi_worker':
    if 'TF_CONFIG' not in os.environ:
      raise UserError('--strategy=multi_worker needs the TF_CONFIG '
                      'environment variable describing the cluster')
    try:
      json.loads(os.environ['TF_CONFIG'])
    except ValueError as e:
      raise UserError(f'TF_CONFIG is not valid JSON: {e}') from e
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'tpu':
    target = '' if tpu in (None, 'local') else tpu
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as e:
      raise UserError(f'cannot reach TPU {tpu!r}: {str(e).splitlines()[0]}; '
                      'pass --tpu=NAME (or local on a TPU VM)') from e
    return tf.distribute.TPUStrategy(resolver)
  raise UserError(f'unknown --strategy={name!r}; use one of '
                  f'{list(STRATEGIES)}')


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


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this worker writes: the model dir on the chief, a scratch dir else.

  Under MultiWorkerMirroredStrategy every worker must take part in saving a
  checkpoint (it involves collectives), but only the chief's copy is kept.
  """
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, 'workers',
                      f'{resolver.task_type}_{resolver.task_id}')
