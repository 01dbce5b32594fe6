"""Oracles: who labels the structures an active-learning query picks.

The oracle is **any ASE calculator** (CHGNet by default, VASP, Quantum
ESPRESSO, EMT, ...).  :class:`Oracle` wraps it: :meth:`Oracle.label` computes
energy (eV), forces (eV/Å) and, for fully periodic cells when the calculator
offers it, stress (eV/Å³) of each structure, and returns labelled copies (a
``SinglePointCalculator`` holds the labels).  A structure on which the
calculator raises, or returns NaN/inf energies or forces, is *not* fatal: it is
reported in ``failures`` with the reason and the other structures are kept.

:class:`ReplayOracle` is an ASE calculator that reveals the stored labels of a
pre-labelled set (matched by species, positions, cell and pbc), so a labelled
data set can serve as an unlabelled pool plus oracle in benchmarks.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.active.features import structure_fingerprint
from mdmlkit.errors import EmptyTrajectoryError, InputError, MissingLabelError, OracleError

__all__ = ["Oracle", "LabelResult", "ReplayOracle", "as_oracle"]


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
        Input index -> wall time of the calculator call, s.
    """

    labelled: dict[int, Atoms] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    times: dict[int, float] = field(default_factory=dict)

    @property
    def time_s(self) -> float:
        return float(sum(self.times.values()))

    def __repr__(self) -> str:
        return (f"LabelResult(labelled={len(self.labelled)}, failed={len(self.failures)}, "
                f"time={self.time_s:.3g} s)")


class Oracle:
    """Label structures with an ASE calculator, recording failures instead of stopping.

    Parameters
    ----------
    calculator : ASE calculator, zero-argument factory, or None
        None: the CHGNet teacher (:func:`mdmlkit.systems.teacher.chgnet_calculator`),
        built on first use.
    stress : bool
        Also store the stress of fully periodic cells when the calculator
        implements it (a failing stress call only drops the stress).

    Attributes
    ----------
    n_calls, n_failures : int
    time_s : float
        Total wall time spent in the calculator, s.
    """

    def __init__(self, calculator=None, stress: bool = True):
        self._spec = calculator
        self._calc = calculator if _is_calculator(calculator) else None
        self.stress = bool(stress)
        self.n_calls = 0
        self.n_failures = 0
        self.time_s = 0.0

    @property
    def calculator(self):
        if self._calc is None:
            if self._spec is None:
                from mdmlkit.systems.teacher import chgnet_calculator

                self._calc = chgnet_calculator()
            elif callable(self._spec):
                self._calc = self._spec()
            else:
                raise InputError(f"oracle must be an ASE calculator or a factory, got {self._spec!r}")
        return self._calc

    def __repr__(self) -> str:
        name = type(self._calc).__name__ if self._calc is not None else (
            "CHGNet (not loaded)" if self._spec is None else repr(self._spec))
        return (f"Oracle({name}, calls={self.n_calls}, failures={self.n_failures}, "
                f"time={self.time_s:.3g} s)")

    def label(self, frames: Sequence[Atoms], progress: bool = False,
              desc: str = "labelling") -> LabelResult:
        """Label ``frames``; returns the labelled copies and the failures by input index."""
        from tqdm.auto import tqdm

        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError("oracle: no structures to label")
        calc = self.calculator
        out = LabelResult()
        for k, atoms in enumerate(tqdm(frames, desc=desc, disable=not progress, leave=False)):
            t0 = time.perf_counter()
            res, reason = _label_one(atoms, calc, self.stress)
            out.times[k] = time.perf_counter() - t0
            self.n_calls += 1
            self.time_s += out.times[k]
            if res is None:
                self.n_failures += 1
                out.failures[k] = reason
            else:
                out.labelled[k] = res
        return out


def _is_calculator(obj) -> bool:
    return isinstance(obj, Calculator) or (hasattr(obj, "get_potential_energy")
                                           and hasattr(obj, "get_forces"))


def as_oracle(oracle) -> Oracle:
    """An :class:`Oracle` from an Oracle, an ASE calculator, a factory or None (CHGNet)."""
    return oracle if isinstance(oracle, Oracle) else Oracle(oracle)


def _label_one(atoms: Atoms, calc, want_stress: bool) -> tuple[Atoms | None, str | None]:
    work = atoms.copy()
    work.calc = calc
    try:
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=float)
    except (KeyboardInterrupt, SystemExit):
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
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - stress is optional
            pass
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, **results)
    return out, None


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
