"""Evaluation metrics on NumPy arrays (imputation error, PSNR, trial summaries).

Mask convention (DESIGN.md): 1 = observed, 0 = unobserved; a mask may have a
singleton channel axis that broadcasts against the data (images).

All functions take arrays with a leading row axis ``N`` and return python
floats (or a dict of them), so the results go straight into ``metrics.json``.
"""
import math

import numpy as np

from pm_zoo.errors import UserError

__all__ = ["nrmse", "pfc", "psnr", "rmse_missing", "summarize_trials"]


def _as_float_array(x, name, who):
  try:
    x = np.asarray(x, dtype=np.float64)
  except (TypeError, ValueError):
    raise UserError(f"{who}: {name} is not a numeric array.") from None
  if x.ndim < 2:
    raise UserError(f"{who}: {name} has shape {x.shape}; expected a leading "
                    "row axis, e.g. [N, D] or [N, H, W, C].")
  return x


def _pair(x_true, x_imputed, who):
  x_true = _as_float_array(x_true, "x_true", who)
  x_imputed = _as_float_array(x_imputed, "x_imputed", who)
  if x_true.shape != x_imputed.shape:
    raise UserError(f"{who}: x_true has shape {x_true.shape} but x_imputed has "
                    f"{x_imputed.shape}; pass arrays of the same shape.")
  return x_true, x_imputed


def _missing(mask, shape, who):
  """Returns a bool array of ``shape``, True where the mask says unobserved."""
  try:
    mask = np.asarray(mask, dtype=np.float64)
  except (TypeError, ValueError):
    raise UserError(f"{who}: mask is not a numeric array.") from None
  try:
    mask = np.broadcast_to(mask, shape)
  except ValueError:
    raise UserError(f"{who}: mask shape {mask.shape} does not broadcast to the "
                    f"data shape {shape}; pass a mask of the data's shape "
                    "(1 = observed, 0 = unobserved).") from None
  if not np.all((mask == 0) | (mask == 1)):
    raise UserError(f"{who}: mask has values other than 0 and 1; use 1 for "
                    "observed and 0 for unobserved (NaN is not allowed here).")
  return mask == 0


def _flat(x):
  return x.reshape(x.shape[0], -1)


def _require_finite(values, name, who,
                    hint="fill missing entries before computing the metric"):
  if not np.all(np.isfinite(values)):
    raise UserError(f"{who}: {name} has NaN or inf where values are needed; "
                    f"{hint}.")


def nrmse(x_true, x_imputed, mask, feature_std=None):
  """Normalised root mean squared error over missing entries (the paper's).

  For each feature ``j`` with at least one missing entry (``M_j`` = rows where
  ``mask[:, j] == 0``):

    NRMSE_j = sqrt(mean_{i in M_j} (x_imputed[i, j] - x_true[i, j])^2) / std_j

  and the result is the mean of ``NRMSE_j`` over those features; features with
  no missing entry are skipped. ``std_j`` is the population std (ddof=0) of
  feature ``j`` over ``x_true`` (the given test set) unless ``feature_std`` is
  passed. Dividing by ``std_j`` makes the metric invariant to rescaling each
  feature by ``a_j * x + c_j`` (``a_j != 0``).

  Args:
    x_true: [N, D] ground truth (any [N, ...] is flattened to [N, D]).
    x_imputed: same shape; only the missing entries are read.
    mask: broadcastable to ``x_true``; 1 = observed, 0 = missing.
    feature_std: optional [D] (or feature-shaped) per-feature std to divide by,
      e.g. the training set's.

  Returns:
    float, mean NRMSE over features with missing entries.

  Raises:
    UserError: shapes disagree, the mask is not 0/1, nothing is missing,
      values needed are not finite, or a used ``std_j`` is not positive.
  """
  who = "nrmse"
  x_true, x_imputed = _pair(x_true, x_imputed, who)
  missing = _flat(_missing(mask, x_true.shape, who))
  x_true, x_imputed = _flat(x_true), _flat(x_imputed)
  count = missing.sum(axis=0)  # [D]
  used = count > 0
  if not np.any(used):
    raise UserError(f"{who}: the mask has no unobserved entries, so there is "
                    "nothing to score; pass a mask with zeros.")
  if feature_std is None:
    _require_finite(x_true, "x_true", who)
    std = x_true.std(axis=0)
  else:
    std = np.asarray(feature_std, dtype=np.float64).reshape(-1)
    if std.shape[0] != x_true.shape[1]:
      raise UserError(f"{who}: feature_std has {std.shape[0]} values for "
                      f"{x_true.shape[1]} features; pass one per feature.")
  bad = used & ~(np.isfinite(std) & (std > 0))
  if np.any(bad):
    raise UserError(
        f"{who}: {int(bad.sum())} feature(s) with missing entries have std 0 "
        f"(first: index {int(np.argmax(bad))}); drop constant features or pass "
        "feature_std (e.g. from the training set).")
  _require_finite(np.where(missing, x_true, 0.0), "x_true", who)
  _require_finite(np.where(missing, x_imputed, 0.0), "x_imputed", who)
  sq = np.where(missing, (x_imputed - x_true) ** 2, 0.0)
  rmse = np.sqrt(sq.sum(axis=0)[used] / count[used])
  return float(np.mean(rmse / std[used]))


