"""Benchmark: mdmlkit symmetry functions (values, values + autograd forces) vs DScribe.

La2Zr2O7 pyrochlore (Fd-3m origin 2, a = 10.8 Å; La 16d, Zr 16c, O 48f x=0.33,
O' 8b), 88-atom cell and 704-atom 2x2x2 supercell, rattled by 0.05 Å; about 60
functions per element with rc = 6 Å.  Two sets: type 2 + type 9 (angular by
moments) and type 2 + type 3 (angular by explicit triplets).  Times are the
best of several repeats (the machine is shared), per atom, and include
building the neighbour list / batch.  DScribe's ACSF (C++) is timed on the
same structures with a matching parameter count (values only; its
derivatives are numerical).

Writes ``benchmarks/results/descriptors.json`` atomically.

    python benchmarks/bench_descriptors.py [--threads 1] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from ase.spacegroup import crystal

from mdmlkit.descriptors import ACSF, AtomsBatch, SymmetryFunctionSet, generate_set, neighbor_list
from mdmlkit.descriptors.neighbors import have_matscipy
from mdmlkit.utils import atomic_write_json, machine_info

ELEMENTS = ["La", "Zr", "O"]
RC = 6.0
OUT = Path(__file__).resolve().parent / "results" / "descriptors.json"


def pyrochlore(a: float = 10.8, x: float = 0.33):
    """La2Zr2O7, Fd-3m (227) origin choice 2: La 16d, Zr 16c, O 48f, O' 8b."""
    return crystal(["La", "Zr", "O", "O"],
                   basis=[(0.5, 0.5, 0.5), (0.0, 0.0, 0.0), (x, 0.125, 0.125),
                          (0.375, 0.375, 0.375)],
                   spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90])


def timeit(fn, repeats: int) -> dict:
    fn()                                   # warm-up (allocator, caches)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return {"best_s": min(ts), "median_s": statistics.median(ts), "repeats": repeats}


def bench_ours(atoms, sfs, repeats, device, dtype=torch.float64) -> dict:
    acsf = ACSF(sfs).to(device, dtype)
    rng = np.random.default_rng(0)
    w = {el: torch.as_tensor(rng.normal(size=n), dtype=dtype, device=device)
         for el, n in sfs.n_features.items()}
    n = len(atoms)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def values():
        b = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device=device, dtype=dtype)
        with torch.no_grad():
            acsf(b)
        sync()

    def forces():
        b = AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device=device, dtype=dtype)
        b.positions.requires_grad_(True)
        G = acsf(b)
        E = sum((G[el] * w[el]).sum() for el in G)
        (F,) = torch.autograd.grad(E, b.positions)
        sync()

    def batch_only():
        AtomsBatch.from_atoms(atoms, sfs.elements, sfs.cutoff, device=device, dtype=dtype)
        sync()

    res = {"batch_build": timeit(batch_only, repeats), "values": timeit(values, repeats),
           "values_and_forces": timeit(forces, repeats)}
    for v in res.values():
        v["best_us_per_atom"] = v["best_s"] / n * 1e6
        v["median_us_per_atom"] = v["median_s"] / n * 1e6
    return res


def bench_neighbors(atoms, repeats) -> dict:
    out = {}
    methods = ["ase", "brute"] + (["matscipy"] if have_matscipy() else [])
    for m in methods:
        r = timeit(lambda m=m: neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, RC, m),
                   repeats)
        out[m] = {"best_ms": r["best_s"] * 1e3, "median_ms": r["median_s"] * 1e3}
    return out


def dscribe_params(sfs: SymmetryFunctionSet):
    el = sfs.elements[0]
    g2 = sorted({(f.eta, f.rs) for f in sfs.functions[el] if f.type == 2})
    g5 = sorted({(f.eta, f.zeta, f.lambda_) for f in sfs.functions[el] if f.is_angular})
    return [list(p) for p in g2], [list(p) for p in g5]


def bench_dscribe(atoms, sfs, repeats, numerical_derivatives: bool) -> dict | None:
    try:
        from dscribe.descriptors import ACSF as DACSF
    except ImportError:
        return None
    g2, g5 = dscribe_params(sfs)
    key = "g5_params" if sfs.functions[sfs.elements[0]][-1].type == 9 else "g4_params"
    d = DACSF(species=ELEMENTS, r_cut=RC, g2_params=g2, **{key: g5})
    n = len(atoms)
    r = timeit(lambda: d.create(atoms, n_jobs=1), repeats)
    out = {"n_features": int(d.get_number_of_features()), "angular": key,
           "values": {**r, "best_us_per_atom": r["best_s"] / n * 1e6,
                      "median_us_per_atom": r["median_s"] / n * 1e6}}
    if numerical_derivatives:
        t = time.perf_counter()
        d.derivatives(atoms, method="numerical", attach=True, n_jobs=1)
        t = time.perf_counter() - t
        out["values_and_numerical_derivatives"] = {"best_s": t, "repeats": 1,
                                                   "best_us_per_atom": t / n * 1e6}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: the development machine is shared)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--no-dscribe-derivatives", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    sets = {
        "type2+type9": generate_set(ELEMENTS, rc=RC, n_radial=4, n_angular=2,
                                                    zetas=(1, 4), angular_type=9),
        "type2+type3": generate_set(ELEMENTS, rc=RC, n_radial=4, n_angular=2,
                                                    zetas=(1, 4), angular_type=3),
    }
    base = pyrochlore()
    systems = {}
    for rep in [(1, 1, 1), (2, 2, 2)]:
        at = base.repeat(rep)
        at.rattle(0.05, seed=1)
        systems[len(at)] = at
    results = {"machine": machine_info(("numpy", "torch", "dscribe", "matscipy")), "settings": vars(args), "systems": {}}
    for n, atoms in systems.items():
        reps = args.repeats if n < 500 else max(2, args.repeats // 2)
        entry = {"n_atoms": n, "neighbor_list": bench_neighbors(atoms, reps), "sets": {}}
        b = AtomsBatch.from_atoms(atoms, ELEMENTS, RC, device="cpu")
        entry["n_pairs"] = int(b.pair_i.numel())
        for name, sfs in sets.items():
            e = {"n_features": sfs.n_features, "mdmlkit": bench_ours(atoms, sfs, reps, device)}
            numerical = (n < 500 and name == "type2+type9" and not args.no_dscribe_derivatives)
            e["dscribe"] = bench_dscribe(atoms, sfs, reps, numerical_derivatives=numerical)
            entry["sets"][name] = e
            ours = e["mdmlkit"]
            v = ours["values"]["best_us_per_atom"]
            vf = ours["values_and_forces"]["best_us_per_atom"]
            line = f"{n:4d} atoms {name}: values {v:7.1f} µs/atom, values+forces {vf:7.1f} µs/atom"
            ds = e["dscribe"]
            if ds:
                line += f"; DScribe values {ds['values']['best_us_per_atom']:7.1f} µs/atom"
                if "values_and_numerical_derivatives" in ds:
                    nd = ds["values_and_numerical_derivatives"]["best_us_per_atom"]
                    line += f" (+numerical derivatives {nd:.0f})"
            print(line, flush=True)
        print(f"{n:4d} atoms neighbour list (ms): " + ", ".join(
            f"{k} {v['best_ms']:.1f}" for k, v in entry["neighbor_list"].items()), flush=True)
        results["systems"][str(n)] = entry
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
