"""Oracles: who labels the structures an active-learning query picks.

The oracle is **any ASE calculator** (CHGNet by default, VASP, Quantum
ESPRESSO, EMT, ...).  :class:`Oracle` wraps it: :meth:`Oracle.label` computes
energy (eV), forces (eV/Å) and, for fully periodic cells when the calculator
offers it, stress (eV/Å³) of each structure, and returns labelled copies (a
``SinglePointCalculator`` holds the labels).

Faults are never fatal and never retried forever: a structure on which the
calculator raises, exceeds ``timeout_s``, returns NaN/inf energies or forces, or
whose atoms are closer than ``min_distance`` is reported in ``failures`` with the
reason, and the other structures are kept.  A label whose largest force component
exceeds ``max_force`` (e.g. a broken MD frame the teacher pushes apart with hundreds
of eV/Å) is a failure too: it is kept in the cache (the call was paid) but not
returned, since one such label dominates a squared-error training loss.  With a :class:`LabelCache`
(:mod:`mdmlkit.active.labelcache`) every label and failure is stored on disk by
structure hash and oracle identity, so reruns, resumed runs and other strategies
never pay twice, and a structure that failed ``max_attempts`` times is skipped.
``n_workers > 1`` labels the cache misses in a pool of worker processes
(``concurrent.futures``, spawn), each with its own calculator from a picklable
factory; results are the same as a serial run's.

:class:`ReplayOracle` is an ASE calculator that reveals the stored labels of a
pre-labelled set (matched by species, positions, cell and pbc), so a labelled
data set can serve as an unlabelled pool plus oracle in benchmarks.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.active.features import structure_fingerprint
from mdmlkit.active.labelcache import LabelCache, oracle_identity
from mdmlkit.errors import (
    EmptyTrajectoryError,
    InputError,
    MissingLabelError,
    OracleError,
    OracleTimeoutError,
)

__all__ = ["Oracle", "LabelResult", "ReplayOracle", "as_oracle", "label_problem"]


@dataclass
class LabelResult:
    """Outcome of :meth:`Oracle.label`.

    Attributes
    ----------
    labelled : dict[int, Atoms]
        Input index -> labelled copy (energy, forces[, stress] on a SinglePointCalculator).
    failures : dict[int, str]
        Input index -> why it could not be labelled.
    times : dict[int, float]
        Input index -> wall time of the calculator call in this call, s (0 for cache hits
        and for structures rejected before a call).
    cached : set[int]
        Input indices answered from the label cache (labels or recorded failures).
    """

    labelled: dict[int, Atoms] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    times: dict[int, float] = field(default_factory=dict)
    cached: set[int] = field(default_factory=set)

    @property
    def time_s(self) -> float:
        return float(sum(self.times.values()))

    def __repr__(self) -> str:
        return (f"LabelResult(labelled={len(self.labelled)}, failed={len(self.failures)}, "
                f"cached={len(self.cached)}, time={self.time_s:.3g} s)")


class Oracle:
    """Label structures with an ASE calculator, through a cache, recording failures.

    Parameters
    ----------
    calculator : ASE calculator, zero-argument factory, str, or None
        None: the CHGNet teacher (:func:`mdmlkit.systems.teacher.chgnet_calculator`),
        built on first use; a string is resolved by
        :func:`mdmlkit.systems.teacher.resolve_teacher` ("chgnet", "toy",
        "package.module:factory").
    stress : bool
        Also store the stress of fully periodic cells when the calculator
        implements it (a failing stress call only drops the stress).
    cache : LabelCache, path-like or None
        On-disk label cache (a path makes ``LabelCache(path, max_attempts)``).
    n_workers : int
        Worker processes for cache misses (1: in this process).  Workers build their
        calculator from a picklable factory or name (a calculator instance is pickled).
    timeout_s : float, optional
        Per-structure wall-time limit, s; a structure over it is a failure
        (``OracleTimeoutError``).  Enforced with ``SIGALRM`` in the process that runs
        the calculator (main thread only; in other threads the limit is not applied).
    max_attempts : int
        With a path as ``cache``: failed structures are retried until they failed this
        often (a ``LabelCache`` keeps its own setting).  Without a cache, failures are
        remembered in memory for the life of this oracle with the same rule.
    min_distance : float
        Structures with two atoms closer than this (Å) are failures, not oracle calls.
    max_force : float, optional
        Labels with a force component larger than this (eV/Å) are failures (``LabelOutOfRange``
        in the reason), cached labels included; the label stays in the cache.
    oracle_id : str, optional
        Identity string of the labels in the cache (default:
        :func:`mdmlkit.active.labelcache.oracle_identity` of the calculator).
    start_method : {"spawn", "fork", "forkserver"}
        How worker processes start ("spawn": safe with torch/CUDA in this process;
        "fork": faster start on Linux).

    Attributes
    ----------
    n_calls, n_failures, n_cache_hits : int
        Calculator calls, failures (incl. cached and geometry failures) and cache hits.
    time_s : float
        Total wall time spent in the calculator, s.
    """

    def __init__(self, calculator=None, stress: bool = True, cache: LabelCache | str | Path | None = None,
                 n_workers: int = 1, timeout_s: float | None = None, max_attempts: int = 2,
                 min_distance: float = 0.5, max_force: float | None = None,
                 oracle_id: str | None = None, start_method: str = "spawn"):
        if int(n_workers) < 1:
            raise InputError(f"n_workers must be >= 1, got {n_workers}")
        if timeout_s is not None and not timeout_s > 0:
            raise InputError(f"timeout_s must be positive or None, got {timeout_s}")
        if int(max_attempts) < 1:
            raise InputError(f"max_attempts must be >= 1, got {max_attempts}")
        if isinstance(calculator, str):
            from mdmlkit.systems.teacher import resolve_teacher

            calculator = resolve_teacher(calculator, threads=1 if int(n_workers) > 1 else None)
        self._spec = calculator
        self._calc = calculator if _is_calculator(calculator) else None
        self.stress = bool(stress)
        self.cache = cache if isinstance(cache, LabelCache) or cache is None else LabelCache(
            cache, max_attempts=max_attempts)
        self.n_workers = int(n_workers)
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        self.max_attempts = int(max_attempts)
        self.min_distance = float(min_distance)
        if max_force is not None and not max_force > 0:
            raise InputError(f"max_force must be positive (eV/Å) or None, got {max_force}")
        self.max_force = None if max_force is None else float(max_force)
        self._oracle_id = oracle_id
        if start_method not in ("spawn", "fork", "forkserver"):
            raise InputError(f"start_method must be 'spawn', 'fork' or 'forkserver', got {start_method!r}")
        self.start_method = start_method
        self._attempts: dict[str, int] = {}     # fingerprint -> failed attempts (no cache)
        self.n_calls = 0
        self.n_failures = 0
        self.n_cache_hits = 0
        self.time_s = 0.0

    @property
    def calculator(self):
        if self._calc is None:
            self._calc = self._factory()()
        return self._calc

    def _factory(self):
        if self._spec is None:
            from mdmlkit.systems.teacher import resolve_teacher

            return resolve_teacher("chgnet", threads=1 if self.n_workers > 1 else None)
        if _is_calculator(self._spec):
            return _Fixed(self._spec)
        if callable(self._spec):
            return self._spec
        raise InputError(f"oracle must be an ASE calculator, a factory or a name, got {self._spec!r}")

    @property
    def oracle_id(self) -> str:
        """Identity string of this oracle's labels (calculator, version, model, settings)."""
        if self._oracle_id is None:
            self._oracle_id = oracle_identity(self.calculator)
        return self._oracle_id

    def __repr__(self) -> str:
        name = type(self._calc).__name__ if self._calc is not None else (
            "CHGNet (not loaded)" if self._spec is None else repr(self._spec))
        cache = "" if self.cache is None else f", cache={str(self.cache.path)!r}"
        gate = "" if self.max_force is None else f", max_force={self.max_force:g} eV/Å"
        return (f"Oracle({name}, n_workers={self.n_workers}, timeout_s={self.timeout_s}{cache}{gate}, "
                f"calls={self.n_calls}, failures={self.n_failures}, cache_hits={self.n_cache_hits}, "
                f"time={self.time_s:.3g} s)")

    # ------------------------------------------------------------------ labelling
    def label(self, frames: Sequence[Atoms], progress: bool = False,
              desc: str = "labelling") -> LabelResult:
        """Label ``frames``; returns the labelled copies and the failures by input index.

        Cache hits are answered without calling the calculator; a structure that already
        failed ``max_attempts`` times is reported as failed again without a call.  Every
        new label or failure is written to the cache as soon as it is known, so a killed
        run loses at most the calls in flight.
        """
        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError("oracle: no structures to label")
        out = LabelResult()
        todo: list[int] = []
        for k, atoms in enumerate(frames):
            out.times[k] = 0.0
            reason = _geometry_problem(atoms, self.min_distance)
            if reason is not None:
                out.failures[k] = f"structure {k}: {reason}"
                self.n_failures += 1
                continue
            if self.cache is not None:
                entry = self.cache.get(atoms, self.oracle_id)
                if entry is not None and entry.ok and self._lacks_stress(atoms, entry):
                    entry = None            # made without the stress this oracle wants: relabel
                if entry is not None and entry.ok:
                    out.labelled[k] = entry.labelled(atoms)
                    out.cached.add(k)
                    self.n_cache_hits += 1
                    continue
                if not self.cache.should_retry(entry):
                    out.failures[k] = f"{entry.error} (cached; failed {entry.attempts}x, not retried)"
                    out.cached.add(k)
                    self.n_cache_hits += 1
                    self.n_failures += 1
                    continue
            elif self._attempts.get(structure_fingerprint(atoms), 0) >= self.max_attempts:
                out.failures[k] = (f"failed {self._attempts[structure_fingerprint(atoms)]}x "
                                   "before, not retried")
                self.n_failures += 1
                continue
            todo.append(k)
        if todo:
            for k, res, reason, dt in self._compute(frames, todo, progress, desc):
                self._record(frames[k], k, res, reason, dt, out)
        if self.max_force is not None:
            for k in sorted(out.labelled):
                reason = _force_problem(out.labelled[k], self.max_force)
                if reason is not None:
                    del out.labelled[k]
                    out.failures[k] = f"structure {k}: {reason}"
                    self.n_failures += 1
        return out

    def _lacks_stress(self, atoms: Atoms, entry) -> bool:
        """True when a cached label has no stress, this oracle wants one for ``atoms`` and the
        label was made without asking for it (a label whose oracle was asked but gave none
        is kept)."""
        if not self.stress or not atoms.pbc.all() or "stress" in entry.results \
                or entry.stress_requested:
            return False
        return "stress" in getattr(self.calculator, "implemented_properties", ())

    def _record(self, atoms: Atoms, k: int, res: dict | None, reason: str | None, dt: float,
                out: LabelResult) -> None:
        out.times[k] = dt
        self.n_calls += 1
        self.time_s += dt
        if res is None:
            self.n_failures += 1
            out.failures[k] = reason or "unknown failure"
            if self.cache is not None:
                self.cache.put_failure(atoms, self.oracle_id, out.failures[k], dt)
            else:
                fp = structure_fingerprint(atoms)
                self._attempts[fp] = self._attempts.get(fp, 0) + 1
            return
        if self.cache is not None:
            self.cache.put(atoms, self.oracle_id, res, dt,
                           stress_requested=self.stress and bool(atoms.pbc.all()))
        lab = atoms.copy()
        lab.calc = SinglePointCalculator(lab, **res)
        out.labelled[k] = lab

    def _compute(self, frames: list[Atoms], todo: list[int], progress: bool,
                 desc: str) -> Iterator[tuple[int, dict | None, str | None, float]]:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc, disable=not progress, leave=False)
        try:
            if self.n_workers == 1 or len(todo) == 1:
                calc = self.calculator
                for k in todo:
                    yield (k, *_timed_label(frames[k], calc, self.stress, self.timeout_s))
                    bar.update()
                return
            yield from self._compute_parallel(frames, todo, bar)
        finally:
            bar.close()

    def _compute_parallel(self, frames, todo, bar):
        import multiprocessing as mp
        import pickle
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        factory = self._factory()
        try:
            pickle.dumps(factory)
        except Exception as exc:  # noqa: BLE001 - any pickling failure
            raise InputError(f"n_workers={self.n_workers} needs a picklable calculator factory or a "
                             f"name such as 'chgnet'; {factory!r} cannot be pickled ({exc})") from exc
        _ = self.oracle_id                # fixed before the workers start
        left = set(todo)
        try:
            with ProcessPoolExecutor(max_workers=min(self.n_workers, len(todo)),
                                     mp_context=mp.get_context(self.start_method),
                                     initializer=_worker_init, initargs=(factory,)) as pool:
                futures = {pool.submit(_worker_label, frames[k], self.stress, self.timeout_s): k
                           for k in todo}
                for fut in as_completed(futures):
                    k = futures[fut]
                    try:
                        res, reason, dt = fut.result()
                    except BrokenProcessPool:
                        raise
                    except Exception as exc:  # noqa: BLE001 - e.g. unpicklable result
                        res, reason, dt = None, f"worker error: {type(exc).__name__}: {exc}", 0.0
                    left.discard(k)
                    yield k, res, reason, dt
                    bar.update()
        except BrokenProcessPool as exc:   # a worker died (crash, out of memory): the rest fail
            for k in sorted(left):
                yield k, None, f"oracle worker process died: {exc}", 0.0
                bar.update()


