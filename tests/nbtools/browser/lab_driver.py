"""Drive JupyterLab and standalone HTML reports in Debian's headless Chromium (Playwright).

Used by ``tests/test_browser.py``. Nothing here downloads a browser: Playwright is
pointed at ``/usr/bin/chromium`` (installed by ``.ci/install-browser``).

* :class:`JupyterLab` starts ``jupyter lab`` from the running interpreter's environment on
  127.0.0.1 with a random token and throw-away config/settings/workspace directories
  (autosave off, all cells attached to the DOM, widget state saved with the notebook).
* :func:`launch_chromium` starts Chromium with the flags of issue 5 and software WebGL
  (SwiftShader) so nglview's canvas renders without a GPU.
* :func:`run_all_cells` opens a notebook, runs every cell, waits for the kernel and
  saves; :func:`inspect_page` counts what a reader would see; :func:`canvas_stats`
  tells a drawn canvas from a blank one by its pixels.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("MDMLKIT_CHROMIUM", "/usr/bin/chromium"))
#: the flags issue 5 asks for, plus software WebGL for nglview
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]

# JupyterLab user settings for a reproducible, side-effect-free session
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 serving ``root_dir``; use as a context manager.

    Its config, data-runtime, settings and workspace directories live under ``state_dir``
    so the user's own Jupyter set-up plays no part; lab extensions come from the
    environment of ``python`` (``<prefix>/share/jupyter/labextensions``).
    """

    def __init__(self, root_dir: Path, state_dir: Path, python: str = sys.executable,
                 startup_timeout: float = 120.0):
        self.root_dir = Path(root_dir)
        self.state_dir = Path(state_dir)
        self.python = python
        self.startup_timeout = startup_timeout
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state_dir / "jupyterlab.log"

    def __repr__(self) -> str:
        state = "running" if self.proc and self.proc.poll() is None else "stopped"
        return f"JupyterLab(http://127.0.0.1:{self.port}, root={self.root_dir}, {state})"

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def _env(self) -> dict[str, str]:
        settings = self.state_dir / "lab-settings"
        for plugin, values in LAB_SETTINGS.items():
            p = settings / f"{plugin}.jupyterlab-settings"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(values))
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(self.state_dir / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.state_dir / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.state_dir / "workspaces"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",  # a crashing kernel leaves its traceback in the log
        })
        return env

    def start(self) -> JupyterLab:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self.python, "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root
            cmd.append("--allow-root")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                     cwd=self.root_dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def kernels(self) -> list[dict]:
        """The server's running kernels (``/api/kernels``: id, execution_state, connections).

        jupyter_server answers 500 while a kernel is still starting (its ``last_activity``
        is not set yet: a TraitError in ``list_kernels``); such an answer is retried for
        up to 10 s before it is raised.
        """
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with urllib.request.urlopen(self.url("api/kernels"), timeout=10) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as err:
                if err.code < 500 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def shutdown_kernels(self) -> None:
        """Shut down every running kernel (frees the memory and threads of a finished notebook)."""
        try:
            kernels = self.kernels()
        except (OSError, ValueError):  # server gone: nothing to shut down
            return
        for k in kernels:
            req = urllib.request.Request(self.url(f"api/kernels/{k['id']}"), method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=30).close()
            except urllib.error.URLError:
                pass

    def kernel_restarts(self) -> int:
        """How many times the server has restarted a dead kernel so far (from its log)."""
        try:
            return self.log_path.read_text().count("KernelRestarter: restarting kernel")
        except OSError:
            return 0

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # jupyter shuts its kernels down on SIGTERM
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright, user_data_dir: Path, width: int = 1280, height: int = 1000):
    """A persistent Chromium context on a fresh profile (never a downloaded browser)."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: run `bash .ci/install-browser`")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": width, "height": height}, device_scale_factor=1)


def _restrict_routes(page, allowed: tuple[str, ...]) -> list[str]:
    """Abort every request whose URL does not start with one of ``allowed``; returns the
    list of blocked URLs (filled as the page runs)."""
    blocked: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith(allowed):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return blocked


def offline_routes(page) -> list[str]:
    """Abort every request that is not ``file:``/``data:``/``blob:``; returns the list it fills."""
    return _restrict_routes(page, ("file:", "data:", "blob:"))


def local_only_routes(page, port: int) -> list[str]:
    """Abort every request except to the JupyterLab server on 127.0.0.1:``port``."""
    return _restrict_routes(page, (f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/", "data:", "blob:"))


# ---------------------------------------------------------------------------- JupyterLab
_PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')).map(e => e.textContent.trim())"""
_KERNEL_IDLE_JS = """() => {
    const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
    return s ? s.getAttribute('data-status') : null; }"""


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _wait_stable(predicate, hold: float, timeout: float, what: str) -> None:
    """Wait until ``predicate()`` has been true for ``hold`` seconds in a row."""
    deadline = time.monotonic() + timeout
    since = None
    while time.monotonic() < deadline:
        if predicate():
            since = since or time.monotonic()
            if time.monotonic() - since >= hold:
                return
        else:
            since = None
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _run_menu_command(page, menu: str, item: str) -> None:
    page.get_by_role("menuitem", name=menu, exact=True).first.click()
    page.get_by_role("menuitem", name=item, exact=True).first.click()


