"""The production learning-curve benchmark (benchmarks/bench_active.py --profile production), tiny."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_active", REPO / "benchmarks" / "bench_active.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tiny_argv(profile: str, schedule: str, out: Path, work: Path) -> list[str]:
    """A learning-curve profile shrunk to seconds: synthetic Cu/Ni cells, random + AE, one seed."""
    return ["--profile", profile, "--dataset", "synthetic", "--strategies", "random,autoencoder",
            "--seeds", "0", "--schedule", schedule, "--n-initial", "4", "--pool-size", "30",
            "--test-size", "8", "--steps", "4", "--ae-steps", "20", "--hidden", "4",
            "--out", str(out), "--workdir", str(work), "--no-progress"]


@pytest.mark.slow
def test_production_profile_runs_resumes_and_summarises(tmp_path):
    bench = _bench()
    out, work = tmp_path / "active_production.json", tmp_path / "work"
    argv = _tiny_argv("production", "3,6", out, work)
    assert bench.main(argv) == 0
    d = json.loads(out.read_text())
    assert d["complete"] and d["runs_done"] == ["autoencoder/seed_0", "random/seed_0"]
    n = sorted({r["n_labelled"] for r in d["records"]})
    assert n == [4, 7, 13]                                  # initial 4, then rounds of 3 and 6
    for m in bench.PRODUCTION_METRICS:                      # test split and hot test set, every round
        assert all(r[m] > 0 for r in d["records"]), m
        assert set(d["labels_to_reach_random_final"][m]) == {"random", "autoencoder"}
    assert d["labels_to_reach_random_final"]["force_rmse_meV_A"]["random"]["fraction"] == 1.0
    assert out.with_suffix(".png").stat().st_size > 0
    # a rerun resumes from the finished checkpoints: same records, nothing retrained
    first = d["records"]
    assert bench.main(argv) == 0
    again = json.loads(out.read_text())["records"]
    key = lambda r: (r["strategy"], r["round"])  # noqa: E731
    assert [(key(r), r["force_rmse_meV_A"]) for r in sorted(again, key=key)] == \
        [(key(r), r["force_rmse_meV_A"]) for r in sorted(first, key=key)]
    # --replot rewrites the summaries and the figure from the records alone
    assert bench.main(argv + ["--replot"]) == 0
    assert json.loads(out.read_text())["targets"] == bench.TARGETS


@pytest.mark.slow
def test_md_pool_profile_labels_through_the_live_oracle_once(tmp_path):
    """The md-pool protocol: an unlabelled pool, labels from a live oracle (EMT here) through
    a disk cache shared by the runs, so the initial set both strategies share is computed
    once; the result says which oracle labelled it."""
    bench = _bench()
    out, work = tmp_path / "active_md.json", tmp_path / "work"
    argv = _tiny_argv("md-pool", "3,5", out, work)
    args = bench.parse_args(argv)
    pool, _, _ = bench.load_data(args)
    assert all(a.calc is None for a in pool)               # nothing to replay
    assert bench.main(argv) == 0
    d = json.loads(out.read_text())
    assert d["complete"] and "live oracle" in d["benchmark"]
    assert sorted({r["n_labelled"] for r in d["records"]}) == [4, 7, 12]
    entries = [p for p in (work / "labels").rglob("*") if p.is_file()]
    # 2 runs x 12 labels, the 4 initial structures shared: at most 20 distinct labels computed
    assert 12 <= len(entries) <= 20
    assert all(r["force_rmse_meV_A"] > 0 for r in d["records"])


@pytest.mark.slow
def test_strategies_added_later_keep_the_finished_runs(tmp_path):
    """A second invocation with another strategy keeps the finished runs of the result JSON
    (same settings) and runs only the new one; other settings start a fresh result."""
    bench = _bench()
    out, work = tmp_path / "active_md.json", tmp_path / "work"
    argv = _tiny_argv("md-pool", "3,5", out, work)
    assert bench.main(argv) == 0
    first = json.loads(out.read_text())
    i = argv.index("--strategies")
    more = argv[:i + 1] + ["fps"] + argv[i + 2:]
    assert bench.main(more) == 0
    d = json.loads(out.read_text())
    assert d["complete"] and d["runs_done"] == ["autoencoder/seed_0", "fps/seed_0", "random/seed_0"]
    assert d["settings"]["strategies"] == ["autoencoder", "fps", "random"]
    assert d["query_settings"]["fps"] == bench.FPS_PRODUCTION
    key = lambda r: (r["strategy"], r["round"])  # noqa: E731
    kept = sorted((r for r in d["records"] if r["strategy"] != "fps"), key=key)
    assert [(key(r), r["force_rmse_meV_A"]) for r in kept] == \
        [(key(r), r["force_rmse_meV_A"]) for r in sorted(first["records"], key=key)]
    assert sorted({r["n_labelled"] for r in d["records"] if r["strategy"] == "fps"}) == [4, 7, 12]
    # asking again for a finished run (its checkpoints gone) takes it from the JSON, trains nothing
    import shutil

    shutil.rmtree(work / "curves")
    assert bench.main(argv) == 0
    again = json.loads(out.read_text())
    assert again["runs_done"] == d["runs_done"] and not (work / "curves").exists()
    assert sorted(again["records"], key=key) == sorted(d["records"], key=key)
    # other training settings: the earlier runs are not mixed in
    j = more.index("--steps")
    other = more[:j + 1] + ["5"] + more[j + 2:]
    assert bench.main(other) == 0
    assert json.loads(out.read_text())["runs_done"] == ["fps/seed_0"]
