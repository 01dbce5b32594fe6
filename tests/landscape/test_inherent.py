"""Tests of mdmlkit.landscape.inherent: IS map on quenched Cu13 isomers (ARI vs sklearn,
morphology from classify_minimum), family occupancy, separated families, IS vs
instantaneous map, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Decahedron, Icosahedron, Octahedron
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from mdmlkit.errors import InconsistentFramesError, InputError
from mdmlkit.landscape.embedding import LandscapeMap
from mdmlkit.landscape.inherent import (
    FLAGGED,
    InherentStructureMap,
    compare_with_instantaneous,
    map_scores,
    morphology_codes,
    separated_families,
)
from mdmlkit.landscape.minima import MORPHOLOGIES, QuenchResult, classify_minimum, quench

asap3 = pytest.importorskip("asap3")

PCA_MAP = LandscapeMap(embedding="pca", eps=0.5, min_samples=3)


def _perturbed(atoms: Atoms, seed: int, scale: float = 0.05) -> Atoms:
    a = Atoms(atoms.numbers, atoms.positions, pbc=False)
    a.positions += np.random.default_rng(seed).normal(scale=scale, size=a.positions.shape)
    a.info.update(run_id="toy", T_target=300.0 + 10 * seed, E_pot=0.0)
    return a


@pytest.fixture(scope="module")
def toy():
    """Perturbed Cu13 icosahedra, Ino decahedra and cuboctahedra (8 each), quenched once."""
    shapes = [Icosahedron("Cu", 2), Decahedron("Cu", 2, 2, 0), Octahedron("Cu", 3, 1)]
    frames = [_perturbed(s, 10 * k + i) for k, s in enumerate(shapes) for i in range(8)]
    return frames, quench(frames, progress=False)


def test_fit_matches_direct_computations(toy):
    frames, res = toy
    ism = InherentStructureMap(landscape_map=PCA_MAP).fit(frames, quench_result=res)
    # independent: morphology of every quenched frame, ARI by sklearn on the same labels
    direct = [classify_minimum(a) for a in res.structures]
    assert ism.morphology_ == direct
    assert set(direct) >= {"icosahedral", "decahedral"}
    codes = [MORPHOLOGIES.index(m) for m in direct]
    assert ism.ari_ == pytest.approx(adjusted_rand_score(codes, ism.labels_))
    assert ism.ari_ == pytest.approx(adjusted_rand_score(ism.labels_, direct))
    assert np.array_equal(ism.map_labels_, ism.map_.labels_)         # no flagged frames
    for m in np.unique(ism.minimum_ids_):                              # one basin per minimum
        members = ism.minimum_ids_ == m
        assert len(set(ism.labels_[members])) == 1
        assert ism.labels_[members][0] == np.bincount(ism.map_labels_[members]).argmax()
    raw = InherentStructureMap(landscape_map=PCA_MAP, basins_by_minimum=False).fit(
        frames, quench_result=res)
    assert np.array_equal(raw.labels_, raw.map_.labels_)
    assert np.all(ism.minimum_ids_ >= 0) and len(ism.minima_) >= 2
    assert ism.fingerprints_.shape == (len(frames), 13)
    # frames of one minimum share a morphology
    for m in range(len(ism.minima_)):
        assert {ism.morphology_[k] for k in np.flatnonzero(ism.minimum_ids_ == m)} == \
            {ism.minima_.morphologies[m]}
    assert "ARI" in repr(ism) and "minima" in repr(ism)
    clone(ism)                                                         # sklearn estimator


def test_flagged_frames_are_left_out(toy):
    frames, res = toy
    status = np.asarray(res.status).copy()
    status[[0, 9]] = "not converged"
    bad = QuenchResult(res.structures, res.energies, res.n_steps, res.fmax, res.converged,
                       status, res.messages, res.run_ids, res.settings)
    ism = InherentStructureMap(landscape_map=PCA_MAP).fit(frames, quench_result=bad)
    assert ism.labels_[0] == -1 and ism.labels_[9] == -1 and ism.minimum_ids_[0] == -1
    assert ism.morphology_[0] == FLAGGED
    ok = ism.labels_ >= 0
    assert ism.ari_ == pytest.approx(adjusted_rand_score(
        morphology_codes(ism.morphology_)[ok], ism.labels_[ok]))


def test_family_occupancy_counts_frames(toy):
    frames, res = toy
    ism = InherentStructureMap(landscape_map=PCA_MAP).fit(frames, quench_result=res)
    T = np.random.default_rng(0).uniform(310, 490, len(frames))     # families mixed in bins
    occ = ism.family_occupancy(T, bins=[300, 400, 500])
    direct = np.array(ism.morphology_)
    for b, (lo, hi) in enumerate([(300, 400), (400, 500)]):
        sel = (T >= lo) & (T < hi)
        for j, fam in enumerate(occ.families):
            assert occ.occupancy[b, j] == pytest.approx(np.mean(direct[sel] == fam))
    assert len(occ.families) >= 2 and occ.counts.sum() == len(frames)
    np.testing.assert_allclose(np.nansum(occ.occupancy, axis=1), 1.0)
    with pytest.raises(InconsistentFramesError):
        ism.family_occupancy(T[:3])


def test_compare_with_instantaneous(toy):
    frames, res = toy
    ism = InherentStructureMap(landscape_map=PCA_MAP).fit(frames, quench_result=res)
    out = compare_with_instantaneous(ism, frames, return_maps=True)
    assert out["inherent"]["ari"] == ism.ari_
    inst = out["instantaneous_map"]
    ok = ism.minimum_ids_ >= 0
    assert out["instantaneous"]["ari"] == pytest.approx(adjusted_rand_score(
        morphology_codes(ism.morphology_)[ok], inst.labels_[ok]))
    with pytest.raises(InconsistentFramesError):
        compare_with_instantaneous(ism, frames[:5])


def test_separated_families_and_scores():
    morph = ["icosahedral"] * 10 + ["decahedral"] * 10 + ["disordered"] * 10 + [FLAGGED]
    perfect = [0] * 10 + [1] * 5 + [2] * 5 + [3] * 10 + [-1]            # deca split in two
    assert separated_families(perfect, morph) == ["decahedral", "disordered", "icosahedral"]
    mixed = [0] * 10 + [0] * 10 + [1] * 10 + [-1]                      # ico + deca merged
    assert separated_families(mixed, morph) == ["disordered"]
    s = map_scores(mixed, morph)
    codes = morphology_codes(morph)
    assert s["ari"] == pytest.approx(adjusted_rand_score(codes[:30], mixed[:30]))
    assert s["n_basins"] == 2 and s["n_families"] == 3 and s["n_separated"] == 1
    with pytest.raises(InputError, match="frame 0"):
        morphology_codes(["round"])


def test_bad_input(toy):
    frames, res = toy
    with pytest.raises(InconsistentFramesError, match="24 frames but the quench result has 3"):
        InherentStructureMap().fit(frames, quench_result=QuenchResult.concatenate(
            [quench(frames[:3], progress=False)]))
    with pytest.raises(InputError, match="must be a QuenchResult"):
        InherentStructureMap().fit(frames, quench_result=[1, 2])