def run_all_cells(page, lab: JupyterLab, relpath: str, timeout: float = 300.0) -> dict[str, Any]:
    """Open ``relpath`` in JupyterLab, run all cells, wait for the kernel, save.

    Returns ``{"seconds": wall time of the run, "prompts": [...]}``; a cell that raises
    stops the run (as in JupyterLab), leaving the prompts after it empty.
    """
    page.goto(lab.url(f"lab/tree/{relpath}") + "&reset", wait_until="domcontentloaded")
    n_code = sum(c["cell_type"] == "code" for c in json.loads((lab.root_dir / relpath).read_text())["cells"])
    _wait(lambda: page.locator(".jp-Notebook .jp-CodeCell").count() == n_code, 120,
          f"the {n_code} code cells of {relpath} to show")
    # the kernel must be started and the page connected to it (the page's own indicator
    # reads "idle" before it has a kernel at all)
    def kernel_ready():
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():  # a kernel-selection dialog: take the notebook's own kernel
            accept.first.click()
        kernels = lab.kernels()
        return kernels if any(k["execution_state"] == "idle" for k in kernels) else None

    _wait(kernel_ready, 180, "the kernel to start")
    _wait_stable(lambda: page.evaluate(_KERNEL_IDLE_JS) == "idle", 2.0, 60, "the page to see the kernel")
    restarts = lab.kernel_restarts()

    def check_kernel_alive():  # a dead kernel is restarted empty and looks idle: say so
        if lab.kernel_restarts() > restarts:
            raise RuntimeError(f"the kernel of {relpath} died while running it (prompts "
                               f"{page.evaluate(_PROMPTS_JS)}); server log:\n{lab.log_tail(3000)}")

    t0 = time.monotonic()
    _run_menu_command(page, "Run", "Run All Cells")
    try:  # the first prompt turns into [*] or [1] once the kernel has the request
        _wait(lambda: page.evaluate(_PROMPTS_JS)[0] not in ("[ ]:", "[]:", ""), 20, "execution to start")
    except TimeoutError:
        _run_menu_command(page, "Run", "Run All Cells")

    def done():
        check_kernel_alive()
        prompts = page.evaluate(_PROMPTS_JS)
        queued = any(p in ("[*]:", "[*]") for p in prompts)
        return prompts if not queued and page.evaluate(_KERNEL_IDLE_JS) == "idle" else None

    try:  # nothing queued and the kernel idle, for 2 s in a row
        _wait_stable(lambda: done() is not None, 2.0, timeout, f"all {n_code} code cells of {relpath} to run")
        prompts = page.evaluate(_PROMPTS_JS)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: prompts {page.evaluate(_PROMPTS_JS)}, kernel "
                           f"{page.evaluate(_KERNEL_IDLE_JS)!r}, server kernels {lab.kernels()}") from None
    seconds = time.monotonic() - t0
    check_kernel_alive()
    page.keyboard.press("Control+s")
    # saved when the document is no longer dirty
    _wait(lambda: page.locator(".jp-mod-dirty").count() == 0, 60, "the notebook to be saved")
    return {"seconds": seconds, "prompts": prompts}


