"""Experiments: data + model + trainer, as run by ``pm-train`` and ``pm-eval``.

This is the "task" layer (in Model Garden's sense): it knows how to load the
data of a run, standardise it, build the model that the gin config describes,
and hand them to the generic ``Trainer`` or to the evaluation task. The
launchers in ``launch/`` only parse flags and call these functions.
"""
import os
from typing import Dict, Optional, Sequence

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import data as data_lib
from pm_zoo import keras_api
from pm_zoo import matching
from pm_zoo import run_dir
from pm_zoo.data import schema as schema_lib
from pm_zoo.errors import UserError
from pm_zoo.tasks import evaluation
from pm_zoo.training import strategy as strategy_lib
from pm_zoo.training import trainer as trainer_lib


@gin.configurable
def dataset(source: str = 'embedded_digits', tfds_name: Optional[str] = None,
            image_size=None, test_fraction: float = 0.2, split_seed: int = 0,
            max_examples: Optional[int] = None,
            drop_columns: Sequence = (),
            column_types: Optional[Dict[str, str]] = None,
            max_categories: int = 50) -> Dict:
  """Which data an experiment uses (gin); file paths come from flags.

  Returns the keyword arguments of ``pm_zoo.data.load_dataset`` except the
  paths. See ``pm_zoo.data.KNOWN_SOURCES`` for the sources; ``column_types``
  (``{'column': 'categorical' | 'integer' | 'numeric'}``) overrides the
  inferred kinds of a table's columns (``pm_zoo.data.schema``).
  """
  options = dict(source=source, tfds_name=tfds_name, image_size=image_size,
                 test_fraction=test_fraction, split_seed=split_seed,
                 max_examples=max_examples, drop_columns=list(drop_columns))
  if column_types:
    options['column_types'] = dict(column_types)
  if max_categories != 50:
    options['max_categories'] = int(max_categories)
  return options


def data_options(model_dir: str, data_path: Optional[str] = None,
                 test_data_path: Optional[str] = None,
                 tfds_data_dir: Optional[str] = None) -> Dict:
  """The data options of a run: gin's choice, the paths from flags.

  Paths not given fall back to the ones the run stored in ``data.json``, so a
  resumed run or ``pm-eval`` needs no data flags.
  """
  stored = run_dir.read_json(os.path.join(model_dir, run_dir.DATA)) or {}
  options = dataset()
  for key, value in (('path', data_path), ('test_path', test_data_path),
                     ('tfds_data_dir', tfds_data_dir)):
    options[key] = value if value else stored.get(key)
  for key in ('path', 'test_path'):
    if options[key]:
      options[key] = os.path.abspath(options[key])
  return options


def load_standardized(options: Dict, model_dir: str, fit: bool
                      ) -> (data_lib.DataSplits, data_lib.Standardizer):
  """Loads the data and puts every split in the model's input space.

  Tables are standardised with statistics of the TRAIN split's observed
  cells, stored in the run (``standardizer.json``) the first time and reused
  afterwards (categorical columns keep their codes); images are already in
  [0, 1] and pass unchanged. A table's column schema is the run's
  (``schema.json``, written by ``train``) when it has one, else the data's;
  missing cells stay NaN (``DataSplits.incomplete``).
  """
  splits = data_lib.load_dataset(**options)
  schema = None
  if splits.kind == 'table':
    schema = (schema_lib.read_run_schema(model_dir) or splits.schema or
              schema_lib.TableSchema.numeric(splits.feature_shape[0],
                                             splits.feature_names))
    if schema.width != splits.feature_shape[0]:
      raise UserError(
          f'the data has features of shape {splits.feature_shape} but the '
          f'model in {model_dir} was trained on ({schema.width},): pass the '
          'data it was trained on, or a new --model_dir')
    if (splits.schema is not None and not splits.schema.numeric_only and
        splits.schema.cardinalities != schema.cardinalities):
      raise UserError(
          f'the data\'s columns ({splits.schema}) differ from those of the '
          f'run in {model_dir} ({schema}): pass the data it was trained on')
  path = os.path.join(model_dir, run_dir.STANDARDIZER)
  if os.path.exists(path):
    standardizer = data_lib.Standardizer.load(path)
    if tuple(standardizer.feature_shape) != tuple(splits.feature_shape):
      raise UserError(
          f'the data has features of shape {splits.feature_shape} but the '
          f'model in {model_dir} was trained on {standardizer.feature_shape}: '
          'pass the data it was trained on, or a new --model_dir')
  elif fit:
    standardizer = (data_lib.Standardizer.from_data(
        splits.train, passthrough=schema.indices(schema_lib.CATEGORICAL))
                    if splits.kind == 'table' else
                    data_lib.Standardizer.identity(splits.feature_shape))
  else:
    raise UserError(f'{model_dir} has no {run_dir.STANDARDIZER}: it is not a '
                    'trained pm_zoo run; pass the model_dir of pm-train')
  transform = lambda a: None if a is None else np.asarray(
      standardizer.transform(a), np.float32)
  splits = data_lib.DataSplits(
      name=splits.name, kind=splits.kind, train=transform(splits.train),
      test=transform(splits.test), validation=transform(splits.validation),
      train_labels=splits.train_labels, test_labels=splits.test_labels,
      feature_names=splits.feature_names, schema=schema)
  return splits, standardizer


