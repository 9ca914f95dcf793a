"""Arbitrary conditional log-likelihoods by importance sampling.

For a Posterior Matching VAE, any conditional likelihood is a ratio of two
marginals,

  log p(x_u | x_o) = log p(x) - log p(x_o),

and each marginal is estimated with K importance samples, the VAE encoder
proposing for the joint and the partial encoder for the observed part:

  log p(x)   ~= logmeanexp_k [ log p(x | z_k) + log p(z_k)
                               - log q_psi(z_k | x) ], z_k ~ q_psi(z | x);

  log p(x_o) ~= logmeanexp_k [ sum_i b_i log p(x_i | z_k) + log p(z_k)
                               - log q_theta(z_k | x_o) ], z_k ~ q_theta(z|x_o).

Both are consistent as K grows (Jensen makes each a lower bound in expectation,
tight when the proposal is the exact posterior, where every weight equals the
marginal and the estimate is exact for any K). The estimate is in the units of
the data the model was trained on (for standardised tables, add
-sum_{i in u} log std_i to get the log-density of the raw x_u).

Memory: the K samples are processed ``samples_per_chunk`` at a time with a
running logsumexp, and rows ``batch_size`` at a time, so the largest tensor is
``samples_per_chunk x batch_size x features`` whatever K is.

Randomness is stateless: row batch j, chunk c and marginal m (joint or
observed) use the seed ``fold_in(fold_in([seed, j], m), c)``, so a call is
reproducible and does not depend on what ran before.
"""
import functools
import numbers
import numpy as np
import tensorflow as tf

from pm_zoo.distributions import heads
from pm_zoo.errors import UserError
from pm_zoo.models import base

JOINT, OBSERVED = 0, 1


def _check_count(name: str, value) -> int:
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < 1):
    raise UserError(f'ConditionalLikelihood.{name} must be an integer >= 1, '
                    f'got {value!r}')
  return int(value)


