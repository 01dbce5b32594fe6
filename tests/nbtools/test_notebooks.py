"""Every numbered notebook executes headless (papermill) with its quick parameters.

The notebooks' own ``parameters`` cells hold quick defaults; the checks here are
what a reader would notice: no error outputs, figures present, HTML written, a
documented parameters cell, "what you will learn" / "what to try next" sections.
"""
from __future__ import annotations

import json

import pytest

from mdmlkit.nbtools.runner import list_notebooks, run_notebook

NOTEBOOKS = list_notebooks()


def _cells(path):
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_structure(nb):
    cells = _cells(nb)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    src = "".join(tagged[0]["source"])
    assert "output_dir" in src, "parameters cell must expose output_dir"
    assert src.count("#") >= 3, "parameters must be documented with comments"
    text = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    assert "what you will learn" in text and "what to try next" in text


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(nb, tmp_path):
    run = run_notebook(nb, tmp_path, parameters={}, html=True, timeout=300, retries=1)
    assert run.ok, run.error
    executed = json.loads((tmp_path / nb.name).read_text())
    errors = [o for c in executed["cells"] if c["cell_type"] == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    n_png = sum("image/png" in o.get("data", {}) for c in executed["cells"] if c["cell_type"] == "code"
                for o in c.get("outputs", []))
    assert n_png >= 1, "the notebook should show figures"
    stderr = "".join("".join(o.get("text", "")) for c in executed["cells"] if c["cell_type"] == "code"
                     for o in c.get("outputs", []) if o.get("name") == "stderr")
    assert "Warning" not in stderr.replace("ExtrapolationWarning", ""), stderr[:2000]
    assert (tmp_path / f"{nb.stem}.html").stat().st_size > 10_000


def test_hung_cell_times_out_and_notebook_is_retried(tmp_path, capsys):
    """A cell over ``cell_timeout`` fails the notebook after ``retries`` reruns, with a clear
    error, and never leaves a half-written executed notebook behind."""
    import nbformat

    from mdmlkit.nbtools.runner import run_notebooks

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('output_dir = "out"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import time\ntime.sleep(30)")]
    nbformat.write(nb, nbdir / "01_sleepy.ipynb")
    runs = run_notebooks(tmp_path / "out", profile="quick", html=False, notebook_dir=nbdir,
                         cell_timeout=2, retries=1)
    (run,) = runs
    assert not run.ok and "timeout" in run.error.lower()
    assert capsys.readouterr().out.count("running 01_sleepy.ipynb again") == 1
    assert not (tmp_path / "out" / "01_sleepy.ipynb").exists()
    assert (tmp_path / "out" / "01_sleepy.failed.ipynb").exists()
    # once the notebook runs, the failed copy is gone
    nb.cells[1].source = "x = 1"
    nbformat.write(nb, nbdir / "01_sleepy.ipynb")
    (run,) = run_notebooks(tmp_path / "out", profile="quick", html=False, notebook_dir=nbdir,
                           cell_timeout=20)
    assert run.ok and (tmp_path / "out" / "01_sleepy.ipynb").exists()
    assert not (tmp_path / "out" / "01_sleepy.failed.ipynb").exists()


def test_run_notebooks_reports_cell_progress(tmp_path, capsys):
    """`run-notebooks` prints a line per code cell with its time and the elapsed total, and
    "still running" heartbeats while a cell is slow (no 30 min of silence)."""
    import re

    import nbformat

    from mdmlkit.cli import build_parser

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('output_dir = "out"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"), params,
                nbformat.v4.new_code_cell("import time\ntime.sleep(1.3)"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, nbdir / "07_tiny.ipynb")
    from mdmlkit.nbtools import runner

    runs = runner.run_notebooks(tmp_path / "out", profile="quick", html=False, notebook_dir=nbdir,
                                cell_timeout=60, heartbeat_s=0.5)
    assert runs[0].ok, runs[0].error
    out = capsys.readouterr().out
    # 4 code cells: parameters, papermill's injected parameters, sleep, x = 1
    done = re.findall(r"^\[07\] cell (\d+)/4 done ([\d.:]+(?: s)?) \(total ([\d.:]+(?: s)?)\)$", out, re.M)
    assert [int(d[0]) for d in done] == [1, 2, 3, 4], out
    assert float(done[2][1].split()[0]) >= 1.2, out
    assert re.search(r"^\[07\] cell 3/4 still running \d", out, re.M), out
    # the CLI passes --quiet / --heartbeat through
    args = build_parser().parse_args(["run-notebooks", "--quiet", "--heartbeat", "5"])
    assert args.quiet and args.heartbeat == 5.0


def test_cell_progress_clock():
    from mdmlkit.nbtools.runner import CellProgress

    assert CellProgress.clock(12.34) == "12.3 s"
    assert CellProgress.clock(65) == "1:05"
    assert CellProgress.clock(3725) == "1:02:05"
