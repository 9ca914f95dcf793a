r"""pm-export: writes a pm-train run as a SavedModel for TF Serving.

  pm-export --model_dir=runs/wine
  pm-export --model_dir=runs/wine --export_base=/models/wine --num_samples=20

Writes <export_base>/<version>/ (default export_base: <model_dir>/export;
version: one more than the highest there), atomically: the version appears
complete or not at all. Signatures: serving_default = impute (x, mask -> x,
samples), sample, conditional_log_prob, encode; inputs are raw values, the
standardisation is inside the graph. The SavedModel needs only TensorFlow.
"""
import os

from absl import flags

from pm_zoo.launch import common
from pm_zoo.launch import paths

flags.DEFINE_string('model_dir', None, 'Run directory of pm-train.',
                    required=True)
flags.DEFINE_string('export_base', None, "TF Serving's model base path "
                    '(default: <model_dir>/export).')
flags.DEFINE_integer('num_samples', 10, 'Imputations averaged by the impute '
                     'signature (and latent samples returned by encode).')
flags.DEFINE_integer('seed', 0, 'Seed of impute, encode and '
                     'conditional_log_prob.')
flags.DEFINE_enum('cluster_weighting', 'mean', ['mean', 'importance'],
                  'How the cluster signature (VaDE runs) turns its '
                  '--num_samples draws of q_theta(z | x_o) into p(c | x_o): '
                  'their plain average of p(c | z), or importance weights '
                  'p(x_o | z) p(z) / q_theta(z | x_o).')
FLAGS = flags.FLAGS


def _export():
  # pylint: disable=g-import-not-at-top
  from pm_zoo.serving import export
  from pm_zoo.serving import module
  config = module.ServingConfig(num_samples=FLAGS.num_samples,
                                seed=FLAGS.seed,
                                cluster_weighting=FLAGS.cluster_weighting)
  path = export.export(FLAGS.model_dir, FLAGS.export_base, config)
  print(f'exported {FLAGS.model_dir} to {path}')


def _path_flags():
  return {
      'model_dir': (FLAGS.model_dir, paths.EXISTING_DIR),
      # Unset, the export goes to <model_dir>/export.
      'export_base': (FLAGS.export_base or
                      os.path.join(FLAGS.model_dir, 'export'), paths.RUN_DIR),
  }


main = common.launcher_main(_export, path_flags=_path_flags)


def run():
  common.run_app(main, __name__)


if __name__ == '__main__':
  run()
