r"""Partially observed clustering: PM-VaDE against baselines on the same masks.

Images (a trained VaDE + PM run, stage 3 of docs/models-vade.md):

  python -m benchmarks.clustering --model_dir=runs/vade_mnist/partial \
      --max_examples=1000 --output=runs/vade_mnist/clustering_benchmark.json

scores, at every observed fraction p (per-pixel Bernoulli(p) masks, p in
``--fractions`` steps from 0 to 1, ``--trials`` draws each; every method
sees the same masks, ``tasks.clustering.bernoulli_masks``):

  PM-VaDE              argmax of (1/S) sum_s p(c | z_s), z_s ~ q_theta(z | x_o)
  PM-VaDE (importance-weighted)
                       the same draws weighted by p(x_o | z_s) p(z_s) /
                       q_theta(z_s | x_o), self-normalised (``--weightings``;
                       tasks/clustering.py)
  supervised baseline  the masked classifier over concat(x * b, b) trained on
                       the VaDE's full-observation clusters (the run's own
                       baseline/ if pm-cluster trained one with the same
                       steps, else trained here)
  k-means (mean-imp.)  sklearn KMeans(K) fitted on the complete training rows,
                       predicting test rows whose missing pixels are replaced
                       by the training mean of that pixel
  GMM (mean-imp.)      the same with a diagonal sklearn GaussianMixture(K)

by accuracy (Hungarian), NMI and ARI against the test labels; writes the
JSON (``--output``) and the accuracy figure (``--figure``, default the
JSON's path with ``.png``).

Tables (``--table``): fits ``PosteriorMatchingClusterer`` on the complete
training split of a labelled table (the label column left out), hides
``--missing`` of the test cells at random, and reports the ARI / NMI /
accuracy of its clusters against the labels next to k-means on the
mean-imputed (standardised) test table:

  python -m benchmarks.clustering \
      --table=/work/shared/data/winequality_white.csv --label_column=quality \
      --missing=0.3 --steps=3000 --output=runs/wine_clustering.json
"""
import csv
import functools
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from benchmarks import common
from pm_zoo.errors import UserError

flags.DEFINE_string('model_dir', None, 'A VaDE + PM run (the partial stage).')
flags.DEFINE_integer('max_examples', 1000, 'First N test rows (images).')
flags.DEFINE_integer('fractions', 21, 'Observed fractions from 0 to 1.')
flags.DEFINE_integer('trials', 5, 'Mask draws per fraction.')
flags.DEFINE_integer('num_samples', 20, 'S draws of q_theta(z | x_o).')
flags.DEFINE_list('weightings', ['mean', 'importance'], 'PM-VaDE rows: how '
                  'the S draws become p(c | x_o) (tasks.clustering.WEIGHTINGS).')
flags.DEFINE_integer('baseline_steps', 1000, 'Steps of the supervised '
                     'baseline (0: leave it out).')
flags.DEFINE_integer('fit_examples', 10000, 'Training rows k-means and the '
                     'GMM are fitted on (images).')
flags.DEFINE_string('table', None, 'A labelled table (.csv; header row).')
flags.DEFINE_string('label_column', 'quality', 'Its label column.')
flags.DEFINE_float('missing', 0.3, 'Fraction of test cells hidden (tables).')
flags.DEFINE_integer('steps', 2000, 'Steps of each VaDE stage (tables).')
flags.DEFINE_integer('n_clusters', None, 'K for tables (default: the number '
                     'of distinct labels).')
flags.DEFINE_string('work_dir', None, 'Where the table clusterer trains.')
flags.DEFINE_string('output', None, 'JSON of the results.')
flags.DEFINE_string('figure', None, 'Accuracy figure (images; default: '
                    '--output with .png for .json, so that two runs into one '
                    'directory keep both).')
flags.DEFINE_integer('seed', 0, 'Seed of masks and fits.')
FLAGS = flags.FLAGS


