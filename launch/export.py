"""``python -m launch.export``: the same launcher as ``pm-export`` (pm_zoo.launch.export)."""
from pm_zoo.launch.export import run

if __name__ == '__main__':
  run()
