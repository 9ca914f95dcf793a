"""A 2-D map of the latent space with partial posteriors (paper Fig. 4).

Left: the posterior means E[z | x] of test images, embedded in 2-D (UMAP via
``umap-learn`` where it is installed, else t-SNE from scikit-learn) and
coloured by label; on top, draws z_s ~ q_theta(z | x_o) for a few partially
observed test images (one marker colour per image). Right: each of those
images, its observed pixels (missing ones in blue) and inpaintings decoded
from some of the draws. Any base VAE with a vector Gaussian latent works
(VaDE, the Gaussian VAE).

t-SNE has no out-of-sample transform, so it embeds the encodings and the
draws together; UMAP is fitted on the encodings and transforms the draws.
"""
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from pm_zoo import figures
from pm_zoo.errors import UserError
from pm_zoo.models import base


def embed_2d(points: np.ndarray, extra: np.ndarray, seed: int = 0):
  """(2-D points, 2-D extra, method name) for ``[N, d]`` and ``[M, d]``."""
  try:
    import umap  # pylint: disable=g-import-not-at-top
  except ImportError:
    umap = None
  if umap is not None:
    reducer = umap.UMAP(n_components=2, random_state=seed)
    return reducer.fit_transform(points), reducer.transform(extra), 'UMAP'
  # pylint: disable=g-import-not-at-top
  from sklearn.manifold import TSNE
  both = np.concatenate([points, extra]).astype(np.float64)
  perplexity = float(min(30.0, max(2.0, (len(both) - 1) / 3.0)))
  emb = TSNE(n_components=2, init='pca', random_state=seed,
             perplexity=perplexity).fit_transform(both)
  return emb[:len(points)], emb[len(points):], 't-SNE'


def top_half_mask(shape) -> np.ndarray:
  """Observe the top half of every image (the map's partial observations)."""
  mask = np.zeros(shape, np.float32)
  mask[:, :shape[1] // 2] = 1.0
  return mask


def save_latent_map(path: str, model, x: np.ndarray, labels: np.ndarray,
                    num_points: int = 1500, num_examples: int = 4,
                    num_draws: int = 100, num_inpaintings: int = 6,
                    mask: Optional[np.ndarray] = None, seed: int = 0
                    ) -> Dict:
  """Writes the figure; returns ``{'method', 'points', 'examples'}``.

  Args:
    model: a ``PosteriorMatchingVAE`` whose VAE has ``GAUSSIAN_LATENT``.
    x, labels: test images ``[N, H, W, C]`` and labels ``[N]``.
    mask: ``[num_examples, H, W, C]`` masks of the shown images (default:
      top half observed).
  """
  model.vae.require(base.GAUSSIAN_LATENT, 'the latent map')
  x = np.asarray(x, np.float32)
  if x.ndim != 4:
    raise UserError('the latent map shows images: pass [N, H, W, C] arrays')
  n = min(num_points, len(x))
  means = np.concatenate([
      model.vae.encode(tf.constant(x[i:i + 500])).mean().numpy()
      for i in range(0, n, 500)])
  shown = x[:num_examples]
  if mask is None:
    mask = top_half_mask(shown.shape)
  posterior = model.partial_encoder(tf.constant(shown * mask),
                                    tf.constant(mask))
  z = posterior.sample(num_draws, seed=tf.constant([seed, 7])).numpy()
  decoded = model.vae.decode(tf.constant(z[:num_inpaintings])).mean().numpy()
  inpaintings = mask * shown + (1.0 - mask) * decoded       # [S', E, ...]
  flat = np.transpose(z, [1, 0, 2]).reshape(-1, z.shape[-1])  # [E * S, d]
  points, draws, method = embed_2d(means, flat, seed)
  draws = draws.reshape(len(shown), num_draws, 2)
  _draw(path, points, np.asarray(labels[:n]), draws, shown, mask,
        inpaintings, method)
  return {'method': method, 'points': int(n), 'examples': int(len(shown)),
          'draws': int(num_draws)}


def _draw(path, points, labels, draws, shown, mask, inpaintings, method):
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(12.0, 6.0), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_axes([0.04, 0.06, 0.5, 0.88])
  scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap='tab10',
                       s=4, alpha=0.5)
  fig.colorbar(scatter, ax=ax, fraction=0.04, label='label')
  colours = ['black', 'magenta', 'darkorange', 'lime', 'cyan', 'brown']
  for e, cloud in enumerate(draws):
    ax.scatter(cloud[:, 0], cloud[:, 1], marker='*', s=30,
               color=colours[e % len(colours)], edgecolors='white',
               linewidths=0.3, label=f'q(z | x_o), image {e + 1}')
  ax.legend(loc='best', fontsize=7)
  ax.set_title(f'{method} of E[z | x] (test, by label) and draws of '
               'q_theta(z | x_o)')
  ax.set_xticks([])
  ax.set_yticks([])
  rows = []
  missing = np.asarray(figures.MISSING_RGB)
  for e in range(len(shown)):
    img = np.repeat(np.clip(shown[e], 0, 1), 3, -1) if shown.shape[-1] == 1 \
        else np.clip(shown[e], 0, 1)
    m = mask[e][..., :1]
    observed = img * m + missing * (1 - m)
    row = [img, observed] + [
        np.repeat(np.clip(s, 0, 1), 3, -1) if s.shape[-1] == 1 else
        np.clip(s, 0, 1) for s in inpaintings[:, e]]
    rows.append(row)
  cols = len(rows[0])
  for r, row in enumerate(rows):
    for c, tile in enumerate(row):
      left = 0.58 + c * (0.40 / cols)
      bottom = 0.92 - (r + 1) * (0.86 / len(rows))
      tax = fig.add_axes([left, bottom, 0.40 / cols * 0.95,
                          0.86 / len(rows) * 0.95])
      tax.imshow(tile, interpolation='nearest')
      tax.set_xticks([])
      tax.set_yticks([])
      if c == 0:
        tax.set_ylabel(f'{r + 1}', color=colours[r % len(colours)],
                       rotation=0, labelpad=8, fontsize=10)
      if r == 0:
        tax.set_title(['image', 'observed'][c] if c < 2 else 'inpainting',
                      fontsize=7)
  figures._save_atomically(fig, path, 'png')  # pylint: disable=protected-access
