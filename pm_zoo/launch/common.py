"""Flags and error handling shared by the launchers."""
import os
import sys

from absl import app
from absl import flags
from absl import logging

GIN_FLAGS_DEFINED = False
_HELP_ARGS = ('-h', '--help', '-help', '--helpshort', '-helpshort', '-?')


def define_gin_flags():
  flags.DEFINE_multi_string(
      'gin_file', [], 'Gin experiment file(s), a path or a name under gin/ '
      '(e.g. demo.gin, uci_gas.gin). Repeatable; later files override.')
  flags.DEFINE_multi_string(
      'gin_bindings', [], "Extra gin bindings, e.g. "
      "--gin_bindings='TrainConfig.num_steps = 1000'. Repeatable.")


def define_data_flags():
  flags.DEFINE_string('data_path', None, 'Data file or directory (CSV, NPY, '
                      'NPZ, idx directory, UCI directory), when the gin '
                      'experiment reads one. Stored with the run.')
  flags.DEFINE_string('test_data_path', None, 'Optional separate test file.')
  flags.DEFINE_string('tfds_data_dir', None, 'tensorflow_datasets data_dir.')


def quiet_tensorflow():
  """Keeps TensorFlow's C++ start-up chatter off the terminal."""
  # Level 3 also hides the oneDNN graph-rewriter's harmless 'empty op name'
  # errors that TF 2.18 logs for these models; set the variable to see them.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def run_guarded(fn):
  """Runs ``fn``; a user mistake prints one line and exits with status 2."""
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  from pm_zoo.training.trainer import TrainingDivergedError  # pylint: disable=g-import-not-at-top
  try:
    return fn()
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except TrainingDivergedError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(3)


def show_info_logs():
  logging.set_verbosity(logging.INFO)


def launcher_main(body, info_logs: bool = False):
  """The ``main(argv)`` for ``app.run`` of a launcher whose work is ``body()``.

  The returned ``main`` refuses positional arguments (absl usage error),
  keeps TensorFlow's C++ start-up chatter quiet, shows absl INFO logs
  (training and episode progress) when ``info_logs``, and runs ``body``
  under ``run_guarded`` (a user mistake is one line and exit status 2).
  """
  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    quiet_tensorflow()
    if info_logs:
      show_info_logs()
    run_guarded(body)
  return main


def run_app(main, module_name):
  """``app.run(main)`` with a --help that describes the launcher.

  absl's own --help prints the docstring and flags of ``__main__``, which for
  the console scripts ``pm-train``/``pm-eval`` is pip's wrapper (no docstring,
  no flags), and exits with status 1. This one prints the launcher's docstring
  and flags and exits with status 0.

  Args:
    main: the launcher's ``main(argv)``.
    module_name: ``__name__`` of the launcher module.
  """
  args = sys.argv[1:]
  if '--' in args:
    args = args[:args.index('--')]
  if any(arg in _HELP_ARGS for arg in args):
    module = sys.modules[module_name]
    print((module.__doc__ or '').strip() + '\n')
    print(flags.FLAGS.module_help(module))
    print(flags.FLAGS.module_help(sys.modules[__name__]))
    print('\nTry --helpfull to get a list of all flags.')
    sys.exit(0)
  app.run(main)
