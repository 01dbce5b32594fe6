"""Where the hot energy error of a La2Zr2O7 HDNNP comes from: bias per trajectory or scatter within it.

The hot test set and the hot training frames (``data/la2zr2o7/hot_test``, ``hot_md_train``) are
teacher-MD trajectories of 10 frames each (perfect 88-atom cells, O-vacancy, anion-Frenkel and
antisite 22-atom cells at 2000, 2500 and 3000 K). For each model and set this script splits the
per-frame energy errors (meV/atom) into the RMS of the trajectory means (a bias the model carries
through a whole trajectory: a defect's energy, a missing long-range term) and the RMS within
trajectories (frame-to-frame scatter: the local fit of hot configurations), and lists the mean
error of every trajectory.

Usage::

    python benchmarks/la2zr2o7_hot_errors.py                                  # models/la2zr2o7
    python benchmarks/la2zr2o7_hot_errors.py --model stage6=/tmp/stage6/model.pt --model new=models/la2zr2o7

Units: energy errors in meV/atom. Results: ``benchmarks/results/la2zr2o7_hot_errors.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def decompose(frames, errors_meV_atom) -> dict:
    """Per-frame energy errors (meV/atom, model − label; one per frame, in order) split into
    trajectory means and within-trajectory scatter (frames grouped by ``info["md_traj"]``)."""
    errors: dict[str, list[float]] = {}
    labels: dict[str, str] = {}
    for atoms, err in zip(frames, errors_meV_atom, strict=True):
        traj = str(atoms.info["md_traj"])
        errors.setdefault(traj, []).append(float(err))
        labels[traj] = f"{atoms.info['defect']} {atoms.info['cell']} {float(atoms.info['T']):.0f} K"
    means = np.array([np.mean(v) for v in errors.values()])
    within = np.concatenate([np.asarray(v) - np.mean(v) for v in errors.values()])
    every = np.concatenate([np.asarray(v) for v in errors.values()])
    return {"n_frames": int(every.size), "n_trajectories": len(errors),
            "energy_rmse_meV_atom": float(np.sqrt(np.mean(every ** 2))),
            "rms_trajectory_mean_meV_atom": float(np.sqrt(np.mean(means ** 2))),
            "rms_within_trajectory_meV_atom": float(np.sqrt(np.mean(within ** 2))),
            "trajectories": {t: {"what": labels[t], "mean_error_meV_atom": float(np.mean(v)),
                                 "std_meV_atom": float(np.std(v))} for t, v in sorted(errors.items())}}


def main(argv: list[str] | None = None) -> dict:
    from mdmlkit.potential import HDNNP, evaluate
    from mdmlkit.systems.la2zr2o7 import load_hot_test, load_la2zr2o7
    from mdmlkit.utils import atomic_write_json, machine_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=None, metavar="NAME=PATH",
                   help="model.pt or a folder with one (repeatable; default la2zr2o7=models/la2zr2o7)")
    p.add_argument("--sets", nargs="+", default=["hot_test", "hot_md_train"],
                   help="hot_test or any split of load_la2zr2o7 (frames need info md_traj, defect, cell, T)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "la2zr2o7_hot_errors.json")
    args = p.parse_args(argv)
    models = dict(m.split("=", 1) for m in (args.model or ["la2zr2o7=models/la2zr2o7"]))
    t0 = time.perf_counter()
    sets = {s: load_hot_test() if s == "hot_test" else load_la2zr2o7(s) for s in args.sets}
    result = {"description": __doc__.splitlines()[0], "models": {}, "machine": machine_info(("numpy", "torch", "ase"))}
    for name, path in models.items():
        model = HDNNP.load(Path(path) / "model.pt" if Path(path).is_dir() else path)
        result["models"][name] = {"path": path}
        for s, fr in sets.items():
            ev = evaluate(model, fr, source=f"{s} split")
            de = 1000.0 * (ev["energy_pred_per_atom"] - ev["energy_ref_per_atom"])
            result["models"][name][s] = decompose(fr, de)
        for s in sets:
            r = result["models"][name][s]
            print(f"{name:12s} {s:13s} RMSE {r['energy_rmse_meV_atom']:5.2f}  trajectory means "
                  f"{r['rms_trajectory_mean_meV_atom']:5.2f}  within {r['rms_within_trajectory_meV_atom']:5.2f} meV/atom")
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(args.out, result)
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
