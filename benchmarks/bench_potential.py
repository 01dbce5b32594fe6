"""Benchmark: cost of one MD step with the mdmlkit HDNNP on pyrochlore La2Zr2O7.

One MD step = ASE velocity-Verlet step = neighbour list + symmetry functions +
networks + autograd forces (+ the extrapolation check, as in production use).
Cells: the conventional pyrochlore cell (88 atoms) and its 2×2×2 supercell
(704 atoms), built with ``ase.spacegroup.crystal`` (Fd-3m, origin choice 2,
a = 10.8 Å; La 16d, Zr 16c, O 48f x = 0.33, O' 8b).  Descriptors: 60 n2p2
symmetry functions per element (12 radial type 2, 24 angular type 3, 24 type 9),
rc = 6 Å, polynomial cutoff (type 6, alpha 0.1); networks 60-25-25-1 tanh.

The CHGNet teacher (``pip install mdmlkit[teacher]``) is timed on the same cells
in the same run when installed.  Targets: ≥ 100× faster than the teacher and
≤ ~200 µs/atom/step (n2p2's C++ on the developer machine).

Usage::

    python benchmarks/bench_potential.py                   # CPU (and CUDA if present)
    python benchmarks/bench_potential.py --steps 20 --no-teacher --sizes 88

Writes ``benchmarks/results/potential.json`` atomically (with machine info).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.md.verlet import VelocityVerlet
from ase.spacegroup import crystal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdmlkit.descriptors import AtomsBatch, SymmetryFunctionSet  # noqa: E402
from mdmlkit.potential import HDNNP, HDNNPCalculator  # noqa: E402
from mdmlkit.utils import atomic_write_json  # noqa: E402

N2P2_TARGET_US_PER_ATOM = 200.0
ELEMENTS = ("La", "Zr", "O")


def pyrochlore(a: float = 10.8, x48f: float = 0.33, repeat: int = 1) -> Atoms:
    """Conventional La2Zr2O7 pyrochlore cell (88 atoms), optionally repeated."""
    atoms = crystal(["La", "Zr", "O", "O"],
                    basis=[(0.5, 0.5, 0.5), (0.0, 0.0, 0.0), (x48f, 0.125, 0.125), (0.375, 0.375, 0.375)],
                    spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90])
    assert len(atoms) == 88, len(atoms)
    return atoms.repeat(repeat) if repeat > 1 else atoms


def symmetry_functions(rc: float = 6.0) -> SymmetryFunctionSet:
    """60 functions per element: 4 radial (eta, rs) per neighbour element, 4 angular
    parameter sets per neighbour pair for each of types 3 and 9."""
    lines = ["elements La Zr O", "cutoff_type 6 0.1"]
    radial = [(0.05, 0.0), (0.3, 3.5), (0.5, 0.0), (1.0, 2.0)]
    angular = [(0.02, 1, 1, 0.0), (0.02, -1, 2, 0.0), (0.1, 1, 4, 1.5), (0.05, -1, 1.5, 0.0)]
    pairs = [(a, b) for i, a in enumerate(ELEMENTS) for b in ELEMENTS[i:]]
    for c in ELEMENTS:
        lines += [f"symfunction_short {c} 2 {n} {eta} {rs} {rc}" for n in ELEMENTS for eta, rs in radial]
        for t in (3, 9):
            lines += [f"symfunction_short {c} {t} {a} {b} {eta} {lam} {zeta} {rc} {rs}"
                      for a, b in pairs for eta, lam, zeta, rs in angular]
    return SymmetryFunctionSet.from_text("\n".join(lines))


def make_model(dtype: torch.dtype, device) -> HDNNP:
    sfs = symmetry_functions()
    assert all(n == 60 for n in sfs.n_features.values()), sfs.n_features
    model = HDNNP(sfs, hidden=(25, 25), activation="tanh", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    train = []
    for k in range(4):
        a = pyrochlore()
        a.rattle(0.15, seed=k)
        a.set_cell(a.cell[:] * (1 + 0.03 * (k - 1.5)), scale_atoms=True)
        train.append(a)
    model.fit_scaling(train)
    model.fit_reference_energies(train, rng.normal(-8.0, 0.01, len(train)) * 88)
    return model.to(device)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_md(calc, atoms: Atoms, steps: int, warmup: int, device=None) -> dict:
    """Median wall time of one velocity-Verlet step (s) and the per-step spread."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(1)   # Maxwell-Boltzmann momenta at 600 K
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * 600))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(warmup)
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        dyn.run(1)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "steps": steps}


