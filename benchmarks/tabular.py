r"""Posterior Matching against common imputers, on identical test masks.

  python -m benchmarks.tabular --model_dir=runs/miniboone \
      --output=runs/miniboone_benchmark.json
  python -m benchmarks.tabular --steps=3000 --work_dir=runs/bench \
      --output=runs/bench/tabular.json           # trains PM itself

Two modes, combinable. ``--model_dir`` scores existing pm-train runs.
``--table`` (or neither flag: the shared tables) TRAINS Posterior Matching
here, one run per partial-posterior head (``--heads``) per table, then scores
every run as below; the baselines are scored once per table (on the first
head's run: every run of a table has the same train/test split,
standardiser, masks and seeds). A table is ``[NAME=]TRAIN[,TEST]``
(.csv, .csv.gz or .npy); without TEST the table is split 80/20 with the fixed
seed of ``dataset.split_seed`` (gin, default 0). The default tables are
``<repo>/../shared/data``'s ``winequality_white.csv`` (all 12 columns,
``quality`` included: it is a feature to impute like the others),
``parkinsons.csv.gz`` (all 21 columns, the target included) and MINIBOONE
(``miniboone=miniboone_val.npy,miniboone_test.npy``: trains on the MAF
validation split, tests on the MAF test split). Each run is
``configs.parse([--gin_file], --gin_bindings + [TrainConfig.num_steps=
--steps, PartialEncoder.head=@partial/<Head>, CyclicalKL.cycle_steps=
--steps // 2])`` then ``experiment.train`` into ``--work_dir/<table>/<head>``
(an existing finished run there is reused, not retrained).

For every ``--model_dir`` (a ``pm-train`` run on a table) this restores the
model, loads the run's data standardised with the run's train statistics
(exactly what ``pm-eval`` sees), and scores every method by the paper's NRMSE
on the same test rows and the same masks: trial ``t`` uses
``make_eval_masks(EvalConfig.mask_for('table'), ..., seed=EvalConfig.seed + t)``
as ``evaluate_imputation`` does, so the ``pm-*`` row equals ``pm-eval``'s
``nrmse`` when the trial counts agree. Every mask is drawn once per trial and
handed to all methods; each row of the JSON records a hash of the masks it
was scored on (``masks_sha256``), so that can be checked.

Methods (``--methods``, comma separated; default all):

  pm                    the run's model: mean of ``EvalConfig.num_imputations``
                        imputations from q(z|x_o), seeded as in pm-eval. Named
                        ``pm-<head>`` after the partial encoder's head class,
                        e.g. ``pm-full-covariance-gaussian``.
  mean                  train-split column means.
  knn                   sklearn KNNImputer(n_neighbors=5), neighbours from the
                        train split (nan-Euclidean distance on the observed
                        features).
  iterative-bayesridge  chained regressions (IterativeImputer with
                        BayesianRidge), 10 rounds.
  iterative-extratrees  the same with ExtraTreesRegressor(n_estimators=50,
                        max_features=1.0, min_samples_leaf=1,
                        random_state=0, n_jobs=--n_jobs): a missForest-like
                        imputer at half missForest's 100 trees, affordable on
                        2 CPU cores (MINIBOONE, 3284 x 43 train, 3648 test
                        rows, on a shared machine: 44 s to fit, 15 s per
                        trial to impute).

Baselines are fitted on the run's fully observed train split (the data the
model trained on) and impute the test rows with NaN at the unobserved entries.
On complete training data every chained regression sees complete inputs, so
sklearn's IterativeImputer stops fitting after one round (nothing changes) and
its ``transform`` then makes a single pass over the features from the mean
fill. Later rounds would refit identical models, so we fit one regressor per
feature once and impute the test rows with ``ITERATIVE_ROUNDS`` passes
(Gauss-Seidel over features, starting from the train means; the first pass
is ``IterativeImputer.transform``): the usual ``max_iter=10``. It matters:
on MINIBOONE BayesianRidge scores NRMSE 0.764 after sklearn's single pass,
0.587 after 10 and 0.580 after 30.

Incomplete training data and mixed tables (issue 14). ``--train_missing=R``
removes each cell of the TRAIN split completely at random with probability
R (seeded by ``--missing_seed``; rows left empty are dropped) before
anything is fitted: Posterior Matching trains on the incomplete rows (its
observed-data mask, ``pm_zoo.matching``) and every baseline fits on the same
incomplete rows. The test rows, masks and scoring do not change. A table
with categorical columns (a CSV with text columns, or the package tables
``--table=penguins`` (palmerpenguins) and ``--table=cars`` (vega_datasets,
``Name`` dropped, ``Year`` as a number)) is scored by NRMSE on its numeric
columns and PFC (proportion of falsely classified cells) on its
categorical ones; test rows with real missing cells are scored only where
the truth is known. On such runs (incomplete train or categorical columns)
the baselines are the general versions, which fit on incomplete rows:

  mean                  observed-cell column means; the mode for a
                        categorical column.
  knn                   KNNImputer(n_neighbors=5) on the standardised
                        numeric columns and one-hot categorical blocks
                        (NaN where missing); a categorical cell gets the
                        block's argmax.
  iterative-bayesridge  scikit-learn's IterativeImputer(BayesianRidge,
                        max_iter=10) as it is, fitted on the incomplete
                        train split, over the numeric columns and one-hot
                        categorical blocks (argmax back).
  iterative-extratrees  missForest's recipe on a train/test split: chained
                        equations, per column ExtraTreesRegressor (a
                        categorical column: ExtraTreesClassifier, same
                        settings) on the other columns (one-hot
                        categorical), from the mean/mode fill,
                        ``FIT_ROUNDS`` rounds over the train split's missing
                        cells, then ``ITERATIVE_ROUNDS`` passes over the
                        test rows with the last models.

Cross-validation (``--folds=K``, ``benchmarks/folds.py``): a table given as
one file is cut into K folds by a seeded permutation (``--fold_seed``); the
whole benchmark runs once per fold (fold k tests, the rest trains) and each
method's K x trials scores are pooled, so every row is a test row once: on
a small table (cars, 406 rows) one 80/20 split scores too few cells to rank
imputers whose PFC differs by a few cells.

On a numeric table with complete training rows these are exactly the
methods above, so the old numbers stand. miceforest and HyperImpute are not
among the baselines: see docs/tables.md for why.

The ``pm-*`` rows also carry ``ll_mean``: the mean over trials of the mean
over test rows of log p(x_u | x_o), importance sampling with ``--ll_samples``
samples (default: the run's ``EvalConfig.log_likelihood_samples``, 512; 0
skips it), seeded and masked as in ``evaluate_imputation`` and in the data's
own units (log p(z_u | z_o) - sum over unobserved i of log s_i, s the run's
standardiser scale): pm-eval's ``log_likelihood`` when K agrees. Baselines
are point imputers: their ``ll_mean`` is null.

Times: ``fit_seconds`` is one fit on the train split (for pm: the training
time recorded in the run's training.json, null if absent); ``impute_seconds`` is the mean
over trials of imputing the whole test set once (pm's first trial includes
tracing its tf.function).

Output (``--output``, written atomically), one entry per table:

  {"<table>": {"<method>": {"nrmse_mean", "nrmse_std", "pfc_mean",
                            "pfc_std", "train_missing", "ll_mean",
                            "fit_seconds", "impute_seconds", "nrmse_trials",
                            "trials", "test_rows", "train_rows",
                            "masks_sha256", "settings", "ll_trials",
                            "ll_samples", "model_dir"}}}

Each baseline row also has ``paired_with_pm`` (``paired_with_pm``: its
per-trial differences to the first pm row on the same masks, printed under
the table). With ``--folds`` each row also has ``folds`` (the per-fold rows)
and no ``model_dir`` (each fold's row has its own).

For ``--model_dir`` the table is the run's dataset name unless ``--name`` is
given (repeat it once per ``--model_dir``, in the same order); for
``--table`` it is NAME, else the train file's name without its suffix.
"""
import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from benchmarks import common
from benchmarks import folds as folds_lib

