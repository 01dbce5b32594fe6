"""Plain MD runs at constant temperature (NVT), constant energy (NVE) or constant pressure (NPT).

:func:`run_md` uses the same driver as :func:`mdmlkit.md.heating.heat` (frames with the
``atoms.info`` keys of :mod:`mdmlkit.md.trajectory`, optional extxyz trajectory with
checkpoints and resume, progress bar), with a constant target temperature.  Under NPT
every frame also carries its cell, so ``result.volumes()`` gives V(t) in Å³.

>>> res = run_md(atoms, calc, "npt", temperature_K=900, steps=1000)   # doctest: +SKIP
>>> a = (res.volumes()[len(res.frames) // 2:] / n_cells) ** (1 / 3)  # doctest: +SKIP

With an :class:`~mdmlkit.potential.HDNNPCalculator` the run counts the steps whose
symmetry functions left the training range (``result.extrapolation``), and
``max_extrapolated_fraction`` stops (or flags) a run in which too many do:

>>> res = run_md(atoms, calc, temperature_K=1500, steps=500,
...              max_extrapolated_fraction=0.1)                      # doctest: +SKIP
>>> res.complete, res.extrapolation["fraction"]                       # doctest: +SKIP
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ase import Atoms

from mdmlkit.errors import ExtrapolationWarning, InputError
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
from mdmlkit.md.heating import prepare_run_files
from mdmlkit.utils import PathLike, check_elements

__all__ = ["ENSEMBLES", "EXTRAPOLATION_ACTIONS", "MIN_STEPS_FOR_FRACTION", "run_md"]

#: Ensembles of :func:`run_md`.
ENSEMBLES = ("nvt", "nve", "npt")
_NVT_THERMOSTATS = ("langevin", "bussi")
#: What :func:`run_md` does when ``max_extrapolated_fraction`` is exceeded.
EXTRAPOLATION_ACTIONS = ("stop", "flag")
#: Calculator calls (about MD steps) before the extrapolated fraction is compared with
#: ``max_extrapolated_fraction`` (the first steps alone say little).
MIN_STEPS_FOR_FRACTION = 50


class _ExtrapolationMonitor:
    """Extrapolation counts of the calculators an :class:`ASEEngine` uses during one call.

    A factory makes a new calculator per segment: their totals are added up (each
    calculator's totals are final when the next one appears, since frames are observed
    without new calculations).  The counts of the given instance before the run are
    subtracted."""

    def __init__(self, engine, instance, max_fraction: float | None, action: str) -> None:
        self.engine = engine
        self.max_fraction = max_fraction
        self.action = action
        self.done = (0, 0)                     # totals of calculators no longer in use
        self.offset = {id(instance): self._counts(instance)}
        self.current = instance
        self.exceeded = False
        self.stopped_at: int | None = None

    @staticmethod
    def _counts(calc) -> tuple[int, int]:
        t = calc.extrapolation_report()
        return t.calls, t.calls_extrapolated

    def totals(self) -> tuple[int, int]:
        calc = self.engine.atoms.calc
        if calc is not self.current:
            c, x = self._counts(self.current)
            o = self.offset.pop(id(self.current), (0, 0))
            self.done = (self.done[0] + c - o[0], self.done[1] + x - o[1])
            self.current = calc
        c, x = self._counts(calc)
        o = self.offset.get(id(calc), (0, 0))
        return self.done[0] + c - o[0], self.done[1] + x - o[1]

    def observe(self, frame: Atoms) -> None:
        calls, extrapolated = self.totals()
        if (self.max_fraction is not None and not self.exceeded and calls >= MIN_STEPS_FOR_FRACTION
                and extrapolated > self.max_fraction * calls):
            self.exceeded = True
            if self.action == "stop":
                self.stopped_at = int(frame.info["step"])

    def should_stop(self) -> bool:
        return self.stopped_at is not None

    def result(self, complete: bool) -> dict:
        calls, extrapolated = self.totals()
        fraction = extrapolated / calls if calls else 0.0
        if (complete and self.max_fraction is not None and calls
                and extrapolated > self.max_fraction * calls):
            self.exceeded = True               # short runs: judged at the end
        return {"calls": calls, "calls_extrapolated": extrapolated, "fraction": fraction,
                "max_fraction": self.max_fraction, "action": self.action, "exceeded": self.exceeded,
                "stopped_at_step": self.stopped_at}


def run_md(atoms: Atoms, calculator: Any, ensemble: str = "nvt", temperature_K: float = 300.0,
           steps: int = 1000, timestep_fs: float = 2.0, sample_every: int = 10,
           thermostat: str = "langevin", friction: float = 0.01,
           barostat: Barostat | None = None, initial_temperature_K: float | None = None,
           seed: int = 0, trajectory: PathLike | None = None, checkpoint_every: int = 50,
           resume: bool = True, progress: bool = True, run_id: str | None = None,
           callback: Callable[[Atoms], Any] | None = None,
           max_extrapolated_fraction: float | None = None, extrapolation_action: str = "stop",
           overwrite: bool = False) -> MDResult:
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
    seed, trajectory, checkpoint_every, resume, progress, run_id, callback, overwrite
        As in :func:`mdmlkit.md.heating.heat`: a finished or checkpointed run at
        ``trajectory`` is resumed only when all its settings match (else
        :class:`~mdmlkit.errors.CheckpointMismatchError` naming them; ``overwrite=True``
        reruns into the file).
    max_extrapolated_fraction : float in [0, 1], optional
        Needs an :class:`~mdmlkit.potential.HDNNPCalculator` (instance or factory)
        whose ``extrapolation`` is not ``"ignore"``.  When more than this fraction of
        the calculator calls (about one per step) of this call extrapolated, checked
        at every sampled frame once :data:`MIN_STEPS_FOR_FRACTION` calls have run
        and at the end: ``extrapolation_action="stop"`` ends the run there
        (``result.complete`` False; resumable from the last checkpoint, counting
        afresh), ``"flag"`` only marks it; both emit one
        :class:`~mdmlkit.errors.ExtrapolationWarning`.  ``result.extrapolation``
        holds the counts whenever the calculator keeps them (steps of this call
        only, not of an earlier interrupted call).

    Raises
    ------
    InputError
        Unknown ensemble or thermostat, non-positive steps or temperatures, a
        ``max_extrapolated_fraction`` outside [0, 1] or without an HDNNP calculator.
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
    if extrapolation_action not in EXTRAPOLATION_ACTIONS:
        raise InputError(f"extrapolation_action={extrapolation_action!r}; choose from {EXTRAPOLATION_ACTIONS}")
    if max_extrapolated_fraction is not None:
        try:
            frac = float(max_extrapolated_fraction)
        except (TypeError, ValueError):
            frac = math.nan
        if isinstance(max_extrapolated_fraction, bool) or not 0.0 <= frac <= 1.0:
            raise InputError(f"max_extrapolated_fraction={max_extrapolated_fraction!r}: need a number "
                             "in [0, 1]")
        max_extrapolated_fraction = frac
    factory, instance = calculator_factory(calculator)
    check_elements([a], instance, "atoms", owner="the potential")
    counts = hasattr(instance, "extrapolation_report") and getattr(instance, "extrapolation", "") != "ignore"
    if max_extrapolated_fraction is not None and not counts:
        raise InputError(f"max_extrapolated_fraction needs an HDNNPCalculator that checks extrapolation "
                         f"(extrapolation='warn' or 'raise'), got {type(instance).__name__}"
                         + (" with extrapolation='ignore'" if hasattr(instance, "extrapolation_report")
                            else ""))
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
    if trajectory is not None:
        prepare_run_files(Path(trajectory), params, proto, len(a), resume, overwrite)
    engine = ASEEngine(a, factory, instance, proto, initial_T=initial_temperature_K, barostat=baro)
    if not counts:
        return drive(engine, proto, params, a, trajectory, resume, progress, None, callback)
    monitor = _ExtrapolationMonitor(engine, instance, max_extrapolated_fraction, extrapolation_action)

    def observe(frame: Atoms) -> None:
        if callback is not None:
            callback(frame)
        monitor.observe(frame)

    result = drive(engine, proto, params, a, trajectory, resume, progress, None, observe,
                   should_stop=monitor.should_stop)
    if not result.skipped:
        result.extrapolation = monitor.result(result.complete)
        ex = result.extrapolation
        if ex["exceeded"]:
            what = (f"stopped at step {ex['stopped_at_step']}" if ex["stopped_at_step"] is not None
                    else "flagged")
            warnings.warn(f"run_md {rid!r}: {ex['calls_extrapolated']} of {ex['calls']} calculator calls "
                          f"({100 * ex['fraction']:.1f} %) extrapolated, more than max_extrapolated_fraction="
                          f"{max_extrapolated_fraction:g}; {what} (result.extrapolation; "
                          "calc.extrapolation_report() for the table)", ExtrapolationWarning, stacklevel=2)
    return result
