"""``python -m launch.cluster``: the same launcher as ``pm-cluster`` (pm_zoo.launch.cluster)."""
from pm_zoo.launch.cluster import run

if __name__ == '__main__':
  run()
