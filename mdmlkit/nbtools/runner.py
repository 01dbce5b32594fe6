"""Run the numbered notebooks headless (papermill) and export HTML reports.

The notebooks in ``notebooks/`` carry quick defaults in their ``parameters``
cell (used by the tests). ``notebooks/profiles.json`` holds the parameter
overrides of the *demo* profile that ``make demo`` / ``mdmlkit run-notebooks``
uses (real but modest sizes), and documents the full-size settings.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mdmlkit.utils import atomic_path, atomic_write_json

__all__ = ["NotebookRun", "CellProgress", "list_notebooks", "load_profile", "run_notebook",
           "run_notebooks", "export_html", "PROGRESS_ENGINE"]

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def list_notebooks(directory: Path | str = NOTEBOOK_DIR) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) in run order."""
    directory = Path(directory)
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def load_profile(name: str, directory: Path | str = NOTEBOOK_DIR) -> dict[str, dict[str, Any]]:
    """Parameter overrides per notebook stem for profile ``name`` ("quick" = none)."""
    if name == "quick":
        return {}
    path = Path(directory) / "profiles.json"
    if not path.exists():
        return {}
    profiles = json.loads(path.read_text())
    return {stem: cfg.get(name, {}) for stem, cfg in profiles.items() if not stem.startswith("_")}


#: name under which :class:`CellProgress` reporting is registered with papermill
PROGRESS_ENGINE = "mdmlkit-progress"


class CellProgress:
    """Per-cell progress lines of a headless run, e.g. ``[02] cell 7/32 done 12.3 s (total 1:05)``.

    One line when a code cell finishes (its wall time and the notebook's elapsed time)
    and, while a cell runs longer than ``heartbeat_s``, a "still running" line every
    ``heartbeat_s`` seconds, so a long MD cell never looks like a hang.

    Parameters
    ----------
    tag : str
        Prefix of every line (e.g. the notebook number ``"02"``).
    n_cells : int
        Code cells in the notebook.
    stream : text stream, optional
        Where lines go (default ``sys.stdout`` at the time of each line).
    heartbeat_s : float
        Seconds between "still running" lines of one cell (``0``: none).
    quiet_below_s : float
        Cells faster than this (s) print nothing; every ``10th`` cell and the last one
        print anyway so the count advances visibly.
    """

    def __init__(self, tag: str, n_cells: int, stream: TextIO | None = None, heartbeat_s: float = 30.0,
                 quiet_below_s: float = 0.0):
        self.tag, self.n_cells = str(tag), int(n_cells)
        self.stream, self.heartbeat_s, self.quiet_below_s = stream, float(heartbeat_s), float(quiet_below_s)
        self.t0 = time.perf_counter()
        self._cell_t0 = self.t0
        self._index = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines: list[str] = []

    @staticmethod
    def clock(seconds: float) -> str:
        """``seconds`` as ``"12.3 s"`` below a minute, else ``"m:ss"`` / ``"h:mm:ss"``."""
        if seconds < 60:
            return f"{seconds:.1f} s"
        m, s = divmod(int(round(seconds)), 60)
        h, m = divmod(m, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        print(line, file=self.stream or sys.stdout, flush=True)

    def cell_started(self, index: int, first_line: str = "") -> None:
        """Code cell ``index`` (1-based among code cells) starts."""
        self._stop_heartbeat()
        self._index, self._cell_t0 = int(index), time.perf_counter()
        self._first_line = first_line.strip()[:60]
        if self.heartbeat_s > 0:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._beat, args=(self._stop, self._index), daemon=True)
            self._thread.start()

    def _beat(self, stop: threading.Event, index: int) -> None:
        while not stop.wait(self.heartbeat_s):
            now = time.perf_counter()
            self._emit(f"[{self.tag}] cell {index}/{self.n_cells} still running "
                       f"{self.clock(now - self._cell_t0)} (total {self.clock(now - self.t0)})"
                       + (f"  {self._first_line}" if self._first_line else ""))

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._thread = None

    def cell_finished(self, failed: bool = False) -> None:
        """The current cell ended (``failed``: with an exception)."""
        self._stop_heartbeat()
        now = time.perf_counter()
        dt = now - self._cell_t0
        if failed or dt >= self.quiet_below_s or self._index % 10 == 0 or self._index == self.n_cells:
            self._emit(f"[{self.tag}] cell {self._index}/{self.n_cells} "
                       f"{'FAILED after' if failed else 'done'} {self.clock(dt)} "
                       f"(total {self.clock(now - self.t0)})")

    def close(self) -> None:
        """Stop the heartbeat (idempotent)."""
        self._stop_heartbeat()


