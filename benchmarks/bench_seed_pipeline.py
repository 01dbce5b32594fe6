"""The seed study's landscape pipeline and mdmlkit's, side by side on the same Cu55 frames.

Frames: Cu55 (``make_cluster(55)``, the Mackay icosahedron), asap3 EMT, heated
300 -> 1200 K at 5 K/ps with :func:`mdmlkit.md.heat` (Langevin, 2 fs steps, one frame
every ``SAMPLE_EVERY`` steps: >= 2500 frames per run as in the seed paper), seeds 0 and 1.
Trajectories are cached under ``benchmarks/.cache/seed_pipeline/`` (``heat`` checkpoints
and resumes), as are the fingerprints and the quenched morphology classes (quenched in
chunks, each chunk saved atomically), so an interrupted benchmark resumes.

On the same Coulomb-matrix eigenvalue fingerprints
(:class:`mdmlkit.landscape.fingerprints.CoulombMatrixEigenvalues`) it runs

(a) the seed's exact pipeline, scikit-learn only: ``StandardScaler`` -> ``sklearn.manifold.TSNE
    (n_components=2, init="random", random_state=0)`` -> ``DBSCAN(eps=7, min_samples=250)``
    -> noise frames relabelled by a ``KNeighborsClassifier(5)`` fitted on the non-noise frames;
(b) the seed's map from (a), clustered as mdmlkit does (``seed_map_auto_eps``:
    :func:`mdmlkit.landscape.basins.cluster_embedding` with eps from the k-distance knee
    and ``min_samples = 2 %`` of the frames, then 5-NN noise reassignment): separates
    the effect of the fixed eps from that of the embedding;
(c) :class:`mdmlkit.landscape.LandscapeMap` with its defaults (``random_state=0``).

For each it records the wall time (one thread: BLAS/OpenMP limited to 1, ``n_jobs=1``),
the number of basins, the noise fraction (before reassignment) and the adjusted Rand
index (ARI) against the morphology classes of the frames.  Morphology classes: the
class (:func:`mdmlkit.landscape.minima.classify_minimum`) of each frame's inherent
structure (:func:`mdmlkit.landscape.minima.quench`, asap3 EMT, fmax 1e-3 eV/Å); with
``--classes cna`` the CNA motif label of the instantaneous frame
(:func:`mdmlkit.landscape.structure.motif_label`) instead.  Both are recorded when
available (the JSON says which one the ARI headline uses).

Results: ``benchmarks/results/seed_pipeline.json`` (atomic write after every stage,
with :func:`mdmlkit.utils.machine_info`); ``--quick`` (a short smoke run: fast ramp,
few frames) writes ``benchmarks/.cache/seed_pipeline/seed_pipeline_quick.json`` instead.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_seed_pipeline.py            # full
    OMP_NUM_THREADS=1 python benchmarks/bench_seed_pipeline.py --quick    # smoke test
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mdmlkit.utils import atomic_path, atomic_write_json, machine_info  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache" / "seed_pipeline"
RESULTS = REPO / "benchmarks" / "results"
SEEDS = (0, 1)
#: MD of the full benchmark (K, K/ps, fs, steps): 90 000 steps -> 2571 frames per run.
FULL = dict(t_start=300.0, t_end=1200.0, rate_K_per_ps=5.0, timestep_fs=2.0, sample_every=35)
#: Smoke test: same temperatures, fast ramp, 450 frames per run.
QUICK = dict(t_start=300.0, t_end=1200.0, rate_K_per_ps=100.0, timestep_fs=2.0, sample_every=20)
SEED_PARAMS = dict(tsne="sklearn.manifold.TSNE(n_components=2, init='random', random_state=0)",
                   dbscan="DBSCAN(eps=7, min_samples=250)", reassign="KNeighborsClassifier(5)")
QUENCH_CHUNK = 250


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def generate(md: dict, tag: str, progress: bool) -> list:
    """Heat Cu55 once per seed (cached, resumable); all frames, run after run."""
    from mdmlkit.md import heat
    from mdmlkit.systems.cu_clusters import make_cluster

    CACHE.mkdir(parents=True, exist_ok=True)
    start = make_cluster(55)
    frames = []
    for s in SEEDS:
        res = heat(start, "asap3", seed=s, trajectory=CACHE / f"Cu55_{tag}_s{s}.extxyz",
                   run_id=f"Cu55_s{s}", progress=progress, **md)
        frames.extend(res.frames)
    return frames


def _cached_array(path: Path, make) -> np.ndarray:
    if path.exists():
        return np.load(path, allow_pickle=False)
    arr = make()
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr)
    return arr


def quenched_classes(frames: list, tag: str, progress: bool) -> tuple[np.ndarray, dict]:
    """classify_minimum of every frame's inherent structure (chunked, cached).

    The cache keeps the minimised positions, so the classes are recomputed from them with
    the current :func:`~mdmlkit.landscape.minima.classify_minimum` (a change of the
    classification rule never reuses stale classes, and never needs new quenches).
    """
    from ase import Atoms

    from mdmlkit.landscape.minima import classify_minimum, quench

    out, info = [], {"not_converged": 0, "quench_s": 0.0}
    for c0 in range(0, len(frames), QUENCH_CHUNK):
        path = CACHE / f"quench_{tag}_{c0}_{QUENCH_CHUNK}_pos.npz"
        if not path.exists():
            t0 = time.perf_counter()
            q = quench(frames[c0:c0 + QUENCH_CHUNK], "asap3", progress=progress)
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, positions=np.array([a.positions for a in q.structures]),
                         numbers=q.structures[0].numbers, converged=q.converged,
                         energies=q.energies, seconds=time.perf_counter() - t0)
        z = np.load(path, allow_pickle=False)
        out.append(np.array([classify_minimum(Atoms(numbers=z["numbers"], positions=pos))
                             for pos in z["positions"]], dtype=str))
        info["not_converged"] += int((~z["converged"]).sum())
        info["quench_s"] += float(z["seconds"])
        print(f"   quenched {min(c0 + QUENCH_CHUNK, len(frames))}/{len(frames)}", flush=True)
    info["quench_s"] = round(info["quench_s"], 1)
    return np.concatenate(out), info


def seed_pipeline(X: np.ndarray) -> dict:
    """The seed's exact map: scikit-learn only; returns labels and timings."""
    from sklearn.cluster import DBSCAN
    from sklearn.manifold import TSNE
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    Xs = StandardScaler().fit_transform(X)
    Y = TSNE(n_components=2, init="random", random_state=0, n_jobs=1).fit_transform(Xs)
    t1 = time.perf_counter()
    raw = DBSCAN(eps=7.0, min_samples=250, n_jobs=1).fit_predict(Y)
    lab = raw.copy()
    noise = raw < 0
    if noise.any() and (~noise).any():
        lab[noise] = KNeighborsClassifier(5).fit(Y[~noise], raw[~noise]).predict(Y[noise])
    t2 = time.perf_counter()
    return {"labels": lab, "raw": raw, "embed_s": t1 - t0, "cluster_s": t2 - t1,
            "total_s": t2 - t0, "eps": 7.0, "min_samples": 250,
            "map_extent": float(np.ptp(Y, axis=0).max()), "map": Y}


