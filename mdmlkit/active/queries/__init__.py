"""Active-learning queries: which unlabelled structures to label next.

Every query is a scikit-learn estimator with one interface (:mod:`.base`):
``fit(train)``, ``score(pool)``, ``select(pool, k) -> Selection``,
``uncertainty(frames)``/``flag(frames)`` for on-the-fly MD.

Strategies
----------
:class:`AutoencoderQuery` (``"autoencoder"``)
    reconstruction error of a per-element autoencoder (informativeness) ×
    latent-space density over the pool (representativeness), greedy diverse
    batches; formulas in its docstring.
:class:`CommitteeQuery` (``"qbc"``)
    query by committee: DP-GEN's model deviation, the largest atomic force
    standard deviation of a committee of HDNNPs.
:class:`ExtrapolationQuery` (``"extrapolation"``)
    n2p2/RuNNer extrapolation: how far a structure's symmetry functions lie outside
    the labelled set's range (greedy batches that widen the range pick by pick).
:class:`FarthestPointQuery` (``"fps"``)
    greedy farthest-point sampling in a structure descriptor space.
:class:`RandomQuery` (``"random"``)
    uniform random choice (the baseline every strategy must beat).

:func:`make_query` builds one by name.
"""
from mdmlkit.active.queries.autoencoder import AutoencoderEmbedding, AutoencoderQuery
from mdmlkit.active.queries.base import LoopContext, Query, Selection, prepare_query
from mdmlkit.active.queries.committee import CommitteeQuery
from mdmlkit.active.queries.descriptor import DescriptorQuery
from mdmlkit.active.queries.extrapolation import ExtrapolationQuery
from mdmlkit.active.queries.farthest_point import FarthestPointQuery
from mdmlkit.active.queries.random_query import RandomQuery
from mdmlkit.active.queries.registry import QUERIES, make_query

__all__ = ["AutoencoderEmbedding", "AutoencoderQuery", "CommitteeQuery", "DescriptorQuery",
           "ExtrapolationQuery", "FarthestPointQuery", "LoopContext", "QUERIES", "Query", "RandomQuery",
           "Selection", "make_query", "prepare_query"]
