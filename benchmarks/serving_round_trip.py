r"""A round trip: fit on a table, export, impute the same cells on every path.

  python -m benchmarks.serving_round_trip --work_dir=runs/round_trip
  python -m benchmarks.serving_round_trip --work_dir=runs/round_trip \
      --table=my_table.csv --steps=3000 --output=runs/round_trip.json

Everything goes under ``--work_dir``:

  1. ``model/``: ``PosteriorMatchingImputer(gin_file=--gin_file,
     num_steps=--steps, random_state=--seed).fit(table)`` on the rows of
     ``--table`` (default: the shared ``winequality_white.csv``; complete
     rows). A model fitted there earlier is reused when its ``gin_file``,
     ``num_steps``, ``random_state`` and training rows are these; otherwise
     the script stops and says what differs.
  2. ``incomplete.csv``: the run's held-out rows (raw units; the split of
     ``validation_fraction`` 0.1, seeded by ``random_state``) with each cell
     blanked with probability ``--blank_fraction`` (NumPy's default_rng
     seeded with --seed), row 0 entirely and row 1 not at all. Observed
     values are written as the shortest text that reads back as the same
     float32, so every path starts from the same numbers.
  3. The missing cells imputed (``--num_samples`` imputations averaged,
     seed ``--seed``) on four paths:

       python transform             ``imputer.transform`` on the CSV read with
                                    ``pm_zoo.data.readers.read_table``
       pm-impute --model_dir        ``python -m pm_zoo.launch.impute`` (the
                                    ``pm-impute`` console script)
       pm-impute --saved_model      the same on ``export/<version>``, written
                                    by ``python -m pm_zoo.launch.export``
                                    (``pm-export``) with the same S and seed
       SavedModel, TF-only process  ``serving_default`` of that SavedModel in
                                    a process whose imports of pm_zoo,
                                    tensorflow_probability, tf_keras and gin
                                    fail (``pm_zoo.serving.tf_only``)

     Subprocesses run two at a time; their output goes to ``logs/``, and a
     non-zero exit status stops the script.
  4. The comparison: per path, max |imputed - python| over the missing cells
     (float32) and how many are equal; whether every path returns every
     observed cell unchanged. The NRMSE (``pm_zoo.metrics.nrmse``: per
     column RMSE over the blanked cells / the held-out column's std, averaged
     over columns) of the imputations and of the train split's column means.
  5. The REST bodies of ``pm_zoo.serving.rest.example_requests`` for held-out
     row 1 with column ``--rest_column`` missing (``impute``; ``sample`` with
     the same S and seed, so it must answer what ``impute`` does;
     ``conditional_log_prob`` at the row's true value, K = 512; ``encode``),
     written to ``rest_requests.json`` and answered in the TF-only process,
     decoded as TF Serving decodes them.

Output: the table and lines below on stdout, and ``--output`` (default
``<work_dir>/round_trip.json``, written atomically) with the same numbers.
The exit status is 1 when a path disagrees (after writing the JSON), 2 for
bad flags, 0 otherwise.
"""
import argparse
import csv
import io
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks import common

from benchmarks import tabular

DEFAULT_TABLE = os.path.join(tabular.SHARED_DATA, 'winequality_white.csv')
REST_LOG_PROB_SAMPLES = 512
SUBPROCESS_TIMEOUT = 1800
PYTHON = 'python transform'
MODEL_DIR = 'pm-impute --model_dir'
SAVED_MODEL = 'pm-impute --saved_model'
TF_ONLY = 'SavedModel, TF-only process'
PATHS = (PYTHON, MODEL_DIR, SAVED_MODEL, TF_ONLY)

# Argument files of the TF-only process, relative to its working directory.
TF_ONLY_BODY = r'''
saved_model = sys.argv[1]
loaded = tf.saved_model.load(saved_model)
x = np.load('tf_only_inputs.npy')
observed = np.isfinite(x)
out = loaded.signatures['serving_default'](
    x=tf.constant(np.where(observed, x, 0.0), tf.float32),
    mask=tf.constant(observed, tf.float32))
np.save('tf_only_imputed.npy', out['x'].numpy())
with open('rest_requests.json') as f:
  requests = json.load(f)
rest = {name: {k: v.tolist() for k, v in call_rest_body(loaded, body).items()}
        for name, body in requests.items()}
with open('tf_only.json', 'w') as f:
  json.dump({'signatures': sorted(loaded.signatures), 'rest': rest,
             'blocked_imports': blocked_imports(),
             'importable_blocked': importable_blocked()}, f)
'''


