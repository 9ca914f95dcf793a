"""Figures: inpainting grids and line curves, written atomically as files.

Rendering uses ``matplotlib.figure.Figure`` with an explicit
``FigureCanvasAgg``: no pyplot, no global backend switch, no open-figure
registry, so it works headless and inside any process that already chose a
backend. Files are written to a temporary name in the target directory and
moved into place with ``os.replace``, so a reader (TensorBoard, a browser, a
concurrent evaluation) never sees a half-written image.

Image convention: arrays ``[n, H, W, C]`` with ``C`` 1 (grayscale) or 3 (RGB),
values in [0, 1] (clipped for display); masks 1 = observed, 0 = unobserved.
"""
import contextlib
import math
import os
import uuid

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from pm_zoo.errors import UserError

__all__ = [
    "MISSING_RGB",
    "inpainting_grid_image",
    "save_curves",
    "save_inpainting_grid",
]

# Colour of unobserved pixels in the "observed" row: a blue that is neither
# black nor white nor gray, so "missing" is never confused with a dark pixel.
MISSING_RGB = (0.18, 0.38, 0.92)
# Gap between tiles, and its colour.
_PAD = 2
_PAD_VALUE = 1.0
_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


# ---------------------------------------------------------------------------
# Grid assembly (NumPy).
# ---------------------------------------------------------------------------


def _images(x, name, who):
  """Returns float64 [n, H, W, C] (C in {1, 3}); [n, H, W] gets C = 1."""
  try:
    x = np.asarray(x, dtype=np.float64)
  except (TypeError, ValueError):
    raise UserError(f"{who}: {name} is not a numeric array.") from None
  if x.ndim == 3:
    x = x[..., np.newaxis]
  if x.ndim != 4 or x.shape[-1] not in (1, 3) or 0 in x.shape:
    raise UserError(f"{who}: {name} has shape {x.shape}; expected non-empty "
                    "[n, H, W, C] images with C = 1 (grayscale) or 3 (RGB).")
  return x


def _rgb(x):
  """[n, H, W, C] -> [n, H, W, 3] float in [0, 1]; NaN shown as 0."""
  x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return x


def _grid_rows(originals, masks, samples, mean, max_columns):
  """Builds the labelled rows of an inpainting grid.

  Returns:
    (labels, rows): ``labels`` a list of R strings, ``rows`` a list of R
    float arrays [n, H, W, 3] in [0, 1], n = min(#images, max_columns).
  """
  who = "inpainting grid"
  if (isinstance(max_columns, bool) or not isinstance(max_columns, int) or
      max_columns < 1):
    raise UserError(f"{who}: max_columns={max_columns!r} must be an int >= 1.")
  had_channel = np.ndim(originals) == 4
  originals = _images(originals, "originals", who)
  num, height, width, _ = originals.shape
  shape = originals.shape
  cols = min(num, max_columns)

  try:
    masks = np.asarray(masks, dtype=np.float64)
    if masks.ndim == 3:
      masks = masks[..., np.newaxis]
    masks = np.broadcast_to(masks, shape)
  except (TypeError, ValueError):
    raise UserError(f"{who}: masks (shape {np.shape(masks)}) do not broadcast "
                    f"to the originals' shape {shape}; pass [n, H, W, 1] or "
                    "[n, H, W, C] with 1 = observed.") from None
  # A pixel counts as observed only if all its channels are.
  observed = masks.min(axis=-1, keepdims=True) > 0.5  # [n, H, W, 1]

  labels = ["original", "observed"]
  shown = _rgb(originals[:cols])
  rows = [shown,
          np.where(observed[:cols], shown, np.asarray(MISSING_RGB))]

  if samples is not None:
    try:
      samples = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
      raise UserError(f"{who}: samples is not a numeric array.") from None
    if not had_channel and samples.ndim == 4:
      samples = samples[..., np.newaxis]
    if samples.ndim != 5 or samples.shape[1:] != shape:
      raise UserError(f"{who}: samples has shape {samples.shape}; expected "
                      f"[S, {num}, {height}, {width}, {shape[-1]}] (S samples "
                      "of every original).")
    for s in range(samples.shape[0]):
      labels.append(f"sample {s + 1}")
      rows.append(_rgb(samples[s, :cols]))
  if mean is not None:
    mean = _images(mean, "mean", who)
    if mean.shape != shape:
      raise UserError(f"{who}: mean has shape {mean.shape}; expected the "
                      f"originals' shape {shape}.")
    labels.append("mean")
    rows.append(_rgb(mean[:cols]))
  return labels, rows