DEFAULT_METHODS = ('pm', 'mean', 'knn', 'iterative-bayesridge',
                   'iterative-extratrees')
# Opt-in (``--methods=...,miceforest``): needs the ``bench`` extra.
METHODS = DEFAULT_METHODS + ('miceforest',)
MICE_ITERATIONS = 5
KNN_NEIGHBORS = 5
ITERATIVE_ROUNDS = 10
EXTRA_TREES = dict(n_estimators=50, max_features=1.0, min_samples_leaf=1,
                   random_state=0)
# The partial-posterior heads q(z | x_o) of pm_zoo.distributions.
HEADS = ('DiagonalGaussian', 'FullCovarianceGaussian', 'GaussianMixture',
         'AutoregressiveGaussianMixture', 'MaskedAutoregressiveFlow',
         'InverseAutoregressiveFlow')
# Chained-equation rounds over an incomplete train split (missForest stops
# when the fill stops changing, typically after 4-6 rounds).
FIT_ROUNDS = 5
DEFAULT_STEPS = 3000
DEFAULT_GIN_FILE = 'table.gin'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), 'shared', 'data')
# (name, train file, test file or None) in SHARED_DATA.
DEFAULT_TABLES = (('winequality_white', 'winequality_white.csv', None),
                  ('parkinsons', 'parkinsons.csv.gz', None),
                  ('miniboone', 'miniboone_val.npy', 'miniboone_test.npy'))


def _penguins():
  import palmerpenguins  # pylint: disable=g-import-not-at-top
  return palmerpenguins.load_penguins()


def _cars():
  from vega_datasets import data  # pylint: disable=g-import-not-at-top
  frame = data.cars().drop(columns=['Name'])
  frame['Year'] = frame['Year'].dt.year
  return frame


# Tables shipped by packages: name -> DataFrame loader.
PACKAGE_TABLES = {'penguins': _penguins, 'cars': _cars}


def kebab(name: str) -> str:
  """``FullCovarianceGaussian`` -> ``full-covariance-gaussian``."""
  name = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1-\2', name)
  return re.sub(r'([a-z0-9])([A-Z])', r'\1-\2', name).lower()


def pm_method_name(model) -> str:
  return 'pm-' + kebab(type(model.partial_encoder.head).__name__)


def trial_masks(config, feature_shape, num_rows: int,
                trials: int) -> List[np.ndarray]:
  """The test masks of every trial: those of ``evaluate_imputation``."""
  from pm_zoo import masks as masks_lib  # pylint: disable=g-import-not-at-top
  dist = config.mask_for('table')
  return [masks_lib.make_eval_masks(dist, list(feature_shape), num_rows,
                                    seed=config.seed + t)
          for t in range(trials)]


def masks_digest(masks: Sequence[np.ndarray]) -> str:
  digest = hashlib.sha256()
  for mask in masks:
    digest.update(np.ascontiguousarray(mask, np.float32).tobytes())
  return digest.hexdigest()


class _Method:
  """A named imputer: ``fit(train)`` (optional), ``impute(x, mask, trial)``."""

  fits = True
  settings = ''

  def fit(self, train: np.ndarray) -> None:
    raise NotImplementedError

  def impute(self, x: np.ndarray, mask: np.ndarray, trial: int) -> np.ndarray:
    raise NotImplementedError


class PosteriorMatching(_Method):
  """The run's model, imputing exactly as ``evaluate_imputation``."""

  fits = False

  def __init__(self, model, config):
    from pm_zoo.tasks.imputation import Imputer  # pylint: disable=g-import-not-at-top
    self.config = config
    self.imputer = Imputer(model, config.batch_size)
    self.settings = (f'mean of {config.num_imputations} imputations, '
                     f'batch {config.batch_size}')

  def impute(self, x, mask, trial):
    return self.imputer.mean(x, mask, self.config.num_imputations,
                             seed=self.config.seed + 1000 * (trial + 1))


class ColumnMean(_Method):
  settings = 'train-split column means'

  def fit(self, train):
    self.means = train.mean(axis=0)

  def impute(self, x, mask, trial):
    return np.where(mask > 0, x, self.means)


def _with_nan(x, mask):
  return np.where(mask > 0, x, np.nan)


class KNN(_Method):

  def __init__(self):
    from sklearn.impute import KNNImputer  # pylint: disable=g-import-not-at-top
    self.imputer = KNNImputer(n_neighbors=KNN_NEIGHBORS)
    self.settings = f'KNNImputer(n_neighbors={KNN_NEIGHBORS})'

  def fit(self, train):
    self.imputer.fit(train)

  def impute(self, x, mask, trial):
    return np.where(mask > 0, x, self.imputer.transform(_with_nan(x, mask)))


