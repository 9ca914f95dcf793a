"""Distribution heads: parameters in, tfp distributions out."""
from pm_zoo.distributions.heads import Bernoulli
from pm_zoo.distributions.heads import DiagonalGaussian
from pm_zoo.distributions.heads import DistributionHead
from pm_zoo.distributions.heads import elementwise_log_prob
from pm_zoo.distributions.heads import FullCovarianceGaussian
from pm_zoo.distributions.heads import Gaussian