def mean_imputed_methods(train_x, k, seed, fit_examples):
  """k-means and a diagonal GMM fitted on complete rows, mean-imputed input."""
  # pylint: disable=g-import-not-at-top
  from sklearn.cluster import KMeans
  from sklearn.mixture import GaussianMixture
  flat = train_x.reshape(len(train_x), -1)[:fit_examples].astype(np.float64)
  means = flat.mean(axis=0)
  t0 = time.time()
  kmeans = KMeans(k, n_init=10, random_state=seed).fit(flat)
  gmm = GaussianMixture(k, covariance_type='diag', random_state=seed,
                        reg_covar=1e-3).fit(flat)
  logging.info('k-means and GMM fitted on %d rows in %.0fs', len(flat),
               time.time() - t0)

  def imputed(x, mask):
    f = x.reshape(len(x), -1).astype(np.float64)
    m = mask.reshape(len(x), -1)
    return np.where(m > 0, f, means)

  return {'k-means (mean-imputed)': lambda x, m: kmeans.predict(imputed(x, m)),
          'GMM (mean-imputed)': lambda x, m: gmm.predict(imputed(x, m))}


def pm_row_name(weighting):
  return 'PM-VaDE' if weighting == 'mean' else f'PM-VaDE ({weighting}-weighted)'


def pm_clusters(clusterer, config, weighting, x, mask):
  return clusterer.probabilities(x, mask, config.num_samples, config.seed,
                                 weighting).argmax(-1)


def image_benchmark():
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import clustering
  from pm_zoo.training import trainer as trainer_lib
  model, step, splits = clustering.restore_labelled_run(
      FLAGS.model_dir, 'benchmarks.clustering')
  n = min(len(splits.test), FLAGS.max_examples)
  x, labels = splits.test[:n], np.asarray(splits.test_labels[:n])
  config = clustering.ClusterConfig(
      fractions=FLAGS.fractions, trials=FLAGS.trials,
      num_samples=FLAGS.num_samples, seed=FLAGS.seed,
      baseline_steps=FLAGS.baseline_steps)
  clusterer = clustering.Clusterer(model, config.batch_size)
  k = clusterer.num_clusters
  full = clusterer.full_probabilities(x, config.num_samples, config.seed)
  methods = {pm_row_name(w): functools.partial(
      pm_clusters, clusterer, config, clustering.check_weighting(w))
             for w in FLAGS.weightings}
  if FLAGS.baseline_steps:
    classifier = clustering.baseline_for_run(
        model, clusterer, splits.train, FLAGS.model_dir, config,
        trainer_lib.TrainConfig().train_mask)
    methods['supervised baseline'] = (
        lambda xs, m: clustering.classifier_probabilities(
            classifier, xs, m, config.batch_size).argmax(-1))
  methods.update(mean_imputed_methods(splits.train, k, FLAGS.seed,
                                      FLAGS.fit_examples))
  t0 = time.time()
  curves = clustering.accuracy_curves(methods, x, labels, config)
  result = {'dataset': splits.name, 'model_dir': FLAGS.model_dir,
            'step': step, 'test_examples': n, 'num_clusters': k,
            'num_samples': config.num_samples,
            'full_observation_vade': clustering.clustering_scores(
                labels, full.argmax(-1)),
            'seconds': time.time() - t0, **curves}
  figure = FLAGS.figure or (
      os.path.splitext(os.path.abspath(FLAGS.output))[0] + '.png'
      if FLAGS.output else None)
  if figure:
    clustering.save_accuracy_figure(
        figure, curves, title=f'{splits.name}, {n} test images')
    result['figure'] = figure
  tables = [f"{splits.name}: {n} test images, step {step}; VaDE at full "
            'observation: ' + ', '.join(
                f'{a} {b:.4f}'
                for a, b in result['full_observation_vade'].items())]
  for metric in ('accuracy', 'nmi', 'ari'):
    tables.append(f'\n{metric} (mean ± std over {config.trials} mask draws)')
    tables.append(clustering.format_table(curves, metric))
  return result, '\n'.join(tables)


