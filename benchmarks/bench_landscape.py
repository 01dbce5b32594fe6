"""Benchmark of the landscape pipeline on Cu147 heating MD (fingerprint -> embed -> cluster).

Frames: Cu147 icosahedra, asap3 EMT, Langevin MD (5 fs steps, friction 0.01/fs; see
``MD``), linear heating 300 -> 1300 K, one frame every 10 steps; ``N_RUNS`` runs
with different seeds are cached under ``benchmarks/.cache/`` (gitignored; each run
written atomically, so an interrupted generation resumes).

For each size (default 10k, 50k, 100k frames, evenly spaced over all runs and
temperatures) it times

* ``fingerprint``: :class:`mdmlkit.landscape.fingerprints.CoulombMatrixEigenvalues` (threads
  over chunks, BLAS limited to one thread per chunk);
* ``scale``, ``embed``, ``cluster``: :class:`mdmlkit.landscape.LandscapeMap` with its
  defaults (openTSNE, exaggeration 2, FFT gradients for >= 10k frames; DBSCAN with
  automatic eps/min_samples); the map is saved to ``.cache/landscape_map_<n>.npz``;

and the seed study's method on the same fingerprints in a subprocess with a time
limit: ``StandardScaler`` -> sklearn ``TSNE(n_components=2, init="random")`` (defaults
otherwise) -> ``DBSCAN(eps=7, min_samples=250)`` -> 5-NN noise reassignment.  The
seed's DBSCAN is skipped above ``SEED_DBSCAN_MAX`` frames (with eps = 7 map units its
neighbour lists need O(n^2) memory); its time is then not included (marked).
Sizes the seed method does not finish are extrapolated from the measured ones with
a power law t = a n^b (or n log n from a single point), marked ``extrapolated``.

Results go to ``benchmarks/results/landscape.json`` (atomic write, rewritten after
every stage) with machine info and the load average before/after each stage (the
benchmark machine is shared).  Besides wall times it records the process CPU time;
``idle_estimate_s = CPU s / n_jobs`` estimates the wall time on idle cores.

Usage::

    python benchmarks/bench_landscape.py            # 10k, 50k, 100k frames
    python benchmarks/bench_landscape.py --quick    # smoke run, 3000 frames
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mdmlkit.utils import atomic_path, atomic_write_json, machine_info  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
RESULTS = REPO / "benchmarks" / "results" / "landscape.json"
#: MD settings of the frame generator (Å, fs, K).
MD = {"cluster": "Cu147 Mackay icosahedron", "calculator": "asap3 EMT", "timestep_fs": 5.0,
      "friction_per_fs": 0.01, "T_start_K": 300.0, "T_end_K": 1300.0, "equilibration_steps": 2000,
      "sample_every": 10}
N_RUNS = 10
SEED_DBSCAN_MAX = 20_000
TARGET_S = 600.0


# ----------------------------------------------------------------------------- data

def _run_path(run: int, n_frames: int) -> Path:
    return CACHE / f"cu147_heat_run{run}_{n_frames}f_every{MD['sample_every']}.npz"


def generate_run(run: int, n_frames: int) -> dict[str, np.ndarray]:
    """One heating run: positions float32 [n, 147, 3] (Å), E_pot (eV), T_target (K)."""
    from asap3 import EMT
    from ase import units
    from ase.cluster import Icosahedron
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from tqdm.auto import tqdm

    path = _run_path(run, n_frames)
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    atoms = Icosahedron("Cu", 4)
    atoms.center(vacuum=8.0)
    atoms.calc = EMT()
    rng = np.random.default_rng(1000 + run)
    T0, T1 = MD["T_start_K"], MD["T_end_K"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MaxwellBoltzmannDistribution(atoms, temperature_K=T0, rng=rng)
        dyn = Langevin(atoms, MD["timestep_fs"] * units.fs, temperature_K=T0,
                       friction=MD["friction_per_fs"] / units.fs, rng=rng, fixcm=False)
    dyn.run(MD["equilibration_steps"])
    pos = np.empty((n_frames, len(atoms), 3), dtype=np.float32)
    E = np.empty(n_frames)
    T = T0 + (T1 - T0) * np.arange(n_frames) / max(n_frames - 1, 1)
    for k in tqdm(range(n_frames), desc=f"MD run {run}", leave=False, mininterval=5):
        dyn.set_temperature(temperature_K=T[k])
        dyn.run(MD["sample_every"])
        pos[k] = atoms.get_positions()
        E[k] = atoms.get_potential_energy()
    data = {"positions": pos, "E_pot": E, "T_target": T}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **data)
    return data


def load_frames(n_total: int) -> tuple[dict[str, np.ndarray], float]:
    """All runs concatenated (``n_total`` frames); returns (data, MD seconds spent now)."""
    per_run = -(-n_total // N_RUNS)
    t0 = time.perf_counter()
    runs = [generate_run(r, per_run) for r in range(N_RUNS)]
    md_s = time.perf_counter() - t0
    data = {k: np.concatenate([r[k] for r in runs])[:n_total] for k in runs[0]}
    data["run"] = np.repeat(np.arange(N_RUNS), per_run)[:n_total]
    return data, md_s


# ----------------------------------------------------------------------------- stages

def fingerprints(positions: np.ndarray, n_jobs: int) -> np.ndarray:
    """Coulomb-matrix eigenvalues [n, 147] with ``n_jobs`` threads over chunks.

    OpenBLAS would otherwise start a thread pool inside every 147x147 ``eigvalsh``;
    on a shared 2-core machine that is ~10x slower than one thread per chunk.
    """
    from ase import Atoms
    from threadpoolctl import threadpool_limits

    from mdmlkit.landscape.fingerprints import CoulombMatrixEigenvalues

    n_atoms = positions.shape[1]
    cm = CoulombMatrixEigenvalues(n_eigen=n_atoms)
    chunks = np.array_split(np.arange(len(positions)), max(1, len(positions) // 2000))

    def work(idx):
        frames = [Atoms(f"Cu{n_atoms}", positions=positions[i]) for i in idx]
        return cm.transform(frames)

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_jobs) as pool:
        return np.concatenate(list(pool.map(work, chunks)))


def run_pipeline(X: np.ndarray, E: np.ndarray, T: np.ndarray, n_jobs: int) -> dict:
    from mdmlkit.landscape import LandscapeMap

    lm = LandscapeMap(embedding="tsne", random_state=0, n_jobs=n_jobs, verbose=True)
    c0 = time.process_time()
    lm.fit(X, energies=E, frames_meta={"T_target": T})
    cpu_s = time.process_time() - c0
    with atomic_path(CACHE / f"landscape_map_{len(X)}.npz", suffix=".npz") as tmp:
        np.savez(tmp, embedding=lm.embedding_, labels=lm.labels_, E_pot=E, T_target=T)
    t0 = time.perf_counter()
    surf = lm.surface(grid=200)
    dens = lm.density(grid=200)
    surface_s = time.perf_counter() - t0
    return {
        "model": repr(lm),
        **{f"{k}_s": round(v, 3) for k, v in lm.timings_.items()},
        "fit_cpu_s": round(cpu_s, 1),
        "surface_and_density_s": round(surface_s, 3),
        "n_basins": lm.n_basins_, "eps": lm.eps_, "min_samples": lm.min_samples_,
        "noise_fraction": lm.noise_fraction_,
        "surface_defined_fraction": float(np.isfinite(surf.values).mean()),
        "density_integral": float(dens.values.sum() * np.diff(dens.x[:2])[0] * np.diff(dens.y[:2])[0]),
        "basins": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                   for s in lm.basin_stats_],
        "_labels": lm.labels_,
    }


def seed_worker(x_path: str, out_path: str, n_jobs: int) -> None:
    """The seed study's map (runs in a subprocess so it can be timed out)."""
    from sklearn.cluster import DBSCAN
    from sklearn.manifold import TSNE
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    X = np.load(x_path)
    res: dict = {"n_frames": len(X)}
    t0 = time.perf_counter()
    Xs = StandardScaler().fit_transform(X)
    c0 = time.process_time()
    Y = TSNE(n_components=2, init="random", random_state=0, n_jobs=n_jobs).fit_transform(Xs)
    res["tsne_s"] = time.perf_counter() - t0
    res["tsne_cpu_s"] = time.process_time() - c0
    if len(X) <= SEED_DBSCAN_MAX:
        t0 = time.perf_counter()
        raw = DBSCAN(eps=7.0, min_samples=250, n_jobs=n_jobs).fit_predict(Y)
        lab = raw.copy()
        noise = raw < 0
        if noise.any() and (~noise).any():
            lab[noise] = KNeighborsClassifier(5).fit(Y[~noise], raw[~noise]).predict(Y[noise])
        res["dbscan_s"] = time.perf_counter() - t0
        res["n_basins"] = int(len(set(lab.tolist()) - {-1}))
        res["noise_fraction"] = float(noise.mean())
        np.save(out_path + ".labels.npy", lab)
    else:
        res["dbscan_s"] = None
        res["dbscan_skipped"] = f"n > {SEED_DBSCAN_MAX}: eps=7 neighbour lists need O(n^2) memory"
    Path(out_path).write_text(json.dumps(res))


