r"""pm-acquire: greedy active feature acquisition with a trained pm-train run.

  pm-acquire --model_dir=runs/m16 --train_lookahead   # train D/lookahead, then run episodes
  pm-acquire --model_dir=runs/m16                     # episodes only

--train_lookahead trains the lookahead network (one diagonal Gaussian
q(z | x_o) per feature, paper Eq. 7) on the frozen model into
<model_dir>/lookahead/ (resumable; its settings: LookaheadConfig,
LookaheadModel, LookaheadNetwork in gin, e.g. --gin_file=training/lookahead.gin
for a run trained without them). The episodes start from the empty mask on the
first AcquisitionConfig.num_instances test instances and acquire one feature at
a time with each of AcquisitionConfig.methods (random, lookahead, sampling);
after every acquisition the RMSE of the imputation of the unobserved features
is recorded. Writes <output_dir>/acquisition.json,
<output_dir>/figures/acquisition.png and, for images,
<output_dir>/figures/acquisition_trajectory_<method>.png; prints a table.
"""
from absl import flags

from pm_zoo.launch import common
from pm_zoo.launch import paths

common.define_gin_flags()
common.define_data_flags()
flags.DEFINE_string('model_dir', None, 'Run directory of pm-train.',
                    required=True)
flags.DEFINE_bool('train_lookahead', False, 'Train (or resume) the lookahead '
                  'network into <model_dir>/lookahead first.')
flags.DEFINE_bool('episodes', True, 'Run the acquisition episodes and write '
                  'acquisition.json and the figures.')
flags.DEFINE_string('output_dir', None, 'Where acquisition.json and figures/ '
                    'go (default: the model_dir).')
FLAGS = flags.FLAGS


def format_report(result, output_dir) -> str:
  """The RMSE after 0, 10, 20, 30 acquisitions, one row per method."""
  steps = result['report_steps']
  head = (f"{result['dataset']}: model step {result['model_step']}, "
          f"{result['num_instances']} instances, "
          f"{result['num_acquisitions']} acquisitions, RMSE of the imputation "
          f"({result['rmse_units']}) after t acquisitions")
  lines = [head, f'{"method":<12}' + ''.join(f'{f"t={t}":>10}' for t in steps)
           + f'{"ms/batch":>10}']
  for name, values in result['rmse_at'].items():
    ms = result['methods'][name]['policy_ms_per_batch']
    lines.append(f'{name:<12}' + ''.join(f'{v:>10.4f}' for v in values) +
                 f'{ms:>10.2f}')
  if 'lookahead_vs_sampling' in result:
    diff = result['lookahead_vs_sampling']
    lines.append('lookahead vs sampling, relative RMSE difference over steps '
                 f"1..T: mean {100 * diff['mean_relative_difference']:+.2f}%, "
                 f"max {100 * diff['max_relative_difference']:+.2f}%")
  lines.append(f'written to {output_dir}/acquisition.json')
  return '\n'.join(lines)


def _acquire():
  # pylint: disable=g-import-not-at-top
  from pm_zoo.acquisition import task
  loaded = task.load_run(FLAGS.model_dir, FLAGS.gin_file,
                         FLAGS.gin_bindings, FLAGS.data_path,
                         FLAGS.test_data_path, FLAGS.tfds_data_dir)
  if FLAGS.train_lookahead:
    result = task.train_lookahead(loaded)
    if result:
      print(f"lookahead training done: loss {result['loss']:.4f} in "
            f"{result['seconds']:.0f}s")
  if FLAGS.episodes:
    output_dir = FLAGS.output_dir or FLAGS.model_dir
    print(format_report(task.acquire(loaded, output_dir), output_dir))


def _path_flags():
  # The lookahead network goes into <model_dir>/lookahead, the episodes
  # into --output_dir (default: the model_dir).
  writes_into_run = FLAGS.train_lookahead or not FLAGS.output_dir
  return {
      'model_dir': (FLAGS.model_dir, paths.WRITABLE_DIR if writes_into_run
                    else paths.EXISTING_DIR),
      'output_dir': (FLAGS.output_dir, paths.RUN_DIR),
      **common.data_path_flags(),
  }


main = common.launcher_main(_acquire, info_logs=True, path_flags=_path_flags)


def run():
  common.run_app(main, __name__)


if __name__ == '__main__':
  run()
