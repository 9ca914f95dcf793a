"""Imputation with a trained Posterior Matching VAE.

Given x and a mask b (1 = observed), draw z_s ~ q_theta(z | x_o), decode each
to the decoder mean E[x | z_s], and keep the observed values:

  imputation_s = b * x + (1 - b) * E_{p_phi(x | z_s)}[x],   s = 1..S.

The point imputation is the mean of the S imputations. For a categorical
column of a mixed table (where imputation_s holds the most probable code
under p_phi(x_j | z_s)) it is the category most probable under the
posterior predictive,

  argmax_c (1/S) sum_s p_phi(x_j = c | z_s)  ~  argmax_c p(x_j = c | x_o),

the decision that minimises the expected proportion of falsely classified
cells (PFC) under the model; the mode of the S per-draw codes approximates
it less well (each draw contributes one vote, not its probabilities).

Two seeding schemes:

* ``Imputer`` (evaluation) seeds each compiled batch: batch i of a call uses
  the stateless seed ``[seed, i]``, so a row's draws depend on its batch.
* ``row_keyed_latents`` (every user-facing path: the Python imputer, the
  ``pm-impute`` CLI and the exported SavedModel) seeds each ROW with a key
  made from the seed, the row's observed values and its mask
  (``row_seeds``). A row's imputations are then a function of (row, mask,
  seed, S) alone: the same whatever batch it arrives in, whichever path runs
  it, and in whatever order the rows come. Two identical rows with the same
  mask get the same draws (ask for S > 1 samples for several imputations).
  Rows with nothing observed are drawn from the prior p(z), the exact
  posterior given nothing, rather than from q_theta(z | x_empty), where the
  base VAE has a generative prior (``base.GENERATIVE_PRIOR``; a VQ-VAE's
  partial posterior given nothing is its only prior).
"""
import contextlib
import logging

import numpy as np
import tensorflow as tf

from pm_zoo.models import base


class Imputer:
  """Compiled, batched, seeded imputation for one model.

  Args:
    model: a ``PosteriorMatchingVAE`` (built).
    batch_size: rows per compiled call (bounds memory: S x batch x features).
  """

  def __init__(self, model, batch_size: int = 256):
    self.model = model
    self.batch_size = int(batch_size)
    # Any batch size, one trace: without a signature every new batch shape
    # (a last, shorter batch; another call's N) traced the model again.
    features = [None, *model.feature_shape]
    self._sample = tf.function(self._sample_batch, input_signature=[
        tf.TensorSpec(features, tf.float32), tf.TensorSpec(features, tf.float32),
        tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int32)])

  def _sample_batch(self, x, mask, num_samples, seed):
    """[B, *fs] -> (imputations [S, B, *fs], point imputation [B, *fs])
    for a stateless seed [2]."""
    posterior = self.model.partial_encoder(x, mask, training=False)
    z = posterior.sample(num_samples, seed=seed)  # [S, B, *latent_shape]
    decoded = self.model.vae.decode(z, training=False)  # batch [S, B]
    samples = mask * x + (1.0 - mask) * decoded.mean()
    point = with_predictive_codes(tf.reduce_mean(samples, axis=0), x, mask,
                                  predictive_codes(decoded, sample_axis=0))
    return samples, point

  def samples(self, x: np.ndarray, mask: np.ndarray, num_samples: int,
              seed: int = 0) -> np.ndarray:
    """All S imputations, ``[S, N, *feature_shape]`` (keep N modest)."""
    return np.concatenate(
        [s for s, _ in self._batches(x, mask, num_samples, seed)], axis=1)

  def mean(self, x: np.ndarray, mask: np.ndarray, num_samples: int,
           seed: int = 0) -> np.ndarray:
    """The point imputation, ``[N, *feature_shape]`` (module docstring)."""
    return np.concatenate(
        [p for _, p in self._batches(x, mask, num_samples, seed)], axis=0)

  def _batches(self, x, mask, num_samples, seed):
    x = np.asarray(x, np.float32)
    mask = np.broadcast_to(np.asarray(mask, np.float32), x.shape)
    for i, start in enumerate(range(0, len(x), self.batch_size)):
      stop = start + self.batch_size
      batch_seed = tf.constant([seed, i], tf.int32)
      samples, point = self._sample(tf.constant(x[start:stop]),
                                    tf.constant(mask[start:stop]),
                                    tf.constant(num_samples, tf.int32),
                                    batch_seed)
      yield samples.numpy(), point.numpy()


def predictive_codes(decoded, sample_axis: int):
  """``[(column j, code [B])]``: per categorical column of a mixed-table
  decoder, argmax_c of the mean over the draws (``sample_axis`` of its batch
  shape) of p_phi(x_j = c | z_s). Empty for decoders without categorical
  columns (``probs`` is ``MixedTableDistribution``'s)."""
  if not hasattr(decoded, 'probs'):
    return []
  return [(j, tf.argmax(tf.reduce_mean(p, axis=sample_axis), axis=-1))
          for j, p in decoded.probs()]


def with_predictive_codes(point, x, mask, codes):
  """``point`` [B, D] with each categorical column's unobserved cells set to
  its ``predictive_codes`` code (observed cells keep x)."""
  if not codes:
    return point
  columns = tf.unstack(point, axis=-1)
  for j, code in codes:
    columns[j] = tf.where(mask[..., j] > 0, x[..., j],
                          tf.cast(code, point.dtype))
  return tf.stack(columns, axis=-1)


