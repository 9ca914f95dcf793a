"""The training loop: a compiled, distributed step, checkpoints, summaries, progress.

The loop knows nothing of data sources or model families: it takes a model
with ``per_example_losses(x, mask, kl_weight, objective, training, noise,
observed)`` (per-example terms, one of them ``loss``),
``trainable_variables_for(objective)`` and ``noise_size`` (standard normals
per example), a function giving a ``tf.data.Dataset`` of GLOBAL batches
``{'x', 'mask', 'step'}`` (and ``'observed'``, the data's per-cell mask, for
incomplete data) from a start step, and a strategy.

Loss scaling: every replica divides the sum of its per-example losses by the
GLOBAL batch size and the gradients are summed over replicas, so one device,
N mirrored devices and N workers compute the same update for the same global
batch. Each replica takes a fixed slice of every global batch (rows
``[r b, (r + 1) b)`` for replica r of per-replica batch b), and the latent
noise is drawn per global batch, so each example keeps its draw whichever
device processes it.

Non-finite steps: gradients are all-reduced first, so every replica sees the
same finiteness flag; a step whose loss or gradients are not finite applies
no update (the optimizer's slots and iteration count do not move either), is
counted in ``nonfinite_steps`` (a summary scalar), and after
``max_consecutive_nonfinite`` such steps in a row training stops with
``TrainingDivergedError``; no checkpoint is written inside such a streak, so
the last checkpoint is the last healthy state.

Loops: one call of the compiled loop runs up to ``steps_per_loop`` steps (a
``tf.while_loop`` over the distributed iterator, as Model Garden's Orbit
does), so the host waits on the device once per loop instead of once per
step. A loop ends at every multiple of the log, summary, checkpoint and image
periods, which stay exact, and early when the non-finite streak reaches its
limit.

Everything inside a step is TPU-compatible: static shapes, TF ops only,
stateless random numbers from the input pipeline, the conditional update in
cross-replica context (``merge_call``); the whole replica step compiles with
XLA. (Dropout inside a model draws from Keras' stateful generator: XLA
compiles it, but its masks depend on the device count.) With ``jit_compile`` each replica's forward and backward pass is
compiled with XLA (a TPU compiles everything anyway).

Preemption: checkpoints are written by ``tf.train.CheckpointManager``: the
tensors go to ``ckpt-N_temp/``, are renamed to ``ckpt-N.index`` and
``ckpt-N.data-*``, and only then is the ``checkpoint`` state file replaced
(write aside, rename), so a process killed at any moment leaves the state
file naming the last complete checkpoint. On start the newest checkpoint that
restores is used (an unreadable one is skipped with a warning); the data
stream is a pure function of (seed, step), so a resumed run sees the batches
the uninterrupted run would have.
"""
import dataclasses
import glob
import json
import os
import re
import shutil
import time
from typing import Callable, Dict, List, Optional

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.training import schedules
from pm_zoo.training import strategy as strategy_lib

CHECKPOINT_SUBDIR = 'checkpoints'
# The periodic evaluation's curve, one row per evaluation (a resumed run
# keeps the rows before its start).
EVAL_CURVE = 'eval_curve.json'
# Seed offset of the latent noise stream (the masks use seed + 1).
_NOISE_SEED_OFFSET = 7919


class TrainingDivergedError(RuntimeError):
  """Too many non-finite steps in a row."""


