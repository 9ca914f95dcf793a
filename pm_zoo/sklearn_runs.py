"""What the scikit-learn estimators share: a fitted estimator is pm-train runs.

``PosteriorMatchingImputer`` (one run) and ``PosteriorMatchingClusterer``
(one run per VaDE stage, in sub-directories) keep what they fit in a run
directory: ``model_dir`` if given (it must be new or empty), else a
temporary directory that lives as long as the estimator. ``save`` copies
that directory atomically (a half-written copy is never left at ``path``)
with the estimator's constructor arguments in ``ESTIMATOR_FILE``, and points
each run's ``data.json`` at the copy of the fit data, so the saved runs are
complete ``pm-train`` runs that ``pm-eval`` / ``pm-export`` accept.
"""
import os
import shutil
import tempfile
from typing import Sequence

from pm_zoo import run_dir
from pm_zoo.errors import UserError


class RunBackedEstimator:
  """Mixin of an estimator whose fitted state is run directories.

  Subclasses set ``ESTIMATOR_FILE`` (the JSON of constructor arguments),
  ``RUN_PREFIX`` (name prefix of its temporary directories) and
  ``RUN_SUBDIRS`` (the runs inside the directory; ``('',)``: it is one run),
  and keep the fitted directory in ``model_dir_``. Both estimators take
  NaN for missing cells, so their scikit-learn tags allow NaN.
  """

  ESTIMATOR_FILE: str
  RUN_PREFIX: str
  RUN_SUBDIRS: Sequence[str] = ('',)

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.allow_nan = True
    return tags

  def _new_run_dir(self) -> str:
    """``model_dir`` (created; refused unless new or empty) or a temp dir."""
    if self.model_dir is None:
      self._tmp_dir = tempfile.TemporaryDirectory(
          prefix=f'pm_zoo_{self.RUN_PREFIX}_')
      return self._tmp_dir.name
    if os.path.exists(self.model_dir) and (
        not os.path.isdir(self.model_dir) or os.listdir(self.model_dir)):
      raise UserError(f'model_dir {self.model_dir} is not an empty directory: '
                      f'pass a new one, or {type(self).__name__}.load it')
    os.makedirs(self.model_dir, exist_ok=True)
    return self.model_dir

  def _saved_params(self) -> dict:
    """Constructor arguments as JSON (``model_dir`` dropped: ``load`` says)."""
    params = self.get_params()
    params['model_dir'] = None
    params['gin_bindings'] = list(params['gin_bindings'])
    return params

  def save(self, path: str, overwrite: bool = False) -> str:
    """Copies the fitted run(s) to ``path`` (atomically); returns ``path``.

    The copy holds complete pm-train runs (``pm-eval``, ``pm-export`` and
    ``pm-impute --model_dir`` accept them) and ``type(self).load(path)``
    restores this estimator.
    """
    from sklearn.utils.validation import check_is_fitted  # pylint: disable=g-import-not-at-top
    check_is_fitted(self, 'model_dir_')
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
      raise UserError(f'{path} exists: pass overwrite=True or another path')
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.tmp-{self.RUN_PREFIX}-', dir=parent)
    try:
      shutil.copytree(self.model_dir_, tmp, dirs_exist_ok=True)
      old_dir = os.path.abspath(self.model_dir_)
      for sub in self.RUN_SUBDIRS:
        _move_data_paths(os.path.join(tmp, sub), old_dir, path)
      run_dir.write_json(os.path.join(tmp, self.ESTIMATOR_FILE),
                         self._saved_params())
      if os.path.exists(path):
        old = tempfile.mkdtemp(prefix=f'.old-{self.RUN_PREFIX}-', dir=parent)
        os.rename(path, os.path.join(old, 'run'))
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
      else:
        os.rename(tmp, path)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    return path


def _move_data_paths(model_dir: str, old_dir: str, new_dir: str) -> None:
  """Points a run's data.json at the saved copy of the fit data, if any."""
  path = os.path.join(model_dir, run_dir.DATA)
  data = run_dir.read_json(path)
  if not data:
    return
  for key in ('path', 'test_path'):
    value = data.get(key)
    if value and os.path.dirname(value) == old_dir:
      data[key] = os.path.join(new_dir, os.path.basename(value))
  run_dir.write_json(path, data)
