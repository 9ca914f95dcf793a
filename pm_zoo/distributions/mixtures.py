"""Mixture of full-covariance Gaussians as a partial posterior head.

q(z) = sum_k pi_k N(z; mu_k, L_k L_k^T), k = 1..K, over z in R^d.

A partially observed posterior is often multimodal (half a digit may be a 3 or
an 8); a K-component mixture can put mass on each explanation, where a single
Gaussian has to cover them all.
"""
import gin
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.distributions import made as made_lib

tfd = tfp.distributions
tfb = tfp.bijectors


@gin.configurable
class GaussianMixture(heads.DistributionHead):
  """q(z) = sum_k softmax(a)_k N(z; mu_k, L_k L_k^T), a full-covariance mixture.

  Parameters ``[..., K + K (d + d(d+1)/2)]``, in this order:

  * ``a = p[..., :K]``: the mixture logits;
  * ``K * d`` means, reshaped to ``[..., K, d]``;
  * ``K * d(d+1)/2`` Cholesky entries, reshaped to ``[..., K, d(d+1)/2]`` and
    filled row-wise into lower-triangular ``L_k`` by ``tfb.FillScaleTriL``
    (diagonal ``softplus(.) + min_scale``), as in ``FullCovarianceGaussian``.

  The distribution is a ``tfd.MixtureSameFamily`` of ``MultivariateNormalTriL``
  (batch ``[...]``, event ``[d]``): exact ``log_prob``, ``sample`` and ``mean``.

  Args:
    event_shape: ``[d]``.
    num_components: K >= 1 (K = 1 is a full-covariance Gaussian).
    min_scale: lower bound on the Cholesky diagonal.
  """

  def __init__(self, event_shape, num_components: int = 10,
               min_scale: float = 1e-4, **kwargs):
    super().__init__(event_shape, **kwargs)
    who = type(self).__name__
    made_lib.check_vector_event(who, self.event_shape)
    self.num_components = made_lib.check_int(who, 'num_components',
                                             num_components)
    self.min_scale = made_lib.check_positive(who, 'min_scale', min_scale)
    self._fill_tril = tfb.FillScaleTriL(
        diag_bijector=tfb.Chain([tfb.Shift(self.min_scale), tfb.Softplus()]),
        diag_shift=None)

  @property
  def params_shape(self):
    d, k = self.event_size, self.num_components
    return (k + k * (d + d * (d + 1) // 2),)

  def distribution(self, params):
    params = self._check_params(params)
    d, k = self.event_size, self.num_components
    batch = tf.shape(params)[:-1]
    logits = params[..., :k]
    loc = tf.reshape(params[..., k:k + k * d],
                     tf.concat([batch, [k, d]], axis=0))
    raw_tril = tf.reshape(params[..., k + k * d:],
                          tf.concat([batch, [k, d * (d + 1) // 2]], axis=0))
    components = tfd.MultivariateNormalTriL(
        loc=loc, scale_tril=self._fill_tril.forward(raw_tril))
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=logits),
        components_distribution=components)
