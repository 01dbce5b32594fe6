"""ACSF values vs n2p2, autograd derivatives vs finite differences, invariances."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mdmlkit.descriptors import ACSF, AtomsBatch, SymmetryFunction, SymmetryFunctionSet, build_triplets, neighbor_list
from mdmlkit.descriptors.neighbors import have_matscipy
from mdmlkit.errors import (
    AtomsTooCloseError,
    EmptyTrajectoryError,
    ModelMismatchError,
    NonFiniteError,
    UnknownElementError,
)


# ----------------------------------------------------------------- helpers
def read_input_data(path) -> list[Atoms]:
    """Tiny n2p2 input.data reader (positions, elements, lattice) for these tests."""
    frames, cell, sym, pos = [], [], [], []
    for line in path.read_text().splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] == "begin":
            cell, sym, pos = [], [], []
        elif t[0] == "lattice":
            cell.append([float(x) for x in t[1:4]])
        elif t[0] == "atom":
            pos.append([float(x) for x in t[1:4]])
            sym.append(t[4])
        elif t[0] == "end":
            frames.append(Atoms(sym, positions=pos, cell=cell or None, pbc=bool(cell)))
    return frames


def read_function_data(path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per structure: (atomic numbers [n], raw symmetry functions [n, F])."""
    lines = path.read_text().splitlines()
    out, k = [], 0
    while k < len(lines):
        t = lines[k].split()
        if len(t) == 1:
            n = int(t[0])
            rows = [np.array(x.split(), dtype=float) for x in lines[k + 1:k + 1 + n]]
            out.append((np.array([int(r[0]) for r in rows]), np.array([r[1:] for r in rows])))
            k += n + 1
        else:
            k += 1
    return out


def per_atom(G: dict, batch: AtomsBatch) -> np.ndarray:
    """Features of every atom in batch order (all elements must have equal F)."""
    out = [None] * batch.positions.shape[0]
    for el, idx in batch.element_index.items():
        for row, i in enumerate(idx.tolist()):
            out[i] = G[el][row].detach().cpu().numpy()
    return np.array(out)


def weighted_energy(G: dict, weights: dict) -> torch.Tensor:
    return sum((G[el] * weights[el]).sum() for el in G)


def naive_acsf(atoms: Atoms, sfs: SymmetryFunctionSet) -> np.ndarray:
    """Loop-based reference implementation written straight from the formulas
    (cosine cutoff with inner cutoff alpha only)."""
    assert sfs.cutoff_type == 1

    def fc(r, rc):
        rci = sfs.alpha * rc
        if r >= rc:
            return 0.0
        if r < rci:
            return 1.0
        return 0.5 * (math.cos(math.pi * (r - rci) / (rc - rci)) + 1.0)

    i_, j_, D = ase_neighbor_list("ijD", atoms, sfs.cutoff)
    sym = atoms.get_chemical_symbols()
    out = []
    for i in range(len(atoms)):
        nb = [(j, D[p]) for p, (ii, j) in enumerate(zip(i_, j_)) if ii == i]
        row = []
        for f in sfs.functions[sym[i]]:
            g = 0.0
            if not f.is_angular:
                for j, d in nb:
                    r = np.linalg.norm(d)
                    if sym[j] == f.e1 and r < f.rc:
                        g += math.exp(-f.eta * (r - f.rs) ** 2) * fc(r, f.rc)
            else:
                for (j, dj), (k, dk) in itertools.combinations(nb, 2):
                    if sorted([sym[j], sym[k]]) != sorted([f.e1, f.e2]):
                        continue
                    rij, rik = np.linalg.norm(dj), np.linalg.norm(dk)
                    rjk = np.linalg.norm(dk - dj)
                    if rij >= f.rc or rik >= f.rc:
                        continue
                    cos = dj @ dk / (rij * rik)
                    base = 1 + f.lambda_ * cos
                    if base <= 0:
                        continue
                    t = 2 ** (1 - f.zeta) * base ** f.zeta * fc(rij, f.rc) * fc(rik, f.rc)
                    s = (rij - f.rs) ** 2 + (rik - f.rs) ** 2
                    if f.type == 3:
                        s += (rjk - f.rs) ** 2
                        t *= fc(rjk, f.rc)
                    g += t * math.exp(-f.eta * s)
            row.append(g)
        out.append(row)
    return np.array(out)