def seed_map_auto_eps(seed: dict) -> dict:
    """The seed's t-SNE map, clustered with mdmlkit's automatic eps / min_samples + 5-NN."""
    from mdmlkit.landscape.basins import cluster_embedding, reassign_noise

    Y = seed["map"]
    t0 = time.perf_counter()
    raw, eps, ms = cluster_embedding(Y, eps=None, min_samples=None, n_jobs=1)
    lab = reassign_noise(Y, raw, k=5)
    t = time.perf_counter() - t0
    return {"labels": lab, "raw": raw, "embed_s": seed["embed_s"], "cluster_s": t,
            "total_s": seed["embed_s"] + t, "eps": float(eps), "min_samples": int(ms),
            "map_extent": seed["map_extent"]}


def mdmlkit_pipeline(X: np.ndarray, energies: np.ndarray) -> dict:
    from mdmlkit.landscape import LandscapeMap

    t0 = time.perf_counter()
    lm = LandscapeMap(random_state=0, n_jobs=1).fit(X, energies=energies)
    t = time.perf_counter() - t0
    return {"labels": lm.labels_, "raw": lm.raw_labels_, "embed_s": lm.timings_.get("embed"),
            "cluster_s": lm.timings_.get("cluster"), "total_s": t, "eps": float(lm.eps_),
            "min_samples": int(lm.min_samples_),
            "map_extent": float(np.ptp(lm.embedding_, axis=0).max())}


