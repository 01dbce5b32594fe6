"""Extrapolation warnings: symmetry functions outside the training range.

An HDNNP is only reliable for atomic environments like those it was trained on.
Like n2p2, mdmlkit flags every raw symmetry-function value G that lies outside
the interval [Gmin, Gmax] seen in the training set (the scaling statistics stored
in the model).  A small tolerance relative to the range (default 1e-6 ·
(Gmax − Gmin)) keeps round-off of the training structures themselves from being
reported.

>>> report = check_extrapolation(model, frames)        # doctest: +SKIP
>>> report                                              # a table in a notebook
>>> report.structures                                   # which frames extrapolate
>>> report.to_dataframe()                               # pandas, if installed

Over many calls (an MD run) an :class:`ExtrapolationTally` keeps running totals
instead of every record: calls checked and calls that extrapolated, and per element
and function the number of out-of-range values, the calls they occurred in and the
worst excursion (what :meth:`HDNNPCalculator.extrapolation_report
<mdmlkit.potential.HDNNPCalculator.extrapolation_report>` returns).
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from mdmlkit.errors import EmptyTrajectoryError, ExtrapolationError, ExtrapolationWarning, InputError

__all__ = ["ExtrapolationWarning", "ExtrapolationError", "ExtrapolationRecord", "ExtrapolationReport",
           "ExtrapolationTally", "check_extrapolation", "find_extrapolation"]

DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ExtrapolationRecord:
    """One symmetry-function value outside its training range."""

    structure: int       #: structure (frame) index
    atom: int            #: atom index within the structure
    element: str         #: element of the atom
    function: int        #: index of the function in the element's n2p2-sorted list
    line: str            #: the function's ``symfunction_short`` line
    value: float         #: raw value G
    G_min: float         #: training minimum
    G_max: float         #: training maximum

    @property
    def excess(self) -> float:
        """Distance outside the range, in units of the range width (inf for zero width)."""
        width = self.G_max - self.G_min
        d = self.G_min - self.value if self.value < self.G_min else self.value - self.G_max
        return d / width if width > 0 else float("inf")


class ExtrapolationReport:
    """All out-of-range symmetry-function values of a set of structures.

    Iterating yields :class:`ExtrapolationRecord` s; ``len`` is their number
    (``bool(report)`` is True when anything extrapolates).

    Attributes
    ----------
    records : list of ExtrapolationRecord
    n_structures, n_atoms : int
        How many structures/atoms were checked.
    tolerance : float
        Relative tolerance used.
    """

    _COLUMNS = ("structure", "atom", "element", "function", "value", "G_min", "G_max", "line")

    def __init__(self, records: Sequence[ExtrapolationRecord] = (), n_structures: int = 0,
                 n_atoms: int = 0, tolerance: float = DEFAULT_TOLERANCE):
        self.records = sorted(records, key=lambda r: (r.structure, r.atom, r.function))
        self.n_structures = int(n_structures)
        self.n_atoms = int(n_atoms)
        self.tolerance = float(tolerance)

    def __len__(self) -> int:
        return len(self.records)

    def __bool__(self) -> bool:
        return bool(self.records)

    def __iter__(self) -> Iterator[ExtrapolationRecord]:
        return iter(self.records)

    def __getitem__(self, k):
        return self.records[k]

    @property
    def structures(self) -> list[int]:
        """Sorted indices of the structures with at least one out-of-range value."""
        return sorted({r.structure for r in self.records})

    @property
    def atoms(self) -> list[tuple[int, int]]:
        """Sorted (structure, atom) pairs with at least one out-of-range value."""
        return sorted({(r.structure, r.atom) for r in self.records})

    def extend(self, other: ExtrapolationReport) -> ExtrapolationReport:
        """Report of both (structure indices must already be global)."""
        return ExtrapolationReport(self.records + other.records, self.n_structures + other.n_structures,
                                   self.n_atoms + other.n_atoms, self.tolerance)

    def to_dict(self) -> dict[str, list]:
        """Column name -> list of values."""
        return {c: [getattr(r, c) for r in self.records] for c in self._COLUMNS}

    def to_dataframe(self):
        """The records as a :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.to_dict(), columns=list(self._COLUMNS))

    def summary(self) -> str:
        if not self.records:
            return (f"no extrapolation in {self.n_structures} structure(s), {self.n_atoms} atoms "
                    f"(tolerance {self.tolerance:g} of each range)")
        by_el: dict[str, int] = {}
        for r in self.records:
            by_el[r.element] = by_el.get(r.element, 0) + 1
        return (f"{len(self.records)} symmetry-function value(s) outside the training range: "
                f"{len(self.atoms)} atom(s) in {len(self.structures)} of {self.n_structures} "
                f"structure(s); per element {by_el}")

    def table(self, max_rows: int = 20) -> str:
        """Plain-text table of the first ``max_rows`` records."""
        head = f"{'structure':>9} {'atom':>6} {'el':>3} {'fn':>4} {'value':>13} {'range':>29}  function"
        rows = [head]
        for r in self.records[:max_rows]:
            rows.append(f"{r.structure:9d} {r.atom:6d} {r.element:>3} {r.function:4d} {r.value:13.6g} "
                        f"[{r.G_min:12.6g}, {r.G_max:12.6g}]  {r.line}")
        if len(self.records) > max_rows:
            rows.append(f"... {len(self.records) - max_rows} more")
        return "\n".join(rows)

    def __repr__(self) -> str:
        s = f"ExtrapolationReport: {self.summary()}"
        return s + ("\n" + self.table() if self.records else "")

    def _repr_html_(self) -> str:
        import html

        if not self.records:
            return f"<p>ExtrapolationReport: {html.escape(self.summary())}</p>"
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(x if not isinstance(x, float) else f'{x:.6g}'))}</td>"
                             for x in (r.structure, r.atom, r.element, r.function, r.value, r.G_min,
                                       r.G_max, r.line)) + "</tr>"
            for r in self.records[:50])
        more = f"<p>... {len(self.records) - 50} more</p>" if len(self.records) > 50 else ""
        hdr = "".join(f"<th>{c}</th>" for c in self._COLUMNS)
        return (f"<p>ExtrapolationReport: {html.escape(self.summary())}</p>"
                f"<table><thead><tr>{hdr}</tr></thead><tbody>{cells}</tbody></table>{more}")


