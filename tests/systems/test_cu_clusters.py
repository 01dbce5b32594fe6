"""Starting structures for Cu_n: sizes, relaxation, motif energetics under EMT."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Icosahedron

from mdmlkit.errors import InputError, NonFiniteError, UnknownElementError
from mdmlkit.systems import cu_clusters as C
from mdmlkit.utils import check_elements

pytest.importorskip("asap3")


def _max_force(atoms):
    return float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max())


@pytest.mark.parametrize("n", [13, 55, 147])
def test_icosahedron_beats_cuboctahedron_under_emt(n):
    # Known for small EMT Cu clusters: the Mackay icosahedron is lower in energy than
    # the fcc cuboctahedron of the same (magic) size at 13, 55 and 147 atoms.
    ico = C.make_cluster(n, kind="icosahedron")
    length = {13: 3, 55: 5, 147: 7}[n]
    cubo = C.relax(C.motif("octahedron", (length, (length - 1) // 2)), C.cu_calculator())
    assert len(ico) == len(cubo) == n
    assert ico.info["E_relaxed"] < cubo.info["E_relaxed"] - 0.5
    assert ico.info["structure"].startswith("icosahedron")


def test_magic_sizes_match_closed_forms():
    ico = C.magic_sizes("icosahedron")
    assert [n for n in ico][:5] == [1, 13, 55, 147, 309]          # (10k^3-15k^2+11k-3)/3
    octa = C.magic_sizes("octahedron")
    assert (3, 1) in octa[13] and (5, 2) in octa[55] and (7, 3) in octa[147]  # cuboctahedra
    assert (4, 1) in octa[38]                                      # truncated octahedron
    dec = C.magic_sizes("decahedron")
    assert (2, 2, 0) in dec[13] and (3, 3, 0) in dec[55]           # Ino decahedra
    for kind, sizes in [("icosahedron", ico), ("octahedron", octa), ("decahedron", dec)]:
        for n, params in list(sizes.items())[:6]:
            assert len(C.motif(kind, params[0])) == n


@pytest.mark.parametrize("n", [12, 14, 38, 54, 56])
def test_non_magic_sizes_are_relaxed_and_boxed(n):
    atoms = C.make_cluster(n)
    assert len(atoms) == n
    assert _max_force(atoms) < 2e-3
    # centred in a non-zero box with vacuum all around
    assert atoms.cell.volume > 0 and not atoms.pbc.any()
    frac = atoms.cell.scaled_positions(atoms.positions)
    assert frac.min() > 0.1 and frac.max() < 0.9
    np.testing.assert_allclose(atoms.positions.min(0) + atoms.positions.max(0),
                               atoms.cell.lengths(), atol=1e-6)


def test_cu12_removes_a_surface_atom_not_the_centre():
    # Independent check of the shrink step: removing the centre of Cu13 costs far
    # more energy than removing a vertex (the centre is 12-fold coordinated).
    cu12 = C.make_cluster(12, kind="icosahedron")
    hollow = C.relax(C.motif("icosahedron", (2,)), C.cu_calculator())
    del hollow[0]  # ASE puts the central atom first
    hollow = C.relax(hollow, C.cu_calculator())
    assert cu12.info["E_relaxed"] < hollow.info["E_relaxed"] - 0.3


def test_cu14_adatom_binds_in_a_hollow_site():
    cu13 = C.make_cluster(13, kind="icosahedron")
    cu14 = C.make_cluster(14, kind="icosahedron")
    atom = Atoms("Cu", cell=[10, 10, 10])
    atom.calc = C.cu_calculator()
    e_atom = atom.get_potential_energy()
    # the added atom is bound (binding energy well above 1 eV for Cu)
    assert cu14.info["E_relaxed"] < cu13.info["E_relaxed"] + e_atom - 1.0
    coord = C._coordination(cu14.positions)
    assert sorted(coord)[0] == 3   # one adatom on a threefold hollow


def test_auto_is_no_worse_than_each_motif():
    e = {k: C.make_cluster(38, kind=k).info["E_relaxed"] for k in C.KINDS}
    auto = C.make_cluster(38)
    assert auto.info["E_relaxed"] <= min(e.values()) + 1e-6


def test_basin_hopping_never_worsens_and_is_seeded():
    start = C.make_cluster(14, kind="octahedron")
    a = C.basin_hopping(start, n_hops=4, seed=1)
    b = C.basin_hopping(start, n_hops=4, seed=1)
    assert a.info["E_relaxed"] <= start.info["E_relaxed"] + 1e-6
    np.testing.assert_allclose(a.positions, b.positions)


def test_ase_and_asap_engines_both_work():
    e_asap = C.make_cluster(13, kind="icosahedron", calculator="asap3").info["E_relaxed"]
    e_ase = C.make_cluster(13, kind="icosahedron", calculator="ase").info["E_relaxed"]
    assert abs(e_asap - e_ase) < 0.2  # same EMT model, slightly different parameters


def test_cu_potential_rejects_other_elements():
    au = Icosahedron("Au", 2)
    with pytest.raises(UnknownElementError, match="atom 0 is .Au"):
        C.relax(au, C.cu_calculator())
    mixed = Icosahedron("Cu", 2)
    mixed[5].symbol = "Ag"
    with pytest.raises(UnknownElementError, match="atom 5 is .Ag"):
        check_elements([mixed], C.cu_calculator("ase"), "mixed")


def test_bad_inputs():
    bad = Icosahedron("Cu", 2)
    bad.positions[3] = np.nan
    with pytest.raises(NonFiniteError, match="3"):
        C.relax(bad, C.cu_calculator())
    with pytest.raises(InputError):
        C.make_cluster(1)
    with pytest.raises(InputError, match="kind"):
        C.make_cluster(13, kind="cube")
    with pytest.raises(InputError, match="engine"):
        C.cu_calculator("lammps")
