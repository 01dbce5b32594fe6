"""Uniformly random selection: the baseline every strategy must beat."""
from __future__ import annotations

import numpy as np

from mdmlkit.active.features import as_frames
from mdmlkit.active.queries.base import Query, pool_size

__all__ = ["RandomQuery"]


class RandomQuery(Query):
    """Uniformly random structures (the baseline).

    The choice depends only on ``seed``, the training-set size and the pool size
    (``numpy.random.default_rng([seed, n_train, n_pool])``), so a resumed
    active-learning loop repeats it exactly.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, train) -> RandomQuery:
        self.n_train_ = len(as_frames(train, "training set")) if not isinstance(train, int) \
            else int(train)
        return self

    def score(self, pool) -> dict[str, np.ndarray]:
        self._check_fitted()
        n = pool_size(pool)
        rng = np.random.default_rng([int(self.seed), self.n_train_, n])
        return {"score": rng.random(n)}
