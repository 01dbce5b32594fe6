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
from mdmlkit.landscape import LandscapeMap
from mdmlkit.landscape.sizescan import (
    AnalysisSettings,
    analyse_size,
    is_magic,
    run_size_scan,
    stability_second_difference,
)
from mdmlkit.md.heating import HeatingSettings

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
    template = LandscapeMap(embedding="pca", random_state=0)
    scan = run_size_scan([12, 13, 14], seeds=[0], outdir=out,
                         heating=HeatingSettings(t_start=300.0, t_end=1300.0, rate_K_per_ps=100.0,
                                                 sample_every=20),
                         landscape=template, analysis=AnalysisSettings(lindemann_window=10),
                         progress=False)
    assert not hasattr(template, "labels_")          # the template is cloned, never fitted
    return scan


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


def test_scan_settings_and_maps_are_independent(scan):
    import json

    assert scan.settings["heating"]["rate_K_per_ps"] == 100.0
    assert scan.settings["landscape"]["embedding"] == "pca"
    assert scan.settings["analysis"]["lindemann_window"] == 10
    json.dumps(scan.settings)                              # the notebook writes it to JSON
    assert len({id(sl.map) for sl in scan}) == 3
    assert all(sl.lindemann for sl in scan)                # 251 frames per run: Lindemann measured
    # one fast run may melt at the ramp's end: then C has no peak, and that is all that is missing
    assert all("no heat-capacity melting point" in m for m in scan.issues())
    for sl in scan:
        assert (sl.melting_cv.ok) == (sl.summary()["T_melt_Cv_K"] == sl.summary()["T_melt_Cv_K"])


def test_analyse_size_reports_what_it_cannot_measure(scan):
    """Runs shorter than two Lindemann windows are named in ``issues``; other errors propagate."""
    sl = scan[13]
    res = analyse_size(sl.frames, landscape=LandscapeMap(embedding="pca"),
                       analysis=AnalysisSettings(lindemann_window=200))
    assert res.lindemann == [] and res.melting_lindemann is None
    assert res.issues == [f"Cu13 run Cu13_auto_s0: {len(sl.frames)} frames, fewer than two "
                          "Lindemann windows of 200; no Lindemann index"]
    np.testing.assert_array_equal(res.map.labels_, sl.map.labels_)
    with pytest.raises(InputError, match="embedding"):
        analyse_size(sl.frames, landscape=LandscapeMap(embedding="nope"))
    with pytest.raises(InputError, match="lindemann_window"):
        AnalysisSettings(lindemann_window=1)


def test_explorer_never_changes_the_scan(scan):
    from mdmlkit.landscape.explorer import MapExplorer, frames_near_temperature

    sl = scan[13]
    labels, eps, params = sl.map.labels_.copy(), sl.map.eps_, sl.map.get_params()
    ex = MapExplorer(scan)
    view = ex.view(13, "pca", sl.map.perplexity, eps=0.05 * eps, min_samples=3)
    assert view.landscape is sl and view.map is not sl.map
    assert view.map.eps_ == pytest.approx(0.05 * eps) and view.map.min_samples_ == 3
    np.testing.assert_array_equal(sl.map.labels_, labels)          # the scan's map is untouched
    assert sl.map.eps_ == eps and sl.map.get_params() == params
    # another setting fits a clone once (cached); PCA does not depend on the perplexity
    other = ex.view(13, "pca", 10.0)
    np.testing.assert_allclose(other.map.embedding_, sl.map.embedding_)
    assert ex.base_map(13, "pca", 10.0) is ex.base_map(13, "pca", 10.0)
    assert ex.base_map(13, "pca", 10.0) is sl.map   # the perplexity does not apply to PCA: no refit
    with pytest.raises(InputError, match="size 99"):
        ex.view(99, "pca", 30.0)
    T = sl.table["T_target"]
    near = frames_near_temperature(T, 800.0, tol_K=25.0)
    np.testing.assert_array_equal(near, (T >= 775) & (T <= 825))


# ----------------------------------------------------------------------------- parallel runs

_SHORT = HeatingSettings(t_start=300.0, t_end=400.0, rate_K_per_ps=100.0, sample_every=10)


class FakeClient:
    """The ``submit`` / ``gather`` part of a ``dask.distributed.Client`` (computes in gather)."""

    def __init__(self):
        self.submitted = []

    def submit(self, fn, arg):
        self.submitted.append((fn, arg))
        return len(self.submitted) - 1

    def gather(self, futures):
        return [self.submitted[k][0](self.submitted[k][1]) for k in futures]


def _positions(results):
    return [np.array([a.positions for a in r.frames]) for r in results]


