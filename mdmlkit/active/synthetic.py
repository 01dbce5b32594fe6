"""Small synthetic labelled data sets (ASE EMT) for tests, demos and quick benchmarks.

Periodic fcc Cu/Ni cells (EMT covers Al, Cu, Ag, Au, Ni, Pd, Pt), labelled in
milliseconds, of four kinds (``atoms.info["kind"]``):

* ``"thermal"``: Gaussian (Einstein) displacements for a temperature T,
  σ = sqrt(k_B T / k) with k = 3 eV/Å² (σ ≈ 0.09 Å at 300 K);
* ``"strain"``: random Voigt strain (± ``max_strain``) plus 300 K displacements;
* ``"vacancy"``: one atom removed, then thermal displacements;
* ``"hot"`` is simply ``"thermal"`` at ``T >= 1500 K`` (used as out-of-distribution).

``info`` also carries ``T`` (K) and ``strain`` (largest |ε|).  Energies in eV,
forces eV/Å, stress eV/Å³ on a ``SinglePointCalculator``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import kB

from mdmlkit.errors import InputError

__all__ = ["emt_frames"]

_SPRING = 3.0   # eV/Å², Einstein spring constant used for thermal displacements


def emt_frames(n: int, kind: str = "thermal", temperatures: tuple[float, float] = (300.0, 900.0),
               elements: Sequence[str] = ("Cu", "Ni"), fractions: Sequence[float] = (0.75, 0.25),
               reps: Sequence[int] = (2, 2, 1), a: float = 3.6, max_strain: float = 0.03,
               seed: int = 0) -> list[Atoms]:
    """``n`` labelled periodic fcc alloy cells of one ``kind`` (see module docstring).

    Parameters
    ----------
    n : int
        Number of structures.
    kind : {"thermal", "strain", "vacancy"}
    temperatures : (float, float)
        Uniform range of T (K) for the thermal displacements.
    elements, fractions : sequences
        Random substitutional alloy of these EMT elements with these fractions.
    reps : (int, int, int)
        Repetitions of the 4-atom cubic fcc cell (default 16 atoms).
    a : float
        Lattice parameter, Å.
    max_strain : float
        Largest strain component for ``kind="strain"``.
    seed : int
    """
    from ase.calculators.emt import EMT

    if kind not in ("thermal", "strain", "vacancy"):
        raise InputError(f"kind must be 'thermal', 'strain' or 'vacancy', got {kind!r}")
    if len(elements) != len(fractions) or not np.isclose(sum(fractions), 1.0):
        raise InputError("elements and fractions must match and the fractions sum to 1")
    rng = np.random.default_rng(seed)
    base = bulk(elements[0], "fcc", a=a, cubic=True).repeat(tuple(reps))
    calc = EMT()
    out = []
    for _ in range(n):
        atoms = base.copy()
        atoms.set_chemical_symbols(rng.choice(list(elements), size=len(atoms), p=list(fractions)))
        T = float(rng.uniform(*temperatures))
        eps = 0.0
        if kind == "strain":
            e = rng.uniform(-max_strain, max_strain, 6)
            m = np.array([[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2],
                          [e[4] / 2, e[3] / 2, e[2]]])
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + m), scale_atoms=True)
            eps = float(np.abs(e).max())
            T = 300.0
        if kind == "vacancy":
            del atoms[int(rng.integers(len(atoms)))]
        sigma = np.sqrt(kB * T / _SPRING)
        atoms.positions += rng.normal(0.0, sigma, atoms.positions.shape)
        atoms.calc = calc
        res = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
               "stress": atoms.get_stress()}
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(labelled, **res)
        labelled.info.update({"kind": kind, "T": T, "strain": eps})
        out.append(labelled)
    return out
