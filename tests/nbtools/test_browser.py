"""The notebooks as a reader meets them: JupyterLab and the HTML reports in a real browser.

The browser tests (marker ``browser``) run with ``make test-browser`` (installs Debian's
Chromium, ``pip install .[browser]``), never with ``make test``, which only runs the fast
checks of the HTML export at the top. Playwright drives ``/usr/bin/chromium``;
no browser is downloaded. Screenshots of every notebook go to ``outputs/screenshots/``
(ignored by git): ``<notebook>.png`` (JupyterLab, after the run) and ``<notebook>.html.png``
(offline report); a 3-D view that stays blank is saved as ``<notebook>[.html].canvas<i>.png``.

For the fixture notebook (``tests/browser/fixtures``: IntSlider, Dropdown, an Output
widget with a figure, a matplotlib figure, an nglview view of H2O and two small views
side by side in a Box) and every numbered notebook:

* JupyterLab (this venv, 127.0.0.1, token, throw-away settings) runs it with its quick
  parameters (``output_dir`` goes to a temp dir); every code cell must run (a kernel
  that dies is reported as such), with no error output, every widget output must
  render as a widget (no "Failed to load model class"), figures must show and none may
  be blank (cell outputs and Output widgets), every nglview view must have a drawn
  canvas (one per view; a view collapsed to 1 px or zoomed to a dot fails), no raw
  ``$...$`` may remain, moving a trajectory's frame slider must change the drawn frame
  (pixels), and changing a control next to a figure must redraw it (required for the
  fixture). Reopened after its kernel is shut down, no widget may say "model not
  found". Each notebook's kernel is shut down after its run;
* the executed notebook is exported with :func:`mdmlkit.nbtools.runner.export_html` and
  opened from ``file://`` with all network requests refused: the widgets, figures and
  3D views must render from the embedded state alone, a drag must rotate a 3D view;
  no raw ``$...$`` may remain (MathJax is inlined), no widget may say "model not
  found", the icon font must be loaded; every trajectory player whose frames are not
  embedded must be disabled under a visible "trajectory player needs a running kernel"
  note (as many as the saved state has), any live one must change the drawn frame, and
  no enabled control may sit next to a figure it cannot change. The fixture goes
  through ``run_notebook`` (papermill, the ``make demo`` path); the numbered notebooks
  reuse the state JupyterLab saved.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from mdmlkit.nbtools.runner import list_notebooks, run_notebook

in_browser = pytest.mark.browser

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "browser"))
import lab_driver  # noqa: E402

from mdmlkit.nbtools import nglview_fix as nglview_labext  # noqa: E402

REPO = HERE.parents[1]
FIXTURE = HERE / "browser" / "fixtures" / "widgets_fixture.ipynb"
NOTEBOOKS = [FIXTURE] + list_notebooks()
IDS = [p.stem for p in NOTEBOOKS]
SCREENSHOTS = REPO / "outputs" / "screenshots"
RUN_TIMEOUT = 300  # s per notebook in JupyterLab, quick parameters
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"

_lab_saved: dict[str, Path] = {}  # notebook stem -> notebook as saved by JupyterLab


def _code_outputs(nb: dict):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            yield cell, cell.get("outputs", [])


def _widget_models(nb: dict) -> set[str]:
    """Model names of the widget views the notebook's outputs display (plus children)."""
    state = nb.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})
    return {m["model_name"] for m in state.values()}


def _png_outputs(nb: dict):
    """(where, base64 PNG) of every figure: cell outputs and Output-widget outputs in the state."""
    for i, (_, outs) in enumerate(_code_outputs(nb)):
        for o in outs:
            if "image/png" in o.get("data", {}):
                yield f"code cell {i + 1}", o["data"]["image/png"]
    state = nb.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})
    for mid, m in state.items():
        for o in m.get("state", {}).get("outputs", []) if m["model_name"] == "OutputModel" else []:
            if "image/png" in o.get("data", {}):
                yield f"Output widget {mid}", o["data"]["image/png"]


