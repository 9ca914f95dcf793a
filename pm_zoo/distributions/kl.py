"""Analytic-KL form of the Posterior Matching loss (paper Eq. 3).

When both the full posterior q_psi(z | x) and the partial posterior
q_theta(z | x_o) are Gaussian, the sampled loss

  L_PM = -E_{z ~ q_psi(z|x)} [log q_theta(z | x_o)]
       = KL(q_psi(z | x) || q_theta(z | x_o)) + H[q_psi(z | x)]

can be replaced by the closed-form KL: the entropy H[q_psi] does not depend on
theta, so both have the same gradient with respect to theta, and the KL has no
sampling noise. For N(m1, S1) and N(m2, S2) over R^d,

  KL = 1/2 [ tr(S2^{-1} S1) + (m2 - m1)^T S2^{-1} (m2 - m1) - d
             + log det S2 - log det S1 ].

Unlike L_PM, the KL also moves psi unless the caller stops its gradient.
"""
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.errors import UserError

tfd = tfp.distributions


def is_gaussian(dist: tfd.Distribution) -> bool:
  """True for multivariate normals (diag, tril, full covariance) and for
  ``Independent(Normal)``, the Gaussians whose KL tfp knows in closed form."""
  if isinstance(dist, tfd.MultivariateNormalLinearOperator):
    return True
  return (isinstance(dist, tfd.Independent)
          and isinstance(dist.distribution, tfd.Normal)
          and dist.event_shape.rank == 1)


def posterior_matching_kl(full_posterior: tfd.Distribution,
                          partial_posterior: tfd.Distribution) -> tf.Tensor:
  """KL(q_psi(z | x) || q_theta(z | x_o)) per row, shape ``[B]``.

  Args:
    full_posterior: q_psi(z | x), a Gaussian with batch ``[B]``, event ``[d]``.
    partial_posterior: q_theta(z | x_o), a Gaussian with the same batch and
      event shapes.

  Returns:
    The closed-form KL of every row (``tfd.kl_divergence``), ``[B]``.

  Two non-Gaussian posteriors use the KL registered for their classes
  (``tfd.RegisterKL``), where there is one.

  Raises:
    UserError: a posterior is not Gaussian and no KL is registered for the
      pair (mixtures, autoregressive and flow heads have no closed-form KL:
      use the sampled L_PM with them).
  """
  if not (is_gaussian(full_posterior) and is_gaussian(partial_posterior)):
    # A family's own pair of densities may have a registered KL (e.g. the
    # hierarchical VAE's per-layer KL along the full posterior's trajectory).
    try:
      return tfd.kl_divergence(full_posterior, partial_posterior)
    except NotImplementedError:
      pass
  for role, dist in (('full posterior q_psi(z|x)', full_posterior),
                     ('partial posterior q_theta(z|x_o)', partial_posterior)):
    if not is_gaussian(dist):
      raise UserError(
          f'the analytic-KL Posterior Matching loss needs Gaussian posteriors, '
          f'but the {role} is a {type(dist).__name__}; use a DiagonalGaussian '
          'or FullCovarianceGaussian head, or the sampled L_PM')
  if full_posterior.event_shape != partial_posterior.event_shape:
    raise UserError(
        f'the full and partial posteriors have different latent shapes '
        f'({full_posterior.event_shape} vs {partial_posterior.event_shape}); '
        'build the partial encoder with the VAE\'s latent_dim')
  return tfd.kl_divergence(_as_multivariate(full_posterior),
                           _as_multivariate(partial_posterior))


def _as_multivariate(dist: tfd.Distribution) -> tfd.Distribution:
  """``Independent(Normal)`` as the equal ``MultivariateNormalDiag`` (tfp has
  no registered KL between it and a ``MultivariateNormalTriL``)."""
  if isinstance(dist, tfd.MultivariateNormalLinearOperator):
    return dist
  return tfd.MultivariateNormalDiag(loc=dist.distribution.loc,
                                    scale_diag=dist.distribution.scale)
