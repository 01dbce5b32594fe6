"""Benchmark: inherent-structure maps versus instantaneous-frame maps of Cu_n heating runs.

For each size and seed: heat the relaxed Cu_n (:func:`mdmlkit.systems.cu_clusters.make_cluster`)
300 -> 1200 K at 5 K/ps with asap3 EMT (2 fs Langevin steps, friction 0.005/fs, one frame
every 36 steps: 2501 frames), quench every frame (or every ``stride``-th for Cu147;
:func:`mdmlkit.landscape.minima.quench`, fmax 1e-3 eV/Å), then fit

* the inherent-structure map (:class:`mdmlkit.landscape.inherent.InherentStructureMap`:
  Coulomb-matrix eigenvalues of the *quenched* structures -> t-SNE -> DBSCAN), and
* the instantaneous map (the same :class:`~mdmlkit.landscape.LandscapeMap` on the hot frames),

and score both against the morphology classes of the minima
(:func:`~mdmlkit.landscape.minima.classify_minimum`): adjusted Rand index and the number
of morphology families "separated as basins" (families with >= 2 % of the frames of which
>= 80 % lie in basins that are >= 80 % that family; see
:func:`mdmlkit.landscape.inherent.separated_families`).  It also records the disconnectivity
summary (gap between the lowest two minima, minima visited below 600 K) and the cost of
the quench per frame (wall and CPU seconds, one process).

Everything is cached under ``benchmarks/.cache/inherent/`` (gitignored): the trajectory
(resumable extxyz), the quench in chunks of ``CHUNK`` frames (each pickled atomically),
the analysis of each run.  ``benchmarks/results/inherent.json`` is rewritten atomically
after each run.  Single core: run with ``OMP_NUM_THREADS=1``.

Usage::

    python benchmarks/bench_inherent.py --smoke                 # Cu13, short ramp
    python benchmarks/bench_inherent.py --size 55 --seeds 0 1 2 3
    python benchmarks/bench_inherent.py --size 147 --seeds 0 1 --stride 2
    python benchmarks/bench_inherent.py --stage generate ...   # MD + quench only
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mdmlkit.utils import atomic_path, atomic_write_json, machine_info  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "inherent"
RESULTS = REPO / "benchmarks" / "results" / "inherent.json"
CHUNK = 100
#: MD protocol (K, K/ps, fs, 1/fs).
MD = {"t_start": 300.0, "t_end": 1200.0, "rate_K_per_ps": 5.0, "timestep_fs": 2.0,
      "sample_every": 36, "friction": 0.005, "thermostat": "langevin", "calculator": "asap3"}
SMOKE_MD = dict(MD, t_end=1200.0, rate_K_per_ps=300.0, sample_every=20)
QUENCH = {"fmax": 1e-3, "max_steps": 3000, "method": "fire+lbfgs"}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def generate(size: int, seed: int, md: dict, stride: int, tag: str) -> tuple[list, object, dict]:
    """Heat and quench one run (cached, resumable); returns (frames, QuenchResult, cost)."""
    from mdmlkit.landscape.minima import QuenchResult, quench
    from mdmlkit.md import heat
    from mdmlkit.systems.cu_clusters import make_cluster

    d = CACHE / f"{tag}cu{size}_s{seed}"
    d.mkdir(parents=True, exist_ok=True)
    start = d / "start.pkl"
    if start.exists():
        atoms = pickle.loads(start.read_bytes())
    else:
        atoms = make_cluster(size)
        atoms.calc = None
        with atomic_path(start) as tmp:
            tmp.write_bytes(pickle.dumps(atoms))
    kw = {k: v for k, v in md.items() if k != "calculator"}
    t0, c0 = time.perf_counter(), _cpu_s()
    run = heat(atoms, md["calculator"], seed=seed, trajectory=d / "heat.extxyz",
               progress=False, run_id=f"cu{size}_s{seed}", **kw)
    md_cost = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0}
    if not run.skipped:
        atomic_write_json(d / "md_cost.json", md_cost)
    elif (d / "md_cost.json").exists():
        md_cost = json.loads((d / "md_cost.json").read_text())
    else:
        md_cost = None
    frames = run.frames[::stride]
    parts, q_wall, q_cpu, n_new = [], 0.0, 0.0, 0
    for k0 in range(0, len(frames), CHUNK):
        f = d / f"quench_{k0:05d}_{stride}.pkl"
        if f.exists():
            rec = pickle.loads(f.read_bytes())
        else:
            t0, c0 = time.perf_counter(), _cpu_s()
            res = quench(frames[k0:k0 + CHUNK], "asap3", progress=False, **QUENCH)
            rec = {"result": res, "wall_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0}
            with atomic_path(f) as tmp:
                tmp.write_bytes(pickle.dumps(rec))
            n_new += 1
            print(f"cu{size} s{seed}: quenched frames {k0}..{k0 + len(res) - 1} in "
                  f"{rec['wall_s']:.1f} s", flush=True)
        parts.append(rec["result"])
        q_wall += rec["wall_s"]
        q_cpu += rec["cpu_s"]
    result = QuenchResult.concatenate(parts)
    cost = {"md": md_cost, "n_frames_quenched": len(frames),
            "quench_wall_s_per_frame": q_wall / len(frames),
            "quench_cpu_s_per_frame": q_cpu / len(frames),
            "mean_quench_steps": float(np.mean(result.n_steps))}
    return frames, result, cost


def analyse(frames: list, result, *, min_T_visits: float = 600.0) -> dict:
    """IS map vs instantaneous map for one run (see the module docstring)."""
    from mdmlkit.landscape.disconnectivity import DisconnectivityGraph
    from mdmlkit.landscape.inherent import InherentStructureMap, compare_with_instantaneous

    t0 = time.perf_counter()
    ism = InherentStructureMap().fit(frames, quench_result=result)
    cmp = compare_with_instantaneous(ism, frames)
    graph = DisconnectivityGraph.from_inherent(ism)
    T = np.array([a.info["T_target"] for a in frames])
    morph, counts = np.unique(np.asarray(ism.morphology_, dtype=str), return_counts=True)
    gap = graph.gap()
    return {
        "n_frames": len(frames), "n_flagged": int(np.count_nonzero(ism.minimum_ids_ < 0)),
        "n_minima": len(ism.minima_),
        "morphology_counts": {str(m): int(c) for m, c in zip(morph, counts)},
        "inherent": cmp["inherent"], "instantaneous": cmp["instantaneous"],
        "gap_eV": gap if np.isfinite(gap) else None,
        "n_minima_below_600K": graph.n_minima_visited(ism.minimum_ids_, T, min_T_visits),
        "n_graph_connections": len(graph.connections),
        "lowest_minimum": {"E_eV": float(ism.minima_.energies[0]),
                           "morphology": ism.minima_.morphologies[0]},
        "analysis_wall_s": time.perf_counter() - t0,
    }


def _load() -> dict:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())
    return {"runs": {}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=55)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--stride", type=int, default=1, help="quench every stride-th frame")
    p.add_argument("--stage", choices=("all", "generate"), default="all")
    p.add_argument("--smoke", action="store_true", help="Cu13, 3 ps ramp (not recorded)")
    args = p.parse_args()
    md, tag = (SMOKE_MD, "smoke_") if args.smoke else (MD, "")
    size = 13 if args.smoke else args.size
    for seed in args.seeds:
        frames, result, cost = generate(size, seed, md, args.stride, tag)
        print(f"cu{size} s{seed}: {cost}", flush=True)
        if args.stage == "generate":
            continue
        rec = analyse(frames, result)
        rec.update(cost=cost, stride=args.stride, seed=seed, size=size)
        print(json.dumps({k: v for k, v in rec.items() if k != "cost"}, default=str), flush=True)
        if args.smoke:
            continue
        out = _load()
        out["runs"][f"cu{size}_s{seed}" + (f"_every{args.stride}" if args.stride > 1 else "")] = rec
        out.update(
            what="inherent-structure (IS) map vs instantaneous-frame map of Cu_n heating runs, "
                 "scored against the morphology classes of the quenched minima",
            md=MD, quench=QUENCH, fingerprint="CoulombMatrixEigenvalues (all eigenvalues)",
            landscape_map="LandscapeMap() defaults (openTSNE, DBSCAN, automatic eps)",
            machine=machine_info(("numpy", "ase", "asap3", "sklearn"),
                                 note="2-core VM shared with other jobs; one process, "
                                      f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"))
        atomic_write_json(RESULTS, out)


if __name__ == "__main__":
    main()
