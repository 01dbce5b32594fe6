"""Fused numba kernels with explicit triplets (type 3, and type 9 outside the moments):
against the eager torch path, finite differences and n2p2's own output."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from mdmlkit.descriptors import SymmetryFunctionSet
from mdmlkit.descriptors.kernels.fused import FusedPlan
from mdmlkit.io.n2p2 import read_input_data
from mdmlkit.potential import HDNNP, ExtrapolationWarning, HDNNPCalculator

pytest.importorskip("numba")

from test_calculator import assert_same_results, hot_md  # noqa: E402
from test_potential_model import random_structure  # noqa: E402

ELEMENTS = ("La", "Zr", "O")
PAIRS = [(a, b) for i, a in enumerate(ELEMENTS) for b in ELEMENTS[i:]]

# type 2 + type 3 for every element pair (one with rs != 0, one with a shorter cutoff, one with
# non-integer zeta), plus type-9 functions of the moments (integer zeta) and of the triplets
# (zeta 1.5) on the same centres: every kernel runs in one model
SFS_TEXT = "elements La Zr O\ncutoff_type 6 0.1\n" + "\n".join(
    [f"symfunction_short {c} 2 {n} {eta} {rs} 5.0" for c in ELEMENTS for n in ELEMENTS
     for eta, rs in ((0.5, 0.0), (1.0, 2.2))]
    + [f"symfunction_short {c} 3 {a} {b} {eta} {lam} {zeta} {rc} {rs}" for c in ELEMENTS for a, b in PAIRS
       for eta, lam, zeta, rc, rs in ((0.02, 1, 1, 5.0, 0.0), (0.05, -1, 2, 5.0, 0.0),
                                      (0.1, 1, 4, 5.0, 1.5), (0.03, -1, 1.5, 4.2, 0.0))]
    + [f"symfunction_short {c} 9 O O 0.05 {lam} {zeta} 5.0" for c in ELEMENTS
       for lam, zeta in ((1, 2), (-1, 1.5))]) + "\n"


@pytest.fixture(scope="module")
def frames():
    return [random_structure(14, 11, True), random_structure(10, 12, False),
            random_structure(16, 13, True), random_structure(12, 14, False, box=7.0)]


@pytest.fixture(scope="module")
def model3(frames):
    m = HDNNP(SymmetryFunctionSet.from_text(SFS_TEXT), hidden=(10, 8), activation="tanh", seed=4)
    return m.fit_scaling(frames).fit_reference_energies(frames, [-2.0 * len(a) for a in frames])


def test_compile_accepts_type3(model3):
    """``compile=True`` (numba on a CPU) runs type-3 sets; the torch-compiled path still refuses."""
    calc = HDNNPCalculator(model3, device="cpu", compile=True)
    assert calc.compile == "numba"
    plan = calc._fused.plan
    n_trip = sum(f.type == 3 or (f.type == 9 and f.zeta == 1.5) for f in model3.sfs)
    assert plan.n_triplet_functions == n_trip and f"triplet functions={n_trip}" in repr(plan)
    with pytest.raises(ValueError, match="explicit triplets"):
        HDNNPCalculator(model3, device="cpu", compile="torch")


@pytest.mark.parametrize("which", [0, 1, 3])
def test_type3_md_equals_eager(model3, frames, which):
    """Energies, per-atom energies, forces and stress equal the eager calculator's along a hot
    MD run with Verlet-list rebuilds (periodic cells whose cutoff exceeds half the box, so
    atoms see their own images in the triplets; clusters)."""
    atoms = frames[which].copy()
    calc = HDNNPCalculator(model3, device="cpu", extrapolation="ignore", skin=0.4, compile=True)
    eager = HDNNPCalculator(model3, device="cpu", extrapolation="ignore", skin=0.0)
    dyn = hot_md(atoms, calc)
    for _ in range(6):
        dyn.run(1)
        assert_same_results(atoms, eager, rtol=1e-7, atol=1e-8)
    assert calc.neighbor_list_builds >= 2


def test_type3_descriptors_equal_eager(model3, frames):
    """The raw symmetry functions of the fused kernels (type 3 included) equal the eager ones."""
    from mdmlkit.descriptors import AtomsBatch
    from mdmlkit.descriptors.kernels.fused import FusedEnergy

    fused = FusedEnergy(model3)
    for atoms in frames:
        batch = AtomsBatch.from_atoms([atoms], model3.elements, model3.cutoff + 0.3)
        _, G, _, _ = fused(batch)
        ref = model3.descriptors(batch)
        for el in model3.elements:
            assert G[el].shape == ref[el].shape
            np.testing.assert_allclose(G[el].numpy(), ref[el].detach().numpy(), rtol=1e-7, atol=1e-9)
            assert np.abs(ref[el].detach().numpy()).max() > 1e-3


def test_type3_forces_and_stress_vs_numerical(model3, frames):
    """Forces and stress are the derivatives of the fused kernels' own energy."""
    atoms = frames[2].copy()
    atoms.calc = HDNNPCalculator(model3, device="cpu", extrapolation="ignore", compile=True)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)
    s = atoms.get_stress()
    np.testing.assert_allclose(s, calculate_numerical_stress(atoms, eps=1e-5, voigt=True), atol=1e-7)
    assert np.abs(s).max() > 1e-4
    cluster = frames[3].copy()
    cluster.calc = HDNNPCalculator(model3, device="cpu", extrapolation="ignore", compile=True)
    np.testing.assert_allclose(cluster.get_forces(), calculate_numerical_forces(cluster, eps=1e-5),
                               atol=1e-6)


