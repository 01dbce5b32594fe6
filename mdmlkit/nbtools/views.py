"""Element-coloured nglview 3-D views with a legend, and pyrochlore defect sites to highlight.

NGL's default element colours draw La and Zr in near-identical cyan; :data:`ELEMENT_COLORS`
gives clearly distinct ones, :func:`element_view` draws each element with its colour,
marks given atoms (bigger, amber) and empty sites (dark spheres), and returns the
view under an HTML legend.  :func:`pyrochlore_defect_sites` finds what to mark in an
A2B2O7 pyrochlore cell (O vacancies, O interstitials on 8a, antisite cations).

The camera of each view is set explicitly (:func:`camera_orientation`, sent as an
``orient`` message after the structure has loaded).  NGL fits the camera to the
structure when the file loads, from the canvas size at that moment; a view inside a
``Box`` is created before the box is laid out, its canvas is about 1 px wide then, and
the fit puts the camera ~200 times too far away: the structure is a dot on a blank
canvas once the box has its size, in JupyterLab and, because JupyterLab saves that camera
in the widget state, in the HTML report too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mdmlkit.errors import InputError

__all__ = ["ELEMENT_COLORS", "DEFECT_COLOR", "VACANCY_COLOR", "camera_orientation", "element_view",
           "legend_html", "pyrochlore_defect_sites"]

#: element -> colour (hex); La, Zr and O are distinct for colour-blind readers too
ELEMENT_COLORS: dict[str, str] = {"La": "#2e7d32", "Zr": "#1f4fd8", "O": "#e53935", "Cu": "#b87333"}
DEFECT_COLOR = "#ffb300"    # atoms on a wrong site (antisite cations, interstitial O)
VACANCY_COLOR = "#111111"   # empty sites that should hold an atom
_NGL_FOV_DEG = 40.0         # NGL's default perspective camera field of view
_NGL_CLIP_DIST = 10.0       # NGL's default stage clipDist (Å), added to the fitted distance


def _px(size: str | int | float) -> float:
    """A CSS size in px (``"260px"`` or a number) as a float."""
    text = str(size).strip().removesuffix("px")
    try:
        return float(text)
    except ValueError:
        raise InputError(f"view size {size!r} must be given in px (e.g. '260px')") from None


def _pdb_rotation(atoms: Any) -> np.ndarray:
    """The rotation ASE's PDB writer applies to ``atoms`` (row vectors: ``r @ R``)."""
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    if not atoms.pbc.any() or atoms.cell.rank < 3:
        return np.eye(3)
    cell = atoms.cell.array
    return np.linalg.solve(cell, cellpar_to_cell(cell_to_cellpar(cell)))


def _pdb_oriented(atoms: Any) -> Any:
    """Copy of ``atoms`` rotated as ASE's PDB writer rotates it (a along x, b in the xy plane).

    nglview loads a structure as PDB text, which ASE writes in that orientation, but sends
    trajectory frames as raw positions: without this, the frames of a triclinic cell are
    drawn rotated against the first frame and the unit cell.
    """
    rotation = _pdb_rotation(atoms)
    if np.allclose(rotation, np.eye(3)):
        return atoms
    cell = atoms.cell.array
    out = atoms.copy()
    out.set_cell(cell @ rotation, scale_atoms=False)
    out.positions = atoms.positions @ rotation
    return out


