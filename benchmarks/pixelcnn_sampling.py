r"""Sampling speed of the conditional PixelCNN over a VQ-VAE's code grid.

  python -m benchmarks.pixelcnn_sampling --output=runs/pixelcnn_sampling.json

Side by side, in one process, on the same network weights and uniforms:

  whole-grid  the reference: for every position p = (i, j), the network on
              rows 0..i of the current grid (what a PixelCNN sampler does
              without caches), then the inverse CDF at p;
  cached      ``CodeGridDistribution.sample_from_uniforms``: the vertical
              stack once per grid row, the horizontal stack once per
              position, every convolution reading its inputs above and to
              the left from caches (pm_zoo/distributions/pixelcnn.py), as a
              graph;
  cached+XLA  the same loop compiled with XLA (the default).

For every network size (``--sizes``, filters x blocks per stack) and batch
(``--rows`` instances x ``--samples`` draws each): milliseconds per call
(the best of ``--repeats`` after one warm-up call that traces and
compiles), the speed-up against the whole-grid reference, and how many
codes differ from the reference's (same uniforms, same logits up to float
rounding: a handful where XLA's reordered float sums move a CDF step past
a uniform, and the rest of that grid, which conditions on it; more than
1 in 1,000 fails the run). ``--conditionings=vector,spatial`` also measures
the spatially conditioned network (``ConditionalPixelCNN.spatial_conditioning``:
a 64-channel map per grid cell, added in every block; its sizes print with an
``s``), in the same run. The issue's latency goal is one image x 10
samples under 50 ms on a CPU. Weights are random (a trained network has the
same cost). Prints one table and writes JSON.

``--memory`` measures memory instead of time: every cached sampler (graph,
XLA) at every size and batch runs once in a fresh subprocess, which reports
its peak resident memory (``ru_maxrss``) above what it held once the network
was built, compile included, and that per grid (rows x samples). A sampler
needs caches of ~0.1 MB per 64 x 8 grid; XLA once peaked at 3.2 MB per grid
there (1,000 grids), by lowering dynamic slices through padded copies (docs/models-vqvae.md,
"Sampling memory"). Run the script by path with ``PYTHONPATH`` at another
checkout to measure that checkout's sampler.
"""
import argparse
import json
import multiprocessing
import resource
import sys
import time
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from pm_zoo.distributions import pixelcnn


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--sizes', default='32x4,64x8',
                      help='PixelCNN sizes, FILTERSxBLOCKS, comma separated '
                      '(the paper: 128x8)')
  parser.add_argument('--rows', default='1,100',
                      help='instances per call, comma separated')
  parser.add_argument('--samples', type=int, default=10,
                      help='draws per instance')
  parser.add_argument('--grid', type=int, default=7,
                      help='the code grid is GRID x GRID (MNIST: 7)')
  parser.add_argument('--codes', type=int, default=256, help='codebook size')
  parser.add_argument('--conditionings', default='vector',
                      help="comma separated: 'vector' (the paper's), "
                      "'spatial' (vector + a map per grid cell)")
  parser.add_argument('--repeats', type=int, default=3,
                      help='timed calls per method (the best counts)')
  parser.add_argument('--memory', action='store_true',
                      help='peak resident memory of the cached samplers, '
                      'each in a fresh subprocess, instead of their speed')
  parser.add_argument('--output', default=None, help='JSON path')
  return parser.parse_args(argv)


def whole_grid_sample(network, condition, uniforms, grid, condition_map=None):
  """Reference draws ``[n, h, w]`` from ``uniforms [n, hw]``: the network
  on rows 0..i of the grid for every position of row i (and of the
  conditioning map, if any)."""
  height, width = grid
  n = tf.shape(uniforms)[0]
  codes = tf.zeros([n, height, width], tf.int32)
  for i in range(height):
    for j in range(width):
      rows_map = None if condition_map is None else condition_map[:, :i + 1]
      logits = network(codes[:, :i + 1], condition,
                       condition_map=rows_map)[:, i, j]
      code = pixelcnn.inverse_cdf(logits, uniforms[:, i * width + j])
      position = tf.reshape(tf.one_hot(i * width + j, height * width,
                                       dtype=tf.int32), [1, height, width])
      codes = codes + code[:, None, None] * position
  return codes


def _best_ms(fn, args, repeats):
  fn(*args)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    times.append(time.perf_counter() - start)
  return 1000.0 * min(times)


