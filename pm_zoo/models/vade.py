r"""VaDE: a VAE with a Gaussian-mixture prior, for clustering (Jiang et al. 2017).

Generative model, K clusters, latent size d:

  c ~ Cat(pi),  pi = softmax(a)                         (trainable logits a [K])
  z | c ~ N(mu_c, diag(sigma_c^2))                      (trainable mu [K, d],
                                                          log sigma [K, d])
  x | z ~ p_phi(x | z)                                  (Bernoulli for images,
                                                          Gaussian for tables)

so the prior p(z) = sum_c pi_c N(z; mu_c, sigma_c^2) is a Gaussian mixture
(``prior()``: a ``tfd.MixtureSameFamily``). Inference: a diagonal Gaussian
q_psi(z | x) = N(m(x), diag(s(x)^2)) and the cluster posterior at a draw
z ~ q_psi(z | x)

  q(c | x) = gamma_c(z) = p(c | z) = softmax_c(log pi_c + log N(z; mu_c, sigma_c^2)).

The ELBO (the VaDE paper's Eq. 10 with the Gaussian terms in closed form):

  ELBO(x) = E_{q(z|x)} log p(x | z)
            - sum_c gamma_c KL(N(m, s^2) || N(mu_c, sigma_c^2))
            - KL(gamma || pi),

  KL(N(m, s^2) || N(mu_c, sigma_c^2)) = sum_j [log sigma_cj - log s_j
        + (s_j^2 + (m_j - mu_cj)^2) / (2 sigma_cj^2) - 1/2],
  KL(gamma || pi) = sum_c gamma_c (log gamma_c - log pi_c),

one reparameterised draw z = m + s * eps per row (also the posterior target
of Posterior Matching, and where gamma is evaluated). The loss is
``-(E log p(x|z) - beta (sum_c gamma_c KL_c + KL(gamma || pi)))`` with the
trainer's KL weight beta (1 in the paper).

Training stages (each a ``pm-train`` run that resumes; see
``docs/models-vade.md``):

1. ``objective='pretrain'`` (a family stage, ``BaseVAE.stages``): a
   deterministic autoencoder, loss ``-log p(x | m(x))``, on the encoder and
   decoder only. With ``pretrain_denoising`` it is a denoising autoencoder
   with masking noise (Vincent et al. 2010; DEC's and the VaDE authors'
   stacked autoencoders were pre-trained with such corruption): the loss is
   ``-log p(x | m(x * b))``, the whole x reconstructed from the cells the
   trainer's mask b keeps (``TrainConfig.train_mask``, e.g. a
   ``BernoulliMask`` with ``p_observed=0.8`` for 20% corruption).
2. ``objective='vae'`` warm-started from stage 1 (``vae_checkpoint``): when
   the stage starts from step 0, ``begin_stage`` fits a diagonal
   ``sklearn.mixture.GaussianMixture`` with K components to the latent means
   m(x) of the training rows (``prior_init='gmm'``; ``'umap'`` finds the
   components by N2D's UMAP clustering instead, ``mixture_init``) and sets
   a = log(weights), mu = means, log sigma = 0.5 log(variances). (The authors' code writes the variances
   where it reads log standard deviations; ``gmm_to_prior_parameters`` is
   the tested conversion.) Then the ELBO above.
3. ``objective='partial'`` with the VaDE frozen: Posterior Matching trains
   q_theta(z | x_o), and clustering from x_o averages p(c | z) over draws
   z ~ q_theta(z | x_o) (``pm_zoo.tasks.clustering``).

Shapes: ``x [B, *feature_shape]``, ``z [B, d]``, cluster probabilities
``[..., K]`` for ``z [..., d]``.
"""
import math
from typing import Callable, Optional, Sequence

from absl import logging
import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.distributions import heads
from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.models import base
from pm_zoo.models import mixture_init
from pm_zoo.models.gaussian_vae import GaussianVAE
from pm_zoo.networks import mlp

tfd = tfp.distributions

PRETRAIN = 'pretrain'
_LOG_2PI = math.log(2.0 * math.pi)