def score(res: dict, classes: dict[str, np.ndarray]) -> dict:
    """Basins, noise fraction and ARI (against each class labelling) of one pipeline."""
    from sklearn.metrics import adjusted_rand_score

    lab, raw = np.asarray(res["labels"]), np.asarray(res["raw"])
    row = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()
           if k not in ("labels", "raw", "map")}
    row["n_basins"] = int(len(set(raw.tolist()) - {-1}))
    row["noise_fraction"] = round(float((raw < 0).mean()), 4)
    for name, cls in classes.items():
        row[f"ari_{name}"] = round(float(adjusted_rand_score(cls, lab)), 4)
    # which morphology dominates each basin (headline classes)
    head = next(iter(classes.values()))
    basins = []
    for b in sorted(set(lab.tolist())):
        m = lab == b
        kinds, counts = np.unique(head[m], return_counts=True)
        basins.append({"basin": int(b), "size": int(m.sum()), "majority": str(kinds[counts.argmax()]),
                       "majority_fraction": round(float(counts.max() / m.sum()), 3)})
    row["basins"] = basins
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: fast ramp, few frames")
    ap.add_argument("--classes", choices=("quench", "cna"), default="quench",
                    help="headline morphology classes (default: quenched structures)")
    ap.add_argument("--progress", action="store_true", help="tqdm bars")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    md, tag = (QUICK, "quick") if args.quick else (FULL, "full")
    out_path = CACHE / "seed_pipeline_quick.json" if args.quick else RESULTS / "seed_pipeline.json"
    out: dict = {"benchmark": "seed pipeline vs mdmlkit LandscapeMap on Cu55 heating frames",
                 "started": _now(), "quick": bool(args.quick),
                 "md": dict(md, cluster="Cu55 Mackay icosahedron (make_cluster(55))",
                            calculator="asap3 EMT", thermostat="langevin", seeds=list(SEEDS)),
                 "fingerprint": "CoulombMatrixEigenvalues() (descending eigenvalues, 55 per frame)",
                 "seed_pipeline": SEED_PARAMS, "mdmlkit_pipeline": "LandscapeMap(random_state=0)",
                 "seed_map_auto_eps": "seed t-SNE map + cluster_embedding(eps=None, "
                                      "min_samples=None) + reassign_noise(k=5)",
                 "threads": 1, "status": "running"}

    def save() -> None:
        out["machine"] = machine_info(("numpy", "scipy", "sklearn", "openTSNE", "ase", "asap3"))
        out["updated"] = _now()
        atomic_write_json(out_path, out)

    print("== MD", flush=True)
    t0 = time.perf_counter()
    frames = generate(md, tag, args.progress)
    out["n_frames"] = len(frames)
    out["frames_per_run"] = {f"s{s}": sum(1 for a in frames if a.info["seed"] == s) for s in SEEDS}
    out["md_or_cache_load_s"] = round(time.perf_counter() - t0, 1)
    save()

    from mdmlkit.landscape.fingerprints import CoulombMatrixEigenvalues
    from mdmlkit.landscape.structure import motif_label
    from mdmlkit.md import frame_table

    print("== fingerprints", flush=True)
    t0 = time.perf_counter()
    X = _cached_array(CACHE / f"X_{tag}_{len(frames)}.npy",
                      lambda: CoulombMatrixEigenvalues().fit_transform(frames))
    out["fingerprint_s"] = round(time.perf_counter() - t0, 2)
    energies = frame_table(frames)["E_pot"]
    print("== CNA motif labels", flush=True)
    cna = np.array([motif_label(a) for a in frames], dtype=str)
    classes: dict[str, np.ndarray] = {}
    if args.classes == "quench":
        print("== quench to inherent structures", flush=True)
        q, qinfo = quenched_classes(frames, f"{tag}_{len(frames)}", args.progress)
        classes["quenched"] = q
        out["quench"] = qinfo
    classes["cna"] = cna
    out["classes_headline"] = ("quenched: classify_minimum of each frame's inherent structure"
                               if args.classes == "quench"
                               else "cna: motif_label of the instantaneous frame")
    out["class_counts"] = {name: {str(k): int(v) for k, v in zip(*np.unique(c, return_counts=True))}
                           for name, c in classes.items()}
    save()

    rows, maps = {}, {}
    for name, fn in (("seed", lambda: seed_pipeline(X)),
                     ("seed_map_auto_eps", lambda: seed_map_auto_eps(maps["seed"])),
                     ("mdmlkit", lambda: mdmlkit_pipeline(X, energies))):
        print(f"== {name} pipeline", flush=True)
        maps[name] = fn()
        rows[name] = score(maps[name], classes)
        out["results"] = rows
        print(f"   {name}: " + ", ".join(f"{k}={v}" for k, v in rows[name].items() if k != "basins"),
              flush=True)
        save()
    out["status"] = "complete"
    save()
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
