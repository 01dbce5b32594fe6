"""Symmetry-function definitions: n2p2 input.nn parsing/writing and n2p2 sorted order."""
from __future__ import annotations

import re

import pytest

from mdmlkit.descriptors import SymmetryFunction, SymmetryFunctionSet, generate_set, parse_symfunction_line
from mdmlkit.errors import MalformedFileError, UnknownElementError

HEADER = "number_of_elements 3\nelements La Zr O\ncutoff_type 6 0.1\n"


def _scaling_log_table(path):
    """(element, sorted index (1-based), input.nn line) rows of nnp-scaling.log."""
    rows = []
    pat = re.compile(r"^\s*(\d+)\s+([A-Z][a-z]?)\s+(\d+)\s+ct\d+\s.*\s(\d+)\s*$")
    for line in path.read_text().splitlines():
        m = pat.match(line)
        if m:
            rows.append((m.group(2), int(m.group(1)), int(m.group(4))))
    return rows


def test_sorted_order_matches_n2p2_scaling_log(n2p2_ref):
    sfs = SymmetryFunctionSet.from_input_nn(n2p2_ref / "input.nn")
    rows = _scaling_log_table(n2p2_ref / "nnp-scaling.log.0000")
    assert len(rows) == sum(sfs.n_features.values()) == 180
    for el, ind, ln in rows:
        assert sfs.functions[el][ind - 1].line == ln, (el, ind, ln)
    # and the line really is the function's source line
    lines = (n2p2_ref / "input.nn").read_text().splitlines()
    for el, ind, ln in rows[:: 7]:
        f = sfs.functions[el][ind - 1]
        assert parse_symfunction_line(lines[ln - 1], sfs.elements, 6, 0.1) == f


def test_reference_set_contents(n2p2_ref):
    sfs = SymmetryFunctionSet.from_input_nn(n2p2_ref / "input.nn")
    assert sfs.elements == ["La", "Zr", "O"]
    assert (sfs.cutoff_type, sfs.alpha, sfs.cutoff) == (6, 0.1, 6.0)
    assert sfs.n_features == {"La": 60, "Zr": 60, "O": 60}
    assert "SymmetryFunctionSet" in repr(sfs) and "poly2" in repr(sfs)


def test_roundtrip_write_parse(n2p2_ref, tmp_path):
    sfs = SymmetryFunctionSet.from_input_nn(n2p2_ref / "input.nn")
    lines = sfs.to_input_nn_lines()
    assert all(line.startswith("symfunction_short ") for line in lines)
    again = SymmetryFunctionSet.from_lines(lines, sfs.elements, sfs.cutoff_type, sfs.alpha)
    assert again == sfs
    p = tmp_path / "input.nn"
    p.write_text("\n".join(sfs.to_input_nn_lines(header=True)) + "\n")
    assert SymmetryFunctionSet.from_input_nn(p) == sfs
    assert SymmetryFunctionSet.from_input_nn(p).to_input_nn_lines() == lines


def test_line_formats_and_e1_e2_normalised():
    f = parse_symfunction_line("symfunction_short O 3 La O 0.02 -1 1.5 6 0.5", ["La", "Zr", "O"])
    # n2p2 stores e1 <= e2 by atomic number
    assert (f.central, f.type, f.e1, f.e2) == ("O", 3, "O", "La")
    assert (f.eta, f.lambda_, f.zeta, f.rc, f.rs) == (0.02, -1.0, 1.5, 6.0, 0.5)
    assert f.to_line() == "symfunction_short O 3 O La 0.02 -1 1.5 6 0.5"
    g = parse_symfunction_line("O 9 O La 0.02 -1 1.5 6", ["La", "Zr", "O"])   # rs optional
    assert g.rs == 0.0 and g.type == 9
    r = parse_symfunction_line("symfunction_short Zr 2 O 0.3 3.5 6  # comment", ["La", "Zr", "O"])
    assert (r.central, r.e1, r.e2, r.eta, r.rs, r.rc) == ("Zr", "O", None, 0.3, 3.5, 6.0)
    assert r.to_line() == "symfunction_short Zr 2 O 0.3 3.5 6"


