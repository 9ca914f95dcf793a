"""``ServingModule``: a trained model as a ``tf.Module`` of tensor signatures.

Every signature takes RAW feature values (the standardisation fitted on the
run's train split is inside the graph) and a mask b of x's shape (float32,
1 = observed, 0 = missing; a NaN in x is missing too, whatever b says):

``impute`` (also ``serving_default``): ``x [B, *fs]``, ``mask [B, *fs]`` ->
  ``x`` (observed values kept, the mean of S imputations elsewhere) and
  ``samples [B, S, *fs]`` (the S imputations), with S and the seed fixed
  at export (``ServingConfig``).
``sample``: ``x``, ``mask``, ``num_samples`` (int32 scalar S),
  ``seed`` (int64 scalar) -> ``samples [B, S, *fs]`` and their mean ``x``.
``conditional_log_prob``: ``x`` (finite everywhere: x_u is where the density
  is evaluated), ``mask``, ``num_samples`` (K) -> ``log_prob [B]``,
  log p(x_u | x_o) in the data's raw units by importance sampling:
  log p(z_u | z_o) - sum_{i in u} log s_i for standardised z = (x - m) / s.
  0 for a row with nothing unobserved; log p(x) for a row with nothing
  observed.
``encode``: ``x``, ``mask`` -> ``samples [B, S, d]`` of q(z | x_o) (the z
  behind ``impute``'s samples), its ``mean [B, d]`` and, for heads with a
  closed form (Gaussian, Gaussian mixture), ``covariance [B, d, d]``. Rows
  with nothing observed get the prior N(0, I).

Tables with a column schema (``pm_zoo.data.schema``; categorical cells are
given and returned as integer codes, float32, the category list is in the
SavedModel's ``assets.extra/pm_zoo_schema.json``): a categorical sample is
the decoder's most probable code for that z, and the point imputation ``x``
is the MODE of the S samples (ties: the lowest code); an integer column's
samples and point imputation are rounded; a column that was constant in
training is imputed as that constant. An observed categorical cell that is
not a valid code fails with an assertion naming the column.

Imputations are row-keyed (``tasks.imputation.row_seeds``): a row's draws
depend on (row, mask, seed, S) only, not on the batch it came in, so the
SavedModel, the in-process module, ``pm-impute`` and
``PosteriorMatchingImputer`` agree for the same seed. ``conditional_log_prob``
is seeded per call (the seed of the export).

Bad input fails inside the graph with ``tf.debugging`` assertions (a server
answers with their message): a mask that is not 0/1 or not of x's shape, an
inf at an observed entry, a non-finite x in ``conditional_log_prob``,
``num_samples < 1``. A wrong feature shape or dtype is refused by the
signature itself.

The tfp distributions of the model are traced into plain TensorFlow ops, and
the module tracks only the model's variables (not the Keras objects), so a
process with nothing but TensorFlow loads and runs the SavedModel.
"""
import dataclasses
from typing import Dict

import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.models import base
from pm_zoo.tasks import clustering
from pm_zoo.tasks import imputation
from pm_zoo.tasks import likelihood

IMPUTE = 'impute'
SAMPLE = 'sample'
CONDITIONAL_LOG_PROB = 'conditional_log_prob'
ENCODE = 'encode'
DEFAULT = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # serving_default
CORE_SIGNATURES = (DEFAULT, IMPUTE, SAMPLE, CONDITIONAL_LOG_PROB, ENCODE)
# What a base VAE must have for a signature beyond impute/sample/encode.
SIGNATURE_NEEDS = {CONDITIONAL_LOG_PROB: base.MARGINAL_LIKELIHOOD}


