"""pm_zoo: Posterior Matching (Strauss & Oliva, NeurIPS 2022) for TensorFlow.

Any VAE plus a partial encoder q(z | x_o), trained with the Posterior Matching
loss, answers arbitrary conditional questions p(x_u | x_o): imputation,
inpainting, conditional likelihoods.
"""
__version__ = '0.1.0'


def __getattr__(name):
  """``pm_zoo.PosteriorMatchingImputer``, imported on first use.

  ``import pm_zoo`` stays light (no TensorFlow); the scikit-learn imputer
  loads TensorFlow when it is first named.
  """
  if name == 'PosteriorMatchingImputer':
    from pm_zoo.sklearn_api import PosteriorMatchingImputer  # pylint: disable=g-import-not-at-top
    return PosteriorMatchingImputer
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
