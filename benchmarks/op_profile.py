r"""Where a train step's time goes: op time by op type, from a profiler trace.

  python -m benchmarks.op_profile --model=vdvae_small --calls=3 \
      --output=runs/op_profile_vdvae_small.json

Traces ``--calls`` calls of the compiled gradient of the loss on one global
batch (forward and backward pass, the graph whose FLOPs
``benchmarks.train_throughput`` counts; ``--models`` names as there) with
``tf.profiler.experimental`` after one untraced warm-up call, reads the
XSpace the profiler writes (the executor's ``name:OpType`` events on its
compute threads) and sums op time per op type, split into the forward pass
and the backward pass (ops under ``gradient_tape/``). Op time is summed over
threads, so it exceeds the wall time where ops ran in parallel; fractions
are of the total op time. Groups:

  contraction   MatMul, BatchMatMul, Conv2D and their gradients, Einsum:
                the FLOPs ``train_throughput`` counts
  linear solve  MatrixTriangularSolve, Cholesky (full-covariance Gaussians)
  elementwise   everything else (activations, bias adds, reductions,
                copies), where a step bound by memory traffic spends its time

``--xla`` compiles the gradient with XLA (its fused clusters then show as
one op each). Prints the table; ``--output`` writes it as JSON.
"""
import argparse
import collections
import glob
import os
import sys
import tempfile
from typing import Dict, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

from benchmarks import common
from benchmarks import train_throughput
from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo.errors import UserError
from pm_zoo.training import strategy as strategy_lib
from pm_zoo.training import trainer as trainer_lib

CONTRACTIONS = ('MatMul', 'BatchMatMul', 'BatchMatMulV2', 'BatchMatMulV3',
                'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter',
                'DepthwiseConv2dNative', 'Einsum', '_FusedMatMul',
                '_FusedConv2D')
LINEAR_SOLVES = ('MatrixTriangularSolve', 'Cholesky', 'MatrixSolve',
                 'MatrixInverse')
BACKWARD_SCOPE = 'gradient_tape/'
ONEDNN_PREFIXES = ('_MklNative', '_Mkl')


def canonical_op_type(kernel: str) -> str:
  """The TensorFlow op a kernel name implements.

  With oneDNN on (TensorFlow's default on x86 CPUs) the graph rewrite runs
  ``MatMul`` as ``_MklMatMul``, a fused matmul + bias as
  ``_MklNativeFusedMatMul`` and so on; those are the same ops as the plain
  names, so they are counted, and grouped, under them: ``_MklMatMul`` ->
  ``MatMul``, ``_MklNativeFusedMatMul`` -> ``_FusedMatMul``.
  """
  for prefix in ONEDNN_PREFIXES:
    if kernel.startswith(prefix) and len(kernel) > len(prefix):
      op = kernel[len(prefix):]
      return '_' + op if op.startswith('Fused') else op
  return kernel


def group_of(op_type: str) -> str:
  if op_type in CONTRACTIONS:
    return 'contraction'
  if op_type in LINEAR_SOLVES:
    return 'linear solve'
  return 'elementwise'


def op_times(xspace_path: str) -> Dict[tuple, float]:
  """Seconds of op time per (op type, 'forward' | 'backward') in a trace.

  Op types are canonical (``canonical_op_type``): oneDNN's kernels count as
  the ops they implement.
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow.tsl.profiler.protobuf import xplane_pb2
  space = xplane_pb2.XSpace()
  with open(xspace_path, 'rb') as f:
    space.ParseFromString(f.read())
  totals = collections.defaultdict(float)
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_Compute'):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        node, sep, op_type = name.rpartition(':')
        if not sep or '::' in name:
          continue                      # executor bookkeeping, not an op
        part = 'backward' if BACKWARD_SCOPE in node else 'forward'
        totals[(canonical_op_type(op_type), part)] += event.duration_ps * 1e-12
  return dict(totals)


def profile(name: str, calls: int, xla: bool) -> Dict:
  """Traces ``calls`` gradient calls of model ``name``; the JSON result."""
  gin_file, bindings, shape = train_throughput.MODELS[name]
  configs.parse([gin_file], bindings)
  strategy = strategy_lib.make_strategy('default')
  cfg = trainer_lib.TrainConfig()
  model = experiment.build_model(shape, strategy)
  data = train_throughput.random_data(shape, cfg.batch_size)
  batch, mask = train_throughput.first_batch(data, cfg)
  gradient, noise = train_throughput.loss_gradient(model, cfg.objective,
                                                   cfg.batch_size)
  compiled = tf.function(gradient, jit_compile=xla)
  args = (tf.constant(batch), tf.constant(mask, tf.float32), noise)
  tf.nest.map_structure(lambda t: t.numpy(), compiled(*args))   # warm-up
  logdir = tempfile.mkdtemp(prefix='pm_zoo_op_profile_')
  tf.profiler.experimental.start(logdir)
  try:
    for _ in range(calls):
      tf.nest.map_structure(lambda t: t.numpy(), compiled(*args))
  finally:
    tf.profiler.experimental.stop()
  traces = sorted(glob.glob(os.path.join(logdir, '**', '*.xplane.pb'),
                            recursive=True))
  if not traces:
    raise UserError(f'the profiler wrote no trace under {logdir}')
  totals = op_times(traces[-1])
  seconds = sum(totals.values())
  if not seconds:
    raise UserError('the trace holds no op events (was the gradient run?)')
  ops = [{'op': op, 'pass': part, 'seconds_per_call': t / calls,
          'fraction': t / seconds, 'group': group_of(op)}
         for (op, part), t in sorted(totals.items(), key=lambda kv: -kv[1])]
  groups = collections.defaultdict(float)
  for row in ops:
    groups[f"{row['group']} ({row['pass']})"] += row['fraction']
  return {'model': name, 'xla': xla, 'batch_size': cfg.batch_size,
          'calls': calls, 'op_seconds_per_call': seconds / calls,
          'groups': dict(sorted(groups.items(), key=lambda kv: -kv[1])),
          'ops': ops}


def format_table(result: Dict, top: int) -> str:
  lines = [f"{result['model']} (xla {result['xla']}), batch "
           f"{result['batch_size']}: {result['op_seconds_per_call']:.3f} s of "
           f"op time per gradient call ({result['calls']} calls traced)",
           'group                      share']
  lines += [f'{group:<26} {share:6.1%}'
            for group, share in result['groups'].items()]
  lines.append(f"\ntop {top} op types      pass      s/call   share")
  for row in result['ops'][:top]:
    lines.append(f"{row['op']:<22} {row['pass']:<9} "
                 f"{row['seconds_per_call']:7.3f}  {row['fraction']:6.1%}")
  return '\n'.join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='vdvae_small',
                      help=f'one of {sorted(train_throughput.MODELS)}')
  parser.add_argument('--calls', type=int, default=3)
  parser.add_argument('--top', type=int, default=15)
  parser.add_argument('--xla', action='store_true')
  parser.add_argument('--output', default=None)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    if args.model not in train_throughput.MODELS:
      raise UserError(f'--model={args.model!r} is not one of '
                      f'{sorted(train_throughput.MODELS)}')
    if args.calls < 1:
      raise UserError(f'--calls must be >= 1, got {args.calls}')
    result = profile(args.model, args.calls, args.xla)
  except UserError as error:
    common.exit_with_error(error)
  return common.report(result, format_table(result, args.top), args.output)


if __name__ == '__main__':
  main()
