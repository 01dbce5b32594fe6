"""The linked map (:class:`mdmlkit.viz.linked_map.LinkedMap`) in a real browser.

Marker ``browser`` (``make test-browser``; Playwright drives ``/usr/bin/chromium``):

* the offline HTML report (:func:`mdmlkit.nbtools.runner.export_html` of a notebook whose
  output is the map), opened from ``file://`` with every network request refused:
  clicking a point redraws the 3-D view (pixels change) and the info line shows that
  point's energy, temperature and morphology; a drag rotates the structure; a basin
  button shows the basin's representative and its members;
* JupyterLab (this venv, 127.0.0.1): the same map made by a kernel renders and a click
  shows the clicked point.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import lab_driver  # noqa: E402

in_browser = pytest.mark.browser
MAP = ".mdmlkit-linked-map[data-ready='1']"

# a small map: perturbed icosahedra (basin 0) and decahedra (basin 1), energies known
_SOURCE = """
import numpy as np
from ase.cluster import Decahedron, Icosahedron
from mdmlkit.viz.linked_map import LinkedMap
shapes = [Icosahedron("Cu", 2), Decahedron("Cu", 2, 2, 0)]
frames, xy = [], []
for i in range(24):
    a = shapes[i % 2].copy()
    a.positions += np.random.default_rng(i).normal(scale=0.15, size=a.positions.shape)
    frames.append(a)
    xy.append([10.0 * (i % 2) + (i // 2) % 4, (i // 8) + 0.3 * (i % 2)])
energy = -30.0 + 0.125 * np.arange(24)
morph = ["icosahedral" if i % 2 == 0 else "decahedral" for i in range(24)]
lmap = LinkedMap(np.array(xy), frames, energy=energy, temperature=300.0 + 25.0 * np.arange(24),
                 labels=[i % 2 for i in range(24)], morphology=morph, title="test map")
lmap
"""


def _energy(i: int) -> float:
    return -30.0 + 0.125 * i


def _notebook(executed: bool):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(_SOURCE)
    if executed:
        ns: dict = {}
        exec(compile(_SOURCE.replace("\nlmap\n", "\n"), "<linked map>", "exec"), ns)  # noqa: S102
        cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=1, data={
            "text/html": ns["lmap"]._repr_html_(), "text/plain": repr(ns["lmap"])})]
        cell.execution_count = 1
    nb.cells = [cell]
    return nb


def _click_point(page, root, i: int) -> None:
    x, y = root.evaluate(f"r => r.linkedMap.pixelOf({i})")
    box = root.locator("canvas.lm-map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_timeout(200)


def _check_map(page, root) -> None:
    view = root.locator("canvas.lm-structure")
    info = root.locator(".lm-info")
    assert lab_driver.is_drawn(lab_driver.canvas_stats(view.screenshot()))
    assert lab_driver.is_drawn(lab_driver.canvas_stats(root.locator("canvas.lm-map").screenshot()))
    before = view.screenshot()
    # point 7 is a decahedron; the view starts on basin 0's representative (an icosahedron)
    _click_point(page, root, 7)
    text = info.text_content()
    assert info.get_attribute("data-point") == "7", text
    assert f"E = {_energy(7):.3f} eV" in text and "T = 475 K" in text and "decahedral" in text, text
    assert "basin B1" in text, text
    after = view.screenshot()
    assert after != before, "clicking a point did not redraw the 3-D structure"
    # another point, another structure
    _click_point(page, root, 12)
    assert f"E = {_energy(12):.3f} eV" in info.text_content() and "icosahedral" in info.text_content()
    assert view.screenshot() != after
    # a drag rotates the structure
    box = view.bounding_box()
    before = view.screenshot()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 50, cy)
    page.mouse.down()
    page.mouse.move(cx + 50, cy + 30, steps=8)
    page.mouse.up()
    page.wait_for_timeout(200)
    assert view.screenshot() != before, "dragging did not rotate the structure"
    # a basin: representative, members
    root.locator(".lm-basins button[data-basin='1']").click()
    text = info.text_content()
    assert text.startswith("B1: 12 points") and "decahedral 12" in text, text
    assert root.locator(".lm-members a").count() == 12
    root.locator(".lm-members a[data-point='9']").click()
    assert f"E = {_energy(9):.3f} eV" in info.text_content()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install '.[browser]'")
    if not lab_driver.CHROMIUM.exists():
        pytest.skip(f"{lab_driver.CHROMIUM} missing: run `bash .ci/install-browser`")
    with sync_api.sync_playwright() as p:
        ctx = lab_driver.launch_chromium(p, tmp_path_factory.mktemp("chromium-profile"))
        yield ctx
        ctx.close()


@pytest.fixture()
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)[:500]))
    page.on("console", lambda m: errors.append(m.text[:500]) if m.type == "error" else None)
    page.errors = errors
    yield page
    page.close()


@in_browser
def test_linked_map_in_offline_html_report(page, tmp_path):
    import nbformat

    from mdmlkit.nbtools.runner import export_html

    src = tmp_path / "linked.ipynb"
    nbformat.write(_notebook(executed=True), str(src))
    html = export_html(src, tmp_path / "linked.html")
    blocked = lab_driver.offline_routes(page)
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_selector(MAP, timeout=30_000)
    _check_map(page, page.locator(MAP))
    assert not page.errors, page.errors
    assert not [u for u in blocked if "mathjax" not in u.lower()], blocked  # MathJax only


@in_browser
def test_linked_map_in_jupyterlab(page, tmp_path_factory):
    import nbformat

    root = tmp_path_factory.mktemp("lab-root")
    nbformat.write(_notebook(executed=False), str(root / "linked.ipynb"))
    with lab_driver.JupyterLab(root, tmp_path_factory.mktemp("lab-state")) as lab:
        lab_driver.local_only_routes(page, lab.port)
        try:
            run = lab_driver.run_all_cells(page, lab, "linked.ipynb", timeout=120)
            assert run["prompts"] == ["[1]:"], run
            page.wait_for_selector(".jp-OutputArea-output " + MAP, timeout=30_000)
            _check_map(page, page.locator(MAP))
        finally:
            lab.shutdown_kernels()
