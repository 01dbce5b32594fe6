#!/usr/bin/env python
"""Generate the teacher-labelled La2Zr2O7 training data set shipped with mdmlkit.

Protocol (details and rationale in README.md next to this script):

1. relax the cubic pyrochlore cell (a and the O48f x) with the teacher;
2. estimate Einstein spring constants k_el (eV/A^2) per site from finite
   differences of the teacher's forces, giving thermal displacement amplitudes
   sigma_el(T) = sqrt(k_B T / k_el) (harmonic, Einstein approximation);
3. build structures in the 22-atom primitive and the 88-atom conventional cell:
   "eos" (isotropic +-4 %), "strain" (random Voigt strains +-3 %, light rattle),
   "thermal" (rattled at 300-2000 K, +-1 % strain), "vacancy" (O vacancies),
   "frenkel" (O48f -> 8a Frenkel pairs), "antisite" (La<->Zr exchanges); defects
   are also rattled at 300-2000 K;
4. label them with the teacher (energy, forces, stress), in atomic checkpoint
   chunks, resumable;
5. run short Langevin MD with the teacher (kind "md") at 300-2000 K, one
   checkpoint file per trajectory;
6. drop structures whose labels are non-finite or whose largest force exceeds
   ``--max-force``; assign a fixed 80/10/10 train/val/test split stratified by
   kind (MD trajectories kept whole); write ``{train,val,test}.extxyz.gz`` and
   ``manifest.json``.

Every frame's comment line (``atoms.info``) carries its provenance: kind, cell,
temperature, strain, seed, teacher name/version/model and the generator version.

Usage::

    nice -n 5 python data/la2zr2o7/generate.py --n-structures 5400 --teacher chgnet
    python data/la2zr2o7/generate.py --n-structures 20 --teacher toy --out /tmp/smoke

Interrupted runs resume from the checkpoint directory ``--work`` (default
``~/.cache/mdmlkit/la2zr2o7-work-SEED-N``; delete it to start over).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

try:
    import mdmlkit  # noqa: F401
except ImportError:   # running from a source checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.io.frames import read_frames, write_frames
from mdmlkit.systems import pyrochlore as pyro
from mdmlkit.systems.la2zr2o7 import label, split_labels, summarize, validate_labelled
from mdmlkit.systems.teacher import resolve_teacher, teacher_info
from mdmlkit.utils import atomic_write_json

GENERATOR = "mdmlkit-la2zr2o7-generate/1"
#: linear thermal expansion coefficient of La2Zr2O7, 1/K (experiment ~9e-6 1/K)
ALPHA = 9.1e-6
T_MIN, T_MAX = 300.0, 2000.0

#: (kind, cell, fraction of --n-structures); remainders fixed by largest-remainder rounding
PLAN = [
    ("eos", "prim", 0.004), ("eos", "conv", 0.002),
    ("strain", "prim", 0.12), ("strain", "conv", 0.03),
    ("thermal", "prim", 0.32), ("thermal", "conv", 0.11),
    ("md", "prim", 0.04), ("md", "conv", 0.01),
    ("vacancy", "prim", 0.09), ("vacancy", "conv", 0.04),
    ("frenkel", "prim", 0.08), ("frenkel", "conv", 0.035),
    ("antisite", "prim", 0.08), ("antisite", "conv", 0.035),
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def plan_counts(n: int) -> dict[tuple[str, str], int]:
    """Structures per (kind, cell) summing to ``n`` (largest-remainder rounding)."""
    w = np.array([f for _, _, f in PLAN])
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: n - counts.sum()]:
        counts[i] += 1
    return {(k, c): int(m) for (k, c, _), m in zip(PLAN, counts)}


# ----------------------------------------------------------------------------- physics steps

def relax(calc, work: Path) -> dict:
    f = work / "relax.json"
    if f.is_file():
        return json.loads(f.read_text())
    t0 = time.perf_counter()
    res = pyro.relax_lattice(calc, a=10.8, x48f=0.33)
    res["wall_s"] = time.perf_counter() - t0
    atomic_write_json(f, res)
    return res


def einstein_constants(calc, a: float, x: float, work: Path, delta: float = 0.01) -> dict:
    """Einstein spring constant per site, eV/A^2: -dF_i/du_i averaged over x, y, z."""
    f = work / "einstein.json"
    if f.is_file():
        return json.loads(f.read_text())
    base = pyro.conventional_cell(a, x)
    sites = pyro.oxygen_sites(base)
    sym = np.array(base.get_chemical_symbols())
    pick = {"La": int(np.flatnonzero(sym == "La")[0]), "Zr": int(np.flatnonzero(sym == "Zr")[0]),
            "O48f": int(np.flatnonzero(sites == "48f")[0]), "O8b": int(np.flatnonzero(sites == "8b")[0])}
    k = {}
    for name, i in pick.items():
        diag = []
        for d in range(3):
            fs = []
            for sgn in (-1, 1):
                at = base.copy()
                at.positions[i, d] += sgn * delta
                at.calc = calc
                fs.append(at.get_forces()[i, d])
            diag.append(-(fs[1] - fs[0]) / (2 * delta))
        k[name] = float(np.mean(diag))
    if min(k.values()) <= 0.5:
        log(f"warning: soft or unstable site(s) {k}; clipping k to >= 0.5 eV/A^2")
        k = {n: max(v, 0.5) for n, v in k.items()}
    atomic_write_json(f, k)
    return k


def sigmas(atoms: Atoms, T: float, k: dict) -> np.ndarray:
    """Per-atom thermal displacement sigma (A, per Cartesian component) at T (K)."""
    sym = np.array(atoms.get_chemical_symbols())
    k_at = np.where(sym == "La", k["La"], np.where(sym == "Zr", k["Zr"], k["O48f"]))
    return np.sqrt(units.kB * T / k_at)


def rattle(atoms: Atoms, T: float, k: dict, rng: np.random.Generator) -> Atoms:
    out = atoms.copy()
    if T > 0:
        out.positions += rng.normal(size=(len(out), 3)) * sigmas(out, T, k)[:, None]
    return out


def _finish(atoms: Atoms) -> Atoms:
    """Wrap and round the geometry (1e-5 A positions, 1e-6 A cell) *before* labelling."""
    atoms.wrap()
    atoms.set_cell(np.round(atoms.cell.array, 6), scale_atoms=False)
    # apply_constraint=False: MD atoms carry FixCom, which would undo the rounding
    atoms.set_positions(np.round(atoms.get_positions(), 5), apply_constraint=False)
    return atoms


def build_static(kind: str, cell: str, count: int, a0: float, x0: float, k: dict, seed: int,
                 start_index: int, min_dist: float) -> list[Atoms]:
    """Unlabelled structures of one (kind, cell), deterministic in ``seed``."""
    frames = []
    idx = start_index
    if kind == "eos":
        scales = np.linspace(-0.04, 0.04, max(count, 1))[:count]
        for s in scales:
            base = pyro.primitive_cell(a0, x0) if cell == "prim" else pyro.conventional_cell(a0, x0)
            at = _finish(pyro.strained(base, [s, s, s, 0, 0, 0]))
            at.info.update(kind=kind, cell=cell, T=0.0, a_ref=a0, strain=np.array([s, s, s, 0, 0, 0.]),
                           defect="none", seed=seed, gen_index=idx)
            frames.append(at)
            idx += 1
        return frames
    while len(frames) < count:
        rng = np.random.default_rng([seed, idx])
        if kind == "strain":
            T = float(rng.uniform(0.0, 500.0))
            eps = rng.uniform(-0.03, 0.03, size=6)
        else:
            T = 0.0 if (kind != "thermal" and rng.random() < 0.1) else float(rng.uniform(T_MIN, T_MAX))
            eps = rng.uniform(-0.01, 0.01, size=6)
        a_ref = a0 * (1.0 + ALPHA * T)
        base = pyro.primitive_cell(a_ref, x0) if cell == "prim" else pyro.conventional_cell(a_ref, x0)
        defect = "none"
        if kind == "vacancy":
            n = 1 if cell == "prim" else int(rng.integers(1, 3))
            site = "8b" if rng.random() < 0.3 else "48f"
            base = pyro.oxygen_vacancies(base, n, rng, site=site)
            defect = f"{n}xV_O({site})"
        elif kind == "frenkel":
            base = pyro.frenkel_pair(base, rng, site="48f")
            defect = "O48f->8a"
        elif kind == "antisite":
            n = 1 if cell == "prim" else int(rng.integers(1, 4))
            base = pyro.antisite(base, n, rng)
            defect = f"{n}xLa<->Zr"
        base = pyro.strained(base, eps)
        for _attempt in range(50):   # redraw displacements (same T) on unphysical overlaps
            at = _finish(rattle(base, T, k, rng))
            if pyro.min_distance(at) >= min_dist:
                break
        else:
            raise RuntimeError(f"{kind}/{cell} structure {idx}: atoms closer than {min_dist} A "
                               f"in 50 draws at T = {T:.0f} K")
        at.info.update(kind=kind, cell=cell, T=round(T, 1), a_ref=round(a_ref, 6),
                       strain=np.round(eps, 6), defect=defect, seed=seed, gen_index=idx)
        frames.append(at)
        idx += 1
    return frames


def run_md(calc, cell: str, T: float, traj_id: int, n_frames: int, a0: float, x0: float,
           k: dict, seed: int, args, work: Path) -> list[Atoms]:
    """Langevin NVT MD with the teacher at a(T); ``n_frames`` labelled snapshots."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary
    try:   # ASE >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:   # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    f = work / "md" / f"traj_{cell}_{traj_id:03d}.extxyz"
    if f.is_file():
        return read_frames(f)
    rng = np.random.default_rng([seed, 10_000 + traj_id])
    a_ref = a0 * (1.0 + ALPHA * T)
    base = pyro.primitive_cell(a_ref, x0) if cell == "prim" else pyro.conventional_cell(a_ref, x0)
    atoms = rattle(base, T, k, rng)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=T, rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, timestep=args.md_timestep * units.fs, temperature_K=T,
                   friction=args.md_friction / units.fs, fixcm=False, rng=rng)
    dyn.run(args.md_equil_steps)
    frames = []
    for j in range(n_frames):
        dyn.run(args.md_interval)
        _finish(atoms)   # rounding here keeps the labels exact for the stored positions
        snap = Atoms(atoms.numbers, positions=atoms.get_positions(), cell=atoms.cell, pbc=True)
        snap.calc = SinglePointCalculator(snap, energy=float(atoms.get_potential_energy()),
                                          forces=atoms.get_forces().copy(),
                                          stress=atoms.get_stress(voigt=True).copy())
        t_fs = (args.md_equil_steps + (j + 1) * args.md_interval) * args.md_timestep
        snap.info.update(kind="md", cell=cell, T=float(T), a_ref=round(a_ref, 6),
                         strain=np.zeros(6), defect="none", seed=seed, gen_index=-1,
                         md_traj=f"{cell}{traj_id:03d}", md_time_fs=float(t_fs),
                         T_kinetic=round(float(atoms.get_temperature()), 1))
        frames.append(snap)
    write_frames(frames, f)
    return frames


