"""Imputation with a trained Posterior Matching VAE.

Given x and a mask b (1 = observed), draw z_s ~ q_theta(z | x_o), decode each
to the decoder mean E[x | z_s], and keep the observed values:

  imputation_s = b * x + (1 - b) * E_{p_phi(x | z_s)}[x],   s = 1..S.

The point imputation is the mean of the S imputations.
"""
import numpy as np
import tensorflow as tf


class Imputer:
  """Compiled, batched, seeded imputation for one model.

  Args:
    model: a ``PosteriorMatchingVAE`` (built).
    batch_size: rows per compiled call (bounds memory: S x batch x features).
  """

  def __init__(self, model, batch_size: int = 256):
    self.model = model
    self.batch_size = int(batch_size)
    self._sample = tf.function(self._sample_batch)

  def _sample_batch(self, x, mask, num_samples, seed):
    """[B, *fs] -> imputations [S, B, *fs] for a stateless seed [2]."""
    posterior = self.model.partial_encoder(x, mask, training=False)
    z = posterior.sample(num_samples, seed=seed)  # [S, B, d]
    decoded = self.model.vae.decode(z, training=False).mean()  # [S, B, *fs]
    return mask * x + (1.0 - mask) * decoded

  def samples(self, x: np.ndarray, mask: np.ndarray, num_samples: int,
              seed: int = 0) -> np.ndarray:
    """All S imputations, ``[S, N, *feature_shape]`` (keep N modest)."""
    return np.concatenate(list(self._batches(x, mask, num_samples, seed)),
                          axis=1)

  def mean(self, x: np.ndarray, mask: np.ndarray, num_samples: int,
           seed: int = 0) -> np.ndarray:
    """The point imputation (mean of S imputations), ``[N, *feature_shape]``."""
    return np.concatenate(
        [s.mean(axis=0) for s in self._batches(x, mask, num_samples, seed)],
        axis=0)

  def _batches(self, x, mask, num_samples, seed):
    x = np.asarray(x, np.float32)
    mask = np.broadcast_to(np.asarray(mask, np.float32), x.shape)
    for i, start in enumerate(range(0, len(x), self.batch_size)):
      stop = start + self.batch_size
      batch_seed = tf.constant([seed, i], tf.int32)
      yield self._sample(tf.constant(x[start:stop]),
                         tf.constant(mask[start:stop]),
                         tf.constant(num_samples, tf.int32),
                         batch_seed).numpy()

