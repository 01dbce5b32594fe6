"""Heating molecular dynamics of nanoclusters (ASE dynamics, asap3 EMT by default).

:func:`heat` runs a linear temperature ramp with a Langevin (or Bussi) thermostat
and writes an extxyz trajectory whose frames carry, in ``atoms.info``:

=============  ==========================================================
``step``       MD step of the frame (0 = initial Maxwell–Boltzmann state)
``time_fs``    ``step * timestep_fs`` (fs)
``T_target``   ramp temperature at this step (K)
``T_kinetic``  instantaneous kinetic temperature, 3N degrees of freedom (K)
``E_pot``      potential energy (eV)
``E_tot``      potential + kinetic energy (eV)
``run_id``     run name (str), ``seed`` (int), ``n_atoms`` (int)
=============  ==========================================================

Long runs are safe to interrupt.  Frames are appended to a hidden partial file
``.<name>.partial`` beside the trajectory; every ``checkpoint_every`` frames a
checkpoint ``<name>.ckpt.npz`` (positions, momenta, step, RNG state, frame count
and byte length of the partial file) is written atomically.  Rerunning the same
call resumes from the last checkpoint, and the trajectory appears under its
final name (by an atomic rename) only when the run is complete.  Because every
checkpoint starts a new *segment* (fresh dynamics object and, when the
calculator is given as a factory or name, a fresh calculator), a resumed run
reproduces the uninterrupted run bit for bit.

>>> from mdmlkit.systems.cu_clusters import make_cluster          # doctest: +SKIP
>>> res = heat(make_cluster(147), "asap3", 300, 1300, rate_K_per_ps=5,
...            trajectory="runs/Cu147_s0.extxyz")       # doctest: +SKIP
>>> frame_table(res.frames)["E_pot"]                    # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from ase import Atoms, units

from mdmlkit.errors import (EmptyTrajectoryError, InputError, MalformedFileError, MissingLabelError,
                     NonFiniteError)
from mdmlkit.errors import UnstableDynamicsError, CheckpointMismatchError
from mdmlkit.utils import PathLike, atomic_path, check_frames

__all__ = [
    "INFO_KEYS", "HeatingResult", "UnstableDynamicsError", "CheckpointMismatchError",
    "heat", "heat_many", "frame_table", "read_trajectory",
]

#: Per-frame ``atoms.info`` keys written by :func:`heat` (and :func:`mdmlkit.md.lammps.heat_lammps`).
INFO_KEYS = ("step", "time_fs", "T_target", "T_kinetic", "E_pot", "E_tot", "run_id", "seed",
             "n_atoms")
_NUMERIC_KEYS = ("step", "time_fs", "T_target", "T_kinetic", "E_pot", "E_tot", "seed", "n_atoms")
THERMOSTATS = ("langevin", "bussi", "nve")


# =========================================================================== results
@dataclass
class HeatingResult:
    """Outcome of one heating run.

    Attributes
    ----------
    frames : list of ase.Atoms
        Sampled frames (read back from the trajectory file when one was written).
    path : Path or None
        Trajectory file (None if run in memory only).
    run_id, seed : run name and seed.
    n_steps : int
        Steps of the full protocol; ``complete`` is False when stopped early (``max_steps``).
    resumed_from_step : int or None
        Step of the checkpoint this call resumed from.
    skipped : bool
        True when the finished trajectory already existed and nothing was run.
    wall_s : float
        Wall time of this call (s); ``steps_per_s`` the MD speed of this call.
    """

    frames: list
    path: Path | None
    run_id: str
    seed: int
    n_steps: int
    complete: bool = True
    resumed_from_step: int | None = None
    skipped: bool = False
    wall_s: float = 0.0
    steps_run: int = 0
    engine: str = "ase"

    @property
    def steps_per_s(self) -> float:
        return self.steps_run / self.wall_s if self.wall_s > 0 else float("nan")

    def table(self) -> dict[str, np.ndarray]:
        """:func:`frame_table` of the frames."""
        return frame_table(self.frames)

    def __repr__(self) -> str:
        if self.frames:
            t0, t1 = self.frames[0].info.get("T_target"), self.frames[-1].info.get("T_target")
            trange = f"{float(t0):.0f}->{float(t1):.0f} K"
            n_at = len(self.frames[0])
        else:
            trange, n_at = "no frames", 0
        state = "skipped (already done)" if self.skipped else (
            "complete" if self.complete else "incomplete")
        extra = f", resumed from step {self.resumed_from_step}" if self.resumed_from_step else ""
        speed = f", {self.steps_per_s:.0f} steps/s" if self.steps_run else ""
        return (f"HeatingResult(run_id={self.run_id!r}, {len(self.frames)} frames of {n_at} atoms, "
                f"{trange}, {state}{extra}{speed}, engine={self.engine!r}, path={self.path})")


# =========================================================================== protocol
@dataclass(frozen=True)
class Protocol:
    """Linear ramp ``T(step) = t_start + (t_end - t_start) * step / n_steps`` (K)."""

    t_start: float
    t_end: float
    n_steps: int
    timestep_fs: float
    sample_every: int
    checkpoint_every: int
    seed: int
    run_id: str
    friction: float
    thermostat: str

    @classmethod
    def build(cls, t_start, t_end, rate_K_per_ps, duration_ps, timestep_fs, sample_every,
              checkpoint_every, seed, run_id, friction, thermostat) -> "Protocol":
        for name, v in (("t_start", t_start), ("t_end", t_end), ("timestep_fs", timestep_fs)):
            if not np.isfinite(v):
                raise InputError(f"{name} must be finite, got {v}")
        if t_start <= 0 or t_end <= 0:
            raise InputError(f"temperatures must be positive (K), got {t_start} and {t_end}")
        if timestep_fs <= 0:
            raise InputError(f"timestep_fs must be positive, got {timestep_fs}")
        if int(sample_every) < 1 or int(checkpoint_every) < 1:
            raise InputError("sample_every and checkpoint_every must be >= 1")
        if duration_ps is None:
            if rate_K_per_ps is None or rate_K_per_ps <= 0:
                raise InputError("give a positive rate_K_per_ps or a duration_ps")
            if t_end == t_start:
                raise InputError("t_start == t_end: give duration_ps for an isothermal run")
            duration_ps = abs(t_end - t_start) / rate_K_per_ps
        elif rate_K_per_ps is not None:
            raise InputError("give rate_K_per_ps or duration_ps, not both")
        n_steps = int(round(duration_ps * 1000.0 / timestep_fs))
        if n_steps < 1:
            raise InputError(f"the run is shorter than one time step ({duration_ps} ps)")
        return cls(float(t_start), float(t_end), n_steps, float(timestep_fs), int(sample_every),
                   int(checkpoint_every), int(seed), str(run_id), float(friction), thermostat)

    def T_at(self, step: float) -> float:
        """Ramp temperature (K) at (possibly fractional) ``step``."""
        return self.t_start + (self.t_end - self.t_start) * step / self.n_steps

    def sample_steps(self) -> np.ndarray:
        """Steps at which frames are written (0, s, 2s, ..., n_steps)."""
        steps = np.arange(0, self.n_steps + 1, self.sample_every)
        return steps if steps[-1] == self.n_steps else np.append(steps, self.n_steps)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _default_run_id(atoms: Atoms, seed: int) -> str:
    return f"{atoms.get_chemical_formula(mode='metal')}_s{seed}"


# =========================================================================== files
class RunFiles:
    """Trajectory, hidden partial file and checkpoint of one run (see module doc)."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.ckpt = self.path.with_name(f"{self.path.name}.ckpt.npz")

    def clear(self) -> None:
        for p in (self.partial, self.ckpt):
            if p.exists():
                p.unlink()

    def load(self, params: dict, modify: bool = True) -> dict | None:
        """Checkpoint state, or None; truncates the partial file to the checkpointed length.

        ``modify=False`` (MPI ranks other than the writer) only reads.
        """
        if not self.ckpt.exists():
            if modify and self.partial.exists():
                self.partial.unlink()
            return None
        try:
            with np.load(self.ckpt, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
            saved = json.loads(str(state.pop("params")))
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint
            raise MalformedFileError(f"unreadable checkpoint ({e}); delete it to start afresh",
                                     path=str(self.ckpt)) from e
        diff = {k: (saved.get(k), v) for k, v in params.items() if saved.get(k) != v}
        if diff:
            raise CheckpointMismatchError(
                f"{self.ckpt}: checkpoint was written with other settings "
                f"{ {k: a for k, (a, b) in diff.items()} } than now "
                f"{ {k: b for k, (a, b) in diff.items()} }; pass resume=False to start afresh")
        size = int(state["traj_bytes"])
        if not self.partial.exists() or self.partial.stat().st_size < size:
            raise MalformedFileError("partial trajectory is missing or shorter than the "
                                     "checkpoint records; pass resume=False to start afresh",
                                     path=str(self.partial))
        if modify:
            os.truncate(self.partial, size)
        return state

    def append(self, frames: Sequence[Atoms]) -> None:
        import ase.io

        self.partial.parent.mkdir(parents=True, exist_ok=True)
        with open(self.partial, "a") as fh:
            ase.io.write(fh, list(frames), format="extxyz")

    def save(self, state: dict, params: dict) -> None:
        """Atomically write the checkpoint after making the partial file durable."""
        size = 0
        if self.partial.exists():
            with open(self.partial, "rb+") as fh:
                os.fsync(fh.fileno())
            size = self.partial.stat().st_size
        with atomic_path(self.ckpt, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, params=json.dumps(params, sort_keys=True), traj_bytes=size, **state)

    def finalize(self) -> None:
        os.replace(self.partial, self.path)
        if self.ckpt.exists():
            self.ckpt.unlink()


# =========================================================================== engine driver
class _Engine:
    """What the driver needs from an MD engine (ASE here, LAMMPS in mdmlkit.md.lammps)."""

    name = "engine"
    n_atoms: int

    def initialize(self) -> None: ...            # Maxwell–Boltzmann velocities at t_start
    def state(self) -> dict: ...                 # arrays to checkpoint
    def restore(self, state: dict) -> None: ...
    def begin_segment(self, segment: int) -> None: ...
    def advance(self, n: int, T: float, step: int) -> None: ...
    def observe(self) -> tuple[np.ndarray, float, float, float]: ...  # pos, E_pot, E_kin, T_kin
    def is_writer(self) -> bool:
        return True


def _frame(engine, proto: Protocol, step: int, numbers, cell, pbc) -> Atoms:
    pos, epot, ekin, tkin = engine.observe()
    if not np.all(np.isfinite(pos)):
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
        raise UnstableDynamicsError(
            f"run {proto.run_id!r}: non-finite positions at step {step} "
            f"(atoms {bad[:10].tolist()}); reduce the time step or check the start structure")
    if not (np.isfinite(epot) and np.isfinite(ekin)):
        raise UnstableDynamicsError(f"run {proto.run_id!r}: non-finite energy at step {step}")
    t_max = 10.0 * max(proto.t_start, proto.t_end, 1000.0)
    if tkin > t_max:
        raise UnstableDynamicsError(
            f"run {proto.run_id!r}: kinetic temperature {tkin:.0f} K at step {step} exceeds "
            f"{t_max:.0f} K: the dynamics blew up (time step too large or atoms too close)")
    atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=pbc)
    atoms.info.update(step=int(step), time_fs=float(step * proto.timestep_fs),
                      T_target=float(proto.T_at(step)), T_kinetic=float(tkin), E_pot=float(epot),
                      E_tot=float(epot + ekin), run_id=proto.run_id, seed=proto.seed,
                      n_atoms=len(numbers))
    return atoms


