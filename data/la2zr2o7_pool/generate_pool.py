"""Generate the unlabelled La2Zr2O7 candidate pool (MD frames with the fast HDNNP).

What a user has is a large, redundant set of MD frames.  This script makes one:
Langevin NVT MD with the shipped HDNNP (``models/la2zr2o7``, numba-compiled kernels,
one thread) of 14 cells x 7 temperatures (300 ... 3000 K), a frame every
``--sample-every`` steps, stored *unlabelled* as compressed npz chunks that
:class:`mdmlkit.active.pool.FramePool` reads lazily.

Cells (relaxed teacher lattice a0 = 10.89564 Å, x48f = 0.33286, expanded to
a(T) = a0 (1 + 9.1e-6 K^-1 T) like data/la2zr2o7): perfect primitive (22 atoms)
and conventional (88 atoms) cells, one O vacancy (prim) / two (conv), one anion
Frenkel pair O48f -> 8a, one (prim) / two (conv) La<->Zr antisite pairs, and the
perfect cells under isotropic strain of +-1 % (volume +-3 %) and a 3 % engineering
shear (yz).  Every run is a function of (seed, run index); finished runs are kept
in ``--work`` (one npz per run, written atomically), so a killed job resumes where
it stopped.  Frames with two atoms closer than ``--min-distance`` Å (the HDNNP's
minimum distance) are dropped and counted; a run whose dynamics fail (atoms too
close, non-finite energies) stops there and keeps its frames.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python data/la2zr2o7_pool/generate_pool.py
    python data/la2zr2o7_pool/generate_pool.py --assemble-only   # write what is done
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
GENERATOR = "mdmlkit-la2zr2o7-pool/1"
from mdmlkit.systems.la2zr2o7 import RELAXED_LATTICE  # noqa: E402  (manifest.json "relaxed")

A0, X0, ALPHA = RELAXED_LATTICE["a0"], RELAXED_LATTICE["x48f"], RELAXED_LATTICE["alpha_per_K"]
TEMPERATURES = (300.0, 600.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0)
CELLS = [(kind, cell) for kind in ("perfect", "vacancy", "frenkel", "antisite", "strain+1%",
                                   "strain-1%", "shear3%") for cell in ("prim", "conv")]



def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def build_cell(kind: str, cell: str, T: float, rng: np.random.Generator):
    """The start structure of one run and its defect/strain description."""
    from mdmlkit.systems import pyrochlore as pyro
    from mdmlkit.systems.la2zr2o7 import START_KINDS, start_cell

    if kind in START_KINDS:
        atoms, defect = start_cell(kind, cell, T, rng, n_defects=1 if cell == "prim" else 2)
        return atoms, defect, np.zeros(6)
    base, _ = start_cell("perfect", cell, T, rng)
    eps = {"strain+1%": [0.01, 0.01, 0.01, 0, 0, 0], "strain-1%": [-0.01, -0.01, -0.01, 0, 0, 0],
           "shear3%": [0, 0, 0, 0.03, 0, 0]}[kind]
    return pyro.strained(base, eps), "none", np.asarray(eps, dtype=float)


def run_one(r: int, kind: str, cell: str, T: float, args, work: Path) -> dict:
    """MD of one (cell, T); writes ``work/run-<r>.npz`` atomically; returns its record."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from mdmlkit.active.pool import FramePool
    from mdmlkit.errors import MdmlkitError
    from mdmlkit.potential.calculator import HDNNPCalculator
    from mdmlkit.systems.pyrochlore import min_distance

    out = work / f"run-{r:03d}.npz"
    rec_path = work / f"run-{r:03d}.json"
    if out.is_file() and rec_path.is_file():
        return json.loads(rec_path.read_text())
    seed = args.seed * 1000 + r
    rng = np.random.default_rng(seed)
    atoms, defect, eps = build_cell(kind, cell, T, rng)
    atoms.calc = HDNNPCalculator(ROOT / "models" / "la2zr2o7", device="cpu", compile=args.compile,
                                 extrapolation="ignore")
    # from a 0 K crystal about half the kinetic energy flows into E_pot: start at 2 T
    MaxwellBoltzmannDistribution(atoms, temperature_K=2 * T, rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, timestep=args.timestep * units.fs, temperature_K=T,
                   friction=args.friction / units.fs, fixcm=False, rng=rng)
    frames, dropped, error, t0 = [], 0, None, time.perf_counter()
    n_samples = args.steps // args.sample_every
    for j in range(n_samples + 1):
        try:
            if j:
                dyn.run(args.sample_every)
            e = float(atoms.get_potential_energy())
        except MdmlkitError as exc:     # atoms too close / non-finite: keep what we have
            error = f"step {j * args.sample_every}: {type(exc).__name__}: {exc}"
            break
        d = min_distance(atoms)
        if not (d >= args.min_distance and np.isfinite(e)):
            dropped += 1
            continue
        snap = atoms.copy()
        snap.set_constraint()
        snap.calc = None
        snap.info = {"kind": kind, "cell": cell, "T": float(T), "defect": defect,
                     "run": r, "step": j * args.sample_every,
                     "time_fs": j * args.sample_every * args.timestep,
                     "T_kinetic": round(float(atoms.get_temperature()), 1),
                     "d_min": round(d, 4), "source": f"hdnnp-md/{kind}/{cell}/{T:g}K"}
        frames.append(snap)
    rec = {"run": r, "kind": kind, "cell": cell, "T": T, "seed": seed, "defect": defect,
           "strain_voigt": eps.tolist(), "n_atoms": len(atoms), "n_frames": len(frames),
           "dropped_too_close": dropped, "error": error,
           "wall_s": round(time.perf_counter() - t0, 2)}
    if frames:
        FramePool.write(frames, out)
    from mdmlkit.utils import atomic_write_json

    atomic_write_json(rec_path, rec)
    return rec