@pytest.fixture(scope="module")
def ref(n2p2_ref):
    sfs = SymmetryFunctionSet.from_input_nn(n2p2_ref / "input.nn")
    frames = read_input_data(n2p2_ref / "input.data")
    values = read_function_data(n2p2_ref / "function.data")
    return sfs, frames, values


@pytest.fixture(scope="module")
def mixed_sfs():
    """Small set exercising mixed rc per group, non-integer zeta, rs, both angular types."""
    el = ["Zr", "O"]
    fs = []
    for c in el:
        for e in el:
            fs += [SymmetryFunction(c, 2, e, eta=0.5, rs=0.0, rc=4.5),
                   SymmetryFunction(c, 2, e, eta=1.0, rs=2.2, rc=5.0)]
        for t in (3, 9):
            fs += [SymmetryFunction(c, t, "O", "Zr", eta=0.05, lambda_=1, zeta=1, rc=5.0),
                   SymmetryFunction(c, t, "O", "O", eta=0.1, lambda_=-1, zeta=2.5, rc=4.0,
                                    rs=1.0),
                   SymmetryFunction(c, t, "Zr", "Zr", eta=0.02, lambda_=1, zeta=4, rc=5.0),
                   SymmetryFunction(c, t, "O", "O", eta=0.01, lambda_=1, zeta=1.5, rc=5.0)]
    return SymmetryFunctionSet(el, fs, cutoff_type=1, alpha=0.2)


def small_cell(seed=0, n=9) -> Atoms:
    """Random Zr/O triclinic cell smaller than twice the cutoff, atoms >= 1.2 Å apart."""
    rng = np.random.default_rng(seed)
    cell = np.array([[4.2, 0.0, 0.0], [0.9, 4.0, 0.0], [-0.6, 0.5, 4.4]])
    pos = []
    while len(pos) < n:
        p = rng.random(3) @ cell
        a = Atoms("O" * (len(pos) + 1), positions=pos + [p], cell=cell, pbc=True)
        if len(pos) == 0 or a.get_distances(len(pos), range(len(pos)), mic=True).min() > 1.2:
            pos.append(p)
    return Atoms(["Zr", "O", "O"] * (n // 3), positions=pos, cell=cell, pbc=True)


# ------------------------------------------------------------ n2p2 values
def test_values_match_n2p2_function_data(ref):
    sfs, frames, values = ref
    acsf = ACSF(sfs)
    batch = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff, device="cpu")
    mine = per_atom(acsf(batch), batch)
    expected = np.concatenate([v for _, v in values])
    assert mine.shape == expected.shape == (81, 60)
    assert np.array_equal(batch.numbers.numpy(), np.concatenate([z for z, _ in values]))
    # printed with 10 decimals: |diff| <= 5e-11 plus float noise on the large values
    assert np.abs(mine - expected).max() < 5e-11 + 1e-13 * np.abs(expected).max()


def test_structures_individually_equal_batched(ref):
    sfs, frames, _ = ref
    acsf = ACSF(sfs)
    batch = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff, device="cpu")
    together = per_atom(acsf(batch), batch)
    alone = np.concatenate([per_atom(acsf(b), b) for b in
                            (AtomsBatch.from_atoms(f, sfs.elements, sfs.cutoff, device="cpu")
                             for f in frames)])
    assert np.allclose(together, alone, rtol=0, atol=1e-12)


