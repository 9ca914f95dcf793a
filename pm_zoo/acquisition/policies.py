"""Greedy acquisition policies: score every candidate, take the lowest.

A policy maps a batch (x, b) in the model's input space to scores
``[B, num_features]``, lower = acquire first; ``greedy_choice`` sets the
observed features to +inf and returns the argmin (-1 for a row with nothing
left). The policies:

* ``SamplingPolicy`` (paper Eq. 6): the expected entropy of the posterior
  after acquiring feature i,

    E_{x_i ~ p(x_i | x_o)} H(q_theta(z | x_o, x_i))
        ~ 1/K sum_k H(q_theta(z | x_o, x~_{k,i})),

  x~_k = E[x | z_k], z_k ~ q_theta(z | x_o) (decoder mean: the imputations
  pm_zoo makes); one partial-encoder pass per sample and candidate.
* ``LookaheadPolicy`` (Eq. 7): H(q_omega^(i)(z | x_o)) from the lookahead
  network, one forward pass for all candidates (see ``serving.NextFeature``).
* ``RandomPolicy``: uniformly random unobserved feature (the floor).
"""
from typing import Optional

import tensorflow as tf

from pm_zoo.acquisition import entropy as entropy_lib
from pm_zoo.acquisition import features
from pm_zoo.errors import UserError
from pm_zoo.models import base as base_vae


def greedy_choice(scores: tf.Tensor, mask: tf.Tensor, feature_shape):
  """(index ``[B]`` int64, scores with observed = +inf ``[B, D]``).

  ``index`` is the unobserved feature with the lowest score, or -1 where
  every feature is observed.
  """
  observed = features.unit_mask(mask, feature_shape) > 0
  scores = tf.where(observed, tf.constant(float('inf'), scores.dtype), scores)
  index = tf.argmin(scores, axis=-1)
  index = tf.where(tf.reduce_all(observed, axis=-1),
                   tf.constant(-1, index.dtype), index)
  return index, scores


class Policy:
  """Base class: ``scores(x, mask, seed)``; a compiled ``next_feature``.

  Args:
    feature_shape: shape of one example.
    jit_compile: compile the step with XLA.
    max_batch: rows per compiled call; ``next_feature`` splits larger
      batches (None: no limit).
  """

  name = 'policy'

  def __init__(self, feature_shape, jit_compile: bool = True,
               max_batch: Optional[int] = None):
    self.feature_shape = tuple(int(s) for s in feature_shape)
    self.num_features = features.num_features(self.feature_shape)
    self.max_batch = max_batch
    self._compiled = tf.function(self._next_feature, jit_compile=jit_compile)

  def scores(self, x, mask, seed) -> tf.Tensor:
    raise NotImplementedError

  def next_feature(self, x, mask, seed):
    """(index [B], scores [B, D]) for x, mask ``[B, *fs]`` and seed [2]."""
    batch = int(x.shape[0])
    if not self.max_batch or batch <= self.max_batch:
      return self._compiled(x, mask, seed)
    parts = [self._compiled(
        x[i:i + self.max_batch], mask[i:i + self.max_batch],
        tf.random.experimental.stateless_fold_in(seed, i))
             for i in range(0, batch, self.max_batch)]
    return tuple(tf.concat(p, axis=0) for p in zip(*parts))

  def _next_feature(self, x, mask, seed):
    return greedy_choice(self.scores(x, mask, seed), mask, self.feature_shape)


class RandomPolicy(Policy):
  """Scores are i.i.d. uniform: the argmin is a uniformly random candidate."""

  name = 'random'

  def scores(self, x, mask, seed):
    return tf.random.stateless_uniform(
        [tf.shape(x)[0], self.num_features], seed=seed, alg='philox')


class LookaheadPolicy(Policy):
  """Entropies of the lookahead posteriors (a ``serving.NextFeature``)."""

  name = 'lookahead'

  def __init__(self, step, jit_compile: bool = True):
    self.step = step
    super().__init__(step.feature_shape, jit_compile)

  def scores(self, x, mask, seed):
    del seed
    return self.step.entropies(x, mask)


