"""n2p2 file interoperability: input.data, input.nn, scaling.data, weights, whole models.

The reference is an n2p2 v2.3 ``nnp-dataset`` run (``../shared/reference/n2p2/
la-zr-o-random``): its ``output.data`` holds n2p2's own energies and forces for
the three structures of ``input.data`` with the model in that directory.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.descriptors import AtomsBatch
from mdmlkit.errors import MalformedFileError, ModelMismatchError
from mdmlkit.io.n2p2 import (
    n2p2_element_order,
    read_input_data,
    read_input_nn,
    read_scaling_data,
    read_weights,
    weights_filename,
    write_input_data,
    write_scaling_data,
    write_weights,
)
from mdmlkit.potential import HDNNP, load_n2p2_model, save_n2p2_model


@pytest.fixture(scope="module")
def ref_model(n2p2_ref):
    return load_n2p2_model(n2p2_ref)


@pytest.fixture(scope="module")
def ref_frames(n2p2_ref):
    return read_input_data(n2p2_ref / "input.data")


@pytest.fixture(scope="module")
def ref_pred(ref_model, ref_frames):
    """(energies [S], forces [N, 3]) of the reference model on input.data."""
    return _predict(ref_model, ref_frames)


def _predict(model, frames):
    batch = AtomsBatch.from_atoms(frames, model.elements, model.cutoff, device="cpu", dtype=model.dtype)
    e, f = model.energy_and_forces(batch)
    return e.detach().numpy(), f.detach().numpy()


def _reference_output(n2p2_ref):
    out = read_input_data(n2p2_ref / "output.data")
    return (np.array([a.get_potential_energy() for a in out]),
            np.concatenate([a.get_forces() for a in out]))


# ----------------------------------------------------------------------------- input.data


def test_read_input_data_reference(n2p2_ref, ref_frames):
    frames = ref_frames
    assert [len(a) for a in frames] == [22, 44, 15]
    assert [bool(a.pbc.all()) for a in frames] == [True, True, False]
    assert not frames[2].pbc.any()
    np.testing.assert_allclose(frames[0].cell[1], [1.3, 6.8, 0.0])
    assert frames[0].get_chemical_symbols()[:3] == ["La", "O", "O"]
    assert frames[0].info["comment"] == "random test structure 0"
    assert frames[0].get_potential_energy() == pytest.approx(-493.7371880493964795, abs=1e-12)
    np.testing.assert_allclose(frames[0].get_forces()[0],
                               [1.0680774398324595, 0.3320386078520851, -0.8021701501599596])
    assert frames[0].info["charge"] == 0.0


def test_input_data_unit_conversion(n2p2_ref, ref_frames):
    conv = read_input_data(n2p2_ref / "input.data", length_unit=0.5, energy_unit=2.0)
    a, b = ref_frames[0], conv[0]
    np.testing.assert_allclose(b.positions, 0.5 * a.positions)
    np.testing.assert_allclose(b.cell[:], 0.5 * a.cell[:])
    assert b.get_potential_energy() == pytest.approx(2.0 * a.get_potential_energy())
    np.testing.assert_allclose(b.get_forces(), 4.0 * a.get_forces())


def test_input_data_round_trip(tmp_path, ref_frames):
    extra = Atoms("OZr", positions=[[0, 0, 0], [1.9, 0.1, 0.2]], pbc=False)
    extra.set_initial_charges([-0.5, 0.5])
    extra.info.update(comment="dimer  with   spaces", charge=0.0)
    extra.calc = SinglePointCalculator(extra, energy=-3.25, forces=[[1, 2, 3], [-1, -2, -3]])
    frames = list(ref_frames) + [extra]
    path = tmp_path / "input.data"
    write_input_data(frames, path)
    back = read_input_data(path)
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_array_equal(a.positions, b.positions)      # %.16E round-trips exactly
        np.testing.assert_array_equal(a.cell[:], b.cell[:])
        assert list(a.pbc) == list(b.pbc)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        np.testing.assert_array_equal(a.get_initial_charges(), b.get_initial_charges())
    assert back[-1].info["comment"] == "dimer with spaces"
    assert not list(tmp_path.glob(".*part*")), "temporary file left behind"


def test_write_input_data_rejects_partial_pbc(tmp_path):
    a = Atoms("O", cell=[3, 3, 3], pbc=[True, True, False])
    with pytest.raises(ValueError, match="pbc"):
        write_input_data([a], tmp_path / "x.data")


@pytest.mark.parametrize("text, line, match", [
    ("begin\natom 0 0 0 O 0 0 0 0\nend\n", 2, "9 fields"),
    ("begin\natom 0 0 0 Xx 0 0 0 0 0\nend\n", 2, "unknown element"),
    ("begin\natom 0 0 zero O 0 0 0 0 0\nend\n", 2, "position"),
    ("begin\nlattice 1 0 0\nlattice 0 1 0\natom 0 0 0 O 0 0 0 0 0\nend\n", 5, "lattice"),
    ("begin\natom 0 0 0 O 0 0 0 0 0\nbegin\n", 3, "missing 'end'"),
    ("atom 0 0 0 O 0 0 0 0 0\n", 1, "outside"),
    ("begin\natom 0 0 0 O 0 0 0 0 0\nenergy 1 2\nend\n", 3, "energy"),
    ("begin\natom 0 0 0 O 0 0 0 0 0\nfoo 1\nend\n", 3, "unknown keyword"),
    ("begin\natom 0 0 0 O 0 0 nan 0 0\nend\n", 2, "non-finite"),
])
def test_malformed_input_data(tmp_path, text, line, match):
    path = tmp_path / "input.data"
    path.write_text(text)
    with pytest.raises(MalformedFileError, match=match) as info:
        read_input_data(path)
    assert info.value.line == line
    assert str(path) in str(info.value)


def test_missing_end_is_reported(tmp_path):
    path = tmp_path / "input.data"
    path.write_text("begin\natom 0 0 0 O 0 0 0 0 0\n")
    with pytest.raises(MalformedFileError, match="no 'end'"):
        read_input_data(path)


# ----------------------------------------------------------------------------- input.nn


def test_read_input_nn_reference(n2p2_ref):
    s = read_input_nn(n2p2_ref / "input.nn")
    assert s["elements"] == ["La", "Zr", "O"]
    assert (s["cutoff_type"], s["cutoff_alpha"]) == (6, 0.1)
    assert s["scaling_mode"] == "center_scale"
    assert (s["scale_min"], s["scale_max"]) == (0.0, 1.0)
    assert s["hidden"] == {el: [8, 6] for el in ("La", "Zr", "O")}
    assert s["activations"]["O"] == ["t", "t", "l"]
    assert s["atom_energy"] == {"La": -5.0, "Zr": -7.0, "O": -2.5}
    assert s["normalization"] is None and not s["normalize_nodes"]
    assert len(s["symfunction_lines"]) == 180
    assert s["symfunction_lines"][0] == "symfunction_short O 2 O 0.5 0 6"


def _edit(src: Path, dst: Path, replace: dict[str, str] | None = None, append: str = "") -> Path:
    text = src.read_text()
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    dst.write_text(text + append)
    return dst


@pytest.mark.parametrize("replace, match", [
    ({"global_nodes_short 8 6": "global_nodes_short 8"}, "global_nodes_short"),
    ({"global_activation_short t t l": "global_activation_short t x l"}, "unknown activation"),
    ({"global_activation_short t t l": "global_activation_short t t"}, "letters"),
    ({"number_of_elements 3": "number_of_elements 2"}, "number_of_elements"),
    ({"atom_energy O -2.5": "atom_energy Cu -2.5"}, "not in 'elements'"),
    ({"atom_energy O -2.5": "atom_energy O minus"}, "atom energy"),
    ({"cutoff_type 6 0.1": "cutoff_type 6 1.5"}, "alpha"),
])
def test_malformed_input_nn(tmp_path, n2p2_ref, replace, match):
    path = _edit(n2p2_ref / "input.nn", tmp_path / "input.nn", replace)
    with pytest.raises(MalformedFileError, match=match) as info:
        read_input_nn(path)
    assert str(path) in str(info.value)


def test_input_nn_error_names_line(tmp_path, n2p2_ref):
    path = _edit(n2p2_ref / "input.nn", tmp_path / "input.nn", {"global_nodes_short 8 6": "global_nodes_short 8 six"})
    with pytest.raises(MalformedFileError) as info:
        read_input_nn(path)
    lines = path.read_text().splitlines()
    assert lines[info.value.line - 1].startswith("global_nodes_short")


def test_partial_normalisation_rejected(tmp_path, n2p2_ref):
    path = _edit(n2p2_ref / "input.nn", tmp_path / "input.nn", append="mean_energy 1.0\n")
    with pytest.raises(MalformedFileError, match="normalisation"):
        read_input_nn(path)


# ----------------------------------------------------------------------------- scaling.data


def _function_data(path: Path) -> list[tuple[int, np.ndarray]]:
    """(Z, G) of every atom in n2p2's function.data (independent parser)."""
    rows, lines = [], path.read_text().split("\n")
    k = 0
    while k < len(lines):
        if not lines[k].strip():
            k += 1
            continue
        n = int(lines[k])
        for line in lines[k + 1:k + 1 + n]:
            toks = line.split()
            rows.append((int(toks[0]), np.array(toks[1:], dtype=float)))
        k += n + 2   # atoms, then the energy line
    return rows


