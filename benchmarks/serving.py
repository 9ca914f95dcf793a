r"""Latency of ``impute`` through the reloaded SavedModel vs in process, side by side.

  python -m benchmarks.serving --model_dir=runs/wine --output=serving.json
  python -m benchmarks.serving --model_dir=runs/wine \
      --saved_model=runs/wine/export --output=serving.json

Two paths compute the same ``impute`` (x, mask -> imputed x and samples;
S and seed of the export) on the same rows:

  savedmodel  ``tf.saved_model.load(<version>).signatures['serving_default']``:
              what TF Serving runs (default: the run is exported here to a
              temporary base first; ``--saved_model`` takes an existing one).
  keras       ``ServingModule(model).impute`` on the live Keras model restored
              from the run's checkpoint: the in-process path of
              ``PosteriorMatchingImputer`` and ``pm-impute --model_dir``.

For each batch size (1 and 256 rows of the run's test split, raw units, with
Bernoulli(0.5) masks) both paths are warmed up (``--warmup`` calls), then
timed ``--repeats`` times, the paths alternating call by call so that load
on a shared machine hits both alike. A call's latency includes turning its
outputs into NumPy arrays. The outputs of the two paths are compared too.

Output (``--output``, written atomically):

  {"savedmodel"|"keras": {"batch1"|"batch256": {"median_ms", "p99_ms",
                                                "mean_ms", "calls"}},
   "settings": {...}}

and a table with the savedmodel / keras ratios.
"""
import argparse
import os
import sys
import tempfile
import time
from typing import Dict, Optional, Sequence

import numpy as np

from benchmarks import common

BATCH_SIZES = (1, 256)
PATHS = ('savedmodel', 'keras')


def timed_calls(calls: Dict[str, callable], repeats: int, warmup: int
                ) -> Dict[str, np.ndarray]:
  """Latencies (s) of each callable, alternating them call by call."""
  for fn in calls.values():
    for _ in range(warmup):
      fn()
  seconds = {name: [] for name in calls}
  for _ in range(repeats):
    for name, fn in calls.items():
      start = time.perf_counter()
      fn()
      seconds[name].append(time.perf_counter() - start)
  return {name: np.asarray(values) for name, values in seconds.items()}


def summarize(seconds: np.ndarray) -> Dict[str, float]:
  ms = 1000.0 * seconds
  return {'median_ms': float(np.median(ms)),
          'p99_ms': float(np.percentile(ms, 99)),
          'mean_ms': float(ms.mean()), 'calls': int(len(ms))}


