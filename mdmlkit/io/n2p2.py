"""Reading and writing n2p2 files: ``input.data``, ``input.nn``, ``scaling.data``, weights.

n2p2 (https://compphysvienna.github.io/n2p2/) stores a 2G-HDNNP in a directory::

    input.nn            settings: elements, cutoff, scaling flags, network topology,
                        atom_energy offsets, symfunction_short lines
    scaling.data        per element and symmetry function: Gmin Gmax Gmean Gsigma
    weights.ZZZ.data    one file per element (ZZZ = atomic number, 3 digits): the
                        network's connections, first column, in n2p2 order

and training data in ``input.data`` (``begin / comment / lattice x3 / atom ... /
energy / charge / end`` blocks).  This module only reads and writes the files
(it knows nothing of symmetry functions or networks):
:meth:`mdmlkit.descriptors.SymmetryFunctionSet.from_input_nn` and
:func:`mdmlkit.potential.load_n2p2_model` / :func:`~mdmlkit.potential.save_n2p2_model`
build on it.

File conventions followed (n2p2 v2.x):

* Element indices in ``scaling.data`` (column 1) and the order of its blocks follow
  n2p2's element map, i.e. elements sorted by **atomic number** — not the order of
  the ``elements`` keyword.  Symmetry-function indices (column 2) follow n2p2's
  sorted order, which is the order of ``SymmetryFunctionSet.functions[el]``.
* Weights: per layer (input -> first hidden, ..., last hidden -> output) all weights
  looped over the neurons of the previous layer (outer) and of this layer (inner),
  then this layer's biases.  Only the first column is read; files are written with
  n2p2's full 7-column header so that they look like n2p2's own.
* Activation letters: ``l`` linear, ``t`` tanh, ``s`` logistic, ``p`` softplus,
  ``r`` relu, ``g`` gaussian exp(-x²/2), ``c`` cos, ``S`` 1 - logistic, ``e``
  exp(-x), ``h`` x².
* Scaling keywords -> mode: ``scale_symmetry_functions`` -> ``"scale"``,
  ``center_symmetry_functions`` -> ``"center"``, both -> ``"center_scale"``,
  ``scale_symmetry_functions_sigma`` -> ``"scale_sigma"``, none -> ``"none"``
  (n2p2's precedence when several are given); ``scale_min_short``/``scale_max_short``
  default to 0 and 1.
* ``atom_energy El E0`` offsets are added to every atom's network output; the energies
  n2p2 writes to ``output.data`` include them.  Data-set normalisation keywords
  (``mean_energy``, ``conv_energy``, ``conv_length``[, ``conv_charge``]) are honoured:
  E_atom = NN/conv_energy + mean_energy + atom_energy.  ``normalize_nodes`` is folded
  into the weights on loading.

Units: mdmlkit works in Å and eV.  n2p2 itself is unit-agnostic; the files are read
as Å/eV unless conversion factors are given to :func:`read_input_data`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from mdmlkit.errors import (
    EmptyTrajectoryError,
    InputError,
    MalformedFileError,
    MissingFileError,
    ModelMismatchError,
    NonFiniteError,
    UnknownElementError,
)
from mdmlkit.utils import PathLike, atomic_write_text

__all__ = [
    "ACTIVATION_LETTERS", "SCALING_MODES",
    "read_input_data", "write_input_data",
    "read_input_nn", "write_input_nn", "read_scaling_data", "write_scaling_data",
    "read_weights", "write_weights", "n2p2_element_order", "weights_filename", "parse_input_nn",
]

#: n2p2 activation letter -> mdmlkit activation name.
ACTIVATION_LETTERS: dict[str, str] = {
    "l": "linear", "t": "tanh", "s": "logistic", "p": "softplus", "r": "relu",
    "g": "gaussian", "c": "cos", "S": "revlogistic", "e": "exp", "h": "harmonic",
}

#: mdmlkit scaling mode -> n2p2 keywords that select it.
SCALING_MODES: dict[str, tuple[str, ...]] = {
    "none": (),
    "scale": ("scale_symmetry_functions",),
    "center": ("center_symmetry_functions",),
    "center_scale": ("scale_symmetry_functions", "center_symmetry_functions"),
    "scale_sigma": ("scale_symmetry_functions_sigma",),
}

_NORMALISATION_KEYS = ("mean_energy", "conv_energy", "conv_length")


# -----------------------------------------------------------------------------
# small helpers
# -----------------------------------------------------------------------------


def n2p2_element_order(elements: Iterable[str]) -> list[str]:
    """Elements in n2p2's internal order (ascending atomic number)."""
    return sorted(elements, key=lambda s: atomic_numbers[s])


