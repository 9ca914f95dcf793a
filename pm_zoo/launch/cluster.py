r"""pm-cluster: partially observed clustering with a trained VaDE + PM run.

  pm-cluster --model_dir=runs/vade/partial
  pm-cluster --model_dir=runs/vade/partial \
      --gin_bindings='ClusterConfig.max_examples = 2000'

For a run whose base VAE has clusters (VaDE; stage 3 of docs/models-vade.md):
accuracy / NMI / ARI against the test labels at every fraction of observed
pixels (Bernoulli masks, ClusterConfig.fractions from 0 to 1,
ClusterConfig.trials draws each) for Posterior Matching and the supervised
baseline (trained once on the VaDE's assignments, kept in
<model_dir>/baseline/). Writes <model_dir>/clustering.json,
<model_dir>/figures/clustering.png and figures/latent_map.png; prints the
table.
"""
from absl import flags

from pm_zoo.launch import common
from pm_zoo.launch import paths

common.define_data_flags()
flags.DEFINE_multi_string(
    'gin_bindings', [], "Overrides, e.g. --gin_bindings='ClusterConfig."
    "trials = 2'. Repeatable.")
flags.DEFINE_string('model_dir', None, 'Run directory of pm-train (the '
                    "'partial' stage).", required=True)
flags.DEFINE_bool('latent_map', True, 'Also write figures/latent_map.png.')
FLAGS = flags.FLAGS


def _cluster():
  # pylint: disable=g-import-not-at-top
  from pm_zoo.tasks import clustering
  result = clustering.evaluate_run(
      FLAGS.model_dir, FLAGS.data_path, FLAGS.test_data_path,
      FLAGS.tfds_data_dir, FLAGS.gin_bindings, latent_map=FLAGS.latent_map)
  print(f"{result['dataset']}: {result['test_examples']} test rows, step "
        f"{result['step']}; VaDE at full observation: "
        + ', '.join(f'{k} {v:.4f}'
                    for k, v in result['full_observation_vade'].items()))
  print(clustering.format_table(result))
  print(f'wrote {FLAGS.model_dir}/{clustering.CLUSTERING_JSON} and '
        f'{FLAGS.model_dir}/figures/clustering.png')


def _path_flags():
  return {
      # clustering.json, figures/ and baseline/ are written into the run.
      'model_dir': (FLAGS.model_dir, paths.WRITABLE_DIR),
      **common.data_path_flags(),
  }


main = common.launcher_main(_cluster, info_logs=True, path_flags=_path_flags)


def run():
  common.run_app(main, __name__)


if __name__ == '__main__':
  run()