@dataclasses.dataclass(frozen=True)
class ServingConfig:
  """What the signatures without a ``num_samples``/``seed`` input use.

  Attributes:
    num_samples: S of ``impute`` and ``encode``.
    seed: seed of ``impute``, ``encode`` and ``conditional_log_prob``.
    log_prob_chunk: importance samples decoded at once by
      ``conditional_log_prob`` (bounds memory: chunk x B x features).
    cluster_weighting: how the ``cluster`` signature turns its S draws
      into p(c | x_o): 'mean' or 'importance' (``serving/cluster.py``).
  """
  num_samples: int = 10
  seed: int = 0
  log_prob_chunk: int = 64
  cluster_weighting: str = 'mean'

  def __post_init__(self):
    if int(self.num_samples) < 1 or int(self.log_prob_chunk) < 1:
      raise UserError(f'num_samples ({self.num_samples}) and log_prob_chunk '
                      f'({self.log_prob_chunk}) must be >= 1')
    if not -2**63 <= int(self.seed) < 2**63:
      raise UserError(f'seed {self.seed} does not fit in int64')
    clustering.check_weighting(self.cluster_weighting)


def _assert(condition, message: str):
  """A ``tf.debugging`` check whose message a server returns verbatim.

  The error reads ``assertion failed: [pm_zoo: <message>]``.
  """
  return tf.debugging.Assert(condition, [message])


