"""Shared test set-up.

The host CPU is split into two logical devices before TensorFlow starts, so
that MirroredStrategy tests run two replicas on any machine.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from pm_zoo import configs  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def write_linear_table(path, rows=400, columns=5, seed=0, header=True):
  """A CSV of a noisy 2-factor linear model: correlated, imputable columns."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(rows, 2))
  x = z @ rng.normal(size=(2, columns)) + 0.1 * rng.normal(size=(rows, columns))
  names = ','.join(f'c{i}' for i in range(columns))
  np.savetxt(path, x, delimiter=',', header=names if header else '',
             comments='')
  return x


@pytest.fixture
def linear_csv(tmp_path):
  path = tmp_path / 'linear.csv'
  write_linear_table(path)
  return str(path)


def launcher_env():
  """Environment for launcher subprocesses: the source tree importable."""
  env = dict(os.environ)
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  return env


@pytest.fixture
def python():
  return sys.executable


@pytest.fixture(autouse=True)
def fresh_gin():
  """Every test starts and ends with an empty, unlocked gin config.

  ``configs.parse`` finalizes (locks) the config as the launchers want; a
  later test that binds gin itself must not inherit that lock.
  """
  configs.reset()
  yield
  configs.reset()
