"""Matplotlib figures shared by the notebooks (every axis labelled with units)."""
from __future__ import annotations

from typing import Any, Sequence

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

    ``landscape`` is a :class:`mdmlkit.study.SizeLandscape`; ``highlight`` a boolean
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
        motif = landscape.basin_table[b]["majority_motif"] if b < len(landscape.basin_table) else ""
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


def plot_occupancy(landscape, ax=None):
    """Stacked basin occupancy vs temperature with transition marks."""
    ax = _ax(ax, figsize=(6, 4))
    occ = landscape.occupancy
    T = occ.T_centres
    bottom = np.zeros(len(T))
    for j, b in enumerate(occ.basins):
        motif = landscape.basin_table[int(b)]["majority_motif"] if int(b) < len(landscape.basin_table) else ""
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