def gmm_to_prior_parameters(weights: np.ndarray, means: np.ndarray,
                            variances: np.ndarray):
  """A fitted GaussianMixture -> (logits, means, log_stds, off_diagonal).

  Args:
    weights: ``[K]`` mixture weights (``GaussianMixture.weights_``).
    means: ``[K, d]`` (``means_``).
    variances: ``[K, d]`` diagonal variances (``covariances_`` with
      ``covariance_type='diag'``), or ``[K, d, d]`` covariances (``'full'``).

  Returns:
    float32 ``logits = log(weights)``, ``means``, and the prior's scale:
    diagonal, ``log_stds = 0.5 * log(variances)`` (standard deviations, not
    variances) and ``off_diagonal = None``; full, the Cholesky factor L of
    each covariance (Sigma = L L^T) as ``log_stds = log diag(L)`` and
    ``off_diagonal`` ``[K, d, d]``, L's strictly lower triangle.
  """
  weights = np.asarray(weights, np.float64)
  variances = np.asarray(variances, np.float64)
  full = variances.ndim == 3
  diagonal = np.diagonal(variances, axis1=-2, axis2=-1) if full else variances
  if np.any(diagonal <= 0) or np.any(weights <= 0):
    raise UserError('the fitted GaussianMixture has a zero weight or '
                    'variance: fit it on more rows or raise reg_covar')
  logits = np.log(weights).astype(np.float32)
  means = np.asarray(means, np.float32)
  if not full:
    return logits, means, (0.5 * np.log(variances)).astype(np.float32), None
  try:
    chol = np.linalg.cholesky(variances)
  except np.linalg.LinAlgError:
    raise UserError('a fitted covariance is not positive definite: fit the '
                    'prior on more rows or raise reg_covar') from None
  log_stds = np.log(np.diagonal(chol, axis1=-2, axis2=-1))
  return (logits, means, log_stds.astype(np.float32),
          np.tril(chol, -1).astype(np.float32))


