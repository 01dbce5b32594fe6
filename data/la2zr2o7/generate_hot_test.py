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

Resumable: each finished trajectory is kept in ``--work``; the output file and
``hot_test.json`` (settings, counts, timings) are rewritten after every trajectory,
so a partial run is usable.

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


def trajectory(t: int, kind: str, cell: str, T: float, teacher, args, work: Path) -> list:
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
    rng = np.random.default_rng([args.seed, t])
    atoms, defect = start_structure(kind, cell, T, rng)
    atoms.calc = HDNNPCalculator(ROOT / "models" / "la2zr2o7", device="cpu", compile="numba",
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
                         defect=defect, seed=args.seed, md_traj=f"hot{t:02d}",
                         hdnnp_equil_fs=args.equil_steps * args.timestep,
                         md_time_fs=float(step * args.timestep),
                         T_kinetic=round(float(atoms.get_temperature()), 1), split=args.split)
        frames.append(snap)
    write_frames(frames, f)
    log(f"traj {t:2d} {kind:8s} {cell} {T:5.0f} K: {len(frames)} frames, HDNNP {t_hdnnp:.0f} s, "
        f"total {time.perf_counter() - t0:.0f} s")
    (work / f"hot_{t:02d}.time").write_text(f"{time.perf_counter() - t0:.1f} {t_hdnnp:.1f}\n")
    return frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=10, help="snapshots per trajectory")
    p.add_argument("--interval", type=int, default=25, help="teacher steps between snapshots")
    p.add_argument("--equil-steps", type=int, default=250, help="HDNNP equilibration steps")
    p.add_argument("--teacher-equil-steps", type=int, default=25, help="teacher steps before sampling")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--friction", type=float, default=0.02, help="Langevin friction, 1/fs")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mdmlkit" / "la2zr2o7_hot")
    p.add_argument("--out", type=Path, default=HERE / "hot_test.extxyz.gz")
    p.add_argument("--split", default="hot_test",
                   help="atoms.info['split'] and the manifest name <split>.json (another --seed, "
                        "--split and --out make teacher-MD *training* frames by the same protocol)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from mdmlkit.io.frames import write_frames
    from mdmlkit.systems.teacher import chgnet_calculator, teacher_info
    from mdmlkit.utils import atomic_write_json

    args.work.mkdir(parents=True, exist_ok=True)
    from mdmlkit.utils import check_run_settings

    check_run_settings(args.work, {k: v for k, v in vars(args).items() if k not in ("work", "out", "split")})
    teacher = chgnet_calculator(device="cpu", threads=1)
    plan = [(kind, cell, T) for kind, cell in CELLS for T in TEMPERATURES]
    # interleave cells and temperatures so that a partial set covers all of them
    order = [c * len(TEMPERATURES) + (c + k) % len(TEMPERATURES)
             for k in range(len(TEMPERATURES)) for c in range(len(CELLS))]
    done: list = []
    for n, t in enumerate(order):
        kind, cell, T = plan[t]
        done.append((t, trajectory(t, kind, cell, T, teacher, args, args.work)))
        frames = [a for _, fr in sorted(done, key=lambda x: x[0]) for a in fr]
        write_frames(frames, args.out)
        times = {}
        for tt, _ in done:
            tf = args.work / f"hot_{tt:02d}.time"
            if tf.is_file():
                times[f"hot{tt:02d}"] = [float(x) for x in tf.read_text().split()]
        atomic_write_json(args.out.parent / f"{args.split}.json", {
            "generator": GENERATOR, "file": args.out.name,
            "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
            "teacher": teacher_info(teacher), "device": "cpu, 1 thread",
            "protocol": __doc__.split("Protocol of each trajectory (cell, T):")[1].split("Resumable")[0]
            .strip(),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("work", "out", "split")},
            "lattice": {"a0": A0, "x48f": X0, "alpha_per_K": ALPHA},
            "trajectories_planned": [f"hot{i:02d}: {k}/{c} {T:g} K" for i, (k, c, T) in enumerate(plan)],
            "trajectories_done": len(done), "complete": len(done) == len(plan),
            "n_structures": len(frames),
            "wall_s_per_trajectory_total_and_hdnnp": times,
            "use": "test only: never used for training or selection",
        })
        log(f"{n + 1}/{len(plan)} trajectories, {len(frames)} structures written to {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    sys.exit(main())