class ExtrapolationTally:
    """Running totals of the extrapolation checks of many calls (e.g. the steps of an MD run).

    :meth:`add` one :class:`ExtrapolationReport` per call; nothing per record is kept
    beyond one row per (element, function) that ever left its range.

    Attributes
    ----------
    calls : int
        Checks (calculator calls) added.
    calls_extrapolated : int
        Calls with at least one value outside the range.
    values : int
        Out-of-range values over all calls (atoms x functions).
    atoms : dict[str, int]
        Per element: atoms found extrapolating, summed over calls.
    rows : dict[(str, int), dict]
        Per (element, function index): ``count`` (values), ``calls``, ``worst_excess``
        (distance outside the range in units of its width), ``worst_value``, ``worst_call``
        (1-based call number), ``worst_atom``, ``G_min``, ``G_max``, ``line``.
    """

    _COLUMNS = ("element", "function", "count", "calls", "worst_excess", "worst_value", "G_min", "G_max",
                "worst_call", "worst_atom", "line")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self.calls = 0
        self.calls_extrapolated = 0
        self.values = 0
        self.atoms: dict[str, int] = {}
        self.rows: dict[tuple[str, int], dict] = {}

    def copy(self) -> ExtrapolationTally:
        out = ExtrapolationTally()
        out.calls, out.calls_extrapolated, out.values = self.calls, self.calls_extrapolated, self.values
        out.atoms = dict(self.atoms)
        out.rows = {k: dict(v) for k, v in self.rows.items()}
        return out

    def add(self, report: ExtrapolationReport) -> None:
        """Count one call's check."""
        self.calls += 1
        if not report:
            return
        self.calls_extrapolated += 1
        self.values += len(report)
        seen_atoms: set[tuple[int, int, str]] = set()
        seen_rows: set[tuple[str, int]] = set()
        for r in report:
            seen_atoms.add((r.structure, r.atom, r.element))
            key = (r.element, r.function)
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = {"count": 0, "calls": 0, "worst_excess": -1.0, "worst_value": r.value,
                                        "worst_call": self.calls, "worst_atom": r.atom, "G_min": r.G_min,
                                        "G_max": r.G_max, "line": r.line}
            row["count"] += 1
            if key not in seen_rows:
                row["calls"] += 1
                seen_rows.add(key)
            if r.excess > row["worst_excess"]:
                row.update(worst_excess=r.excess, worst_value=r.value, worst_call=self.calls, worst_atom=r.atom)
        for _, _, el in seen_atoms:
            self.atoms[el] = self.atoms.get(el, 0) + 1

    @property
    def fraction(self) -> float:
        """Fraction of calls that extrapolated (0 before any call)."""
        return self.calls_extrapolated / self.calls if self.calls else 0.0

    @property
    def worst(self) -> dict | None:
        """The row (with ``element`` and ``function``) of the largest excursion, or None."""
        if not self.rows:
            return None
        (el, fn), row = max(self.rows.items(), key=lambda kv: kv[1]["worst_excess"])
        return dict(row, element=el, function=fn)

    def __bool__(self) -> bool:
        return self.calls_extrapolated > 0

    def summary(self) -> str:
        if not self.calls_extrapolated:
            return f"no extrapolation in {self.calls} call(s)"
        w = self.worst
        return (f"{self.calls_extrapolated} of {self.calls} call(s) ({100 * self.fraction:.1f} %) "
                f"extrapolated: {self.values} value(s) outside the training range, "
                f"{len(self.rows)} (element, function) pair(s), atoms per element {self.atoms}; "
                f"worst: {w['element']} function {w['function']} = {w['worst_value']:.6g} outside "
                f"[{w['G_min']:.6g}, {w['G_max']:.6g}] by {w['worst_excess']:.3g} of the range "
                f"(call {w['worst_call']}, atom {w['worst_atom']})")

    def _sorted_rows(self) -> list[dict]:
        rows = [dict(v, element=k[0], function=k[1]) for k, v in self.rows.items()]
        return sorted(rows, key=lambda r: (-r["worst_excess"], r["element"], r["function"]))

    def to_dict(self) -> dict[str, list]:
        """Column name -> list of values, rows sorted by decreasing worst excursion."""
        rows = self._sorted_rows()
        return {c: [r[c] for r in rows] for c in self._COLUMNS}

    def to_dataframe(self):
        """The rows as a :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.to_dict(), columns=list(self._COLUMNS))

    def table(self, max_rows: int | None = 20) -> str:
        """Plain-text table, worst excursion first (all rows with ``max_rows=None``)."""
        rows = self._sorted_rows()
        shown = rows if max_rows is None else rows[:max_rows]
        out = [f"{'el':>3} {'fn':>4} {'values':>8} {'calls':>7} {'worst/range':>11} {'worst value':>13} "
               f"{'range':>29}  function"]
        for r in shown:
            out.append(f"{r['element']:>3} {r['function']:4d} {r['count']:8d} {r['calls']:7d} "
                       f"{r['worst_excess']:11.3g} {r['worst_value']:13.6g} "
                       f"[{r['G_min']:12.6g}, {r['G_max']:12.6g}]  {r['line']}")
        if len(shown) < len(rows):
            out.append(f"... {len(rows) - len(shown)} more")
        return "\n".join(out)

    def __repr__(self) -> str:
        s = f"ExtrapolationTally: {self.summary()}"
        return s + ("\n" + self.table() if self.rows else "")

    def _repr_html_(self) -> str:
        import html

        if not self.rows:
            return f"<p>ExtrapolationTally: {html.escape(self.summary())}</p>"
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(f'{x:.4g}' if isinstance(x, float) else str(x))}</td>"
                             for x in (r[c] for c in self._COLUMNS)) + "</tr>"
            for r in self._sorted_rows()[:50])
        hdr = "".join(f"<th>{c}</th>" for c in self._COLUMNS)
        return (f"<p>ExtrapolationTally: {html.escape(self.summary())}</p>"
                f"<table><thead><tr>{hdr}</tr></thead><tbody>{body}</tbody></table>")


_RANGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _accepted_range(scaler, tolerance: float, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(G_min - tol, G_max + tol)`` with ``tol = tolerance (G_max - G_min)`` in ``g``'s dtype
    and device, cached per scaler until its statistics change (in-place versions), so an MD
    step's check is two comparisons per element."""
    key = (tolerance, g.dtype, g.device, id(scaler.G_min), scaler.G_min._version,
           id(scaler.G_max), scaler.G_max._version)
    hit = _RANGES.get(scaler)
    if hit is not None and hit[0] == key:
        return hit[1]
    gmin, gmax = scaler.G_min.to(g), scaler.G_max.to(g)
    tol = tolerance * (gmax - gmin).clamp_min(0.0)
    bounds = ((gmin - tol).contiguous(), (gmax + tol).contiguous())
    _RANGES[scaler] = (key, bounds)
    return bounds