@gin.configurable
@dataclasses.dataclass
class TrainConfig:
  """Hyperparameters of a training run (bound from gin).

  Attributes:
    num_steps: total number of optimisation steps of the run.
    batch_size: GLOBAL batch size (split evenly across replicas).
    objective: passed to the model: 'joint' (-ELBO + L_PM), 'vae' (-ELBO
      only), 'partial' (L_PM only, VAE frozen; restore the VAE with
      ``vae_checkpoint``), or what another model defines.
    learning_rate: a float or a Keras learning-rate schedule.
    kl_schedule: callable step -> KL weight (see ``schedules``).
    train_mask: mask distribution for training (``pm_zoo.masks``).
    seed: seed of data order, masks and latent samples.
    log_every / summary_every / checkpoint_every / image_summary_every: periods
      in steps (0 disables image summaries).
    max_to_keep: checkpoints kept.
    max_consecutive_nonfinite: stop after this many non-finite steps in a row.
    grad_clip_norm: clip the global gradient norm (None: no clipping).
    jit_compile: compile the train step with XLA.
    vae_checkpoint: a checkpoint (or model dir) of a trained VAE restored
      when a run starts from step 0: required by objective 'partial' (the
      frozen VAE), a warm start for any other (a family's next stage).
    steps_per_loop: most steps per call of the compiled loop (the periods
      above end a loop early, so they stay exact).
    grad_skip_threshold: skip the update of a step whose global gradient norm
      (before clipping) is above this (VDVAE's skip_threshold); such a step
      is counted with the non-finite ones (None: never skip a finite step).
    ema_decay: keep an exponential moving average of the trained weights,
      ``ema <- decay ema + (1 - decay) w`` after every applied update, in the
      checkpoint (``ema``), and evaluate and export with it (None: none).
    eval_every: every this many steps call the run's periodic evaluation
      (e.g. PSNR on a fixed test subset; with the EMA weights when there is
      an EMA), written to TensorBoard (``eval/``) and appended to
      ``eval_curve.json`` (0: never).
    eval_every_seconds: also run it when this much training wall time has
      passed since the last one (0: never; checked between loops).
    eval_examples: test rows of that periodic evaluation.
    eval_raw_weights: with an EMA, also evaluate the trained weights
      themselves and log their metrics as ``raw_<name>`` beside the EMA's
      (twice the evaluation time; in short runs the EMA lags the weights by
      ~1 / (1 - ema_decay) steps, and this shows by how much).
  """
  num_steps: int = 10000
  batch_size: int = 256
  objective: str = 'joint'
  learning_rate: object = 1e-3
  kl_schedule: Optional[Callable] = None
  train_mask: Optional[Callable] = None
  seed: int = 0
  log_every: int = 100
  summary_every: int = 100
  checkpoint_every: int = 1000
  image_summary_every: int = 1000
  max_to_keep: int = 3
  max_consecutive_nonfinite: int = 20
  grad_clip_norm: Optional[float] = None
  jit_compile: bool = False
  vae_checkpoint: Optional[str] = None
  steps_per_loop: int = 100
  grad_skip_threshold: Optional[float] = None
  ema_decay: Optional[float] = None
  eval_every: int = 0
  eval_every_seconds: float = 0.0
  eval_examples: int = 1000
  eval_raw_weights: bool = False

  def __post_init__(self):
    if self.kl_schedule is None:
      self.kl_schedule = schedules.ConstantKL()
    positive = ('batch_size', 'log_every', 'summary_every', 'checkpoint_every',
                'max_consecutive_nonfinite', 'steps_per_loop')
    for name in positive:
      if int(getattr(self, name)) < 1:
        raise UserError(f'TrainConfig.{name} is {getattr(self, name)}: it '
                        'must be a positive integer')
    for name in ('num_steps', 'image_summary_every', 'eval_every',
                 'eval_every_seconds', 'eval_examples'):
      if int(getattr(self, name)) < 0:
        raise UserError(f'TrainConfig.{name} is {getattr(self, name)}: it '
                        'must be >= 0')
    if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
      raise UserError(f'TrainConfig.ema_decay is {self.ema_decay}: it must be '
                      'in [0, 1), or None for no moving average')
    if (self.grad_skip_threshold is not None and
        not self.grad_skip_threshold > 0):
      raise UserError(f'TrainConfig.grad_skip_threshold is '
                      f'{self.grad_skip_threshold}: it must be > 0, or None')


def _format_duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


