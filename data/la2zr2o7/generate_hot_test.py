"""Generate the teacher-labelled hot test set of La2Zr2O7 (2000, 2500, 3000 K MD frames).

A test set that covers where MD goes: snapshots of NVT molecular dynamics *with the
teacher* (CHGNet) at 2000, 2500 and 3000 K of the perfect conventional cell (88
atoms) and of defective primitive cells (22 atoms: one O vacancy, one anion Frenkel
pair O48f -> 8a, one La<->Zr antisite pair), labelled with the teacher's energy,
forces and stress.  It is never used for training or selection.

Protocol of each trajectory (cell, T):

1. start structure: the relaxed teacher lattice a0 = 10.89564 Å, x48f = 0.33286,
   expanded to a(T) = a0 (1 + 9.1e-6 K^-1 T) (as in ``generate.py``), defect placed
   with ``numpy.random.default_rng([seed, traj])``;
2. equilibration: ``--equil-steps`` Langevin NVT steps with the fast HDNNP
   (``models/la2zr2o7``, numba kernels), velocities from Maxwell-Boltzmann at 2 T;
3. teacher MD: the same Langevin NVT (timestep ``--timestep`` fs, friction
   ``--friction`` 1/fs, centre of mass fixed) continued with CHGNet for
   ``--teacher-equil-steps`` steps, then ``--frames`` snapshots every
   ``--interval`` steps;
4. each snapshot's positions are rounded to 1e-5 Å and *then* labelled by CHGNet
   (energy eV, forces eV/Å, stress eV/Å³), so the labels are exact for the stored
   geometry.

Several ``--seed`` values run the twelve trajectories once per seed (other defect
placements and random streams); ``--workers`` runs trajectories in parallel processes,
each with its own teacher. Another ``--seed``, ``--split`` and ``--out`` make
teacher-MD *training* frames by the same protocol (``hot_md_train``).

Resumable: each finished trajectory is kept in ``--work``/seed<seed>/ (with the
equilibration model's identity); the output file and ``<split>.json`` (settings, counts,
timings) are rewritten after every trajectory, so a partial run is usable.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python data/la2zr2o7/generate_hot_test.py
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GENERATOR = "mdmlkit-la2zr2o7-hot-test/1"
from mdmlkit.systems.la2zr2o7 import RELAXED_LATTICE  # noqa: E402  (manifest.json "relaxed")

A0, X0, ALPHA = RELAXED_LATTICE["a0"], RELAXED_LATTICE["x48f"], RELAXED_LATTICE["alpha_per_K"]
TEMPERATURES = (2000.0, 2500.0, 3000.0)
CELLS = (("perfect", "conv"), ("vacancy", "prim"), ("frenkel", "prim"), ("antisite", "prim"))



def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def start_structure(kind: str, cell: str, T: float, rng: np.random.Generator):
    from mdmlkit.systems.la2zr2o7 import start_cell

    return start_cell(kind, cell, T, rng, n_defects=1)


def trajectory(t: int, seed: int, kind: str, cell: str, T: float, teacher, args, work: Path) -> list:
    from ase import Atoms, units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from mdmlkit.io.frames import read_frames, write_frames
    from mdmlkit.potential.calculator import HDNNPCalculator
    from mdmlkit.systems.teacher import teacher_info

    f = work / f"hot_{t:02d}.extxyz"
    if f.is_file():
        return read_frames(f)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, t])
    atoms, defect = start_structure(kind, cell, T, rng)
    atoms.calc = HDNNPCalculator(args.model, device="cpu", compile="numba",
                                 extrapolation="ignore")
    MaxwellBoltzmannDistribution(atoms, temperature_K=2 * T, rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, timestep=args.timestep * units.fs, temperature_K=T,
                   friction=args.friction / units.fs, fixcm=False, rng=rng)
    dyn.run(args.equil_steps)
    t_hdnnp = time.perf_counter() - t0
    atoms.calc = teacher
    dyn.run(args.teacher_equil_steps)
    frames, info = [], teacher_info(teacher)
    for j in range(args.frames):
        dyn.run(args.interval)
        atoms.set_positions(np.round(atoms.get_positions(), 5), apply_constraint=False)
        snap = Atoms(atoms.numbers, positions=atoms.get_positions(), cell=atoms.cell, pbc=True)
        snap.calc = SinglePointCalculator(snap, energy=float(atoms.get_potential_energy()),
                                          forces=atoms.get_forces().copy(),
                                          stress=atoms.get_stress(voigt=True).copy())
        step = args.teacher_equil_steps + (j + 1) * args.interval
        snap.info.update(info, generator=GENERATOR, kind="md_hot", cell=cell, T=float(T),
                         defect=defect, seed=seed, md_traj=f"hot{t:02d}",
                         hdnnp_equil_fs=args.equil_steps * args.timestep,
                         md_time_fs=float(step * args.timestep),
                         T_kinetic=round(float(atoms.get_temperature()), 1), split=args.split)
        frames.append(snap)
    write_frames(frames, f)
    log(f"seed {seed} traj {t:2d} {kind:8s} {cell} {T:5.0f} K: {len(frames)} frames, HDNNP {t_hdnnp:.0f} s, "
        f"total {time.perf_counter() - t0:.0f} s")
    (work / f"hot_{t:02d}.time").write_text(f"{time.perf_counter() - t0:.1f} {t_hdnnp:.1f}\n")
    return frames


def model_identity(model: Path) -> dict:
    """Path (relative to the repository when inside it) and SHA-256 of a model folder's files."""
    h = hashlib.sha256()
    for f in sorted(model.iterdir()):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    try:
        name = str(model.resolve().relative_to(ROOT))
    except ValueError:
        name = str(model)
    return {"model": name, "sha256": h.hexdigest()}


