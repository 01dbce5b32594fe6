"""Active learning for neural network potentials.

* Queries (:mod:`.queries`, one interface ``fit(train)``, ``score(pool)``,
  ``select(pool, k) -> Selection``): :class:`AutoencoderQuery` (reconstruction
  error × latent density, diverse batches; :mod:`.autoencoder`),
  :class:`CommitteeQuery` (DP-GEN model deviation), :class:`FarthestPointQuery`,
  :class:`RandomQuery`.
* Oracles (:mod:`.oracle`): :class:`Oracle` wraps any ASE calculator (CHGNet by
  default); :class:`ReplayOracle` reveals labels of a pre-labelled pool.
* :class:`ActiveLearningLoop` (:mod:`.loop`): select → label → retrain →
  evaluate, checkpointed and resumable; ``run_on_the_fly`` (:mod:`.onthefly`)
  labels MD frames the query flags.
* Benchmarks (:mod:`.benchmark`): :func:`run_learning_curves`,
  :func:`labels_to_reach`, :func:`ood_detection`.
* Descriptors are computed once per structure and cached (:mod:`.features`).
"""
from mdmlkit.active.autoencoder import SymmetryFunctionAutoencoder
from mdmlkit.active.benchmark import LearningCurves, labels_to_reach, machine_info, ood_detection, run_learning_curves
from mdmlkit.active.features import DescriptorCache, DescriptorTable
from mdmlkit.active.loop import ActiveLearningLoop
from mdmlkit.active.onthefly import OnTheFlyResult, run_on_the_fly
from mdmlkit.active.oracle import LabelResult, Oracle, ReplayOracle
from mdmlkit.active.queries import (AutoencoderQuery, CommitteeQuery, FarthestPointQuery, Query, RandomQuery,
                      Selection)

__all__ = [
    "ActiveLearningLoop", "AutoencoderQuery", "CommitteeQuery", "DescriptorCache", "DescriptorTable",
    "FarthestPointQuery", "LabelResult", "LearningCurves", "OnTheFlyResult", "Oracle", "Query",
    "RandomQuery", "ReplayOracle", "Selection", "SymmetryFunctionAutoencoder", "labels_to_reach",
    "machine_info", "ood_detection", "run_learning_curves", "run_on_the_fly",
]