_LOGGED_TERMS = ('loss', 'elbo', 'kl', 'reconstruction', 'perplexity',
                 'dead_codes', 'pm_loss')
_NOT_TERMS = ('grad_norm', 'kl_weight', 'finite')


def _format_terms(metrics: Dict[str, float]) -> str:
  """'loss 1.2345  elbo ...': the model's main loss terms, those it has."""
  names = [k for k in _LOGGED_TERMS if k in metrics] or [
      k for k in sorted(metrics) if k not in _NOT_TERMS]
  return '  '.join(f'{k} {metrics[k]:.4f}' for k in names)


def checkpoint_candidates(directory: str) -> List[str]:
  """Checkpoint prefixes in ``directory``, newest first.

  The ones the ``checkpoint`` state file lists, so that the files of a save
  interrupted before the state file named it are ignored; without a state
  file, every ``ckpt-N.index`` on disk (each must still restore).
  """
  state = tf.train.get_checkpoint_state(directory)
  if state is not None:
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
      paths.append(state.model_checkpoint_path)
  else:
    paths = [p[:-len('.index')]
             for p in glob.glob(os.path.join(directory, 'ckpt-*.index'))]
  return sorted(set(paths), key=_checkpoint_number, reverse=True)


def _checkpoint_number(prefix: str) -> int:
  match = re.search(r'-(\d+)$', prefix)
  return int(match.group(1)) if match else -1


def _remove_save_leftovers(directory: str) -> None:
  """Deletes ``ckpt-N_temp`` folders that a killed save left behind."""
  for path in glob.glob(os.path.join(directory, '*_temp')):
    shutil.rmtree(path, ignore_errors=True)


