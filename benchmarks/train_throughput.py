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
  vdvae_small  gin/vdvae_mnist_small.gin: the CPU-sized hierarchical VAE
             (9 latent layers, width 64), batch 32.
  vdvae      gin/vdvae_mnist.gin: the paper's VDVAE (20 latent layers,
             width 192), batch 128 (slow on a CPU: use --steps=2).

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

The matmul peak is measured in the same process: chains of float32
``tf.matmul`` (``a <- a @ b`` in a ``tf.while_loop``), the best of three
timings each, of the gas model's layer shape [512, 256] x [256, 256] and of
square 1024 matrices before the runs, and again after them together with,
for each model, the square matmul of the same size as its train step (as
many FLOPs). The best rate is the machine's practical peak
(``matmul_flops_per_s``; each run's ``peak_fraction`` is against it). On a
shared machine wall-clock rates measure the neighbours too, so every rate is
also given per second of the process's CPU time (``flops_per_cpu_s``,
``matmul_flops_per_cpu_s``, ``cpu_peak_fraction``): the efficiency of the
step whatever else runs.

Prints one table and writes JSON (``--output``)::

  {"matmul_flops_per_s": .., "matmul_flops_per_cpu_s": ..,
   "matmul": [{"shape": [m, k, n], "flops_per_s": .., "flops_per_cpu_s": ..}],
   "runs": [{"model": .., "xla": true|false, "devices": n,
             "steps_per_s": .., "examples_per_s": .., "flops_per_s": ..,
             "flops_per_step": .., "batch_size": .., "peak_fraction": ..,
             "cpu_seconds_per_step": .., "flops_per_cpu_s": ..,
             "cpu_peak_fraction": .., "same_size_matmul": {..}}]}
"""
import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging
import numpy as np
import tensorflow as tf

from benchmarks import common
from pm_zoo import configs
from pm_zoo import experiment
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
    'vdvae_small': ('vdvae_mnist_small.gin', [], (28, 28, 1)),
    'vdvae': ('vdvae_mnist.gin', [], (28, 28, 1)),
}
DEFAULT_STEPS = {'gas': 200, 'gas_ar': 100, 'miniboone': 50, 'mnist': 10,
                 'vdvae_small': 10, 'vdvae': 2}
BATCHES_OF_DATA = 20
MATMUL_SHAPES = ((512, 256, 256), (1024, 1024, 1024))


# ------------------------------------------------------------------ FLOPs
def loss_gradient(model, objective: str, batch_size: int):
  """(gradient, noise): ``gradient(x, mask, noise)`` is the gradient of the
  mean loss over one batch w.r.t. the objective's variables (forward and
  backward pass, no update); ``noise`` is a zero ``[batch_size, noise]``
  tensor for it."""
  variables = model.trainable_variables_for(objective)
  noise = tf.zeros([batch_size, model.latent_dim])

  def gradient(x, mask, noise):
    with tf.GradientTape() as tape:
      terms = model.per_example_losses(x, mask, tf.constant(1.0),
                                       objective=objective, training=True,
                                       noise=noise)
      loss = tf.reduce_mean(terms['loss'])
    return tape.gradient(loss, variables,
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)

  return gradient, noise


def step_flops(model, objective: str, x: np.ndarray, mask: np.ndarray
               ) -> int:
  """FLOPs of the gradient of the model's loss on one batch (profiler)."""
  gradient, noise = loss_gradient(model, objective, x.shape[0])
  concrete = tf.function(gradient).get_concrete_function(
      tf.TensorSpec(x.shape, tf.float32), tf.TensorSpec(mask.shape,
                                                        tf.float32),
      tf.TensorSpec(noise.shape, tf.float32))
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  profile = tf.compat.v1.profiler.profile(concrete.graph, options=options)
  return int(profile.total_float_ops)


def matmul_rate(m: int, k: int, n: int, seconds: float) -> Dict:
  """Rates of a chain of [m, k] x [k, n] float32 matmuls (k == n).

  ``flops_per_s`` (wall clock) and ``flops_per_cpu_s`` (per second of the
  process's CPU time), each the best of three timings of at least
  ``seconds``.
  """
  a = tf.random.stateless_normal([m, k], seed=[0, 1])
  # Entries of variance 1/k keep the rows' norms about constant along the
  # chain (no overflow, no denormals).
  b = tf.random.stateless_normal([k, n], seed=[0, 2]) / k**0.5

  @tf.function
  def chain(a, reps):
    for _ in tf.range(reps):
      a = tf.matmul(a, b)
    return a

  chain(a, tf.constant(1)).numpy()
  reps, wall, cpu = 1, 0.0, 0.0
  for _ in range(3):
    while True:
      start, start_cpu = time.perf_counter(), time.process_time()
      chain(a, tf.constant(reps)).numpy()
      elapsed = time.perf_counter() - start
      if elapsed >= seconds:
        break
      reps *= 2
    flops = 2.0 * m * k * n * reps
    wall = max(wall, flops / elapsed)
    cpu = max(cpu, flops / max(time.process_time() - start_cpu, 1e-9))
  return {'shape': [m, k, n], 'flops_per_s': wall, 'flops_per_cpu_s': cpu}


