"""Tests of mdmlkit.landscape.structure: neighbours, CNA (vs asap3), motif labels (known physics)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.cluster import Decahedron, Icosahedron, Octahedron

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError
from mdmlkit.landscape.structure import (
    ATOM_MOTIFS,
    CLUSTER_MOTIFS,
    FCC_SHELL_FACTOR,
    MotifClassifier,
    adaptive_cutoff,
    atom_motifs,
    common_neighbour_analysis,
    coordination_stats,
    motif_fractions,
    motif_label,
    neighbor_matrix,
)
from mdmlkit.landscape.thermo import lindemann_index

asap3 = pytest.importorskip("asap3")


# ----------------------------------------------------------------------------- fixtures

def _relax(atoms: Atoms) -> Atoms:
    from ase.optimize import FIRE

    a = atoms.copy()
    a.center(vacuum=8.0)
    a.calc = asap3.EMT()
    FIRE(a, logfile=None).run(fmax=1e-3, steps=3000)
    out = a.copy()                     # drop the calculator
    return out


def _langevin(atoms: Atoms, temperature_K: float, n_frames: int, every: int, seed: int = 1,
              dt_fs: float = 2.0) -> list[Atoms]:
    """Frames of asap3 EMT Langevin MD (every ``every`` steps of ``dt_fs``)."""
    from asap3.md.langevin import Langevin
    from ase import units
    from ase.md import velocitydistribution as vd

    a = atoms.copy()
    a.calc = asap3.EMT()
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(a, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    dyn = Langevin(a, dt_fs * units.fs, temperature_K=temperature_K, friction=0.01, seed=seed)
    frames = []
    for _ in range(n_frames):
        dyn.run(every)
        frames.append(a.copy())
    return frames


@pytest.fixture(scope="module")
def relaxed() -> dict[str, Atoms]:
    return {
        "ico13": _relax(Icosahedron("Cu", 2)),
        "ico55": _relax(Icosahedron("Cu", 3)),
        "ico147": _relax(Icosahedron("Cu", 4)),
        "ino39": _relax(Decahedron("Cu", 3, 2, 0)),
        "marks75": _relax(Decahedron("Cu", 2, 2, 1)),
        "to38": _relax(Octahedron("Cu", 4, cutoff=1)),
        "to79": _relax(Octahedron("Cu", 5, cutoff=1)),
        "cubo55": _relax(Octahedron("Cu", 5, cutoff=2)),
    }


@pytest.fixture(scope="module")
def hot(relaxed) -> dict[str, list[Atoms]]:
    """2000 K Langevin frames every 2 ps up to 20 ps (10k steps of 2 fs)."""
    return {k: _langevin(relaxed[k], 2000.0, n_frames=10, every=1000, seed=3)
            for k in ("ico13", "ico55", "ico147")}


def _fcc_bulk() -> Atoms:
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)          # 108 atoms, 10.8 Å cell


def _hcp_bulk() -> Atoms:
    a = 2.553
    return bulk("Cu", "hcp", a=a, c=a * np.sqrt(8.0 / 3.0)).repeat((4, 4, 3))


def _rattled(atoms: Atoms, sigma: float, seed: int = 0) -> Atoms:
    out = atoms.copy()
    out.positions += np.random.default_rng(seed).normal(0.0, sigma, out.positions.shape)
    return out


# ----------------------------------------------------------------------------- neighbours

def test_adaptive_cutoff_is_midway_between_fcc_shells():
    a = 3.61
    rc = adaptive_cutoff(_fcc_bulk())
    d1 = a / np.sqrt(2.0)
    assert rc == pytest.approx(FCC_SHELL_FACTOR * d1, rel=1e-9)
    assert d1 < rc < a                                               # between 1st and 2nd shell


def test_adaptive_cutoff_scales_with_structure(relaxed):
    a = relaxed["ino39"]
    b = a.copy()
    b.set_positions(1.13 * a.positions)
    assert adaptive_cutoff(b) == pytest.approx(1.13 * adaptive_cutoff(a), rel=1e-9)
    np.testing.assert_array_equal(neighbor_matrix(a), neighbor_matrix(b))


def test_adaptive_cutoff_for_cu_relaxed_and_hot(relaxed, hot):
    """Between the shells at 0 K (all first-shell bonds in, second shell out) and close
    to the liquid's first RDF minimum when hot (Cu: ~3.0-3.3 Å)."""
    for name, atoms in relaxed.items():
        d = atoms.get_all_distances()
        rc = adaptive_cutoff(atoms)
        first = d[(d > 0) & (d < 2.9)]
        second = d[d > 2.9]
        assert first.max() < rc < second.min(), name
    for name, frames in hot.items():
        for atoms in frames[:3]:
            assert 2.85 < adaptive_cutoff(atoms) < 3.3, name


