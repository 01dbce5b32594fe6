"""MD trajectories on disk: the per-frame ``atoms.info`` keys, reading and tabulating.

Frames written by :func:`mdmlkit.md.heating.heat`, :func:`mdmlkit.md.runs.run_md` and
:func:`mdmlkit.md.lammps.heat_lammps` carry, in ``atoms.info``:

=============  ==========================================================
``step``       MD step of the frame (0 = initial Maxwell–Boltzmann state)
``time_fs``    ``step * timestep_fs`` (fs)
``T_target``   thermostat target temperature at this step (K)
``T_kinetic``  instantaneous kinetic temperature, 3N degrees of freedom (K)
``E_pot``      potential energy (eV)
``E_tot``      potential + kinetic energy (eV)
``run_id``     run name (str), ``seed`` (int), ``n_atoms`` (int)
=============  ==========================================================
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from mdmlkit.errors import EmptyTrajectoryError, MalformedFileError, MissingFileError, MissingLabelError, NonFiniteError
from mdmlkit.utils import PathLike, check_frames

__all__ = ["INFO_KEYS", "read_trajectory", "frame_table"]

#: Per-frame ``atoms.info`` keys written by the MD drivers of :mod:`mdmlkit.md`.
INFO_KEYS = ("step", "time_fs", "T_target", "T_kinetic", "E_pot", "E_tot", "run_id", "seed",
             "n_atoms")



def read_trajectory(path: PathLike, min_frames: int = 1, same_size: bool = True) -> list[Atoms]:
    """Read an extxyz trajectory (e.g. written by :func:`mdmlkit.md.heating.heat`) with clear errors.

    Raises
    ------
    FileNotFoundError
        No such file.
    EmptyTrajectoryError
        Fewer than ``min_frames`` frames (an empty file has none).
    MalformedFileError
        The file cannot be parsed as extxyz (names the file).
    NonFiniteError
        NaN/inf positions or energies (names the frame and atoms).
    InconsistentFramesError
        Frames of different sizes when ``same_size``.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such trajectory file")
    size = path.stat().st_size
    if size == 0 or (size < 65536 and not path.read_bytes().strip()):
        raise EmptyTrajectoryError(f"{path}: empty file, no frames")
    try:
        frames = ase.io.read(path, ":", format="extxyz")
    except Exception as e:  # noqa: BLE001 - ASE raises many types on bad files
        raise MalformedFileError(f"not a readable extxyz trajectory: {type(e).__name__}: {e}",
                                 path=str(path)) from e
    check_frames(frames, source=str(path), min_frames=min_frames, same_size=same_size)
    for k, f in enumerate(frames):
        for key in ("E_pot", "E_tot", "T_kinetic"):
            v = f.info.get(key)
            try:
                finite = v is None or bool(np.isfinite(float(v)))
            except (TypeError, ValueError):
                raise MalformedFileError(f"frame {k}: {key} = {v!r} is not a number",
                                         path=str(path)) from None
            if not finite:
                raise NonFiniteError(f"{path}: frame {k} has {key} = {v}")
    return frames


def frame_table(frames: Sequence[Atoms]) -> dict[str, np.ndarray]:
    """Per-frame columns of :data:`INFO_KEYS` as arrays (``run_id`` as str array).

    Raises :class:`EmptyTrajectoryError` for no frames and
    :class:`MissingLabelError` naming the first frame that lacks a key.
    """
    if len(frames) == 0:
        raise EmptyTrajectoryError("frame_table: no frames")
    out: dict[str, np.ndarray] = {}
    for key in INFO_KEYS:
        vals = []
        for k, f in enumerate(frames):
            if key not in f.info:
                raise MissingLabelError(f"frame {k} (run {f.info.get('run_id', '?')}) has no "
                                        f"info[{key!r}]; was it written by an mdmlkit.md driver?")
            vals.append(f.info[key])
        if key == "run_id":
            out[key] = np.asarray([str(v) for v in vals])
        elif key in ("step", "seed", "n_atoms"):
            out[key] = np.asarray(vals, dtype=np.int64)
        else:
            out[key] = np.asarray(vals, dtype=float)
    return out
