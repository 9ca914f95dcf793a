"""The lookahead greedy step as a servable ``next_feature`` function.

``NextFeature`` holds only what one greedy step reads: the lookahead trunk
and the folded entropy head (``LookaheadNetwork.folded_entropy_head``), plus,
for tables, the run's standardisation. Its ``next_feature(x, mask)`` takes
RAW inputs (the data's own units) and returns

  index             int64 [B]: the unobserved feature to acquire next
                    (argmin of the expected entropies), -1 where every
                    feature is already observed;
  expected_entropy  float32 [B, num_features]: H(q_omega^(i)(z | x_o)) per
                    candidate i, +inf for observed features.

``x`` and ``mask`` are ``[B, *feature_shape]``; mask 1 = observed. A NaN in
``x`` also means "missing" (whatever the mask says). Features are columns
(tables) or pixels (images; numbered row-major over H x W).

The function is a ``tf.function`` with a fixed input signature (batch
dimension free), compiled with XLA by default; attach
``module.next_feature`` as a SavedModel signature (``signature()`` gives the
concrete function).
"""
import numpy as np
import tensorflow as tf

from pm_zoo.acquisition import features
from pm_zoo.acquisition.policies import greedy_choice
from pm_zoo.matching import observed_input

SIGNATURE_NAME = 'next_feature'


class NextFeature(tf.Module):
  """One lookahead greedy step, on raw inputs.

  Args:
    network: a trained ``LookaheadNetwork`` (built).
    standardizer: the run's ``pm_zoo.data.Standardizer`` (tables); None or
      an identity standardizer for images.
    jit_compile: compile ``next_feature`` with XLA.
  """

  def __init__(self, network, standardizer=None, jit_compile: bool = True,
               name: str = 'next_feature'):
    super().__init__(name=name)
    self.feature_shape = tuple(network.feature_shape)
    self.num_features = features.num_features(self.feature_shape)
    self.trunk = network.trunk
    kernel, bias = network.folded_entropy_head()
    self.entropy_kernel = tf.Variable(kernel, trainable=False,
                                      name='entropy_kernel')
    self.entropy_bias = tf.Variable(bias, trainable=False, name='entropy_bias')
    self.offset = self.scale = None
    if standardizer is not None and not _is_identity(standardizer):
      self.offset = tf.Variable(np.asarray(standardizer.mean, np.float32),
                                trainable=False, name='feature_mean')
      self.scale = tf.Variable(np.asarray(standardizer.scale, np.float32),
                               trainable=False, name='feature_scale')
    spec = tf.TensorSpec([None, *self.feature_shape], tf.float32)
    self.next_feature = tf.function(self._next_feature,
                                    input_signature=[spec, spec],
                                    jit_compile=jit_compile)

  def entropies(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """H(q_omega^(i)(z | x_o)) ``[B, D]`` for inputs in the model's space."""
    h = tf.maximum(self.trunk(observed_input(x, mask), training=False), 0.0)
    return tf.matmul(h, self.entropy_kernel) + self.entropy_bias

  def _next_feature(self, x, mask):
    present = tf.logical_and(mask > 0, tf.math.is_finite(x))
    mask = tf.cast(present, tf.float32)
    x = tf.where(present, x, 0.0)
    if self.offset is not None:
      x = mask * (x - self.offset) / self.scale
    index, scores = greedy_choice(self.entropies(x, mask), mask,
                                  self.feature_shape)
    return {'index': index, 'expected_entropy': scores}

  def signature(self):
    """The concrete function to export as the ``next_feature`` signature."""
    return self.next_feature.get_concrete_function()


def _is_identity(standardizer) -> bool:
  return bool(np.all(np.asarray(standardizer.mean) == 0.0) and
              np.all(np.asarray(standardizer.scale) == 1.0))