# ---------------------------------------------------------------- steps
def fitted_imputer(x: np.ndarray, model_dir: str, gin_file: str, steps: int,
                   seed: int, log=print):
  """(imputer, fit seconds or None if reused) for the rows ``x`` [N, D].

  Raises ``UserError`` if ``model_dir`` holds an imputer fitted with other
  settings or rows.
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo import PosteriorMatchingImputer
  from pm_zoo import run_dir
  from pm_zoo import sklearn_api
  from pm_zoo.errors import UserError
  settings = {'gin_file': gin_file, 'num_steps': steps, 'random_state': seed}
  stored = run_dir.read_json(os.path.join(model_dir,
                                          sklearn_api.ESTIMATOR_FILE))
  if stored is None:
    start = time.perf_counter()
    imputer = PosteriorMatchingImputer(model_dir=model_dir, verbose=True,
                                       **settings).fit(x)
    return imputer, time.perf_counter() - start
  differ = [f'{k}={stored.get(k)!r} (asked: {v!r})'
            for k, v in settings.items() if stored.get(k) != v]
  fit_rows = np.load(os.path.join(model_dir, sklearn_api.FIT_DATA))
  if fit_rows.shape != x.shape or not np.array_equal(fit_rows, x):
    differ.append(f'rows {list(fit_rows.shape)} (asked: a table of '
                  f'{list(x.shape)} or other values)')
  if differ:
    raise UserError(f'{model_dir} holds an imputer fitted with '
                    f'{", ".join(differ)}: pass the flags it was fitted with, '
                    'or a new --work_dir')
  imputer = PosteriorMatchingImputer.load(model_dir)
  log(f'reusing the imputer fitted in {model_dir} (step {imputer.step_})')
  return imputer, None


def blank_cells(rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """Bool [N, D], True = blanked: Bernoulli(fraction); row 0 all, row 1 none."""
  holes = np.random.default_rng(seed).random(rows.shape) < fraction
  holes[0], holes[1] = True, False
  return holes


def csv_text(rows: np.ndarray, holes: np.ndarray,
             names: Optional[Sequence[str]]) -> str:
  """Comma-separated rows, empty where ``holes``, the header if named."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo.serving import csv_io
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  if names:
    writer.writerow(names)
  for row, row_holes in zip(rows, holes):
    writer.writerow(['' if hole else csv_io.format_value(v)
                     for v, hole in zip(row, row_holes)])
  return out.getvalue()


