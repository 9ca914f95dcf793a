"""The ``cluster`` signature: cluster probabilities from partial observations.

A signature provider for ``pm_zoo.serving.export`` (its docstring describes
the mechanism): for a run whose base VAE has clusters (``base.CLUSTERS``,
VaDE) the SavedModel gets

``cluster``: ``x [B, *fs]``, ``mask [B, *fs]`` (raw units; 1 = observed, a
  NaN in x is missing too) -> ``probabilities [B, K]``, the mean of
  p(c | z_s) over the export's S row-keyed draws z_s ~ q_theta(z | x_o)
  (rows with nothing observed: draws of the prior, so about pi), and
  ``cluster`` int64 ``[B]``, their argmax. With
  ``ServingConfig.cluster_weighting = 'importance'`` the draws are weighted
  by p(x_o | z_s) p(z_s) / q_theta(z_s | x_o), self-normalised per row
  (``tasks/clustering.py``'s docstring has the math).

``cluster_function`` builds the same graph for in-process callers
(``PosteriorMatchingClusterer``), so the SavedModel and the estimator agree
for the same S and seed. TensorFlow alone loads and runs the export.
"""
from typing import Any, Dict

import tensorflow as tf

from pm_zoo.models import base
from pm_zoo.tasks import likelihood

SIGNATURE_NAME = 'cluster'
PROVIDER = 'pm_zoo.serving.cluster:cluster_signatures'


def cluster_function(module) -> tf.types.experimental.GenericFunction:
  """``f(x, mask) -> {'probabilities', 'cluster'}`` on a ``ServingModule``."""
  shape = [None, *module.feature_shape]
  spec = [tf.TensorSpec(shape, tf.float32, name='x'),
          tf.TensorSpec(shape, tf.float32, name='mask')]

  weighting = module.config.cluster_weighting
  if weighting == 'importance':
    module.model.vae.require(base.MARGINAL_LIKELIHOOD,
                             'importance-weighted clustering')

  def cluster(x, mask):
    # pylint: disable=protected-access
    z, mask, x_model = module._latents(
        x, mask, tf.constant(module.config.num_samples, tf.int32),
        tf.constant(module.config.seed, tf.int64))               # z [B, S, d]
    per_draw = module.model.vae.cluster_probabilities(z)          # [B, S, K]
    if weighting == 'importance':
      proposal = module.model.partial_encoder(x_model, mask, training=False)
      rank = len(z.shape)
      draws = tf.transpose(z, [1, 0, *range(2, rank)])            # [S, B, d]
      log_w = likelihood.log_weights_of(module.model, likelihood.OBSERVED,
                                        proposal, draws, x_model, mask)
      weights = tf.nn.softmax(tf.transpose(log_w), axis=1)        # [B, S]
      probabilities = tf.einsum('bs,bsk->bk', weights, per_draw)
    else:
      probabilities = tf.reduce_mean(per_draw, axis=1)            # [B, K]
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
