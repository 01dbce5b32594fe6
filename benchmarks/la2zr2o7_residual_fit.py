"""Would longer-range descriptors help?  Fit a trained HDNNP's energy residuals with and without them.

A cheap test before a long training run: take a trained model, compute its energy
residuals (teacher − model, eV per structure) on the fixed La2Zr2O7 splits, and fit
them with small per-element networks (one hidden tanh layer, energies only, full
batch Adam, best validation iteration kept) on

* ``model_features``: the model's own scaled symmetry functions -- what more
  training of the same descriptors could still learn;
* ``model_plus_long_radial``: the same plus the radial functions of
  :func:`mdmlkit.descriptors.long_radial_functions` reaching RC (standardised; those
  the model has already are left out);
* ``model_plus_angular`` (``--hot`` only): the same plus a denser grid of type-9
  angular functions within 6 Å (:func:`mdmlkit.descriptors.generate_set`: 4 shifted
  Gaussians from 1.5 Å, zeta 1/4/16, both lambdas; those the model has are left out).

If only the second fit lowers the test RMSE, the missing energy lies beyond the
model's cutoff.  This is how the 9 Å radial functions of the shipped model were chosen,
with the 6 Å model of training stage 3 (commit 6069a1a)::

    git show 6069a1a:models/la2zr2o7/model.pt > /tmp/stage3.pt
    python benchmarks/la2zr2o7_residual_fit.py --model /tmp/stage3.pt    # ~6 min on 1 core

``--hot`` asks the same of the hot error (RC default 12 Å): the residual networks are
fitted on the training split plus the ``hot_md_train`` frames of all but the last of its
MD seeds (teacher MD at 2000–3000 K), the iteration is chosen on the validation split
plus the last seed's frames (``hot_val``), and the fits are judged on the hot test set
as well.  If the model's own features already fit the hot residuals, more training of
the same descriptors (capacity) can remove them; if only richer features do, the
descriptors are what limits it.  ``--hot-train-seeds K`` fits on the first K seeds only
(0, 1, 2: a learning curve in hot trajectories); ``--own-only`` skips the extra features::

    python benchmarks/la2zr2o7_residual_fit.py --model models/la2zr2o7/model.pt --hot   # ~23 min

Writes ``benchmarks/results/la2zr2o7_residual_fit.json`` (``_hot.json`` with ``--hot``).
Energies: meV/atom.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def features(model, extra_acsf, frames, batch_size: int = 32) -> dict:
    """Residuals (eV), atom counts, kinds and per-element feature rows with their structure;
    ``L[name][el]``: the raw values of each extra ACSF ``extra_acsf[name]``."""
    import torch

    from mdmlkit.descriptors import AtomsBatch

    els = model.elements
    rc = max([model.cutoff] + [a.cutoff for a in extra_acsf.values()])
    out = {"resid": [], "nat": [], "G": {e: [] for e in els}, "sid": {e: [] for e in els},
           "L": {k: {e: [] for e in els} for k in extra_acsf}}
    for b in range(0, len(frames), batch_size):
        chunk = frames[b:b + batch_size]
        batch = AtomsBatch.from_atoms(chunk, els, rc, dtype=model.dtype)
        with torch.no_grad():
            G = model.descriptors(batch)
            energy = model.energy_from_descriptors(G, batch)
            energy = energy.new_zeros(len(chunk)).index_add(0, batch.structure, energy).numpy()
            L = {k: a(batch) for k, a in extra_acsf.items()}
        for e in els:
            idx = batch.element_index[e]
            out["G"][e].append(model.scalers[e](G[e]).numpy())
            for k in extra_acsf:
                out["L"][k][e].append(L[k][e].numpy())
            out["sid"][e].append(batch.structure[idx].numpy() + b)
        out["resid"] += [a.get_potential_energy() - x for a, x in zip(chunk, energy)]
        out["nat"] += [len(a) for a in chunk]
    return {"resid": np.array(out["resid"]), "nat": np.array(out["nat"], dtype=float),
            "kind": np.array([a.info.get("kind", "?") for a in frames]),
            **{k: {e: np.concatenate(v[e]) for e in els} for k, v in out.items() if k in ("G", "sid")},
            "L": {k: {e: np.concatenate(v[e]) for e in els} for k, v in out["L"].items()}}


def fit(data: dict, els: list, extra: str | None, hidden: int, iterations: int, seed: int) -> dict:
    """Per-element one-hidden-layer networks on the residuals, on the model's scaled
    features plus (standardised) extra features ``L[extra]``; errors at the best
    validation iteration (checked every 50)."""
    import torch

    torch.manual_seed(seed)
    if extra is not None:
        mu = {e: data["train"]["L"][extra][e].mean(0) for e in els}
        sd = {e: data["train"]["L"][extra][e].std(0) + 1e-12 for e in els}

    def tensors(split):
        d = data[split]
        x = {e: torch.as_tensor(np.concatenate([d["G"][e], (d["L"][extra][e] - mu[e]) / sd[e]], 1)
                                if extra is not None else d["G"][e]) for e in els}
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
    sel = "select" if "select" in data else "val"      # the split that picks the iteration
    best = {"val": rmse(sel), "iteration": 0, "state": state()}     # iteration 0: no correction
    for it in range(1, iterations + 1):
        opt.zero_grad()
        per_atom_error("train").pow(2).mean().backward()
        opt.step()
        if it % 50 == 0 and rmse(sel) < best["val"]:
            best = {"val": rmse(sel), "iteration": it, "state": state()}
    for e, n in nets.items():
        n.load_state_dict(best["state"][e])
    with torch.no_grad():
        err = 1000.0 * per_atom_error("test").numpy()
    kinds = data["test"]["kind"]
    return {"best_iteration": best["iteration"], "n_inputs": n_in,
            "rmse_meV_atom": {s: rmse(s) for s in data},
            "test_by_kind_meV_atom": {k: float(np.sqrt(np.mean(err[kinds == k] ** 2)))
                                      for k in sorted(set(kinds))}}


def _join(parts: list) -> dict:
    """One data dict from several (structure ids of later parts offset)."""
    out, n = {"resid": [], "nat": [], "kind": [], "G": {}, "sid": {}, "L": {}}, 0
    for d in parts:
        for k in ("resid", "nat", "kind"):
            out[k].append(d[k])
        for e, v in d["G"].items():
            out["G"].setdefault(e, []).append(v)
            out["sid"].setdefault(e, []).append(d["sid"][e] + n)
        for name, per in d["L"].items():
            for e, v in per.items():
                out["L"].setdefault(name, {}).setdefault(e, []).append(v)
        n += len(d["resid"])
    return {"resid": np.concatenate(out["resid"]), "nat": np.concatenate(out["nat"]),
            "kind": np.concatenate(out["kind"]),
            "G": {e: np.concatenate(v) for e, v in out["G"].items()},
            "sid": {e: np.concatenate(v) for e, v in out["sid"].items()},
            "L": {k: {e: np.concatenate(v) for e, v in per.items()} for k, per in out["L"].items()}}


def dense_angular(model) -> list:
    """Type-9 functions within 6 Å on a denser grid than the shipped set (6 shifted
    Gaussians from 1.5 Å, zeta 1, 4, 16, both lambdas), minus those the model has."""
    from mdmlkit.descriptors import generate_set

    sfs = generate_set(model.elements, rc=6.0, n_radial=1, n_angular=4, mode="shifted",
                       zetas=(1.0, 4.0, 16.0), cutoff_type=model.sfs.cutoff_type,
                       alpha=model.sfs.alpha, angular_mode="shifted", angular_r_lower=1.5)
    return [f for el in model.elements for f in sfs.functions[el]
            if f.type == 9 and f not in model.sfs.functions[el]]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="trained HDNNP model.pt")
    p.add_argument("--long-radial", type=float, default=None,
                   help="reach of the extra radial functions, Å (default 9, with --hot 12)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hot", action="store_true",
                   help="fit on train + hot_md_train, judge on the hot test set too, and try denser angular functions")
    p.add_argument("--hot-train-seeds", type=int, default=None, metavar="K",
                   help="with --hot: fit on the first K hot_md_train seeds only (default: all but the "
                        "last, which always selects); e.g. 1 against the default 2 asks whether more "
                        "hot trajectories help")
    p.add_argument("--own-only", action="store_true", help="fit on the model's own features only")
    p.add_argument("--output", default=None,
                   help="results JSON (default benchmarks/results/la2zr2o7_residual_fit[_hot].json)")
    args = p.parse_args(argv)
    if args.hot_train_seeds is not None and (not args.hot or args.hot_train_seeds < 0):
        p.error("--hot-train-seeds needs --hot and a count >= 0")
    if args.output is None:
        args.output = str(ROOT / "benchmarks" / "results"
                          / ("la2zr2o7_residual_fit_hot.json" if args.hot else "la2zr2o7_residual_fit.json"))
    import torch

    from mdmlkit.descriptors import ACSF, SymmetryFunctionSet, long_radial_functions
    from mdmlkit.potential import HDNNP
    from mdmlkit.systems.la2zr2o7 import load_hot_test, load_la2zr2o7
    from mdmlkit.utils import atomic_write_json, machine_info

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = HDNNP.load(args.model)
    els = model.elements
    if args.long_radial is None:
        args.long_radial = 12.0 if args.hot else 9.0
    long = [f for f in long_radial_functions(els, args.long_radial)
            if f not in model.sfs.functions[f.central]]
    extra = {}
    if long and not args.own_only:          # (none when the model already has them all)
        extra["long_radial"] = ACSF(SymmetryFunctionSet(els, long, model.sfs.cutoff_type, model.sfs.alpha))
    if args.hot and not args.own_only:
        extra["angular"] = ACSF(SymmetryFunctionSet(els, dense_angular(model), model.sfs.cutoff_type,
                                                    model.sfs.alpha))
    data = {s: features(model, extra, load_la2zr2o7(s)) for s in ("train", "val", "test")}
    if args.hot:       # hot_md_train: the first K seeds' trajectories train, the last seed's select
        hot = load_la2zr2o7("hot_md_train")
        seeds = sorted({int(a.info["seed"]) for a in hot})
        last, fit_seeds = seeds[-1], seeds[:-1][:args.hot_train_seeds]
        if fit_seeds:
            data["train"] = _join([data["train"], features(model, extra,
                                                           [a for a in hot if a.info["seed"] in fit_seeds])])
        data["hot_val"] = features(model, extra, [a for a in hot if a.info["seed"] == last])
        data["select"] = _join([data["val"], data["hot_val"]])
        data["hot_test"] = features(model, extra, load_hot_test())
    model_rmse = {s: 1000.0 * float(np.sqrt(np.mean((d["resid"] / d["nat"]) ** 2))) for s, d in data.items()}
    print(f"model RMSE (meV/atom): {model_rmse}", flush=True)
    fits = {}
    for name, key in (("model_features", None), ("model_plus_long_radial", "long_radial"),
                      ("model_plus_angular", "angular")):
        if key is not None and key not in extra:
            continue
        fits[name] = fit(data, els, key, args.hidden, args.iterations, args.seed)
        print(f"{name:24s} corrected RMSE (meV/atom): "
              + ", ".join(f"{s} {v:.3f}" for s, v in fits[name]["rmse_meV_atom"].items()), flush=True)
    result = {"description": __doc__.split("\n\n")[0], "model": args.model, "model_cutoff_A": model.cutoff,
              "long_radial_A": args.long_radial, "hot": args.hot,
              "hot_train_seeds": fit_seeds if args.hot else None,
              "extra_functions": {k: len(a.sfs.functions[els[0]]) for k, a in extra.items()},
              "hidden": args.hidden, "iterations": args.iterations,
              "model_rmse_meV_atom": model_rmse, "fits": fits, "wall_s": time.perf_counter() - t0,
              "machine": machine_info()}
    atomic_write_json(args.output, result)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