def camera_orientation(points: np.ndarray | Sequence[Sequence[float]], width: str | float = 260,
                       height: str | float = 240) -> list[float]:
    """NGL camera (``viewerControls.orient`` matrix) that fits ``points`` (Å) in a canvas.

    The same fit as NGL's ``Stage.autoView`` (``getZoomForBox``: distance from the largest
    and smallest extent of the bounding box, the field of view and the aspect ratio of
    the canvas, plus ``clipDist``), but for the canvas size the view *will* have,
    ``width`` x ``height`` px, not the size it has when the file loads.

    Returns the 16 elements (column-major) of ``diag(d, d, d, 1)`` translated by
    ``-centre``: no rotation, camera distance ``d`` (Å), looking at the box centre.
    """
    pts = np.asarray(points, float).reshape(-1, 3)
    if not len(pts) or not np.isfinite(pts).all():
        raise InputError("camera_orientation needs at least one finite point (Å)")
    w, h = _px(width), _px(height)
    if w <= 0 or h <= 0:
        raise InputError(f"view size must be positive, got {width!r} x {height!r}")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    size = hi - lo
    dist = size.max() + np.sqrt(size.min())
    aspect_factor = 1.0 if h < w else w / h
    dist = abs(0.5 * dist / aspect_factor / np.sin(np.radians(_NGL_FOV_DEG) / 2)) + _NGL_CLIP_DIST
    centre = (lo + hi) / 2
    m = np.diag([dist, dist, dist, 1.0])
    m[3, :3] = -centre          # row 3 of the row-major array = elements 12..14 (translation)
    return [float(x) for x in m.reshape(-1)]


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
        parts.append(dot(DEFECT_COLOR, "defect atom (antisite cation, interstitial O)"))
    if vacancies:
        parts.append(dot(VACANCY_COLOR, "vacancy (empty site)", hollow=True))
    return "<div style='font-size:12px;line-height:18px'>" + "".join(parts) + "</div>"


def element_view(atoms: Any, width: str = "260px", height: str = "240px",
                 colors: Mapping[str, str] | None = None, highlight: Sequence[int] = (),
                 vacancies: np.ndarray | Sequence[Sequence[float]] = (), unitcell: bool = True,
                 trajectory: Sequence[Any] | None = None, title: str | None = None,
                 legend: bool = True) -> Any:
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
    legend : bool
        Show the element legend above the view (False where several views share one
        :func:`legend_html`); the box is then as wide as the view, so views wrap in a grid.

    Returns
    -------
    ipywidgets.VBox
        ``[title], [legend], view``; the nglview widget is ``.children[-1]``.
    """
    import ipywidgets as w
    import nglview as nv

    colors = {**ELEMENT_COLORS, **(colors or {})}
    vac = np.asarray(vacancies, float).reshape(-1, 3) @ _pdb_rotation(atoms)   # Å, in the drawn frame
    atoms = _pdb_oriented(atoms)
    if trajectory is not None:
        trajectory = [_pdb_oriented(a) for a in trajectory]
    # width/height also go to the stage itself (``_view_width``), not only to the layout
    view = (nv.show_asetraj(list(trajectory), width=width, height=height) if trajectory is not None
            else nv.show_ase(atoms, width=width, height=height))
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
    for k, pos in enumerate(vac):
        view.shape.add_sphere([float(x) for x in pos], [0.07, 0.07, 0.07], 0.55, f"vacancy {k + 1}")
    if unitcell:
        view.add_unitcell()
    # the camera for the final canvas size (NGL's own fit may run on a 1 px wide canvas)
    points = [atoms.positions]
    if unitcell and atoms.cell.rank == 3:
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
        points.append(corners @ atoms.cell.array)
    view.control.orient(camera_orientation(np.vstack(points), width, height))
    view.layout.width, view.layout.height = width, height
    head = [w.HTML(title, layout=w.Layout(width=width))] if title else []
    if legend:
        head.append(w.HTML(legend_html(elements, colors, defects=bool(highlight), vacancies=len(vac) > 0)))
    return w.VBox([*head, view], layout=w.Layout(margin="0 8px 8px 0"))


def pyrochlore_defect_sites(atoms: Any, A: str = "La", B: str = "Zr") -> tuple[np.ndarray, np.ndarray]:
    """Defect atoms and vacancy positions of a pyrochlore ``A2B2O7`` cell.

    * vacancies: empty anion sites (tetrahedral holes of the cation lattice with no O
      within 1 Å) with at most two ``B`` among their four cations (the structural 8a
      holes have four, or three next to an antisite);
    * interstitial O: an O within 1.3 Å of the centre of an all-``B`` (8a) hole;
    * antisite cations: a ``B`` with more than 7 O within 3 Å (A sites are 8-fold
      coordinated, the next O shell lies near 4 Å) or an ``A`` with fewer than 7 (B sites
      are 6-fold; an A next to one O vacancy is 7-fold and is not marked: the vacancy is).

    The site types come from the species present: where antisite pairs turn both A
    neighbours of one 48f O into B, that O (now in a B4 tetrahedron) is marked as
    interstitial too, and an 8a hole that lost two B to antisites looks like an empty
    anion site. Pass the vacancies on only for cells known to have them.

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
