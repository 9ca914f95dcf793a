"""Active feature acquisition for a pm-train run (what ``pm-acquire`` runs).

Two stages over a trained run directory D, the run itself left untouched:

* ``train_lookahead(D)``: restores the Posterior Matching model frozen and
  trains a ``LookaheadModel`` through the generic ``Trainer`` into
  ``D/lookahead/`` (its own checkpoints, summaries, ``config.gin``,
  ``model_spec.json``, ``training.json`` and ``base.json``, the model step it
  was trained on). Resumable like pm-train.
* ``acquire(D)``: runs greedy acquisition episodes on the first test
  instances with every method of ``AcquisitionConfig.methods`` and writes
  ``acquisition.json``, ``figures/acquisition.png`` (RMSE vs number
  acquired, one curve per method) and, for images,
  ``figures/acquisition_trajectory_<method>.png`` (the first instance:
  observed pixels and imputation per step).

``Acquirer`` is the Python entry point for one's own partially observed
instances.
"""
import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from pm_zoo import configs
from pm_zoo import data as data_lib
from pm_zoo import experiment
from pm_zoo import figures
from pm_zoo import keras_api
from pm_zoo import masks as masks_lib
from pm_zoo import run_dir
from pm_zoo.acquisition import episodes as episodes_lib
from pm_zoo.acquisition import features
from pm_zoo.acquisition import policies
from pm_zoo.acquisition.objective import LookaheadModel
from pm_zoo.acquisition.objective import OBJECTIVE
from pm_zoo.acquisition.serving import NextFeature
from pm_zoo.errors import UserError
from pm_zoo.training import schedules
from pm_zoo.training import trainer as trainer_lib

LOOKAHEAD_DIR = 'lookahead'
BASE = 'base.json'
ACQUISITION = 'acquisition.json'
METHODS = ('random', 'lookahead', 'sampling')
REPORT_STEPS = (0, 10, 20, 30)


@gin.configurable
@dataclasses.dataclass
class LookaheadConfig:
  """Training of the lookahead network (bound from gin; see TrainConfig).

  ``train_mask`` draws the partial observations x_o the lookahead network
  learns from (default: ``UniformCountMask()``, 0..D features observed).
  """
  num_steps: int = 10000
  batch_size: int = 32
  learning_rate: object = 1e-3
  train_mask: Optional[Callable] = None
  seed: int = 0
  log_every: int = 100
  summary_every: int = 100
  checkpoint_every: int = 1000
  max_to_keep: int = 3
  max_consecutive_nonfinite: int = 20
  grad_clip_norm: Optional[float] = None
  jit_compile: bool = False
  steps_per_loop: int = 100

  def train_config(self) -> trainer_lib.TrainConfig:
    """The generic trainer's config for this stage (every field explicit)."""
    return trainer_lib.TrainConfig(
        num_steps=self.num_steps, batch_size=self.batch_size,
        objective=OBJECTIVE, learning_rate=self.learning_rate,
        kl_schedule=schedules.ConstantKL(0.0),
        train_mask=self.train_mask or masks_lib.UniformCountMask(),
        seed=self.seed, log_every=self.log_every,
        summary_every=self.summary_every,
        checkpoint_every=self.checkpoint_every, image_summary_every=0,
        max_to_keep=self.max_to_keep,
        max_consecutive_nonfinite=self.max_consecutive_nonfinite,
        grad_clip_norm=self.grad_clip_norm, jit_compile=self.jit_compile,
        vae_checkpoint=None, steps_per_loop=self.steps_per_loop)


@gin.configurable
@dataclasses.dataclass
class AcquisitionConfig:
  """The episodes of ``acquire`` (bound from gin).

  Attributes:
    methods: any of 'random', 'lookahead', 'sampling'.
    num_instances: the first N test instances (None: all).
    num_acquisitions: T acquisitions per episode (at most the feature count).
    imputation_samples: imputations averaged for the RMSE at each step.
    sampling_samples: K of the sampling-based rule (paper: 50).
    batch_size: instances per batch (every method: the same batches, so
      the same imputation seeds at every step).
    rows_per_call: bound on one partial-encoder call of the sampling rule
      (it splits a batch into parts of at most rows_per_call // D).
    entropy_samples: Monte Carlo samples of H(q) for non-Gaussian heads.
    sampling_jit_compile: compile the sampling step with XLA.
    seed: seed of imputations and random choices.
  """
  methods: Sequence[str] = METHODS
  num_instances: Optional[int] = 1000
  num_acquisitions: int = 50
  imputation_samples: int = 50
  sampling_samples: int = 50
  batch_size: int = 50
  rows_per_call: int = 4096
  entropy_samples: int = 16
  sampling_jit_compile: bool = False
  seed: int = 0

  def check(self):
    unknown = [m for m in self.methods if m not in METHODS]
    if unknown or not self.methods:
      raise UserError(f'AcquisitionConfig.methods has {unknown or "nothing"}: '
                      f'pick from {list(METHODS)}')
    for name in ('num_acquisitions', 'imputation_samples', 'sampling_samples',
                 'batch_size', 'rows_per_call'):
      if getattr(self, name) < 1:
        raise UserError(f'AcquisitionConfig.{name} must be >= 1')
    if self.num_instances is not None and self.num_instances < 1:
      raise UserError('AcquisitionConfig.num_instances must be >= 1 (or None '
                      'for the whole test split)')


