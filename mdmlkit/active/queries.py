"""Active-learning queries: which unlabelled structures to label next.

Every query follows one interface (scikit-learn style; learned state ends in ``_``):

* ``fit(train)`` — learn from the current training set (list of ``ase.Atoms``);
* ``score(pool) -> dict[str, ndarray]`` — per-structure numbers, always with a
  ``"score"`` entry (higher = more worth labelling);
* ``select(pool, k) -> Selection`` — ``k`` distinct pool indices plus, for each,
  a dict saying why it was chosen (``indices, reasons = query.select(pool, k)``);
* ``uncertainty(frames)`` / ``flag(frames)`` — the per-structure statistic used by
  on-the-fly MD and whether it exceeds the threshold ``threshold_``.

Strategies
----------
:class:`AutoencoderQuery`
    reconstruction error of a per-element autoencoder (informativeness) ×
    latent-space density over the pool (representativeness), greedy diverse
    batches; formulas in its docstring.
:class:`CommitteeQuery`
    query by committee: DP-GEN's model deviation, the largest atomic force
    standard deviation of a committee of HDNNPs.
:class:`FarthestPointQuery`
    greedy farthest-point sampling in a structure descriptor space.
:class:`RandomQuery`
    uniform random choice (the baseline every strategy must beat).
"""
from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from mdmlkit.errors import EmptyTrajectoryError, InputError, ModelMismatchError
from mdmlkit.active.features import DescriptorCache, DescriptorTable, as_frames, check_table

__all__ = ["Selection", "Query", "AutoencoderQuery", "CommitteeQuery", "FarthestPointQuery",
           "RandomQuery"]


# --------------------------------------------------------------------------- selection

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


def _check_k(k: Any, n_pool: int, source: str = "pool") -> int:
    if n_pool == 0:
        raise EmptyTrajectoryError(f"{source}: no structures to select from")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if k > n_pool:
        raise InputError(f"cannot select k={k} structures from a {source} of {n_pool}; "
                         f"use k <= {n_pool}")
    return int(k)


def _pool_size(pool) -> int:
    if isinstance(pool, DescriptorTable):
        return pool.n_structures
    if isinstance(pool, np.ndarray):
        return pool.shape[0]
    if isinstance(pool, Atoms):
        return 1
    return len(pool)


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, ties broken by the lower index."""
    order = np.lexsort((np.arange(score.size), -np.nan_to_num(score, nan=-np.inf)))
    return order[:k]


# --------------------------------------------------------------------------- base class

class Query:
    """Base class: parameters in ``__init__``, learned state with a trailing underscore.

    Subclasses implement :meth:`fit` and :meth:`score`; :meth:`select` takes the
    ``k`` highest scores unless overridden.
    """

    name = "query"

    # -- parameters -----------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (as given)."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params) -> "Query":
        for k, v in params.items():
            if k not in self._param_names():
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}")
            setattr(self, k, v)
        return self

    def clone(self, **overrides) -> "Query":
        """An unfitted copy with the same parameters (objects such as ``sfs`` shared)."""
        params = self.get_params()
        params.update(overrides)
        return type(self)(**params)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        shown = []
        for p in self._param_names():
            v = getattr(self, p)
            default = sig.parameters[p].default
            if p in ("sfs", "cache", "model", "committee"):
                if v is not None:
                    shown.append(f"{p}=<{type(v).__name__}>")
                continue
            try:
                same = v == default
                same = bool(same) if not isinstance(same, np.ndarray) else bool(same.all())
            except Exception:  # noqa: BLE001
                same = False
            if not same:
                shown.append(f"{p}={v!r}")
        fitted = getattr(self, "n_train_", None)
        shown.append(f"fitted on {fitted} structures" if fitted is not None else "not fitted")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "n_train_", None) is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")

    # -- interface ------------------------------------------------------------
    def fit(self, train) -> "Query":  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, pool) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def select(self, pool, k: int) -> Selection:
        """The ``k`` pool structures with the highest ``score`` (ties: lower index first)."""
        t0 = time.perf_counter()
        k = _check_k(k, _pool_size(pool))
        self._check_fitted()
        sc = self.score(pool)
        idx = _top_k(sc["score"], k)
        reasons = [{"rank": r, **{key: _item(v[i]) for key, v in sc.items()}}
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


def _item(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------- random

class RandomQuery(Query):
    """Uniformly random structures (the baseline).

    The choice depends only on ``seed``, the training-set size and the pool size
    (``numpy.random.default_rng([seed, n_train, n_pool])``), so a resumed
    active-learning loop repeats it exactly.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, train) -> "RandomQuery":
        self.n_train_ = len(as_frames(train, "training set")) if not isinstance(train, int) \
            else int(train)
        return self

    def score(self, pool) -> dict[str, np.ndarray]:
        self._check_fitted()
        n = _pool_size(pool)
        rng = np.random.default_rng([int(self.seed), self.n_train_, n])
        return {"score": rng.random(n)}