def test_reference_cases_are_what_they_claim(ref):
    _, frames, _ = ref
    f0, _, f2 = frames
    widths = 1.0 / np.linalg.norm(np.linalg.inv(f0.cell.array), axis=0)
    assert widths.min() < 2 * 6.0          # cutoff exceeds half the box
    assert not f2.pbc.any() and len(f2) == 15


def test_mixed_parameters_vs_naive_loops(mixed_sfs):
    cluster = small_cell(3, 9)
    cluster.pbc = False
    for atoms in (small_cell(1, 9), cluster):
        batch = AtomsBatch.from_atoms(atoms, mixed_sfs.elements, mixed_sfs.cutoff, device="cpu")
        G = ACSF(mixed_sfs)(batch)
        mine = per_atom(G, batch)
        assert np.allclose(mine, naive_acsf(atoms, mixed_sfs), rtol=1e-11, atol=1e-12)


def assert_same_values_and_forces(acsf_a, acsf_b, batch, rtol=1e-10):
    """Two ACSF modules give the same values and the same gradient of a weighted sum."""
    sfs = acsf_a.sfs
    batch.positions.requires_grad_(True)
    ga, gb = acsf_a(batch), acsf_b(batch)
    w = {el: torch.linspace(-1, 1, n, dtype=torch.float64) for el, n in sfs.n_features.items()}
    (fa,) = torch.autograd.grad(weighted_energy(ga, w), batch.positions)
    (fb,) = torch.autograd.grad(weighted_energy(gb, w), batch.positions)
    for el in sfs.elements:
        assert torch.allclose(ga[el], gb[el], rtol=rtol, atol=0.1 * rtol)
    assert torch.allclose(fa, fb, rtol=10 * rtol, atol=rtol)
    return ga


def test_moment_path_equals_triplet_path():
    """Type 9 with integer zeta via angular moments == explicit triplet sums."""
    fs = []
    for c in ("Zr", "O"):
        for e1, e2 in (("O", "O"), ("O", "Zr"), ("Zr", "Zr")):
            for zeta in (1, 2, 3, 8):
                for lam in (-1.0, 0.5, 1.0):
                    fs.append(SymmetryFunction(c, 9, e1, e2, eta=0.03 * zeta, rs=0.4 * (zeta % 3),
                                               lambda_=lam, zeta=zeta, rc=4.0 + 0.3 * zeta))
    sfs = SymmetryFunctionSet(["Zr", "O"], fs, cutoff_type=4, alpha=0.1)
    moments, triplets = ACSF(sfs), ACSF(sfs, angular_method="triplets")
    assert "72 by moments" in repr(moments) and "0 by moments" in repr(triplets)
    for atoms in (small_cell(7, 12), small_cell(8, 6)):
        b = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu")
        assert_same_values_and_forces(moments, triplets, b)


@pytest.fixture(scope="module")
def tiered_sfs():
    """Moment-path angular functions (rc <= 5 Å) plus radial functions reaching 7.5 Å,
    which read the second (long) tier of padded tables."""
    el = ["Zr", "O"]
    fs = []
    for c in el:
        for e in el:
            fs += [SymmetryFunction(c, 2, e, eta=0.5, rs=0.0, rc=4.5),
                   SymmetryFunction(c, 2, e, eta=0.0, rs=0.0, rc=7.5),
                   SymmetryFunction(c, 2, e, eta=1.0, rs=5.5, rc=7.5),
                   SymmetryFunction(c, 2, e, eta=0.8, rs=4.0, rc=6.5)]
        for e1, e2 in (("O", "O"), ("O", "Zr"), ("Zr", "Zr")):
            fs += [SymmetryFunction(c, 9, e1, e2, eta=0.02, lambda_=1, zeta=2, rc=5.0),
                   SymmetryFunction(c, 9, e1, e2, eta=0.05, lambda_=-1, zeta=4, rc=4.5)]
    return SymmetryFunctionSet(el, fs, cutoff_type=1, alpha=0.1)