def test_neighbor_matrix_properties(relaxed):
    a = relaxed["ico55"]
    adj = neighbor_matrix(a)
    assert adj.dtype == bool and adj.shape == (55, 55)
    np.testing.assert_array_equal(adj, adj.T)
    assert not adj.diagonal().any()
    cn = adj.sum(1)
    # Mackay Cu55: 13 interior atoms with CN 12, 12 vertices with CN 6, 30 edge atoms with CN 8
    assert sorted(np.bincount(cn).nonzero()[0].tolist()) == [6, 8, 12]
    assert np.bincount(cn)[[6, 8, 12]].tolist() == [12, 30, 13]
    # a fixed cutoff below the first shell gives no bonds
    assert not neighbor_matrix(a, cutoff=2.0).any()


def test_neighbor_matrix_periodic_matches_asap3():
    from asap3.analysis import CoordinationNumbers

    atoms = _rattled(_hcp_bulk(), 0.08)
    adj = neighbor_matrix(atoms, cutoff=3.05)
    np.testing.assert_array_equal(adj.sum(1), CoordinationNumbers(atoms, rCut=3.05))


def test_periodic_cell_too_small_raises():
    with pytest.raises(InputError, match="cell heights"):
        neighbor_matrix(bulk("Cu", "fcc", a=3.61, cubic=True), cutoff=3.05)


# ----------------------------------------------------------------------------- CNA vs asap3

def _asap_bonds(atoms: Atoms, rc: float) -> dict[tuple[int, int], tuple[int, int, int]]:
    from asap3.analysis import FullCNA

    cna = FullCNA(atoms.copy(), rCut=rc)
    raw = cna.get_raw_cna()
    return {(int(min(i, j)), int(max(i, j))): cna.get_cna_tuple(int(c)) for i, j, c in raw}


def _our_bonds(atoms: Atoms, rc: float) -> dict[tuple[int, int], tuple[int, int, int]]:
    res = common_neighbour_analysis(atoms, cutoff=rc)
    return {(int(i), int(j)): tuple(int(x) for x in s)
            for (i, j), s in zip(res.bonds, res.signatures)}


@pytest.mark.parametrize("case", ["ico147", "marks75", "to79", "hot147", "hot55", "fcc", "hcp",
                                  "fcc_rattled"])
def test_cna_signatures_equal_asap3_fullcna(case, relaxed, hot):
    """Bond-by-bond agreement with asap3's C++ FullCNA (independent implementation)."""
    atoms = {"hot147": lambda: hot["ico147"][-1], "hot55": lambda: hot["ico55"][4],
             "fcc": _fcc_bulk, "hcp": _hcp_bulk,
             "fcc_rattled": lambda: _rattled(_fcc_bulk(), 0.1)}.get(case, lambda: relaxed[case])()
    rc = 3.05
    ours, ref = _our_bonds(atoms, rc), _asap_bonds(atoms, rc)
    assert len(ours) > 0
    assert ours == ref


def test_bulk_fcc_and_hcp_classes():
    fcc = common_neighbour_analysis(_fcc_bulk())
    assert fcc.total() == {(4, 2, 1): 6 * 108}
    assert (atom_motifs(_fcc_bulk()) == "fcc").all()
    hcp = common_neighbour_analysis(_hcp_bulk())
    n = len(_hcp_bulk())
    assert hcp.total() == {(4, 2, 1): 3 * n, (4, 2, 2): 3 * n}
    np.testing.assert_array_equal(hcp.count((4, 2, 1)), 6)
    assert (atom_motifs(_hcp_bulk()) == "hcp").all()