def sample_rows(model_dir: str, rows: int, seed: int = 0):
  """(x raw [rows, D], mask) from the run's test split (cycled if short)."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  from pm_zoo import data as data_lib
  splits = data_lib.load_dataset(**experiment.data_options(model_dir))
  test = splits.test
  x = test[np.arange(rows) % len(test)].astype(np.float32)
  mask = (np.random.default_rng(seed).random(x.shape) < 0.5).astype(
      np.float32)
  return x, mask


def run(model_dir: str, saved_model: Optional[str], repeats: int,
        warmup: int, num_samples: int, seed: int,
        log=print) -> Dict[str, Dict]:
  """Measures both paths at every batch size; returns the JSON's dict."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from pm_zoo import run_dir
  from pm_zoo.serving import export
  from pm_zoo.serving import loading
  from pm_zoo.serving import module as module_lib
  tmp = None
  if saved_model:
    # The in-process module gets the export's S and seed.
    version = loading.resolve_saved_model(saved_model)
    meta = run_dir.read_json(os.path.join(
        version, export.METADATA_DIR, export.METADATA_FILE)) or {}
    num_samples = meta.get('impute', {}).get('num_samples', num_samples)
    seed = meta.get('impute', {}).get('seed', seed)
  config = module_lib.ServingConfig(num_samples=num_samples, seed=seed)
  serving, step = loading.from_model_dir(model_dir, config)
  if not saved_model:
    tmp = tempfile.TemporaryDirectory(prefix='pm_zoo_serving_bench_')
    version = export.export(model_dir, tmp.name, config)
  loaded = tf.saved_model.load(version)
  signature = loaded.signatures[module_lib.DEFAULT]
  results = {path: {} for path in PATHS}
  agreement = {}
  for batch in BATCH_SIZES:
    x, mask = sample_rows(model_dir, batch)
    x, mask = tf.constant(x), tf.constant(mask)
    calls = {
        'savedmodel': lambda: {k: v.numpy() for k, v in
                               signature(x=x, mask=mask).items()},
        'keras': lambda: {k: v.numpy() for k, v in
                          serving.impute(x, mask).items()},
    }
    outputs = {name: fn() for name, fn in calls.items()}
    agreement[f'batch{batch}'] = float(np.abs(
        outputs['savedmodel']['x'] - outputs['keras']['x']).max())
    seconds = timed_calls(calls, repeats, warmup)
    for path in PATHS:
      results[path][f'batch{batch}'] = summarize(seconds[path])
    log(f'batch {batch}: ' + ', '.join(
        f'{p} median {results[p][f"batch{batch}"]["median_ms"]:.3f} ms'
        for p in PATHS))
  results['settings'] = {
      'model_dir': os.path.abspath(model_dir), 'step': step,
      'saved_model': version if saved_model else '(exported to a temporary '
                     'base)',
      'num_samples': num_samples, 'seed': seed, 'repeats': repeats,
      'warmup': warmup, 'features': list(serving.feature_shape),
      'max_abs_difference_of_x': agreement,
      'tensorflow': tf.__version__,
  }
  if tmp is not None:
    tmp.cleanup()
  return results


def format_table(results: Dict[str, Dict]) -> str:
  rows = [('batch', 'path', 'median ms', 'p99 ms', 'median / keras')]
  for batch in BATCH_SIZES:
    key = f'batch{batch}'
    keras = results['keras'][key]['median_ms']
    for path in PATHS:
      m = results[path][key]
      rows.append((str(batch), path, f'{m["median_ms"]:.3f}',
                   f'{m["p99_ms"]:.3f}', f'{m["median_ms"] / keras:.2f}'))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ['  '.join(r[i].rjust(widths[i]) if i > 1 else r[i].ljust(widths[i])
                     for i in range(len(r))) for r in rows]
  lines.insert(1, '-' * len(lines[0]))
  return '\n'.join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.serving',
      description=__doc__.split('\n\n')[0].strip(),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--model_dir', required=True,
                      help='a pm-train run on a table')
  parser.add_argument('--saved_model', default=None,
                      help='its pm-export SavedModel (version or base; '
                      'default: export the run to a temporary base)')
  parser.add_argument('--repeats', type=int, default=200,
                      help='timed calls per path and batch size')
  parser.add_argument('--warmup', type=int, default=10,
                      help='untimed calls first')
  parser.add_argument('--num_samples', type=int, default=10,
                      help="impute's S when exporting here (--saved_model: "
                      'the export\'s, from its pm_zoo_export.json)')
  parser.add_argument('--seed', type=int, default=0,
                      help="impute's seed when exporting here (--saved_model: "
                      "the export's)")
  parser.add_argument('--output', default=None, help='JSON results file')
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict]:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  # pylint: disable=g-import-not-at-top
  from pm_zoo.errors import UserError
  try:
    for value, flag in ((args.repeats, '--repeats'),
                        (args.num_samples, '--num_samples')):
      if value < 1:
        raise UserError(f'{flag}={value}: pass a positive number')
    if args.warmup < 0:
      raise UserError(f'--warmup={args.warmup}: pass 0 or more')
    results = run(args.model_dir, args.saved_model, args.repeats,
                  args.warmup, args.num_samples, args.seed)
  except UserError as e:
    common.exit_with_error(e)
  return common.report(results, format_table(results), args.output)


if __name__ == '__main__':
  main()