def table_options(splits: data_lib.DataSplits) -> Dict:
  """The runtime model arguments a table needs beyond its width.

  ``cardinalities`` (K per column, 0 = numeric) when a column is
  categorical; ``observed_inputs`` when the training split has missing
  cells (the VAE encoder then sees ``concat(x * m, m)``). Empty for a
  complete all-numeric table: its model is the one it always was.
  """
  options = {}
  if splits.kind != 'table':
    return options
  if splits.schema is not None and not splits.schema.numeric_only:
    options['cardinalities'] = list(splits.schema.cardinalities)
  if bool(np.isnan(splits.train).any()):
    options['observed_inputs'] = True
  return options


def build_model(feature_shape, strategy: tf.distribute.Strategy,
                seed: Optional[int] = None, table: Optional[Dict] = None):
  """The gin-configured ``PosteriorMatchingVAE``, built in the strategy scope.

  With ``seed``, the initial weights are a function of it (Keras' global
  seeds are set first; a resumed run restores its weights anyway), so two
  runs of the same command start from the same weights. ``table``: the
  runtime arguments of ``table_options`` (column cardinalities, observed
  inputs).
  """
  with keras_api.seeded_initializers(seed), strategy.scope():
    model = matching.PosteriorMatchingVAE(feature_shape, **(table or {}))
    x = tf.zeros([2, *feature_shape])
    model(x, tf.ones_like(x))
  return model


def model_spec(model, splits: data_lib.DataSplits,
               table: Optional[Dict] = None) -> Dict:
  """What a checkpoint of this run holds: data shape and variable shapes
  (and the table options the model was built with, if any)."""
  return {
      'kind': splits.kind,
      'feature_shape': list(splits.feature_shape),
      'latent_dim': model.latent_dim,
      'variable_shapes': [v.shape.as_list() for v in model.variables],
      **(table or {}),
  }


def train(model_dir: str, strategy_name: str = 'default',
          tpu: Optional[str] = None, data_path: Optional[str] = None,
          test_data_path: Optional[str] = None,
          tfds_data_dir: Optional[str] = None,
          vae_checkpoint: Optional[str] = None) -> Dict[str, float]:
  """Trains the gin-configured experiment into ``model_dir`` (resumable)."""
  strategy = strategy_lib.make_strategy(strategy_name, tpu)
  config = trainer_lib.TrainConfig()
  if vae_checkpoint:
    config.vae_checkpoint = vae_checkpoint
  options = data_options(model_dir, data_path, test_data_path, tfds_data_dir)
  splits, standardizer = load_standardized(options, model_dir, fit=True)
  table = table_options(splits)
  model = build_model(splits.feature_shape, strategy, seed=config.seed,
                      table=table)
  spec = model_spec(model, splits, table)
  run_dir.check_model_spec(model_dir, spec)
  chief = strategy_lib.is_chief(strategy)
  if chief:
    os.makedirs(model_dir, exist_ok=True)
    run_dir.write_json(os.path.join(model_dir, run_dir.MODEL_SPEC), spec)
    run_dir.write_json(os.path.join(model_dir, run_dir.DATA), options)
    standardizer.save(os.path.join(model_dir, run_dir.STANDARDIZER))
    if splits.schema is not None:
      splits.schema.save(os.path.join(model_dir, schema_lib.SCHEMA_FILE))
    run_dir.write_text(os.path.join(model_dir, run_dir.CONFIG),
                       gin.config_str())
  if config.batch_size > len(splits.train):
    raise UserError(f'TrainConfig.batch_size={config.batch_size} exceeds the '
                    f'{len(splits.train)} training examples: lower it')
  image_fn = None
  if splits.kind == 'image' and chief and config.image_summary_every:
    image_fn = evaluation.inpainting_summary_fn(model, splits.test[:8])
  eval_fn = None
  if chief and (config.eval_every or config.eval_every_seconds):
    eval_fn = evaluation.periodic_eval_fn(
        model, splits.test[:config.eval_examples], splits.kind,
        evaluation.EvalConfig(), config.objective,
        labels=splits.test_labels)
  train_mask = config.train_mask
  trainer = trainer_lib.Trainer(
      model, strategy, model_dir, config, image_summary_fn=image_fn,
      eval_fn=eval_fn,
      on_fresh_start=lambda: model.begin_stage(config.objective, splits.train))

  def dataset_fn(start_step):
    return data_lib.train_batches(
        splits.train, config.batch_size, seed=config.seed,
        start_step=start_step, mask_sampler=train_mask)

  def write_operative_config():
    if chief:
      run_dir.write_text(os.path.join(model_dir, run_dir.OPERATIVE_CONFIG),
                         gin.operative_config_str())

  logging.info('training %s on %s: %d train / %d test examples of shape %s',
               type(model.vae).__name__, splits.name, len(splits.train),
               len(splits.test), splits.feature_shape)
  result = trainer.train(dataset_fn, on_first_step=write_operative_config)
  if chief and result:
    record_training(model_dir, config.num_steps, result)
  return result


