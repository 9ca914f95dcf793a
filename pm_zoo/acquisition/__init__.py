"""Active feature acquisition with Posterior Matching (paper Sec. 3.5).

* ``policies``: greedy rules; sampling-based expected entropy (Eq. 6),
  lookahead entropies (Eq. 7), random.
* ``lookahead``: ``LookaheadNetwork``, one diagonal Gaussian per feature.
* ``objective``: ``LookaheadModel``, its training objective for the Trainer.
* ``serving``: ``NextFeature``, the fast greedy step on raw inputs (the
  ``next_feature`` SavedModel signature).
* ``episodes``: acquisition episodes scored by imputation RMSE.
* ``task``: the stages ``pm-acquire`` runs over a run directory.
"""
from pm_zoo.acquisition.lookahead import LookaheadNetwork
from pm_zoo.acquisition.objective import LookaheadModel
from pm_zoo.acquisition.serving import NextFeature
from pm_zoo.acquisition.task import AcquisitionConfig
from pm_zoo.acquisition.task import LookaheadConfig
