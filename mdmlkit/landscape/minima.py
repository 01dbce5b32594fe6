"""Inherent structures: quench frames to their local minima, merge duplicates, name shapes.

::

    from mdmlkit.landscape.minima import quench, deduplicate_minima

    res = quench(frames, fmax=1e-3, n_jobs=2)      # every frame -> its local minimum
    res                                              # counts of converged / flagged frames
    res.to_table()                                   # one row per frame (pandas)
    mins = deduplicate_minima(res)                   # == res.minima
    mins.to_table()                                  # one row per distinct minimum
    mins.frame_minimum                               # minimum id of every frame (-1: flagged)

Quench
------
Each frame is minimised on its own (a fresh calculator per frame when the calculator is
given by name or factory, so serial and parallel runs give identical numbers): FIRE
down to a loose tolerance (``fire_fmax``, default 0.05 eV/Å), then L-BFGS down to
``fmax``.  Both optimisers share one step budget (``max_steps``) and move no atom by
more than ``max_step_A`` Å per step.  A frame is

* ``"converged"``: largest atomic force below ``fmax`` (eV/Å) and the cluster intact;
* ``"not converged"``: step budget exhausted (kept in the table, never used as a minimum);
* ``"exploded"``: some atom(s) detached, i.e. the bond graph with bonds shorter than
  ``detach_A`` (default 3.0 Å, between the first (2.55 Å) and second (3.61 Å)
  neighbour shells of Cu) falls apart: an atom farther than ``detach_A`` from every
  other atom, or a fragment that left the cluster;
* ``"failed"``: the calculator raised or returned NaN/inf (the message says what).

Flagged frames are reported by frame index and, when ``atoms.info`` has one, ``run_id``.

Distinct minima
---------------
Two converged frames are the same minimum when they have the same composition, their
energies differ by at most ``energy_tol`` (eV) and their *sorted pair distances*
(:class:`~mdmlkit.landscape.fingerprints.SortedPairDistances`: invariant to
permutation, rotation, translation and inversion, so mirror images merge) differ by at
most ``fingerprint_tol`` Å in every entry.  Frames are taken in order of energy; each
joins the first (lowest) earlier minimum it matches or starts a new one.

Morphology
----------
:func:`classify_minimum` names the morphology family of a minimised cluster from
common-neighbour analysis (:mod:`mdmlkit.landscape.structure`): complete Mackay
icosahedra, icosahedra with adatoms, with rosettes or with other defects, decahedra,
fcc/twinned and disordered minima; the rules are in its docstring.  They use the
structure alone, never a map.

Units: Å, eV, eV/Å.
"""
from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from mdmlkit.errors import EmptyTrajectoryError, InputError, OptionalDependencyError
from mdmlkit.landscape.fingerprints import SortedPairDistances
from mdmlkit.landscape.structure import (
    ADATOM_MAX_CN,
    icosahedral_defects,
    motif_label,
    neighbor_matrix,
)
from mdmlkit.parallel import run_tasks
from mdmlkit.systems.cu_clusters import cu_calculator
from mdmlkit.utils import ELEMENTS_ATTR, check_elements, check_frames

__all__ = [
    "METHODS", "STATUSES", "MORPHOLOGIES", "QuenchSettings", "QuenchResult", "DistinctMinima",
    "quench", "deduplicate_minima", "classify_minimum", "detached_atoms",
]