def test_type3_threads(model3, frames):
    """Two numba threads give the one-thread results."""
    import torch

    atoms = frames[2].copy()
    out = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            atoms.calc = HDNNPCalculator(model3, device="cpu", extrapolation="ignore", compile=True)
            out.append((atoms.get_potential_energy(), atoms.get_forces()))
    finally:
        torch.set_num_threads(threads)
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-12)
    np.testing.assert_allclose(out[1][1], out[0][1], atol=1e-11)


def test_type3_float32_and_other_activation(frames):
    """The single-pass kernel in float32, with a softplus network: per-atom energies and forces
    of the float64 eager calculator to float32 precision."""
    import copy

    import torch

    m = HDNNP(SymmetryFunctionSet.from_text(SFS_TEXT), hidden=(9, 7), activation="softplus", seed=5)
    m.fit_scaling(frames).fit_reference_energies(frames, [-2.0 * len(a) for a in frames])
    m32 = copy.deepcopy(m).to(dtype=torch.float32)
    for atoms in (frames[0], frames[3]):
        a = atoms.copy()
        a.calc = HDNNPCalculator(m32, device="cpu", extrapolation="ignore", compile=True)
        e32, f32 = a.get_potential_energies(), a.get_forces()
        a.calc = HDNNPCalculator(m, device="cpu", extrapolation="ignore")
        e64, f64 = a.get_potential_energies(), a.get_forces()
        np.testing.assert_allclose(e32, e64, rtol=1e-5, atol=2e-5)
        np.testing.assert_allclose(f32, f64, atol=2e-4 * np.abs(f64).max())
        assert np.abs(f64).max() > 1e-2


def test_type3_reproduces_n2p2_reference(n2p2_ref):
    """n2p2's own energies and forces (types 2, 3 and 9, cutoff type 6 with an inner cutoff)
    from the n2p2 model directory through ``compile=True``."""
    calc = HDNNPCalculator(n2p2_ref, device="cpu", compile=True)
    assert calc.compile == "numba" and calc._fused.plan.n_triplet_functions > 0
    for atoms, ref in zip(read_input_data(n2p2_ref / "input.data"), read_input_data(n2p2_ref / "output.data")):
        atoms.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("error", ExtrapolationWarning)
            e = atoms.get_potential_energy()
        assert e == pytest.approx(ref.get_potential_energy(), rel=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-8)
        assert not calc.last_report


def test_plan_without_triplets_is_unchanged(model3):
    """A type-2/moment model has no triplet tables."""
    sfs = SymmetryFunctionSet.from_text("elements La Zr O\ncutoff_type 6 0.0\n" + "\n".join(
        f"symfunction_short {c} 9 O O 0.05 1 1.0 4.5" for c in ELEMENTS) + "\n")
    plan = FusedPlan(HDNNP(sfs, hidden=(4,), seed=0).acsf)
    assert plan.n_triplet_functions == 0 and plan.fn_col.shape == (0,)


def test_functions_sharing_radial_factors(frames):
    """An n2p2-style grid (per neighbour pair one eta with lambda = +-1 and zeta = 1, 2, 4, 16,
    plus type 9 with the same eta and non-integer zeta): the plan puts the functions with the
    same radial factors side by side (runs of eight type-3 functions), and the kernels that
    form their radial product once per run give the eager energies, per-atom energies, forces
    and stress, and forces that are the derivatives of their energy."""
    text = "elements La Zr O\ncutoff_type 1 0.0\n" + "\n".join(
        [f"symfunction_short {c} 2 {n} 0.3 0.0 5.0" for c in ELEMENTS for n in ELEMENTS]
        + [f"symfunction_short {c} 3 {a} {b} 0.03 {lam} {zeta} 5.0" for c in ELEMENTS for a, b in PAIRS
           for lam in (1, -1) for zeta in (1, 2, 4, 16)]
        + [f"symfunction_short {c} 9 {a} {b} 0.03 {lam} 1.5 5.0" for c in ELEMENTS for a, b in PAIRS
           for lam in (1, -1)]) + "\n"
    m = HDNNP(SymmetryFunctionSet.from_text(text), hidden=(8,), activation="tanh", seed=6)
    m.fit_scaling(frames).fit_reference_energies(frames, [-2.0 * len(a) for a in frames])
    plan = FusedPlan(m.acsf)
    runs, n = [], 1
    for f in range(1, plan.fn_col.shape[0] + 1):
        same = (f < plan.fn_col.shape[0] and f not in set(plan.grp_fptr)
                and (plan.fn_u[f], plan.fn_q[f]) == (plan.fn_u[f - 1], plan.fn_q[f - 1]))
        if same:
            n += 1
        else:
            runs.append(n)
            n = 1
    assert sorted(set(runs)) == [2, 8] and sum(runs) == plan.n_triplet_functions == 3 * 6 * 10
    for atoms in (frames[0], frames[3]):
        a = atoms.copy()
        a.calc = HDNNPCalculator(m, device="cpu", extrapolation="ignore", compile=True)
        eager = HDNNPCalculator(m, device="cpu", extrapolation="ignore")
        assert_same_results(a, eager, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(a.get_forces(), calculate_numerical_forces(a, eps=1e-5), atol=1e-6)
        assert np.abs(a.get_forces()).max() > 1e-2
