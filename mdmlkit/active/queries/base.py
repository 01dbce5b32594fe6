"""The query interface, the :class:`Selection` it returns and the loop protocol.

Every query is a scikit-learn estimator (:class:`sklearn.base.BaseEstimator`):
constructor parameters are stored verbatim, learned state ends in ``_``, so
``get_params``/``set_params`` and :func:`sklearn.base.clone` work.  Interface:

* ``fit(train)`` — learn from the current training set (list of ``ase.Atoms``);
* ``score(pool) -> dict[str, ndarray]`` — per-structure numbers, always with a
  ``"score"`` entry (higher = more worth labelling);
* ``select(pool, k) -> Selection`` — ``k`` distinct pool indices plus, for each,
  a dict saying why it was chosen (``indices, reasons = query.select(pool, k)``);
* ``uncertainty(frames)`` / ``flag(frames)`` — the per-structure statistic used by
  on-the-fly MD and whether it exceeds the threshold ``threshold_``.

Loop protocol: a query lists in ``loop_inputs`` the constructor parameters an
:class:`~mdmlkit.active.ActiveLearningLoop` may fill in from its
:class:`LoopContext` (``"sfs"``, ``"model"``, ``"trainer_kwargs"``, ``"cache"``)
when they are None; :func:`prepare_query` returns such a configured clone and
never changes the query it is given.
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from sklearn.base import BaseEstimator, clone

from mdmlkit.active.features import DescriptorCache, DescriptorTable
from mdmlkit.errors import EmptyTrajectoryError, InputError, NotFittedError

__all__ = ["Selection", "Query", "LoopContext", "prepare_query", "check_k", "pool_size", "top_k",
           "plain", "check_min_distance", "too_close", "query_for_seed"]


@dataclass
class Selection:
    """The result of :meth:`Query.select`.

    Attributes
    ----------
    indices : ndarray of int
        Chosen pool indices, in the order they were chosen (best first).
    reasons : list of dict
        One dict per chosen structure: its rank and the numbers behind the choice.
    strategy : str
        Name of the query.
    time_s : float
        Wall time of the call (scoring + selection), s.
    scores : dict[str, ndarray]
        The query's per-structure numbers over the whole pool.

    ``indices, reasons = selection`` unpacks it.
    """

    indices: np.ndarray
    reasons: list[dict]
    strategy: str = ""
    time_s: float = 0.0
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __iter__(self):
        yield self.indices
        yield self.reasons

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        head = self.indices[:8].tolist()
        more = ", ..." if len(self.indices) > 8 else ""
        return (f"Selection(strategy={self.strategy!r}, k={len(self)}, "
                f"indices={head}{more}, time={self.time_s:.3g} s)")

    def to_frame(self):
        """The reasons as a ``pandas.DataFrame`` (one row per chosen structure)."""
        import pandas as pd

        return pd.DataFrame([{"index": int(i), **r} for i, r in zip(self.indices, self.reasons)])


def check_k(k: Any, n_pool: int, source: str = "pool") -> int:
    """``k`` as an int; raises :class:`InputError` unless 1 <= k <= ``n_pool``."""
    if n_pool == 0:
        raise EmptyTrajectoryError(f"{source}: no structures to select from")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if k > n_pool:
        raise InputError(f"cannot select k={k} structures from a {source} of {n_pool}; "
                         f"use k <= {n_pool}")
    return int(k)


def pool_size(pool) -> int:
    """Structures in a pool given as Atoms list, one Atoms, DescriptorTable or feature array."""
    if isinstance(pool, DescriptorTable):
        return pool.n_structures
    if isinstance(pool, np.ndarray):
        return pool.shape[0]
    if isinstance(pool, Atoms):
        return 1
    return len(pool)


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores (NaN lowest), ties broken by the lower index."""
    order = np.lexsort((np.arange(score.size), -np.nan_to_num(score, nan=-np.inf)))
    return order[:k]


def check_min_distance(query: Query, pool=None) -> None:
    """Validate a query's ``min_distance`` (Å, or None) and that ``pool`` holds structures.

    The geometric guard of a query: a pick whose closest pair of atoms is nearer than
    ``min_distance`` is broken MD (atoms nearly on top of each other, forces of hundreds of
    eV/Å), not chemistry, and is rejected.  Checking it needs the structures themselves, not
    a :class:`~mdmlkit.active.DescriptorTable` or a feature array."""
    md = getattr(query, "min_distance", None)
    if md is None:
        return
    if isinstance(md, bool) or not isinstance(md, (int, float, np.floating)) or not md > 0:
        raise InputError(f"{type(query).__name__}: min_distance must be > 0 Å or None, got {md!r}")
    if pool is not None and isinstance(pool, (DescriptorTable, np.ndarray)):
        raise InputError(f"{type(query).__name__}(min_distance=...) needs the pool's structures, "
                         f"not a {type(pool).__name__}")


def too_close(pool, i: int, min_distance: float | None) -> bool:
    """True when structure ``i`` of ``pool`` has two atoms closer than ``min_distance`` (Å;
    minimum image); always False for ``min_distance=None``."""
    if min_distance is None:
        return False
    from mdmlkit.active.onthefly import min_interatomic_distance

    atoms = pool if isinstance(pool, Atoms) else pool[int(i)]
    return min_interatomic_distance(atoms, float(min_distance)) < float(min_distance)