def drive(engine: _Engine, proto: Protocol, params: dict, atoms: Atoms,
          trajectory: PathLike | None, resume: bool, progress: bool,
          max_steps: int | None, callback: Callable[[Atoms], Any] | None) -> HeatingResult:
    """Run ``proto`` on ``engine`` with checkpoints/resume; shared by all engines."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    numbers, cell, pbc = atoms.numbers.copy(), atoms.cell.array.copy(), atoms.pbc.copy()
    files = RunFiles(trajectory) if trajectory is not None else None
    writer = engine.is_writer()

    if files is not None and files.path.exists() and resume:
        frames = read_trajectory(files.path)
        last = frames[-1].info
        if (last.get("run_id") != proto.run_id or int(last.get("seed", -1)) != proto.seed
                or int(last.get("step", -1)) != proto.n_steps or len(frames[0]) != len(numbers)):
            raise CheckpointMismatchError(
                f"{files.path} exists but is not this run (run_id {last.get('run_id')!r}, seed "
                f"{last.get('seed')}, last step {last.get('step')} vs {proto.run_id!r}, "
                f"{proto.seed}, {proto.n_steps}); pass resume=False to overwrite")
        return HeatingResult(frames, files.path, proto.run_id, proto.seed, proto.n_steps,
                             skipped=True, wall_s=time.perf_counter() - t0, engine=engine.name)
    if files is not None and not resume and writer:
        files.clear()

    state = files.load(params, modify=writer) if files is not None else None
    frames_mem: list[Atoms] = []
    if state is not None:
        engine.restore(state)
        step, n_frames = int(state["step"]), int(state["n_frames"])
        resumed = step
    else:
        engine.initialize()
        step, n_frames, resumed = 0, 0, None
        f0 = _frame(engine, proto, 0, numbers, cell, pbc)
        frames_mem.append(f0)
        if files is not None and writer:
            files.append([f0])
        n_frames = 1
        if callback is not None:
            callback(f0)

    targets = proto.sample_steps()
    start_step = step
    bar = tqdm(total=proto.n_steps, initial=step, unit="step", desc=proto.run_id,
               disable=not progress, leave=False, smoothing=0.05)
    stopped = False
    try:
        segment = (n_frames - 1) // proto.checkpoint_every
        engine.begin_segment(segment)
        for nxt in targets[n_frames:]:
            nxt = int(nxt)
            engine.advance(nxt - step, proto.T_at(0.5 * (step + nxt)), step)
            bar.update(nxt - step)
            step = nxt
            fr = _frame(engine, proto, step, numbers, cell, pbc)
            frames_mem.append(fr)
            n_frames += 1
            if files is not None and writer:
                files.append([fr])
            if callback is not None:
                callback(fr)
            if (n_frames - 1) % proto.checkpoint_every == 0 and step < proto.n_steps:
                if files is not None:
                    st = engine.state()   # collective under MPI: every rank takes part
                    if writer:
                        files.save(dict(st, step=step, n_frames=n_frames), params)
                if max_steps is not None and step >= max_steps:
                    stopped = True
                    break
                segment += 1
                engine.begin_segment(segment)
            bar.set_postfix(T=f"{fr.info['T_kinetic']:.0f} K", refresh=False)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    if files is None:
        return HeatingResult(frames_mem, None, proto.run_id, proto.seed, proto.n_steps,
                             complete=not stopped, resumed_from_step=resumed, wall_s=wall,
                             steps_run=step - start_step, engine=engine.name)
    if not stopped and writer:
        files.finalize()
    src = files.partial if stopped else files.path
    frames = _read_frames(src) if writer else frames_mem
    return HeatingResult(frames, files.path, proto.run_id, proto.seed, proto.n_steps,
                         complete=not stopped, resumed_from_step=resumed, wall_s=wall,
                         steps_run=step - start_step, engine=engine.name)


# =========================================================================== ASE engine
class _ASEEngine(_Engine):
    name = "ase"

    def __init__(self, atoms: Atoms, calc_factory, calc_instance, proto: Protocol):
        self.atoms = atoms
        self.factory = calc_factory
        self.calc = calc_instance
        self.proto = proto
        self.n_atoms = len(atoms)
        self.rng = np.random.default_rng(proto.seed)
        self.dyn = None
        self.atoms.calc = calc_instance

    def initialize(self) -> None:
        from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

        thermalize_momenta(self.atoms, self.proto.t_start, rng=self.rng)
        Stationary(self.atoms)
        if not self.atoms.pbc.any():   # angular momentum is not conserved in a periodic cell
            ZeroRotation(self.atoms)

    def state(self) -> dict:
        return {"positions": self.atoms.get_positions(), "momenta": self.atoms.get_momenta(),
                "rng": json.dumps(self.rng.bit_generator.state)}

    def restore(self, state: dict) -> None:
        self.atoms.set_positions(state["positions"])
        self.atoms.set_momenta(state["momenta"])
        self.rng.bit_generator.state = json.loads(str(state["rng"]))

    def begin_segment(self, segment: int) -> None:
        if self.factory is not None:
            self.atoms.calc = self.factory()
        dt = self.proto.timestep_fs * units.fs
        T = self.proto.t_start
        kind = self.proto.thermostat
        if kind == "langevin":
            from ase.md.langevin import Langevin

            self.dyn = Langevin(self.atoms, dt, temperature_K=T,
                                friction=self.proto.friction / units.fs, fixcm=False, rng=self.rng)
        elif kind == "bussi":
            from ase.md.bussi import Bussi

            self.dyn = Bussi(self.atoms, dt, temperature_K=T,
                             taut=units.fs / self.proto.friction, rng=self.rng)
        else:
            from ase.md.verlet import VelocityVerlet

            self.dyn = VelocityVerlet(self.atoms, dt)

    def advance(self, n: int, T: float, step: int) -> None:
        kind = self.proto.thermostat
        if kind == "langevin":
            self.dyn.set_temperature(temperature_K=T)
        elif kind == "bussi":
            self.dyn.temp = units.kB * T
            self.dyn.target_kinetic_energy = 0.5 * self.dyn.temp * self.dyn.ndof
        self.dyn.run(n)

    def observe(self):
        a = self.atoms
        ekin = a.get_kinetic_energy()
        return a.get_positions(), float(a.get_potential_energy()), float(ekin), float(
            a.get_temperature())


def _calc_factory(calculator) -> tuple[Callable | None, Any]:
    """(factory or None, one instance) from a calculator, a factory or an engine name."""
    from mdmlkit.systems.cu_clusters import cu_calculator

    if calculator is None or isinstance(calculator, str):
        engine = calculator or "asap3"
        factory = lambda: cu_calculator(engine)  # noqa: E731
        return factory, factory()
    if isinstance(calculator, type):            # a calculator class: instantiate per segment
        return calculator, calculator()
    if hasattr(calculator, "get_potential_energy") or hasattr(calculator, "calculate"):
        return None, calculator
    if callable(calculator):
        return calculator, calculator()
    raise InputError(f"calculator must be a calculator, a zero-argument factory or "
                     f"'asap3'/'ase', got {type(calculator).__name__}")


def prepare_atoms(atoms: Atoms, source: str = "atoms", vacuum: float = 8.0) -> Atoms:
    """Validated copy of the start structure: finite positions, a box around a cluster."""
    if not isinstance(atoms, Atoms):
        raise InputError(f"{source}: expected ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) < 2:
        raise InputError(f"{source}: need at least 2 atoms, got {len(atoms)}")
    check_frames([atoms], source=source)
    a = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if not a.pbc.any() and (a.cell.rank < 3 or not _inside_cell(a)):
        a.center(vacuum=vacuum)
    return a


def _inside_cell(atoms: Atoms) -> bool:
    frac = atoms.cell.scaled_positions(atoms.positions)
    return bool(np.all((frac >= 0) & (frac < 1)))


def heat(atoms: Atoms, calculator: Any = "asap3", t_start: float = 300.0, t_end: float = 1300.0,
         rate_K_per_ps: float | None = 5.0, timestep_fs: float = 2.0, sample_every: int = 100,
         thermostat: str = "langevin", friction: float = 0.005, seed: int = 0,
         trajectory: PathLike | None = None, checkpoint_every: int = 50, resume: bool = True,
         progress: bool = True, run_id: str | None = None, duration_ps: float | None = None,
         max_steps: int | None = None, callback: Callable[[Atoms], Any] | None = None
         ) -> HeatingResult:
    """Heat ``atoms`` along a linear temperature ramp and sample frames.

    Parameters
    ----------
    atoms : ase.Atoms
        Start structure (not modified).  A cluster without a cell is centred in
        a box with 8 Å vacuum (asap3 needs a non-zero cell).
    calculator : "asap3" | "ase" | calculator | zero-argument factory
        Potential.  Names give Cu EMT (:func:`mdmlkit.systems.cu_clusters.cu_calculator`);
        names and factories make a fresh calculator per checkpoint segment so
        that resuming is bit-exact; an instance is reused (resume then agrees
        to floating-point rounding only).
    t_start, t_end : float
        Ramp end points, K.
    rate_K_per_ps : float or None
        Heating rate, K/ps; the run lasts ``|t_end - t_start| / rate`` ps.  Give
        ``rate_K_per_ps=None, duration_ps=...`` for a fixed length instead
        (e.g. isothermal runs with ``t_start == t_end``).
    timestep_fs : float
        Time step, fs.
    sample_every : int
        Steps between frames; the dynamics runs in chunks of this many steps and
        the thermostat target is the ramp temperature at each chunk's midpoint.
    thermostat : {"langevin", "bussi", "nve"}
        ASE ``Langevin`` (friction ``friction`` in 1/fs), ASE ``Bussi``
        (time constant ``1/friction`` fs) or no thermostat (velocity Verlet;
        ``T_target`` is then nominal only).
    friction : float
        Thermostat coupling, 1/fs (0.005 fs⁻¹ = 200 fs relaxation time).
    seed : int
        Seeds the Maxwell–Boltzmann velocities and the thermostat noise.
    trajectory : path or None
        extxyz output (with checkpoint + resume, see module doc); None keeps
        frames in memory only.
    checkpoint_every : int
        Frames between checkpoints.
    resume : bool
        Continue from a checkpoint / return an existing finished trajectory.
        False starts afresh and overwrites.
    progress : bool
        tqdm progress bar.
    run_id : str, optional
        Stored in every frame; default ``"<formula>_s<seed>"``.
    max_steps : int, optional
        Stop at the first checkpoint at or after this step (result has
        ``complete=False``; call again to continue).
    callback : callable(frame), optional
        Called after each frame is written (raising in it interrupts the run).

    Raises
    ------
    UnknownElementError
        A Cu-only calculator (``cu_calculator``) meets other elements.
    NonFiniteError
        Non-finite start positions; :class:`UnstableDynamicsError` (a
        ``NonFiniteError``) when the dynamics blows up, naming the step.
    CheckpointMismatchError
        Existing checkpoint/trajectory made with different settings.
    """
    from mdmlkit.systems.cu_clusters import check_elements

    if thermostat not in THERMOSTATS:
        raise InputError(f"unknown thermostat {thermostat!r}; choose from {THERMOSTATS}")
    a = prepare_atoms(atoms)
    factory, instance = _calc_factory(calculator)
    check_elements(a, instance)
    rid = run_id if run_id is not None else _default_run_id(a, seed)
    proto = Protocol.build(t_start, t_end, rate_K_per_ps, duration_ps, timestep_fs, sample_every,
                           checkpoint_every, seed, rid, friction, thermostat)
    params = dict(proto.as_dict(), engine="ase", calculator=type(instance).__name__,
                  structure=_structure_hash(a))
    engine = _ASEEngine(a, factory, instance, proto)
    return drive(engine, proto, params, a, trajectory, resume, progress, max_steps, callback)


def _structure_hash(atoms: Atoms) -> str:
    h = hashlib.sha1(atoms.numbers.tobytes())
    h.update(np.round(atoms.positions, 6).tobytes())
    return h.hexdigest()[:16]


def heat_many(sizes: Iterable[int], seeds: Iterable[int] = (0,), outdir: PathLike = "runs",
              kind: str = "auto", calculator: Any = "asap3", progress: bool = True,
              **heat_kwargs) -> list[HeatingResult]:
    """Independent heating runs of Cu_n for every size and seed; finished runs are skipped.

    Each run ``Cu<n>_<kind>_s<seed>`` starts from :func:`mdmlkit.systems.cu_clusters.make_cluster`
    ``(n, kind)`` and writes ``outdir/<run_id>.extxyz``.  Rerunning resumes
    interrupted runs and returns finished ones unchanged.  ``heat_kwargs`` go
    to :func:`heat` (``t_start``, ``t_end``, ``rate_K_per_ps``, ...).
    """
    from tqdm.auto import tqdm

    from mdmlkit.systems.cu_clusters import make_cluster

    outdir = Path(outdir)
    sizes, seeds = [int(n) for n in sizes], [int(s) for s in seeds]
    if not sizes or not seeds:
        raise InputError("heat_many needs at least one size and one seed")
    results = []
    jobs = [(n, s) for n in sizes for s in seeds]
    start: dict[int, Atoms] = {}
    for n, s in tqdm(jobs, desc="heating runs", disable=not progress):
        rid = f"Cu{n}_{kind}_s{s}"
        path = outdir / f"{rid}.extxyz"
        if path.exists() and heat_kwargs.get("resume", True):
            frames = read_trajectory(path)
            results.append(HeatingResult(frames, path, rid, s, int(frames[-1].info["step"]),
                                         skipped=True))
            continue
        if n not in start:
            start[n] = make_cluster(n, kind=kind, calculator=calculator)
        results.append(heat(start[n], calculator, seed=s, trajectory=path, run_id=rid,
                            progress=progress, **heat_kwargs))
    return results


# =========================================================================== reading
def _read_frames(path: Path) -> list[Atoms]:
    import ase.io

    return ase.io.read(path, ":", format="extxyz")


def read_trajectory(path: PathLike, min_frames: int = 1, same_size: bool = True) -> list[Atoms]:
    """Read an extxyz trajectory written by :func:`heat` with clear errors.

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
        raise FileNotFoundError(f"{path}: no such trajectory file")
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
                                        f"info[{key!r}]; was it written by mdmlkit.md.heating.heat?")
            vals.append(f.info[key])
        if key == "run_id":
            out[key] = np.asarray([str(v) for v in vals])
        elif key in ("step", "seed", "n_atoms"):
            out[key] = np.asarray(vals, dtype=np.int64)
        else:
            out[key] = np.asarray(vals, dtype=float)
    return out