def same_size(flops: float) -> Tuple[int, int, int]:
  """The square matmul shape with (about) ``flops`` FLOPs."""
  side = max(64, int(round((flops / 2.0) ** (1.0 / 3.0) / 64.0)) * 64)
  return (side, side, side)


def matmul_peak(shapes: Sequence[Tuple[int, int, int]], seconds: float,
                previous: Sequence[Dict] = ()) -> List[Dict]:
  """Rates of each shape's matmul chain, the best of now and ``previous``."""
  before = {tuple(r['shape']): r for r in previous}
  rates = []
  for shape in dict.fromkeys(tuple(s) for s in shapes):
    rate = matmul_rate(*shape, seconds)
    old = before.get(shape)
    if old:
      for key in ('flops_per_s', 'flops_per_cpu_s'):
        rate[key] = max(rate[key], old[key])
    rates.append(rate)
  return rates


# ------------------------------------------------------------------ runs
def random_data(shape, batch_size: int) -> np.ndarray:
  """``[BATCHES_OF_DATA * batch_size, *shape]`` float32 rows of a model's
  shape, seed 0: uniform [0, 1] pixels for images (3-D ``shape``), standard
  normals for table rows."""
  rng = np.random.default_rng(0)
  rows = (BATCHES_OF_DATA * batch_size, *shape)
  if len(shape) == 3:
    return rng.uniform(size=rows).astype(np.float32)
  return rng.normal(size=rows).astype(np.float32)


def first_batch(data: np.ndarray, cfg) -> Tuple[np.ndarray, np.ndarray]:
  """The first global batch of ``data`` and a training mask for it."""
  batch = data[:cfg.batch_size]
  mask = cfg.train_mask(list(batch.shape), tf.constant([0, 0], tf.int64))
  return batch, np.asarray(mask)


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
  data = random_data(shape, cfg.batch_size)
  model = experiment.build_model(shape, strategy)
  batch, mask = first_batch(data, cfg)
  flops = step_flops(model, cfg.objective, batch, mask)
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
           f'{"of peak":>8s} {"XLA x":>6s} {"CPU ms/step":>11s} '
           f'{"of CPU peak":>11s}']
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
        f'{1e3 * r["cpu_seconds_per_step"]:11.1f} '
        f'{r["cpu_peak_fraction"]:11.1%}')
  lines.append(f'matmul peak {peak / 1e9:.1f} GFLOP/s, '
               f'{result["matmul_flops_per_cpu_s"] / 1e9:.1f} GFLOP per CPU '
               'second; by shape (GFLOP/s, per CPU s):')
  for m in result['matmul']:
    lines.append(f'  {m["shape"][0]}x{m["shape"][1]}x{m["shape"][2]}: '
                 f'{m["flops_per_s"] / 1e9:.1f}, '
                 f'{m["flops_per_cpu_s"] / 1e9:.1f}')
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
  parser.add_argument('--warmup', type=int, default=5,
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
    matmul = matmul_peak(MATMUL_SHAPES, args.matmul_seconds)
    runs = []
    for name in models:
      for count in devices:
        for xla in xlas:
          runs.append(run_one(name, xla, count,
                              args.steps or DEFAULT_STEPS[name], args.warmup,
                              args.repeats, args.gin_bindings))
          print(f'{name} xla={xla} devices={count}: '
                f'{runs[-1]["steps_per_s"]:.2f} steps/s', flush=True)
    # Again at the end, with the models' same-size matmuls: on a shared
    # machine the best timing counts.
    sizes = list(MATMUL_SHAPES) + [same_size(r['flops_per_step'])
                                   for r in runs]
    matmul = matmul_peak(sizes, args.matmul_seconds, matmul)
  except UserError as e:
    common.exit_with_error(e)
  peak = max(m['flops_per_s'] for m in matmul)
  cpu_peak = max(m['flops_per_cpu_s'] for m in matmul)
  by_shape = {tuple(m['shape']): m for m in matmul}
  for run in runs:
    run['peak_fraction'] = run['flops_per_s'] / peak
    run['flops_per_cpu_s'] = (run['flops_per_step'] /
                              run['cpu_seconds_per_step'])
    run['cpu_peak_fraction'] = run['flops_per_cpu_s'] / cpu_peak
    run['same_size_matmul'] = by_shape[same_size(run['flops_per_step'])]
  result = {'matmul_flops_per_s': peak, 'matmul_flops_per_cpu_s': cpu_peak,
            'matmul': matmul, 'runs': runs}
  return common.report(result, format_table(result), args.output)


if __name__ == '__main__':
  main()
