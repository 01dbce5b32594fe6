"""Bad input through the public API: every path raises a class from ``mdmlkit.errors``
that names what is wrong and where (file, line, frame, element).

Plus two static rules: exception classes are defined only in ``mdmlkit/errors.py``, and
the package raises no bare ``ValueError``/``KeyError``/``RuntimeError`` for bad input.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import mdmlkit
from mdmlkit import errors as E

PACKAGE_DIR = Path(mdmlkit.__file__).resolve().parent
REPO = PACKAGE_DIR.parent
MODEL_DIR = REPO / "models" / "la2zr2o7"


def _cu13() -> Atoms:
    from ase.cluster import Icosahedron

    atoms = Icosahedron("Cu", 2)
    atoms.center(vacuum=6.0)
    return atoms


def _la_cell() -> Atoms:
    from mdmlkit.systems import primitive_cell

    return primitive_cell()


@pytest.fixture(scope="module")
def model():
    from mdmlkit.potential import load_n2p2_model

    return load_n2p2_model(MODEL_DIR)


# ----------------------------------------------------------------------------- files


def test_missing_trajectory_names_the_path(tmp_path):
    from mdmlkit.md import read_trajectory

    path = tmp_path / "nothing.extxyz"
    with pytest.raises(E.MissingFileError, match="nothing.extxyz"):
        read_trajectory(path)


def test_malformed_trajectory_names_the_file(tmp_path):
    from mdmlkit.md import read_trajectory

    path = tmp_path / "broken.extxyz"
    path.write_text("3\nProperties=species:S:1:pos:R:3\nCu 0 0 0\nCu 1 1\n")
    with pytest.raises(E.MalformedFileError, match="broken.extxyz"):
        read_trajectory(path)


def test_empty_trajectory(tmp_path):
    from mdmlkit.md import read_trajectory

    path = tmp_path / "empty.extxyz"
    path.write_text("")
    with pytest.raises(E.EmptyTrajectoryError, match="empty.extxyz"):
        read_trajectory(path)


def test_malformed_input_nn_names_file_and_line(tmp_path):
    from mdmlkit.descriptors import SymmetryFunctionSet

    text = (MODEL_DIR / "input.nn").read_text().splitlines()
    for i, line in enumerate(text):
        if line.startswith("symfunction_short"):
            text[i] = "symfunction_short La 2 Zr not-a-number 0.0 6.0"
            bad_line = i + 1
            break
    path = tmp_path / "input.nn"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(E.MalformedFileError, match=rf"input.nn.*line {bad_line}") as info:
        SymmetryFunctionSet.from_input_nn(path)
    assert info.value.line == bad_line


def test_malformed_input_data_names_file_and_line(tmp_path):
    from mdmlkit.io import read_input_data

    path = tmp_path / "input.data"
    path.write_text("begin\natom 0.0 0.0 zero La 0 0 0 0 0\nenergy 1.0\nend\n")
    with pytest.raises(E.MalformedFileError, match="input.data.*line 2"):
        read_input_data(path)


def test_model_directory_without_weights(tmp_path):
    import shutil

    from mdmlkit.potential import load_n2p2_model

    for name in ("input.nn", "scaling.data"):
        shutil.copy(MODEL_DIR / name, tmp_path / name)
    with pytest.raises(E.MissingFileError, match=r"weights\.0[0-9]{2}\.data"):
        load_n2p2_model(tmp_path)


def test_unknown_data_split():
    from mdmlkit.systems import load_la2zr2o7

    with pytest.raises(E.InputError, match="bogus"):
        load_la2zr2o7("bogus")


# ----------------------------------------------------------------------------- structures


def test_unknown_element_in_a_batch():
    from mdmlkit.descriptors import AtomsBatch

    frames = [_la_cell(), bulk("Au", "fcc", a=4.08)]
    with pytest.raises(E.UnknownElementError, match="Au") as info:
        AtomsBatch.from_atoms(frames, elements=["La", "Zr", "O"], cutoff=6.0)
    assert "1" in str(info.value)  # the structure index


def test_nan_positions_name_the_structure():
    from mdmlkit.descriptors import AtomsBatch

    bad = _la_cell()
    bad.positions[3] = np.nan
    with pytest.raises(E.NonFiniteError, match="structure 1"):
        AtomsBatch.from_atoms([_la_cell(), bad], elements=["La", "Zr", "O"], cutoff=6.0)


def test_atoms_too_close_name_the_atoms():
    from mdmlkit.descriptors import AtomsBatch

    bad = _la_cell()
    bad.positions[1] = bad.positions[0] + [0.1, 0.0, 0.0]
    with pytest.raises(E.AtomsTooCloseError, match="0.*1|1.*0"):
        AtomsBatch.from_atoms([bad], elements=["La", "Zr", "O"], cutoff=6.0)


def test_calculator_refuses_foreign_elements(model):
    from mdmlkit.potential import HDNNPCalculator

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = HDNNPCalculator(model)
    with pytest.raises(E.UnknownElementError, match="Cu"):
        atoms.get_potential_energy()


def test_calculator_refuses_unknown_mode(model):
    from mdmlkit.potential import HDNNPCalculator

    with pytest.raises(E.InputError, match="bogus"):
        HDNNPCalculator(model, extrapolation="bogus")


def test_evaluate_needs_labels(model):
    from mdmlkit.potential import evaluate

    with pytest.raises(E.MissingLabelError, match="energy"):
        evaluate(model, [_la_cell()])


def test_fingerprints_of_no_frames():
    from mdmlkit.landscape import CoulombMatrixEigenvalues

    with pytest.raises(E.EmptyTrajectoryError):
        CoulombMatrixEigenvalues().fit_transform([])


def test_landscape_map_refuses_nan_features():
    from mdmlkit.landscape import LandscapeMap

    X = np.random.default_rng(0).normal(size=(200, 4))
    X[17, 2] = np.nan
    with pytest.raises(E.NonFiniteError, match="17"):
        LandscapeMap(embedding="pca").fit(X)


def test_quench_of_no_frames():
    from mdmlkit.landscape import quench

    with pytest.raises(E.EmptyTrajectoryError):
        quench([], progress=False)


def test_quench_refuses_foreign_elements():
    from mdmlkit.landscape import quench

    atoms = _cu13()
    atoms[0].symbol = "Au"
    with pytest.raises(E.UnknownElementError, match="Au"):
        quench([atoms], progress=False)


def test_unknown_md_ensemble():
    from mdmlkit.md import run_md
    from mdmlkit.systems import cu_calculator

    with pytest.raises(E.InputError, match="bogus"):
        run_md(_cu13(), cu_calculator("asap3"), ensemble="bogus", steps=2, progress=False)


def test_cluster_of_no_atoms():
    from mdmlkit.systems import make_cluster

    with pytest.raises(E.InputError):
        make_cluster(0)


def test_unknown_query_name():
    from mdmlkit.active import make_query

    with pytest.raises(E.InputError, match="bogus"):
        make_query("bogus")


def test_query_used_before_fit():
    from mdmlkit.active import RandomQuery

    with pytest.raises(E.NotFittedError):
        RandomQuery().score([_la_cell()])


# ----------------------------------------------------------------------------- static rules

_EXCEPTION_BASES = re.compile(r"(Error|Exception|Warning)$")


def test_exception_classes_live_in_errors_module():
    offences = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE_DIR:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(_EXCEPTION_BASES.search(b.split(".")[-1]) for b in bases):
                    offences.append(f"{path.relative_to(REPO)}:{node.lineno} class {node.name}")
    assert not offences, "define exception classes in mdmlkit/errors.py:\n" + "\n".join(offences)


#: builtin exceptions that are not bad-input errors, allowed where Python's protocols want them
_ALLOWED = {
    ("mdmlkit/utils.py", "TypeError"),                   # json.dumps default= protocol
    ("mdmlkit/active/features.py", "IndexError"),        # sequence protocol
    ("mdmlkit/active/pool.py", "IndexError"),            # sequence protocol
    ("mdmlkit/descriptors/symfunc.py", "IndexError"),    # sequence protocol
    ("mdmlkit/nbtools/nglview_fix.py", "RuntimeError"),  # broken third-party installation
    ("mdmlkit/systems/pyrochlore.py", "RuntimeError"),   # internal invariant, not input
}


def test_no_bare_builtin_errors_for_bad_input():
    offences = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = ast.unparse(node.exc.func)
                if name in {"ValueError", "KeyError", "RuntimeError", "TypeError", "IndexError",
                            "FileNotFoundError", "OSError", "IOError"} and (rel, name) not in _ALLOWED:
                    offences.append(f"{rel}:{node.lineno} raise {name}")
    assert not offences, "raise a class from mdmlkit.errors instead:\n" + "\n".join(offences)


def test_every_input_error_is_a_value_error():
    """``except ValueError`` keeps working for all bad-input errors."""
    for name in dir(E):
        obj = getattr(E, name)
        if isinstance(obj, type) and issubclass(obj, E.InputError):
            assert issubclass(obj, ValueError), name


# ----------------------------------------------------------------------------- issue 20: cells, small cases


@pytest.mark.parametrize("length", [0.01, 1e-6])
def test_tiny_cell_vector_is_refused_at_once(model, length):
    """A periodic cell vector of 0.01 Å (or 1e-6 Å) used to pass the rank check and hang in the
    neighbour list; it is refused before any neighbour search, through every entry point."""
    import time

    from mdmlkit.descriptors import AtomsBatch, neighbor_list
    from mdmlkit.potential import HDNNPCalculator

    atoms = Atoms("La2", positions=[[0, 0, 0], [2.0, 2.0, 0.0]],
                  cell=[[5, 0, 0], [0, 5, 0], [0, 0, length]], pbc=True)
    t0 = time.perf_counter()
    with pytest.raises(E.DegenerateCellError, match=r"structure 0: periodic cell vector 2 .* less than"):
        AtomsBatch.from_atoms([atoms], elements=["La", "Zr", "O"], cutoff=6.0)
    with pytest.raises(E.DegenerateCellError, match="vector 2"):
        neighbor_list(atoms.positions, atoms.cell.array, True, 6.0)
    for compile in (False, "numba"):
        atoms.calc = HDNNPCalculator(model, device="cpu", compile=compile)
        with pytest.raises(E.DegenerateCellError):
            atoms.get_forces()
    assert time.perf_counter() - t0 < 30


def test_flat_and_ill_conditioned_cells_are_refused():
    from mdmlkit.descriptors.neighbors import MAX_PERIODIC_IMAGES, check_cell

    # long vectors, but the third almost in the plane of the first two: 0.01 Å high
    flat = np.array([[5.0, 0, 0], [0, 5.0, 0], [3.0, 4.0, 0.01]])
    with pytest.raises(E.DegenerateCellError, match="0.01 Å high along vector 2"):
        check_cell(flat, True, 6.0, where="structure 4")
    with pytest.raises(E.DegenerateCellError, match="structure 4"):
        check_cell(flat, True, where="structure 4")
    # non-periodic directions are not checked (zero rows are fine there)
    slab = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 0]])
    assert np.isinf(check_cell(slab, [True, True, False], 6.0)[2])
    # a valid but tiny cell with a long cutoff: too many images -> refused, not a long hang
    with pytest.raises(E.DegenerateCellError, match=f"limit {MAX_PERIODIC_IMAGES}"):
        check_cell(np.eye(3) * 0.6, True, 30.0)
    # an ordinary primitive cell passes and gives its heights
    h = check_cell(_la_cell().cell.array, True, 6.0)
    assert np.all(h > 5.0)


def test_empty_input_data_names_the_file(tmp_path):
    from mdmlkit.io import read_input_data, write_input_data

    path = tmp_path / "input.data"
    path.write_text("")
    with pytest.raises(E.EmptyTrajectoryError, match="input.data: no structures"):
        read_input_data(path)
    path.write_text("# only a comment\n\n")
    with pytest.raises(E.EmptyTrajectoryError, match="input.data"):
        read_input_data(path)
    with pytest.raises(E.EmptyTrajectoryError, match="x.data"):
        write_input_data([], tmp_path / "x.data")
    with pytest.raises(E.MissingFileError, match="nothing.data"):
        read_input_data(tmp_path / "nothing.data")


def _model_copy(tmp_path):
    import shutil

    out = tmp_path / "model"
    shutil.copytree(MODEL_DIR, out)
    return out


def test_scaling_data_with_swapped_gmin_gmax_names_file_and_line(tmp_path):
    from mdmlkit.potential import load_n2p2_model

    d = _model_copy(tmp_path)
    lines = (d / "scaling.data").read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#"))
    t = lines[k].split()
    t[2], t[3] = t[3], t[2]
    lines[k] = " ".join(t)
    (d / "scaling.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(E.MalformedFileError, match=rf"scaling.data, line {k + 1}: .*Gmin .* > Gmax") as info:
        load_n2p2_model(d)
    assert info.value.line == k + 1


@pytest.mark.parametrize("extra, match", [
    ("element_nodes_short Au 10 10", r"input.nn, line {n}: element_nodes_short for Au, which is not in 'elements'"),
    ("element_hidden_layers_short O", r"input.nn, line {n}: 'element_hidden_layers_short' needs an element"),
    ("element_nodes_short O", r"input.nn, line {n}: 'element_nodes_short' needs an element"),
])
def test_bad_per_element_topology_names_keyword_element_and_line(tmp_path, extra, match):
    from mdmlkit.potential import load_n2p2_model

    d = _model_copy(tmp_path)
    text = (d / "input.nn").read_text().rstrip("\n") + "\n"
    n = text.count("\n") + 1
    (d / "input.nn").write_text(text + extra + "\n")
    with pytest.raises(E.MalformedFileError, match=match.format(n=n)):
        load_n2p2_model(d)


def test_structure_without_atoms_is_refused(model):
    from mdmlkit.descriptors import AtomsBatch
    from mdmlkit.potential import HDNNPCalculator, evaluate

    for atoms in (Atoms(), Atoms(cell=np.eye(3) * 10, pbc=True)):
        atoms.calc = HDNNPCalculator(model, device="cpu")
        with pytest.raises(E.EmptyTrajectoryError, match="no atoms"):
            atoms.get_forces()
    with pytest.raises(E.EmptyTrajectoryError, match="structure 1 has no atoms"):
        AtomsBatch.from_atoms([_la_cell(), Atoms()], elements=["La", "Zr", "O"], cutoff=6.0)
    empty = Atoms()
    empty.info["energy"] = 0.0
    with pytest.raises(E.EmptyTrajectoryError, match="no atoms"):
        evaluate(model, [empty])