@dataclasses.dataclass
class Run:
  """A restored run: model, its step, data in model space, standardiser."""
  model_dir: str
  model: object
  step: int
  splits: data_lib.DataSplits
  standardizer: data_lib.Standardizer


def lookahead_dir(model_dir: str) -> str:
  return os.path.join(model_dir, LOOKAHEAD_DIR)


def load_run(model_dir: str, gin_files: Sequence[str] = (),
             gin_bindings: Sequence[str] = (), data_path=None,
             test_data_path=None, tfds_data_dir=None) -> Run:
  """Restores the run's model; parses its config, the lookahead stage's
  stored config (if trained), then ``gin_files`` and ``gin_bindings``."""
  stored = os.path.join(lookahead_dir(model_dir), run_dir.CONFIG)
  includes = [stored] if os.path.exists(stored) else []
  includes += [os.path.abspath(configs.resolve(f)) for f in gin_files]
  bindings = [f"include '{p}'" for p in includes] + list(gin_bindings)
  model, step = experiment.restore_for_eval(model_dir, bindings)
  options = experiment.data_options(model_dir, data_path, test_data_path,
                                    tfds_data_dir)
  splits, standardizer = experiment.load_standardized(options, model_dir,
                                                      fit=False)
  return Run(model_dir, model, step, splits, standardizer)


def _build_lookahead(model, seed: Optional[int] = None) -> LookaheadModel:
  """The lookahead network of ``model``, built (initial weights from seed)."""
  with keras_api.seeded_initializers(seed):
    lookahead = LookaheadModel(model)
    x = tf.zeros([2, *model.feature_shape])
    lookahead(x, tf.zeros_like(x))
  return lookahead


def _spec(lookahead: LookaheadModel) -> Dict:
  return {'feature_shape': list(lookahead.feature_shape),
          'latent_dim': lookahead.pm_latent_dim,
          'variable_shapes': [v.shape.as_list()
                              for v in lookahead.network.variables]}


def _check_base(model_dir: str, step: int) -> None:
  """Refuses a lookahead network trained on another step of the model."""
  base = run_dir.read_json(os.path.join(lookahead_dir(model_dir), BASE))
  if base is not None and base.get('step') != step:
    raise UserError(
        f'the lookahead network in {lookahead_dir(model_dir)} was trained on '
        f'step {base.get("step")} of the model, which is now at step {step}: '
        f'delete {lookahead_dir(model_dir)} and train it again with '
        f'pm-acquire --model_dir={model_dir} --train_lookahead')


def train_lookahead(run: Run) -> Dict[str, float]:
  """Trains (or resumes) the lookahead network of ``run`` into D/lookahead."""
  out = lookahead_dir(run.model_dir)
  _check_base(run.model_dir, run.step)
  cfg = LookaheadConfig().train_config()
  strategy = tf.distribute.get_strategy()
  lookahead = _build_lookahead(run.model, seed=cfg.seed)
  spec = _spec(lookahead)
  run_dir.check_model_spec(out, spec)
  if cfg.batch_size > len(run.splits.train):
    raise UserError(f'LookaheadConfig.batch_size={cfg.batch_size} exceeds the '
                    f'{len(run.splits.train)} training examples: lower it')
  os.makedirs(out, exist_ok=True)
  run_dir.write_json(os.path.join(out, run_dir.MODEL_SPEC), spec)
  run_dir.write_json(os.path.join(out, BASE), {'step': run.step})
  run_dir.write_text(os.path.join(out, run_dir.CONFIG), gin.config_str())
  trainer = trainer_lib.Trainer(lookahead, strategy, out, cfg)

  def dataset_fn(start_step):
    return data_lib.train_batches(
        run.splits.train, cfg.batch_size, seed=cfg.seed,
        start_step=start_step, mask_sampler=cfg.train_mask)

  def write_operative_config():
    run_dir.write_text(os.path.join(out, run_dir.OPERATIVE_CONFIG),
                       gin.operative_config_str())

  logging.info('training the lookahead network of %s (model step %d) into %s',
               run.model_dir, run.step, out)
  result = trainer.train(dataset_fn, on_first_step=write_operative_config)
  if result:
    experiment.record_training(out, cfg.num_steps, result)
  return result


