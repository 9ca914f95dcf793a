r"""Latency of one greedy acquisition step at batch 1: sampling vs lookahead.

  python -m benchmarks.acquisition_latency --model_dir=runs/m16 \
      --output=runs/m16/acquisition_latency.json

The run must hold a trained lookahead network (``pm-acquire --model_dir=D
--train_lookahead``). One step = choose the next feature for ONE instance:

  sampling              the sampling-based rule (paper Eq. 6), K =
                        --sampling_samples imputations, one partial-encoder
                        pass per sample and candidate
                        (``policies.SamplingPolicy``'s compiled function);
  lookahead             the lookahead rule (Eq. 7) in process: the compiled
                        ``NextFeature.next_feature`` concrete function on raw
                        inputs (XLA);
  lookahead_savedmodel  the same function through the run's SavedModel, as
                        ``pm-export`` writes it (``pm_zoo.serving.export``:
                        every signature, ``next_feature`` among them),
                        reloaded, called as
                        ``loaded.signatures['next_feature'](x=..., mask=...)``;
  lookahead_full_head   for reference: the same network without the folded
                        entropy head (all D x d log-scales computed, then
                        summed), compiled with XLA.

The inputs are the first test instances with masks drawn from
``UniformCountMask(0, min(50, D - 1))`` (the states an episode visits), made
into tensors before timing; every timed call ends with ``.numpy()`` of the
chosen index. Before timing, the SavedModel's and the in-process step's
choices are checked to agree on every input. The methods run interleaved in rounds (a block of each per
round) so that load changes on a shared machine hit them alike. Prints the
median and 99th percentile per method and the speedup (sampling median /
lookahead median); ``--output`` writes them as JSON:
``{"sampling"|"lookahead"|"lookahead_savedmodel"|"lookahead_full_head":
{"median_us", "p99_us", "steps"}, "speedup": .., "speedup_savedmodel": ..}``.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from benchmarks import common


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.acquisition_latency',
      description=__doc__.split('\n\n')[0].strip(),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--model_dir', required=True,
                      help='a pm-train run with a trained lookahead network')
  parser.add_argument('--lookahead_steps', type=int, default=2000,
                      help='timed lookahead steps (each variant)')
  parser.add_argument('--sampling_steps', type=int, default=20,
                      help='timed sampling steps')
  parser.add_argument('--rounds', type=int, default=10,
                      help='interleaved rounds the steps are spread over')
  parser.add_argument('--sampling_samples', type=int, default=50,
                      help='K of the sampling rule (the paper: 50)')
  parser.add_argument('--instances', type=int, default=100,
                      help='distinct (instance, mask) inputs cycled through')
  parser.add_argument('--threads', type=int, default=0,
                      help='TensorFlow intra- and inter-op threads (0: '
                      "TensorFlow's default)")
  parser.add_argument('--output', default=None, help='JSON file to write')
  return parser.parse_args(argv)


def percentiles(seconds: List[float]) -> Dict[str, float]:
  us = np.asarray(seconds) * 1e6
  return {'median_us': float(np.median(us)),
          'p99_us': float(np.percentile(us, 99)), 'steps': int(us.size)}


def timed(fn: Callable, inputs: List, count: int, offset: int) -> List[float]:
  """Seconds of ``count`` calls of ``fn(*inputs[i])``, cycling the inputs."""
  out = []
  for i in range(count):
    args = inputs[(offset + i) % len(inputs)]
    start = time.perf_counter()
    fn(*args)
    out.append(time.perf_counter() - start)
  return out


def main(argv: Optional[Sequence[str]] = None) -> Dict:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from pm_zoo import masks
  from pm_zoo.acquisition import features
  from pm_zoo.acquisition import policies
  from pm_zoo.acquisition import task
  from pm_zoo.acquisition.serving import NextFeature
  from pm_zoo.errors import UserError
  from pm_zoo.serving import export as export_lib
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  work = tempfile.mkdtemp(prefix='pm_zoo_acquisition_latency_')
  try:
    for flag in ('lookahead_steps', 'sampling_steps', 'rounds',
                 'sampling_samples', 'instances'):
      if getattr(args, flag) < 1:
        raise UserError(f'--{flag} must be >= 1')
    run = task.load_run(args.model_dir)
    network, lookahead_step = task.restore_lookahead(
        run.model_dir, run.model, run.step)
    step_module = NextFeature(network, run.standardizer)
    full_head = tf.function(
        lambda x, mask: policies.greedy_choice(
            network.entropies(x, mask), mask, network.feature_shape),
        jit_compile=True)
    sampling = policies.SamplingPolicy(run.model, args.sampling_samples)
    fs = tuple(run.model.feature_shape)
    num = features.num_features(fs)
    test = run.splits.test[:args.instances]
    mask = masks.make_eval_masks(
        masks.UniformCountMask(0, min(50, num - 1)), fs, len(test), seed=0)
    raw = run.standardizer.inverse_transform(test).astype(np.float32)
    model_inputs = [(tf.constant(test[i:i + 1]), tf.constant(mask[i:i + 1]))
                    for i in range(len(test))]
    raw_inputs = [(tf.constant(raw[i:i + 1]), tf.constant(mask[i:i + 1]))
                  for i in range(len(test))]
    seeds = [tf.constant([0, i], tf.int64) for i in range(len(test))]
    saved_path = export_lib.export(run.model_dir,
                                   os.path.join(work, 'export'))
    loaded = tf.saved_model.load(saved_path)
    served = loaded.signatures['next_feature']
    in_process = step_module.signature()
    for x, m in raw_inputs:  # Both paths choose the same features.
      if in_process(x, m)['index'].numpy() != served(x=x, mask=m)[
          'index'].numpy():
        raise RuntimeError('the SavedModel and the in-process step disagree')

    calls = {
        'lookahead': lambda x, m: in_process(x, m)['index'].numpy(),
        'lookahead_savedmodel': lambda x, m: served(x=x, mask=m)[
            'index'].numpy(),
        'lookahead_full_head': lambda x, m: full_head(x, m)[0].numpy(),
        'sampling': lambda x, m, s: sampling.next_feature(x, m, s)[0].numpy(),
    }
    inputs = {'lookahead': raw_inputs, 'lookahead_savedmodel': raw_inputs,
              'lookahead_full_head': model_inputs,
              'sampling': [(x, m, s) for (x, m), s in zip(model_inputs,
                                                          seeds)]}
    for name, fn in calls.items():  # Warm-up: tracing and XLA compilation.
      timed(fn, inputs[name], 3 if name == 'sampling' else 50, 0)
    seconds = {name: [] for name in calls}
    for r in range(args.rounds):
      for name, fn in calls.items():
        total = (args.sampling_steps if name == 'sampling' else
                 args.lookahead_steps)
        count = total // args.rounds + (1 if r < total % args.rounds else 0)
        seconds[name] += timed(fn, inputs[name], count, len(seconds[name]))
  except UserError as e:
    common.exit_with_error(e)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  result = {name: percentiles(s) for name, s in seconds.items()}
  result['speedup'] = (result['sampling']['median_us'] /
                       result['lookahead']['median_us'])
  result['speedup_savedmodel'] = (
      result['sampling']['median_us'] /
      result['lookahead_savedmodel']['median_us'])
  result['context'] = {
      'model_dir': os.path.abspath(args.model_dir), 'model_step': run.step,
      'lookahead_step': lookahead_step, 'feature_shape': list(fs),
      'num_features': num, 'sampling_samples': args.sampling_samples,
      'threads': args.threads or 'default',
      'cpu_count': os.cpu_count(),
      'lookahead_weights_read_per_step': int(
          sum(np.prod(v.shape) for v in network.trunk.variables) +
          step_module.entropy_kernel.shape.num_elements() +
          step_module.entropy_bias.shape.num_elements()),
  }
  return common.report(result, format_table(result), args.output)


def format_table(result: Dict) -> str:
  lines = [f'{"method":<22}{"median (us)":>14}{"p99 (us)":>14}{"steps":>8}']
  for name in ('sampling', 'lookahead', 'lookahead_savedmodel',
               'lookahead_full_head'):
    r = result[name]
    lines.append(f'{name:<22}{r["median_us"]:>14.1f}{r["p99_us"]:>14.1f}'
                 f'{r["steps"]:>8d}')
  lines.append(f'speedup (sampling / lookahead median): '
               f'{result["speedup"]:.0f}x; through the SavedModel: '
               f'{result["speedup_savedmodel"]:.0f}x')
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
