"""Element-coloured 3-D views (mdmlkit.nbtools.views) and the nglview part of the offline report.

References: the defects each pyrochlore builder made (found by comparing with the
perfect cell), the pinhole projection of a perspective camera, and nglview's own
message archive.
"""
from __future__ import annotations

import numpy as np
import pytest
from ase.geometry import get_distances

from mdmlkit.errors import InputError
from mdmlkit.nbtools.views import ELEMENT_COLORS, camera_orientation, legend_html, pyrochlore_defect_sites
from mdmlkit.systems.pyrochlore import X48F_EXP, antisite, conventional_cell, frenkel_pair, oxygen_vacancies


def _distance(cell, p, q) -> float:
    return float(get_distances(np.atleast_2d(p), np.atleast_2d(q), cell=cell.cell, pbc=True)[1].min())


@pytest.fixture(scope="module")
def perfect():
    return conventional_cell()


def test_perfect_cell_has_no_defects(perfect):
    atoms, vac = pyrochlore_defect_sites(perfect)
    assert len(atoms) == 0 and len(vac) == 0


@pytest.mark.parametrize("site", ["48f", "8b"])
def test_vacancy_found_where_the_oxygen_was(perfect, site):
    cell = oxygen_vacancies(perfect, 1, rng=3, site=site)
    # the removed O: the perfect cell's O with no O of the defective cell on it
    o_perfect = perfect.positions[np.array(perfect.get_chemical_symbols()) == "O"]
    o_left = cell.positions[np.array(cell.get_chemical_symbols()) == "O"]
    missing = [p for p in o_perfect if _distance(cell, p, o_left) > 0.1]
    assert len(missing) == 1
    atoms, vac = pyrochlore_defect_sites(cell)
    # the marker sits at the centre of the site's cation tetrahedron; a 48f O is displaced
    # from it by (0.375 - x48f) a = 0.45 Å, an 8b O sits on it
    tol = 0.05 + (0.375 - X48F_EXP) * perfect.cell[0, 0] if site == "48f" else 0.05
    assert len(vac) == 1 and _distance(cell, vac[0], missing[0]) < tol
    assert len(atoms) == 0          # a vacancy moves no atom onto a wrong site


def test_frenkel_pair_interstitial_and_vacancy(perfect):
    cell = frenkel_pair(perfect, rng=1)
    moved = np.flatnonzero(np.linalg.norm(cell.positions - perfect.positions, axis=1) > 0.1)
    assert len(moved) == 1
    atoms, vac = pyrochlore_defect_sites(cell)
    assert atoms.tolist() == moved.tolist()            # the O on the 8a interstitial
    assert len(vac) == 1 and _distance(cell, vac[0], perfect.positions[moved[0]]) < 0.55   # 48f: 0.45 Å


@pytest.mark.parametrize("seed", [0, 5])
def test_antisite_cations(perfect, seed):
    cell = antisite(perfect, 1, rng=seed)
    swapped = np.flatnonzero(cell.numbers != perfect.numbers)
    assert len(swapped) == 2
    atoms, vac = pyrochlore_defect_sites(cell)
    assert atoms.tolist() == swapped.tolist() and len(vac) == 0


def _projected(orientation, points, width, height, fov_deg=40.0):
    """Normalised device coordinates of ``points`` for NGL's perspective camera at the
    given orientation (no rotation): |x|, |y| <= 1 is inside the canvas."""
    m = np.asarray(orientation).reshape(4, 4)      # row 3 = translation (-centre), diagonal = distance
    dist, shift = m[0, 0], m[3, :3]
    rel = np.asarray(points) + shift                # coordinates about the centre
    depth = dist - rel[:, 2]                        # the camera sits on +z, looking at the centre
    t = np.tan(np.radians(fov_deg) / 2)
    return rel[:, 0] / (depth * t * width / height), rel[:, 1] / (depth * t)