def _blank_figures(nb: dict) -> list[str]:
    """Figures that show nothing: one colour (or fully transparent) once put on white."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    blank = []
    for where, b64 in _png_outputs(nb):
        img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGBA")
        flat = Image.new("RGBA", img.size, "white")
        flat.alpha_composite(img)
        if len(np.unique(np.asarray(flat.convert("RGB")).reshape(-1, 3), axis=0)) < 2:
            blank.append(f"{where} ({img.size[0]}x{img.size[1]})")
    return blank


def _n_ngl_views(nb: dict) -> int:
    """How many nglview widgets (NGLModel) the saved state holds: each is shown once."""
    state = nb.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})
    return sum(m["model_name"] == "NGLModel" for m in state.values())


def _ngl_trajectories(nb: dict) -> tuple[int, int]:
    """(nglview trajectories, those without embedded frames) in the saved widget state:
    the second are the players an offline report must show disabled under a note."""
    state = nb.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})
    traj = [m["state"] for m in state.values()
            if m["model_name"] == "NGLModel" and int(m["state"].get("max_frame") or 0) > 0]
    return len(traj), sum(not (t.get("_ngl_coordinate_resource") or {}).get("n_frames") for t in traj)


def _lab_copy(nb_path: Path, dest: Path, output_dir: Path) -> Path:
    """The notebook as ``run_notebook`` would run it: quick parameters, ``output_dir``
    injected after the parameters cell, working directory the notebook's own folder."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(nb_path)), {"output_dir": str(output_dir)})
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = f"import os\nos.chdir({str(nb_path.parent)!r})\n" + cell.source
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / nb_path.name
    nbformat.write(nb, str(out))
    return out


# ----------------------------------------------------- fast checks of the export (make test)
def _widget_notebook(modules: dict[str, str]) -> object:
    """A notebook node whose saved state holds an IntSlider plus models of ``modules``."""
    import nbformat

    state = {"s1": {"model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
                    "model_module_version": "2.0.0", "state": {"value": 3, "max": 10}}}
    for i, (mod, ver) in enumerate(modules.items()):
        state[f"m{i}"] = {"model_name": "SomeModel", "model_module": mod, "model_module_version": ver,
                          "state": {"_view_module": mod, "_view_module_version": ver}}
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("slider")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "s1"}, "text/plain": "IntSlider"})]
    nb.cells = [cell]
    nb.metadata["widgets"] = {STATE: {"version_major": 2, "version_minor": 0, "state": state}}
    return nb


def test_html_report_is_self_contained():
    """Widget JavaScript is inlined (require.js, html-manager, nglview's AMD bundle named
    for require.js); no <script src> is left pointing at a CDN; the state is embedded."""
    import re

    from mdmlkit.nbtools.html_report import find_widget_bundle, render_html, widget_modules

    nb = _widget_notebook({"nglview-js-widgets": "4.0"})
    assert widget_modules(nb) == {"nglview-js-widgets": "4.0"}
    bundle = find_widget_bundle("nglview-js-widgets")
    assert bundle is not None and bundle.name == "index.js", "nglview's nbextension bundle not installed"
    html = render_html(nb)
    srcs = [t for t in re.findall(r"<script\b[^>]{0,400}>", html)
            if re.search(r"\ssrc=", t) and 'type="text/plain"' not in t]   # text/plain: never fetched
    assert not srcs, srcs
    assert 'define("@jupyter-widgets/html-manager"' in html
    assert "RequireJS" in html and 'args.unshift("nglview-js-widgets")' in html
    assert bundle.read_text()[:2000] in html
    assert STATE in html and '"IntSliderModel"' in html
    # cdn page for comparison: nbconvert's default loads require.js and widgets remotely
    assert "unpkg.com" in render_html(nb, offline=False)


def test_html_report_warns_on_missing_bundle(tmp_path):
    from mdmlkit.nbtools.html_report import MissingWidgetBundleWarning, render_html

    nb = _widget_notebook({"no-such-widget-lib": "1.0"})
    with pytest.warns(MissingWidgetBundleWarning, match="no-such-widget-lib"):
        html = render_html(nb, bundle_dirs=[tmp_path])
    assert 'define("@jupyter-widgets/html-manager"' in html  # the rest still works