def test_long_radial_functions_use_second_tier(tiered_sfs):
    """Radial functions beyond the angular cutoff: tier-1 tables, same values and
    forces as explicit triplets (one tier) and as naive loops."""
    tiered, single = ACSF(tiered_sfs), ACSF(tiered_sfs, angular_method="triplets")
    plan, plan1 = tiered.plan(), single.plan()
    assert plan.short_cutoff == tiered.short_cutoff == 5.0 and plan.cutoff == tiered.cutoff == 7.5
    assert {t for _, _, t in plan.blocks} == {0, 1} and {t for _, _, t in plan1.blocks} == {0}
    assert "angular 5 Å" in repr(tiered) and plan.padded
    assert (0, 1, 1) in plan.blocks and (0, 1, 0) in plan.blocks
    # the plan's tables put every column of G in n2p2 order exactly once
    for c, el in enumerate(plan.elements):
        widths = [p.shape[1] if kind == "radial" else plan.moments[c].spectrum_map.shape[0]
                  for kind, _, p in plan.columns[c]]
        assert sorted(plan.inverse[c].tolist()) == list(range(sum(widths))) == list(range(tiered.n_features[el]))
    cluster = small_cell(3, 12)
    cluster.pbc = False
    for atoms in (small_cell(5, 12), cluster):
        b = AtomsBatch.from_atoms(atoms, tiered_sfs.elements, tiered_sfs.cutoff, device="cpu")
        g2 = assert_same_values_and_forces(tiered, single, b)
        assert np.allclose(per_atom(g2, b), naive_acsf(atoms, tiered_sfs), rtol=1e-11, atol=1e-12)


# ----------------------------------------------------------- derivatives
def _fd_check(sfs, atoms, n_atoms_checked=5, h=1e-5, seed=0):
    acsf = ACSF(sfs)
    rng = np.random.default_rng(seed)
    w = {el: torch.as_tensor(rng.normal(size=n), dtype=torch.float64)
         for el, n in sfs.n_features.items()}
    batch = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu")
    batch.positions.requires_grad_(True)
    E = weighted_energy(acsf(batch), w)
    (grad,) = torch.autograd.grad(E, batch.positions)

    def energy(pos):
        b = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu")
        with torch.no_grad():
            b.positions.copy_(torch.as_tensor(pos))
            return weighted_energy(acsf(b), w).item()

    pos0 = atoms.get_positions()
    for a in rng.choice(len(atoms), n_atoms_checked, replace=False):
        for k in range(3):
            p, m = pos0.copy(), pos0.copy()
            p[a, k] += h
            m[a, k] -= h
            fd = (energy(p) - energy(m)) / (2 * h)
            assert grad[a, k].item() == pytest.approx(fd, rel=1e-6, abs=1e-7), (a, k)


def test_forces_vs_finite_differences_reference(ref):
    sfs, frames, _ = ref
    _fd_check(sfs, frames[0])      # small triclinic cell, images of itself
    _fd_check(sfs, frames[2])      # cluster


def test_forces_vs_finite_differences_tiered(tiered_sfs):
    _fd_check(tiered_sfs, small_cell(6, 12))


def test_forces_vs_finite_differences_mixed(mixed_sfs):
    _fd_check(mixed_sfs, small_cell(2, 9), n_atoms_checked=4)


def test_virial_vs_finite_strain(mixed_sfs):
    atoms = small_cell(5, 9)
    acsf = ACSF(mixed_sfs)
    rng = np.random.default_rng(1)
    w = {el: torch.as_tensor(rng.normal(size=n)) for el, n in mixed_sfs.n_features.items()}
    batch = AtomsBatch.from_atoms(atoms, mixed_sfs.elements, mixed_sfs.cutoff, device="cpu")
    strain = torch.zeros(1, 3, 3, dtype=torch.float64, requires_grad=True)
    (dE,) = torch.autograd.grad(weighted_energy(acsf(batch, strain=strain), w), strain)

    def energy(eps):
        a = atoms.copy()
        a.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        b = AtomsBatch.from_atoms(a, mixed_sfs.elements, mixed_sfs.cutoff, device="cpu")
        return weighted_energy(acsf(b), w).item()

    h = 1e-6
    for k, l in [(0, 0), (1, 2), (2, 0), (2, 2)]:
        e = np.zeros((3, 3))
        e[k, l] = h
        fd = (energy(e) - energy(-e)) / (2 * h)
        assert dE[0, k, l].item() == pytest.approx(fd, rel=1e-5, abs=1e-6)


