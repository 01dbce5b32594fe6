"""Tests of the active-learning loop: resume, oracle failures, budgets, on-the-fly MD."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mdmlkit.active import ActiveLearningLoop, AutoencoderQuery, FarthestPointQuery, Oracle, RandomQuery, ReplayOracle
from mdmlkit.active.features import structure_fingerprint
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import generate_set
from mdmlkit.errors import (
    CheckpointMismatchError,
    EmptyTrajectoryError,
    InputError,
    OracleError,
    UnknownElementError,
)
from mdmlkit.potential import HDNNP

TRAIN = {"max_epochs": 4, "batch_size": 4, "patience": None, "lr": 5e-3}


@pytest.fixture(scope="module")
def sfs():
    return generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)


@pytest.fixture(scope="module")
def model(sfs):
    return HDNNP(sfs, hidden=(4,), seed=0)


@pytest.fixture(scope="module")
def pool():
    """8-atom Cu/Ni cells: thermal 300-900 K and strained."""
    return (emt_frames(16, "thermal", (300, 900), reps=(2, 1, 1), seed=11)
            + emt_frames(6, "strain", reps=(2, 1, 1), seed=12))


@pytest.fixture(scope="module")
def test_set():
    return emt_frames(6, "thermal", (300, 900), reps=(2, 1, 1), seed=13)


def _loop(pool, model, test_set, workdir=None, oracle=None, query=None, **kw):
    args = dict(initial=4, k=2, n_rounds=3, test=test_set, trainer_kwargs=TRAIN, workdir=workdir,
                progress=False)
    args.update(kw)
    return ActiveLearningLoop(query or AutoencoderQuery(steps=150, seed=0), pool, model,
                              oracle=EMT() if oracle is None else oracle, **args)


def _chosen(loop):
    return [(s["round"], s["pool_index"], s["status"]) for s in loop.selections_]


@pytest.fixture(scope="module")
def reference(pool, model, test_set, tmp_path_factory):
    """An uninterrupted 3-round run (with checkpoints)."""
    loop = _loop(pool, model, test_set, tmp_path_factory.mktemp("ref"))
    loop.run()
    return loop


def test_loop_runs_and_records(reference, pool):
    lc = reference.learning_curve()
    assert lc["n_labelled"].tolist() == [4, 6, 8, 10]
    assert np.all(np.isfinite(lc["force_rmse_meV_A"])) and np.all(np.isfinite(lc["energy_rmse_meV_atom"]))
    assert np.all(lc["query_fit_time_s"][1:] > 0)
    chosen = [s["pool_index"] for s in reference.selections_]
    assert len(chosen) == len(set(chosen)) == 10
    assert (reference.pool_status_ == "labelled").sum() == 10
    # the labelled structures carry the oracle's labels for exactly the chosen pool structures
    for a in reference.labelled_:
        ref = pool[a.info["al_pool_index"]]
        assert structure_fingerprint(a) == structure_fingerprint(ref)
        np.testing.assert_allclose(a.get_forces(), ref.get_forces(), atol=1e-10)
    sel = reference.selection_table()
    assert {"round", "pool_index", "status", "informativeness"} <= set(sel.columns)
    assert "round=3" in repr(reference)


def test_resume_after_interrupted_labelling_gives_same_selections(reference, pool, model, test_set,
                                                                  tmp_path):
    class Interrupting(EMT):
        calls = 0

        def calculate(self, *a, **kw):
            Interrupting.calls += 1
            if Interrupting.calls == 4 + 2 + 1:     # 2nd structure of round 2... after round 1
                raise KeyboardInterrupt
            super().calculate(*a, **kw)

    # the same labels as EMT: the oracle identity recorded in the checkpoint is EMT's
    flaky = Oracle(Interrupting(), oracle_id=Oracle(EMT()).oracle_id)
    with pytest.raises(KeyboardInterrupt):
        _loop(pool, model, test_set, tmp_path, oracle=flaky).run()
    resumed = _loop(pool, model, test_set, tmp_path)
    resumed.run()
    assert _chosen(resumed) == _chosen(reference)
    np.testing.assert_allclose(resumed.learning_curve()["force_rmse_meV_A"],
                               reference.learning_curve()["force_rmse_meV_A"], rtol=1e-9)


def test_resume_after_interrupted_training(reference, pool, model, test_set, tmp_path):
    seen = {"epochs": 0}

    def stop(trainer, record):
        seen["epochs"] += 1
        if seen["epochs"] == 4 * 2 + 2:      # epoch 2 of round 2's training
            raise KeyboardInterrupt

    kw = {**TRAIN, "callbacks": [stop]}
    with pytest.raises(KeyboardInterrupt):
        _loop(pool, model, test_set, tmp_path, trainer_kwargs=kw).run()
    first = _loop(pool, model, test_set, tmp_path)
    first.load_checkpoint()
    assert first.phase_ == "labelled" and first.round_ == 2       # labels were kept
    assert (tmp_path / "trainer_r0002" / "checkpoint.pt").is_file()
    resumed = _loop(pool, model, test_set, tmp_path)
    resumed.run()
    assert _chosen(resumed) == _chosen(reference)
    np.testing.assert_allclose(resumed.learning_curve()["force_rmse_meV_A"],
                               reference.learning_curve()["force_rmse_meV_A"], rtol=1e-9)
    # a changed set-up is refused instead of silently mixed
    with pytest.raises(CheckpointMismatchError, match="different set-up.*k: 2 \\(saved\\) vs 3"):
        _loop(pool, model, test_set, tmp_path, k=3).run()
    with pytest.raises(CheckpointMismatchError, match="trainer_kwargs"):
        _loop(pool, model, test_set, tmp_path, trainer_kwargs={**TRAIN, "lr": 1e-2}).run()
    with pytest.raises(CheckpointMismatchError, match="oracle"):
        _loop(pool, model, test_set, tmp_path, oracle=Oracle(EMT(), oracle_id="other")).run()


class FlakyOracle(EMT):
    """EMT that raises on its 1st call of round 1 and returns NaN on the 2nd."""

    def __init__(self, n_initial):
        super().__init__()
        self.n_initial = n_initial
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        self.calls += 1
        if self.calls == self.n_initial + 1:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes or ["positions"])
        if self.calls == self.n_initial + 2:
            self.results["forces"] = self.results["forces"] * np.nan


def test_failing_oracle_structures_are_recorded_and_skipped(pool, model, test_set, tmp_path):
    loop = _loop(pool, model, test_set, tmp_path, oracle=FlakyOracle(4),
                 query=RandomQuery(seed=0), k=3, n_rounds=2)
    loop.run()
    r1 = [s for s in loop.selections_ if s["round"] == 1]
    assert [s["status"] for s in r1] == ["failed", "failed", "labelled"]
    assert "SCF did not converge" in r1[0]["failure"]
    assert "non-finite forces" in r1[1]["failure"]
    failed = {r1[0]["pool_index"], r1[1]["pool_index"]}
    assert set(loop.failures_) == failed
    assert all(loop.pool_status_[i] == "failed" for i in failed)
    # nothing labelled was lost, failed structures were never offered again
    assert len(loop.labelled_) == 4 + 1 + 3
    later = [s["pool_index"] for s in loop.selections_ if s["round"] == 2]
    assert not failed & set(later)
    assert loop.history_[1]["n_failed"] == 2 and loop.n_oracle_calls_ == 6
    reloaded = _loop(pool, model, test_set, tmp_path, oracle=FlakyOracle(4), query=RandomQuery(seed=0),
                     k=3, n_rounds=2)
    reloaded.load_checkpoint()
    assert len(reloaded.labelled_) == 8 and set(reloaded.failures_) == failed


def test_oracle_wrapper_and_replay(pool):
    replay = ReplayOracle(pool)
    res = Oracle(replay).label([pool[3], bulk("Cu", cubic=True)])
    assert list(res.labelled) == [0] and "not in the pre-labelled set" in res.failures[1]
    np.testing.assert_array_equal(res.labelled[0].get_forces(), pool[3].get_forces())
    assert res.labelled[0].get_potential_energy() == pool[3].get_potential_energy()
    with pytest.raises(OracleError):
        a = pool[0].copy()
        a.positions[0, 0] += 0.1
        a.calc = replay
        a.get_potential_energy()


def test_budget_larger_than_pool_is_capped(pool, model, test_set):
    small = pool[:7]
    with pytest.warns(UserWarning, match="exceeds"):
        loop = _loop(small, model, test_set, budget=100, n_rounds=None, k=2,
                     query=RandomQuery(seed=0), test=None)
    assert loop.budget == 3
    loop.run()
    assert (loop.pool_status_ == "labelled").all()
    assert [h["n_labelled"] for h in loop.history_] == [4, 6, 7]     # last round takes what is left


def test_bad_input(pool, model, test_set):
    with pytest.raises(EmptyTrajectoryError):
        _loop([], model, test_set)
    with pytest.raises(InputError, match="initial=30"):
        _loop(pool, model, test_set, initial=30)
    with pytest.raises(InputError, match="k"):
        _loop(pool, model, test_set, k=0)
    al = bulk("Al", "fcc", a=4.05, cubic=True)
    with pytest.raises(UnknownElementError, match=r"pool: structure 22, atom 0 is 'Al'"):
        _loop(list(pool) + [al], model, test_set)

    class AlwaysFails(EMT):
        def calculate(self, *a, **kw):
            raise RuntimeError("licence server down")

    with pytest.raises(OracleError, match="licence server down"):
        _loop(pool, model, test_set, oracle=AlwaysFails(), query=RandomQuery()).run()


def test_labelled_initial_set_and_fps(pool, model, test_set):
    initial = emt_frames(3, "thermal", reps=(2, 1, 1), seed=21)
    loop = _loop(pool, model, test_set, initial=initial, n_rounds=1, query=FarthestPointQuery())
    loop.run()
    assert [a.info["al_pool_index"] for a in loop.labelled_[:3]] == [-1, -1, -1]
    assert len(loop.labelled_) == 5 and loop.n_oracle_calls_ == 2


def test_on_the_fly_flags_and_labels_hot_md(model, tmp_path):
    cold = emt_frames(8, "thermal", (200, 300), reps=(2, 1, 1), seed=31)
    start = cold[0].copy()
    start.calc = None
    loop = ActiveLearningLoop(AutoencoderQuery(steps=150, seed=0), cold, model, oracle=EMT(),
                              initial=8, k=1, n_rounds=0, trainer_kwargs=TRAIN, workdir=tmp_path,
                              progress=False)
    res = loop.run_on_the_fly(start, n_steps=60, temperature_K=2500, timestep_fs=2.0,
                              check_every=10, max_labels=2, progress=False)
    assert res.status in ("completed", "max_labels", "md_failed")
    labelled = [e for e in res.events if e.get("status") == "labelled"]
    assert len(labelled) >= 1
    assert all(e["uncertainty"] > e["threshold"] for e in labelled)
    assert len(loop.labelled_) == 8 + res.n_labels
    assert [h["mode"] for h in loop.history_][1:] == ["on_the_fly"] * res.n_labels
    assert np.all(np.diff(res.trace["step"]) > 0)
    flagged = res.trace["flagged"].astype(bool)
    assert np.all(res.trace["uncertainty"][flagged] > res.trace["threshold"][flagged])
    # the state (training set, on-the-fly trace) survives in the checkpoint
    again = ActiveLearningLoop(AutoencoderQuery(steps=150, seed=0), cold, model, oracle=EMT(),
                               initial=8, k=1, n_rounds=0, trainer_kwargs=TRAIN, workdir=tmp_path,
                               progress=False)
    assert again.load_checkpoint()
    assert len(again.labelled_) == len(loop.labelled_) and again.otf_state_["finished"]


@pytest.mark.teacher
def test_default_oracle_is_the_chgnet_teacher():
    pytest.importorskip("chgnet")
    from mdmlkit.systems.pyrochlore import primitive_cell

    oracle = Oracle()                        # no calculator given: the CHGNet teacher
    res = oracle.label([primitive_cell()])
    atoms = res.labelled[0]
    assert "CHGNet" in repr(oracle)
    # data/la2zr2o7/README.md: CHGNet's relaxed La2Zr2O7 has E0 = -9.4815 eV/atom; the
    # experimental lattice (0.9 % smaller) lies a few meV/atom above it
    e = atoms.get_potential_energy() / len(atoms)
    assert -9.4815 < e < -9.40
    assert np.all(np.isfinite(atoms.get_forces())) and atoms.calc.results["stress"].shape == (6,)


def test_trainer_kwargs_may_depend_on_training_set_size(pool, model):
    seen = []

    def kwargs(n):
        seen.append(n)
        return {**TRAIN, "max_epochs": 2}

    loop = _loop(pool, model, None, query=RandomQuery(seed=1), trainer_kwargs=kwargs, n_rounds=2,
                 test=None)
    loop.run()
    assert seen == [4, 6, 8]
    assert [h["epochs"] for h in loop.history_] == [2, 2, 2]


def test_loop_never_changes_the_users_query_model_or_pool(pool, model, test_set):
    import copy

    import torch

    query = AutoencoderQuery(steps=50, seed=0)               # sfs and cache left to the loop
    before = copy.deepcopy(query.get_params(deep=False))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    prints = [structure_fingerprint(a) for a in pool]
    forces = [a.get_forces().copy() for a in pool]
    loop = _loop(pool, model, test_set, query=query, n_rounds=1)
    loop.run()
    assert loop.query is query and loop.query_ is not query and loop.query_.is_fitted
    assert not query.is_fitted and query.sfs is None and query.cache is None
    assert query.get_params(deep=False) == before
    assert loop.query_.sfs is model.sfs and loop.query_.cache is loop.cache
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert [structure_fingerprint(a) for a in pool] == prints
    assert all(np.array_equal(a.get_forces(), f) for a, f in zip(pool, forces))
    # a new query class needs no loop edits: it declares what it takes from the loop
    from mdmlkit.active import Query

    class Nearest(Query):
        name = "nearest"
        loop_inputs = ("model",)

        def __init__(self, model=None):
            self.model = model

        def fit(self, train):
            assert self.model is not None
            self.n_train_ = len(train)
            return self

        def score(self, pool):
            return {"score": -np.arange(len(pool), dtype=float)}

    mine = Nearest()
    loop2 = _loop(pool, model, None, query=mine, n_rounds=1, test=None)
    loop2.run()
    assert mine.model is None and loop2.query_.model is model
    init = {s["pool_index"] for s in loop2.selections_ if s["round"] == 0}
    assert [s["pool_index"] for s in loop2.selections_ if s["round"] == 1] == \
        [i for i in range(len(pool)) if i not in init][:2]        # highest score: lowest index
    with pytest.raises(InputError, match="Query"):
        _loop(pool, model, test_set, query=object())


def test_sampling_helpers():
    from mdmlkit.active import ood_split, random_subset, temperature

    frames = emt_frames(6, "thermal", (300, 400), reps=(1, 1, 1), seed=1)
    sub = random_subset(frames, 4, np.random.default_rng(0))
    idx = np.sort(np.random.default_rng(0).choice(6, 4, replace=False))
    assert [id(a) for a in sub] == [id(frames[i]) for i in idx]
    assert len(random_subset(frames, 10, np.random.default_rng(0))) == 6
    assert temperature(frames[0]) == frames[0].info["T"]
    cold = emt_frames(5, "thermal", (300, 500), reps=(1, 1, 1), seed=2)
    hot = emt_frames(4, "thermal", (1800, 2000), reps=(1, 1, 1), seed=3)
    vac = emt_frames(3, "vacancy", reps=(1, 1, 1), seed=4)
    train, groups = ood_split(cold + hot, cold + hot + vac, n_train=3, n_test=2,
                              rng=np.random.default_rng(1), cool_max_T=1000, hot_min_T=1700)
    assert len(train) == 3 and all(temperature(a) <= 1000 for a in train)
    assert {k: len(v) for k, v in groups.items()} == {"cool": 2, "hot": 2, "defect": 2}
    assert all(temperature(a) >= 1700 for a in groups["hot"])
    assert all(a.info["kind"] == "vacancy" for a in groups["defect"])
    with pytest.raises(InputError, match="overlap"):
        ood_split(cold, cold, 1, 1, np.random.default_rng(0), cool_max_T=1000, hot_min_T=900)


def test_round_size_schedule_and_extra_test_sets(pool, model, test_set):
    """k as one batch size per round (geometric curves) and extra test sets in every record."""
    hot = emt_frames(4, "thermal", (1800, 2000), reps=(2, 1, 1), seed=14)
    loop = _loop(pool, model, test_set, query=RandomQuery(seed=0), k=[1, 2, 4], n_rounds=None,
                 extra_tests={"hot": hot})
    loop.run()
    lc = loop.learning_curve()
    assert lc["n_labelled"].tolist() == [4, 5, 7, 11]          # initial 4, then 1, 2, 4
    for h in loop.history_:
        assert h["hot/force_rmse_meV_A"] > 0 and h["hot/energy_rmse_meV_atom"] >= 0
    # the hot set's numbers are the trained model's errors on it (independent evaluation)
    from mdmlkit.potential.evaluate import evaluate

    ev = evaluate(loop.model_, hot)
    assert loop.history_[-1]["hot/force_rmse_meV_A"] == pytest.approx(ev["force_rmse_meV_A"], rel=1e-6)
    with pytest.raises(InputError, match="positive integer"):
        _loop(pool, model, test_set, k=[2, 0])


def test_warm_start_keeps_round_zero_scaling(pool, model, test_set):
    loop = _loop(pool, model, test_set, query=RandomQuery(seed=0), warm_start=True, n_rounds=2)
    loop.run(n_rounds=0)
    state = {k: v.clone() for k, v in loop.model_.state_dict().items() if "scal" in k or "offset" in k
             or "ref" in k}
    assert state, "expected scaling/offset buffers in the model's state"
    loop.run()
    after = loop.model_.state_dict()
    for key, v in state.items():
        assert np.allclose(after[key].numpy(), v.numpy()), key


def test_new_label_share_repeats_fresh_labels_in_warm_starts(pool, model):
    """With ``new_label_share`` a warm-started round trains on the old labels plus the new
    ones repeated to that share (so a few fresh labels are not drowned); the trainer sees
    the enlarged set, round 0 and cold starts never repeat, and bad shares are refused."""
    seen = []

    def kwargs(n):
        seen.append(n)
        return {**TRAIN, "max_epochs": 1}

    loop = _loop(pool, model, None, query=RandomQuery(seed=1), trainer_kwargs=kwargs, n_rounds=2,
                 test=None, warm_start=True, new_label_share=0.5, initial=6, k=1)
    loop.run()
    # round 0: 6 labels; round 1: 6 old + 1 new x 6; round 2: 7 old + 1 new x 7
    assert seen == [6, 12, 14]
    assert [h.get("new_label_repeats") for h in loop.history_] == [None, 6, 7]
    assert len(loop.labelled_) == 8                        # the labelled set itself is unchanged
    plain = _loop(pool, model, None, query=RandomQuery(seed=1), trainer_kwargs=kwargs, n_rounds=1,
                  test=None, warm_start=False, new_label_share=0.5, initial=6, k=1)
    seen.clear()
    plain.run()
    assert seen == [6, 7]                                  # cold starts: no repeats
    for bad in (-0.1, 1.0):
        with pytest.raises(InputError, match="new_label_share"):
            _loop(pool, model, None, new_label_share=bad)


def test_new_label_share_fits_a_fresh_label(pool, sfs):
    """The point of the share: after one short fine-tune (a fixed number of optimiser steps,
    as on the fly) the potential's error on the one new structure falls much further with
    the repeats than without."""
    from mdmlkit.potential import evaluate

    odd = emt_frames(1, "strain", reps=(2, 1, 1), seed=99)[0]
    odd.positions[0] += (0.35, 0.1, 0.0)                     # a strongly distorted cell
    odd.calc = EMT()
    odd.get_forces()
    from mdmlkit.active import finetune_schedule

    model = HDNNP(sfs, hidden=(10, 10), seed=0)
    errors = {}
    for share in (0.0, 0.3):          # round 0: 30 epochs; fine-tunes: about 6 steps of 4
        tk = finetune_schedule(12, {**TRAIN, "max_epochs": 30}, steps=6, batch_size=4, lr=5e-3)
        loop = _loop(pool, model, None, query=RandomQuery(seed=1), test=None, warm_start=True,
                     n_rounds=0, initial=12, new_label_share=share, trainer_kwargs=tk)
        loop.run()
        loop.labelled_.append(odd)                           # as an on-the-fly label would be
        loop.round_ += 1
        loop.train_round()
        ev = evaluate(loop.model_, [odd])
        errors[share] = (ev["energy_rmse_meV_atom"], ev["force_rmse_meV_A"])
    assert errors[0.3][0] < 0.5 * errors[0.0][0]
    assert errors[0.3][1] < errors[0.0][1]