def column_index(spec: str, names: Optional[Sequence[str]],
                 width: int) -> int:
  """--rest_column as a 0-based index: a header name or a number."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if names and spec in names:
    return list(names).index(spec)
  if spec.isdigit() and int(spec) < width:
    return int(spec)
  raise UserError(f'--rest_column={spec!r} is not a column of the table: give '
                  + (f'a name ({", ".join(names)}) or ' if names else '')
                  + f'a 0-based index below {width}')


class Subprocesses:
  """Commands started in ``cwd`` with their output in ``logs/<name>.log``."""

  def __init__(self, cwd: str, log=print):
    self.cwd = cwd
    self.log = log
    self.running = {}
    self.commands = {}
    self.seconds = {}
    os.makedirs(os.path.join(cwd, 'logs'), exist_ok=True)

  def start(self, name: str, argv: List[str], env: Dict[str, str]) -> None:
    with open(self._log_path(name), 'w') as out:
      proc = subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=out,
                              stderr=subprocess.STDOUT, text=True)
    self.running[name] = (proc, time.perf_counter())
    shown = ['python' if a == sys.executable else a for a in argv]
    self.commands[name] = ' '.join(shown)

  def wait(self, name: str) -> str:
    """Waits for ``name``; returns its output, raises if it failed."""
    proc, start = self.running.pop(name)
    try:
      code = proc.wait(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
      proc.kill()
      raise
    self.seconds[name] = time.perf_counter() - start
    with open(self._log_path(name)) as f:
      output = f.read()
    if code != 0:
      raise RuntimeError(f'{self.commands[name]} failed with exit status '
                         f'{code}; its output ({self._log_path(name)}) ends:\n'
                         + output[-3000:])
    self.log(f'{self.commands[name]}  ({self.seconds[name]:.1f} s)')
    return output

  def stop_all(self) -> None:
    for proc, _ in self.running.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()
    self.running.clear()

  def _log_path(self, name: str) -> str:
    return os.path.join(self.cwd, 'logs', name.replace(' ', '_') + '.log')


def launcher(name: str, *flags: str) -> List[str]:
  """argv of ``python -m pm_zoo.launch.<name>``: the ``pm-<name>`` script."""
  return [sys.executable, '-m', f'pm_zoo.launch.{name}', *flags]


def launcher_env() -> Dict[str, str]:
  """Environment of the pm_zoo launchers: this source tree importable."""
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (tabular.REPO, env.get('PYTHONPATH')) if p)
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  return env


def compare(paths: Dict[str, np.ndarray], given: np.ndarray,
            holes: np.ndarray) -> Tuple[Dict[str, Dict], bool]:
  """({path: {max_abs_diff, cells_equal}}, observed cells kept everywhere).

  Differences are taken in float32 (every path computes in float32) against
  the Python transform, over the blanked cells.
  """
  reference = paths[PYTHON][holes].astype(np.float32)
  table = {}
  for name, values in paths.items():
    diff = np.abs(values[holes].astype(np.float32) - reference)
    table[name] = {'max_abs_diff': float(np.max(diff)),
                   'cells_equal': int(np.sum(diff == 0))}
  kept = all(np.array_equal(values[~holes].astype(np.float32),
                            given[~holes].astype(np.float32))
             for values in paths.values())
  return table, kept


def format_table(table: Dict[str, Dict], cells: int) -> str:
  lines = [f'{"path":<30}{"max |diff| vs python":>22}{"cells equal":>14}']
  for name, row in table.items():
    equal = f'{row["cells_equal"]}/{cells}'
    lines.append(f'{name:<30}{row["max_abs_diff"]:>22.3g}{equal:>14}')
  return '\n'.join(lines)


def write_incomplete(path: str, rows: np.ndarray, holes: np.ndarray,
                     names: Optional[Sequence[str]]) -> np.ndarray:
  """Writes ``csv_text`` to ``path``; returns it read back (NaN = blank)."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import run_dir
  from pm_zoo.data import readers
  run_dir.write_text(path, csv_text(rows, holes, names))
  given, _ = readers.read_table(path)
  if not (np.array_equal(np.isnan(given), holes) and
          np.array_equal(given[~holes], rows[~holes])):
    raise RuntimeError(f'{path} does not read back as the rows and blanks '
                       'written')
  return given


