"""The ending every benchmark script shares.

A benchmark's ``main`` catches ``pm_zoo.errors.UserError`` around its work
and hands it to ``exit_with_error`` (one line, ``error: ...``, on stderr and
exit status 2, so bad flags never print a half table), then returns
``report(result, table, output)``: the printed table and, with ``--output``,
the JSON written atomically.
"""
import sys
from typing import Any, NoReturn, Optional

from pm_zoo import run_dir


def exit_with_error(error: Exception) -> NoReturn:
  """Prints ``error: <message>`` to stderr and exits with status 2."""
  print(f'error: {error}', file=sys.stderr)
  sys.exit(2)


def report(result: Any, table: str, output: Optional[str]) -> Any:
  """Prints ``table``; writes ``result`` as JSON to ``output`` if given."""
  print(table)
  if output:
    run_dir.write_json(output, result)
    print(f'results written to {output}')
  return result
