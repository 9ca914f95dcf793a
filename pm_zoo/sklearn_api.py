"""``PosteriorMatchingImputer``: Posterior Matching as a scikit-learn imputer.

  from pm_zoo import PosteriorMatchingImputer
  imputer = PosteriorMatchingImputer(num_steps=3000).fit(X_train)
  X_filled = imputer.transform(X)             # NaN = missing
  draws = imputer.sample(X, 20)               # 20 imputations, [20, N, D]
  imputer.save('runs/my_imputer')             # pm-eval / pm-export / pm-impute

Tables as they come: ``X`` may be a NumPy array or a pandas DataFrame, with
missing cells (NaN, None, pd.NA) in the training data too, and with text,
bool or ``category`` columns. ``fit`` infers a column schema
(``pm_zoo.data.schema``: numeric, integer, categorical; ``column_types``
overrides it by column name), trains on the observed cells only (see
``pm_zoo.matching`` for the method), and ``transform`` returns the input's
kind: a DataFrame keeps its index, columns and dtypes (categorical cells
come back as their category, integer columns as integers), a numeric array
gives float64. A categorical cell is imputed by its most probable category
under the posterior predictive, argmax_c of the mean over ``num_samples``
draws z_s ~ q(z | x_o) of p(x_j = c | z_s); ``sample`` keeps every draw. A category that
``fit`` never saw: ``handle_unknown='error'`` (default) names the column and
value, ``'missing'`` imputes the cell instead. ``set_output(transform=
'pandas')`` turns array outputs into DataFrames (scikit-learn's
convention).

``fit`` trains the gin experiment ``gin_file`` (default ``table.gin``, the
paper's tabular model, as ``pm-train --gin_file=table.gin``) into a run
directory; every size argument left at None keeps that file's value, and
the others become gin bindings:

  latent_dim         -> GaussianVAE.latent_dim
  hidden_units       -> ResidualMLP.units        (every residual MLP)
  num_blocks         -> ResidualMLP.num_blocks
  partial_posterior  -> PartialEncoder.head = @partial/<Head>, a head name
                        (kebab or class): diagonal-gaussian,
                        full-covariance-gaussian, gaussian-mixture,
                        autoregressive-gaussian-mixture,
                        masked-autoregressive-flow, inverse-autoregressive-flow
  num_steps          -> TrainConfig.num_steps (and CyclicalKL.cycle_steps =
                        num_steps // 2, two KL cycles as in table.gin)
  batch_size         -> TrainConfig.batch_size (capped at the training rows)
  learning_rate      -> exponential_decay.initial
  validation_fraction-> dataset.test_fraction (0: the held-out split is the
                        training data itself)
  random_state       -> TrainConfig.seed, dataset.split_seed, and the seed of
                        the imputations
  gin_bindings       -> anything else, e.g. ['EvalConfig.trials = 3']

The run directory is ``model_dir`` (or a temporary one, removed with the
estimator, until ``save``), holding the training rows as ``fit_data.npy``,
so ``pm-eval --model_dir`` evaluates on the held-out rows.

Imputations are row-keyed (``pm_zoo.tasks.imputation``): with an integer
``random_state`` a row's imputations depend only on the row, so
``transform``, ``pm-impute --seed`` and the exported SavedModel (exported
with the same ``--num_samples`` and ``--seed``) give the same numbers.
Rows with no observed cell are dropped before training (their count is
logged); a column with no observed cell is an error.

Global state: ``fit`` and ``load`` parse gin (clearing any config you had).
"""
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pm_zoo import run_dir
from pm_zoo import sklearn_runs
from pm_zoo.data import schema as schema_lib
from pm_zoo.errors import UserError
from pm_zoo.serving import inputs

FIT_DATA = 'fit_data.npy'
ESTIMATOR_FILE = 'imputer.json'
# imputer.json keys that are not constructor arguments.
_FITTED_ON_FRAME = '_fitted_on_frame'