def record_training(model_dir: str, step: int, result: Dict) -> None:
  """Adds this segment's wall time to ``training.json`` (resumes sum up)."""
  path = os.path.join(model_dir, run_dir.TRAINING)
  previous = run_dir.read_json(path) or {}
  run_dir.write_json(path, {
      'step': step,
      'seconds': previous.get('seconds', 0.0) + result.get('seconds', 0.0),
      'segments': previous.get('segments', 0) + 1,
      # The checkpointed training clock: all segments, killed ones too,
      # without the periodic evaluations.
      'train_seconds': result.get('train_seconds'),
      'nonfinite_steps': result.get('nonfinite_steps', 0),
      'final_loss': result.get('loss'),
  })


def restore_for_eval(model_dir: str, gin_bindings: Sequence[str] = ()):
  """Parses the run's config and returns (model, step) restored from it."""
  config_path = os.path.join(model_dir, run_dir.CONFIG)
  if not os.path.exists(config_path):
    raise UserError(f'{model_dir} holds no {run_dir.CONFIG}: pass the '
                    '--model_dir of a pm-train run')
  configs.parse([config_path], gin_bindings)
  spec = run_dir.read_json(os.path.join(model_dir, run_dir.MODEL_SPEC))
  strategy = tf.distribute.get_strategy()
  table = {k: spec[k] for k in ('cardinalities', 'observed_inputs')
           if k in spec}
  model = build_model(spec['feature_shape'], strategy, table=table)
  latest = tf.train.latest_checkpoint(
      os.path.join(model_dir, trainer_lib.CHECKPOINT_SUBDIR))
  if not latest:
    raise UserError(f'{model_dir} has no checkpoint yet: train it with '
                    'pm-train first')
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(model=model, global_step=step).restore(
      latest).expect_partial().assert_existing_objects_matched()
  # A run that kept a moving average of its weights is evaluated (and
  # exported, served) with it.
  trainer_lib.restore_ema_weights(model, latest, trainer_lib.TrainConfig())
  return model, int(step.numpy())


def evaluate(model_dir: str, data_path: Optional[str] = None,
             test_data_path: Optional[str] = None,
             tfds_data_dir: Optional[str] = None,
             gin_bindings: Sequence[str] = ()) -> Dict:
  """Evaluates the latest checkpoint; writes metrics.json (and figures)."""
  model, step = restore_for_eval(model_dir, gin_bindings)
  options = data_options(model_dir, data_path, test_data_path, tfds_data_dir)
  splits, standardizer = load_standardized(options, model_dir, fit=False)
  config = evaluation.EvalConfig()
  figure = (os.path.join(model_dir, run_dir.FIGURES, 'inpainting.png')
            if splits.kind == 'image' else None)
  metrics = evaluation.evaluate_imputation(
      model, splits.test, splits.kind, config, figure_path=figure,
      feature_scale=standardizer.scale if splits.kind == 'table' else None,
      cardinalities=(splits.schema.cardinalities
                     if splits.schema is not None else None))
  result = {'dataset': splits.name, 'step': step,
            'test_examples': int(min(len(splits.test),
                                     config.max_examples or len(splits.test))),
            **metrics}
  run_dir.write_json(os.path.join(model_dir, run_dir.METRICS), result)
  return result
