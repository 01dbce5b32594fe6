"""Small EMT-labelled Cu/Ni structures shared by the potential, training, committee and DDP tests."""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Octahedron

ELEMENTS = ["Cu", "Ni"]


def emt_frames(n: int, seed: int, rattle: float = 0.08, clusters: int = 0,
               a_range: tuple[float, float] = (3.5, 3.75)) -> list[Atoms]:
    """Rattled, strained Cu/Ni fcc cells (8 atoms, periodic) and small clusters, EMT-labelled.

    ``a_range``: lattice constants (Å) drawn uniformly; ``rattle``: displacement std (Å).
    Labels are stored in a SinglePointCalculator (as ``ase.io.read`` gives for extxyz);
    ``info["kind"]`` is "bulk" or "cluster" (6-atom octahedra, non-periodic).
    """
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n + clusters):
        if k < n:
            atoms = bulk("Cu", "fcc", a=rng.uniform(*a_range), cubic=True).repeat((2, 1, 1))
            kind = "bulk"
        else:
            atoms = Atoms(Octahedron("Cu", 2, latticeconstant=rng.uniform(*a_range)))
            atoms.pbc = False
            kind = "cluster"
        atoms.set_chemical_symbols(rng.choice(ELEMENTS, size=len(atoms)))
        atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info["kind"] = kind
        frames.append(atoms)
    return frames
