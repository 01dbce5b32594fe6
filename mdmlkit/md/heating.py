"""Heating MD of nanoclusters: linear temperature ramps (ASE dynamics, asap3 EMT by default).

:func:`heat` runs a linear ramp with a Langevin (or Bussi) thermostat and writes an
extxyz trajectory whose frames carry the ``atoms.info`` keys of
:data:`mdmlkit.md.trajectory.INFO_KEYS`; runs are checkpointed and resumable (see
:mod:`mdmlkit.md.engine`); the full settings of each run are kept beside the trajectory
(``<trajectory>.settings.json``) and every resume checks them.  :func:`heat_many` heats Cu_n
for many sizes and seeds.
Constant-temperature, NVE and NPT runs: :func:`mdmlkit.md.runs.run_md`.

>>> from mdmlkit.systems.cu_clusters import make_cluster          # doctest: +SKIP
>>> res = heat(make_cluster(147), "asap3", 300, 1300, rate_K_per_ps=5,
...            trajectory="runs/Cu147_s0.extxyz")       # doctest: +SKIP
>>> res.table()["E_pot"]                                # doctest: +SKIP
"""
from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mdmlkit.errors import AtomsTooCloseError, CheckpointMismatchError, InputError
from mdmlkit.md.engine import (
    ASEEngine,
    MDResult,
    Protocol,
    RunFiles,
    calculator_factory,
    default_run_id,
    drive,
    prepare_atoms,
    structure_hash,
)
from mdmlkit.md.trajectory import read_trajectory
from mdmlkit.utils import (
    PathLike,
    atomic_write_json,
    check_elements,
    format_settings_diff,
    read_json_file,
    settings_diff,
)

__all__ = ["THERMOSTATS", "MIN_DISTANCE", "HeatingSettings", "heat", "heat_many", "prepare_run_files",
           "settings_path", "saved_settings"]

#: Thermostats of :func:`heat`.
THERMOSTATS = ("langevin", "bussi", "nve")

#: Default closest allowed interatomic distance of a start structure, Å.
MIN_DISTANCE = 0.5

_SETTINGS_FORMAT = "mdmlkit.heat-settings/1"
#: relative tolerance when settings are read back from the frames (extxyz float text)
_FRAME_RTOL = 1e-6


def settings_path(trajectory: PathLike) -> Path:
    """The settings sidecar ``<trajectory>.settings.json`` of a :func:`heat` trajectory."""
    p = Path(trajectory)
    return p.with_name(f"{p.name}.settings.json")