def test_export_html_writes_atomically(tmp_path):
    import nbformat

    from mdmlkit.nbtools.runner import export_html

    src = tmp_path / "nb.ipynb"
    nbformat.write(_widget_notebook({}), str(src))
    out = export_html(src, tmp_path / "report" / "nb.html")
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<title>nb</title>" in text
    assert [p.name for p in out.parent.iterdir()] == ["nb.html"]  # no temp file left


def test_html_report_marks_kernel_controls_static():
    """An unlinked slider needs the kernel: disabled, with a visible note; jslinked
    controls stay live; an nglview trajectory without embedded frames is marked static
    with its player disabled; a widget whose model is gone shows its text fallback."""
    import nbformat

    from mdmlkit.nbtools.html_report import STATIC_NOTE_CLASS, prepare_offline, render_html

    nb = _widget_notebook({})
    st = nb.metadata["widgets"][STATE]["state"]
    ctl = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0"}
    st.update({
        "play": {"model_name": "PlayModel", **ctl, "state": {"value": 0, "max": 9}},
        "ps": {"model_name": "IntSliderModel", **ctl, "state": {"value": 0, "max": 9}},
        "box": {"model_name": "HBoxModel", **ctl, "state": {"children": ["IPY_MODEL_play", "IPY_MODEL_ps"]}},
        "ngl": {"model_name": "NGLModel", "model_module": "nglview-js-widgets", "model_module_version": "3.1.0",
                "state": {"max_frame": 9, "_iplayer": "IPY_MODEL_box", "_ngl_coordinate_resource": {}}},
        "l1": {"model_name": "LinkModel", **ctl, "state": {"source": ["IPY_MODEL_play", "value"],
                                                            "target": ["IPY_MODEL_ps", "value"]}},
    })
    view = nb.cells[0]
    traj = nbformat.v4.new_code_cell("view")
    traj.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "ngl"}})]
    gone = nbformat.v4.new_code_cell("bar")
    gone.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "gone-model-4711"}, "text/plain": "100% 10/10"})]
    nb.cells = [view, traj, gone]
    out = prepare_offline(nb)
    ost = out.metadata["widgets"][STATE]["state"]
    assert ost["s1"]["state"]["disabled"] and ost["s1"]["state"]["description_tooltip"] == "needs a running kernel"
    assert ost["play"]["state"]["disabled"] and ost["ps"]["state"]["disabled"]
    notes = [o["data"]["text/html"] for c in out.cells for o in c.outputs if STATIC_NOTE_CLASS in
             o.get("data", {}).get("text/html", "")]
    assert len(notes) == 2 and "need a running kernel" in notes[0]
    assert "frame 0 of 10" in notes[1] and "trajectory player needs a running kernel" in notes[1]
    assert out.cells[2].outputs[0]["data"] == {"text/plain": "100% 10/10"}
    assert "disabled" not in st["s1"]["state"]            # the input notebook is not modified
    # embedded frames: the player works client-side, no note
    st["ngl"]["state"]["_ngl_coordinate_resource"] = {"0": ["AAAA"], "n_frames": 10}
    out = prepare_offline(nb)
    assert "disabled" not in out.metadata["widgets"][STATE]["state"]["play"]["state"]
    html = render_html(nb)
    assert "gone-model-4711" not in html and "100% 10/10" in html and STATIC_NOTE_CLASS in html


