"""``python -m launch.impute``: the same launcher as ``pm-impute`` (pm_zoo.launch.impute)."""
from pm_zoo.launch.impute import run

if __name__ == '__main__':
  run()
