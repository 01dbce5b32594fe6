"""Benchmark: the atomic networks of the fused MD path in numpy vs through torch autograd.

``HDNNPCalculator(compile=True)`` evaluates the element networks and dE/dG with
:class:`mdmlkit.descriptors.kernels.networks.NetworkTables` (numpy matrix products, the
scaling folded into the first layer).  This benchmark times a full energy + forces call
of the calculator with those networks against the same calculator whose networks run
as before, through the model's torch modules and one autograd backward pass
(``TorchNetworks`` below), interleaved call by call in one process (so load changes
hit both alike), one thread, on the conventional pyrochlore cell (88 atoms) and its
2×2×2 supercell (704), for the shipped models.  Forces of the two must agree to 1e-12
relative.  Writes ``benchmarks/results/networks.json``.

Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_networks.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MODELS = {"la2zr2o7": ROOT / "models" / "la2zr2o7", "la2zr2o7-fast": ROOT / "models" / "la2zr2o7-fast"}


class TorchNetworks:
    """The former path: the model's torch networks and autograd for dE/dG."""

    def evaluate(self, model, G, rows):
        tG = torch.from_numpy(G).requires_grad_(True)
        idx = {el: torch.from_numpy(r) for el, r in zip(model.elements, rows)}
        species = torch.empty(G.shape[0], dtype=torch.long)
        for k, el in enumerate(model.elements):
            species[idx[el]] = k
        with torch.enable_grad():
            Gs = {el: tG.index_select(0, idx[el])[:, :model.scalers[el].n_features] for el in model.elements}
            e = model.atomic_energies_from(Gs, idx, species)
            (g,) = torch.autograd.grad(e.sum(), tG)
        return e.detach().numpy(), np.ascontiguousarray(g.numpy())


def main(argv=None) -> dict:
    from bench_vs_n2p2 import pyrochlore_cells

    from mdmlkit.potential import HDNNPCalculator
    from mdmlkit.utils import atomic_write_json, machine_info

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[88, 704])
    p.add_argument("--calls", type=int, default=None, help="timed calls per variant (default 40 / 8)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "networks.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = machine_info(("numpy", "torch", "numba"), threads=1)
    cells = pyrochlore_cells(args.sizes)
    rows = []
    for name, path in MODELS.items():
        for n, cell in cells.items():
            atoms = {}
            for variant in ("numpy", "torch"):
                a = cell.copy()
                a.calc = calc = HDNNPCalculator(path, compile=True, n_threads=1, extrapolation="ignore")
                a.get_forces()
                if variant == "torch":
                    calc._fused.networks = TorchNetworks()
                a.positions += 1e-5
                a.get_forces()                          # warm-up of the variant
                atoms[variant] = a
            calls = args.calls or (40 if n <= 100 else 8)
            times = {k: [] for k in atoms}
            for _ in range(calls):
                for k, a in atoms.items():
                    a.positions += 1e-5
                    t = time.perf_counter()
                    a.get_forces()
                    times[k].append(time.perf_counter() - t)
            f_new, f_old = atoms["numpy"].get_forces(), atoms["torch"].get_forces()
            dev = float(np.abs(f_new - f_old).max() / np.abs(f_old).max())
            if dev > 1e-12:
                raise RuntimeError(f"{name}, {n} atoms: numpy and torch networks differ by {dev:.1e}")
            med = {k: statistics.median(v) * 1e6 / n for k, v in times.items()}
            row = {"model": name, "n_atoms": n, "calls": calls, "numpy_us_per_atom": med["numpy"],
                   "torch_us_per_atom": med["torch"], "speedup": med["torch"] / med["numpy"],
                   "forces_max_rel_diff": dev}
            rows.append(row)
            print(f"{name:14s} {n:5d} atoms  numpy networks {med['numpy']:7.1f}  torch networks "
                  f"{med['torch']:7.1f} µs/atom  speed-up {row['speedup']:.2f}", flush=True)
    out = {"benchmark": "bench_networks", "what": "energy + forces call of HDNNPCalculator(compile=True), "
           "1 thread, interleaved, median", "machine": start,
           "load_average_end": machine_info(())["load_average"], "rows": rows}
    atomic_write_json(args.out, out)
    print(f"-> {args.out}")
    return out


if __name__ == "__main__":
    main()
