"""Shared pieces of the autoregressive heads: MADE networks, fixed orderings.

The autoregressive partial posteriors (``AutoregressiveGaussianMixture``,
``MaskedAutoregressiveFlow``, ``InverseAutoregressiveFlow``) all use a MADE
network (Germain et al., 2015), ``tfp.bijectors.AutoregressiveNetwork``, that
maps a latent vector z [..., d] and a context vector h [..., c] (the output of
the x_o network) to per-dimension parameters [..., d, P] such that the
parameters of dimension i depend on z_<i and h only.

**Fixed orderings.** A restored model must compute the same function as the
one that was saved, so nothing here is drawn at random at construction:

* the MADE input order is ``'left-to-right'`` and its hidden degrees are
  ``'equal'``: the masks are a deterministic function of (d, hidden_units);
* the permutations between flow layers come from ``fixed_permutation``, a pure
  function of (d, layer index) that does not depend on any RNG library.

**Masks and training.** TFP's MADE keeps its kernels autoregressive by
zeroing the masked entries at initialisation and through Keras kernel
*constraints*, which Keras optimizers (``keras.optimizers.*``, what the trainer
uses) re-apply after every update. A custom update that bypasses
``optimizer.apply_gradients`` would break the masks.

The networks are built when the head is constructed, so that their weights
exist at once (a checkpoint restores into them, an optimizer can be built over
them) and are tracked as sub-layers of the head.
"""
import numbers
from typing import Sequence, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras

tfd = tfp.distributions
tfb = tfp.bijectors

# Stateless seed of the Monte Carlo ``mean()`` (a fixed pair: the mean of a
# given distribution is then a deterministic function of its parameters).
MEAN_SEED = (20220, 5)


def check_int(who: str, name: str, value, minimum: int = 1) -> int:
  """``value`` as an int >= minimum, or a UserError naming the argument."""
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < minimum):
    raise UserError(f'{who}.{name} must be an integer >= {minimum}, got '
                    f'{value!r}; fix it in the gin config')
  return int(value)


def check_positive(who: str, name: str, value) -> float:
  """``value`` as a float > 0, or a UserError naming the argument."""
  if (not isinstance(value, numbers.Real) or isinstance(value, bool)
      or not value > 0):
    raise UserError(f'{who}.{name} must be a number > 0, got {value!r}; fix '
                    'it in the gin config')
  return float(value)


def check_hidden_units(who: str, hidden_units) -> Tuple[int, ...]:
  """A tuple of positive layer widths (may be empty: a linear MADE)."""
  ok = isinstance(hidden_units, (list, tuple)) and all(
      isinstance(u, numbers.Integral) and not isinstance(u, bool) and u > 0
      for u in hidden_units)
  if not ok:
    raise UserError(f'{who}.hidden_units must be a list of positive integers '
                    f'such as (256, 256), got {hidden_units!r}')
  return tuple(int(u) for u in hidden_units)


def check_vector_event(who: str, event_shape: Sequence[int]) -> int:
  """The size d of a rank-1 event shape [d], or a UserError."""
  if len(event_shape) != 1:
    raise UserError(f'{who} is a density over latent vectors [d]; got event '
                    f'shape {list(event_shape)}')
  return int(event_shape[0])


def _relu(t):
  """max(t, 0), as a Maximum op (see ``_ACTIVATIONS``)."""
  return tf.maximum(t, tf.zeros([], t.dtype))


def _elu(t):
  """t for t > 0, exp(t) - 1 otherwise, without the Elu op."""
  return tf.where(t > 0, t, tf.math.expm1(tf.minimum(t, 0)))


# In a conditional MADE every hidden layer is ``act(MatMul + BiasAdd + Add)``.
# On CPUs with oneDNN (TensorFlow's default) Grappler's remapper fails on that
# pattern when ``act`` is the Relu or Elu op ("remapper failed: NOT_FOUND: Op
# type not registered ''"), and then skips every fusion of the whole function.
# The same functions written with other ops avoid the pattern.
_ACTIVATIONS = {'relu': _relu, 'elu': _elu}


def conditional_made(event_size: int, params: int, context_size: int,
                     hidden_units: Sequence[int], activation: str,
                     name: str) -> tfb.AutoregressiveNetwork:
  """A built conditional MADE: (z [..., d], h [..., c]) -> [..., d, params].

  Output ``[..., i, :]`` depends on ``z[..., :i]`` (left-to-right order) and on
  all of ``h``, which enters every layer through an unmasked dense map.
  """
  if isinstance(activation, str) and activation not in _ACTIVATIONS:
    try:
      keras.activations.get(activation)
    except ValueError:
      raise UserError(
          f'unknown activation {activation!r} for the MADE; use a Keras '
          "activation name such as 'relu' or 'tanh'") from None
  made = tfb.AutoregressiveNetwork(
      params=params, event_shape=[event_size], conditional=True,
      conditional_event_shape=[context_size], hidden_units=list(hidden_units),
      input_order='left-to-right', hidden_degrees='equal',
      activation=_ACTIVATIONS.get(activation, activation), name=name)
  made.build((None, event_size))
  return made


def call_made(made: tfb.AutoregressiveNetwork, z: tf.Tensor,
              context: tf.Tensor) -> tf.Tensor:
  """Runs ``made`` with z [..., d] and h [..., c] broadcast to a common batch.

  Returns ``[*broadcast(batch(z), batch(h)), d, params]``.
  """
  batch = tf.broadcast_dynamic_shape(tf.shape(z)[:-1], tf.shape(context)[:-1])
  z = tf.broadcast_to(z, tf.concat([batch, tf.shape(z)[-1:]], axis=0))
  context = tf.broadcast_to(
      context, tf.concat([batch, tf.shape(context)[-1:]], axis=0))
  return made(z, conditional_input=context)


def fixed_permutation(size: int, index: int) -> Tuple[int, ...]:
  """A permutation of range(size) that is a pure function of (size, index).

  A Fisher-Yates shuffle driven by a 64-bit linear congruential generator
  seeded with ``index`` (Knuth's MMIX constants), so it is the same on every
  machine and Python/NumPy version; for size > 1 it is never the identity (the
  reversal is used instead), so consecutive flow layers always see a new
  order.
  """
  perm = list(range(size))
  state = ((index + 1) * 0x9E3779B97F4A7C15) % 2**64
  for i in range(size - 1, 0, -1):
    state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
    j = (state >> 33) % (i + 1)
    perm[i], perm[j] = perm[j], perm[i]
  if size > 1 and perm == list(range(size)):
    perm.reverse()
  return tuple(perm)


def monte_carlo_mean(dist: tfd.Distribution, num_samples: int) -> tf.Tensor:
  """E[z] estimated from ``num_samples`` draws under the fixed ``MEAN_SEED``.

  For densities with no closed-form mean (autoregressive mixtures, flows).
  The standard error is std(z) / sqrt(num_samples); the result is a
  deterministic function of the distribution's parameters.
  """
  seed = tf.constant(MEAN_SEED, tf.int32)
  return tf.reduce_mean(dist.sample(num_samples, seed=seed), axis=0)
