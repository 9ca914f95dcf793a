"""The commands in README.md and docs/*.md name things that exist.

Every fenced shell block (```bash, ```sh, ```shell, ```console or no
language) is split into commands. A command that starts with a console script
(``pm-train``, ...), ``python -m launch.X`` / ``pm_zoo.launch.X`` or
``python -m benchmarks.X`` must name a script, launcher or benchmark that
exists, every ``--flag`` it passes must be an absl flag of that launcher
(``--noFLAG`` for a boolean) or an argparse option of that benchmark, and
every ``--gin_file`` must be a shipped gin file. Output is written in
```text blocks, which are not read.
"""
import argparse
import glob
import importlib
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

SHELL_BLOCKS = ('', 'bash', 'sh', 'shell', 'console')
SEPARATORS = ('&&', '||', '|', ';')
FENCE = re.compile(r'^```(\S*)\s*$')
ENV_ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')


def _doc_files():
  files = [os.path.join(REPO, 'README.md')]
  files += sorted(glob.glob(os.path.join(REPO, 'docs', '*.md')))
  return [f for f in files if os.path.exists(f)]


def shell_blocks(text):
  """[(first line number, block text)] of the fenced shell blocks."""
  blocks, current, language, start = [], None, None, 0
  for number, line in enumerate(text.splitlines(), 1):
    match = FENCE.match(line.strip())
    if current is None and match:
      current, language, start = [], match.group(1).lower(), number + 1
    elif current is not None and line.strip() == '```':
      if language in SHELL_BLOCKS:
        blocks.append((start, '\n'.join(current)))
      current = None
    elif current is not None:
      current.append(line)
  assert current is None, 'a fenced block is not closed'
  return blocks


def logical_lines(block):
  """Lines joined across trailing backslashes and open quotes."""
  lines, pending = [], ''
  for line in block.splitlines():
    pending = f'{pending}\n{line}' if pending else line
    if pending.endswith('\\'):
      pending = pending[:-1]
      continue
    try:
      shlex.split(pending, comments=True)
    except ValueError:  # An open quote: the command goes on.
      continue
    lines.append(pending)
    pending = ''
  assert not pending, f'unterminated command: {pending!r}'
  return lines


def commands(block):
  """Each command of a block as a list of words, env assignments dropped."""
  found = []
  for line in logical_lines(block):
    words = shlex.split(line, comments=True)
    current = []
    for word in words + [';']:
      if word in SEPARATORS:
        while current and ENV_ASSIGNMENT.match(current[0]):
          current.pop(0)
        if current:
          found.append(current)
        current = []
      else:
        current.append(word)
  return found


def console_scripts():
  """{'pm-train': 'train', ...} from setup.py's entry points."""
  with open(os.path.join(REPO, 'setup.py')) as f:
    setup = f.read()
  scripts = dict(re.findall(r"'(pm-[\w-]+)=pm_zoo\.launch\.(\w+):run'", setup))
  assert scripts, 'no console scripts found in setup.py'
  return scripts


def target(words, scripts):
  """('launcher' | 'benchmark', name, args) of a command, or None."""
  program = os.path.basename(words[0])
  if program in scripts:
    return 'launcher', scripts[program], words[1:]
  if program.startswith('pm-'):
    return 'launcher', program, words[1:]  # Unknown: reported as missing.
  if re.fullmatch(r'python[\d.]*', program) and len(words) > 2 and (
      words[1] == '-m'):
    module = words[2]
    for prefix, kind in (('pm_zoo.launch.', 'launcher'),
                         ('launch.', 'launcher'),
                         ('benchmarks.', 'benchmark')):
      if module.startswith(prefix):
        return kind, module[len(prefix):], words[3:]
  return None


_FLAG_LISTER = r'''
import json, sys
from absl import flags
import {module}
fl = flags.FLAGS
print(json.dumps({{n: type(fl[n]).__name__ == 'BooleanFlag'
                   or fl[n].boolean for n in fl}}))
'''


_ABSL_FLAGS = {}


def absl_flags(module):
  """{flag: is_boolean} of the absl flags defined once ``module`` is
  imported, from a fresh process (launchers and absl benchmarks share absl's
  global flags, so one process per module)."""
  if module not in _ABSL_FLAGS:
    proc = subprocess.run(
        [sys.executable, '-c', _FLAG_LISTER.format(module=module)], cwd=REPO,
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-2000:]
    _ABSL_FLAGS[module] = json.loads(proc.stdout.strip().splitlines()[-1])
  return _ABSL_FLAGS[module]


def launcher_flags(name):
  """{flag: is_boolean} of pm_zoo.launch.<name>."""
  return absl_flags(f'pm_zoo.launch.{name}')


class _Captured(Exception):
  pass


def benchmark_options(name):
  """The option strings of benchmarks/<name>.py: its argparse parser's, or
  ``--flag`` (and ``--noflag`` for booleans) of its absl flags."""
  source = open(os.path.join(REPO, 'benchmarks', f'{name}.py')).read()
  if 'flags.DEFINE_' in source:
    defined = absl_flags(f'benchmarks.{name}')
    return ({f'--{flag}' for flag in defined} |
            {f'--no{flag}' for flag, boolean in defined.items() if boolean})
  module = importlib.import_module(f'benchmarks.{name}')
  parsers = []
  original = argparse.ArgumentParser.parse_args

  def capture(self, *args, **kwargs):
    parsers.append(self)
    raise _Captured()

  argparse.ArgumentParser.parse_args = capture
  try:
    module.parse_args([])
  except _Captured:
    pass
  finally:
    argparse.ArgumentParser.parse_args = original
  assert parsers, f'benchmarks.{name}.parse_args builds no parser'
  return set(parsers[0]._option_string_actions)  # pylint: disable=protected-access