def plain(v):
    """A numpy scalar as a Python scalar (for JSON-friendly reasons)."""
    return v.item() if isinstance(v, np.generic) else v


@dataclass(frozen=True)
class LoopContext:
    """What an active-learning loop offers its query (see :func:`prepare_query`).

    Attributes
    ----------
    model : HDNNP
        The loop's potential template.
    sfs : SymmetryFunctionSet
        Its descriptor (``model.sfs``).
    trainer_kwargs : dict or callable
        The loop's :class:`~mdmlkit.potential.Trainer` settings.
    cache : DescriptorCache
        The loop's descriptor cache.
    """

    model: Any
    sfs: Any
    trainer_kwargs: dict | Callable[[int], dict]
    cache: DescriptorCache | None = None


class Query(BaseEstimator):
    """Base class: parameters in ``__init__``, learned state with a trailing underscore.

    Subclasses implement :meth:`fit` and :meth:`score`; :meth:`select` takes the
    ``k`` highest scores unless overridden.  ``name`` names the strategy;
    ``loop_inputs`` lists the parameters a loop fills in (see :func:`prepare_query`).
    """

    name: ClassVar[str] = "query"
    loop_inputs: ClassVar[tuple[str, ...]] = ()

    def loop_params(self, context: LoopContext) -> dict[str, Any]:
        """Parameters to take from ``context``: those of ``loop_inputs`` that are None."""
        params = self.get_params(deep=False)
        return {p: getattr(context, p) for p in self.loop_inputs if params.get(p) is None}

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        defaults = {p: v.default for p, v in inspect.signature(type(self).__init__).parameters.items()}
        shown = []
        for p, v in self.get_params(deep=False).items():
            if p in self.loop_inputs or p == "committee":
                if v is not None:
                    shown.append(f"{p}=<{type(v).__name__}>")
                continue
            try:
                same = v == defaults.get(p)
                same = bool(same.all()) if isinstance(same, np.ndarray) else bool(same)
            except Exception:  # noqa: BLE001 - incomparable values are shown
                same = False
            if not same:
                shown.append(f"{p}={v!r}")
        fitted = getattr(self, "n_train_", None)
        shown.append(f"fitted on {fitted} structures" if fitted is not None else "not fitted")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "n_train_", None) is not None

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train) first")

    # -- interface ------------------------------------------------------------
    def fit(self, train) -> Query:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, pool) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def select(self, pool, k: int) -> Selection:
        """The ``k`` pool structures with the highest ``score`` (ties: lower index first)."""
        t0 = time.perf_counter()
        k = check_k(k, pool_size(pool))
        self._check_fitted()
        sc = self.score(pool)
        idx = top_k(sc["score"], k)
        reasons = [{"rank": r, **{key: plain(v[i]) for key, v in sc.items()}}
                   for r, i in enumerate(idx)]
        return Selection(idx, reasons, self.name, time.perf_counter() - t0, sc)

    def uncertainty(self, frames) -> np.ndarray:
        """Per-structure statistic compared with ``threshold_`` in on-the-fly mode."""
        raise NotImplementedError(f"{type(self).__name__} has no uncertainty measure; use "
                                  "AutoencoderQuery, CommitteeQuery or FarthestPointQuery "
                                  "for on-the-fly learning")

    def flag(self, frames) -> np.ndarray:
        """Boolean per structure: ``uncertainty(frames) > threshold_``."""
        self._check_fitted()
        return self.uncertainty(frames) > self.threshold_

    def _calibrate(self, train_uncertainty: np.ndarray) -> None:
        """``threshold_`` = ``threshold`` if given, else ``flag_factor`` × max over training."""
        threshold = getattr(self, "threshold", None)
        if threshold is not None:
            self.threshold_ = float(threshold)
        else:
            finite = train_uncertainty[np.isfinite(train_uncertainty)]
            self.threshold_ = float(self.flag_factor * finite.max()) if finite.size else np.inf


def query_for_seed(spec, seed: int) -> Query:
    """A clone of the query ``spec`` with its ``seed`` set (when it has one), or ``spec(seed)``
    for a callable ``seed -> Query``: how a learning-curve run gets its query."""
    if isinstance(spec, Query):
        q = clone(spec)
        return q.set_params(seed=seed) if "seed" in q.get_params(deep=False) else q
    if callable(spec):
        return spec(seed)
    raise InputError(f"strategy must be a Query or a callable seed -> Query, got {spec!r}")


def prepare_query(query: Query, context: LoopContext) -> Query:
    """An unfitted clone of ``query`` with the loop's inputs filled in; ``query`` is unchanged.

    ``sklearn.base.clone`` copies the parameters (a :class:`DescriptorCache` is
    shared, not copied); then the parameters named by ``query.loop_params(context)``
    are set on the clone.
    """
    if not isinstance(query, Query):
        raise InputError(f"query must be a mdmlkit.active Query, got {type(query).__name__}")
    return clone(query).set_params(**query.loop_params(context))
