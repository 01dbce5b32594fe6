"""Tests of the active-learning queries (autoencoder, FPS, QBC, random) on small EMT data."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from ase.build import bulk
from sklearn.base import clone

from mdmlkit.active import (
    QUERIES,
    AutoencoderQuery,
    CommitteeQuery,
    DescriptorCache,
    FarthestPointQuery,
    LoopContext,
    Query,
    RandomQuery,
    Selection,
    make_query,
    prepare_query,
)
from mdmlkit.active.features import structure_fingerprint
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import ACSF, generate_set
from mdmlkit.errors import EmptyTrajectoryError, InputError, ModelMismatchError, NotFittedError, UnknownElementError


@pytest.fixture(scope="module")
def sfs():
    return generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)


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


def _broken_copy(atoms, d: float = 0.8):
    """``atoms`` with atom 1 moved to ``d`` Å from atom 0 (broken MD)."""
    broken = atoms.copy()
    broken.positions[1] = broken.positions[0] + [d, 0.0, 0.0]
    return broken


def test_fps_min_distance_rejects_broken_frames(sfs, data):
    pool = data["id"][:5] + [_broken_copy(data["id"][5], 0.5)] + data["hot"][1:3]
    q = FarthestPointQuery(sfs).fit(data["train"])
    assert 5 in q.select(pool, 2).indices.tolist()        # the broken frame is an outlier
    guarded = FarthestPointQuery(sfs, min_distance=1.2).fit(data["train"])
    sel = guarded.select(pool, len(pool))
    assert sel.indices[-1] == 5 and sel.reasons[-1].get("too_close")
    assert not any(r.get("too_close") for r in sel.reasons[:-1])
    # without the rejected frame the greedy order is what FPS gives on the clean pool
    clean = [a for i, a in enumerate(pool) if i != 5]
    ref = FarthestPointQuery(sfs).fit(data["train"]).select(clean, len(clean)).indices
    assert [i - (i > 5) for i in sel.indices[:-1].tolist()] == ref.tolist()
    with pytest.raises(InputError, match="min_distance"):
        FarthestPointQuery(sfs, min_distance=-1.0).fit(data["train"])
    with pytest.raises(InputError, match="structures"):
        guarded.select(guarded.descriptor_cache().table(pool), 1)


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


def test_qbc_min_distance_rejects_broken_frames(committee, data):
    pool = data["id"][:4] + [_broken_copy(data["id"][4], 0.6)] + data["hot"][:3]
    q = CommitteeQuery(committee=committee).fit(data["train"][:4])
    eps = q.score(pool)["max_force_deviation"]
    sel = CommitteeQuery(committee=committee, min_distance=1.2).fit(data["train"][:4]).select(pool, 8)
    order = [i for i in np.argsort(-eps, kind="stable").tolist() if i != 4]
    assert sel.indices.tolist() == order + [4]
    assert sel.reasons[-1].get("too_close") and not sel.reasons[0].get("too_close")
    with pytest.raises(InputError, match="min_distance"):
        CommitteeQuery(committee=committee, min_distance=0).fit(data["train"][:4])


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
    with pytest.raises(NotFittedError, match="not fitted"):
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


def test_descriptor_cache_is_bounded_lru_and_owned(sfs, data):
    import copy

    frames = data["id"][:5]
    cache = DescriptorCache(sfs, max_structures=3)
    cache.table(frames[:3])
    cache.table(frames[:1])                     # structure 0 becomes the most recently used
    cache.table(frames[3:5])                    # two new ones evict 1 and 2 (least recently used)
    assert len(cache) == 3
    n = cache.n_computed
    cache.table([frames[0], frames[3], frames[4]])
    assert cache.n_computed == n                # all three were still cached
    cache.table([frames[1]])
    assert cache.n_computed == n + 1            # evicted earlier: computed again
    with pytest.raises(InputError, match="max_structures"):
        DescriptorCache(sfs, max_structures=0)
    # no process-wide registry: two queries without a cache have their own
    a = FarthestPointQuery(sfs).fit(data["train"][:3])
    b = FarthestPointQuery(sfs).fit(data["train"][:3])
    assert a.descriptor_cache() is not b.descriptor_cache()
    assert not hasattr(DescriptorCache, "shared")
    # a cache passed in is used, and shared (not copied) by clones of the query
    shared = DescriptorCache(sfs)
    q = AutoencoderQuery(sfs, steps=20, cache=shared)
    assert clone(q).cache is shared and copy.deepcopy(shared) is shared
    q.fit(data["train"][:3])
    assert shared.n_computed == 3 and not hasattr(q, "cache_")


def test_queries_are_sklearn_estimators(sfs, ae, data):
    from sklearn.base import BaseEstimator

    for name, cls in QUERIES.items():
        q = make_query(name)
        assert isinstance(q, (BaseEstimator, Query)) and q.name == name and type(q) is cls
    q = make_query("autoencoder", sfs=sfs, latent_dim=3, seed=5)
    c = clone(q)
    assert c is not q and c.get_params()["latent_dim"] == 3 and c.seed == 5
    # clone of a fitted query is unfitted, with the same parameters
    fresh = clone(ae)
    assert not fresh.is_fitted and ae.is_fitted
    assert fresh.get_params(deep=False).keys() == ae.get_params(deep=False).keys()
    assert fresh.set_params(w_max=0.2).w_max == 0.2 and ae.w_max == 0.5
    with pytest.raises(InputError, match="unknown query"):
        make_query("bald")
    with pytest.raises(InputError, match="latent"):
        make_query("fps", latent_dim=3)


def test_prepare_query_fills_loop_inputs_on_a_clone(sfs):
    from mdmlkit.potential import HDNNP
    from mdmlkit.potential.committee import Committee

    model = HDNNP(sfs, hidden=(4,), seed=0)
    cache = DescriptorCache(sfs)
    ctx = LoopContext(model=model, sfs=sfs, trainer_kwargs={"max_epochs": 2}, cache=cache)
    ae_q = AutoencoderQuery(steps=10)
    prepared = prepare_query(ae_q, ctx)
    assert prepared is not ae_q and prepared.sfs is sfs and prepared.cache is cache
    assert ae_q.sfs is None and ae_q.cache is None                  # the original is untouched
    qbc = CommitteeQuery(n_models=2)
    p = prepare_query(qbc, ctx)
    assert p.model is model and p.trainer_kwargs == {"max_epochs": 2} and qbc.model is None
    # a given committee is used as it is: no template model is filled in
    p2 = prepare_query(CommitteeQuery(committee=Committee([model, model])), ctx)
    assert p2.model is None and p2.committee is not None
    # a query on other symmetry functions keeps its own cache
    other = generate_set(["Cu", "Ni"], rc=3.5, n_radial=2, n_angular=1)
    p3 = prepare_query(FarthestPointQuery(other), ctx)
    assert p3.cache is None and p3.sfs.cutoff == other.cutoff
    assert prepare_query(RandomQuery(seed=3), ctx).get_params() == {"seed": 3}


def test_embed_matches_selection_space_and_atom_errors(ae, data):
    pool = data["id"][:4] + data["hot"][:2]
    emb = ae.embed(pool)
    n_el = len(emb.elements)
    assert emb.structure.shape == (6, n_el * ae.latent_dim)
    # f_s: mean latent vector of the structure's atoms of each element (checked per structure)
    for s_idx, atoms in enumerate(pool):
        single = ae.embed([atoms])
        for j, el in enumerate(single.elements):
            Z = single.latent[el]
            expect = Z.mean(axis=0) if Z.shape[0] else np.zeros(ae.latent_dim)
            np.testing.assert_allclose(emb.structure[s_idx, j * ae.latent_dim:(j + 1) * ae.latent_dim],
                                       expect, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(emb.informativeness, ae.uncertainty(pool), rtol=1e-12)
    errs = ae.atom_errors(pool)
    np.testing.assert_allclose(emb.informativeness,
                               ae.w_max * np.array([e.max() for e in errs])
                               + (1 - ae.w_max) * np.array([e.mean() for e in errs]), rtol=1e-10)


@pytest.mark.parametrize("scale", ["rank", "log"])
def test_ae_informativeness_scale_keeps_order_and_bounds(ae, data, scale):
    pool = data["id"] + data["hot"] + data["strain"]
    q = copy.deepcopy(ae).set_params(informativeness_scale=scale, beta=0.0)     # fitted, rescored
    sc = q.score(pool)
    info = sc["informativeness"]
    # a monotone transform of I: same order (beta=0: the score is T(I) alone)
    assert np.array_equal(np.argsort(sc["score"], kind="stable"), np.argsort(info, kind="stable"))
    if scale == "rank":                                        # ranks / n, in (0, 1]
        assert sc["score"].max() == pytest.approx(1.0)
        assert np.allclose(np.sort(sc["score"]), np.arange(1, len(pool) + 1) / len(pool))
    else:
        assert np.allclose(sc["score"], np.log1p(info))
    with pytest.raises(InputError, match="informativeness_scale"):
        AutoencoderQuery(informativeness_scale="sqrt")._check_params()


def test_ae_kmeanspp_batches_spread_over_latent_space(ae, data):
    """Copies of one hot structure dominate the score; k-means++ still covers the other kinds."""
    hot = data["hot"][0]
    pool = [hot.copy() for _ in range(20)] + data["id"][:6] + data["strain"][:6]
    q = copy.deepcopy(ae).set_params(batch_rule="kmeans++", seed=3)
    sel = q.select(pool, 6)
    assert len(set(sel.indices.tolist())) == 6
    assert sel.indices[0] == int(np.argmax(q.score(pool)["score"]))       # the best first
    # at most one copy of the hot structure: a copy has D = 0 and is never drawn again
    assert sum(int(i) < 20 for i in sel.indices) == 1
    # same seed, same batch; another seed may differ but is as valid
    again = q.select(pool, 6)
    assert np.array_equal(again.indices, sel.indices)
    with pytest.raises(InputError, match="batch_rule"):
        AutoencoderQuery(batch_rule="greedy")._check_params()


# ----------------------------------------------------------------------------- extrapolation

def _naive_excess(sfs, train, frames) -> np.ndarray:
    """Per structure, the largest distance of a symmetry function outside the training range,
    in range widths, by explicit loops over atoms and functions (float64 descriptors)."""
    acsf = ACSF(sfs).double()
    Gt = acsf.compute(train)
    lo = {el: np.asarray(Gt[el]).min(0) for el in sfs.elements}
    hi = {el: np.asarray(Gt[el]).max(0) for el in sfs.elements}
    out = []
    for atoms in frames:
        G = acsf.compute([atoms])
        worst = 0.0
        for el in sfs.elements:
            for row in np.asarray(G[el]):
                for f, g in enumerate(row):
                    w = max(hi[el][f] - lo[el][f], 1e-6)
                    worst = max(worst, (lo[el][f] - g) / w, (g - hi[el][f]) / w)
        out.append(worst)
    return np.array(out)


def test_extrapolation_excess_matches_explicit_loops(sfs, data):
    from mdmlkit.active import ExtrapolationQuery

    q = ExtrapolationQuery(sfs).fit(data["train"])
    pool = data["id"][:4] + data["hot"][:4] + data["strain"][:2]
    np.testing.assert_allclose(q.score(pool)["excess"], _naive_excess(sfs, data["train"], pool),
                               rtol=1e-4, atol=1e-5)
    # the training structures lie inside their own range; hot ones far outside
    assert np.all(q.uncertainty(data["train"]) == 0.0)
    hot, held_out = q.uncertainty(data["hot"]), q.uncertainty(data["id"])
    assert np.median(hot) > 5 * max(np.median(held_out), 1e-3)
    assert q.flag(data["hot"]).mean() > 0.9 and q.threshold_ == 0.0
    # a Ni-free training set: every Ni atom of the pool extrapolates infinitely
    cu_only = ExtrapolationQuery(sfs).fit(emt_frames(3, "thermal", elements=("Cu",), fractions=(1.0,),
                                                     seed=9))
    assert np.all(np.isinf(cu_only.uncertainty(data["id"][:2])))


def test_extrapolation_select_widens_the_range_pick_by_pick(sfs, data):
    from mdmlkit.active import ExtrapolationQuery

    q = ExtrapolationQuery(sfs).fit(data["train"])
    top = int(np.argmax(q.uncertainty(data["hot"])))
    pool = data["hot"] + [data["hot"][top].copy()]       # the worst structure twice
    sel = q.select(pool, 4)
    assert sel.indices[0] == top and len(pool) - 1 not in sel.indices.tolist()
    # same as refitting on training + picks and taking the next largest excess
    chosen = []
    for _ in range(4):
        u = ExtrapolationQuery(sfs).fit(data["train"] + [pool[i] for i in chosen]).uncertainty(pool)
        u[chosen] = -1.0
        chosen.append(int(np.argmax(u)))
    assert sel.indices.tolist() == chosen
    assert [r["excess"] for r in sel.reasons] == pytest.approx(
        q.score(pool)["excess"][sel.indices].tolist())
    # an upper trust level: the far-out structures are not picked for their excess, and last
    ex = q.score(data["hot"])["excess"]
    hi = float(np.quantile(ex, 0.5))
    trusted = ExtrapolationQuery(sfs, trust_hi=hi).fit(data["train"]).select(data["hot"], len(ex))
    first = [r for r in trusted.reasons if not r.get("fill")]
    assert first and all(0 < r["excess_given_batch"] <= hi for r in first)
    beyond = [r["excess_given_batch"] > hi for r in trusted.reasons]
    assert any(beyond) and beyond == sorted(beyond)          # all of them after the others
    with pytest.raises(InputError, match="trust_hi"):
        ExtrapolationQuery(sfs, threshold=0.1, trust_hi=0.1).fit(data["train"])
    # broken MD: two atoms 0.8 Å apart lie far outside the range but are rejected, and come last
    broken = data["hot"][top].copy()
    broken.positions[1] = broken.positions[0] + [0.8, 0.0, 0.0]
    pool2 = data["hot"][:6] + [broken]
    assert q.score(pool2)["excess"][6] > 0
    plain_pick = q.select(pool2, 1).indices[0]
    guarded = ExtrapolationQuery(sfs, min_distance=1.2).fit(data["train"]).select(pool2, 7)
    assert guarded.indices[-1] == 6 and guarded.reasons[-1].get("too_close")
    assert plain_pick == 6                                   # without the guard it would go first
    with pytest.raises(InputError, match="min_distance"):
        ExtrapolationQuery(sfs, min_distance=0.0).fit(data["train"])
    with pytest.raises(InputError, match="structures"):
        ExtrapolationQuery(sfs, min_distance=1.2).fit(data["train"]).select(
            q.descriptor_cache().table(pool2), 1)
    # nothing outside the range: the batch is a reproducible random fill
    inside = ExtrapolationQuery(sfs, seed=4).fit(data["train"]).select(data["train"][:10], 3)
    again = ExtrapolationQuery(sfs, seed=4).fit(data["train"]).select(data["train"][:10], 3)
    assert inside.indices.tolist() == again.indices.tolist()
    assert all(r.get("fill") for r in inside.reasons) and len(set(inside.indices.tolist())) == 3


def test_extrapolation_bad_input(sfs, data):
    from mdmlkit.active import ExtrapolationQuery

    with pytest.raises(NotFittedError):
        ExtrapolationQuery(sfs).uncertainty(data["id"])
    with pytest.raises(InputError, match="threshold"):
        ExtrapolationQuery(sfs, threshold=-0.1).fit(data["train"])
    with pytest.raises(InputError, match="sfs"):
        ExtrapolationQuery().fit(data["train"])
    q = ExtrapolationQuery(sfs).fit(data["train"])
    with pytest.raises(EmptyTrajectoryError):
        q.select([], 1)
    al = bulk("Al", "fcc", a=4.05, cubic=True)
    with pytest.raises(UnknownElementError, match="structure 1"):
        q.score([data["id"][0], al])
    assert "ExtrapolationQuery(" in repr(q) and "fitted on 24" in repr(q)
