"""Tests of the active-learning queries (autoencoder, FPS, QBC, random) on small EMT data."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mdmlkit.active import (AutoencoderQuery, CommitteeQuery, DescriptorCache, FarthestPointQuery,
                            RandomQuery, Selection)
from mdmlkit.active.features import structure_fingerprint
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import ACSF, SymmetryFunctionSet
from mdmlkit.errors import (EmptyTrajectoryError, InputError, ModelMismatchError,
                            UnknownElementError)


@pytest.fixture(scope="module")
def sfs():
    return SymmetryFunctionSet.generate(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)


@pytest.fixture(scope="module")
def data():
    """Training set at 300-500 K and held-out in-/out-of-distribution sets (16-atom cells)."""
    return {
        "train": emt_frames(24, "thermal", (300, 500), seed=1),
        "id": emt_frames(12, "thermal", (300, 500), seed=2),
        "hot": emt_frames(12, "thermal", (1800, 2000), seed=3),
        "strain": emt_frames(12, "strain", max_strain=0.08, seed=4),
        # Ni-rich alloy: Cu atoms see mostly Ni neighbours, unlike in training
        "ni_rich": emt_frames(12, "thermal", (300, 500), fractions=(0.2, 0.8), seed=5),
    }


@pytest.fixture(scope="module")
def ae(sfs, data):
    return AutoencoderQuery(sfs, steps=800, seed=0).fit(data["train"])


# ----------------------------------------------------------------------------- autoencoder

def test_ae_error_higher_out_of_distribution(ae, data):
    u_id = ae.uncertainty(data["id"])
    for kind in ("hot", "strain", "ni_rich"):
        u = ae.uncertainty(data[kind])
        assert np.median(u) > 1.5 * np.median(u_id), kind
    # hot snapshots separate almost perfectly from held-out in-distribution ones
    u_hot = ae.uncertainty(data["hot"])
    auc = np.mean(u_hot[:, None] > u_id[None, :])
    assert auc > 0.9
    # the calibrated threshold flags hot snapshots, hardly any in-distribution ones
    assert ae.flag(data["hot"]).mean() > 0.5
    assert ae.flag(data["id"]).mean() < 0.25


def test_ae_scores_follow_documented_formulas(ae, sfs, data):
    pool = data["id"] + data["hot"]
    sc = ae.score(pool)
    # independent per-atom errors: raw ACSF -> standardise -> AE -> mean squared error
    acsf = ACSF(sfs).double()
    per_structure_max, per_structure_mean = [], []
    for atoms in pool:
        G = acsf.compute([atoms])
        errs, _ = ae.autoencoder_.evaluate(G)
        e = np.concatenate([errs[el] / ae.error_scale_[el] for el in sfs.elements if len(errs[el])])
        per_structure_max.append(e.max())
        per_structure_mean.append(e.mean())
    np.testing.assert_allclose(sc["informativeness_max"], per_structure_max, rtol=1e-5)
    np.testing.assert_allclose(sc["informativeness_mean"], per_structure_mean, rtol=1e-5)
    np.testing.assert_allclose(sc["informativeness"],
                               ae.w_max * sc["informativeness_max"]
                               + (1 - ae.w_max) * sc["informativeness_mean"], rtol=1e-12)
    np.testing.assert_allclose(sc["score"], sc["informativeness"] * sc["representativeness"] ** ae.beta)
    assert np.all((sc["representativeness"] > 0) & (sc["representativeness"] <= 1 + 1e-12))
    # worst_atom points at the atom with the largest normalised error
    errs = ae.atom_errors(pool)
    assert [int(np.argmax(e)) for e in errs] == sc["worst_atom"].tolist()


@pytest.mark.parametrize("space", ["latent", "input"])
def test_ae_representativeness_grows_with_similar_pool_structures(ae, data, space):
    """R(s) measures how many pool environments resemble s: copies of s raise it."""
    q = AutoencoderQuery(**{**ae.get_params(), "density_space": space})
    q.__dict__.update({k: v for k, v in ae.__dict__.items() if k.endswith("_")})
    hot = data["hot"][0]
    alone = q.score(data["id"] + [hot])["representativeness"]
    crowd = q.score(data["id"] + [hot.copy() for _ in range(6)])["representativeness"]
    assert crowd[-1] > alone[-1]
    assert crowd[-1] > np.median(crowd[:len(data["id"])])


def test_ae_diversity_rule_avoids_duplicates(ae, data):
    distinct = data["id"][:4] + data["hot"][:2]
    rng = np.random.default_rng(0)
    pool = [distinct[i].copy() for i in rng.permutation(np.repeat(np.arange(6), 8))]
    sel = ae.select(pool, 6)
    prints = {structure_fingerprint(pool[i]) for i in sel.indices}
    assert len(prints) == 6                                   # six different structures
    assert not any(r["duplicate_of_batch"] for r in sel.reasons)
    # a plain top-k of the score would take copies of the same few structures
    top = np.argsort(-ae.score(pool)["score"], kind="stable")[:6]
    assert len({structure_fingerprint(pool[i]) for i in top}) < 6
    # the batch holds the best structure first
    assert sel.indices[0] == top[0]
    # asking for more than the distinct structures warns and marks the duplicates
    with pytest.warns(UserWarning, match="duplicates"):
        more = ae.select(pool, 8)
    assert sum(r["duplicate_of_batch"] for r in more.reasons) == 2


def test_selection_object(ae, data):
    sel = ae.select(data["id"], 3)
    assert isinstance(sel, Selection)
    idx, reasons = sel
    assert len(idx) == len(set(idx.tolist())) == 3 and len(reasons) == 3
    assert reasons[0]["rank"] == 0 and "informativeness_max" in reasons[0]
    assert "autoencoder" in repr(sel)
    assert "fitted on 24 structures" in repr(ae)


# ----------------------------------------------------------------------------- FPS

def _naive_fps(train: np.ndarray, pool: np.ndarray, k: int) -> list[int]:
    chosen = []
    ref = list(train)
    for _ in range(k):
        best, best_d = None, -1.0
        for i, p in enumerate(pool):
            if i in chosen:
                continue
            d = min(float(np.hypot(*(p - r))) for r in ref)
            if d > best_d + 1e-12:
                best, best_d = i, d
        chosen.append(best)
        ref.append(pool[best])
    return chosen


def test_fps_picks_farthest_points_on_2d_toy():
    rng = np.random.default_rng(3)
    pool = rng.uniform(-5, 5, size=(60, 2))
    train = np.array([[0.0, 0.0], [4.0, 4.0]])
    q = FarthestPointQuery().fit(train)
    sel = q.select(pool, 6)
    assert sel.indices.tolist() == _naive_fps(train, pool, 6)
    # the first pick is the pool point farthest from both training points
    d = np.min(np.linalg.norm(pool[:, None] - train[None], axis=2), axis=1)
    assert sel.indices[0] == np.argmax(d)
    np.testing.assert_allclose(q.score(pool)["score"], d)


def test_fps_on_structures(sfs, data):
    q = FarthestPointQuery(sfs).fit(data["train"])
    pool = data["id"] + data["hot"]
    sel = q.select(pool, 4)
    assert len(set(sel.indices.tolist())) == 4
    assert all(i >= len(data["id"]) for i in sel.indices[:2])   # hot snapshots are far away
    assert np.median(q.uncertainty(data["hot"])) > np.median(q.uncertainty(data["id"]))


# ----------------------------------------------------------------------------- QBC

@pytest.fixture(scope="module")
def committee(sfs, data):
    from mdmlkit.potential import HDNNP
    from mdmlkit.potential.committee import Committee

    members = []
    for seed in range(3):
        m = HDNNP(sfs, hidden=(6,), seed=seed)
        m.fit_scaling(data["train"])
        members.append(m)
    return Committee(members)


def test_qbc_selects_largest_force_deviation(committee, data):
    from mdmlkit.potential import HDNNPCalculator

    pool = data["id"][:5] + data["hot"][:5]
    q = CommitteeQuery(committee=committee).fit(data["train"][:4])
    sel = q.select(pool, 4)
    # independent model deviation: forces of every member via its ASE calculator
    eps = []
    for atoms in pool:
        F = []
        for m in committee.models:
            a = atoms.copy()
            a.calc = HDNNPCalculator(m, extrapolation="ignore")
            F.append(a.get_forces())
        F = np.array(F)                                     # [M, N, 3]
        dev = np.sqrt(((F - F.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0))
        eps.append(dev.max())
    eps = np.array(eps)
    assert sel.indices.tolist() == np.argsort(-eps, kind="stable")[:4].tolist()
    np.testing.assert_allclose([r["max_force_deviation"] for r in sel.reasons],
                               eps[sel.indices], rtol=1e-6)
    # trust window: structures above trust_hi go to the back of the queue
    hi = float(np.sort(eps)[-3])                  # excludes the 3 largest
    q2 = CommitteeQuery(committee=committee, trust_hi=hi).fit(data["train"][:4])
    sel2 = q2.select(pool, 2)
    assert all(eps[i] < hi for i in sel2.indices)


def test_qbc_needs_model_or_committee(data):
    with pytest.raises(InputError, match="template model"):
        CommitteeQuery().fit(data["train"])


# ----------------------------------------------------------------------------- random

def test_random_reproducible_and_distinct(data):
    pool = data["id"] + data["hot"]
    a = RandomQuery(seed=1).fit(data["train"]).select(pool, 5).indices
    b = RandomQuery(seed=1).fit(data["train"]).select(pool, 5).indices
    c = RandomQuery(seed=2).fit(data["train"]).select(pool, 5).indices
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5
    assert a.tolist() != c.tolist()


# ----------------------------------------------------------------------------- bad input

def test_bad_input(ae, sfs, data):
    with pytest.raises(EmptyTrajectoryError):
        ae.select([], 1)
    with pytest.raises(EmptyTrajectoryError):
        AutoencoderQuery(sfs).fit([])
    with pytest.raises(InputError, match="k=13"):
        ae.select(data["id"], 13)
    for k in (0, -1, 1.5, True):
        with pytest.raises(InputError):
            ae.select(data["id"], k)
    with pytest.raises(RuntimeError, match="not fitted"):
        AutoencoderQuery(sfs).select(data["id"], 1)
    with pytest.raises(InputError, match="sfs"):
        AutoencoderQuery().fit(data["train"])
    with pytest.raises(InputError, match="w_max"):
        AutoencoderQuery(sfs, w_max=2.0).fit(data["train"])
    al = bulk("Al", "fcc", a=4.05, cubic=True)
    with pytest.raises(UnknownElementError, match=r"pool: structure 2, atom 0 is 'Al'"):
        ae.select(data["id"][:2] + [al], 1)
    # element known to the descriptor but absent from the training set
    cu_only = AutoencoderQuery(sfs, steps=50).fit(
        emt_frames(3, "thermal", elements=("Cu",), fractions=(1.0,), seed=9))
    with pytest.raises(ModelMismatchError, match="Ni"):
        cu_only.score(data["id"])
    with pytest.raises(InputError, match="2-D"):
        FarthestPointQuery().fit(np.zeros(3))


def test_descriptor_cache_reuses_structures(sfs, data):
    cache = DescriptorCache(sfs)
    t1 = cache.table(data["id"])
    n = cache.n_computed
    t2 = cache.table(data["id"][::-1] + [data["id"][0].copy()])
    assert cache.n_computed == n == len(data["id"])
    np.testing.assert_array_equal(t2.subset([0]).G["Cu"], t1.subset([len(data["id"]) - 1]).G["Cu"])
