"""pm-export: TF Serving layout, atomic versions, a SavedModel that runs with
nothing but TensorFlow (saved_model_cli included), REST request bodies,
in-graph input checks, the extra-signature extension point."""
import functools
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import launcher_env
from pm_zoo.errors import UserError
from pm_zoo.serving import export
from pm_zoo.serving import module as module_lib
from pm_zoo.serving import rest
from pm_zoo.serving import tf_only as tf_only_lib
import serving_fixtures

# Runs in a process whose imports of pm_zoo, tensorflow_probability, tf_keras
# and gin fail, as on a TF Serving host (pm_zoo.serving.tf_only): loads the
# SavedModel, calls each signature on the REST request bodies the way TF
# Serving decodes them, then runs saved_model_cli's own entry point
# (the `saved_model_cli` command) for `show --all` and `run` of impute.
TF_ONLY_SCRIPT = tf_only_lib.script(r'''
import contextlib, io
path, work = sys.argv[1:]
loaded = tf.saved_model.load(path)
results = {'signatures': sorted(loaded.signatures), 'outputs': {}}
with open(work + '/requests.json') as f:
  requests = json.load(f)
for key, body in requests.items():
  results['outputs'][key] = {k: v.tolist()
                             for k, v in call_rest_body(loaded, body).items()}

from tensorflow.python.tools import saved_model_cli
for command in (['show', '--dir', path, '--all'],
                ['run', '--dir', path, '--tag_set', 'serve',
                 '--signature_def', 'serving_default',
                 '--inputs', f'x={work}/x.npy;mask={work}/mask.npy',
                 '--outdir', work + '/cli_out']):
  sys.argv = ['saved_model_cli'] + command
  printed = io.StringIO()
  code = 0
  with contextlib.redirect_stdout(printed):
    try:
      saved_model_cli.main()
    except SystemExit as e:
      code = e.code or 0
  results['saved_model_cli_' + command[0]] = [code, printed.getvalue()]
results['imported'] = blocked_imports()
with open(work + '/tf_only.json', 'w') as f:
  json.dump(results, f)
''')


@pytest.fixture(scope='module')
def imputer(tmp_path_factory):
  return serving_fixtures.fitted_imputer(tmp_path_factory)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  return serving_fixtures.exported(tmp_path_factory)


@pytest.fixture(scope='module')
def rows(tmp_path_factory):
  """(x [6, 5], mask): row 0 nothing observed, row 1 everything."""
  x = serving_fixtures.table(tmp_path_factory)[0][:6].astype(np.float32)
  mask = (np.random.default_rng(7).random(x.shape) < 0.5).astype(np.float32)
  mask[0], mask[1] = 0.0, 1.0
  return x, mask


@pytest.fixture(scope='module')
def requests(rows):
  x, mask = rows
  bodies = rest.example_requests(x, mask, num_samples=4, seed=9,
                                 log_prob_samples=16)
  bodies['default'] = {**bodies[module_lib.IMPUTE],
                       'signature_name': module_lib.DEFAULT}
  bodies['offset'] = rest.request_body(serving_fixtures.OFFSET_SIGNATURE,
                                       {'x': x, 'mask': mask})
  # Through JSON text, as a client sends them.
  return {k: json.loads(rest.dumps(v)) for k, v in bodies.items()}


@pytest.fixture(scope='module')
def background(exported, requests, rows, imputer, tmp_path_factory):
  """The subprocesses of this module, started together (each is mostly
  TensorFlow start-up): the TF-only run and pm-export on a run that has no
  checkpoint."""
  _, version = exported
  work = tmp_path_factory.mktemp('export_subprocesses')
  (work / 'tf_only.py').write_text(TF_ONLY_SCRIPT)
  (work / 'requests.json').write_text(json.dumps(requests))
  np.save(work / 'x.npy', rows[0])
  np.save(work / 'mask.npy', rows[1])
  # A run stopped before its first checkpoint.
  no_checkpoint = work / 'no_checkpoint'
  shutil.copytree(imputer.model_dir_, no_checkpoint,
                  ignore=shutil.ignore_patterns('checkpoints', 'export'))
  before = serving_fixtures.files_under(no_checkpoint)
  procs = {
      'tf_only': subprocess.Popen(
          [sys.executable, str(work / 'tf_only.py'), version, str(work)],
          cwd=str(work), env=tf_only_lib.environment(), stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True),
      'export_no_checkpoint': subprocess.Popen(
          [sys.executable, '-m', 'launch.export',
           f'--model_dir={no_checkpoint}'], cwd=serving_fixtures.REPO,
          env=launcher_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
          text=True),
  }
  yield work, procs, no_checkpoint, before
  for proc in procs.values():
    if proc.poll() is None:
      proc.kill()


@pytest.fixture(scope='module')
def tf_only(background):
  code, _, err = _finish(background, 'tf_only')
  assert code == 0, err[-3000:]
  with open(background[0] / 'tf_only.json') as f:
    return json.load(f)


