"""Symmetry-function definitions, n2p2 ``input.nn`` parsing/writing and n2p2 ordering.

A :class:`SymmetryFunction` is one atom-centred symmetry function of n2p2 type
2 (radial), 3 (angular narrow) or 9 (angular wide).  A
:class:`SymmetryFunctionSet` holds the functions of every central element in
n2p2's *sorted* order, which is the order of the columns of n2p2's
``function.data`` / ``scaling.data`` and of the network inputs.

n2p2's order (``SymFncExpRad::operator<`` / ``SymFncExpAngn::operator<``)
compares, per central element: type, cutoff type, cutoff alpha, rc, eta, rs,
then (angular only) zeta, lambda, then e1, e2 by n2p2 element index, i.e. by
atomic number.  Angular functions store ``e1 <= e2`` by atomic number, as n2p2
does when it reads them.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ase.data import atomic_numbers

from mdmlkit.descriptors.cutoff import CUTOFF_TYPES, check_cutoff_params
from mdmlkit.errors import InputError, MalformedFileError, UnknownElementError
from mdmlkit.io.n2p2 import parse_input_nn, read_input_nn

#: Supported n2p2 symmetry-function types.
RADIAL_TYPES = frozenset({2})
ANGULAR_TYPES = frozenset({3, 9})
SUPPORTED_TYPES = RADIAL_TYPES | ANGULAR_TYPES


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol; :class:`UnknownElementError` for anything else."""
    try:
        return atomic_numbers[symbol]
    except KeyError:
        raise UnknownElementError(f"{symbol!r} is not a chemical element symbol") from None


