"""Scripts for a process that has TensorFlow and nothing else: a serving host.

An exported SavedModel must run where only TensorFlow is installed (TF
Serving, or a bare Python with ``tensorflow``). ``script(body)`` turns a
script body into a program that checks this: its prelude puts an import hook
first on ``sys.meta_path`` that makes every import of ``BLOCKED`` (pm_zoo,
tensorflow_probability, tf_keras, gin) fail, then imports ``json``, ``sys``,
``numpy as np`` and ``tensorflow as tf`` and defines, for the body:

  call_rest_body(loaded, body)  runs a TF Serving REST predict body
                                ``{"signature_name", "inputs"}`` on a loaded
                                SavedModel as TF Serving decodes it (each input
                                converted to the dtype its signature declares);
                                returns ``{output name: np.ndarray}``.
  blocked_imports()             the blocked top-level packages present in
                                ``sys.modules``: ``[]`` if nothing imported
                                them.
  importable_blocked()          the blocked packages an ``import`` statement
                                still gets: ``[]`` if the hook works.

Run the program with ``sys.executable`` and ``environment()``. The test
suite and ``benchmarks/serving_round_trip.py`` share it.
"""
import os
import textwrap
from typing import Dict

BLOCKED = ('pm_zoo', 'tensorflow_probability', 'tf_keras', 'gin')

_PRELUDE = f'''\
import importlib
import json
import sys

BLOCKED = {BLOCKED!r}


class _BlockImports:
  """Makes every import of BLOCKED fail, as on a host without them."""

  def find_spec(self, name, path=None, target=None):
    if name.partition('.')[0] in BLOCKED:
      raise ImportError(name + ' is blocked: a serving host has tensorflow '
                        'only')
    return None


sys.meta_path.insert(0, _BlockImports())

import numpy as np
import tensorflow as tf


def call_rest_body(loaded, body):
  fn = loaded.signatures[body['signature_name']]
  specs = fn.structured_input_signature[1]
  outputs = fn(**{{name: tf.constant(value, dtype=specs[name].dtype)
                   for name, value in body['inputs'].items()}})
  return {{name: value.numpy() for name, value in outputs.items()}}


def blocked_imports():
  return sorted({{m.partition('.')[0] for m in sys.modules}} & set(BLOCKED))


def importable_blocked():
  found = []
  for name in BLOCKED:
    try:
      importlib.import_module(name)
      found.append(name)
    except ImportError:
      pass
  return found

'''


def script(body: str) -> str:
  """The prelude (module docstring) followed by ``body`` (dedented)."""
  return _PRELUDE + textwrap.dedent(body).lstrip('\n')


def environment() -> Dict[str, str]:
  """This process's environment without PYTHONPATH, TensorFlow's logs quiet.

  Without PYTHONPATH a source tree put there is not importable either; the
  hook refuses the installed packages.
  """
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  return env
