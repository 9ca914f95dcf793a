"""Data for pm_zoo: sources -> in-memory DataSplits -> tf.data pipelines.

  splits = load_dataset('embedded_digits')            # or 'table', 'uci', ...
  std = Standardizer.from_data(splits.train)          # tables: fit on train
  ds = train_batches(std.transform(splits.train), 256, seed=0,
                     start_step=step, mask_sampler=sampler)
"""
from pm_zoo.data.pipeline import eval_batches
from pm_zoo.data.pipeline import train_batches
from pm_zoo.data.sources import KNOWN_SOURCES
from pm_zoo.data.sources import load_dataset
from pm_zoo.data.splits import DataSplits
from pm_zoo.data.standardize import Standardizer

__all__ = [
    'DataSplits',
    'KNOWN_SOURCES',
    'Standardizer',
    'eval_batches',
    'load_dataset',
    'train_batches',
]
