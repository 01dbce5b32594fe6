"""Committee of HDNNPs: statistics, DP-GEN model deviation, save/load, ASE calculator, resume."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase.build import bulk
from cuni_data import ELEMENTS, emt_frames

from mdmlkit.descriptors import AtomsBatch, generate_set
from mdmlkit.errors import ModelMismatchError, UnknownElementError
from mdmlkit.potential import HDNNP
from mdmlkit.potential.committee import Committee, CommitteeCalculator, reinitialise

TRAIN_KW = dict(lr=1e-2, lr_schedule="exponential", lr_gamma=0.9, force_weight=0.3, batch_size=6,
                max_epochs=15, patience=None, progress=False)


@pytest.fixture(scope="module")
def sfs():
    return generate_set(ELEMENTS, rc=4.5, n_radial=8, n_angular=0)   # radial: EMT-like, fast


@pytest.fixture(scope="module")
def data():
    return emt_frames(24, seed=0), emt_frames(6, seed=1)


@pytest.fixture(scope="module")
def committee(sfs, data, tmp_path_factory):
    train, val = data
    ckpt = tmp_path_factory.mktemp("committee_ckpt")
    com = Committee.train(train, val, n_models=3, model=HDNNP(sfs, hidden=(12, 12), seed=0),
                          trainer_kwargs=TRAIN_KW,
                          checkpoint_dir=ckpt)
    com.ckpt = ckpt
    return com


def member_predictions(com, frames):
    """Each member's energies [M, S] and forces [M, N, 3] through the model's own API."""
    es, fs = [], []
    for m in com.models:
        e, f = m.energy_and_forces(AtomsBatch.from_atoms(frames, m.elements, m.cutoff))
        es.append(e.detach().numpy())
        fs.append(f.detach().numpy())
    return np.stack(es), np.stack(fs)


def test_members_differ_and_learned(committee, data):
    train, val = data
    assert len(committee) == 3 and "n_models=3" in repr(committee)
    w = [m.networks["Cu"].linears[0].weight for m in committee.models]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    for t in committee.trainers_:
        h = t.history_
        assert h[-1]["train_loss"] < 0.2 * h[0]["train_loss"]


def test_predict_statistics_match_members(committee, data):
    _, val = data
    p = committee.predict(val)
    E, F = member_predictions(committee, val)
    np.testing.assert_allclose(p["energies"], E, rtol=1e-12)
    np.testing.assert_allclose(p["energy_mean"], E.mean(0), rtol=1e-12)
    np.testing.assert_allclose(p["energy_std"], E.std(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p["energy_std_per_atom"], E.std(0) / 8, rtol=1e-9, atol=1e-12)
    n = 8
    for s in range(len(val)):
        Fs = F[:, s * n:(s + 1) * n]
        np.testing.assert_allclose(p["forces_mean"][s], Fs.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p["forces_std"][s], Fs.std(0), rtol=1e-8, atol=1e-12)
        # DP-GEN: eps_F = max_i sqrt(mean_m |F_i^m - <F_i>|^2), written out with loops
        dev = [np.sqrt(np.mean([np.sum((Fs[m, i] - Fs[:, i].mean(0)) ** 2) for m in range(3)]))
               for i in range(n)]
        assert p["max_atomic_force_deviation"][s] == pytest.approx(max(dev), rel=1e-9)
        assert p["mean_atomic_force_deviation"][s] == pytest.approx(np.mean(dev), rel=1e-9)
        np.testing.assert_allclose(p["atomic_force_deviation"][s], dev, rtol=1e-9)


def test_compiled_predictions_equal_eager(committee, data):
    """compile=True (fused kernels, one neighbour list per structure) gives the eager results,
    also for structures of different sizes in one call and for the query built on it."""
    pytest.importorskip("numba")
    from mdmlkit.active import CommitteeQuery

    _, val = data
    frames = val[:3] + [val[3].repeat((2, 1, 1))]
    eager, fused = committee.predict(frames), committee.predict(frames, compile=True)
    np.testing.assert_allclose(fused["energies"], eager["energies"], rtol=1e-9)
    for key in ("max_atomic_force_deviation", "mean_atomic_force_deviation", "energy_std_per_atom"):
        np.testing.assert_allclose(fused[key], eager[key], rtol=1e-6, atol=1e-8)
    for a, b in zip(fused["forces_mean"], eager["forces_mean"]):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)     # tabulated radial factors
    q = CommitteeQuery(committee=committee, compile=True).fit(val)
    ref = CommitteeQuery(committee=committee).fit(val)
    assert q.select(frames, 2).indices.tolist() == ref.select(frames, 2).indices.tolist()


def test_identical_members_have_zero_deviation(sfs, data):
    train, _ = data
    m = HDNNP(sfs, hidden=(4,), seed=1)
    m.fit_scaling(train)
    p = Committee([m, copy.deepcopy(m)]).predict(train[:3])
    assert np.all(p["energy_std"] == 0) and np.all(p["max_atomic_force_deviation"] == 0)


def test_deviation_larger_out_of_domain(committee, data):
    """Query-by-committee signal: far-from-training structures disagree more."""
    _, val = data
    far = emt_frames(6, seed=5, rattle=0.3, a_range=(3.25, 3.35))     # compressed + hot
    dev_in = committee.predict(val)["max_atomic_force_deviation"]
    dev_out = committee.predict(far)["max_atomic_force_deviation"]
    assert np.median(dev_out) > 2 * np.median(dev_in)


def test_save_load_roundtrip(committee, data, tmp_path):
    _, val = data
    committee.save(tmp_path / "com")
    back = Committee.load(tmp_path / "com")
    a, b = committee.predict(val), back.predict(val)
    np.testing.assert_allclose(a["energies"], b["energies"], rtol=1e-12)
    np.testing.assert_allclose(a["max_atomic_force_deviation"], b["max_atomic_force_deviation"], rtol=1e-10)


def test_calculator_mean_forces_are_gradient_of_mean_energy(committee, data):
    atoms = data[1][0].copy()
    calc = committee.calculator()
    assert isinstance(calc, CommitteeCalculator)
    atoms.calc = calc
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    p = committee.predict([atoms])
    assert e == pytest.approx(p["energy_mean"][0], rel=1e-12)
    assert calc.results["max_force_deviation"] == pytest.approx(p["max_atomic_force_deviation"][0])
    assert calc.results["energies"].shape == (3,) and calc.results["forces_std"].shape == (8, 3)
    h = 1e-4
    for i, k in ((0, 0), (3, 2), (7, 1)):
        x = atoms.copy()
        x.calc = committee.calculator()
        x.positions[i, k] += h
        ep = x.get_potential_energy()
        x.positions[i, k] -= 2 * h
        em = x.get_potential_energy()
        assert f[i, k] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6)


def test_resume_skips_finished_members(committee, sfs, data):
    train, val = data

    def boom(trainer, record):
        raise AssertionError("a finished member was trained again")

    again = Committee.train(train, val, n_models=3, model=HDNNP(sfs, hidden=(12, 12), seed=9),
                            trainer_kwargs=dict(TRAIN_KW, callbacks=[boom]),
                            checkpoint_dir=committee.ckpt, resume=True)
    for a, b in zip(again.models, committee.models):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k


def test_bootstrap_and_seeds(sfs, data):
    train, _ = data
    kw = dict(max_epochs=1, batch_size=8, progress=False)
    a = Committee.train(train, None, model=HDNNP(sfs, hidden=(4,)), seeds=[3, 4], bootstrap=True,
                        trainer_kwargs=kw)
    b = Committee.train(train, None, model=HDNNP(sfs, hidden=(4,)), seeds=[3, 4], bootstrap=True,
                        trainer_kwargs=kw)
    for ma, mb in zip(a.models, b.models):                 # seeds fix init + resample + shuffling
        assert torch.equal(ma.networks["Ni"].linears[0].weight, mb.networks["Ni"].linears[0].weight)
    # re-initialisation is reproducible and leaves the global RNG alone
    m1, m2 = HDNNP(sfs, hidden=(4,), seed=1), HDNNP(sfs, hidden=(4,), seed=2)
    state = torch.get_rng_state()
    reinitialise(m1, 11)
    reinitialise(m2, 11)
    assert torch.equal(m1.networks["Cu"].linears[0].weight, m2.networks["Cu"].linears[0].weight)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="seeds must differ"):
        Committee.train(train, None, model=HDNNP(sfs, hidden=(4,)), seeds=[1, 1], trainer_kwargs=kw)


def test_bad_input(committee, sfs):
    alien = bulk("Al", "fcc", a=4.05, cubic=True)
    with pytest.raises(UnknownElementError, match="structure 0, atom 0 is 'Al'"):
        committee.predict([alien])
    with pytest.raises(ValueError, match="at least 2"):
        Committee([committee.models[0]])
    other = HDNNP(generate_set(["Cu", "Al"], rc=4.5, n_radial=2, n_angular=0), hidden=(4,))
    with pytest.raises(ModelMismatchError, match="member 1"):
        Committee([committee.models[0], other])