def saved_settings(trajectory: PathLike) -> dict[str, Any] | None:
    """The full settings a :func:`heat` run at ``trajectory`` was started with (None if unknown).

    Read from the sidecar :func:`settings_path` (written atomically when the run starts),
    else from the run's checkpoint.  Keys: the :class:`~mdmlkit.md.engine.Protocol` fields
    (``t_start``, ``t_end`` K, ``n_steps``, ``timestep_fs`` fs, ``sample_every``,
    ``checkpoint_every``, ``seed``, ``run_id``, ``friction`` 1/fs, ``thermostat``) and
    ``engine``, ``calculator`` (class name), ``structure`` (hash of the start structure).
    """
    side = settings_path(trajectory)
    if side.is_file():
        d = read_json_file(side, "heating settings sidecar",
                           "delete it (the run's settings are then checked from its frames only)")
        if not isinstance(d, dict) or d.get("format") != _SETTINGS_FORMAT:
            return None
        return dict(d["settings"])
    ckpt = RunFiles(trajectory).ckpt
    if ckpt.is_file():
        try:
            with np.load(ckpt, allow_pickle=False) as z:
                return json.loads(str(z["params"]))
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by the driver
            return None
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _check_real(name: str, v: Any, unit: str, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not _is_number(v):
        raise InputError(f"{name} must be a number ({unit}), got {type(v).__name__} {v!r}")
    if not np.isfinite(v):
        raise InputError(f"{name} must be finite, got {v}")


def _check_int(name: str, v: Any, minimum: int | None = 1, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    ok = _is_number(v) and np.isfinite(v) and float(v) == int(v)
    if not ok:
        raise InputError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    if minimum is not None and int(v) < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {v!r}")


def _check_heat_args(t_start, t_end, rate_K_per_ps, timestep_fs, sample_every, thermostat,
                     friction, seed, checkpoint_every, duration_ps=None, max_steps=None) -> None:
    """Types and ranges of :func:`heat`'s settings (the ramp itself: :meth:`Protocol.build`)."""
    if thermostat not in THERMOSTATS:
        raise InputError(f"unknown thermostat {thermostat!r}; choose from {THERMOSTATS}")
    _check_real("t_start", t_start, "K")
    _check_real("t_end", t_end, "K")
    _check_real("rate_K_per_ps", rate_K_per_ps, "K/ps", allow_none=True)
    _check_real("duration_ps", duration_ps, "ps", allow_none=True)
    _check_real("timestep_fs", timestep_fs, "fs")
    _check_real("friction", friction, "1/fs")
    if friction < 0 or (thermostat == "bussi" and friction == 0):
        raise InputError(f"friction must be {'> 0' if thermostat == 'bussi' else '>= 0'} (1/fs) "
                         f"for the {thermostat} thermostat, got {friction}")
    _check_int("sample_every", sample_every, 1)
    _check_int("checkpoint_every", checkpoint_every, 1)
    _check_int("seed", seed, 0)
    _check_int("max_steps", max_steps, 1, allow_none=True)


def _check_distances(atoms: Atoms, min_distance: float, source: str = "atoms") -> None:
    """Refuse overlapping atoms (closer than ``min_distance`` Å) and degenerate periodic cells."""
    from ase.neighborlist import neighbor_list

    if min_distance <= 0 or len(atoms) < 2:
        return
    if atoms.pbc.any():
        cell = atoms.cell.array
        if atoms.cell.rank < 3:
            raise InputError(f"{source}: periodic structure with a degenerate cell (rank "
                             f"{atoms.cell.rank})")
        vol = abs(np.linalg.det(cell))
        for k in np.flatnonzero(atoms.pbc):
            h = vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
            if h < min_distance:
                raise InputError(f"{source}: cell height along vector {k} is {h:.3g} Å, less "
                                 f"than {min_distance} Å (a degenerate cell)")
    i, j, d = neighbor_list("ijd", atoms, float(min_distance))
    if len(d):
        m = int(np.argmin(d))
        a, b = sorted((int(i[m]), int(j[m])))
        raise AtomsTooCloseError(
            f"{source}: atoms {a} and {b} are {float(d[m]):.3f} Å apart, less than "
            f"min_distance={min_distance} Å (overlapping atoms); fix the start structure")


def _frames_diff(frames: list[Atoms], proto: Protocol, n_atoms: int) -> dict[str, tuple]:
    """Settings a finished trajectory records in its frames that differ from ``proto``."""
    first, last = frames[0].info, frames[-1].info
    diff: dict[str, tuple] = {}

    def close(a: Any, b: float) -> bool:
        return a is not None and abs(float(a) - b) <= _FRAME_RTOL * max(1.0, abs(b))

    if last.get("run_id") != proto.run_id:
        diff["run_id"] = (last.get("run_id"), proto.run_id)
    if int(last.get("seed", -1)) != proto.seed:
        diff["seed"] = (last.get("seed"), proto.seed)
    if int(last.get("step", -1)) != proto.n_steps:
        diff["n_steps"] = (last.get("step"), proto.n_steps)
    if len(frames[0]) != n_atoms:
        diff["n_atoms"] = (len(frames[0]), n_atoms)
    if not close(first.get("T_target"), proto.t_start):
        diff["t_start"] = (first.get("T_target"), proto.t_start)
    if not close(last.get("T_target"), proto.t_end):
        diff["t_end"] = (last.get("T_target"), proto.t_end)
    if len(frames) > 1:
        step1 = int(frames[1].info.get("step", -1))
        if step1 != min(proto.sample_every, proto.n_steps):
            diff["sample_every"] = (step1, proto.sample_every)
        if step1 > 0 and not close(float(frames[1].info.get("time_fs", 0.0)) / step1,
                                   proto.timestep_fs):
            diff["timestep_fs"] = (float(frames[1].info.get("time_fs", 0.0)) / step1,
                                   proto.timestep_fs)
    return {k: (a.item() if isinstance(a, np.generic) else a, b) for k, (a, b) in diff.items()}


def _finished_diff(path: Path, params: dict[str, Any], proto: Protocol, n_atoms: int,
                   ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Differences between the settings of the run at ``path`` and ``params``.

    The sidecar (or checkpoint) records the full settings; a finished trajectory without
    one (written by an older mdmlkit) is checked against what its frames record.  A
    sidecar without a trajectory or checkpoint (both deleted) holds nothing to resume.
    """
    if not (path.is_file() or RunFiles(path).ckpt.is_file()):
        return {}
    saved = saved_settings(path)
    if saved is not None:
        return settings_diff(saved, params, ignore=ignore)
    if path.is_file():
        return _frames_diff(read_trajectory(path), proto, n_atoms)
    return {}


def _discard(path: Path) -> None:
    """Remove the trajectory, partial file, checkpoint and sidecar of a run."""
    files = RunFiles(path)
    files.clear()
    for p in (path, settings_path(path)):
        if p.exists():
            p.unlink()


def _mismatch_error(path: Path, diff: dict[str, tuple]) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"{path}: the run there was made with other settings ({format_settings_diff(diff)}); "
        "pass overwrite=True to rerun into this file (resume=False always starts afresh), "
        "or give another trajectory path")


def prepare_run_files(path: Path, params: dict[str, Any], proto: Protocol, n_atoms: int,
                      resume: bool, overwrite: bool) -> None:
    """Check (or discard) what is at ``path`` and record this run's settings beside it.

    Shared by :func:`heat` and :func:`mdmlkit.md.runs.run_md`: with ``resume`` a finished
    or checkpointed run at ``path`` whose settings (sidecar, checkpoint or, for old files,
    its frames) differ from ``params`` raises :class:`~mdmlkit.errors.CheckpointMismatchError`
    naming every differing setting, unless ``overwrite`` (then it is discarded); without
    ``resume`` everything at ``path`` is discarded.  The settings go (atomically) to the
    sidecar :func:`settings_path` before a run writes ``path``.
    """
    if not resume:
        _discard(path)
    else:
        diff = _finished_diff(path, params, proto, n_atoms)
        if diff:
            if not overwrite:
                raise _mismatch_error(path, diff)
            _discard(path)
    if not path.exists():            # a run (new or resumed) will write this file
        atomic_write_json(settings_path(path), {"format": _SETTINGS_FORMAT, "settings": params})


@dataclass(frozen=True)
class HeatingSettings:
    """Ramp settings shared by many heating runs (see :func:`heat` for the meaning).

    ``t_start``, ``t_end`` K; ``rate_K_per_ps`` K/ps; ``timestep_fs`` fs;
    ``sample_every`` steps between frames; ``friction`` 1/fs; ``kind`` the
    starting motif for :func:`heat_many` (see :func:`mdmlkit.systems.cu_clusters.make_cluster`).
    """

    t_start: float = 300.0
    t_end: float = 1300.0
    rate_K_per_ps: float = 5.0
    timestep_fs: float = 2.0
    sample_every: int = 100
    thermostat: str = "langevin"
    friction: float = 0.005
    checkpoint_every: int = 50
    kind: str = "auto"

    def __post_init__(self) -> None:
        _check_heat_args(self.t_start, self.t_end, self.rate_K_per_ps, self.timestep_fs,
                         self.sample_every, self.thermostat, self.friction, 0,
                         self.checkpoint_every)
        if not isinstance(self.kind, str):
            raise InputError(f"HeatingSettings: kind must be a string, got {self.kind!r}")

    def heat_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`heat` (all fields but ``kind``)."""
        kw = asdict(self)
        kw.pop("kind")
        return kw

    def as_dict(self) -> dict[str, Any]:
        """All fields (JSON-able)."""
        return asdict(self)


def heat(atoms: Atoms, calculator: Any = "asap3", t_start: float = 300.0, t_end: float = 1300.0,
         rate_K_per_ps: float | None = 5.0, timestep_fs: float = 2.0, sample_every: int = 100,
         thermostat: str = "langevin", friction: float = 0.005, seed: int = 0,
         trajectory: PathLike | None = None, checkpoint_every: int = 50, resume: bool = True,
         progress: bool = True, run_id: str | None = None, duration_ps: float | None = None,
         max_steps: int | None = None, callback: Callable[[Atoms], Any] | None = None,
         overwrite: bool = False, min_distance: float = MIN_DISTANCE) -> MDResult:
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
        (for constant temperature prefer :func:`mdmlkit.md.runs.run_md`).
    timestep_fs : float
        Time step, fs.
    sample_every : int
        Steps between frames (a positive integer); the dynamics runs in chunks of this many steps and
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
        extxyz output (with checkpoint + resume, see :mod:`mdmlkit.md.engine`);
        None keeps frames in memory only.  The full settings of the run are written
        (atomically) to the sidecar ``<trajectory>.settings.json`` when it starts.
    checkpoint_every : int
        Frames between checkpoints.
    resume : bool
        Continue from a checkpoint / return an existing finished trajectory, after
        checking that it was made with the same settings (all of them: ramp, time
        step, sampling, thermostat, friction, seed, calculator, start structure).
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
    overwrite : bool
        When the trajectory or checkpoint at ``trajectory`` was made with other
        settings, discard it and rerun into the file (default: refuse).
    min_distance : float
        Closest allowed interatomic distance of the start structure, Å (0 disables).

    Raises
    ------
    InputError
        Settings of the wrong type (``t_start="300"``, ``seed="abc"``,
        ``sample_every=2.5``, ``max_steps=-5``) or out of range.
    AtomsTooCloseError
        Two start atoms closer than ``min_distance`` (names the pair).
    UnknownElementError
        A Cu-only calculator (``cu_calculator``) meets other elements.
    NonFiniteError
        Non-finite start positions; :class:`~mdmlkit.errors.UnstableDynamicsError`
        (a ``NonFiniteError``) when the dynamics blows up, naming the step.
    CheckpointMismatchError
        Existing checkpoint/trajectory made with different settings (names the
        settings and the file); pass ``overwrite=True`` to rerun.
    """
    _check_heat_args(t_start, t_end, rate_K_per_ps, timestep_fs, sample_every, thermostat,
                     friction, seed, checkpoint_every, duration_ps, max_steps)
    _check_real("min_distance", min_distance, "Å")
    a = prepare_atoms(atoms)
    _check_distances(a, float(min_distance))
    factory, instance = calculator_factory(calculator)
    check_elements([a], instance, "atoms", owner="the potential")
    seed = int(seed)
    rid = run_id if run_id is not None else default_run_id(a, seed)
    proto = Protocol.build(t_start, t_end, rate_K_per_ps, duration_ps, timestep_fs,
                           int(sample_every), int(checkpoint_every), seed, rid, friction, thermostat)
    params = _run_params(proto, instance, structure_hash(a))
    if trajectory is not None:
        prepare_run_files(Path(trajectory), params, proto, len(a), resume, overwrite)
    engine = ASEEngine(a, factory, instance, proto)
    return drive(engine, proto, params, a, trajectory, resume, progress,
                 None if max_steps is None else int(max_steps), callback)


def _run_params(proto: Protocol, calc_instance: Any, structure: str | None) -> dict[str, Any]:
    """The settings recorded for a run (checkpoint and sidecar)."""
    params = dict(proto.as_dict(), engine="ase", calculator=type(calc_instance).__name__)
    if structure is not None:
        params["structure"] = structure
    return params


def _heat_job(job: tuple[int, int, Atoms | None], outdir: Path, settings: HeatingSettings,
              calculator: Any, progress: bool, resume: bool, overwrite: bool = False) -> MDResult:
    """One run of :func:`heat_many` (module level so that process pools can pickle it)."""
    n, s, start = job
    rid = f"Cu{n}_{settings.kind}_s{s}"
    path = outdir / f"{rid}.extxyz"
    if start is None:                      # finished before: returned unchanged
        frames = read_trajectory(path)
        return MDResult(frames, path, rid, s, int(frames[-1].info["step"]), skipped=True)
    return heat(start, calculator, seed=s, trajectory=path, run_id=rid, progress=progress,
                resume=resume, overwrite=overwrite, **settings.heat_kwargs())


def heat_many(sizes: Iterable[int], seeds: Iterable[int] = (0,), outdir: PathLike = "runs",
              settings: HeatingSettings | None = None, calculator: Any = "asap3",
              progress: bool = True, resume: bool = True, executor: Any = None,
              n_jobs: int | None = None, overwrite: bool = False) -> list[MDResult]:
    """Independent heating runs of Cu_n for every size and seed; finished runs are skipped.

    Each run ``Cu<n>_<kind>_s<seed>`` starts from :func:`mdmlkit.systems.cu_clusters.make_cluster`
    ``(n, settings.kind)`` (built once per size, here) and writes ``outdir/<run_id>.extxyz``.
    Rerunning resumes interrupted runs and returns finished ones unchanged
    (``resume=False`` reruns all).  ``settings`` (default :class:`HeatingSettings()`) gives
    the ramp.  Results are in the order ``(size, seed) for size in sizes for seed in seeds``.

    Every existing run is checked against ``settings`` and ``calculator`` before anything
    runs: a run made with other settings raises
    :class:`~mdmlkit.errors.CheckpointMismatchError` naming the file and the settings,
    unless ``overwrite=True`` (then it is rerun into its file).

    ``executor`` / ``n_jobs`` run the runs in parallel through
    :func:`mdmlkit.parallel.run_tasks` (``None`` with ``n_jobs`` None or 1: serial;
    ``"process"``, a ``concurrent.futures.Executor`` or a dask ``Client``).  Every run is
    seeded and independent, so the frames are identical to a serial run's; give the
    calculator by name or as a picklable factory for process pools and dask.  In
    parallel only the bar over runs is shown.
    """
    from functools import partial

    from mdmlkit.parallel import run_tasks
    from mdmlkit.systems.cu_clusters import make_cluster

    settings = settings if settings is not None else HeatingSettings()
    outdir = Path(outdir)
    sizes, seeds = list(sizes), list(seeds)
    for n in sizes:
        _check_int("cluster size", n, 2)
    for s in seeds:
        _check_int("seed", s, 0)
    sizes, seeds = [int(n) for n in sizes], [int(s) for s in seeds]
    if not sizes or not seeds:
        raise InputError("heat_many needs at least one size and one seed")
    start: dict[int, Atoms] = {}
    jobs: list[tuple[int, int, Atoms | None]] = []
    calc_instance = None
    for n in sizes:
        for s in seeds:
            rid = f"Cu{n}_{settings.kind}_s{s}"
            path = outdir / f"{rid}.extxyz"
            if resume and (path.exists() or RunFiles(path).ckpt.exists()):
                kw = settings.heat_kwargs()
                proto = Protocol.build(kw["t_start"], kw["t_end"], kw["rate_K_per_ps"], None,
                                       kw["timestep_fs"], kw["sample_every"],
                                       kw["checkpoint_every"], s, rid, kw["friction"],
                                       kw["thermostat"])
                if calc_instance is None:
                    calc_instance = calculator_factory(calculator)[1]
                diff = _finished_diff(path, _run_params(proto, calc_instance, None), proto, n,
                                      ignore=("structure",))
                if diff and not overwrite:
                    raise _mismatch_error(path, diff)
                if not diff and path.exists():
                    jobs.append((n, s, None))
                    continue
            if n not in start:
                start[n] = make_cluster(n, kind=settings.kind, calculator=calculator)
                start[n].calc = None           # heat() attaches its own; keeps tasks picklable
            jobs.append((n, s, start[n]))
    serial = (executor is None and n_jobs in (None, 1)) or executor == "serial"
    fn = partial(_heat_job, outdir=outdir, settings=settings, calculator=calculator,
                 progress=progress and serial, resume=resume, overwrite=overwrite)
    return run_tasks(fn, jobs, executor=executor, n_jobs=n_jobs, progress=progress,
                     desc="heating runs", names=[f"Cu{n} seed {s}" for n, s, _ in jobs])
