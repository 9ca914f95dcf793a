r"""Training throughput: steps/s, examples/s and FLOP/s of the train step.

  python -m benchmarks.train_throughput --output=runs/throughput.json

Models (``--models``, comma separated):

  gas        gin/uci_gas.gin with the full-covariance Gaussian partial
             posterior (the authors' code falls back to it, see DESIGN.md):
             residual MLPs 2 x 256, latent 16, batch 512, 8 features.
  gas_ar     gin/uci_gas.gin as shipped (autoregressive Gaussian-mixture
             partial posterior).
  miniboone  gin/uci_miniboone.gin with the full-covariance partial posterior
             at batch 1024, 43 features.
  mnist      gin/mnist.gin: the paper's conv VAE on 28x28x1, batch 256.

Default: gas,mnist. Every model runs with and without XLA
(``TrainConfig.jit_compile``) on 1 device (the default strategy) and on 2
logical CPU devices (``MirroredStrategy``; the CPU is split in two before
TensorFlow starts, and both devices share the same cores and thread pools,
so the second device adds no compute: it shows what replication costs).

Each run is the real ``Trainer`` on random data of the model's shape (20
global batches: standard normal rows for tables, uniform [0, 1] pixels for
images) and the experiment's own training settings. After a warm-up
(a ``Trainer.train`` call of ``--warmup`` steps: tracing, XLA compilation),
``--repeats`` calls train 1 + ``--steps`` steps each and are timed from the
end of their first step (``on_first_step``) to their return: steady-state
training, without the call's start-up (restoring the checkpoint, building
the input pipeline), with its final checkpoint. The fastest call counts (as
``timeit`` does): on a shared machine the others measure the neighbours.
The process's CPU time per step (all threads, the least over the calls) is
reported too: it counts the work a step costs, whatever else runs. Logging and summaries keep the experiment's
periods; checkpoints are written only at the end of each call.

FLOPs of a step are counted by TensorFlow's profiler
(``tf.compat.v1.profiler`` with ``float_operation()``) on the graph of the
gradient of the model's loss on one global batch, i.e. forward and backward
pass; the optimizer update (a few FLOPs per parameter) is not counted, nor
are ops without a registered FLOP count (they are elementwise). FLOP/s is
that count times steps/s.

The matmul peak is measured in the same process, before and after the
runs: chains of float32 ``tf.matmul`` (``a <- a @ b`` in a
``tf.while_loop``) of the gas model's layer shape [512, 256] x [256, 256]
and of square 1024 matrices, the best of three timings each; the best rate
is the machine's practical peak (``matmul_flops_per_s``), and each run's
FLOP/s is also given as a fraction of it.

Prints one table and writes JSON (``--output``)::

  {"matmul_flops_per_s": ..,
   "matmul": [{"shape": [m, k, n], "flops_per_s": ..}, ...],
   "runs": [{"model": .., "xla": true|false, "devices": n,
             "steps_per_s": .., "examples_per_s": .., "flops_per_s": ..,
             "flops_per_step": .., "batch_size": .., "peak_fraction": ..,
             "cpu_seconds_per_step": ..}]}
"""
import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging
import numpy as np
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import experiment
from pm_zoo import run_dir
from pm_zoo.data import train_batches
from pm_zoo.errors import UserError
from pm_zoo.training import strategy as strategy_lib
from pm_zoo.training import trainer as trainer_lib

FULL_COVARIANCE = 'PartialEncoder.head = @partial/FullCovarianceGaussian'
# name: (gin file, extra bindings, feature shape)
MODELS = {
    'gas': ('uci_gas.gin', [FULL_COVARIANCE], (8,)),
    'gas_ar': ('uci_gas.gin', [], (8,)),
    'miniboone': ('uci_miniboone.gin',
                  [FULL_COVARIANCE, 'TrainConfig.batch_size = 1024'], (43,)),
    'mnist': ('mnist.gin', [], (28, 28, 1)),
}
DEFAULT_STEPS = {'gas': 200, 'gas_ar': 100, 'miniboone': 50, 'mnist': 20}
BATCHES_OF_DATA = 20
MATMUL_SHAPES = ((512, 256, 256), (1024, 1024, 1024))


