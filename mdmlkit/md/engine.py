"""The MD run driver shared by all engines: protocol, checkpoints, resume, results.

:func:`drive` runs a :class:`Protocol` (a linear target-temperature ramp, constant
when ``t_start == t_end``) on an :class:`Engine` (:class:`ASEEngine` here, the
LAMMPS engine in :mod:`mdmlkit.md.lammps`) and writes frames whose ``atoms.info``
keys are listed in :mod:`mdmlkit.md.trajectory`.

Long runs are safe to interrupt.  Frames are appended to a hidden partial file
``.<name>.partial`` beside the trajectory; every ``checkpoint_every`` frames a
checkpoint ``<name>.ckpt.npz`` (positions, momenta, step, RNG state, frame count
and byte length of the partial file) is written atomically.  Rerunning the same
call resumes from the last checkpoint, and the trajectory appears under its
final name (by an atomic rename) only when the run is complete.  Because every
checkpoint starts a new *segment* (fresh dynamics object and, when the
calculator is given as a factory or name, a fresh calculator), a resumed run
reproduces the uninterrupted run bit for bit.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from mdmlkit.errors import CheckpointMismatchError, InputError, MalformedFileError, UnstableDynamicsError
from mdmlkit.io.frames import read_frames
from mdmlkit.md.trajectory import frame_table, read_trajectory
from mdmlkit.utils import PathLike, atomic_path, check_frames

__all__ = [
    "MDResult", "Protocol", "RunFiles", "Engine", "ASEEngine", "Barostat", "drive",
    "calculator_factory", "prepare_atoms", "default_run_id", "structure_hash",
]


# =========================================================================== results
@dataclass
class MDResult:
    """Outcome of one MD run (heating ramp or constant temperature).

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
    extrapolation : dict or None
        With an HDNNP calculator (:func:`~mdmlkit.md.runs.run_md`): the extrapolation
        counts of this call's steps (``calls``, ``calls_extrapolated``, ``fraction``,
        ``max_fraction``, ``exceeded``, ``stopped_at_step``); None otherwise.
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
    extrapolation: dict | None = None

    @property
    def steps_per_s(self) -> float:
        return self.steps_run / self.wall_s if self.wall_s > 0 else float("nan")

    def table(self) -> dict[str, np.ndarray]:
        """:func:`~mdmlkit.md.trajectory.frame_table` of the frames."""
        return frame_table(self.frames)

    def volumes(self) -> np.ndarray:
        """Cell volume of every frame, Å³ (changes under NPT)."""
        return np.array([f.get_volume() for f in self.frames])

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
        return (f"MDResult(run_id={self.run_id!r}, {len(self.frames)} frames of {n_at} atoms, "
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
              checkpoint_every, seed, run_id, friction, thermostat) -> Protocol:
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


def default_run_id(atoms: Atoms, seed: int) -> str:
    """``"<formula>_s<seed>"``, the run name when none is given."""
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
class Engine:
    """What :func:`drive` needs from an MD engine (ASE here, LAMMPS in :mod:`mdmlkit.md.lammps`).

    Subclasses implement ``initialize`` (Maxwell–Boltzmann velocities), ``state`` /
    ``restore`` (arrays to checkpoint), ``begin_segment`` (fresh dynamics after each
    checkpoint), ``advance(n, T, step)`` (``n`` steps at target ``T`` K) and ``observe``
    (positions Å, E_pot eV, E_kin eV, T_kin K).
    """

    name = "engine"
    n_atoms: int

    def initialize(self) -> None:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    def restore(self, state: dict) -> None:
        raise NotImplementedError

    def begin_segment(self, segment: int) -> None:
        raise NotImplementedError

    def advance(self, n: int, T: float, step: int) -> None:
        raise NotImplementedError

    def observe(self) -> tuple[np.ndarray, float, float, float]:
        raise NotImplementedError

    def current_cell(self) -> np.ndarray | None:
        """Cell of the current state (Å), or None when it never changes."""
        return None

    def is_writer(self) -> bool:
        """True on the process that writes files (rank 0 under MPI)."""
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
    now = engine.current_cell()
    atoms = Atoms(numbers=numbers, positions=pos, cell=cell if now is None else now, pbc=pbc)
    atoms.info.update(step=int(step), time_fs=float(step * proto.timestep_fs),
                      T_target=float(proto.T_at(step)), T_kinetic=float(tkin), E_pot=float(epot),
                      E_tot=float(epot + ekin), run_id=proto.run_id, seed=proto.seed,
                      n_atoms=len(numbers))
    return atoms


def drive(engine: Engine, proto: Protocol, params: dict, atoms: Atoms,
          trajectory: PathLike | None, resume: bool, progress: bool,
          max_steps: int | None, callback: Callable[[Atoms], Any] | None,
          should_stop: Callable[[], bool] | None = None) -> MDResult:
    """Run ``proto`` on ``engine`` with checkpoints and resume (see the module doc).

    ``should_stop()`` is asked after every sampled frame (after ``callback``); True
    stops the run there, like ``max_steps`` (incomplete result, resumable from the
    last checkpoint).

    ``params`` (JSON-able) is stored in each checkpoint; a checkpoint written with
    other ``params`` raises :class:`~mdmlkit.errors.CheckpointMismatchError`.
    ``atoms`` gives numbers, cell and pbc of the frames.  Shared by all engines.
    """
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
        return MDResult(frames, files.path, proto.run_id, proto.seed, proto.n_steps,
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
               disable=not progress, leave=True, smoothing=0.05)  # closed widgets: "model not found"
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
            if should_stop is not None and step < proto.n_steps and should_stop():
                stopped = True
                break
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
        return MDResult(frames_mem, None, proto.run_id, proto.seed, proto.n_steps,
                             complete=not stopped, resumed_from_step=resumed, wall_s=wall,
                             steps_run=step - start_step, engine=engine.name)
    if not stopped and writer:
        files.finalize()
    src = files.partial if stopped else files.path
    frames = read_frames(src) if writer else frames_mem
    return MDResult(frames, files.path, proto.run_id, proto.seed, proto.n_steps,
                         complete=not stopped, resumed_from_step=resumed, wall_s=wall,
                         steps_run=step - start_step, engine=engine.name)


