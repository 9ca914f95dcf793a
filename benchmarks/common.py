"""The ending every benchmark script shares.

A benchmark's ``main`` catches ``pm_zoo.errors.UserError`` around its work
and hands it to ``exit_with_error`` (one line, ``error: ...``, on stderr and
exit status 2, so bad flags never print a half table), then calls
``report(result, table, output)``: the printed table and, with ``--output``,
the JSON written atomically, with the package versions and the machine that
measured it under ``"environment"`` (``environment()``), so a number quoted
from it can name them. Scripts run by absl's ``app.run`` get that ending as
``absl_main(run, output)``: ``app.run`` exits with what ``main`` returns (a
returned dict is printed and the exit status is 1), so that ``main``
returns nothing.
"""
import os
import platform
import sys
from importlib import metadata
from typing import Any, Callable, Dict, NoReturn, Optional, Tuple

from pm_zoo import run_dir
from pm_zoo.errors import UserError


def exit_with_error(error: Exception) -> NoReturn:
  """Prints ``error: <message>`` to stderr and exits with status 2."""
  print(f'error: {error}', file=sys.stderr)
  sys.exit(2)


# The distributions whose versions decide what a benchmark measures.
PACKAGES = ('tensorflow', 'tf-keras', 'tensorflow-probability', 'numpy',
            'protobuf', 'scikit-learn', 'pm_zoo')


def environment() -> Dict[str, Any]:
  """Versions of ``PACKAGES`` (None: not installed), Python and the machine."""
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  return {'versions': versions, 'python': platform.python_version(),
          'machine': platform.machine(), 'system': platform.system(),
          'cpu_count': os.cpu_count()}


def describe_environment(env: Dict[str, Any]) -> str:
  """One line: 'measured with tensorflow 2.21.0, ..., on x86_64 (2 CPUs)'."""
  names = ', '.join(f'{name} {version}' for name, version
                    in env['versions'].items() if version)
  return (f"measured with Python {env['python']}, {names}, on "
          f"{env['machine']} {env['system']} ({env['cpu_count']} CPUs)")


def report(result: Any, table: str, output: Optional[str]) -> Any:
  """Prints ``table``; writes ``result`` as JSON to ``output`` if given.

  A dict result gets the key ``"environment"`` (``environment()``), in the
  JSON and in the returned dict alike, so the two stay equal; the versions
  are printed under the table.
  """
  env = environment()
  print(table)
  print(describe_environment(env))
  if isinstance(result, dict):
    result.setdefault('environment', env)
  if output:
    run_dir.write_json(output, result)
    print(f'results written to {output}')
  return result


def absl_main(run: Callable[[], Tuple[Any, str]],
              output: Callable[[], Optional[str]]) -> Callable:
  """The ``main`` for ``app.run``: ``run()``, then ``report``; returns None.

  ``run()`` returns ``(result, table)`` and may raise ``UserError`` (one
  line on stderr, exit status 2); ``output()`` gives the JSON path (read
  after flags are parsed, e.g. ``lambda: FLAGS.output``).
  """
  def main(argv):
    del argv
    try:
      result, table = run()
    except UserError as error:
      exit_with_error(error)
    report(result, table, output())
  return main
