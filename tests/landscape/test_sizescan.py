"""mdmlkit.landscape.sizescan: size scans and the magic-number comparison.

Checks the stability measure against its definition and against known cluster
physics (closed-shell Mackay icosahedra 13 and 55 are more stable than their
neighbours under EMT), and runs a tiny size scan end to end (heating MD, maps,
summary, magic contrasts) to check the bookkeeping against the per-size results.
"""
from __future__ import annotations

import numpy as np
import pytest

from mdmlkit.errors import InputError
from mdmlkit.landscape.sizescan import is_magic, run_size_scan, stability_second_difference

asap3 = pytest.importorskip("asap3")


def test_is_magic():
    assert [n for n in range(10, 160) if is_magic(n)] == [13, 55, 147]


def test_second_difference_definition():
    n = np.arange(10, 17)
    smooth = -3.5 * n + 2.1 * n ** (2 / 3)               # liquid-drop energy, eV
    d2 = stability_second_difference(n, smooth)
    assert np.isnan(d2[0]) and np.isnan(d2[-1])
    # second difference of a smooth convex-down curve: small and analytic
    expect = 2.1 * ((n[2:]) ** (2 / 3) + n[:-2] ** (2 / 3) - 2 * n[1:-1] ** (2 / 3))
    np.testing.assert_allclose(d2[1:-1], expect, rtol=1e-10)
    dipped = smooth.copy()
    dipped[3] -= 0.5                                      # n = 13 extra stable by 0.5 eV
    d2b = stability_second_difference(n, dipped)
    assert d2b[3] == pytest.approx(d2[3] + 1.0)
    assert d2b[2] == pytest.approx(d2[2] - 0.5) and d2b[4] == pytest.approx(d2[4] - 0.5)
    # order of the input does not matter; gaps give NaN
    perm = np.array([6, 0, 3, 1, 5, 2, 4])
    np.testing.assert_allclose(stability_second_difference(n[perm], dipped[perm]), d2b[perm])
    gap = stability_second_difference([12, 13, 15], [1.0, 2.0, 3.0])
    assert np.isnan(gap).all()


def test_second_difference_errors():
    with pytest.raises(InputError, match="2 sizes but 3 energies"):
        stability_second_difference([12, 13], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="duplicate"):
        stability_second_difference([13, 13, 14], [1.0, 2.0, 3.0])


def test_magic_sizes_are_stable_under_emt():
    """Known physics: the Mackay icosahedra Cu13 and Cu55 have Δ2E > 0 (EMT, relaxed)."""
    from mdmlkit.systems.cu_clusters import cu_calculator, make_cluster

    sizes = [12, 13, 14, 54, 55, 56]
    energies = []
    for n in sizes:
        atoms = make_cluster(n, kind="icosahedron")
        atoms.calc = cu_calculator()
        energies.append(atoms.get_potential_energy())
    d2 = dict(zip(sizes, stability_second_difference(sizes, energies)))
    assert d2[13] > 0.3 and d2[55] > 0.3, d2        # eV


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    return run_size_scan([12, 13, 14], seeds=[0], outdir=out, t_start=300.0, t_end=1300.0,
                         rate_K_per_ps=100.0, sample_every=20,
                         map_kwargs=dict(embedding="pca", random_state=0),
                         lindemann_window=10, progress=False)


def test_size_scan_summary(scan):
    rows = scan.summary()
    assert [r["n_atoms"] for r in rows] == [12, 13, 14]
    assert [r["magic"] for r in rows] == [False, True, False]
    for r in rows:
        assert r["n_frames"] > 10 and r["n_runs"] == 1
        assert np.isfinite(r["E_min_per_atom_eV"])
    E = {r["n_atoms"]: r["E_min_per_atom_eV"] * r["n_atoms"] for r in rows}
    d2 = {r["n_atoms"]: r["stability_d2E_eV"] for r in rows}
    assert np.isnan(d2[12]) and np.isnan(d2[14])
    assert d2[13] == pytest.approx(E[12] + E[14] - 2 * E[13])
    assert d2[13] > 0                                    # Cu13 icosahedron: more stable
    # the starting Mackay icosahedron is recognised
    assert rows[1]["start_motif"] == "icosahedral"
    table = scan.format_summary()
    assert "stability_d2" in table and len(table.splitlines()) == 4
    assert repr(scan) == "SizeScan(sizes=[12, 13, 14])"


def test_magic_contrast(scan):
    rows = {r["n_atoms"]: r for r in scan.summary()}
    (c,) = scan.magic_contrast("E_min_per_atom_eV")
    assert c["n_atoms"] == 13 and c["neighbours"] == [12, 14]
    mean = (rows[12]["E_min_per_atom_eV"] + rows[14]["E_min_per_atom_eV"]) / 2
    assert c["neighbour_mean"] == pytest.approx(mean)
    assert c["difference"] == pytest.approx(rows[13]["E_min_per_atom_eV"] - mean)
    # neighbours without a defined value give NaN, without a warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (s,) = scan.magic_contrast("stability_d2E_eV")
    assert np.isnan(s["neighbour_mean"])


def test_empty_scan_is_an_error(tmp_path):
    with pytest.raises(InputError, match="at least one size"):
        run_size_scan([], outdir=tmp_path)