def rest_requests(row: np.ndarray, column: int, num_samples: int, seed: int
                  ) -> Dict[str, Dict]:
  """Every core signature's REST body for ``row`` [D] without ``column``.

  The float32 values are sent as written in the CSV (``format_value``: the
  shortest decimals that are the same float32, 6.6 rather than
  6.599999904632568); TF Serving decodes them to the same float32.
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo.serving import csv_io
  from pm_zoo.serving import rest
  values = np.array([float(csv_io.format_value(v)) for v in row])
  mask = np.ones_like(values)
  mask[column] = 0.0
  return rest.example_requests(values[None], mask[None],
                               num_samples=num_samples, seed=seed,
                               log_prob_samples=REST_LOG_PROB_SAMPLES)


def requests_text(requests: Dict[str, Dict]) -> str:
  """The bodies as a JSON object, each body on one line as a client sends it."""
  from pm_zoo.serving import rest  # pylint: disable=g-import-not-at-top
  return ('{\n' + ',\n'.join(f'"{k}": {rest.dumps(v)}'
                             for k, v in requests.items()) + '\n}\n')


def impute_on_every_path(imputer, model_dir: str, work: str, incomplete: str,
                         given: np.ndarray, rest_row: np.ndarray,
                         args: argparse.Namespace, log=print) -> Dict:
  """Step 3: the four paths' imputations of ``given`` and the REST answers.

  Returns ``{"paths": {path: [N, D]}, "rest_python": transform of the REST
  row [D], "tf_only": what the TF-only process wrote, "commands",
  "seconds", "export": the version directory}``.
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo import run_dir
  from pm_zoo.data import readers
  from pm_zoo.serving import loading
  from pm_zoo.serving import tf_only
  np.save(os.path.join(work, 'tf_only_inputs.npy'), given)
  run_dir.write_text(os.path.join(work, 'tf_only.py'),
                     tf_only.script(TF_ONLY_BODY))
  export_base = os.path.join(work, 'export')
  before = set(loading.versions(export_base))
  impute_flags = [f'--input={incomplete}', f'--num_samples={args.num_samples}',
                  f'--seed={args.seed}', '--overwrite']
  procs = Subprocesses(work, log)
  try:
    procs.start(MODEL_DIR, launcher(
        'impute', f'--model_dir={model_dir}',
        f'--output={work}/cli_model_dir.csv', *impute_flags), launcher_env())
    procs.start('pm-export', launcher(
        'export', f'--model_dir={model_dir}', f'--export_base={export_base}',
        f'--num_samples={args.num_samples}', f'--seed={args.seed}'),
                launcher_env())
    python = imputer.transform(given)
    rest_python = imputer.transform(rest_row[None])[0]
    procs.wait('pm-export')
    new = sorted(set(loading.versions(export_base)) - before)
    if len(new) != 1:
      raise RuntimeError(f'pm-export added versions {new} to {export_base}; '
                         'expected one')
    version = loading.versions(export_base)[new[0]]
    procs.start(SAVED_MODEL, launcher(
        'impute', f'--saved_model={version}',
        f'--output={work}/cli_saved_model.csv', *impute_flags),
                launcher_env())
    procs.start(TF_ONLY, [sys.executable, os.path.join(work, 'tf_only.py'),
                          version], tf_only.environment())
    for name in (MODEL_DIR, SAVED_MODEL, TF_ONLY):
      procs.wait(name)
  finally:
    procs.stop_all()
  return {
      'paths': {
          PYTHON: python,
          MODEL_DIR: readers.read_table(f'{work}/cli_model_dir.csv')[0],
          SAVED_MODEL: readers.read_table(f'{work}/cli_saved_model.csv')[0],
          TF_ONLY: np.load(os.path.join(work, 'tf_only_imputed.npy')),
      },
      'rest_python': rest_python,
      'tf_only': run_dir.read_json(os.path.join(work, 'tf_only.json')),
      'commands': procs.commands,
      'seconds': {k: round(v, 2) for k, v in procs.seconds.items()},
      'export': version,
  }


