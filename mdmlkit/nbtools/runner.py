"""Run the numbered notebooks headless (papermill) and export HTML reports.

The notebooks in ``notebooks/`` carry quick defaults in their ``parameters``
cell (used by the tests). ``notebooks/profiles.json`` holds the parameter
overrides of the *demo* profile that ``make demo`` / ``mdmlkit run-notebooks``
uses (real but modest sizes), and documents the full-size settings.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdmlkit.utils import atomic_path, atomic_write_json

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
                 cwd: Path | str | None = None, retries: int = 0) -> NotebookRun:
    """Execute one notebook (see :func:`_run_notebook_once`); when a cell exceeds ``timeout``
    (s), run it again up to ``retries`` times (see :func:`run_notebooks` for why)."""
    for attempt in range(retries + 1):
        run = _run_notebook_once(path, output_dir, parameters, html, kernel_name, timeout, cwd)
        if run.ok or "timeout" not in (run.error or "").lower() or attempt == retries:
            return run
        print(f"[mdmlkit]   {run!r}\n[mdmlkit] a cell exceeded {timeout} s: running "
              f"{Path(path).name} again (attempt {attempt + 2} of {retries + 1}; finished work is "
              "reused)", flush=True)
    return run


def _run_notebook_once(path: Path | str, output_dir: Path | str, parameters: dict[str, Any] | None = None,
                       html: bool = True, kernel_name: str | None = None, timeout: int | None = None,
                       cwd: Path | str | None = None) -> NotebookRun:
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
    try:
        with atomic_path(out_nb, suffix=".ipynb") as tmp:
            try:
                pm.execute_notebook(str(path), str(tmp), parameters=params, kernel_name=kernel_name,
                                    cwd=str(cwd or path.parent), progress_bar=False,
                                    execution_timeout=timeout, log_output=False,
                                    # the kernel's own start-up log (TCP transport notice) is noise
                                    extra_arguments=["--IPKernelApp.log_level=ERROR"])
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
                  cell_timeout: int | None = 900, retries: int = 1) -> list[NotebookRun]:
    """Execute every numbered notebook (or those whose name starts with an entry of ``only``).

    ``cell_timeout`` (s, ``None``: no limit) bounds each cell; a notebook whose cell
    times out is run again up to ``retries`` times.  Rarely, the client waits forever
    for a reply an idle kernel has already sent (papermill/nbclient message loss, seen
    about once in 30 runs here); the timeout turns that hang into a rerun, which is
    cheap because MD trajectories and active-learning rounds resume from their files.
    """
    overrides = load_profile(profile, notebook_dir)
    runs: list[NotebookRun] = []
    for nb in list_notebooks(notebook_dir):
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        params = dict(overrides.get(nb.stem, {}))
        params.update(extra_parameters or {})
        print(f"[mdmlkit] running {nb.name} (profile {profile}) ...", flush=True)
        run = run_notebook(nb, output_dir, params, html=html, timeout=cell_timeout, retries=retries)
        print(f"[mdmlkit]   {run!r}", flush=True)
        runs.append(run)
    atomic_write_json(Path(output_dir) / "run_summary.json",
                      [dict(notebook=r.notebook, ok=r.ok, seconds=round(r.seconds, 1), output=r.output,
                            html=r.html, error=r.error, parameters=r.parameters) for r in runs])
    return runs