#: Optimiser sequences accepted by :func:`quench`.
METHODS = ("fire+lbfgs", "fire", "lbfgs")
#: Per-frame outcomes of :func:`quench`.
STATUSES = ("converged", "not converged", "exploded", "failed")
#: Labels returned by :func:`classify_minimum` (rules in its docstring).
MORPHOLOGIES = ("icosahedral", "icosahedral+adatom", "icosahedral+rosette",
                "icosahedral-defective", "decahedral", "fcc/twinned", "disordered")


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class QuenchSettings:
    """How :func:`quench` minimises each frame.

    Attributes
    ----------
    fmax : float
        Convergence: largest atomic force below this, eV/Å.
    max_steps : int
        Most optimiser steps per frame, FIRE and L-BFGS together.
    method : {"fire+lbfgs", "fire", "lbfgs"}
        Optimisers (ASE ``FIRE`` / ``LBFGS``); ``"fire+lbfgs"`` runs FIRE to ``fire_fmax``
        and L-BFGS from there to ``fmax``.
    max_step_A : float
        Largest displacement of any atom in one optimiser step, Å (both optimisers).
    fire_fmax : float
        Loose tolerance (eV/Å) at which ``"fire+lbfgs"`` hands over to L-BFGS.
    detach_A : float
        Bond length (Å) for the intact-cluster check (module docstring).
    vacuum : float
        Vacuum (Å) around a non-periodic cluster: it is centred in a box this far from
        every face before minimising (asap3 needs a cell).
    """

    fmax: float = 1e-3
    max_steps: int = 3000
    method: str = "fire+lbfgs"
    max_step_A: float = 0.2
    fire_fmax: float = 0.05
    detach_A: float = 3.0
    vacuum: float = 8.0

    def __post_init__(self) -> None:
        for name in ("fmax", "max_step_A", "fire_fmax", "detach_A"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"quench: {name} must be a positive number, got {v!r}")
        if not (isinstance(self.vacuum, (int, float)) and math.isfinite(self.vacuum)
                and self.vacuum >= 0):
            raise InputError(f"quench: vacuum must be >= 0 Å, got {self.vacuum!r}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)) \
                or self.max_steps < 1:
            raise InputError(f"quench: max_steps must be an integer >= 1, got {self.max_steps!r}")
        if self.method not in METHODS:
            raise InputError(f"quench: unknown method {self.method!r}; choose from {METHODS}")


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True, eq=False)
class QuenchResult:
    """Local minima of a list of frames (output of :func:`quench`).

    Attributes
    ----------
    structures : list of ase.Atoms
        Minimised copy of every frame (no calculator), input ``info`` kept and extended by
        ``E_min`` (eV), ``quench_steps``, ``quench_fmax`` (eV/Å), ``quench_status``,
        ``frame``.  Flagged frames hold the last geometry reached.
    energies : float array [n_frames]
        Energy of the final geometry, eV (NaN when the calculator failed).
    n_steps : int array [n_frames]
        Optimiser steps taken.
    fmax : float array [n_frames]
        Largest atomic force of the final geometry, eV/Å.
    converged : bool array [n_frames]
        ``fmax`` below ``settings.fmax``.
    status : str array [n_frames]
        One of :data:`STATUSES`.
    messages : list of str
        Why a frame is flagged ("" for converged frames).
    run_ids : list
        ``atoms.info["run_id"]`` of each input frame (None when absent).
    settings : QuenchSettings
    """

    structures: list
    energies: np.ndarray
    n_steps: np.ndarray
    fmax: np.ndarray
    converged: np.ndarray
    status: np.ndarray
    messages: list
    run_ids: list
    settings: QuenchSettings = field(default_factory=QuenchSettings)

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def positions(self) -> list[np.ndarray]:
        """Minimised positions of every frame, ``[n_atoms, 3]`` each, Å."""
        return [a.get_positions() for a in self.structures]

    @property
    def valid(self) -> np.ndarray:
        """``[n_frames]`` bool: frames usable as minima (status ``"converged"``)."""
        return np.asarray(self.status) == "converged"

    def flagged(self) -> list[dict[str, Any]]:
        """Frames that are not minima: ``[{"frame", "run_id", "status", "message"}, ...]``."""
        return [{"frame": k, "run_id": self.run_ids[k], "status": str(self.status[k]),
                 "message": self.messages[k]} for k in np.flatnonzero(~self.valid)]

    @property
    def minima(self) -> DistinctMinima:
        """:func:`deduplicate_minima` with its default tolerances."""
        return deduplicate_minima(self)

    @classmethod
    def concatenate(cls, results: Sequence[QuenchResult]) -> QuenchResult:
        """One result for the frames of ``results`` in order (e.g. chunks of a checkpointed
        quench); all must share the same settings.  ``info["frame"]`` of each structure is
        renumbered to its index in the concatenation."""
        results = list(results)
        if not results:
            raise EmptyTrajectoryError("QuenchResult.concatenate: no results")
        for k, r in enumerate(results):
            if not isinstance(r, QuenchResult):
                raise InputError(f"QuenchResult.concatenate: item {k} is {type(r).__name__}, "
                                 "not a QuenchResult")
            if r.settings != results[0].settings:
                raise InputError(f"QuenchResult.concatenate: item {k} was quenched with "
                                 f"{r.settings}, item 0 with {results[0].settings}")
        structures = [a.copy() for r in results for a in r.structures]
        for k, a in enumerate(structures):
            a.info["frame"] = k
        return cls(
            structures=structures,
            energies=np.concatenate([r.energies for r in results]),
            n_steps=np.concatenate([r.n_steps for r in results]),
            fmax=np.concatenate([r.fmax for r in results]),
            converged=np.concatenate([r.converged for r in results]),
            status=np.concatenate([np.asarray(r.status) for r in results]),
            messages=[m for r in results for m in r.messages],
            run_ids=[i for r in results for i in r.run_ids],
            settings=results[0].settings)

    def to_table(self):
        """One row per frame as a ``pandas.DataFrame``: frame, run_id, E_min_eV, n_steps,
        fmax_eV_per_A, converged, status, message."""
        pd = _pandas("QuenchResult.to_table")
        return pd.DataFrame({
            "frame": np.arange(len(self)), "run_id": self.run_ids,
            "E_min_eV": self.energies, "n_steps": self.n_steps,
            "fmax_eV_per_A": self.fmax, "converged": self.converged,
            "status": self.status, "message": self.messages})

    def __repr__(self) -> str:
        n = len(self)
        sizes = sorted({len(a) for a in self.structures})
        what = f"{n} frame(s) of {'/'.join(map(str, sizes))} atoms" if n else "0 frames"
        parts = []
        for s in STATUSES:
            k = np.flatnonzero(np.asarray(self.status) == s)
            if not k.size:
                continue
            if s == "converged":
                parts.append(f"{k.size} converged")
                continue
            where = ", ".join(_where(int(i), self.run_ids[i]) for i in k[:5])
            parts.append(f"{k.size} {s} ({where}{', ...' if k.size > 5 else ''})")
        e = self.energies[self.valid]
        erange = f"; E_min {e.min():.4f}..{e.max():.4f} eV" if e.size else ""
        st = self.settings
        return (f"QuenchResult({what}: {', '.join(parts) or 'none'}{erange}; "
                f"method={st.method!r}, fmax={st.fmax:g} eV/Å, max_steps={st.max_steps})")