# =========================================================================== ASE engine
@dataclass(frozen=True)
class Barostat:
    """Berendsen barostat settings for NPT runs (ASE ``NPTBerendsen``).

    ``pressure_GPa`` target pressure (GPa), ``taup_fs`` pressure relaxation time (fs),
    ``compressibility_per_GPa`` the material's compressibility estimate (1/GPa).
    """

    pressure_GPa: float = 0.0
    taup_fs: float = 500.0
    compressibility_per_GPa: float = 1.0 / 200.0

    def __post_init__(self) -> None:
        for name in ("pressure_GPa", "taup_fs", "compressibility_per_GPa"):
            if not np.isfinite(getattr(self, name)):
                raise InputError(f"Barostat: {name} must be finite, got {getattr(self, name)}")
        if self.taup_fs <= 0 or self.compressibility_per_GPa <= 0:
            raise InputError(f"Barostat: taup_fs and compressibility_per_GPa must be positive, "
                             f"got {self.taup_fs} and {self.compressibility_per_GPa}")


class ASEEngine(Engine):
    """ASE dynamics on ``atoms`` (modified in place) for :func:`drive`.

    ``proto.thermostat``: ``"langevin"`` (friction ``proto.friction`` 1/fs),
    ``"bussi"`` (time constant ``1/friction`` fs), ``"nve"`` (velocity Verlet) or
    ``"npt"`` (Berendsen thermostat, ``taut = 1/friction`` fs, with ``barostat``).
    ``calc_factory`` (or None) makes a fresh calculator per segment.  Velocities start
    at ``initial_T`` K (default ``proto.t_start``).
    """

    name = "ase"

    def __init__(self, atoms: Atoms, calc_factory: Callable[[], Any] | None, calc_instance: Any,
                 proto: Protocol, initial_T: float | None = None,
                 barostat: Barostat | None = None):
        self.atoms = atoms
        self.factory = calc_factory
        self.calc = calc_instance
        self.proto = proto
        self.initial_T = proto.t_start if initial_T is None else float(initial_T)
        self.barostat = barostat if barostat is not None or proto.thermostat != "npt" else Barostat()
        self.n_atoms = len(atoms)
        self.rng = np.random.default_rng(proto.seed)
        self.dyn = None
        self.atoms.calc = calc_instance

    def initialize(self) -> None:
        from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

        thermalize_momenta(self.atoms, self.initial_T, rng=self.rng)
        Stationary(self.atoms)
        if not self.atoms.pbc.any():   # angular momentum is not conserved in a periodic cell
            ZeroRotation(self.atoms)

    def state(self) -> dict:
        st = {"positions": self.atoms.get_positions(), "momenta": self.atoms.get_momenta(),
              "rng": json.dumps(self.rng.bit_generator.state)}
        if self.proto.thermostat == "npt":
            st["cell"] = self.atoms.cell.array.copy()
        return st

    def restore(self, state: dict) -> None:
        if "cell" in state:
            self.atoms.set_cell(state["cell"], scale_atoms=False)
        self.atoms.set_positions(state["positions"])
        self.atoms.set_momenta(state["momenta"])
        self.rng.bit_generator.state = json.loads(str(state["rng"]))

    def current_cell(self) -> np.ndarray | None:
        return self.atoms.cell.array.copy() if self.proto.thermostat == "npt" else None

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
        elif kind == "npt":
            from ase.md.nptberendsen import NPTBerendsen

            p = self.barostat
            self.dyn = NPTBerendsen(self.atoms, dt, temperature_K=T,
                                    pressure_au=p.pressure_GPa * units.GPa,
                                    taut=units.fs / self.proto.friction, taup=p.taup_fs * units.fs,
                                    compressibility_au=p.compressibility_per_GPa / units.GPa)
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
        elif kind == "npt":
            self.dyn.set_temperature(temperature_K=T)
        self.dyn.run(n)

    def observe(self):
        a = self.atoms
        ekin = a.get_kinetic_energy()
        return a.get_positions(), float(a.get_potential_energy()), float(ekin), float(
            a.get_temperature())


def calculator_factory(calculator: Any) -> tuple[Callable[[], Any] | None, Any]:
    """(factory or None, one instance) from a calculator, a factory or an engine name.

    ``None``, ``"asap3"`` or ``"ase"``: Cu EMT (:func:`mdmlkit.systems.cu_clusters.cu_calculator`);
    a calculator class or zero-argument factory: called per segment; an instance: reused.
    """
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
    """Validated copy of the start structure: finite positions, a box around a cluster.

    A non-periodic structure without a full cell (or sticking out of it) is centred
    in a box with ``vacuum`` Å on each side (asap3 needs a non-zero cell).
    """
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


def structure_hash(atoms: Atoms) -> str:
    """Short hash of numbers and positions (rounded to 1e-6 Å), stored in checkpoints."""
    h = hashlib.sha1(atoms.numbers.tobytes())
    h.update(np.round(atoms.positions, 6).tobytes())
    return h.hexdigest()[:16]
