r"""pm-train: trains a Posterior Matching experiment described by gin files.

  pm-train --gin_file=demo.gin --model_dir=runs/demo
  pm-train --gin_file=uci_gas.gin --data_path=data/gas --model_dir=runs/gas \
      --strategy=mirrored
  TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
      "task": {"type": "worker", "index": 0}}' pm-train ... --strategy=multi_worker
  pm-train ... --strategy=tpu --tpu=local        # on a Cloud TPU VM

Run again with the same command to resume from the last checkpoint (also
after the process was killed: the last complete checkpoint is used).
"""
from absl import flags

from pm_zoo.launch import common
from pm_zoo.launch import paths

common.define_gin_flags()
common.define_data_flags()
flags.DEFINE_string('model_dir', None, 'Run directory (checkpoints, '
                    'summaries, configs).', required=True)
flags.DEFINE_enum('strategy', 'default',
                  ['default', 'mirrored', 'multi_worker', 'tpu'],
                  'tf.distribute strategy.')
flags.DEFINE_string('tpu', None, 'TPU name for --strategy=tpu (local on a '
                    'Cloud TPU VM).')
flags.DEFINE_integer('cpu_devices', 1, 'Split the CPU into this many logical '
                     'devices (to run --strategy=mirrored without GPUs).')
flags.DEFINE_string('vae_checkpoint', None, "Trained VAE (model dir or "
                    "checkpoint): the frozen VAE of TrainConfig.objective = "
                    "'partial', or the warm start of a family's next stage "
                    "(VaDE: the ELBO stage after 'pretrain'); used only when "
                    "the run starts from step 0.")
flags.DEFINE_bool('evaluate', True, 'Evaluate the final checkpoint (writes '
                  'metrics.json and, for images, figures/inpainting.png).')
FLAGS = flags.FLAGS


def _train():
  # pylint: disable=g-import-not-at-top
  from pm_zoo import configs, experiment
  from pm_zoo.tasks import evaluation
  from pm_zoo.training import strategy as strategy_lib
  strategy_lib.split_cpu(FLAGS.cpu_devices)
  configs.parse(FLAGS.gin_file or ['demo.gin'], FLAGS.gin_bindings)
  result = experiment.train(
      FLAGS.model_dir, FLAGS.strategy, FLAGS.tpu, FLAGS.data_path,
      FLAGS.test_data_path, FLAGS.tfds_data_dir, FLAGS.vae_checkpoint)
  if result:
    print(f"training done: loss {result.get('loss', float('nan')):.4f} "
          f"in {result.get('seconds', 0.0):.0f}s "
          f"({result.get('nonfinite_steps', 0)} non-finite steps skipped)")
  # Under multi_worker only the chief evaluates (and writes metrics.json);
  # make_strategy hands back the strategy the run trained under.
  chief = strategy_lib.is_chief(
      strategy_lib.make_strategy(FLAGS.strategy, FLAGS.tpu))
  if FLAGS.evaluate and chief:
    metrics = experiment.evaluate(FLAGS.model_dir)
    print(evaluation.format_report(metrics, FLAGS.model_dir))


def _path_flags():
  return {
      'model_dir': (FLAGS.model_dir, paths.RUN_DIR),
      **common.data_path_flags(),
      'vae_checkpoint': (FLAGS.vae_checkpoint, paths.CHECKPOINT),
  }


main = common.launcher_main(_train, info_logs=True, path_flags=_path_flags)


def run():
  common.run_app(main, __name__)


if __name__ == '__main__':
  run()
