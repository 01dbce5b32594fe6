"""Per-run temperature binning shared by :mod:`.thermo` and :mod:`.transitions`.

A private module of :mod:`mdmlkit.landscape`: its functions are imported by sibling
modules and are not part of the public API.  Temperatures in K.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError


def ragged(x: Any, name: str) -> list[np.ndarray]:
    """One 1-D array or a list of 1-D arrays (one per run)."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return [x]
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return list(x)
    if isinstance(x, (list, tuple)) and len(x) and np.ndim(x[0]) == 1:
        return [np.asarray(v) for v in x]
    if isinstance(x, (list, tuple)):
        return [np.asarray(x)]
    raise InputError(f"{name}: expected an array or a list of arrays, got {type(x).__name__}")


def paired_runs(labels, temperatures) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-run label and temperature arrays, checked to match frame by frame (names the run)."""
    L, T = ragged(labels, "labels"), ragged(temperatures, "temperatures")
    if len(L) != len(T):
        raise InconsistentFramesError(f"{len(L)} label arrays but {len(T)} temperature arrays")
    for r, (l, t) in enumerate(zip(L, T)):
        if len(l) != len(t):
            raise InconsistentFramesError(
                f"run {r}: {len(l)} labels but {len(t)} temperatures (one per frame needed)")
        if len(l) == 0:
            raise EmptyTrajectoryError(f"run {r}: no frames")
        if not np.all(np.isfinite(t.astype(float))):
            raise NonFiniteError(f"run {r}: non-finite temperature at frame "
                                 f"{int(np.flatnonzero(~np.isfinite(t.astype(float)))[0])}")
    return L, [t.astype(float) for t in T]


def temperature_edges(T_all: np.ndarray, bins: int | Sequence[float] | float,
                      as_width: bool = False) -> np.ndarray:
    """Bin edges (K): ``bins`` equal bins over the range, a bin width (``as_width``) or edges."""
    if np.ndim(bins) == 0 and as_width:
        w = float(bins)
        if w <= 0:
            raise InputError(f"bin width must be positive, got {w}")
        lo, hi = np.floor(T_all.min() / w) * w, np.ceil(T_all.max() / w) * w
        return np.arange(lo, hi + 0.5 * w, w) if hi > lo else np.array([lo, lo + w])
    if np.ndim(bins) == 0:
        lo, hi = T_all.min(), T_all.max()
        return np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
    edges = np.asarray(bins, float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InputError("bins must be a count, or increasing edges (K)")
    return edges


def bin_mean(x: np.ndarray, idx: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``x`` per bin index (NaN for empty bins) and the counts."""
    ok = (idx >= 0) & (idx < n_bins)
    cnt = np.bincount(idx[ok], minlength=n_bins).astype(float)
    s = np.bincount(idx[ok], weights=x[ok], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / cnt, cnt


def digitize(T: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each temperature (-1 / len(edges)-1 outside; the right edge is in)."""
    idx = np.searchsorted(edges, T, side="right") - 1
    idx[T == edges[-1]] = len(edges) - 2   # right edge belongs to the last bin
    return idx