def test_html_report_bundles_mathjax_and_icon_font():
    """Formulas render offline (MathJax 3 inlined when the markdown has TeX) and the widget
    buttons' icon font is embedded as a data URI; no remote script or font is left."""
    import re

    import nbformat

    from mdmlkit.nbtools.html_report import render_html

    nb = _widget_notebook({})
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("Energy $E = \\tfrac32 k_B T$ per atom"))
    html = render_html(nb)
    assert "window.MathJax = {" in html and "MathJax" in html and len(html) > 2_000_000
    assert not [t for t in re.findall(r"<script\b[^>]{0,400}>", html)
                if re.search(r"\ssrc=", t) and 'type="text/plain"' not in t]
    assert "url(data:font/woff2;base64," in html and "mdmlkit FA Solid" in html
    plain = _widget_notebook({})
    assert "window.MathJax = {" not in render_html(plain)      # no TeX: no 2 MB of MathJax


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install '.[browser]'")
    if not lab_driver.CHROMIUM.exists():
        pytest.skip(f"{lab_driver.CHROMIUM} missing: run `bash .ci/install-browser`")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory):
    ctx = lab_driver.launch_chromium(playwright, tmp_path_factory.mktemp("chromium-profile"))
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    with lab_driver.JupyterLab(root, tmp_path_factory.mktemp("lab-state")) as server:
        yield server


@pytest.fixture()
def page(browser):
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text[:500]}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {str(e)[:500]}"))
    page.console_errors = console
    yield page
    page.close()


# -------------------------------------------------------------------------------- tests
@in_browser
def test_lab_extensions_installed():
    """The widget lab extensions this venv ships are found, enabled and compatible."""
    import subprocess

    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True,
                         text=True, timeout=120)
    text = out.stdout + out.stderr
    for ext in ("@jupyter-widgets/jupyterlab-manager", "nglview-js-widgets"):
        line = next((ln for ln in text.splitlines() if ext in ln), "")
        assert "enabled" in line and "OK" in line, f"{ext} not found/enabled:\n{text}"
    ok, msg = nglview_labext.check()
    assert ok, msg + " - repair with `mdmlkit fix-nglview`"


@in_browser
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_notebook_in_jupyterlab(nb_path, lab, page, tmp_path):
    blocked = lab_driver.local_only_routes(page, lab.port)
    rel = f"{nb_path.stem}/{nb_path.name}"
    copy = _lab_copy(nb_path, lab.root_dir / nb_path.stem, tmp_path / "output")
    shot = SCREENSHOTS / f"{nb_path.stem}.png"
    try:
        run = lab_driver.run_all_cells(page, lab, rel, timeout=RUN_TIMEOUT)
        report = lab_driver.inspect_page(page, ".jp-Notebook")
        canvases = lab_driver.drawn_canvases(page, timeout=60, save_prefix=SCREENSHOTS / nb_path.stem)
        lab_driver.full_screenshot(page, shot, scroller=".jp-WindowedPanel-outer")
        tex = lab_driver.raw_tex(page)
        # what a reader does with the live kernel: play a trajectory, change a control
        players = lab_driver.ngl_players(page)
        moved = [lab_driver.move_trajectory_slider(page, p["index"]) for p in players[:2]]
        control = lab_driver.live_control_changes_plot(page)
    except BaseException:
        lab_driver.full_screenshot(page, shot, scroller=".jp-WindowedPanel-outer")
        raise
    finally:
        lab.shutdown_kernels()  # the next notebook gets the memory and the cores
    saved = json.loads(copy.read_text())
    _lab_saved[nb_path.stem] = copy
    print(f"{nb_path.stem}: ran in {run['seconds']:.1f} s; {report}; canvases {canvases}; trajectory sliders "
          f"{moved}; control {control}; screenshot {shot}")

    # every code cell ran, none raised
    assert all(p.strip("[]: ").isdigit() for p in run["prompts"]), f"cells not run: {run['prompts']}"
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for _, outs in _code_outputs(saved) for o in outs
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert not report.tracebacks, report.tracebacks
    # widgets: each widget output renders as a widget, none as an error
    n_views = sum(WIDGET_VIEW in o.get("data", {}) for _, outs in _code_outputs(saved) for o in outs)
    assert n_views >= 1, "the notebook should show interactive widgets"
    assert not report.widget_errors, report.widget_errors + page.console_errors[:5]
    assert report.widget_views >= n_views
    models = _widget_models(saved)
    if models & {"IntSliderModel", "FloatSliderModel", "IntRangeSliderModel", "FloatRangeSliderModel",
                 "SelectionSliderModel", "FloatLogSliderModel"}:
        assert report.sliders >= 1, report
    if "DropdownModel" in models:
        assert report.dropdowns >= 1, report
    # figures
    n_png = sum("image/png" in o.get("data", {}) for _, outs in _code_outputs(saved) for o in outs)
    assert n_png >= 1 and report.figures >= 1, (n_png, report)
    assert not _blank_figures(saved), f"blank figures: {_blank_figures(saved)}"
    # the 3D view: nglview model present and its WebGL canvas drawn
    assert "NGLModel" in models, "the notebook should show an nglview 3D view"
    assert canvases, "no 3D view canvas on the page"
    blank = [c for c in canvases if not lab_driver.is_drawn(c)]
    assert not blank, f"blank, collapsed or nearly blank 3D views: {blank}; console: {page.console_errors[:5]}"
    assert len(canvases) >= _n_ngl_views(saved), (len(canvases), _n_ngl_views(saved), canvases)
    assert not [u for u in blocked if "unpkg" in u or "jsdelivr" in u], blocked
    assert not tex, f"raw TeX in JupyterLab (MathJax did not typeset it): {tex[:5]}"
    # a trajectory's slider moves the drawn frame (the kernel sends the coordinates)
    assert len(players) == _ngl_trajectories(saved)[0], (players, _ngl_trajectories(saved))
    for m in moved:
        assert m["to"] != m["from"], f"the trajectory slider did not move: {m}"
        assert m["difference"] > 0, f"moving the trajectory slider did not change the drawn frame: {m}"
        assert m["back_to"] == m["from"] and m["back_difference"] > 0, \
            f"moving the slider back did not change the drawn frame again: {m}"
    # a control next to a figure redraws it
    if nb_path == FIXTURE:
        assert control is not None, "the fixture's slider/dropdown next to its figure was not found"
    if control is not None:
        assert control["changed"], f"changing a live control did not change its figure: {control}"
    # reopened the next day: widgets come back from the saved state, none refers to a closed model
    try:
        text = lab_driver.reopen_notebook(page, lab, rel)
        reopened = lab_driver.inspect_page(page, ".jp-Notebook")
    finally:
        lab.shutdown_kernels()
    assert "model not found" not in text, "a widget output of the reopened notebook refers to a closed model"
    assert not reopened.widget_errors, reopened.widget_errors


