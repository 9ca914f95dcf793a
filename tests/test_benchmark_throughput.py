"""benchmarks/train_throughput.py on a shrunk gas model: table and JSON."""
import json
import sys

import pytest

import conftest

if conftest.REPO not in sys.path:  # benchmarks/ is a source-tree folder
  sys.path.insert(0, conftest.REPO)
from benchmarks import train_throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

SMALL = ['--gin_bindings=ResidualMLP.units = 16',
         '--gin_bindings=ResidualMLP.num_blocks = 1',
         '--gin_bindings=TrainConfig.batch_size = 64']


def test_runs_report_consistent_rates(tmp_path, capsys):
  output = tmp_path / 'throughput.json'
  result = train_throughput.main(
      ['--models=gas', '--xla=false,true', '--devices=1', '--steps=3',
       '--repeats=1', '--warmup=1', '--matmul_seconds=0.05',
       f'--output={output}', *SMALL])
  printed = capsys.readouterr().out
  with open(output) as f:
    assert json.load(f) == json.loads(json.dumps(result))
  peak = result['matmul_flops_per_s']
  assert peak == max(m['flops_per_s'] for m in result['matmul']) > 1e8
  assert [(r['model'], r['xla'], r['devices']) for r in result['runs']] == [
      ('gas', False, 1), ('gas', True, 1)]
  cpu_peak = result['matmul_flops_per_cpu_s']
  assert cpu_peak == max(m['flops_per_cpu_s'] for m in result['matmul'])
  for run in result['runs']:
    assert run['batch_size'] == 64 and run['steps_per_s'] > 0
    assert run['flops_per_cpu_s'] == pytest.approx(
        run['flops_per_step'] / run['cpu_seconds_per_step'])
    assert run['cpu_peak_fraction'] == pytest.approx(
        run['flops_per_cpu_s'] / cpu_peak)
    # The same-size matmul: square, side a multiple of 64 nearest to
    # (FLOPs / 2) ** (1/3).
    m, k, n = run['same_size_matmul']['shape']
    assert m == k == n and m % 64 == 0
    assert (m - 64)**3 <= run['flops_per_step'] / 2 <= (m + 64)**3
    assert run['cpu_seconds_per_step'] > 0
    assert run['examples_per_s'] == pytest.approx(64 * run['steps_per_s'])
    assert run['flops_per_s'] == pytest.approx(
        run['flops_per_step'] * run['steps_per_s'])
    assert run['peak_fraction'] == pytest.approx(run['flops_per_s'] / peak)
  # Forward and backward (3 x 2 FLOPs per multiply-add) of the three 1-block
  # MLPs of width 16 (latent 16: 152 encoder outputs) on 64 rows: the
  # matmuls alone make 6 * 64 * (3072 + 896 + 3200) = 2.75e6 FLOPs.
  assert 2.5e6 < result['runs'][0]['flops_per_step'] < 6e6
  assert result['runs'][0]['flops_per_step'] == result['runs'][1][
      'flops_per_step']
  assert 'matmul peak' in printed and printed.count('gas ') >= 2


def test_unknown_model_is_a_one_line_error(capsys):
  with pytest.raises(SystemExit) as exit_info:
    train_throughput.main(['--models=gas,nope'])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err.startswith('error: --models')
