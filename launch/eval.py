"""``python -m launch.eval``: the same launcher as ``pm-eval`` (pm_zoo.launch.eval)."""
from pm_zoo.launch.eval import run

if __name__ == '__main__':
  run()
