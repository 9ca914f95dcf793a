"""Thin absl launchers: parse flags, load gin, call the library.

Installed as ``pm_zoo.launch`` (console scripts ``pm-train``, ``pm-eval``);
from a source checkout run them as ``python -m launch.train``.
"""
