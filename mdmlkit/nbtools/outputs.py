"""Where a notebook writes its results: figures, JSON records and plain-text tables.

Every notebook of the suite writes into one output folder (``outputs/<notebook>/`` in
``make demo``).  :class:`OutputDir` is that folder: ``out / "name.json"`` is a path in
it, :meth:`OutputDir.save_figure` writes a PNG, :meth:`OutputDir.save_json` writes JSON
atomically (a killed run never leaves half a file).  :func:`format_table` prints rows of
results as an aligned text table, so notebooks do not hand-format f-strings;
:func:`html_table` returns the same rows as a :class:`Table` that a notebook shows as
an HTML table (rounded numbers, units in the headers) and ``print`` shows as text.
:func:`markdown` shows generated prose (numbers from the run, never typed by hand).
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mdmlkit.errors import InputError
from mdmlkit.utils import PathLike, atomic_path, atomic_write_json

__all__ = ["OutputDir", "format_table", "html_table", "Table", "markdown", "StepProgress"]


class OutputDir:
    """A notebook's output folder (created on construction).

    Parameters
    ----------
    path : path-like
        The folder; created with its parents.
    dpi : int
        Resolution of saved figures.
    """

    def __init__(self, path: PathLike, dpi: int = 120):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.dpi = int(dpi)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        n = sum(1 for _ in self.path.iterdir()) if self.path.is_dir() else 0
        return f"OutputDir({str(self.path)!r}, {n} entries)"

    def save_figure(self, fig: Any, name: str) -> Path:
        """Write ``fig`` (a matplotlib figure) as ``<name>.png``; returns the path."""
        path = self.path / f"{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=self.dpi, bbox_inches="tight", format="png")
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as ``<name>.json`` (atomically; numpy scalars and arrays allowed)."""
        path = self.path / (name if name.endswith(".json") else f"{name}.json")
        atomic_write_json(path, obj)
        return path


def _cell(value: Any, floatfmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        v = float(value)
        return "nan" if math.isnan(v) else format(v, floatfmt)
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 floatfmt: str = ".3g", headers: Mapping[str, str] | None = None) -> str:
    """Rows of results (dicts) as an aligned plain-text table.

    Parameters
    ----------
    rows : sequence of mappings
        One dict per row; missing keys print as ``–``.
    columns : sequence of str, optional
        Column keys in order (default: keys of the first row, in order).
    floatfmt : str
        Format spec for floats (``format(x, floatfmt)``).
    headers : mapping, optional
        Display names for column keys (e.g. with units).
    """
    rows = list(rows)
    if not rows:
        raise InputError("format_table: no rows to format")
    cols = list(columns) if columns is not None else list(rows[0])
    heads = [(headers or {}).get(c, c) for c in cols]
    body = [[_cell(r.get(c), floatfmt) for c in cols] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(heads), "  ".join("-" * w for w in widths), *(line(b) for b in body)])


class Table:
    """Rows of results shown as an HTML table in a notebook and as text by ``print``.

    Build with :func:`html_table`; ``rows``, ``columns`` and ``headers`` are kept for
    inspection.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str],
                 floatfmt: str | Mapping[str, str], caption: str | None = None):
        self.rows, self.columns, self.headers = list(rows), list(columns), list(headers)
        self.floatfmt, self.caption = floatfmt, caption

    def _fmt(self, col: str) -> str:
        if isinstance(self.floatfmt, Mapping):
            return self.floatfmt.get(col, ".3g")
        return self.floatfmt

    def cells(self) -> list[list[str]]:
        """The formatted body, one list of strings per row."""
        return [[_cell(r.get(c), self._fmt(c)) for c in self.columns] for r in self.rows]

    def __str__(self) -> str:
        body = self.cells()
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(self.headers)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        text = "\n".join([line(self.headers), "  ".join("-" * w for w in widths), *(line(b) for b in body)])
        return f"{self.caption}\n{text}" if self.caption else text

    def __repr__(self) -> str:
        return f"Table({len(self.rows)} rows x {len(self.columns)} columns)"

    def _repr_html_(self) -> str:
        def num(v: Any) -> bool:
            return isinstance(v, (int, float)) or type(v).__name__.startswith(("float", "int"))
        numeric = [i > 0 and all(num(r.get(c)) or r.get(c) is None for r in self.rows)
                   for i, c in enumerate(self.columns)]
        head = "".join(f"<th style='text-align:{'right' if numeric[i] else 'left'}'>{html.escape(h)}</th>"
                       for i, h in enumerate(self.headers))
        rows = []
        for r, cells in zip(self.rows, self.cells()):
            tds = "".join(f"<td style='text-align:{'right' if i and num(r.get(c)) else 'left'};"
                          f"white-space:nowrap'>{html.escape(v)}</td>"
                          for i, (c, v) in enumerate(zip(self.columns, cells)))
            rows.append(f"<tr>{tds}</tr>")
        cap = (f"<caption style='caption-side:top;text-align:left;font-weight:bold'>"
               f"{html.escape(self.caption)}</caption>" if self.caption else "")
        return (f"<table class='mdmlkit-table' style='border-collapse:collapse;font-size:0.9em'>{cap}"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               floatfmt: str | Mapping[str, str] = ".3g", headers: Mapping[str, str] | None = None,
               caption: str | None = None) -> Table:
    """Rows of results (dicts) as a :class:`Table` (HTML in a notebook, text when printed).

    Parameters are those of :func:`format_table`; ``floatfmt`` may also map column keys
    to format specs (others: ``".3g"``), ``caption`` titles the table.
    """
    rows = list(rows)
    if not rows:
        raise InputError("html_table: no rows to format")
    cols = list(columns) if columns is not None else list(rows[0])
    return Table(rows, cols, [(headers or {}).get(c, c) for c in cols], floatfmt, caption)


def markdown(text: str) -> Any:
    """``IPython.display.Markdown(text)``: prose generated from the run's results."""
    from IPython.display import Markdown

    return Markdown(text)


class StepProgress:
    """A tqdm bar over MD steps, driven by the frames an MD run passes to its ``callback``.

    ``with StepProgress(steps, "NVT 300 K") as cb: res = run_md(..., callback=cb,
    progress=False)``; frames carry their step in ``info["step"]``.  The bar is kept
    (``leave=True``) so a saved notebook never refers to a closed progress widget.  Call
    :meth:`finish` with the run's result to mark a run reused from its trajectory file.
    """

    def __init__(self, total: int, desc: str, unit: str = "step"):
        from tqdm.auto import tqdm

        self.total = int(total)
        self.bar = tqdm(total=self.total, desc=desc, unit=unit, leave=True, smoothing=0.1)

    def __call__(self, frame: Any) -> None:
        step = int(frame.info.get("step", self.bar.n))
        if step > self.bar.n:
            self.bar.update(step - self.bar.n)

    def finish(self, result: Any = None) -> None:
        """Fill the bar; a run reused from its file (``result.skipped``) says so."""
        if result is not None and getattr(result, "skipped", False):
            self.bar.set_description_str(f"{self.bar.desc} (reused from file)", refresh=False)
        if self.bar.n < self.total:
            self.bar.update(self.total - self.bar.n)

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()