@pytest.mark.parametrize("case", ["fcc", "hcp", "to79", "marks75", "ico147"])
def test_fcc_hcp_classes_equal_asap3_cna(case, relaxed):
    """Per-atom fcc/hcp classes agree with asap3's restricted CNA (0 fcc, 1 hcp, 2 other)."""
    from asap3.analysis import CNA

    atoms = {"fcc": lambda: _rattled(_fcc_bulk(), 0.07),
             "hcp": lambda: _rattled(_hcp_bulk(), 0.07)}.get(case, lambda: relaxed[case])()
    ref = np.asarray(CNA(atoms.copy(), rCut=3.05))
    ours = atom_motifs(atoms, cutoff=3.05)
    np.testing.assert_array_equal(ours == "fcc", ref == 0)
    np.testing.assert_array_equal(ours == "hcp", ref == 1)


def test_cu13_centre_is_icosahedral(relaxed):
    a = relaxed["ico13"]
    res = common_neighbour_analysis(a)
    centre = int(np.argmin(np.linalg.norm(a.positions - a.positions.mean(0), axis=1)))
    assert res.per_atom()[centre] == {(5, 5, 5): 12}
    # each surface-surface bond: common neighbours = centre + 2 surface atoms,
    # which are bonded to the centre but not to each other
    assert res.total() == {(5, 5, 5): 12, (3, 2, 2): 30}
    motifs = atom_motifs(a)
    assert motifs[centre] == "ico" and (np.delete(motifs, centre) == "other").all()
    assert "CNAResult(n_atoms=13, n_bonds=42" in repr(res)