def find_extrapolation(model, G: dict[str, torch.Tensor], batch, tolerance: float = DEFAULT_TOLERANCE,
                       structure_offset: int = 0) -> ExtrapolationReport:
    """Out-of-range values in raw descriptors ``G`` (``model.descriptors(batch)``) of ``batch``.

    Vectorised over atoms and functions; ``structure_offset`` is added to the
    structure indices (for chunked checks).
    """
    if not model.is_scaling_fitted:
        raise InputError("the model's scaling statistics are not fitted (fit_scaling or n2p2 "
                           "scaling.data): there is no training range to compare with")
    first_atom = None
    records: list[ExtrapolationRecord] = []
    for el in model.elements:
        g = G[el].detach()
        if g.shape[0] == 0:
            continue
        sc = model.scalers[el]
        lo, hi = _accepted_range(sc, tolerance, g)
        if g.device.type == "cpu":           # numpy: a few µs where torch's small ops take tens
            gn, lon, hin = g.numpy(), lo.numpy(), hi.numpy()
            if not ((gn < lon).any() or (gn > hin).any()):
                continue
        mask = (g < lo) | (g > hi)
        if not bool(mask.any()):
            continue
        if first_atom is None:
            first_atom = torch.cumsum(batch.n_atoms, 0) - batch.n_atoms
        gmin, gmax = sc.G_min.to(g), sc.G_max.to(g)
        loc, fn = torch.nonzero(mask, as_tuple=True)
        atom = batch.element_index[el][loc]
        st = batch.structure[atom]
        local = (atom - first_atom[st]).cpu().numpy()
        st = st.cpu().numpy()
        fn_np = fn.cpu().numpy()
        vals = g[loc, fn].double().cpu().numpy()
        lo = gmin[fn].double().cpu().numpy()
        hi = gmax[fn].double().cpu().numpy()
        funcs = model.sfs.functions[el]
        for k in range(len(fn_np)):
            records.append(ExtrapolationRecord(int(st[k]) + structure_offset, int(local[k]), el,
                                               int(fn_np[k]), funcs[int(fn_np[k])].to_line(),
                                               float(vals[k]), float(lo[k]), float(hi[k])))
    return ExtrapolationReport(records, batch.n_structures, int(batch.positions.shape[0]), tolerance)


