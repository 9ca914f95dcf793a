"""Tests for pm_zoo.figures: files written atomically, grid layout."""
import os
import subprocess
import sys

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from pm_zoo import figures
from pm_zoo.errors import UserError


def _batch(n=4, size=6, channels=1, num_samples=2, seed=0):
  rng = np.random.default_rng(seed)
  originals = rng.uniform(size=(n, size, size, channels))
  masks = np.ones((n, size, size, 1))
  masks[:, :size // 2] = 0  # top half missing
  samples = rng.uniform(size=(num_samples, n, size, size, channels))
  return originals, masks, samples


def _read_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
  assert image.shape[2] in (3, 4)
  return image


def _only_file(directory):
  names = os.listdir(directory)
  assert len(names) == 1, names  # no temporary files left behind
  return names[0]


@pytest.mark.parametrize("channels", [1, 3])
def test_save_inpainting_grid_writes_png(tmp_path, channels):
  originals, masks, samples = _batch(channels=channels)
  path = tmp_path / "new" / "dir" / "grid.png"
  out = figures.save_inpainting_grid(str(path), originals, masks, samples,
                                     mean=samples.mean(axis=0))
  assert out == str(path)
  image = _read_png(path)
  # Wider than tall for 4 columns x 5 rows plus labels is not guaranteed, but
  # the picture must not be a degenerate strip.
  assert min(image.shape[:2]) > 100
  assert _only_file(path.parent) == "grid.png"
  # Overwriting an existing file works and still leaves no temp file.
  figures.save_inpainting_grid(path, originals, masks, samples)
  _read_png(path)
  assert _only_file(path.parent) == "grid.png"


def test_failed_write_leaves_no_temp_file_and_keeps_old(tmp_path,
                                                        monkeypatch):
  originals, masks, samples = _batch()
  path = tmp_path / "grid.png"
  figures.save_inpainting_grid(path, originals, masks, samples)
  before = path.read_bytes()

  def broken_savefig(self, f, **kwargs):
    del self, kwargs
    f.write(b"half a png")
    raise RuntimeError("disk full")

  monkeypatch.setattr(figures.Figure, "savefig", broken_savefig)
  with pytest.raises(RuntimeError):
    figures.save_inpainting_grid(path, originals, masks, samples)
  assert path.read_bytes() == before
  assert _only_file(tmp_path) == "grid.png"
  with pytest.raises(UserError):  # bad input fails before touching the disk
    figures.save_inpainting_grid(tmp_path / "other.png", originals, masks,
                                 samples[:, :2])
  assert _only_file(tmp_path) == "grid.png"


def test_grid_image_layout_and_missing_colour():
  originals, masks, samples = _batch(n=12, size=6, num_samples=3)
  mean = samples.mean(axis=0)
  grid = figures.inpainting_grid_image(originals, masks, samples, mean=mean,
                                       max_columns=10)
  rows, cols, pad, size = 2 + 3 + 1, 10, 2, 6
  assert grid.shape == (1, rows * (size + pad) + pad, cols * (size + pad) + pad,
                        3)
  assert grid.min() >= 0.0 and grid.max() <= 1.0
  tile = lambda r, c: grid[0, pad + r * (size + pad):pad + r * (size + pad) +
                           size, pad + c * (size + pad):pad + c *
                           (size + pad) + size]
  # Row 0 is the original in gray; row 1 shows missing pixels in blue.
  np.testing.assert_allclose(tile(0, 3)[..., 0], originals[3, ..., 0],
                             atol=1e-6)
  np.testing.assert_allclose(tile(1, 3)[:3], np.broadcast_to(
      figures.MISSING_RGB, (3, size, 3)), atol=1e-6)
  np.testing.assert_allclose(tile(1, 3)[3:, :, 1], originals[3, 3:, :, 0],
                             atol=1e-6)
  blue = tile(1, 3)[0, 0]
  assert blue[2] > blue[0] + 0.3  # distinct from black/gray
  np.testing.assert_allclose(tile(4, 2)[..., 0], samples[2, 2, ..., 0],
                             atol=1e-6)  # third sample row
  np.testing.assert_allclose(tile(5, 9)[..., 0], mean[9, ..., 0], atol=1e-6)


def test_grid_image_rgb_and_no_mean():
  originals, masks, samples = _batch(n=2, size=5, channels=3, num_samples=1)
  grid = figures.inpainting_grid_image(originals * 3 - 1, masks, samples)
  assert grid.shape == (1, 3 * 7 + 2, 2 * 7 + 2, 3)
  assert grid.min() >= 0.0 and grid.max() <= 1.0  # out-of-range clipped
  np.testing.assert_allclose(grid[0, 2:7, 2:7],
                             np.clip(originals[0] * 3 - 1, 0, 1), atol=1e-6)


def test_grid_user_errors():
  originals, masks, samples = _batch()
  with pytest.raises(UserError):
    figures.inpainting_grid_image(originals[..., :1].repeat(2, -1), masks,
                                  samples)  # C = 2
  with pytest.raises(UserError):
    figures.inpainting_grid_image(originals, masks[:, :3, :3], samples)
  with pytest.raises(UserError):
    figures.inpainting_grid_image(originals, masks, samples, max_columns=0)
  with pytest.raises(UserError):
    figures.save_inpainting_grid("/tmp/grid.unknown", originals, masks,
                                 samples)


def test_save_curves(tmp_path):
  path = tmp_path / "curves" / "acquisition.png"
  x = np.arange(5)
  out = figures.save_curves(
      path, {"lookahead": (x, x ** 0.5, 0.1 * np.ones(5)),
             "random": (x, x * 0.8),
             "sampling": (x, x * 0.7, None)},
      xlabel="features acquired", ylabel="RMSE", title="MNIST")
  assert out == str(path)
  _read_png(path)
  assert _only_file(path.parent) == "acquisition.png"
  with pytest.raises(UserError):
    figures.save_curves(tmp_path / "bad.png", {"a": ([1, 2], [1, 2, 3])})
  with pytest.raises(UserError):
    figures.save_curves(tmp_path / "bad.png", {})
  assert sorted(os.listdir(tmp_path)) == ["curves"]


def test_does_not_touch_pyplot_or_the_global_backend(tmp_path):
  code = (
      "import sys, numpy as np\n"
      "from pm_zoo import figures\n"
      "x = np.zeros((1, 4, 4, 1))\n"
      f"figures.save_inpainting_grid({str(tmp_path / 'g.png')!r}, "
      "x, x, x[None])\n"
      "assert 'matplotlib.pyplot' not in sys.modules\n"
      "import matplotlib\n"
      "assert matplotlib.rcParams._get_backend_or_none() is None\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
  env.pop("MPLBACKEND", None)
  subprocess.run([sys.executable, "-c", code], check=True, env=env)
  _read_png(tmp_path / "g.png")


def test_grid_column_labels(tmp_path):
  originals, masks, samples = _batch()
  path = tmp_path / "labelled.png"
  plain = tmp_path / "plain.png"
  figures.save_inpainting_grid(str(path), originals, masks, samples,
                               column_labels=["0", "3", "7", "10"])
  figures.save_inpainting_grid(str(plain), originals, masks, samples)
  # The labels take a strip above the grid.
  assert _read_png(path).shape[0] > _read_png(plain).shape[0]
  with pytest.raises(UserError, match="one per column"):
    figures.save_inpainting_grid(str(path), originals, masks, samples,
                                 column_labels=["0"])
