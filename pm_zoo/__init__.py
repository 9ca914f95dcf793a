"""pm_zoo: Posterior Matching (Strauss & Oliva, NeurIPS 2022) for TensorFlow.

Any VAE plus a partial encoder q(z | x_o), trained with the Posterior Matching
loss, answers arbitrary conditional questions p(x_u | x_o): imputation,
inpainting, conditional likelihoods.
"""
__version__ = '0.1.0'
