"""Element-coloured nglview 3-D views with a legend, and pyrochlore defect sites to highlight.

NGL's default element colours draw La and Zr in near-identical cyan; :data:`ELEMENT_COLORS`
gives clearly distinct ones, :func:`element_view` draws each element with its colour,
marks given atoms (bigger, amber) and empty sites (dark spheres), and returns the
view under an HTML legend.  :func:`pyrochlore_defect_sites` finds what to mark in an
A2B2O7 pyrochlore cell (O vacancies, O interstitials on 8a, antisite cations).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ELEMENT_COLORS", "DEFECT_COLOR", "VACANCY_COLOR", "element_view", "legend_html",
           "pyrochlore_defect_sites"]

#: element -> colour (hex); La, Zr and O are distinct for colour-blind readers too
ELEMENT_COLORS: dict[str, str] = {"La": "#2e7d32", "Zr": "#1f4fd8", "O": "#e53935", "Cu": "#b87333"}
DEFECT_COLOR = "#ffb300"    # atoms on a wrong site (antisite cations, interstitial O)
VACANCY_COLOR = "#111111"   # empty sites that should hold an atom


def legend_html(elements: Sequence[str], colors: Mapping[str, str] | None = None,
                defects: bool = False, vacancies: bool = False) -> str:
    """HTML legend: a coloured dot per element (and the defect/vacancy markers)."""
    colors = {**ELEMENT_COLORS, **(colors or {})}

    def dot(color: str, label: str, hollow: bool = False) -> str:
        fill = "transparent" if hollow else color
        return (f"<span style='display:inline-block;width:11px;height:11px;border-radius:50%;"
                f"background:{fill};border:2px solid {color};margin:0 4px 0 10px;vertical-align:middle'></span>"
                f"<span style='vertical-align:middle'>{label}</span>")
    parts = [dot(colors.get(el, "#888888"), el) for el in elements]
    if defects:
        parts.append(dot(DEFECT_COLOR, "defect atom (antisite, interstitial or next to a vacancy)"))
    if vacancies:
        parts.append(dot(VACANCY_COLOR, "vacancy (empty site)", hollow=True))
    return "<div style='font-size:12px;line-height:18px'>" + "".join(parts) + "</div>"


def element_view(atoms: Any, width: str = "260px", height: str = "240px",
                 colors: Mapping[str, str] | None = None, highlight: Sequence[int] = (),
                 vacancies: np.ndarray | Sequence[Sequence[float]] = (), unitcell: bool = True,
                 trajectory: Sequence[Any] | None = None, title: str | None = None) -> Any:
    """An nglview view of ``atoms`` (or of ``trajectory``) coloured by element, with a legend.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure drawn (the first frame when ``trajectory`` is given).
    colors : mapping, optional
        Element -> hex colour, overriding :data:`ELEMENT_COLORS`.
    highlight : sequence of int
        Atom indices drawn as larger spheres in :data:`DEFECT_COLOR`.
    vacancies : (k, 3) array
        Cartesian positions (Å) of empty sites, drawn as dark spheres.
    trajectory : sequence of ase.Atoms, optional
        Frames of a trajectory view (``nglview.show_asetraj``).
    title : str, optional
        HTML shown above the legend.

    Returns
    -------
    ipywidgets.VBox
        ``[title], legend, view``; the nglview widget is ``.children[-1]``.
    """
    import ipywidgets as w
    import nglview as nv

    colors = {**ELEMENT_COLORS, **(colors or {})}
    view = nv.show_asetraj(list(trajectory)) if trajectory is not None else nv.show_ase(atoms)
    view.clear_representations()
    elements = list(dict.fromkeys(atoms.get_chemical_symbols()))
    # balls only: bonds drawn per element would join cations to cations
    for el in elements:
        view.add_representation("spacefill", selection=f"_{el.upper()}", color=colors.get(el, "#888888"),
                                radiusScale=0.3 if el != "O" else 0.22)
    highlight = [int(i) for i in highlight]
    if highlight:
        view.add_representation("spacefill", selection="@" + ",".join(map(str, highlight)),
                                color=DEFECT_COLOR, radiusScale=0.45)
    vac = np.asarray(vacancies, float).reshape(-1, 3)
    for k, pos in enumerate(vac):
        view.shape.add_sphere([float(x) for x in pos], [0.07, 0.07, 0.07], 0.55, f"vacancy {k + 1}")
    if unitcell:
        view.add_unitcell()
    view.layout.width, view.layout.height = width, height
    head = [w.HTML(title)] if title else []
    legend = w.HTML(legend_html(elements, colors, defects=bool(highlight), vacancies=len(vac) > 0))
    return w.VBox([*head, legend, view])


def pyrochlore_defect_sites(atoms: Any, A: str = "La", B: str = "Zr") -> tuple[np.ndarray, np.ndarray]:
    """Defect atoms and vacancy positions of a pyrochlore ``A2B2O7`` cell.

    * vacancies: empty anion sites (tetrahedral holes of the cation lattice with no O
      within 1 Å) with at most two ``B`` among their four cations (the structural 8a
      holes have four, or three next to an antisite);
    * interstitial O: an O within 1.3 Å of the centre of an all-``B`` (8a) hole;
    * antisite cations: a ``B`` with more than 7 O within 3 Å (A sites are 8-fold
      coordinated, the next O shell lies near 4 Å) or an ``A`` with fewer than 7 (B sites
      are 6-fold; an A next to an O vacancy is 7-fold and is marked too).

    Returns
    -------
    atoms_idx : (m,) int array
        Indices of defect atoms (interstitial O, antisite cations).
    vacancy_pos : (k, 3) float array
        Cartesian positions of vacant anion sites (Å).
    """
    from ase.geometry import get_distances
    from ase.neighborlist import neighbor_list

    from mdmlkit.systems.pyrochlore import empty_anion_sites

    sym = np.array(atoms.get_chemical_symbols())
    vac = np.asarray(empty_anion_sites(atoms, only_b=False, A=A, B=B), float).reshape(-1, 3)
    b_idx = np.flatnonzero(sym == B)
    if len(vac) and len(b_idx):
        # hole centre to its four cations: sqrt(3) a / 8 ~ 2.4 Å; the next cations ~ 4.5 Å
        _, d = get_distances(vac, atoms.positions[b_idx], cell=atoms.cell, pbc=atoms.pbc)
        vac = vac[(d < 3.2).sum(axis=1) <= 2]
    defect: list[int] = []
    holes_b = empty_anion_sites(atoms, only_b=True, A=A, B=B, min_clearance=0.0)
    o_idx = np.flatnonzero(sym == "O")
    if len(holes_b) and len(o_idx):
        _, d = get_distances(atoms.positions[o_idx], holes_b, cell=atoms.cell, pbc=atoms.pbc)
        defect += [int(i) for i in o_idx[d.min(axis=1) < 1.3]]
    i, j = neighbor_list("ij", atoms, 3.0)
    n_o = np.bincount(i[sym[j] == "O"], minlength=len(atoms))
    defect += [int(k) for k in np.flatnonzero((sym == B) & (n_o > 7))]
    defect += [int(k) for k in np.flatnonzero((sym == A) & (n_o < 7))]
    return np.array(sorted(set(defect)), dtype=int), vac
