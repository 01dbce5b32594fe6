"""Benchmark: HDNNP training throughput on La2Zr2O7 cells (energies + forces).

Measures optimiser-step throughput (structures per second, loss on energies and
forces, i.e. with the double backward through the symmetry functions) for the
22-atom primitive and the 88-atom conventional pyrochlore cell, 60 symmetry
functions per element (12 radial + 48 angular, rc = 6 Å), networks 60-25-25-1,
float64, global batch of 8 structures, in three set-ups:

* 1 process, 1 thread;
* 1 process, 2 threads;
* 2 data-parallel processes (``torchrun``, gloo), 1 thread each.

Every case runs the real command-line trainer (:mod:`mdmlkit.potential.training.ddp`) in a
subprocess; the throughput is the number of training structures divided by the
median epoch time, epoch 1 (warm-up) excluded.  Positions are rattled by 0.05 Å
and the labels are fake (only speed is measured).

Usage::

    python benchmarks/bench_training.py            # writes benchmarks/results/training.json
    python benchmarks/bench_training.py --quick    # fewer structures/epochs
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mdmlkit.utils import atomic_write_json, machine_info  # noqa: E402

RESULT = REPO / "benchmarks" / "results" / "training.json"
ELEMENTS = ["La", "Zr", "O"]


def pyrochlore(n_atoms: int):
    """La2Zr2O7 cell with 22 (primitive) or 88 (conventional) atoms."""
    try:
        from mdmlkit.systems.pyrochlore import conventional_cell, primitive_cell

        return primitive_cell() if n_atoms == 22 else conventional_cell()
    except ImportError:  # standalone fallback: Fd-3m origin choice 2
        from ase.spacegroup import crystal

        return crystal(["La", "Zr", "O", "O"],
                       basis=[(0.5, 0.5, 0.5), (0, 0, 0), (0.33, 0.125, 0.125), (0.375, 0.375, 0.375)],
                       spacegroup=227, setting=2, cellpar=[10.8, 10.8, 10.8, 90, 90, 90],
                       primitive_cell=(n_atoms == 22))


def make_frames(n_atoms: int, n: int, seed: int = 0):
    """Rattled pyrochlore cells with fake energies (eV) and forces (eV/Å)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    base = pyrochlore(n_atoms)
    assert len(base) == n_atoms, len(base)
    frames = []
    for _ in range(n):
        atoms = base.copy()
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = SinglePointCalculator(atoms, energy=-8.0 * n_atoms + rng.normal(0, 0.1),
                                           forces=rng.normal(0, 0.5, (n_atoms, 3)))
        frames.append(atoms)
    return frames


def symmetry_functions():
    from mdmlkit.descriptors import generate_set

    sfs = generate_set(ELEMENTS, rc=6.0, n_radial=4, n_angular=2)
    assert all(v == 60 for v in sfs.n_features.values()), sfs.n_features
    return sfs


def run_case(work: Path, n_atoms: int, nproc: int, threads: int, epochs: int, batch: int) -> dict:
    out = work / f"out_{n_atoms}_{nproc}x{threads}"
    args = ["--train", str(work / f"train_{n_atoms}.extxyz"), "--val-fraction", "0",
            "--input-nn", str(work / "input.nn"), "--out", str(out), "--hidden", "25", "25",
            "--epochs", str(epochs), "--batch-size", str(batch), "--lr-schedule", "none",
            "--patience", "0", "--device", "cpu", "--threads", str(threads), "--quiet"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(nproc), "-m", "mdmlkit.potential.training.ddp", *args]
    else:
        cmd = [sys.executable, "-m", "mdmlkit.potential.training.ddp", *args]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    history = json.loads((out / "history.json").read_text())
    n_train = json.loads((out / "metrics.json").read_text())["n_train"]
    times = [h["time_s"] for h in history][1:]
    t_epoch = float(np.median(times))
    return {"n_atoms": n_atoms, "processes": nproc, "threads_per_process": threads,
            "n_structures": n_train, "batch_size": batch, "epochs_timed": len(times),
            "epoch_time_s": t_epoch, "epoch_times_s": times,
            "structures_per_s": n_train / t_epoch, "atoms_per_s": n_train * n_atoms / t_epoch,
            "wall_s": wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer structures and epochs")
    p.add_argument("--out", default=str(RESULT))
    args = p.parse_args(argv)
    import ase.io

    from mdmlkit.utils import atomic_write_text

    epochs = 3 if args.quick else 5
    sizes = {22: 16 if args.quick else 64, 88: 8 if args.quick else 32}
    setups = [(1, 1), (1, 2), (2, 1)]
    results = []
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sfs = symmetry_functions()
        atomic_write_text(work / "input.nn", "\n".join(sfs.to_input_nn_lines(header=True)) + "\n")
        for n_atoms, n in sizes.items():
            ase.io.write(work / f"train_{n_atoms}.extxyz", make_frames(n_atoms, n))
            for nproc, threads in setups:
                r = run_case(work, n_atoms, nproc, threads, epochs, batch=8)
                results.append(r)
                print(f"{n_atoms:3d} atoms  {nproc} proc x {threads} thread(s): "
                      f"{r['structures_per_s']:8.2f} structures/s  ({r['atoms_per_s']:8.0f} atoms/s, "
                      f"epoch {r['epoch_time_s']:.2f} s)", flush=True)
    report = {"benchmark": "hdnnp_training_throughput",
              "description": "optimiser steps on energy+force loss (double backward), La2Zr2O7, "
                             "60 symmetry functions per element (rc 6 Å), 60-25-25-1 networks, "
                             "float64, global batch 8 structures, fake labels",
              "machine": machine_info(), "load_average_at_start": load_start,
              "note": "timings are sensitive to other load on the machine (see load averages): "
                      "with busy cores, intra-op threads (1 process x 2 threads) oversubscribe "
                      "the CPU and slow down sharply",
              "quick": args.quick, "results": results,
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
