"""The files of a run directory, written atomically.

A run directory holds ``config.gin`` (every binding, to rebuild the model),
``operative_config.gin`` (the bindings actually used), ``data.json`` (where the
data came from), ``standardizer.json`` (feature statistics of the train split),
``model_spec.json`` (what the checkpoints hold), ``training.json`` (steps;
``seconds``: wall time of the segments that finished, evaluations included;
``train_seconds``: the checkpointed training clock, every segment, killed
ones too, evaluations left out), ``eval_curve.json`` (the periodic
evaluations, on that clock), ``checkpoints/``, ``train/`` summaries,
``metrics.json`` and ``figures/``.
"""
import json
import os
import tempfile
from typing import Any, Optional

from pm_zoo.errors import UserError

CONFIG = 'config.gin'
OPERATIVE_CONFIG = 'operative_config.gin'
DATA = 'data.json'
STANDARDIZER = 'standardizer.json'
MODEL_SPEC = 'model_spec.json'
METRICS = 'metrics.json'
TRAINING = 'training.json'
FIGURES = 'figures'


def write_text(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file and an atomic rename."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
  try:
    with os.fdopen(fd, 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, value: Any) -> None:
  write_text(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def read_json(path: str) -> Optional[Any]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def check_model_spec(model_dir: str, spec: dict) -> None:
  """Refuses a model dir whose checkpoints hold another model.

  The spec describes the architecture (feature shape, variable shapes); a run
  may change its step count or learning rate and resume, but not its model.
  """
  existing = read_json(os.path.join(model_dir, MODEL_SPEC))
  if existing is not None and existing != spec:
    diff = sorted(k for k in set(existing) | set(spec)
                  if existing.get(k) != spec.get(k))
    raise UserError(
        f'model_dir {model_dir} holds a different model (differs in: '
        f'{", ".join(diff)}); pass a new --model_dir or delete that one')