def has_lookahead(model_dir: str) -> bool:
  """Whether ``model_dir`` holds a trained lookahead network."""
  return bool(tf.train.latest_checkpoint(os.path.join(
      lookahead_dir(model_dir), trainer_lib.CHECKPOINT_SUBDIR)))


def restore_lookahead(model_dir: str, model, step: int):
  """(LookaheadNetwork, its training step) of the run at model ``step``.

  The gin config must hold the lookahead stage's bindings (``load_run``
  parses ``D/lookahead/config.gin``). Raises a UserError that says what to
  do when there is no trained network or it belongs to another model step.
  """
  out = lookahead_dir(model_dir)
  latest = tf.train.latest_checkpoint(
      os.path.join(out, trainer_lib.CHECKPOINT_SUBDIR))
  if not latest:
    raise UserError(f'{model_dir} has no trained lookahead network: train '
                    f'it with pm-acquire --model_dir={model_dir} '
                    '--train_lookahead')
  _check_base(model_dir, step)
  lookahead = _build_lookahead(model)
  run_dir.check_model_spec(out, _spec(lookahead))
  trained = tf.Variable(0, dtype=tf.int64)
  holder = tf.train.Checkpoint(
      model=tf.train.Checkpoint(network=lookahead.network),
      global_step=trained)
  try:
    status = holder.restore(latest)
    status.expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise UserError(f'cannot restore the lookahead network from {latest}: '
                    f'{str(e).splitlines()[0]}') from e
  return lookahead.network, int(trained.numpy())


def _policy(name: str, run: Run, cfg: AcquisitionConfig, step_module):
  if name == 'random':
    return policies.RandomPolicy(run.model.feature_shape)
  if name == 'lookahead':
    return policies.LookaheadPolicy(step_module)
  return policies.SamplingPolicy(
      run.model, cfg.sampling_samples, cfg.entropy_samples,
      cfg.rows_per_call, jit_compile=cfg.sampling_jit_compile)


def _curve_summary(rmse: np.ndarray) -> Dict:
  count = len(rmse)
  sem = rmse.std(axis=0, ddof=1) / np.sqrt(count) if count > 1 else (
      np.zeros(rmse.shape[1]))
  return {'rmse': rmse.mean(axis=0).tolist(), 'rmse_sem': sem.tolist()}


def acquire(run: Run, output_dir: Optional[str] = None) -> Dict:
  """Runs the episodes of every method; writes the JSON and figures."""
  cfg = AcquisitionConfig()
  cfg.check()
  output_dir = output_dir or run.model_dir
  step_module, lookahead_step = None, None
  if 'lookahead' in cfg.methods:
    network, lookahead_step = restore_lookahead(run.model_dir, run.model,
                                                run.step)
    step_module = NextFeature(network, run.standardizer)
  test = run.splits.test[:cfg.num_instances]
  feature_shape = tuple(run.model.feature_shape)
  num_features = features.num_features(feature_shape)
  steps = min(cfg.num_acquisitions, num_features)
  results, runs = {}, {}
  for name in cfg.methods:
    policy = _policy(name, run, cfg, step_module)
    episodes = episodes_lib.run_episodes(
        run.model, policy, test, steps, cfg.imputation_samples,
        cfg.batch_size, seed=cfg.seed, name=name)
    runs[name] = episodes
    results[name] = {
        **_curve_summary(episodes.rmse),
        'seconds': episodes.seconds,
        # One batched greedy step (batch_size instances), warm.
        'policy_ms_per_batch': 1e3 * episodes.policy_seconds / max(
            1, episodes.policy_calls),
    }
  report = [t for t in REPORT_STEPS if t <= steps]
  result = {
      'dataset': run.splits.name, 'kind': run.splits.kind,
      'model_step': run.step, 'lookahead_step': lookahead_step,
      'num_instances': len(test), 'num_acquisitions': steps,
      'imputation_samples': cfg.imputation_samples,
      'sampling_samples': cfg.sampling_samples,
      'entropy': policies.entropy_method(run.model),
      'rmse_units': ('pixel values in [0, 1]' if run.splits.kind == 'image'
                     else 'standardised units (train-split std)'),
      'batch_size': cfg.batch_size,
      'methods': results,
      'report_steps': report,
      'rmse_at': {name: [r['rmse'][t] for t in report]
                  for name, r in results.items()},
      'trajectory': _trajectory(runs, run.splits.feature_names),
  }
  if 'lookahead' in results and 'sampling' in results:
    look = np.asarray(results['lookahead']['rmse'][1:])
    samp = np.asarray(results['sampling']['rmse'][1:])
    relative = (look - samp) / np.maximum(samp, 1e-12)
    result['lookahead_vs_sampling'] = {
        'mean_relative_difference': float(relative.mean()),
        'max_relative_difference': float(relative.max())}
  _write_outputs(output_dir, result, runs, test, feature_shape,
                 run.splits.kind)
  return result