class ChainedRegressions(_Method):
  """IterativeImputer's regressions, fitted once, applied for several rounds.

  See the module docstring: on complete training rows one fit round holds
  every model there is; the test rows get ``rounds`` imputation passes.
  """

  def __init__(self, estimator, rounds: int = ITERATIVE_ROUNDS):
    from sklearn.experimental import enable_iterative_imputer  # pylint: disable=g-import-not-at-top,unused-import
    from sklearn.impute import IterativeImputer  # pylint: disable=g-import-not-at-top
    self.imputer = IterativeImputer(estimator=estimator, max_iter=1,
                                    initial_strategy='mean', random_state=0)
    self.rounds = int(rounds)
    self.settings = (f'IterativeImputer({estimator!r}), fitted once on the '
                     f'train split, {self.rounds} rounds on the test rows')

  def fit(self, train):
    self.imputer.fit(train)

  def impute(self, x, mask, trial):
    missing = ~(mask > 0)
    filled = self.imputer.transform(np.where(missing, np.nan, x))  # round 1
    for _ in range(self.rounds - 1):
      for step in self.imputer.imputation_sequence_:
        rows = missing[:, step.feat_idx]
        if rows.any():
          filled[rows, step.feat_idx] = step.estimator.predict(
              filled[rows][:, step.neighbor_feat_idx])
    return np.where(missing, filled, x)


class _Mixed(_Method):
  """Baselines for incomplete / mixed tables: know the categorical columns.

  Args:
    cardinalities: K per column, 0 = numeric.
  """

  def __init__(self, cardinalities):
    self.cards = tuple(int(k) for k in cardinalities)
    self.categorical = [j for j, k in enumerate(self.cards) if k]

  def initial(self, train):
    """Per column: the observed mean, or the mode of a categorical one."""
    fill = np.nanmean(train, axis=0)
    for j in self.categorical:
      codes = train[~np.isnan(train[:, j]), j].astype(int)
      fill[j] = np.bincount(codes, minlength=self.cards[j]).argmax()
    return fill

  def one_hot(self, x, columns=None):
    """x [N, D] -> numeric columns and one-hot blocks (NaN stays NaN)."""
    parts = []
    for j in (range(x.shape[1]) if columns is None else columns):
      if self.cards[j]:
        block = (x[:, j:j + 1] == np.arange(self.cards[j])).astype(float)
        block[np.isnan(x[:, j])] = np.nan
        parts.append(block)
      else:
        parts.append(x[:, j:j + 1])
    return np.concatenate(parts, axis=1)


class MixedMean(_Mixed):
  settings = 'observed-cell means; modes for categorical columns'

  def fit(self, train):
    self.fill = self.initial(train)

  def impute(self, x, mask, trial):
    return np.where(mask > 0, x, self.fill)


class _OneHotImputer(_Mixed):
  """A scikit-learn imputer (``self.imputer``) over the numeric columns and
  one-hot categorical blocks; a categorical cell gets its block's argmax."""

  def fit(self, train):
    self.imputer.fit(self.one_hot(train))

  def impute(self, x, mask, trial):
    filled = self.imputer.transform(self.one_hot(_with_nan(x, mask)))
    out, start = np.empty_like(x), 0
    for j, k in enumerate(self.cards):
      if k:
        out[:, j] = filled[:, start:start + k].argmax(axis=1)
      else:
        out[:, j] = filled[:, start]
      start += max(k, 1)
    return np.where(mask > 0, x, out)


class MixedKNN(_OneHotImputer):

  def __init__(self, cardinalities):
    super().__init__(cardinalities)
    from sklearn.impute import KNNImputer  # pylint: disable=g-import-not-at-top
    self.imputer = KNNImputer(n_neighbors=KNN_NEIGHBORS)
    self.settings = (f'KNNImputer(n_neighbors={KNN_NEIGHBORS}) on numeric '
                     'columns + one-hot categorical blocks')


class ChainedEquations(_Mixed):
  """Chained equations that fit on incomplete rows (see the module doc).

  Args:
    cardinalities: K per column.
    regressor, classifier: estimator factories for numeric / categorical
      columns.
    name: for ``settings``.
  """

  def __init__(self, cardinalities, regressor, classifier, name: str,
               fit_rounds: int = FIT_ROUNDS,
               rounds: int = ITERATIVE_ROUNDS):
    super().__init__(cardinalities)
    self.regressor, self.classifier = regressor, classifier
    self.fit_rounds, self.rounds = int(fit_rounds), int(rounds)
    self.settings = (f'chained {name}, {self.fit_rounds} rounds on the '
                     f'incomplete train split, {self.rounds} on the test rows')

  def _design(self, fill, j):
    others = [i for i in range(fill.shape[1]) if i != j]
    return self.one_hot(fill, others)

  def _sweep(self, fill, missing, fit_rows=None):
    """One pass over the columns; with fit_rows (bool [N, D] observed),
    refits each column's model first."""
    for j in range(fill.shape[1]):
      if fit_rows is not None:
        rows = fit_rows[:, j]
        model = (self.classifier() if self.cards[j] else self.regressor())
        target = fill[rows, j]
        if self.cards[j]:
          target = target.astype(int)
          if len(np.unique(target)) < 2:  # A classifier needs two classes.
            self.models[j] = ('constant', float(target[0]))
            continue
        model.fit(self._design(fill[rows], j), target)
        self.models[j] = ('model', model)
      todo = missing[:, j]
      if not todo.any():
        continue
      kind, model = self.models[j]
      fill[todo, j] = (model if kind == 'constant' else
                       model.predict(self._design(fill[todo], j)))

  def fit(self, train):
    self.start = self.initial(train)
    missing = np.isnan(train)
    fill = np.where(missing, self.start, train)
    self.models = [None] * train.shape[1]
    rounds = self.fit_rounds if missing.any() else 1
    for _ in range(rounds):
      self._sweep(fill, missing, fit_rows=~missing)

  def impute(self, x, mask, trial):
    missing = ~(mask > 0)
    fill = np.where(missing, self.start, x)
    for _ in range(self.rounds):
      self._sweep(fill, missing)
    return np.where(missing, fill, x)