def read_labelled_table(path, label_column):
  """(features float64 [N, D], labels [N], feature names) of a CSV."""
  try:
    with open(path, newline='') as f:
      sample = f.read(4096)
      f.seek(0)
      dialect = csv.Sniffer().sniff(sample, delimiters=',;\t')
      rows = list(csv.reader(f, dialect))
  except (OSError, csv.Error) as e:
    raise UserError(f'cannot read {path} as a CSV table ({e})') from None
  header = [h.strip().strip('"') for h in rows[0]]
  if label_column not in header:
    raise UserError(f'{path} has no column {label_column!r}: pick one of '
                    f'{header}')
  try:
    values = np.array([[float(v) for v in r] for r in rows[1:] if r],
                      np.float64)
  except ValueError as e:
    raise UserError(f'{path} holds a non-numeric cell ({e})') from None
  j = header.index(label_column)
  names = [h for i, h in enumerate(header) if i != j]
  return np.delete(values, j, axis=1), values[:, j].astype(np.int64), names


def table_benchmark():
  # pylint: disable=g-import-not-at-top
  import tempfile
  from sklearn.cluster import KMeans
  from pm_zoo.sklearn_clustering import PosteriorMatchingClusterer
  from pm_zoo.tasks import clustering
  x, labels, names = read_labelled_table(FLAGS.table, FLAGS.label_column)
  rng = np.random.default_rng(FLAGS.seed)
  order = rng.permutation(len(x))
  cut = int(round(0.8 * len(x)))
  train, test = x[order[:cut]], x[order[cut:]]
  test_labels = labels[order[cut:]]
  k = FLAGS.n_clusters or len(np.unique(labels))
  hidden = rng.random(test.shape) < FLAGS.missing
  holes = np.where(hidden, np.nan, test)
  work = FLAGS.work_dir or tempfile.mkdtemp(prefix='pm_zoo_cluster_bench_')
  run = os.path.join(work, 'clusterer')
  t0 = time.time()
  if os.path.exists(os.path.join(run, 'clusterer.json')):
    clusterer = PosteriorMatchingClusterer.load(run)
  else:
    clusterer = PosteriorMatchingClusterer(
        n_clusters=k, pretrain_steps=FLAGS.steps, elbo_steps=FLAGS.steps,
        partial_steps=FLAGS.steps, random_state=FLAGS.seed,
        model_dir=run).fit(train)
  seconds = time.time() - t0
  mean, std = train.mean(0), train.std(0)
  kmeans = KMeans(k, n_init=10, random_state=FLAGS.seed).fit(
      (train - mean) / std)
  imputed = np.where(hidden, 0.0, (test - mean) / std)
  methods = {
      f'PM-VaDE ({FLAGS.missing:.0%} missing)': clusterer.predict(holes),
      'PM-VaDE (complete)': clusterer.predict(test),
      'k-means (mean-imputed)': kmeans.predict(imputed),
      'k-means (complete)': kmeans.predict((test - mean) / std),
  }
  scores = {name: clustering.clustering_scores(test_labels, c)
            for name, c in methods.items()}
  result = {'table': FLAGS.table, 'label_column': FLAGS.label_column,
            'features': names, 'train_rows': len(train),
            'test_rows': len(test), 'missing_fraction': FLAGS.missing,
            'num_clusters': k, 'steps_per_stage': FLAGS.steps,
            'fit_seconds': seconds, 'model_dir': run, 'scores': scores}
  lines = [f'{os.path.basename(FLAGS.table)}: {len(train)} train / '
           f'{len(test)} test rows, {k} clusters vs {FLAGS.label_column}, '
           f'{FLAGS.missing:.0%} of test cells missing',
           f"{'method':28s}  {'ARI':>7s}  {'NMI':>7s}  {'accuracy':>8s}"]
  for name, s in scores.items():
    lines.append(f"{name:28s}  {s['ari']:7.4f}  {s['nmi']:7.4f}  "
                 f"{s['accuracy']:8.4f}")
  return result, '\n'.join(lines)


def run():
  logging.set_verbosity(logging.INFO)
  if bool(FLAGS.model_dir) == bool(FLAGS.table):
    raise UserError('pass exactly one of --model_dir (images) and --table')
  return image_benchmark() if FLAGS.model_dir else table_benchmark()


main = common.absl_main(run, lambda: FLAGS.output)


if __name__ == '__main__':
  app.run(main)
