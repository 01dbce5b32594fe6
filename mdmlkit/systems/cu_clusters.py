"""Starting structures for Cu_n nanoclusters.

Magic-size motifs come straight from :mod:`ase.cluster` (Mackay icosahedra,
Ino/Marks decahedra, octahedra / cuboctahedra / truncated octahedra).  Other
sizes are made by the cheap strategy first: take the nearest structures of each
motif, remove the least bound atoms (highest per-atom energy) or add atoms on
the best surface hollow sites, relaxing after each change; an optional
basin-hopping search (:func:`basin_hopping`) can refine the result.

All structures are relaxed and centred in a vacuum box (asap3 needs a non-zero
cell even for non-periodic systems).  Units: Å, eV, eV/Å.

>>> atoms = make_cluster(147)                     # doctest: +SKIP
>>> atoms.info["structure"], atoms.info["E_relaxed"]   # doctest: +SKIP
('icosahedron(4)', 48.38...)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.cluster import Decahedron, Icosahedron, Octahedron
from ase.optimize import FIRE

from mdmlkit.errors import InputError, NonFiniteError
from mdmlkit.utils import ELEMENTS_ATTR, check_elements

__all__ = [
    "KINDS", "cu_calculator", "relax", "magic_sizes", "motif",
    "make_cluster", "basin_hopping",
]

KINDS = ("icosahedron", "decahedron", "octahedron")
#: Largest magic structure enumerated (atoms); bigger clusters are out of scope here.
MAX_MAGIC_ATOMS = 400


# --------------------------------------------------------------------------- calculators
def cu_calculator(engine: str = "asap3") -> BaseCalculator:
    """EMT calculator for copper.

    Parameters
    ----------
    engine : {"asap3", "ase"}
        ``"asap3"`` (default): the fast C++ EMT of asap3.  ``"ase"``: ASE's pure
        Python EMT (slower, slightly different parameters; no extra dependency).

    The returned calculator carries ``mdmlkit_elements = ("Cu",)``;
    :func:`relax`, :func:`mdmlkit.md.heating.heat` and friends refuse other elements
    with :class:`~mdmlkit.errors.UnknownElementError`.
    """
    if engine == "asap3":
        from asap3 import EMT

        calc = EMT()
    elif engine == "ase":
        from ase.calculators.emt import EMT

        calc = EMT()
    else:
        raise InputError(f"unknown engine {engine!r}; use 'asap3' or 'ase'")
    setattr(calc, ELEMENTS_ATTR, ("Cu",))
    return calc


def _check_finite(atoms: Atoms, source: str) -> None:
    pos = atoms.get_positions()
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise NonFiniteError(f"{source}: non-finite position for atom(s) {bad[:10].tolist()}")


def _ensure_box(atoms: Atoms, vacuum: float) -> Atoms:
    """Centre a non-periodic cluster in a box with ``vacuum`` Å on each side."""
    if not atoms.pbc.any():
        atoms.center(vacuum=vacuum)
    return atoms


# --------------------------------------------------------------------------- relaxation
def relax(atoms: Atoms, calc: BaseCalculator | None = None, fmax: float = 1e-3,
          steps: int = 3000, vacuum: float = 8.0) -> Atoms:
    """Relax ``atoms`` in place with FIRE until the largest force is below ``fmax``.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure; a non-periodic cluster is centred in a box with ``vacuum`` Å
        on each side first.
    calc : calculator, optional
        Default: ``atoms.calc`` if set, else ``cu_calculator()`` (asap3 EMT).
    fmax : float
        Force convergence criterion, eV/Å.
    steps : int
        Maximum optimiser steps.

    Returns the same ``atoms`` (with the calculator attached) for chaining;
    ``atoms.info["E_relaxed"]`` (eV) and ``atoms.info["fmax_reached"]`` are set.
    """
    if calc is None:
        calc = atoms.calc if atoms.calc is not None else cu_calculator()
    check_elements([atoms], calc, "relax", owner="the potential")
    _check_finite(atoms, "relax")
    _ensure_box(atoms, vacuum)
    atoms.calc = calc
    opt = FIRE(atoms, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    f = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1).max())) if len(atoms) else 0.0
    _ensure_box(atoms, vacuum)
    atoms.info["E_relaxed"] = float(atoms.get_potential_energy())
    atoms.info["fmax_reached"] = f
    return atoms


# --------------------------------------------------------------------------- magic motifs
def _ico(k: int) -> Atoms:
    return Icosahedron("Cu", k)


def magic_sizes(kind: str, max_atoms: int = MAX_MAGIC_ATOMS) -> dict[int, list[tuple]]:
    """Sizes ASE can build directly for ``kind``: ``{n_atoms: [parameter tuples]}``.

    icosahedron: ``(noshells,)``; decahedron: ``(p, q, r)`` (r = 0 Ino, r > 0
    Marks re-entrances; compact shapes only, p >= 2 and q <= p + 1); octahedron: ``(length, cutoff)`` (``length = 2*cutoff + 1``
    is the cuboctahedron, other cutoffs truncated octahedra).  Sizes use
    closed-form counts and are cached.
    """
    if kind not in KINDS:
        raise InputError(f"unknown cluster kind {kind!r}; choose from {KINDS}")
    key = (kind, max_atoms)
    if key not in _MAGIC_CACHE:
        _MAGIC_CACHE[key] = _enumerate(kind, max_atoms)
    return _MAGIC_CACHE[key]


_MAGIC_CACHE: dict[tuple, dict[int, list[tuple]]] = {}


def _enumerate(kind: str, max_atoms: int) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    if kind == "icosahedron":
        k = 1
        while (n := (10 * k**3 - 15 * k**2 + 11 * k - 3) // 3) <= max_atoms:
            out.setdefault(n, []).append((k,))
            k += 1
    elif kind == "decahedron":
        # p = 1 is a linear chain and q >> p a rod: keep compact shapes (p >= 2,
        # q <= p + 1).  Sizes grow monotonically with p, q and r: stop each loop once too big.
        for p in range(2, 64):
            if len(Decahedron("Cu", p, 1, 0)) > max_atoms:
                break
            for q in range(1, p + 2):
                if len(Decahedron("Cu", p, q, 0)) > max_atoms:
                    break
                for r in range(0, 64):
                    n = len(Decahedron("Cu", p, q, r))
                    if n > max_atoms:
                        break
                    out.setdefault(n, []).append((p, q, r))
    else:
        for length in range(2, 64):
            if len(Octahedron("Cu", length, (length - 1) // 2)) > max_atoms:
                break
            for cutoff in range((length - 1) // 2, -1, -1):
                n = len(Octahedron("Cu", length, cutoff))
                if n > max_atoms:
                    break
                out.setdefault(n, []).append((length, cutoff))
    return dict(sorted(out.items()))


def motif(kind: str, params: tuple) -> Atoms:
    """Build the unrelaxed Cu motif ``kind`` with ASE parameters ``params``."""
    if kind == "icosahedron":
        atoms = _ico(*params)
    elif kind == "decahedron":
        atoms = Decahedron("Cu", *params)
    elif kind == "octahedron":
        atoms = Octahedron("Cu", *params)
    else:
        raise InputError(f"unknown cluster kind {kind!r}; choose from {KINDS}")
    atoms = Atoms(atoms.numbers, atoms.positions, pbc=False)
    atoms.info["structure"] = f"{kind}{params}".replace(",)", ")")
    return atoms


# --------------------------------------------------------------------------- grow / shrink
def _relaxed_copy(atoms: Atoms, calc_factory: Callable[[], BaseCalculator], fmax: float,
                  label: str) -> Atoms:
    a = Atoms(atoms.numbers, atoms.positions, pbc=False)
    a.info["structure"] = label
    return relax(a, calc_factory(), fmax=fmax)


def _per_atom_badness(atoms: Atoms) -> np.ndarray:
    """Per-atom energy (eV) if the calculator offers it, else minus the coordination."""
    try:
        return np.asarray(atoms.get_potential_energies())
    except Exception:  # calculators without per-atom energies
        return -_coordination(atoms.positions)


def _bond_length(pos: np.ndarray) -> float:
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def _coordination(pos: np.ndarray, factor: float = 1.2) -> np.ndarray:
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return (d < factor * _bond_length(pos)).sum(axis=1)


def _shrink(atoms: Atoms, n: int, calc_factory, fmax: float) -> Atoms:
    """Remove the highest-energy atom, relax, repeat until ``n`` atoms remain."""
    label = atoms.info.get("structure", "cluster")
    removed = 0
    while len(atoms) > n:
        i = int(np.argmax(_per_atom_badness(atoms)))
        del atoms[i]
        removed += 1
        atoms = _relaxed_copy(atoms, calc_factory, max(fmax, 0.05), f"{label}-{removed}")
    return atoms


def hollow_sites(atoms: Atoms, min_distance_factor: float = 0.85) -> np.ndarray:
    """Candidate adatom positions (Å) above every triangle of bonded surface atoms.

    Each site sits on the outward normal of the triangle (pointing away from
    the centre of mass) at the height that puts it one bond length from the
    triangle's corners; sites clashing with existing atoms are dropped.
    """
    pos = atoms.positions
    n = len(pos)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    b = _bond_length(pos)
    adj = d < 1.2 * b
    surface = adj.sum(axis=1) < 12
    adj &= surface[:, None] & surface[None, :]
    i, j = np.nonzero(np.triu(adj, 1))
    common = adj[i] & adj[j]                          # [edges, n]
    e, k = np.nonzero(common)
    keep = k > j[e]
    tri = np.stack([i[e][keep], j[e][keep], k[keep]], axis=1)
    if len(tri) == 0:
        return np.zeros((0, 3))
    a, bb, c = pos[tri[:, 0]], pos[tri[:, 1]], pos[tri[:, 2]]
    centre = (a + bb + c) / 3.0
    normal = np.cross(bb - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    com = pos.mean(axis=0)
    normal *= np.sign(np.einsum("ij,ij->i", centre - com, normal))[:, None]
    r2 = np.mean([((v - centre) ** 2).sum(axis=1) for v in (a, bb, c)], axis=0)
    h = np.sqrt(np.clip(b**2 - r2, 0.25 * b**2, None))
    sites = centre + h[:, None] * normal
    dmin = np.linalg.norm(sites[:, None] - pos[None], axis=-1).min(axis=1)
    sites = sites[dmin > min_distance_factor * b]
    if len(sites) == 0 or n == 0:
        return sites
    # merge near-duplicates (sites shared by neighbouring triangles)
    rounded = np.round(sites / 0.3).astype(np.int64)
    _, first = np.unique(rounded, axis=0, return_index=True)
    return sites[np.sort(first)]


def _grow(atoms: Atoms, n: int, calc_factory, fmax: float, n_try: int = 4) -> Atoms:
    """Add atoms one at a time at the best hollow site (lowest relaxed energy)."""
    label = atoms.info.get("structure", "cluster")
    added = 0
    while len(atoms) < n:
        sites = hollow_sites(atoms)
        if len(sites) == 0:
            raise InputError(f"{label}: found no surface site to grow the cluster")
        calc = calc_factory()
        energies = np.empty(len(sites))
        for s, site in enumerate(sites):  # single-point screening of candidate sites
            trial = atoms.copy()
            trial.append("Cu")
            trial.positions[-1] = site
            trial.calc = calc
            energies[s] = trial.get_potential_energy()
        added += 1
        best = None
        for s in np.argsort(energies)[:n_try]:
            trial = Atoms(atoms.numbers, atoms.positions, pbc=False)
            trial.append("Cu")
            trial.positions[-1] = sites[s]
            trial = _relaxed_copy(trial, calc_factory, max(fmax, 0.05), f"{label}+{added}")
            if best is None or trial.info["E_relaxed"] < best.info["E_relaxed"]:
                best = trial
        atoms = best
    return atoms


def _neighbours(kind: str, n: int) -> list[tuple[int, tuple]]:
    """Magic sizes of ``kind`` to start from: ``n`` itself and/or the closest below/above."""
    sizes = magic_sizes(kind, max(MAX_MAGIC_ATOMS, 2 * n + 20))
    keys = np.array([m for m in sizes if m >= 2])   # a single atom is no motif to grow
    below, above = keys[keys < n][-1:], keys[keys > n][:1]
    cands = [int(m) for m in np.concatenate([below, above])]
    # exact size always; else the nearer neighbour always; others only if few atoms to move
    nearest = 0 if n in sizes else min(abs(m - n) for m in cands)
    out = [(n, p) for p in sizes.get(n, [])]
    for m in cands:
        if abs(m - n) == nearest or abs(m - n) <= max(3, n // 25):
            out += [(m, p) for p in sizes[m]]
    return out


def _build(kind: str, n: int, calc_factory, fmax: float) -> Atoms:
    best = None
    for m, params in _neighbours(kind, n):
        atoms = _relaxed_copy(motif(kind, params), calc_factory, max(fmax, 0.05),
                              motif(kind, params).info["structure"])
        if m > n:
            atoms = _shrink(atoms, n, calc_factory, fmax)
        elif m < n:
            atoms = _grow(atoms, n, calc_factory, fmax)
        atoms = _relaxed_copy(atoms, calc_factory, fmax, atoms.info["structure"])
        if best is None or atoms.info["E_relaxed"] < best.info["E_relaxed"]:
            best = atoms
    if best is None:
        raise InputError(f"cannot build a Cu{n} {kind}")
    return best


# --------------------------------------------------------------------------- basin hopping
def basin_hopping(atoms: Atoms, calc_factory: Callable[[], BaseCalculator] | None = None,
                  n_hops: int = 50, temperature_K: float = 1500.0, step: float = 0.4,
                  fmax: float = 1e-3, seed: int = 0, progress: bool = False) -> Atoms:
    """Basin-hopping (Monte Carlo on relaxed minima) from ``atoms``; returns the best minimum.

    Each hop displaces every atom uniformly in ``[-step, step]`` Å per Cartesian
    component, relaxes (FIRE, ``fmax`` eV/Å) and accepts with the Metropolis
    probability ``exp(-ΔE / k_B T)`` at ``temperature_K``.  Deterministic given
    ``seed``.  The result's ``info["structure"]`` gains ``"+bh"`` if a hop improved it.
    """
    from ase.units import kB
    from tqdm.auto import tqdm

    calc_factory = calc_factory or cu_calculator
    rng = np.random.default_rng(seed)
    label = atoms.info.get("structure", "cluster")
    cur = _relaxed_copy(atoms, calc_factory, fmax, label)
    best = cur
    for _ in tqdm(range(n_hops), desc="basin hopping", disable=not progress):
        trial = Atoms(cur.numbers, cur.positions + rng.uniform(-step, step, (len(cur), 3)),
                      pbc=False)
        trial = _relaxed_copy(trial, calc_factory, fmax, label + "+bh")
        dE = trial.info["E_relaxed"] - cur.info["E_relaxed"]
        if dE < 0 or rng.random() < np.exp(-dE / (kB * temperature_K)):
            cur = trial
        if cur.info["E_relaxed"] < best.info["E_relaxed"] - 1e-6:
            best = cur
    return best


# --------------------------------------------------------------------------- entry point
def make_cluster(n: int, kind: str = "auto", calculator: BaseCalculator | Callable | str | None = None,
                 seed: int = 0, fmax: float = 1e-3, hops: int = 0, vacuum: float = 8.0,
                 progress: bool = False) -> Atoms:
    """A relaxed Cu_n cluster centred in a vacuum box.

    Parameters
    ----------
    n : int
        Number of atoms (≥ 2).
    kind : {"auto", "icosahedron", "decahedron", "octahedron"}
        Motif.  ``"auto"`` builds every motif and keeps the lowest relaxed
        energy.  Sizes that are not magic for the motif are made from the
        nearest magic structures by removing the highest-energy atoms / adding
        atoms on the best hollow sites, relaxing after each change.
    calculator : calculator, zero-argument factory, "asap3", "ase" or None
        Potential used for relaxation (default: asap3 EMT via :func:`cu_calculator`).
        A calculator instance is reused for every candidate.
    seed : int
        Seed of the optional basin-hopping refinement.
    fmax : float
        Final force criterion, eV/Å.
    hops : int
        Basin-hopping steps after the construction (0: none).
    vacuum : float
        Vacuum on each side of the box, Å.

    Returns
    -------
    ase.Atoms with ``info["structure"]`` (how it was made, e.g. ``"icosahedron(4)-1"``
    = 4-shell Mackay icosahedron minus one atom), ``info["E_relaxed"]`` (eV) and a
    calculator attached.
    """
    n = int(n)
    if n < 2:
        raise InputError(f"cluster size must be at least 2 atoms, got {n}")
    calc_factory = _as_factory(calculator)
    kinds = KINDS if kind == "auto" else (kind,)
    for k in kinds:
        if k not in KINDS:
            raise InputError(f"unknown cluster kind {kind!r}; choose 'auto' or one of {KINDS}")
    best = None
    for k in kinds:
        atoms = _build(k, n, calc_factory, fmax)
        if best is None or atoms.info["E_relaxed"] < best.info["E_relaxed"]:
            best = atoms
    if hops:
        best = basin_hopping(best, calc_factory, n_hops=hops, fmax=fmax, seed=seed,
                             progress=progress)
    best.center(vacuum=vacuum)
    best.info["n_atoms"] = len(best)
    return best


def _as_factory(calculator) -> Callable[[], BaseCalculator]:
    if calculator is None:
        return cu_calculator
    if isinstance(calculator, str):
        return lambda: cu_calculator(calculator)
    if isinstance(calculator, type):
        return calculator
    if isinstance(calculator, BaseCalculator) or hasattr(calculator, "get_potential_energy"):
        return lambda: calculator
    if callable(calculator):
        return calculator
    raise InputError(f"calculator must be a calculator, a factory or 'asap3'/'ase', got "
                     f"{type(calculator).__name__}")