@dataclass(frozen=True, eq=False)
class DistinctMinima:
    """Distinct local minima found by :func:`deduplicate_minima`, ordered by energy.

    Attributes
    ----------
    frame_minimum : int array [n_frames]
        Minimum id of each frame; -1 for flagged frames (not converged / exploded / failed).
    energies : float array [n_minima]
        Energy of each minimum (its representative's), eV, ascending.
    representatives : int array [n_minima]
        Frame index of each minimum's lowest-energy member.
    counts : int array [n_minima]
        Frames that quenched into each minimum.
    structures : list of ase.Atoms [n_minima]
        Minimised structure of each representative.
    morphologies : list of str [n_minima]
        :func:`classify_minimum` of each representative (None when not classified).
    run_ids : list [n_minima]
        ``run_id`` of each representative (None when absent).
    energy_tol, fingerprint_tol : float
        Tolerances used (eV, Å).
    """

    frame_minimum: np.ndarray
    energies: np.ndarray
    representatives: np.ndarray
    counts: np.ndarray
    structures: list
    morphologies: list
    run_ids: list
    energy_tol: float
    fingerprint_tol: float

    def __len__(self) -> int:
        return len(self.energies)

    def to_table(self):
        """One row per minimum as a ``pandas.DataFrame``: minimum, E_eV, dE_eV (above the
        lowest), count, fraction (of the valid frames), frame (representative), run_id,
        morphology."""
        pd = _pandas("DistinctMinima.to_table")
        total = max(int(self.counts.sum()), 1)
        e0 = self.energies[0] if len(self) else 0.0
        return pd.DataFrame({
            "minimum": np.arange(len(self)), "E_eV": self.energies, "dE_eV": self.energies - e0,
            "count": self.counts, "fraction": self.counts / total,
            "frame": self.representatives, "run_id": self.run_ids,
            "morphology": self.morphologies})

    def __repr__(self) -> str:
        n_valid = int(self.counts.sum())
        n_flag = int(np.count_nonzero(self.frame_minimum < 0))
        rows = []
        for m in range(min(len(self), 5)):
            morph = f" {self.morphologies[m]}" if self.morphologies[m] else ""
            rows.append(f"#{m}: {self.energies[m]:.4f} eV x{self.counts[m]}{morph}")
        more = f", ... ({len(self) - 5} more)" if len(self) > 5 else ""
        return (f"DistinctMinima({len(self)} minima from {n_valid} converged frame(s)"
                f"{f', {n_flag} flagged' if n_flag else ''}; {'; '.join(rows)}{more}; "
                f"energy_tol={self.energy_tol:g} eV, fingerprint_tol={self.fingerprint_tol:g} Å)")


