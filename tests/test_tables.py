"""Real tables (issue 14): incomplete training rows, mixed column types,
pandas in and out, the schema in the run and the SavedModel, bad input."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from pm_zoo import PosteriorMatchingImputer
from pm_zoo.errors import UserError
import serving_fixtures

TINY = dict(serving_fixtures.TINY)


def _mixed_frame(rows=300, seed=0):
  """Two latent factors drive two numeric columns, an integer column, a
  3-category text column, a category dtype and a bool: every column is
  predictable from the others. Index and dtypes are unusual on purpose."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(rows, 2))
  colour = np.array(['blue', 'green', 'red'])[
      np.digitize(z[:, 0], [-0.5, 0.5])]
  frame = pd.DataFrame({
      'a': z[:, 0] + 0.1 * rng.normal(size=rows),
      'b': z[:, 0] - z[:, 1] + 0.1 * rng.normal(size=rows),
      'count': np.round(3 * z[:, 1] + 10).astype('int64'),
      'colour': colour,
      'size': pd.Categorical(np.where(z[:, 1] > 0, 'L', 'S'),
                             categories=['S', 'L']),
      'flag': z[:, 0] + z[:, 1] > 0,
  }, index=pd.Index(np.arange(rows) * 10 + 7, name='id'))
  return frame


def _holes(frame, rate, seed):
  rng = np.random.default_rng(seed)
  out = frame.copy().astype({'count': 'Int64', 'flag': 'object'})
  for name in out.columns:
    drop = rng.random(len(out)) < rate
    out.loc[out.index[drop], name] = (
        pd.NA if name in ('count',) else None if name == 'flag' else np.nan)
  return out


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
  """An imputer fitted on an incomplete mixed DataFrame (20% cells MCAR)."""
  frame = _mixed_frame()
  train = frame.astype({'count': 'Int64', 'flag': 'boolean'})
  rng = np.random.default_rng(1)
  for name in train.columns:
    drop = rng.random(len(train)) < 0.2
    train.loc[train.index[drop], name] = (
        pd.NA if name in ('count', 'flag') else np.nan)
  run = tmp_path_factory.mktemp('tables') / 'run'
  imputer = PosteriorMatchingImputer(model_dir=str(run), **TINY).fit(train)
  return imputer, frame, train


def test_fit_on_incomplete_mixed_frame_stores_schema(mixed):
  imputer, frame, train = mixed
  schema = imputer.schema_
  assert schema.kinds == ('numeric', 'numeric', 'integer', 'categorical',
                          'categorical', 'categorical')
  assert schema.columns[3].categories == ('blue', 'green', 'red')
  assert schema.columns[4].categories == ('S', 'L')  # the dtype's order
  assert list(imputer.feature_names_in_) == list(frame.columns)
  with open(os.path.join(imputer.model_dir_, 'schema.json')) as f:
    assert json.load(f)['columns'][3]['categories'] == ['blue', 'green',
                                                       'red']
  with open(os.path.join(imputer.model_dir_, 'model_spec.json')) as f:
    spec = json.load(f)
  assert spec['cardinalities'] == [0, 0, 0, 3, 2, 2]
  assert spec['observed_inputs'] is True


def test_transform_returns_the_frame_in_its_own_types(mixed):
  imputer, frame, train = mixed
  holes = _holes(frame.iloc[:60], 0.3, seed=5)
  out = imputer.transform(holes)
  assert isinstance(out, pd.DataFrame)
  assert out.index.equals(holes.index) and list(out.columns) == list(
      holes.columns)
  assert dict(out.dtypes) == dict(holes.dtypes)
  assert not out.isna().any().any()
  given = holes.notna()
  for name in holes.columns:  # observed cells exactly as given
    assert (out.loc[given[name], name] == holes.loc[given[name],
                                                    name]).all()
  assert set(out['colour']) <= {'blue', 'green', 'red'}
  assert set(out['size']) <= {'S', 'L'} and set(out['flag']) <= {True, False}
  assert (out['count'] == out['count'].round()).all()
  # Imputed categories beat always guessing the most frequent one.
  hidden = ~given['colour']
  right = (out.loc[hidden, 'colour'] == frame.iloc[:60].loc[hidden,
                                                            'colour']).mean()
  majority = (frame['colour'] == frame['colour'].mode()[0]).mean()
  assert right > majority
  draws = imputer.sample(holes, 3)
  assert len(draws) == 3 and all(isinstance(d, pd.DataFrame) for d in draws)
  assert all(not d.isna().any().any() for d in draws)


