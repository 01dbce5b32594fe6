"""Benchmark: active-learning queries for an HDNNP of La2Zr2O7 (pool-based, replay oracle).

Two experiments on the CHGNet-labelled La2Zr2O7 data set (``data/la2zr2o7``):

1. **Learning curves.**  The pool is a seeded random subset of the training
   split (labels revealed only when a structure is chosen), the test set a
   seeded subset of the fixed test split.  Every strategy — autoencoder (AE),
   query by committee (QBC, DP-GEN model deviation), farthest-point sampling
   (FPS) and random — starts from the same ``n_initial`` random structures and
   the same weights for a given seed, then runs ``rounds`` rounds of ``k``
   structures.  Each round trains the potential for the same number of optimiser
   steps (``--steps`` batches of 4 structures), continuing from the previous
   round's weights (``--cold-start``: from the same initial weights each round).
   Reported:
   energy (meV/atom) and force (meV/Å) test RMSE vs labelled structures (mean ±
   std over seeds), the labels each strategy needs to reach random's final
   accuracy, and the wall time of each query (fit + select).
2. **Out-of-distribution detection.**  Potential, AE, FPS (and QBC) are fitted
   on "cool" structures only (eos/strain/thermal/md with T <= ``--cool-max-T``,
   no defects); on held-out test structures we compare their uncertainty with
   the potential's force error for cool (ID), hot (thermal/md with T >=
   ``--hot-min-T``) and defect (vacancy, frenkel) cells: ROC AUC, flagged
   fractions and force RMSE per group.

``--dataset synthetic`` runs the same on small EMT-labelled Cu/Ni cells (no
La2Zr2O7 data needed; for smoke tests).  Runs checkpoint under ``--workdir``
and resume.  ``mdmlkit.utils.machine_info`` (CPU, load average) is recorded at
the start and the end.

Usage::

    python benchmarks/bench_active.py --quick     # tiny settings (smoke test)
    python benchmarks/bench_active.py             # moderate size -> benchmarks/results/active.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULT = REPO / "benchmarks" / "results" / "active.json"

#: ``steps``: optimiser steps (batches of ``BATCH`` structures) per training, whatever the
#: training-set size, so every round costs the same and small sets are not under-trained
PRESETS = {
    "quick": dict(seeds=[0, 1], rounds=2, k=5, n_initial=5, pool_size=200, test_size=60,
                  steps=50, hidden=[8], n_radial=4, committee=2, ae_steps=300,
                  ood_train=30, ood_test=30),
    "moderate": dict(seeds=[0, 1, 2], rounds=5, k=15, n_initial=20, pool_size=1000, test_size=200,
                     steps=300, hidden=[10, 10], n_radial=5, committee=3, ae_steps=1500,
                     ood_train=100, ood_test=80),
}
BATCH = 4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    p.add_argument("--dataset", choices=["la2zr2o7", "synthetic"], default="la2zr2o7")
    p.add_argument("--strategies", default="random,autoencoder,fps,qbc")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=None)
    for name in ("rounds", "k", "n_initial", "pool_size", "test_size", "steps", "committee",
                 "ae_steps", "n_radial", "ood_train", "ood_test"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    p.add_argument("--hidden", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--rc", type=float, default=6.0, help="symmetry-function cutoff, Å")
    p.add_argument("--cool-max-T", type=float, default=1000.0, help="K")
    p.add_argument("--hot-min-T", type=float, default=1700.0, help="K")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--cold-start", action="store_true",
                   help="retrain from scratch every round (default: continue from the previous "
                        "round's weights, committee members too)")
    p.add_argument("--float64", action="store_true", help="train in float64 (default float32)")
    p.add_argument("--no-ood", action="store_true", help="skip the OOD experiment")
    p.add_argument("--out", type=Path, default=None,
                   help=f"result JSON (default {RESULT.relative_to(REPO)}; quick runs: active_quick.json)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="checkpoints (default benchmarks/.cache/active-<hash of settings>)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "moderate"]
    for key, val in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, val)
    return args


def load_data(args):
    """(pool, test) labelled frames and the element list."""
    from mdmlkit.active import random_subset

    rng = np.random.default_rng(12345)
    if args.dataset == "synthetic":
        from mdmlkit.active.synthetic import emt_frames

        def mix(n, seed):
            n_th, n_hot, n_st = n // 2, n // 8, n // 4
            hot = emt_frames(n_hot, "thermal", (1700, 2000), seed=seed + 1)
            for a in hot:
                a.info["kind"] = "hot"
            return (emt_frames(n_th, "thermal", (300, 1000), seed=seed) + hot
                    + emt_frames(n_st, "strain", seed=seed + 2)
                    + emt_frames(n - n_th - n_hot - n_st, "vacancy", seed=seed + 3))

        pool, test = mix(args.pool_size, 100), mix(args.test_size, 200)
        return pool, test, ["Cu", "Ni"]
    from mdmlkit.systems.la2zr2o7 import load_la2zr2o7

    train, test = load_la2zr2o7("train"), load_la2zr2o7("test")
    pool = random_subset(train, args.pool_size, rng)
    test = random_subset(test, args.test_size, rng)
    return pool, test, ["La", "Zr", "O"]


def trainer_settings(steps: int):
    """``n_labelled -> Trainer kwargs`` with about ``steps`` optimiser steps per training."""
    base = {"batch_size": BATCH, "patience": None, "lr": 3e-3, "force_weight": 0.1}

    def kwargs(n: int) -> dict:
        return {**base, "max_epochs": int(np.clip(np.ceil(steps * BATCH / max(n, 1)), 5, 400))}

    kwargs.__name__ = f"fixed_steps_{steps}_batch_{BATCH}"
    return kwargs


def ood_experiment(args, sfs, model_factory, trainer_kwargs, progress):
    """Fit on cool structures; compare detectors' uncertainty with the potential's error."""
    from mdmlkit.active import make_query, ood_detection, ood_split
    from mdmlkit.potential.training.trainer import Trainer

    rng = np.random.default_rng(777)
    if args.dataset == "synthetic":
        from mdmlkit.active.synthetic import emt_frames

        train = emt_frames(args.ood_train, "thermal", (300, 900), seed=301)
        groups = {"cool": emt_frames(args.ood_test, "thermal", (300, 900), seed=302),
                  "hot": emt_frames(args.ood_test, "thermal", (1700, 2000), seed=303),
                  "defect": emt_frames(args.ood_test, "vacancy", (300, 900), seed=304)}
    else:
        from mdmlkit.systems.la2zr2o7 import load_la2zr2o7

        train, groups = ood_split(load_la2zr2o7("train"), load_la2zr2o7("test"), args.ood_train,
                                  args.ood_test, rng, cool_max_T=args.cool_max_T,
                                  hot_min_T=args.hot_min_T, defect_kinds=("vacancy", "frenkel"))
    t0 = time.perf_counter()
    model = model_factory(0)
    Trainer(model, seed=0, progress=progress, **trainer_kwargs(len(train))).fit(train)
    t_train = time.perf_counter() - t0
    detectors = {"autoencoder": make_query("autoencoder", sfs=sfs, steps=args.ae_steps, seed=0),
                 "fps": make_query("fps", sfs=sfs)}
    if args.committee >= 2 and "qbc" in args.strategies and not args.quick:
        detectors["qbc"] = make_query("qbc", model=model_factory(0), n_models=args.committee,
                                      trainer_kwargs=trainer_kwargs)
    out = {"n_train": len(train), "n_per_group": {g: len(v) for g, v in groups.items()},
           "train_time_s": t_train, "detectors": {}}
    for name, det in detectors.items():
        t1 = time.perf_counter()
        det.fit(train)
        fit_s = time.perf_counter() - t1
        res = {"fit_time_s": fit_s, "threshold": float(det.threshold_)}
        for g in ("hot", "defect"):
            if not groups[g]:
                continue
            r = ood_detection(det, model, groups["cool"], groups[g])
            res[g] = {key: r[key] for key in ("auc", "flagged_id", "flagged_ood",
                                              "force_rmse_id_mean", "force_rmse_ood_mean",
                                              "spearman")}
            res[g]["uncertainty_id_median"] = float(np.median(r["uncertainty_id"]))
            res[g]["uncertainty_ood_median"] = float(np.median(r["uncertainty_ood"]))
        out["detectors"][name] = res
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    import torch

    torch.set_num_threads(args.threads)
    from mdmlkit.active import QUERIES, labels_to_reach, make_query, run_learning_curves
    from mdmlkit.descriptors import generate_set
    from mdmlkit.nbtools import format_table
    from mdmlkit.potential import HDNNP
    from mdmlkit.utils import atomic_write_json, machine_info

    progress = not args.no_progress
    t_start = time.perf_counter()
    machine_start = machine_info()
    pool, test, elements = load_data(args)
    sfs = generate_set(elements, rc=args.rc, n_radial=args.n_radial, n_angular=1)

    dtype = torch.float64 if args.float64 else torch.float32

    def model_factory(seed):
        return HDNNP(sfs, hidden=tuple(args.hidden), seed=seed, dtype=dtype)

    trainer_kwargs = trainer_settings(args.steps)
    query_params = {"autoencoder": dict(sfs=sfs, steps=args.ae_steps), "fps": dict(sfs=sfs),
                    "qbc": dict(n_models=args.committee, warm_start=not args.cold_start)}
    unknown = set(args.strategies) - set(QUERIES)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)}; choose from {sorted(QUERIES)}")
    strategies = {s: make_query(s, **query_params.get(s, {})) for s in args.strategies}
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "workdir", "no_progress")}
    settings = json.loads(json.dumps(settings, default=str))
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    workdir = args.workdir or REPO / "benchmarks" / ".cache" / f"active-{key}"
    print(f"pool {len(pool)}, test {len(test)}, sfs {sfs.n_features}, strategies {args.strategies}, "
          f"seeds {args.seeds}; checkpoints in {workdir}", flush=True)

    res = run_learning_curves(strategies, pool, test, seeds=args.seeds, rounds=args.rounds, k=args.k,
                              n_initial=args.n_initial, model=model_factory,
                              trainer_kwargs=trainer_kwargs, warm_start=not args.cold_start,
                              workdir=workdir / "curves", progress=progress)
    t_curves = time.perf_counter() - t_start
    summary = {"force": res.summary("force_rmse_meV_A"), "energy": res.summary("energy_rmse_meV_atom")}
    reach = {m: labels_to_reach(res, metric=m) if "random" in res.strategies else {}
             for m in ("force_rmse_meV_A", "energy_rmse_meV_atom")}
    curves = {s: {m: {k2: v.tolist() for k2, v in res.curve(s, m).items() if k2 != "values"}
                  for m in ("force_rmse_meV_A", "energy_rmse_meV_atom")} for s in res.strategies}
    ood = None
    if not args.no_ood:
        ood = ood_experiment(args, sfs, model_factory, trainer_kwargs, progress)
    out = {"benchmark": "active learning (pool-based, replay oracle)",
           "dataset": args.dataset, "settings": settings, "sfs_n_features": sfs.n_features,
           "machine_start": machine_start, "machine_end": machine_info(),
           "wall_s": {"learning_curves": t_curves, "total": time.perf_counter() - t_start},
           "curves": curves, "final": summary, "labels_to_reach_random_final": reach,
           "query_time_s": {s: res.query_time(s) for s in res.strategies},
           "ood_detection": ood, "learning_curve_records": res.records}
    path = args.out or (RESULT if not args.quick else RESULT.with_name("active_quick.json"))
    atomic_write_json(path, out)

    rows = []
    for s in res.strategies:
        f, e = summary["force"][s], summary["energy"][s]
        r = reach["force_rmse_meV_A"].get(s, {})
        rows.append({"strategy": s, "n": f["n_labelled"], "F": f["mean"], "F_std": f["std"],
                     "E": e["mean"], "E_std": e["std"], "query_s": f["query_time_s"],
                     "reach": r.get("n_labelled"), "fraction": r.get("fraction")})
    print("\n" + format_table(rows, floatfmt=".3g", headers={
        "n": "labelled", "F": "F RMSE (meV/Å)", "F_std": "± (seeds)", "E": "E RMSE (meV/atom)",
        "E_std": "± (seeds)", "query_s": "query (s)", "reach": "labels for random's final F",
        "fraction": "fraction"}))
    if ood:
        print(f"\nOOD (trained on {ood['n_train']} cool structures)")
        print(format_table([{"detector": name, "group": g, **{k: r[g][k] for k in (
            "auc", "flagged_id", "flagged_ood", "force_rmse_id_mean", "force_rmse_ood_mean")}}
            for name, r in ood["detectors"].items() for g in ("hot", "defect") if g in r],
            floatfmt=".3g", headers={"auc": "ROC AUC", "flagged_id": "flagged ID",
                                     "flagged_ood": "flagged OOD",
                                     "force_rmse_id_mean": "F RMSE ID (meV/Å)",
                                     "force_rmse_ood_mean": "F RMSE OOD (meV/Å)"}))
    print(f"\nwrote {path} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
