"""``python -m launch.acquire``: the same launcher as ``pm-acquire`` (pm_zoo.launch.acquire)."""
from pm_zoo.launch.acquire import run

if __name__ == '__main__':
  run()