def _symmetric_top_axis(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    p = atoms.positions - atoms.positions.mean(0)
    w, v = np.linalg.eigh(p.T @ p)
    # the non-degenerate eigenvalue of the second-moment tensor is the five-fold axis
    k = int(np.argmax([min(abs(w[i] - w[j]) for j in range(3) if j != i) for i in range(3)]))
    return p, v[:, k]


def test_decahedral_axis_atoms_lie_on_the_fivefold_axis(relaxed):
    for name in ("ino39", "marks75"):
        a = relaxed[name]
        p, axis = _symmetric_top_axis(a)
        off_axis = np.linalg.norm(np.cross(p, axis), axis=1)
        on_axis_interior = (off_axis < 0.2) & (neighbor_matrix(a).sum(1) == 12)
        assert on_axis_interior.sum() >= 2, name
        np.testing.assert_array_equal(atom_motifs(a) == "decahedral axis", on_axis_interior)
        assert not (atom_motifs(a) == "ico").any()


def test_mackay_icosahedron_motifs_match_geometry(relaxed):
    """Cu147: one 12x555 centre; the 24 interior atoms on the six five-fold axes are
    'decahedral axis'; the 30 interior edge atoms sit on twin planes (hcp)."""
    a = relaxed["ico147"]
    p = a.positions - a.positions.mean(0)
    r = np.linalg.norm(p, axis=1)
    vertices = p[np.argsort(r)[-12:]] / r[np.argsort(r)[-12:], None]
    on_axis = np.zeros(len(a), bool)
    for v in vertices:
        on_axis |= np.linalg.norm(np.cross(p, v), axis=1) < 0.2
    interior = neighbor_matrix(a).sum(1) == 12
    centre = r < 0.5
    motifs = atom_motifs(a)
    np.testing.assert_array_equal(motifs == "ico", centre)
    np.testing.assert_array_equal(motifs == "decahedral axis", on_axis & interior & ~centre)
    assert (motifs == "decahedral axis").sum() == 24
    assert (motifs == "hcp").sum() == 30
    assert (motifs[interior] != "other").all()


def test_cna_is_fast_for_cu147(relaxed):
    a = relaxed["ico147"]
    common_neighbour_analysis(a)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        common_neighbour_analysis(a)
        times.append(time.perf_counter() - t)
    assert min(times) < 0.02, f"CNA of Cu147 took {min(times) * 1e3:.1f} ms"


# ----------------------------------------------------------------------------- motif labels

@pytest.mark.parametrize("name,label", [
    ("ico13", "icosahedral"), ("ico55", "icosahedral"), ("ico147", "icosahedral"),
    ("ino39", "decahedral"), ("marks75", "decahedral"),
    ("to38", "fcc-like"), ("to79", "fcc-like"), ("cubo55", "fcc-like"),
])
def test_relaxed_clusters_are_labelled(relaxed, name, label):
    assert motif_label(relaxed[name]) == label


def test_hot_2000K_clusters_are_amorphous(hot):
    for name in ("ico55", "ico147"):
        labels = MotifClassifier().transform(hot[name])
        assert (labels == "amorphous").all(), (name, labels)
    # hot Cu13: the single interior atom loses its 12x555 shell
    labels13 = MotifClassifier().transform(hot["ico13"])
    assert not (labels13 == "icosahedral").any(), labels13


def test_room_temperature_icosahedron_stays_icosahedral(relaxed):
    frames = _langevin(relaxed["ico147"], 300.0, n_frames=5, every=500, seed=5)
    assert (MotifClassifier().transform(frames) == "icosahedral").all()


def test_motif_fractions_and_coordination_stats(relaxed):
    a = relaxed["ico13"]
    f = motif_fractions(a)
    assert sum(f[m] for m in ATOM_MOTIFS) == pytest.approx(1.0)
    assert f["ico"] == pytest.approx(1 / 13) and f["ordered_interior"] == 1.0
    assert f["bonds_555"] == pytest.approx(12 / 42)
    s = coordination_stats(a)
    cn = np.array([12] + [6] * 12)                 # centre 12, each surface atom 5 + centre
    assert s["mean"] == pytest.approx(cn.mean()) and s["std"] == pytest.approx(cn.std())
    assert s["surface_fraction"] == pytest.approx(12 / 13)
    s55 = coordination_stats(relaxed["ico55"])
    assert s55["surface_fraction"] == pytest.approx(42 / 55)
    assert 2.9 < s55["cutoff"] < 3.2


def test_motif_classifier_api(relaxed):
    frames = [relaxed["ico55"], relaxed["ino39"], relaxed["to79"]]
    clf = MotifClassifier(progress=True)
    labels = clf.fit(frames).transform(frames)
    assert labels.tolist() == [motif_label(f) for f in frames]
    assert set(labels) <= set(CLUSTER_MOTIFS)
    assert clf.predict(relaxed["ico13"]).tolist() == ["icosahedral"]
    fr = clf.fractions(frames)
    assert len(fr) == 3 and fr[2]["fcc"] > 0
    from sklearn.base import clone

    assert clone(MotifClassifier(cutoff=3.0)).get_params()["cutoff"] == 3.0


# ----------------------------------------------------------------------------- Lindemann

def test_lindemann_index(relaxed, hot):
    from scipy.spatial.transform import Rotation

    a = relaxed["ico55"]
    rigid = []
    for k, rot in enumerate(Rotation.random(4, random_state=1)):
        b = a.copy()
        b.positions = rot.apply(a.positions) + k * np.array([1.0, -2.0, 0.5])
        rigid.append(b)
    assert lindemann_index(rigid, window=4).delta[0] == pytest.approx(0.0, abs=1e-7)
    solid = lindemann_index(_langevin(a, 300.0, n_frames=10, every=200, seed=2), window=10)
    liquid = lindemann_index(hot["ico55"][:4], window=4)
    assert solid.delta[0] < 0.1 < liquid.delta[0]          # Lindemann criterion
    assert solid.delta_atoms.shape == (1, 55)
    assert solid.delta_atoms.mean() == pytest.approx(solid.delta[0])


# ----------------------------------------------------------------------------- errors

def test_errors(relaxed):
    bad = relaxed["ico13"].copy()
    bad.positions[4, 1] = np.nan
    with pytest.raises(NonFiniteError, match="frame 0"):
        common_neighbour_analysis(bad)
    with pytest.raises(NonFiniteError, match="frame 1"):
        MotifClassifier().transform([relaxed["ico13"], bad])
    with pytest.raises(EmptyTrajectoryError):
        MotifClassifier().transform([])
    with pytest.raises(InputError, match="frame 1 is str"):
        MotifClassifier().transform([relaxed["ico13"], "x"])
    with pytest.raises(InputError, match="cutoff"):
        neighbor_matrix(relaxed["ico13"], cutoff=-1.0)
    with pytest.raises(InputError, match="at least 2"):
        adaptive_cutoff(Atoms("Cu", positions=[[0, 0, 0]]))
    with pytest.raises(InconsistentFramesError):
        lindemann_index([relaxed["ico13"], relaxed["ico55"]])
    with pytest.raises(EmptyTrajectoryError):
        lindemann_index([relaxed["ico13"]])
    # a lone atom: no bonds, no interior -> amorphous
    single = Atoms("Cu", positions=[[0, 0, 0]])
    assert motif_label(single, cutoff=3.0) == "amorphous"
    assert len(common_neighbour_analysis(single, cutoff=3.0).bonds) == 0
