"""Image datasets from tensorflow-datasets, prepared offline, into memory.

`tensorflow_datasets` is imported lazily: only this source needs it, and an
install that cannot be imported must not break the other sources.
"""
import numbers
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError

ImageSize = Union[int, Tuple[int, int]]

# Datasets with a dedicated conversion; others go through the default one
# (an 'image' feature of uint8 scaled to [0, 1], 'label' kept when present).
_DEFAULT_IMAGE_SIZE = {'omniglot': 28, 'celeb_a': 64}
_SPLITS = {'celeb_a': ('train', 'validation', 'test')}
_CELEB_A_CROP = 140


def image_hw(image_size: Optional[ImageSize]) -> Optional[Tuple[int, int]]:
  """An int or (H, W) image size -> (H, W); None stays None."""
  if image_size is None:
    return None
  if isinstance(image_size, numbers.Integral):
    image_size = (image_size, image_size)
  try:
    h, w = (int(s) for s in image_size)
  except (TypeError, ValueError):
    raise UserError(f'image_size {image_size!r} is not an int or (H, W): '
                    f'pass e.g. 28') from None
  if h <= 0 or w <= 0:
    raise UserError(f'image_size {image_size} is not positive: pass e.g. 28')
  return h, w


def resize(images, size: Tuple[int, int]):
  """Resizes float images [..., H, W, C] in [0, 1] with an antialiased
  bilinear filter (a proper average when shrinking), staying in [0, 1]."""
  out = tf.image.resize(images, size, method='bilinear', antialias=True)
  return tf.clip_by_value(out, 0.0, 1.0)


def example_converter(name: str, image_size: Optional[ImageSize] = None
                      ) -> Callable[[Dict[str, tf.Tensor]],
                                    Dict[str, tf.Tensor]]:
  """Returns a TF function mapping one tfds example to {'x', ['label']}.

  - omniglot: RGB white-background images -> grayscale with strokes = 1,
    resized to image_size (default 28) -> float32 [28, 28, 1].
  - celeb_a: centre crop 140x140, resized to image_size (default 64), RGB ->
    float32 [64, 64, 3]; no label.
  - anything else (mnist, fashion_mnist, ...): uint8 image / 255, resized only
    if image_size is given; 'label' kept as int64.
  """
  size = image_hw(image_size if image_size is not None else
             _DEFAULT_IMAGE_SIZE.get(name))

  def convert(example):
    image = tf.cast(example['image'], tf.float32) / 255.0
    out = {}
    if name == 'omniglot':
      image = 1.0 - tf.image.rgb_to_grayscale(image)
    elif name == 'celeb_a':
      image = tf.image.resize_with_crop_or_pad(image, _CELEB_A_CROP,
                                               _CELEB_A_CROP)
    if size is not None and tuple(image.shape[-3:-1]) != size:
      image = resize(image, size)
    out['x'] = image
    if name != 'celeb_a' and 'label' in example:
      out['label'] = tf.cast(example['label'], tf.int64)
    return out

  return convert


def _import_tfds():
  """Returns the tensorflow_datasets module, or raises a one-line UserError.

  `import tensorflow_datasets` itself logs and swallows errors of its
  submodules (e.g. a protobuf / tensorflow-metadata version mismatch) and
  returns a module without `load`; importing its dependency and its core
  explicitly surfaces the real error.
  """
  try:
    # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_metadata.proto.v0.schema_pb2  # Fails quietly if broken.
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import registered
    # pylint: enable=g-import-not-at-top,unused-import
  except Exception as e:  # pylint: disable=broad-except
    reason = (str(e).splitlines() or [''])[0][:200]
    raise UserError(
        f'tensorflow_datasets cannot be imported ({type(e).__name__}: '
        f'{reason}): repair that install (pip check) or use an offline source '
        f'such as embedded_digits, mnist_npz or idx') from None
  return tfds, registered.DatasetNotFoundError


def _split_to_numpy(tfds, name, split, data_dir, convert, limit):
  """Loads one split and converts it; returns (x, labels or None)."""
  try:
    ds = tfds.load(name, split=split, data_dir=data_dir, download=False)
  except AssertionError:  # tfds' way of saying "not prepared".
    where = data_dir or '~/tensorflow_datasets'
    raise UserError(
        f'tfds dataset {name!r} is not prepared in {where}: run `tfds build '
        f'{name}` on a machine with network and copy its data_dir here '
        f'(--tfds_data_dir), or use another source') from None
  if limit is not None:
    ds = ds.take(limit)
  ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).batch(512)
  xs, labels = [], []
  for batch in ds.as_numpy_iterator():
    xs.append(batch['x'].astype(np.float32))
    if 'label' in batch:
      labels.append(batch['label'].astype(np.int64))
  if not xs:
    raise UserError(f'tfds dataset {name!r} split {split!r} is empty: '
                    f'rebuild it with `tfds build {name}`')
  return np.concatenate(xs), (np.concatenate(labels) if labels else None)


def load_tfds(name: str, *, data_dir: Optional[str] = None,
              image_size: Optional[ImageSize] = None,
              max_examples: Optional[int] = None):
  """Loads an image dataset prepared for tfds, without downloading.

  Returns:
    dict with 'train', 'test', optionally 'validation' -> float32
    [N, H, W, C] in [0, 1], and 'train_labels' / 'test_labels' int64 [N] when
    the dataset has labels.
  """
  if not name:
    raise UserError('source tfds needs a dataset name: pass tfds_name, e.g. '
                    'mnist, fashion_mnist, omniglot or celeb_a')
  tfds, not_found = _import_tfds()
  try:
    tfds.builder(name, data_dir=data_dir)
  except not_found:
    raise UserError(f'tfds has no dataset named {name!r}: pass a tfds name '
                    f'such as mnist, fashion_mnist, omniglot or celeb_a'
                    ) from None
  convert = example_converter(name, image_size)
  out = {}
  for split in _SPLITS.get(name, ('train', 'test')):
    limit = max_examples if split == 'train' else None
    x, labels = _split_to_numpy(tfds, name, split, data_dir, convert, limit)
    out[split] = x
    if labels is not None and split != 'validation':
      out[split + '_labels'] = labels
  return out
