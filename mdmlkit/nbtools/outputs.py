"""Where a notebook writes its results: figures, JSON records and plain-text tables.

Every notebook of the suite writes into one output folder (``outputs/<notebook>/`` in
``make demo``).  :class:`OutputDir` is that folder: ``out / "name.json"`` is a path in
it, :meth:`OutputDir.save_figure` writes a PNG, :meth:`OutputDir.save_json` writes JSON
atomically (a killed run never leaves half a file).  :func:`format_table` prints rows of
results as an aligned text table, so notebooks do not hand-format f-strings.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mdmlkit.errors import InputError
from mdmlkit.utils import PathLike, atomic_path, atomic_write_json

__all__ = ["OutputDir", "format_table"]


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