class MiceForest(_Mixed):
  """miceforest (LightGBM chained equations with mean matching).

  Fitted on the (incomplete) train split with every column in its
  variable schema, so that any column can be imputed at test time;
  categorical columns as pandas categories.
  """

  def __init__(self, cardinalities, n_jobs: int):
    super().__init__(cardinalities)
    self.n_jobs = n_jobs
    self.settings = (f'miceforest ImputationKernel, {MICE_ITERATIONS} '
                     'iterations, 1 dataset, mean_match_candidates=0 (the '
                     'LightGBM prediction itself: a point imputation, as '
                     'NRMSE/PFC want; mean matching draws candidates)')

  def _frame(self, x):
    import pandas as pd  # pylint: disable=g-import-not-at-top
    data = {}
    for j, k in enumerate(self.cards):
      data[f'c{j}'] = (pd.Categorical(x[:, j], categories=np.arange(k,
                                                                   dtype=float))
                       if k else x[:, j])
    return pd.DataFrame(data)

  def fit(self, train):
    from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
    try:
      import miceforest  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise UserError(f'--methods=miceforest needs miceforest ({e}): pip '
                      'install pm_zoo[bench]') from None
    frame = self._frame(train)
    columns = list(frame.columns)
    self.kernel = miceforest.ImputationKernel(
        frame, num_datasets=1, random_state=0, mean_match_candidates=0,
        variable_schema={c: [o for o in columns if o != c] for c in columns})
    self.kernel.mice(MICE_ITERATIONS, num_threads=self.n_jobs)

  def impute(self, x, mask, trial):
    # complete_data's default iteration (-1) gives new data's INITIAL
    # random fill in miceforest 6.0.5; name the last iteration instead.
    completed = self.kernel.impute_new_data(
        self._frame(_with_nan(x, mask)), random_state=trial).complete_data(
            0, iteration=MICE_ITERATIONS)
    out = np.column_stack([np.asarray(completed[c], np.float64)
                           for c in completed.columns])
    return np.where(mask > 0, x, out)


class OneHotIterative(_OneHotImputer):
  """scikit-learn's IterativeImputer(BayesianRidge) as it is, fitted on the
  incomplete train split, over numeric columns and one-hot categorical
  blocks (a categorical cell gets its block's argmax)."""

  def __init__(self, cardinalities):
    super().__init__(cardinalities)
    from sklearn.experimental import enable_iterative_imputer  # pylint: disable=g-import-not-at-top,unused-import
    from sklearn.impute import IterativeImputer  # pylint: disable=g-import-not-at-top
    from sklearn.linear_model import BayesianRidge  # pylint: disable=g-import-not-at-top
    self.imputer = IterativeImputer(estimator=BayesianRidge(),
                                    max_iter=ITERATIVE_ROUNDS,
                                    initial_strategy='mean', random_state=0)
    self.settings = (f'IterativeImputer(BayesianRidge(), max_iter='
                     f'{ITERATIVE_ROUNDS}) on numeric columns + one-hot '
                     'categorical blocks, fitted on the incomplete train '
                     'split')


def make_mixed_method(method: str, model, config, n_jobs: int,
                      cardinalities) -> _Method:
  """The general version of ``method`` (incomplete or mixed tables)."""
  if method == 'miceforest':
    return MiceForest(cardinalities, n_jobs)
  if method == 'pm':
    return PosteriorMatching(model, config)
  if method == 'mean':
    return MixedMean(cardinalities)
  if method == 'knn':
    return MixedKNN(cardinalities)
  # pylint: disable=g-import-not-at-top
  from sklearn.ensemble import ExtraTreesClassifier
  from sklearn.ensemble import ExtraTreesRegressor
  from sklearn.linear_model import BayesianRidge
  if method == 'iterative-bayesridge':
    return OneHotIterative(cardinalities)
  if method == 'iterative-extratrees':
    return ChainedEquations(
        cardinalities,
        lambda: ExtraTreesRegressor(n_jobs=n_jobs, **EXTRA_TREES),
        lambda: ExtraTreesClassifier(n_jobs=n_jobs, **EXTRA_TREES),
        f'ExtraTrees{EXTRA_TREES} regressor / classifier')
  raise ValueError(method)


def make_method(method: str, model, config, n_jobs: int) -> _Method:
  """The imputer called ``method`` (one of METHODS)."""
  if method == 'pm':
    return PosteriorMatching(model, config)
  if method == 'mean':
    return ColumnMean()
  if method == 'knn':
    return KNN()
  # pylint: disable=g-import-not-at-top
  from sklearn.ensemble import ExtraTreesRegressor
  from sklearn.linear_model import BayesianRidge
  if method == 'iterative-bayesridge':
    return ChainedRegressions(BayesianRidge())
  if method == 'iterative-extratrees':
    return ChainedRegressions(ExtraTreesRegressor(n_jobs=n_jobs,
                                                  **EXTRA_TREES))
  raise ValueError(method)


