"""Structure builders for pyrochlore La2Zr2O7 (and other A2B2O7 pyrochlores).

Pyrochlore A2B2O7 has space group Fd-3m (No. 227).  With origin choice 2
(origin at the B-site inversion centre, as in the International Tables) the
occupied Wyckoff positions are

=======  ======  =====================  ===========================
site     atoms   fractional coordinates  La2Zr2O7
=======  ======  =====================  ===========================
16d      A       (1/2, 1/2, 1/2)         La, 8-fold (6 O48f + 2 O'8b)
16c      B       (0, 0, 0)               Zr, 6-fold (6 O48f)
48f      O       (x, 1/8, 1/8)           O, x ~ 0.33
8b       O'      (3/8, 3/8, 3/8)         O', tetrahedron of 4 La
8a       (empty) (1/8, 1/8, 1/8)         structural vacancy, tetrahedron of 4 Zr
=======  ======  =====================  ===========================

The conventional cubic cell (a ~ 10.8 A) holds 8 formula units (88 atoms,
La16Zr16O56); the face-centred primitive cell holds 2 (22 atoms, La4Zr4O14).
Pyrochlore is an ordered fluorite superstructure: cations on an fcc lattice, the
anions on the simple-cubic sublattice of its tetrahedral holes (spacing a/4),
with one anion site in eight (8a) left empty.

All lengths in A.  Builders return new :class:`ase.Atoms` and never modify their
input.  Defect builders take a ``numpy.random.Generator`` (or a seed) and work on
any cell (primitive, conventional, supercells, strained or thermally displaced
copies) because sites are found from the local geometry, not from stored labels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from mdmlkit.errors import InputError

__all__ = [
    "A_EXP", "X48F_EXP", "conventional_cell", "primitive_cell", "supercell", "strained",
    "voigt_to_matrix", "antisite", "oxygen_vacancies", "frenkel_pair", "inverted_cations",
    "oxygen_sites", "empty_anion_sites", "min_distance", "relax_lattice",
]

#: Experimental room-temperature lattice parameter of La2Zr2O7, A
#: (e.g. Tabira, Withers et al., J. Solid State Chem. 153, 16 (2000): 10.786 A).
A_EXP = 10.786
#: Experimental O48f x parameter of La2Zr2O7 (origin choice 2), same source: 0.3318.
X48F_EXP = 0.332

_FCC_PRIMITIVE = 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def conventional_cell(a: float = A_EXP, x48f: float = X48F_EXP, A: str = "La",
                      B: str = "Zr") -> Atoms:
    """Conventional cubic pyrochlore cell A16B16O56 (88 atoms).

    Parameters
    ----------
    a : float
        Cubic lattice parameter, A.
    x48f : float
        Free x coordinate of the O 48f site (origin choice 2); 0.375 is the
        ideal fluorite value, 0.3125 gives a regular BO6 octahedron.
    A, B : str
        Chemical symbols of the 16d (8-fold) and 16c (6-fold) cations.

    Returns
    -------
    ase.Atoms
        Periodic cubic cell, atoms ordered A(16d), B(16c), O(48f), O'(8b).
    """
    from ase.spacegroup import crystal

    if not a > 0:
        raise InputError(f"lattice parameter a must be positive, got {a!r} A")
    if not 0.25 < x48f < 0.5:
        raise InputError(f"x48f={x48f!r} is outside (0.25, 0.5); pyrochlores have x ~ 0.31-0.375")
    atoms = crystal([A, B, "O", "O"],
                    basis=[(0.5, 0.5, 0.5), (0.0, 0.0, 0.0), (x48f, 0.125, 0.125),
                           (0.375, 0.375, 0.375)],
                    spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90],
                    primitive_cell=False)
    atoms.info.clear()   # ase.spacegroup stores a Spacegroup object, not serialisable
    atoms.arrays.pop("spacegroup_kinds", None)
    atoms.pbc = True
    return atoms


def primitive_cell(a: float = A_EXP, x48f: float = X48F_EXP, A: str = "La",
                   B: str = "Zr") -> Atoms:
    """Face-centred primitive pyrochlore cell A4B4O14 (22 atoms).

    Cell vectors a/2 (0,1,1), a/2 (1,0,1), a/2 (1,1,0) (rhombohedral, 60 deg,
    length a/sqrt(2)); volume a^3/4.  Parameters as :func:`conventional_cell`.
    """
    conv = conventional_cell(a, x48f, A, B)
    cell = _FCC_PRIMITIVE * a
    frac = conv.get_positions() @ np.linalg.inv(cell)
    frac_wrapped = frac - np.floor(frac + 1e-9)
    # keep one representative of each site modulo the primitive lattice
    keys = np.round(frac_wrapped * 1e6).astype(np.int64) % 1_000_000
    _, first = np.unique(keys, axis=0, return_index=True)
    first = np.sort(first)
    prim = Atoms(conv.numbers[first], scaled_positions=frac_wrapped[first], cell=cell, pbc=True)
    if len(prim) * 4 != len(conv):   # pragma: no cover - guards the construction
        raise RuntimeError(f"primitive cell has {len(prim)} atoms, expected {len(conv) // 4}")
    return prim


def supercell(atoms: Atoms, reps: int | Sequence[int] | np.ndarray) -> Atoms:
    """Supercell of ``atoms``: ``reps`` is an int, three ints or a 3x3 integer matrix."""
    reps_arr = np.asarray(reps)
    if reps_arr.ndim == 0:
        reps_arr = np.full(3, int(reps_arr))
    if reps_arr.shape == (3,):
        if np.any(reps_arr < 1):
            raise InputError(f"supercell repetitions must be >= 1, got {reps_arr.tolist()}")
        return atoms.repeat(tuple(int(r) for r in reps_arr))
    if reps_arr.shape == (3, 3):
        from ase.build import make_supercell

        if abs(np.linalg.det(reps_arr)) < 0.5:
            raise InputError(f"supercell matrix {reps_arr.tolist()} is singular")
        return make_supercell(atoms, reps_arr)
    raise InputError(f"reps must be an int, 3 ints or a 3x3 matrix, got shape {reps_arr.shape}")


def voigt_to_matrix(strain_voigt: Sequence[float] | np.ndarray) -> np.ndarray:
    """Symmetric 3x3 strain tensor from Voigt notation.

    ``strain_voigt = (e_xx, e_yy, e_zz, g_yz, g_xz, g_xy)`` with engineering shear
    strains ``g_ij = 2 e_ij`` (the standard Voigt convention; same component
    order as ASE's stress).  A 3x3 matrix is accepted and returned symmetrised.
    """
    s = np.asarray(strain_voigt, dtype=float)
    if s.shape == (3, 3):
        return 0.5 * (s + s.T)
    if s.shape != (6,):
        raise InputError(f"strain must have 6 Voigt components or be 3x3, got shape {s.shape}")
    exx, eyy, ezz, gyz, gxz, gxy = s
    return np.array([[exx, gxy / 2, gxz / 2], [gxy / 2, eyy, gyz / 2], [gxz / 2, gyz / 2, ezz]])


def strained(atoms: Atoms, strain_voigt: Sequence[float] | np.ndarray) -> Atoms:
    """Homogeneously strained copy: cell and positions mapped by ``(1 + eps)``.

    ``strain_voigt`` as in :func:`voigt_to_matrix` (dimensionless, e.g. 0.03 = 3 %).
    Fractional coordinates are unchanged.
    """
    eps = voigt_to_matrix(strain_voigt)
    if not np.all(np.isfinite(eps)):
        raise InputError(f"strain has non-finite components: {np.asarray(strain_voigt).tolist()}")
    deform = np.eye(3) + eps
    if np.linalg.det(deform) <= 0.1:
        raise InputError(f"strain {np.asarray(strain_voigt).tolist()} collapses the cell")
    new = atoms.copy()
    new.set_cell(atoms.cell.array @ deform.T, scale_atoms=True)
    return new


def _cation_mask(atoms: Atoms, A: str, B: str) -> tuple[np.ndarray, np.ndarray]:
    sym = np.array(atoms.get_chemical_symbols())
    return sym == A, sym == B


def antisite(atoms: Atoms, n_pairs: int = 1, rng: np.random.Generator | int | None = None,
             A: str = "La", B: str = "Zr") -> Atoms:
    """Copy with ``n_pairs`` random A<->B cation exchanges (antisite pairs).

    Each pair swaps the species of one randomly chosen A and one randomly chosen
    B atom (positions are kept); stoichiometry is unchanged.
    """
    is_a, is_b = _cation_mask(atoms, A, B)
    ia, ib = np.flatnonzero(is_a), np.flatnonzero(is_b)
    if n_pairs < 0 or n_pairs > min(len(ia), len(ib)):
        raise InputError(f"n_pairs={n_pairs} not in [0, {min(len(ia), len(ib))}] "
                         f"for a cell with {len(ia)} {A} and {len(ib)} {B}")
    g = _rng(rng)
    pick_a = g.choice(ia, size=n_pairs, replace=False)
    pick_b = g.choice(ib, size=n_pairs, replace=False)
    new = atoms.copy()
    numbers = new.numbers.copy()
    numbers[pick_a], numbers[pick_b] = atoms.numbers[pick_b], atoms.numbers[pick_a]
    new.numbers = numbers
    return new


def inverted_cations(atoms: Atoms, A: str = "La", B: str = "Zr") -> Atoms:
    """Copy with every A and B exchanged (large cation on the 6-fold site).

    A deliberately wrong, high-energy arrangement, useful as a sanity check of a
    potential (it must lie well above the pyrochlore ground state).
    """
    is_a, is_b = _cation_mask(atoms, A, B)
    if not is_a.any() or not is_b.any():
        raise InputError(f"structure has no {A} or no {B} atoms to exchange")
    from ase.data import atomic_numbers

    new = atoms.copy()
    numbers = new.numbers.copy()
    numbers[is_a] = atomic_numbers[B]
    numbers[is_b] = atomic_numbers[A]
    new.numbers = numbers
    return new


def _cation_spacing(atoms: Atoms, cations: np.ndarray) -> float:
    """Nearest-neighbour cation distance a*sqrt(2)/4 of the fcc cation lattice, A."""
    n_cat = int(cations.sum())
    if n_cat == 0 or atoms.cell.rank < 3:
        raise InputError("need a periodic cell with cations to locate pyrochlore sites")
    a_eff = (32.0 * atoms.get_volume() / n_cat) ** (1.0 / 3.0)
    return a_eff * np.sqrt(2.0) / 4.0


def oxygen_sites(atoms: Atoms, A: str = "La", B: str = "Zr") -> np.ndarray:
    """Label each atom by its local oxygen site: "48f", "8b" or "" (not O).

    An O whose four nearest cations are all A is an O' (8b) site; other O
    (normally 2 A + 2 B neighbours) are labelled 48f.  Works on strained and
    thermally displaced cells; after antisite exchanges the labels follow the
    local chemistry.
    """
    sym = np.array(atoms.get_chemical_symbols())
    is_a, is_b = _cation_mask(atoms, A, B)
    cations = is_a | is_b
    labels = np.full(len(atoms), "", dtype="<U3")
    o_idx = np.flatnonzero(sym == "O")
    if len(o_idx) == 0:
        return labels
    # halfway between the first (sqrt(3) a/8) and second (sqrt(11) a/8) cation shells
    a_eff = _cation_spacing(atoms, cations) * 4.0 / np.sqrt(2.0)
    rc = a_eff * (np.sqrt(3.0) + np.sqrt(11.0)) / 16.0
    i, j, d = neighbor_list("ijd", atoms, rc)
    keep = np.isin(i, o_idx) & cations[j]
    i, j, d = i[keep], j[keep], d[keep]
    order = np.lexsort((d, i))            # group by O, nearest cation first
    i, j = i[order], j[order]
    first = np.searchsorted(i, i)         # start of each O's group
    rank = np.arange(len(i)) - first
    near = rank < 4
    n_near = np.bincount(i[near], minlength=len(atoms))
    n_a = np.bincount(i[near], weights=is_a[j[near]], minlength=len(atoms))
    labels[o_idx] = "48f"
    labels[o_idx[(n_near[o_idx] == 4) & (n_a[o_idx] == 4)]] = "8b"
    return labels


def empty_anion_sites(atoms: Atoms, only_b: bool = True, A: str = "La", B: str = "Zr",
                      min_clearance: float = 1.0) -> np.ndarray:
    """Cartesian positions (A) of empty anion sites of the fluorite sublattice.

    Anion sites are the centres of the cation tetrahedra (tetrahedral holes of
    the fcc cation lattice).  A site is empty when no O lies within
    ``min_clearance`` A of it (O48f in La2Zr2O7 sit ~2.2 A from the 8a hole).  With
    ``only_b`` only holes whose four cations are all ``B`` are returned: in
    pristine pyrochlore these are exactly the 8a structural vacancies.
    """
    sym = np.array(atoms.get_chemical_symbols())
    is_a, is_b = _cation_mask(atoms, A, B)
    cations = is_a | is_b
    d_nn = _cation_spacing(atoms, cations)
    i, j, D = neighbor_list("ijD", atoms, 1.2 * d_nn)
    keep = cations[i] & cations[j]
    i, j, D = i[keep], j[keep], D[keep]
    pos = atoms.get_positions()
    centres, all_b = [], []
    for c in np.flatnonzero(cations):   # small loop over cations, geometry only
        vecs = D[i == c]
        nbr = j[i == c]
        if len(vecs) < 3:
            continue
        close = np.linalg.norm(vecs[:, None, :] - vecs[None, :, :], axis=-1) < 1.2 * d_nn
        np.fill_diagonal(close, False)
        # enumerate triangles (p < q < r) of mutually neighbouring neighbours
        pp, qq = np.triu_indices(len(vecs), 1)
        pair_ok = close[pp, qq]
        pp, qq = pp[pair_ok], qq[pair_ok]
        for a_, b_ in zip(pp, qq):
            rr = np.flatnonzero(close[a_] & close[b_])
            rr = rr[rr > b_]
            for r_ in rr:
                centres.append(pos[c] + (vecs[a_] + vecs[b_] + vecs[r_]) / 4.0)
                all_b.append(bool(is_b[c] and is_b[nbr[a_]] and is_b[nbr[b_]] and is_b[nbr[r_]]))
    if not centres:
        return np.zeros((0, 3))
    centres_arr = np.asarray(centres)
    all_b_arr = np.asarray(all_b)
    if only_b:
        centres_arr = centres_arr[all_b_arr]
    if len(centres_arr) == 0:
        return np.zeros((0, 3))
    from ase.geometry import get_distances

    # deduplicate (each hole is found from each of its 4 cations) by minimum-image
    # distance, keeping the first-found copy (deterministic order)
    frac = atoms.cell.scaled_positions(centres_arr) % 1.0
    centres_arr = atoms.cell.cartesian_positions(frac)
    _, dist = get_distances(centres_arr, centres_arr, cell=atoms.cell, pbc=atoms.pbc)
    dup = np.triu(dist < 0.25 * d_nn, k=1)
    cand = centres_arr[~dup.any(axis=0)]
    # keep holes with no O nearby
    o_pos = pos[sym == "O"]
    if len(o_pos) == 0:
        return cand
    _, dist = get_distances(cand, o_pos, cell=atoms.cell, pbc=atoms.pbc)
    return cand[dist.min(axis=1) > min_clearance]


def oxygen_vacancies(atoms: Atoms, n: int = 1, rng: np.random.Generator | int | None = None,
                     site: str = "any") -> Atoms:
    """Copy with ``n`` randomly chosen O atoms removed.

    ``site`` restricts the choice to "48f" or "8b" oxygens (see
    :func:`oxygen_sites`) or "any".  The cell stays neutral as a whole (the
    vacancy's two electrons remain), which is what a plain DFT or universal
    potential calculation of the same cell describes.
    """
    if site not in ("any", "48f", "8b"):
        raise InputError(f"site must be 'any', '48f' or '8b', got {site!r}")
    if site == "any":
        cand = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O")
    else:
        cand = np.flatnonzero(oxygen_sites(atoms) == site)
    if n < 0 or n > len(cand):
        raise InputError(f"cannot remove {n} O ({site}) from a cell with {len(cand)} such atoms")
    g = _rng(rng)
    remove = g.choice(cand, size=n, replace=False)
    new = atoms.copy()
    del new[remove.tolist()]
    return new


def frenkel_pair(atoms: Atoms, rng: np.random.Generator | int | None = None,
                 site: str = "48f", A: str = "La", B: str = "Zr") -> Atoms:
    """Copy with one anion Frenkel pair: an O moved into an empty 8a interstitial.

    A random O (from ``site``: "48f", the dominant anion Frenkel defect of
    pyrochlores, "8b" or "any") is moved to a random empty 8a site (centre of a
    B4 tetrahedron, see :func:`empty_anion_sites`), leaving a vacancy behind.
    Unrelaxed: forces near the pair are large.
    """
    holes = empty_anion_sites(atoms, A=A, B=B)
    if len(holes) == 0:
        raise InputError("no empty 8a (Zr4-tetrahedron) interstitial site found in the structure")
    if site == "any":
        cand = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O")
    elif site in ("48f", "8b"):
        cand = np.flatnonzero(oxygen_sites(atoms, A=A, B=B) == site)
    else:
        raise InputError(f"site must be 'any', '48f' or '8b', got {site!r}")
    if len(cand) == 0:
        raise InputError(f"structure has no {site} oxygen to displace")
    g = _rng(rng)
    o = int(g.choice(cand))
    hole = holes[int(g.integers(len(holes)))]
    new = atoms.copy()
    pos = new.get_positions()
    pos[o] = hole
    new.set_positions(pos)
    new.wrap()
    return new


def min_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance (minimum image, periodic), A."""
    if len(atoms) < 2 and not atoms.pbc.any():
        return np.inf
    cutoff = 4.0
    while True:
        d = neighbor_list("d", atoms, cutoff)
        if len(d):
            return float(d.min())
        if cutoff > 50:
            return np.inf
        cutoff *= 2


def relax_lattice(calculator, a: float = A_EXP, x48f: float = X48F_EXP, A: str = "La",
                  B: str = "Zr", tol: float = 1e-5, max_steps: int = 200) -> dict:
    """Relax the two free parameters (a, x48f) of the cubic pyrochlore cell.

    Minimises the energy of :func:`conventional_cell` ``(a, x48f)`` with an
    exact gradient built from the calculator's forces and stress:
    ``dE/da = V tr(sigma) / a`` and ``dE/dx = -sum_k F_k . dr_k/dx``.

    Parameters
    ----------
    calculator : ase.calculators.calculator.Calculator
        Energy (eV), forces (eV/A) and stress (eV/A^3) provider, e.g. the teacher.
    a, x48f : float
        Starting values (A, fractional).
    tol : float
        Convergence threshold on the gradient: |dE/da| (eV/A) and |dE/dx| / a (eV/A).

    Returns
    -------
    dict
        ``a`` (A), ``x48f``, ``energy`` (eV per 88-atom cell), ``energy_per_atom`` (eV),
        ``max_force`` (eV/A), ``pressure`` (eV/A^3), ``n_calls`` (calculator calls).
    """
    from scipy.optimize import minimize

    dx = 1e-4
    ref_p = conventional_cell(1.0, x48f, A, B).get_scaled_positions(wrap=False)
    ref_m = conventional_cell(1.0, x48f + dx, A, B).get_scaled_positions(wrap=False)
    dfrac_dx = (ref_m - ref_p) / dx   # positions are linear in x (unit vectors on 48f)
    dfrac_dx = np.round(dfrac_dx)
    n_calls = [0]

    def fun(p):
        a_, x_ = p
        atoms = conventional_cell(a_, x_, A, B)
        atoms.calc = calculator
        e = atoms.get_potential_energy()
        f = atoms.get_forces()
        s = atoms.get_stress(voigt=False)
        n_calls[0] += 1
        dE_da = atoms.get_volume() * np.trace(s) / a_
        dE_dx = -np.sum(f * (dfrac_dx * a_))
        return e, np.array([dE_da, dE_dx])

    res = minimize(fun, np.array([a, x48f]), jac=True, method="L-BFGS-B",
                   bounds=[(0.8 * a, 1.2 * a), (0.27, 0.42)],
                   options={"gtol": tol, "ftol": 1e-14, "maxiter": max_steps})
    # Polish with a few damped Newton steps on the gradient alone: near the minimum
    # the float32 energies of ML teachers are too noisy for the line search, but
    # forces and stresses are smooth.  Steps are clipped so a bad Jacobian can
    # never send the cell far away.
    p_opt = np.asarray(res.x, dtype=float)
    g_opt = fun(p_opt)[1]
    h = np.array([1e-3 * a, 1e-4])
    max_step = np.array([0.01 * a, 0.005])
    for _ in range(3):
        if np.abs(g_opt).max() <= tol:
            break
        jac = np.empty((2, 2))
        for d in range(2):
            e_d = np.zeros(2)
            e_d[d] = h[d]
            jac[:, d] = (fun(p_opt + e_d)[1] - fun(p_opt - e_d)[1]) / (2 * h[d])
        try:
            step = -np.linalg.solve(jac, g_opt)
        except np.linalg.LinAlgError:
            break
        step = np.clip(step, -max_step, max_step)
        g_new = fun(p_opt + step)[1]
        if not np.all(np.isfinite(g_new)) or np.abs(g_new).max() >= np.abs(g_opt).max():
            break
        p_opt, g_opt = p_opt + step, g_new
    a_opt, x_opt = (float(v) for v in p_opt)
    atoms = conventional_cell(a_opt, x_opt, A, B)
    atoms.calc = calculator
    e = float(atoms.get_potential_energy())
    return {"a": a_opt, "x48f": x_opt, "energy": e, "energy_per_atom": e / len(atoms),
            "max_force": float(np.linalg.norm(atoms.get_forces(), axis=1).max()),
            "pressure": float(-np.trace(atoms.get_stress(voigt=False)) / 3.0),
            "n_calls": n_calls[0]}