def breakdown(model: HDNNP, atoms: Atoms, repeats: int) -> dict:
    """Median time of the parts of a force call (s): neighbour list + batch, forward, backward."""
    out = {"neighbour_list_s": [], "forward_s": [], "backward_s": []}
    dev = model.device
    for _ in range(repeats):
        t0 = time.perf_counter()
        batch = AtomsBatch.from_atoms([atoms], model.elements, model.cutoff, device=dev, dtype=model.dtype)
        _sync(dev)
        t1 = time.perf_counter()
        pos = batch.positions.requires_grad_(True)
        e = model(batch).sum()
        _sync(dev)
        t2 = time.perf_counter()
        torch.autograd.grad(e, pos)
        _sync(dev)
        t3 = time.perf_counter()
        out["neighbour_list_s"].append(t1 - t0)
        out["forward_s"].append(t2 - t1)
        out["backward_s"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in out.items()}


def teacher_calculator(device: str):
    try:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CHGNet.load(verbose=False) if "verbose" in CHGNet.load.__code__.co_varnames else CHGNet.load()
        return CHGNetCalculator(model, use_device=device)


def machine_info(devices: list[str]) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        info["cpu_model"] = names[0] if names else None
    except OSError:
        pass
    if "cuda" in devices:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[88, 704], help="cell sizes (88·k³ atoms)")
    p.add_argument("--steps", type=int, default=10, help="timed MD steps per case")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--teacher-steps", type=int, default=3)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    p.add_argument("--no-teacher", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; use 1 on a shared/oversubscribed machine)")
    p.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "potential.json")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    dtype = getattr(torch, args.dtype)
    results = {"benchmark": "HDNNP MD step (velocity Verlet, ASE) on pyrochlore La2Zr2O7",
               "model": "60 symmetry functions/element (rc 6 Å, n2p2 types 2/3/9), networks 60-25-25-1 tanh",
               "dtype": args.dtype, "n2p2_target_us_per_atom": N2P2_TARGET_US_PER_ATOM,
               "machine": machine_info(devices), "cases": []}
    for device in devices:
        model = make_model(dtype, device)
        calc = HDNNPCalculator(model, device=device)
        teacher = None if args.no_teacher else teacher_calculator(device)
        for n in args.sizes:
            k = round((n / 88) ** (1 / 3))
            if 88 * k ** 3 != n:
                raise SystemExit(f"size {n} is not 88·k³")
            atoms = pyrochlore(repeat=k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")       # MD at 600 K may leave the fitted range
                t = time_md(calc, atoms, args.steps, args.warmup, device)
                parts = breakdown(model, atoms, max(3, args.steps // 2))
            case = {"device": device, "n_atoms": n, "hdnnp_s_per_step": t["median_s"],
                    "hdnnp_us_per_atom": 1e6 * t["median_s"] / n, "hdnnp_min_s": t["min_s"],
                    "hdnnp_max_s": t["max_s"], "steps": t["steps"], "breakdown_s": parts}
            if teacher is not None:
                tt = time_md(teacher, atoms, args.teacher_steps, 1, device)
                case.update(teacher="CHGNet", teacher_s_per_step=tt["median_s"],
                            teacher_us_per_atom=1e6 * tt["median_s"] / n,
                            speedup_vs_teacher=tt["median_s"] / t["median_s"])
            case["meets_n2p2_target"] = case["hdnnp_us_per_atom"] <= N2P2_TARGET_US_PER_ATOM
            results["cases"].append(case)
            msg = (f"{device:5s} {n:5d} atoms: HDNNP {1e3 * t['median_s']:8.2f} ms/step "
                   f"= {case['hdnnp_us_per_atom']:7.1f} µs/atom "
                   f"(nl {1e3 * parts['neighbour_list_s']:.1f} ms, fwd {1e3 * parts['forward_s']:.1f} ms, "
                   f"bwd {1e3 * parts['backward_s']:.1f} ms)")
            if "teacher_s_per_step" in case:
                msg += (f" | CHGNet {1e3 * case['teacher_s_per_step']:8.1f} ms/step "
                        f"-> {case['speedup_vs_teacher']:.0f}x faster")
            print(msg, flush=True)
    atomic_write_json(args.output, results)
    print(f"wrote {args.output}")
    return results


if __name__ == "__main__":
    main()
