"""Tests of mdmlkit.landscape.fingerprints: invariances, analytic values, batching, validation."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Icosahedron
from ase.lattice.cubic import FaceCenteredCubic
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation
from sklearn.exceptions import NotFittedError

from mdmlkit.errors import (
    AtomsTooCloseError,
    EmptyTrajectoryError,
    InconsistentFramesError,
    InputError,
    NonFiniteError,
)
from mdmlkit.landscape.fingerprints import (
    FINGERPRINTS,
    AveragedACSF,
    CoordinationHistogram,
    CoulombMatrixEigenvalues,
    PairDistanceHistogram,
    SortedPairDistances,
    make_fingerprint,
    rdf_first_minimum,
)
from mdmlkit.landscape.structure import coordination_stats

asap3 = pytest.importorskip("asap3")

Z_CU = 29


def _relax(atoms: Atoms) -> Atoms:
    from ase.optimize import FIRE

    a = atoms.copy()
    a.center(vacuum=8.0)
    a.calc = asap3.EMT()
    FIRE(a, logfile=None).run(fmax=1e-3, steps=3000)
    return a.copy()


def _md(atoms: Atoms, temperature_K: float, n_frames: int, every: int,
        seed: int = 0) -> list[Atoms]:
    from asap3.md.langevin import Langevin
    from ase import units
    from ase.md import velocitydistribution as vd

    a = atoms.copy()
    a.calc = asap3.EMT()
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(a, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    dyn = Langevin(a, 2.0 * units.fs, temperature_K=temperature_K, friction=0.01, seed=seed + 1)
    out = []
    for _ in range(n_frames):
        dyn.run(every)
        out.append(a.copy())
    return out


@pytest.fixture(scope="module")
def cu13() -> Atoms:
    return _relax(Icosahedron("Cu", 2))


@pytest.fixture(scope="module")
def cu55() -> Atoms:
    return _relax(Icosahedron("Cu", 3))


@pytest.fixture(scope="module")
def frames(cu13, cu55) -> list[Atoms]:
    """Mixed sizes and temperatures: relaxed, 600 K and 1500 K frames of Cu13 and Cu55."""
    return ([cu55] + _md(cu55, 600.0, 3, 300, seed=1) + _md(cu55, 1500.0, 2, 1000, seed=2)
            + [cu13] + _md(cu13, 900.0, 2, 300, seed=3))


def _all_fingerprints():
    return [
        CoulombMatrixEigenvalues(),
        CoulombMatrixEigenvalues(n_eigen=20, sort="abs"),
        PairDistanceHistogram(r_max=12.0, n_bins=60),
        PairDistanceHistogram(r_max=12.0, n_bins=60, smearing=0.15, normalize="per_atom"),
        SortedPairDistances(n=70),
        CoordinationHistogram(),
        CoordinationHistogram(cutoff=3.1, smooth=0.1),
    ]


_IDS = ["coulomb", "coulomb_abs_20", "rdf", "rdf_smeared_per_atom", "distances_70", "cn_auto",
        "cn_fermi"]


def _transformed(atoms: Atoms, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    rot = Rotation.random(random_state=seed)
    perm = rng.permutation(len(atoms))
    out = atoms[perm]
    out.positions = rot.apply(out.positions) + rng.normal(0, 5.0, 3)
    return out


@pytest.mark.parametrize("fp", _all_fingerprints(), ids=_IDS)
def test_invariant_to_rotation_translation_permutation(fp, frames):
    x = fp.fit_transform(frames)
    moved = [_transformed(a, seed=k) for k, a in enumerate(frames)]
    y = fp.transform(moved)
    assert x.shape == y.shape == (len(frames), fp.n_features_out_)
    np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-9 * np.abs(x).max())
    # and it is not trivially constant: frames differ
    assert np.ptp(x, axis=0).max() > 0


@pytest.mark.parametrize("fp", _all_fingerprints(), ids=_IDS)
def test_batched_equals_one_by_one(fp, frames):
    x = fp.fit_transform(frames)
    one = np.vstack([fp.transform([a]) for a in frames])
    np.testing.assert_allclose(x, one, rtol=1e-12, atol=1e-12)
    fp.set_params(max_bytes=1)                     # one frame per chunk
    np.testing.assert_allclose(fp.transform(frames), x, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- Coulomb

@pytest.mark.parametrize("r", [2.2, 4.0])
def test_coulomb_dimer_analytic(r):
    cu2 = Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]])
    ev = CoulombMatrixEigenvalues().fit_transform([cu2])[0]
    a, b = 0.5 * Z_CU ** 2.4, Z_CU ** 2 / r
    np.testing.assert_allclose(ev, [a + b, a - b], rtol=1e-12)
    # hetero-nuclear: eigenvalues of [[a, c], [c, d]]
    cuo = Atoms("CuO", positions=[[0, 0, 0], [0, r, 0]])
    a, d, c = 0.5 * 29 ** 2.4, 0.5 * 8 ** 2.4, 29 * 8 / r
    mean, half = (a + d) / 2, np.sqrt(((a - d) / 2) ** 2 + c ** 2)
    np.testing.assert_allclose(CoulombMatrixEigenvalues().fit_transform([cuo])[0],
                               [mean + half, mean - half], rtol=1e-12)


def test_coulomb_sorting_and_padding(cu13, cu55):
    fp = CoulombMatrixEigenvalues()
    x = fp.fit_transform([cu55, cu13])
    assert x.shape == (2, 55) and fp.n_features_out_ == 55
    alone = CoulombMatrixEigenvalues().fit_transform([cu13])[0]
    np.testing.assert_allclose(x[1, :13], alone)
    assert (x[1, 13:] == 0).all()
    assert (np.diff(x[0]) <= 0).all()                            # descending
    # trace of M = sum of eigenvalues
    assert x[0].sum() == pytest.approx(55 * 0.5 * Z_CU ** 2.4, rel=1e-10)
    xa = CoulombMatrixEigenvalues(sort="abs").fit_transform([cu55])[0]
    assert (np.diff(np.abs(xa)) <= 1e-9).all()
    np.testing.assert_allclose(np.sort(xa), np.sort(x[0]))
    top = CoulombMatrixEigenvalues(n_eigen=5).transform([cu55, cu13])   # no fit needed
    np.testing.assert_allclose(top, x[:, :5])
    with pytest.raises(InconsistentFramesError, match="frame 1 has 13 atoms"):
        CoulombMatrixEigenvalues(pad=False).fit([cu55, cu13])
    with pytest.raises(InconsistentFramesError, match="frame 1 has 55 atoms"):
        CoulombMatrixEigenvalues().fit([cu13]).transform([cu13, cu55])
    with pytest.raises(NotFittedError):
        CoulombMatrixEigenvalues().transform([cu13])
    strict = CoulombMatrixEigenvalues(n_eigen=20, pad=False)
    np.testing.assert_allclose(strict.transform([cu55]), x[:1, :20])      # truncation is fine
    with pytest.raises(InconsistentFramesError, match="frame 1 has 13 atoms, fewer than the 20"):
        strict.transform([cu55, cu13])
    with pytest.raises(InputError, match="sort"):
        CoulombMatrixEigenvalues(sort="up").fit([cu13])


def test_coulomb_coincident_atoms(cu13):
    bad = cu13.copy()
    bad.positions[7] = bad.positions[3]
    with pytest.raises(AtomsTooCloseError, match="frame 1: atoms 3 and 7"):
        CoulombMatrixEigenvalues(n_eigen=13).transform([cu13, bad])


# ----------------------------------------------------------------------------- distances

def test_histogram_counts_sum_to_number_of_pairs(frames):
    n_pairs = np.array([len(a) * (len(a) - 1) / 2 for a in frames])
    raw = PairDistanceHistogram(r_max=40.0, n_bins=200, normalize=False).transform(frames)
    np.testing.assert_array_equal(raw.sum(1), n_pairs)
    assert np.all(raw == np.round(raw))
    smeared = PairDistanceHistogram(r_max=40.0, n_bins=200, normalize=False,
                                    smearing=0.2).transform(frames)
    np.testing.assert_allclose(smeared.sum(1), n_pairs, rtol=1e-8)
    dense = PairDistanceHistogram(r_max=40.0, n_bins=20, normalize=False,
                                  smearing=0.2).transform(frames)   # dense erf path
    np.testing.assert_allclose(dense.sum(1), n_pairs, rtol=1e-8)
    norm = PairDistanceHistogram(r_max=40.0, n_bins=200).transform(frames)
    np.testing.assert_allclose(norm.sum(1), 1.0)
    # unsmeared counts equal numpy's histogram of scipy's pdist
    fp = PairDistanceHistogram(r_max=9.0, n_bins=45, normalize=False)
    ref = np.histogram(pdist(frames[3].positions), bins=fp.bin_edges)[0]
    np.testing.assert_array_equal(fp.transform([frames[3]])[0], ref)


def test_smeared_histogram_matches_dense_gaussian_integral(frames):
    fp = PairDistanceHistogram(r_max=10.0, n_bins=100, normalize=False, smearing=0.1)
    from scipy.stats import norm

    r = pdist(frames[4].positions)
    e = fp.bin_edges
    ref = (norm.cdf(e[1:, None], loc=r, scale=0.1)
           - norm.cdf(e[:-1, None], loc=r, scale=0.1)).sum(1)
    np.testing.assert_allclose(fp.transform([frames[4]])[0], ref, atol=1e-7)


def test_per_atom_rdf_first_peak_is_mean_coordination(cu55):
    h = PairDistanceHistogram(r_max=8.0, n_bins=80, normalize="per_atom").transform([cu55])[0]
    first_shell = h[:30].sum()                        # bins below 3.0 Å (gap 2.7-3.4 Å)
    assert first_shell == pytest.approx(coordination_stats(cu55, cutoff=3.0)["mean"])


def test_sorted_pair_distances(frames, cu13, cu55):
    fp = SortedPairDistances()
    x = fp.fit_transform(frames[:3])
    np.testing.assert_allclose(x[1], np.sort(pdist(frames[1].positions)), rtol=1e-12)
    assert x.shape == (3, 55 * 54 // 2)
    with pytest.raises(InconsistentFramesError):
        SortedPairDistances().fit([cu55, cu13])
    with pytest.raises(InconsistentFramesError, match="frame 1"):
        SortedPairDistances(n=100).transform([cu55, cu13])
    assert SortedPairDistances(n=78).transform([cu55, cu13]).shape == (2, 78)


# ----------------------------------------------------------------------------- coordination

def test_coordination_of_fcc_cluster_interior_is_12():
    """A cube cut from fcc Cu: the atoms whose 12 lattice neighbours all exist (found by
    integer lattice indices, no distances) are exactly those with CN 12."""
    a0 = 3.61
    block = FaceCenteredCubic("Cu", size=(4, 4, 4), latticeconstant=a0, pbc=False)
    ijk = np.rint(block.positions / (a0 / 2)).astype(int)        # doubled lattice indices
    sites = {tuple(v) for v in ijk}
    nn = [v for v in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).T.reshape(-1, 3)
          if np.abs(v).sum() == 2]
    assert len(nn) == 12
    complete = np.array([all(tuple(p + v) in sites for v in nn) for p in ijk])
    assert complete.sum() > 50

    fp = CoordinationHistogram()
    h = fp.fit_transform([block])[0]
    assert a0 / np.sqrt(2) < fp.cutoff_ < a0                      # first RDF minimum in the gap
    cn = fp.coordination([block])[0]
    assert (cn[complete] == 12).all() and (cn[~complete] < 12).all()
    assert h[12] == pytest.approx(complete.mean())
    assert h.sum() == pytest.approx(1.0)
    assert h[13:].sum() == 0


def test_coordination_smooth_and_clipping(cu13):
    hard = CoordinationHistogram(cutoff=3.0).transform([cu13])[0]
    assert hard[12] == pytest.approx(1 / 13) and hard[6] == pytest.approx(12 / 13)
    sharp = CoordinationHistogram(cutoff=3.0, smooth=1e-4).transform([cu13])[0]
    np.testing.assert_allclose(sharp, hard, atol=1e-12)
    soft = CoordinationHistogram(cutoff=3.0, smooth=0.3).transform([cu13])[0]
    assert soft.sum() == pytest.approx(1.0) and (soft >= 0).all()
    clipped = CoordinationHistogram(cutoff=3.0, max_cn=8).transform([cu13])[0]
    assert clipped.shape == (9,) and clipped[8] == pytest.approx(1 / 13)
    with pytest.raises(NotFittedError):
        CoordinationHistogram().transform([cu13])


def test_rdf_first_minimum_for_cu(cu55, frames):
    assert 2.7 < rdf_first_minimum([cu55]) < 3.45
    hot = frames[4:6]                                              # 1500 K Cu55
    assert 2.9 < rdf_first_minimum(hot) < 3.7


# ----------------------------------------------------------------------------- ACSF

def test_averaged_acsf_dimer_analytic():
    """Cu2: the radial G2 of both atoms is exp(-eta r^2) f_c(r) (poly2 cutoff), the
    angular ones vanish; the averages equal these."""
    r, rc = 2.4, 6.0
    cu2 = Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]], cell=[20, 20, 20])
    fp = AveragedACSF()
    x = fp.fit_transform([cu2])[0]
    assert x.shape == (13,) and fp.n_features_out_ == 13
    assert len(fp.get_feature_names_out()) == 13 and "default Cu set" in repr(fp)
    xx = r / rc
    fc = ((15 - 6 * xx) * xx - 10) * xx ** 3 + 1
    radial = sorted(np.exp(-eta * r ** 2) * fc for eta in (0.003, 0.02, 0.06, 0.2, 0.6))
    np.testing.assert_allclose(sorted(x[x > 1e-12]), radial, rtol=1e-10)
    assert np.count_nonzero(np.abs(x) > 1e-12) == 5


def test_averaged_acsf_invariance_and_batching(frames):
    fp = AveragedACSF(batch_size=3, device="cpu")
    x = fp.fit_transform(frames)
    assert x.shape == (len(frames), 13)
    y = fp.transform([_transformed(a, seed=k) for k, a in enumerate(frames)])
    np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-10)
    one = np.vstack([fp.transform([a]) for a in frames])
    np.testing.assert_allclose(one, x, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- API / errors

def test_make_fingerprint_and_sklearn_api(frames):
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert set(FINGERPRINTS) == {"coulomb", "rdf", "distances", "cn", "acsf"}
    fp = make_fingerprint("rdf", n_bins=30, r_max=9.0)
    assert isinstance(fp, PairDistanceHistogram) and fp.n_bins == 30
    assert isinstance(make_fingerprint("Coulomb"), CoulombMatrixEigenvalues)
    assert isinstance(make_fingerprint("cn"), CoordinationHistogram)
    with pytest.raises(InputError, match="unknown fingerprint"):
        make_fingerprint("soap")
    assert clone(fp).get_params()["n_bins"] == 30
    pipe = make_pipeline(make_fingerprint("coulomb", n_eigen=10), StandardScaler())
    z = pipe.fit_transform(frames)
    assert z.shape == (len(frames), 10)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    assert fp.get_feature_names_out()[0] == "rdf0"
    assert "r_max=9.0 Å" in repr(fp)
    x = CoulombMatrixEigenvalues(progress=True).fit_transform(frames)
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", ["coulomb", "rdf", "distances", "cn", "acsf"])
def test_validation_errors(name, cu13):
    fp = make_fingerprint(name)
    with pytest.raises(EmptyTrajectoryError):
        fp.fit([])
    bad = cu13.copy()
    bad.positions[2] = [np.nan, 0.0, 1.0]
    with pytest.raises(NonFiniteError, match="frame 2"):
        fp.fit_transform([cu13, cu13, bad])
    with pytest.raises(InputError, match="frame 0 is"):
        fp.fit_transform([np.zeros((3, 3))])
