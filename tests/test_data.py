"""Tests for pm_zoo.data: sources, splits, standardisation, tf.data pipelines.

Every file these tests read is written into tmp_path: no network, and none of
the shared offline datasets a user's machine lacks.
"""
import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pm_zoo.data import DataSplits
from pm_zoo.data import eval_batches
from pm_zoo.data import KNOWN_SOURCES
from pm_zoo.data import load_dataset
from pm_zoo.data import Standardizer
from pm_zoo.data import train_batches
from pm_zoo.data import tfds_source
from pm_zoo.errors import UserError


# ------------------------------------------------------------ helpers ----


def _write_idx(path, array):
  """Writes `array` (uint8) as an idx file, gzipped if path ends in .gz."""
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(
      array.shape, '>u4').tobytes()
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.tobytes())


def _rows(dataset, steps):
  """The first `steps` elements of a dataset as numpy dicts."""
  return list(dataset.take(steps).as_numpy_iterator())


def _bernoulli_masks(shape, seed):
  return tf.cast(tf.random.stateless_uniform(shape, seed) < 0.5, tf.float32)


# ------------------------------------------------------ package sources ----


def test_embedded_digits_shapes_ranges_and_shuffled_split():
  splits = load_dataset('embedded_digits')
  assert splits.kind == 'image'
  assert splits.train.shape == (4000, 28, 28, 1)
  assert splits.test.shape == (1000, 28, 28, 1)
  assert splits.feature_shape == (28, 28, 1)
  assert splits.train.dtype == np.float32
  assert splits.train.min() == 0.0 and splits.train.max() == 1.0
  assert 0.08 < splits.train.mean() < 0.2  # MNIST's mean pixel is ~0.13.
  assert splits.train_labels.dtype == np.int64
  # The package ships them sorted by label: both splits must hold all digits.
  assert set(splits.train_labels) == set(range(10))
  assert set(splits.test_labels) == set(range(10))
  again = load_dataset('embedded_digits', split_seed=0)
  np.testing.assert_array_equal(again.test, splits.test)
  other = load_dataset('embedded_digits', split_seed=1, max_examples=100)
  assert other.train.shape == (100, 28, 28, 1)
  assert other.train_labels.shape == (100,)
  assert not np.array_equal(other.test_labels, splits.test_labels)


def test_sklearn_digits_shapes_and_range():
  splits = load_dataset('sklearn_digits', test_fraction=0.25)
  assert splits.train.shape[1:] == (8, 8, 1)
  assert splits.train.shape[0] + splits.test.shape[0] == 1797
  assert splits.test.shape[0] == round(1797 * 0.25)
  assert splits.train.min() == 0.0 and splits.train.max() == 1.0
  assert splits.train.dtype == np.float32
  assert len(splits.train_labels) == splits.train.shape[0]


def test_image_size_resizes():
  splits = load_dataset('sklearn_digits', image_size=4, max_examples=10)
  assert splits.train.shape == (10, 4, 4, 1)
  assert splits.test.shape[1:] == (4, 4, 1)
  assert 0.0 <= splits.train.min() and splits.train.max() <= 1.0


# --------------------------------------------------------- file sources ----


