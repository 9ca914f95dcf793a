"""Request bodies of TF Serving's REST predict API for the exported signatures.

TF Serving answers ``POST http://HOST:8501/v1/models/NAME:predict`` (or
``.../models/NAME/versions/N:predict``) with the JSON body

  {"signature_name": "<signature>", "inputs": {"<input>": <value>, ...}}

(the "columnar" format: each input is a nested list, or a number for a
scalar input such as ``num_samples``), converts every value to the dtype the
signature declares (float32 ``x``/``mask``, int32 ``num_samples``, int64
``seed``), and replies ``{"outputs": {"<output>": <value>, ...}}`` (just
``{"outputs": <value>}`` when the signature has one output, as
``conditional_log_prob`` does).

JSON has no NaN, so a client marks missing entries with 0 in ``mask`` (and
any number, e.g. 0, in ``x``).
"""
import json
from typing import Dict, Sequence

import numpy as np

from pm_zoo.serving import module as module_lib


def request_body(signature_name: str, inputs: Dict) -> Dict:
  """``{"signature_name": ..., "inputs": {...}}`` with JSON-ready values."""
  return {'signature_name': signature_name,
          'inputs': {name: np.asarray(value).tolist()
                     for name, value in inputs.items()}}


def example_requests(x: Sequence, mask: Sequence, num_samples: int = 10,
                     seed: int = 0, log_prob_samples: int = 512
                     ) -> Dict[str, Dict]:
  """The body of every core signature for rows ``x`` with ``mask``.

  Missing entries of ``x`` (mask 0) are sent as 0. ``conditional_log_prob``
  gets ``x`` as given: it evaluates the density at x_u, so pass the values
  to score there.
  """
  x = np.asarray(x, np.float64)
  mask = np.asarray(mask, np.float64)
  sent = np.where(mask > 0, x, 0.0)
  return {
      module_lib.IMPUTE: request_body(module_lib.IMPUTE,
                                      {'x': sent, 'mask': mask}),
      module_lib.SAMPLE: request_body(
          module_lib.SAMPLE, {'x': sent, 'mask': mask,
                              'num_samples': int(num_samples),
                              'seed': int(seed)}),
      module_lib.CONDITIONAL_LOG_PROB: request_body(
          module_lib.CONDITIONAL_LOG_PROB,
          {'x': x, 'mask': mask, 'num_samples': int(log_prob_samples)}),
      module_lib.ENCODE: request_body(module_lib.ENCODE,
                                      {'x': sent, 'mask': mask}),
  }


def dumps(body: Dict) -> str:
  """The body as the one-line JSON a client sends."""
  return json.dumps(body, separators=(', ', ': '))