def row_seeds(x: tf.Tensor, mask: tf.Tensor, seed) -> tf.Tensor:
  """One stateless seed per row, int32 ``[B, 2]``, keyed by the row's content.

  The key is the 64-bit ``tf.fingerprint`` (farmhash) of the bytes of
  ``(seed, x * b, b)``: the int64 ``seed``, then the row's observed values
  (unobserved entries read as 0, so whatever they hold, NaN included, does
  not matter) and its mask. Only core TensorFlow ops, so a SavedModel that
  uses it runs anywhere TensorFlow does (byte order: little-endian hosts).

  Args:
    x: float32 ``[B, *feature_shape]``.
    mask: float32 of x's shape, 1 = observed.
    seed: int64 scalar (Python int or tensor).
  """
  rows = tf.shape(x)[0]
  observed = tf.where(mask > 0, x, tf.zeros_like(x))
  seed_words = tf.bitcast(tf.cast(seed, tf.int64), tf.int32)  # [2]
  data = tf.concat([
      tf.tile(seed_words[tf.newaxis], [rows, 1]),
      tf.bitcast(tf.reshape(observed, [rows, -1]), tf.int32),
      tf.cast(tf.reshape(mask, [rows, -1]), tf.int32)], axis=1)
  fingerprint = tf.fingerprint(data)  # [B, 8] uint8
  return tf.bitcast(tf.reshape(fingerprint, [rows, 2, 4]), tf.int32)


def row_keyed_latents(model, x: tf.Tensor, mask: tf.Tensor, num_samples,
                      seeds: tf.Tensor) -> tf.Tensor:
  """z ``[B, S, *latent_shape]``: row r's S draws use the stateless ``seeds[r]``.

  Row r is drawn from q_theta(z | x_o^r), or from the prior p(z) when it has
  nothing observed and the base VAE has a generative prior.
  ``tf.vectorized_map`` runs the partial encoder on all rows at once; only
  the stateless random ops loop over rows.

  Args:
    model: a ``PosteriorMatchingVAE``.
    x: ``[B, *feature_shape]`` in the model's units, finite where observed.
    mask: of x's shape, 1 = observed.
    num_samples: S >= 1 (int or int32 scalar tensor).
    seeds: int32 ``[B, 2]`` (``row_seeds``).
  """
  x = tf.where(mask > 0, x, tf.zeros_like(x))
  # The loop over rows cannot stack zero iterations: an empty batch is
  # answered directly.
  return tf.cond(
      tf.shape(x)[0] > 0,
      lambda: _draw_rows(model, x, mask, num_samples, seeds),
      lambda: tf.zeros([0, num_samples, *model.vae.latent_shape],
                       model.vae.latent_dtype))


def _draw_rows(model, x, mask, num_samples, seeds):
  """``row_keyed_latents`` for a non-empty batch.

  A partial posterior that draws row-keyed samples itself (an optional
  ``sample_rows(num_samples, seeds) -> [B, S, *latent_shape]`` method, e.g.
  an autoregressive sampler whose loop should run once for all rows) is
  asked directly; any other is vectorized over rows.
  """
  posterior = model.partial_encoder(x, mask, training=False)
  if hasattr(posterior, 'sample_rows'):
    z = posterior.sample_rows(num_samples, seeds)
    return _with_prior_rows(model, z, mask, num_samples, seeds)

  def from_posterior(row):
    row_x, row_mask, seed = row
    posterior = model.partial_encoder(row_x[tf.newaxis], row_mask[tf.newaxis],
                                      training=False)
    return posterior.sample(num_samples, seed=seed)[:, 0]  # [S, *ls]

  with _quiet_vectorization():
    z = tf.vectorized_map(from_posterior, (x, mask, seeds))
  return _with_prior_rows(model, z, mask, num_samples, seeds)


def drawn_from_prior(model, mask: tf.Tensor) -> tf.Tensor:
  """bool ``[B]``: the rows ``row_keyed_latents`` draws from p(z), not q_theta.

  Rows with nothing observed, where the base VAE has a generative prior;
  none otherwise.
  """
  if not model.vae.has(base.GENERATIVE_PRIOR):
    return tf.zeros(tf.shape(mask)[:1], tf.bool)
  return tf.reduce_all(tf.reshape(mask, [tf.shape(mask)[0], -1]) <= 0,
                       axis=1)


def _with_prior_rows(model, z, mask, num_samples, seeds):
  """Replaces the draws of rows with nothing observed by prior draws."""
  if not model.vae.has(base.GENERATIVE_PRIOR):
    return z
  empty = drawn_from_prior(model, mask)

  def with_prior():
    prior = model.vae.prior()
    with _quiet_vectorization():
      z_prior = tf.vectorized_map(
          lambda seed: prior.sample(num_samples, seed=seed), seeds)
    empty_rows = tf.reshape(empty, [-1] + [1] * (len(z.shape) - 1))
    return tf.where(empty_rows, z_prior, z)

  return tf.cond(tf.reduce_any(empty), with_prior, lambda: z)


@contextlib.contextmanager
def _quiet_vectorization():
  """Hides pfor's trace-time warnings that the random ops loop over rows.

  That loop is the point (one seed per row), not a missed optimisation.
  """
  logger = logging.getLogger('tensorflow')
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)