def test_heat_many_on_executors_equals_serial(tmp_path):
    """Two seeded Cu13 runs of 500 steps: threads, a dask-like client and serial agree exactly."""
    from concurrent.futures import ThreadPoolExecutor

    from mdmlkit.md.heating import heat_many

    serial = heat_many([13], [0, 1], outdir=tmp_path / "serial", settings=_SHORT, progress=False)
    with ThreadPoolExecutor(2) as pool:
        threads = heat_many([13], [0, 1], outdir=tmp_path / "threads", settings=_SHORT,
                            progress=False, executor=pool)
    client = FakeClient()
    dask_like = heat_many([13], [0, 1], outdir=tmp_path / "dask", settings=_SHORT,
                          progress=False, executor=client)
    assert len(client.submitted) == 2
    assert [r.run_id for r in serial] == ["Cu13_auto_s0", "Cu13_auto_s1"]
    assert len(serial[0].frames) == 51
    for other in (threads, dask_like):
        assert [r.run_id for r in other] == [r.run_id for r in serial]
        for a, b in zip(_positions(serial), _positions(other)):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(*_positions(serial))          # the seeds differ
    # a rerun in parallel returns the finished runs unchanged
    again = heat_many([13], [0, 1], outdir=tmp_path / "serial", settings=_SHORT,
                      progress=False, executor=FakeClient())
    assert all(r.skipped for r in again)
    for a, b in zip(_positions(serial), _positions(again)):
        np.testing.assert_array_equal(a, b)


def test_size_scan_on_processes_equals_serial(tmp_path):
    kw = dict(seeds=[0, 1], heating=_SHORT, landscape=LandscapeMap(embedding="pca", random_state=0),
              analysis=AnalysisSettings(lindemann_window=10), progress=False)
    serial = run_size_scan([13], outdir=tmp_path / "serial", **kw)
    par = run_size_scan([13], outdir=tmp_path / "par", executor="process", n_jobs=2, **kw)
    a, b = serial[13], par[13]
    assert len(a.frames) == 102 and a.run_slices().keys() == b.run_slices().keys()
    np.testing.assert_array_equal(np.array([f.positions for f in a.frames]),
                                  np.array([f.positions for f in b.frames]))
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.map.labels_, b.map.labels_)
    np.testing.assert_array_equal(a.map.embedding_, b.map.embedding_)
    assert _same_rows(a.summary(), b.summary())
    assert par.settings == serial.settings


def _same_rows(r1, r2):
    return r1.keys() == r2.keys() and all(
        (isinstance(r1[k], float) and np.isnan(r1[k]) and np.isnan(r2[k])) or r1[k] == r2[k]
        for k in r1)


class _StubSize:
    """Stands in for a SizeLandscape in SizeScan's bookkeeping (its summary only)."""

    def __init__(self, n, **values):
        self.row = dict(n_atoms=n, magic=is_magic(n), E_min_per_atom_eV=-3.0 - 0.01 * n,
                        T_melt_Cv_K=900.0, **values)

    def summary(self):
        return dict(self.row)


def test_magic_contrast_says_why_it_is_undefined():
    from mdmlkit.landscape.sizescan import SizeScan

    scan = SizeScan({n: _StubSize(n) for n in (12, 13, 14)}, settings={})
    (s,) = scan.magic_contrast("stability_d2E_eV")       # Δ2E of 12 and 14 needs 11 and 15
    assert np.isfinite(s["value"]) and np.isnan(s["difference"])
    assert s["note"] == "n/a: needs ≥ 2 sizes around 12, 14 (have 12, 13, 14)"
    (e,) = scan.magic_contrast("E_min_per_atom_eV")
    assert e["note"] == "" and np.isfinite(e["difference"])
    lone = SizeScan({13: _StubSize(13)}, settings={})
    (s1,) = lone.magic_contrast("stability_d2E_eV")
    assert s1["neighbours"] == [] and s1["note"] == "n/a: needs ≥ 2 sizes around 13 (have 13)"
    unmeasured = SizeScan({12: _StubSize(12), 13: _StubSize(13, T_melt=1.0), 14: _StubSize(14)}, settings={})
    unmeasured.sizes[13].row["T_melt_Cv_K"] = float("nan")   # flagged: peak at the ramp's end
    (t,) = unmeasured.magic_contrast("T_melt_Cv_K")
    assert t["note"].startswith("n/a: T_melt_Cv_K not measured for Cu13")


def test_low_energy_morphology_reads_structure_not_temperature():
    from mdmlkit.landscape.sizescan import low_energy_morphology

    # 90 hot frames are CNA-amorphous, the 10 coldest (lowest E) are icosahedral
    motifs = ["amorphous"] * 90 + ["icosahedral"] * 10
    energies = np.r_[np.linspace(-30, -28, 90), np.linspace(-33, -32, 10)]
    assert low_energy_morphology(motifs, energies) == ("icosahedral", 1.0)
    assert low_energy_morphology(motifs, energies, fraction=1.0) == ("amorphous", 0.9)
    assert low_energy_morphology(["fcc-like"], [1.0]) == ("fcc-like", 1.0)
    with pytest.raises(InputError, match="same number"):
        low_energy_morphology(motifs, energies[:5])
    with pytest.raises(InputError, match="fraction"):
        low_energy_morphology(motifs, energies, fraction=0)


def test_single_basin_is_reported_as_such():
    from mdmlkit.landscape.sizescan import SizeLandscape

    row = dict(basin=0, size=100, majority_motif="amorphous", morphology="icosahedral")
    sl = SizeLandscape(13, True, [], {}, np.zeros((0, 1)), None, np.array([]), [row], None)
    assert sl.basin_note() == ("single basin: the map does not resolve morphologies at these "
                               "settings (its lowest-energy frames are icosahedral)")
    sl.basin_table = [row, dict(row, basin=1)]
    assert sl.basin_note() == ""