_INSPECT_JS = """(root) => {
    const q = (sel) => Array.from(root.querySelectorAll(sel));
    const text = (el) => (el.textContent || '').trim();
    return {
        widget_views: q('.jp-OutputArea-output .jupyter-widgets, .widget-subarea .jupyter-widgets').length,
        sliders: q('.widget-slider, .widget-hslider, .widget-vslider').length,
        dropdowns: q('.widget-dropdown select').length,
        canvases: q('canvas').map(c => ({w: c.width, h: c.height})),
        figures: q('.jp-OutputArea-output img, .jp-RenderedImage img, .widget-image').filter(
            i => (i.naturalWidth || i.width) > 50).length,
        widget_errors: q('.jupyter-widgets-error-widget, .jp-OutputArea-output, .widget-subarea').map(
            e => e.classList.contains('jupyter-widgets-error-widget') ? 'error widget: ' + text(e) : text(e)
        ).filter(t => t.startsWith('error widget') || t.startsWith('Error displaying widget')
              || t.startsWith('Loading widget...') || t.includes('Failed to load model class')
              || t.includes('Click to show javascript error')).slice(0, 5),
        tracebacks: q('[data-mime-type="application/vnd.jupyter.stderr"]').map(text).filter(
            t => t.includes('Traceback') || /\\w+Error:/.test(t)).slice(0, 5),
    };
}"""


@dataclass
class PageReport:
    """What a reader sees on a rendered notebook page."""

    widget_views: int
    sliders: int
    dropdowns: int
    canvases: list[dict]
    figures: int
    widget_errors: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)


def inspect_page(page, root_selector: str = "body") -> PageReport:
    return PageReport(**page.eval_on_selector(root_selector, _INSPECT_JS))


