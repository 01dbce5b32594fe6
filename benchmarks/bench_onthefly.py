"""Benchmark: on-the-fly active learning from a cold potential to hot MD (issue 16, item 5).

``--profile production``: a La2Zr2O7 HDNNP (symmetry functions and 40-40
networks of ``models/la2zr2o7-fast``) is trained only on the structures of the
shipped training split with ``info["T"] <= 1000 K`` (validation: the same cut of
the val split).  Then :func:`mdmlkit.active.run_on_the_fly` runs Langevin MD
(1 fs, friction 0.01/fs) of the 88-atom conventional cell and of an 87-atom
O-vacancy conventional cell, each through the stages 2000, 2500 and 3000 K of
20 ps, with the compiled potential.  Frames are scored every ``check_every``
steps by the autoencoder query; flagged frames (>= ``min_flag_spacing`` steps
apart) are labelled by the CHGNet teacher (``Oracle`` with a disk label cache
under the work directory) in batches of ``label_batch``, then the potential is
fine-tuned by warm start for ``finetune_steps`` optimiser steps
(:func:`~mdmlkit.active.onthefly.finetune_schedule`), the new labels repeated to 20 % of
the fine-tune's training set (``new_label_share``: a first run without it rolled back
four times at 0.3 ps of the first stage, each one-frame fine-tune of 300 steps over
2 200 structures leaving the potential as it was).  Blow-up guards (atoms
closer than 1.2 Å, total-energy jumps, non-finite energies) roll the MD back and
label the offending frame.  Start cells: the relaxed teacher lattice expanded to
a(2000 K) as in ``data/la2zr2o7/generate_hot_test.py``; the vacancy is chosen with
``default_rng(seed)``.

``--profile quick``: the same protocol on 16-atom EMT Cu/Ni cells (perfect and
one vacancy), a potential trained on 300-1000 K Einstein-displaced cells, EMT as
the teacher, stages 1500/2000/2500 K; runs in a few minutes on 2 cores.

Reported (``benchmarks/results/onthefly_<profile>.json``, written atomically
after every cell): per cell and stage the MD steps, teacher calls and their
fraction, roll-backs, drift and largest energy jump, the final minimum
interatomic distance; the MD trace (uncertainty, threshold, flags, total energy;
thinned to <= 1500 checked frames, all flagged ones kept) and every teacher call
(step, reason, uncertainty, threshold); test-split and hot-test errors of the
potential before and after; timings.  Everything checkpoints under ``--workdir`` (the loop's
workdir); a rerun resumes (finished cells are taken from the result file).

Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_onthefly.py --profile quick
    python benchmarks/bench_onthefly.py --profile production     # hours; resumable
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

PROFILES = {
    "quick": dict(stages=(1500.0, 2000.0, 2500.0), n_steps=500, timestep_fs=2.0, check_every=10,
                  label_batch=4, min_flag_spacing=40, finetune_steps=60, batch=8,
                  initial_epochs=100, lr=5e-3, max_retries=4, checkpoint_every=200, flag_factor=0.6,
                  ae_steps=500),
    "production": dict(stages=(2000.0, 2500.0, 3000.0), n_steps=20000, timestep_fs=1.0,
                       check_every=20, label_batch=8, min_flag_spacing=200, finetune_steps=300,
                       batch=8, initial_epochs=60, lr=1e-3, max_retries=5, checkpoint_every=2000,
                       flag_factor=1.2, ae_steps=1500, new_label_share=0.2),
}

#: ExtrapolationQuery threshold (range widths): 5 % beyond the labelled range flags a frame; the
#: hot test frames lie a median 0.5-1.2 widths outside the <= 1000 K training range.
EXTRAPOLATION_THRESHOLD = 0.05


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def quick_setup(seed: int):
    """(initial set, val, test, hot test, cells, sfs, hidden, oracle) on EMT Cu/Ni."""
    from ase.calculators.emt import EMT

    from mdmlkit.active.synthetic import emt_frames
    from mdmlkit.descriptors import generate_set

    cold = (emt_frames(32, "thermal", (300, 1000), seed=seed + 1)
            + emt_frames(8, "strain", seed=seed + 2) + emt_frames(8, "vacancy", (300, 1000), seed=seed + 3))
    val = emt_frames(8, "thermal", (300, 1000), seed=seed + 4)
    test = emt_frames(16, "thermal", (300, 1000), seed=seed + 5)
    hot = emt_frames(24, "thermal", (1500, 2500), seed=seed + 6)
    perfect = emt_frames(1, "thermal", (10, 10), seed=seed + 7)[0]
    vacancy = emt_frames(1, "vacancy", (10, 10), seed=seed + 8)[0]
    cells = {}
    for name, a in (("perfect", perfect), ("vacancy", vacancy)):
        a = a.copy()
        a.calc = None
        cells[name] = a
    sfs = generate_set(["Cu", "Ni"], rc=4.5, n_radial=4, n_angular=1)
    return cold, val, test, hot, cells, sfs, (10, 10), EMT()


def production_setup(seed: int, workdir: Path):
    """(initial set, val, test, hot test, cells, sfs, hidden, oracle) for La2Zr2O7 + CHGNet."""
    from mdmlkit.active import Oracle
    from mdmlkit.descriptors import SymmetryFunctionSet
    from mdmlkit.systems import pyrochlore as pyro
    from mdmlkit.systems.la2zr2o7 import load_hot_test, load_la2zr2o7

    def cool(frames):
        return [a for a in frames if float(a.info.get("T", math.inf)) <= 1000.0]

    cold, val = cool(load_la2zr2o7("train")), cool(load_la2zr2o7("val"))
    test, hot = load_la2zr2o7("test"), load_hot_test()
    a0, x0, alpha = 10.895642340313849, 0.3328561222692458, 9.1e-6   # as generate_hot_test.py
    conv = pyro.conventional_cell(a0 * (1.0 + alpha * 2000.0), x0)
    cells = {"perfect": conv, "vacancy": pyro.oxygen_vacancies(conv, 1, rng=np.random.default_rng(seed))}
    sfs = SymmetryFunctionSet.from_input_nn(REPO / "models" / "la2zr2o7-fast" / "input.nn")
    oracle = Oracle(None, cache=workdir / "labels")
    return cold, val, test, hot, cells, sfs, (40, 40), oracle


def _errors(rec: dict) -> dict:
    keys = ("energy_rmse_meV_atom", "force_rmse_meV_A")
    return {"test": {k: rec.get(k) for k in keys}, "hot": {k: rec.get(f"hot/{k}") for k in keys}}


def _trace_record(trace: dict, max_points: int = 1500) -> dict:
    """The MD trace for the results file: every k-th checked frame (at most ``max_points``)
    plus every flagged one; ``step``, ``time_fs``, ``T_target`` (K), ``uncertainty``,
    ``threshold``, ``flagged`` (0/1), ``E_tot`` (eV)."""
    n = len(trace.get("step", []))
    if not n:
        return {}
    keep = np.zeros(n, dtype=bool)
    keep[:: max(1, math.ceil(n / max_points))] = True
    keep |= np.asarray(trace["flagged"], dtype=bool)
    keep[-1] = True

    def col(k):
        return [None if not math.isfinite(v) else round(float(v), 6) for v in np.asarray(trace[k])[keep]]

    return {k: col(k) for k in ("step", "time_fs", "T_target", "uncertainty", "threshold", "flagged",
                                "E_tot")}


def _label_record(selections: list[dict]) -> list[dict]:
    """Per teacher call of a cell: MD step, reason ("on-the-fly flag" or "on-the-fly guard"),
    the query's uncertainty and threshold at that frame (None for guards) and the round."""
    def num(v):
        return None if v is None or not math.isfinite(float(v)) else float(v)

    return [{"md_step": s.get("md_step"), "reason": s.get("reason"), "round": s.get("round"),
             "uncertainty": num(s.get("uncertainty")), "threshold": num(s.get("threshold"))}
            for s in selections]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    p.add_argument("--workdir", type=Path, default=None,
                   help="checkpoints (default benchmarks/.cache/onthefly_<profile>)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--n-steps", type=int, default=None, help="MD steps per stage (override)")
    p.add_argument("--query", choices=("autoencoder", "extrapolation"), default="autoencoder",
                   help="the flag: autoencoder reconstruction error (default) or n2p2's extrapolation "
                        "(symmetry functions outside the labelled range); results and work folder "
                        "get a _<query> suffix for extrapolation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)

    import torch

    from mdmlkit.active import ActiveLearningLoop, AutoencoderQuery, ExtrapolationQuery
    from mdmlkit.active.onthefly import finetune_schedule, min_interatomic_distance
    from mdmlkit.potential import HDNNP
    from mdmlkit.utils import atomic_write_json, machine_info

    cfg = dict(PROFILES[args.profile])
    if args.n_steps:
        cfg["n_steps"] = args.n_steps
    if args.query == "extrapolation":
        cfg["extrapolation_threshold"] = EXTRAPOLATION_THRESHOLD
    tag = args.profile if args.query == "autoencoder" else f"{args.profile}_{args.query}"
    workdir = args.workdir or REPO / "benchmarks" / ".cache" / f"onthefly_{tag}"
    out_path = args.out or RESULTS / f"onthefly_{tag}.json"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.profile == "quick":
        cold, val, test, hot, cells, sfs, hidden, oracle = quick_setup(args.seed)
        dtype = torch.float64
    else:
        cold, val, test, hot, cells, sfs, hidden, oracle = production_setup(args.seed, workdir)
        dtype = torch.float32
    log(f"{args.profile}: {len(cold)} cold training structures, {len(test)} test, {len(hot)} hot test")

    initial_kw = {"max_epochs": cfg["initial_epochs"], "batch_size": cfg["batch"], "lr": cfg["lr"],
                  "patience": None, "lr_schedule": "exponential"}
    tk = finetune_schedule(len(cold), initial_kw, steps=cfg["finetune_steps"], batch_size=cfg["batch"],
                           lr=cfg["lr"], lr_schedule="exponential")
    if args.query == "autoencoder":
        query = AutoencoderQuery(flag_factor=cfg["flag_factor"], steps=cfg["ae_steps"], seed=args.seed)
    else:
        query = ExtrapolationQuery(threshold=cfg["extrapolation_threshold"], seed=args.seed)
    loop = ActiveLearningLoop(query, cold[:4], HDNNP(sfs, hidden=hidden,
                              seed=args.seed, dtype=dtype), oracle=oracle, initial=cold, k=1,
                              n_rounds=0, test=test, val=val, extra_tests={"hot": hot},
                              trainer_kwargs=tk, warm_start=True, workdir=workdir / "loop",
                              seed=args.seed, progress=args.progress,
                              new_label_share=cfg.get("new_label_share", 0.0))
    loop.run(n_rounds=0)
    before = _errors(loop.history_[0])
    log(f"cold potential: {before}")

    out = {"profile": args.profile, "query": args.query, "settings": cfg, "complete": False, "machine_start": machine_info(),
           "n_initial": len(cold), "errors_before": before, "cells": {}}
    if out_path.is_file():
        old = json.loads(out_path.read_text())
        if old.get("settings") == json.loads(json.dumps(cfg)):
            out["cells"] = old.get("cells", {})
    otf_selections = [s for s in loop.selections_ if s.get("reason", "").startswith("on-the-fly")]
    first = 0
    for name, start in cells.items():
        if name in out["cells"]:
            log(f"{name}: done earlier, skipped")
            n = out["cells"][name]["oracle_calls_this_cell"]
            out["cells"][name].setdefault("labels", _label_record(otf_selections[first:first + n]))
            first += n
            continue
        t1 = time.perf_counter()
        n_calls0 = loop.n_oracle_calls_
        res = loop.run_on_the_fly(start, n_steps=cfg["n_steps"], temperature_K=list(cfg["stages"]),
                                  timestep_fs=cfg["timestep_fs"], check_every=cfg["check_every"],
                                  label_batch=cfg["label_batch"], min_flag_spacing=cfg["min_flag_spacing"],
                                  max_retries=cfg["max_retries"], checkpoint_every=cfg["checkpoint_every"],
                                  seed=args.seed, progress=args.progress)
        steps = sum(s["n_steps"] for s in res.stages)
        calls = sum(s["n_teacher_calls"] for s in res.stages)
        label_times = [s.get("label_time_s", 0.0) for s in loop.selections_
                       if s.get("reason", "").startswith("on-the-fly")]
        retrain = {e["round"]: e["retrain_time_s"] for e in res.events if "retrain_time_s" in e}
        out["cells"][name] = {
            "n_atoms": len(start), "status": res.status, "calculator": res.calculator,
            "md_steps": steps, "teacher_calls": calls,
            "teacher_fraction": calls / steps if steps else None, "n_rollbacks": res.n_rollbacks,
            "final_min_distance_A": min_interatomic_distance(res.atoms, 3.0),
            "stages": res.stages, "errors_after": _errors(loop.history_[-1]),
            "n_labelled_total": len(loop.labelled_), "oracle_calls_this_cell": loop.n_oracle_calls_ - n_calls0,
            "time_s": time.perf_counter() - t1, "otf_call_time_s": res.time_s,
            "mean_label_time_s": float(np.mean(label_times)) if label_times else None,
            "n_retrainings": len(retrain), "retrain_time_s_total": float(sum(retrain.values())),
            "failure": next((e for e in res.events if e.get("status") == "md_failed"), None),
            "trace": _trace_record(res.trace)}
        otf_selections = [s for s in loop.selections_ if s.get("reason", "").startswith("on-the-fly")]
        out["cells"][name]["labels"] = _label_record(otf_selections[first:])
        first = len(otf_selections)
        log(f"{name}: {res}; teacher fraction {calls}/{steps}; stages {res.stages}")
        out["errors_after"] = _errors(loop.history_[-1])
        out["time_s"] = time.perf_counter() - t0
        atomic_write_json(out_path, out)
    out["errors_after"] = _errors(loop.history_[-1])
    out["complete"] = True
    out["machine_end"] = machine_info()
    out["time_s"] = time.perf_counter() - t0
    atomic_write_json(out_path, out)
    log(f"wrote {out_path}: before {before}, after {out['errors_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