# ------------------------------------------------------------------ FLOPs
def step_flops(model, objective: str, x: np.ndarray, mask: np.ndarray
               ) -> int:
  """FLOPs of the gradient of the model's loss on one batch (profiler)."""
  variables = model.trainable_variables_for(objective)
  noise = tf.zeros([x.shape[0], model.latent_dim])

  def gradient(x, mask, noise):
    with tf.GradientTape() as tape:
      terms = model.per_example_losses(x, mask, tf.constant(1.0),
                                       objective=objective, training=True,
                                       noise=noise)
      loss = tf.reduce_mean(terms['loss'])
    return tape.gradient(loss, variables,
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)

  concrete = tf.function(gradient).get_concrete_function(
      tf.TensorSpec(x.shape, tf.float32), tf.TensorSpec(mask.shape,
                                                        tf.float32),
      tf.TensorSpec(noise.shape, tf.float32))
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  profile = tf.compat.v1.profiler.profile(concrete.graph, options=options)
  return int(profile.total_float_ops)


def matmul_rate(m: int, k: int, n: int, seconds: float) -> float:
  """FLOP/s of a chain of [m, k] x [k, n] float32 matmuls (k == n).

  The best of three timings of at least ``seconds`` each.
  """
  a = tf.random.stateless_normal([m, k], seed=[0, 1])
  # Orthogonal b keeps the chain's values bounded.
  b = tf.linalg.qr(tf.random.stateless_normal([k, n], seed=[0, 2]))[0]

  @tf.function
  def chain(a, reps):
    for _ in tf.range(reps):
      a = tf.matmul(a, b)
    return a

  chain(a, tf.constant(2)).numpy()
  reps, best = 4, 0.0
  for _ in range(3):
    while True:
      start = time.perf_counter()
      chain(a, tf.constant(reps)).numpy()
      elapsed = time.perf_counter() - start
      if elapsed >= seconds:
        break
      reps *= 2
    best = max(best, 2.0 * m * k * n * reps / elapsed)
  return best


def matmul_peak(seconds: float, previous: Optional[List[Dict]] = None
                ) -> List[Dict]:
  """[{'shape', 'flops_per_s'}] per MATMUL_SHAPES, the best so far."""
  rates = [{'shape': list(shape), 'flops_per_s': matmul_rate(*shape, seconds)}
           for shape in MATMUL_SHAPES]
  for rate, old in zip(rates, previous or []):
    rate['flops_per_s'] = max(rate['flops_per_s'], old['flops_per_s'])
  return rates


# ------------------------------------------------------------------ runs
def _data(shape, batch_size: int) -> np.ndarray:
  rng = np.random.default_rng(0)
  rows = (BATCHES_OF_DATA * batch_size, *shape)
  if len(shape) == 3:
    return rng.uniform(size=rows).astype(np.float32)
  return rng.normal(size=rows).astype(np.float32)


def run_one(name: str, xla: bool, devices: int, steps: int, warmup: int,
            repeats: int, extra_bindings: Sequence[str]) -> Dict:
  """Times the Trainer on model ``name``; returns the run's JSON row."""
  gin_file, bindings, shape = MODELS[name]
  configs.parse([gin_file], [*bindings, *extra_bindings,
                             f'TrainConfig.jit_compile = {xla}',
                             'TrainConfig.checkpoint_every = 1000000000',
                             'TrainConfig.image_summary_every = 0'])
  strategy = (strategy_lib.make_strategy('mirrored') if devices > 1 else
              strategy_lib.make_strategy('default'))
  if strategy.num_replicas_in_sync != devices:
    raise UserError(f'asked for {devices} devices, the strategy has '
                    f'{strategy.num_replicas_in_sync}')
  cfg = trainer_lib.TrainConfig()
  data = _data(shape, cfg.batch_size)
  model = experiment.build_model(shape, strategy)
  batch = data[:cfg.batch_size]
  mask = cfg.train_mask(list(batch.shape), tf.constant([0, 0], tf.int64))
  flops = step_flops(model, cfg.objective, batch, np.asarray(mask))
  trainer = trainer_lib.Trainer(model, strategy, tempfile.mkdtemp(
      prefix='pm_zoo_throughput_'), cfg)

  def dataset_fn(start):
    return train_batches(data, cfg.batch_size, seed=cfg.seed,
                         start_step=start, mask_sampler=cfg.train_mask)

  def timed(count):
    """(steps/s, CPU s/step) of ``count`` steps after a call's first step."""
    marks = []
    cfg.num_steps = int(trainer.global_step.numpy()) + 1 + count
    trainer.train(dataset_fn, on_first_step=lambda: marks.append(
        (time.perf_counter(), time.process_time())))
    wall = time.perf_counter() - marks[0][0]
    return count / wall, (time.process_time() - marks[0][1]) / count

  timed(warmup)
  rates, cpu = zip(*[timed(steps) for _ in range(repeats)])
  steps_per_s = max(rates)
  return {'model': name, 'xla': xla, 'devices': devices,
          'batch_size': cfg.batch_size,
          'steps_per_s': steps_per_s,
          'examples_per_s': steps_per_s * cfg.batch_size,
          'flops_per_step': flops,
          'flops_per_s': steps_per_s * flops,
          'cpu_seconds_per_step': min(cpu)}


