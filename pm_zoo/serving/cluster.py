"""The ``cluster`` signature: cluster probabilities from partial observations.

A signature provider for ``pm_zoo.serving.export`` (its docstring describes
the mechanism): for a run whose base VAE has clusters (``base.CLUSTERS``,
VaDE) the SavedModel gets

``cluster``: ``x [B, *fs]``, ``mask [B, *fs]`` (raw units; 1 = observed, a
  NaN in x is missing too) -> ``probabilities [B, K]``, the mean of
  p(c | z_s) over the export's S row-keyed draws z_s ~ q_theta(z | x_o)
  (rows with nothing observed: draws of the prior, so about pi), and
  ``cluster`` int64 ``[B]``, their argmax.

``cluster_function`` builds the same graph for in-process callers
(``PosteriorMatchingClusterer``), so the SavedModel and the estimator agree
for the same S and seed. TensorFlow alone loads and runs the export.
"""
from typing import Any, Dict

import tensorflow as tf

from pm_zoo.models import base

SIGNATURE_NAME = 'cluster'
PROVIDER = 'pm_zoo.serving.cluster:cluster_signatures'


def cluster_function(module) -> tf.types.experimental.GenericFunction:
  """``f(x, mask) -> {'probabilities', 'cluster'}`` on a ``ServingModule``."""
  shape = [None, *module.feature_shape]
  spec = [tf.TensorSpec(shape, tf.float32, name='x'),
          tf.TensorSpec(shape, tf.float32, name='mask')]

  def cluster(x, mask):
    # pylint: disable=protected-access
    z, _, _ = module._latents(x, mask,
                              tf.constant(module.config.num_samples, tf.int32),
                              tf.constant(module.config.seed, tf.int64))
    probabilities = tf.reduce_mean(
        module.model.vae.cluster_probabilities(z), axis=1)      # [B, K]
    return {'probabilities': probabilities,
            'cluster': tf.argmax(probabilities, axis=-1)}

  return tf.function(cluster, input_signature=spec)


def cluster_signatures(context) -> Dict[str, Any]:
  """``{'cluster': concrete function}`` where the VAE has clusters, else {}."""
  if base.CLUSTERS not in context.module.capabilities:
    return {}
  fn = cluster_function(context.module)
  context.track('cluster_fn', fn)
  return {SIGNATURE_NAME: fn.get_concrete_function()}
