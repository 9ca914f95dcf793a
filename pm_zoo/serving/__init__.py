"""Serving a trained model: the SavedModel export and the runners behind the
Python imputer and ``pm-impute``.

  module.py     ``ServingModule``: the tensor-only signatures (impute, sample,
                conditional_log_prob, encode), raw units in and out
  export.py     ``export``: TF Serving's ``<base>/<version>/`` layout, written
                atomically; the extension point for extra signatures
  loading.py    a run directory or a SavedModel behind one NumPy interface
  inputs.py     checks of user data (NaN = missing) with one-line errors
  csv_io.py     streaming CSV reading and writing for ``pm-impute``
  impute_csv.py what ``pm-impute`` does
  rest.py       TF Serving REST request bodies for each signature
  tf_only.py    scripts for a process with TensorFlow only (a serving host)
"""
