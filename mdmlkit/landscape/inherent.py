"""Inherent-structure maps: landscapes of quenched frames, scored against their morphology.

Thermal noise in instantaneous MD frames hides the differences between isomers.  Energy
landscape theory (Stillinger & Weber; Wales) maps *inherent structures* instead: every
frame is quenched to its local minimum (:func:`mdmlkit.landscape.minima.quench`), the
minima are merged (:func:`~mdmlkit.landscape.minima.deduplicate_minima`) and named
(:func:`~mdmlkit.landscape.minima.classify_minimum`), and the map is fitted on the
fingerprints of the *quenched* structures::

    from mdmlkit.landscape.inherent import InherentStructureMap, compare_with_instantaneous

    ism = InherentStructureMap().fit(frames)          # quench + dedup + classify + map
    ism.labels_, ism.minimum_ids_, ism.morphology_    # per frame
    ism.minima_.to_table()                            # distinct minima
    ism.ari_                                          # basins vs morphology classes
    occ = ism.family_occupancy(T, bins=18)            # families vs temperature
    compare_with_instantaneous(ism, frames)           # IS map vs map of the hot frames

Frames whose quench is flagged (not converged, exploded, failed; ``minimum_ids_ == -1``)
have no inherent structure: they are left out of the map and of every score, and get
basin ``-1`` and morphology ``"flagged"``.  The map's own noise frames are reassigned
to a basin by :class:`~mdmlkit.landscape.LandscapeMap` (its ``labels_`` has no ``-1``),
so the adjusted Rand index (ARI, :func:`sklearn.metrics.adjusted_rand_score`) compares
the basins of all frames with a minimum against their morphology classes.

Many frames quench to the same minimum and so have *identical* fingerprints; t-SNE
spreads such duplicates over a disc that density clustering may cut into pieces.  A
minimum is one point of configuration space, so by default (``basins_by_minimum``) all
frames of a minimum get the basin most of them have on the map (ties: the lowest
label); the map's own per-frame labels stay in ``map_labels_``.

Units: Å, eV, K.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import adjusted_rand_score

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError
from mdmlkit.landscape.embedding import LandscapeMap
from mdmlkit.landscape.fingerprints import CoulombMatrixEigenvalues
from mdmlkit.landscape.minima import (
    MORPHOLOGIES,
    QuenchResult,
    QuenchSettings,
    deduplicate_minima,
    quench,
)
from mdmlkit.landscape.transitions import basin_occupancy

__all__ = [
    "FLAGGED", "InherentStructureMap", "FamilyOccupancy", "morphology_codes",
    "separated_families", "map_scores", "compare_with_instantaneous",
]

#: Morphology of a frame whose quench was flagged (no inherent structure).
FLAGGED = "flagged"


def morphology_codes(morphology: Sequence[str]) -> np.ndarray:
    """Integer code of each morphology: index in :data:`~mdmlkit.landscape.minima.MORPHOLOGIES`,
    ``-1`` for :data:`FLAGGED` (or None)."""
    lookup = {m: k for k, m in enumerate(MORPHOLOGIES)}
    out = np.empty(len(morphology), dtype=np.int64)
    for k, m in enumerate(morphology):
        if m is None or m == FLAGGED:
            out[k] = -1
        elif m in lookup:
            out[k] = lookup[m]
        else:
            raise InputError(f"morphology of frame {k} is {m!r}; expected one of "
                             f"{MORPHOLOGIES} or {FLAGGED!r}")
    return out


def separated_families(labels: Any, morphology: Sequence[str], min_fraction: float = 0.02,
                       purity: float = 0.8, coverage: float = 0.8) -> list[str]:
    """Morphology families that the basins of a map separate.

    A basin *belongs* to family f when at least ``purity`` of its frames are f; family f
    is *separated* when the basins belonging to it hold at least ``coverage`` of f's
    frames.  Only families with at least ``min_fraction`` of the frames are considered.
    Frames with basin -1 or morphology :data:`FLAGGED` are ignored.

    Returns the separated families, most frequent first.
    """
    lab = np.asarray(labels)
    morph = np.asarray(list(morphology), dtype=object)
    if lab.ndim != 1 or len(lab) != len(morph):
        raise InconsistentFramesError(
            f"separated_families: {lab.shape} labels but {len(morph)} morphologies")
    ok = (lab >= 0) & np.array([m not in (None, FLAGGED) for m in morph], dtype=bool)
    lab, morph = lab[ok], morph[ok]
    if not len(lab):
        return []
    families, counts = np.unique(morph.astype(str), return_counts=True)
    owner: dict[int, str] = {}
    for b in np.unique(lab):
        fam, c = np.unique(morph[lab == b].astype(str), return_counts=True)
        if c.max() >= purity * c.sum():
            owner[int(b)] = str(fam[np.argmax(c)])
    out = []
    for f, n in sorted(zip(families, counts), key=lambda t: -t[1]):
        if n < min_fraction * len(lab):
            continue
        in_own = sum(int(np.count_nonzero((lab == b) & (morph == f)))
                     for b, g in owner.items() if g == f)
        if in_own >= coverage * n:
            out.append(str(f))
    return out


def map_scores(labels: Any, morphology: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    """Scores of map basins against morphology classes (frames with a minimum only).

    Returns ``ari`` (:func:`sklearn.metrics.adjusted_rand_score`), ``n_basins``,
    ``n_families`` (families with at least ``min_fraction`` of the frames),
    ``separated`` (:func:`separated_families`, ``kwargs`` passed on) and ``n_separated``.
    """
    lab = np.asarray(labels)
    codes = morphology_codes(morphology)
    if lab.ndim != 1 or len(lab) != len(codes):
        raise InconsistentFramesError(f"map_scores: {lab.shape} labels but {len(codes)} morphologies")
    ok = (lab >= 0) & (codes >= 0)
    if not ok.any():
        raise EmptyTrajectoryError("map_scores: no frame has both a basin and a morphology")
    min_fraction = kwargs.get("min_fraction", 0.02)
    _, counts = np.unique(codes[ok], return_counts=True)
    sep = separated_families(lab, morphology, **kwargs)
    return {"ari": float(adjusted_rand_score(codes[ok], lab[ok])),
            "n_basins": int(len(np.unique(lab[ok]))),
            "n_families": int(np.count_nonzero(counts >= min_fraction * ok.sum())),
            "separated": sep, "n_separated": len(sep)}


@dataclass
class FamilyOccupancy:
    """Fraction of frames in each morphology family per temperature bin.

    ``T_centres`` [n_bins] (K), ``occupancy`` [n_bins, n_families] (rows sum to 1 over
    the frames with a minimum; NaN for empty bins), ``families`` (name of each column),
    ``counts`` [n_bins] (frames with a minimum per bin), ``edges`` [n_bins + 1] (K).
    Unpacks as ``T_centres, occupancy``.
    """

    T_centres: np.ndarray
    occupancy: np.ndarray
    families: list
    counts: np.ndarray
    edges: np.ndarray = field(repr=False)

    def __iter__(self):
        return iter((self.T_centres, self.occupancy))

    def __repr__(self) -> str:
        return (f"FamilyOccupancy({len(self.T_centres)} bins {self.edges[0]:.0f}-"
                f"{self.edges[-1]:.0f} K, families {self.families}, "
                f"{int(np.nansum(self.counts))} frames)")


class InherentStructureMap(BaseEstimator):
    """Landscape map of inherent structures (quenched frames), see the module docstring.

    Parameters
    ----------
    fingerprint : sklearn transformer over lists of Atoms, optional
        Fingerprint of the quenched structures (cloned); ``None``:
        :class:`~mdmlkit.landscape.fingerprints.CoulombMatrixEigenvalues`.
    landscape_map : LandscapeMap, optional
        Template of the map (cloned); ``None``: ``LandscapeMap()`` defaults.
    quench_settings : QuenchSettings, optional
        How frames are quenched when :meth:`fit` gets no ``quench_result``; ``None``:
        ``QuenchSettings()`` (FIRE + L-BFGS to 1e-3 eV/Å).
    calculator : "asap3" | "ase" | ASE calculator | zero-argument factory
        Potential of the quench (:func:`~mdmlkit.landscape.minima.quench`).
    energy_tol, fingerprint_tol : float
        Tolerances (eV, Å) of :func:`~mdmlkit.landscape.minima.deduplicate_minima`.
    n_jobs : int
        Worker processes of the quench.
    progress : bool
        tqdm progress bar of the quench.
    basins_by_minimum : bool
        Give all frames of one minimum the basin most of them have (module docstring).

    Attributes
    ----------
    quench_result_ : QuenchResult
    minima_ : DistinctMinima
    minimum_ids_ : int array [n_frames]
        Minimum of each frame (-1: flagged quench).
    morphology_ : list of str [n_frames]
        Morphology of each frame's minimum (:data:`FLAGGED` for flagged frames).
    map_ : LandscapeMap
        Fitted on the frames with a minimum.
    labels_ : int array [n_frames]
        Basin of each frame (-1: flagged quench).
    map_labels_ : int array [n_frames]
        ``map_.labels_`` per frame before the vote over minima (-1: flagged quench).
    fingerprints_ : float array [n_valid, n_features]
    ari_ : float
        Adjusted Rand index between ``labels_`` and the morphology classes over the frames
        with a minimum.
    scores_ : dict
        :func:`map_scores` of the map.
    """

    def __init__(self, fingerprint: Any = None, landscape_map: LandscapeMap | None = None,
                 quench_settings: QuenchSettings | None = None, calculator: Any = "asap3",
                 energy_tol: float = 1e-3, fingerprint_tol: float = 0.02, n_jobs: int = 1,
                 progress: bool = True, basins_by_minimum: bool = True):
        self.fingerprint = fingerprint
        self.landscape_map = landscape_map
        self.quench_settings = quench_settings
        self.calculator = calculator
        self.energy_tol = energy_tol
        self.fingerprint_tol = fingerprint_tol
        self.n_jobs = n_jobs
        self.progress = progress
        self.basins_by_minimum = basins_by_minimum

    def fit(self, frames: Sequence[Atoms], quench_result: QuenchResult | None = None,
            y: Any = None) -> InherentStructureMap:
        """Quench ``frames`` (or take ``quench_result`` of the same frames), merge and
        classify the minima, fingerprint the quenched structures and fit the map."""
        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError("InherentStructureMap.fit: no frames")
        if quench_result is None:
            st = self.quench_settings or QuenchSettings()
            if not isinstance(st, QuenchSettings):
                raise InputError("InherentStructureMap: quench_settings must be a QuenchSettings, "
                                 f"got {type(st).__name__}")
            quench_result = quench(frames, self.calculator, n_jobs=self.n_jobs,
                                   progress=self.progress, **asdict(st))
        elif not isinstance(quench_result, QuenchResult):
            raise InputError("InherentStructureMap.fit: quench_result must be a QuenchResult, "
                             f"got {type(quench_result).__name__}")
        if len(quench_result) != len(frames):
            raise InconsistentFramesError(
                f"InherentStructureMap.fit: {len(frames)} frames but the quench result has "
                f"{len(quench_result)}")
        self.quench_result_ = quench_result
        self.minima_ = deduplicate_minima(quench_result, self.energy_tol, self.fingerprint_tol)
        ids = np.asarray(self.minima_.frame_minimum, dtype=np.int64)
        self.minimum_ids_ = ids
        self.morphology_ = [self.minima_.morphologies[m] if m >= 0 else FLAGGED for m in ids]
        valid = np.flatnonzero(ids >= 0)
        if not len(valid):
            raise EmptyTrajectoryError("InherentStructureMap.fit: no frame converged to a minimum "
                                       f"({quench_result!r})")
        fp = clone(self.fingerprint) if self.fingerprint is not None else CoulombMatrixEigenvalues()
        self.fingerprint_ = fp
        self.fingerprints_ = np.asarray(
            fp.fit_transform([quench_result.structures[k] for k in valid]), dtype=np.float64)
        template = self.landscape_map if self.landscape_map is not None else LandscapeMap()
        self.map_ = clone(template).fit(self.fingerprints_,
                                        energies=np.asarray(quench_result.energies)[valid])
        self.map_labels_ = np.full(len(frames), -1, dtype=np.int64)
        self.map_labels_[valid] = self.map_.labels_
        self.labels_ = self.map_labels_.copy()
        if self.basins_by_minimum:
            for m in np.unique(ids[valid]):
                members = np.flatnonzero(ids == m)
                self.labels_[members] = np.bincount(self.map_labels_[members]).argmax()
        self.scores_ = map_scores(self.labels_, self.morphology_)
        self.ari_ = self.scores_["ari"]
        self.n_frames_ = len(frames)
        return self

    def family_occupancy(self, temperatures: Any, bins: int | Sequence[float] = 20
                         ) -> FamilyOccupancy:
        """Fraction of the frames with a minimum in each morphology family per temperature
        bin (``temperatures`` [n_frames], K; ``bins``: a count or the edges, K), via
        :func:`~mdmlkit.landscape.transitions.basin_occupancy`."""
        self._check_fitted()
        T = np.asarray(temperatures, dtype=np.float64)
        if T.shape != (self.n_frames_,):
            raise InconsistentFramesError(
                f"family_occupancy: {T.shape} temperatures for {self.n_frames_} frames")
        codes = morphology_codes(self.morphology_)
        ok = codes >= 0
        occ = basin_occupancy(codes[ok], T[ok], bins)
        return FamilyOccupancy(occ.T_centres, occ.occupancy,
                               [MORPHOLOGIES[int(c)] for c in occ.basins], occ.counts, occ.edges)

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            from sklearn.exceptions import NotFittedError
            raise NotFittedError("InherentStructureMap is not fitted; call fit(frames) first")

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        params = super().__repr__(N_CHAR_MAX)
        if not hasattr(self, "labels_"):
            return params
        s = self.scores_
        return (f"{params} fitted on {self.n_frames_} frames: {len(self.minima_)} minima, "
                f"{s['n_basins']} basins, {s['n_families']} families "
                f"({s['n_separated']} separated: {s['separated']}), ARI {self.ari_:.3f}")


def compare_with_instantaneous(ism: InherentStructureMap, frames: Sequence[Atoms],
                               return_maps: bool = False) -> dict[str, Any]:
    """Inherent-structure map versus the instantaneous-frame map of the same frames.

    The instantaneous map is the same fingerprint and map template fitted on the hot
    ``frames`` themselves (energies ``atoms.info["E_pot"]`` when present), i.e. today's
    :class:`~mdmlkit.landscape.LandscapeMap` workflow.  Both are scored by :func:`map_scores`
    against the morphology classes of ``ism`` on the frames with a minimum.

    Returns ``{"inherent": scores, "instantaneous": scores}`` (plus ``"instantaneous_map"``
    when ``return_maps``).
    """
    ism._check_fitted()
    frames = list(frames)
    if len(frames) != ism.n_frames_:
        raise InconsistentFramesError(
            f"compare_with_instantaneous: {len(frames)} frames but the map was fitted on "
            f"{ism.n_frames_}")
    fp = clone(ism.fingerprint_)
    X = fp.fit_transform(frames)
    e = [a.info.get("E_pot") for a in frames]
    energies = np.asarray(e, dtype=np.float64) if all(
        v is not None and math.isfinite(v) for v in e) else None
    template = ism.landscape_map if ism.landscape_map is not None else LandscapeMap()
    inst = clone(template).fit(X, energies=energies)
    out: dict[str, Any] = {"inherent": ism.scores_,
                           "instantaneous": map_scores(inst.labels_, ism.morphology_)}
    if return_maps:
        out["instantaneous_map"] = inst
    return out
