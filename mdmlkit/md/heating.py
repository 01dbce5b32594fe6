"""Heating MD of nanoclusters: linear temperature ramps (ASE dynamics, asap3 EMT by default).

:func:`heat` runs a linear ramp with a Langevin (or Bussi) thermostat and writes an
extxyz trajectory whose frames carry the ``atoms.info`` keys of
:data:`mdmlkit.md.trajectory.INFO_KEYS`; runs are checkpointed and resumable (see
:mod:`mdmlkit.md.engine`).  :func:`heat_many` heats Cu_n for many sizes and seeds.
Constant-temperature, NVE and NPT runs: :func:`mdmlkit.md.runs.run_md`.

>>> from mdmlkit.systems.cu_clusters import make_cluster          # doctest: +SKIP
>>> res = heat(make_cluster(147), "asap3", 300, 1300, rate_K_per_ps=5,
...            trajectory="runs/Cu147_s0.extxyz")       # doctest: +SKIP
>>> res.table()["E_pot"]                                # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mdmlkit.errors import InputError
from mdmlkit.md.engine import (
    ASEEngine,
    MDResult,
    Protocol,
    calculator_factory,
    default_run_id,
    drive,
    prepare_atoms,
    structure_hash,
)
from mdmlkit.md.trajectory import read_trajectory
from mdmlkit.utils import PathLike, check_elements

__all__ = ["THERMOSTATS", "HeatingSettings", "heat", "heat_many"]

#: Thermostats of :func:`heat`.
THERMOSTATS = ("langevin", "bussi", "nve")


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
         max_steps: int | None = None, callback: Callable[[Atoms], Any] | None = None
         ) -> MDResult:
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
        extxyz output (with checkpoint + resume, see :mod:`mdmlkit.md.engine`);
        None keeps frames in memory only.
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
        Non-finite start positions; :class:`~mdmlkit.errors.UnstableDynamicsError`
        (a ``NonFiniteError``) when the dynamics blows up, naming the step.
    CheckpointMismatchError
        Existing checkpoint/trajectory made with different settings.
    """
    if thermostat not in THERMOSTATS:
        raise InputError(f"unknown thermostat {thermostat!r}; choose from {THERMOSTATS}")
    a = prepare_atoms(atoms)
    factory, instance = calculator_factory(calculator)
    check_elements([a], instance, "atoms", owner="the potential")
    rid = run_id if run_id is not None else default_run_id(a, seed)
    proto = Protocol.build(t_start, t_end, rate_K_per_ps, duration_ps, timestep_fs, sample_every,
                           checkpoint_every, seed, rid, friction, thermostat)
    params = dict(proto.as_dict(), engine="ase", calculator=type(instance).__name__,
                  structure=structure_hash(a))
    engine = ASEEngine(a, factory, instance, proto)
    return drive(engine, proto, params, a, trajectory, resume, progress, max_steps, callback)


def _heat_job(job: tuple[int, int, Atoms | None], outdir: Path, settings: HeatingSettings,
              calculator: Any, progress: bool, resume: bool) -> MDResult:
    """One run of :func:`heat_many` (module level so that process pools can pickle it)."""
    n, s, start = job
    rid = f"Cu{n}_{settings.kind}_s{s}"
    path = outdir / f"{rid}.extxyz"
    if start is None:                      # finished before: returned unchanged
        frames = read_trajectory(path)
        return MDResult(frames, path, rid, s, int(frames[-1].info["step"]), skipped=True)
    return heat(start, calculator, seed=s, trajectory=path, run_id=rid, progress=progress,
                resume=resume, **settings.heat_kwargs())


def heat_many(sizes: Iterable[int], seeds: Iterable[int] = (0,), outdir: PathLike = "runs",
              settings: HeatingSettings | None = None, calculator: Any = "asap3",
              progress: bool = True, resume: bool = True, executor: Any = None,
              n_jobs: int | None = None) -> list[MDResult]:
    """Independent heating runs of Cu_n for every size and seed; finished runs are skipped.

    Each run ``Cu<n>_<kind>_s<seed>`` starts from :func:`mdmlkit.systems.cu_clusters.make_cluster`
    ``(n, settings.kind)`` (built once per size, here) and writes ``outdir/<run_id>.extxyz``.
    Rerunning resumes interrupted runs and returns finished ones unchanged
    (``resume=False`` reruns all).  ``settings`` (default :class:`HeatingSettings()`) gives
    the ramp.  Results are in the order ``(size, seed) for size in sizes for seed in seeds``.

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
    sizes, seeds = [int(n) for n in sizes], [int(s) for s in seeds]
    if not sizes or not seeds:
        raise InputError("heat_many needs at least one size and one seed")
    start: dict[int, Atoms] = {}
    jobs: list[tuple[int, int, Atoms | None]] = []
    for n in sizes:
        for s in seeds:
            if resume and (outdir / f"Cu{n}_{settings.kind}_s{s}.extxyz").exists():
                jobs.append((n, s, None))
                continue
            if n not in start:
                start[n] = make_cluster(n, kind=settings.kind, calculator=calculator)
                start[n].calc = None           # heat() attaches its own; keeps tasks picklable
            jobs.append((n, s, start[n]))
    serial = (executor is None and n_jobs in (None, 1)) or executor == "serial"
    fn = partial(_heat_job, outdir=outdir, settings=settings, calculator=calculator,
                 progress=progress and serial, resume=resume)
    return run_tasks(fn, jobs, executor=executor, n_jobs=n_jobs, progress=progress,
                     desc="heating runs", names=[f"Cu{n} seed {s}" for n, s, _ in jobs])
