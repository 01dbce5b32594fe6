"""Molecular dynamics: heating ramps and plain NVT/NVE/NPT runs, with ASE/asap3 or LAMMPS engines.

* :mod:`.engine` — the run driver shared by all engines (:class:`Protocol`, checkpoints
  and resume, :class:`MDResult`, the ASE engine, :class:`Barostat`).
* :mod:`.heating` — :func:`heat` (linear temperature ramps), :func:`heat_many`,
  :class:`HeatingSettings`.
* :mod:`.runs` — :func:`run_md` (constant temperature, constant energy or constant pressure).
* :mod:`.trajectory` — :data:`INFO_KEYS` (``step``, ``time_fs``, ``T_target`` … in
  ``atoms.info``), :func:`read_trajectory`, :func:`frame_table`.
* :mod:`.analysis` — :func:`partial_rdfs`.
* :mod:`.lammps` — the heating protocol run inside LAMMPS (:func:`heat_lammps`).
* :mod:`.lammps_hdnnp` — mdmlkit HDNNPs in LAMMPS (``pair_style mdmlkit`` plugin):
  :func:`build_plugin`, :func:`lammps_hdnnp_evaluate`, :func:`run_lammps_nvt`.
"""
from mdmlkit.md.analysis import partial_rdfs
from mdmlkit.md.engine import ASEEngine, Barostat, Engine, MDResult, Protocol, RunFiles, drive, prepare_atoms
from mdmlkit.md.heating import THERMOSTATS, HeatingSettings, heat, heat_many
from mdmlkit.md.lammps import find_potential, heat_lammps, lammps_available
from mdmlkit.md.lammps_hdnnp import build_plugin, lammps_hdnnp_evaluate, run_lammps_nvt, write_lammps_inputs
from mdmlkit.md.runs import ENSEMBLES, run_md
from mdmlkit.md.trajectory import INFO_KEYS, frame_table, read_trajectory

__all__ = [
    "ASEEngine", "Barostat", "Engine", "MDResult", "Protocol", "RunFiles", "drive", "prepare_atoms",
    "THERMOSTATS", "HeatingSettings", "heat", "heat_many", "ENSEMBLES", "run_md",
    "INFO_KEYS", "frame_table", "read_trajectory", "partial_rdfs",
    "find_potential", "heat_lammps", "lammps_available",
    "build_plugin", "lammps_hdnnp_evaluate", "run_lammps_nvt", "write_lammps_inputs",
]