def test_mnist_npz_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
  x_test = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
  path = tmp_path / 'fake_mnist.npz'
  np.savez(path, x_train=x_train, y_train=np.arange(6, dtype=np.uint8),
           x_test=x_test, y_test=np.array([7, 8, 9], np.uint8))
  splits = load_dataset('mnist_npz', str(path))
  assert splits.train.shape == (6, 5, 4, 1)
  assert splits.train.dtype == np.float32
  np.testing.assert_allclose(splits.train[..., 0], x_train / 255.0, rtol=1e-6)
  np.testing.assert_allclose(splits.test[..., 0], x_test / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(splits.test_labels, [7, 8, 9])
  assert splits.train_labels.dtype == np.int64
  assert splits.name == 'fake_mnist'


def test_mnist_npz_missing_keys(tmp_path):
  path = tmp_path / 'wrong.npz'
  np.savez(path, images=np.zeros((2, 3, 3), np.uint8))
  with pytest.raises(UserError, match='x_train'):
    load_dataset('mnist_npz', str(path))


@pytest.mark.parametrize('gz,dotted', [(True, False), (False, True)])
def test_idx_directory_round_trip(tmp_path, gz, dotted):
  rng = np.random.default_rng(1)
  data = {
      'train-images-idx3-ubyte': rng.integers(0, 256, (5, 3, 2)),
      'train-labels-idx1-ubyte': np.arange(5),
      't10k-images-idx3-ubyte': rng.integers(0, 256, (2, 3, 2)),
      't10k-labels-idx1-ubyte': np.array([9, 4]),
  }
  for name, array in data.items():
    if dotted:
      name = name.replace('-idx', '.idx')
    _write_idx(tmp_path / (name + ('.gz' if gz else '')), array)
  splits = load_dataset('idx', str(tmp_path))
  assert splits.train.shape == (5, 3, 2, 1)
  np.testing.assert_allclose(
      splits.train[..., 0], data['train-images-idx3-ubyte'] / 255.0, rtol=1e-6)
  np.testing.assert_allclose(
      splits.test[..., 0], data['t10k-images-idx3-ubyte'] / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(splits.train_labels, np.arange(5))
  np.testing.assert_array_equal(splits.test_labels, [9, 4])


def test_idx_corrupt_file(tmp_path):
  for name in ('train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
               't10k-labels-idx1-ubyte'):
    _write_idx(tmp_path / name, np.zeros((2, 3, 3) if 'images' in name
                                         else (2,)))
  bad = tmp_path / 'train-images-idx3-ubyte'
  bad.write_bytes(b'\x12\x34\x08\x03' + bytes(40))  # Bad magic.
  with pytest.raises(UserError, match='not a valid idx file.*magic'):
    load_dataset('idx', str(tmp_path))
  _write_idx(bad, np.zeros((2, 3, 3)))
  bad.write_bytes(bad.read_bytes()[:-5])  # Truncated data.
  with pytest.raises(UserError, match='not a valid idx file.*bytes'):
    load_dataset('idx', str(tmp_path))
  bad.unlink()
  with pytest.raises(UserError, match='no train-images-idx3-ubyte'):
    load_dataset('idx', str(tmp_path))


def test_csv_semicolon_header(tmp_path):
  path = tmp_path / 'wine.csv'
  lines = ['"a b";"c";"quality"']
  lines += [f'{i}.5;{2 * i};{i % 3}' for i in range(10)]
  path.write_text('\n'.join(lines) + '\n')
  splits = load_dataset('table', str(path), test_fraction=0.3, split_seed=3)
  assert splits.kind == 'table'
  assert splits.feature_names == ('a b', 'c', 'quality')
  assert splits.train.shape == (7, 3) and splits.test.shape == (3, 3)
  assert splits.train.dtype == np.float32
  everything = np.concatenate([splits.train, splits.test])
  expected = np.array([[i + 0.5, 2 * i, i % 3] for i in range(10)], np.float32)
  np.testing.assert_array_equal(everything[np.argsort(everything[:, 0])],
                                expected)
  dropped = load_dataset('table', str(path), drop_columns=['quality', 0])
  assert dropped.feature_names == ('c',)
  assert dropped.train.shape[1] == 1


def test_csv_gz_comma_no_header_and_tab(tmp_path):
  rows = np.arange(40, dtype=np.float32).reshape(10, 4) / 7
  gz_path = tmp_path / 'p.csv.gz'
  with gzip.open(gz_path, 'wt') as f:
    for row in rows:
      f.write(','.join(repr(float(v)) for v in row) + '\n')
  splits = load_dataset('table', str(gz_path), test_fraction=0.5)
  assert splits.feature_names is None
  assert splits.name == 'p'
  got = np.concatenate([splits.train, splits.test])
  np.testing.assert_allclose(got[np.argsort(got[:, 0])], rows, rtol=1e-6)
  tab_path = tmp_path / 't.tsv'
  tab_path.write_text('x\ty\n1\t2\n3\t4\n5\t6\n')
  tab = load_dataset('table', str(tab_path), drop_columns=['1'])
  assert tab.feature_names == ('x',)
  assert sorted(np.concatenate([tab.train, tab.test])[:, 0]) == [1, 3, 5]


def test_npy_table_with_test_file_and_split_reproducibility(tmp_path):
  rng = np.random.default_rng(2)
  train, test = rng.normal(size=(20, 3)), rng.normal(size=(5, 3))
  np.save(tmp_path / 'tr.npy', train)
  np.save(tmp_path / 'te.npy', test)
  splits = load_dataset('table', str(tmp_path / 'tr.npy'),
                        test_path=str(tmp_path / 'te.npy'), max_examples=12)
  np.testing.assert_allclose(splits.train, train[:12].astype(np.float32))
  np.testing.assert_allclose(splits.test, test.astype(np.float32))
  assert splits.train.dtype == np.float32
  a = load_dataset('table', str(tmp_path / 'tr.npy'), split_seed=5)
  b = load_dataset('table', str(tmp_path / 'tr.npy'), split_seed=5)
  c = load_dataset('table', str(tmp_path / 'tr.npy'), split_seed=6)
  np.testing.assert_array_equal(a.train, b.train)
  np.testing.assert_array_equal(a.test, b.test)
  assert not np.array_equal(a.test, c.test)
  assert a.train.shape == (16, 3) and a.test.shape == (4, 3)


def test_uci_directory(tmp_path):
  rng = np.random.default_rng(3)
  train, val, test = (rng.normal(size=(n, 4)) for n in (8, 3, 5))
  np.save(tmp_path / 'train.npy', train)
  np.savetxt(tmp_path / 'val.csv', val, delimiter=',')
  np.save(tmp_path / 'test.npy', test)
  splits = load_dataset('uci', str(tmp_path))
  np.testing.assert_allclose(splits.train, train, rtol=1e-6)
  np.testing.assert_allclose(splits.validation, val, rtol=1e-6)
  np.testing.assert_allclose(splits.test, test, rtol=1e-6)
  os.remove(tmp_path / 'test.npy')
  with pytest.raises(UserError, match='no test.npy'):
    load_dataset('uci', str(tmp_path))


# ------------------------------------------------------------- errors ----


def test_unknown_source_lists_known_ones():
  with pytest.raises(UserError, match='embedded_digits') as info:
    load_dataset('imagenet')
  assert all(name in str(info.value) for name in KNOWN_SOURCES)
  assert '\n' not in str(info.value)


def test_missing_files(tmp_path):
  with pytest.raises(UserError, match='does not exist: pass --data_path'):
    load_dataset('table', str(tmp_path / 'nope.csv'))
  with pytest.raises(UserError, match='does not exist'):
    load_dataset('uci', str(tmp_path / 'nodir'))
  with pytest.raises(UserError, match='needs a file'):
    load_dataset('mnist_npz')
  with pytest.raises(UserError, match='reads no file'):
    load_dataset('embedded_digits', str(tmp_path / 'x.csv'))
  np.save(tmp_path / 'ok.npy', np.zeros((4, 2)))
  with pytest.raises(UserError, match='pass --test_data_path'):
    load_dataset('table', str(tmp_path / 'ok.npy'),
                 test_path=str(tmp_path / 'nope.npy'))
  (tmp_path / 'x.xlsx').write_text('1')
  with pytest.raises(UserError, match='unknown table extension'):
    load_dataset('table', str(tmp_path / 'x.xlsx'))
  # A directory for a file, and a file for a directory, are named as such.
  (tmp_path / 'table.csv').mkdir()
  with pytest.raises(UserError, match=r'table\.csv is a directory: pass '
                     '--data_path pointing to an existing'):
    load_dataset('table', str(tmp_path / 'table.csv'))
  with pytest.raises(UserError, match=r'ok\.npy is a file: pass --data_path '
                     'pointing to a directory'):
    load_dataset('uci', str(tmp_path / 'ok.npy'))


def test_incomplete_table_keeps_nan_drops_empty_rows_and_logs(tmp_path,
                                                              caplog):
  path = tmp_path / 'holes.csv'
  path.write_text('a,b\n1,2\n,4\n5,NA\n,\n7,8\n9,10\n11,12\n')
  with caplog.at_level('INFO', logger='absl'):
    splits = load_dataset('table', str(path), test_path=str(path))
  assert splits.train.shape == (6, 2) and splits.incomplete
  assert np.isnan(splits.train).sum() == 2
  assert 'dropped 1 of 7 rows with no observed cell' in caplog.text
  std = Standardizer.from_data(splits.train)
  np.testing.assert_allclose(std.mean, [np.mean([1, 5, 7, 9, 11]),
                                        np.mean([2, 4, 8, 10, 12])])
  (tmp_path / 'inf.csv').write_text('a,b\n1,inf\n2,3\n')
  with pytest.raises(UserError, match='1 of 2 rows with inf'):
    load_dataset('table', str(tmp_path / 'inf.csv'),
                 test_path=str(tmp_path / 'inf.csv'))


def test_entirely_empty_column_is_one_line_error(tmp_path):
  path = tmp_path / 'empty.csv'
  path.write_text('a,b\n1,\n2,NA\n3,\n')
  with pytest.raises(UserError, match="column 'b' is entirely empty"):
    load_dataset('table', str(path))
  np.save(tmp_path / 'empty.npy', np.array([[1, np.nan], [2, np.nan]] * 4))
  with pytest.raises(UserError, match='column 1 is entirely empty'):
    load_dataset('table', str(tmp_path / 'empty.npy'))


def test_text_columns_are_categorical_and_type_changes_are_refused(tmp_path):
  path = tmp_path / 'mixed.csv'
  path.write_text('x;colour\n1.5;red\n2;blue\n;red\n4;\n5;blue\n')
  splits = load_dataset('table', str(path), test_path=str(path))
  assert splits.schema.kinds == ('numeric', 'categorical')
  assert splits.schema.columns[1].categories == ('blue', 'red')
  np.testing.assert_array_equal(splits.train[:, 1], [1, 0, 1, np.nan, 0])
  path = tmp_path / 'bad.csv'
  path.write_text('a;b\n1;2\n3;oops\n')
  with pytest.raises(UserError, match=r"column 'b' changes type: line 2 holds "
                     r"the number '2' but line 3 the text 'oops'"):
    load_dataset('table', str(path))
  splits = load_dataset('table', str(path), test_path=str(path),
                        column_types={'b': 'categorical'})
  assert splits.schema.columns[1].categories == ('2', 'oops')
  with pytest.raises(UserError, match="column_types names column 'c', which "
                     'the table does not have'):
    load_dataset('table', str(path), column_types={'c': 'categorical'})
  ragged = tmp_path / 'ragged.csv'
  ragged.write_text('1,2\n3,4\n5\n')
  with pytest.raises(UserError, match='line 3 has 1 fields, expected 2'):
    load_dataset('table', str(ragged))


def test_datasplits_validation():
  x = np.zeros((4, 3), np.float32)
  with pytest.raises(UserError, match='float32'):
    DataSplits('t', 'table', x.astype(np.float64), x)
  with pytest.raises(UserError, match='same features'):
    DataSplits('t', 'table', x, np.zeros((4, 2), np.float32))
  with pytest.raises(UserError, match='kind'):
    DataSplits('t', 'video', x, x)
  with pytest.raises(UserError, match='labels'):
    DataSplits('t', 'table', x, x, train_labels=np.zeros(3, np.int64))
  inf = x.copy()
  inf[1, 2] = np.inf
  with pytest.raises(UserError, match='1 of 4 rows'):
    DataSplits('t', 'table', inf, x)
  assert DataSplits('t', 'table', x, x).feature_shape == (3,)


def test_tfds_unavailable_dataset_is_a_user_error(tmp_path):
  with pytest.raises(UserError) as info:
    load_dataset('tfds', tfds_name='mnist', tfds_data_dir=str(tmp_path))
  message = str(info.value)
  assert '\n' not in message
  # Either tfds itself cannot be imported here, or mnist is not prepared.
  assert ('tensorflow_datasets cannot be imported' in message or
          'tfds build mnist' in message)
  with pytest.raises(UserError, match='tfds_name'):
    load_dataset('tfds')


# --------------------------------------------------------------- tfds ----


def test_tfds_converters_without_tfds():
  # Omniglot: white RGB background, a black stroke in the top half.
  image = np.full((105, 105, 3), 255, np.uint8)
  image[10:40, :, :] = 0
  out = tfds_source.example_converter('omniglot')(
      {'image': tf.constant(image), 'label': tf.constant(3, tf.int64)})
  x = out['x'].numpy()
  assert x.shape == (28, 28, 1)
  assert x[5:9].min() > 0.99 and x[-5:].max() < 0.01  # Strokes are 1.
  assert out['label'].numpy() == 3
  # CelebA: only the central 140x140 is kept; its border is outside the crop.
  face = np.full((218, 178, 3), 255, np.uint8)
  face[39:179, 19:159] = 40
  out = tfds_source.example_converter('celeb_a')({'image': tf.constant(face)})
  assert out['x'].shape == (64, 64, 3)
  np.testing.assert_allclose(out['x'].numpy(), 40 / 255, atol=1e-5)
  assert 'label' not in out
  # MNIST-like: /255, size kept.
  digit = np.arange(784, dtype=np.int64).reshape(28, 28, 1) % 256
  out = tfds_source.example_converter('mnist')(
      {'image': tf.constant(digit.astype(np.uint8)), 'label': 7})
  np.testing.assert_allclose(out['x'].numpy(), digit / 255, rtol=1e-6)


def test_tfds_through_mock_data():
  # setup.py pins tensorflow-metadata so that tensorflow_datasets imports
  # beside TF 2.18: no skip here, a broken install must fail.
  tfds, _ = tfds_source._import_tfds()  # pylint: disable=protected-access
  with tfds.testing.mock_data(num_examples=4):
    omniglot = load_dataset('tfds', tfds_name='omniglot', max_examples=2)
    celeb_a = load_dataset('tfds', tfds_name='celeb_a', image_size=16)
  assert omniglot.train.shape == (2, 28, 28, 1)
  assert omniglot.test.shape == (4, 28, 28, 1)
  assert omniglot.train_labels.dtype == np.int64
  assert celeb_a.train.shape == (4, 16, 16, 3)
  assert celeb_a.validation.shape == (4, 16, 16, 3)
  assert 0.0 <= celeb_a.train.min() and celeb_a.train.max() <= 1.0


# -------------------------------------------------------- standardizer ----


def test_standardizer_fits_train_only_and_round_trips(tmp_path):
  rng = np.random.default_rng(4)
  train = rng.normal(3.0, 2.0, size=(200, 3)).astype(np.float32)
  train[:, 2] = 5.0  # A constant column.
  test = rng.normal(-10.0, 9.0, size=(50, 3)).astype(np.float32)
  std = Standardizer.from_data(train)
  np.testing.assert_allclose(std.mean, train.mean(0), rtol=1e-5)
  np.testing.assert_allclose(std.std[:2], train.std(0)[:2], rtol=1e-5)
  assert std.std[2] == 1.0 and std.scale[2] == 1.0
  z = std.transform(train)
  np.testing.assert_allclose(z[:, :2].mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(z[:, :2].std(0), 1.0, atol=1e-4)
  assert np.all(z[:, 2] == 0.0)
  assert abs(std.transform(test)[:, 0].mean()) > 3  # Not refit on test.
  np.testing.assert_allclose(std.inverse_transform(std.transform(test)), test,
                             rtol=1e-5, atol=1e-5)
  zt = std.transform(tf.constant(test))
  assert isinstance(zt, tf.Tensor) and zt.dtype == tf.float32
  np.testing.assert_allclose(std.inverse_transform(zt).numpy(), test,
                             rtol=1e-5, atol=1e-5)
  path = str(tmp_path / 'standardizer.json')
  std.save(path)
  assert not os.path.exists(path + '.tmp')
  assert json.load(open(path))['feature_shape'] == [3]
  loaded = Standardizer.load(path)
  assert loaded == std
  np.testing.assert_array_equal(loaded.transform(test), std.transform(test))


def test_standardizer_identity_images_and_errors(tmp_path):
  ident = Standardizer.identity((2, 2, 1))
  x = np.random.default_rng(5).uniform(size=(3, 2, 2, 1)).astype(np.float32)
  np.testing.assert_array_equal(ident.transform(x), x)
  images = Standardizer.from_data(x)
  assert images.mean.shape == (2, 2, 1)
  assert Standardizer.from_dict(images.to_dict()) == images
  with pytest.raises(UserError, match='does not exist'):
    Standardizer.load(str(tmp_path / 'missing.json'))
  (tmp_path / 'bad.json').write_text('{"mean": [1]}')
  with pytest.raises(UserError, match='malformed'):
    Standardizer.load(str(tmp_path / 'bad.json'))


# ------------------------------------------------------------ pipeline ----


def test_train_batches_resume_is_exact():
  features = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
  kwargs = dict(batch_size=3, seed=7, mask_sampler=_bernoulli_masks)
  fresh = _rows(train_batches(features, **kwargs), 9)  # 3 epochs of 3.
  for start in (1, 4, 6):
    resumed = _rows(train_batches(features, start_step=start, **kwargs),
                    9 - start)
    for want, got in zip(fresh[start:], resumed):
      assert got['step'] == want['step']
      np.testing.assert_array_equal(got['x'], want['x'])
      np.testing.assert_array_equal(got['mask'], want['mask'])
  assert [int(r['step']) for r in fresh] == list(range(9))


def test_train_batches_visit_every_example_once_per_epoch():
  n, b = 12, 4
  features = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)
  ds = train_batches(features, b, seed=1)
  spec = ds.element_spec
  assert spec['x'].shape == (b, 2) and spec['mask'].shape == (b, 2)
  assert spec['step'].dtype == tf.int64 and spec['step'].shape == ()
  rows = _rows(ds, 3 * (n // b))
  epochs = []
  for e in range(3):
    ids = np.concatenate([r['x'][:, 0] for r in rows[e * 3:(e + 1) * 3]])
    assert sorted(ids) == list(range(n))
    epochs.append(ids)
  assert not np.array_equal(epochs[0], epochs[1])  # Reshuffled per epoch.
  assert all(np.all(r['mask'] == 1.0) for r in rows)
  # With a remainder: 10 // 4 = 2 batches per epoch, no repeat inside one.
  rows = _rows(train_batches(features[:10], b, seed=1), 2)
  ids = np.concatenate([r['x'][:, 0] for r in rows])
  assert len(set(ids)) == 8
  other = _rows(train_batches(features, b, seed=2), 3)
  assert not all(np.array_equal(a['x'], o['x'])
                 for a, o in zip(rows, other))


def test_train_batch_masks_are_seeded():
  features = np.zeros((16, 4, 4, 1), np.float32)
  make = lambda **kw: _rows(train_batches(  # pylint: disable=g-long-lambda
      features, 8, seed=0, mask_sampler=_bernoulli_masks, **kw), 3)
  a, b, c = make(), make(), make(mask_seed=99)
  for ra, rb in zip(a, b):
    np.testing.assert_array_equal(ra['mask'], rb['mask'])
  assert not np.array_equal(a[0]['mask'], a[1]['mask'])
  assert not np.array_equal(a[0]['mask'], c[0]['mask'])
  assert a[0]['mask'].shape == (8, 4, 4, 1) and a[0]['mask'].dtype == np.float32
  assert 0.2 < a[0]['mask'].mean() < 0.8
  expected = _bernoulli_masks([8, 4, 4, 1], tf.constant([1, 2], tf.int64))
  np.testing.assert_array_equal(a[2]['mask'], expected.numpy())  # [seed+1, s]


def test_train_batches_errors():
  with pytest.raises(UserError, match='larger than the 3'):
    train_batches(np.zeros((3, 2), np.float32), 4, seed=0)
  with pytest.raises(UserError, match='batch_size'):
    train_batches(np.zeros((3, 2), np.float32), 0, seed=0)


def test_eval_batches_in_order_with_last_batch():
  features = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
  masks = (features % 2).astype(np.float32)
  rows = list(eval_batches(features, 3, masks=masks,
                           labels=np.arange(7)).as_numpy_iterator())
  assert [len(r['x']) for r in rows] == [3, 3, 1]
  np.testing.assert_array_equal(np.concatenate([r['x'] for r in rows]),
                                features)
  np.testing.assert_array_equal(np.concatenate([r['mask'] for r in rows]),
                                masks)
  np.testing.assert_array_equal(np.concatenate([r['label'] for r in rows]),
                                np.arange(7))
  plain = list(eval_batches(features, 4).as_numpy_iterator())
  assert [len(r['x']) for r in plain] == [4, 3]
  assert all(np.all(r['mask'] == 1.0) for r in plain)
  with pytest.raises(UserError, match='masks have shape'):
    eval_batches(features, 2, masks=masks[:, :2])
