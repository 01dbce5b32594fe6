"""Molecular dynamics: heating runs and plain runs, with ASE/asap3 or LAMMPS engines.

* :mod:`.heating` — :func:`heat` (linear temperature ramps, resumable, extxyz
  frames with ``step``, ``time_fs``, ``T_target`` … in ``atoms.info``),
  :func:`heat_many`, :func:`read_trajectory`, :func:`frame_table`.
* :mod:`.lammps` — the same protocol run inside LAMMPS (:func:`heat_lammps`).
"""
from mdmlkit.md.heating import (INFO_KEYS, THERMOSTATS, CheckpointMismatchError, HeatingResult, Protocol,
                                RunFiles, UnstableDynamicsError, drive, frame_table, heat, heat_many,
                                prepare_atoms, read_trajectory)
from mdmlkit.md.lammps import (LammpsUnavailableError, MissingForceFieldError, find_potential, heat_lammps,
                               lammps_available)

__all__ = [
    "INFO_KEYS", "THERMOSTATS", "CheckpointMismatchError", "HeatingResult", "Protocol", "RunFiles",
    "UnstableDynamicsError", "drive", "frame_table", "heat", "heat_many", "prepare_atoms",
    "read_trajectory", "LammpsUnavailableError", "MissingForceFieldError", "find_potential",
    "heat_lammps", "lammps_available",
]
