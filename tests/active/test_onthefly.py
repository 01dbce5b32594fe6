"""Tests of on-the-fly learning during MD: guards and roll-back, batched labelling,
temperature stages, kill-and-resume (tiny EMT Cu/Ni cells)."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mdmlkit.active import ActiveLearningLoop, AutoencoderQuery, Oracle
from mdmlkit.active import onthefly as otf
from mdmlkit.active.onthefly import finetune_schedule, min_interatomic_distance
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import generate_set
from mdmlkit.errors import CheckpointMismatchError, InputError
from mdmlkit.potential import HDNNP

TRAIN = {"max_epochs": 30, "batch_size": 4, "patience": None, "lr": 1e-2}


@pytest.fixture(scope="module")
def model():
    return HDNNP(generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1), hidden=(4,), seed=0)


@pytest.fixture(scope="module")
def cold():
    return emt_frames(8, "thermal", (200, 300), reps=(2, 1, 1), seed=31)


class KillableEMT(EMT):
    """EMT that raises KeyboardInterrupt on its ``kill_at``-th calculation (a killed job)."""

    kill_at: int | None = None
    calls = 0

    def calculate(self, *args, **kwargs):
        KillableEMT.calls += 1
        if KillableEMT.kill_at is not None and KillableEMT.calls == KillableEMT.kill_at:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def _loop(model, cold, workdir=None, oracle=None):
    n0 = len(cold)
    return ActiveLearningLoop(AutoencoderQuery(steps=100, seed=0), cold, model,
                              oracle=oracle or EMT(), initial=n0, k=1, n_rounds=0,
                              trainer_kwargs=finetune_schedule(n0, TRAIN, steps=6, batch_size=4),
                              warm_start=True, workdir=workdir, progress=False)


def _start(cold):
    a = cold[0].copy()
    a.calc = None
    return a


def test_min_distance_and_finetune_schedule():
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert min_interatomic_distance(a, 3.0) == pytest.approx(3.6 / np.sqrt(2))
    assert min_interatomic_distance(a, 2.0) == np.inf
    a.positions[1] = a.positions[0] + [0.9, 0, 0]
    assert min_interatomic_distance(a, 1.2) == pytest.approx(0.9)
    # the all-pairs shortcut agrees with ASE's neighbour list (orthorhombic and fcc primitive)
    from ase.neighborlist import neighbor_list

    rng = np.random.default_rng(0)
    for base in (bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1)), bulk("Cu", "fcc", a=3.6).repeat(3)):
        for _ in range(5):
            b = base.copy()
            b.positions += rng.normal(0.0, 0.4, b.positions.shape)
            d = neighbor_list("d", b, 1.5)
            assert min_interatomic_distance(b, 1.5) == pytest.approx(d.min() if d.size else np.inf)
    tk = finetune_schedule(10, {"max_epochs": 50}, steps=20, batch_size=4, lr=1e-3)
    assert tk(10) == {"max_epochs": 50}
    assert tk(16) == {"patience": None, "lr": 1e-3, "batch_size": 4, "max_epochs": 5}
    with pytest.raises(InputError):
        finetune_schedule(10, {}, steps=0)


def test_batched_labelling_and_stage_fractions(model, cold):
    loop = _loop(model, cold)
    res = loop.run_on_the_fly(_start(cold), n_steps=60, temperature_K=[600, 900], timestep_fs=2.0,
                              check_every=10, threshold=0.0, label_batch=3, min_flag_spacing=20,
                              compile=False, progress=False)
    assert res.status == "completed" and res.n_rollbacks == 0
    # flags every 20 steps (threshold 0): steps 10, 30, 50 | 70, 90, 110; one retraining per 3
    labelled = [e for e in res.events if e["status"] == "labelled"]
    assert [e["step"] for e in labelled] == [10, 30, 50, 70, 90, 110]
    assert [h["mode"] for h in loop.history_] == ["initial", "on_the_fly", "on_the_fly"]
    assert [h["n_new"] for h in loop.history_[1:]] == [3, 3]
    assert len(loop.labelled_) == len(cold) + 6 and loop.n_oracle_calls_ == 6
    assert [e["round"] for e in labelled] == [1, 1, 1, 2, 2, 2]
    assert all(e["n_labelled"] == len(cold) + 3 * e["round"] for e in labelled)
    assert [s["T_K"] for s in res.stages] == [600.0, 900.0]
    assert [s["n_steps"] for s in res.stages] == [60, 60]
    assert [s["n_teacher_calls"] for s in res.stages] == [3, 3]
    assert [s["teacher_fraction"] for s in res.stages] == [0.05, 0.05]
    assert res.trace["step"].tolist() == list(range(10, 121, 10))
    assert res.trace["T_target"].tolist() == [600.0] * 6 + [900.0] * 6
    assert np.all(np.isfinite(res.trace["E_tot"]))
    # warm start: retraining rounds are bounded fine-tunes (6 steps of 4 -> 2 epochs at n=11)
    assert loop.history_[1]["epochs"] == 3 and loop.history_[2]["epochs"] == 2


def test_guard_rolls_back_and_labels_the_offending_frame(model, cold, monkeypatch):
    planted = {"calls": 0, "frame": None}
    real = otf._langevin

    def langevin(atoms, *args, **kwargs):
        dyn = real(atoms, *args, **kwargs)
        planted["calls"] += 1
        if planted["calls"] == 3:           # third block: two atoms pushed 0.9 Å apart
            step = dyn.step

            def bad_step(*a, **k):
                out = step(*a, **k)
                atoms.positions[1] = atoms.positions[0] + [0.9, 0.0, 0.0]
                planted["frame"] = atoms.positions.copy()
                dyn.step = step
                return out
            dyn.step = bad_step
        return dyn

    monkeypatch.setattr(otf, "_langevin", langevin)
    loop = _loop(model, cold)
    res = loop.run_on_the_fly(_start(cold), n_steps=50, temperature_K=600, timestep_fs=2.0,
                              check_every=10, threshold=1e30, compile=False, progress=False)
    assert res.status == "completed" and res.n_rollbacks == 1
    rb = next(e for e in res.events if e["status"] == "rolled_back")
    assert rb["step"] == 21 and rb["rolled_back_to"] == 20 and "0.900 Å apart" in rb["reason"]
    lab = [e for e in res.events if e["status"] == "labelled"]
    assert len(lab) == 1 and lab[0]["reason"] == "guard" and lab[0]["step"] == 21
    new = loop.labelled_[-1]
    np.testing.assert_allclose(new.positions, planted["frame"], atol=1e-12)
    assert new.info["al_round"] == 1 and loop.history_[-1]["mode"] == "on_the_fly"
    # MD went on from the last good frame (step 20) to the end
    assert res.trace["step"].tolist() == [10, 20, 30, 40, 50]
    assert min_interatomic_distance(res.atoms, 1.2) == np.inf
    assert res.stages[0]["n_rollbacks"] == 1 and res.stages[0]["n_teacher_calls"] == 1


def test_guard_gives_up_after_max_retries(model, cold):
    loop = _loop(model, cold)
    res = loop.run_on_the_fly(_start(cold), n_steps=40, temperature_K=600, check_every=10,
                              max_energy_jump=1e-9, max_retries=2, max_labels=0, compile=False,
                              progress=False)
    assert res.status == "md_failed" and res.n_rollbacks == 3 and res.n_labels == 0
    assert res.events[-1]["status"] == "md_failed" and "2 roll-backs" in res.events[-1]["reason"]
    assert "max_energy_jump" in res.events[0]["reason"]
    assert len(res.trace["step"]) == 0


def test_kill_and_resume_equals_uninterrupted(model, cold, tmp_path):
    kw = dict(n_steps=60, temperature_K=[600, 900], timestep_fs=2.0, check_every=10, threshold=0.0,
              label_batch=3, min_flag_spacing=20, compile=False,
              progress=False)
    KillableEMT.kill_at, KillableEMT.calls = None, 0
    ref_loop = _loop(model, cold, tmp_path / "ref", Oracle(KillableEMT(), oracle_id="emt"))
    ref = ref_loop.run_on_the_fly(_start(cold), **kw)
    n0 = KillableEMT.calls
    KillableEMT.calls, KillableEMT.kill_at = 0, n0 - 2      # dies in the second labelling batch
    with pytest.raises(KeyboardInterrupt):
        _loop(model, cold, tmp_path / "run", Oracle(KillableEMT(), oracle_id="emt")).run_on_the_fly(
            _start(cold), **kw)
    KillableEMT.kill_at = None
    with pytest.raises(CheckpointMismatchError):
        _loop(model, cold, tmp_path / "run", Oracle(KillableEMT(), oracle_id="emt")).run_on_the_fly(
            _start(cold), **{**kw, "label_batch": 2})
    with pytest.raises(CheckpointMismatchError):         # another start structure
        _loop(model, cold, tmp_path / "run", Oracle(KillableEMT(), oracle_id="emt")).run_on_the_fly(
            _start(cold[1:]), **kw)
    loop = _loop(model, cold, tmp_path / "run", Oracle(KillableEMT(), oracle_id="emt"))
    res = loop.run_on_the_fly(_start(cold), **kw)
    assert res.status == ref.status == "completed"
    assert res.trace["step"].tolist() == ref.trace["step"].tolist()
    for key in ("uncertainty", "E_tot", "T_kinetic"):
        np.testing.assert_allclose(res.trace[key], ref.trace[key], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.atoms.positions, ref.atoms.positions, atol=1e-6)
    assert [e["step"] for e in res.events] == [e["step"] for e in ref.events]
    assert len(loop.labelled_) == len(ref_loop.labelled_) and loop.n_oracle_calls_ == 6
    for a, b in zip(loop.labelled_, ref_loop.labelled_):
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-8)


def test_extrapolation_flag_labels_hot_frames_until_covered(model, cold):
    """n2p2's criterion as the on-the-fly flag: hot MD from a cold potential leaves the training
    range and is labelled; after the refit every labelled frame lies inside the range."""
    from mdmlkit.active import ExtrapolationQuery

    n0 = len(cold)
    loop = ActiveLearningLoop(ExtrapolationQuery(threshold=0.05), cold, model, oracle=EMT(), initial=n0,
                              k=1, n_rounds=0, trainer_kwargs=finetune_schedule(n0, TRAIN, steps=6, batch_size=4),
                              warm_start=True, progress=False)
    res = loop.run_on_the_fly(_start(cold), n_steps=80, temperature_K=1500, timestep_fs=2.0,
                              check_every=10, label_batch=2, min_flag_spacing=20, compile=False,
                              progress=False)
    flags = [e for e in res.events if e["status"] == "labelled" and e["reason"] == "flag"]
    assert flags and all(e["uncertainty"] > e["threshold"] == 0.05 for e in flags)
    # the first check at 1500 K already lies outside the 200-300 K range
    assert res.trace["uncertainty"][0] > 0.05
    q = loop.query_
    assert q.n_train_ == len(loop.labelled_) == n0 + res.n_labels
    np.testing.assert_array_equal(q.uncertainty(loop.labelled_[n0:]), 0.0)