def _progress_engine() -> Any:
    """papermill engine that reports each code cell through :class:`CellProgress`."""
    from papermill.engines import NBClientEngine

    class _ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            reporter: CellProgress | None = kwargs.pop("mdmlkit_progress", None)
            if reporter is None:
                return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
            code = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]
            reporter.n_cells = len(code)
            number = {i: k + 1 for k, i in enumerate(code)}
            start, complete, exception = nb_man.cell_start, nb_man.cell_complete, nb_man.cell_exception
            failed: set[int] = set()

            def cell_start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                if cell_index in number:
                    src = cell.source.strip().splitlines()
                    reporter.cell_started(number[cell_index], src[0] if src else "")
                return start(cell, cell_index, **kw)

            def cell_exception(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                failed.add(cell_index)
                return exception(cell, cell_index, **kw)

            def cell_complete(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                if cell_index in number:
                    reporter.cell_finished(failed=cell_index in failed)
                return complete(cell, cell_index, **kw)

            nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            nb_man.cell_exception = cell_exception
            try:
                return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
            finally:
                reporter.close()

    return _ProgressEngine


def _register_progress_engine() -> None:
    from papermill.engines import papermill_engines

    if PROGRESS_ENGINE not in papermill_engines._engines:
        papermill_engines.register(PROGRESS_ENGINE, _progress_engine())


@dataclass
class NotebookRun:
    """Outcome of executing one notebook."""

    notebook: str
    output: str
    html: str | None
    seconds: float
    ok: bool
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"FAILED ({self.error})"
        return f"NotebookRun({self.notebook}: {state}, {self.seconds:.1f} s)"


def export_html(ipynb: Path | str, html: Path | str) -> Path:
    """Write ``ipynb`` as standalone HTML; widget state saved by the run is embedded.

    The page works offline: widget JavaScript is inlined (see :mod:`mdmlkit.nbtools.html_report`).
    """
    from mdmlkit.nbtools.html_report import export_html as _export_html

    return _export_html(ipynb, html)


def run_notebook(path: Path | str, output_dir: Path | str, parameters: dict[str, Any] | None = None,
                 html: bool = True, kernel_name: str | None = None, timeout: int | None = None,
                 cwd: Path | str | None = None, retries: int = 0,
                 progress: bool = False, heartbeat_s: float = 30.0) -> NotebookRun:
    """Execute one notebook (see :func:`_run_notebook_once`); when a cell exceeds ``timeout``
    (s), run it again up to ``retries`` times (see :func:`run_notebooks` for why).

    ``progress=True`` prints a line per code cell (:class:`CellProgress`) and a "still
    running" line every ``heartbeat_s`` seconds of a long cell."""
    for attempt in range(retries + 1):
        run = _run_notebook_once(path, output_dir, parameters, html, kernel_name, timeout, cwd,
                                 progress, heartbeat_s)
        if run.ok or "timeout" not in (run.error or "").lower() or attempt == retries:
            return run
        print(f"[mdmlkit]   {run!r}\n[mdmlkit] a cell exceeded {timeout} s: running "
              f"{Path(path).name} again (attempt {attempt + 2} of {retries + 1}; finished work is "
              "reused)", flush=True)
    return run


def _run_notebook_once(path: Path | str, output_dir: Path | str, parameters: dict[str, Any] | None = None,
                       html: bool = True, kernel_name: str | None = None, timeout: int | None = None,
                       cwd: Path | str | None = None, progress: bool = False,
                       heartbeat_s: float = 30.0) -> NotebookRun:
    """Execute one notebook with papermill into ``output_dir`` (atomic), then export HTML.

    Figures and other files the notebook writes go to ``output_dir/<stem>/`` (the
    notebooks take an ``output_dir`` parameter).
    """
    import papermill as pm

    path = Path(path)
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"output_dir": str(output_dir / path.stem)}
    params.update(parameters or {})
    out_nb = output_dir / path.name
    # a non-interactive MPLBACKEND (e.g. Agg in CI) would reach the kernel and hide every figure
    if os.environ.get("MPLBACKEND", "").lower() in ("agg", "pdf", "svg", "ps", "cairo"):
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    t0 = time.perf_counter()
    error = None
    engine: dict[str, Any] = {}
    if progress:
        _register_progress_engine()
        engine = dict(engine_name=PROGRESS_ENGINE,
                      mdmlkit_progress=CellProgress(path.name[:2] if path.name[:2].isdigit() else path.stem,
                                                    0, heartbeat_s=heartbeat_s))
    try:
        with atomic_path(out_nb, suffix=".ipynb") as tmp:
            try:
                pm.execute_notebook(str(path), str(tmp), parameters=params, kernel_name=kernel_name,
                                    cwd=str(cwd or path.parent), progress_bar=False,
                                    execution_timeout=timeout, log_output=False,
                                    # the kernel's own start-up log (TCP transport notice) is noise
                                    extra_arguments=["--IPKernelApp.log_level=ERROR"], **engine)
            except Exception:
                # keep the partially executed notebook for diagnosis under a distinct name
                if Path(tmp).exists():
                    os.replace(tmp, output_dir / (path.stem + ".failed.ipynb"))
                raise
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return NotebookRun(path.name, str(output_dir / (path.stem + ".failed.ipynb")), None,
                           time.perf_counter() - t0, False, error, params)
    (output_dir / (path.stem + ".failed.ipynb")).unlink(missing_ok=True)   # an earlier failure is stale now
    html_path = None
    if html:
        html_path = str(export_html(out_nb, output_dir / (path.stem + ".html")))
    return NotebookRun(path.name, str(out_nb), html_path, time.perf_counter() - t0, True, None, params)


def run_notebooks(output_dir: Path | str = "outputs", profile: str = "demo",
                  only: Iterable[str] | None = None, html: bool = True,
                  notebook_dir: Path | str = NOTEBOOK_DIR, extra_parameters: dict[str, Any] | None = None,
                  cell_timeout: int | None = 900, retries: int = 1, progress: bool = True,
                  heartbeat_s: float = 30.0) -> list[NotebookRun]:
    """Execute every numbered notebook (or those whose name starts with an entry of ``only``).

    ``cell_timeout`` (s, ``None``: no limit) bounds each cell; a notebook whose cell
    times out is run again up to ``retries`` times.  Rarely, the client waits forever
    for a reply an idle kernel has already sent (papermill/nbclient message loss, seen
    about once in 30 runs here); the timeout turns that hang into a rerun, which is
    cheap because MD trajectories and active-learning rounds resume from their files.
    ``progress`` prints a line per finished code cell with its time and the elapsed
    total, and a "still running" line every ``heartbeat_s`` seconds of a long cell.
    """
    overrides = load_profile(profile, notebook_dir)
    runs: list[NotebookRun] = []
    for nb in list_notebooks(notebook_dir):
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        params = dict(overrides.get(nb.stem, {}))
        params.update(extra_parameters or {})
        print(f"[mdmlkit] running {nb.name} (profile {profile}) ...", flush=True)
        run = run_notebook(nb, output_dir, params, html=html, timeout=cell_timeout, retries=retries,
                           progress=progress, heartbeat_s=heartbeat_s)
        if html and run.ok:
            print(f"[mdmlkit]   report: {run.html}", flush=True)
        print(f"[mdmlkit]   {run!r}", flush=True)
        runs.append(run)
    atomic_write_json(Path(output_dir) / "run_summary.json",
                      [dict(notebook=r.notebook, ok=r.ok, seconds=round(r.seconds, 1), output=r.output,
                            html=r.html, error=r.error, parameters=r.parameters) for r in runs])
    return runs