# ------------------------------------------------------------ invariances
def test_rotation_translation_permutation_invariance(ref):
    sfs, frames, _ = ref
    acsf = ACSF(sfs)
    atoms = frames[0]
    base = per_atom(acsf(AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu")),
                    AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu"))
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ q.T)
    moved.positions = atoms.positions @ q.T + np.array([3.1, -7.2, 0.4])
    perm = np.random.default_rng(1).permutation(len(atoms))
    moved = moved[perm]
    b = AtomsBatch.from_atoms(moved, sfs.elements, sfs.cutoff, device="cpu")
    assert np.allclose(per_atom(acsf(b), b), base[perm], rtol=1e-10, atol=1e-10)


def test_supercell_gives_identical_values(ref):
    sfs, frames, _ = ref
    acsf = ACSF(sfs)
    atoms = frames[0]
    b1 = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu")
    sc = atoms.repeat((2, 1, 1))
    b2 = AtomsBatch.from_atoms(sc, sfs.elements, sfs.cutoff, device="cpu")
    g1, g2 = per_atom(acsf(b1), b1), per_atom(acsf(b2), b2)
    assert np.allclose(g2, np.concatenate([g1, g1]), rtol=1e-11, atol=1e-11)


def test_wrapping_atoms_does_not_change_values(ref):
    sfs, frames, _ = ref
    acsf = ACSF(sfs)
    atoms = frames[1].copy()
    b1 = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device="cpu")
    shifted = atoms.copy()
    shifted.positions += np.array([2, -1, 3]) @ atoms.cell.array
    b2 = AtomsBatch.from_atoms(shifted, sfs.elements, sfs.cutoff, device="cpu")
    assert np.allclose(per_atom(acsf(b1), b1), per_atom(acsf(b2), b2), atol=1e-10)


# ----------------------------------------------------- dtype / device
def test_float32_close_to_float64(ref):
    sfs, frames, _ = ref
    b64 = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff, device="cpu")
    b32 = b64.to(dtype=torch.float32)
    g64 = per_atom(ACSF(sfs)(b64), b64)
    G32 = ACSF(sfs).to(dtype=torch.float32)(b32)
    assert next(iter(G32.values())).dtype == torch.float32
    assert np.allclose(per_atom(G32, b32), g64, rtol=1e-4, atol=1e-5)
    # the solid-harmonic moments run in float32 too (no float64 islands)
    m32 = ACSF(sfs).to(dtype=torch.float32)
    assert all(v.dtype == torch.float32 for k, v in m32.named_buffers()
               if k.startswith("_mom_") and v.is_floating_point())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(ref):
    sfs, frames, _ = ref
    bc = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff, device="cpu")
    bg = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff, device="cuda")
    gg = ACSF(sfs).to("cuda")(bg)
    assert np.allclose(per_atom(gg, bg), per_atom(ACSF(sfs)(bc), bc), atol=1e-10)


# ------------------------------------------------------ neighbour lists
def _canon(i, j, s):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))


