"""Distribution heads: parameters in, tfp distributions out.

Encoder/decoder heads live in ``heads``; the expressive partial posteriors
q_theta(z | x_o) (mixture, autoregressive mixture, MAF, IAF) in ``mixtures``,
``autoregressive`` and ``flows``; the analytic-KL loss in ``kl``.
"""
from pm_zoo.distributions.autoregressive import AutoregressiveGaussianMixture
from pm_zoo.distributions.flows import InverseAutoregressiveFlow
from pm_zoo.distributions.flows import MaskedAutoregressiveFlow
from pm_zoo.distributions.heads import Bernoulli
from pm_zoo.distributions.heads import DiagonalGaussian
from pm_zoo.distributions.heads import DistributionHead
from pm_zoo.distributions.heads import elementwise_log_prob
from pm_zoo.distributions.heads import FullCovarianceGaussian
from pm_zoo.distributions.heads import Gaussian
from pm_zoo.distributions.kl import posterior_matching_kl
from pm_zoo.distributions.mixtures import GaussianMixture