class ConditionalLikelihood:
  """Importance-sampled log p(x), log p(x_o) and log p(x_u | x_o) per row.

  Works with any model whose base VAE has ``base.MARGINAL_LIKELIHOOD``:
  ``model.vae.encode(x)`` (q_psi(z | x)), ``model.vae.decode(z)`` (a
  factorised p(x | z), see ``heads.elementwise_log_prob``),
  ``model.vae.prior()`` and ``model.partial_encoder(x, mask)``
  (q_theta(z | x_o)), such as a ``PosteriorMatchingVAE`` over a Gaussian
  VAE; ``model.feature_shape``, when present, is checked against the data.
  Other families are refused with a one-line error.

  Shapes: ``x`` is ``[N, *feature_shape]``; ``mask`` is 1 = observed,
  0 = unobserved, of x's shape or broadcastable to it (an image mask may have
  one channel). Every method returns a float64 NumPy array ``[N]``.

  Args:
    model: a built Posterior Matching VAE.
    num_samples: K, importance samples per row and marginal (the paper: 512).
    samples_per_chunk: samples drawn and decoded at once (bounds memory).
    batch_size: rows per compiled call (bounds memory).
    seed: integer seed of the stateless sampling.
  """

  def __init__(self, model, num_samples: int = 512,
               samples_per_chunk: int = 64, batch_size: int = 256,
               seed: int = 0):
    model.vae.require(base.MARGINAL_LIKELIHOOD, 'the conditional likelihood')
    self.model = model
    self.num_samples = _check_count('num_samples', num_samples)
    self.samples_per_chunk = min(
        _check_count('samples_per_chunk', samples_per_chunk), self.num_samples)
    self.batch_size = _check_count('batch_size', batch_size)
    self.seed = int(seed)
    feature_shape = getattr(model, 'feature_shape', None)
    self.feature_shape = (None if feature_shape is None
                          else tuple(int(s) for s in feature_shape))
    # One compiled function per marginal, for any number of rows.
    signature = None
    if self.feature_shape is not None:
      rows = tf.TensorSpec([None, *self.feature_shape], tf.float32)
      signature = [rows, rows, tf.TensorSpec([2], tf.int32)]
    self._estimate = {
        marginal: tf.function(
            functools.partial(estimate_log_marginal, model, marginal,
                              num_samples=self.num_samples,
                              samples_per_chunk=self.samples_per_chunk),
            input_signature=signature, reduce_retracing=True)
        for marginal in (JOINT, OBSERVED)}

  # ------------------------------------------------------------ public API
  def log_prob_joint(self, x) -> np.ndarray:
    """log p(x) per row, ``[N]``; x must be fully observed (no NaN)."""
    x = self._check_x(x)
    self._refuse_nonfinite(x, np.ones(x.shape, bool), 'log_prob_joint')
    return self._run(JOINT, x, np.ones_like(x))

  def log_prob_observed(self, x, mask=None) -> np.ndarray:
    """log p(x_o) per row, ``[N]``; 0 for rows with nothing observed.

    Unobserved entries of x are ignored and may be NaN. Without ``mask``, the
    NaN entries of x are the unobserved ones.
    """
    x = self._check_x(x)
    mask = np.isfinite(x) if mask is None else mask
    mask = self._check_mask(mask, x)
    self._refuse_nonfinite(x, mask > 0, 'log_prob_observed')
    x = np.where(mask > 0, x, 0.0).astype(np.float32)
    out = self._run(OBSERVED, x, mask)
    out[_count(mask) == 0] = 0.0  # p(x_o) = 1 for an empty o
    return out

  def conditional_log_prob(self, x, mask) -> np.ndarray:
    """log p(x_u | x_o) = log p(x) - log p(x_o) per row, ``[N]``.

    x_u is the point where the conditional density is evaluated, so x must be
    fully given (no NaN). Rows with nothing unobserved give 0; rows with
    nothing observed give log p(x).
    """
    x = self._check_x(x)
    mask = self._check_mask(mask, x)
    self._refuse_nonfinite(x, np.ones(x.shape, bool), 'conditional_log_prob')
    joint = self._run(JOINT, x, np.ones_like(x))
    observed = self._run(OBSERVED, x, mask)
    observed[_count(mask) == 0] = 0.0
    out = joint - observed
    out[_count(1.0 - mask) == 0] = 0.0  # log p(x_empty | x) = 0
    return out

  def bits_per_dim(self, x) -> np.ndarray:
    """-log p(x) / (D ln 2) per row, ``[N]``, D = features per row.

    For 8-bit images under a discrete pixel likelihood (the hierarchical
    VAE's logistic mixture on [0, 255]) this is the usual bits/dim.
    """
    x = self._check_x(x)
    return bits_per_dim(self.log_prob_joint(x), int(np.prod(x.shape[1:])))

  # ------------------------------------------------------------ validation
  def _check_x(self, x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim < 2 or len(x) == 0:
      raise UserError(f'x must be a non-empty batch [N, *features], got shape '
                      f'{list(x.shape)}')
    if self.feature_shape is not None and x.shape[1:] != self.feature_shape:
      raise UserError(
          f'the data has rows of shape {list(x.shape[1:])} but the model was '
          f'built for {list(self.feature_shape)}; give x as [N, '
          f'{", ".join(map(str, self.feature_shape))}] with the features the '
          'model was trained on')
    return x

  @staticmethod
  def _check_mask(mask, x) -> np.ndarray:
    mask = np.asarray(mask, np.float32)
    try:
      mask = np.broadcast_to(mask, x.shape).astype(np.float32)
    except ValueError:
      raise UserError(f'the mask of shape {list(mask.shape)} does not match x '
                      f'of shape {list(x.shape)}; give one 0/1 entry per '
                      'feature (1 = observed)') from None
    if not np.all((mask == 0) | (mask == 1)):
      raise UserError('the mask must hold only 0 (unobserved) and 1 '
                      '(observed)')
    return mask

  @staticmethod
  def _refuse_nonfinite(x, where, who):
    bad = ~np.isfinite(x) & where
    if bad.any():
      rows = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
      raise UserError(
          f'{who}: x has {int(bad.sum())} NaN/inf values where data is '
          f'required ({len(rows)} rows, first row {int(rows[0])}); mark them '
          'unobserved (mask 0) or drop those rows')

  # ------------------------------------------------------------ estimation
  def _run(self, marginal: int, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = []
    for j, start in enumerate(range(0, len(x), self.batch_size)):
      stop = start + self.batch_size
      seed = tf.constant([self.seed, j], tf.int32)
      out.append(self._estimate[marginal](
          tf.constant(x[start:stop]),
          tf.constant(mask[start:stop]), seed).numpy())
    out = np.concatenate(out).astype(np.float64)
    if np.isnan(out).any():
      raise UserError(
          f'the log-likelihood estimate is NaN for {int(np.isnan(out).sum())} '
          'rows: the model gives non-finite densities on this data; check '
          'that it is scaled like the training data')
    return out


def log_weights_of(model, marginal, proposal, z, x, mask):
  """log importance weights ``[K, B]`` of draws ``z`` of ``proposal``.

  For ``JOINT`` log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | .); for
  ``OBSERVED`` log w_k = sum_i b_i log p(x_i | z_k) + log p(z_k) -
  log q(z_k | .), entries with b_i = 0 left out (they may be anything
  finite or not).

  Args:
    model: a Posterior Matching VAE whose base VAE has
      ``MARGINAL_LIKELIHOOD``.
    marginal: ``JOINT`` or ``OBSERVED``.
    proposal: the distribution z was drawn from, batch ``[B]``.
    z: ``[K, B, *latent_shape]``.
    x: ``[B, *feature_shape]``; mask: of x's shape, 1 = observed.
  """
  vae = model.vae
  decoded = vae.decode(z, training=False)
  if marginal == JOINT:
    log_lik = decoded.log_prob(x)  # [K, B]
  else:
    per_feature = heads.elementwise_log_prob(decoded, x)  # [K, B, *fs]
    per_feature = tf.where(tf.broadcast_to(mask > 0, tf.shape(per_feature)),
                           per_feature, tf.zeros_like(per_feature))
    log_lik = tf.reduce_sum(
        tf.reshape(per_feature, tf.concat([tf.shape(per_feature)[:2], [-1]],
                                          axis=0)), axis=-1)
  return log_lik + vae.prior().log_prob(z) - proposal.log_prob(z)


def importance_samples(model, marginal, x, mask, num, seed):
  """``num`` proposal draws per row and their log importance weights.

  The proposal is q_psi(z | x) for ``JOINT`` and q_theta(z | x_o) for
  ``OBSERVED``; the weights are ``log_weights_of``'s.

  Args:
    model: a Posterior Matching VAE whose base VAE has
      ``MARGINAL_LIKELIHOOD``.
    marginal: ``JOINT`` or ``OBSERVED``.
    x: ``[B, *feature_shape]``; mask: of x's shape, 1 = observed.
    num: K draws (int or int32 scalar); seed: int32 ``[2]``.

  Returns:
    ``(z, log_w)``: z ``[K, B, *latent_shape]``, log_w ``[K, B]``.
  """
  if marginal == JOINT:
    proposal = model.vae.encode(x, training=False)
  else:
    proposal = model.partial_encoder(x, mask, training=False)
  z = proposal.sample(num, seed=seed)
  return z, log_weights_of(model, marginal, proposal, z, x, mask)


def estimate_log_marginal(model, marginal: int, x, mask, seed, num_samples,
                          samples_per_chunk: int) -> tf.Tensor:
  """log p(x) (``JOINT``) or log p(x_o) (``OBSERVED``) per row, ``[B]``.

  The logmeanexp over K = ``num_samples`` importance weights, drawn
  ``samples_per_chunk`` at a time with a running logsumexp. Graph-friendly:
  ``num_samples`` may be a scalar tensor (a SavedModel input); the chunk
  size is a Python int. Seeds: chunk c uses ``fold_in(fold_in(seed,
  marginal), c)`` for the stateless ``seed`` [2].

  Args:
    model: a Posterior Matching VAE (see ``ConditionalLikelihood``).
    marginal: ``JOINT`` or ``OBSERVED`` (a Python int).
    x: ``[B, *feature_shape]`` in the model's units.
    mask: of x's shape, 1 = observed (ignored for ``JOINT``).
    seed: int32 ``[2]``.
    num_samples: K >= 1 (int or int32 scalar tensor).
    samples_per_chunk: samples drawn and decoded at once.
  """
  model.vae.require(base.MARGINAL_LIKELIHOOD, 'the conditional likelihood')
  chunk = int(samples_per_chunk)
  num = tf.cast(num_samples, tf.int32)
  num_chunks = (num + chunk - 1) // chunk
  seed = tf.random.experimental.stateless_fold_in(seed, marginal)

  def body(c, total):
    chunk_seed = tf.random.experimental.stateless_fold_in(seed, c)
    _, log_w = importance_samples(model, marginal, x, mask, chunk, chunk_seed)
    # The last chunk may run past K: its extra samples get weight 0.
    valid = c * chunk + tf.range(chunk) < num
    log_w = tf.where(valid[:, tf.newaxis], log_w,
                     tf.constant(-np.inf, log_w.dtype))
    both = tf.stack([total, tf.reduce_logsumexp(log_w, axis=0)])
    return c + 1, tf.reduce_logsumexp(both, axis=0)

  total = tf.fill(tf.shape(x)[:1], tf.constant(-np.inf, x.dtype))
  _, total = tf.while_loop(lambda c, _: c < num_chunks, body,
                           (tf.constant(0), total))
  return total - tf.math.log(tf.cast(num, total.dtype))


def bits_per_dim(log_prob: np.ndarray, num_dims: int) -> np.ndarray:
  """Nats per row to bits per dimension: ``-log_prob / (num_dims ln 2)``."""
  return -np.asarray(log_prob, np.float64) / (num_dims * np.log(2.0))


def _count(mask: np.ndarray) -> np.ndarray:
  """Number of ones per row of a [N, ...] 0/1 array."""
  return mask.reshape(len(mask), -1).sum(axis=1)


def conditional_log_likelihood(model, x, mask, num_samples: int = 512,
                               samples_per_chunk: int = 64,
                               batch_size: int = 256, seed: int = 0,
                               ) -> np.ndarray:
  """``ConditionalLikelihood(model, ...).conditional_log_prob(x, mask)``."""
  return ConditionalLikelihood(
      model, num_samples=num_samples, samples_per_chunk=samples_per_chunk,
      batch_size=batch_size, seed=seed).conditional_log_prob(x, mask)