@pytest.mark.parametrize("pbc", [(1, 1, 1), (1, 1, 0), (0, 1, 0), (0, 0, 0)])
def test_neighbor_backends_agree(pbc):
    rng = np.random.default_rng(sum(pbc))
    cell = np.array([[3.0, 0, 0], [0.7, 2.8, 0], [-0.4, 0.3, 3.1]])
    pos = (rng.random((8, 3)) * 1.6 - 0.3) @ cell       # some atoms outside the cell
    ref_list = _canon(*neighbor_list(pos, cell, pbc, 5.5, method="brute"))
    for method in ["ase", "kdtree"] + (["matscipy"] if have_matscipy() else []):
        assert _canon(*neighbor_list(pos, cell, pbc, 5.5, method=method)) == ref_list, method
    i, j, s = neighbor_list(pos, cell, pbc, 5.5)
    d = np.linalg.norm(pos[j] - pos[i] + s @ cell, axis=1)
    assert np.all(d < 5.5) and np.all(np.diff(i) >= 0)
    assert not np.any((i == j) & ~s.any(axis=1))
    if pbc == (1, 1, 1):     # cell << 2 rc: atoms see their own images
        assert np.any((i == j) & s.any(axis=1))


@pytest.mark.parametrize("pbc", [(0, 0, 0), (1, 1, 0), (1, 1, 1)])
def test_far_flung_atoms_use_the_kdtree_not_billions_of_bins(pbc):
    """A cluster with atoms 1e9 Å apart (or a periodic box of mostly vacuum) would need
    astronomically many bins in matscipy/ase; beyond MAX_BINS the k-d tree gives the same
    pairs as brute force, at once."""
    import time

    rng = np.random.default_rng(1)
    pos = np.concatenate([rng.random((6, 3)) * 3.0, [[1e9, 0, 0], [1e9 + 1.5, 0, 0], [0, 0, 4e4]]])
    cell = np.diag([3.0, 3.0, 1e5]) if pbc[2] else np.diag([3.0, 3.0, 0.0]) if pbc[0] else None
    if pbc[0]:
        pos = pos[:6]
        pos = np.concatenate([pos, [[1.0, 1.0, 5e4]]])
    t0 = time.perf_counter()
    got = _canon(*neighbor_list(pos, cell, pbc, 4.0))
    assert time.perf_counter() - t0 < 10
    assert got == _canon(*neighbor_list(pos, cell, pbc, 4.0, method="brute"))
    assert got == _canon(*neighbor_list(pos, cell, pbc, 4.0, method="kdtree"))
    if not pbc[0]:
        assert (6, 7, (0, 0, 0)) in got and not any(7 in (a, b) and 8 in (a, b) for a, b, _ in got)


def test_triplets_enumerate_all_pairs_of_neighbours():
    centre = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3])
    a, b = build_triplets(centre, 4)
    got = sorted(zip(a.tolist(), b.tolist()))
    expected = sorted((p, q) for p in range(9) for q in range(p + 1, 9)
                      if centre[p] == centre[q])
    assert got == expected and len(got) == 3 + 1 + 6


# ------------------------------------------------------------ validation
def test_batch_contents(ref):
    sfs, frames, _ = ref
    b = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff, device="cpu")
    assert b.n_structures == 3 and b.n_atoms.tolist() == [22, 44, 15]
    assert b.structure.tolist() == [0] * 22 + [1] * 44 + [2] * 15
    assert b.cells.shape == (3, 3, 3) and not b.pbc[2].any()
    assert [sfs.elements[s] for s in b.species.tolist()] == sum(
        (f.get_chemical_symbols() for f in frames), [])
    v = b.pair_vectors().detach().numpy()
    assert np.linalg.norm(v, axis=1).max() < sfs.cutoff
    assert "AtomsBatch(n_structures=3" in repr(b)


def test_unknown_element_names_structure(ref):
    sfs, frames, _ = ref
    bad = frames[1].copy()
    bad[5].symbol = "Cu"
    with pytest.raises(UnknownElementError, match=r"structure 1: element 'Cu' \(atom 5\)"):
        AtomsBatch.from_atoms([frames[0], bad], sfs.elements, sfs.cutoff)


def test_non_finite_positions(ref):
    sfs, frames, _ = ref
    bad = frames[2].copy()
    bad.positions[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"structure 1: .*atoms \[3\]"):
        AtomsBatch.from_atoms([frames[0], bad], sfs.elements, sfs.cutoff)


