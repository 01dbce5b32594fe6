"""Farthest-point sampling in a structure descriptor space."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from mdmlkit.active.features import DescriptorCache
from mdmlkit.active.queries.base import Selection, check_k, check_min_distance, pool_size, too_close, top_k
from mdmlkit.active.queries.descriptor import DescriptorQuery
from mdmlkit.errors import EmptyTrajectoryError, InputError

__all__ = ["FarthestPointQuery", "pairwise_distances"]


class FarthestPointQuery(DescriptorQuery):
    """Greedy farthest-point sampling (FPS) in a structure descriptor space.

    Structure features: per element, the mean and standard deviation over the
    structure's atoms of the symmetry functions standardised with training-set
    μ_el, σ_el (see :meth:`DescriptorTable.structure_features`), concatenated.
    A 2-D array can be passed instead of structures (features used as they are).

    With d(s) the Euclidean distance from pool structure s to the nearest
    training structure, the batch is built greedily::

        pick argmax_s d(s);   d(s) ← min(d(s), |x_s − x_pick|)

    so every pick is the pool point farthest from everything labelled or chosen
    (ties: lower index).  ``score`` is d(s); :meth:`uncertainty` is d(s) and
    ``threshold_`` = ``threshold`` or ``flag_factor`` × the largest
    nearest-neighbour distance within the training set.

    Outliers come first in FPS, and in a raw MD pool the farthest outliers are often broken
    frames (atoms nearly on top of each other).  With ``min_distance`` (Å) a pick whose closest
    pair of atoms is nearer than that is rejected (it does not shrink the distances of the
    others) and only fills the batch after everything else (reason ``"too_close"``); this
    needs the pool's structures, not a feature array.

    Parameters
    ----------
    sfs : SymmetryFunctionSet, optional
        Descriptor (filled in by the loop when None; not needed for feature arrays).
    stats : sequence of {"mean", "std"}
        Per-element statistics of the standardised functions in the structure features.
    flag_factor, threshold
        On-the-fly flagging threshold (see above).
    min_distance : float, optional
        ``select`` rejects picks with two atoms closer than this (Å; None: no check).
    cache : DescriptorCache, optional
        Descriptor cache to share (default: a private one, ``cache_``).
    progress : bool
        tqdm bar while computing descriptors.
    """

    name = "fps"

    def __init__(self, sfs=None, stats: Sequence[str] = ("mean", "std"),
                 flag_factor: float = 1.2, threshold: float | None = None,
                 min_distance: float | None = None, cache: DescriptorCache | None = None,
                 progress: bool = False):
        self.sfs = sfs
        self.stats = stats
        self.flag_factor = flag_factor
        self.threshold = threshold
        self.min_distance = min_distance
        self.cache = cache
        self.progress = progress

    def _features(self, data, source: str, fit: bool = False) -> np.ndarray:
        if isinstance(data, np.ndarray):
            X = np.asarray(data, dtype=np.float64)
            if X.ndim != 2:
                raise InputError(f"{source}: feature array must be 2-D, got shape {X.shape}")
            if X.shape[0] == 0:
                raise EmptyTrajectoryError(f"{source}: no structures")
            if not fit and self.mu_ is not None:
                raise InputError(f"{source}: this query was fitted on structures, not features")
            if not fit and X.shape[1] != self.X_train_.shape[1]:
                raise InputError(f"{source}: {X.shape[1]} features, fitted with "
                                 f"{self.X_train_.shape[1]}")
            if not np.all(np.isfinite(X)):
                raise InputError(f"{source}: non-finite features")
            return X
        table = self.descriptor_table(data, source)
        if fit:
            self.mu_, self.sigma_ = {}, {}
            for el in table.elements:
                G = table.G[el].astype(np.float64)
                self.mu_[el] = G.mean(axis=0) if G.shape[0] else np.zeros(G.shape[1])
                self.sigma_[el] = np.maximum(G.std(axis=0), 1e-4) if G.shape[0] else \
                    np.ones(G.shape[1])
        elif self.mu_ is None:
            raise InputError(f"{source}: this query was fitted on a feature array; pass features")
        return table.structure_features(self.mu_, self.sigma_, self.stats)

    def fit(self, train) -> FarthestPointQuery:
        t0 = time.perf_counter()
        check_min_distance(self)
        self.mu_ = self.sigma_ = None
        self.X_train_ = self._features(train, "training set", fit=True)
        self.n_train_ = self.X_train_.shape[0]
        X = self.X_train_
        if X.shape[0] > 1:
            D = pairwise_distances(X, X)
            np.fill_diagonal(D, np.inf)
            nn = D.min(axis=1)
        else:
            nn = np.array([np.nan])
        self._calibrate(nn)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    def _dmin(self, X: np.ndarray) -> np.ndarray:
        d = np.full(X.shape[0], np.inf)
        for s in range(0, self.X_train_.shape[0], 2048):
            d = np.minimum(d, pairwise_distances(X, self.X_train_[s:s + 2048]).min(axis=1))
        return d

    def score(self, pool) -> dict[str, np.ndarray]:
        self._check_fitted()
        X = self._features(pool, "pool")
        d = self._dmin(X)
        return {"score": d, "distance_to_train": d}

    def uncertainty(self, frames) -> np.ndarray:
        return self.score(frames)["score"]

    def select(self, pool, k: int) -> Selection:
        t0 = time.perf_counter()
        k = check_k(k, pool_size(pool))
        self._check_fitted()
        check_min_distance(self, pool)
        X = self._features(pool, "pool")
        d0 = self._dmin(X)
        d = d0.copy()
        taken = np.zeros(X.shape[0], dtype=bool)
        chosen, reasons, rejected = [], [], []
        while len(chosen) < k and not taken.all():
            i = int(top_k(np.where(taken, -np.inf, d), 1)[0])
            taken[i] = True
            if too_close(pool, i, self.min_distance):
                rejected.append(i)
                continue
            reasons.append({"rank": len(chosen), "score": float(d[i]), "distance_to_train": float(d0[i]),
                            "distance_to_labelled_or_batch": float(d[i])})
            chosen.append(i)
            d = np.minimum(d, np.linalg.norm(X - X[i], axis=1))
        for i in rejected[:k - len(chosen)]:           # only when nothing else is left
            reasons.append({"rank": len(chosen), "score": float(d0[i]), "distance_to_train": float(d0[i]),
                            "distance_to_labelled_or_batch": float(d[i]), "too_close": True})
            chosen.append(i)
        return Selection(np.asarray(chosen, dtype=np.int64), reasons, self.name,
                         time.perf_counter() - t0, {"score": d0, "distance_to_train": d0})


def pairwise_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(A), len(B)] between the rows of A and B."""
    sq = (A ** 2).sum(1)[:, None] + (B ** 2).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(sq, 0.0))
