"""The one place that imports Keras.

pm_zoo runs on Keras 2 through the ``tf_keras`` package: from TensorFlow 2.16 on,
the Keras bundled with TensorFlow is Keras 3, which TensorFlow Probability's
layers and ``tfp.bijectors.AutoregressiveNetwork`` do not support. Every other
module does ``from pm_zoo.keras_api import keras`` and never uses the bundled
Keras.
"""
import contextlib
import random
from typing import Optional

import numpy as np
import tf_keras as keras

__all__ = ["keras", "seeded_initializers"]


@contextlib.contextmanager
def seeded_initializers(seed: Optional[int]):
  """Makes the weights Keras initialises inside the block a function of seed.

  ``seed=None`` leaves every generator alone (the block runs unseeded).

  tf_keras draws unseeded initialisers from Python's, NumPy's and
  TensorFlow's global generators, so ``keras.utils.set_random_seed`` seeds
  all three; the states of Python's and NumPy's generators are put back when
  the block ends, so a caller's own random numbers are not changed.
  TensorFlow's global seed stays set (it cannot be read back).
  """
  if seed is None:
    yield
    return
  python_state, numpy_state = random.getstate(), np.random.get_state()
  keras.utils.set_random_seed(int(seed))
  try:
    yield
  finally:
    random.setstate(python_state)
    np.random.set_state(numpy_state)
