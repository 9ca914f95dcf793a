"""The training loop: a compiled, distributed step, checkpoints, summaries, progress.

The loop knows nothing of data sources or model families: it takes a model
with ``per_example_losses(x, mask, kl_weight, objective, training, noise)``, a
``tf.data.Dataset`` of global batches ``{'x', 'mask', 'step'}`` and a strategy.

Loss scaling: every replica divides the sum of its per-example losses by the
GLOBAL batch size and the gradients are summed over replicas, so one device,
N mirrored devices and N workers compute the same update for the same global
batch.

Non-finite steps: gradients are all-reduced first, so every replica sees the
same finiteness flag; a step whose loss or gradients are not finite applies
no update (the optimizer's slots and iteration count do not move either), is
counted in ``nonfinite_steps``, and after ``max_consecutive_nonfinite`` such
steps in a row training stops with ``TrainingDivergedError`` and the last
checkpoint is left untouched.
"""
import dataclasses
import os
import time
from typing import Callable, Dict, Optional

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras
from pm_zoo.training import schedules
from pm_zoo.training import strategy as strategy_lib

CHECKPOINT_SUBDIR = 'checkpoints'


class TrainingDivergedError(RuntimeError):
  """Too many non-finite steps in a row."""


@gin.configurable
@dataclasses.dataclass
class TrainConfig:
  """Hyperparameters of a training run (bound from gin).

  Attributes:
    num_steps: total number of optimisation steps of the run.
    batch_size: GLOBAL batch size (split across replicas).
    objective: 'joint' (-ELBO + L_PM), 'vae' (-ELBO only) or 'partial' (L_PM
      only, VAE frozen; restore the VAE with ``vae_checkpoint``).
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
    vae_checkpoint: with objective 'partial', a checkpoint (or model dir) of a
      trained VAE to restore before training starts.
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

  def __post_init__(self):
    if self.kl_schedule is None:
      self.kl_schedule = schedules.ConstantKL()


def _format_duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


_LOGGED_TERMS = ('loss', 'elbo', 'kl', 'pm_loss')


def _format_terms(metrics: Dict[str, float]) -> str:
  """'loss 1.2345  elbo ...': the model's main loss terms, those it has."""
  names = [k for k in _LOGGED_TERMS if k in metrics] or [
      k for k in sorted(metrics) if k not in ('grad_norm', 'kl_weight')]
  return '  '.join(f'{k} {metrics[k]:.4f}' for k in names)