def nrmse_scores(model_dir: str, truth: np.ndarray, imputed: np.ndarray,
                 holes: np.ndarray) -> Dict[str, float]:
  """NRMSE over ``holes`` of ``imputed`` and of the train column means."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import metrics
  from pm_zoo import run_dir
  from pm_zoo.data import Standardizer
  observed = (~holes).astype(np.float32)
  means = Standardizer.load(os.path.join(model_dir, run_dir.STANDARDIZER)).mean
  return {
      'posterior_matching': metrics.nrmse(truth, imputed, observed),
      'column_means': metrics.nrmse(
          truth, np.broadcast_to(means, truth.shape), observed),
  }


def rest_summary(answers: Dict[str, Dict], row: np.ndarray, column: int,
                 name: str, python: np.ndarray) -> Dict:
  """The REST answers at the missing ``column``, with the Python transform."""
  from pm_zoo.serving import csv_io  # pylint: disable=g-import-not-at-top

  def at(key):  # the imputed column of the REST row in an answer
    return float(np.asarray(answers[key]['x'])[0, column])

  return {
      'row': 1, 'column': column, 'column_name': name,
      'true_value': float(csv_io.format_value(row[column])),
      'impute': at('impute'), 'python_transform': float(python[column]),
      'sample': at('sample'),
      'conditional_log_prob': float(
          answers['conditional_log_prob']['log_prob'][0]),
      'encode_shapes': {k: list(np.shape(v))
                        for k, v in answers['encode'].items()},
  }


def format_rest(rest: Dict, path: str, num_samples: int, seed: int) -> str:
  name = rest['column_name']
  return '\n'.join([
      f'REST bodies ({path}: held-out row 1, {name} missing; true '
      f'{rest["true_value"]:.6g}) answered in the TF-only process:',
      f'  impute: {name} {rest["impute"]:.4f} (python transform '
      f'{rest["python_transform"]:.4f})',
      f'  sample (num_samples={num_samples}, seed={seed}): {name} '
      f'{rest["sample"]:.4f}',
      f'  conditional_log_prob (K={REST_LOG_PROB_SAMPLES}): log p({name} = '
      f'{rest["true_value"]:.6g} | the rest) = '
      f'{rest["conditional_log_prob"]:.4f}',
      '  encode: ' + ', '.join(f'{k} {v}' for k, v in
                               sorted(rest['encode_shapes'].items()))])


# ---------------------------------------------------------------- main
def run(args: argparse.Namespace, log=print) -> Dict:
  """Steps 1-5 of the module doc; returns the JSON's dict."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from pm_zoo import experiment
  from pm_zoo import run_dir
  from pm_zoo.data import load_dataset
  from pm_zoo.data import readers
  from pm_zoo.errors import UserError
  work = os.path.abspath(args.work_dir)
  model_dir = os.path.join(work, 'model')
  x, names = readers.read_table(args.table)
  rest_column = column_index(args.rest_column, names, x.shape[1])
  os.makedirs(work, exist_ok=True)

  # 1. Fit (or reuse).
  imputer, fit_seconds = fitted_imputer(x, model_dir, args.gin_file,
                                        args.steps, args.seed, log)
  imputer.set_params(num_samples=args.num_samples)
  held_out = load_dataset(**experiment.data_options(model_dir)).test
  if len(held_out) < 2:
    raise UserError(f'{model_dir} holds out {len(held_out)} row(s); the round '
                    'trip needs 2 or more: pass a --table with more rows')
  if fit_seconds is not None:
    log(f'fit {args.gin_file}, {args.steps} steps, on {len(x)} rows of '
        f'{args.table} ({len(x) - len(held_out)} train, {len(held_out)} held '
        f'out) in {fit_seconds:.0f} s -> {model_dir}')

  # 2. The held-out rows with blanks, as a CSV; the REST bodies.
  holes = blank_cells(held_out, args.blank_fraction, args.seed)
  incomplete = os.path.join(work, 'incomplete.csv')
  given = write_incomplete(incomplete, held_out, holes, names)
  cells, rows = int(holes.sum()), int(holes.any(axis=1).sum())
  log(f'{incomplete}: {len(held_out)} held-out rows, {cells} cells blanked in '
      f'{rows} rows')
  row = held_out[1]
  requests_path = os.path.join(work, 'rest_requests.json')
  requests = rest_requests(row, rest_column, args.num_samples, args.seed)
  run_dir.write_text(requests_path, requests_text(requests))

  # 3. Four paths.
  rest_row = row.copy()
  rest_row[rest_column] = np.nan
  result = impute_on_every_path(imputer, model_dir, work, incomplete, given,
                                rest_row, args, log)
  answered = result['tf_only']

  # 4. Agreement and accuracy.
  table, kept = compare(result['paths'], given, holes)
  nrmse = nrmse_scores(model_dir, held_out, result['paths'][PYTHON], holes)
  log(f'{cells} imputed cells in {rows} of {len(held_out)} rows '
      f'(num_samples={args.num_samples}, seed={args.seed})')
  log(format_table(table, cells))
  log(f'observed cells identical on every path: {kept}')
  log(f'TF-only process: blocked packages imported '
      f'{answered["blocked_imports"]}, still importable '
      f'{answered["importable_blocked"]}')
  log(f'NRMSE on the blanked cells: posterior matching '
      f'{nrmse["posterior_matching"]:.4f}, train column means '
      f'{nrmse["column_means"]:.4f}')

  # 5. The REST bodies' answers.
  name = names[rest_column] if names else f'column {rest_column}'
  rest = rest_summary(answered['rest'], row, rest_column, name,
                      result['rest_python'])
  log(format_rest(rest, requests_path, args.num_samples, args.seed))

  agree = (all(r['cells_equal'] == cells for r in table.values()) and kept
           and answered['blocked_imports'] == []
           and answered['importable_blocked'] == []
           and rest['impute'] == rest['python_transform'] == rest['sample'])
  return {
      'settings': {
          'table': os.path.abspath(args.table), 'work_dir': work,
          'gin_file': args.gin_file, 'steps': args.steps,
          'num_samples': args.num_samples, 'seed': args.seed,
          'blank_fraction': args.blank_fraction,
          'rest_column': args.rest_column, 'tensorflow': tf.__version__},
      'fit': {'model_dir': model_dir, 'step': imputer.step_,
              'rows': len(x), 'held_out_rows': len(held_out),
              'seconds': fit_seconds},
      'imputed_cells': cells, 'rows_with_imputed_cells': rows,
      'paths': table, 'observed_identical': kept,
      'tf_only': {k: answered[k] for k in (
          'blocked_imports', 'importable_blocked', 'signatures')},
      'nrmse': nrmse, 'rest': rest,
      'commands': result['commands'], 'seconds': result['seconds'],
      'export': result['export'], 'agree': agree,
  }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.serving_round_trip',
      description=__doc__.split('\n\n')[0].strip(),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--table', default=DEFAULT_TABLE,
                      help='the table to fit on (.csv, .csv.gz, .npy; '
                      f'default {DEFAULT_TABLE})')
  parser.add_argument('--work_dir', required=True,
                      help='where the model, the CSVs, the export and the '
                      'logs go (a fitted model there is reused)')
  parser.add_argument('--gin_file', default='table.gin',
                      help='gin experiment of the fit')
  parser.add_argument('--steps', type=int, default=3000,
                      help='training steps of the fit')
  parser.add_argument('--num_samples', type=int, default=10,
                      help='imputations averaged per cell on every path')
  parser.add_argument('--seed', type=int, default=0,
                      help='seed of the fit, the split, the blanks and the '
                      'imputations')
  parser.add_argument('--blank_fraction', type=float, default=0.3,
                      help='probability that a held-out cell is blanked')
  parser.add_argument('--rest_column', default='pH',
                      help='the column missing in the REST example row (a '
                      'header name or a 0-based index)')
  parser.add_argument('--output', default=None,
                      help='JSON results (default <work_dir>/round_trip.json)')
  return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(args.table):
    raise UserError(f'--table={args.table} does not exist: pass --table=PATH '
                    'of a table of complete rows')
  for value, flag in ((args.steps, '--steps'),
                      (args.num_samples, '--num_samples')):
    if value < 1:
      raise UserError(f'{flag}={value}: pass a positive number')
  if not 0.0 < args.blank_fraction < 1.0:
    raise UserError(f'--blank_fraction={args.blank_fraction}: give a '
                    'fraction in (0, 1)')
  if args.seed < 0:
    raise UserError(f'--seed={args.seed}: pass 0 or more')


def main(argv: Optional[Sequence[str]] = None) -> Dict:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  # pylint: disable=g-import-not-at-top
  from pm_zoo import run_dir
  from pm_zoo.errors import UserError
  try:
    check_args(args)
    results = run(args)
  except UserError as e:
    common.exit_with_error(e)
  output = args.output or os.path.join(results['settings']['work_dir'],
                                       'round_trip.json')
  run_dir.write_json(output, results)
  print(f'results written to {output}')
  if not results['agree']:
    print('the paths disagree (see above)', file=sys.stderr)
    sys.exit(1)
  return results


if __name__ == '__main__':
  main()
