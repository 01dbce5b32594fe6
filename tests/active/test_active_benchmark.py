"""Tests of the learning-curve benchmark helpers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mdmlkit.active import (
    AutoencoderQuery,
    FarthestPointQuery,
    LearningCurves,
    RandomQuery,
    labels_to_reach,
    ood_detection,
    run_learning_curves,
)
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import generate_set
from mdmlkit.errors import InputError
from mdmlkit.potential import HDNNP

TRAIN = {"max_epochs": 4, "batch_size": 4, "patience": None, "lr": 5e-3}


@pytest.fixture(scope="module")
def sfs():
    return generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)


def _curves(values: dict[str, list[list[float]]], n: list[int]) -> LearningCurves:
    recs = []
    for s, per_seed in values.items():
        for seed, vals in enumerate(per_seed):
            for r, v in enumerate(vals):
                recs.append({"strategy": s, "seed": seed, "round": r, "n_labelled": n[r],
                             "force_rmse_meV_A": v, "query_time_s": 0.1 * (s == "qbc")})
    return LearningCurves(recs)


def test_labels_to_reach_on_known_curves():
    n = [10, 20, 30, 40]
    res = _curves({"random": [[100, 80, 64, 50], [100, 82, 60, 54]],     # final mean 52
                   "ae": [[100, 60, 50, 45], [100, 58, 54, 43]],         # mean 52 at n=30
                   "qbc": [[100, 52, 40, 30], [100, 50, 42, 30]],        # mean 51 at n=20
                   "bad": [[100, 90, 80, 70], [100, 90, 80, 70]]}, n)
    out = labels_to_reach(res)
    assert out["random"]["n_labelled"] == 40 and out["random"]["fraction"] == 1.0
    assert out["ae"]["n_labelled"] == 30 and out["ae"]["fraction"] == pytest.approx(0.75)
    assert out["qbc"]["n_labelled"] == 20 and out["qbc"]["fraction"] == pytest.approx(0.5)
    assert out["bad"]["n_labelled"] is None and out["bad"]["fraction"] is None
    assert out["ae"]["target"] == pytest.approx(52.0)
    c = res.curve("ae")
    np.testing.assert_allclose(c["mean"], [100, 59, 52, 44])
    np.testing.assert_allclose(c["std"], [0, 1, 2, 1])
    assert labels_to_reach(res, target=45)["qbc"]["n_labelled"] == 30
    assert res.query_time("qbc")["mean"] == pytest.approx(0.1)
    with pytest.raises(InputError, match="reference"):
        labels_to_reach(res, reference="nope")


def test_run_learning_curves_quick(sfs, tmp_path):
    pool = emt_frames(20, "thermal", (300, 900), reps=(2, 1, 1), seed=41)
    test = emt_frames(5, "thermal", (300, 900), reps=(2, 1, 1), seed=42)
    model = HDNNP(sfs, hidden=(4,), seed=0)
    strategies = {"random": RandomQuery(), "fps": FarthestPointQuery(),
                  "ae": lambda seed: AutoencoderQuery(steps=100, seed=seed)}
    res = run_learning_curves(strategies, pool, test, seeds=(0, 1), rounds=2, k=2, n_initial=3,
                              model=model, trainer_kwargs=TRAIN, workdir=tmp_path, progress=False)
    assert len(res.records) == 3 * 2 * 3
    assert res.strategies == ["random", "fps", "ae"] and res.seeds == [0, 1]
    for seed in (0, 1):
        r0 = [r for r in res.records if r["seed"] == seed and r["round"] == 0]
        # every strategy starts from the same initial set and weights: identical round 0
        assert len({r["force_rmse_meV_A"] for r in r0}) == 1
        assert {r["n_labelled"] for r in r0} == {3}
    c = res.curve("fps")
    assert c["n_labelled"].tolist() == [3, 5, 7] and c["values"].shape == (2, 3)
    assert res.query_time("ae")["mean"] > 0
    import matplotlib

    matplotlib.use("Agg")
    from mdmlkit.viz.plotting import plot_learning_curves

    ax = plot_learning_curves(res, "energy_rmse_meV_atom", seeds=False)
    assert len(ax.get_lines()) == 3 and ax.get_ylabel() == "energy RMSE (meV/atom)"
    # the strategies given as Query instances were cloned per run, never fitted themselves
    assert not strategies["random"].is_fitted and not strategies["fps"].is_fitted
    res.save(tmp_path / "lc.json")
    back = LearningCurves.from_dict(json.loads((tmp_path / "lc.json").read_text()))
    np.testing.assert_array_equal(back.curve("ae")["mean"], res.curve("ae")["mean"])
    # a finished benchmark is reloaded from the checkpoints, not recomputed
    again = run_learning_curves(strategies, pool, test, seeds=(0, 1), rounds=2, k=2, n_initial=3,
                                model=model, trainer_kwargs=TRAIN, workdir=tmp_path, progress=False)
    assert [r["force_rmse_meV_A"] for r in again.records] == [r["force_rmse_meV_A"] for r in res.records]
    with pytest.raises(InputError, match="exceeds the pool"):
        run_learning_curves(strategies, pool, test, rounds=10, k=5, model=model)


def test_run_learning_curves_in_processes_equals_serial(sfs):
    """Runs fanned out to two worker processes (spawned, one torch thread each) give the
    serial curves exactly: every run is seeded and independent."""
    pool = emt_frames(12, "thermal", (300, 900), reps=(2, 1, 1), seed=43)
    test = emt_frames(4, "thermal", (300, 900), reps=(2, 1, 1), seed=44)
    model = HDNNP(sfs, hidden=(4,), seed=0)
    strategies = {"random": RandomQuery(), "fps": FarthestPointQuery()}
    kw = dict(seeds=(0, 1), rounds=1, k=2, n_initial=3, model=model, trainer_kwargs=TRAIN,
              progress=False)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)                    # as in the workers
    try:
        serial = run_learning_curves(strategies, pool, test, **kw)
    finally:
        torch.set_num_threads(torch_threads)
    seen = []
    parallel = run_learning_curves(strategies, pool, test, n_jobs=2, callback=seen.append, **kw)
    key = [(r["strategy"], r["seed"], r["round"]) for r in serial.records]
    assert [(r["strategy"], r["seed"], r["round"]) for r in parallel.records] == key
    for metric in ("energy_rmse_meV_atom", "force_rmse_meV_A"):
        assert [r[metric] for r in parallel.records] == [r[metric] for r in serial.records]
    assert len(seen) == 4 and sorted(parallel.meta["run_wall_s"]) == sorted(serial.meta["run_wall_s"])


def test_ood_detection_with_autoencoder(sfs):
    from mdmlkit.potential.training.trainer import Trainer

    train = emt_frames(12, "thermal", (300, 500), reps=(2, 1, 1), seed=51)
    ids = emt_frames(8, "thermal", (300, 500), reps=(2, 1, 1), seed=52)
    hot = emt_frames(8, "thermal", (1800, 2000), reps=(2, 1, 1), seed=53)
    model = HDNNP(sfs, hidden=(6,), seed=0)
    Trainer(model, progress=False, **{**TRAIN, "max_epochs": 15}).fit(train)
    q = AutoencoderQuery(sfs, steps=500, seed=0).fit(train)
    rep = ood_detection(q, model, ids, hot)
    assert rep["auc"] > 0.85
    assert rep["flagged_ood"] > rep["flagged_id"]
    # the potential is indeed worse on the hot snapshots the AE flags
    assert rep["force_rmse_ood_mean"] > rep["force_rmse_id_mean"]
    assert rep["spearman"] > 0.3


# ----------------------------------------------------------------------------- paired comparison

def test_paired_comparison_matches_scipy_ttest_rel():
    from scipy.stats import ttest_rel

    from mdmlkit.active import paired_comparison

    rng = np.random.default_rng(7)
    n = [10, 20, 30]
    base = rng.normal(100, 5, size=(5, 3))
    values = {"random": base.tolist(), "ae": (base - 3 + rng.normal(0, 1, (5, 3))).tolist(),
              "fps": (base + rng.normal(0, 4, (5, 3))).tolist()}
    res = _curves(values, n)
    out = paired_comparison(res, baseline="random", confidence=0.9)
    assert list(out) == ["ae", "fps"]
    for s in ("ae", "fps"):
        c = out[s]
        for r in range(3):
            ref = ttest_rel(np.array(values[s])[:, r], base[:, r])
            assert c.p_value[r] == pytest.approx(ref.pvalue, rel=1e-10)
            lo, hi = ref.confidence_interval(0.9)
            assert (c.ci_low[r], c.ci_high[r]) == pytest.approx((lo, hi), rel=1e-10)
            assert c.mean_difference[r] == pytest.approx(np.mean(np.array(values[s])[:, r] - base[:, r]))
        assert c.n_labelled.tolist() == n and c.n_pairs.tolist() == [5, 5, 5]
        assert [row["p_value"] for row in c.rows()] == pytest.approx(c.p_value.tolist())
    # a consistent gap of 3 with scatter 1 over 5 seeds is demonstrated
    assert out["ae"].demonstrated.all() and out["ae"].verdict().startswith("better than random")


def test_paired_comparison_pairs_by_seed_and_handles_one_seed():
    from mdmlkit.active import paired_comparison

    recs = []
    for s, seed, v in [("random", 0, 10.0), ("random", 1, 20.0), ("ae", 1, 17.0), ("ae", 2, 1.0)]:
        recs.append({"strategy": s, "seed": seed, "round": 0, "n_labelled": 5,
                     "force_rmse_meV_A": v})
    c = paired_comparison(LearningCurves(recs))["ae"]
    assert c.seeds.tolist() == [1] and c.mean_difference.tolist() == [-3.0]   # seed 1 only
    assert np.isnan(c.p_value[0]) and c.verdict() == "one seed only: no spread to judge it by"
    with pytest.raises(InputError, match="baseline"):
        paired_comparison(LearningCurves(recs), baseline="qbc")


def test_curve_ratio_is_a_paired_t_interval_of_per_seed_mean_log_ratios():
    from scipy.stats import ttest_1samp

    from mdmlkit.active import curve_ratio

    rng = np.random.default_rng(3)
    n = [10, 20, 40, 80]
    base = np.exp(rng.normal(4, 0.3, size=(4, 4)))
    ratio = np.exp(rng.normal(np.log(0.7), 0.2, size=(4, 4)))       # ≈ 0.7× the baseline, noisy
    ratio[:, 0] = 1.0                                               # the shared initial set
    vals = {"random": base.tolist(), "ae": (base * ratio).tolist()}
    vals["ae"][2][3] = float("nan")                                # one round missing for seed 2
    out = curve_ratio(_curves(vals, n), confidence=0.9)["ae"]
    lr = np.log(np.array(vals["ae"]) / base)[:, 1:]
    per_seed = np.array([row[np.isfinite(row)].mean() for row in lr])
    np.testing.assert_allclose(out.log_ratio, per_seed)
    ref = ttest_1samp(per_seed, 0.0)
    lo, hi = ref.confidence_interval(0.9)
    assert out.ratio == pytest.approx(np.exp(per_seed.mean()))
    assert (out.ci_low, out.ci_high) == pytest.approx((np.exp(lo), np.exp(hi)))
    assert out.p_value == pytest.approx(ref.pvalue)
    assert out.rounds.tolist() == [1, 2, 3] and out.seeds.tolist() == [0, 1, 2, 3]
    assert out.demonstrated and "better" in out.verdict()
    assert out.to_dict()["ratio"] == out.ratio
    # the same curve against itself: ratio 1, nothing demonstrated; errors must be positive
    same = curve_ratio(_curves({"random": base.tolist(), "b": base.tolist()}, n))["b"]
    assert same.ratio == pytest.approx(1.0) and not same.demonstrated
    with pytest.raises(InputError, match="positive"):
        curve_ratio(_curves({"random": base.tolist(), "b": (base * 0).tolist()}, n))


def test_summary_frame_on_known_curves():
    n = [10, 20, 30, 40]
    res = _curves({"random": [[100, 80, 64, 50], [100, 82, 60, 54]],     # final 52 ± 2
                   "ae": [[100, 60, 50, 45], [100, 58, 54, 43]],         # reaches 52 at n=30
                   "bad": [[100, 90, 80, 70], [100, 90, 80, 70]]}, n)
    df = res.summary_frame(metrics=("force_rmse_meV_A",))
    key = "labels to random's final (force_rmse_meV_A)"
    assert df.loc["random", "force_rmse_meV_A"] == "52 ± 2"
    assert df.loc["ae", key] == "30 (0.75)"
    assert df.loc["bad", key] == "not reached"
    assert df.loc["ae", "labels"] == 40 and df.loc["ae", "seeds"] == 2


def test_extra_test_set_metrics_are_labelled():
    from mdmlkit.active.metrics import metric_label

    assert metric_label("hot/force_rmse_meV_A") == "hot test: force RMSE (meV/Å)"
    assert metric_label("force_rmse_meV_A") == "force RMSE (meV/Å)"
    assert metric_label("whatever/x") == "whatever/x"


def test_label_ratio_recovers_a_known_shift_of_power_law_curves():
    """Curves e = c n^b with the strategy's shifted by a known factor in n: the common-slope fit
    gives back that factor per seed exactly, and its paired interval."""
    from scipy.stats import ttest_1samp

    from mdmlkit.active import label_ratio

    n = [50, 100, 200, 400, 800]
    slopes, shifts, consts = [-0.5, -0.4, -0.6], [0.30, 0.40, 0.35], [900.0, 1100.0, 1000.0]
    vals = {"random": [], "qbc": []}
    for b, f, c in zip(slopes, shifts, consts):
        vals["random"].append([c * m ** b for m in n])
        # the strategy reaches random's error with f times the labels: e_s(n) = e_r(n / f)
        vals["qbc"].append([c * (m / f) ** b for m in n])
        vals["qbc"][-1][0] = vals["random"][-1][0]              # the shared initial set
    out = label_ratio(_curves(vals, n), confidence=0.9)["qbc"]
    np.testing.assert_allclose(np.exp(out.log_ratio), shifts, rtol=1e-10)
    np.testing.assert_allclose(out.slope, slopes, rtol=1e-10)
    ref = ttest_1samp(np.log(shifts), 0.0)
    lo, hi = ref.confidence_interval(0.9)
    assert out.ratio == pytest.approx(np.exp(np.mean(np.log(shifts))))
    assert (out.ci_low, out.ci_high) == pytest.approx((np.exp(lo), np.exp(hi)))
    assert out.rounds.tolist() == [1, 2, 3, 4] and out.demonstrated
    assert out.meets(0.5) and not out.meets(1 / 3)
    assert "fewer labels" in out.verdict() and out.to_dict()["label_ratio"] == out.ratio
    # a curve that does not fall gives no ratio for that seed; zero errors are refused
    flat = {"random": [[100.0] * 5, vals["random"][1]], "qbc": [[90.0] * 5, vals["qbc"][1]]}
    one = label_ratio(_curves(flat, n))["qbc"]
    assert one.seeds.tolist() == [1] and "one seed only" in one.verdict()
    with pytest.raises(InputError, match="positive"):
        label_ratio(_curves({"random": vals["random"], "qbc": [[0.0] * 5] * 3}, n))