def canvas_stats(png_bytes: bytes) -> dict[str, float]:
    """Pixel statistics of a screenshot crop: distinct colours and the fraction of pixels
    that differ from the most common (background) colour."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(img, axis=0, return_counts=True)
    return {"n_colours": int(len(colours)), "foreground": float(1.0 - counts.max() / counts.sum()),
            "n_pixels": int(counts.sum())}


def is_drawn(stats: dict, min_foreground: float = 0.002, min_colours: int = 8) -> bool:
    """A canvas shows something: >= 0.2 % of its pixels differ from the background and
    it has shading (>= 8 colours). A blank or nearly blank 3D view (a structure zoomed
    to a few pixels) fails."""
    return stats["foreground"] >= min_foreground and stats["n_colours"] >= min_colours


def drawn_canvases(page, timeout: float = 60.0, min_size: int = 100,
                   save_prefix: Path | None = None) -> list[dict]:
    """Pixel stats (plus ``index``, ``width``, ``height``) of every visible canvas,
    waiting up to ``timeout`` s for all of them to be drawn.

    A canvas less than ``min_size`` px on a side counts as collapsed (``collapsed``:
    True, no pixels): that is how an nglview stage created in a zero-width parent
    looks (1 x 300 px). Hidden canvases (no layout box) are left out. With
    ``save_prefix``, each canvas that is still blank is saved as
    ``<save_prefix>.canvas<index>.png`` for a look."""
    def measure():
        stats = []
        loc = page.locator("canvas")
        for i in range(loc.count()):
            c = loc.nth(i)
            box = c.bounding_box()
            if not box:
                continue
            size = {"index": i, "width": round(box["width"]), "height": round(box["height"])}
            if box["width"] < min_size or box["height"] < min_size:
                stats.append({**size, "n_colours": 0, "foreground": 0.0, "n_pixels": 0, "collapsed": True})
                continue
            c.scroll_into_view_if_needed()
            stats.append({**size, **canvas_stats(c.screenshot())})
        return stats

    def ready():
        s = measure()
        return s if s and all(is_drawn(x) for x in s) else None

    try:
        return _wait(ready, timeout, "drawn canvases", interval=2.0)
    except TimeoutError:
        stats = measure()
    if save_prefix is not None:
        for st in stats:
            if not is_drawn(st) and not st.get("collapsed"):
                path = Path(f"{save_prefix}.canvas{st['index']}.png")
                path.parent.mkdir(parents=True, exist_ok=True)
                page.locator("canvas").nth(st["index"]).screenshot(path=str(path))
    return stats


def full_screenshot(page, path: Path, scroller: str | None = None, max_height: int = 12_000) -> None:
    """Screenshot of the whole notebook: the viewport is grown to the height of the
    scrolling element ``scroller`` (JupyterLab scrolls inside the notebook panel).

    A notebook taller than ``max_height`` px is shot as a ``max_height`` px viewport,
    scrolled slice by slice, and the slices of ``scroller`` are stitched into one image
    (Chromium does not raster a viewport of arbitrary height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if scroller is None:
        page.screenshot(path=str(path), full_page=True)
        return
    vp = page.viewport_size
    sel = json.dumps(scroller)
    extra = page.evaluate(f"""() => {{ const s = document.querySelector({sel});
        if (!s) return 0;
        s.scrollTop = 0;
        return s.scrollHeight - s.clientHeight; }}""")
    page.set_viewport_size({"width": vp["width"], "height": min(max_height, vp["height"] + int(extra))})
    page.wait_for_timeout(1500)  # relayout, WebGL canvases redraw at the new size
    try:
        if vp["height"] + extra <= max_height:
            page.screenshot(path=str(path))
            return
        from PIL import Image

        loc = page.locator(scroller).first
        total, view = page.evaluate(f"""() => {{ const s = document.querySelector({sel});
            return [s.scrollHeight, s.clientHeight]; }}""")
        slices, top = [], 0
        while True:
            at = page.evaluate(f"""(top) => {{ const s = document.querySelector({sel});
                s.scrollTop = top; return s.scrollTop; }}""", top)
            page.wait_for_timeout(1000)
            slices.append((int(round(at)), Image.open(io.BytesIO(loc.screenshot())).convert("RGB")))
            if at + view >= total or len(slices) >= 20:
                break
            top = at + view
        width = max(im.width for _, im in slices)
        height = max(at + im.height for at, im in slices)
        sheet = Image.new("RGB", (width, height), "white")
        for at, im in slices:
            sheet.paste(im, (0, at))
        # JupyterLab pads the notebook by a viewport height ("scroll past end"): trim that
        import numpy as np

        px = np.asarray(sheet)
        busy = np.flatnonzero((px != px[-1:, :, :]).any(axis=(1, 2)))
        if busy.size:
            sheet = sheet.crop((0, 0, width, min(height, int(busy[-1]) + 40)))
        sheet.save(path)
        page.evaluate(f"() => {{ document.querySelector({sel}).scrollTop = 0; }}")
    finally:
        page.set_viewport_size(vp)


# ------------------------------------------------------------- what the reader sees change
def pixel_difference(png_a: bytes, png_b: bytes, threshold: int = 32) -> float:
    """Fraction of pixels that differ by more than ``threshold`` (of 255, in any colour
    channel) between two screenshots of the same element (1.0 when their sizes differ);
    the threshold ignores antialiasing noise of a redraw."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png_a)).convert("RGB"))
    b = np.asarray(Image.open(io.BytesIO(png_b)).convert("RGB"))
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a.astype(int) - b.astype(int)) > threshold).any(axis=2).mean())


_NGL_PLAYERS_JS = """() => Array.from(document.querySelectorAll('.widget-play')).map((p, i) => {
    // nglview appends its player (Play + IntSlider) to the viewer container, next to the
    // canvas's wrapper, hidden until the mouse is over the view
    let box = p.parentElement;
    while (box && !box.querySelector('canvas')) box = box.parentElement;
    const h = box ? p.parentElement.querySelector('.noUi-handle') : null;
    return {index: i, ngl: !!box, max: h ? Number(h.getAttribute('aria-valuemax')) : 0,
            value: h ? Number(h.getAttribute('aria-valuenow')) : 0,
            disabled: !!p.querySelector('button[disabled]')};
    })"""


def ngl_players(page) -> list[dict]:
    """nglview trajectory players on the page (hidden ones too): ``index`` among
    ``.widget-play``, ``max`` and ``value`` of the frame slider, ``disabled``."""
    return [p for p in page.evaluate(_NGL_PLAYERS_JS) if p["ngl"] and p["max"] > 0]


def _player_parts(page, index: int):
    play = page.locator(".widget-play").nth(index)
    container = play.locator("xpath=ancestor::*[.//canvas][1]")
    return play, container, container.locator("canvas").first, play.locator("xpath=..").locator(".noUi-handle").first


def move_trajectory_slider(page, index: int, settle_ms: int = 1500, timeout: float = 30.0) -> dict:
    """Move nglview player ``index``'s frame slider as a reader does (hover the view, move
    the slider's handle to the far end with the keyboard) and return ``{"from", "to", "difference"}``: the
    frames before and after and the fraction of the view's pixels that changed, measured
    with the mouse away from the view (the player overlay hidden in both screenshots),
    then ``"back_to"`` and ``"back_difference"`` for the return to the first frame (Home
    key) against the far-end picture.
    Waits up to ``timeout`` s for each redraw (a kernel sends the new coordinates)."""
    _, _, canvas, handle = _player_parts(page, index)
    canvas.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    page.wait_for_timeout(settle_ms)
    before = canvas.screenshot()
    value0 = page.evaluate(_NGL_PLAYERS_JS)[index]["value"]
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)   # shows the player
    handle.wait_for(state="visible", timeout=10_000)
    # the keyboard, not a drag: a drag that slipped onto the canvas would rotate the view
    handle.focus()
    page.keyboard.press("End")
    if page.evaluate(_NGL_PLAYERS_JS)[index]["value"] == value0:
        for _ in range(5):
            page.keyboard.press("PageUp")
    value1 = page.evaluate(_NGL_PLAYERS_JS)[index]["value"]
    page.mouse.move(0, 0)
    diff, deadline, after = 0.0, time.monotonic() + timeout, before
    while time.monotonic() < deadline:
        page.wait_for_timeout(settle_ms)
        after = canvas.screenshot()
        diff = pixel_difference(before, after)
        if diff > 0:
            break
    # and back to the first frame: the picture changes again (the view follows the slider
    # both ways; the kernel's frame 0 need not be pixel-identical to the first drawing)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    handle.wait_for(state="visible", timeout=10_000)
    handle.focus()
    page.keyboard.press("Home")
    if page.evaluate(_NGL_PLAYERS_JS)[index]["value"] != value0:
        for _ in range(5):
            page.keyboard.press("PageDown")
    value2 = page.evaluate(_NGL_PLAYERS_JS)[index]["value"]
    page.mouse.move(0, 0)
    back, deadline = 0.0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(settle_ms)
        back = pixel_difference(after, canvas.screenshot())
        if back > 0:
            break
    return {"from": value0, "to": value1, "difference": diff, "back_to": value2, "back_difference": back}


_CONTROL_PLOTS_JS = """() => {
    // widget boxes that hold an enabled slider or dropdown next to an Output widget with a figure
    const out = [];
    document.querySelectorAll('.widget-box').forEach(box => {
        const img = box.querySelector('.widget-output img, .jupyter-widgets-output-area img');
        if (!img || box.querySelector('canvas')) return;
        const slider = Array.from(box.querySelectorAll('.widget-slider')).find(
            s => s.offsetParent !== null && !s.querySelector('[disabled]') && s.querySelector('.noUi-handle'));
        const select = Array.from(box.querySelectorAll('.widget-dropdown select')).find(
            s => s.offsetParent !== null && !s.disabled && s.options.length > 1);
        if (slider || select) out.push(box);
    });
    // the innermost such boxes: a control and the figure it drives
    const inner = out.filter(b => !out.some(o => o !== b && b.contains(o)));
    inner.forEach(b => b.setAttribute('data-mdmlkit-probe', '1'));
    return inner.length;
}"""


def live_control_changes_plot(page, timeout: float = 120.0) -> dict | None:
    """Change the first live control that sits next to a figure (an Output widget) and
    wait for the figure to change. Returns ``{"control", "changed", "seconds"}`` or None
    when the page has no such control."""
    n = page.evaluate(_CONTROL_PLOTS_JS)
    if not n:
        return None
    box = page.locator("[data-mdmlkit-probe='1']").first
    box.scroll_into_view_if_needed()

    def figures() -> list[str]:
        return box.evaluate("""b => Array.from(b.querySelectorAll('.widget-output img, '
            + '.jupyter-widgets-output-area img')).map(i => i.getAttribute('src') || '')""")

    before = figures()
    select = box.locator(".widget-dropdown select:not([disabled])").first
    if select.count():
        options = select.evaluate("s => Array.from(s.options).map(o => o.value)")
        current = select.input_value()
        choice = next(o for o in options if o != current)
        select.select_option(choice)
        control = f"dropdown -> {choice}"
    else:
        handle = box.locator(".widget-slider .noUi-handle").first
        handle.focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        control = f"slider -> {handle.get_attribute('aria-valuenow')}"
    t0 = time.monotonic()
    changed = False
    while time.monotonic() - t0 < timeout:
        page.wait_for_timeout(500)
        now = figures()
        if now and now != before:
            changed = True
            break
    return {"control": control, "changed": changed, "seconds": round(time.monotonic() - t0, 1)}


_RAW_TEX_JS = r"""() => Array.from(document.querySelectorAll('.jp-RenderedMarkdown'))
    .map(e => e.innerText).join('\n').match(/\$[^$\n]{1,80}\$/g) || []"""


def raw_tex(page, timeout: float = 30.0) -> list[str]:
    """``$...$`` left untypeset in the rendered markdown, after up to ``timeout`` s for
    MathJax to finish (JupyterLab and the HTML reports typeset asynchronously)."""
    found: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = page.evaluate(_RAW_TEX_JS)
        if not found:
            return []
        time.sleep(1.0)
    return found


def reopen_notebook(page, lab: JupyterLab, relpath: str, settle: float = 10.0) -> str:
    """Open the saved notebook again (as a reader does the next day) and return the
    text of the notebook panel once its widgets have been restored from the saved state."""
    page.goto(lab.url(f"lab/tree/{relpath}") + "&reset", wait_until="domcontentloaded")
    n_code = sum(c["cell_type"] == "code" for c in json.loads((lab.root_dir / relpath).read_text())["cells"])
    _wait(lambda: page.locator(".jp-Notebook .jp-CodeCell").count() == n_code, 120,
          f"the {n_code} code cells of {relpath} to show again")
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    if accept.count():
        accept.first.click()
    time.sleep(settle)
    text = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:   # the widget manager restores the saved state
        text = page.eval_on_selector(".jp-Notebook", "e => e.innerText")
        if "Loading widget..." not in text:
            break
        time.sleep(2.0)
    return text
