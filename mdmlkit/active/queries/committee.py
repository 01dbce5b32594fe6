"""Query by committee with DP-GEN's model deviation."""
from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from mdmlkit.active.features import as_frames
from mdmlkit.active.queries.base import (
    LoopContext,
    Query,
    Selection,
    check_k,
    check_min_distance,
    plain,
    pool_size,
    too_close,
)
from mdmlkit.errors import InputError
from mdmlkit.potential.committee import Committee
from mdmlkit.potential.training.trainer import Trainer

__all__ = ["CommitteeQuery"]


class CommitteeQuery(Query):
    """Query by committee with DP-GEN's model deviation.

    A :class:`~mdmlkit.potential.Committee` of ``n_models`` HDNNPs (copies of
    ``model`` with different initial weights, optionally bootstrap resamples)
    is trained on the training set; for every pool structure s::

        ε_F(s) = max_i sqrt( ⟨ |F_i − ⟨F_i⟩|² ⟩ )          (eV/Å)

    (⟨·⟩ over committee members).  ``select`` takes the ``k`` largest ε_F.  With
    DP-GEN trust levels ``trust_lo``/``trust_hi`` (eV/Å), candidates with
    trust_lo ≤ ε_F < trust_hi come first; those above ``trust_hi`` (probably
    unphysical) and below ``trust_lo`` (already well described) only fill up a
    batch when too few candidates lie in the window.  With ``min_distance`` (Å) a pick
    whose closest pair of atoms is nearer than that (broken MD, whose force deviation is
    among the largest) is rejected and only fills the batch after everything else
    (reason ``"too_close"``).

    Parameters
    ----------
    model : HDNNP, optional
        Template of the members (filled in by the loop when None and no
        ``committee`` is given).
    n_models : int
        Committee size (>= 2).
    trainer_kwargs : dict or callable
        For :class:`~mdmlkit.potential.Trainer` (e.g. ``max_epochs``), or
        ``n_train -> dict`` (filled in by the loop when None; ``checkpoint_dir``
        and ``callbacks`` are ignored).
    committee : Committee, optional
        A trained committee to use as it is (``fit`` then only calibrates
        ``threshold_``); needs no ``model``.
    bootstrap : bool
        Train members on bootstrap resamples.
    warm_start : bool
        Continue training the previous members on the new training set instead
        of training fresh ones each :meth:`fit`.
    trust_lo, trust_hi : float, optional
        DP-GEN trust levels, eV/Å.
    min_distance : float, optional
        ``select`` rejects picks with two atoms closer than this (Å; None: no check).
    flag_factor, threshold
        ``threshold_`` (eV/Å) for on-the-fly flagging: ``threshold``, else
        ``flag_factor`` × the largest ε_F over the training set.
    seed : int
        Member ``m`` uses seed ``1000 · seed + m``.
    batch_size : int
        Structures per prediction batch.
    compile : bool
        Score with the fused CPU kernels (:meth:`Committee.predict` ``compile=True``;
        needs numba): the same deviations, several times faster on large pools.
    """

    name = "qbc"
    loop_inputs: ClassVar[tuple[str, ...]] = ("model", "trainer_kwargs")

    def __init__(self, model=None, n_models: int = 4, trainer_kwargs=None,
                 committee=None, bootstrap: bool = False, warm_start: bool = False,
                 trust_lo: float | None = None, trust_hi: float | None = None,
                 min_distance: float | None = None, flag_factor: float = 1.2,
                 threshold: float | None = None, seed: int = 0, batch_size: int = 32,
                 compile: bool = False):
        self.model = model
        self.n_models = n_models
        self.trainer_kwargs = trainer_kwargs
        self.committee = committee
        self.bootstrap = bootstrap
        self.warm_start = warm_start
        self.trust_lo = trust_lo
        self.trust_hi = trust_hi
        self.min_distance = min_distance
        self.flag_factor = flag_factor
        self.threshold = threshold
        self.seed = seed
        self.batch_size = batch_size
        self.compile = compile

    def loop_params(self, context: LoopContext) -> dict[str, Any]:
        """The loop's model and trainer settings where missing (no model when a committee is given)."""
        params = super().loop_params(context)
        if self.committee is not None:
            params.pop("model", None)
        return params

    def fit(self, train) -> CommitteeQuery:
        """Train the committee on ``train`` (labelled Atoms), or adopt ``committee``."""
        t0 = time.perf_counter()
        check_min_distance(self)
        train = as_frames(train, "training set")
        if self.committee is not None and self.model is None:
            self.committee_ = self.committee
        elif self.model is None:
            raise InputError("CommitteeQuery needs a template model (HDNNP) or a trained committee")
        else:
            tk = self.trainer_kwargs
            tk = tk(len(train)) if callable(tk) else (tk or {})
            kwargs = {"progress": False, **{k: v for k, v in tk.items()
                                            if k not in ("checkpoint_dir", "callbacks")}}
            prev = getattr(self, "committee_", None)
            if self.warm_start and prev is not None:
                for m_idx, m in enumerate(prev.models):
                    kw = dict(kwargs)
                    kw.pop("seed", None)
                    kw.pop("checkpoint_dir", None)
                    Trainer(m, seed=1000 * int(self.seed) + m_idx, **kw).fit(train)
                self.committee_ = prev
            else:
                seeds = [1000 * int(self.seed) + m for m in range(int(self.n_models))]
                self.committee_ = Committee.train(train, None, model=self.model, seeds=seeds,
                                                  trainer_kwargs=kwargs, bootstrap=self.bootstrap)
        self.n_train_ = len(train)
        self.train_deviation_ = self.committee_.predict(
            train, batch_size=self.batch_size, compile=self.compile,
            source="training set")["max_atomic_force_deviation"]
        self._calibrate(self.train_deviation_)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    def score(self, pool) -> dict[str, np.ndarray]:
        """``score`` = ``max_force_deviation`` ε_F (eV/Å); also ``mean_force_deviation``
        (eV/Å) and ``energy_std_per_atom`` (eV/atom)."""
        self._check_fitted()
        frames = as_frames(pool, "pool")
        p = self.committee_.predict(frames, batch_size=self.batch_size, compile=self.compile, source="pool")
        eps = np.asarray(p["max_atomic_force_deviation"], dtype=float)
        out = {"max_force_deviation": eps, "mean_force_deviation": p["mean_atomic_force_deviation"],
               "energy_std_per_atom": p["energy_std_per_atom"]}
        lo = -np.inf if self.trust_lo is None else float(self.trust_lo)
        hi = np.inf if self.trust_hi is None else float(self.trust_hi)
        out["in_trust_window"] = (eps >= lo) & (eps < hi)
        out["score"] = eps
        return out

    def select(self, pool, k: int) -> Selection:
        """The ``k`` largest ε_F, those inside the trust window first (ties: lower index)."""
        t0 = time.perf_counter()
        k = check_k(k, pool_size(pool))
        self._check_fitted()
        check_min_distance(self, pool)
        sc = self.score(pool)
        eps = np.nan_to_num(sc["max_force_deviation"], nan=-np.inf)
        order = np.lexsort((np.arange(eps.size), -eps, ~sc["in_trust_window"]))
        idx, rejected = [], []
        for i in order:
            if len(idx) == k:
                break
            (rejected if too_close(pool, i, self.min_distance) else idx).append(int(i))
        idx += rejected[:k - len(idx)]                 # only when nothing else is left
        reasons = [{"rank": r, **{key: plain(v[i]) for key, v in sc.items()},
                    **({"too_close": True} if i in rejected else {})} for r, i in enumerate(idx)]
        idx = np.asarray(idx, dtype=np.int64)
        return Selection(idx, reasons, self.name, time.perf_counter() - t0, sc)

    def uncertainty(self, frames) -> np.ndarray:
        self._check_fitted()
        return self.committee_.predict(as_frames(frames, "frames"), batch_size=self.batch_size,
                                       compile=self.compile, source="frames")["max_atomic_force_deviation"]