def run_seed(X: np.ndarray, n_jobs: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        xp, op = os.path.join(tmp, "X.npy"), os.path.join(tmp, "out.json")
        np.save(xp, X)
        cmd = [sys.executable, __file__, "--seed-worker", xp, op, "--n-jobs", str(n_jobs)]
        t0 = time.perf_counter()
        try:
            subprocess.run(cmd, check=True, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {"n_frames": len(X), "status": "timeout", "timeout_s": timeout}
        except subprocess.CalledProcessError as exc:
            return {"n_frames": len(X), "status": "failed", "stderr": exc.stderr[-2000:]}
        res = json.loads(Path(op).read_text())
        res["wall_s"] = time.perf_counter() - t0
        res["status"] = "ok"
        lab = Path(op + ".labels.npy")
        if lab.exists():
            res["_labels"] = np.load(lab)
        return res


# ----------------------------------------------------------------------------- reporting

def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def extrapolate(points: list[tuple[int, float]], n: int) -> tuple[float, str]:
    """Seconds at ``n`` from measured (n_i, t_i): power law through >= 2 points, else n log n."""
    if len(points) >= 2:
        (n1, t1), (n2, t2) = points[-2], points[-1]
        b = np.log(t2 / t1) / np.log(n2 / n1)
        return float(t2 * (n / n2) ** b), f"power law t ~ n^{b:.2f} through n={n1}, {n2}"
    n1, t1 = points[-1]
    return float(t1 * (n * np.log(n)) / (n1 * np.log(n1))), f"n log n from n={n1}"


def compute_ratios(out: dict) -> list[dict]:
    """Seed-method / ours time ratios (embed + cluster, same fingerprints) per size.

    ``speedup`` uses wall times, ``cpu_speedup`` process CPU times (less sensitive to
    the load of a shared machine).  Sizes without a seed measurement get
    ``speedup_estimate`` from :func:`extrapolate` (``extrapolated: true``).
    """
    seed = {s["n_frames"]: s for s in out["seed_method"] if s.get("status") == "ok"}
    measured = sorted((n, s["embed_cluster_s"]) for n, s in seed.items())
    rows = []
    for res in sorted(out["pipeline"], key=lambda r: r["n_frames"]):
        n, ours = res["n_frames"], res["embed_cluster_s"]
        if n in seed:
            sd = seed[n]
            rows.append({"n_frames": n, "seed_s": sd["embed_cluster_s"], "ours_s": ours,
                         "speedup": round(sd["embed_cluster_s"] / ours, 2),
                         "seed_tsne_cpu_s": round(sd["tsne_cpu_s"], 1),
                         "ours_fit_cpu_s": res["fit_cpu_s"],
                         "cpu_speedup": round(sd["tsne_cpu_s"] / res["fit_cpu_s"], 2),
                         "extrapolated": False,
                         "note": "embed + cluster on the same fingerprints"})
        elif measured:
            est, how = extrapolate(measured, n)
            cpu_pts = sorted((m, seed[m]["tsne_cpu_s"]) for m in seed)
            cpu_est, _ = extrapolate(cpu_pts, n)
            rows.append({"n_frames": n, "seed_s_estimate": round(est, 1), "ours_s": ours,
                         "speedup_estimate": round(est / ours, 2),
                         "seed_tsne_cpu_s_estimate": round(cpu_est, 1),
                         "ours_fit_cpu_s": res["fit_cpu_s"],
                         "cpu_speedup_estimate": round(cpu_est / res["fit_cpu_s"], 2),
                         "extrapolated": True, "how": how})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run on 3000 frames")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--seed-sizes", type=int, nargs="+", default=None,
                    help="sizes on which the seed method is run (default 10k, 50k)")
    ap.add_argument("--seed-timeout", type=float, default=900.0, help="seconds per seed run")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--seed-worker", nargs=2, metavar=("X_NPY", "OUT_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seed_worker:
        seed_worker(*args.seed_worker, n_jobs=args.n_jobs)
        return {}
    sizes = args.sizes or ([3000] if args.quick else [10_000, 50_000, 100_000])
    seed_sizes = args.seed_sizes or ([3000] if args.quick else [10_000, 50_000])
    seed_sizes = [s for s in seed_sizes if s in sizes]
    CACHE.mkdir(parents=True, exist_ok=True)

    out: dict = {"benchmark": "landscape", "quick": args.quick,
                 "started": _dt.datetime.now().isoformat(timespec="seconds"),
                 "machine": machine_info(("numpy", "scipy", "sklearn", "openTSNE", "umap"), n_jobs=args.n_jobs,
                                         git_commit=_git_commit()), "load_avg_start": os.getloadavg(),
                 "target": {"n_frames": 100_000, "limit_s": TARGET_S,
                            "what": "fingerprint + scale + embed + cluster, Cu147"},
                 "pipeline": [], "seed_method": [], "ratio": []}

    def save():
        out["load_avg_now"] = os.getloadavg()
        out["peak_rss_GiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        atomic_write_json(args.out, out)

    data, md_s = load_frames(max(sizes))
    out["data"] = {**MD, "n_runs": N_RUNS, "frames_total": int(len(data["E_pot"])),
                   "md_generation_s_this_run": round(md_s, 1),
                   "E_pot_range_eV": [float(data["E_pot"].min()), float(data["E_pot"].max())]}
    save()
    ours: dict[int, dict] = {}
    for n in sorted(sizes):
        idx = np.linspace(0, len(data["E_pot"]) - 1, n).round().astype(np.int64)
        print(f"== {n} frames: fingerprints", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        X = fingerprints(data["positions"][idx], args.n_jobs)
        fp_s, fp_cpu = time.perf_counter() - t0, time.process_time() - c0
        res = {"n_frames": n, "fingerprint_s": round(fp_s, 3), "fingerprint_cpu_s": round(fp_cpu, 1),
               "load_avg_before": os.getloadavg()}
        res.update(run_pipeline(X, data["E_pot"][idx], data["T_target"][idx], args.n_jobs))
        res["embed_cluster_s"] = round(res["scale_s"] + res["embed_s"] + res["cluster_s"], 3)
        res["total_s"] = round(fp_s + res["embed_cluster_s"], 3)
        # CPU seconds of this process (all threads) / n_jobs: the wall time on n_jobs
        # otherwise idle cores if everything parallelised perfectly (an estimate)
        res["idle_estimate_s"] = round((fp_cpu + res["fit_cpu_s"]) / args.n_jobs, 1)
        res["load_avg_after"] = os.getloadavg()
        ours[n] = res
        out["pipeline"].append(_strip(res))
        print(f"   ours: {_strip(res)['total_s']} s total, {res['n_basins']} basins", flush=True)
        save()
        if n in seed_sizes:
            print(f"== {n} frames: seed method (timeout {args.seed_timeout:.0f} s)", flush=True)
            sd = run_seed(X, args.n_jobs, args.seed_timeout)
            if sd.get("status") == "ok":
                sd["embed_cluster_s"] = round(sd["tsne_s"] + (sd["dbscan_s"] or 0.0), 3)
                if "_labels" in sd:
                    from mdmlkit.landscape import basin_agreement

                    agree = basin_agreement(sd["_labels"], res["_labels"])
                    sd["agreement_with_ours"] = {"ari": agree["ari"],
                                                 "matched_fraction": agree["matched_fraction"]}
            out["seed_method"].append(_strip(sd))
            print(f"   seed: {_strip(sd)}", flush=True)
            save()
    out["ratio"] = compute_ratios(out)
    big = ours.get(100_000)
    if big is not None:
        out["target"].update(total_s=big["total_s"], met=big["total_s"] < TARGET_S,
                             idle_estimate_s=big["idle_estimate_s"],
                             load_avg_during=[big["load_avg_before"], big["load_avg_after"]])
    out["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    save()
    print(json.dumps({k: out[k] for k in ("pipeline", "seed_method", "ratio", "target")},
                     indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