def add_timing(work: Path, stage: str, wall_s: float, **counts) -> dict:
    """Accumulate wall time of ``stage`` over sessions (resumed runs add ~0) in timing.json."""
    f = work / "timing.json"
    timing = json.loads(f.read_text()) if f.is_file() else {}
    entry = timing.setdefault(stage, {"wall_s": 0.0})
    entry["wall_s"] += wall_s
    entry.update(counts)
    atomic_write_json(f, timing)
    return timing


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n-structures", type=int, default=5400, help="target number of structures")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                   help="output directory for {train,val,test}.extxyz.gz and manifest.json")
    p.add_argument("--work", type=Path, default=None,
                   help="checkpoint directory (default ~/.cache/mdmlkit/la2zr2o7-work-SEED-N)")
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--teacher", default="chgnet",
                   help="'chgnet', 'toy' (alias 'emt-test'; fast fake for smoke runs) or "
                        "'package.module:factory' returning an ASE calculator")
    p.add_argument("--device", default="cpu", help="torch device for CHGNet")
    p.add_argument("--threads", type=int, default=1, help="torch threads (CHGNet)")
    p.add_argument("--workers", type=int, default=1, help="labelling processes")
    p.add_argument("--chunk-size", type=int, default=100, help="structures per checkpoint chunk")
    p.add_argument("--max-force", type=float, default=25.0,
                   help="reject structures whose largest |F| exceeds this, eV/A")
    p.add_argument("--min-distance", type=float, default=1.5,
                   help="redraw structures with atoms closer than this, A")
    p.add_argument("--md-timestep", type=float, default=2.0, help="fs")
    p.add_argument("--md-friction", type=float, default=0.02, help="Langevin friction, 1/fs")
    p.add_argument("--md-equil-steps", type=int, default=100)
    p.add_argument("--md-interval", type=int, default=10, help="steps between MD snapshots")
    p.add_argument("--md-frames-per-traj", type=int, default=20)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.n_structures < 1:
        raise SystemExit("--n-structures must be >= 1")
    out = args.out.resolve()
    work = (args.work or Path.home() / ".cache" / "mdmlkit"
            / f"la2zr2o7-work-{args.seed}-{args.n_structures}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    factory = resolve_teacher(args.teacher, device=args.device, threads=args.threads)
    calc = factory()
    prov = teacher_info(calc)
    log(f"teacher: {prov}; out={out}; work={work}")

    settings = {"n_structures": args.n_structures, "seed": args.seed, "teacher": args.teacher,
                **prov}
    sfile = work / "settings.json"
    if sfile.is_file() and json.loads(sfile.read_text()) != json.loads(json.dumps(settings)):
        raise SystemExit(f"{work} holds a run with different settings "
                         f"({sfile.read_text().strip()}); delete it or use --work")
    atomic_write_json(sfile, settings)

    rel = relax(calc, work)
    a0, x0 = rel["a"], rel["x48f"]
    log(f"relaxed: a = {a0:.5f} A, x48f = {x0:.5f}, E = {rel['energy_per_atom']:.5f} eV/atom, "
        f"max|F| = {rel['max_force']:.1e} eV/A, p = {rel['pressure'] / units.GPa:.3f} GPa")
    k = einstein_constants(calc, a0, x0, work)
    log("Einstein k (eV/A^2): " + ", ".join(f"{n}={v:.2f}" for n, v in k.items())
        + "; sigma(1000 K) = " + ", ".join(f"{n}={math.sqrt(units.kB * 1000 / v):.3f} A"
                                          for n, v in k.items()))

    counts = plan_counts(args.n_structures)
    log("plan: " + ", ".join(f"{kd}/{c}={m}" for (kd, c), m in counts.items()))

    # --- static structures, labelled per cell size (separate checkpoints and timings)
    labelled, failures = [], {}
    index = 0
    for cell in ("prim", "conv"):
        frames = []
        t0 = time.perf_counter()
        for (kind, c), m in counts.items():
            if c != cell or kind == "md" or m == 0:
                continue
            frames += build_static(kind, cell, m, a0, x0, k, args.seed, index, args.min_distance)
            index += m
        log(f"{cell}: built {len(frames)} structures ({time.perf_counter() - t0:.0f} s)")
        for at in frames:
            at.info.update(prov)
            at.info["generator"] = GENERATOR
        t0 = time.perf_counter()
        res = label(frames, factory if args.workers > 1 else calc,
                    checkpoint=work / f"labels_{cell}", progress=not args.no_progress,
                    on_error="skip", chunk_size=args.chunk_size, workers=args.workers,
                    desc=f"labelling {cell}")
        dt = time.perf_counter() - t0
        timing = add_timing(work, f"label_{cell}", dt, n_structures=len(frames))
        log(f"{cell}: {len(res)} labelled, {len(res.failures)} failed, {dt:.0f} s this session, "
            f"{timing[f'label_{cell}']['wall_s'] / max(len(frames), 1):.3f} s per structure overall")
        labelled += list(res)
        failures.update({f"{cell}:{i}": r for i, r in res.failures.items()})

    # --- teacher MD
    t0 = time.perf_counter()
    n_md_steps = 0
    for cell in ("prim", "conv"):
        n_md = counts[("md", cell)]
        if n_md == 0:
            continue
        n_traj = max(1, math.ceil(n_md / args.md_frames_per_traj))
        temps = np.linspace(T_MIN, T_MAX, n_traj) if n_traj > 1 else np.array([1000.0])
        per = [n_md // n_traj + (1 if j < n_md % n_traj else 0) for j in range(n_traj)]
        for j, (T, nf) in enumerate(zip(temps, per)):
            tt = time.perf_counter()
            snaps = run_md(calc, cell, float(T), j, nf, a0, x0, k, args.seed, args, work)
            for s in snaps:
                s.info.update(prov)
                s.info["generator"] = GENERATOR
            labelled += snaps
            n_md_steps += args.md_equil_steps + nf * args.md_interval
            log(f"MD {cell} traj {j} at {T:.0f} K: {len(snaps)} snapshots "
                f"({time.perf_counter() - tt:.0f} s)")
    timing = add_timing(work, "md", time.perf_counter() - t0, steps=n_md_steps)

    # --- quality filter
    kept, rejected = [], {}
    for at in labelled:
        fmax = float(np.linalg.norm(at.get_forces(), axis=1).max())
        bad = not (np.isfinite(at.get_potential_energy()) and np.isfinite(fmax)
                   and np.all(np.isfinite(at.get_stress())))
        if bad or fmax > args.max_force:
            key = f"{at.info['kind']}/{at.info['cell']}/{at.info.get('gen_index')}"
            rejected[key] = "non-finite label" if bad else f"max|F| = {fmax:.1f} eV/A"
            continue
        kept.append(at)
    if rejected:
        log(f"rejected {len(rejected)} structures: {dict(list(rejected.items())[:10])}")

    # --- split, round labels, write
    kinds = [f"{a.info['kind']}-{a.info['cell']}" for a in kept]
    groups = [a.info.get("md_traj", f"s{i}") for i, a in enumerate(kept)]
    split = split_labels(kinds, (0.8, 0.1, 0.1), seed=args.seed, groups=groups)
    for at, s in zip(kept, split):
        at.info["split"] = str(s)
        for key in [k for k in at.arrays if k not in ("numbers", "positions")]:
            del at.arrays[key]   # only species, positions and labels are shipped
        r = at.calc.results
        # round via the 8-decimal checkpoint representation, so that fresh and
        # resumed runs give identical files
        at.calc = SinglePointCalculator(at, energy=round(round(float(r["energy"]), 8), 6),
                                        forces=np.round(np.round(r["forces"], 8), 5),
                                        stress=np.round(np.round(r["stress"], 10), 7))
    validate_labelled(kept, need=("energy", "forces", "stress"), source="generated set")
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("train", "val", "test"):
        part = [a for a in kept if a.info["split"] == name]
        path = write_frames(part, out / f"{name}.extxyz.gz")
        files[path.name] = {"n_structures": len(part), "bytes": path.stat().st_size,
                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    summ = summarize(kept)
    per_kind = {}
    for a in kept:
        key = f"{a.info['kind']}/{a.info['cell']}"
        d = per_kind.setdefault(key, {"train": 0, "val": 0, "test": 0})
        d[a.info["split"]] += 1
    manifest = {
        "generator": GENERATOR, "settings": vars(args) | {"out": str(out), "work": str(work)},
        "teacher": prov, "relaxed": rel, "einstein_k_eV_per_A2": k, "alpha_per_K": ALPHA,
        "plan": {f"{kd}/{c}": m for (kd, c), m in counts.items()},
        "counts_by_kind_cell_split": per_kind, "files": files, "rejected": rejected,
        "label_failures": failures,
        "timing_s": timing | {"relax": rel.get("wall_s")},   # summed over resumed sessions
        "total_wall_s_this_session": time.perf_counter() - t_start,
        "summary": summ.as_dict(),
    }
    atomic_write_json(out / "manifest.json", manifest)
    log(str(summ))
    written = ", ".join(f"{n} ({v['n_structures']} structures, {v['bytes'] / 1e6:.2f} MB)"
                        for n, v in files.items())
    log(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