def _tile(rows):
  """Tiles R rows of [n, H, W, 3] into one [R(H+p)+p, n(W+p)+p, 3] image."""
  num, height, width, _ = rows[0].shape
  grid = np.full((len(rows) * (height + _PAD) + _PAD,
                  num * (width + _PAD) + _PAD, 3), _PAD_VALUE)
  for r, row in enumerate(rows):
    top = _PAD + r * (height + _PAD)
    for c in range(num):
      left = _PAD + c * (width + _PAD)
      grid[top:top + height, left:left + width] = row[c]
  return grid


def inpainting_grid_image(originals, masks, samples, mean=None,
                          max_columns=10):
  """The inpainting grid of :func:`save_inpainting_grid` as one image tensor.

  Rows (top to bottom): original, observed (unobserved pixels in
  ``MISSING_RGB``), one row per sample, then the mean if given; one column per
  image (the first ``max_columns``), separated by ``_PAD`` white pixels. No
  text labels (it is a raw image for ``tf.summary.image``).

  Args:
    originals: [n, H, W, C] in [0, 1], C in {1, 3} ([n, H, W] means C = 1).
    masks: broadcastable to ``originals``; 1 = observed, 0 = unobserved.
    samples: [S, n, H, W, C] completed images, or None.
    mean: optional [n, H, W, C], e.g. the mean of the samples.
    max_columns: int >= 1.

  Returns:
    np.ndarray float32 [1, R * (H + 2) + 2, m * (W + 2) + 2, 3] in [0, 1],
    with R rows and m = min(n, max_columns) columns.
  """
  _, rows = _grid_rows(originals, masks, samples, mean, max_columns)
  return _tile(rows)[np.newaxis].astype(np.float32)


# ---------------------------------------------------------------------------
# Writing files.
# ---------------------------------------------------------------------------


def _check_path(path, who):
  try:
    path = os.fspath(path)
  except TypeError:
    raise UserError(f"{who}: path {path!r} is not a file path.") from None
  ext = os.path.splitext(path)[1].lower().lstrip(".")
  if ext not in _FORMATS:
    raise UserError(f"{who}: cannot tell the image format of {path!r}; end "
                    "the path in .png (or .pdf, .svg, .jpg).")
  return path, ext