def test_scaling_data_element_order_matches_function_data(n2p2_ref):
    """Block k of scaling.data is the k-th element by atomic number: check against the raw
    values n2p2 wrote to function.data (min/max over the same structures)."""
    stats = read_scaling_data(n2p2_ref / "scaling.data", ["La", "Zr", "O"])
    assert n2p2_element_order(["La", "Zr", "O"]) == ["O", "Zr", "La"]
    rows = _function_data(n2p2_ref / "function.data")
    for el, z in (("O", 8), ("Zr", 40), ("La", 57)):
        G = np.array([g for zz, g in rows if zz == z])
        assert G.shape[1] == stats[el]["Gmin"].size == 60
        np.testing.assert_allclose(G.min(0), stats[el]["Gmin"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(G.max(0), stats[el]["Gmax"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(G.mean(0), stats[el]["Gmean"], rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(G.std(0, ddof=1), stats[el]["Gsigma"], rtol=1e-8, atol=1e-9)


def test_scaling_data_round_trip_and_errors(tmp_path, n2p2_ref):
    stats = read_scaling_data(n2p2_ref / "scaling.data", ["La", "Zr", "O"])
    write_scaling_data(tmp_path / "scaling.data", stats)
    back = read_scaling_data(tmp_path / "scaling.data", ["O", "La", "Zr"])
    for el in stats:
        for k in stats[el]:
            np.testing.assert_array_equal(stats[el][k], back[el][k])
    with pytest.raises(ModelMismatchError, match="2 elements|3 elements"):
        read_scaling_data(n2p2_ref / "scaling.data", ["La", "O"])
    with pytest.raises(ModelMismatchError, match="61"):
        read_scaling_data(n2p2_ref / "scaling.data", ["La", "Zr", "O"], n_features={"O": 61})
    bad = _edit(n2p2_ref / "scaling.data", tmp_path / "bad.data",
                {"         1          3 ": "         1          4 "})
    with pytest.raises(MalformedFileError, match="out of sequence") as info:
        read_scaling_data(bad)
    assert info.value.line is not None


# ----------------------------------------------------------------------------- weights


def test_weights_round_trip(tmp_path, n2p2_ref):
    w = read_weights(n2p2_ref / "weights.008.data")
    assert w.size == 60 * 8 + 8 + 8 * 6 + 6 + 6 + 1
    write_weights(tmp_path / "w.data", w, [60, 8, 6, 1])
    np.testing.assert_array_equal(read_weights(tmp_path / "w.data"), w)
    lines = [ln for ln in (tmp_path / "w.data").read_text().splitlines() if not ln.startswith("#")]
    # n2p2 layout: first weight connects input neuron 1 to hidden neuron 1, then hidden neuron 2
    assert lines[0].split()[1:] == ["a", "1", "0", "1", "1", "1"]
    assert lines[1].split()[1:] == ["a", "2", "0", "1", "1", "2"]
    assert lines[480].split()[1:] == ["b", "481", "1", "1"]
    with pytest.raises(ValueError):
        write_weights(tmp_path / "w2.data", w[:-1], [60, 8, 6, 1])


def test_weights_layout_matches_n2p2_propagation(ref_model, n2p2_ref):
    """Evaluate the O network by hand from the file in n2p2's documented order."""
    w = read_weights(n2p2_ref / "weights.008.data")
    x = np.linspace(-0.5, 0.5, 60)
    pos, h = 0, x
    for n_in, n_out, act in ((60, 8, np.tanh), (8, 6, np.tanh), (6, 1, lambda v: v)):
        W = w[pos:pos + n_in * n_out].reshape(n_in, n_out)     # previous neuron outer
        pos += n_in * n_out
        b = w[pos:pos + n_out]
        pos += n_out
        h = act(h @ W + b)
    net = ref_model.networks["O"]
    got = net(torch.as_tensor(x[None, :], dtype=torch.float64)).item()
    assert got == pytest.approx(h.item(), rel=1e-14, abs=1e-14)


# ----------------------------------------------------------------------------- models


def test_load_reproduces_n2p2_output(ref_pred, n2p2_ref):
    e_ref, f_ref = _reference_output(n2p2_ref)
    e, f = ref_pred
    np.testing.assert_allclose(e, e_ref, rtol=1e-10)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-9)


def test_save_load_round_trip_identical(tmp_path, ref_model, ref_frames, ref_pred):
    save_n2p2_model(ref_model, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"input.nn", "scaling.data", "weights.008.data",
                                                   "weights.040.data", "weights.057.data"}
    back = load_n2p2_model(tmp_path)
    for el in ref_model.elements:
        np.testing.assert_array_equal(back.n2p2_connections(el), ref_model.n2p2_connections(el))
    e0, f0 = ref_pred
    e1, f1 = _predict(back, ref_frames)
    np.testing.assert_array_equal(e0, e1)
    np.testing.assert_array_equal(f0, f1)


def test_save_random_model_per_element_topology(tmp_path, ref_model, ref_frames):
    model = HDNNP(ref_model.sfs, hidden={"La": (5,), "Zr": (7, 3), "O": (4, 4)},
                  activation={"La": "softplus", "Zr": ["tanh", "gaussian"], "O": "logistic"}, seed=3)
    model.fit_scaling(ref_frames).fit_reference_energies(ref_frames)
    save_n2p2_model(model, tmp_path)
    text = (tmp_path / "input.nn").read_text()
    # La (first element) defines the global keywords, the others are per-element overrides
    assert "global_nodes_short 5\n" in text and "global_activation_short p l" in text
    assert "element_hidden_layers_short Zr 2" in text and "element_nodes_short Zr 7 3" in text
    assert "element_activation_short Zr t g l" in text
    back = load_n2p2_model(tmp_path)
    assert back.layer_sizes("La") == [60, 5, 1] and back.activations("Zr") == ["tanh", "gaussian", "linear"]
    np.testing.assert_allclose(_predict(back, ref_frames)[0], _predict(model, ref_frames)[0], rtol=1e-14)


def test_normalisation_keywords(tmp_path, ref_model, ref_frames, ref_pred, n2p2_ref):
    """n2p2 data-set normalisation: E = NN/conv_energy + N·mean_energy + Σ atom_energy, F = F_NN/conv_energy
    (symmetry functions are dimensionless, conv_length cancels)."""
    for f in n2p2_ref.iterdir():
        if f.name.startswith(("weights.", "scaling")):
            shutil.copy(f, tmp_path / f.name)
    _edit(n2p2_ref / "input.nn", tmp_path / "input.nn",
          append="mean_energy 0.25\nconv_energy 2.0\nconv_length 1.7\nconv_charge 1.0\n")
    model = load_n2p2_model(tmp_path)
    e_ref, f_ref = ref_pred
    offsets = np.array([sum(ref_model.reference_energies[s] for s in a.get_chemical_symbols())
                        for a in ref_frames])
    n = np.array([len(a) for a in ref_frames])
    e, f = _predict(model, ref_frames)
    np.testing.assert_allclose(e, (e_ref - offsets) / 2.0 + 0.25 * n + offsets, rtol=1e-12)
    np.testing.assert_allclose(f, f_ref / 2.0, atol=1e-12)
    # exported again (as conv_energy), the model predicts the same
    save_n2p2_model(model, tmp_path / "again")
    assert "conv_energy" in (tmp_path / "again" / "input.nn").read_text()
    again = load_n2p2_model(tmp_path / "again")
    assert again.energy_scale == pytest.approx(0.5, rel=1e-15)
    assert again.reference_energies == pytest.approx(model.reference_energies, rel=1e-15)


def test_normalize_nodes(tmp_path, ref_model, ref_frames, ref_pred, n2p2_ref):
    """With normalize_nodes n2p2 divides each weighted sum by the previous width: weights
    multiplied by that width give back the reference model."""
    shutil.copy(n2p2_ref / "scaling.data", tmp_path / "scaling.data")
    _edit(n2p2_ref / "input.nn", tmp_path / "input.nn", append="normalize_nodes\n")
    for el in ref_model.elements:
        w = read_weights(n2p2_ref / weights_filename(el))
        sizes = ref_model.layer_sizes(el)
        pos, out = 0, []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            out.append(w[pos:pos + n_in * n_out + n_out] * n_in)
            pos += n_in * n_out + n_out
        write_weights(tmp_path / weights_filename(el), np.concatenate(out), sizes)
    e, f = _predict(load_n2p2_model(tmp_path), ref_frames)
    e_ref, f_ref = ref_pred
    np.testing.assert_allclose(e, e_ref, rtol=1e-13)
    np.testing.assert_allclose(f, f_ref, atol=1e-12)


def test_epoch_weights(tmp_path, n2p2_ref, ref_model, ref_frames, ref_pred):
    for name in ("input.nn", "scaling.data"):
        shutil.copy(n2p2_ref / name, tmp_path / name)
    for el in ref_model.elements:
        shutil.copy(n2p2_ref / weights_filename(el), tmp_path / weights_filename(el, epoch=12))
    assert weights_filename("O", 12) == "weights.008.000012.out"
    model = load_n2p2_model(tmp_path, epoch=12)
    for el in ref_model.elements:
        np.testing.assert_array_equal(model.n2p2_connections(el), ref_model.n2p2_connections(el))
    with pytest.raises(FileNotFoundError, match=r"weights\.0[0-9]{2}\.data"):
        load_n2p2_model(tmp_path)


def _model_dir(tmp_path, n2p2_ref) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    for name in ("input.nn", "scaling.data", "weights.008.data", "weights.040.data", "weights.057.data"):
        shutil.copy(n2p2_ref / name, d / name)
    return d


def test_mismatched_weights(tmp_path, n2p2_ref):
    d = _model_dir(tmp_path, n2p2_ref)
    with open(d / "weights.040.data", "a") as fh:
        fh.write("  1.0\n")
    with pytest.raises(ModelMismatchError, match="weights.040.data.*550 connections"):
        load_n2p2_model(d)


def test_mismatched_scaling(tmp_path, n2p2_ref):
    d = _model_dir(tmp_path, n2p2_ref)
    lines = (d / "scaling.data").read_text().splitlines()
    (d / "scaling.data").write_text("\n".join(ln for ln in lines if not ln.startswith("         3"))
                                    + "\n")
    with pytest.raises(ModelMismatchError, match="2 elements"):
        load_n2p2_model(d)


def test_mismatched_elements(tmp_path, n2p2_ref):
    d = _model_dir(tmp_path, n2p2_ref)
    # drop one La function from input.nn: scaling.data then has one too many for La
    text = (d / "input.nn").read_text().replace("symfunction_short La 2 O 0.5 0 6\n", "")
    (d / "input.nn").write_text(text)
    with pytest.raises(ModelMismatchError, match="La"):
        load_n2p2_model(d)