class _Fixed:
    """Picklable factory returning (a copy of, in another process) one calculator."""

    def __init__(self, calc):
        self.calc = calc

    def __call__(self):
        return self.calc

    def __repr__(self) -> str:
        return repr(self.calc)


_WORKER_CALC = None


def _worker_init(factory) -> None:
    global _WORKER_CALC
    from mdmlkit.parallel import exit_with_parent

    exit_with_parent()
    _WORKER_CALC = factory()


def _worker_label(atoms: Atoms, stress: bool, timeout_s: float | None):
    return _timed_label(atoms, _WORKER_CALC, stress, timeout_s)


def _is_calculator(obj) -> bool:
    return isinstance(obj, Calculator) or (not isinstance(obj, type) and hasattr(
        obj, "get_potential_energy") and hasattr(obj, "get_forces"))


def as_oracle(oracle) -> Oracle:
    """An :class:`Oracle` from an Oracle, an ASE calculator, a factory, a name or None (CHGNet)."""
    return oracle if isinstance(oracle, Oracle) else Oracle(oracle)


def _geometry_problem(atoms: Atoms, min_distance: float) -> str | None:
    """Why ``atoms`` cannot be labelled (non-finite coordinates, atoms too close), or None."""
    from ase.neighborlist import neighbor_list

    pos = np.asarray(atoms.positions, dtype=float)
    if not np.all(np.isfinite(pos)) or not np.all(np.isfinite(atoms.cell.array)):
        return "non-finite positions or cell"
    if len(atoms) < 2 or min_distance <= 0:
        return None
    try:
        i, j, d = neighbor_list("ijd", atoms, min_distance)
    except Exception as exc:  # noqa: BLE001 - a degenerate cell
        return f"cannot build a neighbour list: {type(exc).__name__}: {exc}"
    if len(d):
        m = int(np.argmin(d))
        return (f"AtomsTooCloseError: atoms {int(i[m])} and {int(j[m])} are {float(d[m]):.3f} Å "
                f"apart, less than {min_distance} Å")
    return None


