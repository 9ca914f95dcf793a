"""Launchers for a source checkout: ``python -m launch.train``, ``python -m launch.eval``.

Each is a shim over ``pm_zoo.launch`` (the console scripts' modules), so the
flags and behaviour are the same whichever way a launcher is started.
"""
