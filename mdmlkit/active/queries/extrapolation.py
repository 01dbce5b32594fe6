"""Extrapolation query: symmetry functions outside the labelled set's range (n2p2/RuNNer).

An HDNNP interpolates between the atomic environments it was trained on; where
an environment's symmetry functions leave the training range the network
extrapolates and its energies and forces are unreliable.  n2p2 and RuNNer warn
about exactly this ("extrapolation warnings") and their users label the structures
that trigger them.  :class:`ExtrapolationQuery` turns the warnings into a query:
it costs one descriptor evaluation per structure, needs no trained model (the
range is that of the labelled set, refitted at every round) and, unlike a
reconstruction error, is large wherever the potential has never been.
"""
from __future__ import annotations

import time

import numpy as np

from mdmlkit.active.features import DescriptorCache, DescriptorTable
from mdmlkit.active.queries.base import Selection, check_k, check_min_distance, pool_size, too_close
from mdmlkit.active.queries.descriptor import DescriptorQuery
from mdmlkit.errors import InputError

__all__ = ["ExtrapolationQuery", "range_excess"]


def range_excess(table: DescriptorTable, g_min: dict[str, np.ndarray], g_max: dict[str, np.ndarray],
                 min_width: float = 1e-6, tolerance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per structure of ``table``: the largest excursion of a symmetry function outside
    ``[g_min, g_max]`` (per element), in units of the range width, and the number of
    (atom, function) values beyond ``tolerance`` range widths.

    ``excess(s) = max_{i in s, f} max(G_min,f − G_if, G_if − G_max,f, 0) / w_f`` with
    ``w_f = max(G_max,f − G_min,f, min_width)``; 0 when every value is in range.
    """
    excess = np.zeros(table.n_structures)
    n_out = np.zeros(table.n_structures, dtype=np.int64)
    for el in table.elements:
        G = table.G[el]
        if G.shape[0] == 0:
            continue
        e = _row_excess(G, g_min[el], g_max[el], min_width)
        np.maximum.at(excess, table.owner[el], e.max(axis=1))
        np.add.at(n_out, table.owner[el], (e > tolerance).sum(axis=1))
    return excess, n_out


def _row_excess(G: np.ndarray, lo: np.ndarray, hi: np.ndarray, min_width: float) -> np.ndarray:
    """[rows, functions]: distance of each value outside [lo, hi] in range widths (0 inside)."""
    return np.maximum(np.maximum(lo - G, G - hi), 0.0) / np.maximum(hi - lo, min_width)


class ExtrapolationQuery(DescriptorQuery):
    """Structures whose symmetry functions leave the labelled set's range.

    ``fit(train)`` records, per element and function, the range [G_min, G_max] of
    the raw symmetry functions of ``sfs`` over the training set (n2p2's
    extrapolation range).  For a structure s::

        excess(s) = max over atoms i of s and functions f of
                    max(G_min,f − G_if, G_if − G_max,f, 0) / (G_max,f − G_min,f)

    (widths below ``min_width`` count as ``min_width``): 0 when s lies inside the
    range, 1 when one value lies a full range width outside it.  ``score`` is
    ``excess``; ``n_out`` counts the (atom, function) values beyond ``threshold``.

    ``select`` is greedy, like labelling one structure at a time: take the largest
    excess, widen the range by that structure's values, recompute the excess of
    the others, repeat; so a batch does not fill with near-copies of one
    excursion.  With a DP-GEN-like upper trust level ``trust_hi`` (range widths),
    candidates whose excess (given the batch so far) exceeds it are not picked for
    their excess: structures that far outside are more often broken MD (atoms
    nearly on top of each other, forces of hundreds of eV/Å) than what the potential
    needs.  When no candidate extrapolates within the trust level any more, the
    batch is filled with a random choice (``seed``; reason ``"fill"``), those above
    ``trust_hi`` last.  With ``min_distance`` (Å) a pick whose closest pair of atoms
    is nearer than that is rejected (it is broken MD, not chemistry: the descriptors
    saturate at short range, so no trust level in range widths catches it) and only
    fills the batch after everything else; this needs the pool's structures, not a
    :class:`~mdmlkit.active.DescriptorTable`.

    On the fly, :meth:`uncertainty` is ``excess`` and ``threshold_`` is
    ``threshold`` (in range widths; 0 flags every extrapolating frame, as n2p2
    warns about every value outside the range).

    Parameters
    ----------
    sfs : SymmetryFunctionSet, optional
        Descriptor (filled in by the loop when None: the potential's own functions,
        whose range is what matters).
    threshold : float
        Flag frames whose excess exceeds this many range widths.
    trust_hi : float, optional
        Upper trust level of ``select`` (range widths; None: no limit).  The
        on-the-fly flag is not affected.
    min_distance : float, optional
        ``select`` rejects picks with two atoms closer than this (Å; None: no check).
    min_width : float
        Floor of a range width (functions constant over the training set).
    seed : int
        Random fill-up of batches once nothing extrapolates.
    cache : DescriptorCache, optional
        Descriptor cache to share (default: a private one, ``cache_``).
    progress : bool
        tqdm bar while computing descriptors.
    """

    name = "extrapolation"

    def __init__(self, sfs=None, threshold: float = 0.0, trust_hi: float | None = None,
                 min_distance: float | None = None, min_width: float = 1e-6, seed: int = 0,
                 cache: DescriptorCache | None = None, progress: bool = False):
        self.sfs = sfs
        self.threshold = threshold
        self.trust_hi = trust_hi
        self.min_distance = min_distance
        self.min_width = min_width
        self.seed = seed
        self.cache = cache
        self.progress = progress

    def fit(self, train) -> ExtrapolationQuery:
        """Record the per-element range of every symmetry function over ``train``."""
        t0 = time.perf_counter()
        if not (np.isfinite(self.threshold) and self.threshold >= 0 and self.min_width > 0
                and (self.trust_hi is None or self.trust_hi > self.threshold)):
            raise InputError(f"ExtrapolationQuery: need threshold >= 0, min_width > 0 and trust_hi > "
                             f"threshold, got {self.threshold!r}, {self.min_width!r}, "
                             f"{self.trust_hi!r}")
        check_min_distance(self)
        table = self.descriptor_table(train, "training set")
        self.G_min_, self.G_max_ = {}, {}
        for el in table.elements:
            G = table.G[el]
            if G.shape[0]:
                self.G_min_[el], self.G_max_[el] = G.min(axis=0), G.max(axis=0)
            else:                    # no atom of el labelled yet: every value extrapolates
                self.G_min_[el] = np.full(G.shape[1], np.inf, dtype=G.dtype)
                self.G_max_[el] = np.full(G.shape[1], -np.inf, dtype=G.dtype)
        self.n_train_ = table.n_structures
        self.threshold_ = float(self.threshold)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    def _excess(self, table: DescriptorTable, g_min=None, g_max=None):
        """(excess, n_out) of ``table`` against a range (default: the fitted one).  An
        element absent from training has the empty range (+inf, -inf): excess inf."""
        return range_excess(table, self.G_min_ if g_min is None else g_min,
                            self.G_max_ if g_max is None else g_max, self.min_width, self.threshold)

    def score(self, pool) -> dict[str, np.ndarray]:
        """``score`` = ``excess`` (range widths) and ``n_out`` (values beyond ``threshold``)."""
        self._check_fitted()
        ex, n_out = self._excess(self.descriptor_table(pool, "pool"))
        return {"score": ex, "excess": ex, "n_out": n_out.astype(float)}

    def uncertainty(self, frames) -> np.ndarray:
        return self.score(frames)["excess"]

    def select(self, pool, k: int) -> Selection:
        """Greedy: largest excess first, the range widened by every pick (see the class)."""
        t0 = time.perf_counter()
        k = check_k(k, pool_size(pool))
        self._check_fitted()
        check_min_distance(self, pool)
        table = self.descriptor_table(pool, "pool")
        ex0, n_out0 = self._excess(table)
        rejected = np.zeros(table.n_structures, dtype=bool)
        g_min = {el: v.copy() for el, v in self.G_min_.items()}
        g_max = {el: v.copy() for el, v in self.G_max_.items()}
        rows = {el: np.argsort(table.owner[el], kind="stable") for el in table.elements}
        bounds = {el: np.searchsorted(table.owner[el][rows[el]], np.arange(table.n_structures + 1))
                  for el in table.elements}
        ex = ex0.copy()
        hi = np.inf if self.trust_hi is None else float(self.trust_hi)
        taken = np.zeros(table.n_structures, dtype=bool)
        chosen, reasons = [], []
        while len(chosen) < k:
            live = np.flatnonzero(~taken & (ex > 0) & (ex <= hi))
            if live.size == 0:
                break
            i = int(live[np.argmax(ex[live])])           # ties: lower index
            if too_close(pool, i, self.min_distance):
                taken[i] = rejected[i] = True
                continue
            chosen.append(i)
            reasons.append({"rank": len(reasons), "score": float(ex[i]), "excess": float(ex0[i]),
                            "excess_given_batch": float(ex[i]), "n_out": float(n_out0[i])})
            taken[i] = True
            for el in table.elements:
                G = table.G[el][rows[el][bounds[el][i]:bounds[el][i + 1]]]
                if G.shape[0]:
                    g_min[el] = np.minimum(g_min[el], G.min(axis=0))
                    g_max[el] = np.maximum(g_max[el], G.max(axis=0))
            # only structures still outside can change (the range only widens)
            still = ~taken & (ex > 0)
            ex[:] = 0.0
            for el in table.elements:
                r = np.flatnonzero(still[table.owner[el]])
                if r.size:
                    e = _row_excess(table.G[el][r], g_min[el], g_max[el], self.min_width)
                    np.maximum.at(ex, table.owner[el][r], e.max(axis=1))
        if len(chosen) < k:
            rng = np.random.default_rng([int(self.seed), self.n_train_, table.n_structures])
            rest = rng.permutation(np.flatnonzero(~taken | rejected))
            rank = (ex[rest] > hi).astype(int) + 2 * rejected[rest]      # beyond trust_hi, rejected last
            rest = rest[np.argsort(rank, kind="stable")]
            for i in rest[:k - len(chosen)]:
                chosen.append(int(i))
                reasons.append({"rank": len(reasons), "score": float(ex0[i]), "excess": float(ex0[i]),
                                "excess_given_batch": float(ex[i]), "n_out": float(n_out0[i]), "fill": True,
                                **({"too_close": True} if rejected[i] else {})})
        return Selection(np.asarray(chosen, dtype=np.int64), reasons, self.name,
                         time.perf_counter() - t0, {"score": ex0, "excess": ex0,
                                                    "n_out": n_out0.astype(float)})