@pytest.mark.parametrize("size", [(260, 240), (240, 360), (480, 360)])
def test_camera_fits_the_structure_in_the_canvas(perfect, size):
    w, h = size
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) @ perfect.cell.array
    pts = np.vstack([perfect.positions, corners])
    orient = camera_orientation(pts, f"{w}px", f"{h}px")
    x, y = _projected(orient, pts, w, h)
    assert np.abs(x).max() <= 1 and np.abs(y).max() <= 1            # all of it is visible
    assert max(np.abs(x).max(), np.abs(y).max()) > 0.5              # and it fills the view
    m = np.asarray(orient).reshape(4, 4)
    assert np.allclose(m[3, :3], -(pts.min(0) + pts.max(0)) / 2)     # looking at the centre
    assert np.allclose(m[:3, :3], m[0, 0] * np.eye(3)) and m[3, 3] == 1.0


def test_camera_for_a_1px_canvas_is_the_blank_view_bug(perfect):
    """NGL's own fit on a canvas still 1 px wide puts the camera ~240x too far: a dot."""
    near = camera_orientation(perfect.positions, 260, 240)[0]
    far = camera_orientation(perfect.positions, 1, 240)[0]
    assert far / near > 100


@pytest.mark.parametrize("bad", [dict(points=np.zeros((0, 3))), dict(points=[[0, 0, np.nan]]),
                                 dict(points=[[0, 0, 0]], width="20em"), dict(points=[[0, 0, 0]], height=0)])
def test_camera_orientation_bad_input(bad):
    with pytest.raises(InputError):
        camera_orientation(**bad)


def test_legend_names_each_element_in_its_colour():
    html = legend_html(["La", "Zr", "O"], defects=True, vacancies=True)
    for el in ("La", "Zr", "O"):
        assert f"background:{ELEMENT_COLORS[el]}" in html and f">{el}</span>" in html
    assert len({ELEMENT_COLORS[el] for el in ("La", "Zr", "O")}) == 3
    assert "defect atom" in html and "vacancy" in html


def test_element_view_sets_colours_and_camera(perfect):
    """The kernel's calls (nglview's message archive): one spacefill per element in its
    colour, the highlighted atoms, the vacancy sphere and a camera orient message."""
    pytest.importorskip("nglview")
    from mdmlkit.nbtools.views import DEFECT_COLOR, element_view

    cell = frenkel_pair(perfect, rng=1)
    atoms, vac = pyrochlore_defect_sites(cell)
    box = element_view(cell, highlight=atoms, vacancies=vac, title="frenkel")
    view = box.children[-1]
    msgs = view._ngl_msg_archive
    reps = [(m["args"][0], m["kwargs"]["sele"], m["kwargs"].get("color")) for m in msgs
            if m["methodName"] == "addRepresentation"]
    for el in ("La", "Zr", "O"):
        assert ("spacefill", f"_{el.upper()}", ELEMENT_COLORS[el]) in reps
    assert ("spacefill", "@" + ",".join(map(str, atoms)), DEFECT_COLOR) in reps
    assert any(m["methodName"] == "addShape" for m in msgs)
    orient = [m for m in msgs if m["methodName"] == "orient"]
    assert len(orient) == 1 and np.allclose(orient[0]["args"][0], camera_orientation(
        np.vstack([cell.positions, np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
                   @ cell.cell.array]), 260, 240))
    assert view._view_width == "260px" and view._view_height == "240px"


