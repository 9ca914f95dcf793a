r"""pm-eval: evaluates the latest checkpoint of a pm-train run.

  pm-eval --model_dir=runs/demo

Writes <model_dir>/metrics.json (NRMSE for tables, PSNR for images, each as
{"mean", "std", "trials"} over mask draws) and, for images,
<model_dir>/figures/inpainting.png; prints a table.
"""
from absl import flags

from pm_zoo.launch import common
from pm_zoo.launch import paths

common.define_data_flags()
flags.DEFINE_multi_string(
    'gin_bindings', [], "Evaluation overrides, e.g. "
    "--gin_bindings='EvalConfig.trials = 10'. Repeatable.")
flags.DEFINE_string('model_dir', None, 'Run directory of pm-train.',
                    required=True)
FLAGS = flags.FLAGS


def _evaluate():
  # pylint: disable=g-import-not-at-top
  from pm_zoo import experiment
  from pm_zoo.tasks import evaluation
  metrics = experiment.evaluate(
      FLAGS.model_dir, FLAGS.data_path, FLAGS.test_data_path,
      FLAGS.tfds_data_dir, FLAGS.gin_bindings)
  print(evaluation.format_report(metrics, FLAGS.model_dir))


def _path_flags():
  return {
      'model_dir': (FLAGS.model_dir, paths.WRITABLE_DIR),
      **common.data_path_flags(),
  }


main = common.launcher_main(_evaluate, info_logs=True, path_flags=_path_flags)


def run():
  common.run_app(main, __name__)


if __name__ == '__main__':
  run()
