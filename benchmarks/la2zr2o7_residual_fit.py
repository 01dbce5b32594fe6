"""Would longer-range descriptors help?  Fit a trained HDNNP's energy residuals with and without them.

A cheap test before a long training run: take a trained model, compute its energy
residuals (teacher − model, eV per structure) on the fixed La2Zr2O7 splits, and fit
them with small per-element networks (one hidden tanh layer, energies only, full
batch Adam, best validation iteration kept) on

* ``model_features``: the model's own scaled symmetry functions -- what more
  training of the same descriptors could still learn;
* ``model_plus_long_radial``: the same plus the radial functions of
  :func:`mdmlkit.descriptors.long_radial_functions` reaching RC (standardised).

If only the second fit lowers the test RMSE, the missing energy lies beyond the
model's cutoff.  This is how the 9 Å radial functions of the shipped model were chosen,
with the 6 Å model of training stage 3 (commit 6069a1a)::

    git show 6069a1a:models/la2zr2o7/model.pt > /tmp/stage3.pt
    python benchmarks/la2zr2o7_residual_fit.py --model /tmp/stage3.pt    # ~6 min on 1 core

Writes ``benchmarks/results/la2zr2o7_residual_fit.json``.  Energies: meV/atom.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def features(model, long_acsf, frames, batch_size: int = 32) -> dict:
    """Residuals (eV), atom counts, kinds and per-element feature rows with their structure."""
    import torch

    from mdmlkit.descriptors import AtomsBatch

    els = model.elements
    out = {"resid": [], "nat": [], "G": {e: [] for e in els}, "L": {e: [] for e in els},
           "sid": {e: [] for e in els}}
    for b in range(0, len(frames), batch_size):
        chunk = frames[b:b + batch_size]
        batch = AtomsBatch.from_atoms(chunk, els, long_acsf.cutoff, dtype=model.dtype)
        with torch.no_grad():
            G = model.descriptors(batch)
            energy = model.energy_from_descriptors(G, batch)
            energy = energy.new_zeros(len(chunk)).index_add(0, batch.structure, energy).numpy()
            L = long_acsf(batch)
        for e in els:
            idx = batch.element_index[e]
            out["G"][e].append(model.scalers[e](G[e]).numpy())
            out["L"][e].append(L[e].numpy())
            out["sid"][e].append(batch.structure[idx].numpy() + b)
        out["resid"] += [a.get_potential_energy() - x for a, x in zip(chunk, energy)]
        out["nat"] += [len(a) for a in chunk]
    return {"resid": np.array(out["resid"]), "nat": np.array(out["nat"], dtype=float),
            "kind": np.array([a.info.get("kind", "?") for a in frames]),
            **{k: {e: np.concatenate(v[e]) for e in els} for k, v in out.items() if k in ("G", "L", "sid")}}


def fit(data: dict, els: list, use_long: bool, hidden: int, iterations: int, seed: int) -> dict:
    """Per-element one-hidden-layer networks on the residuals; errors at the best validation
    iteration (checked every 50)."""
    import torch

    torch.manual_seed(seed)
    mu = {e: data["train"]["L"][e].mean(0) for e in els}
    sd = {e: data["train"]["L"][e].std(0) + 1e-12 for e in els}

    def tensors(split):
        d = data[split]
        x = {e: torch.as_tensor(np.concatenate([d["G"][e], (d["L"][e] - mu[e]) / sd[e]], 1)
                                if use_long else d["G"][e]) for e in els}
        return x, {e: torch.as_tensor(d["sid"][e]) for e in els}, torch.as_tensor(d["resid"]), \
            torch.as_tensor(d["nat"])

    sets = {s: tensors(s) for s in data}
    n_in = sets["train"][0][els[0]].shape[1]
    nets = {e: torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
                                   torch.nn.Linear(hidden, 1)).double() for e in els}
    for net in nets.values():           # start from "no correction"
        torch.nn.init.zeros_(net[2].weight)
        torch.nn.init.zeros_(net[2].bias)

    def per_atom_error(split):          # (teacher - model - correction) / N, eV/atom
        x, sid, r, nat = sets[split]
        e = torch.zeros_like(r)
        for el in els:
            e = e.index_add(0, sid[el], nets[el](x[el]).squeeze(1))
        return (r - e) / nat

    def rmse(split):
        with torch.no_grad():
            return 1000.0 * float(per_atom_error(split).pow(2).mean().sqrt())

    def state():
        return {e: {k: v.clone() for k, v in n.state_dict().items()} for e, n in nets.items()}

    opt = torch.optim.Adam([p for n in nets.values() for p in n.parameters()], lr=3e-3)
    best = {"val": rmse("val"), "iteration": 0, "state": state()}     # iteration 0: no correction
    for it in range(1, iterations + 1):
        opt.zero_grad()
        per_atom_error("train").pow(2).mean().backward()
        opt.step()
        if it % 50 == 0 and rmse("val") < best["val"]:
            best = {"val": rmse("val"), "iteration": it, "state": state()}
    for e, n in nets.items():
        n.load_state_dict(best["state"][e])
    with torch.no_grad():
        err = 1000.0 * per_atom_error("test").numpy()
    kinds = data["test"]["kind"]
    return {"best_iteration": best["iteration"], "n_inputs": n_in,
            "rmse_meV_atom": {s: rmse(s) for s in ("train", "val", "test")},
            "test_by_kind_meV_atom": {k: float(np.sqrt(np.mean(err[kinds == k] ** 2)))
                                      for k in sorted(set(kinds))}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="trained HDNNP model.pt")
    p.add_argument("--long-radial", type=float, default=9.0, help="reach of the extra radial functions, Å")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "la2zr2o7_residual_fit.json"))
    args = p.parse_args(argv)
    import torch

    from mdmlkit.descriptors import ACSF, SymmetryFunctionSet, long_radial_functions
    from mdmlkit.potential import HDNNP
    from mdmlkit.systems.la2zr2o7 import load_la2zr2o7
    from mdmlkit.utils import atomic_write_json, machine_info

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = HDNNP.load(args.model)
    els = model.elements
    long_acsf = ACSF(SymmetryFunctionSet(els, long_radial_functions(els, args.long_radial),
                                         model.sfs.cutoff_type, model.sfs.alpha))
    data = {s: features(model, long_acsf, load_la2zr2o7(s)) for s in ("train", "val", "test")}
    model_rmse = {s: 1000.0 * float(np.sqrt(np.mean((d["resid"] / d["nat"]) ** 2))) for s, d in data.items()}
    print(f"model RMSE (meV/atom): {model_rmse}", flush=True)
    fits = {}
    for name, use_long in (("model_features", False), ("model_plus_long_radial", True)):
        fits[name] = fit(data, els, use_long, args.hidden, args.iterations, args.seed)
        print(f"{name:24s} corrected RMSE (meV/atom): "
              + ", ".join(f"{s} {v:.3f}" for s, v in fits[name]["rmse_meV_atom"].items()), flush=True)
    result = {"description": __doc__.split("\n\n")[0], "model": args.model, "model_cutoff_A": model.cutoff,
              "long_radial_A": args.long_radial, "hidden": args.hidden, "iterations": args.iterations,
              "model_rmse_meV_atom": model_rmse, "fits": fits, "wall_s": time.perf_counter() - t0,
              "machine": machine_info()}
    atomic_write_json(args.output, result)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