class SamplingPolicy(Policy):
  """Expected posterior entropies by sampling (paper Eq. 6).

  Args:
    model: a ``PosteriorMatchingVAE``.
    num_samples: K imputations per instance.
    entropy_samples: Monte Carlo samples for H(q_theta) when the partial
      posterior is not Gaussian (Gaussians: closed form).
    rows_per_call: bound on the rows of one partial-encoder call
      (B x D x samples per chunk): batches are split into parts of at most
      rows_per_call // D instances, and the samples are processed in chunks
      of the largest divisor of K that fits, so memory stays bounded.
    jit_compile: compile the step with XLA.
  """

  name = 'sampling'

  def __init__(self, model, num_samples: int = 50, entropy_samples: int = 16,
               rows_per_call: int = 4096, jit_compile: bool = False):
    if num_samples < 1:
      raise UserError(f'the sampling policy needs num_samples >= 1, got '
                      f'{num_samples}')
    model.vae.require(base_vae.GAUSSIAN_LATENT, 'the sampling-based greedy '
                      'acquisition rule')
    self.model = model
    self.num_samples = int(num_samples)
    self.entropy_samples = int(entropy_samples)
    self.rows_per_call = int(rows_per_call)
    num = features.num_features(model.feature_shape)
    super().__init__(model.feature_shape, jit_compile,
                     max_batch=max(1, self.rows_per_call // num))

  def _chunk(self, batch: int) -> int:
    fits = max(1, self.rows_per_call // max(1, batch * self.num_features))
    return max(c for c in range(1, self.num_samples + 1)
               if self.num_samples % c == 0 and c <= fits)

  def scores(self, x, mask, seed):
    """E_k H(q_theta(z | x_o, x~_{k,i})) for every i: ``[B, D]``."""
    fs, num = self.feature_shape, self.num_features
    batch = x.shape[0]
    if batch is None:
      raise UserError('the sampling policy needs a static batch size')
    sample_seed, entropy_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 2))
    posterior = self.model.partial_encoder(x, mask, training=False)
    z = posterior.sample(self.num_samples, seed=sample_seed)  # [K, B, d]
    imputed = self.model.vae.decode(z, training=False).mean()  # [K, B, *fs]
    candidates = features.to_mask(tf.eye(num, dtype=x.dtype), fs)  # [D, *fs]
    base = (x * mask)[:, tf.newaxis]  # [B, 1, *fs]
    # Observing an observed feature again changes nothing (its score is then
    # the current entropy; greedy_choice skips it anyway).
    imputed = imputed * (1.0 - mask)
    cand_mask = tf.maximum(mask[:, tf.newaxis], candidates[tf.newaxis])
    chunk = self._chunk(batch)
    flat = [-1, *fs]
    masks = tf.reshape(
        tf.broadcast_to(cand_mask[tf.newaxis], [chunk, batch, num, *fs]), flat)

    def chunk_entropy(k):
      part = imputed[k * chunk:(k + 1) * chunk]  # [c, B, *fs]
      x_in = base[tf.newaxis] + candidates[tf.newaxis, tf.newaxis] * (
          part[:, :, tf.newaxis])  # [c, B, D, *fs]
      q = self.model.partial_encoder(tf.reshape(x_in, flat), masks,
                                     training=False)
      h = entropy_lib.entropy(
          q, self.entropy_samples,
          tf.random.experimental.stateless_fold_in(entropy_seed, k))
      return tf.reduce_sum(tf.reshape(h, [chunk, batch, num]), axis=0)

    total = tf.zeros([batch, num], x.dtype)
    for k in tf.range(self.num_samples // chunk):
      total += chunk_entropy(k)
    return total / self.num_samples


def entropy_method(model) -> str:
  """'analytic' or 'monte carlo': how H(q_theta) is computed for ``model``."""
  x = tf.zeros([1, *model.feature_shape])
  dist = model.partial_encoder(x, x, training=False)
  return 'analytic' if entropy_lib.is_gaussian(dist) else 'monte carlo'