def pfc(x_true, x_imputed, mask):
  """Proportion of falsely classified cells among the missing ones.

  For categorical columns (integer codes): the fraction of entries with
  ``mask == 0`` where ``round(x_imputed) != round(x_true)``, pooled over
  all columns given (VAEAC's and missForest's PFC).

  Args:
    x_true: [N, D] codes (only the missing entries are read).
    x_imputed: same shape.
    mask: broadcastable to ``x_true``; 1 = observed, 0 = missing.

  Returns:
    float in [0, 1].

  Raises:
    UserError: shapes disagree, the mask is not 0/1, nothing is missing, or
      values needed are not finite.
  """
  who = "pfc"
  x_true, x_imputed = _pair(x_true, x_imputed, who)
  missing = _flat(_missing(mask, x_true.shape, who))
  x_true, x_imputed = _flat(x_true), _flat(x_imputed)
  if not missing.any():
    raise UserError(f"{who}: the mask has no unobserved entries, so there is "
                    "nothing to score; pass a mask with zeros.")
  _require_finite(np.where(missing, x_true, 0.0), "x_true", who)
  _require_finite(np.where(missing, x_imputed, 0.0), "x_imputed", who)
  wrong = np.round(x_true) != np.round(x_imputed)
  return float(wrong[missing].mean())


def psnr(x_true, x_imputed, max_value=1.0, mask=None):
  """Peak signal-to-noise ratio per image, averaged over images.

  PSNR_i = 10 log10(max_value^2 / MSE_i), with MSE_i the mean squared error
  over ALL entries (pixels and channels) of image ``i``. ``x_imputed`` is the
  completed image: observed pixels are the true ones, so the error comes only
  from the unobserved pixels, but the mean is still over the whole image (the
  paper's inpainting PSNR). Pass ``mask`` to have the observed pixels copied
  from ``x_true`` first. MSE is floored at 1e-10, so an exact match gives the
  finite cap ``10 log10(max_value^2 / 1e-10)`` (100 dB for max_value = 1).

  Args:
    x_true: [N, ...] images, e.g. [N, H, W, C] in [0, max_value].
    x_imputed: same shape, the completed images (e.g. mean of imputations).
    max_value: float > 0, the largest possible pixel value.
    mask: optional, broadcastable to ``x_true``; 1 = observed.

  Returns:
    float, mean PSNR in dB.
  """
  who = "psnr"
  x_true, x_imputed = _pair(x_true, x_imputed, who)
  if not (isinstance(max_value, (int, float, np.number)) and
          math.isfinite(max_value) and max_value > 0):
    raise UserError(f"{who}: max_value={max_value!r} must be a positive "
                    "number (1.0 for [0, 1] pixels, 255 for uint8).")
  if mask is not None:
    missing = _missing(mask, x_true.shape, who)
    x_imputed = np.where(missing, x_imputed, x_true)
  _require_finite(x_true, "x_true", who)
  _require_finite(x_imputed, "x_imputed", who)
  mse = np.mean(_flat((x_imputed - x_true) ** 2), axis=1)
  mse = np.maximum(mse, 1e-10)
  return float(np.mean(10.0 * np.log10(float(max_value) ** 2 / mse)))


def rmse_missing(x_true, x_imputed, mask):
  """Mean over rows of the RMSE on that row's unobserved entries.

    RMSE_i = sqrt(mean_{j : mask[i, j] == 0} (x_imputed[i, j] - x_true[i, j])^2)

  averaged over rows with at least one unobserved entry (rows with nothing
  missing are excluded). If no row has a missing entry the result is 0.0:
  nothing is left to impute (the end of an acquisition curve).

  Args:
    x_true: [N, ...] ground truth.
    x_imputed: same shape.
    mask: broadcastable to ``x_true``; 1 = observed, 0 = unobserved.

  Returns:
    float.
  """
  who = "rmse_missing"
  x_true, x_imputed = _pair(x_true, x_imputed, who)
  missing = _flat(_missing(mask, x_true.shape, who))
  x_true, x_imputed = _flat(x_true), _flat(x_imputed)
  _require_finite(np.where(missing, x_true, 0.0), "x_true", who)
  _require_finite(np.where(missing, x_imputed, 0.0), "x_imputed", who)
  count = missing.sum(axis=1)
  rows = count > 0
  if not np.any(rows):
    return 0.0
  sq = np.where(missing, (x_imputed - x_true) ** 2, 0.0).sum(axis=1)
  return float(np.mean(np.sqrt(sq[rows] / count[rows])))


def summarize_trials(values):
  """Mean and spread of a metric over repeated trials (e.g. 5 mask draws).

  ``std`` is the population standard deviation (ddof=0),
  sqrt(mean((v - mean)^2)), as reported in the paper's "mean +- std"; it is
  0.0 for a single trial.

  Args:
    values: 1-D sequence of finite numbers, one per trial.

  Returns:
    {"mean": float, "std": float, "trials": int}.
  """
  who = "summarize_trials"
  try:
    values = np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError):
    raise UserError(f"{who}: values must be a list of numbers.") from None
  if values.ndim != 1 or values.size == 0:
    raise UserError(f"{who}: values has shape {values.shape}; pass a non-empty "
                    "1-D list with one number per trial.")
  _require_finite(values, "values", who, hint="drop or rerun failed trials")
  return {"mean": float(values.mean()), "std": float(values.std(ddof=0)),
          "trials": int(values.size)}
