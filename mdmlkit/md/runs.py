"""Plain MD runs at constant temperature (NVT), constant energy (NVE) or constant pressure (NPT).

:func:`run_md` uses the same driver as :func:`mdmlkit.md.heating.heat` (frames with the
``atoms.info`` keys of :mod:`mdmlkit.md.trajectory`, optional extxyz trajectory with
checkpoints and resume, progress bar), with a constant target temperature.  Under NPT
every frame also carries its cell, so ``result.volumes()`` gives V(t) in Å³.

>>> res = run_md(atoms, calc, "npt", temperature_K=900, steps=1000)   # doctest: +SKIP
>>> a = (res.volumes()[len(res.frames) // 2:] / n_cells) ** (1 / 3)  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ase import Atoms

from mdmlkit.errors import InputError
from mdmlkit.md.engine import (
    ASEEngine,
    Barostat,
    MDResult,
    Protocol,
    calculator_factory,
    default_run_id,
    drive,
    prepare_atoms,
    structure_hash,
)
from mdmlkit.utils import PathLike, check_elements

__all__ = ["ENSEMBLES", "run_md"]

#: Ensembles of :func:`run_md`.
ENSEMBLES = ("nvt", "nve", "npt")
_NVT_THERMOSTATS = ("langevin", "bussi")


def run_md(atoms: Atoms, calculator: Any, ensemble: str = "nvt", temperature_K: float = 300.0,
           steps: int = 1000, timestep_fs: float = 2.0, sample_every: int = 10,
           thermostat: str = "langevin", friction: float = 0.01,
           barostat: Barostat | None = None, initial_temperature_K: float | None = None,
           seed: int = 0, trajectory: PathLike | None = None, checkpoint_every: int = 50,
           resume: bool = True, progress: bool = True, run_id: str | None = None,
           callback: Callable[[Atoms], Any] | None = None) -> MDResult:
    """Run ``steps`` MD steps of ``atoms`` in one ensemble and sample frames.

    Parameters
    ----------
    atoms : ase.Atoms
        Start structure (not modified); a cluster without a cell is boxed as in
        :func:`mdmlkit.md.heating.heat`.
    calculator : calculator | zero-argument factory | "asap3" | "ase"
        Potential (names: Cu EMT); NPT needs one that returns the stress.
    ensemble : {"nvt", "nve", "npt"}
        ``"nvt"``: ``thermostat`` ("langevin", friction ``friction`` 1/fs, or "bussi",
        time constant ``1/friction`` fs); ``"nve"``: velocity Verlet (``T_target`` is
        nominal); ``"npt"``: ASE ``NPTBerendsen`` with ``taut = 1/friction`` fs and the
        ``barostat`` settings (default :class:`~mdmlkit.md.engine.Barostat`: 0 GPa,
        ``taup`` 500 fs, compressibility 1/200 GPa⁻¹).
    temperature_K : float
        Target (and, by default, initial Maxwell–Boltzmann) temperature, K.
    steps : int
        MD steps; frames at steps 0, ``sample_every``, …, ``steps``.
    timestep_fs : float
        Time step, fs.
    initial_temperature_K : float, optional
        Temperature of the initial velocities, K (e.g. ``2 * temperature_K`` from a
        0 K crystal, since about half the kinetic energy flows into E_pot).
    seed, trajectory, checkpoint_every, resume, progress, run_id, callback
        As in :func:`mdmlkit.md.heating.heat`.

    Raises
    ------
    InputError
        Unknown ensemble or thermostat, non-positive steps or temperatures.
    UnknownElementError, NonFiniteError, CheckpointMismatchError
        As :func:`mdmlkit.md.heating.heat`.
    """
    if ensemble not in ENSEMBLES:
        raise InputError(f"unknown ensemble {ensemble!r}; choose from {ENSEMBLES}")
    if ensemble == "nvt" and thermostat not in _NVT_THERMOSTATS:
        raise InputError(f"unknown NVT thermostat {thermostat!r}; choose from {_NVT_THERMOSTATS}")
    if int(steps) < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    if ensemble != "npt" and barostat is not None:
        raise InputError(f"a barostat needs ensemble='npt', got {ensemble!r}")
    if initial_temperature_K is not None and not initial_temperature_K > 0:
        raise InputError(f"initial_temperature_K must be positive, got {initial_temperature_K}")
    kind = {"nvt": thermostat, "nve": "nve", "npt": "npt"}[ensemble]
    a = prepare_atoms(atoms)
    if ensemble == "npt" and not a.pbc.all():
        raise InputError("atoms: NPT needs a periodic cell (pbc in all directions)")
    factory, instance = calculator_factory(calculator)
    check_elements([a], instance, "atoms", owner="the potential")
    rid = run_id if run_id is not None else default_run_id(a, seed)
    proto = Protocol.build(temperature_K, temperature_K, None, int(steps) * timestep_fs / 1000.0,
                           timestep_fs, sample_every, checkpoint_every, seed, rid, friction, kind)
    baro = (barostat or Barostat()) if ensemble == "npt" else None
    params = dict(proto.as_dict(), engine="ase", calculator=type(instance).__name__,
                  structure=structure_hash(a))
    if initial_temperature_K is not None:
        params["initial_temperature_K"] = float(initial_temperature_K)
    if baro is not None:
        params.update(pressure_GPa=baro.pressure_GPa, taup_fs=baro.taup_fs,
                      compressibility_per_GPa=baro.compressibility_per_GPa)
    engine = ASEEngine(a, factory, instance, proto, initial_T=initial_temperature_K, barostat=baro)
    return drive(engine, proto, params, a, trajectory, resume, progress, None, callback)