def test_atoms_too_close_names_structure_and_atoms(ref):
    sfs, frames, _ = ref
    bad = frames[2].copy()
    bad.positions[7] = bad.positions[4] + [0.3, 0.0, 0.0]
    with pytest.raises(AtomsTooCloseError, match=r"structure 0: atoms (4|7) .* and (7|4) "):
        AtomsBatch.from_atoms([bad], sfs.elements, sfs.cutoff)


def test_empty_and_mismatched(ref):
    sfs, frames, _ = ref
    with pytest.raises(EmptyTrajectoryError):
        AtomsBatch.from_atoms([], sfs.elements, sfs.cutoff)
    b = AtomsBatch.from_atoms(frames[2], sfs.elements, 4.0, device="cpu")
    with pytest.raises(ModelMismatchError, match="cutoff"):
        ACSF(sfs)(b)
    b = AtomsBatch.from_atoms(frames[2], ["O", "Zr", "La"], 6.0, device="cpu")
    with pytest.raises(ModelMismatchError, match="elements"):
        ACSF(sfs)(b)


def test_compute_helper(ref):
    sfs, frames, values = ref
    feats = ACSF(sfs).compute(frames, batch_size=2)
    z = np.concatenate([z for z, _ in values])
    v = np.concatenate([x for _, x in values])
    for el, Z in (("La", 57), ("Zr", 40), ("O", 8)):
        assert np.allclose(feats[el], v[z == Z], atol=1e-10)


# ------------------------------------------------- padded layout, Verlet lists
def test_absent_element_and_isolated_atom_vs_naive(mixed_sfs):
    """Edge cases of the padded neighbour tables: an element with no atoms, an atom
    with no neighbours, neighbour blocks that are empty for some centres."""
    rng = np.random.default_rng(3)
    pos = [[0.0, 0.0, 0.0], [1.6, 0.3, 0.0], [0.2, 1.7, 0.4], [-1.1, 0.4, 1.3], [20.0, 0.0, 0.0]]
    atoms = Atoms("O5", positions=np.array(pos) + rng.normal(0, 0.05, (5, 3)))
    batch = AtomsBatch.from_atoms(atoms, mixed_sfs.elements, mixed_sfs.cutoff, device="cpu")
    G = ACSF(mixed_sfs)(batch)
    assert G["Zr"].shape == (0, mixed_sfs.n_features["Zr"])
    mine = per_atom(G, batch)
    assert np.allclose(mine, naive_acsf(atoms, mixed_sfs), rtol=1e-11, atol=1e-12)
    assert np.all(mine[4] == 0.0)


