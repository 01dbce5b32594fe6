"""Benchmark: inherent-structure maps versus instantaneous-frame maps of Cu_n heating runs.

For each size and seed: heat the relaxed Cu_n (:func:`mdmlkit.systems.cu_clusters.make_cluster`)
300 -> 1200 K at 5 K/ps with asap3 EMT (2 fs Langevin steps, friction 0.005/fs, one frame
every 36 steps: 2501 frames), quench every frame (or every ``stride``-th;
:func:`mdmlkit.landscape.minima.quench`, fmax 1e-3 eV/Å), then fit

* the inherent-structure map (:class:`mdmlkit.landscape.inherent.InherentStructureMap`:
  Coulomb-matrix eigenvalues of the *quenched* structures -> t-SNE -> DBSCAN), and
* the instantaneous map (the same :class:`~mdmlkit.landscape.LandscapeMap` on the hot frames),

and score both against the morphology families of the minima
(:func:`~mdmlkit.landscape.minima.classify_minimum`: complete Mackay icosahedron,
icosahedra with adatoms / rosettes / other defects, decahedral, fcc/twinned, disordered;
per-family frames, minima, lowest energy and temperature range are recorded): adjusted Rand
index and the number
of morphology families "separated as basins" (families with >= 2 % of the frames of which
>= 80 % lie in basins that are >= 80 % that family; see
:func:`mdmlkit.landscape.inherent.separated_families`).  It also records the disconnectivity
summary (gap between the lowest two minima, minima visited below 600 K) and the cost of
the quench per frame (wall and CPU seconds, one process).

Everything is cached under ``benchmarks/.cache/inherent/`` (gitignored): the trajectory
(resumable extxyz), the quench in chunks of ``CHUNK`` frames (each pickled atomically),
the analysis of each run.  A chunk of one stride reuses the frames already quenched for
another stride of the same run (each frame's quench is independent and deterministic).
``benchmarks/results/inherent.json`` is rewritten atomically after each run; ``--stage plot``
draws ``benchmarks/results/inherent_maps.png`` from the maps saved by the analyses.
Single core: run with ``OMP_NUM_THREADS=1``.

Usage::

    python benchmarks/bench_inherent.py --smoke                 # Cu13, short ramp
    python benchmarks/bench_inherent.py --size 55 --seeds 0 1 2 3
    python benchmarks/bench_inherent.py --size 147 --seeds 0 1 2 3
    python benchmarks/bench_inherent.py --stage generate ...   # MD + quench only
    python benchmarks/bench_inherent.py --stage plot            # the PNG of the IS maps
    python benchmarks/bench_inherent.py --size 55 --pooled      # one map of all seeds' frames

``--pooled`` maps the frames of all the given seeds of a size together (the landscape of a
size, as a user who ran several heating runs would map it; minima are deduplicated across
runs, the disconnectivity graph connects minima only within a run) and records it under
``pooled`` in the results; the per-seed runs stay as they are.
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
PNG = RESULTS.with_name("inherent_maps.png")
CHUNK = 100
#: MD protocol (K, K/ps, fs, 1/fs).
MD = {"t_start": 300.0, "t_end": 1200.0, "rate_K_per_ps": 5.0, "timestep_fs": 2.0,
      "sample_every": 36, "friction": 0.005, "thermostat": "langevin", "calculator": "asap3"}
SMOKE_MD = dict(MD, t_end=1200.0, rate_K_per_ps=300.0, sample_every=20)
QUENCH = {"fmax": 1e-3, "max_steps": 3000, "method": "fire+lbfgs"}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _take(result, j: int, *_cost):
    """Frame ``j`` of a QuenchResult as a one-frame QuenchResult."""
    from mdmlkit.landscape.minima import QuenchResult

    return QuenchResult(structures=[result.structures[j]], energies=result.energies[j:j + 1],
                        n_steps=result.n_steps[j:j + 1], fmax=result.fmax[j:j + 1],
                        converged=result.converged[j:j + 1],
                        status=np.asarray(result.status)[j:j + 1],
                        messages=[result.messages[j]], run_ids=[result.run_ids[j]],
                        settings=result.settings)


def _reusable(d: Path, frames: list[int]) -> dict[int, tuple]:
    """Frames (trajectory indices) already quenched in chunks of another stride in ``d``:
    ``{frame: (QuenchResult, index, wall_s, cpu_s)}`` (the per-frame cost is the chunk's mean).
    Quenching is per frame and deterministic, so a frame quenched for ``--stride 2`` is the
    same minimum for ``--stride 1``."""
    from mdmlkit.landscape.minima import QuenchSettings

    want, out = set(frames), {}
    for f in sorted(d.glob("quench_*_*.pkl")):
        k0, s = (int(x) for x in f.stem.split("_")[1:])
        if not want & set(range(k0 * s, (k0 + CHUNK) * s, s)):
            continue
        rec = pickle.loads(f.read_bytes())
        r, n = rec["result"], len(rec["result"])
        if r.settings != QuenchSettings(**QUENCH):
            continue
        for j in range(n):
            i = (k0 + j) * s
            if i in want and i not in out:
                out[i] = (r, j, rec["wall_s"] / n, rec["cpu_s"] / n)
    return out


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
            idx = list(range(k0 * stride, min(len(run.frames), (k0 + CHUNK) * stride), stride))
            old = _reusable(d, idx)
            todo = [i for i in idx if i not in old]
            t0, c0 = time.perf_counter(), _cpu_s()
            res = quench([run.frames[i] for i in todo], "asap3", progress=False,
                         **QUENCH) if todo else None
            rows = {i: (res, j) for j, i in enumerate(todo)} | old
            res = QuenchResult.concatenate([_take(*rows[i]) for i in idx])
            rec = {"result": res, "wall_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0,
                   "reused_frames": len(idx) - len(todo)}
            if old:   # cost of the reused frames: their chunks' mean cost per frame
                rec["wall_s"] += sum(rows[i][2] for i in old)
                rec["cpu_s"] += sum(rows[i][3] for i in old)
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


def analyse(frames: list, result, *, min_T_visits: float = 600.0,
            save_map: Path | None = None) -> dict:
    """IS map vs instantaneous map for one run (see the module docstring); ``save_map``: an
    ``.npz`` for :func:`plot` (map coordinates, basins, morphology, minimum energies)."""
    from mdmlkit.landscape.disconnectivity import DisconnectivityGraph
    from mdmlkit.landscape.inherent import InherentStructureMap, compare_with_instantaneous

    t0 = time.perf_counter()
    ism = InherentStructureMap().fit(frames, quench_result=result)
    cmp = compare_with_instantaneous(ism, frames)
    graph = DisconnectivityGraph.from_inherent(ism)
    T = np.array([a.info["T_target"] for a in frames])
    morph, counts = np.unique(np.asarray(ism.morphology_, dtype=str), return_counts=True)
    gap = graph.gap()
    mins = ism.minima_
    e0 = float(mins.energies[0])
    if save_map is not None:
        ok = ism.minimum_ids_ >= 0
        with atomic_path(save_map) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, xy=ism.map_.embedding_, labels=ism.labels_[ok],
                     morphology=np.asarray(ism.morphology_, dtype=str)[ok], T=T[ok],
                     dE=mins.energies[ism.minimum_ids_[ok]] - e0)
    families = {}
    for f in sorted(set(mins.morphologies)):
        ids = [k for k, m in enumerate(mins.morphologies) if m == f]
        families[f] = {"frames": int(mins.counts[ids].sum()), "minima": len(ids),
                       "lowest_dE_eV": float(mins.energies[ids[0]] - e0),
                       "T_K_range": [float(x) for x in np.percentile(
                           T[np.isin(ism.minimum_ids_, ids)], [5, 95])]}
    return {
        "n_frames": len(frames), "n_flagged": int(np.count_nonzero(ism.minimum_ids_ < 0)),
        "n_minima": len(ism.minima_),
        "morphology_counts": {str(m): int(c) for m, c in zip(morph, counts)},
        "families": families,
        "basins": [{"basin": int(b), "frames": int(np.count_nonzero(ism.labels_ == b)),
                    "morphology": {str(m): int(c) for m, c in zip(*np.unique(
                        np.asarray(ism.morphology_, dtype=str)[ism.labels_ == b],
                        return_counts=True))}}
                   for b in np.unique(ism.labels_[ism.labels_ >= 0])],
        "inherent": cmp["inherent"], "instantaneous": cmp["instantaneous"],
        "gap_eV": gap if np.isfinite(gap) else None,
        "n_minima_below_600K": graph.n_minima_visited(ism.minimum_ids_, T, min_T_visits),
        "n_graph_connections": len(graph.connections),
        "lowest_minimum": {"E_eV": float(ism.minima_.energies[0]),
                           "morphology": ism.minima_.morphologies[0]},
        "analysis_wall_s": time.perf_counter() - t0,
    }


def plot(path: Path = PNG) -> None:
    """IS maps of the recorded Cu55 and Cu147 runs, points coloured by the morphology family
    of their minimum, titled with basins / separated families / ARI."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdmlkit.viz.plotting import MORPHOLOGY_COLOURS

    res = _load()
    maps = []                                   # (title, record, saved map)
    for key, runs in (("runs", res["runs"]), ("pooled", res.get("pooled", {}))):
        for k in sorted(runs, key=lambda k: (runs[k]["size"], k)):
            r = runs[k]
            if r["size"] not in (55, 147):
                continue
            if key == "runs":
                f = CACHE / f"cu{r['size']}_s{r['seed']}" / f"is_map_{r['stride']}.npz"
            else:
                k = f"{k}, seeds {'+'.join(map(str, r['seeds']))}"
                f = (CACHE / f"cu{r['size']}_pooled"
                     / f"is_map_{'_'.join(map(str, r['seeds']))}_{r['stride']}.npz")
            if f.exists():
                maps.append((k, r, f))
    if not maps:
        print("no saved maps to plot")
        return
    ncol = 4
    nrow = -(-len(maps) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.8 * nrow), squeeze=False,
                             constrained_layout=True)
    for ax, (k, r, f) in zip(axes.flat, maps):
        d = np.load(f)
        for fam in sorted(set(d["morphology"])):
            sel = d["morphology"] == fam
            ax.scatter(*d["xy"][sel].T, s=4, color=MORPHOLOGY_COLOURS.get(fam, "0.4"),
                       label=f"{fam} ({sel.sum()})")
        s = r["inherent"]
        ax.set_title(f"{k}: {s['n_basins']} basins, {s['n_separated']}/{s['n_families']} "
                     f"families separated, ARI {s['ari']:.2f}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=2, loc="best")
    for ax in list(axes.flat)[len(maps):]:
        ax.set_visible(False)
    fig.suptitle("Inherent-structure maps (Coulomb eigenvalues of the quenched frames, "
                 "LandscapeMap defaults), coloured by classify_minimum", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    print(f"wrote {path}")


def pooled(size: int, seeds: list[int], stride: int) -> dict:
    """One IS map (and instantaneous map) of the frames of all ``seeds`` of ``size`` (each run
    generated or read from the cache as in :func:`generate`); recorded under
    ``pooled["cu<size>"]`` of the results."""
    from mdmlkit.landscape.minima import QuenchResult

    if len(seeds) < 2:
        raise SystemExit("--pooled needs at least two --seeds")
    frames, results, costs = [], [], []
    for seed in seeds:
        f, r, c = generate(size, seed, MD, stride, "")
        frames += f
        results.append(r)
        costs.append(c)
    d = CACHE / f"cu{size}_pooled"
    d.mkdir(parents=True, exist_ok=True)
    rec = analyse(frames, QuenchResult.concatenate(results),
                  save_map=d / f"is_map_{'_'.join(map(str, seeds))}_{stride}.npz")
    rec.update(seeds=list(seeds), stride=stride, size=size,
               quench_cpu_s_per_frame=float(np.mean([c["quench_cpu_s_per_frame"]
                                                     for c in costs])))
    print(json.dumps(rec, default=str), flush=True)
    out = _load()
    out.setdefault("pooled", {})[f"cu{size}" + (f"_every{stride}" if stride > 1 else "")] = rec
    out["pooled_what"] = ("one IS map (and one instantaneous map) of the frames of all seeds of "
                          "a size: minima deduplicated across runs, graph connections only "
                          "within a run; the per-seed runs are under 'runs'")
    atomic_write_json(RESULTS, out)
    return rec


def _load() -> dict:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())
    return {"runs": {}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=55)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--stride", type=int, default=1, help="quench every stride-th frame")
    p.add_argument("--stage", choices=("all", "generate", "plot"), default="all",
                   help="generate: MD + quench only; plot: the figure from the saved maps")
    p.add_argument("--smoke", action="store_true", help="Cu13, 3 ps ramp (not recorded)")
    p.add_argument("--pooled", action="store_true",
                   help="one map of the frames of all --seeds (recorded under 'pooled')")
    args = p.parse_args()
    if args.stage == "plot":
        plot()
        return
    if args.pooled:
        pooled(args.size, args.seeds, args.stride)
        return
    md, tag = (SMOKE_MD, "smoke_") if args.smoke else (MD, "")
    size = 13 if args.smoke else args.size
    for seed in args.seeds:
        frames, result, cost = generate(size, seed, md, args.stride, tag)
        print(f"cu{size} s{seed}: {cost}", flush=True)
        if args.stage == "generate":
            continue
        run_dir = CACHE / f"{'smoke_' if args.smoke else ''}cu{size}_s{seed}"
        rec = analyse(frames, result, save_map=run_dir / f"is_map_{args.stride}.npz")
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
            classes="classify_minimum of each frame's minimum: icosahedral (complete Mackay), "
                    "icosahedral+adatom, icosahedral+rosette, icosahedral-defective, "
                    "decahedral, fcc/twinned, disordered (rules: classify_minimum docstring, "
                    "docs/inherent-structures.md)",
            landscape_map="LandscapeMap() defaults (openTSNE, DBSCAN, automatic eps)",
            machine=machine_info(("numpy", "ase", "asap3", "sklearn"),
                                 note="2-core VM shared with other jobs; one process, "
                                      f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"))
        atomic_write_json(RESULTS, out)


if __name__ == "__main__":
    main()