def benchmark_run(model_dir: str, methods: Sequence[str] = DEFAULT_METHODS,
                  trials: Optional[int] = None,
                  max_test_rows: Optional[int] = None,
                  max_train_rows: Optional[int] = None, n_jobs: int = 2,
                  log: Callable[[str], None] = print,
                  ll_samples: Optional[int] = None):
  """Scores ``methods`` on one pm-train run; returns (table name, results).

  ``ll_samples``: K of pm's conditional log-likelihood (None: the run's
  ``EvalConfig.log_likelihood_samples``; 0: not computed, ``ll_mean`` null).
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  from pm_zoo import metrics as metrics_lib
  from pm_zoo import run_dir
  from pm_zoo.errors import UserError
  from pm_zoo.tasks import evaluation
  model, step = experiment.restore_for_eval(model_dir)
  config = evaluation.EvalConfig()  # the run's, parsed by restore_for_eval
  options = experiment.data_options(model_dir)
  splits, standardizer = experiment.load_standardized(options, model_dir,
                                                      fit=False)
  if splits.kind != 'table':
    raise UserError(f'{model_dir} is a run on {splits.kind} data; this '
                    'benchmark compares table imputers: pass a tabular run')
  test = splits.test
  if config.max_examples:
    test = test[:config.max_examples]
  if max_test_rows:
    test = test[:max_test_rows]
  train = splits.train
  if max_train_rows and len(train) > max_train_rows:
    rows = np.random.default_rng(0).choice(len(train), max_train_rows,
                                           replace=False)
    train = train[np.sort(rows)]
  trials = trials or config.trials
  if trials < 1:
    raise UserError(f'--trials={trials}: pass a positive number of trials')
  log(f'{splits.name}: step {step}, {len(train)} train / {len(test)} test '
      f'rows of {test.shape[1]} features, {trials} trials')
  masks = trial_masks(config, test.shape[1:], len(test), trials)
  schema = splits.schema
  cards = (tuple(schema.cardinalities) if schema is not None
           else (0,) * test.shape[1])
  categorical = [j for j, k in enumerate(cards) if k]
  numeric = [j for j, k in enumerate(cards) if not k]
  observed = np.isfinite(test).astype(np.float32)
  test_incomplete = not observed.all()
  train_missing = float(np.isnan(train).mean())
  general = bool(categorical) or train_missing > 0 or test_incomplete
  if test_incomplete:
    test = np.where(observed > 0, test, 0.0).astype(np.float32)
    masks = [m * observed for m in masks]
  std = (np.array([test[observed[:, j] > 0, j].std() for j in numeric])
         if test_incomplete and numeric else None)
  if general:
    log(f'  general baselines: {len(categorical)} categorical columns, '
        f'{100 * train_missing:.1f}% of train cells missing')
  results = {}
  for method in methods:
    imputer = (make_mixed_method(method, model, config, n_jobs, cards)
               if general or method == 'miceforest' else
               make_method(method, model, config, n_jobs))
    key = pm_method_name(model) if method == 'pm' else method
    fit_seconds = None
    if method == 'pm':
      trained = run_dir.read_json(os.path.join(model_dir, run_dir.TRAINING))
      fit_seconds = trained and trained.get('seconds')
    if imputer.fits:
      start = time.perf_counter()
      imputer.fit(train)
      fit_seconds = time.perf_counter() - start
    values, pfcs, seconds, used = [], [], [], []
    for trial, mask in enumerate(masks):
      start = time.perf_counter()
      imputed = imputer.impute(test, mask, trial)
      seconds.append(time.perf_counter() - start)
      scored = 1.0 - (1.0 - mask) * observed
      if numeric:
        values.append(metrics_lib.nrmse(
            test[:, numeric], imputed[:, numeric], scored[:, numeric],
            feature_std=std))
      if categorical:
        pfcs.append(metrics_lib.pfc(test[:, categorical],
                                    imputed[:, categorical],
                                    scored[:, categorical]))
      used.append(mask)
    summary = (metrics_lib.summarize_trials(values) if values
               else {'mean': None, 'std': None})
    pfc = metrics_lib.summarize_trials(pfcs) if pfcs else None
    ll_trials, samples = None, None
    if method == 'pm':
      samples = (config.log_likelihood_samples if ll_samples is None
                 else int(ll_samples))
      if samples > 0 and not test_incomplete:
        ll_trials = pm_log_likelihoods(model, config, test, masks,
                                       standardizer.scale, samples)
    results[key] = {
        'nrmse_mean': summary['mean'], 'nrmse_std': summary['std'],
        'pfc_mean': pfc and pfc['mean'], 'pfc_std': pfc and pfc['std'],
        'pfc_trials': [float(v) for v in pfcs] or None,
        'train_missing': train_missing,
        'll_mean': (float(np.mean(ll_trials)) if ll_trials else None),
        'fit_seconds': fit_seconds,
        'impute_seconds': float(np.mean(seconds)),
        'nrmse_trials': [float(v) for v in values], 'trials': trials,
        'test_rows': int(len(test)), 'train_rows': int(len(train)),
        # Hashed after imputing: also catches a method that edits the masks.
        'masks_sha256': masks_digest(used), 'settings': imputer.settings,
    }
    if method == 'pm':
      results[key].update(ll_trials=ll_trials, ll_samples=samples,
                          model_dir=os.path.abspath(model_dir))
    ll = ('' if results[key]['ll_mean'] is None else
          f', LL {results[key]["ll_mean"]:.4f}')
    nrmse = ('' if summary['mean'] is None else
             f'NRMSE {summary["mean"]:.4f} +- {summary["std"]:.4f}')
    pfc_text = '' if pfc is None else f' PFC {pfc["mean"]:.4f}'
    log(f'  {key}: {nrmse}{pfc_text}{ll}')
  return splits.name, results


def pm_log_likelihoods(model, config, test: np.ndarray,
                       masks: Sequence[np.ndarray], feature_scale,
                       samples: int) -> List[float]:
  """Per trial, the mean over rows of log p(x_u | x_o) in the data's units.

  As ``evaluate_imputation``: one ``ConditionalLikelihood`` seeded with
  ``config.seed``, the trial's mask, minus sum over unobserved of log s.
  """
  from pm_zoo.tasks.likelihood import ConditionalLikelihood  # pylint: disable=g-import-not-at-top
  likelihood = ConditionalLikelihood(
      model, num_samples=samples,
      samples_per_chunk=config.log_likelihood_chunk,
      batch_size=config.batch_size, seed=config.seed)
  log_scale = np.log(np.asarray(feature_scale, np.float64))
  out = []
  for mask in masks:
    per_row = likelihood.conditional_log_prob(test, mask)
    per_row = per_row - ((1.0 - mask) * log_scale).sum(axis=1)
    out.append(float(per_row.mean()))
  return out


def head_names() -> Dict[str, str]:
  """``{kebab name: head class name}`` of the partial heads."""
  return {kebab(h): h for h in HEADS}


def parse_heads(text: str) -> List[str]:
  """``--heads`` (kebab or class names, comma separated) -> class names."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  known = head_names()
  chosen = []
  for name in (n.strip() for n in text.split(',')):
    if not name:
      continue
    head = known.get(name) or (name if name in HEADS else None)
    if head is None:
      raise UserError(f'--heads: unknown head {name!r}; use a comma-separated '
                      f'subset of {",".join(known)}')
    if head not in chosen:
      chosen.append(head)
  if not chosen:
    raise UserError(f'--heads is empty; use a comma-separated subset of '
                    f'{",".join(known)}')
  return chosen


def _table_stem(path: str) -> str:
  name = os.path.basename(os.path.normpath(path))
  for suffix in ('.csv.gz', '.csv', '.npy'):
    if name.lower().endswith(suffix):
      return name[:-len(suffix)]
  return name


