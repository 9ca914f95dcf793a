"""Base VAEs, one family per module."""
from pm_zoo.models.gaussian_vae import GaussianVAE
