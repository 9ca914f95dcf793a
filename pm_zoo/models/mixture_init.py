r"""Where VaDE's mixture prior starts: a Gaussian mixture over m(x).

VaDE's ELBO stage keeps, on MNIST, nearly the partition of the latent means
m(x) [N, d] that its initial mixture makes (docs/models-vade.md), so the
initialisation decides the accuracy. Two ways to make it
(``VaDE.prior_init``):

``'gmm'`` (the VaDE paper): a ``GaussianMixture`` fitted to m(x) by EM
  (``fit_gaussian_mixture``; diagonal in the paper).

``'umap'`` (N2D: McConville et al. 2020, "N2D: (Not Too) Deep Clustering
  via Clustering the Local Manifold of an Autoencoded Embedding"): the
  clusters are found where the autoencoder's embedding is easiest to
  cluster, on its local manifold: UMAP maps m(x) to e(x) [N, K]
  (``n_neighbors`` 20, ``min_dist`` 0), a full-covariance
  ``GaussianMixture`` on e(x) gives responsibilities r [N, K], and the
  latent-space prior is the mixture with those responsibilities, one M-step
  in z (``responsibility_moments``):

    n_c = sum_i r_ic,   pi_c = n_c / N,   mu_c = sum_i r_ic m_i / n_c,
    sigma_c^2 = sum_i r_ic m_i^2 / n_c - mu_c^2 + reg      (diagonal),
    Sigma_c = sum_i r_ic (m_i - mu_c)(m_i - mu_c)^T / n_c + reg I  (full).

  No EM in z follows: EM there drifts back to the partition the ``'gmm'``
  way finds.

Both return a fitted ``sklearn.mixture.GaussianMixture`` in the latent space
(``weights_ [K]``, ``means_ [K, d]``, ``covariances_ [K, d]``, or
``[K, d, d]`` for a VaDE with ``covariance='full'``),
whose ``predict`` is the argmax of VaDE's q(c | x) at z = m(x) right after
the initialisation and whose ``score`` is the mean log-likelihood of m(x)
under it.
"""
import numpy as np

from pm_zoo.errors import UserError

PRIOR_INITS = ('gmm', 'umap')
COVARIANCES = ('diag', 'full')


def fit_gaussian_mixture(means: np.ndarray, num_clusters: int, seed: int,
                         covariance_type: str = 'diag'):
  """The VaDE paper's initialisation: a GaussianMixture fitted to m(x).

  Args:
    means: ``[N, d]`` latent means m(x) of training rows.
    num_clusters: K.
    seed: its ``random_state`` (k-means initialisation, one restart).
    covariance_type: ``'diag'`` (the paper's) or ``'full'``.

  Returns:
    The fitted ``GaussianMixture`` (``weights_ [K]``, ``means_ [K, d]``,
    ``covariances_ [K, d]``, or ``[K, d, d]`` for ``'full'``).
  """
  # pylint: disable=g-import-not-at-top
  from sklearn.mixture import GaussianMixture
  gmm = GaussianMixture(num_clusters, covariance_type=covariance_type,
                        random_state=seed, reg_covar=1e-4)
  return gmm.fit(np.asarray(means, np.float64))


def responsibility_moments(points: np.ndarray, responsibilities: np.ndarray,
                           reg_covar: float = 1e-4, full: bool = False):
  """The M-step of a Gaussian mixture (see module).

  Args:
    points: ``[N, d]``.
    responsibilities: ``[N, K]``, rows summing to one.
    reg_covar: added to every variance (the covariances' diagonal).
    full: full covariances, Sigma_c = sum_i r_ic (m_i - mu_c)(m_i - mu_c)^T
      / n_c + reg I, instead of their diagonals.

  Returns:
    ``(weights [K], means [K, d], variances [K, d])``, or covariances
    ``[K, d, d]`` where ``full``; float64.

  Raises:
    UserError: a component has no responsibility left (it would have no
      mean): fit on more rows or with fewer clusters.
  """
  points = np.asarray(points, np.float64)
  r = np.asarray(responsibilities, np.float64)
  counts = r.sum(axis=0)
  if np.any(counts < 1e-8 * len(points)):
    raise UserError(f'{int(np.sum(counts < 1e-8 * len(points)))} of '
                    f'{r.shape[1]} mixture components got no rows: fit the '
                    'prior on more rows (VaDE.gmm_examples) or use fewer '
                    'clusters')
  means = r.T @ points / counts[:, None]
  if full:
    centred = points[None] - means[:, None]                  # [K, N, d]
    covariances = np.einsum('nk,kni,knj->kij', r, centred, centred)
    covariances /= counts[:, None, None]
    covariances += reg_covar * np.eye(points.shape[1])
    return counts / counts.sum(), means, covariances
  second = r.T @ np.square(points) / counts[:, None]
  variances = np.maximum(second - np.square(means), 0.0) + reg_covar
  return counts / counts.sum(), means, variances


