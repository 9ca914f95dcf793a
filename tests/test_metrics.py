"""Tests for pm_zoo.metrics against hand-computed values."""
import math

import numpy as np
import pytest

from pm_zoo import metrics
from pm_zoo.errors import UserError

# Feature 0: [0, 2, 4], population std sqrt(8/3); missing in rows 0, 1.
# Feature 1: [1, 1, 4], population std sqrt(2); missing in row 2.
# Feature 2: fully observed -> skipped, however wrong its "imputation" is.
X_TRUE = np.array([[0., 1., 5.], [2., 1., 6.], [4., 4., 7.]])
MASK = np.array([[0., 1., 1.], [0., 1., 1.], [1., 0., 1.]])
X_IMPUTED = np.array([[1., 100., 1000.], [4., -50., 1000.], [-9., 2., 1000.]])
# Feature 0 errors 1, 2 -> RMSE sqrt(2.5); feature 1 error 2 -> RMSE 2.
EXPECTED_NRMSE = (math.sqrt(2.5) / math.sqrt(8 / 3) + 2 / math.sqrt(2)) / 2


def test_nrmse_hand_computed_and_skips_fully_observed_feature():
  got = metrics.nrmse(X_TRUE, X_IMPUTED, MASK)
  assert isinstance(got, float)
  assert got == pytest.approx(EXPECTED_NRMSE, rel=1e-12)


def test_nrmse_with_given_feature_std():
  got = metrics.nrmse(X_TRUE, X_IMPUTED, MASK, feature_std=[1., 2., 0.])
  # Feature 2 has std 0 but no missing entry, so it is never divided by.
  assert got == pytest.approx((math.sqrt(2.5) / 1 + 2 / 2) / 2, rel=1e-12)


def test_nrmse_ignores_observed_entries_even_nan():
  imputed = X_IMPUTED.copy()
  imputed[MASK == 1] = np.nan
  assert metrics.nrmse(X_TRUE, imputed, MASK) == pytest.approx(EXPECTED_NRMSE)


def test_nrmse_invariant_to_per_feature_affine_rescaling():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 4))
  imputed = x + rng.normal(scale=0.3, size=x.shape)
  mask = (rng.uniform(size=x.shape) < 0.5).astype(np.float32)
  scale = np.array([3.0, -0.01, 250.0, 1.0])
  shift = np.array([-7.0, 1e3, 0.5, 0.0])
  base = metrics.nrmse(x, imputed, mask)
  moved = metrics.nrmse(x * scale + shift, imputed * scale + shift, mask)
  assert moved == pytest.approx(base, rel=1e-9)
  # A non-uniform rescaling changes an unnormalised RMSE, not NRMSE.
  assert metrics.rmse_missing(x * scale, imputed * scale, mask) != (
      pytest.approx(metrics.rmse_missing(x, imputed, mask)))


def test_nrmse_flattens_images_and_broadcasts_channel_mask():
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(20, 2, 2, 3))
  imputed = rng.uniform(size=x.shape)
  pixel_mask = (rng.uniform(size=(20, 2, 2, 1)) < 0.5).astype(np.float32)
  full_mask = np.broadcast_to(pixel_mask, x.shape)
  got = metrics.nrmse(x, imputed, pixel_mask)
  assert got == pytest.approx(
      metrics.nrmse(x.reshape(20, -1), imputed.reshape(20, -1),
                    full_mask.reshape(20, -1)))


@pytest.mark.parametrize("args", [
    (X_TRUE, X_IMPUTED, np.ones_like(MASK)),  # nothing missing
    (X_TRUE, X_IMPUTED[:2], MASK),  # shape mismatch
    (X_TRUE, X_IMPUTED, MASK * 0.5),  # not a 0/1 mask
    (X_TRUE, X_IMPUTED, MASK[:, :2]),  # mask does not broadcast
    (np.array([[1., 0.], [1., 2.]]), np.zeros((2, 2)),
     np.array([[0., 1.], [1., 0.]])),  # constant feature 0 with a missing entry
    (X_TRUE, np.where(MASK == 0, np.nan, X_IMPUTED), MASK),  # NaN imputation
    (X_TRUE[0], X_IMPUTED[0], MASK[0]),  # no row axis
])
def test_nrmse_user_errors(args):
  with pytest.raises(UserError):
    metrics.nrmse(*args)


def test_nrmse_feature_std_length_checked():
  with pytest.raises(UserError):
    metrics.nrmse(X_TRUE, X_IMPUTED, MASK, feature_std=[1.0, 2.0])


def test_psnr_hand_computed_with_finite_cap():
  x_true = np.zeros((2, 2, 2, 1))
  imputed = x_true.copy()
  imputed[0, 0, 0, 0] = 0.5  # MSE over 4 pixels = 0.0625 -> 10 log10(16)
  got = metrics.psnr(x_true, imputed)
  cap = 10 * math.log10(1 / 1e-10)
  assert cap == pytest.approx(100.0)
  assert math.isfinite(got)
  assert got == pytest.approx((10 * math.log10(16) + cap) / 2, rel=1e-12)


def test_psnr_max_value_and_mask():
  x_true = np.zeros((3, 4, 4, 3))
  imputed = np.full_like(x_true, 25.5)  # MSE 650.25 -> 10 log10(65025/650.25)
  assert metrics.psnr(x_true, imputed, max_value=255) == pytest.approx(20.0)
  # With a mask the observed pixels are taken from x_true: only the one
  # unobserved pixel (of 16, all channels) counts, MSE = 650.25 / 16.
  mask = np.ones((3, 4, 4, 1))
  mask[:, 0, 0] = 0
  expected = 10 * math.log10(255 ** 2 * 16 / 650.25)
  assert metrics.psnr(x_true, imputed, max_value=255, mask=mask) == (
      pytest.approx(expected))


def test_psnr_user_errors():
  with pytest.raises(UserError):
    metrics.psnr(np.zeros((2, 3)), np.zeros((2, 4)))
  with pytest.raises(UserError):
    metrics.psnr(np.zeros((2, 3)), np.zeros((2, 3)), max_value=0)


def test_rmse_missing_hand_computed_excludes_complete_rows():
  x_true = np.array([[0., 0., 0.], [1., 1., 1.], [2., 2., 2.]])
  imputed = np.array([[1., 0., 3.], [9., 9., 9.], [2., 2., 6.]])
  mask = np.array([[0., 1., 0.], [1., 1., 1.], [1., 1., 0.]])
  # Row 0: errors 1, 3 -> sqrt(5); row 1 excluded; row 2: error 4.
  got = metrics.rmse_missing(x_true, imputed, mask)
  assert got == pytest.approx((math.sqrt(5) + 4) / 2, rel=1e-12)
  assert metrics.rmse_missing(x_true, imputed, np.ones_like(mask)) == 0.0


def test_summarize_trials_population_std():
  got = metrics.summarize_trials([1, 2, 3, 4])
  assert got == {"mean": 2.5, "std": pytest.approx(math.sqrt(1.25)),
                 "trials": 4}
  assert isinstance(got["mean"], float) and isinstance(got["trials"], int)
  assert metrics.summarize_trials([0.7])["std"] == 0.0
  for bad in ([], [1.0, float("nan")], [[1.0, 2.0]]):
    with pytest.raises(UserError):
      metrics.summarize_trials(bad)