def _where(frame: int, run_id: Any) -> str:
    return f"frame {frame}" + (f" of run {run_id!r}" if run_id is not None else "")


def _pandas(source: str):
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas ships with the notebook stack
        raise OptionalDependencyError(f"{source} needs pandas (pip install pandas)") from exc
    return pd


# ----------------------------------------------------------------------------- calculators

def _calculator_spec(calculator: Any, parallel: bool) -> tuple[str, Any]:
    """``(kind, value)``: ("name", engine), ("factory", callable) or ("instance", calc)."""
    if calculator == "lammps":
        return "lammps", None                      # LAMMPS minimize, default Cu EAM
    if calculator is None or isinstance(calculator, str):
        engine = calculator or "asap3"
        cu_calculator(engine)                      # validates the name (InputError)
        return "name", engine
    if isinstance(calculator, BaseCalculator) or hasattr(calculator, "get_potential_energy"):
        if parallel:
            try:
                pickle.dumps(calculator)
            except Exception as exc:
                raise InputError(
                    f"quench: the calculator {type(calculator).__name__} cannot be sent to "
                    f"worker processes ({exc}); pass its name or a picklable zero-argument "
                    "factory (a module-level function or class) for n_jobs > 1") from None
        return "instance", calculator
    if callable(calculator):
        return "factory", calculator
    raise InputError(f"quench: calculator must be 'asap3', 'ase', an ASE calculator or a "
                     f"zero-argument factory, got {type(calculator).__name__}")


def _make_calculator(spec: tuple[str, Any]) -> Any:
    kind, value = spec
    if kind == "name":
        return cu_calculator(value)
    if kind == "factory":
        return value()
    return value


def _elements_of(spec: tuple[str, Any]) -> Any:
    """What :func:`check_elements` accepts: the calculator (its ``mdmlkit_elements``) or None."""
    kind, value = spec
    if kind == "lammps":
        from mdmlkit.md.lammps import DEFAULT_EAM, find_potential, potential_elements

        return tuple(potential_elements(find_potential(DEFAULT_EAM), "eam/alloy"))
    if kind == "name":
        return ("Cu",)
    calc = value() if kind == "factory" else value
    return getattr(calc, ELEMENTS_ATTR, None)


# ----------------------------------------------------------------------------- one frame