def _save_atomically(fig, path, fmt, **kwargs):
  """Renders ``fig`` to ``path`` via a temporary file and ``os.replace``.

  The temporary file lives in the same directory (so the rename is atomic on
  POSIX) and is created with ``open(..., 'xb')``, so it gets the usual
  umask-derived permissions. It is removed if rendering fails.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(
      directory,
      f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
  try:
    with open(tmp, "xb") as f:
      FigureCanvasAgg(fig)
      fig.savefig(f, format="jpeg" if fmt == "jpg" else fmt, **kwargs)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def save_inpainting_grid(path, originals, masks, samples, mean=None,
                         max_columns=10, column_labels=None):
  """Writes an inpainting grid figure with row labels.

  Rows (top to bottom): "original"; "observed", the original with unobserved
  pixels painted ``MISSING_RGB`` (blue, so missing differs from black);
  "sample 1".."sample S"; "mean" if given. Columns are the first
  ``max_columns`` images. Grayscale for C = 1, RGB for C = 3; values are
  clipped to [0, 1]. Samples are drawn as given, so pass completed images
  (observed pixels already copied in) to show what an imputer returns.

  The parent directory is created; the file is written atomically.

  Args:
    path: output file, normally ``<run>/figures/<name>.png``.
    originals: [n, H, W, C] in [0, 1] ([n, H, W] means C = 1).
    masks: broadcastable to ``originals``; 1 = observed, 0 = unobserved.
    samples: [S, n, H, W, C] or None.
    mean: optional [n, H, W, C].
    max_columns: int >= 1, at most this many images (columns).
    column_labels: optional strings above the columns, one per column
      shown (e.g. the step of an acquisition trajectory).

  Returns:
    ``path``.
  """
  path, fmt = _check_path(path, "save_inpainting_grid")
  labels, rows = _grid_rows(originals, masks, samples, mean, max_columns)
  if column_labels is not None and len(column_labels) != rows[0].shape[0]:
    raise UserError(f"save_inpainting_grid: {len(column_labels)} column "
                    f"labels for {rows[0].shape[0]} columns: pass one per "
                    "column")
  grid = _tile(rows)
  num, height = rows[0].shape[0], rows[0].shape[1]
  tile_inches = 0.9
  # At least ~1 figure pixel per image pixel, at most 300 dpi.
  dpi = int(min(300, max(100, math.ceil(height / tile_inches))))
  fig = Figure(figsize=(1.0 + num * tile_inches,
                        0.2 + len(rows) * tile_inches), dpi=dpi)
  ax = fig.add_axes([0.0, 0.0, 1.0, 1.0])
  ax.imshow(grid, interpolation="nearest")
  centers = [_PAD + r * (height + _PAD) + (height - 1) / 2.0
             for r in range(len(rows))]
  ax.set_yticks(centers)
  ax.set_yticklabels(labels)
  if column_labels is None:
    ax.set_xticks([])
  else:
    width = rows[0].shape[2]
    ax.set_xticks([_PAD + c * (width + _PAD) + (width - 1) / 2.0
                   for c in range(num)])
    ax.set_xticklabels([str(label) for label in column_labels])
    ax.xaxis.tick_top()
  ax.tick_params(axis="both", length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  _save_atomically(fig, path, fmt, bbox_inches="tight", pad_inches=0.05)
  return path


def save_curves(path, curves, xlabel="", ylabel="", title=""):
  """Writes a line plot of named curves, e.g. error vs. features acquired.

  Each curve is drawn as a line with markers; when ``yerr`` is given, a
  shaded band ``y +- yerr`` is drawn around it. The parent directory is
  created; the file is written atomically.

  Args:
    path: output file (.png, .pdf, .svg or .jpg).
    curves: dict name -> ``(x, y)`` or ``(x, y, yerr)``, 1-D arrays of equal
      length; ``yerr`` may be None.
    xlabel, ylabel, title: strings.

  Returns:
    ``path``.
  """
  who = "save_curves"
  path, fmt = _check_path(path, who)
  if not isinstance(curves, dict) or not curves:
    raise UserError(f"{who}: curves must be a non-empty dict name -> (x, y) "
                    "or (x, y, yerr).")
  fig = Figure(figsize=(6.0, 4.0), dpi=100)
  ax = fig.add_subplot(1, 1, 1)
  for name, curve in curves.items():
    if not isinstance(curve, (tuple, list)) or len(curve) not in (2, 3):
      raise UserError(f"{who}: curve {name!r} must be (x, y) or (x, y, yerr).")
    try:
      x = np.asarray(curve[0], dtype=np.float64).reshape(-1)
      y = np.asarray(curve[1], dtype=np.float64).reshape(-1)
      yerr = curve[2] if len(curve) == 3 else None
      if yerr is not None:
        yerr = np.broadcast_to(np.asarray(yerr, dtype=np.float64), y.shape)
    except (TypeError, ValueError):
      raise UserError(f"{who}: curve {name!r} needs numeric 1-D x, y and yerr "
                      "of one length (yerr may be a scalar).") from None
    if x.shape != y.shape or x.size == 0:
      raise UserError(f"{who}: curve {name!r} has {x.size} x values and "
                      f"{y.size} y values; pass equal, non-zero lengths.")
    (line,) = ax.plot(x, y, marker="o", markersize=3, label=str(name))
    if yerr is not None:
      ax.fill_between(x, y - yerr, y + yerr, color=line.get_color(),
                      alpha=0.2, linewidth=0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend()
  fig.tight_layout()
  _save_atomically(fig, path, fmt)
  return path