# --------------------------------------------------------------------------- descriptors

class _DescriptorQuery(Query):
    """Shared handling of ``sfs``/``cache`` and frames → :class:`DescriptorTable`."""

    def _cache(self) -> DescriptorCache:
        if self.sfs is None:
            raise InputError(f"{type(self).__name__}: no symmetry functions: pass "
                             "sfs=model.sfs (or a SymmetryFunctionSet)")
        if self.cache is not None:
            return self.cache
        return DescriptorCache.shared(self.sfs)

    def _table(self, frames, source: str) -> DescriptorTable:
        if isinstance(frames, DescriptorTable):
            if frames.n_structures == 0:
                raise EmptyTrajectoryError(f"{source}: no structures")
            if self.sfs is not None:
                check_table(frames, self.sfs.elements, source)
            return frames
        return self._cache().table(frames, source, progress=getattr(self, "progress", False))


# --------------------------------------------------------------------------- autoencoder

class AutoencoderQuery(_DescriptorQuery):
    r"""Autoencoder query: informativeness × representativeness, diverse batches.

    A :class:`~mdmlkit.active.autoencoder.SymmetryFunctionAutoencoder` (one
    autoencoder per element) is trained on the atoms of the training set.  For a
    pool structure s with atoms i (element el(i)):

    * per-atom reconstruction error of the standardised symmetry functions
      x_i = (G_i − μ_el)/σ_el (μ, σ over the training atoms), relative to the
      mean training error ē_el of that element::

          e_i = mean_f (x̂_if − x_if)²,        ẽ_i = e_i / ē_el

    * **informativeness** (environments the training set does not cover
      reconstruct badly)::

          I_max(s) = max_i ẽ_i,   I_mean(s) = mean_i ẽ_i,
          I(s) = w_max · I_max(s) + (1 − w_max) · I_mean(s)

    * **representativeness** (how many pool environments a structure stands
      for): a Gaussian kernel density of its atoms' latent vectors z_i among
      the latent vectors of the pool's atoms of the same element (a seeded
      random reference subset Z_el of at most ``n_density_ref`` atoms)::

          ρ(z_i) = mean_{z_j ∈ Z_el} exp(−|z_i − z_j|² / (2 h_el²)),
          h_el = bandwidth · sqrt(mean_j |z_j − z̄_el|²)        (RMS spread of Z_el)
          R(s) = mean_i ρ(z_i) / max_pool ρ   ∈ (0, 1]

      (``density_space="input"`` uses the standardised inputs x_i instead of
      z_i: more faithful, since an autoencoder may map unfamiliar environments
      onto familiar codes, but costlier for many symmetry functions.)

    * **combined score** (information density): ``S(s) = I(s) · R(s)^beta``.

    * **diversity rule** (greedy, maximal-marginal-relevance style): with the
      structure embedding f_s = per-element mean latent vector (concatenated)
      and sim(s, t) = exp(−|f_s − f_t|² / (2 h_f²)), h_f = bandwidth × RMS spread
      of f over the pool, the batch B is built one structure at a time by::

          pick argmax_s  S(s) · (1 − diversity · max_{t ∈ B} sim(s, t))

      Structures whose embedding equals that of a chosen one (|f_s − f_t| ≤
      1e-6 h_f, e.g. exact copies) are skipped while any other candidate is left,
      also with ``diversity=0`` (which otherwise reduces the rule to top-k of S).

    The on-the-fly statistic :meth:`uncertainty` is I(s); ``threshold_`` is
    ``threshold`` or ``flag_factor`` × the largest I(s) over the training set.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        Descriptor (e.g. the potential's ``model.sfs``); filled in by
        :class:`~mdmlkit.active.ActiveLearningLoop` when None.
    hidden, latent_dim, activation
        Autoencoder architecture (per element).
    steps, lr, batch_size, weight_decay, max_rows
        Training: ``steps`` Adam steps per element on minibatches of ``batch_size``
        atoms (at most ``max_rows`` atoms per element), so the cost per fit does
        not grow with the training set.
    w_max : float in [0, 1]
        Weight of I_max in I.
    beta : float >= 0
        Exponent of the representativeness (0: informativeness only).
    bandwidth : float > 0
        Kernel width relative to the RMS spread of the latent cloud.
    density_space : {"latent", "input"}
        Where the representativeness density is computed (see above).
    diversity : float in [0, 1]
        Strength of the diversity penalty (0: plain top-k of S).
    n_density_ref : int
        Reference atoms per element for the density.
    flag_factor, threshold
        On-the-fly flagging threshold (see above).
    seed : int
        Seeds the autoencoder initialisation, minibatches and density reference.
    device : str, optional
        Torch device for the autoencoder (default CPU).
    cache : DescriptorCache, optional
        Descriptor cache (default: the process-wide one of ``sfs``).
    progress : bool
        tqdm bars while computing descriptors / training.

    Attributes
    ----------
    autoencoder_ : SymmetryFunctionAutoencoder
    error_scale_ : dict[str, float]
        ē_el, mean training reconstruction error per element.
    train_informativeness_ : ndarray
        I(s) of the training structures.
    threshold_ : float
    history_ : list of dict
        Training losses per element and pass over the rows.
    n_train_ : int
    fit_time_s_ : float
    """

    name = "autoencoder"

    def __init__(self, sfs=None, hidden: Sequence[int] = (32,), latent_dim: int = 4,
                 activation: str = "tanh", steps: int = 1500, lr: float = 3e-3,
                 batch_size: int = 128, weight_decay: float = 0.0, max_rows: int | None = 50_000,
                 w_max: float = 0.5, beta: float = 1.0, bandwidth: float = 0.25,
                 density_space: str = "latent", diversity: float = 1.0, n_density_ref: int = 2000, flag_factor: float = 1.2,
                 threshold: float | None = None, seed: int = 0, device=None,
                 cache: DescriptorCache | None = None, progress: bool = False):
        self.sfs = sfs
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.activation = activation
        self.steps = steps
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.max_rows = max_rows
        self.w_max = w_max
        self.beta = beta
        self.bandwidth = bandwidth
        self.density_space = density_space
        self.diversity = diversity
        self.n_density_ref = n_density_ref
        self.flag_factor = flag_factor
        self.threshold = threshold
        self.seed = seed
        self.device = device
        self.cache = cache
        self.progress = progress

    def _check_params(self) -> None:
        if not 0.0 <= self.w_max <= 1.0:
            raise InputError(f"w_max must be in [0, 1], got {self.w_max}")
        if self.beta < 0:
            raise InputError(f"beta must be >= 0, got {self.beta}")
        if not self.bandwidth > 0:
            raise InputError(f"bandwidth must be > 0, got {self.bandwidth}")
        if self.density_space not in ("latent", "input"):
            raise InputError(f"density_space must be 'latent' or 'input', got {self.density_space!r}")
        if not 0.0 <= self.diversity <= 1.0:
            raise InputError(f"diversity must be in [0, 1], got {self.diversity}")

    # -- fitting ----------------------------------------------------------------
    def fit(self, train) -> "AutoencoderQuery":
        """Train the autoencoder on the atoms of ``train`` (Atoms list or DescriptorTable)."""
        from mdmlkit.active.autoencoder import SymmetryFunctionAutoencoder

        self._check_params()
        t0 = time.perf_counter()
        table = self._table(train, "training set")
        n_features = {el: table.G[el].shape[1] for el in table.elements}
        ae = SymmetryFunctionAutoencoder(n_features, self.hidden, self.latent_dim, self.activation)
        self.history_ = ae.fit(table.G, steps=self.steps, lr=self.lr, batch_size=self.batch_size,
                               weight_decay=self.weight_decay, seed=self.seed,
                               max_rows=self.max_rows, device=self.device, progress=self.progress)
        self.autoencoder_ = ae
        errs, _ = ae.evaluate(table.G)
        self.elements_ = [el for el in table.elements if table.G[el].shape[0] > 0]
        self.error_scale_ = {el: max(float(errs[el].mean()), 1e-12) for el in self.elements_}
        self.n_train_ = table.n_structures
        info = self._informativeness(table, errs)
        self.train_informativeness_ = info["informativeness"]
        self._calibrate(self.train_informativeness_)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    # -- scoring ----------------------------------------------------------------
    def _errors(self, table: DescriptorTable, source: str):
        self._check_fitted()
        missing = [el for el in table.elements
                   if table.G[el].shape[0] > 0 and el not in self.error_scale_]
        if missing:
            s = int(table.owner[missing[0]][0])
            raise ModelMismatchError(
                f"{source}: structure {s} contains {missing[0]}, which has no atoms in the "
                f"autoencoder's training set (trained on {self.elements_}); add a structure with "
                f"{missing[0]} to the training set first")
        return self.autoencoder_.evaluate(table.G)

    def _informativeness(self, table: DescriptorTable, errs) -> dict[str, np.ndarray]:
        S = table.n_structures
        i_max = np.full(S, -np.inf)
        i_sum = np.zeros(S)
        worst_atom = np.full(S, -1, dtype=np.int64)
        worst_el = np.full(S, "", dtype=object)
        for el in table.elements:
            if table.G[el].shape[0] == 0:
                continue
            e = errs[el] / self.error_scale_[el]
            own = table.owner[el]
            i_sum += np.bincount(own, weights=e, minlength=S)
            # per-structure maximum and its atom (vectorised: sort by (owner, e))
            order = np.lexsort((e, own))
            last = np.r_[own[order][1:] != own[order][:-1], True]
            rows = order[last]
            s_idx = own[rows]
            better = e[rows] > i_max[s_idx]
            i_max[s_idx[better]] = e[rows][better]
            worst_atom[s_idx[better]] = table.atom[el][rows][better]
            worst_el[s_idx[better]] = el
        i_mean = i_sum / table.n_atoms
        info = self.w_max * i_max + (1.0 - self.w_max) * i_mean
        return {"informativeness": info, "informativeness_max": i_max,
                "informativeness_mean": i_mean, "worst_atom": worst_atom, "worst_element": worst_el}

    def _density(self, table: DescriptorTable, lat) -> np.ndarray:
        """R(s): mean normalised density of the structure's atoms among the pool's (rows ``lat``)."""
        import torch

        S = table.n_structures
        r_sum = np.zeros(S)
        rng = np.random.default_rng([int(self.seed), 1])
        for el in table.elements:
            Z = lat.get(el)
            if Z is None or Z.shape[0] == 0:
                continue
            ref = Z if Z.shape[0] <= self.n_density_ref else \
                Z[np.sort(rng.choice(Z.shape[0], self.n_density_ref, replace=False))]
            spread = np.sqrt(np.mean(np.sum((ref - ref.mean(axis=0)) ** 2, axis=1)))
            h = max(self.bandwidth * spread, 1e-12)
            Zt, Rt = torch.as_tensor(Z), torch.as_tensor(ref)
            rho = np.concatenate([
                torch.exp(-torch.cdist(Zt[s:s + 8192], Rt) ** 2 / (2 * h * h)).mean(dim=1).numpy()
                for s in range(0, Z.shape[0], 8192)])
            rho = rho / rho.max()
            r_sum += np.bincount(table.owner[el], weights=rho, minlength=S)
        return r_sum / table.n_atoms

    @staticmethod
    def _embedding(table: DescriptorTable, lat, latent_dim: int) -> np.ndarray:
        """f_s: per-element mean latent vector of each structure (zeros where absent)."""
        S = table.n_structures
        cols = []
        for el in table.elements:
            Z = lat.get(el)
            f = np.zeros((S, latent_dim))
            if Z is not None and Z.shape[0]:
                np.add.at(f, table.owner[el], Z)
                cnt = np.bincount(table.owner[el], minlength=S)
                f /= np.maximum(cnt, 1)[:, None]
            cols.append(f)
        return np.concatenate(cols, axis=1)

    def _score_all(self, pool, source: str = "pool"):
        table = self._table(pool, source)
        errs, lat = self._errors(table, source)
        out = self._informativeness(table, errs)
        if self.density_space == "input":
            import torch

            space = {el: self.autoencoder_.standardise(el, torch.as_tensor(table.G[el]))
                     .double().numpy() for el in table.elements if el in self.error_scale_}
        else:
            space = lat
        R = self._density(table, space)
        out["representativeness"] = R
        out["score"] = out["informativeness"] * R ** self.beta
        return out, table, lat

    def score(self, pool) -> dict[str, np.ndarray]:
        """Per pool structure: ``score`` S, ``informativeness`` I, ``informativeness_max``,
        ``informativeness_mean``, ``representativeness`` R, ``worst_atom`` (index of the
        atom with the largest ẽ_i) and ``worst_element``."""
        return self._score_all(pool)[0]

    def uncertainty(self, frames) -> np.ndarray:
        """I(s) of each structure (no pool needed)."""
        table = self._table(frames, "frames")
        errs, _ = self._errors(table, "frames")
        return self._informativeness(table, errs)["informativeness"]

    def atom_errors(self, frames) -> list[np.ndarray]:
        """ẽ_i of every atom, one array per structure in atom order (e.g. to colour atoms)."""
        table = self._table(frames, "frames")
        errs, _ = self._errors(table, "frames")
        out = [np.zeros(int(n)) for n in table.n_atoms]
        for el in table.elements:
            e = errs[el] / self.error_scale_.get(el, 1.0)
            for s, a, v in zip(table.owner[el], table.atom[el], e):
                out[s][a] = v
        return out

    def latent(self, frames) -> dict[str, np.ndarray]:
        """Latent vectors ``{el: [n atoms of el, latent_dim]}`` (rows as in the descriptor table)."""
        table = self._table(frames, "frames")
        return self._errors(table, "frames")[1]

    # -- selection --------------------------------------------------------------
    def select(self, pool, k: int) -> Selection:
        """Greedy diverse batch of ``k`` structures (see the class docstring)."""
        t0 = time.perf_counter()
        k = _check_k(k, _pool_size(pool))
        self._check_fitted()
        sc, table, lat = self._score_all(pool)
        S = sc["score"]
        f = self._embedding(table, lat, self.latent_dim)
        spread = np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=1)))
        h = max(self.bandwidth * spread, 1e-12)
        n = S.size
        max_sim = np.zeros(n)
        duplicate = np.zeros(n, dtype=bool)
        taken = np.zeros(n, dtype=bool)
        chosen, reasons = [], []
        for r in range(k):
            adjusted = S * (1.0 - self.diversity * max_sim)
            cand = ~taken & ~duplicate
            only_dupes = not cand.any()
            if only_dupes:
                cand = ~taken
            masked = np.where(cand, adjusted, -np.inf)
            i = int(_top_k(masked, 1)[0])
            reasons.append({"rank": r, "score": float(S[i]), "adjusted_score": float(adjusted[i]),
                            "informativeness": float(sc["informativeness"][i]),
                            "informativeness_max": float(sc["informativeness_max"][i]),
                            "informativeness_mean": float(sc["informativeness_mean"][i]),
                            "representativeness": float(sc["representativeness"][i]),
                            "max_similarity_to_batch": float(max_sim[i]),
                            "worst_atom": int(sc["worst_atom"][i]),
                            "worst_element": str(sc["worst_element"][i]),
                            "duplicate_of_batch": bool(duplicate[i])})
            chosen.append(i)
            taken[i] = True
            d = np.linalg.norm(f - f[i], axis=1)
            max_sim = np.maximum(max_sim, np.exp(-d ** 2 / (2 * h * h)))
            duplicate |= d <= 1e-6 * h
        if any(r["duplicate_of_batch"] for r in reasons):
            warnings.warn("AutoencoderQuery.select: the pool ran out of distinct structures; the "
                          "batch contains duplicates", stacklevel=2)
        return Selection(np.asarray(chosen, dtype=np.int64), reasons, self.name,
                         time.perf_counter() - t0, sc)