def _check_html_report(page, html: Path, stem: str, nb: dict) -> None:
    blocked = lab_driver.offline_routes(page)
    shot = SCREENSHOTS / f"{stem}.html.png"
    page.goto(html.as_uri(), wait_until="load")
    try:
        page.wait_for_selector(".widget-subarea .jupyter-widgets", timeout=60_000)
        canvases = lab_driver.drawn_canvases(page, timeout=60, save_prefix=SCREENSHOTS / f"{stem}.html")
        report = lab_driver.inspect_page(page)
    finally:
        lab_driver.full_screenshot(page, shot)
    n_ngl = _n_ngl_views(nb)
    print(f"{stem}.html: {report}; canvases {canvases}; blocked {blocked}; screenshot {shot}")
    assert not report.widget_errors, report.widget_errors + page.console_errors[:5]
    assert report.widget_views >= 1 and report.figures >= 1, report
    # widget JavaScript came from the page itself, not from a CDN
    assert not [u for u in blocked if "unpkg" in u or "jsdelivr" in u or "require" in u], blocked
    assert canvases, "no 3D view canvas in the HTML report"
    blank = [c for c in canvases if not lab_driver.is_drawn(c)]
    assert not blank, f"blank, collapsed or nearly blank 3D views in the HTML report: {blank}; " \
                      f"console: {page.console_errors[:5]}"
    assert len(canvases) >= n_ngl, (len(canvases), n_ngl, canvases)

    # formulas were typeset offline: no raw $...$ left in the rendered markdown
    page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)",
                           timeout=30_000)
    page.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
    raw_tex = page.evaluate(r"""() => Array.from(document.querySelectorAll('.jp-RenderedMarkdown'))
        .map(e => e.innerText).join('\n').match(/\$[^$\n]{1,80}\$/g) || []""")
    assert not raw_tex, f"raw TeX in the report (MathJax not applied offline): {raw_tex[:5]}"
    body_text = page.evaluate("() => document.body.innerText")
    assert "model not found" not in body_text, "a widget output refers to a closed model"
    # the icon font of the widget buttons is embedded (player icons are not empty boxes)
    assert page.evaluate("""async () => (await document.fonts.load('900 16px "mdmlkit FA Solid"', '\\uf04b'))
                            .length > 0"""), "icon font of the widget buttons missing"
    # a trajectory player either changes the drawn frame or is visibly marked static: the
    # report disables players whose frames are not embedded and says so above the view
    n_traj, n_static = _ngl_trajectories(nb)
    players = lab_driver.ngl_players(page)
    assert len(players) == n_traj, (players, n_traj)
    disabled = [p for p in players if p["disabled"]]
    assert len(disabled) == n_static, f"{len(disabled)} disabled trajectory players, expected {n_static}: {players}"
    static_notes = page.locator(".mdmlkit-static-note", has_text="trajectory player needs a running kernel")
    assert static_notes.count() >= min(1, n_static) and (not n_static or static_notes.first.is_visible()), \
        "a disabled trajectory player without a visible static note"
    for p in players:
        if not p["disabled"]:
            m = lab_driver.move_trajectory_slider(page, p["index"], timeout=10)
            assert m["to"] != m["from"] and m["difference"] > 0, \
                f"trajectory player is live but the drawn frame did not change: {m}"
    # no control looks live next to a figure it cannot change without a kernel
    control = lab_driver.live_control_changes_plot(page, timeout=10)
    assert control is None or control["changed"], f"a control in the report changes nothing: {control}"
    # the widgets work: a slider that can move does (its readout follows) ...
    movable = page.evaluate("""() => Array.from(document.querySelectorAll('.widget-slider')).findIndex(s => {
        const h = s.querySelector('.noUi-handle');
        return h && s.offsetParent !== null && s.querySelector('.widget-readout') && !s.querySelector('[disabled]') &&
               Number(h.getAttribute('aria-valuenow')) < Number(h.getAttribute('aria-valuemax')); })""")
    if movable >= 0:
        slider = page.locator(".widget-slider").nth(movable)
        readout = slider.locator(".widget-readout")
        before = readout.text_content()
        slider.locator(".noUi-handle").focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        assert readout.text_content() != before, "slider readout did not follow the slider"
    # ... and a drag rotates the 3D view
    canvas = page.locator("canvas").nth(max(canvases, key=lambda c: c["foreground"])["index"])
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    before = canvas.screenshot()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 60, cy)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 40, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)
    assert canvas.screenshot() != before, "dragging did not rotate the 3D view"


