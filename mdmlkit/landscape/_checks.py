"""Input validation shared by the landscape modules (frames, feature matrices, per-frame values).

A private module of :mod:`mdmlkit.landscape`: its functions are imported by the sibling
modules and are not part of the public API.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError
from mdmlkit.utils import check_frames

#: Fewest frames a landscape map accepts (t-SNE, DBSCAN and the kNN steps need a few).
MIN_FRAMES = 10


def check_features(X: Any, source: str, min_frames: int = MIN_FRAMES,
                   n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a float64 ``[n_frames, n_features]`` array, or raise.

    Raises :class:`EmptyTrajectoryError` for fewer than ``min_frames`` rows,
    :class:`NonFiniteError` naming the first row (frame) with NaN/inf and
    :class:`InconsistentFramesError` when the width differs from ``n_features``.
    """
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: X is not a numeric [n_frames, n_features] array ({exc})") from None
    if X.ndim == 1 and n_features is not None and X.shape[0] == n_features:
        X = X[None, :]
    if X.ndim != 2:
        raise InputError(f"{source}: X must be 2-D [n_frames, n_features], got shape {X.shape}")
    if X.shape[0] < min_frames:
        raise EmptyTrajectoryError(
            f"{source}: {X.shape[0]} frame(s), at least {min_frames} needed for a landscape map")
    if n_features is not None and X.shape[1] != n_features:
        raise InconsistentFramesError(
            f"{source}: X has {X.shape[1]} features per frame, the map was fitted on {n_features}")
    finite = np.isfinite(X)
    if not finite.all():
        row = int(np.nonzero(~finite.all(axis=1))[0][0])
        cols = np.nonzero(~finite[row])[0]
        raise NonFiniteError(f"{source}: row {row} (frame {row}) of X has non-finite value(s) "
                             f"in column(s) {cols[:10].tolist()}")
    return X


def check_embedding(embedding: Any, source: str, min_frames: int = 2) -> np.ndarray:
    """Return a finite float64 ``[n, 2]`` map (or raise like :func:`check_features`)."""
    Y = check_features(embedding, source, min_frames=min_frames)
    if Y.shape[1] != 2:
        raise InputError(f"{source}: embedding must be [n_frames, 2], got shape {Y.shape}")
    return Y


def check_values(values: Any, n: int, source: str, name: str = "energies") -> np.ndarray:
    """Return per-frame ``values`` as float64 ``[n]``; raise naming the bad frame."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.shape[0] != n:
        raise InconsistentFramesError(
            f"{source}: {name} has shape {v.shape}, expected one value per frame ({n},)")
    bad = ~np.isfinite(v)
    if bad.any():
        k = int(np.argmax(bad))
        raise NonFiniteError(f"{source}: {name}[{k}] (frame {k}) is {v[k]}")
    return v


def check_labels(labels: Any, n: int | None, source: str, name: str = "labels") -> np.ndarray:
    """Return integer labels ``[n]`` (``-1`` = noise)."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or (n is not None and lab.shape[0] != n):
        raise InconsistentFramesError(
            f"{source}: {name} has shape {lab.shape}, expected one label per frame ({n},)")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        as_int = lab.astype(np.int64)
        if not np.array_equal(as_int, lab):
            raise InputError(f"{source}: {name} must be integers")
        lab = as_int
    return lab.astype(np.int64)


def check_atoms_list(frames: Sequence[Atoms] | Atoms, source: str) -> list[Atoms]:
    """Return ``frames`` (one ``ase.Atoms`` or a sequence of them) as a list, or raise.

    Raises :class:`InputError` naming the first frame that is not an ``ase.Atoms`` and
    the errors of :func:`mdmlkit.utils.check_frames` (no frames, non-finite positions).
    """
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    for k, a in enumerate(frames):
        if not isinstance(a, Atoms):
            raise InputError(f"{source}: frame {k} is {type(a).__name__}, not ase.Atoms")
    check_frames(frames, source=source)
    return frames
