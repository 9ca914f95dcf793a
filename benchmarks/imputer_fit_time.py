r"""Wall time of ``PosteriorMatchingImputer().fit`` at its defaults, beside
scikit-learn's imputers fitted on the same table.

  python -m benchmarks.imputer_fit_time --output=runs/fit_time.json

The table: ``--rows`` x ``--columns`` (default 10,000 x 20, the size of the
tables issue's goal) drawn from a 4-factor linear-Gaussian model
(x = z W + 0.3 eps, z ~ N(0, I_4), W ~ N(0, 1)), then ``--missing`` (20%) of
its cells removed completely at random: an incomplete table, as the imputer
fits it. Every method is fitted once on it, in this process, one after the
other: Posterior Matching with every constructor argument at its default
(``table.gin``: 10k steps of 512, 10% of the rows held out; ``--num_steps``
overrides the steps, for quick checks), KNNImputer
(nothing to fit but the data) and IterativeImputer with BayesianRidge
(scikit-learn's default estimator, max_iter=10). The ratios put the shared
machine's speed of the moment on both sides.
"""
import argparse
import sys
import time
from typing import Sequence

import numpy as np

from benchmarks import common
from pm_zoo.errors import UserError


def make_table(rows: int, columns: int, missing: float, seed: int):
  """A ``[rows, columns]`` factor-model table with NaN at the missing cells."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(rows, 4))
  x = z @ rng.normal(size=(4, columns)) + 0.3 * rng.normal(size=(rows, columns))
  x[rng.random(x.shape) < missing] = np.nan
  return x


def _methods(seed: int, num_steps=None):
  # pylint: disable=g-import-not-at-top
  from sklearn.experimental import enable_iterative_imputer  # pylint: disable=unused-import
  from sklearn.impute import IterativeImputer
  from sklearn.impute import KNNImputer
  from pm_zoo import PosteriorMatchingImputer
  return {
      'pm': lambda: PosteriorMatchingImputer(random_state=seed,
                                           num_steps=num_steps),
      'knn': lambda: KNNImputer(n_neighbors=5),
      'iterative-bayesridge': lambda: IterativeImputer(max_iter=10,
                                                       random_state=seed),
  }


def run(args: argparse.Namespace):
  if args.rows < 10 or args.columns < 2:
    raise UserError(f'--rows={args.rows} --columns={args.columns}: give at '
                    'least 10 rows and 2 columns')
  if not 0.0 <= args.missing < 1.0:
    raise UserError(f'--missing={args.missing}: give a fraction in [0, 1)')
  x = make_table(args.rows, args.columns, args.missing, args.seed)
  seconds = {}
  for name, make in _methods(args.seed, args.num_steps).items():
    start = time.perf_counter()
    make().fit(x)
    seconds[name] = time.perf_counter() - start
  pm = seconds['pm']
  result = {'rows': args.rows, 'columns': args.columns,
            'missing': args.missing, 'seed': args.seed,
            'pm_num_steps': args.num_steps or 'default',
            'fit_seconds': seconds,
            'ratio_to_pm': {k: v / pm for k, v in seconds.items()}}
  lines = [f'{args.rows} x {args.columns} table, {args.missing:.0%} of the '
           'cells missing (MCAR); one fit each, in this order',
           f"{'method':22s}  {'fit s':>8s}  {'/ pm':>7s}"]
  for name, value in seconds.items():
    lines.append(f'{name:22s}  {value:8.1f}  {value / pm:7.4f}')
  return result, '\n'.join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.imputer_fit_time', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--rows', type=int, default=10000)
  parser.add_argument('--columns', type=int, default=20)
  parser.add_argument('--missing', type=float, default=0.2,
                      help='fraction of cells removed at random')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_steps', type=int, default=None,
                      help="PM's training steps (default: the imputer's, "
                      'which is what the goal is about)')
  parser.add_argument('--output', default=None, help='JSON of the results')
  return parser.parse_args(argv)


def main(argv: Sequence[str]) -> None:
  args = parse_args(argv)
  try:
    result, table = run(args)
  except UserError as e:
    common.exit_with_error(e)
  common.report(result, table, args.output)


if __name__ == '__main__':
  main(sys.argv[1:])