def format_table(result: Dict) -> str:
  peak = result['matmul_flops_per_s']
  lines = [f'{"model":10s} {"xla":>5s} {"dev":>4s} {"steps/s":>9s} '
           f'{"examples/s":>11s} {"GFLOP/step":>10s} {"GFLOP/s":>9s} '
           f'{"of peak":>8s} {"XLA x":>6s} {"CPU ms/step":>11s}']
  plain = {(r['model'], r['devices']): r['steps_per_s']
           for r in result['runs'] if not r['xla']}
  for r in result['runs']:
    base = plain.get((r['model'], r['devices']))
    gain = (f'{r["steps_per_s"] / base:6.2f}' if r['xla'] and base
            else f'{"":6s}')
    lines.append(
        f'{r["model"]:10s} {str(r["xla"]).lower():>5s} {r["devices"]:4d} '
        f'{r["steps_per_s"]:9.2f} {r["examples_per_s"]:11.0f} '
        f'{r["flops_per_step"] / 1e9:10.3f} {r["flops_per_s"] / 1e9:9.1f} '
        f'{r["flops_per_s"] / peak:8.1%} {gain} '
        f'{1e3 * r["cpu_seconds_per_step"]:11.1f}')
  shapes = ', '.join(f'{m["shape"][0]}x{m["shape"][1]}x{m["shape"][2]}: '
                     f'{m["flops_per_s"] / 1e9:.1f}' for m in result['matmul'])
  lines.append(f'matmul peak {peak / 1e9:.1f} GFLOP/s ({shapes} GFLOP/s)')
  return '\n'.join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.train_throughput',
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--models', default='gas,mnist',
                      help=f'comma separated, of {sorted(MODELS)}')
  parser.add_argument('--xla', default='false,true',
                      help='comma separated: false, true')
  parser.add_argument('--devices', default='1,2',
                      help='comma separated device counts (1 or 2)')
  parser.add_argument('--steps', type=int, default=None,
                      help='timed steps per run (default per model: '
                      f'{DEFAULT_STEPS})')
  parser.add_argument('--repeats', type=int, default=3,
                      help='timed calls per run; the fastest counts')
  parser.add_argument('--warmup', type=int, default=10,
                      help='untimed steps first (tracing, compiling)')
  parser.add_argument('--matmul_seconds', type=float, default=1.0,
                      help='least seconds per matmul timing (3 per shape, '
                      'before and after the runs)')
  parser.add_argument('--gin_bindings', action='append', default=[],
                      help='extra bindings for every run')
  parser.add_argument('--output', default=None, help='JSON results file')
  return parser.parse_args(argv)


def _choices(text: str, allowed, what: str) -> List[str]:
  values = [v.strip() for v in text.split(',') if v.strip()]
  bad = [v for v in values if v not in allowed]
  if bad or not values:
    raise UserError(f'{what} {bad or text!r}: use a comma separated list of '
                    f'{sorted(allowed)}')
  return values


def main(argv: Optional[Sequence[str]] = None) -> Dict:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  logging.set_verbosity(logging.WARNING)
  try:
    models = _choices(args.models, MODELS, '--models')
    xlas = [v == 'true' for v in _choices(args.xla, ('false', 'true'),
                                           '--xla')]
    devices = [int(v) for v in _choices(args.devices, ('1', '2'),
                                        '--devices')]
    strategy_lib.split_cpu(max(devices))
    matmul = matmul_peak(args.matmul_seconds)
    runs = []
    for name in models:
      for count in devices:
        for xla in xlas:
          runs.append(run_one(name, xla, count,
                              args.steps or DEFAULT_STEPS[name], args.warmup,
                              args.repeats, args.gin_bindings))
          print(f'{name} xla={xla} devices={count}: '
                f'{runs[-1]["steps_per_s"]:.2f} steps/s', flush=True)
    # Measured again at the end: on a shared machine the best one counts.
    matmul = matmul_peak(args.matmul_seconds, matmul)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  peak = max(m['flops_per_s'] for m in matmul)
  for run in runs:
    run['peak_fraction'] = run['flops_per_s'] / peak
  result = {'matmul_flops_per_s': peak, 'matmul': matmul, 'runs': runs}
  print(format_table(result))
  if args.output:
    run_dir.write_json(args.output, result)
    print(f'results written to {args.output}')
  return result


if __name__ == '__main__':
  main()