_TEACHER = None


def _run_one(job: tuple, args) -> tuple:
    """One trajectory in a worker process (the teacher is built once per process)."""
    global _TEACHER
    seed, t, kind, cell, T = job
    work = args.work / f"seed{seed}"
    if not (work / f"hot_{t:02d}.extxyz").is_file() and _TEACHER is None:
        import torch

        from mdmlkit.systems.teacher import chgnet_calculator

        torch.set_num_threads(1)
        _TEACHER = chgnet_calculator(device="cpu", threads=1)
    return seed, t, trajectory(t, seed, kind, cell, T, _TEACHER, args, work)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=10, help="snapshots per trajectory")
    p.add_argument("--interval", type=int, default=25, help="teacher steps between snapshots")
    p.add_argument("--equil-steps", type=int, default=250, help="HDNNP equilibration steps")
    p.add_argument("--teacher-equil-steps", type=int, default=25, help="teacher steps before sampling")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--friction", type=float, default=0.02, help="Langevin friction, 1/fs")
    p.add_argument("--seed", type=int, nargs="+", default=[2026],
                   help="one or more seeds; each runs all twelve trajectories")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (one teacher each)")
    p.add_argument("--model", type=Path, default=ROOT / "models" / "la2zr2o7",
                   help="HDNNP model folder for the equilibration stage")
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mdmlkit" / "la2zr2o7_hot")
    p.add_argument("--out", type=Path, default=HERE / "hot_test.extxyz.gz")
    p.add_argument("--split", default="hot_test",
                   help="atoms.info['split'] and the manifest name <split>.json (another --seed, "
                        "--split and --out make teacher-MD *training* frames by the same protocol)")
    args = p.parse_args(argv)
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from mdmlkit.errors import CheckpointMismatchError
    from mdmlkit.io.frames import write_frames
    from mdmlkit.utils import atomic_write_json, check_run_settings, read_json_file

    common = {k: v for k, v in vars(args).items()
              if k not in ("work", "out", "split", "seed", "workers", "model")}
    models = {}
    for seed in args.seed:
        work = args.work / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        check_run_settings(work, {**common, "seed": seed})
        ident, current = work / "equilibration_model.json", model_identity(args.model)
        if not ident.is_file():
            atomic_write_json(ident, current)
        models[str(seed)] = read_json_file(ident, "equilibration model record", "delete the seed folder")
        cached = len(list(work.glob("hot_*.extxyz")))
        # a finished seed never runs the model again; a partial one must finish with the same model
        if models[str(seed)]["sha256"] != current["sha256"] and 0 < cached < len(CELLS) * len(TEMPERATURES):
            raise CheckpointMismatchError(
                f"{work} was equilibrated with {models[str(seed)]['model']} (SHA-256 "
                f"{models[str(seed)]['sha256'][:12]}…), --model {args.model} differs; pass that model "
                "or use another --work folder")
    plan = [(kind, cell, T) for kind, cell in CELLS for T in TEMPERATURES]
    # interleave cells and temperatures so that a partial set covers all of them
    order = [c * len(TEMPERATURES) + (c + k) % len(TEMPERATURES)
             for k in range(len(TEMPERATURES)) for c in range(len(CELLS))]
    jobs = [(seed, t, *plan[t]) for seed in args.seed for t in order]
    done: dict = {}

    def record(seed: int, t: int, frames: list) -> None:
        done[(seed, t)] = frames
        out = [a for key in sorted(done) for a in done[key]]
        write_frames(out, args.out)
        times = {}
        for s_, t_ in done:
            tf = args.work / f"seed{s_}" / f"hot_{t_:02d}.time"
            if tf.is_file():
                times[f"seed{s_}/hot{t_:02d}"] = [float(x) for x in tf.read_text().split()]
        test = args.split.startswith("hot_test")
        atomic_write_json(args.out.parent / f"{args.split}.json", {
            "generator": GENERATOR, "file": args.out.name,
            "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
            "teacher": {k: out[0].info[k] for k in ("teacher", "teacher_model", "teacher_version")
                        if k in out[0].info},
            "device": "cpu, 1 thread per trajectory",
            "protocol": __doc__.split("Protocol of each trajectory (cell, T):")[1].split("Several")[0]
            .strip(),
            "settings": {**common, "seeds": list(args.seed)},
            "equilibration_model": models,
            "lattice": {"a0": A0, "x48f": X0, "alpha_per_K": ALPHA},
            "trajectories_planned": [f"hot{i:02d}: {k}/{c} {T:g} K" for i, (k, c, T) in enumerate(plan)],
            "trajectories_done": len(done), "complete": len(done) == len(jobs),
            "n_structures": len(out),
            "wall_s_per_trajectory_total_and_hdnnp": times,
            "use": ("test only: never used for training or selection" if test else
                    "training: teacher-MD frames by the hot test set's protocol with other seeds; "
                    "no frame is shared with hot_test"),
        })
        log(f"{len(done)}/{len(jobs)} trajectories, {len(out)} structures written to {args.out}")

    if args.workers <= 1:
        for job in jobs:
            record(*_run_one(job, args))
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(_run_one, job, args) for job in jobs]
            for fut in as_completed(futures):
                record(*fut.result())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    sys.exit(main())