@in_browser
def test_fixture_html_report_offline(page, tmp_path):
    """make demo's path: papermill run, export_html, open from file:// with no network."""
    run = run_notebook(FIXTURE, tmp_path, parameters={}, html=True, timeout=300)
    assert run.ok, run.error
    executed = json.loads((tmp_path / FIXTURE.name).read_text())
    assert STATE in executed["metadata"].get("widgets", {}), "papermill did not store the widget state"
    assert "NGLModel" in _widget_models(executed)
    assert not _blank_figures(executed), f"blank figures: {_blank_figures(executed)}"
    _check_html_report(page, Path(run.html), FIXTURE.stem, executed)


@in_browser
@pytest.mark.parametrize("nb_path", NOTEBOOKS[1:], ids=IDS[1:])
def test_notebook_html_report_offline(nb_path, page, tmp_path):
    """Each numbered notebook's report, from the state JupyterLab saved above."""
    saved = _lab_saved.get(nb_path.stem)
    if saved is None:
        pytest.skip("its JupyterLab run did not save a notebook (see test_notebook_in_jupyterlab)")
    from mdmlkit.nbtools.runner import export_html

    nb = tmp_path / nb_path.name
    shutil.copy(saved, nb)
    html = export_html(nb, tmp_path / f"{nb_path.stem}.html")
    _check_html_report(page, html, nb_path.stem, json.loads(nb.read_text()))
