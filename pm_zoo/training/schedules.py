"""KL-weight and learning-rate schedules, functions of the global step.

KL schedules map the step (an int tensor) to the weight beta of the KL term in
the negative ELBO. They are gin-configurable classes whose instances are
callables, built of TF ops so they run inside a compiled (and XLA) step.
"""
import gin
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras


@gin.configurable
class ConstantKL:
  """beta(t) = weight."""

  def __init__(self, weight: float = 1.0):
    self.weight = float(weight)

  def __call__(self, step):
    del step
    return tf.constant(self.weight, tf.float32)


@gin.configurable
class LinearWarmupKL:
  """beta(t) = final * min(1, t / warmup_steps): KL annealing from 0."""

  def __init__(self, warmup_steps: int = 10000, final: float = 1.0):
    if warmup_steps < 1:
      raise UserError(f'LinearWarmupKL.warmup_steps must be >= 1, got '
                      f'{warmup_steps}')
    self.warmup_steps = int(warmup_steps)
    self.final = float(final)

  def __call__(self, step):
    t = tf.cast(step, tf.float32)
    return self.final * tf.minimum(1.0, t / self.warmup_steps)


@gin.configurable
class CyclicalKL:
  """Cyclical annealing (Fu et al., 2019), as the paper's tabular models use.

  The run is cut into cycles of ``cycle_steps``; within a cycle beta rises
  linearly from 0 to ``maximum`` over the first ``ramp_fraction`` of it and
  stays at ``maximum`` for the rest:
  ``beta(t) = maximum * min(1, (t mod C) / (ramp_fraction * C))``.
  """

  def __init__(self, cycle_steps: int = 10000, ramp_fraction: float = 0.5,
               maximum: float = 1.0):
    if cycle_steps < 1 or not 0.0 < ramp_fraction <= 1.0:
      raise UserError('CyclicalKL needs cycle_steps >= 1 and ramp_fraction in '
                      f'(0, 1]; got {cycle_steps}, {ramp_fraction}')
    self.cycle_steps = int(cycle_steps)
    self.ramp_steps = max(1.0, ramp_fraction * cycle_steps)
    self.maximum = float(maximum)

  def __call__(self, step):
    phase = tf.cast(tf.math.floormod(tf.cast(step, tf.int64),
                                     self.cycle_steps), tf.float32)
    return self.maximum * tf.minimum(1.0, phase / self.ramp_steps)


@gin.configurable
def exponential_decay(initial: float = 1e-3, decay_rate: float = 0.9,
                      decay_steps: int = 5000, staircase: bool = True):
  """lr(t) = initial * decay_rate ** (t / decay_steps) (floored if staircase)."""
  return keras.optimizers.schedules.ExponentialDecay(
      initial, decay_steps=decay_steps, decay_rate=decay_rate,
      staircase=staircase)


@gin.configurable
def cosine_decay(peak: float = 1e-3, total_steps: int = 100000,
                 warmup_steps: int = 0, final_fraction: float = 0.0):
  """A linear warm-up to peak, then a cosine to final_fraction * peak.

    lr(t) = peak * t / W                                    for t < W,
    lr(t) = peak * (f + (1 - f) (1 + cos(pi u)) / 2),   u = min(1, (t - W) / (T - W)),

  with W = warmup_steps, T = total_steps, f = final_fraction. Set T to the run's
  TrainConfig.num_steps so the rate reaches its floor at the last step (a budgeted
  run ends on a small rate instead of being cut off at a large one); a run resumed
  past T trains on at f * peak.
  """
  if not 0 <= warmup_steps < total_steps:
    raise UserError(f'cosine_decay needs 0 <= warmup_steps < total_steps; got '
                    f'warmup_steps={warmup_steps}, total_steps={total_steps}')
  if peak <= 0 or not 0.0 <= final_fraction <= 1.0:
    raise UserError(f'cosine_decay needs peak > 0 and final_fraction in [0, 1]; '
                    f'got peak={peak}, final_fraction={final_fraction}')
  return keras.optimizers.schedules.CosineDecay(
      0.0, decay_steps=total_steps - warmup_steps, alpha=final_fraction,
      warmup_target=peak, warmup_steps=warmup_steps)


@gin.configurable
def constant_learning_rate(value: float = 1e-3):
  return float(value)