class Trainer:
  """Runs ``config.num_steps`` steps of a model under a strategy.

  The model must have been created in ``strategy.scope()`` and built (called
  once); the trainer creates its optimizer and counters in the same scope.
  """

  def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy,
               model_dir: str, config: TrainConfig,
               image_summary_fn: Optional[Callable[[], np.ndarray]] = None,
               on_fresh_start: Optional[Callable[[], None]] = None,
               eval_fn: Optional[Callable[[], Dict[str, float]]] = None):
    self.model = model
    # Called once when a run starts from step 0 (no checkpoint to resume),
    # after the warm start and before the first step.
    self.on_fresh_start = on_fresh_start
    self.eval_fn = eval_fn
    self.strategy = strategy
    self.model_dir = model_dir
    self.config = config
    self.image_summary_fn = image_summary_fn
    self.is_chief = strategy_lib.is_chief(strategy)
    self.variables = model.trainable_variables_for(config.objective)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
      raise UserError(f'TrainConfig.batch_size={config.batch_size} does not '
                      f'split evenly over {replicas} replicas: use a multiple '
                      f'of {replicas}')
    with strategy.scope():
      self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name='global_step')
      self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name='nonfinite_steps')
      # Wall time spent training, summed over resumed segments, without
      # the periodic evaluations: the x axis of a curve one can quote.
      # Checkpointed apart from the rest (``_restore``), so that checkpoints
      # written before it existed still restore.
      self.train_seconds = tf.Variable(0.0, dtype=tf.float64,
                                       trainable=False, name='train_seconds')
      # Not checkpointed: a streak starts afresh in every run.
      self.consecutive_nonfinite = tf.Variable(
          0, dtype=tf.int64, trainable=False, name='consecutive_nonfinite')
      # Create the optimizer slots now so that a restore fills them in.
      self.optimizer.build(self.variables)
      self.ema = (make_ema_variables(self.variables)
                  if config.ema_decay is not None else None)
    extra = {'ema': self.ema} if self.ema is not None else {}
    self._restorable = dict(
        model=model, optimizer=self.optimizer, global_step=self.global_step,
        nonfinite_steps=self.nonfinite_steps, **extra)
    self.checkpoint = tf.train.Checkpoint(train_seconds=self.train_seconds,
                                          **self._restorable)
    self._write_dir = strategy_lib.WorkerDir(model_dir, strategy)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(self._write_dir.path, CHECKPOINT_SUBDIR),
        max_to_keep=config.max_to_keep, step_counter=self.global_step,
        checkpoint_interval=None)
    self.writer = (tf.summary.create_file_writer(
        os.path.join(model_dir, 'train')) if self.is_chief else
                   tf.summary.create_noop_writer())
    # XLA compiles each replica's forward and backward pass. The whole step
    # compiles too (a TPU does that; tests check it), but on CPU an XLA
    # cluster holding the update ran the gas model at half the speed.
    self._compute_fn = self._compute
    if config.jit_compile and not isinstance(strategy,
                                             tf.distribute.TPUStrategy):
      self._compute_fn = tf.function(self._compute, jit_compile=True)
    self._metric_names = []
    self._eval_writer = None  # made at the first periodic evaluation
    self._loop = tf.function(self._steps)

  # ---------------------------------------------------------------- restore
  def restore_or_initialize(self) -> int:
    """Resumes from the newest checkpoint that restores; returns the step.

    A checkpoint that fails to restore (unreadable files) is skipped with a
    warning in favour of the one before it; when checkpoints exist and none
    restores, that is an error, not a silent fresh start.
    """
    directory = os.path.join(self.model_dir, CHECKPOINT_SUBDIR)
    if self.is_chief:
      _remove_save_leftovers(directory)
    candidates = checkpoint_candidates(directory)
    errors = []
    for path in candidates:
      try:
        self._restore(path)
      # Unreadable files surface as any of these (a truncated data file as
      # IndexError from the reader).
      except (tf.errors.OpError, ValueError, AssertionError, IndexError,
              KeyError, OSError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        logging.warning('cannot restore %s (%s); trying the checkpoint '
                        'before it', path, first_line)
        errors.append(f'{os.path.basename(path)}: {first_line}')
        continue
      logging.info('resumed from %s at step %d', path,
                   int(self.global_step.numpy()))
      return int(self.global_step.numpy())
    if candidates:
      raise UserError(f'no checkpoint in {directory} restores ('
                      f'{"; ".join(errors)}): pass a new --model_dir or '
                      'delete the broken checkpoints')
    # A fresh start: 'partial' needs a trained VAE; any other objective
    # warm-starts the VAE from vae_checkpoint where one is given (a family's
    # next training stage), then the model's begin_stage hook runs once.
    if (self.config.objective == 'partial' or self.config.vae_checkpoint):
      restore_vae(self.model, self.config.vae_checkpoint)
    if self.on_fresh_start is not None:
      self.on_fresh_start()
    return int(self.global_step.numpy())

  def _restore(self, path: str) -> None:
    """Restores ``path``; its training clock where it has one (else 0)."""
    tf.train.Checkpoint(**self._restorable).restore(
        path).assert_existing_objects_matched()
    self.train_seconds.assign(0.0)
    tf.train.Checkpoint(train_seconds=self.train_seconds).restore(
        path).expect_partial()

  # ---------------------------------------------------------------- the step
  def _compute(self, batch, kl_weight):
    """Loss terms and gradients of one replica's shard (no collectives)."""
    # Incomplete data carries its per-cell mask; complete data has none.
    extra = {'observed': batch['observed']} if 'observed' in batch else {}
    with tf.GradientTape() as tape:
      terms = self.model.per_example_losses(
          batch['x'], batch['mask'], kl_weight,
          objective=self.config.objective, training=True,
          noise=batch.get('noise'), **extra)
      loss = tf.reduce_sum(terms['loss']) / self.config.batch_size
    grads = tape.gradient(loss, self.variables,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    totals = {k: tf.reduce_sum(v) / self.config.batch_size
              for k, v in terms.items()}
    return grads, totals

  def replica_step(self, batch):
    """One step on one replica; returns the global-batch means of the terms.

    Runs inside ``strategy.run``; ``batch`` holds this replica's ``x``,
    ``mask`` and ``noise``. Everything in it compiles with XLA as one
    computation, update included (as on a TPU). The update happens in
    cross-replica context (``merge_call``): a conditional update must not sit
    in replica context, where the optimizer's own ``merge_call`` would be
    inside a branch.
    """
    cfg = self.config
    ctx = tf.distribute.get_replica_context()
    kl_weight = tf.cast(cfg.kl_schedule(self.global_step.read_value()),
                        tf.float32)
    grads, totals = self._compute_fn(batch, kl_weight)
    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    totals = ctx.all_reduce(tf.distribute.ReduceOp.SUM, totals)
    finite = tf.logical_and(
        tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]),
        tf.math.is_finite(totals['loss']))
    grad_norm = tf.linalg.global_norm(grads)
    if cfg.grad_skip_threshold:
      # A finite but exploding gradient is skipped like a non-finite one.
      finite = tf.logical_and(finite, grad_norm < cfg.grad_skip_threshold)
    if cfg.grad_clip_norm:
      grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip_norm,
                                        use_norm=grad_norm)
    ctx.merge_call(self._update, args=(grads, finite))
    totals['grad_norm'] = grad_norm
    totals['kl_weight'] = kl_weight
    totals['finite'] = tf.cast(finite, tf.float32)
    return totals

  def _update(self, strategy, grads, finite):
    """Cross-replica part of a step: update if finite, count the step."""
    # Every replica holds the same all-reduced flag; take the first.
    finite = strategy.experimental_local_results(finite)[0]

    def apply():
      strategy.extended.call_for_each_replica(self._apply, args=(grads,))
      if self.ema is not None:
        decay = self.config.ema_decay
        for average, var in zip(self.ema, self.variables):
          strategy.extended.update(
              average, lambda a, v: a.assign(decay * a + (1.0 - decay) * v),
              args=(var,))
      return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))
    bad = tf.cast(tf.logical_not(finite), tf.int64)
    self.global_step.assign_add(1)
    self.nonfinite_steps.assign_add(bad)
    self.consecutive_nonfinite.assign((self.consecutive_nonfinite + 1) * bad)

  def _apply(self, grads):
    self.optimizer.apply_gradients(zip(grads, self.variables),
                                   skip_gradients_aggregation=True)

  def _distributed_step(self, iterator):
    totals = self.strategy.run(self.replica_step, args=(next(iterator),))
    return {k: self.strategy.experimental_local_results(v)[0]
            for k, v in totals.items()}

  def _steps(self, iterator, num_steps):
    """Up to ``num_steps`` steps; the last step's metrics, packed.

    The loop stops early once ``max_consecutive_nonfinite`` steps in a row
    were not finite. The metrics (float32 scalars) travel as one vector in
    the order of ``_metric_names`` (set while tracing): a loop variable of
    known structure, so the step is traced only once.
    """
    limit = tf.constant(self.config.max_consecutive_nonfinite, tf.int64)
    packed = tf.zeros([0], tf.float32)
    for _ in tf.range(num_steps):
      tf.autograph.experimental.set_loop_options(
          shape_invariants=[(packed, tf.TensorShape([None]))])
      if self.consecutive_nonfinite >= limit:
        break
      packed = self._packed_step(iterator)
    return packed

  def _packed_step(self, iterator):
    metrics = self._distributed_step(iterator)
    self._metric_names = sorted(metrics)
    return tf.stack([tf.cast(metrics[k], tf.float32)
                     for k in self._metric_names])

  # ---------------------------------------------------------------- the data
  def _distributed_dataset(self, dataset_fn, start: int):
    """Per-replica slices of the global batches from step ``start`` on.

    Every input pipeline (one per worker) builds the same global batch and
    keeps the slices of its own replicas, in replica order; the strategy
    hands consecutive elements to consecutive local replicas.
    """
    cfg = self.config
    replicas = self.strategy.num_replicas_in_sync
    per_replica = cfg.batch_size // replicas
    noise_size = self.model.noise_size

    def input_fn(context):
      local = replicas // context.num_input_pipelines
      first = context.input_pipeline_id * local

      def slices(batch):
        # The scalar 'step' seeds the noise; the trainer counts steps itself
        # (batch k of the dataset is step start + k).
        parts = {'x': batch['x'], 'mask': batch['mask']}
        # A family without reparameterised draws (noise_size 0) gets no
        # noise at all: a zero-width tensor through unbatch() crashed TF.
        if noise_size:
          parts['noise'] = tf.random.stateless_normal(
              [cfg.batch_size, noise_size],
              seed=tf.stack([tf.constant(cfg.seed + _NOISE_SEED_OFFSET,
                                         tf.int64), batch['step']]),
              alg='philox')
        if 'observed' in batch:
          parts['observed'] = batch['observed']
        return {k: tf.reshape(v, [replicas, per_replica, *v.shape[1:]])
                   [first:first + local] for k, v in parts.items()}

      dataset = dataset_fn(start).map(slices).unbatch()
      options = tf.data.Options()
      options.experimental_distribute.auto_shard_policy = (
          tf.data.experimental.AutoShardPolicy.OFF)
      return dataset.with_options(options)

    return self.strategy.distribute_datasets_from_function(input_fn)

  # ---------------------------------------------------------------- the loop
  def _loop_length(self, done: int) -> int:
    """Steps until the next period boundary, at most ``steps_per_loop``."""
    cfg = self.config
    periods = [cfg.log_every, cfg.summary_every, cfg.checkpoint_every]
    if cfg.image_summary_every and self.image_summary_fn is not None:
      periods.append(cfg.image_summary_every)
    if cfg.eval_every and self.eval_fn is not None:
      periods.append(cfg.eval_every)
    stop = min([cfg.num_steps, done + cfg.steps_per_loop] +
               [(done // p + 1) * p for p in periods])
    return stop - done

  def train(self, dataset_fn: Callable[[int], tf.data.Dataset],
            on_first_step: Optional[Callable[[], None]] = None
            ) -> Dict[str, float]:
    """Trains from the restored step to ``num_steps``; returns last metrics.

    Args:
      dataset_fn: start_step -> dataset of global batches from that step on.
      on_first_step: called once after the first step (e.g. to write the
        operative gin config, complete only once everything was built).
    """
    cfg = self.config
    start = self.restore_or_initialize()
    if start >= cfg.num_steps:
      logging.info('nothing to do: the run is at step %d of %d', start,
                   cfg.num_steps)
      return {}
    iterator = iter(self._distributed_dataset(dataset_fn, start))
    self.consecutive_nonfinite.assign(0)
    seen_nonfinite = int(self.nonfinite_steps.numpy())
    last = {}
    t0 = time.time()
    window_start, window_step = t0, start
    done, metrics = start, None
    last_eval = t0
    clock = t0               # train_seconds holds the time up to `clock`
    try:
      while done < cfg.num_steps:
        # One step first: on_first_step runs early, after tracing.
        length = 1 if metrics is None else self._loop_length(done)
        packed = self._loop(iterator, tf.constant(length, tf.int32)).numpy()
        metrics = dict(zip(self._metric_names, packed.tolist()))
        previous, done = done, int(self.global_step.numpy())
        if previous == start and on_first_step is not None:
          on_first_step()
        seen_nonfinite = self._check_finite(previous, done, seen_nonfinite)
        if done % cfg.summary_every == 0 or done == cfg.num_steps:
          self._write_scalars(metrics, done)
        if done % cfg.log_every == 0 or done == cfg.num_steps:
          now = time.time()
          rate = (done - window_step) / max(now - window_start, 1e-9)
          window_start, window_step = now, done
          last = {k: float(v) for k, v in metrics.items() if k != 'finite'}
          with self.writer.as_default(step=done):
            tf.summary.scalar('steps_per_sec', rate)
          logging.info(
              'step %d/%d  %s  | %.1f steps/s  ETA %s', done, cfg.num_steps,
              _format_terms(last), rate,
              _format_duration((cfg.num_steps - done) / max(rate, 1e-9)))
        if (cfg.image_summary_every and self.image_summary_fn is not None and
            self.is_chief and done % cfg.image_summary_every == 0):
          with self.writer.as_default(step=done):
            tf.summary.image('inpainting', self.image_summary_fn(), step=done)
        if self.eval_fn is not None and self.is_chief and (
            (cfg.eval_every and done % cfg.eval_every == 0) or
            (cfg.eval_every_seconds and
             time.time() - last_eval >= cfg.eval_every_seconds) or
            (done == cfg.num_steps and (cfg.eval_every or
                                        cfg.eval_every_seconds))):
          clock = self._tick(clock)
          self._periodic_eval(done, float(self.train_seconds.numpy()))
          clock = last_eval = time.time()     # the evaluation is not training
        # No checkpoint inside a run of non-finite steps: the last one saved
        # stays the last healthy state.
        if ((done % cfg.checkpoint_every == 0 or done == cfg.num_steps)
            and int(self.consecutive_nonfinite.numpy()) == 0):
          clock = self._tick(clock)
          self.manager.save(checkpoint_number=done)
          self._write_dir.discard()
    finally:
      self.writer.flush()
      self._write_dir.discard()
    last.setdefault('loss', float(metrics['loss']))
    last['nonfinite_steps'] = int(self.nonfinite_steps.numpy())
    last['seconds'] = time.time() - t0
    self._tick(clock)
    last['train_seconds'] = float(self.train_seconds.numpy())
    return last

  def _tick(self, clock: float) -> float:
    """Adds the time since ``clock`` to ``train_seconds``; returns now."""
    now = time.time()
    self.train_seconds.assign_add(now - clock)
    return now

  def _periodic_eval(self, step: int, seconds: float) -> None:
    """Runs ``eval_fn`` (with the EMA weights swapped in, if any); logs it.

    The curve (``EVAL_CURVE``) holds one row per evaluation: ``{step,
    train_seconds, eval_seconds, ema, **scalars}``; ``train_seconds`` is the
    wall time spent training up to ``step``, summed over resumed segments
    and without the evaluations (runs whose checkpoints predate this clock
    count from their first resume with it). With ``eval_raw_weights`` the
    trained weights are scored too, as ``raw_<name>``.
    """
    start = time.time()
    raw = {}
    if self.ema is not None and self.config.eval_raw_weights:
      raw = {f'raw_{k}': float(v) for k, v in self.eval_fn().items()}
    saved = None
    if self.ema is not None:
      saved = [v.numpy() for v in self.variables]
      for var, average in zip(self.variables, self.ema):
        var.assign(average)
    try:
      metrics = {k: float(v) for k, v in self.eval_fn().items()}
    finally:
      if saved is not None:
        for var, value in zip(self.variables, saved):
          var.assign(value)
    metrics.update(raw)
    if self._eval_writer is None:
      self._eval_writer = tf.summary.create_file_writer(
          os.path.join(self.model_dir, 'eval'))
    with self._eval_writer.as_default(step=step):
      for name, value in metrics.items():
        tf.summary.scalar(name, value)
    self._eval_writer.flush()
    path = os.path.join(self.model_dir, EVAL_CURVE)
    curve = []
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        curve = json.load(f)
    curve = [row for row in curve if row['step'] < step]
    # The clock unrounded, as training.json has it, so the two compare exactly.
    curve.append({'step': step, 'train_seconds': seconds,
                  'eval_seconds': round(time.time() - start, 1),
                  'ema': self.ema is not None, **metrics})
    with tf.io.gfile.GFile(path + '.tmp', 'w') as f:
      json.dump(curve, f, indent=1)
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
    logging.info('step %d: periodic evaluation %s', step, '  '.join(
        f'{k} {v:.4f}' for k, v in metrics.items()))

  def _check_finite(self, previous: int, done: int, seen: int) -> int:
    """Warns about the non-finite steps of the last loop; stops a streak.

    Returns the running count of non-finite steps.
    """
    total = int(self.nonfinite_steps.numpy())
    streak = int(self.consecutive_nonfinite.numpy())
    if total > seen:
      logging.warning('steps %d-%d: %d non-finite (or above '
                      'grad_skip_threshold) loss or gradients, update '
                      'skipped (%d in a row)', previous + 1, done,
                      total - seen, streak)
    if streak >= self.config.max_consecutive_nonfinite:
      raise TrainingDivergedError(
          f'{streak} non-finite steps in a row at step {done}: training '
          f'stopped, the last checkpoint in {self.model_dir} is intact; '
          'lower the learning rate or clip gradients '
          '(TrainConfig.grad_clip_norm)')
    return total

  def _write_scalars(self, metrics, step):
    with self.writer.as_default(step=step):
      for name, value in metrics.items():
        if name != 'finite':
          tf.summary.scalar(name, value)
      lr = self.optimizer.learning_rate
      tf.summary.scalar('learning_rate', lr(step) if callable(lr) else lr)
      tf.summary.scalar('nonfinite_steps', self.nonfinite_steps)


def make_ema_variables(variables) -> List[tf.Variable]:
  """One non-trainable copy of every trained variable (the EMA's state)."""
  return [tf.Variable(v.read_value(), trainable=False,
                      name='ema/' + v.name.split(':')[0].replace('/', '_'))
          for v in variables]


def restore_ema_weights(model, checkpoint_path: str, config: TrainConfig
                        ) -> bool:
  """Puts a checkpoint's EMA weights into ``model``; False without EMA.

  ``model`` must already hold that checkpoint's weights (the EMA covers the
  variables ``config.objective`` trains, in their order; the rest stay).
  """
  if config.ema_decay is None:
    return False
  variables = model.trainable_variables_for(config.objective)
  averages = make_ema_variables(variables)
  status = tf.train.Checkpoint(ema=averages).restore(checkpoint_path)
  try:
    status.expect_partial().assert_existing_objects_matched()
  except AssertionError as e:
    raise UserError(f'{checkpoint_path} has no EMA weights for this model '
                    f'({str(e).splitlines()[0][:120]}): evaluate with '
                    '--gin_bindings="TrainConfig.ema_decay=None"') from e
  for var, average in zip(variables, averages):
    var.assign(average)
  logging.info('evaluating with the EMA weights of %s', checkpoint_path)
  return True


def restore_vae(model, vae_checkpoint: Optional[str]) -> None:
  """Restores only the base VAE of ``model`` from another run's checkpoint.

  ``vae_checkpoint`` is a checkpoint prefix or a model directory (its latest
  checkpoint is used). The checkpoint must hold a model with a ``vae`` of the
  same architecture (any run of pm_zoo).
  """
  if not vae_checkpoint:
    raise UserError("objective 'partial' trains the partial encoder of a "
                    'frozen VAE: pass --vae_checkpoint=<model dir or '
                    'checkpoint of a trained VAE>')
  path = vae_checkpoint
  if tf.io.gfile.isdir(path):
    path = (tf.train.latest_checkpoint(os.path.join(path, CHECKPOINT_SUBDIR))
            or tf.train.latest_checkpoint(path))
    if not path:
      raise UserError(f'no checkpoint in {vae_checkpoint}: train the VAE '
                      'first or pass a checkpoint prefix')
  holder = tf.train.Checkpoint(model=tf.train.Checkpoint(vae=model.vae))
  try:
    status = holder.restore(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    raise UserError(f'cannot restore a VAE from {vae_checkpoint}: '
                    f'{str(e).splitlines()[0]}') from e
  logging.info('restored the VAE from %s', path)