def _trajectory(runs, feature_names) -> Dict:
  out = {}
  for name, episodes in runs.items():
    order = episodes.order[0].tolist()
    out[name] = {'acquired': order, 'rmse': episodes.rmse[0].tolist()}
    if feature_names:
      out[name]['acquired_names'] = [feature_names[i] for i in order]
  return {'instance': 0, 'figure_steps': _figure_steps(
      next(iter(runs.values())).order.shape[1]), 'methods': out}


def _figure_steps(steps: int):
  """The steps shown in the trajectory pictures (at most 10 columns)."""
  return sorted({int(t) for t in np.linspace(0, steps, 10).round()})


def _write_outputs(output_dir, result, runs, test, feature_shape, kind):
  steps = result['num_acquisitions']
  x = np.arange(steps + 1)
  curves = {name: (x, r['rmse'], r['rmse_sem'])
            for name, r in result['methods'].items()}
  figure_dir = os.path.join(output_dir, run_dir.FIGURES)
  figures.save_curves(
      os.path.join(figure_dir, 'acquisition.png'), curves,
      xlabel='features acquired',
      ylabel=f'RMSE of the imputation ({result["rmse_units"]})',
      title=f'{result["dataset"]}: greedy acquisition, '
            f'{result["num_instances"]} instances')
  if kind == 'image':
    columns = result['trajectory']['figure_steps']
    for name, episodes in runs.items():
      masks = episodes.masks_of_first(feature_shape)[columns]
      figures.save_inpainting_grid(
          os.path.join(figure_dir, f'acquisition_trajectory_{name}.png'),
          np.repeat(test[:1], len(columns), axis=0), masks, None,
          mean=episodes.first_imputations[columns],
          max_columns=len(columns),
          column_labels=[f'{t} acquired' for t in columns])
  run_dir.write_json(os.path.join(output_dir, ACQUISITION), result)


class Acquirer:
  """Next-feature choices for one's own partially observed instances.

  ``Acquirer.from_run(D)`` restores run D (and its lookahead network);
  ``next_feature(x, mask, method)`` takes RAW ``x`` and ``mask``
  ``[N, *feature_shape]`` (1 = observed) and returns (index ``[N]``,
  scores ``[N, num_features]``, +inf for observed features): 'lookahead'
  scores are the lookahead entropies, 'sampling' ones Eq. 6's estimates.
  """

  def __init__(self, run: Run, lookahead: bool = True,
               sampling_samples: int = 50):
    self.run = run
    self.feature_shape = tuple(run.model.feature_shape)
    self.step = None
    if lookahead:
      network, _ = restore_lookahead(run.model_dir, run.model, run.step)
      self.step = NextFeature(network, run.standardizer)
    self.sampling = policies.SamplingPolicy(run.model, sampling_samples)

  @classmethod
  def from_run(cls, model_dir: str, lookahead: bool = True, **kwargs):
    return cls(load_run(model_dir), lookahead=lookahead, **kwargs)

  def next_feature(self, x, mask, method: str = 'lookahead', seed: int = 0):
    """(index ``[N]``, scores ``[N, D]``) for raw x, mask ``[N, *fs]``.

    A NaN in ``x`` counts as missing. Raises ``UserError`` for a mask of
    the wrong shape or an instance with every feature observed.
    """
    x = np.asarray(x, np.float32)
    mask = np.asarray(mask, np.float32)
    if x.ndim == len(self.feature_shape):  # One instance.
      x, mask = x[np.newaxis], mask[np.newaxis]
    if tuple(mask.shape) == tuple(x.shape):
      mask = ((mask > 0) & np.isfinite(x)).astype(np.float32)
    features.check_instance(x, mask, self.feature_shape, 'next_feature')
    if method == 'lookahead':
      if self.step is None:
        raise UserError('this Acquirer was made without its lookahead '
                        'network: use Acquirer.from_run(model_dir)')
      out = self.step.next_feature(tf.constant(x), tf.constant(mask))
      return out['index'].numpy(), out['expected_entropy'].numpy()
    if method != 'sampling':
      raise UserError(f"method must be 'lookahead' or 'sampling', got "
                      f'{method!r}')
    x = mask * self.run.standardizer.transform(np.where(mask > 0, x, 0.0))
    index, scores = self.sampling.next_feature(
        tf.constant(x.astype(np.float32)), tf.constant(mask),
        tf.constant([0, seed], tf.int64))
    return index.numpy(), scores.numpy()