class Trainer:
  """Runs ``config.num_steps`` steps of a model under a strategy.

  Build the model and call ``Trainer(...)`` inside nothing special: the
  trainer creates its optimizer and counters in ``strategy.scope()``. The model
  must have been created in the same scope and built (called once).
  """

  def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy,
               model_dir: str, config: TrainConfig,
               image_summary_fn: Optional[Callable[[], np.ndarray]] = None):
    self.model = model
    self.strategy = strategy
    self.model_dir = model_dir
    self.config = config
    self.image_summary_fn = image_summary_fn
    self.is_chief = strategy_lib.is_chief(strategy)
    self.variables = model.trainable_variables_for(config.objective)
    with strategy.scope():
      self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name='global_step')
      self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name='nonfinite_steps')
      # Create the optimizer slots now so that a restore fills them in.
      self.optimizer.build(self.variables)
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=self.optimizer, global_step=self.global_step,
        nonfinite_steps=self.nonfinite_steps)
    write_dir = strategy_lib.worker_dir(model_dir, strategy)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(write_dir, CHECKPOINT_SUBDIR),
        max_to_keep=config.max_to_keep, step_counter=self.global_step,
        checkpoint_interval=None)
    summary_dir = os.path.join(write_dir, 'train')
    self.writer = tf.summary.create_file_writer(summary_dir)
    # XLA compiles the per-replica forward and backward pass; the collectives
    # and the conditional update stay outside the compiled cluster.
    self._compute_fn = (tf.function(self._compute, jit_compile=True)
                        if config.jit_compile else self._compute)
    self._train_step = tf.function(self._step)

  # ---------------------------------------------------------------- restore
  def restore_or_initialize(self) -> int:
    """Resumes from the latest checkpoint of the run; returns the step."""
    latest = tf.train.latest_checkpoint(
        os.path.join(self.model_dir, CHECKPOINT_SUBDIR))
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info('resumed from %s at step %d', latest,
                   int(self.global_step.numpy()))
    elif self.config.objective == 'partial':
      restore_vae(self.model, self.config.vae_checkpoint)
    return int(self.global_step.numpy())

  # ---------------------------------------------------------------- the step
  def _compute(self, batch, kl_weight):
    """Loss terms and gradients of one replica's shard (no collectives)."""
    with tf.GradientTape() as tape:
      terms = self.model.per_example_losses(
          batch['x'], batch['mask'], kl_weight,
          objective=self.config.objective, training=True,
          noise=batch['noise'])
      loss = tf.reduce_sum(terms['loss']) / self.config.batch_size
    grads = tape.gradient(loss, self.variables,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    totals = {k: tf.reduce_sum(v) / self.config.batch_size
              for k, v in terms.items()}
    return grads, totals

  def _replica_step(self, batch, step):
    cfg = self.config
    ctx = tf.distribute.get_replica_context()
    kl_weight = cfg.kl_schedule(step)
    grads, totals = self._compute_fn(batch, kl_weight)
    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    totals = ctx.all_reduce(tf.distribute.ReduceOp.SUM, totals)
    finite = tf.logical_and(
        tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]),
        tf.math.is_finite(totals['loss']))
    grad_norm = tf.linalg.global_norm(grads)
    if cfg.grad_clip_norm:
      grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip_norm,
                                        use_norm=grad_norm)
    totals['grad_norm'] = grad_norm
    totals['kl_weight'] = kl_weight
    return grads, totals, tf.cast(finite, tf.float32)

  def _apply(self, grads):
    self.optimizer.apply_gradients(zip(grads, self.variables),
                                   skip_gradients_aggregation=True)
    return tf.constant(True)

  def _step(self, batch):
    # The step being taken; the dataset's k-th batch is step start + k.
    step = tf.identity(self.global_step)
    grads, totals, finite = self.strategy.run(self._replica_step,
                                              args=(batch, step))
    # Every replica holds the same all-reduced values; take the first.
    first = lambda v: self.strategy.experimental_local_results(v)[0]
    finite = first(finite) > 0.5
    tf.cond(finite, lambda: self._apply(grads), lambda: tf.constant(False))
    self.global_step.assign_add(1)
    self.nonfinite_steps.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
    metrics = {k: first(v) for k, v in totals.items()}
    metrics['finite'] = finite
    return metrics

  # ---------------------------------------------------------------- the loop
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
    # The scalar 'step' cannot be split across replicas: drop it; the trainer
    # counts steps itself (batch k of the dataset is step start + k). The
    # latent noise is drawn per global batch here, so each example keeps its
    # draw whichever replica processes it.
    latent_dim = self.model.latent_dim
    noise_seed = tf.constant(cfg.seed + 7919, tf.int64)

    def add_noise(batch):
      shape = [cfg.batch_size, latent_dim]
      noise = tf.random.stateless_normal(
          shape, seed=tf.stack([noise_seed, batch['step']]), alg='philox')
      return {'x': batch['x'], 'mask': batch['mask'], 'noise': noise}

    dataset = dataset_fn(start).map(add_noise)
    dist_dataset = self.strategy.experimental_distribute_dataset(dataset)
    iterator = iter(dist_dataset)
    consecutive_nonfinite = 0
    last = {}
    t0 = time.time()
    window_start, window_steps = t0, 0
    for step in range(start, cfg.num_steps):
      metrics = self._train_step(next(iterator))
      window_steps += 1
      if step == start and on_first_step is not None:
        on_first_step()
      if bool(metrics['finite']):
        consecutive_nonfinite = 0
      else:
        consecutive_nonfinite += 1
        logging.warning('step %d: non-finite loss or gradients, update '
                        'skipped (%d in a row)', step + 1,
                        consecutive_nonfinite)
        if consecutive_nonfinite >= cfg.max_consecutive_nonfinite:
          raise TrainingDivergedError(
              f'{consecutive_nonfinite} non-finite steps in a row at step '
              f'{step + 1}: training stopped, the last checkpoint in '
              f'{self.model_dir} is intact; lower the learning rate or clip '
              'gradients (TrainConfig.grad_clip_norm)')
      done = step + 1
      if done % cfg.summary_every == 0 or done == cfg.num_steps:
        self._write_scalars(metrics, done)
      if done % cfg.log_every == 0 or done == cfg.num_steps:
        now = time.time()
        rate = window_steps / max(now - window_start, 1e-9)
        window_start, window_steps = now, 0
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
      # No checkpoint inside a run of non-finite steps: the last one saved
      # stays the last healthy state.
      if ((done % cfg.checkpoint_every == 0 or done == cfg.num_steps)
          and consecutive_nonfinite == 0):
        self.manager.save(checkpoint_number=done)
    self.writer.flush()
    last.setdefault('loss', float(metrics['loss']))
    last['nonfinite_steps'] = int(self.nonfinite_steps.numpy())
    last['seconds'] = time.time() - t0
    return last

  def _write_scalars(self, metrics, step):
    with self.writer.as_default(step=step):
      for name, value in metrics.items():
        if name != 'finite':
          tf.summary.scalar(name, value)
      lr = self.optimizer.learning_rate
      tf.summary.scalar('learning_rate', lr(step) if callable(lr) else lr)
      tf.summary.scalar('nonfinite_steps', self.nonfinite_steps)


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
  logging.info('restored the frozen VAE from %s', path)
