"""The absl launchers behind the console scripts ``pm-train`` and ``pm-eval``.

Thin: parse flags, load gin, call the library. From a source checkout the
same launchers run as ``python -m launch.train`` / ``python -m launch.eval``.
"""
