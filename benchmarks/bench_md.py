"""MD speed of the heating engines: asap3 EMT, ASE EMT and LAMMPS EAM for Cu13/55/147.

Runs :func:`mdmlkit.md.heating.heat` / :func:`mdmlkit.md.lammps.heat_lammps` exactly as the
landscape workflow does (Langevin, 2 fs, a frame every 100 steps, in memory)
on relaxed Mackay icosahedra and reports steps per second (wall time of the
dynamics including frame sampling).  Results go to ``benchmarks/results/md.json``
with machine information.  The machine may be shared: the load average is recorded.

    python benchmarks/bench_md.py            # full: 20k steps (asap3/LAMMPS), 1k (ASE)
    python benchmarks/bench_md.py --quick    # 2k / 200 steps
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "md.json"
SIZES = (13, 55, 147)


def _steps_per_s(run, n_steps: int) -> float:
    t0 = time.perf_counter()
    run(n_steps)
    return n_steps / (time.perf_counter() - t0)


def bench(quick: bool) -> dict:
    from mdmlkit.md.heating import heat
    from mdmlkit.systems.cu_clusters import make_cluster

    n_fast, n_slow = (2000, 200) if quick else (20000, 1000)
    dt = 2.0
    out: dict = {}
    engines = {
        "asap3_emt": (lambda a: lambda n: heat(a, "asap3", 600, 600, rate_K_per_ps=None,
                                               duration_ps=n * dt / 1000, sample_every=100,
                                               progress=False), n_fast),
        "ase_emt": (lambda a: lambda n: heat(a, "ase", 600, 600, rate_K_per_ps=None,
                                             duration_ps=n * dt / 1000, sample_every=100,
                                             progress=False), n_slow),
    }
    try:
        from mdmlkit.md.lammps import heat_lammps, lammps_available

        if lammps_available():
            engines["lammps_eam"] = (
                lambda a: lambda n: heat_lammps(a, 600, 600, rate_K_per_ps=None,
                                                duration_ps=n * dt / 1000, sample_every=100,
                                                progress=False), n_fast)
    except ImportError:
        pass
    for n in SIZES:
        atoms = make_cluster(n, kind="icosahedron")
        row = {}
        for name, (make, steps) in engines.items():
            run = make(atoms)
            run(100)                                  # warm-up (imports, first neighbour list)
            row[name] = round(_steps_per_s(run, steps), 1)
            print(f"Cu{n:<4d} {name:<11s} {row[name]:10.0f} steps/s  ({steps} steps)",
                  flush=True)
        out[f"Cu{n}"] = row
    return {"steps": {"fast_engines": n_fast, "ase_emt": n_slow}, "timestep_fs": dt,
            "sample_every": 100, "thermostat": "langevin", "steps_per_s": out}


def main(argv: list[str] | None = None) -> int:
    from mdmlkit.utils import atomic_write_json, machine_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs (seconds)")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    t0 = time.time()
    result = {"benchmark": "md", "mode": "quick" if args.quick else "full",
              "machine": machine_info(("numpy", "ase", "asap3", "torch", "lammps"))}
    result.update(bench(args.quick))
    result["wall_s"] = round(time.time() - t0, 1)
    result["machine"]["load_average_after"] = list(os.getloadavg())
    atomic_write_json(args.output, result)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