@pytest.mark.parametrize("pbc", [True, False])
@pytest.mark.parametrize("which", ["mixed_sfs", "tiered_sfs"])
def test_with_positions_on_skin_list_equals_fresh_batch(which, pbc, request):
    """A list built for rc + skin, moved with with_positions (every atom by < skin / 2),
    gives the values, forces and virial of a fresh list built at the new positions."""
    mixed_sfs = request.getfixturevalue(which)
    skin = 0.8
    atoms = small_cell(4, 12)
    atoms.pbc = pbc
    acsf = ACSF(mixed_sfs)
    base = AtomsBatch.from_atoms(atoms, mixed_sfs.elements, mixed_sfs.cutoff + skin, device="cpu")
    rng = np.random.default_rng(0)
    w = {el: torch.as_tensor(rng.normal(size=n)) for el, n in mixed_sfs.n_features.items()}
    for _ in range(3):
        moved = atoms.copy()
        moved.positions += rng.uniform(-1, 1, (len(atoms), 3)) * (0.45 * skin / np.sqrt(3))
        fresh = AtomsBatch.from_atoms(moved, mixed_sfs.elements, mixed_sfs.cutoff, device="cpu")
        reused = base.with_positions(moved.positions)
        assert reused.pair_i is base.pair_i and reused.positions is not base.positions
        if pbc or which == "mixed_sfs":    # (the 12-atom cluster lies within 7.5 Å whole)
            assert reused.pair_i.numel() > fresh.pair_i.numel()     # the skin pairs are there
        out = []
        for b in (fresh, reused):
            b.positions.requires_grad_(True)
            strain = torch.zeros(1, 3, 3, dtype=torch.float64, requires_grad=True)
            G = acsf(b, strain=strain if pbc else None)
            E = weighted_energy(G, w)
            grads = torch.autograd.grad(E, [b.positions, strain] if pbc else [b.positions])
            out.append((G, E, grads))
        (g0, e0, d0), (g1, e1, d1) = out
        for el in mixed_sfs.elements:
            assert torch.allclose(g0[el], g1[el], rtol=1e-12, atol=1e-13)
        assert e0.item() == pytest.approx(e1.item(), rel=1e-13)
        for a, b in zip(d0, d1):
            assert torch.allclose(a, b, rtol=1e-11, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        base.with_positions(atoms.positions[:-1])


def test_check_min_distance_on_moved_batch(mixed_sfs):
    atoms = small_cell(4, 9)
    b = AtomsBatch.from_atoms(atoms, mixed_sfs.elements, mixed_sfs.cutoff, device="cpu")
    moved = atoms.positions.copy()
    moved[1] = moved[0] + [0.3, 0.0, 0.0]
    b.with_positions(atoms.positions).check_min_distance()          # unchanged: fine
    with pytest.raises(AtomsTooCloseError, match="atoms 0 .* and 1 |atoms 1 .* and 0 "):
        b.with_positions(moved).check_min_distance()


@pytest.mark.parametrize("l_max", [0, 1, 2, 3, 4, 5, 8, 12])
def test_solid_harmonics_addition_theorem(l_max):
    """sum_m S_lm(u) S_lm(v) = P_l(u . v) for every degree (scipy's Legendre polynomials),
    and S_l0(u) = P_l(u_z): the identity the moment path of type 9 rests on."""
    from scipy.special import eval_legendre

    from mdmlkit.descriptors.terms import degree_sum_table, solid_harmonics

    rng = np.random.default_rng(l_max)
    u, v = (torch.as_tensor(rng.normal(size=(300, 3))) for _ in range(2))
    u, v = u / u.norm(dim=1, keepdim=True), v / v.norm(dim=1, keepdim=True)
    su, sv = solid_harmonics(u, l_max), solid_harmonics(v, l_max)
    assert su.shape == (300, (l_max + 1) ** 2)
    per_degree = (su * sv) @ degree_sum_table(l_max)
    cos = (u * v).sum(dim=1).numpy()
    for l in range(l_max + 1):
        np.testing.assert_allclose(per_degree[:, l].numpy(), eval_legendre(l, cos), rtol=0, atol=1e-12)
        np.testing.assert_allclose(su[:, l * l + l].numpy(), eval_legendre(l, u[:, 2].numpy()),
                                   rtol=0, atol=1e-12)


def test_legendre_lambda_table_reproduces_angular_factor():
    """sum_l c_l P_l(x) = (1 + lambda x)^zeta for the zeta and lambda of n2p2 type 9."""
    from scipy.special import eval_legendre

    from mdmlkit.descriptors.terms import legendre_lambda_table

    lam = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.5, 1.0])
    zeta = torch.tensor([1.0, 2.0, 4.0, 8.0, 3.0, 8.0])
    c = legendre_lambda_table(lam, zeta, 8).numpy()
    x = np.linspace(-1, 1, 41)
    P = np.stack([eval_legendre(l, x) for l in range(9)])
    expected = (1 + lam.numpy()[:, None] * x[None, :]) ** zeta.numpy()[:, None]
    np.testing.assert_allclose(c @ P, expected, rtol=1e-12, atol=1e-11)
