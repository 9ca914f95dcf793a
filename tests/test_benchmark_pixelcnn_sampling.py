"""benchmarks/pixelcnn_sampling.py at a tiny size: the three samplers agree."""
import sys

import conftest

if conftest.REPO not in sys.path:  # benchmarks/ is a source-tree folder
  sys.path.insert(0, conftest.REPO)
from benchmarks import pixelcnn_sampling  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_samplers_draw_the_same_codes_and_report_speedups(capsys, tmp_path):
  output = tmp_path / 'sampling.json'
  result = pixelcnn_sampling.main(['--sizes=6x3', '--rows=1,2', '--samples=2',
                                   '--grid=3', '--codes=5', '--repeats=1',
                                   f'--output={output}'])
  import json  # pylint: disable=g-import-not-at-top
  assert json.loads(output.read_text()) == json.loads(json.dumps(result))
  assert [(r['filters'], r['blocks'], r['rows']) for r in result['results']
          ] == [(6, 3, 1), (6, 3, 2)]
  for r in result['results']:
    methods = r['methods']
    assert list(methods) == ['whole-grid', 'cached', 'cached+XLA']
    assert all(m['mismatched_codes'] == 0 for m in methods.values())
    assert methods['whole-grid']['speedup'] == 1.0
    for m in methods.values():
      assert m['ms'] > 0
      assert abs(m['speedup'] * m['ms'] - methods['whole-grid']['ms']) < 1e-6
  printed = capsys.readouterr().out
  assert printed.count('cached+XLA') == 4   # as they come, then all


def test_spatially_conditioned_samplers_agree(capsys):
  result = pixelcnn_sampling.main(['--sizes=6x2', '--rows=2', '--samples=2',
                                   '--grid=3', '--codes=5', '--repeats=1',
                                   '--conditionings=vector,spatial'])
  assert [r['spatial'] for r in result['results']] == [False, True]
  for row in result['results']:
    assert all(m['mismatched_codes'] == 0 for m in row['methods'].values())
  printed = capsys.readouterr().out
  assert '6x2s' in printed and '6x2 ' in printed


def test_whole_grid_reference_differs_from_other_uniforms():
  """The agreement above is not vacuous: other uniforms give other codes."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pm_zoo.distributions import pixelcnn  # pylint: disable=g-import-not-at-top
  network = pixelcnn.PixelCNNNetwork(5, filters=6, num_blocks=2, dropout=0.)
  condition = tf.random.stateless_normal([4, 3], seed=[0, 1])
  network(tf.zeros([1, 3, 3], tf.int32), condition[:1])
  draws = [pixelcnn_sampling.whole_grid_sample(
      network, condition, tf.random.stateless_uniform([4, 9], seed=[s, 0]),
      (3, 3)).numpy() for s in (1, 2)]
  assert (draws[0] != draws[1]).any()


def test_memory_mode_reports_each_cached_sampler_from_its_own_process(
    capsys, tmp_path):
  output = tmp_path / 'memory.json'
  result = pixelcnn_sampling.main(['--sizes=6x2', '--rows=2', '--samples=2',
                                   '--grid=3', '--codes=5', '--memory',
                                   f'--output={output}'])
  import json  # pylint: disable=g-import-not-at-top
  assert json.loads(output.read_text()) == json.loads(json.dumps(result))
  assert result['memory'] is True
  (row,) = result['results']
  assert list(row['methods']) == ['cached', 'cached+XLA']
  for m in row['methods'].values():
    # A fresh process: TensorFlow alone holds hundreds of MB.
    assert 0.1 < m['base_gb'] <= m['peak_gb']
    assert abs(m['added_gb'] - (m['peak_gb'] - m['base_gb'])) < 1e-9
    assert abs(m['mb_per_grid'] - 1000 * m['added_gb'] / 4) < 1e-6
  assert 'MB/grid' in capsys.readouterr().out