def assemble(records: list[dict], work: Path, chunk: int) -> dict:
    """Concatenate the finished runs into ``pool-NN.npz`` chunks of ``chunk`` frames."""
    from mdmlkit.active.pool import FramePool

    frames = []
    for rec in sorted(records, key=lambda x: x["run"]):
        if rec["n_frames"]:
            frames.extend(FramePool(work / f"run-{rec['run']:03d}.npz"))
    for old in OUT.glob("pool-*.npz"):
        old.unlink()
    for c in range(0, len(frames), chunk):
        part = frames[c:c + chunk]
        for a in part:
            a.info.pop("pool_index", None)
        FramePool.write(part, OUT / f"pool-{c // chunk:02d}.npz")
    return {"n_frames": len(frames), "n_chunks": -(-len(frames) // chunk)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=624, help="MD steps per run")
    p.add_argument("--sample-every", type=int, default=3, help="steps between frames")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs")
    p.add_argument("--min-distance", type=float, default=0.5, help="drop frames closer than this, Å")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--compile", default="numba", help="HDNNPCalculator compile= (numba, torch, False)")
    p.add_argument("--chunk", type=int, default=4096, help="frames per pool chunk file")
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mdmlkit" / "la2zr2o7_pool")
    p.add_argument("--max-runs", type=int, default=None, help="stop after this many runs (cost test)")
    p.add_argument("--assemble-only", action="store_true", help="write the pool from finished runs")
    args = p.parse_args(argv)
    if args.compile == "False":
        args.compile = False
    import torch

    torch.set_num_threads(1)
    from mdmlkit.utils import atomic_write_json

    args.work.mkdir(parents=True, exist_ok=True)
    from mdmlkit.utils import check_run_settings

    check_run_settings(args.work, {k: v for k, v in vars(args).items() if k not in ("work", "assemble_only", "max_runs", "chunk")})
    plan = [(kind, cell, T) for (kind, cell) in CELLS for T in TEMPERATURES]
    # interleave so that a partial pool still covers every cell and temperature
    nt = len(TEMPERATURES)
    order = [c * nt + (c + k) % nt for k in range(nt) for c in range(len(CELLS))]
    records, t0 = [], time.perf_counter()
    for n_done, r in enumerate(order):
        if args.assemble_only or (args.max_runs is not None and n_done >= args.max_runs):
            break
        kind, cell, T = plan[r]
        rec = run_one(r, kind, cell, T, args, args.work)
        records.append(rec)
        log(f"run {r:3d} {kind:9s} {cell} {T:6.0f} K: {rec['n_frames']} frames, "
            f"{rec['dropped_too_close']} dropped, {rec['wall_s']} s{'  ' + rec['error'] if rec['error'] else ''}")
    done = {rec["run"] for rec in records}
    for f in sorted(args.work.glob("run-*.json")):
        rec = json.loads(f.read_text())
        if rec["run"] not in done:
            records.append(rec)
    summary = assemble(records, args.work, args.chunk)
    manifest = {
        "generator": GENERATOR, "labelled": False,
        "model": f"models/la2zr2o7 (HDNNPCalculator, compile={args.compile!r}, float64, 1 thread)",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("work", "assemble_only", "max_runs")},
        "lattice": {"a0": A0, "x48f": X0, "alpha_per_K": ALPHA},
        "temperatures_K": list(TEMPERATURES), "cells": [f"{k}/{c}" for k, c in CELLS],
        "runs_planned": len(plan), "runs_done": len(records),
        "complete": len(records) == len(plan),
        "frames": summary["n_frames"], "chunks": summary["n_chunks"],
        "dropped_too_close": int(sum(r["dropped_too_close"] for r in records)),
        "runs_stopped_early": [{"run": r["run"], "error": r["error"]} for r in records if r["error"]],
        "md_wall_s_total": round(sum(r["wall_s"] for r in records), 1),
        "runs": sorted(records, key=lambda x: x["run"]),
    }
    atomic_write_json(OUT / "manifest.json", manifest)
    log(f"pool: {summary['n_frames']} frames in {summary['n_chunks']} chunks from "
        f"{len(records)}/{len(plan)} runs ({time.perf_counter() - t0:.0f} s this session)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    sys.exit(main())