def build_inputs(filters: int, blocks: int, rows: int, samples: int,
                 grid_size: int, codes: int, spatial: bool):
  """A built network with random weights and seeded inputs for one size and
  batch: ``(grid, network, condition [rows, 512], condition_map [rows, h, w,
  64] or None, uniforms [samples, rows, hw])``."""
  grid = (grid_size, grid_size)
  network = pixelcnn.PixelCNNNetwork(codes, filters=filters,
                                     num_blocks=blocks, dropout=0.5,
                                     spatial_condition=spatial)
  condition = tf.random.stateless_normal([rows, 512], seed=[0, 1])
  condition_map = (tf.random.stateless_normal([rows, *grid, 64], seed=[1, 2])
                   if spatial else None)
  uniforms = tf.random.stateless_uniform(
      [samples, rows, grid[0] * grid[1]], seed=[2, 3])
  network(tf.zeros([1, *grid], tf.int32), condition[:1],
          condition_map=None if condition_map is None else condition_map[:1])
  return grid, network, condition, condition_map, uniforms


def measure(filters: int, blocks: int, rows: int, samples: int = 10,
            grid_size: int = 7, codes: int = 256, repeats: int = 3,
            spatial: bool = False) -> Dict:
  """One size and batch: ``{filters, blocks, rows, samples, spatial,
  methods}``, ``methods[name] = {ms, speedup, mismatched_codes}``."""
  grid, network, condition, condition_map, uniforms = build_inputs(
      filters, blocks, rows, samples, grid_size, codes, spatial)
  tiled = pixelcnn.tile_rows(condition, samples)
  tiled_map = pixelcnn.tile_rows(condition_map, samples)
  flat = tf.reshape(uniforms, [samples * rows, -1])
  reference = tf.function(lambda u: whole_grid_sample(network, tiled, u,
                                                      grid, tiled_map))
  methods = {'whole-grid': (reference, flat)}
  for name, jit in (('cached', False), ('cached+XLA', True)):
    dist = pixelcnn.CodeGridDistribution(network, condition, grid,
                                         jit_compile=jit,
                                         condition_map=condition_map)
    methods[name] = (tf.function(dist.sample_from_uniforms), uniforms)
  expected = tf.reshape(reference(flat), [samples, rows, *grid])
  result = {'filters': filters, 'blocks': blocks, 'rows': rows,
            'samples': samples, 'spatial': spatial, 'methods': {}}
  for name, (fn, u) in methods.items():
    ms = _best_ms(fn, (u,), repeats)
    drawn = tf.reshape(fn(u), expected.shape)
    result['methods'][name] = {
        'ms': ms,
        'mismatched_codes': int(tf.reduce_sum(tf.cast(drawn != expected,
                                                      tf.int32)))}
  base = result['methods']['whole-grid']['ms']
  for entry in result['methods'].values():
    entry['speedup'] = base / entry['ms']
  return result