def test_offline_report_replays_the_kernels_calls():
    """JupyterLab's snapshot of an nglview view (stale representation list, missing
    camera) is dropped, so the report replays the message archive; a view with
    embedded frames keeps its snapshot."""
    import nbformat

    from mdmlkit.nbtools.html_report import WIDGET_STATE_MIME, WIDGET_VIEW_MIME, prepare_offline

    archive = [{"methodName": "loadFile", "target": "Stage", "args": [{"type": "blob", "data": "x"}]}]
    snap = {"_camera_orientation": [], "_ngl_full_stage_parameters": {"backgroundColor": "white"},
            "_ngl_repr_dict": {"0": {"0": {"type": "ball+stick", "params": {}}}}, "_ngl_msg_archive": archive}
    ngl = {"model_module": "nglview-js-widgets", "model_module_version": "3.1.0", "model_name": "NGLModel"}
    nb = nbformat.v4.new_notebook()
    cells = []
    for mid in ("a", "b"):
        c = nbformat.v4.new_code_cell("v")
        c.outputs = [nbformat.v4.new_output("display_data", data={
            WIDGET_VIEW_MIME: {"version_major": 2, "version_minor": 0, "model_id": mid}})]
        cells.append(c)
    nb.cells = cells
    nb.metadata["widgets"] = {WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": {
        "a": {**ngl, "state": dict(snap)},
        "b": {**ngl, "state": {**snap, "_ngl_coordinate_resource": {"0": ["AAAA"], "n_frames": 2}, "max_frame": 1}},
    }}}
    st = prepare_offline(nb).metadata["widgets"][WIDGET_STATE_MIME]["state"]
    a, b = st["a"]["state"], st["b"]["state"]
    assert a["_camera_orientation"] == [] and a["_ngl_full_stage_parameters"] == {} and a["_ngl_repr_dict"] == {}
    assert a["_ngl_msg_archive"] == archive
    assert b["_ngl_full_stage_parameters"] == snap["_ngl_full_stage_parameters"]
    assert b["_ngl_repr_dict"] == snap["_ngl_repr_dict"]


def test_trajectory_frames_match_the_loaded_structure():
    """nglview loads the first frame as PDB text (ASE rotates a triclinic cell into the
    PDB orientation) but sends frames as raw positions: element_view rotates the frames
    the same way, so frame 0 is drawn where the structure and its unit cell are."""
    pytest.importorskip("nglview")
    from mdmlkit.nbtools.views import element_view
    from mdmlkit.systems.pyrochlore import primitive_cell

    prim = primitive_cell()
    frames = [prim.copy() for _ in range(3)]
    for i, a in enumerate(frames):
        a.positions += 0.05 * i
    view = element_view(frames[0], trajectory=frames).children[-1]
    pdb = next(m for m in view._ngl_msg_archive if m["methodName"] == "loadFile")["args"][0]["data"]
    xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])]
                    for ln in pdb.splitlines() if ln.startswith("ATOM")])
    assert np.allclose(view._trajlist[0].get_coordinates(0), xyz, atol=2e-3)
    assert not np.allclose(prim.positions, xyz, atol=0.1)      # the rotation is not trivial here


def test_vacancy_marker_sits_on_the_drawn_empty_site():
    """In a triclinic cell the vacancy sphere is rotated with the structure nglview draws:
    it lies where the removed O is in the PDB coordinates."""
    pytest.importorskip("nglview")
    from mdmlkit.nbtools.views import element_view
    from mdmlkit.systems.pyrochlore import primitive_cell

    prim = primitive_cell()
    removed = prim.positions[np.array(prim.get_chemical_symbols()) == "O"][0]
    cell = prim.copy()
    del cell[[int(np.flatnonzero(np.array(prim.get_chemical_symbols()) == "O")[0])]]
    view = element_view(cell, vacancies=[removed]).children[-1]
    shape = next(m for m in view._ngl_msg_archive if m["methodName"] == "addShape")
    sphere = np.array(shape["args"][1][0][1])
    pdb = next(m for m in view._ngl_msg_archive if m["methodName"] == "loadFile")["args"][0]["data"]
    xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])]
                    for ln in pdb.splitlines() if ln.startswith("ATOM")])
    # distances from the marker to the drawn atoms equal those from the removed O to the atoms
    assert np.allclose(np.sort(np.linalg.norm(xyz - sphere, axis=1))[:6],
                       np.sort(np.linalg.norm(cell.positions - removed, axis=1))[:6], atol=5e-3)
