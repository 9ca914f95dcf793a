"""Precision and recall of distributions (Sajjadi et al., 2018), for inpaintings.

Given embeddings of reference (real) images and of evaluated (generated or
inpainted) images, both are clustered together by k-means (20 clusters);
with P and Q the histograms of the two sets over the clusters, the PRD
curve is, for slopes lambda = tan(theta), theta in (0, pi / 2) (1001 angles),

  alpha(lambda) = sum_w min(lambda P(w), Q(w))     (precision),
  beta(lambda)  = alpha(lambda) / lambda           (recall).

The curve is averaged over 10 clusterings (runs). Its summaries are the
largest F_beta scores along it, F_b = (1 + b^2) p r / (b^2 p + r):
F_8 weighs recall ("recall" below), F_1/8 weighs precision ("precision").

For inpaintings (Posterior Matching's Table 1) the evaluated set is sample s
of every test image, s = 1..S: one curve per sample index, the two numbers
averaged over the S samples.

The paper embeds with Inception's pool_3; pm_zoo embeds with the penultimate
layer of a small classifier trained on the training split
(``pm_zoo.embedding_classifier``), so its numbers are not Inception numbers.
"""
from typing import Dict, Sequence

import numpy as np

from pm_zoo.errors import UserError

NUM_CLUSTERS = 20
NUM_ANGLES = 1001
NUM_RUNS = 10
BETA = 8.0


def prd_curve(reference: np.ndarray, evaluated: np.ndarray,
              num_clusters: int = NUM_CLUSTERS, num_angles: int = NUM_ANGLES,
              num_runs: int = NUM_RUNS, seed: int = 0):
  """(precision [A], recall [A]) averaged over ``num_runs`` clusterings.

  Args:
    reference: ``[N, d]`` embeddings of real images.
    evaluated: ``[M, d]`` embeddings of the evaluated images.
  """
  from sklearn.cluster import MiniBatchKMeans  # pylint: disable=g-import-not-at-top
  reference = np.asarray(reference, np.float64)
  evaluated = np.asarray(evaluated, np.float64)
  if reference.ndim != 2 or evaluated.ndim != 2 or (
      reference.shape[1] != evaluated.shape[1]):
    raise UserError('precision/recall needs two [N, d] embedding arrays of '
                    f'the same d, got {reference.shape} and {evaluated.shape}')
  if min(len(reference), len(evaluated)) < num_clusters:
    raise UserError(f'precision/recall needs at least {num_clusters} images '
                    'in each set')
  angles = np.linspace(1e-6, np.pi / 2 - 1e-6, num_angles)
  slopes = np.tan(angles)
  data = np.concatenate([reference, evaluated])
  precisions, recalls = [], []
  for run in range(num_runs):
    kmeans = MiniBatchKMeans(n_clusters=num_clusters, n_init=3,
                             random_state=seed + run, batch_size=1024)
    labels = kmeans.fit_predict(data)
    p = np.bincount(labels[:len(reference)], minlength=num_clusters)
    q = np.bincount(labels[len(reference):], minlength=num_clusters)
    p, q = p / p.sum(), q / q.sum()
    precision = np.minimum(p[None] * slopes[:, None], q[None]).sum(axis=1)
    recall = precision / slopes
    precisions.append(np.clip(precision, 0, 1))
    recalls.append(np.clip(recall, 0, 1))
  return np.mean(precisions, axis=0), np.mean(recalls, axis=0)


def max_f_beta(precision: np.ndarray, recall: np.ndarray,
               beta: float = BETA) -> Dict[str, float]:
  """``{'recall': max F_beta, 'precision': max F_1/beta}`` along a PRD curve."""
  def f(b):
    num = (1 + b ** 2) * precision * recall
    den = b ** 2 * precision + recall
    return float(np.max(np.where(den > 0, num / np.maximum(den, 1e-12), 0)))
  return {'recall': f(beta), 'precision': f(1.0 / beta)}


def inpainting_precision_recall(reference: np.ndarray,
                                sample_embeddings: Sequence[np.ndarray],
                                seed: int = 0) -> Dict[str, float]:
  """F_8 / F_1/8 of each sample index against the real images, averaged.

  Args:
    reference: ``[N, d]`` embeddings of the real test images.
    sample_embeddings: S arrays ``[N, d]``: sample s of every image.
  Returns:
    ``{'precision', 'recall'}`` (means over the S samples) and their stds.
  """
  scores = [max_f_beta(*prd_curve(reference, e, seed=seed))
            for e in sample_embeddings]
  out = {}
  for key in ('precision', 'recall'):
    values = np.array([s[key] for s in scores])
    out[key] = float(values.mean())
    out[key + '_std'] = float(values.std())
  return out
