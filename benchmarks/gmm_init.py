r"""How much VaDE's clustering rides on its GaussianMixture initialisation.

VaDE's ELBO stage starts from a diagonal GaussianMixture fitted to the
latent means m(x) of a pre-trained encoder (``VaDE.initial_mixture``), and
on MNIST its accuracy stays near where that mixture puts it
(docs/models-vade.md). This script fits that mixture with ``--seeds``
different ``gmm_seed`` values (each its own row draw and k-means start,
exactly what ``VaDE.gmm_seed=<s>`` would make stage 2 start from) on a
pre-training run (or any VaDE run), and scores each against the labels:

  python -m benchmarks.gmm_init --model_dir=runs/vade_mlp/pretrain \
      --seeds=8 --output=runs/vade_mlp/gmm_init.json

(``--prior_init=umap`` sweeps N2D's initialisation instead, ``mixture_init``;
``--covariance=full`` fits full-covariance mixtures.)

Per seed: the mean log-likelihood per row of the rows it was fitted on (what
a user without labels can see) and the Hungarian accuracy, NMI and ARI of
``gmm.predict(m(x))`` on the first ``--test_examples`` test images (which
equals the argmax of the VaDE's q(c | x) at z = m(x) right after the
initialisation). The summary gives the spread over seeds and the accuracy of
the seed a user would pick without labels (the highest log-likelihood).
"""
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import common
from pm_zoo.errors import UserError
from pm_zoo.models import mixture_init

flags.DEFINE_string('model_dir', None, 'A VaDE run (e.g. stage 1, pretrain).')
flags.DEFINE_integer('seeds', 8, 'gmm_seed values 0 .. seeds - 1.')
flags.DEFINE_enum('prior_init', None, list(mixture_init.PRIOR_INITS),
                  "VaDE.prior_init to sweep (default: the run's own).")
flags.DEFINE_enum('covariance', None, list(mixture_init.COVARIANCES),
                  "VaDE.covariance of the fitted mixtures (default: the "
                  "run's own).")
flags.DEFINE_integer('test_examples', 10000, 'First N test images scored.')
flags.DEFINE_string('output', None, 'JSON of the results.')
FLAGS = flags.FLAGS


def sweep(vae, train_x, test_x, test_labels, seeds):
  """One row per seed: log-likelihood per fitted row and test scores."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import clustering
  test_means = vae.latent_means(np.asarray(test_x, np.float32))
  rows = []
  for seed in range(seeds):
    t0 = time.time()
    gmm, _, means = vae.initial_mixture(train_x, seed=seed)
    scores = clustering.clustering_scores(
        test_labels, gmm.predict(test_means.astype(np.float64)))
    rows.append({'seed': seed, 'log_likelihood': float(gmm.score(means)),
                 'fit_rows': len(means), 'seconds': time.time() - t0,
                 **scores})
  return rows


def summarise(rows):
  accuracy = np.array([r['accuracy'] for r in rows])
  picked = max(rows, key=lambda r: r['log_likelihood'])
  return {'accuracy_mean': float(accuracy.mean()),
          'accuracy_std': float(accuracy.std()),
          'accuracy_min': float(accuracy.min()),
          'accuracy_max': float(accuracy.max()),
          'highest_likelihood_seed': picked['seed'],
          'highest_likelihood_accuracy': picked['accuracy']}


def format_table(rows, summary, header):
  lines = [header, 'seed  log-lik/row  accuracy     NMI     ARI']
  for r in rows:
    lines.append(f"{r['seed']:>4}  {r['log_likelihood']:>11.3f}  "
                 f"{r['accuracy']:>8.4f}  {r['nmi']:.4f}  {r['ari']:.4f}")
  lines.append(
      f"accuracy {summary['accuracy_mean']:.4f} +- "
      f"{summary['accuracy_std']:.4f} (min {summary['accuracy_min']:.4f}, "
      f"max {summary['accuracy_max']:.4f}); the highest-likelihood seed "
      f"({summary['highest_likelihood_seed']}) scores "
      f"{summary['highest_likelihood_accuracy']:.4f}")
  return '\n'.join(lines)


def run():
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import clustering
  if not FLAGS.model_dir:
    raise UserError('pass --model_dir=<a VaDE run>')
  if FLAGS.seeds < 1:
    raise UserError(f'--seeds must be >= 1, got {FLAGS.seeds}')
  model, step, splits = clustering.restore_labelled_run(
      FLAGS.model_dir, 'benchmarks.gmm_init')
  if FLAGS.prior_init:
    model.vae.prior_init = FLAGS.prior_init
  if FLAGS.covariance:
    model.vae.covariance = FLAGS.covariance
  n = min(len(splits.test), FLAGS.test_examples)
  rows = sweep(model.vae, splits.train, splits.test[:n],
               np.asarray(splits.test_labels[:n]), FLAGS.seeds)
  summary = summarise(rows)
  result = {'dataset': splits.name, 'model_dir': FLAGS.model_dir,
            'step': step, 'test_examples': n,
            'num_clusters': model.vae.num_clusters,
            'prior_init': model.vae.prior_init,
            'covariance': model.vae.covariance, 'seeds': rows,
            'summary': summary}
  header = (f'{splits.name}, prior_init={model.vae.prior_init!r}, '
            f'covariance={model.vae.covariance!r}, '
            f'{model.vae.num_clusters} components on '
            f'{rows[0]["fit_rows"]} latent means of {FLAGS.model_dir} (step '
            f'{step}); scored on {n} test images')
  return result, format_table(rows, summary, header)


main = common.absl_main(run, lambda: FLAGS.output)


if __name__ == '__main__':
  app.run(main)
