"""On-disk pools of unlabelled frames, read lazily.

A user's candidate pool is a large, redundant set of MD frames.  :class:`FramePool`
keeps it on disk as one compressed ``.npz`` file or a folder of ``.npz`` chunks and
builds :class:`ase.Atoms` only for the frames asked for; the per-frame ``info``
columns (e.g. ``kind``, ``T``, ``source``) are read without touching any positions.

Chunk format (written by :meth:`FramePool.write`, one file per chunk):

* ``numbers`` int16 [n_atoms_total], ``positions`` float32 [n_atoms_total, 3] (Å),
  ``offsets`` int64 [n_frames + 1] (frame ``i`` is atoms ``offsets[i]:offsets[i+1]``),
  ``cells`` float64 [n_frames, 3, 3] (Å), ``pbc`` bool [n_frames, 3];
* ``info__<name>`` [n_frames]: one array per ``info`` column.

Positions are stored in float32 (about 1e-6 Å at 10 Å from the origin); the frames a
pool returns are always the same float64 values, so structure hashes are stable.

>>> pool = FramePool("data/la2zr2o7_pool")          # doctest: +SKIP
>>> len(pool), pool.info["T"][:3], pool[10], pool[np.array([1, 5])]  # doctest: +SKIP

:class:`~mdmlkit.active.loop.ActiveLearningLoop` accepts a pool as its ``pool`` (a
``Sequence`` of Atoms); it copies every frame into memory once (about 1 kB per
22-atom frame), which is small next to descriptors with gradients.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mdmlkit.errors import (
    EmptyTrajectoryError,
    InputError,
    MalformedFileError,
    MissingFileError,
    PoolIndexError,
)
from mdmlkit.utils import PathLike, atomic_path

__all__ = ["FramePool"]

_INFO = "info__"
_REQUIRED = ("numbers", "positions", "offsets", "cells", "pbc")


class FramePool(Sequence):
    """A read-only, lazily loaded pool of unlabelled frames on disk.

    Parameters
    ----------
    path : path-like
        A chunk file (``.npz``) or a folder whose ``*.npz`` files (sorted by name)
        are the chunks, in order.
    cache_chunks : int
        How many decoded chunks to keep in memory (least recently used dropped).

    Attributes
    ----------
    paths : list of Path
        The chunk files.
    offsets_ : ndarray of int
        Global index of each chunk's first frame (length ``n_chunks + 1``).

    Indexing with an int gives an :class:`ase.Atoms` (``info`` filled from the
    columns plus ``pool_index``); with a slice or an integer array, a list.

    Raises
    ------
    MissingFileError
        ``path`` does not exist or holds no ``.npz`` chunk.
    MalformedFileError
        A chunk lacks an array or has inconsistent lengths (names the file).
    """

    def __init__(self, path: PathLike, cache_chunks: int = 2):
        self.path = Path(path)
        if self.path.is_dir():
            self.paths = sorted(p for p in self.path.glob("*.npz") if not p.name.startswith("."))
        elif self.path.is_file():
            self.paths = [self.path]
        else:
            raise MissingFileError(f"{self.path}: no such pool file or folder")
        if not self.paths:
            raise MissingFileError(f"{self.path}: no .npz pool chunks in this folder")
        self.cache_chunks = max(1, int(cache_chunks))
        counts, columns = [], None
        for p in self.paths:
            with self._open(p) as z:
                names = set(z.files)
                missing = [k for k in _REQUIRED if k not in names]
                if missing:
                    raise MalformedFileError(f"pool chunk lacks array(s) {missing}", path=str(p))
                n = len(z["offsets"]) - 1
                cols = sorted(k[len(_INFO):] for k in names if k.startswith(_INFO))
            if columns is None:
                columns = cols
            elif cols != columns:
                raise MalformedFileError(f"info columns {cols} differ from the first chunk's "
                                         f"{columns}", path=str(p))
            counts.append(n)
        self.columns = columns or []
        self.offsets_ = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if self.offsets_[-1] == 0:
            raise EmptyTrajectoryError(f"{self.path}: the pool holds no frames")
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._info: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _open(path: Path):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise MalformedFileError(f"cannot read pool chunk: {exc}", path=str(path)) from exc

    def _chunk(self, c: int) -> dict[str, np.ndarray]:
        data = self._cache.pop(c, None)
        if data is None:
            with self._open(self.paths[c]) as z:
                data = {k: z[k] for k in _REQUIRED}
            n = len(data["offsets"]) - 1
            if (data["cells"].shape != (n, 3, 3) or data["pbc"].shape != (n, 3)
                    or not data["offsets"][-1] == len(data["numbers"]) == len(data["positions"])):
                raise MalformedFileError("inconsistent array lengths in pool chunk", path=str(self.paths[c]))
            while len(self._cache) >= self.cache_chunks:
                self._cache.pop(next(iter(self._cache)))
        self._cache[c] = data            # most recently used last
        return data

    @property
    def info(self) -> dict[str, np.ndarray]:
        """The ``info`` columns of all frames (read once; positions are not loaded)."""
        if self._info is None:
            cols: dict[str, list[np.ndarray]] = {k: [] for k in self.columns}
            for p in self.paths:
                with self._open(p) as z:
                    for k in self.columns:
                        cols[k].append(z[_INFO + k])
            self._info = {k: np.concatenate(v) for k, v in cols.items()}
        return self._info

    @property
    def n_chunks(self) -> int:
        return len(self.paths)

    def __len__(self) -> int:
        return int(self.offsets_[-1])

    def __repr__(self) -> str:
        return (f"FramePool({str(self.path)!r}, n_frames={len(self)}, n_chunks={self.n_chunks}, "
                f"columns={self.columns})")

    def _frame(self, i: int) -> Atoms:
        c = int(np.searchsorted(self.offsets_, i, side="right") - 1)
        d = self._chunk(c)
        j = i - int(self.offsets_[c])
        a, b = int(d["offsets"][j]), int(d["offsets"][j + 1])
        atoms = Atoms(numbers=d["numbers"][a:b].astype(int),
                      positions=d["positions"][a:b].astype(np.float64),
                      cell=d["cells"][j], pbc=d["pbc"][j])
        info = self.info
        for k in self.columns:
            v = info[k][i]
            atoms.info[k] = v.item() if hasattr(v, "item") else v
        atoms.info["pool_index"] = int(i)
        return atoms

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, slice):
            return [self._frame(i) for i in range(*index.indices(n))]
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -n <= i < n:
                raise PoolIndexError(f"pool index {index} out of range for {n} frames")
            return self._frame(i % n)
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise InputError(f"boolean pool mask of shape {idx.shape}, expected ({n},)")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise InputError(f"pool index must be an int, a slice or a 1-D integer/boolean array, "
                             f"got {index!r}")
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise PoolIndexError(f"pool indices out of range for {n} frames")
        return [self._frame(int(i) % n) for i in idx]

    def __iter__(self) -> Iterator[Atoms]:
        for i in range(len(self)):
            yield self._frame(i)

    def iter_chunks(self) -> Iterator[tuple[int, list[Atoms]]]:
        """Yield ``(first global index, frames)`` chunk by chunk (one chunk in memory)."""
        for c in range(self.n_chunks):
            start, stop = int(self.offsets_[c]), int(self.offsets_[c + 1])
            yield start, [self._frame(i) for i in range(start, stop)]

    # ------------------------------------------------------------------ writing
    @staticmethod
    def write(frames: Sequence[Atoms], path: PathLike, columns: Sequence[str] | None = None,
              info: Mapping[str, Sequence[Any]] | None = None) -> Path:
        """Write ``frames`` as one compressed chunk file, atomically; returns the path.

        Parameters
        ----------
        frames : sequence of ase.Atoms
            Positions (Å) are stored as float32, cells as float64; labels are dropped.
        path : path-like
            Target ``.npz`` file.
        columns : sequence of str, optional
            ``atoms.info`` keys stored as columns (default: the keys every frame has
            whose values are scalars or strings).
        info : mapping, optional
            Extra columns given directly (name -> one value per frame).
        """
        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError(f"{path}: no frames to write")
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"{path}: a pool chunk must be a .npz file")
        if columns is None:
            common = set.intersection(*(set(a.info) for a in frames)) - {"pool_index"}
            columns = sorted(k for k in common
                             if all(np.ndim(a.info[k]) == 0 for a in frames))
        arrays: dict[str, np.ndarray] = {
            "numbers": np.concatenate([a.numbers for a in frames]).astype(np.int16),
            "positions": np.concatenate([a.positions for a in frames]).astype(np.float32),
            "offsets": np.concatenate([[0], np.cumsum([len(a) for a in frames])]).astype(np.int64),
            "cells": np.stack([a.cell.array for a in frames]).astype(np.float64),
            "pbc": np.stack([a.pbc for a in frames]).astype(bool),
        }
        for k in columns:
            try:
                arrays[_INFO + k] = np.asarray([a.info[k] for a in frames])
            except KeyError as exc:
                raise InputError(f"info column {k!r} missing from a frame") from exc
        for k, v in (info or {}).items():
            v = np.asarray(v)
            if len(v) != len(frames):
                raise InputError(f"info column {k!r} has {len(v)} values for {len(frames)} frames")
            arrays[_INFO + k] = v
        for k, v in arrays.items():
            if v.dtype == object:
                raise InputError(f"column {k!r} is not a plain numeric or string array")
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        return path
