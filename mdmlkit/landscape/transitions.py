"""Basins versus temperature: leaving the start basin, occupancy, the amorphous zone.

Per-frame basin labels (e.g. ``LandscapeMap.labels_`` of
:class:`mdmlkit.landscape.LandscapeMap`) are integer arrays aligned with the
frames' temperatures (K); several runs are given as lists of arrays, one per run.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mdmlkit.errors import InputError, NonFiniteError
from mdmlkit.landscape._binning import bin_mean, digitize, paired_runs, temperature_edges
from mdmlkit.landscape.thermo import LindemannResult

__all__ = [
    "Transitions", "BasinOccupancy", "AmorphousZone", "transition_temperatures",
    "basin_occupancy", "amorphous_zone",
]


@dataclass
class Transitions:
    """First persistent departure of each run from its starting basin.

    Attributes
    ----------
    T : temperature of departure per run, K (NaN: never left)
    frame : frame index of departure per run (-1: never left)
    start_label, new_label : basin before / right after departure per run
    min_frames : frames the departure had to last
    """

    T: np.ndarray
    frame: np.ndarray
    start_label: np.ndarray
    new_label: np.ndarray
    min_frames: int

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.T)) if np.isfinite(self.T).any() else float("nan")

    @property
    def std(self) -> float:
        return float(np.nanstd(self.T)) if np.isfinite(self.T).any() else float("nan")

    def __repr__(self) -> str:
        left = int(np.isfinite(self.T).sum())
        return (f"Transitions({len(self.T)} runs, {left} left their start basin, "
                f"T = {self.mean:.0f} ± {self.std:.0f} K, min_frames={self.min_frames})")


def transition_temperatures(labels: Any, temperatures: Any, start_label: int | None = None,
                            min_frames: int = 5) -> Transitions:
    """Temperature at which each run leaves its starting basin for good.

    Parameters
    ----------
    labels : int array [frames] or list of them (one per run)
        Basin label of every frame (e.g. DBSCAN clusters, -1 = noise).
    temperatures : array(s) aligned with ``labels``, K
    start_label : int, optional
        Basin to leave; default each run's first frame label.
    min_frames : int
        The departure counts only if the run stays outside the start basin
        for at least this many consecutive frames (filters brief excursions).
        The reported temperature is that of the first of those frames.
    """
    L, T = paired_runs(labels, temperatures)
    if int(min_frames) < 1:
        raise InputError(f"min_frames must be >= 1, got {min_frames}")
    m = int(min_frames)
    out_T, out_f, out_s, out_n = [], [], [], []
    for l, t in zip(L, T):
        s = l[0] if start_label is None else start_label
        away = (l != s).astype(np.int64)
        if len(away) >= m:
            run = np.convolve(away, np.ones(m, np.int64), mode="valid")  # run[i] = sum away[i:i+m]
            hit = np.flatnonzero(run == m)
        else:
            hit = np.array([], int)
        if hit.size:
            k = int(hit[0])
            out_T.append(float(t[k]))
            out_f.append(k)
            out_n.append(l[k])
        else:
            out_T.append(np.nan)
            out_f.append(-1)
            out_n.append(s)
        out_s.append(s)
    return Transitions(np.array(out_T), np.array(out_f), np.array(out_s), np.array(out_n), m)


@dataclass
class BasinOccupancy:
    """Fraction of frames in each basin per temperature bin.

    ``T_centres`` [n_bins] (K), ``occupancy`` [n_bins, n_basins] (rows sum to 1;
    NaN for bins without frames), ``basins`` (label of each column), ``counts``
    [n_bins].  Unpacks as ``T_centres, occupancy = basin_occupancy(...)``.
    """

    T_centres: np.ndarray
    occupancy: np.ndarray
    basins: np.ndarray
    counts: np.ndarray
    edges: np.ndarray = field(repr=False)

    def __iter__(self):
        return iter((self.T_centres, self.occupancy))

    def dominant(self) -> np.ndarray:
        """Most occupied basin label per bin (-2 for empty bins)."""
        ok = self.counts > 0
        out = np.full(len(self.counts), -2, dtype=self.basins.dtype if self.basins.size else int)
        out[ok] = self.basins[np.nanargmax(self.occupancy[ok], axis=1)]
        return out

    def __repr__(self) -> str:
        return (f"BasinOccupancy({len(self.T_centres)} bins "
                f"{self.edges[0]:.0f}-{self.edges[-1]:.0f} K, {len(self.basins)} basins "
                f"{self.basins.tolist()[:8]}{'...' if len(self.basins) > 8 else ''}, "
                f"{int(self.counts.sum())} frames)")


def basin_occupancy(labels: Any, temperatures: Any, bins: int | Sequence[float] = 20
                    ) -> BasinOccupancy:
    """Occupancy of each basin (label) versus temperature, pooled over runs.

    ``bins`` is a number of equal bins over the temperature range or the bin
    edges (K).  Returns a :class:`BasinOccupancy` (unpacks to
    ``(T_centres, occupancy)``).
    """
    L, T = paired_runs(labels, temperatures)
    l_all, t_all = np.concatenate(L), np.concatenate(T)
    edges = temperature_edges(t_all, bins)
    basins, col = np.unique(l_all, return_inverse=True)
    idx = digitize(t_all, edges)
    ok = (idx >= 0) & (idx < len(edges) - 1)
    nb = len(edges) - 1
    hist = np.zeros((nb, len(basins)))
    np.add.at(hist, (idx[ok], col[ok]), 1.0)
    counts = hist.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        occ = hist / counts[:, None]
    return BasinOccupancy(0.5 * (edges[1:] + edges[:-1]), occ, basins, counts, edges)


@dataclass
class AmorphousZone:
    """Temperature range in which frames are amorphous/liquid.

    ``T_onset`` (K): lowest bin centre from which on every bin has an amorphous
    fraction ≥ ``min_fraction`` (NaN: never); ``T_max`` the highest
    temperature seen; ``fraction`` per bin at ``T_centres``.
    """

    T_onset: float
    T_max: float
    T_centres: np.ndarray
    fraction: np.ndarray
    method: str
    min_fraction: float

    def __repr__(self) -> str:
        zone = (f"{self.T_onset:.0f}-{self.T_max:.0f} K" if np.isfinite(self.T_onset)
                else "none")
        return f"AmorphousZone({zone}, method={self.method!r}, min_fraction={self.min_fraction})"


def amorphous_zone(temperatures: Any = None, labels: Any = None,
                   amorphous_labels: Sequence[int] = (-1,),
                   lindemann: LindemannResult | None = None, threshold: float = 0.1,
                   bins: int | Sequence[float] = 20, min_fraction: float = 0.5) -> AmorphousZone:
    """Temperature range above which the cluster is amorphous/liquid.

    Either from basin ``labels`` (frames whose label is in ``amorphous_labels``,
    e.g. DBSCAN noise -1 or a "liquid" basin, count as amorphous) with their
    ``temperatures``, or from a :class:`LindemannResult` (windows with
    ``δ ≥ threshold`` are amorphous).  The amorphous fraction is binned in T
    (``bins``: count or edges, K); the zone starts at the first bin from which
    on every non-empty bin has fraction ≥ ``min_fraction``.
    """
    if lindemann is not None:
        t_all = np.asarray(lindemann.T, float)
        if not np.isfinite(t_all).all():
            raise NonFiniteError("lindemann result has no temperatures; pass temperatures=")
        flag = (lindemann.delta >= threshold).astype(float)
        method = f"Lindemann delta >= {threshold:g}"
    elif labels is not None and temperatures is not None:
        L, T = paired_runs(labels, temperatures)
        t_all = np.concatenate(T)
        flag = np.isin(np.concatenate(L), np.asarray(amorphous_labels)).astype(float)
        method = f"labels in {tuple(amorphous_labels)}"
    else:
        raise InputError("amorphous_zone needs labels and temperatures, or a LindemannResult")
    edges = temperature_edges(t_all, bins)
    frac, cnt = bin_mean(flag, digitize(t_all, edges), len(edges) - 1)
    keep = cnt > 0
    centres, frac = 0.5 * (edges[1:] + edges[:-1])[keep], frac[keep]
    below = np.flatnonzero(frac < min_fraction)
    if below.size == 0:
        onset = float(centres[0])
    elif below[-1] == len(frac) - 1:
        onset = float("nan")
    else:
        onset = float(centres[below[-1] + 1])
    return AmorphousZone(onset, float(t_all.max()), centres, frac, method, float(min_fraction))
