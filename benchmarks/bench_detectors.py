"""Benchmark: which uncertainty flags the structures a cool La2Zr2O7 potential gets wrong? (issue 16)

The setting of the on-the-fly benchmark (``bench_onthefly.py --profile production``):
a potential and the detectors are fitted on the 2 200 structures of the shipped
training split with ``info["T"] <= 1000 K``.  Three detectors are fitted on the same
structures: the autoencoder query (its on-the-fly settings: 1500 steps, threshold 1.2 ×
the training maximum), farthest-point distance (threshold 1.2 × the largest
nearest-neighbour distance) and n2p2's extrapolation criterion (symmetry functions
outside the training range; threshold 0.05 range widths).  Each scores, without
labels, the fixed test split (530 structures, 0-2000 K) and the teacher-MD hot test
set (120 frames at 2000, 2500, 3000 K); then the labels give the cool potential's
per-structure force error.

Reported per detector (``benchmarks/results/detectors.json``): fraction flagged and
median score of the test split and of each hot temperature, ROC AUC of the score
separating hot-test frames from test-split frames, and the Spearman rank correlation
of score and the potential's force error over both sets.

The cool potential is ``--model`` (an HDNNP ``.pt``) or, by default, trained here
with the on-the-fly benchmark's round-0 recipe (the functions and 40-40 networks of
``models/la2zr2o7-fast``, 60 epochs of 8 structures, lr 1e-3 decaying exponentially,
seed 0, float32; validation: the ≤ 1000 K structures of the val split), checkpointed
under ``benchmarks/.cache/detectors/`` and reused by later runs.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_detectors.py [--model PATH]   # ~40 min the first time
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORKDIR = REPO / "benchmarks" / ".cache" / "detectors"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_onthefly import EXTRAPOLATION_THRESHOLD, PROFILES  # noqa: E402  (the same settings)

OTF = PROFILES["production"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=None,
                   help="the cool potential (HDNNP .pt); default: trained here (see above)")
    p.add_argument("--out", type=Path, default=RESULTS / "detectors.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    import torch

    from mdmlkit.active import AutoencoderQuery, ExtrapolationQuery, FarthestPointQuery, ood_detection
    from mdmlkit.descriptors import SymmetryFunctionSet
    from mdmlkit.potential import HDNNP, Trainer
    from mdmlkit.systems.la2zr2o7 import load_hot_test, load_la2zr2o7
    from mdmlkit.utils import atomic_write_json, machine_info

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    def cool(frames):
        return [a for a in frames if float(a.info.get("T", math.inf)) <= 1000.0]

    cold, val = cool(load_la2zr2o7("train")), cool(load_la2zr2o7("val"))
    test, hot = load_la2zr2o7("test"), load_hot_test()
    sfs = SymmetryFunctionSet.from_input_nn(REPO / "models" / "la2zr2o7-fast" / "input.nn")
    if args.model is not None:
        model = HDNNP.load(args.model)
    elif (WORKDIR / "cold_model.pt").is_file():
        model = HDNNP.load(WORKDIR / "cold_model.pt")
    else:                                   # the on-the-fly benchmark's round-0 recipe, resumable
        model = HDNNP(sfs, hidden=(40, 40), seed=args.seed, dtype=torch.float32)
        Trainer(model, seed=args.seed, max_epochs=OTF["initial_epochs"], batch_size=OTF["batch"],
                lr=OTF["lr"], patience=None,
                lr_schedule="exponential", checkpoint_dir=WORKDIR / "train",
                progress=args.progress).fit(cold, val, resume=True)
        model.save(WORKDIR / "cold_model.pt")
    T_hot = np.array([float(a.info["T"]) for a in hot])
    detectors = {"autoencoder": AutoencoderQuery(sfs, flag_factor=OTF["flag_factor"], steps=OTF["ae_steps"],
                                                 seed=args.seed),
                 "fps": FarthestPointQuery(sfs),
                 "extrapolation": ExtrapolationQuery(sfs, threshold=EXTRAPOLATION_THRESHOLD)}
    out = {"benchmark": "uncertainty detectors on the hot test set (issue 16)", "machine": machine_info(),
           "n_train": len(cold), "n_test": len(test), "n_hot": len(hot), "model": str(args.model or WORKDIR / "cold_model.pt"),
           "detectors": {}}
    for name, q in detectors.items():
        t1 = time.perf_counter()
        q.fit(cold)
        r = ood_detection(q, model, test, hot)
        u_test, u_hot, thr = r["uncertainty_id"], r["uncertainty_ood"], r["threshold"]
        row = {"threshold": thr, "fit_and_score_s": time.perf_counter() - t1,
               "auc_hot_vs_test": r["auc"], "spearman_score_force_error": r["spearman"],
               "test": {"flagged": r["flagged_id"], "median": float(np.median(u_test))}}
        for T in np.unique(T_hot):
            m = T_hot == T
            row[f"hot_{T:.0f}K"] = {"flagged": float(np.mean(u_hot[m] > thr)),
                                     "median": float(np.median(u_hot[m]))}
        out["force_rmse_test_meV_A"] = r["force_rmse_id_mean"]
        out["force_rmse_hot_meV_A"] = r["force_rmse_ood_mean"]
        out["detectors"][name] = row
        print(f"{name}: {row}", flush=True)
    out["time_s"] = time.perf_counter() - t0
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
