"""Active learning for neural network potentials.

* Queries (:mod:`.queries`, scikit-learn estimators with one interface ``fit(train)``,
  ``score(pool)``, ``select(pool, k) -> Selection``): :class:`AutoencoderQuery`
  (reconstruction error × latent density, diverse batches; :mod:`.autoencoder`),
  :class:`CommitteeQuery` (DP-GEN model deviation), :class:`ExtrapolationQuery` (n2p2's
  symmetry-function range), :class:`FarthestPointQuery`,
  :class:`RandomQuery`; :func:`make_query` by name.
* Oracles (:mod:`.oracle`): :class:`Oracle` wraps any ASE calculator (CHGNet by
  default), labels in parallel worker processes, records faults (exceptions,
  timeouts, NaN, atoms too close) and caches labels on disk in a :class:`LabelCache`
  (:mod:`.labelcache`); :class:`ReplayOracle` reveals labels of a pre-labelled pool.
* Pools (:mod:`.pool`): :class:`FramePool`, unlabelled frames on disk, read lazily.
* :class:`ActiveLearningLoop` (:mod:`.loop`): select → label → retrain →
  evaluate, checkpointed and resumable, on a clone of the query
  (:func:`prepare_query`); :func:`replay_selections` repeats the choices of a query
  that needs no trained potential (:mod:`.replay`); ``run_on_the_fly`` (:mod:`.onthefly`) labels MD frames
  the query flags.
* Benchmarks (:mod:`.benchmark`): :func:`run_learning_curves`,
  :func:`labels_to_reach`, :func:`ood_detection`; strategy vs baseline over
  seeds: :func:`paired_comparison` per budget, :func:`curve_ratio` over whole
  curves, :func:`label_ratio` as labels at equal error (:mod:`.compare`); metric names and labels
  (:mod:`.metrics`); pool/test/out-of-distribution subsets (:mod:`.sampling`).
* Descriptors are computed once per structure and kept in an explicit, bounded
  :class:`DescriptorCache` (:mod:`.features`).
"""
from mdmlkit.active.autoencoder import SymmetryFunctionAutoencoder
from mdmlkit.active.benchmark import LearningCurves, labels_to_reach, ood_detection, run_learning_curves
from mdmlkit.active.compare import CurveRatio, LabelRatio, PairedComparison, curve_ratio, label_ratio, paired_comparison
from mdmlkit.active.features import DescriptorCache, DescriptorTable
from mdmlkit.active.labelcache import CacheEntry, LabelCache, label_key, oracle_identity
from mdmlkit.active.loop import ActiveLearningLoop
from mdmlkit.active.metrics import METRICS, metric_label
from mdmlkit.active.onthefly import OnTheFlyResult, finetune_schedule, min_interatomic_distance, run_on_the_fly
from mdmlkit.active.oracle import LabelResult, Oracle, ReplayOracle
from mdmlkit.active.pool import FramePool
from mdmlkit.active.queries import (
                                    QUERIES,
                                    AutoencoderEmbedding,
                                    AutoencoderQuery,
                                    CommitteeQuery,
                                    ExtrapolationQuery,
                                    FarthestPointQuery,
                                    LoopContext,
                                    Query,
                                    RandomQuery,
                                    Selection,
                                    make_query,
                                    prepare_query,
)
from mdmlkit.active.replay import initial_indices, replay_selections, replayable
from mdmlkit.active.sampling import ood_split, random_subset, stratified_subset, temperature

__all__ = [
    "ActiveLearningLoop", "AutoencoderEmbedding", "AutoencoderQuery", "CacheEntry", "CommitteeQuery",
    "CurveRatio", "curve_ratio", "LabelRatio", "label_ratio",
    "ExtrapolationQuery",
    "FramePool", "LabelCache", "label_key", "oracle_identity",
    "DescriptorCache", "DescriptorTable", "FarthestPointQuery", "LabelResult", "LearningCurves",
    "LoopContext", "METRICS", "OnTheFlyResult", "Oracle", "PairedComparison", "QUERIES", "Query",
    "RandomQuery", "ReplayOracle", "Selection", "SymmetryFunctionAutoencoder", "labels_to_reach",
    "make_query", "metric_label", "ood_detection", "ood_split", "paired_comparison",
    "prepare_query", "random_subset", "stratified_subset", "run_learning_curves", "run_on_the_fly", "temperature",
    "finetune_schedule", "min_interatomic_distance", "initial_indices", "replay_selections",
    "replayable",
]
