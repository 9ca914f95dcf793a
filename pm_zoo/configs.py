"""Finding and parsing the gin experiment files.

The experiment files live in the repository's top-level ``gin/`` folder; an
installed pm_zoo carries them as the package data ``pm_zoo/configs``. A
``--gin_file`` is looked up as given, then relative to those folders, so
``--gin_file=demo.gin`` and ``include 'models/mnist_conv.gin'`` work from
anywhere.
"""
import os
from typing import List, Sequence

from absl import logging
import gin

from pm_zoo.errors import UserError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def search_paths() -> List[str]:
  """Folders holding the shipped .gin files (installed, then source tree)."""
  candidates = [os.path.join(_PACKAGE_DIR, 'configs'),
                os.path.join(os.path.dirname(_PACKAGE_DIR), 'gin')]
  # demo.gin marks a folder of ours (site-packages/gin is gin-config itself).
  return [p for p in candidates
          if os.path.isfile(os.path.join(p, 'demo.gin'))]


def shipped_gin_files() -> List[str]:
  """Every shipped .gin file, as a path relative to its gin folder."""
  roots = search_paths()
  if not roots:
    return []
  files = []
  for dirpath, _, names in os.walk(roots[0]):
    for name in names:
      if name.endswith('.gin'):
        files.append(os.path.relpath(os.path.join(dirpath, name), roots[0]))
  return sorted(files)


def resolve(path: str) -> str:
  """An existing path for ``path``, or a UserError naming where it looked."""
  if os.path.isfile(path):
    return path
  for root in search_paths():
    candidate = os.path.join(root, path)
    if os.path.isfile(candidate):
      return candidate
  raise UserError(f'gin file {path!r} not found (looked in the current '
                  f'directory and {search_paths()}); pass an existing path or '
                  'one of: ' + ', '.join(shipped_gin_files()))


def register_configurables() -> None:
  """Imports every module whose configurables gin files may name."""
  # pylint: disable=g-import-not-at-top,unused-import
  from pm_zoo import acquisition, experiment, masks, matching
  from pm_zoo.distributions import heads, pixelcnn
  from pm_zoo.models import gaussian_vae, hierarchical_vae, vade, vq_vae
  from pm_zoo.networks import conv, mlp
  from pm_zoo.tasks import clustering, evaluation
  from pm_zoo.training import schedules, trainer


def reset() -> None:
  """Unlocks (a finalized parse locks it) and clears the gin config."""
  gin.config._set_config_is_locked(False)  # pylint: disable=protected-access
  gin.clear_config()


def parse(gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
          finalize: bool = True) -> None:
  """Clears gin, then parses the files and bindings; errors become one line."""
  register_configurables()
  reset()
  # Our folders go first, so that gin finds an include before trying (and
  # logging an error for) the other prefixes, the current directory included.
  prefixes = gin.config._LOCATION_PREFIXES  # pylint: disable=protected-access
  for root in reversed(search_paths()):
    if root in prefixes:
      prefixes.remove(root)
    prefixes.insert(0, root)
  files = [resolve(f) for f in gin_files]
  # gin logs an error for every search-path prefix an include is not under.
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.FATAL)
  try:
    gin.parse_config_files_and_bindings(files, list(gin_bindings),
                                        finalize_config=finalize)
  except (ValueError, KeyError, SyntaxError, IOError, TypeError) as e:
    message = ' '.join(str(e).split())
    raise UserError(f'bad gin configuration: {message[:400]}') from e
  finally:
    logging.set_verbosity(verbosity)