def check_extrapolation(model, frames, tolerance: float = DEFAULT_TOLERANCE, batch_size: int = 16,
                        progress: bool = False) -> ExtrapolationReport:
    """Compare the symmetry functions of ``frames`` with ``model``'s training range.

    Parameters
    ----------
    model : HDNNP
        A model with fitted scaling statistics (its Gmin/Gmax are the range).
    frames : ase.Atoms or list of ase.Atoms
    tolerance : float
        Values within ``tolerance · (Gmax − Gmin)`` outside the range are accepted.
    batch_size : int
        Structures per descriptor batch.

    Returns
    -------
    ExtrapolationReport
        Structure indices are positions in ``frames``.
    """
    from ase import Atoms
    from tqdm.auto import tqdm

    from mdmlkit.descriptors import AtomsBatch

    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise EmptyTrajectoryError("check_extrapolation: no structures")
    report = ExtrapolationReport(tolerance=tolerance)
    for s in tqdm(range(0, len(frames), batch_size), desc="extrapolation check", disable=not progress,
                  leave=False):
        batch = AtomsBatch.from_atoms(frames[s:s + batch_size], model.elements, model.cutoff,
                                      device=model.device, dtype=model.dtype)
        with torch.no_grad():
            G = model.descriptors(batch)
        report = report.extend(find_extrapolation(model, G, batch, tolerance, structure_offset=s))
    return report
