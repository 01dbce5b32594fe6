"""Matplotlib figures shared by the notebooks (every axis labelled with units)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MOTIF_COLOURS = {"icosahedral": "tab:blue", "decahedral": "tab:green", "fcc-like": "tab:orange",
                 "amorphous": "tab:red"}


def _ax(ax=None, figsize=(5.5, 4.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def plot_energy_map(landscape, ax=None, paths: bool = True, highlight: np.ndarray | None = None,
                    title: str | None = None, cmap: str = "viridis"):
    """Frames on the 2-D map coloured by E_pot (eV), run paths, basin representatives.

    ``landscape`` is a :class:`mdmlkit.landscape.sizescan.SizeLandscape`; ``highlight`` a boolean
    mask of frames to emphasise (e.g. a temperature window).
    """
    ax = _ax(ax)
    Y = landscape.map.embedding_
    E = np.asarray(landscape.table["E_pot"], float) / landscape.n_atoms
    sc = ax.scatter(Y[:, 0], Y[:, 1], c=E, s=6, cmap=cmap, alpha=0.35 if highlight is not None else 0.8,
                    linewidths=0)
    if highlight is not None and np.any(highlight):
        ax.scatter(Y[highlight, 0], Y[highlight, 1], c=E[highlight], s=22, cmap=cmap,
                   vmin=E.min(), vmax=E.max(), edgecolors="k", linewidths=0.4)
    if paths:
        for rid, idx in landscape.run_slices().items():
            ax.plot(Y[idx, 0], Y[idx, 1], lw=0.4, alpha=0.5, label=rid)
    for b, rep in enumerate(landscape.map.representatives_):
        ax.annotate(f"B{b}", Y[rep], fontsize=10, weight="bold", ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.8))
    ax.figure.colorbar(sc, ax=ax, label="E_pot per atom (eV/atom)")
    ax.set_xlabel("map coordinate 1 (arb. units)")
    ax.set_ylabel("map coordinate 2 (arb. units)")
    ax.set_title(title or f"Cu{landscape.n_atoms}: {landscape.map.embedding} map")
    return ax


def plot_basins(landscape, ax=None, title: str | None = None):
    """Frames on the map coloured by basin label, representatives marked."""
    ax = _ax(ax)
    Y, lab = landscape.map.embedding_, landscape.map.labels_
    for b in range(landscape.map.n_basins_):
        m = lab == b
        motif = _basin_motif(landscape, b)
        ax.scatter(Y[m, 0], Y[m, 1], s=6, label=f"B{b} ({motif}, {m.sum()})", linewidths=0)
    rep = landscape.map.representatives_
    ax.scatter(Y[rep, 0], Y[rep, 1], marker="*", s=160, c="k", label="representatives")
    ax.set_xlabel("map coordinate 1 (arb. units)")
    ax.set_ylabel("map coordinate 2 (arb. units)")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(title or f"Cu{landscape.n_atoms}: {landscape.map.n_basins_} basins")
    return ax


def plot_surface(surface, ax=None, title: str = "", label: str = "E_pot (eV)", cmap: str = "magma",
                 points: np.ndarray | None = None):
    """Filled contour of a gridded :class:`mdmlkit.landscape.Surface` (x, y, z)."""
    ax = _ax(ax)
    x, y, z = surface.x, surface.y, surface.values
    cs = ax.contourf(x, y, np.ma.masked_invalid(z), levels=30, cmap=cmap)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, c="w", alpha=0.3, linewidths=0)
    ax.figure.colorbar(cs, ax=ax, label=label)
    ax.set_xlabel("map coordinate 1 (arb. units)")
    ax.set_ylabel("map coordinate 2 (arb. units)")
    ax.set_title(title)
    return ax


def plot_caloric(scan_or_landscapes: Sequence[Any], axes=None):
    """Caloric curves E_pot/atom (eV) vs T (K) and heat capacity C (k_B/atom) with T_melt marks."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ax1, ax2 = axes
    for sl in scan_or_landscapes:
        cc = sl.caloric
        line, = ax1.plot(cc.T, cc.E_pot / sl.n_atoms, lw=1.2,
                         label=f"Cu{sl.n_atoms}{' (magic)' if sl.magic else ''}")
        T, C = cc.heat_capacity()
        ax2.plot(T, C, lw=1.2, color=line.get_color())
        if sl.melting_cv is not None and np.isfinite(sl.melting_cv.T_melt):
            ax1.axvline(sl.melting_cv.T_melt, color=line.get_color(), ls="--", lw=0.8)
            ax2.axvline(sl.melting_cv.T_melt, color=line.get_color(), ls="--", lw=0.8)
    ax1.set_xlabel("T (K)")
    ax1.set_ylabel("E_pot per atom (eV/atom)")
    ax1.set_title("caloric curves (dashed: heat-capacity peak)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("T (K)")
    ax2.set_ylabel("C (k_B per atom)")
    ax2.set_title("heat capacity dE_tot/dT")
    return axes


def _basin_motif(landscape, b: int) -> str:
    """Basin ``b``'s morphology label: from its lowest-energy frames where known, else its majority."""
    if b >= len(landscape.basin_table):
        return ""
    row = landscape.basin_table[b]
    return str(row.get("morphology", row["majority_motif"]))


def plot_occupancy(landscape, ax=None):
    """Stacked basin occupancy vs temperature with transition marks."""
    ax = _ax(ax, figsize=(6, 4))
    occ = landscape.occupancy
    T = occ.T_centres
    bottom = np.zeros(len(T))
    for j, b in enumerate(occ.basins):
        motif = _basin_motif(landscape, int(b))
        frac = np.nan_to_num(occ.occupancy[:, j])
        ax.bar(T, frac, bottom=bottom, width=np.diff(occ.edges), align="center",
               label=f"B{int(b)} ({motif})")
        bottom += frac
    tr = landscape.transitions
    if tr is not None:
        for t in np.asarray(tr.T, float):
            if np.isfinite(t):
                ax.axvline(t, color="k", ls=":", lw=1)
    ax.set_xlabel("T (K)")
    ax.set_ylabel("fraction of frames")
    ax.set_title(f"Cu{landscape.n_atoms}: basin occupancy (dotted: runs leave start basin)")
    ax.legend(fontsize=7)
    return ax


def plot_magic(summary: Sequence[dict], keys: Sequence[tuple[str, str]], axes=None):
    """Bar charts of summary quantities vs cluster size, magic sizes highlighted.

    ``keys``: (summary key, axis label with unit) pairs.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), constrained_layout=True)
    axes = np.atleast_1d(axes)
    n = [r["n_atoms"] for r in summary]
    colours = ["tab:red" if r["magic"] else "tab:gray" for r in summary]
    for ax, (key, label) in zip(axes, keys):
        ax.bar([str(v) for v in n], [r[key] for r in summary], color=colours)
        ax.set_xlabel("cluster size n (atoms)")
        ax.set_ylabel(label)
    axes[0].set_title("red: magic sizes")
    return axes


def plot_parity(reference: np.ndarray, predicted: np.ndarray, ax=None, label: str = "",
                unit: str = "eV", groups: Sequence[str] | None = None):
    """Parity plot predicted vs reference with RMSE in the legend."""
    ax = _ax(ax, figsize=(4.5, 4.5))
    reference, predicted = np.asarray(reference, float).ravel(), np.asarray(predicted, float).ravel()
    if groups is None:
        ax.scatter(reference, predicted, s=4, alpha=0.5, linewidths=0)
    else:
        groups = np.asarray(groups).ravel()
        for g in dict.fromkeys(groups.tolist()):
            m = groups == g
            ax.scatter(reference[m], predicted[m], s=4, alpha=0.6, label=str(g), linewidths=0)
        ax.legend(fontsize=6, markerscale=3)
    lo, hi = np.nanmin([reference.min(), predicted.min()]), np.nanmax([reference.max(), predicted.max()])
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    rmse = float(np.sqrt(np.mean((predicted - reference) ** 2)))
    ax.set_xlabel(f"reference {label} ({unit})")
    ax.set_ylabel(f"predicted {label} ({unit})")
    ax.set_title(f"{label}: RMSE {rmse:.4g} {unit}")
    return ax


# ----------------------------------------------------------------------------- active learning

def plot_learning_curves(results, metric: str = "force_rmse_meV_A", ax=None, strategies=None,
                         seeds: bool = True, logy: bool = False, title: str | None = None,
                         logx: bool = False, target: float | None = None):
    """Test error vs labelled structures, one colour per strategy.

    ``results`` is a :class:`mdmlkit.active.LearningCurves`. Thick line: mean over
    seeds; band: ± one standard deviation over seeds; thin lines (``seeds=True``):
    the individual seeds.  ``target``: a dashed horizontal line at that error
    (same unit as ``metric``).
    """
    from mdmlkit.active.metrics import metric_label

    ax = _ax(ax)
    for k, s in enumerate(strategies or results.strategies):
        c = results.curve(s, metric)
        ok = np.isfinite(c["n_labelled"]) & np.isfinite(c["mean"])   # rounds not (yet) run: gaps
        n, mean, std = c["n_labelled"][ok], c["mean"][ok], c["std"][ok]
        colour = f"C{k}"
        n_seeds = c["values"].shape[0]
        ax.plot(n, mean, "o-", ms=3, color=colour, lw=1.8,
                label=f"{s} ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
        ax.fill_between(n, mean - std, mean + std, color=colour, alpha=0.15, linewidths=0)
        if seeds and n_seeds > 1:
            for v in c["values"][:, ok]:
                ax.plot(n, v, color=colour, lw=0.6, alpha=0.4)
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:g}")
    ax.set_xlabel("labelled structures (count)")
    ax.set_ylabel(metric_label(metric))
    if logy:
        ax.set_yscale("log")
    if logx:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log")
        # label the budgets themselves: minor log labels overlap on spans of ~1 decade
        ax.set_xticks(sorted({int(n) for s in (strategies or results.strategies)
                              for n in results.curve(s, metric)["n_labelled"] if np.isfinite(n)}))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return ax


def plot_latent_space(query, pool, selection=None, train=None, ax=None, level: str = "structure",
                      element: str | None = None, cmap: str = "viridis"):
    """2-D PCA of a fitted :class:`~mdmlkit.active.AutoencoderQuery`'s latent space.

    ``level="structure"``: one point per pool structure at its embedding f_s (the
    per-element mean latent vectors, the space of the query's diversity rule),
    coloured by the informativeness I(s) (reconstruction error relative to the
    training mean, log scale); training structures (``train``) as grey crosses,
    the chosen ones (``selection``, pool indices) as stars labelled by rank.
    ``level="atom"``: one point per pool atom of ``element`` (default: the most
    numerous) at its latent vector z_i, coloured by its relative error ẽ_i; atoms
    of chosen structures ringed in black.  PCA is fitted on the pool points.
    """
    from matplotlib.colors import LogNorm
    from sklearn.decomposition import PCA

    from mdmlkit.errors import InputError

    if level not in ("structure", "atom"):
        raise InputError(f"level must be 'structure' or 'atom', got {level!r}")
    ax = _ax(ax)
    emb = query.embed(pool)
    chosen = np.asarray([] if selection is None else getattr(selection, "indices", selection), dtype=int)
    if level == "structure":
        X = emb.structure
        c = np.asarray(emb.informativeness, dtype=float)
        pca = PCA(n_components=2, random_state=0).fit(X)
        Y = pca.transform(X)
        vmin = max(float(np.min(c[c > 0])) if np.any(c > 0) else 1e-3, 1e-6)
        sc = ax.scatter(Y[:, 0], Y[:, 1], c=np.maximum(c, vmin), s=14, cmap=cmap, linewidths=0,
                        norm=LogNorm(vmin=vmin, vmax=max(float(c.max()), vmin * 1.01)))
        if train is not None and len(train):
            Yt = pca.transform(query.embed(train).structure)
            ax.scatter(Yt[:, 0], Yt[:, 1], marker="x", c="0.4", s=22, lw=0.9, label="training set")
        if chosen.size:
            ax.scatter(Y[chosen, 0], Y[chosen, 1], marker="*", s=170, facecolors="none",
                       edgecolors="red", linewidths=1.2, label="chosen (rank)")
            for r, i in enumerate(chosen):
                ax.annotate(str(r), Y[i], xytext=(4, 4), textcoords="offset points", fontsize=7,
                            color="red")
        ax.figure.colorbar(sc, ax=ax, label="informativeness I(s) (× mean training error)")
        ax.set_title("structures in the AE latent space")
    elif level == "atom":
        if element is None:
            element = max(emb.elements, key=lambda el: emb.latent[el].shape[0])
        if element not in emb.latent or emb.latent[element].shape[0] == 0:
            raise InputError(f"no {element} atoms in the pool; elements: {emb.elements}")
        Z, e = emb.latent[element], emb.atom_error[element]
        if Z.shape[1] < 2:
            raise InputError(f"latent_dim={Z.shape[1]}: a 2-D projection needs latent_dim >= 2")
        pca = PCA(n_components=2, random_state=0).fit(Z)
        Y = pca.transform(Z)
        order = np.argsort(e)                      # worst atoms drawn last (on top)
        vmin = max(float(np.min(e[e > 0])) if np.any(e > 0) else 1e-3, 1e-6)
        sc = ax.scatter(Y[order, 0], Y[order, 1], c=np.maximum(e[order], vmin), s=5, cmap=cmap,
                        linewidths=0, norm=LogNorm(vmin=vmin, vmax=max(float(e.max()), vmin * 1.01)))
        if chosen.size:
            m = np.isin(emb.owner[element], chosen)
            ax.scatter(Y[m, 0], Y[m, 1], s=14, facecolors="none", edgecolors="k", linewidths=0.5,
                       label=f"{element} atoms of chosen structures")
        ax.figure.colorbar(sc, ax=ax, label="relative reconstruction error ẽ_i (× mean training error)")
        ax.set_title(f"{element} atoms in the AE latent space")
    ev = pca.explained_variance_ratio_
    ax.set_xlabel(f"latent PC 1 ({100 * ev[0]:.0f} % of variance, arb. units)")
    ax.set_ylabel(f"latent PC 2 ({100 * ev[1]:.0f} % of variance, arb. units)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return ax


# ----------------------------------------------------------------------------- HDNNP (notebook 02)

def plot_training_history(history: Sequence[dict], axes=None, title: str = ""):
    """Energy (meV/atom) and force (meV/Å) RMSE per epoch, train and validation, log scale.

    ``history`` is :attr:`mdmlkit.potential.Trainer.history_` (or the list stored in a
    model directory's ``training_history.json``).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    ep = [h["epoch"] for h in history]
    for ax, key, name, unit in ((axes[0], "energy_rmse_meV_atom", "energy", "meV/atom"),
                                (axes[1], "force_rmse_meV_A", "force", "meV/Å")):
        for split, style in (("train", "-"), ("val", "--")):
            y = [h.get(f"{split}_{key}", np.nan) for h in history]
            if np.isfinite(y).any():
                ax.semilogy(ep, y, style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} RMSE ({unit})")
        ax.legend()
        if title:
            ax.set_title(title)
    return axes


def plot_errors_by_kind(by_kind: dict[str, dict], axes=None, targets: dict[str, float] | None = None,
                        title: str = ""):
    """Bar charts of the energy RMSE (meV/atom) and force RMSE (eV/Å) per structure kind.

    ``by_kind`` maps kind -> metrics as in ``Trainer.evaluate(...)["by_kind"]``;
    ``targets`` (keys ``energy_rmse_meV_atom``, ``force_rmse_eV_A``) draws dashed lines.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True)
    kinds = list(by_kind)
    for ax, key, label in ((axes[0], "energy_rmse_meV_atom", "energy RMSE (meV/atom)"),
                           (axes[1], "force_rmse_eV_A", "force RMSE (eV/Å)")):
        vals = [by_kind[k].get(key, np.nan) for k in kinds]
        ax.bar(kinds, vals, color="tab:blue")
        for x, (k, v) in enumerate(zip(kinds, vals)):
            ax.annotate(f"n={by_kind[k].get('n_structures', '')}", (x, v), ha="center", va="bottom",
                        fontsize=7)
        if targets and key in targets:
            ax.axhline(targets[key], color="k", ls="--", lw=1, label="target")
            ax.legend(fontsize=8)
        ax.set_xlabel("structure kind")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=30)
        if title:
            ax.set_title(title)
    return axes


def plot_radial_functions(sfs, element: str, neighbour: str | None = None, selected=None, ax=None,
                          r_min: float = 0.5, n_points: int = 300):
    """Shapes exp(-η (r - r_s)²) f_c(r) of the radial (type 2) symmetry functions of ``element``.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        Candidate (or any) set.
    element, neighbour : str
        Central element and neighbour element (default: the first neighbour found).
    selected : SymmetryFunctionSet, optional
        Functions of this set are drawn bold and coloured, the others thin grey.
    """
    import torch

    from mdmlkit.descriptors import cutoff_function

    ax = _ax(ax, figsize=(5.5, 3.6))
    funcs = [f for f in sfs.functions[element] if f.type == 2]
    if neighbour is None and funcs:
        neighbour = funcs[0].e1
    funcs = [f for f in funcs if f.e1 == neighbour]
    keep = set()
    if selected is not None:
        keep = {f.to_line() for f in selected.functions[element]}
    r = torch.linspace(r_min, max((f.rc for f in funcs), default=6.0), n_points, dtype=torch.float64)
    n_kept = 0
    for f in funcs:
        g = torch.exp(-f.eta * (r - f.rs) ** 2) * cutoff_function(r, f.rc, f.cutoff_type, f.alpha)
        on = f.to_line() in keep
        n_kept += on
        ax.plot(r.numpy(), g.numpy(), color="tab:red" if on else "0.7", lw=1.8 if on else 0.8,
                zorder=3 if on else 1)
    ax.set_xlabel(f"distance {element}–{neighbour} r (Å)")
    ax.set_ylabel("exp(-η (r - r_s)²) f_c(r) (dimensionless)")
    note = f", {n_kept} kept (red)" if selected is not None else ""
    ax.set_title(f"radial functions {element}←{neighbour}: {len(funcs)} candidates{note}", fontsize=9)
    return ax


MORPHOLOGY_COLOURS = {"icosahedral": "tab:blue", "icosahedral+adatom": "tab:cyan",
                      "icosahedral+rosette": "tab:purple", "icosahedral-defective": "tab:olive",
                      "decahedral": "tab:green", "fcc/twinned": "tab:orange",
                      "disordered": "tab:red", None: "0.4"}


def _tree_x(tree: Sequence[Any]) -> np.ndarray:
    """x of every tree node: leaves in depth-first order (lower child first), merges centred.
    Children come before their parents in ``tree`` (merge order)."""
    leaf_e = {t.minima[0]: t.energy for t in tree if not t.children}
    low = [min(leaf_e[m] for m in t.minima) for t in tree]
    x = np.full(len(tree), np.nan)
    roots = sorted((k for k, t in enumerate(tree) if t.parent == -1), key=lambda k: low[k])
    nxt = 0.0
    stack = list(reversed(roots))
    while stack:
        k = stack.pop()
        if not tree[k].children:
            x[k] = nxt
            nxt += 1.0
        else:
            stack.extend(sorted(tree[k].children, key=lambda c: low[c], reverse=True))
    for k, t in enumerate(tree):
        if t.children:
            x[k] = float(np.mean([x[c] for c in t.children]))
    return x


def plot_disconnectivity(graph, ax=None, colour_by: str | None = "morphology",
                         relative: bool = True, title: str = ""):
    """Disconnectivity tree of a :class:`~mdmlkit.landscape.disconnectivity.DisconnectivityGraph`.

    Leaves end at the minima's energies, branches join at the connection energies (the
    highest inherent-structure energy met between two minima along the trajectories, not a
    transition state); roots are drawn up to the highest connection.  ``colour_by``:
    ``"morphology"`` colours the leaves by ``graph.morphologies``; ``None``: black.
    ``relative``: energies above the lowest minimum (eV).
    """
    from matplotlib.collections import LineCollection

    ax = _ax(ax, figsize=(7, 4.5))
    tree = graph.tree()
    if not tree:
        ax.set_title("no minima")
        return ax
    x = _tree_x(tree)
    e = np.array([t.energy for t in tree])
    e0 = e.min() if relative else 0.0
    top = e.max() + 0.05 * (e.max() - e.min() + 1e-3)
    segs, colours, legend = [], [], {}
    for k, t in enumerate(tree):
        upper = tree[t.parent].energy if t.parent >= 0 else top
        colour = "k"
        if not t.children and colour_by == "morphology" and graph.morphologies is not None:
            m = graph.morphologies[t.minima[0]]
            colour = MORPHOLOGY_COLOURS.get(m, "0.4")
            legend.setdefault(str(m), colour)
        segs.append([(x[k], t.energy - e0), (x[k], upper - e0)])
        colours.append(colour)
        if t.children:
            xs = [x[c] for c in t.children]
            segs.append([(min(xs), t.energy - e0), (max(xs), t.energy - e0)])
            colours.append("k")
    ax.add_collection(LineCollection(segs, colors=colours, linewidths=0.8))
    ax.set_xlim(-1, np.nanmax(x) + 1)
    ax.set_ylim(e.min() - e0 - 0.02 * (top - e.min()), top - e0)
    for name, colour in legend.items():
        ax.plot([], [], color=colour, label=name)
    ax.set_xticks([])
    ax.set_xlabel("minima")
    ax.set_ylabel("E - E_lowest (eV)" if relative else "E (eV)")
    ax.set_title(title or f"disconnectivity graph: {len(graph.nodes)} minima", fontsize=9)
    if legend:
        ax.legend(fontsize=7)
    return ax


def plot_family_occupancy(occupancy, ax=None, title: str = ""):
    """Stacked fraction of frames per morphology family versus temperature
    (:meth:`mdmlkit.landscape.inherent.InherentStructureMap.family_occupancy`)."""
    ax = _ax(ax, figsize=(6, 4))
    T = occupancy.T_centres
    bottom = np.zeros(len(T))
    for j, fam in enumerate(occupancy.families):
        frac = np.nan_to_num(occupancy.occupancy[:, j])
        ax.bar(T, frac, bottom=bottom, width=np.diff(occupancy.edges), align="center",
               color=MORPHOLOGY_COLOURS.get(fam, "0.4"), label=fam)
        bottom += frac
    ax.set_xlabel("T (K)")
    ax.set_ylabel("fraction of frames")
    ax.set_title(title or "morphology of the inherent structures", fontsize=9)
    ax.legend(fontsize=7)
    return ax
