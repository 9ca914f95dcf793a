"""``python -m launch.train``: the same launcher as ``pm-train`` (pm_zoo.launch.train)."""
from pm_zoo.launch.train import run

if __name__ == '__main__':
  run()
