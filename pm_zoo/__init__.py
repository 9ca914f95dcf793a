"""pm_zoo: Posterior Matching (Strauss & Oliva, NeurIPS 2022) for TensorFlow.

Any VAE plus a partial encoder q(z | x_o), trained with the Posterior Matching
loss, answers arbitrary conditional questions p(x_u | x_o): imputation,
inpainting, conditional likelihoods.
"""
__version__ = '0.1.0'


def __getattr__(name):
  """``pm_zoo.PosteriorMatchingImputer``, imported on first use.

  ``import pm_zoo`` stays light: the scikit-learn module is imported when
  the name is first used, and TensorFlow only when an imputer fits or loads.
  """
  if name == 'PosteriorMatchingImputer':
    from pm_zoo.sklearn_api import PosteriorMatchingImputer  # pylint: disable=g-import-not-at-top
    return PosteriorMatchingImputer
  if name == 'PosteriorMatchingClusterer':
    from pm_zoo.sklearn_clustering import PosteriorMatchingClusterer  # pylint: disable=g-import-not-at-top
    return PosteriorMatchingClusterer
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
