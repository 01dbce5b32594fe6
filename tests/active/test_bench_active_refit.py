"""The from-scratch re-evaluation of learning curves (benchmarks/bench_active_refit.py), tiny."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    sys.path.insert(0, str(REPO))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_refit_reproduces_round_0_and_resumes(tmp_path):
    """Refit of a tiny md-pool run (EMT teacher): with the source's own schedule the shared
    initial set reproduces the source's round 0 exactly (both train it from scratch with the
    seed's weights); the replayed choices match the source's; a rerun trains nothing."""
    bench, refit = _load("bench_active"), _load("bench_active_refit")
    src, work = tmp_path / "active_md.json", tmp_path / "work"
    argv = ["--profile", "md-pool", "--dataset", "synthetic", "--strategies", "random,fps,autoencoder",
            "--seeds", "0,1", "--schedule", "3,5", "--n-initial", "4", "--pool-size", "30",
            "--test-size", "8", "--steps", "6", "--ae-steps", "20", "--hidden", "4",
            "--out", str(src), "--workdir", str(work), "--no-progress"]
    assert bench.main(argv) == 0
    d = json.loads(src.read_text())
    shutil.rmtree(work / "curves" / "autoencoder" / "seed_1")    # choices gone: replayed instead
    out = tmp_path / "refit.json"
    rargv = ["--source", str(src), "--workdir", str(work), "--steps", "6", "--out", str(out),
             "--no-progress"]
    assert refit.main(rargv) == 0
    r = json.loads(out.read_text())
    assert r["complete"] and r["n_trainings_done"] == r["n_trainings"] == 2 * 1 + 2 * 3 * 2
    assert all("match the source run in every round" in note for note in r["runs"].values())
    assert len(r["runs_done"]) == 6 and "from scratch" in r["retraining_rule"]
    assert len(r["runs"]) == 6 and r["runs"]["autoencoder/seed_1"].startswith("replayed")
    assert r["runs"]["fps/seed_0"].startswith("read from the run's checkpoint")
    # round 0: the same labelled set, weights and schedule as the source -> the same errors
    for rec in d["records"]:
        if rec["round"] == 0:
            mine = [x for x in r["records"] if (x["strategy"], x["seed"], x["round"])
                    == (rec["strategy"], rec["seed"], 0)]
            assert len(mine) == 1 and mine[0]["shared_initial"]
            assert mine[0]["force_rmse_meV_A"] == pytest.approx(rec["force_rmse_meV_A"], rel=1e-9)
            assert mine[0]["hot/energy_rmse_meV_atom"] == pytest.approx(
                rec["hot/energy_rmse_meV_atom"], rel=1e-9)
    assert sorted({x["n_labelled"] for x in r["records"]}) == [4, 7, 12]
    curve = r["records"][-1]["train_curve"]         # training errors along the schedule
    assert 2 <= len(curve) <= 10 and curve[-1]["epoch"] == r["records"][-1]["epochs"]
    assert all(p["train_force_rmse_meV_A"] > 0 for p in curve)
    assert set(r["curve_ratio_vs_random"]["force_rmse_meV_A"]) == {"fps", "autoencoder"}
    assert out.with_suffix(".png").stat().st_size > 0
    assert not list(work.glob("refit-*/*.ckpt"))          # training checkpoints removed once saved
    # the selections are stored with the result: each run's sets nest and never repeat a structure
    for rounds in r["selections"].values():
        flat = [i for rr in rounds for i in rr]
        assert [len(rr) for rr in rounds] == [4, 3, 5] and len(set(flat)) == len(flat)
    # the final budget alone (already trained: nothing to do): a strip figure of seeds per strategy
    one = tmp_path / "one.json"
    assert refit.main(rargv[:-3] + ["--out", str(one), "--budgets", "12", "--no-progress"]) == 0
    o = json.loads(one.read_text())
    assert o["budgets"] == [12] and {x["n_labelled"] for x in o["records"]} == {12}
    assert one.with_suffix(".png").stat().st_size > 0
    # resume: nothing left to train, same records
    before = sorted((x["strategy"], x["seed"], x["round"], x["force_rmse_meV_A"]) for x in r["records"])
    assert refit.main(rargv) == 0
    again = json.loads(out.read_text())
    assert sorted((x["strategy"], x["seed"], x["round"], x["force_rmse_meV_A"])
                  for x in again["records"]) == before
    # the label gate: labels with a force above --max-force count as spent but are not trained on
    pa = refit.profile_args(d["settings"])
    pool, _, _ = bench.load_data(pa)
    labels = bench.live_oracle(pa, work).label(pool).labelled      # the profile's teacher, cached
    fmax = [float(np.abs(labels[i].get_forces()).max()) for i in range(len(pool))]
    thr = float(np.median(fmax))
    gated = tmp_path / "gated.json"
    assert refit.main(rargv[:-3] + ["--out", str(gated), "--budgets", "12", "--max-force", str(thr),
                                    "--no-progress"]) == 0
    g = json.loads(gated.read_text())
    assert g["protocol"]["label_gate"] == {"max_force_eV_A": thr, "min_distance_A": None}
    assert "not trained on" in g["retraining_rule"]
    assert len([p for p in work.glob("refit-*") if p.is_dir()]) == 2     # its own records folder
    for rec in g["records"]:
        rounds = g["selections"][f"{rec['strategy']}/seed_{rec['seed']}"]
        chosen = [i for rr in rounds for i in rr]
        assert rec["n_labelled"] == 12 and rec["n_trained"] == sum(fmax[i] <= thr for i in chosen)
    assert any(rec["n_trained"] < 12 for rec in g["records"])
    chosen_all = {i for rounds in g["selections"].values() for rr in rounds for i in rr}
    rejected = g["label_gate_rejected"]                  # each gated label and why
    assert {int(i) for i in rejected} == {i for i in chosen_all if fmax[i] > thr}
    assert all("LabelOutOfRange" in why for why in rejected.values())
    assert refit.main(rargv[:-3] + ["--out", str(gated), "--budgets", "12", "--max-force", str(thr),
                                    "--no-progress"]) == 0              # resumed: nothing to train
    assert json.loads(gated.read_text())["label_gate_rejected"] == rejected
    # a fixed number of epochs instead of a fixed number of steps
    ep = tmp_path / "epochs.json"
    assert refit.main(rargv[:-3] + ["--out", str(ep), "--budgets", "12", "--epochs", "2",
                                    "--no-progress"]) == 0
    e = json.loads(ep.read_text())
    assert e["protocol"]["epochs"] == 2 and e["protocol"]["steps"] is None
    assert "2 epochs" in e["retraining_rule"] and {x["epochs"] for x in e["records"]} == {2}
    # at least 6 steps and at least 2 epochs: a set either protocol already trained with the same
    # schedule is reused from its folder, the rest are trained
    env = tmp_path / "envelope.json"
    assert refit.main(rargv[:-3] + ["--out", str(env), "--min-epochs", "2", "--no-progress"]) == 0
    v = json.loads(env.read_text())
    assert v["complete"] and v["protocol"]["min_epochs"] == 2 and "max(6 optimiser steps, 2 epochs)" in v["retraining_rule"]
    batch = int(d["settings"]["batch"])
    by_folder = {p.name: p for p in work.glob("refit-*")}
    for rec in v["records"]:
        n = rec["n_trained"]
        steps_epochs = math.ceil(6 * batch / n)
        assert rec["epochs"] == max(steps_epochs, 2)
        # reusable: the steps protocol ran this set as long (it trains at least 3 epochs), or the
        # 2-epoch protocol did (it ran budget 12 only)
        assert ("reused_from" in rec) == (steps_epochs >= 3 or (rec["n_labelled"] == 12 and steps_epochs <= 2))
        if "reused_from" in rec:                 # the very record of the other protocol
            name = f"{'initial' if rec.get('shared_initial') else rec['strategy']}_seed{rec['seed']}_n{rec['n_labelled']}.json"
            other = json.loads((by_folder[rec["reused_from"]] / name).read_text())
            assert other["epochs"] == rec["epochs"] and other["force_rmse_meV_A"] == rec["force_rmse_meV_A"]
    assert v["n_trainings_reused"] == sum("reused_from" in json.loads(p.read_text())
                                          for p in work.glob(f"refit-{v['protocol_key']}/*_n*.json"))
    assert {rec["reused_from"] for rec in v["records"] if "reused_from" in rec} <= set(by_folder)
    assert 0 < v["n_trainings_reused"] and (work / f"refit-{v['protocol_key']}" / "protocol.json").is_file()
    # a record of another labelled set under the same name is not reused: trained again
    steps_dir = by_folder[next(rec["reused_from"] for rec in v["records"]
                               if rec.get("reused_from") and rec["n_labelled"] == 7)]
    victim = sorted(steps_dir.glob("*_n7.json"))[0]
    assert json.loads(victim.read_text())["chosen"]            # every record names its set
    victim.write_text(json.dumps({**json.loads(victim.read_text()), "chosen": "0" * 16}))
    for p in work.glob(f"refit-{v['protocol_key']}/*_n7.json"):
        p.unlink()                                             # the envelope's 7-label sets, to redo
    assert refit.main(rargv[:-3] + ["--out", str(env), "--min-epochs", "2", "--no-progress"]) == 0
    strategy, seed = victim.stem.split("_seed")[0], int(victim.stem.split("_seed")[1].split("_")[0])
    sevens = [rec for rec in json.loads(env.read_text())["records"] if rec["n_labelled"] == 7]
    assert len(sevens) == 6 and all(("reused_from" in rec) != ((rec["strategy"], rec["seed"]) == (strategy, seed))
                                    for rec in sevens)
    # a mixture of two strategies' choices, alternately per round (no new labels)
    mixed = tmp_path / "mixed.json"
    assert refit.main(rargv[:-3] + ["--out", str(mixed), "--mix", "autoencoder,fps", "--no-progress"]) == 0
    x = json.loads(mixed.read_text())
    sel = x["selections"]
    for seed in (0, 1):
        a, b, m = (sel[f"{t}/seed_{seed}"] for t in ("autoencoder", "fps", "autoencoder+fps"))
        flat = [i for rr in m for i in rr]
        assert m[0] == a[0] == b[0] and [len(rr) for rr in m] == [4, 3, 5] and len(set(flat)) == len(flat)
        assert m[1][0] == a[1][0]                                 # A first ...
        assert m[1][1] == next(i for i in b[1] if i != a[1][0])   # ... then B's first not yet taken
        for r in (1, 2):                                          # only the two runs' picks, this round's first
            assert set(m[r]) <= {i for rr in a[r:] + b[r:] for i in rr}
    mine = [rec for rec in x["records"] if rec["strategy"] == "autoencoder+fps"]
    assert sorted((rec["seed"], rec["n_labelled"]) for rec in mine) == [(0, 4), (0, 7), (0, 12), (1, 4), (1, 7), (1, 12)]
    assert "autoencoder+fps" in x["curve_ratio_vs_random"]["force_rmse_meV_A"]
    from mdmlkit.errors import InputError

    with pytest.raises(InputError, match="--mix"):
        refit.main(rargv[:-3] + ["--out", str(mixed), "--mix", "fps,fps", "--no-progress"])
    # a gate that leaves a set nothing to train on is refused, naming the run
    with pytest.raises(InputError, match="no label is left"):
        refit.main(rargv[:-3] + ["--out", str(tmp_path / "empty.json"), "--budgets", "12",
                                 "--max-force", "1e-9", "--no-progress"])


@pytest.mark.slow
def test_refit_replays_a_profile_without_a_source_run(tmp_path):
    """--replay-profile: no warm-started run first; the replayed choices of random and the
    autoencoder are those a bench_active.py run with the same settings makes (its checkpoints),
    every budget is trained from scratch, and queries that need trained potentials are refused."""
    from mdmlkit.errors import InputError

    bench, refit = _load("bench_active"), _load("bench_active_refit")
    tiny = ("--dataset synthetic --seeds 0,1 --schedule 3,5 --n-initial 4 --pool-size 30 "
            "--test-size 8 --steps 6 --ae-steps 20 --hidden 4")
    work = tmp_path / "work"
    runs = "random,autoencoder,autoencoder:beta=0"        # (a variant with its own parameters)
    assert bench.main(["--profile", "md-pool", *tiny.split(), "--strategies", runs,
                       "--out", str(tmp_path / "warm.json"), "--workdir", str(work), "--no-progress"]) == 0
    out = tmp_path / "replayed.json"
    argv = ["--replay-profile", "md-pool", "--profile-args", tiny, "--workdir", str(tmp_path / "w2"),
            "--steps", "6", "--out", str(out), "--strategies", runs, "--no-progress"]
    assert refit.main(argv) == 0
    r = json.loads(out.read_text())
    assert r["complete"] and r["source"] == "none: choices replayed from profile md-pool"
    assert all(note == "replayed (no source run to check the chosen kinds against)"
               for note in r["runs"].values())
    assert r["n_trainings_done"] == r["n_trainings"] == 2 * 1 + 3 * 2 * 2
    assert sorted(r["runs_done"]) == ["autoencoder/seed_0", "autoencoder/seed_1", "autoencoder:beta=0/seed_0",
                                      "autoencoder:beta=0/seed_1", "random/seed_0", "random/seed_1"]
    for tag, rounds in r["selections"].items():
        s, seed = tag.split("/seed_")
        assert rounds == refit.checkpoint_selections(work / "curves" / s / f"seed_{seed}")
    assert sorted({x["n_labelled"] for x in r["records"]}) == [4, 7, 12]
    assert all(np.isfinite(x["hot/force_rmse_meV_A"]) for x in r["records"])
    pa = bench.parse_args(["--profile", "md-pool", *tiny.split()])
    pa.strategies = runs.split(",")
    queries = bench._production_setup(pa)[-1]
    assert queries["autoencoder:beta=0"].beta == 0 and queries["autoencoder"].beta == 1.0
    assert queries["autoencoder:beta=0"].batch_rule == queries["autoencoder"].batch_rule == "kmeans++"
    with pytest.raises(InputError, match=r"\['qbc'\] choose with trained potentials"):
        refit.main(argv[:-3] + ["--strategies", "random,qbc", "--no-progress"])
    with pytest.raises(InputError, match="choose a learning-curve profile"):
        refit.main(["--replay-profile", "quick"])


def test_strategy_variants_are_parsed_or_refused():
    from mdmlkit.errors import InputError

    bench = _load("bench_active")
    assert bench.split_strategy("fps") == ("fps", {})
    assert bench.split_strategy("autoencoder:beta=0:batch_rule=kmeans++:w_max=0.25") == (
        "autoencoder", {"beta": 0, "batch_rule": "kmeans++", "w_max": 0.25})
    for bad in ("autoencoder:beta", "autoencoder:=1", "autoencoder:beta=", "autoencoder:2x=1"):
        with pytest.raises(InputError, match="name:key=value"):
            bench.split_strategy(bad)


def test_refit_refuses_unknown_budgets_and_non_curve_results(tmp_path):
    from mdmlkit.errors import InputError

    refit = _load("bench_active_refit")
    with pytest.raises(InputError, match="cannot read a result JSON"):
        refit.main(["--source", str(tmp_path / "missing.json")])
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"settings": {"profile": "quick"}, "records": [{}]}))
    with pytest.raises(InputError, match="not a learning-curve result"):
        refit.main(["--source", str(bad)])
    src = json.loads((REPO / "benchmarks/results/active_md-pool.json").read_text())
    assert refit.budgets_of(src["settings"]) == [50, 100, 200, 400, 800]
    ok = tmp_path / "y.json"
    ok.write_text(json.dumps({"settings": src["settings"], "records": src["records"][:1]}))
    with pytest.raises(InputError, match=r"--budgets \[123\]"):
        refit.main(["--source", str(ok), "--budgets", "123"])
    with pytest.raises(InputError, match="--min-epochs 5: needs .* --steps, not --epochs"):
        refit.main(["--source", str(ok), "--epochs", "3", "--min-epochs", "5"])