def _flag_names(args):
  for arg in args:
    arg = arg.strip('[]')
    if arg.startswith('--') and len(arg) > 2:
      yield arg[2:].split('=', 1)[0], arg


def shipped_gin(name):
  return (os.path.isfile(os.path.join(REPO, 'gin', name)) or
          os.path.isfile(os.path.join(REPO, name)))


def problems_of(words, scripts):
  found = target(words, scripts)
  if found is None:
    return []
  kind, name, args = found
  problems = []
  if kind == 'launcher':
    if name not in scripts.values() or not os.path.isfile(
        os.path.join(REPO, 'pm_zoo', 'launch', f'{name}.py')):
      return [f'no launcher {words[0]} {name}']
    if words[0] in ('python', 'python3') and words[2].startswith('launch.'):
      if not os.path.isfile(os.path.join(REPO, 'launch', f'{name}.py')):
        problems.append(f'no launch/{name}.py')
    defined = launcher_flags(name)
    for flag, arg in _flag_names(args):
      base = flag[2:] if flag.startswith('no') else None
      if flag in defined or (base and defined.get(base)):
        continue
      problems.append(f'{arg}: not a flag of pm_zoo.launch.{name}')
    for flag, arg in _flag_names(args):
      if flag == 'gin_file':
        value = arg.split('=', 1)[1] if '=' in arg else ''
        if not shipped_gin(value):
          problems.append(f'{arg}: no gin/{value}')
  else:
    if not os.path.isfile(os.path.join(REPO, 'benchmarks', f'{name}.py')):
      return [f'no benchmarks/{name}.py']
    options = benchmark_options(name)
    for flag, arg in _flag_names(args):
      if f'--{flag}' not in options:
        problems.append(f'{arg}: not an option of benchmarks.{name}')
  return problems


def _all_commands():
  found = []
  for path in _doc_files():
    with open(path) as f:
      text = f.read()
    for start, block in shell_blocks(text):
      for words in commands(block):
        found.append((os.path.relpath(path, REPO), start, words))
  return found


def test_docs_exist_and_have_commands():
  scripts = console_scripts()
  checked = [c for c in _all_commands() if target(c[2], scripts)]
  files = {c[0] for c in checked}
  assert 'README.md' in files
  assert len(files) >= 5, files  # README and the docs pages.
  assert len(checked) >= 20, len(checked)


def test_every_documented_command_refers_to_what_exists():
  scripts = console_scripts()
  problems = []
  for path, start, words in _all_commands():
    for problem in problems_of(words, scripts):
      problems.append(f'{path} (block at line {start}): {problem}\n'
                      f'    {" ".join(words)}')
  assert not problems, '\n'.join(problems)


def test_readme_test_command_is_what_ci_runs():
  """The README's test command is, verbatim, a line of .ci/run."""
  with open(os.path.join(REPO, '.ci', 'run')) as f:
    ci = [line.strip() for line in f]
  with open(os.path.join(REPO, 'README.md')) as f:
    _, first_block = shell_blocks(f.read())[0]
  tests = [line.strip() for line in logical_lines(first_block)
           if 'pytest' in line and not line.strip().startswith('#')]
  assert len(tests) == 1, first_block
  assert 'pip install ".[test]"' in tests[0]
  assert tests[0] in ci, (tests[0], ci)


# The checker itself, on commands it must refuse.
@pytest.mark.parametrize('command, expected', [
    ('pm-trian --model_dir=x', 'no launcher'),
    ('pm-train --model_dri=x', '--model_dri=x: not a flag'),
    ('pm-train --gin_file=nope.gin --model_dir=x', 'no gin/nope.gin'),
    ('pm-train --noevaluat --model_dir=x', 'not a flag'),
    ('python -m launch.eval --stpes=3', 'not a flag'),
    ('python -m benchmarks.nope --x=1', 'no benchmarks/nope.py'),
    ('python -m benchmarks.tabular --stepz=3', 'not an option'),
])
def test_the_checker_refuses_wrong_commands(command, expected):
  (words,) = commands(command)
  problems = problems_of(words, console_scripts())
  assert any(expected in p for p in problems), problems


@pytest.mark.parametrize('command', [
    'pm-train --model_dir=runs/demo',
    'pm-train --gin_file=uci_gas.gin --noevaluate --model_dir=x',
    'TF_CONFIG=\'{"a": 1}\' pm-train --strategy=multi_worker --model_dir=x',
    'python -m benchmarks.tabular --steps=3 --output=x.json',
    'pm-impute --model_dir=r --input=a.csv --output=b.csv [--seed=0]',
])
def test_the_checker_accepts_right_commands(command):
  (words,) = commands(command)
  assert problems_of(words, console_scripts()) == []


def test_blocks_are_split_into_commands():
  block = ('# a comment\n'
           'pip install . && pm-train \\\n  --model_dir=runs/demo\n'
           "TF_CONFIG='{\"cluster\": 1,\n  \"task\": 2}' pm-train --x=1\n")
  assert commands(block) == [['pip', 'install', '.'],
                             ['pm-train', '--model_dir=runs/demo'],
                             ['pm-train', '--x=1']]