@pytest.fixture(scope='module')
def loaded(exported):
  return tf.saved_model.load(exported[1])


def _finish(background, name):
  proc = background[1][name]
  out, err = proc.communicate(timeout=serving_fixtures.SUBPROCESS_TIMEOUT)
  return proc.returncode, out, err


def test_export_writes_a_numbered_version_with_metadata(exported, imputer):
  base, version = exported
  assert os.path.dirname(version) == base
  assert os.listdir(base) == ['1']  # no temporary directory left behind
  assert os.path.isfile(os.path.join(version, 'saved_model.pb'))
  with open(os.path.join(version, 'assets.extra', 'pm_zoo_export.json')) as f:
    meta = json.load(f)
  assert meta['step'] == imputer.step_
  assert meta['feature_shape'] == [5]
  assert meta['impute'] == {'num_samples': serving_fixtures.TINY['num_samples'],
                            'seed': serving_fixtures.TINY['random_state']}
  assert set(meta['signatures']) == {*module_lib.CORE_SIGNATURES,
                                     serving_fixtures.OFFSET_SIGNATURE}
  assert meta['signatures']['sample']['inputs'] == {
      'mask': ['float32', [None, 5]], 'num_samples': ['int32', []],
      'seed': ['int64', []], 'x': ['float32', [None, 5]]}


def test_versions_count_up_and_a_failed_write_leaves_nothing(tmp_path):
  base = str(tmp_path / 'base')

  def write(path):
    with open(os.path.join(path, 'saved_model.pb'), 'w') as f:
      f.write('x')

  assert export.write_versioned(base, write).endswith(os.sep + '1')
  os.makedirs(os.path.join(base, '7'))
  assert export.write_versioned(base, write).endswith(os.sep + '8')

  def fail(path):
    write(path)
    raise RuntimeError('disk full')

  with pytest.raises(RuntimeError):
    export.write_versioned(base, fail)
  assert sorted(os.listdir(base)) == ['1', '7', '8']
  with pytest.raises(RuntimeError):
    export.write_versioned(str(tmp_path / 'new_base'), fail)
  assert not os.path.exists(tmp_path / 'new_base')


def test_savedmodel_runs_with_tensorflow_only_on_rest_bodies(
    tf_only, imputer, rows):
  result = tf_only
  assert result['imported'] == []
  assert set(result['signatures']) >= set(module_lib.CORE_SIGNATURES)
  outputs = {k: {n: np.asarray(v) for n, v in o.items()}
             for k, o in result['outputs'].items()}
  x, mask = rows
  module = imputer.serving_module_
  live = module.impute(tf.constant(x), tf.constant(mask))
  for key in ('default', module_lib.IMPUTE):
    np.testing.assert_allclose(outputs[key]['x'], live['x'], rtol=1e-6)
    np.testing.assert_allclose(outputs[key]['samples'], live['samples'],
                               rtol=1e-6)
  # impute == the Python imputer's transform (same S and seed).
  with_nan = np.where(mask > 0, x, np.nan)
  np.testing.assert_allclose(outputs['default']['x'],
                             imputer.transform(with_nan), rtol=1e-6)
  np.testing.assert_array_equal(outputs['default']['x'][1], x[1])
  sampled = outputs[module_lib.SAMPLE]['samples']
  assert sampled.shape == (6, 4, 5)
  np.testing.assert_allclose(sampled, module.sample(
      x, mask, tf.constant(4), tf.constant(9, tf.int64))['samples'],
                             rtol=1e-6)
  log_prob = outputs[module_lib.CONDITIONAL_LOG_PROB]['log_prob']
  np.testing.assert_allclose(log_prob, imputer.conditional_log_prob(
      x, mask, num_samples=16), rtol=1e-5, atol=1e-4)
  assert log_prob[1] == 0.0
  encoded = outputs[module_lib.ENCODE]
  assert encoded['samples'].shape == (6, serving_fixtures.TINY['num_samples'],
                                      3)
  np.testing.assert_array_equal(encoded['mean'][0], np.zeros(3))  # prior
  np.testing.assert_array_equal(encoded['covariance'][0], np.eye(3))
  np.testing.assert_allclose(outputs['offset']['y'],
                             x + 1.5 * np.arange(5), rtol=1e-6)