def label_problem(labelled: Atoms, max_force: float | None = None, min_distance: float = 0.0
                  ) -> str | None:
    """Why a labelled structure should not be trained on, or None: non-finite positions, two
    atoms closer than ``min_distance`` (Å), or a force component above ``max_force`` (eV/Å).
    The gate :class:`Oracle` applies, for labels that come from elsewhere (a labelled pool)."""
    reason = _geometry_problem(labelled, min_distance)
    if reason is None and max_force is not None:
        reason = _force_problem(labelled, max_force)
    return reason


def _force_problem(labelled: Atoms, max_force: float) -> str | None:
    """Why a label is out of range (a force component above ``max_force``, eV/Å), or None."""
    f = np.abs(np.asarray(labelled.get_forces(), dtype=float))
    if f.size == 0 or f.max() <= max_force:
        return None
    i = int(np.argmax(f.max(axis=1)))
    return (f"LabelOutOfRange: force {float(f.max()):.1f} eV/Å on atom {i} exceeds max_force "
            f"{max_force} eV/Å (label kept in the cache, not used)")


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`OracleTimeoutError` after ``seconds`` (SIGALRM; main thread only)."""
    if seconds is None or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise OracleTimeoutError(f"oracle call exceeded {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _timed_label(atoms: Atoms, calc, want_stress: bool,
                 timeout_s: float | None) -> tuple[dict | None, str | None, float]:
    t0 = time.perf_counter()
    try:
        with _time_limit(timeout_s):
            res, reason = _label_one(atoms, calc, want_stress)
    except OracleTimeoutError as exc:
        res, reason = None, f"OracleTimeoutError: {exc}"
    return res, reason, time.perf_counter() - t0


def _label_one(atoms: Atoms, calc, want_stress: bool) -> tuple[dict | None, str | None]:
    work = atoms.copy()
    work.calc = calc
    try:
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=float)
    except (KeyboardInterrupt, SystemExit, OracleTimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 - any calculator failure is recorded, not fatal
        return None, f"{type(exc).__name__}: {exc}"
    bad = [name for name, v in (("energy", energy), ("forces", forces)) if not np.all(np.isfinite(v))]
    if bad:
        return None, f"non-finite {' and '.join(bad)} returned by the oracle"
    if forces.shape != (len(atoms), 3):
        return None, f"forces of shape {forces.shape}, expected ({len(atoms)}, 3)"
    results: dict[str, Any] = {"energy": energy, "forces": forces}
    props = getattr(calc, "implemented_properties", ())
    if want_stress and atoms.pbc.all() and "stress" in props:
        try:
            stress = np.array(work.get_stress(voigt=True), dtype=float)
            if np.all(np.isfinite(stress)):
                results["stress"] = stress
        except (KeyboardInterrupt, SystemExit, OracleTimeoutError):
            raise
        except Exception:  # noqa: BLE001 - stress is optional
            pass
    return results, None


class ReplayOracle(Calculator):
    """ASE calculator that returns the stored labels of pre-labelled structures.

    Parameters
    ----------
    frames : sequence of ase.Atoms
        Labelled structures (energy, forces and optionally stress on their
        calculators, e.g. from :func:`mdmlkit.systems.la2zr2o7.load_la2zr2o7`).

    A structure is found by its fingerprint (atomic numbers, positions and cell
    rounded to 1e-6 Å, pbc).  Asking for a structure that is not in the set
    raises :class:`~mdmlkit.errors.OracleError`; stored non-finite labels are
    returned as they are (the :class:`Oracle` then records a failure).

    Attributes
    ----------
    n_calls : int
        Structures revealed so far.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, frames: Sequence[Atoms], **kwargs):
        super().__init__(**kwargs)
        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError("ReplayOracle: no labelled structures")
        self._table: dict[str, dict[str, Any]] = {}
        for k, a in enumerate(frames):
            res = dict(getattr(a.calc, "results", None) or {})
            if "energy" not in res and "energy" in a.info:
                res["energy"] = a.info["energy"]
            if "forces" not in res and "forces" in a.arrays:
                res["forces"] = a.arrays["forces"]
            if "energy" not in res or "forces" not in res:
                raise MissingLabelError(f"ReplayOracle: structure {k} has no energy/forces labels")
            self._table[structure_fingerprint(a)] = {
                key: (np.array(v, dtype=float) if key != "energy" else float(np.asarray(v)))
                for key, v in res.items() if key in ("energy", "forces", "stress")}
        self.n_calls = 0

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"ReplayOracle(n_structures={len(self)}, calls={self.n_calls})"

    def __contains__(self, atoms: Atoms) -> bool:
        return structure_fingerprint(atoms) in self._table

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        key = structure_fingerprint(self.atoms)
        stored = self._table.get(key)
        if stored is None:
            raise OracleError(f"ReplayOracle: structure {self.atoms.get_chemical_formula()} "
                              f"(fingerprint {key[:12]}) is not in the pre-labelled set")
        if "stress" in properties and "stress" not in stored:
            raise PropertyNotImplementedError("ReplayOracle: no stored stress for this structure")
        self.n_calls += 1
        e = stored["energy"]
        self.results = {"energy": e, "free_energy": e, "forces": stored["forces"].copy()}
        if "stress" in stored:
            self.results["stress"] = stored["stress"].copy()
