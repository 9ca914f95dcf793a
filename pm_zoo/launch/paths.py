"""Checks of the launchers' path flags, done before anything is loaded.

Each launcher names its path flags and what each must be; ``check`` turns a
file given for a directory (or the reverse), a missing input, a missing
parent of an output file and a place the user cannot write into one-line
``UserError``s, before TensorFlow is imported and before anything is written.
Paths with a scheme (``gs://...``) are left to TensorFlow's file system.

Kinds:
  RUN_DIR      a directory that is used if it exists and created otherwise
               (``pm-train --model_dir``, ``--export_base``, ``--output_dir``);
               missing parents are created, as ``mkdir -p`` does.
  EXISTING_DIR a directory that must exist (``pm-impute --model_dir``,
               ``--saved_model``, ``--tfds_data_dir``).
  WRITABLE_DIR an existing directory the launcher writes into (``pm-eval`` and
               ``pm-acquire --model_dir``).
  INPUT        a file or directory that must exist (``--data_path``: a CSV
               file or a UCI directory, depending on the gin experiment).
  INPUT_FILE   a file that must exist (``pm-impute --input``).
  OUTPUT_FILE  a file to write: not a directory, in a directory that exists
               and is writable (``pm-impute --output``, ``--samples_output``).
  CHECKPOINT   a run directory, or a checkpoint prefix (``ckpt-N``, whose
               ``ckpt-N.index`` exists): ``pm-train --vae_checkpoint``.
"""
import os
import tempfile
from typing import Dict, Optional, Tuple

from pm_zoo.errors import UserError

RUN_DIR = 'run_dir'
EXISTING_DIR = 'existing_dir'
WRITABLE_DIR = 'writable_dir'
INPUT = 'input'
INPUT_FILE = 'input_file'
OUTPUT_FILE = 'output_file'
CHECKPOINT = 'checkpoint'
KINDS = (RUN_DIR, EXISTING_DIR, WRITABLE_DIR, INPUT, INPUT_FILE, OUTPUT_FILE, CHECKPOINT)


def _is_remote(path: str) -> bool:
  return '://' in path


def _existing_ancestor(path: str) -> str:
  """The nearest ancestor of ``path`` (or ``path``) that exists."""
  current = os.path.abspath(path)
  while not os.path.lexists(current):
    parent = os.path.dirname(current)
    if parent == current:
      break
    current = parent
  return current


def _can_write_in(directory: str) -> bool:
  """Whether a file can be created in ``directory`` (tried, not guessed:
  ``os.access`` says yes to root on a read-only file system)."""
  try:
    fd, probe = tempfile.mkstemp(dir=directory, prefix='.pm_zoo-probe-')
  except OSError:
    return False
  os.close(fd)
  os.remove(probe)
  return True


def check_path(flag: str, path: str, kind: str) -> None:
  """Raises ``UserError`` if ``path`` cannot serve as ``--flag`` of ``kind``."""
  if kind not in KINDS:
    raise ValueError(f'unknown path kind {kind!r}')
  if _is_remote(path):
    return
  given = f'--{flag}={path}'
  exists = os.path.exists(path)
  if kind == RUN_DIR:
    if exists and not os.path.isdir(path):
      raise UserError(f'{given} is a file, not a directory: pass a directory '
                      '(a new one, or an existing run)')
    ancestor = _existing_ancestor(path)
    if not os.path.isdir(ancestor):
      raise UserError(f'{given} cannot be created: {ancestor} is a file, not '
                      'a directory')
    if not _can_write_in(ancestor):
      raise UserError(f'{given} is not writable: no permission to write in '
                      f'{ancestor}; pass a directory you can write to')
  elif kind in (EXISTING_DIR, WRITABLE_DIR):
    if not exists:
      raise UserError(f'{given} does not exist: pass an existing directory')
    if not os.path.isdir(path):
      raise UserError(f'{given} is a file, not a directory: pass the '
                      'directory')
    if kind == WRITABLE_DIR and not _can_write_in(path):
      raise UserError(f'{given} is not writable, and results are written '
                      'there: fix its permissions (or copy the run)')
  elif kind in (INPUT, INPUT_FILE):
    if not exists:
      parent = os.path.dirname(os.path.abspath(path))
      hint = ('' if os.path.isdir(parent) else
              f' (nor does its directory {parent})')
      raise UserError(f'{given} does not exist{hint}: check the path')
    if kind == INPUT_FILE and os.path.isdir(path):
      raise UserError(f'{given} is a directory, not a file: pass the file')
    if not os.access(path, os.R_OK):
      raise UserError(f'{given} is not readable: check its permissions')
  elif kind == OUTPUT_FILE:
    if os.path.isdir(path):
      raise UserError(f'{given} is a directory, not a file: pass a file name '
                      '(e.g. DIR/out.csv)')
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
      raise UserError(f'{given}: its directory {parent} does not exist; '
                      'create it first')
    if not os.path.isdir(parent):
      raise UserError(f'{given}: {parent} is a file, not a directory')
    if not _can_write_in(parent):
      raise UserError(f'{given} is not writable: no permission to write in '
                      f'{parent}')
  elif kind == CHECKPOINT:
    if os.path.isdir(path) or os.path.exists(path + '.index'):
      return
    if exists:
      raise UserError(f'{given} is a file: pass a run directory or a '
                      'checkpoint prefix (.../checkpoints/ckpt-N)')
    raise UserError(f'{given} does not exist: pass a run directory or a '
                    'checkpoint prefix (.../checkpoints/ckpt-N)')


def check(paths: Dict[str, Tuple[Optional[str], str]]) -> None:
  """``check_path`` for every ``{flag: (path, kind)}`` whose path is set."""
  for flag, (path, kind) in paths.items():
    if path:
      check_path(flag, path, kind)