def format_number(x: float) -> str:
    """Shortest text that reads back as exactly ``x`` (``6`` for 6.0, ``0.05``)."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


@dataclass(frozen=True)
class SymmetryFunction:
    """One n2p2 symmetry function for central element ``central``.

    Type 2:  G = sum_j exp(-eta (r_ij - rs)^2) f_c(r_ij)
    Type 3:  G = 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta
                 exp(-eta [(r_ij-rs)^2 + (r_ik-rs)^2 + (r_jk-rs)^2])
                 f_c(r_ij) f_c(r_ik) f_c(r_jk)
    Type 9:  as type 3 without the r_jk Gaussian and f_c(r_jk).
    A term with 1 + lambda cos theta <= 0 is zero.

    Attributes
    ----------
    central, e1, e2 : str
        Central and neighbour elements (``e2`` is None for radial functions;
        angular functions are normalised to Z(e1) <= Z(e2)).
    type : int
        2, 3 or 9.
    eta : float
        Gaussian width, Å^-2.
    rs : float
        Gaussian shift, Å.
    rc : float
        Cutoff radius, Å.
    lambda_, zeta : float
        Angular parameters (unused, 0, for radial functions).
    cutoff_type : int
        n2p2 cutoff type (see :mod:`mdmlkit.descriptors.cutoff`).
    alpha : float
        Inner cutoff as a fraction of ``rc``.
    line : int or None
        1-based line number in the ``input.nn`` it was read from (not compared).
    """

    central: str
    type: int
    e1: str
    e2: str | None = None
    eta: float = 0.0
    rs: float = 0.0
    rc: float = 6.0
    lambda_: float = 0.0
    zeta: float = 0.0
    cutoff_type: int = 6
    alpha: float = 0.0
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        who = f"symmetry function (central {self.central}, type {self.type})"
        if self.type not in SUPPORTED_TYPES:
            raise InputError(f"{who}: symmetry function type {self.type} not supported "
                             f"(mdmlkit implements n2p2 types {sorted(SUPPORTED_TYPES)})")
        for name in ("central", "e1") + (("e2",) if self.type in ANGULAR_TYPES else ()):
            atomic_number(getattr(self, name))
        check_cutoff_params(self.cutoff_type, self.alpha)
        if not (self.rc > 0 and math.isfinite(self.rc)):
            raise InputError(f"{who}: cutoff radius rc={self.rc} must be positive and finite")
        if not (self.eta >= 0 and math.isfinite(self.eta)):
            raise InputError(f"{who}: eta={self.eta} must be non-negative and finite")
        if not math.isfinite(self.rs):
            raise InputError(f"{who}: rs={self.rs} must be finite")
        if self.type in ANGULAR_TYPES:
            if self.e2 is None:
                raise InputError(f"{who}: angular symmetry function (type {self.type}) needs e2")
            if not (self.zeta > 0 and math.isfinite(self.zeta)):
                raise InputError(f"{who}: zeta={self.zeta} must be positive and finite")
            if not math.isfinite(self.lambda_):
                raise InputError(f"{who}: lambda={self.lambda_} must be finite")
            if atomic_number(self.e1) > atomic_number(self.e2):   # n2p2 swaps so that e1 <= e2
                e1, e2 = self.e2, self.e1
                object.__setattr__(self, "e1", e1)
                object.__setattr__(self, "e2", e2)
        else:
            object.__setattr__(self, "e2", None)
            object.__setattr__(self, "lambda_", 0.0)
            object.__setattr__(self, "zeta", 0.0)
        for name in ("eta", "rs", "rc", "lambda_", "zeta", "alpha"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "type", int(self.type))
        object.__setattr__(self, "cutoff_type", int(self.cutoff_type))

    @property
    def is_angular(self) -> bool:
        return self.type in ANGULAR_TYPES

    def sort_key(self) -> tuple:
        """n2p2 comparison key within one central element (see module docstring)."""
        zeta, lam = (self.zeta, self.lambda_) if self.is_angular else (0.0, 0.0)
        z2 = atomic_number(self.e2) if self.e2 is not None else 0
        return (self.type, self.cutoff_type, self.alpha, self.rc, self.eta, self.rs,
                zeta, lam, atomic_number(self.e1), z2)

    def to_line(self) -> str:
        """The ``symfunction_short`` line of this function (n2p2 syntax)."""
        f = format_number
        if self.is_angular:
            return (f"symfunction_short {self.central} {self.type} {self.e1} {self.e2} "
                    f"{f(self.eta)} {f(self.lambda_)} {f(self.zeta)} {f(self.rc)} {f(self.rs)}")
        return (f"symfunction_short {self.central} {self.type} {self.e1} "
                f"{f(self.eta)} {f(self.rs)} {f(self.rc)}")

    def __str__(self) -> str:
        return self.to_line()


def parse_symfunction_line(text: str, elements: Sequence[str], cutoff_type: int = 6,
                           alpha: float = 0.0, path: str | None = None,
                           line: int | None = None) -> SymmetryFunction:
    """Parse one ``symfunction_short`` line (the keyword is optional).

    Radial: ``<ec> 2 <e1> <eta> <rs> <rc>``; angular:
    ``<ec> <3|9> <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]``.

    Raises
    ------
    MalformedFileError
        Wrong field count, non-numbers or unsupported type (names path/line).
    UnknownElementError
        An element that is not in ``elements``.
    """
    where = f"{path}, line {line}: " if path is not None else (
        f"line {line}: " if line is not None else "")
    tok = text.split("#", 1)[0].split()
    if tok and tok[0] == "symfunction_short":
        tok = tok[1:]
    if len(tok) < 2:
        raise MalformedFileError(f"incomplete symfunction_short line {text.strip()!r}",
                                 path, line)
    try:
        sf_type = int(tok[1])
    except ValueError:
        raise MalformedFileError(f"symmetry function type {tok[1]!r} is not an integer",
                                 path, line) from None
    if sf_type not in SUPPORTED_TYPES:
        raise MalformedFileError(f"symmetry function type {sf_type} is not supported "
                                 f"(mdmlkit implements types 2, 3 and 9)", path, line)
    n_el = 1 if sf_type in RADIAL_TYPES else 2
    expected = (6,) if sf_type in RADIAL_TYPES else (8, 9)
    if len(tok) not in expected:
        layout = ("<ec> 2 <e1> <eta> <rs> <rc>" if sf_type in RADIAL_TYPES else
                  f"<ec> {sf_type} <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]")
        raise MalformedFileError(f"type {sf_type} needs {' or '.join(map(str, expected))} "
                                 f"fields ({layout}), got {len(tok)}: {text.strip()!r}",
                                 path, line)
    names = [tok[0]] + tok[2:2 + n_el]
    for el in names:
        if el not in elements:
            raise UnknownElementError(f"{where}element {el!r} is not in elements "
                                      f"{list(elements)}")
    try:
        nums = [float(t) for t in tok[2 + n_el:]]
    except ValueError:
        raise MalformedFileError(f"non-numeric parameter in {text.strip()!r}", path,
                                 line) from None
    if not all(math.isfinite(v) for v in nums):
        raise MalformedFileError(f"non-finite parameter in {text.strip()!r}", path, line)
    try:
        if sf_type in RADIAL_TYPES:
            eta, rs, rc = nums
            return SymmetryFunction(tok[0], sf_type, tok[2], None, eta=eta, rs=rs, rc=rc,
                                    cutoff_type=cutoff_type, alpha=alpha, line=line)
        eta, lam, zeta, rc = nums[:4]
        rs = nums[4] if len(nums) > 4 else 0.0
        return SymmetryFunction(tok[0], sf_type, tok[2], tok[3], eta=eta, rs=rs, rc=rc,
                                lambda_=lam, zeta=zeta, cutoff_type=cutoff_type,
                                alpha=alpha, line=line)
    except InputError as exc:
        raise MalformedFileError(str(exc), path, line) from None


class SymmetryFunctionSet:
    """Symmetry functions of every central element, in n2p2's sorted order.

    Parameters
    ----------
    elements : sequence of str
        Element symbols in ``input.nn`` order (``elements La Zr O``).
    functions : iterable of SymmetryFunction, or mapping element -> iterable
        The functions; they are sorted per central element in n2p2 order.
        Their ``cutoff_type``/``alpha`` are replaced by the set's (n2p2 uses one
        global ``cutoff_type`` line).
    cutoff_type : int
        n2p2 cutoff type number (``cutoff_type`` keyword).
    alpha : float
        Inner cutoff fraction (second value of ``cutoff_type``).

    Attributes
    ----------
    elements : list[str]
    functions : dict[str, list[SymmetryFunction]]
        Per central element, n2p2 sorted order (= feature column order).
    n_features : dict[str, int]
    cutoff : float
        Largest rc of all functions, Å (the neighbour-list cutoff).
    """

    def __init__(self, elements: Sequence[str],
                 functions: Iterable[SymmetryFunction] | Mapping[str, Iterable[SymmetryFunction]],
                 cutoff_type: int = 6, alpha: float = 0.0):
        elements = [str(e) for e in elements]
        if not elements:
            raise InputError("a symmetry-function set needs at least one element")
        if len(set(elements)) != len(elements):
            raise InputError(f"duplicate element in {elements}")
        for el in elements:
            atomic_number(el)
        check_cutoff_params(cutoff_type, alpha)
        self.elements: list[str] = elements
        self.cutoff_type = int(cutoff_type)
        self.alpha = float(alpha)
        if isinstance(functions, Mapping):
            flat = [f for fs in functions.values() for f in fs]
        else:
            flat = list(functions)
        per: dict[str, list[SymmetryFunction]] = {el: [] for el in elements}
        for f in flat:
            for el in (f.central, f.e1) + ((f.e2,) if f.e2 is not None else ()):
                if el not in per:
                    raise UnknownElementError(
                        f"symmetry function {f.to_line()!r} uses element {el!r}, "
                        f"not in elements {elements}")
            if f.cutoff_type != self.cutoff_type or f.alpha != self.alpha:
                f = dataclasses.replace(f, cutoff_type=self.cutoff_type, alpha=self.alpha)
            per[f.central].append(f)
        self.functions: dict[str, list[SymmetryFunction]] = {
            el: sorted(fs, key=SymmetryFunction.sort_key) for el, fs in per.items()}

    # ------------------------------------------------------------------ info
    @property
    def n_features(self) -> dict[str, int]:
        return {el: len(fs) for el, fs in self.functions.items()}

    @property
    def cutoff(self) -> float:
        rcs = [f.rc for fs in self.functions.values() for f in fs]
        return max(rcs) if rcs else 0.0

    @property
    def atomic_numbers(self) -> dict[str, int]:
        return {el: atomic_number(el) for el in self.elements}

    def __len__(self) -> int:
        return sum(self.n_features.values())

    def __iter__(self):
        for el in self.elements:
            yield from self.functions[el]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymmetryFunctionSet):
            return NotImplemented
        return (self.elements == other.elements and self.cutoff_type == other.cutoff_type
                and self.alpha == other.alpha and self.functions == other.functions)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{el}: {n} ({sum(not f.is_angular for f in self.functions[el])} radial)"
            for el, n in self.n_features.items())
        return (f"SymmetryFunctionSet(elements={self.elements}, cutoff={self.cutoff:g} Å, "
                f"cutoff_type={self.cutoff_type} ({CUTOFF_TYPES[self.cutoff_type]}), "
                f"alpha={self.alpha:g}, n_features={{{counts}}})")

    def describe(self, element: str) -> str:
        """One line on the functions of central ``element``: radial functions per neighbour
        element, angular functions per neighbour pair, and the (zeta, lambda) values used."""
        if element not in self.functions:
            raise UnknownElementError(f"{element!r} is not a central element of this set ({self.elements})")
        fs = self.functions[element]
        radial = {e: sum(not f.is_angular and f.e1 == e for f in fs) for e in self.elements}
        angular: dict[str, int] = {}
        for f in fs:
            if f.is_angular:
                angular[f"{f.e1}-{f.e2}"] = angular.get(f"{f.e1}-{f.e2}", 0) + 1
        zl = sorted({(f.zeta, f.lambda_) for f in fs if f.is_angular})
        return f"radial per neighbour {radial}; angular per pair {angular}; (zeta, lambda) used {zl}"

    # ------------------------------------------------------------ selection
    def subset(self, keep: Mapping[str, Sequence[int]]) -> SymmetryFunctionSet:
        """New set with, per element, only the functions at sorted indices ``keep[el]``.

        Elements missing from ``keep`` keep all their functions.
        """
        funcs = []
        for el in self.elements:
            fs = self.functions[el]
            idx = keep.get(el, range(len(fs)))
            for i in idx:
                if not 0 <= int(i) < len(fs):
                    raise IndexError(f"{el}: function index {i} out of range 0..{len(fs) - 1}")
            funcs.extend(fs[int(i)] for i in sorted(set(int(i) for i in idx)))
        return SymmetryFunctionSet(self.elements, funcs, self.cutoff_type, self.alpha)

    # ----------------------------------------------------------------- I/O
    def to_input_nn_lines(self, header: bool = False) -> list[str]:
        """``symfunction_short`` lines (per element in ``elements`` order, sorted).

        With ``header=True`` the ``number_of_elements``, ``elements`` and
        ``cutoff_type`` lines come first, so that the result alone is a valid
        descriptor section of an ``input.nn``.
        """
        lines = []
        if header:
            lines += [f"number_of_elements {len(self.elements)}",
                      "elements " + " ".join(self.elements),
                      f"cutoff_type {self.cutoff_type} {format_number(self.alpha)}"]
        for el in self.elements:
            lines += [f.to_line() for f in self.functions[el]]
        return lines

    @classmethod
    def from_input_nn(cls, path: str | os.PathLike) -> SymmetryFunctionSet:
        """Read the descriptor section of an n2p2 ``input.nn`` (``elements``,
        ``cutoff_type`` and the ``symfunction_short`` lines; a network topology may
        be absent).

        Raises
        ------
        MalformedFileError
            Missing/invalid keywords or malformed lines (path and line number).
        UnknownElementError
            A symmetry function names an element that is not in ``elements``.
        """
        return cls.from_settings(read_input_nn(path))

    @classmethod
    def from_text(cls, text: str, path: str | None = None) -> SymmetryFunctionSet:
        """Like :meth:`from_input_nn` on the contents ``text`` (``path`` for messages)."""
        return cls.from_settings(parse_input_nn(text, path))

    @classmethod
    def from_settings(cls, settings: Mapping) -> SymmetryFunctionSet:
        """Build the set from parsed ``input.nn`` settings
        (:func:`mdmlkit.io.n2p2.parse_input_nn`); each ``symfunction_short`` line is
        parsed by :func:`parse_symfunction_line`."""
        path = settings["path"]
        cutoff_type, alpha = settings["cutoff_type"], settings["cutoff_alpha"]
        try:
            check_cutoff_params(cutoff_type, alpha)
        except InputError as exc:
            line = settings["keywords"]["cutoff_type"][0][1]
            raise MalformedFileError(f"bad cutoff_type line ({exc})", path, line) from None
        elements = settings["elements"]
        funcs = [parse_symfunction_line(text, elements, cutoff_type, alpha, path, line)
                 for text, line in zip(settings["symfunction_lines"], settings["symfunction_line_numbers"])]
        return cls(elements, funcs, cutoff_type=cutoff_type, alpha=alpha)

    @classmethod
    def from_lines(cls, lines: Iterable[str], elements: Sequence[str], cutoff_type: int = 6,
                   alpha: float = 0.0) -> SymmetryFunctionSet:
        """Build a set from ``symfunction_short`` lines (e.g. :meth:`to_input_nn_lines`)."""
        funcs = [parse_symfunction_line(t, elements, cutoff_type, alpha, line=k)
                 for k, t in enumerate(lines, start=1) if t.split("#", 1)[0].strip()]
        return cls(elements, funcs, cutoff_type=cutoff_type, alpha=alpha)