def parse_table(spec: str):
  """``[NAME=]TRAIN[,TEST]`` -> (name, train path, test path or None).

  A bare package table name (``PACKAGE_TABLES``) gives (name, None, None):
  ``package_table_csv`` writes it out.
  """
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if spec in PACKAGE_TABLES:
    return spec, None, None
  name = None
  if '=' in spec:
    name, spec = spec.split('=', 1)
    name = name.strip()
  paths = [p.strip() for p in spec.split(',')]
  if len(paths) > 2 or not all(paths):
    raise UserError(f'--table={spec!r}: give [NAME=]TRAIN[,TEST], one train '
                    'file and at most one test file')
  for path in paths:
    if not os.path.isfile(path):
      raise UserError(f'--table: no such file {path!r}')
    if not path.lower().endswith(('.csv', '.csv.gz', '.npy')):
      raise UserError(f'--table: {path!r} is not a .csv, .csv.gz or .npy file')
  train = os.path.abspath(paths[0])
  test = os.path.abspath(paths[1]) if len(paths) == 2 else None
  name = name or _table_stem(train)
  if not name or os.sep in name or name in ('.', '..'):
    raise UserError(f'--table: bad table name {name!r}')
  return name, train, test


def default_tables(shared: str = SHARED_DATA):
  """The shared tables, or a UserError if the shared folder is absent."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(shared):
    raise UserError(f'no --table or --model_dir given and the shared data '
                    f'folder {shared} does not exist: pass --table=PATH')
  tables = []
  for name, train, test in DEFAULT_TABLES:
    paths = [os.path.join(shared, f) for f in (train, test) if f]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise UserError(f'shared table file(s) missing: {", ".join(missing)}; '
                      'pass --table=PATH')
    tables.append((name, paths[0], paths[1] if test else None))
  return tables


def package_table_csv(name: str, work_dir: str) -> str:
  """Writes the package table ``name`` as ``<work_dir>/<name>.csv``."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    frame = PACKAGE_TABLES[name]()
  except ImportError as e:
    raise UserError(f'--table={name} needs its package ({e}): pip install '
                    'pm_zoo[tables]') from None
  path = os.path.join(work_dir, f'{name}.csv')
  os.makedirs(work_dir, exist_ok=True)
  frame.to_csv(path, index=False)
  return path


def incomplete_split(name: str, train_path: str, test_path: Optional[str],
                     rate: float, seed: int, work_dir: str):
  """The table's train/test split with MCAR cells removed from train.

  The split is the one a run makes (``dataset.split_seed``, test fraction
  from gin); each train cell is removed with probability ``rate``. Writes
  ``train.npy`` / ``test.npy`` (categorical columns as codes) and
  ``schema.json`` under ``<work_dir>/<name>/data-<rate>/``; returns (train
  path, test path, schema).
  """
  # pylint: disable=g-import-not-at-top
  from pm_zoo import data as data_lib
  from pm_zoo import experiment
  options = experiment.dataset()
  options.update(path=train_path, test_path=test_path)
  splits = data_lib.load_dataset(**options)
  train = splits.train.copy()
  drop = np.random.default_rng(seed).random(train.shape) < rate
  train[drop] = np.nan
  folder = os.path.join(work_dir, name, f'data-{rate:g}')
  os.makedirs(folder, exist_ok=True)
  paths = (os.path.join(folder, 'train.npy'), os.path.join(folder, 'test.npy'))
  np.save(paths[0], train)
  np.save(paths[1], splits.test)
  schema = splits.schema
  return paths[0], paths[1], schema


def train_pm(run_dir_path: str, head: str, train_path: str,
             test_path: Optional[str], gin_file: str,
             gin_bindings: Sequence[str], steps: int,
             schema=None) -> None:
  """One Posterior Matching run with partial head ``head`` (a class name);
  ``schema``: the column schema of .npy data with categorical codes."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo import configs
  from pm_zoo import experiment
  from pm_zoo.data import schema as schema_lib
  if schema is not None:
    os.makedirs(run_dir_path, exist_ok=True)
    schema.save(os.path.join(run_dir_path, schema_lib.SCHEMA_FILE))
  configs.parse([gin_file], list(gin_bindings) + [
      f'TrainConfig.num_steps={steps}',
      f'PartialEncoder.head=@partial/{head}',
      f'CyclicalKL.cycle_steps={max(steps // 2, 1)}'])
  experiment.train(run_dir_path, data_path=train_path,
                   test_data_path=test_path)


def benchmark_table(name: str, train_path: str, test_path: Optional[str],
                    heads: Sequence[str], work_dir: str, methods: Sequence[str],
                    gin_file: str, gin_bindings: Sequence[str], steps: int,
                    trials: Optional[int] = None,
                    max_test_rows: Optional[int] = None,
                    max_train_rows: Optional[int] = None, n_jobs: int = 2,
                    ll_samples: Optional[int] = None,
                    log: Callable[[str], None] = print,
                    train_missing: float = 0.0,
                    missing_seed: int = 0) -> Dict[str, Dict]:
  """Trains one PM run per head on a table; scores them and the baselines.

  ``train_missing``: remove that fraction of the train cells (MCAR) first;
  every method then fits on the same incomplete rows.
  """
  baselines = [m for m in methods if m != 'pm']
  if not heads:
    raise ValueError('benchmark_table needs at least one head')
  results = {}
  schema = None
  if train_path is None:
    train_path = package_table_csv(name, work_dir)
  suffix = ''
  if train_missing > 0:
    # pylint: disable=g-import-not-at-top
    from pm_zoo import configs
    configs.parse([gin_file], list(gin_bindings))
    train_path, test_path, schema = incomplete_split(
        name, train_path, test_path, train_missing, missing_seed, work_dir)
    suffix = f'-missing-{train_missing:g}'
  for i, head in enumerate(heads):
    run = os.path.join(work_dir, name, kebab(head) + suffix)
    log(f'{name}: training pm-{kebab(head)} for {steps} steps in {run}')
    train_pm(run, head, train_path, test_path, gin_file, gin_bindings, steps,
             schema=schema)
    scored = (['pm'] if 'pm' in methods else []) + (baselines if i == 0
                                                    else [])
    _, rows = benchmark_run(run, scored, trials, max_test_rows,
                            max_train_rows, n_jobs, log=log,
                            ll_samples=ll_samples)
    results.update(rows)
  # pm rows first, then the baselines, in METHODS order.
  order = [k for k in results if k.startswith('pm-')] + baselines
  return {k: results[k] for k in order}


def benchmark_folds(name: str, train_path: Optional[str],
                    test_path: Optional[str], folds: int, fold_seed: int,
                    work_dir: str, **kwargs) -> Dict[str, Dict]:
  """``benchmark_table`` on each of ``folds`` cross-validation folds of one
  file, pooled (``benchmarks.folds``); fold k's files and runs go to
  ``<work_dir>/<name>/fold-<k>/``. ``kwargs``: benchmark_table's."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if test_path is not None:
    raise UserError(f'--folds={folds} splits one file, but --table {name} '
                    'has a TEST file: drop the TEST file or --folds')
  if train_path is None:
    train_path = package_table_csv(name, work_dir)
  folder = os.path.join(work_dir, name)
  per_fold = []
  for k, (train, test) in enumerate(folds_lib.write_folds(
      train_path, folds, fold_seed, folder)):
    kwargs.get('log', print)(f'{name}: fold {k + 1} of {folds}')
    per_fold.append(benchmark_table(f'fold-{k}', train, test,
                                    work_dir=folder, **kwargs))
  return folds_lib.pool_folds(per_fold)