@gin.configurable
class VaDE(GaussianVAE):
  """Variational Deep Embedding: a Gaussian-mixture prior over z (see module).

  Args:
    feature_shape: shape of one example (runtime).
    num_clusters: K.
    latent_dim: d.
    encoder_network / decoder_network: backbone factories (conv nets for
      images, residual MLPs for tables); the encoder head is a diagonal
      Gaussian.
    decoder_head: Bernoulli (images in [0, 1]) or Gaussian (tables).
    gmm_examples: training rows encoded to fit the initial GaussianMixture.
    gmm_seed: its random_state (and UMAP's).
    prior_init: how the initial mixture is found (``mixture_init``):
      ``'gmm'``, the VaDE paper's diagonal GaussianMixture on m(x), or
      ``'umap'``, N2D's: clusters of a UMAP embedding of m(x), moment-matched
      back to a mixture in z (needs ``umap-learn``).
      Either is fitted with ``covariance``'s components.
    umap_neighbors: UMAP's ``n_neighbors`` for ``prior_init='umap'``.
    covariance: of each p(z | c): ``'diag'`` (the VaDE paper's) or
      ``'full'``, N(mu_c, L_c L_c^T) with L_c lower triangular, stored as
      ``component_log_stds`` = log diag(L_c) and
      ``component_scale_off_diagonal`` (its strictly lower part; a diagonal
      VaDE keeps that variable untrained, so runs of either kind warm-start
      each other).
    pretrain_denoising: pre-train as a denoising autoencoder on x * b (see
      the module docstring); False: the plain autoencoder.
  """

  capabilities = frozenset({base.GAUSSIAN_LATENT, base.MARGINAL_LIKELIHOOD,
                            base.GENERATIVE_PRIOR, base.REPARAMETERIZED,
                            base.CLUSTERS})
  stages = (PRETRAIN,)

  def __init__(self, feature_shape: Sequence[int], num_clusters: int = 10,
               latent_dim: int = 10,
               encoder_network: Callable = mlp.ResidualMLP,
               decoder_network: Callable = mlp.ResidualMLP,
               decoder_head: Callable = heads.Gaussian,
               gmm_examples: int = 20000, gmm_seed: int = 0,
               pretrain_denoising: bool = False,
               prior_init: str = 'gmm', umap_neighbors: int = 20,
               covariance: str = 'diag',
               name: str = 'vade', **kwargs):
    if num_clusters < 1:
      raise UserError(f'VaDE.num_clusters must be >= 1, got {num_clusters}')
    if prior_init not in mixture_init.PRIOR_INITS:
      raise UserError(f'VaDE.prior_init must be one of '
                      f'{mixture_init.PRIOR_INITS}, got {prior_init!r}')
    if covariance not in mixture_init.COVARIANCES:
      raise UserError("VaDE.covariance must be 'diag' or 'full', got "
                      f'{covariance!r}')
    super().__init__(feature_shape, latent_dim=latent_dim,
                     encoder_network=encoder_network,
                     decoder_network=decoder_network,
                     encoder_head=heads.DiagonalGaussian,
                     decoder_head=decoder_head, name=name, **kwargs)
    self.num_clusters = int(num_clusters)
    self.gmm_examples = int(gmm_examples)
    self.gmm_seed = int(gmm_seed)
    self.pretrain_denoising = bool(pretrain_denoising)
    self.prior_init = prior_init
    self.umap_neighbors = int(umap_neighbors)
    self.covariance = covariance
    k, d = self.num_clusters, self.latent_dim
    self.mixture_logits = self.add_weight(
        name='mixture_logits', shape=[k], initializer='zeros')
    self.component_means = self.add_weight(
        name='component_means', shape=[k, d],
        initializer=keras.initializers.RandomNormal(stddev=1.0, seed=gmm_seed))
    self.component_log_stds = self.add_weight(
        name='component_log_stds', shape=[k, d], initializer='zeros')
    # Kept (not trained) by a diagonal VaDE too, so that every VaDE
    # checkpoint has it and a stage may switch to covariance='full'
    # (e.g. a diagonal pre-training run warm-starts a full ELBO stage).
    self.component_scale_off_diagonal = self.add_weight(
        name='component_scale_off_diagonal', shape=[k, d, d],
        initializer='zeros', trainable=covariance == 'full')

  # ----------------------------------------------------------- the prior
  @property
  def prior_variables(self):
    variables = [self.mixture_logits, self.component_means,
                 self.component_log_stds]
    if self.full_covariance:
      variables.append(self.component_scale_off_diagonal)
    return variables

  @property
  def full_covariance(self) -> bool:
    return self.covariance == 'full'

  def component_scale_tril(self) -> tf.Tensor:
    """L_c ``[K, d, d]``: diag(exp(log_stds)) + the strict lower triangle."""
    lower = (tf.linalg.band_part(self.component_scale_off_diagonal, -1, 0)
             if self.full_covariance
             else tf.zeros_like(self.component_scale_off_diagonal))
    return tf.linalg.set_diag(lower, tf.exp(self.component_log_stds))

  def components(self) -> tfd.Distribution:
    """p(z | c) for every c: batch ``[K]``, event ``[d]``."""
    if not self.full_covariance:
      return tfd.MultivariateNormalDiag(
          loc=self.component_means,
          scale_diag=tf.exp(self.component_log_stds))
    return tfd.MultivariateNormalTriL(loc=self.component_means,
                                      scale_tril=self.component_scale_tril())

  def prior(self) -> tfd.Distribution:
    """p(z) = sum_c pi_c N(z; mu_c, sigma_c^2), event ``[d]``."""
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=self.mixture_logits),
        components_distribution=self.components())

  def cluster_log_probs(self, z: tf.Tensor) -> tf.Tensor:
    """log p(c | z) for ``z [..., d]``: ``[..., K]``."""
    z = tf.convert_to_tensor(z)
    joint = (tf.nn.log_softmax(self.mixture_logits)
             + self.components().log_prob(z[..., None, :]))
    return tf.nn.log_softmax(joint, axis=-1)

  def cluster_probabilities(self, z: tf.Tensor) -> tf.Tensor:
    """p(c | z) = softmax(log pi + log N(z; mu_c, sigma_c^2)): ``[..., K]``."""
    return tf.exp(self.cluster_log_probs(z))

  def set_prior(self, logits, means, log_stds, off_diagonal=None) -> None:
    """Assigns ``gmm_to_prior_parameters``' output (see there)."""
    full = self.full_covariance
    if full != (off_diagonal is not None):
      raise UserError(f'a VaDE with covariance={self.covariance!r} needs a '
                      f'{"full" if full else "diagonal"} mixture to start '
                      'from')
    self.mixture_logits.assign(logits)
    self.component_means.assign(means)
    self.component_log_stds.assign(log_stds)
    if full:
      self.component_scale_off_diagonal.assign(off_diagonal)

  # ----------------------------------------------------------- the ELBO
  def training_terms(self, x, kl_weight, training=True, noise=None,
                     seed=None, observed: Optional[tf.Tensor] = None
                     ) -> base.VAETerms:
    """-ELBO of the module docstring, one z per row."""
    if observed is not None:
      raise UserError('VaDE does not train on incomplete data: pass fully '
                      'observed rows (fill or drop the missing cells)')
    posterior = self.encode(x, training=training)
    m, s = posterior.loc, posterior.stddev()
    if noise is not None:
      z = m + s * noise
    else:
      z = posterior.sample(seed=seed)
    log_likelihood = self.decode(z, training=training).log_prob(x)
    log_gamma = self.cluster_log_probs(z)                      # [B, K]
    gamma = tf.exp(log_gamma)
    kl_c = self.component_kls(m, s)                            # [B, K]
    log_pi = tf.nn.log_softmax(self.mixture_logits)
    kl_z = tf.reduce_sum(gamma * kl_c, axis=-1)
    kl_cat = tf.reduce_sum(gamma * (log_gamma - log_pi), axis=-1)
    kl = kl_z + kl_cat
    return base.VAETerms(
        loss=-(log_likelihood - kl_weight * kl),
        scalars={'elbo': log_likelihood - kl, 'log_likelihood': log_likelihood,
                 'kl': kl, 'kl_cluster': kl_cat},
        target=z, posterior=posterior)

  def component_kls(self, m: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
    """KL(N(m, diag s^2) || p(z | c)) for every c: ``[B, K]``.

    For ``m, s [B, d]``. Diagonal components:
      sum_j [log sigma_cj - log s_j + (s_j^2 + (m_j - mu_cj)^2)
             / (2 sigma_cj^2) - 1/2];
    full, Sigma_c = L_c L_c^T:
      sum_j log L_c,jj - sum_j log s_j
      + (||L_c^-1 diag(s)||_F^2 + ||L_c^-1 (m - mu_c)||^2 - d) / 2.
    """
    mu_c = self.component_means                                # [K, d]
    log_sc = self.component_log_stds
    if not self.full_covariance:
      return tf.reduce_sum(
          log_sc - tf.math.log(s)[:, None, :]
          + (tf.square(s)[:, None, :] + tf.square(m[:, None, :] - mu_c))
          / (2.0 * tf.exp(2.0 * log_sc)) - 0.5, axis=-1)
    d = self.latent_dim
    inverse = tf.linalg.triangular_solve(                      # [K, d, d]
        self.component_scale_tril(), tf.eye(d, batch_shape=[self.num_clusters]))
    trace = tf.reduce_sum(                                     # [B, K]
        tf.square(inverse[None] * s[:, None, None, :]), axis=[-2, -1])
    offset = tf.einsum('kij,bkj->bki', inverse, m[:, None, :] - mu_c)
    mahalanobis = tf.reduce_sum(tf.square(offset), axis=-1)    # [B, K]
    return (tf.reduce_sum(log_sc, -1)[None]
            - tf.reduce_sum(tf.math.log(s), -1)[:, None]
            + 0.5 * (trace + mahalanobis - d))

  # ----------------------------------------------------------- stages
  def stage_terms(self, stage, x, kl_weight, training=True, noise=None,
                  seed=None, observed=None, mask=None) -> base.VAETerms:
    """'pretrain': -log p(x | m(x)) per row; denoising: -log p(x | m(x * b))."""
    if stage != PRETRAIN:
      return super().stage_terms(stage, x, kl_weight, training, noise, seed,
                                 observed, mask)
    if observed is not None:
      raise UserError('VaDE does not train on incomplete data: pass fully '
                      'observed rows')
    corrupted = x
    if self.pretrain_denoising and training:
      if mask is None:
        raise UserError('VaDE.pretrain_denoising needs the trainer\'s mask '
                        '(TrainConfig.train_mask) as its corruption')
      corrupted = x * tf.cast(mask, x.dtype)
    m = self.encode(corrupted, training=training).loc
    reconstruction = -self.decode(m, training=training).log_prob(x)
    return base.VAETerms(loss=reconstruction,
                         scalars={'reconstruction': reconstruction},
                         target=m, posterior=None)

  def stage_variables(self, stage):
    if stage == PRETRAIN:
      prior = {id(v) for v in self.prior_variables}
      return [v for v in self.trainable_variables if id(v) not in prior]
    return super().stage_variables(stage)

  def begin_stage(self, stage: str, train_x: np.ndarray) -> None:
    """Before a stage's first step: the check below; for the ELBO stage,
    the mixture initialisation.

    A diagonal VaDE warm-started from a ``covariance='full'`` run would
    ignore the restored off-diagonal scales and cluster with the wrong
    prior: that is refused.
    """
    if (not self.full_covariance
        and np.any(self.component_scale_off_diagonal.numpy() != 0)):
      raise UserError("the VAE checkpoint was trained with VaDE.covariance="
                      "'full': bind VaDE.covariance = 'full' in this stage "
                      'too')
    if stage in ('vae', 'joint'):
      self.fit_prior(train_x)

  def latent_means(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """m(x) for rows of ``x`` (numpy), ``[N, d]``."""
    encode = tf.function(lambda b: self.encode(b).loc)
    return np.concatenate([encode(tf.constant(x[i:i + batch_size])).numpy()
                           for i in range(0, len(x), batch_size)])

  def initial_mixture(self, train_x: np.ndarray, seed: Optional[int] = None):
    """The GaussianMixture stage 2 starts from, and the latent means it fits.

    ``gmm_examples`` training rows drawn with ``seed`` (default
    ``gmm_seed``), encoded to their means m(x) ``[n, d]``; the
    latent-space GaussianMixture (of ``covariance``'s kind) that ``prior_init`` makes of them with
    ``random_state=seed`` (``mixture_init.fit_gaussian_mixture`` or
    ``mixture_init.manifold_mixture``). Returns ``(gmm, rows, means)``.
    """
    seed = self.gmm_seed if seed is None else int(seed)
    rows = np.random.default_rng(seed).permutation(len(train_x))
    rows = np.sort(rows[:self.gmm_examples])
    means = self.latent_means(np.asarray(train_x[rows], np.float32))
    if len(means) < self.num_clusters:
      raise UserError(f'VaDE needs at least num_clusters={self.num_clusters} '
                      f'training rows to fit its prior, got {len(means)}')
    if self.prior_init == 'umap':
      gmm = mixture_init.manifold_mixture(means, self.num_clusters, seed,
                                          n_neighbors=self.umap_neighbors,
                                          covariance_type=self.covariance)
    else:
      gmm = mixture_init.fit_gaussian_mixture(means, self.num_clusters, seed,
                                              self.covariance)
    return gmm, rows, means

  def fit_prior(self, train_x: np.ndarray) -> None:
    """Sets the prior from the initial mixture on the latent means."""
    gmm, _, means = self.initial_mixture(train_x)
    self.set_prior(*gmm_to_prior_parameters(gmm.weights_, gmm.means_,
                                            gmm.covariances_))
    logging.info('VaDE prior initialised (prior_init=%r) to a %d-component '
                 'mixture on %d latent means (log-likelihood %.3f per row)',
                 self.prior_init, self.num_clusters, len(means),
                 gmm.score(means))

