"""Tests of mdmlkit.landscape: embedding, basins, surfaces, complexity."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError
from mdmlkit.landscape import (
    LandscapeMap,
    basin_agreement,
    canonical_labels,
    cluster_embedding,
    density,
    interpolate_surface,
    k_distance_curve,
    knee_index,
    landscape_complexity,
    local_minima,
    match_labels,
    reassign_noise,
    suggest_eps,
)

SIZES = [150, 100, 50]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def blobs():
    """Three well-separated Gaussian blobs in 20-D with distinct sizes and energies."""
    X, y, centers = make_blobs(n_samples=SIZES, n_features=20, center_box=(-10, 10),
                               random_state=1, return_centers=True)
    rng = np.random.default_rng(0)
    E = 0.5 * y + 0.05 * rng.standard_normal(len(y))           # eV, blob 0 lowest
    return X, y, E, centers


@pytest.fixture(scope="module")
def blob_map(blobs):
    X, y, E, _ = blobs
    return LandscapeMap(random_state=0).fit(X, energies=E)


def _cu13_run(T: float, n_frames: int, seed: int, every: int = 20):
    """Positions [n_frames, 13, 3] (Å) and E_pot (eV) of Cu13 Langevin MD at ``T`` K."""
    asap3 = pytest.importorskip("asap3")
    from ase import units
    from ase.cluster import Icosahedron
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = Icosahedron("Cu", 2)
    atoms.center(vacuum=8)
    atoms.calc = asap3.EMT()
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=rng)
        dyn = Langevin(atoms, 5 * units.fs, temperature_K=T, friction=0.02, rng=rng)
        dyn.run(500)                                                  # equilibrate 2.5 ps
        pos, E = [], []
        for _ in range(n_frames):
            dyn.run(every)
            pos.append(atoms.get_positions().copy())
            E.append(atoms.get_potential_energy())
    return np.array(pos), np.array(E)


@pytest.fixture(scope="module")
def cu13_solid_liquid():
    from ase import Atoms

    from mdmlkit.landscape.fingerprints import CoulombMatrixEigenvalues

    ps, es = _cu13_run(200.0, 150, seed=1)
    pl, el = _cu13_run(1200.0, 150, seed=2)
    frames = [Atoms("Cu13", positions=p) for p in np.concatenate([ps, pl])]
    X = CoulombMatrixEigenvalues().fit_transform(frames)
    phase = np.r_[np.zeros(len(ps), int), np.ones(len(pl), int)]
    return X, np.concatenate([es, el]), phase


# ----------------------------------------------------------------------------- LandscapeMap

def test_blobs_give_three_basins(blobs, blob_map):
    X, y, E, _ = blobs
    lm = blob_map
    assert lm.n_basins_ == 3
    assert lm.embedding_.shape == (len(X), 2)
    assert adjusted_rand_score(y, lm.labels_) > 0.95
    assert (lm.labels_ >= 0).all()
    core = lm.raw_labels_ >= 0
    np.testing.assert_array_equal(lm.labels_[core], lm.raw_labels_[core])
    # canonical numbering: by decreasing size -> basin b is blob b (sizes 150/100/50)
    assert [s["size"] for s in lm.basin_stats_] == sorted(
        [s["size"] for s in lm.basin_stats_], reverse=True)
    assert basin_agreement(y, lm.labels_)["mapping"] == {0: 0, 1: 1, 2: 2}


def test_noise_reassigned_by_knn_vote(blob_map):
    lm = blob_map
    Y, raw = lm.embedding_, lm.raw_labels_.copy()
    rng = np.random.default_rng(3)
    raw[rng.choice(len(raw), 25, replace=False)] = -1           # make sure there is noise
    out = reassign_noise(Y, raw, k=5)
    assert (out >= 0).all()
    noise, core = np.nonzero(raw < 0)[0], np.nonzero(raw >= 0)[0]
    d = cdist(Y[noise], Y[core])
    for row, i in enumerate(noise):                              # brute-force 5-NN majority
        votes = np.bincount(raw[core[np.argsort(d[row])[:5]]])
        assert out[i] == np.argmax(votes)
    np.testing.assert_array_equal(out[core], raw[core])


def test_representatives_are_basin_medoids(blob_map):
    lm = blob_map
    assert len(lm.representatives_) == lm.n_basins_
    for b, rep in enumerate(lm.representatives_):
        members = np.nonzero(lm.labels_ == b)[0]
        assert lm.labels_[rep] == b
        total = cdist(lm.embedding_[members], lm.embedding_[members]).sum(axis=1)
        assert rep == members[np.argmin(total)]


def test_basin_stats_match_energies(blobs, blob_map):
    X, y, E, _ = blobs
    lm = blob_map
    assert sum(s["size"] for s in lm.basin_stats_) == len(X)
    assert sum(s["fraction"] for s in lm.basin_stats_) == pytest.approx(1.0)
    for s in lm.basin_stats_:
        e = E[lm.labels_ == s["basin"]]
        assert s["E_mean"] == pytest.approx(e.mean())
        assert s["E_min"] == pytest.approx(e.min()) and s["E_max"] == pytest.approx(e.max())
        assert s["representative"] == lm.representatives_[s["basin"]]
    assert "3 basins" in repr(lm)


def test_stability_across_random_state(blobs, blob_map):
    X, y, E, _ = blobs
    other = LandscapeMap(random_state=7).fit(X, energies=E)
    agree = basin_agreement(blob_map.labels_, other.labels_)
    assert agree["ari"] > 0.9 and agree["matched_fraction"] > 0.95


def test_permuted_input_gives_same_canonical_partition(blobs, blob_map):
    X, y, E, _ = blobs
    perm = np.random.default_rng(5).permutation(len(X))
    other = LandscapeMap(random_state=0).fit(X[perm], energies=E[perm])
    np.testing.assert_array_equal(other.labels_, blob_map.labels_[perm])


def test_transform_and_predict(blobs, blob_map):
    X, y, E, centers = blobs
    lm = blob_map
    Yt = lm.transform(X[::5])
    extent = np.ptp(lm.embedding_, axis=0).max()
    shift = np.linalg.norm(Yt - lm.embedding_[::5], axis=1)
    assert np.median(shift) < 0.02 * extent
    assert (lm.predict_map(Yt) == lm.labels_[::5]).mean() > 0.95
    # fresh frames drawn from the same blobs land in the right basins
    Xn, yn = make_blobs(n_samples=[30, 30, 30], n_features=20, centers=centers, random_state=11)
    pred = lm.predict(Xn)
    assert adjusted_rand_score(yn, pred) > 0.95
    assert basin_agreement(yn, pred)["mapping"] == {0: 0, 1: 1, 2: 2}


def test_recluster_only_reclusters(blobs, blob_map):
    X, y, E, _ = blobs
    lm = pickle.loads(pickle.dumps(blob_map))                     # a copy (also: picklable)
    Y0 = lm.embedding_.copy()
    np.testing.assert_array_equal(lm.predict(X[:10]), blob_map.predict(X[:10]))
    lm.recluster(eps=10 * np.ptp(Y0), min_samples=10)
    assert lm.n_basins_ == 1 and lm.eps == lm.eps_
    lm.recluster(clustering="hdbscan")
    assert lm.n_basins_ == 3 and adjusted_rand_score(y, lm.labels_) > 0.95
    lm.recluster(clustering="dbscan")
    np.testing.assert_array_equal(lm.labels_, blob_map.labels_)
    np.testing.assert_array_equal(lm.embedding_, Y0)


def test_seed_compatible_sklearn_tsne(blobs):
    X, y, E, _ = blobs
    lm = LandscapeMap(embedding="tsne-sklearn", n_iter=500).fit(X, energies=E)
    assert lm.n_basins_ == 3 and adjusted_rand_score(y, lm.labels_) > 0.95
    np.testing.assert_allclose(lm.transform(X[:20]), lm.embedding_[:20], atol=1e-9)


def test_pca_map_and_frames_meta(blobs):
    X, y, E, _ = blobs
    T = np.where(y == 0, 300.0, 900.0)
    lm = LandscapeMap(embedding="pca").fit(X, frames_meta={"E_pot": E, "T_target": T})
    np.testing.assert_allclose(lm.transform(X), lm.embedding_, atol=1e-9)
    assert lm.energies_ is not None
    for s in lm.basin_stats_:
        assert s["T_target_mean"] == pytest.approx(T[lm.labels_ == s["basin"]].mean())


@pytest.mark.slow
def test_umap_map(blobs):
    pytest.importorskip("umap")
    X, y, E, centers = blobs
    lm = LandscapeMap(embedding="umap", random_state=0).fit(X, energies=E)
    assert lm.n_basins_ == 3 and adjusted_rand_score(y, lm.labels_) > 0.95
    Xn, yn = make_blobs(n_samples=[20, 20, 20], n_features=20, centers=centers, random_state=4)
    assert adjusted_rand_score(yn, lm.predict(Xn)) > 0.95


def test_cu13_solid_and_liquid_separate(cu13_solid_liquid):
    X, E, phase = cu13_solid_liquid
    lm = LandscapeMap(random_state=0).fit(X, energies=E)
    assert lm.n_basins_ >= 2
    solid = np.bincount(lm.labels_[phase == 0], minlength=lm.n_basins_)
    liquid = np.bincount(lm.labels_[phase == 1], minlength=lm.n_basins_)
    bs, bl = int(np.argmax(solid)), int(np.argmax(liquid))
    assert bs != bl
    assert solid[bs] / solid.sum() > 0.9 and liquid[bl] / liquid.sum() > 0.9
    # the solid basin is lower in energy (EMT: icosahedron at 200 K vs liquid at 1200 K)
    assert lm.basin_stats_[bs]["E_mean"] < lm.basin_stats_[bl]["E_mean"] - 1.0


# ----------------------------------------------------------------------------- bad input

def test_bad_input_raises_specific_errors(blobs):
    X, y, E, _ = blobs
    with pytest.raises(EmptyTrajectoryError, match="5 frame"):
        LandscapeMap().fit(X[:5])
    Xbad = X.copy()
    Xbad[7, 3] = np.nan
    with pytest.raises(NonFiniteError, match="row 7"):
        LandscapeMap().fit(Xbad)
    with pytest.raises(InconsistentFramesError, match="energies"):
        LandscapeMap().fit(X, energies=E[:-1])
    Ebad = E.copy()
    Ebad[3] = np.inf
    with pytest.raises(NonFiniteError, match="frame 3"):
        LandscapeMap().fit(X, energies=Ebad)
    with pytest.raises(InputError, match="embedding"):
        LandscapeMap(embedding="tnse").fit(X)
    with pytest.raises(InputError, match="2-D"):
        LandscapeMap().fit(X[:, 0])
    lm = LandscapeMap(embedding="pca").fit(X)
    with pytest.raises(InconsistentFramesError, match="20"):
        lm.transform(X[:, :5])
    with pytest.raises(InputError, match="energies"):
        lm.surface()


# ----------------------------------------------------------------------------- basins

def _blobs_2d(n_per=(400, 300, 200), seed=0):
    Y, y = make_blobs(n_samples=list(n_per), centers=[[0, 0], [10, 0], [0, 10]],
                      cluster_std=1.0, random_state=seed)
    return Y, y


def test_k_distance_curve_matches_brute_force():
    Y, _ = _blobs_2d((40, 30, 20))
    d = np.sort(cdist(Y, Y), axis=1)
    np.testing.assert_allclose(k_distance_curve(Y, 5), np.sort(d[:, 4]), atol=1e-12)


def test_knee_of_a_hockey_stick():
    y = np.r_[np.full(80, 1.0) + np.linspace(0, 0.05, 80), np.linspace(1.1, 20.0, 20)]
    assert knee_index(y) in (79, 80)                               # last flat / first steep
    assert knee_index(np.linspace(0, 1, 50)) in range(50)          # straight: any, no crash


def test_suggest_eps_between_intra_and_inter_cluster_distances():
    Y, y = _blobs_2d()
    ms = 10
    eps = suggest_eps(Y, ms)
    kd = np.sort(cdist(Y, Y), axis=1)[:, ms - 1]
    inter = min(cdist(Y[y == a], Y[y == b]).min() for a in range(3) for b in range(a + 1, 3))
    assert np.median(kd) < eps < inter
    raw, eps_used, _ = cluster_embedding(Y, "dbscan", None, ms)
    assert eps_used == pytest.approx(eps)
    assert len(set(raw) - {-1}) == 3
    assert adjusted_rand_score(y[raw >= 0], raw[raw >= 0]) > 0.99


def test_subsampled_clustering_agrees_with_full():
    Y, y = _blobs_2d((5000, 4000, 3000), seed=2)
    full, eps_f, ms = cluster_embedding(Y, "dbscan", max_samples=None)
    sub, eps_s, ms_s = cluster_embedding(Y, "dbscan", max_samples=3000, random_state=1)
    assert ms == ms_s == 240
    assert eps_s == pytest.approx(eps_f, rel=0.25)                 # same density threshold
    lab_f, lab_s = reassign_noise(Y, full), reassign_noise(Y, sub)
    assert adjusted_rand_score(y, lab_s) > 0.99
    assert basin_agreement(lab_f, lab_s)["matched_fraction"] > 0.99


def test_canonical_labels_order_and_invariance():
    lab = np.r_[np.full(10, 7), np.full(20, 3), np.full(10, 5), [-1, -1]]
    E = np.r_[np.full(10, 2.0), np.full(20, 0.0), np.full(10, 1.0), [0.0, 0.0]]
    new, mapping = canonical_labels(lab, E)
    assert mapping == {3: 0, 5: 1, 7: 2}                           # size, then lower energy
    np.testing.assert_array_equal(new[-2:], [-1, -1])
    perm = np.random.default_rng(0).permutation(len(lab))
    relabelled = np.array([{7: 0, 3: 1, 5: 2, -1: -1}[v] for v in lab])
    new2, _ = canonical_labels(relabelled[perm], E[perm])
    np.testing.assert_array_equal(new2, new[perm])


def test_basin_agreement_and_matching():
    a = np.repeat([0, 1, 2], [5, 4, 3])
    b = np.repeat([2, 0, 1], [5, 4, 3])
    res = basin_agreement(a, b)
    assert res["ari"] == pytest.approx(1.0) and res["matched_fraction"] == 1.0
    assert res["mapping"] == {2: 0, 0: 1, 1: 2}
    np.testing.assert_array_equal(match_labels(a, b), a)
    c = b.copy()
    c[0] = 1                                                       # one frame moved
    assert basin_agreement(a, c)["matched_fraction"] == pytest.approx(11 / 12)


# ----------------------------------------------------------------------------- surfaces

def _uniform(n, seed=0, lo=(-1.0, -1.0), hi=(1.0, 1.0)):
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, 2))


@pytest.mark.parametrize("method,tol_mean,tol_max", [("linear", 3e-3, 0.05),
                                                     ("cubic", 1e-3, 0.05),
                                                     ("rbf", 1e-3, 0.05)])
def test_interpolate_surface_reproduces_paraboloid(method, tol_mean, tol_max):
    Y = _uniform(2000)
    E = (Y ** 2).sum(axis=1)
    x, y, V = interpolate_surface(Y, E, grid=60, method=method)
    assert V.shape == (60, 60)
    xx, yy = np.meshgrid(x, y)
    ok = np.isfinite(V)
    err = np.abs(V - (xx ** 2 + yy ** 2))[ok]
    assert err.mean() < tol_mean and err.max() < tol_max
    # NaN exactly outside the convex hull of the points (checked with matplotlib's Path)
    from matplotlib.path import Path

    hull = ConvexHull(Y)
    inside = Path(Y[hull.vertices]).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    assert (ok.ravel() == inside).mean() > 0.995
    assert not ok[0, 0] and ok[30, 30]


def test_density_integrates_to_one_and_matches_scipy_kde():
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(1)
    Z = np.r_[rng.normal([0, 0], [1.0, 0.5], size=(1500, 2)),
              rng.normal([4, 1], [0.7, 1.0], size=(1000, 2))]
    Z -= Z.mean(axis=0)                                   # exactly uncorrelated sample, so
    L = np.linalg.cholesky(np.cov(Z.T))                  # scipy's full-covariance kernel is
    Z = Z @ np.linalg.inv(L).T * [1.5, 0.8]              # diagonal like ours
    factor = len(Z) ** (-1 / 6)
    bw = factor * Z.std(axis=0, ddof=1)
    x, y, D = density(Z, grid=120, bandwidth=bw, method="exact")
    xx, yy = np.meshgrid(x, y)
    ref = gaussian_kde(Z.T, bw_method=factor)(np.vstack([xx.ravel(), yy.ravel()])).reshape(D.shape)
    np.testing.assert_allclose(D, ref, rtol=1e-8, atol=1e-12)
    dx, dy = x[1] - x[0], y[1] - y[0]
    assert D.sum() * dx * dy == pytest.approx(1.0, abs=0.01)
    _, _, Db = density(Z, grid=120, bandwidth=bw, method="binned")
    assert np.abs(Db - D).sum() / D.sum() < 0.02
    assert Db.sum() * dx * dy == pytest.approx(1.0, abs=0.01)


def test_complexity_counts_double_well_minima():
    Y = _uniform(3000, seed=2, lo=(-2.0, -1.5), hi=(2.0, 1.5))
    E = (Y[:, 0] ** 2 - 1.0) ** 2 + 0.5 * Y[:, 1] ** 2
    labels = (Y[:, 0] > 0).astype(int)
    c = landscape_complexity(Y, E, labels, grid=80)
    assert c["n_local_minima"] == 2 and c["n_basins"] == 2
    mins = c["minima_xy"][np.argsort(c["minima_xy"][:, 0])]
    np.testing.assert_allclose(mins, [[-1.0, 0.0], [1.0, 0.0]], atol=0.12)
    # Gaussian smoothing (sigma = 2 cells = 0.1) lifts a minimum by ~ E'' sigma^2 / 2 = 0.045
    assert c["minima_E"] == pytest.approx([0.045, 0.045], abs=0.03)
    assert c["energy_range"] == pytest.approx(np.ptp(E))
    # single well -> one minimum; roughness is linear in the energy scale (eV / map unit)
    E1 = (Y ** 2).sum(axis=1)
    c1 = landscape_complexity(Y, E1, grid=80)
    c2 = landscape_complexity(Y, 2.0 * E1, grid=80)
    assert c1["n_local_minima"] == 1 and c1["n_basins"] is None
    assert c2["roughness"] == pytest.approx(2.0 * c1["roughness"], rel=1e-9)


def test_local_minima_ignores_hull_edge_and_plateaus():
    v = np.full((9, 9), 5.0)
    v[6, 3] = 1.0                                        # interior minimum
    v[0, :] = 0.0                                        # lowest on the grid edge: not counted
    v[1:4, 4:8] = 3.0
    v[2, 5:7] = 2.0                                      # a 2-node plateau: counted once
    v[:, 8] = np.nan                                     # undefined column (outside the hull)
    v[4, 7] = 0.5                                        # touches the NaN column: not counted
    idx = local_minima(v)
    found = sorted(map(tuple, idx))
    assert len(found) == 2 and found[0] in ((2, 5), (2, 6)) and found[1] == (6, 3)


def test_map_surface_helpers(blob_map):
    s = blob_map.surface(grid=40)
    assert s.values.shape == (40, 40) and np.isfinite(s.values).any()
    assert "40x40" in repr(s)
    d = blob_map.density(grid=40)
    assert (d.values >= 0).all()
    c = blob_map.complexity(grid=40)
    assert c["n_basins"] == 3 and c["n_frames"] == len(blob_map.labels_)