def paired_with_pm(rows: Dict[str, Dict]) -> None:
  """Adds ``paired_with_pm`` to each baseline row: its per-trial scores
  minus pm's, on the same masks.

  Every method of a table is scored on the same masks (and, with
  ``--folds``, the same folds), so trial i of two methods is a pair. For
  NRMSE and PFC: ``{"mean": mean(d), "se": std(d, ddof=1) / sqrt(n),
  "pm_lower": #(d > 0), "ties": #(d == 0), "pairs": n}`` with
  ``d = baseline - pm`` (positive: pm is better); None for a metric either
  row lacks, or with fewer than 2 pairs; ``"reference"``: the pm row
  compared with, the first one (the first of ``--heads``). pm rows get
  nothing.
  """
  reference = next((k for k in rows if k.startswith('pm-')), None)
  if reference is None:
    return
  pm = rows[reference]
  for key, row in rows.items():
    if key.startswith('pm-'):
      continue
    row['paired_with_pm'] = paired = {'reference': reference}
    for metric in ('nrmse', 'pfc'):
      mine, ref = row.get(f'{metric}_trials'), pm.get(f'{metric}_trials')
      if not mine or not ref or len(mine) != len(ref) or len(mine) < 2:
        paired[metric] = None
        continue
      d = np.asarray(mine, np.float64) - np.asarray(ref, np.float64)
      paired[metric] = {
          'mean': float(d.mean()),
          'se': float(d.std(ddof=1) / np.sqrt(len(d))),
          'pm_lower': int((d > 0).sum()), 'ties': int((d == 0).sum()),
          'pairs': int(len(d))}


def format_paired(tables: Dict[str, Dict[str, Dict]]) -> str:
  """The rows' ``paired_with_pm`` as lines ('' if there are none)."""
  lines = []
  for table, methods in tables.items():
    for key, row in methods.items():
      paired = row.get('paired_with_pm') or {}
      parts = [f'{metric.upper()} {paired[metric]["mean"]:+.4f} ± '
               f'{paired[metric]["se"]:.4f} ({paired[metric]["pm_lower"]}/'
               f'{paired[metric]["pairs"]})'
               for metric in ('nrmse', 'pfc') if paired.get(metric)]
      if parts:
        lines.append(f'  {table}  {key} - {paired["reference"]}: ' +
                     ', '.join(parts))
  if not lines:
    return ''
  return '\n'.join(['paired on the same masks: baseline - pm, mean ± '
                    'standard error (trials where pm is lower / pairs)'] +
                   lines)


def format_table(tables: Dict[str, Dict[str, Dict]]) -> str:
  """One aligned table; ``/ pm`` is the NRMSE ratio to the table's pm row."""
  with_pfc = any(m.get('pfc_mean') is not None
                 for methods in tables.values() for m in methods.values())
  rows = [('table', 'method', 'NRMSE mean ± std', '/ pm') +
          (('PFC mean ± std',) if with_pfc else ()) +
          ('LL', 'fit s', 'impute s')]
  for table, methods in tables.items():
    pm = [m['nrmse_mean'] for k, m in methods.items() if k.startswith('pm-')]
    for key, m in methods.items():
      ratio = (f'{m["nrmse_mean"] / pm[0]:.3f}'
               if pm and pm[0] and m['nrmse_mean'] is not None else '')
      nrmse = ('-' if m['nrmse_mean'] is None else
               f'{m["nrmse_mean"]:.4f} ± {m["nrmse_std"]:.4f}')
      fit = '-' if m['fit_seconds'] is None else f'{m["fit_seconds"]:.2f}'
      ll = '-' if m.get('ll_mean') is None else f'{m["ll_mean"]:.4f}'
      pfc = (() if not with_pfc else
             ('-' if m.get('pfc_mean') is None else
              f'{m["pfc_mean"]:.4f} ± {m["pfc_std"]:.4f}',))
      notes = ([f'train {100 * m["train_missing"]:.0f}% missing']
               if m.get('train_missing') else []) + (
                   [f'{len(m["folds"])} folds'] if m.get('folds') else [])
      label = table + (f' ({", ".join(notes)})' if notes else '')
      rows.append((label, key, nrmse, ratio) + pfc +
                  (ll, fit, f'{m["impute_seconds"]:.2f}'))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = []
  for r in rows:
    left = [r[i].ljust(widths[i]) for i in range(2)]
    right = [r[i].rjust(widths[i]) for i in range(2, len(r))]
    lines.append('  '.join(left + right).rstrip())
  lines.insert(1, '-' * len(lines[0]))
  return '\n'.join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.tabular',
      description=__doc__.split('\n\n')[0].strip(),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--model_dir', action='append', default=None,
                      help='a pm-train run on a table; repeatable')
  parser.add_argument('--table', action='append', default=None,
                      help='[NAME=]TRAIN[,TEST] (.csv, .csv.gz, .npy): train '
                      'one PM run per --heads on it; repeatable (default, '
                      'without --table and --model_dir: the shared tables in '
                      f'{SHARED_DATA})')
  parser.add_argument('--heads', default=','.join(kebab(h) for h in HEADS),
                      help='partial posteriors to train, comma separated '
                      '(default: all)')
  parser.add_argument('--steps', type=int, default=DEFAULT_STEPS,
                      help='training steps of every PM run')
  parser.add_argument('--gin_file', default=DEFAULT_GIN_FILE,
                      help='gin experiment of the PM runs')
  parser.add_argument('--gin_bindings', action='append', default=[],
                      help='extra gin binding of the PM runs; repeatable')
  parser.add_argument('--work_dir', default=None,
                      help='where the PM runs go (<work_dir>/<table>/<head>; '
                      'default: a new temporary folder)')
  parser.add_argument('--ll_samples', type=int, default=None,
                      help='K importance samples of the pm rows\' conditional '
                      "log-likelihood (default: the run's EvalConfig, 512; "
                      '0: skip)')
  parser.add_argument('--name', action='append', default=None,
                      help="table name per --model_dir (default: the run's "
                      'dataset name); repeat once per --model_dir')
  parser.add_argument('--trials', type=int, default=None,
                      help="mask draws (default: the run's EvalConfig.trials)")
  parser.add_argument('--methods', default=','.join(DEFAULT_METHODS),
                      help=f'comma-separated subset of {",".join(METHODS)}')
  parser.add_argument('--max_test_rows', type=int, default=None,
                      help='score the first N test rows only (within the '
                      "run's EvalConfig.max_examples)")
  parser.add_argument('--max_train_rows', type=int, default=None,
                      help='fit the baselines on N random train rows only '
                      '(large tables: KNN and ExtraTrees grow with N)')
  parser.add_argument('--train_missing', type=float, default=0.0,
                      help='remove this fraction of the TRAIN cells '
                      'completely at random before fitting anything '
                      '(every method fits on the same incomplete rows)')
  parser.add_argument('--missing_seed', type=int, default=0,
                      help='seed of the --train_missing cells')
  parser.add_argument('--folds', type=int, default=0,
                      help='K-fold cross-validation of each --table (a '
                      'single file): every row is tested once and the K '
                      "runs' trials are pooled (default 0: one 80/20 split)")
  parser.add_argument('--fold_seed', type=int, default=0,
                      help='seed of the --folds permutation')
  parser.add_argument('--n_jobs', type=int, default=2,
                      help='CPU workers of ExtraTrees')
  parser.add_argument('--output', default=None, help='JSON results file')
  return parser.parse_args(argv)