def _peak_gb() -> float:
  """This process's peak resident memory so far, GB (Linux: ru_maxrss in KB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _memory_child(queue, filters, blocks, rows, samples, grid_size, codes,
                  spatial, jit):
  """In a fresh process: one cached sampler call; puts ``(base_gb, peak_gb)``."""
  grid, network, condition, condition_map, uniforms = build_inputs(
      filters, blocks, rows, samples, grid_size, codes, spatial)
  base = _peak_gb()
  dist = pixelcnn.CodeGridDistribution(network, condition, grid,
                                       jit_compile=jit,
                                       condition_map=condition_map)
  tf.function(dist.sample_from_uniforms)(uniforms).numpy()
  queue.put((base, _peak_gb()))


def measure_memory(filters: int, blocks: int, rows: int, samples: int = 10,
                   grid_size: int = 7, codes: int = 256,
                   spatial: bool = False) -> Dict:
  """``measure``'s record with ``methods[name] = {base_gb, peak_gb, added_gb,
  mb_per_grid}`` for the cached samplers, each in its own subprocess."""
  context = multiprocessing.get_context('spawn')
  result = {'filters': filters, 'blocks': blocks, 'rows': rows,
            'samples': samples, 'spatial': spatial, 'methods': {}}
  for name, jit in (('cached', False), ('cached+XLA', True)):
    queue = context.Queue()
    child = context.Process(target=_memory_child, args=(
        queue, filters, blocks, rows, samples, grid_size, codes, spatial,
        jit))
    child.start()
    child.join()
    if child.exitcode != 0:
      raise SystemExit(f'the {name} sampler at {filters}x{blocks}, {rows} x '
                       f'{samples} exited with {child.exitcode} (killed for '
                       'memory?): try fewer --rows')
    base, peak = queue.get()
    result['methods'][name] = {
        'base_gb': base, 'peak_gb': peak, 'added_gb': peak - base,
        'mb_per_grid': 1000.0 * (peak - base) / (rows * samples)}
  return result


def format_memory_rows(results: List[Dict]) -> str:
  lines = [f'{"size":>8} {"batch":>10} {"method":>16} {"peak GB":>8} '
           f'{"added GB":>9} {"MB/grid":>8}']
  for r in results:
    for name, m in r['methods'].items():
      size = f'{r["filters"]}x{r["blocks"]}' + ('s' if r['spatial'] else '')
      lines.append(f'{size:<8} {r["rows"]:>4} x {r["samples"]:<3} '
                   f'{name:>16} {m["peak_gb"]:>8.2f} {m["added_gb"]:>9.2f} '
                   f'{m["mb_per_grid"]:>8.2f}')
  return '\n'.join(lines)


def format_rows(results: List[Dict]) -> str:
  lines = [f'{"size":>8} {"batch":>10} {"method":>16} {"ms":>10} '
           f'{"speed-up":>9} {"mismatched":>11}']
  for r in results:
    for name, m in r['methods'].items():
      size = f'{r["filters"]}x{r["blocks"]}' + ('s' if r['spatial'] else '')
      lines.append(f'{size:<8} '
                   f'{r["rows"]:>4} x {r["samples"]:<3} {name:>16} '
                   f'{m["ms"]:>10.1f} {m["speedup"]:>8.1f}x '
                   f'{m["mismatched_codes"]:>11d}')
  return '\n'.join(lines)


def run(sizes: Sequence[str], rows: Sequence[int], samples: int,
        grid_size: int, codes: int, repeats: int,
        conditionings: Sequence[str] = ('vector',),
        memory: bool = False) -> Dict:
  """Every size x batch (speed, or with ``memory`` peak memory); prints the
  rows as they come."""
  results = []
  formatter = format_memory_rows if memory else format_rows
  for size in sizes:
    try:
      filters, blocks = (int(t) for t in size.lower().split('x'))
    except ValueError:
      raise SystemExit(f'--sizes takes FILTERSxBLOCKS items such as 64x8, '
                       f'got {size!r}') from None
    for conditioning in conditionings:
      for n in rows:
        spatial = conditioning == 'spatial'
        if memory:
          results.append(measure_memory(filters, blocks, int(n), samples,
                                        grid_size, codes, spatial))
        else:
          results.append(measure(filters, blocks, int(n), samples,
                                 grid_size, codes, repeats, spatial))
        print(formatter(results[-1:]).split('\n', 1)[1], flush=True)
  return {'grid': grid_size, 'codes': codes, 'memory': memory,
          'results': results}


def main(argv: Optional[Sequence[str]] = None) -> Dict:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    rows = [int(n) for n in args.rows.split(',')]
  except ValueError:
    raise SystemExit(f'--rows takes integers, got {args.rows!r}') from None
  conditionings = args.conditionings.split(',')
  unknown = set(conditionings) - {'vector', 'spatial'}
  if unknown:
    raise SystemExit("--conditionings takes 'vector' and 'spatial', got "
                     f'{sorted(unknown)}')
  result = run(args.sizes.split(','), rows, args.samples, args.grid,
               args.codes, args.repeats, conditionings, args.memory)
  print((format_memory_rows if args.memory else format_rows)(
      result['results']))
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(result, f, indent=1)
  if args.memory:
    return result
  total = sum(r['samples'] * r['rows'] * args.grid ** 2
              for r in result['results'])
  for name in ('cached', 'cached+XLA'):
    wrong = sum(r['methods'][name]['mismatched_codes']
                for r in result['results'])
    if wrong > 1e-3 * total:
      raise SystemExit(f'{name} drew {wrong} of {total} codes unlike the '
                       'whole-grid reference: more than float rounding '
                       'explains, a bug')
  return result


if __name__ == '__main__':
  main()
