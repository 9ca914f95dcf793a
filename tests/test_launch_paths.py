"""Path flags of every launcher, and the launchers' quiet start-up.

Each path flag that names a file where a directory is needed (or the
reverse), a missing input, a missing parent of an output file or a place
that cannot be written gets one line, ``error: ...`` with exit status 2, and
nothing is written. These checks run before TensorFlow is imported, so the
subprocess cases take a second each. One case per launcher family runs the
real TensorFlow import with the user's environment (no TF_CPP_MIN_LOG_LEVEL)
and counts every line on stderr.
"""
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO
from pm_zoo.errors import UserError
from pm_zoo.launch import paths

TIMEOUT = 180


def _clean_env(**extra):
  """The user's environment: no TF_CPP_MIN_LOG_LEVEL, the source tree."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('TF_CPP_MIN_LOG_LEVEL', paths_env())}
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  env.update(extra)
  return env


def paths_env():
  from pm_zoo.launch import common  # pylint: disable=g-import-not-at-top
  return common.TF_LOGS_ENV


def _run(launcher, *args, env=None, cwd=REPO):
  return subprocess.run(
      [sys.executable, '-m', f'pm_zoo.launch.{launcher}', *map(str, args)],
      cwd=cwd, env=env or _clean_env(), capture_output=True, text=True,
      timeout=TIMEOUT, check=False)


def _listing(root):
  return sorted(os.path.relpath(os.path.join(d, n), root)
                for d, dirs, files in os.walk(root) for n in dirs + files)


def _unwritable_dir(tmp_path):
  """A directory this process cannot create files in.

  As a normal user, a directory without write permission; as root (which
  ignores permission bits), /sys, where creating a file is refused.
  """
  if os.geteuid() != 0:
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o555)
    return str(locked)
  try:
    fd, probe = tempfile.mkstemp(dir='/sys')
  except OSError:
    return '/sys'
  os.close(fd)
  os.remove(probe)
  pytest.skip('no unwritable directory found for root on this machine')


@pytest.fixture
def tree(tmp_path):
  """A file, a directory, and names that do not exist."""
  (tmp_path / 'a_file').write_text('not a directory\n')
  (tmp_path / 'a_dir').mkdir()
  return {'file': str(tmp_path / 'a_file'), 'dir': str(tmp_path / 'a_dir'),
          'missing': str(tmp_path / 'missing'),
          'under_file': str(tmp_path / 'a_file' / 'run'),
          'under_missing': str(tmp_path / 'no' / 'such' / 'out.csv'),
          'locked': _unwritable_dir(tmp_path), 'root': str(tmp_path)}


# ------------------------------------------------------ paths.check_path --


@pytest.mark.parametrize('kind, key, expected', [
    (paths.RUN_DIR, 'file', 'is a file, not a directory'),
    (paths.RUN_DIR, 'under_file', 'a_file is a file'),
    (paths.EXISTING_DIR, 'missing', 'does not exist'),
    (paths.EXISTING_DIR, 'file', 'is a file, not a directory'),
    (paths.WRITABLE_DIR, 'file', 'is a file, not a directory'),
    (paths.INPUT, 'missing', 'does not exist'),
    (paths.INPUT, 'under_missing', 'nor does its directory'),
    (paths.INPUT_FILE, 'dir', 'is a directory, not a file'),
    (paths.OUTPUT_FILE, 'dir', 'is a directory, not a file'),
    (paths.OUTPUT_FILE, 'under_missing', 'does not exist; create it first'),
    (paths.OUTPUT_FILE, 'under_file', 'a_file is a file, not a directory'),
    (paths.CHECKPOINT, 'missing', 'does not exist'),
    (paths.CHECKPOINT, 'file', 'is a file'),
])
def test_each_kind_refuses_its_mix_ups(tree, kind, key, expected):
  with pytest.raises(UserError) as caught:
    paths.check_path('flag', tree[key], kind)
  message = str(caught.value)
  assert message.startswith(f'--flag={tree[key]}')
  assert expected in message and '\n' not in message


@pytest.mark.parametrize('kind, target', [
    (paths.RUN_DIR, ''), (paths.RUN_DIR, 'new/run'),
    (paths.WRITABLE_DIR, ''), (paths.OUTPUT_FILE, 'out.csv')])
def test_unwritable_places_are_refused(tree, kind, target):
  path = os.path.join(tree['locked'], target) if target else tree['locked']
  with pytest.raises(UserError, match='not writable'):
    paths.check_path('flag', path, kind)


@pytest.mark.parametrize('kind, key', [
    (paths.RUN_DIR, 'dir'), (paths.RUN_DIR, 'missing'),
    (paths.RUN_DIR, 'under_missing'), (paths.EXISTING_DIR, 'dir'),
    (paths.WRITABLE_DIR, 'dir'), (paths.INPUT, 'file'), (paths.INPUT, 'dir'),
    (paths.INPUT_FILE, 'file'), (paths.OUTPUT_FILE, 'missing'),
    (paths.OUTPUT_FILE, 'file'), (paths.CHECKPOINT, 'dir')])
def test_usable_paths_pass_and_nothing_is_written(tree, kind, key):
  before = _listing(tree['root'])
  paths.check_path('flag', tree[key], kind)
  assert _listing(tree['root']) == before


def test_a_checkpoint_prefix_passes(tmp_path):
  (tmp_path / 'ckpt-3.index').write_text('')
  paths.check_path('vae_checkpoint', str(tmp_path / 'ckpt-3'),
                   paths.CHECKPOINT)


def test_remote_paths_are_left_to_tensorflow():
  for kind in paths.KINDS:
    paths.check_path('model_dir', 'gs://bucket/does/not/exist', kind)


# ---------------------------------------------- every launcher's flags --


def _cases(t):
  """(launcher, args, expected piece): one per path flag of every launcher."""
  f, d, m = t['file'], t['dir'], t['missing']
  return [
      ('train', [f'--model_dir={f}'], f'--model_dir={f} is a file'),
      ('train', [f"--model_dir={t['under_file']}"], 'cannot be created'),
      ('train', [f"--model_dir={t['locked']}/run"], 'not writable'),
      ('train', [f'--model_dir={m}', f'--data_path={m}.csv'],
       f'--data_path={m}.csv does not exist'),
      ('train', [f'--model_dir={m}', f'--test_data_path={m}.csv'],
       '--test_data_path='),
      ('train', [f'--model_dir={m}', f'--tfds_data_dir={f}'],
       '--tfds_data_dir='),
      ('train', [f'--model_dir={m}', f'--vae_checkpoint={m}/ckpt-1'],
       '--vae_checkpoint='),
      ('eval', [f'--model_dir={f}'], 'is a file, not a directory'),
      ('eval', [f'--model_dir={m}'], 'does not exist'),
      ('eval', [f'--model_dir={d}', f'--data_path={m}'], '--data_path='),
      ('export', [f'--model_dir={m}'], '--model_dir='),
      ('export', [f'--model_dir={d}', f'--export_base={f}'],
       '--export_base='),
      ('export', [f"--model_dir={t['locked']}"], 'export is not writable'),
      ('impute', [f'--model_dir={f}', f'--input={f}', f'--output={m}.csv'],
       '--model_dir='),
      ('impute', [f'--saved_model={m}', f'--input={f}', f'--output={m}.csv'],
       '--saved_model='),
      ('impute', [f'--model_dir={d}', f'--input={d}', f'--output={m}.csv'],
       '--input='),
      ('impute', [f'--model_dir={d}', f'--input={f}', f'--output={d}'],
       '--output='),
      ('impute', [f'--model_dir={d}', f'--input={f}',
                  f"--output={t['under_missing']}"], 'create it first'),
      ('impute', [f'--model_dir={d}', f'--input={f}', f'--output={m}.csv',
                  f"--samples_output={t['locked']}/s.npy"],
       '--samples_output='),
      ('acquire', [f'--model_dir={m}'], '--model_dir='),
      ('acquire', [f'--model_dir={d}', f'--output_dir={f}'],
       '--output_dir='),
      ('cluster', [f'--model_dir={f}'], 'is a file, not a directory'),
      ('cluster', [f"--model_dir={t['locked']}"], 'is not writable'),
      ('cluster', [f'--model_dir={d}', f'--test_data_path={m}'],
       '--test_data_path='),
  ]


def test_every_path_flag_error_is_one_line_and_writes_nothing(tree):
  failures = []
  before = _listing(tree['root'])
  for launcher, args, expected in _cases(tree):
    proc = _run(launcher, *args)
    lines = proc.stderr.splitlines()
    if (proc.returncode != 2 or len(lines) != 1 or
        not lines[0].startswith('error: ') or expected not in lines[0]):
      failures.append(f'pm-{launcher} {" ".join(args)}: exit '
                      f'{proc.returncode}, stderr:\n{proc.stderr[-2000:]}')
  assert not failures, '\n\n'.join(failures)
  assert _listing(tree['root']) == before


# ------------------------------------------------------- quiet start-up --


def test_a_bad_input_after_the_tensorflow_import_is_one_line(tree):
  """pm-export of a directory that is not a run: TF is imported first."""
  proc = _run('export', f"--model_dir={tree['dir']}")
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.splitlines() == [
      f"error: {tree['dir']} holds no config.gin: pass the --model_dir of a "
      'pm-train run'], proc.stderr
  assert proc.stdout == ''


def _fake_tensorflow(root, fails):
  """A ``tensorflow`` package that writes to fd 2 on import (and may fail)."""
  package = root / 'fake_tf' / 'tensorflow'
  package.mkdir(parents=True)
  body = ['import os',
          "os.write(2, b'C++ start-up noise\\n')",
          'class _Config:',
          '  def list_physical_devices(self):',
          "    os.write(2, b'cuInit noise\\n')",
          '    return []',
          'config = _Config()']
  if fails:
    body.append("raise ImportError('the fake tensorflow is broken')")
  (package / '__init__.py').write_text('\n'.join(body) + '\n')
  return str(root / 'fake_tf')


_QUIET_IMPORT = ('import logging, sys; from pm_zoo.launch import common; '
                 'common.quiet_tensorflow(); print("after", file=sys.stderr); '
                 'print(logging.getLogger("tensorflow").level)')


@pytest.mark.parametrize('env_value, shown', [(None, False), ('1', True)])
def test_quiet_import_hides_fd2_noise_unless_asked(tmp_path, env_value,
                                                   shown):
  fake = _fake_tensorflow(tmp_path, fails=False)
  env = _clean_env(PYTHONPATH=fake + os.pathsep + REPO)
  if env_value:
    env[paths_env()] = env_value
  # With PM_ZOO_TF_LOGS=1 quiet_tensorflow does not import at all; import
  # the fake afterwards as the launcher's body would.
  code = _QUIET_IMPORT + '; import tensorflow'
  proc = subprocess.run([sys.executable, '-c', code], env=env, cwd=tmp_path,
                        capture_output=True, text=True, timeout=TIMEOUT,
                        check=False)
  assert proc.returncode == 0, proc.stderr
  # TensorFlow's Python logger: ERROR (40) when quiet, untouched otherwise.
  if shown:
    assert proc.stderr == 'after\nC++ start-up noise\n'
    assert proc.stdout.split() == ['0']
  else:
    # The noise is gone, and fd 2 works again after the import.
    assert proc.stderr == 'after\n'
    assert proc.stdout.split() == ['40']


def test_a_failing_import_replays_what_it_wrote(tmp_path):
  fake = _fake_tensorflow(tmp_path, fails=True)
  env = _clean_env(PYTHONPATH=fake + os.pathsep + REPO)
  proc = subprocess.run([sys.executable, '-c', _QUIET_IMPORT], env=env,
                        cwd=tmp_path, capture_output=True, text=True,
                        timeout=TIMEOUT, check=False)
  assert proc.returncode == 1
  assert proc.stderr.startswith('C++ start-up noise\n'), proc.stderr
  assert 'ImportError: the fake tensorflow is broken' in proc.stderr
  assert 'after' not in proc.stderr


def test_verbosity_flag_asks_for_tensorflow_logs(tmp_path):
  fake = _fake_tensorflow(tmp_path, fails=False)
  env = _clean_env(PYTHONPATH=fake + os.pathsep + REPO)
  code = ('import sys; from absl import flags; '
          'from pm_zoo.launch import common; '
          'flags.FLAGS(sys.argv); common.quiet_tensorflow(); '
          'import tensorflow')
  for argv, expected in ((['--verbosity=1'], 'C++ start-up noise\n'),
                         (['--verbosity=0'], '')):
    proc = subprocess.run([sys.executable, '-c', code, *argv], env=env,
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == expected, (argv, proc.stderr)