def test_saved_model_cli_lists_signatures_and_runs_impute(tf_only, rows,
                                                          imputer,
                                                          background):
  code, printed = tf_only['saved_model_cli_show']
  assert code == 0, printed[-3000:]
  for name in module_lib.CORE_SIGNATURES:
    assert f"signature_def['{name}']" in printed
  code, printed = tf_only['saved_model_cli_run']
  assert code == 0, printed[-3000:]
  x, mask = rows
  module = imputer.serving_module_
  live = module.impute(tf.constant(x), tf.constant(mask))
  out = background[0] / 'cli_out'
  # saved_model_cli runs the graph in a TF1 session (other graph
  # rewrites): the same numbers up to float32 rounding.
  np.testing.assert_allclose(np.load(out / 'x.npy'), live['x'], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(np.load(out / 'samples.npy'), live['samples'],
                             rtol=1e-5, atol=1e-6)


def test_pm_export_refuses_a_run_without_checkpoint(background):
  code, out, err = _finish(background, 'export_no_checkpoint')
  lines = [l for l in err.splitlines() if l.startswith('error:')]
  assert code == 2 and len(lines) == 1, err[-3000:]
  assert 'has no checkpoint yet' in lines[0]
  assert out == ''
  assert serving_fixtures.files_under(background[2]) == background[3]


@pytest.mark.parametrize('change, message', [
    (lambda x, m: (x, m * 2.0), 'mask must hold only 0'),
    (lambda x, m: (x, m[:3]), 'mask must have the shape of x'),
    (lambda x, m: (np.where(m > 0, np.inf, x), m), 'inf at an observed'),
])
def test_signatures_check_their_inputs_in_the_graph(loaded, rows, change,
                                                    message):
  x, mask = change(*rows)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures['serving_default'](x=tf.constant(x, tf.float32),
                                         mask=tf.constant(mask, tf.float32))


def test_signatures_refuse_wrong_dtype_shape_and_nonfinite_scores(loaded,
                                                                  rows):
  x, mask = rows
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match='float'):
    loaded.signatures['serving_default'](x=tf.constant(x.astype(np.int32)),
                                         mask=tf.constant(mask))
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
    loaded.signatures['serving_default'](x=tf.constant(x[:, :4]),
                                         mask=tf.constant(mask[:, :4]))
  with pytest.raises(tf.errors.InvalidArgumentError, match='finite x'):
    loaded.signatures['conditional_log_prob'](
        x=tf.constant(np.where(mask > 0, x, np.nan)), mask=tf.constant(mask),
        num_samples=tf.constant(4))
  with pytest.raises(tf.errors.InvalidArgumentError, match='num_samples'):
    loaded.signatures['sample'](
        x=tf.constant(x), mask=tf.constant(mask), num_samples=tf.constant(0),
        seed=tf.constant(0, tf.int64))


def test_nan_in_x_counts_as_missing(loaded, rows):
  x, mask = rows
  with_nan = np.where(mask > 0, x, np.nan).astype(np.float32)
  as_nan = loaded.signatures['impute'](x=tf.constant(with_nan),
                                       mask=tf.ones_like(tf.constant(mask)))
  as_mask = loaded.signatures['impute'](x=tf.constant(x),
                                        mask=tf.constant(mask))
  np.testing.assert_array_equal(as_nan['x'], as_mask['x'])


def test_providers_cannot_take_core_names(imputer):
  module = imputer.serving_module_
  context = export.ExportContext('unused', module, 0)
  with pytest.raises(ValueError, match="'impute'"):
    export.collect_optional_signatures(
        context, [lambda c: {'impute': None}])
  assert export.collect_optional_signatures(context, [lambda c: {}]) == {}


def test_export_of_a_missing_run_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match='does not exist'):
    export.export(str(tmp_path / 'nothing'))
  assert os.listdir(tmp_path) == []


def test_serving_benchmark_reports_both_paths(imputer, exported, tmp_path):
  if serving_fixtures.REPO not in sys.path:  # benchmarks/ is not installed
    sys.path.insert(0, serving_fixtures.REPO)
  from benchmarks import serving  # pylint: disable=g-import-not-at-top
  output = tmp_path / 'serving.json'
  serving.main(['--model_dir', imputer.model_dir_, '--saved_model',
                exported[0], '--repeats', '3', '--warmup', '1',
                '--output', str(output)])
  with open(output) as f:
    result = json.load(f)
  for path in ('savedmodel', 'keras'):
    for batch in ('batch1', 'batch256'):
      row = result[path][batch]
      assert row['calls'] == 3
      assert 0 < row['median_ms'] <= row['p99_ms']
  settings = result['settings']
  assert settings['num_samples'] == serving_fixtures.TINY['num_samples']
  for difference in settings['max_abs_difference_of_x'].values():
    assert difference < 1e-5  # both paths compute the same imputations


def test_export_traces_each_signature_once(imputer, tmp_path, monkeypatch):
  """The signatures are traced in the save's own context, so
  tf.saved_model.save reuses those traces instead of tracing again; the
  ``impute`` signature calls the traced ``sample``."""
  traces = {}
  for name in ('_sample', '_impute', '_encode', '_conditional_log_prob'):
    original = getattr(module_lib.ServingModule, name)

    @functools.wraps(original)  # tf.function reads the argument names
    def counted(self, *args, _name=name, _original=original):
      traces[_name] = traces.get(_name, 0) + 1
      return _original(self, *args)
    monkeypatch.setattr(module_lib.ServingModule, name, counted)
  version = export.export(imputer.model_dir_,
                          export_base=str(tmp_path / 'export'))
  assert traces == {'_sample': 1, '_impute': 1, '_encode': 1,
                    '_conditional_log_prob': 1}
  assert os.path.isfile(os.path.join(version, 'saved_model.pb'))