def model_dirs_given(args) -> bool:
  return bool(args.model_dir)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict]:
  """Runs the benchmark; returns ``{table: {method: row}}``."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  # pylint: disable=g-import-not-at-top
  from pm_zoo.errors import UserError
  methods = [m.strip() for m in args.methods.split(',') if m.strip()]
  try:
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
      raise UserError(f'--methods: unknown {unknown or "(none given)"}; use a '
                      f'comma-separated subset of {",".join(METHODS)}')
    for value, flag in ((args.max_test_rows, '--max_test_rows'),
                        (args.max_train_rows, '--max_train_rows'),
                        (args.trials, '--trials'), (args.steps, '--steps')):
      if value is not None and value < 1:
        raise UserError(f'{flag}={value}: pass a positive number')
    if not 0.0 <= args.train_missing < 1.0:
      raise UserError(f'--train_missing={args.train_missing}: give a '
                      'fraction in [0, 1)')
    if args.train_missing and model_dirs_given(args):
      raise UserError('--train_missing applies to the runs this benchmark '
                      'trains (--table or the shared tables), not to '
                      '--model_dir')
    if args.folds and (args.folds < 2 or model_dirs_given(args)):
      raise UserError(f'--folds={args.folds}: give K >= 2, with --table or '
                      'the shared tables (not --model_dir)')
    if args.ll_samples is not None and args.ll_samples < 0:
      raise UserError(f'--ll_samples={args.ll_samples}: pass K >= 1, or 0 to '
                      'skip the log-likelihood')
    model_dirs = args.model_dir or []
    if args.name and len(args.name) != len(model_dirs):
      raise UserError(f'{len(args.name)} --name for {len(model_dirs)} '
                      '--model_dir: give one --name per --model_dir, or none')
    heads = parse_heads(args.heads)
    if args.table:
      to_train = [parse_table(spec) for spec in args.table]
    elif not model_dirs:
      to_train = default_tables()
    else:
      to_train = []
    if to_train and 'pm' not in methods:
      raise UserError('--methods without pm: the baselines need a PM run of '
                      'the table for its split; keep pm in --methods')
    names = [t[0] for t in to_train]
    if len(set(names)) != len(names):
      raise UserError(f'two --table share a name in {names}: name them '
                      'apart with NAME=TRAIN')
    if to_train:
      from pm_zoo import configs  # pylint: disable=g-import-not-at-top
      configs.resolve(args.gin_file)  # a bad --gin_file fails before training
    work_dir = args.work_dir
    if to_train and not work_dir:
      work_dir = tempfile.mkdtemp(prefix='pm_zoo_tabular_')
      print(f'PM runs go to {work_dir}')
    tables = {}
    for name, train_path, test_path in to_train:
      settings = dict(
          heads=heads, methods=methods, gin_file=args.gin_file,
          gin_bindings=args.gin_bindings, steps=args.steps,
          trials=args.trials, max_test_rows=args.max_test_rows,
          max_train_rows=args.max_train_rows, n_jobs=args.n_jobs,
          ll_samples=args.ll_samples, train_missing=args.train_missing,
          missing_seed=args.missing_seed)
      if args.folds:
        tables[name] = benchmark_folds(name, train_path, test_path,
                                       args.folds, args.fold_seed, work_dir,
                                       **settings)
      else:
        tables[name] = benchmark_table(name, train_path, test_path,
                                       work_dir=work_dir, **settings)
    for i, model_dir in enumerate(model_dirs):
      name, results = benchmark_run(
          model_dir, methods, args.trials, args.max_test_rows,
          args.max_train_rows, args.n_jobs, ll_samples=args.ll_samples)
      name = args.name[i] if args.name else name
      if name in tables:
        raise UserError(f'two runs give the table name {name!r}: tell them '
                        'apart with one --name per --model_dir')
      tables[name] = results
  except UserError as e:
    common.exit_with_error(e)
  for rows in tables.values():
    paired_with_pm(rows)
  text = format_table(tables)
  paired = format_paired(tables)
  return common.report(tables, text + ('\n' + paired if paired else ''),
                       args.output)


if __name__ == '__main__':
  main()