# --------------------------------------------------------------------------- FPS

class FarthestPointQuery(_DescriptorQuery):
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
    """

    name = "fps"

    def __init__(self, sfs=None, stats: Sequence[str] = ("mean", "std"),
                 flag_factor: float = 1.2, threshold: float | None = None,
                 cache: DescriptorCache | None = None, progress: bool = False):
        self.sfs = sfs
        self.stats = stats
        self.flag_factor = flag_factor
        self.threshold = threshold
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
        table = self._table(data, source)
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

    def fit(self, train) -> "FarthestPointQuery":
        t0 = time.perf_counter()
        self.mu_ = self.sigma_ = None
        self.X_train_ = self._features(train, "training set", fit=True)
        self.n_train_ = self.X_train_.shape[0]
        X = self.X_train_
        if X.shape[0] > 1:
            D = _cdist(X, X)
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
            d = np.minimum(d, _cdist(X, self.X_train_[s:s + 2048]).min(axis=1))
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
        k = _check_k(k, _pool_size(pool))
        self._check_fitted()
        X = self._features(pool, "pool")
        d0 = self._dmin(X)
        d = d0.copy()
        taken = np.zeros(X.shape[0], dtype=bool)
        chosen, reasons = [], []
        for r in range(k):
            i = int(_top_k(np.where(taken, -np.inf, d), 1)[0])
            reasons.append({"rank": r, "score": float(d[i]), "distance_to_train": float(d0[i]),
                            "distance_to_labelled_or_batch": float(d[i])})
            chosen.append(i)
            taken[i] = True
            d = np.minimum(d, np.linalg.norm(X - X[i], axis=1))
        return Selection(np.asarray(chosen, dtype=np.int64), reasons, self.name,
                         time.perf_counter() - t0, {"score": d0, "distance_to_train": d0})


def _cdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    sq = (A ** 2).sum(1)[:, None] + (B ** 2).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(sq, 0.0))


# --------------------------------------------------------------------------- QBC

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
    batch when too few candidates lie in the window.

    Parameters
    ----------
    model : HDNNP, optional
        Template of the members (filled in by the loop when None).
    n_models : int
        Committee size (>= 2).
    trainer_kwargs : dict or callable
        For :class:`~mdmlkit.potential.Trainer` (e.g. ``max_epochs``), or
        ``n_train -> dict``.
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
    flag_factor, threshold
        ``threshold_`` (eV/Å) for on-the-fly flagging: ``threshold``, else
        ``flag_factor`` × the largest ε_F over the training set.
    seed : int
        Member ``m`` uses seed ``1000 · seed + m``.
    batch_size : int
        Structures per prediction batch.
    """

    name = "qbc"

    def __init__(self, model=None, n_models: int = 4, trainer_kwargs=None,
                 committee=None, bootstrap: bool = False, warm_start: bool = False,
                 trust_lo: float | None = None, trust_hi: float | None = None,
                 flag_factor: float = 1.2, threshold: float | None = None, seed: int = 0,
                 batch_size: int = 32):
        self.model = model
        self.n_models = n_models
        self.trainer_kwargs = trainer_kwargs
        self.committee = committee
        self.bootstrap = bootstrap
        self.warm_start = warm_start
        self.trust_lo = trust_lo
        self.trust_hi = trust_hi
        self.flag_factor = flag_factor
        self.threshold = threshold
        self.seed = seed
        self.batch_size = batch_size

    def fit(self, train) -> "CommitteeQuery":
        """Train the committee on ``train`` (labelled Atoms), or adopt ``committee``."""
        from mdmlkit.potential.committee import Committee
        from mdmlkit.potential.training.trainer import Trainer

        t0 = time.perf_counter()
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
            train, batch_size=self.batch_size, source="training set")["max_atomic_force_deviation"]
        self._calibrate(self.train_deviation_)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    def score(self, pool) -> dict[str, np.ndarray]:
        """``score`` = ``max_force_deviation`` ε_F (eV/Å); also ``mean_force_deviation``
        (eV/Å) and ``energy_std_per_atom`` (eV/atom)."""
        self._check_fitted()
        frames = as_frames(pool, "pool")
        p = self.committee_.predict(frames, batch_size=self.batch_size, source="pool")
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
        k = _check_k(k, _pool_size(pool))
        self._check_fitted()
        sc = self.score(pool)
        eps = np.nan_to_num(sc["max_force_deviation"], nan=-np.inf)
        idx = np.lexsort((np.arange(eps.size), -eps, ~sc["in_trust_window"]))[:k]
        reasons = [{"rank": r, **{key: _item(v[i]) for key, v in sc.items()}}
                   for r, i in enumerate(idx)]
        return Selection(idx, reasons, self.name, time.perf_counter() - t0, sc)

    def uncertainty(self, frames) -> np.ndarray:
        self._check_fitted()
        return self.committee_.predict(as_frames(frames, "frames"), batch_size=self.batch_size,
                                       source="frames")["max_atomic_force_deviation"]