def _head_class(name: str) -> str:
  """A partial-posterior head in kebab or class form -> its class name.

  Any ``DistributionHead`` that ``pm_zoo.distributions`` exports is accepted
  (``full-covariance-gaussian`` -> ``FullCovarianceGaussian``).
  """
  from pm_zoo import distributions  # pylint: disable=g-import-not-at-top
  known = sorted(n for n, v in vars(distributions).items()
                 if isinstance(v, type)
                 and issubclass(v, distributions.DistributionHead)
                 and v is not distributions.DistributionHead)
  head = (''.join(part[:1].upper() + part[1:] for part in name.split('-'))
          if '-' in name or name.islower() else name)
  if head not in known:
    raise UserError(f'partial_posterior={name!r} is not a head of '
                    f'pm_zoo.distributions: use one of {", ".join(known)} '
                    '(or its kebab-case name, e.g. full-covariance-gaussian)')
  return head


class PosteriorMatchingImputer(sklearn_runs.RunBackedEstimator,
                               TransformerMixin, BaseEstimator):
  """Imputes NaN entries with a Posterior Matching VAE (see module doc).

  Args:
    gin_file: the gin experiment (a path or a name under ``gin/``).
    latent_dim, hidden_units, num_blocks, partial_posterior: model size and
      family (None: the gin file's).
    num_steps, batch_size, learning_rate: training (None: the gin file's).
    validation_fraction: rows held out of training for ``pm-eval``.
    num_samples: imputations averaged by ``transform``.
    random_state: int seed of training and imputations; None draws a new
      imputation seed per call.
    transform_batch_size: rows per model call when imputing.
    model_dir: where ``fit`` trains (a new or empty directory); None: a
      temporary directory.
    gin_bindings: extra gin bindings for the run.
    verbose: log training progress.
    column_types: ``{column name: 'numeric' | 'integer' | 'categorical'}``
      overriding the inferred kinds (None: infer all).
    max_categories: text columns with more distinct values are refused.
    handle_unknown: 'error' or 'missing', for categories unseen in fit.

  Fitted attributes: ``n_features_in_``, ``feature_names_in_`` (fitted on
  a DataFrame), ``schema_`` (the ``TableSchema``), ``model_dir_`` (the run),
  ``step_`` (its checkpoint step), ``serving_module_`` (the
  ``ServingModule`` whose functions the imputer calls, the ones
  ``pm-export`` saves).
  """

  ESTIMATOR_FILE = ESTIMATOR_FILE
  RUN_PREFIX = 'imputer'

  def __init__(self, gin_file: str = 'table.gin',
               latent_dim: Optional[int] = None,
               hidden_units: Optional[int] = None,
               num_blocks: Optional[int] = None,
               partial_posterior: Optional[str] = None,
               num_steps: Optional[int] = None,
               batch_size: Optional[int] = None,
               learning_rate: Optional[float] = None,
               validation_fraction: float = 0.1, num_samples: int = 10,
               random_state: Optional[int] = 0,
               transform_batch_size: int = 1024,
               model_dir: Optional[str] = None,
               gin_bindings: Sequence[str] = (), verbose: bool = False,
               column_types: Optional[dict] = None,
               max_categories: int = schema_lib.MAX_CATEGORIES,
               handle_unknown: str = 'error'):
    self.gin_file = gin_file
    self.latent_dim = latent_dim
    self.hidden_units = hidden_units
    self.num_blocks = num_blocks
    self.partial_posterior = partial_posterior
    self.num_steps = num_steps
    self.batch_size = batch_size
    self.learning_rate = learning_rate
    self.validation_fraction = validation_fraction
    self.num_samples = num_samples
    self.random_state = random_state
    self.transform_batch_size = transform_batch_size
    self.model_dir = model_dir
    self.gin_bindings = gin_bindings
    self.verbose = verbose
    self.column_types = column_types
    self.max_categories = max_categories
    self.handle_unknown = handle_unknown

  # ------------------------------------------------------------ training
  def _bindings(self, rows: int):
    """(gin bindings of the arguments that are set, training rows)."""
    bindings = []
    for value, names in (
        (self.latent_dim, ['GaussianVAE.latent_dim']),
        (self.hidden_units, ['ResidualMLP.units']),
        (self.num_blocks, ['ResidualMLP.num_blocks']),
        (self.learning_rate, ['exponential_decay.initial'])):
      if value is not None:
        bindings += [f'{name} = {value!r}' for name in names]
    if self.partial_posterior is not None:
      bindings.append('PartialEncoder.head = '
                      f'@partial/{_head_class(self.partial_posterior)}')
    if self.num_steps is not None:
      steps = int(self.num_steps)
      bindings += [f'TrainConfig.num_steps = {steps}',
                   f'CyclicalKL.cycle_steps = {max(steps // 2, 1)}']
    if self.random_state is not None:
      bindings += [f'TrainConfig.seed = {int(self.random_state)}',
                   f'dataset.split_seed = {int(self.random_state)}']
    if self.validation_fraction:
      bindings.append(f'dataset.test_fraction = {self.validation_fraction!r}')
    train_rows = rows - (int(round(rows * self.validation_fraction))
                         if self.validation_fraction else 0)
    if self.batch_size is not None:
      if not 1 <= self.batch_size <= train_rows:
        raise UserError(f'batch_size={self.batch_size}: give 1..{train_rows} '
                        f'(the training rows)')
      bindings.append(f'TrainConfig.batch_size = {int(self.batch_size)}')
    return bindings + list(self.gin_bindings), train_rows

  def fit(self, X, y=None):  # pylint: disable=invalid-name
    """Trains on ``X`` [N, D] (array or DataFrame; missing cells allowed);
    ``y`` is ignored."""
    del y
    # pylint: disable=g-import-not-at-top
    import gin
    from pm_zoo import configs
    from pm_zoo import experiment
    what = 'PosteriorMatchingImputer.fit: X'
    if self.handle_unknown not in schema_lib.UNKNOWN_POLICIES:
      raise UserError(f'handle_unknown={self.handle_unknown!r}: use one of '
                      f'{", ".join(schema_lib.UNKNOWN_POLICIES)}')
    schema, table = _fit_schema(X, self.column_types, self.max_categories,
                                what)
    empty_columns = np.isnan(table).all(axis=0)
    if empty_columns.any():
      j = int(np.argmax(empty_columns))
      raise UserError(f'{what}: column {schema.names[j]!r} is entirely '
                      'empty: drop it or give it values')
    empty_rows = np.isnan(table).all(axis=1)
    if empty_rows.any():
      logging.info('PosteriorMatchingImputer.fit: dropped %d of %d rows with '
                   'no observed cell', int(empty_rows.sum()), len(table))
      table = table[~empty_rows]
    if not 0.0 <= self.validation_fraction < 1.0:
      raise UserError(f'validation_fraction={self.validation_fraction}: give '
                      'a fraction in [0, 1)')
    # Configuration errors surface before anything is written.
    bindings, train_rows = self._bindings(len(table))
    configs.parse([self.gin_file], bindings)
    if self.batch_size is None and gin.query_parameter(
        'TrainConfig.batch_size') > train_rows:
      configs.parse([self.gin_file],
                    bindings + [f'TrainConfig.batch_size = {train_rows}'])
    model_dir = self._new_run_dir()
    data_path = os.path.join(model_dir, FIT_DATA)
    np.save(data_path, table.astype(np.float32))
    schema.save(os.path.join(model_dir, schema_lib.SCHEMA_FILE))
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.INFO if self.verbose else logging.WARNING)
    try:
      experiment.train(model_dir, data_path=data_path,
                       test_data_path=(None if self.validation_fraction
                                       else data_path))
    finally:
      logging.set_verbosity(verbosity)
    self._fitted_on_frame = schema_lib._is_frame(X)  # pylint: disable=protected-access
    run_dir.write_json(os.path.join(model_dir, ESTIMATOR_FILE),
                       self._saved_params())
    self._restore(model_dir)
    return self

  def _saved_params(self) -> dict:
    params = super()._saved_params()
    if params.get('column_types'):
      params['column_types'] = {str(k): v
                                for k, v in params['column_types'].items()}
    params[_FITTED_ON_FRAME] = bool(getattr(self, '_fitted_on_frame', False))
    return params

  def _restore(self, model_dir: str) -> None:
    # pylint: disable=g-import-not-at-top
    from pm_zoo.serving import loading
    from pm_zoo.serving import module
    # conditional_log_prob is seeded by the module (per call, as the
    # SavedModel's is by the export's --seed).
    serving, step = loading.from_model_dir(model_dir, module.ServingConfig(
        num_samples=self.num_samples, seed=self.random_state or 0))
    if len(serving.feature_shape) != 1:
      raise UserError(f'{model_dir} is a model of examples of shape '
                      f'{list(serving.feature_shape)}; the imputer takes '
                      'tables: export it and use the SavedModel instead')
    self._runner = loading.InProcess(serving)
    self.serving_module_ = serving
    self.model_dir_ = model_dir
    self.step_ = step
    self.n_features_in_ = serving.feature_shape[0]
    self.schema_ = serving.schema or schema_lib.TableSchema.numeric(
        self.n_features_in_)
    if getattr(self, '_fitted_on_frame', False):
      self.feature_names_in_ = np.asarray(self.schema_.names, dtype=object)

  def get_feature_names_out(self, input_features=None):
    """The column names (imputation keeps every column)."""
    check_is_fitted(self, 'model_dir_')
    if input_features is not None:
      return np.asarray(input_features, dtype=object)
    return np.asarray(self.schema_.names, dtype=object)

  # ------------------------------------------------------------ using
  def _checked(self, X):  # pylint: disable=invalid-name
    """X encoded: float64 [N, D], NaN = missing, categories as codes."""
    check_is_fitted(self, 'model_dir_')
    if _is_plain_numeric(X) and self.schema_.numeric_only:
      table = inputs.as_table(X)
      inputs.check_width(table.shape[1], (self.n_features_in_,))
      if self.schema_.indices(schema_lib.INTEGER):
        return self.schema_.encode(table)
      return table
    if not schema_lib._is_frame(X):  # pylint: disable=protected-access
      array = np.asarray(X, dtype=object)
      if array.ndim == 2:
        inputs.check_width(array.shape[1], (self.n_features_in_,))
    # Column names are checked only against a DataFrame seen in fit.
    return self.schema_.encode(
        X, unknown=self.handle_unknown,
        check_names=bool(getattr(self, '_fitted_on_frame', False)))

  def _output(self, X, encoded):  # pylint: disable=invalid-name
    """Encoded float64 [..., N, D] -> X's kind (see the module doc)."""
    if schema_lib._is_frame(X):  # pylint: disable=protected-access
      if encoded.ndim == 3:
        return [self.schema_.decode(e, like=X) for e in encoded]
      return self.schema_.decode(encoded, like=X)
    if self.schema_.numeric_only and not self.schema_.indices(
        schema_lib.INTEGER):
      return encoded
    return self.schema_.decode(encoded)

  def _seed(self) -> int:
    if self.random_state is None:
      return int(np.random.SeedSequence().entropy % 2**62)
    return int(self.random_state)

  def _draw(self, table, mask, num_samples):
    """(means, samples) over batches of rows, float32."""
    if int(num_samples) < 1:
      raise UserError(f'num_samples={num_samples}: pass a positive number')
    seed = self._seed()
    means, samples = [], []
    for mean, drawn in self._runner.sample_batches(
        table.astype(np.float32), mask, int(num_samples), seed,
        self.transform_batch_size):
      means.append(mean)
      samples.append(drawn)
    return np.concatenate(means), np.concatenate(samples)

  def transform(self, X):  # pylint: disable=invalid-name
    """X with each missing cell imputed: the mean of ``num_samples``
    imputations (a categorical cell: the most probable category under the
    posterior predictive of those draws).

    Observed values are returned exactly as given; a numeric array gives
    float64 ``[N, D]``, a DataFrame a DataFrame like it.
    """
    table = self._checked(X)
    mask = inputs.missing_mask(table)
    mean, _ = self._draw(table, mask, self.num_samples)
    return self._output(X, np.where(mask > 0, table,
                                    mean.astype(np.float64)))

  def sample(self, X, n: int):  # pylint: disable=invalid-name
    """``n`` imputations of X (not averaged): for a numeric array float64
    ``[n, N, D]``; for a DataFrame a list of ``n`` DataFrames like X."""
    table = self._checked(X)
    mask = inputs.missing_mask(table)
    _, samples = self._draw(table, mask, n)
    samples = np.moveaxis(samples, 1, 0).astype(np.float64)
    return self._output(X, np.where(mask > 0, table, samples))

  # pylint: disable-next=invalid-name
  def conditional_log_prob(self, X, mask, num_samples: int = 512):
    """log p(x_u | x_o) per row, float64 ``[N]``, in X's units.

    X must be fully given (x_u is where the density is evaluated); ``mask``
    (0/1, X's shape) says which entries are conditioned on (1). Importance
    sampling with ``num_samples`` samples per row (the paper uses 512).
    """
    table = self._checked(X)
    inputs.refuse_missing(table, 'conditional_log_prob: X')
    mask = inputs.check_mask(mask, table)
    if int(num_samples) < 1:
      raise UserError(f'num_samples={num_samples}: pass a positive number')
    x = table.astype(np.float32)
    step = self.transform_batch_size
    return np.concatenate([
        self._runner.conditional_log_prob(x[i:i + step], mask[i:i + step],
                                          int(num_samples))
        for i in range(0, len(x), step)]).astype(np.float64)

  # ------------------------------------------------------------ persistence
  @classmethod
  def load(cls, path: str) -> 'PosteriorMatchingImputer':
    """The imputer saved in ``path`` (or any pm-train run on a table)."""
    params = run_dir.read_json(os.path.join(path, ESTIMATOR_FILE)) or {}
    if 'gin_bindings' in params:
      params['gin_bindings'] = tuple(params['gin_bindings'])
    on_frame = bool(params.pop(_FITTED_ON_FRAME, False))
    imputer = cls(**params)
    imputer._fitted_on_frame = on_frame  # pylint: disable=protected-access
    imputer._restore(os.path.abspath(path))  # pylint: disable=protected-access
    return imputer


def _is_plain_numeric(X) -> bool:  # pylint: disable=invalid-name
  """A numeric (or list-of-numbers) table that is not a DataFrame."""
  if schema_lib._is_frame(X):  # pylint: disable=protected-access
    return False
  try:
    return np.asarray(X).dtype.kind in 'biuf'
  except (TypeError, ValueError):
    return False


def _fit_schema(X, column_types, max_categories, what):  # pylint: disable=invalid-name
  """(schema, encoded float64 table) of the training data.

  A numeric array keeps the schema it always had (every column numeric,
  nothing rounded) unless ``column_types`` says otherwise.
  """
  if _is_plain_numeric(X) and not column_types:
    table = inputs.as_table(X, what)
    inputs.missing_mask(table, what)  # refuses inf
    return schema_lib.TableSchema.numeric(table.shape[1]), table
  if _is_plain_numeric(X):
    X = inputs.as_table(X, what)  # pylint: disable=invalid-name
  schema = schema_lib.infer(X, column_types, max_categories, what)
  return schema, schema.encode(X, what)
