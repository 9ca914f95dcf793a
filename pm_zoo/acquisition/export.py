"""The ``next_feature`` signature in a run's SavedModel export.

A signature provider for ``pm_zoo.serving.export`` (see its docstring): when
the exported run holds a trained lookahead network (``D/lookahead/``), the
SavedModel gets a ``next_feature`` signature, ``serving.NextFeature`` on raw
inputs ``x``, ``mask`` with outputs ``index`` and ``expected_entropy``;
otherwise nothing is added. A lookahead network trained on another step of
the model is refused (UserError), not exported silently.
"""
import os
from typing import Any, Dict

from pm_zoo import configs
from pm_zoo import data as data_lib
from pm_zoo import run_dir
from pm_zoo.acquisition import task
from pm_zoo.acquisition.serving import NextFeature
from pm_zoo.acquisition.serving import SIGNATURE_NAME

PROVIDER = 'pm_zoo.acquisition.export:next_feature_signatures'


def next_feature_signatures(context) -> Dict[str, Any]:
  """``{'next_feature': concrete function}``, or ``{}`` without a lookahead.

  Args:
    context: a ``pm_zoo.serving.export.ExportContext``.
  """
  if not task.has_lookahead(context.model_dir):
    return {}
  # The network's architecture: the lookahead stage's stored gin config
  # (the base model is already built, so re-parsing does not touch it).
  configs.parse([os.path.join(task.lookahead_dir(context.model_dir),
                              run_dir.CONFIG)])
  network, _ = task.restore_lookahead(context.model_dir, context.model,
                                      context.step)
  standardizer = data_lib.Standardizer.load(
      os.path.join(context.model_dir, run_dir.STANDARDIZER))
  step = NextFeature(network, standardizer)
  context.track('lookahead_next_feature', step)
  return {SIGNATURE_NAME: step.signature()}