def detached_atoms(atoms: Atoms, detach_A: float = 3.0) -> np.ndarray:
    """Indices of atoms outside the largest bonded fragment of ``atoms``.

    Atoms closer than ``detach_A`` Å are bonded; an empty array means one connected
    cluster.  Ties between equally large fragments keep the one with the lowest atom index.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    if len(atoms) < 2:
        return np.zeros(0, dtype=np.int64)
    adj = neighbor_matrix(atoms, cutoff=detach_A)
    n_comp, lab = connected_components(csr_matrix(adj), directed=False)
    if n_comp == 1:
        return np.zeros(0, dtype=np.int64)
    main = int(np.argmax(np.bincount(lab)))
    return np.flatnonzero(lab != main).astype(np.int64)


def _minimise(atoms: Atoms, st: QuenchSettings) -> int:
    """Run the optimisers on ``atoms`` (calculator attached); return the steps taken."""
    from ase.optimize import FIRE, LBFGS

    steps = 0
    if st.method in ("fire+lbfgs", "fire"):
        target = st.fmax if st.method == "fire" else max(st.fmax, st.fire_fmax)
        opt = FIRE(atoms, logfile=None, maxstep=st.max_step_A)
        opt.run(fmax=target, steps=st.max_steps)
        steps += opt.nsteps
    if st.method in ("fire+lbfgs", "lbfgs") and steps < st.max_steps:
        opt = LBFGS(atoms, logfile=None, maxstep=st.max_step_A)
        opt.run(fmax=st.fmax, steps=st.max_steps - steps)
        steps += opt.nsteps
    return steps


def _quench_frame(frame: int, atoms: Atoms, spec: tuple[str, Any], st: QuenchSettings
                  ) -> tuple[int, Atoms, float, int, float, str, str]:
    """``(frame, minimised atoms, E eV, steps, fmax eV/Å, status, message)``."""
    a = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if not a.pbc.any():
        a.center(vacuum=st.vacuum)
    energy, fmax, steps = float("nan"), float("nan"), 0
    try:
        if spec[0] == "lammps":
            from mdmlkit.md.lammps import minimize_lammps

            r = minimize_lammps(a, fmax=st.fmax, max_steps=st.max_steps,
                                min_style="cg" if st.method == "lbfgs" else "fire",
                                max_step_A=st.max_step_A, vacuum=st.vacuum)[0]
            a.positions = r["positions"]
            energy, fmax, steps = r["energy"], r["fmax"], r["steps"]
        else:
            a.calc = _make_calculator(spec)
            steps = _minimise(a, st)
            energy = float(a.get_potential_energy())
            forces = a.get_forces()
            fmax = float(np.sqrt((forces ** 2).sum(axis=1).max()))
    except Exception as exc:  # a broken geometry or calculator must not stop the whole run
        status, message = "failed", f"calculator error: {type(exc).__name__}: {exc}"
    else:
        if not (math.isfinite(energy) and math.isfinite(fmax)):
            status, message = "failed", f"non-finite energy ({energy}) or forces after {steps} steps"
        else:
            status, message = "converged", ""
    out = Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc)
    out.info.update(atoms.info)
    if status == "converged" and np.isfinite(out.positions).all():
        lost = detached_atoms(out, st.detach_A)
        if lost.size:
            status = "exploded"
            message = (f"atom(s) {lost[:10].tolist()}{' ...' if lost.size > 10 else ''} "
                       f"detached from the cluster (no bond shorter than {st.detach_A:g} Å "
                       f"to the main fragment)")
        elif fmax >= st.fmax:
            status = "not converged"
            message = f"fmax {fmax:.2e} eV/Å after {steps} steps (limit {st.max_steps})"
    out.info.update(E_min=energy, quench_steps=int(steps), quench_fmax=fmax,
                    quench_status=status, frame=frame)
    return frame, out, energy, int(steps), fmax, status, message


def _quench_chunk(items: list[tuple[int, Atoms]], spec: tuple[str, Any], st: QuenchSettings
                  ) -> list[tuple[int, Atoms, float, int, float, str, str]]:
    """Quench ``(frame, atoms)`` pairs (runs in worker processes)."""
    return [_quench_frame(k, a, spec, st) for k, a in items]


# ----------------------------------------------------------------------------- quench

def quench(frames: Sequence[Atoms] | Atoms, calculator: Any = "asap3", fmax: float = 1e-3,
           max_steps: int = 3000, method: str = "fire+lbfgs", max_step_A: float = 0.2,
           n_jobs: int = 1, executor: Any = None, progress: bool = True,
           fire_fmax: float = 0.05, detach_A: float = 3.0, vacuum: float = 8.0) -> QuenchResult:
    """Minimise every frame to its local minimum (inherent structure).

    Parameters
    ----------
    frames : list of ase.Atoms (or one Atoms)
        Clusters, e.g. MD frames; not modified.  Sizes may differ.
    calculator : "asap3" | "ase" | "lammps" | ASE calculator | zero-argument factory
        Potential.  Names give Cu EMT (:func:`mdmlkit.systems.cu_clusters.cu_calculator`);
        names and factories make a fresh calculator per frame; an instance is shared
        (and pickled to the workers when running in parallel).  ``"lammps"``: LAMMPS
        ``minimize`` with the Cu EAM of Mishin et al.
        (:func:`mdmlkit.md.lammps.minimize_lammps`): ``min_style fire`` for the methods
        "fire" and "fire+lbfgs" (straight to ``fmax``), ``cg`` for "lbfgs"; ``max_steps``
        bounds its iterations and ``max_step_A`` its ``dmax``.
    fmax : float
        Convergence criterion: largest atomic force, eV/Å.
    max_steps : int
        Most optimiser steps per frame (FIRE and L-BFGS together); frames that need more
        are flagged ``"not converged"``.
    method : {"fire+lbfgs", "fire", "lbfgs"}
        Optimisers (module docstring).
    max_step_A : float
        Largest displacement of any atom per optimiser step, Å.
    n_jobs : int
        Worker processes (``concurrent.futures.ProcessPoolExecutor``, spawn start, one
        thread each); 1 = serial.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run on this executor instead (not shut down here); frames are sent in chunks
        through :func:`mdmlkit.parallel.run_tasks`, so the result equals the serial one.
    progress : bool
        tqdm progress bar (over frames serially, over chunks of frames in parallel).
    fire_fmax : float
        FIRE -> L-BFGS hand-over tolerance, eV/Å (``"fire+lbfgs"`` only).
    detach_A : float
        Bond length (Å) of the intact-cluster check (module docstring).
    vacuum : float
        Vacuum (Å) around a non-periodic cluster while it is minimised.

    Returns
    -------
    QuenchResult
        Identical numbers for serial and parallel runs (each frame is independent).

    Raises
    ------
    EmptyTrajectoryError
        no frames.
    NonFiniteError
        NaN/inf positions (names the frame and atoms).
    UnknownElementError
        an element the calculator does not cover (names the frame and atom).
    InputError
        bad settings, a frame with fewer than 2 atoms, or an object that is not ase.Atoms.
    """
    st = QuenchSettings(fmax=fmax, max_steps=max_steps, method=method, max_step_A=max_step_A,
                        fire_fmax=fire_fmax, detach_A=detach_A, vacuum=vacuum)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise InputError(f"quench: n_jobs must be an integer >= 1, got {n_jobs!r}")
    frames = _check_input(frames)
    parallel = executor is not None or n_jobs > 1
    spec = _calculator_spec(calculator, parallel)
    elements = _elements_of(spec)
    check_elements(frames, elements, source="quench (structure = frame)",
                   owner="the calculator")

    items = list(enumerate(frames))
    if not parallel:
        from tqdm.auto import tqdm

        rows = [_quench_frame(k, atoms, spec, st)
                for k, atoms in tqdm(items, desc="quench", disable=not progress, leave=False)]
    else:
        workers = n_jobs if executor is None else max(n_jobs, os.cpu_count() or 1)
        size = max(1, math.ceil(len(items) / (4 * workers)))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        names = [f"frames {c[0][0]}..{c[-1][0]}" for c in chunks]
        parts = run_tasks(partial(_quench_chunk, spec=spec, st=st), chunks, executor=executor,
                          n_jobs=n_jobs, progress=progress, desc="quench", names=names)
        rows = [r for part in parts for r in part]
    return QuenchResult(
        structures=[r[1] for r in rows],
        energies=np.array([r[2] for r in rows], dtype=np.float64),
        n_steps=np.array([r[3] for r in rows], dtype=np.int64),
        fmax=np.array([r[4] for r in rows], dtype=np.float64),
        converged=np.array([r[4] < st.fmax for r in rows], dtype=bool),
        status=np.array([r[5] for r in rows], dtype=object).astype(str),
        messages=[r[6] for r in rows],
        run_ids=[a.info.get("run_id") for a in frames],
        settings=st)


def _check_input(frames: Sequence[Atoms] | Atoms) -> list[Atoms]:
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise EmptyTrajectoryError("quench: no frames to quench")
    for k, a in enumerate(frames):
        if not isinstance(a, Atoms):
            raise InputError(f"quench: frame {k} is {type(a).__name__}, not ase.Atoms")
        if len(a) < 2:
            raise InputError(f"quench: frame {k} has {len(a)} atom(s); a cluster needs at least 2")
    check_frames(frames, source="quench")
    return frames


# ----------------------------------------------------------------------------- duplicates

def deduplicate_minima(result: QuenchResult, energy_tol: float = 1e-3,
                       fingerprint_tol: float = 0.02, classify: bool = True) -> DistinctMinima:
    """Group the converged frames of ``result`` into distinct minima.

    Parameters
    ----------
    result : QuenchResult
    energy_tol : float
        Largest energy difference (eV) within one minimum.
    fingerprint_tol : float
        Largest difference (Å) of any entry of the sorted pair-distance lists within one
        minimum.  The default 0.02 Å is well above the scatter of structures converged
        to ``fmax = 1e-3`` eV/Å (about 1e-4 Å for Cu13, up to about 4e-3 Å for soft,
        low-symmetry Cu147 minima) and well below the change of at least one distance
        between different minima (0.25 Å and more for Cu55 and Cu147).
    classify : bool
        Run :func:`classify_minimum` on every representative.

    Returns
    -------
    DistinctMinima
        Minima ordered by energy (id 0 = lowest); flagged frames get id -1.
    """
    for name, v in (("energy_tol", energy_tol), ("fingerprint_tol", fingerprint_tol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise InputError(f"deduplicate_minima: {name} must be a number >= 0, got {v!r}")
    if not isinstance(result, QuenchResult):
        raise InputError(f"deduplicate_minima: expected a QuenchResult, got {type(result).__name__}")
    valid = np.flatnonzero(result.valid)
    energies = np.asarray(result.energies, dtype=np.float64)
    # fingerprints, grouped by composition (sorted atomic numbers)
    keys = {int(k): tuple(np.sort(result.structures[k].numbers)) for k in valid}
    fps: dict[int, np.ndarray] = {}
    for key in set(keys.values()):
        members = [k for k in valid if keys[k] == key]
        X = SortedPairDistances().fit_transform([result.structures[k] for k in members])
        fps.update(zip(members, X))
    order = valid[np.lexsort((valid, energies[valid]))]      # by energy, ties by frame
    frame_minimum = np.full(len(result), -1, dtype=np.int64)
    reps: list[int] = []
    rep_energies: list[float] = []                           # ascending: reps come in order
    for k in order:
        first = int(np.searchsorted(rep_energies, energies[k] - energy_tol, side="left"))
        for m in range(first, len(reps)):
            r = reps[m]
            if keys[r] == keys[k] and np.max(np.abs(fps[k] - fps[r])) <= fingerprint_tol:
                frame_minimum[k] = m
                break
        else:
            frame_minimum[k] = len(reps)
            reps.append(int(k))
            rep_energies.append(float(energies[k]))
    rep = np.array(reps, dtype=np.int64)
    structures = [result.structures[r].copy() for r in rep]
    return DistinctMinima(
        frame_minimum=frame_minimum,
        energies=energies[rep] if rep.size else np.zeros(0),
        representatives=rep,
        counts=np.bincount(frame_minimum[frame_minimum >= 0], minlength=len(rep)).astype(np.int64),
        structures=structures,
        morphologies=[classify_minimum(a) if classify else None for a in structures],
        run_ids=[result.run_ids[r] for r in rep],
        energy_tol=float(energy_tol), fingerprint_tol=float(fingerprint_tol))


# ----------------------------------------------------------------------------- morphology

def classify_minimum(atoms: Atoms, cutoff: float | None = None, surface_cn: int = 10,
                     min_order: float = 0.5, min_mackay: float = 0.5,
                     adatom_cn: int = ADATOM_MAX_CN) -> str:
    """Morphology family of a minimised cluster, one of :data:`MORPHOLOGIES`.

    Built on :func:`mdmlkit.landscape.structure.icosahedral_defects` (per-atom CNA
    environments compared with those of a Mackay icosahedron; adatoms; rosettes) and
    :func:`~mdmlkit.landscape.structure.motif_label`.  Rules, in order:

    *Icosahedral families*: some atom is an icosahedral centre (12 x 555) and at least
    ``min_mackay`` (default 0.5) of the atoms are in a Mackay environment; then

    1. ``"icosahedral"``: every atom is in a Mackay environment (complete Mackay
       icosahedron, e.g. Cu13, Cu55, Cu147 ground states of EMT);
    2. ``"icosahedral+adatom"``: defects include adatoms (coordination <= ``adatom_cn``,
       default 4) and no rosette, e.g. the vertex vacancy + facet adatom minima of Cu55
       and Cu147 (0.61 / 0.63 eV above the Mackay icosahedron with EMT);
    3. ``"icosahedral+rosette"``: defects include a rosette (a six-membered ring, a bond
       with 6 common neighbours) and no adatom, e.g. the Cu55 minima 0.87-0.94 eV up;
    4. ``"icosahedral-defective"``: other or mixed defects (several kinds at once, an
       incomplete outer shell, a disordered surface on an intact icosahedral core).

    *Other ordered families*, from ``motif_label`` (at least ``min_order`` of the
    interior atoms, coordination >= ``surface_cn``, fcc/hcp/ico/five-fold-axis):

    5. ``"decahedral"``: some atom on a five-fold axis (10 x 422 + 2 x 555), no
       icosahedral centre;
    6. ``"fcc/twinned"``: only fcc/hcp order (single crystals, twins, stacking faults,
       the Cu13 cuboctahedron whose centre is 12 x 421);

    7. ``"disordered"``: everything else: amorphous and polyicosahedral minima of the
       quenched liquid, including those with an icosahedral centre but fewer than
       ``min_mackay`` of the atoms in Mackay environments.

    Parameters
    ----------
    atoms : ase.Atoms
        A minimised cluster (the rules assume a quenched, not a thermal, structure).
    cutoff : float, optional
        Bond cutoff (Å); ``None`` = adaptive (see :mod:`mdmlkit.landscape.structure`).
    surface_cn, min_order : see :func:`~mdmlkit.landscape.structure.motif_label`.
    min_mackay : float
        Least fraction of atoms in Mackay environments for the icosahedral families.
    adatom_cn : int
        Largest coordination of an adatom.
    """
    if not (isinstance(min_mackay, (int, float)) and 0.0 <= min_mackay <= 1.0):
        raise InputError(f"classify_minimum: min_mackay must be in [0, 1], got {min_mackay!r}")
    d = icosahedral_defects(atoms, cutoff=cutoff, adatom_cn=adatom_cn)
    if d.centres.size and d.mackay_fraction >= min_mackay:
        if not d.defect_atoms.size:
            return "icosahedral"
        adatom, rosette = bool(d.adatoms.size), bool(len(d.rosette_bonds))
        if adatom and not rosette:
            return "icosahedral+adatom"
        if rosette and not adatom:
            return "icosahedral+rosette"
        return "icosahedral-defective"
    label = motif_label(atoms, cutoff=cutoff, surface_cn=surface_cn, min_order=min_order)
    if label == "decahedral":
        return "decahedral"
    if label == "fcc-like":
        return "fcc/twinned"
    return "disordered"