def _checked_mask(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """The effective mask: b where x is not NaN, else 0; asserts b is valid."""
  checks = [
      _assert(tf.reduce_all(tf.equal(tf.shape(x), tf.shape(mask))),
              'pm_zoo: mask must have the shape of x (one 0/1 entry per '
              'value of x)'),
      _assert(tf.reduce_all((mask == 0.0) | (mask == 1.0)),
              'pm_zoo: mask must hold only 0 (missing) and 1 (observed)'),
  ]
  with tf.control_dependencies(checks):
    return tf.where(tf.math.is_nan(x), tf.zeros_like(mask), mask)


def _count(mask: tf.Tensor) -> tf.Tensor:
  """Ones per row of a [B, ...] 0/1 tensor, float32 [B]."""
  return tf.reduce_sum(tf.reshape(mask, [tf.shape(mask)[0], -1]), axis=1)


class ServingModule(tf.Module):
  """The signatures of one trained Posterior Matching VAE (see module doc).

  The tf.functions are attributes (``module.impute(x, mask)``, ...), so the
  same graphs serve in-process callers and the SavedModel;
  ``signatures()`` gives the concrete functions to export.

  Args:
    model: a built, restored ``PosteriorMatchingVAE``.
    standardizer: the run's ``data.Standardizer`` (raw <-> model units).
    config: ``ServingConfig``.
  """

  def __init__(self, model, standardizer,
               config: ServingConfig = ServingConfig(), schema=None):
    super().__init__(name='pm_zoo_serving')
    self.config = config
    self.standardizer = standardizer
    self._schema = _Untracked(schema)
    self._plan = _Untracked(_column_plan(schema, standardizer))
    self.feature_shape = tuple(int(s) for s in model.feature_shape)
    self.latent_dim = int(model.latent_dim)
    self.latent_shape = tuple(model.latent_shape)
    self.capabilities = frozenset(model.vae.capabilities)
    # Only the variables are tracked: the Keras objects (whose calls return
    # distributions) stay out of the SavedModel's object graph.
    self.model_variables = list(model.variables)
    self._model = _Untracked(model)
    self._mean = tf.constant(np.asarray(standardizer.mean, np.float32))
    self._std = tf.constant(np.asarray(standardizer.std, np.float32))
    x_spec = tf.TensorSpec([None, *self.feature_shape], tf.float32, name='x')
    mask_spec = tf.TensorSpec([None, *self.feature_shape], tf.float32,
                              name='mask')
    count_spec = tf.TensorSpec([], tf.int32, name='num_samples')
    seed_spec = tf.TensorSpec([], tf.int64, name='seed')
    self.impute = tf.function(self._impute, input_signature=[x_spec, mask_spec])
    self.sample = tf.function(
        self._sample,
        input_signature=[x_spec, mask_spec, count_spec, seed_spec])
    # Only where the family can: tf.saved_model.save traces every
    # tf.function the module holds, signature or not.
    if SIGNATURE_NEEDS[CONDITIONAL_LOG_PROB] in self.capabilities:
      self.conditional_log_prob = tf.function(
          self._conditional_log_prob,
          input_signature=[x_spec, mask_spec, count_spec])
    self.encode = tf.function(self._encode, input_signature=[x_spec, mask_spec])

  @property
  def model(self):
    return self._model.value

  def core_signature_names(self):
    """The core signatures this model serves (``SIGNATURE_NEEDS``)."""
    return tuple(name for name in CORE_SIGNATURES
                 if SIGNATURE_NEEDS.get(name) is None
                 or SIGNATURE_NEEDS[name] in self.capabilities)

  @property
  def schema(self):
    """The run's ``TableSchema`` (None: a run without one, all numeric)."""
    return self._schema.value

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """``{name: concrete function}`` of the core signatures it serves."""
    impute = self.impute.get_concrete_function()
    out = {DEFAULT: impute, IMPUTE: impute,
           SAMPLE: self.sample.get_concrete_function(),
           ENCODE: self.encode.get_concrete_function()}
    if CONDITIONAL_LOG_PROB in self.core_signature_names():
      out[CONDITIONAL_LOG_PROB] = (
          self.conditional_log_prob.get_concrete_function())
    return out

  # ------------------------------------------------------------ helpers
  def standardize(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Raw -> model units, 0 at the missing entries (whatever x holds)."""
    z = (x - self._mean) / self._std
    return tf.where(mask > 0, z, tf.zeros_like(z))

  def _prepare(self, x, mask):
    """(effective mask, x in model units, row seeds' base) after checks."""
    mask = _checked_mask(x, mask)
    checks = [_assert(
        tf.reduce_all(tf.math.is_finite(x) | (mask <= 0)),
        'pm_zoo: x holds inf at an observed entry: give finite values, or '
        'NaN / mask 0 for the entries to impute')]
    checks += self._code_checks(x, mask)
    with tf.control_dependencies(checks):
      return mask, self.standardize(x, mask)

  def _code_checks(self, x, mask):
    """Observed categorical cells must be codes 0..K-1."""
    checks = []
    for j, name, k in self._plan.value['categorical']:
      value = x[:, j]
      ok = (mask[:, j] <= 0) | ((value >= 0) & (value <= k - 1) &
                                (tf.round(value) == value))
      checks.append(_assert(tf.reduce_all(ok), (
          f'pm_zoo: column {name} is categorical: give the integer code '
          f'0..{k - 1} of its category (assets.extra/pm_zoo_schema.json '
          'lists them), or NaN to impute it')))
    return checks

  def _finish(self, x, mask, decoded, codes):
    """Raw samples [B, S, *fs] and the point imputation [B, *fs]; ``codes``:
    ``imputation.predictive_codes`` of the categorical columns."""
    raw = decoded * self._std + self._mean
    plan = self._plan.value
    if plan['integer'] or plan['constant'] or plan['categorical']:
      columns = tf.unstack(raw, axis=-1)
      for j in plan['integer']:
        columns[j] = tf.round(columns[j])
      for j in plan['constant']:
        columns[j] = tf.fill(tf.shape(columns[j]), self._mean[j])
      raw = tf.stack(columns, axis=-1)
    samples = tf.where(mask[:, tf.newaxis] > 0, x[:, tf.newaxis], raw)
    point = tf.reduce_mean(samples, axis=1)
    if plan['integer']:
      columns = tf.unstack(point, axis=-1)
      for j in plan['integer']:
        columns[j] = tf.round(columns[j])
      point = tf.stack(columns, axis=-1)
    point = imputation.with_predictive_codes(point, x, mask, codes)
    return samples, tf.where(mask > 0, x, point)

  def _latents(self, x, mask, num_samples, seed):
    """(z [B, S, d], effective mask, x in model units), row-keyed draws."""
    positive = _assert(num_samples >= 1, 'pm_zoo: num_samples must be >= 1')
    mask, z_x = self._prepare(x, mask)
    with tf.control_dependencies([positive]):
      seeds = imputation.row_seeds(x, mask, seed)
    z = imputation.row_keyed_latents(self.model, z_x, mask, num_samples, seeds)
    return z, mask, z_x

  # ------------------------------------------------------------ signatures
  def _sample(self, x, mask, num_samples, seed):
    z, mask, _ = self._latents(x, mask, num_samples, seed)
    decoded = self.model.vae.decode(z, training=False)  # batch [B, S]
    samples, point = self._finish(
        x, mask, decoded.mean(),
        imputation.predictive_codes(decoded, sample_axis=1))
    return {'samples': samples, 'x': point}

  def _impute(self, x, mask):
    # The traced ``sample``, not ``_sample``: one graph of the sampler, which
    # both signatures call (tracing it twice doubled the export time).
    return self.sample(x, mask, tf.constant(self.config.num_samples, tf.int32),
                       tf.constant(self.config.seed, tf.int64))

  def _conditional_log_prob(self, x, mask, num_samples):
    mask = _checked_mask(x, mask)
    checks = [
        _assert(tf.reduce_all(tf.math.is_finite(x)),
                'pm_zoo: conditional_log_prob needs a finite x everywhere '
                '(x_u is the point where the density is evaluated); the mask '
                'marks which entries are conditioned on'),
        _assert(num_samples >= 1, 'pm_zoo: num_samples must be >= 1')]
    with tf.control_dependencies(checks):
      z = self.standardize(x, tf.ones_like(x))
    seed = tf.bitcast(tf.constant(self.config.seed, tf.int64), tf.int32)
    estimate = lambda marginal, m: likelihood.estimate_log_marginal(
        self.model, marginal, z, m, seed, num_samples,
        self.config.log_prob_chunk)
    joint = estimate(likelihood.JOINT, tf.ones_like(z))
    observed = estimate(likelihood.OBSERVED, mask)
    observed = tf.where(_count(mask) > 0, observed, tf.zeros_like(observed))
    unobserved = 1.0 - mask
    log_prob = tf.where(_count(unobserved) > 0, joint - observed,
                        tf.zeros_like(joint))
    log_scale = tf.math.log(self._std) * unobserved
    return {'log_prob': log_prob - tf.reduce_sum(
        tf.reshape(log_scale, [tf.shape(x)[0], -1]), axis=1)}

  def _encode(self, x, mask):
    z, mask, z_x = self._latents(
        x, mask, tf.constant(self.config.num_samples, tf.int32),
        tf.constant(self.config.seed, tf.int64))
    out = {'samples': z}
    posterior = self.model.partial_encoder(z_x, mask, training=False)
    use_prior = self.model.vae.has(base.GENERATIVE_PRIOR)
    prior = self.model.vae.prior() if use_prior else posterior
    empty = _count(mask) == 0
    for name, moment in (('mean', lambda d: d.mean()),
                         ('covariance', lambda d: d.covariance())):
      of_posterior, of_prior = _closed_form(moment, posterior, prior)
      if of_posterior is not None:
        rows = tf.reshape(empty, [-1] + [1] * (len(of_posterior.shape) - 1))
        out[name] = tf.where(rows, of_prior, of_posterior)
    return out


def _column_plan(schema, standardizer) -> Dict:
  """Column indices that need more than the decoder mean (see module doc)."""
  plan = {'integer': [], 'categorical': [], 'constant': []}
  constant = getattr(standardizer, 'constant', None)
  if constant is not None and np.ndim(constant) == 1:
    plan['constant'] = [int(j) for j in np.flatnonzero(constant)]
  if schema is None:
    return plan
  for j, column in enumerate(schema.columns):
    if column.kind == 'integer':
      plan['integer'].append(j)
    elif column.kind == 'categorical':
      plan['categorical'].append((j, column.name, column.cardinality))
  return plan


def _closed_form(moment, posterior, prior):
  """``moment`` of both distributions, or (None, None) without closed form."""
  try:
    return moment(posterior), moment(prior)
  except NotImplementedError:
    return None, None


class _Untracked:
  """Holds an object out of ``tf.Module``'s attribute tracking."""

  def __init__(self, value):
    self.value = value