def test_unseen_category_is_named_or_imputed(mixed):
  imputer, frame, _ = mixed
  bad = frame.iloc[:3].copy()
  bad.loc[bad.index[1], 'colour'] = 'purple'
  with pytest.raises(UserError, match="column 'colour' row 1 holds 'purple', "
                     'a category not seen in fit'):
    imputer.transform(bad)
  lenient = PosteriorMatchingImputer.load(imputer.model_dir_)
  lenient.set_params(handle_unknown='missing')
  out = lenient.transform(bad)
  assert out.loc[bad.index[1], 'colour'] in ('blue', 'green', 'red')
  with pytest.raises(UserError, match='the same columns, in the same order'):
    imputer.transform(frame.iloc[:3][list(frame.columns)[::-1]])


def test_saved_model_serves_codes_with_the_schema_in_assets(mixed, tmp_path):
  # pylint: disable=g-import-not-at-top
  from pm_zoo.data import schema as schema_lib
  from pm_zoo.serving import export
  from pm_zoo.serving import loading
  from pm_zoo.serving import module
  imputer, frame, _ = mixed
  path = export.export(imputer.model_dir_, str(tmp_path / 'export'),
                       module.ServingConfig(num_samples=6, seed=3))
  schema = schema_lib.TableSchema.load(
      os.path.join(path, 'assets.extra', 'pm_zoo_schema.json'))
  assert schema == imputer.schema_
  holes = _holes(frame.iloc[:20], 0.3, seed=2)
  codes = schema.encode(holes).astype(np.float32)
  runner = loading.SavedModelRunner(path)
  mask = (~np.isnan(codes)).astype(np.float32)
  served, _ = runner.sample(codes, mask, 6, 3)
  np.testing.assert_allclose(schema.decode(served, like=holes)[['a', 'b']],
                             imputer.transform(holes)[['a', 'b']],
                             rtol=1e-5, atol=1e-5)
  assert set(np.unique(served[:, 3])) <= {0.0, 1.0, 2.0}
  bad = codes.copy()
  bad[0, 3], mask[0, 3] = 7.0, 1.0
  with pytest.raises(UserError, match='column colour is categorical: give '
                     'the integer code 0..2'):
    runner.sample(bad, mask, 2, 0)


def test_pm_impute_reads_and_writes_text_columns(mixed, tmp_path):
  # pylint: disable=g-import-not-at-top
  from pm_zoo.serving import impute_csv
  from pm_zoo.serving import loading
  imputer, frame, _ = mixed
  holes = _holes(frame.iloc[:30], 0.3, seed=9)
  source = tmp_path / 'in.csv'
  holes.to_csv(source, index=False)
  out = tmp_path / 'out.csv'
  impute_csv.impute_csv(loading.InProcess(imputer.serving_module_),
                        str(source), str(out), num_samples=4, seed=0,
                        log=lambda line: None)
  written = pd.read_csv(out)
  assert not written.isna().any().any()
  assert set(written['colour']) <= {'blue', 'green', 'red'}
  assert set(written['flag'].astype(str)) <= {'True', 'False'}
  assert (written['count'] == written['count'].round()).all()
  given = holes.notna()
  assert (written.loc[given['colour'].values, 'colour'].values ==
          holes.loc[given['colour'], 'colour'].values).all()
  bad = tmp_path / 'bad.csv'
  text = source.read_text().splitlines()
  text[3] = text[3].replace('blue', 'purple').replace('green', 'purple'
                                                      ).replace('red',
                                                                'purple')
  bad.write_text('\n'.join(text) + '\n')
  if 'purple' in text[3]:
    with pytest.raises(UserError, match="column 'colour' line 4 holds "
                       "'purple'"):
      impute_csv.impute_csv(loading.InProcess(imputer.serving_module_),
                            str(bad), str(tmp_path / 'o2.csv'),
                            log=lambda line: None)
    assert not (tmp_path / 'o2.csv').exists()


