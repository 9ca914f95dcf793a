"""Flags and error handling shared by the launchers."""
import logging as std_logging
import os
import sys
import tempfile
from typing import Callable, Dict, Optional, Tuple

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


def data_path_flags() -> dict:
  """``{flag: (value, kind)}`` for the flags of ``define_data_flags``, for a
  launcher's ``path_flags``."""
  # pylint: disable=g-import-not-at-top
  from pm_zoo.launch import paths
  values = flags.FLAGS
  return {
      'data_path': (values.data_path, paths.INPUT),
      'test_data_path': (values.test_data_path, paths.INPUT),
      'tfds_data_dir': (values.tfds_data_dir, paths.EXISTING_DIR),
  }


# Set to 1 to see TensorFlow's own start-up and C++ log lines.
TF_LOGS_ENV = 'PM_ZOO_TF_LOGS'


def tensorflow_logs_wanted() -> bool:
  """Whether the user asked for TensorFlow's logs.

  Either ``PM_ZOO_TF_LOGS=1`` in the environment or ``--verbosity=1`` (absl's
  flag, ``-v 1``; debug logging) on the command line.
  """
  if os.environ.get(TF_LOGS_ENV, '').strip() not in ('', '0'):
    return True
  verbosity = flags.FLAGS['verbosity'] if 'verbosity' in flags.FLAGS else None
  return bool(verbosity is not None and verbosity.present and
              verbosity.value >= 1)


def quiet_tensorflow():
  """Imports TensorFlow without its C++ start-up chatter on the terminal.

  On a CPU machine ``import tensorflow`` prints lines such as "Could not find
  cuda drivers", "oneDNN custom operations are on" and "All log messages
  before absl::InitializeLog() is called are written to STDERR" straight to
  file descriptor 2, which ``TF_CPP_MIN_LOG_LEVEL`` does not reach on TF
  2.21. So the import (and the device enumeration, where cuInit is tried)
  runs with descriptor 2 pointed at a temporary file: if it fails, what it
  wrote is replayed before the exception propagates; if it succeeds, it is
  dropped. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 for the C++ logs that come
  later (e.g. the oneDNN graph rewriter's harmless 'empty op name' errors).
  TensorFlow's Python logger (the ``tensorflow`` logger: checkpoint
  "Sharding callback duration" INFO lines, tf.function retracing warnings)
  is set to ERROR, so the absl INFO progress the launchers show is pm_zoo's
  alone. With ``tensorflow_logs_wanted()`` nothing is hidden.
  """
  if tensorflow_logs_wanted():
    return
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  std_logging.getLogger('tensorflow').setLevel(std_logging.ERROR)
  if 'tensorflow' in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.list_physical_devices()
    except BaseException:
      os.dup2(saved, 2)
      captured.seek(0)
      sys.stderr.write(captured.read().decode(errors='replace'))
      sys.stderr.flush()
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def run_guarded(fn, import_tensorflow: bool = True):
  """Runs ``fn``; a user mistake prints one line and exits with status 2.

  ``import_tensorflow=False`` only catches ``UserError`` (for checks that
  run before TensorFlow is imported).
  """
  from pm_zoo.errors import UserError  # pylint: disable=g-import-not-at-top
  if import_tensorflow:
    from pm_zoo.training.trainer import TrainingDivergedError  # pylint: disable=g-import-not-at-top
  else:
    TrainingDivergedError = ()  # pylint: disable=invalid-name
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


PathFlags = Callable[[], Dict[str, Tuple[Optional[str], str]]]


def launcher_main(body, info_logs: bool = False,
                  path_flags: Optional[PathFlags] = None):
  """The ``main(argv)`` for ``app.run`` of a launcher whose work is ``body()``.

  The returned ``main`` refuses positional arguments (absl usage error),
  checks the path flags (``path_flags()`` gives ``{flag: (value, kind)}``,
  kinds from ``pm_zoo.launch.paths``) before anything is imported or
  written, imports TensorFlow quietly (``quiet_tensorflow``), shows absl
  INFO logs (training and episode progress) when ``info_logs``, and runs
  ``body`` under ``run_guarded`` (a user mistake is one line and exit
  status 2).
  """
  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if path_flags is not None:
      from pm_zoo.launch import paths  # pylint: disable=g-import-not-at-top
      run_guarded(lambda: paths.check(path_flags()), import_tensorflow=False)
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
    print(f'\nTensorFlow\'s own start-up and C++ logs are hidden; set '
          f'{TF_LOGS_ENV}=1 or pass --verbosity=1 to see them.')
    print('Try --helpfull to get a list of all flags.')
    sys.exit(0)
  app.run(main)
