"""Frames on disk: extended XYZ (optionally gzipped), read with validation and written
atomically and reproducibly.  Any format :mod:`ase.io` reads works for your own data;
these two functions are what mdmlkit's data sets, drivers and scripts use."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from mdmlkit.errors import EmptyTrajectoryError, MalformedFileError, MissingFileError
from mdmlkit.utils import PathLike, atomic_path

__all__ = ["read_frames", "write_frames"]

def read_frames(path: PathLike, source: str | None = None) -> list[Atoms]:
    """Read all frames of an (optionally gzipped) extended XYZ file.

    Raises :class:`MalformedFileError` naming the file when it cannot be parsed
    and :class:`EmptyTrajectoryError` when it holds no frame.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    try:
        if path.suffix == ".gz":
            # decompress once: ASE's extxyz reader seeks back in the file, and every
            # backward seek in a gzip stream re-decompresses from the start (O(n^2))
            import gzip
            import io

            with gzip.open(path, "rt") as fh:
                frames = ase.io.read(io.StringIO(fh.read()), index=":", format="extxyz")
        else:
            frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:   # ASE raises assorted errors on bad files
        raise MalformedFileError(f"cannot parse extended XYZ: {exc}", path=str(path)) from exc
    if not frames:
        raise EmptyTrajectoryError(f"{source or path}: no frames")
    return frames


def write_frames(frames: Sequence[Atoms], path: PathLike) -> Path:
    """Write frames (with their labels and info) to extended XYZ, atomically.

    A ``.gz`` suffix gzips the file, reproducibly (no time stamp or file name in
    the gzip header, so equal frames give byte-identical files).  Returns the path.
    """
    import ase.io

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            import gzip
            import io

            text = io.StringIO()
            ase.io.write(text, list(frames), format="extxyz")
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                       mtime=0) as gz:
                gz.write(text.getvalue().encode())
        else:
            ase.io.write(tmp, list(frames), format="extxyz")
    return path