def weights_filename(element: str, epoch: int | None = None) -> str:
    """n2p2 weight-file name: ``weights.ZZZ.data`` or, for a training epoch,
    ``weights.ZZZ.EEEEEE.out`` (as written by ``nnp-train``)."""
    z = atomic_numbers[element]
    return f"weights.{z:03d}.data" if epoch is None else f"weights.{z:03d}.{int(epoch):06d}.out"


def _float(tok: str, path, lineno: int, what: str) -> float:
    try:
        # Fortran-style exponents (1.0D+00) appear in some older files.
        value = float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise MalformedFileError(f"cannot read {what} from {tok!r}", str(path), lineno) from None
    if not math.isfinite(value):
        raise MalformedFileError(f"non-finite {what} {tok!r}", str(path), lineno)
    return value


def _int(tok: str, path, lineno: int, what: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise MalformedFileError(f"cannot read {what} (integer) from {tok!r}", str(path), lineno) from None


def _element(tok: str, path, lineno: int) -> str:
    if tok not in atomic_numbers or tok == "X":
        raise MalformedFileError(f"unknown element symbol {tok!r}", None if path is None else str(path), lineno)
    return tok


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _fmt(x: float) -> str:
    return f"{x:24.16E}"


# -----------------------------------------------------------------------------
# input.data
# -----------------------------------------------------------------------------


def read_input_data(path: PathLike, length_unit: float = 1.0, energy_unit: float = 1.0,
                    charge_unit: float = 1.0) -> list[Atoms]:
    """Read an n2p2 ``input.data`` file into a list of :class:`ase.Atoms`.

    Parameters
    ----------
    path : path
        The file.
    length_unit, energy_unit, charge_unit : float
        Size of the file's length/energy/charge unit in Å / eV / e; values are
        multiplied by them (e.g. ``length_unit=ase.units.Bohr,
        energy_unit=ase.units.Hartree`` for atomic units).  Forces are converted
        with ``energy_unit / length_unit``.  Defaults: the file is in Å, eV, e.

    Returns
    -------
    list of ase.Atoms
        One per ``begin``/``end`` block.  Three ``lattice`` lines make a fully
        periodic cell (``pbc=True``), none a non-periodic structure.  The
        ``energy`` (eV) and the per-atom forces (eV/Å) are attached through a
        :class:`~ase.calculators.singlepoint.SinglePointCalculator`; comment lines
        are joined into ``atoms.info["comment"]``, the total ``charge`` goes to
        ``atoms.info["charge"]`` and the per-atom charges to the initial charges.

    Raises
    ------
    MalformedFileError
        With the path and line number, for any line that does not parse.
    EmptyTrajectoryError
        The file holds no structure (empty, or only blank and comment lines): an
        n2p2 data set needs at least one, so an empty file is refused, not read as ``[]``.
    MissingFileError
        No such file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such n2p2 input.data file")
    frames: list[Atoms] = []
    block: dict[str, Any] | None = None
    f_unit = energy_unit / length_unit
    with open(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            key, _, rest = line.partition(" ")
            tokens = rest.split()
            if key == "begin":
                if block is not None:
                    raise MalformedFileError(f"'begin' inside the structure opened on line {block['line']}"
                                             " (missing 'end')", str(path), lineno)
                block = {"line": lineno, "comment": [], "lattice": [], "symbols": [], "pos": [],
                         "charges": [], "forces": [], "energy": None, "charge": None}
                continue
            if block is None:
                if line.startswith("#"):
                    continue
                raise MalformedFileError(f"{key!r} outside a begin/end block", str(path), lineno)
            if key == "comment":
                block["comment"].append(rest.strip())
            elif key == "lattice":
                if len(tokens) != 3:
                    raise MalformedFileError("'lattice' needs 3 numbers", str(path), lineno)
                if len(block["lattice"]) == 3:
                    raise MalformedFileError("more than 3 'lattice' lines", str(path), lineno)
                block["lattice"].append([_float(t, path, lineno, "lattice vector") * length_unit
                                         for t in tokens])
            elif key == "atom":
                if len(tokens) != 9:
                    raise MalformedFileError(
                        f"'atom' needs 9 fields (x y z element charge unused fx fy fz), got {len(tokens)}",
                        str(path), lineno)
                block["pos"].append([_float(t, path, lineno, "position") * length_unit for t in tokens[:3]])
                block["symbols"].append(_element(tokens[3], path, lineno))
                block["charges"].append(_float(tokens[4], path, lineno, "atomic charge") * charge_unit)
                block["forces"].append([_float(t, path, lineno, "force") * f_unit for t in tokens[6:9]])
            elif key == "energy":
                if len(tokens) != 1:
                    raise MalformedFileError("'energy' needs 1 number", str(path), lineno)
                block["energy"] = _float(tokens[0], path, lineno, "energy") * energy_unit
            elif key == "charge":
                if len(tokens) != 1:
                    raise MalformedFileError("'charge' needs 1 number", str(path), lineno)
                block["charge"] = _float(tokens[0], path, lineno, "charge") * charge_unit
            elif key == "end":
                frames.append(_block_to_atoms(block, path, lineno, len(frames)))
                block = None
            else:
                raise MalformedFileError(f"unknown keyword {key!r}", str(path), lineno)
    if block is not None:
        raise MalformedFileError(f"structure opened on line {block['line']} has no 'end'", str(path), None)
    if not frames:
        raise EmptyTrajectoryError(f"{path}: no structures (no begin/end block); an n2p2 input.data "
                                   "needs at least one")
    return frames


def _block_to_atoms(block: dict, path: Path, lineno: int, index: int) -> Atoms:
    if not block["symbols"]:
        raise MalformedFileError(f"structure {index} has no atoms", str(path), lineno)
    n_lat = len(block["lattice"])
    if n_lat not in (0, 3):
        raise MalformedFileError(f"structure {index} has {n_lat} 'lattice' lines (need 0 or 3)",
                                 str(path), lineno)
    if n_lat == 3:
        cell = np.array(block["lattice"])
        if abs(np.linalg.det(cell)) < 1e-12:
            raise MalformedFileError(f"structure {index} has a singular cell", str(path), lineno)
        atoms = Atoms(block["symbols"], positions=block["pos"], cell=cell, pbc=True)
    else:
        atoms = Atoms(block["symbols"], positions=block["pos"], pbc=False)
    atoms.set_initial_charges(block["charges"])
    if block["comment"]:
        atoms.info["comment"] = " ".join(block["comment"])
    if block["charge"] is not None:
        atoms.info["charge"] = block["charge"]
    results: dict[str, Any] = {"forces": np.array(block["forces"], dtype=float)}
    if block["energy"] is not None:
        results["energy"] = block["energy"]
        results["free_energy"] = block["energy"]
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _labels(atoms: Atoms) -> tuple[float | None, np.ndarray | None]:
    """Energy (eV) and forces (eV/Å) attached to ``atoms``, without computing anything new."""
    calc = atoms.calc
    if calc is None:
        return atoms.info.get("energy"), None
    res = getattr(calc, "results", {}) or {}
    energy = res.get("energy", res.get("free_energy"))
    forces = res.get("forces")
    if energy is None or forces is None:
        try:
            energy = atoms.get_potential_energy() if energy is None else energy
            forces = atoms.get_forces() if forces is None else forces
        except Exception:  # noqa: BLE001 - a calculator that cannot deliver labels
            pass
    return (None if energy is None else float(energy)), (None if forces is None else np.asarray(forces))


def write_input_data(frames: Sequence[Atoms] | Atoms, path: PathLike) -> None:
    """Write structures to an n2p2 ``input.data`` file (atomically, Å and eV).

    Energies and forces are taken from each structure's calculator results (a
    :class:`SinglePointCalculator` as made by :func:`read_input_data`, or any
    calculator that already holds results); missing forces are written as 0 and a
    missing energy as 0 (n2p2 needs the line).  ``atoms.info["comment"]``,
    ``atoms.info["charge"]`` and the initial charges are written when present.
    Fully periodic structures get ``lattice`` lines; partially periodic ones are
    rejected (n2p2 supports only fully periodic or isolated structures).
    """
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise EmptyTrajectoryError(f"{path}: no structures to write (an empty input.data cannot be read back)")
    lines: list[str] = []
    for k, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise EmptyTrajectoryError(f"{path}: structure {k} has no atoms")
        pbc = np.asarray(atoms.get_pbc(), dtype=bool)
        if pbc.any() and not pbc.all():
            raise InputError(f"structure {k}: pbc={pbc.tolist()}; n2p2 needs fully periodic or isolated")
        pos = atoms.get_positions()
        if not np.all(np.isfinite(pos)):
            raise NonFiniteError(f"structure {k} has non-finite positions")
        energy, forces = _labels(atoms)
        if forces is None:
            forces = np.zeros_like(pos)
        charges = atoms.get_initial_charges()
        lines.append("begin")
        comment = atoms.info.get("comment")
        if comment:
            lines.append(f"comment {' '.join(str(comment).split())}")
        if pbc.all():
            for v in atoms.get_cell()[:]:
                lines.append("lattice " + " ".join(_fmt(x) for x in v))
        for s, r, q, f in zip(atoms.get_chemical_symbols(), pos, charges, forces):
            lines.append("atom " + " ".join(_fmt(x) for x in r) + f" {s:>2s} " + _fmt(q)
                         + " " + _fmt(0.0) + " " + " ".join(_fmt(x) for x in f))
        lines.append("energy " + _fmt(0.0 if energy is None else energy))
        lines.append("charge " + _fmt(float(atoms.info.get("charge", 0.0))))
        lines.append("end")
    atomic_write_text(path, "\n".join(lines) + "\n")


# -----------------------------------------------------------------------------
# input.nn
# -----------------------------------------------------------------------------


def read_input_nn(path: PathLike) -> dict[str, Any]:
    """Parse an n2p2 ``input.nn`` settings file; see :func:`parse_input_nn`."""
    path = Path(path)
    return parse_input_nn(path.read_text(), str(path))


def parse_input_nn(text: str, path: str | None = None) -> dict[str, Any]:
    """Parse the contents of an n2p2 ``input.nn`` (the one parser of that format).

    Parameters
    ----------
    text : str
        The file's contents.
    path : str, optional
        Where the text came from; named in error messages.

    Returns
    -------
    dict
        ``path`` (``path`` or None), ``elements`` (list, in the order of the
        ``elements`` keyword), ``cutoff_type`` (int), ``cutoff_alpha`` (float;
        the type itself is checked by :mod:`mdmlkit.descriptors.cutoff`),
        ``scaling_mode`` (one of :data:`SCALING_MODES`), ``scale_min``/``scale_max``
        (float), ``hidden`` (dict element -> list of hidden-layer widths, or None
        when the file has no network topology, i.e. only a descriptor section),
        ``activations`` (dict element -> list of n2p2 letters, hidden layers then
        output, or None likewise), ``atom_energy`` (dict element -> eV, 0 where
        absent), ``normalize_nodes`` (bool), ``normalization`` (None or dict with
        ``mean_energy``, ``conv_energy``, ``conv_length``), ``symfunction_lines``
        (the ``symfunction_short ...`` lines, comments stripped, file order; parsed
        by :func:`mdmlkit.descriptors.parse_symfunction_line`),
        ``symfunction_line_numbers`` (their 1-based line numbers) and ``keywords``
        (every keyword -> list of (value string, line number)).

    Raises
    ------
    MalformedFileError
        Missing or inconsistent keywords, with path and line number.
    UnknownElementError
        A symbol that is not a chemical element.
    """
    keywords: dict[str, list[tuple[str, int]]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        key, _, rest = line.partition(" ")
        keywords.setdefault(key, []).append((" ".join(rest.split()), lineno))

    def one(key: str, required: bool = True) -> tuple[str, int] | None:
        vals = keywords.get(key)
        if not vals:
            if required:
                raise MalformedFileError(f"no {key!r} keyword (n2p2 requires it)", path)
            return None
        if len(vals) > 1:
            raise MalformedFileError(f"keyword {key!r} given {len(vals)} times", path, vals[1][1])
        return vals[0]

    nnp_type = one("nnp_type", required=False)
    if nnp_type is not None and nnp_type[0] not in ("2G-HDNNP", "2G", "1"):
        raise MalformedFileError(f"nnp_type {nnp_type[0]!r} is not supported (only short-range 2G-HDNNP)",
                                 path, nnp_type[1])

    val, ln = one("elements")
    if not val:
        raise MalformedFileError("'elements' lists no element", path, ln)
    elements = val.split()
    for el in elements:
        if el not in atomic_numbers or el == "X":
            where = "" if path is None else f"{path}, line {ln}: "
            raise UnknownElementError(f"{where}'elements' lists {el!r}, which is not a chemical element")
    if len(set(elements)) != len(elements):
        raise MalformedFileError(f"duplicate element in 'elements {val}'", path, ln)
    num = one("number_of_elements", required=False)
    if num is not None:
        toks = num[0].split()
        if len(toks) != 1:
            raise MalformedFileError("'number_of_elements' needs one integer", path, num[1])
        if _int(toks[0], path, num[1], "number_of_elements") != len(elements):
            raise MalformedFileError(f"number_of_elements {num[0]} but {len(elements)} elements listed",
                                     path, num[1])

    val, ln = one("cutoff_type")
    toks = val.split()
    if len(toks) not in (1, 2):
        raise MalformedFileError("expected 'cutoff_type <type> [<alpha>]'", path, ln)
    cutoff_type = _int(toks[0], path, ln, "cutoff type")
    cutoff_alpha = _float(toks[1], path, ln, "cutoff alpha") if len(toks) > 1 else 0.0
    if not 0.0 <= cutoff_alpha < 1.0:
        raise MalformedFileError(f"cutoff alpha {cutoff_alpha} outside [0, 1)", path, ln)

    present = {k for k in ("scale_symmetry_functions", "center_symmetry_functions",
                           "scale_symmetry_functions_sigma") if k in keywords}
    if "scale_symmetry_functions" in present:
        mode = "center_scale" if "center_symmetry_functions" in present else "scale"
    elif "center_symmetry_functions" in present:
        mode = "center"
    elif "scale_symmetry_functions_sigma" in present:
        mode = "scale_sigma"
    else:
        mode = "none"
    smin = one("scale_min_short", required=False)
    smax = one("scale_max_short", required=False)
    scale_min = 0.0 if smin is None else _float(smin[0], path, smin[1], "scale_min_short")
    scale_max = 1.0 if smax is None else _float(smax[0], path, smax[1], "scale_max_short")

    topology_keys = ("global_hidden_layers_short", "global_nodes_short", "global_activation_short")
    if any(k in keywords for k in topology_keys):
        hidden, activations = _read_topology(keywords, elements, path, one)
    else:
        hidden = activations = None

    atom_energy = {el: 0.0 for el in elements}
    for val, ln in keywords.get("atom_energy", []):
        toks = val.split()
        if len(toks) != 2:
            raise MalformedFileError("'atom_energy' needs an element and a number", path, ln)
        el = _element(toks[0], path, ln)
        if el not in elements:
            raise MalformedFileError(f"atom_energy for {el}, which is not in 'elements'", path, ln)
        atom_energy[el] = _float(toks[1], path, ln, "atom energy")

    norm_present = [k for k in _NORMALISATION_KEYS if k in keywords]
    normalization = None
    if norm_present:
        if len(norm_present) != len(_NORMALISATION_KEYS):
            missing = sorted(set(_NORMALISATION_KEYS) - set(norm_present))
            raise MalformedFileError(f"normalisation keywords incomplete, missing {missing}", path)
        normalization = {}
        for k in _NORMALISATION_KEYS:
            v, ln = one(k)
            normalization[k] = _float(v.split()[0], path, ln, k)
        if normalization["conv_energy"] == 0.0:
            raise MalformedFileError("conv_energy is 0", path, one("conv_energy")[1])

    sf_lines, sf_numbers = [], []
    for val, ln in keywords.get("symfunction_short", []):
        sf_lines.append(f"symfunction_short {val}".rstrip())
        sf_numbers.append(ln)
    if not sf_lines:
        raise MalformedFileError("no 'symfunction_short' lines", path)

    return {
        "path": path, "elements": elements, "cutoff_type": cutoff_type, "cutoff_alpha": cutoff_alpha,
        "scaling_mode": mode, "scale_min": scale_min, "scale_max": scale_max,
        "hidden": hidden, "activations": activations, "atom_energy": atom_energy,
        "normalize_nodes": "normalize_nodes" in keywords, "normalization": normalization,
        "symfunction_lines": sf_lines, "symfunction_line_numbers": sf_numbers, "keywords": keywords,
    }


def _read_topology(keywords, elements, path, one):
    """Hidden-layer widths and activation letters per element (global + per-element keywords)."""
    val, ln = one("global_hidden_layers_short")
    n_hidden = _int(val.split()[0], path, ln, "global_hidden_layers_short")
    val_n, ln_n = one("global_nodes_short")
    nodes = [_int(t, path, ln_n, "number of nodes") for t in val_n.split()]
    val_a, ln_a = one("global_activation_short")
    acts = val_a.split()
    if len(nodes) != n_hidden:
        raise MalformedFileError(f"global_nodes_short lists {len(nodes)} layers, "
                                 f"global_hidden_layers_short says {n_hidden}", path, ln_n)
    if len(acts) != n_hidden + 1:
        raise MalformedFileError(f"global_activation_short needs {n_hidden + 1} letters "
                                 "(hidden layers and output)", path, ln_a)
    hidden = {el: list(nodes) for el in elements}
    activations = {el: list(acts) for el in elements}
    def element_of(key: str, val: str, ln: int) -> tuple[str, list[str]]:
        toks = val.split()
        if len(toks) < 2:
            raise MalformedFileError(f"{key!r} needs an element and values", path, ln)
        el = _element(toks[0], path, ln)
        if el not in hidden:
            raise MalformedFileError(f"{key} for {el}, which is not in 'elements'", path, ln)
        return el, toks

    for val, ln in keywords.get("element_hidden_layers_short", []):
        el, toks = element_of("element_hidden_layers_short", val, ln)
        n = _int(toks[1], path, ln, "number of hidden layers")
        if n != len(hidden[el]):
            hidden[el] = (hidden[el] + [0] * n)[:n]
            activations[el] = (activations[el][:-1] + ["t"] * n)[:n] + [activations[el][-1]]
    for val, ln in keywords.get("element_nodes_short", []):
        el, toks = element_of("element_nodes_short", val, ln)
        vals = [_int(t, path, ln, "number of nodes") for t in toks[1:]]
        if len(vals) != len(hidden[el]):
            raise MalformedFileError(f"element_nodes_short {el}: {len(vals)} widths for "
                                     f"{len(hidden[el])} hidden layers", path, ln)
        hidden[el] = vals
    for val, ln in keywords.get("element_activation_short", []):
        el, toks = element_of("element_activation_short", val, ln)
        if len(toks) - 1 != len(hidden[el]) + 1:
            raise MalformedFileError(f"element_activation_short {el}: need {len(hidden[el]) + 1} letters",
                                     path, ln)
        activations[el] = toks[1:]
    for el in elements:
        for a in activations[el]:
            if a not in ACTIVATION_LETTERS:
                raise MalformedFileError(f"unknown activation {a!r} (n2p2 letters: "
                                         f"{' '.join(ACTIVATION_LETTERS)})", path, ln_a)
        if any(n <= 0 for n in hidden[el]):
            raise MalformedFileError(f"element {el}: hidden-layer widths {hidden[el]} must be > 0", path)
    return hidden, activations


def write_input_nn(path: PathLike, *, elements: Sequence[str], cutoff_type: int, cutoff_alpha: float,
                   symfunction_lines: Sequence[str], hidden: dict[str, Sequence[int]],
                   activations: dict[str, Sequence[str]], scaling_mode: str = "center_scale",
                   scale_min: float = 0.0, scale_max: float = 1.0,
                   atom_energy: dict[str, float] | None = None,
                   normalization: dict[str, float] | None = None,
                   header: str = "written by mdmlkit") -> None:
    """Write an n2p2 ``input.nn`` for a 2G-HDNNP (atomically).

    ``hidden``/``activations`` are per element (activations as n2p2 letters,
    hidden layers then output); they are written as ``global_*`` keywords when
    all elements agree and as additional ``element_*_short`` keywords otherwise.
    """
    if scaling_mode not in SCALING_MODES:
        raise InputError(f"{path}: scaling_mode {scaling_mode!r} not in {sorted(SCALING_MODES)}")
    elements = list(elements)
    ref = elements[0]
    out = [f"# {line}" for line in header.splitlines()]
    out += ["# Units: length Angstrom, energy eV.", "",
            f"number_of_elements {len(elements)}", f"elements {' '.join(elements)}",
            f"cutoff_type {int(cutoff_type)} {cutoff_alpha:.16g}"]
    out += list(SCALING_MODES[scaling_mode])
    if scaling_mode in ("scale", "center_scale", "scale_sigma"):
        out += [f"scale_min_short {scale_min:.16g}", f"scale_max_short {scale_max:.16g}"]
    out += [f"global_hidden_layers_short {len(hidden[ref])}",
            f"global_nodes_short {' '.join(str(int(n)) for n in hidden[ref])}",
            f"global_activation_short {' '.join(activations[ref])}"]
    for el in elements:
        if len(hidden[el]) != len(hidden[ref]):
            out.append(f"element_hidden_layers_short {el} {len(hidden[el])}")
        if list(hidden[el]) != list(hidden[ref]):
            out.append(f"element_nodes_short {el} {' '.join(str(int(n)) for n in hidden[el])}")
        if list(activations[el]) != list(activations[ref]):
            out.append(f"element_activation_short {el} {' '.join(activations[el])}")
    if normalization is not None:
        out += [f"mean_energy {normalization['mean_energy']:.17g}",
                f"conv_energy {normalization['conv_energy']:.17g}",
                f"conv_length {normalization.get('conv_length', 1.0):.17g}",
                f"conv_charge {normalization.get('conv_charge', 1.0):.17g}"]
    for el in elements:
        e0 = 0.0 if atom_energy is None else float(atom_energy.get(el, 0.0))
        out.append(f"atom_energy {el} {e0:.17g}")
    out.append("")
    for line in symfunction_lines:
        line = line.strip()
        out.append(line if line.startswith("symfunction_short") else f"symfunction_short {line}")
    atomic_write_text(path, "\n".join(out) + "\n")


# -----------------------------------------------------------------------------
# scaling.data
# -----------------------------------------------------------------------------


def read_scaling_data(path: PathLike, elements: Sequence[str] | None = None,
                      n_features: dict[str, int] | None = None) -> dict[Any, dict[str, np.ndarray]]:
    """Read n2p2 symmetry-function statistics (``scaling.data``).

    Parameters
    ----------
    path : path
        The file: lines ``e_index sf_index Gmin Gmax Gmean [Gsigma]`` ('#' lines skipped).
    elements : sequence of str, optional
        The model's elements (any order).  Element index k (1-based) of the file
        is the k-th element in n2p2 order (ascending atomic number).  Without
        ``elements`` the result is keyed by the integer index.
    n_features : dict, optional
        Expected number of functions per element; a mismatch raises
        :class:`ModelMismatchError`.

    Returns
    -------
    dict
        element (or index) -> ``{"Gmin", "Gmax", "Gmean", "Gsigma"}`` arrays in
        the file's (n2p2-sorted) function order; ``Gsigma`` is NaN where the file
        lacks the column (old n2p2 versions).

    Raises
    ------
    MalformedFileError
        With the path and line: a line that does not parse, an index out of
        sequence, ``Gmin > Gmax`` or a negative ``Gsigma``.
    ModelMismatchError
        Element or function counts that disagree with ``elements``/``n_features``.
    """
    path = Path(path)
    rows: dict[int, list[tuple[int, list[float], int]]] = {}
    with open(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            toks = line.split()
            if len(toks) not in (5, 6):
                raise MalformedFileError(f"expected 5 or 6 columns, got {len(toks)}", str(path), lineno)
            e = _int(toks[0], path, lineno, "element index")
            s = _int(toks[1], path, lineno, "function index")
            vals = [_float(t, path, lineno, "statistic") for t in toks[2:]]
            if vals[0] > vals[1]:
                raise MalformedFileError(f"element {e}, function {s}: Gmin {toks[2]} > Gmax {toks[3]} "
                                         "(columns swapped?)", str(path), lineno)
            if len(vals) == 4 and vals[3] < 0:
                raise MalformedFileError(f"element {e}, function {s}: negative Gsigma {toks[5]}",
                                         str(path), lineno)
            if len(vals) == 3:
                vals.append(float("nan"))
            group = rows.setdefault(e, [])
            if s != len(group) + 1:
                raise MalformedFileError(f"element {e}: function index {s} out of sequence "
                                         f"(expected {len(group) + 1})", str(path), lineno)
            group.append((s, vals, lineno))
    if not rows:
        raise MalformedFileError("no scaling data", str(path))
    if sorted(rows) != list(range(1, len(rows) + 1)):
        raise MalformedFileError(f"element indices {sorted(rows)} are not 1..{len(rows)}", str(path))
    out: dict[Any, dict[str, np.ndarray]] = {}
    order = None
    if elements is not None:
        order = n2p2_element_order(elements)
        if len(order) != len(rows):
            raise ModelMismatchError(f"{path}: statistics for {len(rows)} elements, model has "
                                     f"{len(order)} ({' '.join(elements)})")
    for e, group in sorted(rows.items()):
        arr = np.array([v for _, v, _ in group], dtype=np.float64)
        key = e if order is None else order[e - 1]
        out[key] = {"Gmin": arr[:, 0], "Gmax": arr[:, 1], "Gmean": arr[:, 2], "Gsigma": arr[:, 3]}
        if n_features is not None and key in n_features and n_features[key] != len(group):
            raise ModelMismatchError(f"{path}: element {key} (index {e}) has {len(group)} functions in "
                                     f"the scaling data but {n_features[key]} in the model")
    return out


def write_scaling_data(path: PathLike, stats: dict[str, dict[str, np.ndarray]]) -> None:
    """Write ``scaling.data`` (atomically) from ``element -> {Gmin, Gmax, Gmean, Gsigma}``,
    elements in n2p2 order (ascending atomic number)."""
    bar = "#" * 121
    lines = ["#" * 80, "# Symmetry function scaling data.", "#" * 80,
             "# Col  Name     Description", "#" * 80,
             "# 1    e_index  Element index.", "# 2    sf_index Symmetry function index.",
             "# 3    sf_min   Symmetry function minimum.", "# 4    sf_max   Symmetry function maximum.",
             "# 5    sf_mean  Symmetry function mean.", "# 6    sf_sigma Symmetry function sigma.",
             bar,
             "#        1          2                        3                        4"
             "                        5                        6",
             "#  e_index   sf_index                   sf_min                   sf_max"
             "                  sf_mean                 sf_sigma",
             bar]
    for e, el in enumerate(n2p2_element_order(stats), start=1):
        s = stats[el]
        cols = [np.asarray(s[k], dtype=np.float64) for k in ("Gmin", "Gmax", "Gmean", "Gsigma")]
        for i in range(cols[0].size):
            lines.append(f"{e:10d} {i + 1:10d} " + " ".join(_fmt(c[i]) for c in cols))
    atomic_write_text(path, "\n".join(lines) + "\n")


# -----------------------------------------------------------------------------
# weights
# -----------------------------------------------------------------------------


def read_weights(path: PathLike) -> np.ndarray:
    """Connections (weights and biases) of one element network: the first column
    of every non-comment line of an n2p2 weights file, in file order."""
    path = Path(path)
    vals = []
    with open(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            vals.append(_float(line.split()[0], path, lineno, "connection"))
    if not vals:
        raise MalformedFileError("no connection values", str(path))
    return np.array(vals, dtype=np.float64)


def write_weights(path: PathLike, values: np.ndarray, layer_sizes: Sequence[int]) -> None:
    """Write an n2p2 weights file (atomically) with n2p2's header and columns
    ``connection t index l_s n_s l_e n_e`` (``t``: a = weight, b = bias).

    ``layer_sizes`` are the widths input, hidden..., output; ``values`` must be
    in n2p2 order (see the module docstring).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    n_expected = sum(a * b + b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))
    if values.size != n_expected:
        raise ModelMismatchError(f"{path}: {values.size} connections for layers {list(layer_sizes)}, "
                                 f"need {n_expected}")
    cols = ["#" * 80, "# Neural network connection values (weights and biases).", "#" * 80,
            "# Col  Name       Description", "#" * 80,
            "# 1    connection Neural network connection value.",
            "# 2    t          Connection type (a = weight, b = bias).",
            "# 3    index      Index enumerating weights.",
            "# 4    l_s        Starting point layer (end point layer for biases).",
            "# 5    n_s        Starting point neuron in starting layer (end point neuron for biases).",
            "# 6    l_e        End point layer.",
            "# 7    n_e        End point neuron in end layer.",
            "#" * 80,
            "#                      1 2         3     4     5     6     7",
            "#             connection t     index   l_s   n_s   l_e   n_e",
            "#" * 80]
    count = 0
    for layer in range(1, len(layer_sizes)):
        for j in range(layer_sizes[layer - 1]):
            for k in range(layer_sizes[layer]):
                cols.append(f"{values[count]:24.16E} a {count + 1:9d} {layer - 1:5d} {j + 1:5d} "
                            f"{layer:5d} {k + 1:5d}")
                count += 1
        for j in range(layer_sizes[layer]):
            cols.append(f"{values[count]:24.16E} b {count + 1:9d} {layer:5d} {j + 1:5d}")
            count += 1
    atomic_write_text(path, "\n".join(cols) + "\n")
