"""benchmarks/op_profile.py: op time of a train step's gradient by op type."""
import json
import subprocess
import sys

import conftest

from benchmarks import op_profile

REPO = conftest.REPO


def test_op_profile_splits_the_gradients_op_time_by_op_type(tmp_path):
  """benchmarks/op_profile.py on the gas model: its matmuls are traced."""
  output = tmp_path / 'ops.json'
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.op_profile', '--model=gas',
       '--calls=1', f'--output={output}'],
      capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.load(open(output))
  assert result['model'] == 'gas' and result['op_seconds_per_call'] > 0
  assert abs(sum(result['groups'].values()) - 1.0) < 1e-6
  ops = {(r['op'], r['pass']): r for r in result['ops']}
  # The residual MLPs' matmuls run forward and backward (the gradient).
  assert any(op in ('MatMul', '_FusedMatMul') and part == 'forward'
             for op, part in ops)
  assert ('MatMul', 'backward') in ops
  assert ops[('MatMul', 'backward')]['group'] == 'contraction'
  assert 'contraction (backward)' in proc.stdout


def test_op_profile_refuses_an_unknown_model():
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.op_profile', '--model=resnet'],
      capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith('error: --model=')


def test_onednn_kernels_count_as_the_ops_they_implement():
  """With oneDNN on, `_MklMatMul` is a MatMul: grouped as a contraction."""
  expected = {'_MklMatMul': 'MatMul', '_MklNativeFusedMatMul': '_FusedMatMul',
              '_MklBatchMatMulV2': 'BatchMatMulV2',
              '_MklNativeConv2DBackpropInput': 'Conv2DBackpropInput',
              '_MklFusedConv2D': '_FusedConv2D', 'MatMul': 'MatMul',
              'Mul': 'Mul', '_Mkl': '_Mkl'}
  for kernel, op in expected.items():
    assert op_profile.canonical_op_type(kernel) == op, kernel
  assert op_profile.group_of(
      op_profile.canonical_op_type('_MklMatMul')) == 'contraction'
  assert op_profile.group_of(
      op_profile.canonical_op_type('_MklMul')) == 'elementwise'