def built_mixture(weights: np.ndarray, means: np.ndarray,
                  covariances: np.ndarray):
  """A fitted ``GaussianMixture`` with exactly these parameters.

  ``covariances`` ``[K, d]`` makes a diagonal one, ``[K, d, d]`` a full one.
  """
  # pylint: disable=g-import-not-at-top
  from sklearn.mixture import GaussianMixture
  covariances = np.asarray(covariances, np.float64)
  full = covariances.ndim == 3
  gmm = GaussianMixture(len(weights),
                        covariance_type='full' if full else 'diag')
  gmm.weights_ = np.asarray(weights, np.float64)
  gmm.means_ = np.asarray(means, np.float64)
  gmm.covariances_ = covariances
  if full:
    # sklearn's precisions_cholesky_: upper U with U U^T = Sigma^-1, i.e.
    # U = L^-T for the Cholesky factor L of Sigma.
    chol = np.linalg.cholesky(covariances)
    eye = np.eye(covariances.shape[-1])
    gmm.precisions_cholesky_ = np.stack(
        [np.linalg.solve(l, eye).T for l in chol])
  else:
    gmm.precisions_cholesky_ = 1.0 / np.sqrt(covariances)
  return gmm


def umap_embedding(points: np.ndarray, dim: int, seed: int,
                   n_neighbors: int = 20) -> np.ndarray:
  """e(x) ``[N, dim]``: UMAP of ``points [N, d]`` (``min_dist`` 0)."""
  try:
    import umap  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("VaDE.prior_init='umap' needs umap-learn: "
                    "pip install umap-learn (or pm_zoo[cluster])") from None
  if len(points) <= n_neighbors:
    raise UserError(f"VaDE.prior_init='umap' needs more than n_neighbors="
                    f'{n_neighbors} rows, got {len(points)}')
  reducer = umap.UMAP(n_components=dim, n_neighbors=n_neighbors,
                      min_dist=0.0, random_state=seed)
  return reducer.fit_transform(np.asarray(points, np.float32))


def manifold_mixture(means: np.ndarray, num_clusters: int, seed: int,
                     n_neighbors: int = 20, restarts: int = 4, embed=None,
                     covariance_type: str = 'diag'):
  """The N2D initialisation (see module): latent mixture from UMAP clusters.

  Args:
    means: ``[N, d]`` latent means m(x).
    num_clusters: K (also UMAP's output dimension, as N2D).
    seed: UMAP's and the embedding GMM's ``random_state``.
    n_neighbors: UMAP's neighbourhood size (N2D: 20 on MNIST).
    restarts: EM restarts of the full-covariance GMM on e(x) (``n_init``;
      the most likely one is kept: on e(x), unlike on m(x), the likelihood
      picks the better partitions, docs/models-vade.md).
    embed: ``(points, dim, seed) -> [N, dim]``; default ``umap_embedding``
      (tests pass a cheaper map).
    covariance_type: of the latent-space mixture, ``'diag'`` or ``'full'``.

  Returns:
    The latent-space ``GaussianMixture`` (see module).
  """
  # pylint: disable=g-import-not-at-top
  from sklearn.mixture import GaussianMixture
  if embed is None:
    embed = lambda p, dim, s: umap_embedding(p, dim, s, n_neighbors)
  embedded = np.asarray(embed(means, num_clusters, seed), np.float64)
  on_manifold = GaussianMixture(num_clusters, covariance_type='full',
                                n_init=restarts, random_state=seed)
  responsibilities = on_manifold.fit(embedded).predict_proba(embedded)
  return built_mixture(*responsibility_moments(
      means, responsibilities, full=covariance_type == 'full'))
