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
  (``tasks/clustering.py``'s docstring has the math); rows drawn from the
  prior (nothing observed) keep the plain average, their weights being 1.

``cluster_function`` builds the same graph for in-process callers
(``PosteriorMatchingClusterer``), so the SavedModel and the estimator agree
for the same S and seed. TensorFlow alone loads and runs the export.
"""
from typing import Any, Dict

import tensorflow as tf

from pm_zoo.models import base
from pm_zoo.tasks import clustering
from pm_zoo.tasks import imputation
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
        tf.constant(module.config.seed, tf.int64))               # [B, S, d]
    draws = tf.transpose(z, [1, 0, *range(2, len(z.shape))])     # [S, B, d]
    log_w = None
    if weighting == 'importance':
      proposal = module.model.partial_encoder(x_model, mask, training=False)
      log_w = likelihood.log_weights_of(module.model, likelihood.OBSERVED,
                                        proposal, draws, x_model, mask)
      # Rows drawn from p(z) instead of q_theta: weights p(z) / p(z) = 1.
      from_prior = imputation.drawn_from_prior(module.model, mask)
      log_w = tf.where(from_prior[tf.newaxis], tf.zeros_like(log_w), log_w)
    probabilities = clustering.weighted_cluster_probabilities(
        module.model.vae, draws, log_w)                           # [B, K]
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