def test_sort_key_order():
    def mk(**kw):
        return SymmetryFunction(**{"central": "O", "type": 3, "e1": "O", "e2": "O",
                                   "eta": 0.1, "zeta": 1, "lambda_": 1, **kw})
    # type, cutoff type/alpha (global), rc, eta, rs, zeta, lambda, Z(e1), Z(e2)
    ordered = [SymmetryFunction("O", 2, "La", eta=5.0), mk(rc=5.0), mk(eta=0.05),
               mk(zeta=2.0, lambda_=-1), mk(zeta=2.0, lambda_=1), mk(zeta=2.0, e2="Zr"),
               mk(zeta=2.0, e1="Zr", e2="Zr"), mk(zeta=4.0, lambda_=-1), mk(rs=1.0),
               SymmetryFunction("O", 9, "O", "O", eta=0.0, zeta=1)]
    s = SymmetryFunctionSet(["O", "Zr", "La"], list(reversed(ordered)))
    assert s.functions["O"] == ordered


@pytest.mark.parametrize("line,where", [
    ("symfunction_short O 2 O 0.5 0", "needs 6"),
    ("symfunction_short O 3 O O 0.5 1 1", "needs 8 or 9"),
    ("symfunction_short O 2 O 0.5 abc 6", "non-numeric"),
    ("symfunction_short O 12 O 0.5 0 6", "not supported"),
    ("symfunction_short O x O 0.5 0 6", "not an integer"),
    ("symfunction_short O 2 O -0.5 0 6", "eta"),
    ("symfunction_short O 3 O O 0.5 1 0 6", "zeta"),
    ("symfunction_short O 2 O 0.5 0 nan", "non-finite"),
])
def test_malformed_lines_name_path_and_line(tmp_path, line, where):
    p = tmp_path / "input.nn"
    p.write_text(HEADER + "symfunction_short O 2 O 0.5 0 6\n" + line + "\n")
    with pytest.raises(MalformedFileError) as exc:
        SymmetryFunctionSet.from_input_nn(p)
    assert exc.value.path == str(p) and exc.value.line == 5
    assert str(p) in str(exc.value) and "line 5" in str(exc.value) and where in str(exc.value)


def test_unknown_element_in_symfunction(tmp_path):
    p = tmp_path / "input.nn"
    p.write_text(HEADER + "symfunction_short O 3 O Cu 0.5 1 1 6\n")
    with pytest.raises(UnknownElementError, match=r"line 4.*'Cu'"):
        SymmetryFunctionSet.from_input_nn(p)


@pytest.mark.parametrize("text,exc,msg", [
    ("number_of_elements 2\nelements La Zr O\ncutoff_type 6\n", MalformedFileError,
     "number_of_elements 2"),
    ("cutoff_type 6\n", MalformedFileError, "no 'elements'"),
    ("elements La Zr O\n", MalformedFileError, "cutoff_type"),
    ("elements La Zr O\ncutoff_type 6 1.0\n", MalformedFileError, "alpha"),
    ("elements La Zr O\ncutoff_type 11\n", MalformedFileError, "unknown cutoff type"),
    ("elements La Xy O\ncutoff_type 6\n", UnknownElementError, "Xy"),
])
def test_bad_global_keywords(tmp_path, text, exc, msg):
    p = tmp_path / "input.nn"
    p.write_text(text + "symfunction_short O 2 O 0.5 0 6\n")
    with pytest.raises(exc, match=msg):
        SymmetryFunctionSet.from_input_nn(p)


def test_no_symfunctions_is_an_error(tmp_path):
    p = tmp_path / "input.nn"
    p.write_text(HEADER)
    with pytest.raises(MalformedFileError, match="no 'symfunction_short'"):
        SymmetryFunctionSet.from_input_nn(p)


def test_subset_keeps_order_and_global_cutoff():
    sfs = generate_set(["Zr", "O"], rc=5.0, n_radial=3, n_angular=1,
                                       cutoff_type=1, alpha=0.2)
    sub = sfs.subset({"O": [5, 0, 2]})
    assert sub.functions["O"] == [sfs.functions["O"][i] for i in (0, 2, 5)]
    assert sub.functions["Zr"] == sfs.functions["Zr"]
    assert (sub.cutoff_type, sub.alpha) == (1, 0.2)
    with pytest.raises(IndexError):
        sfs.subset({"O": [999]})