def test_numpy_in_numpy_out_and_set_output_pandas(tmp_path):
  x = serving_fixtures.write_linear_table(tmp_path / 't.csv', rows=200,
                                          columns=4, seed=3)
  x[:, 2] = 1.0  # a constant column: imputed as its constant
  holes = x[:20].copy()
  holes[np.random.default_rng(0).random(holes.shape) < 0.4] = np.nan
  imputer = PosteriorMatchingImputer(**dict(TINY, num_steps=100)).fit(x)
  out = imputer.transform(holes)
  assert isinstance(out, np.ndarray) and out.dtype == np.float64
  np.testing.assert_array_equal(out[:, 2], 1.0)
  imputer.set_output(transform='pandas')
  frame = imputer.transform(holes)
  assert isinstance(frame, pd.DataFrame)
  assert list(frame.columns) == ['c0', 'c1', 'c2', 'c3']
  np.testing.assert_allclose(frame.to_numpy(), out)


def test_bad_tables_are_one_line_errors_and_write_nothing(tmp_path):
  frame = _mixed_frame(rows=40)
  empty = frame.assign(e=np.nan)
  with pytest.raises(UserError, match="column 'e' is entirely empty"):
    PosteriorMatchingImputer(model_dir=str(tmp_path / 'r1')).fit(empty)
  with pytest.raises(UserError, match="column_types names column 'nope', "
                     'which the table does not have'):
    PosteriorMatchingImputer(model_dir=str(tmp_path / 'r2'),
                             column_types={'nope': 'categorical'}).fit(frame)
  names = frame.assign(name=[f'n{i}' for i in range(40)])
  with pytest.raises(UserError, match="column 'name' holds 40 distinct text "
                     'values'):
    PosteriorMatchingImputer(model_dir=str(tmp_path / 'r3'),
                             max_categories=20).fit(names)
  assert not any((tmp_path / r).exists() for r in ('r1', 'r2', 'r3'))


def test_mcar_incomplete_training_lands_near_complete_training(tmp_path):
  """20% of the training cells removed completely at random: the imputer
  trained on the incomplete rows imputes held-out rows (Bernoulli(0.5)
  masks, 3 draws) within 15% of the NRMSE of the one trained on the
  complete rows, and far better than the column means (NRMSE ~1)."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import metrics
  x = serving_fixtures.write_linear_table(tmp_path / 't.csv', rows=600,
                                          columns=5, seed=4)
  train, test = x[:500], x[500:]
  incomplete = train.copy()
  incomplete[np.random.default_rng(0).random(train.shape) < 0.2] = np.nan
  settings = dict(TINY, num_steps=600, validation_fraction=0.0)
  scores = {}
  for name, data in (('complete', train), ('incomplete', incomplete)):
    imputer = PosteriorMatchingImputer(**settings).fit(data)
    values = []
    for trial in range(3):
      mask = (np.random.default_rng(10 + trial).random(test.shape) <
              0.5).astype(float)
      mask[mask.sum(axis=1) == 0, 0] = 1.0
      holes = np.where(mask > 0, test, np.nan)
      values.append(metrics.nrmse(test, imputer.transform(holes), mask))
    scores[name] = float(np.mean(values))
  assert scores['complete'] < 0.6, scores
  assert scores['incomplete'] <= 1.15 * scores['complete'], scores


def test_pm_train_and_pm_eval_on_an_incomplete_csv_with_text(tmp_path):
  """pm-train on a CSV with empty cells and a text column: the schema and
  the observed-data mask come from the file; pm-eval reports NRMSE for the
  numeric columns and PFC for the categorical one."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import configs
  from pm_zoo import experiment
  frame = _mixed_frame(rows=200)[['a', 'b', 'colour']]
  frame = frame.mask(np.random.default_rng(3).random(frame.shape) < 0.15)
  frame.iloc[5] = np.nan  # an empty row: dropped, with a log line
  path = tmp_path / 'mixed.csv'
  frame.to_csv(path, index=False)
  configs.parse(['tiny/table.gin'], ['TrainConfig.num_steps = 30'])
  run = str(tmp_path / 'run')
  experiment.train(run, data_path=str(path))
  with open(os.path.join(run, 'model_spec.json')) as f:
    spec = json.load(f)
  assert spec['cardinalities'] == [0, 0, 3] and spec['observed_inputs']
  metrics = experiment.evaluate(run)
  assert np.isfinite(metrics['nrmse']['mean'])
  assert 0.0 <= metrics['pfc']['mean'] <= 1.0
  assert np.isfinite(metrics['log_likelihood']['mean'])
