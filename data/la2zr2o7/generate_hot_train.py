"""Label hot structures for training: 2000–3000 K frames of the MD pool, labelled by the teacher.

The shipped data set stops at 2000 K and the shipped potential degrades on hotter
structures.  This script turns the unlabelled MD pool (``data/la2zr2o7_pool``, frames of
HDNNP Langevin MD, see its README) into labelled training data where MD goes hot: the
active-learning route of issue 16 with a simple, reproducible query.

Protocol:

1. candidates: every pool frame with thermostat temperature ``T`` in ``--temperatures``
   (default 2000, 2500, 3000 K): 14 (kind, cell) runs x 3 temperatures = 42 groups
   (perfect, O vacancy, anion Frenkel, antisite, ±1 % strain and 3 % shear; 22- and
   88-atom cells);
2. selection: ``--per-group`` frames from every group (seeded random order,
   ``numpy.random.default_rng(--seed)``), so every kind, cell and temperature is
   represented equally;
3. labels: the teacher (CHGNet by default; ``--teacher package.module:factory`` for any
   ASE calculator) through :class:`mdmlkit.active.Oracle` with a disk label cache
   (``--cache``), so a rerun or a killed run never pays twice; structures the oracle
   refuses or fails on are recorded in the manifest and left out, and so are labelled
   frames with an atomic force above ``--max-force`` (|F_i| > 25 eV/Å, the rule of
   ``data/la2zr2o7``: a few 3000 K pool frames where the HDNNP's MD had collapsed two
   atoms to < 1 Å carry forces of 30–200 eV/Å);
4. split: within each group, a seeded ``--val-fraction`` of the frames goes to
   ``hot_val.extxyz.gz``, the rest to ``hot_train.extxyz.gz``.  The hot *test* set
   (``hot_test.extxyz.gz``, teacher MD from other start structures) is never touched.

Each frame keeps its pool provenance in ``atoms.info`` (``pool_index``, ``run``, ``step``,
``kind``, ``cell``, ``T``) plus ``source = "pool"`` and ``split``; ``hot_train.json``
records the settings, counts, the teacher and the failures.

    OMP_NUM_THREADS=1 python data/la2zr2o7/generate_hot_train.py
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GENERATOR = "mdmlkit-la2zr2o7-hot-train/1"


def select(pool, temperatures, per_group: int, seed: int) -> list[int]:
    """Pool indices: ``per_group`` random frames of every (kind, cell, T) group."""
    info = pool.info
    T = np.asarray(info["T"], dtype=float)
    keys = np.array([f"{k}/{c}/{t:.0f}" for k, c, t in zip(info["kind"], info["cell"], T)])
    rng = np.random.default_rng(seed)
    chosen = []
    for key in sorted(set(keys[np.isin(T, temperatures)])):
        idx = np.flatnonzero(keys == key)
        chosen += sorted(rng.permutation(idx)[:per_group].tolist())
    return chosen


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT))
    from mdmlkit.active import LabelCache, Oracle
    from mdmlkit.io import write_frames
    from mdmlkit.systems.la2zr2o7 import load_pool
    from mdmlkit.utils import atomic_write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--temperatures", type=float, nargs="+", default=[2000.0, 2500.0, 3000.0])
    p.add_argument("--per-group", type=int, default=14, help="frames per (kind, cell, T) group")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=2027)
    p.add_argument("--teacher", default="chgnet")
    p.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "labels-la2zr2o7",
                   help="label cache (structure hash -> label)")
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--workers", type=int, default=1, help="oracle worker processes")
    p.add_argument("--max-force", type=float, default=25.0,
                   help="eV/Å; frames with a larger atomic force |F_i| are dropped")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    pool = load_pool()
    idx = select(pool, args.temperatures, args.per_group, args.seed)
    print(f"{len(idx)} frames from {len(pool)} pool frames", flush=True)
    frames = [pool[i] for i in idx]
    for i, a in zip(idx, frames):
        a.info["pool_index"] = int(i)
        a.info["source"] = "pool"
    oracle = Oracle(args.teacher, cache=LabelCache(args.cache), n_workers=args.workers, timeout_s=900)
    res = oracle.label(frames, progress=True)
    labelled, dropped = [], {}
    for k in sorted(res.labelled):
        a = res.labelled[k]
        f_max = float(np.linalg.norm(a.get_forces(), axis=1).max())
        if f_max > args.max_force:
            dropped[str(idx[k])] = f"|F_i| = {f_max:.1f} eV/Å > {args.max_force:g}"
        else:
            labelled.append(a)
    failures = {str(idx[k]): why for k, why in sorted(res.failures.items())}
    rng = np.random.default_rng(args.seed + 1)
    groups: dict[str, list] = {}
    for a in labelled:
        groups.setdefault(f"{a.info['kind']}/{a.info['cell']}/{float(a.info['T']):.0f}", []).append(a)
    train, val = [], []
    for key in sorted(groups):
        g = groups[key]
        n_val = int(round(args.val_fraction * len(g)))
        is_val = np.zeros(len(g), bool)
        is_val[rng.permutation(len(g))[:n_val]] = True
        for a, v in zip(g, is_val):
            a.info["split"] = "hot_val" if v else "hot_train"
            (val if v else train).append(a)
    out = {}
    for name, part in (("hot_train", train), ("hot_val", val)):
        f = args.out / f"{name}.extxyz.gz"
        write_frames(part, f)
        out[name] = {"file": f.name, "n_structures": len(part),
                     "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    manifest = {"generator": GENERATOR, "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                     for k, v in vars(args).items()},
                "pool": "data/la2zr2o7_pool", "n_selected": len(idx), "n_labelled": len(res.labelled),
                "n_kept": len(labelled),
                "failures": failures, "dropped": dropped, "files": out, "teacher": str(oracle.oracle_id),
                "teacher_time_s": res.time_s, "n_cache_hits": len(res.cached),
                "wall_s": time.perf_counter() - t0}
    atomic_write_json(args.out / "hot_train.json", manifest)
    print(f"hot_train {len(train)}, hot_val {len(val)}, failures {len(failures)}, dropped {len(dropped)}; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
