"""Fused numba kernels (``HDNNPCalculator(compile="numba")``): against the eager torch path,
finite differences, and the reference radial functions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from mdmlkit.descriptors import SymmetryFunctionSet
from mdmlkit.descriptors.kernels.fused import FusedPlan, tabulate_radial
from mdmlkit.descriptors.terms import radial_factors
from mdmlkit.errors import InputError
from mdmlkit.potential import HDNNP, ExtrapolationWarning, HDNNPCalculator

pytest.importorskip("numba")

from test_calculator import assert_same_results, frames, hot_md, model, tiered_model  # noqa: E402, F401 (fixture)  # noqa: E402, F401 (fixtures)


@pytest.mark.parametrize("which, kind", [(0, "model"), (1, "model"), (0, "tiered_model"), (2, "model")])
def test_fused_md_equals_eager(frames, which, kind, request):  # noqa: F811
    """Energies, per-atom energies, forces and stress of the fused kernels equal the eager
    calculator's along a hot MD run with Verlet-list rebuilds (small periodic cells whose
    cutoff exceeds half the box, so atoms see their own images; a cluster; a model with
    a second cutoff for longer-range radial functions)."""
    pot = request.getfixturevalue(kind)
    atoms = frames[which].copy()
    calc = HDNNPCalculator(pot, device="cpu", extrapolation="warn", skin=0.4, compile="numba")
    assert "compile='numba'" in repr(calc)
    eager = HDNNPCalculator(pot, device="cpu", extrapolation="ignore", skin=0.0)
    dyn = hot_md(atoms, calc)
    for _ in range(12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            dyn.run(1)
        assert_same_results(atoms, eager, rtol=1e-7, atol=1e-8)
    assert calc.neighbor_list_builds >= 2
    assert calc.last_report is not None      # the extrapolation check ran on the fused G


def test_fused_forces_and_stress_vs_numerical(tiered_model, frames):  # noqa: F811
    """Forces and stress are the derivatives of the fused kernels' own energy (tabulated
    radial factors included), by central finite differences."""
    atoms = frames[0].copy()
    atoms.calc = HDNNPCalculator(tiered_model, device="cpu", extrapolation="ignore", compile="numba")
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)
    s = atoms.get_stress()
    np.testing.assert_allclose(s, calculate_numerical_stress(atoms, eps=1e-5, voigt=True), atol=1e-7)
    assert np.abs(s).max() > 1e-4


def test_fused_threads_and_float32(model, frames):  # noqa: F811
    """Two threads (radial sums split over per-thread accumulators) give the one-thread
    results; float32 stays close to float64."""
    atoms = frames[2].copy()
    out = {}
    threads = torch.get_num_threads()
    try:
        for key, dtype, n in (("1", torch.float64, 1), ("2", torch.float64, 2), ("f32", torch.float32, 2)):
            torch.set_num_threads(n)
            atoms.calc = HDNNPCalculator(model, device="cpu", dtype=dtype, extrapolation="ignore",
                                         compile="numba")
            out[key] = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress())
    finally:
        torch.set_num_threads(threads)
    assert out["2"][0] == pytest.approx(out["1"][0], rel=1e-12)
    np.testing.assert_allclose(out["2"][1], out["1"][1], atol=1e-11)
    np.testing.assert_allclose(out["2"][2], out["1"][2], atol=1e-12)
    assert out["f32"][0] == pytest.approx(out["1"][0], rel=1e-5)
    np.testing.assert_allclose(out["f32"][1], out["1"][1], atol=2e-4)


@pytest.mark.parametrize("cutoff_type, alpha", [(0, 0.0), (1, 0.0), (1, 0.3), (2, 0.0), (3, 0.0),
                                                (4, 0.0), (5, 0.2), (6, 0.0), (7, 0.0), (8, 0.1)])
def test_tabulated_radial_factors(cutoff_type, alpha):
    """The quintic tables reproduce R(r) = exp(-eta (r - rs)^2) f_c(r) and dR/dr of the
    reference torch functions (autograd) at random distances, for every n2p2 cutoff type."""
    eta, rs, rc = [0.0, 2.5, 0.3, 1.0], [0.0, 1.2, 3.0, 4.4], 5.0
    tol = 1e-8
    coef, h, err = tabulate_radial(eta, rs, rc, cutoff_type, alpha, tol=tol)
    assert err <= tol
    r = torch.as_tensor(np.random.default_rng(0).uniform(0.0, rc * (1 - 1e-9), 4000)).requires_grad_(True)
    p = [torch.tensor(x, dtype=torch.float64) for x in (eta, rs, [rc] * 4)]
    ref = radial_factors(r, *p, cutoff_type, alpha)
    dref = torch.stack([torch.autograd.grad(ref[:, k].sum(), r, retain_graph=True)[0] for k in range(4)], 1)
    x = r.detach().numpy() / h
    m = np.minimum(x.astype(int), coef.shape[0] - 1)
    t = x - m
    c = coef[m]                                        # [n, 6, K]
    val = sum(c[:, q] * t[:, None] ** q for q in range(6))
    der = sum(q * c[:, q] * t[:, None] ** (q - 1) for q in range(1, 6)) / h
    assert np.abs(val - ref.detach().numpy()).max() < 10 * tol
    assert np.abs(der - dref.numpy()).max() < 10 * tol


def test_compile_options(model):  # noqa: F811
    assert HDNNPCalculator(model, device="cpu", compile=True).compile == "numba"
    assert HDNNPCalculator(model, device="cpu", compile="torch").compile == "torch"
    with pytest.raises(ValueError, match="compile="):
        HDNNPCalculator(model, device="cpu", compile="fast")
    sfs = SymmetryFunctionSet.from_text("elements La Zr O\ncutoff_type 6 0.0\n" + "\n".join(
        f"symfunction_short {c} 3 O O 0.05 1 1.0 4.5" for c in ("La", "Zr", "O")) + "\n")
    with pytest.raises(ValueError, match="explicit triplets"):    # type 3: numba only
        HDNNPCalculator(HDNNP(sfs, hidden=(4,), seed=0), device="cpu", compile="torch")
    assert HDNNPCalculator(HDNNP(sfs, hidden=(4,), seed=0), device="cpu", compile="numba",
                          extrapolation="ignore")._fused
    plan = FusedPlan(model.acsf)
    assert plan.table_error < 1e-8 and "table error" in repr(plan)


def test_fused_energy_takes_one_structure(model, frames):  # noqa: F811
    from mdmlkit.descriptors import AtomsBatch
    from mdmlkit.descriptors.kernels.fused import FusedEnergy

    batch = AtomsBatch.from_atoms(frames[:2], model.elements, model.cutoff)
    with pytest.raises(ValueError, match="one structure, the batch has 2"):
        FusedEnergy(model)(batch)


@pytest.mark.parametrize("compile", [False, "numba"])
def test_atoms_too_close_on_a_reused_list(model, frames, compile):  # noqa: F811
    """Atoms pushed closer than 0.5 Å while the Verlet list is reused raise an error that
    names them, with the fused kernels (which find the closest pair themselves) as without."""
    from mdmlkit.errors import AtomsTooCloseError

    atoms = frames[2].copy()
    d = atoms.get_distances(0, range(1, len(atoms)), mic=True)
    k = 1 + int(np.argmin(d))
    v = atoms.get_distance(0, k, mic=True, vector=True)
    atoms.positions[0] += v * (1.0 - 0.6 / np.linalg.norm(v))      # atom 0 now 0.6 Å from atom k
    atoms.calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore", skin=0.4, compile=compile)
    atoms.get_potential_energy()
    atoms.positions[0] += 0.15 * v / np.linalg.norm(v)              # 0.45 Å, moved < skin / 2
    with pytest.raises(AtomsTooCloseError, match=rf"atoms (0 .* and {k}|{k} .* and 0) .* 0\.45"):
        atoms.get_potential_energy()
    assert atoms.calc.neighbor_list_builds == 1


_THREADS_SCRIPT = r"""
import json, sys, torch, numba
from mdmlkit.potential import HDNNPCalculator
from mdmlkit.systems import primitive_cell
torch.set_num_threads(1)
out = {"pool": numba.config.NUMBA_NUM_THREADS}
calc = HDNNPCalculator(sys.argv[1], device="cpu", compile=True, extrapolation="ignore")
out["after_build"] = torch.get_num_threads()
atoms = primitive_cell()
atoms.calc = calc
atoms.get_forces()
out["after_call"] = torch.get_num_threads()
out["numba_after_call"] = numba.get_num_threads()
torch.set_num_threads(2)
atoms.rattle(0.01, seed=1)
atoms.get_forces()
out["torch_2"] = torch.get_num_threads()
out["numba_2"] = numba.get_num_threads()
fixed = HDNNPCalculator(sys.argv[1], device="cpu", compile="numba", extrapolation="ignore", n_threads=1)
atoms.calc = fixed
atoms.get_forces()
out["torch_fixed"] = torch.get_num_threads()
out["numba_fixed"] = numba.get_num_threads()
print(json.dumps(out))
"""


def test_compiled_calculator_keeps_the_torch_thread_setting():
    """Starting numba's OpenMP pool sets libgomp's thread count, which torch reads too; the
    fused kernels must leave ``torch.set_num_threads`` as the user set it, and follow it
    (or ``n_threads``).  A fresh interpreter, so that no earlier test has started the pool."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    model_path = Path(__file__).resolve().parents[2] / "models" / "la2zr2o7" / "model.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["NUMBA_NUM_THREADS"] = "2"               # a pool larger than the user's setting
    proc = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, str(model_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["pool"] == 2
    assert out["after_build"] == 1 and out["after_call"] == 1 and out["numba_after_call"] == 1
    assert out["torch_2"] == 2 and out["numba_2"] == 2           # follows torch at call time
    assert out["torch_fixed"] == 2 and out["numba_fixed"] == 1   # explicit n_threads


def test_n_threads_must_be_positive(model):  # noqa: F811
    with pytest.raises(InputError, match="n_threads"):
        HDNNPCalculator(model, device="cpu", compile="numba", n_threads=0)


def test_plan_survives_shared_memory_move(frames):  # noqa: F811
    """Sending a model to a worker process (torch's multiprocessing pickler calls
    ``share_memory_()`` on every tensor, moving and freeing the old storage) must not
    leave the symmetry functions' plan reading freed memory: its tables are copies of the
    buffers, and the fused kernels built afterwards equal the eager calculator."""
    from test_calculator import SFS_TEXT

    def tables(pot):
        plan = pot.acsf.plan()
        return ([p for cols in plan.columns.values() for kind, _, p in cols if kind == "radial"]
                + [m.params for m in plan.moments.values()])

    pot = HDNNP(SymmetryFunctionSet.from_text(SFS_TEXT), hidden=(6,), seed=4).fit_scaling(frames)
    before = [t.copy() for t in tables(pot)]
    buffers = [b.numpy() for b in pot.acsf.buffers()]
    assert before and not any(np.shares_memory(t, b) for t in tables(pot) for b in buffers)
    pot.share_memory()                                        # what a ProcessPoolExecutor does
    after = tables(pot)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    atoms = frames[0].copy()
    eager = HDNNPCalculator(pot, device="cpu", extrapolation="ignore")
    atoms.calc = HDNNPCalculator(pot, device="cpu", extrapolation="ignore", compile="numba")
    assert_same_results(atoms, eager, rtol=1e-7, atol=1e-8)


def _moment_model(structures, angular_lines: str, seed: int) -> HDNNP:
    """A La-Zr-O model with one radial function per element pair (rc 4.5 Å) plus the given
    type-9 lines, its scaling and reference energies fitted on ``structures``."""
    text = "elements La Zr O\ncutoff_type 6 0.0\n" + "\n".join(
        f"symfunction_short {c} 2 {n} 0.5 0.0 4.5" for c in ("La", "Zr", "O") for n in ("La", "Zr", "O")
    ) + "\n" + angular_lines
    pot = HDNNP(SymmetryFunctionSet.from_text(text), hidden=(8,), activation="tanh", seed=seed)
    return pot.fit_scaling(structures).fit_reference_energies(structures, [-2.0 * len(a) for a in structures])


def _assert_fused_md_matches(pot, structures) -> None:
    """Six hot MD steps on the fused kernels equal the eager calculator's; forces equal
    finite differences of the fused energy."""
    atoms = structures[0].copy()
    calc = HDNNPCalculator(pot, device="cpu", extrapolation="ignore", skin=0.4, compile="numba")
    eager = HDNNPCalculator(pot, device="cpu", extrapolation="ignore", skin=0.0)
    dyn = hot_md(atoms, calc)
    for _ in range(6):
        dyn.run(1)
        assert_same_results(atoms, eager, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)


def test_moments_stop_at_the_degrees_the_functions_use(frames):  # noqa: F811
    """Moments of a (neighbour element, radial factor) are computed only to the highest
    harmonic degree that a function uses (zeta 4 needs l <= 4, zeta 1 l <= 1; a factor
    no angular function of that neighbour uses, none), and the results equal the eager
    calculator's along an MD run and the finite-difference forces."""
    angular = [("O", "O", 0.05, 4.0), ("Zr", "O", 0.05, 1.0), ("Zr", "O", 0.2, 2.0), ("La", "Zr", 0.2, 1.0)]
    pot = _moment_model(frames, "\n".join(f"symfunction_short {c} 9 {a} {b} {eta} {lam} {zeta} 4.5"
                                           for c in ("La", "Zr", "O") for a, b, eta, zeta in angular
                                           for lam in (-1, 1)), seed=5)
    plan = FusedPlan(pot.acsf)
    assert plan.shape[2] == 25                                  # degrees up to 4 are stored
    for c in range(3):     # slot O: l <= 4 (eta 0.05), 2 (0.2); Zr: 1, 2; La: none (0.05), 1 (0.2)
        assert sorted(plan.mom_lsu[c].ravel().tolist()) == [-1, 1, 1, 2, 2, 4]
    _assert_fused_md_matches(pot, frames)


def test_moment_blocks_of_four_radial_columns(frames):  # noqa: F811
    """The moment loops run over blocks of four radial columns, highest degree first, the
    last block padded with the zero column U: six radial factors of one neighbour slot give
    two blocks (four + two and two pads), and the results equal the eager calculator's
    along an MD run and the finite-difference forces."""
    etas_zetas = [(0.01, 1.0), (0.03, 4.0), (0.05, 2.0), (0.1, 4.0), (0.2, 1.0), (0.4, 2.0)]
    pot = _moment_model(frames, "\n".join(f"symfunction_short {c} 9 O O {eta} {lam} {zeta} 4.5"
                                           for c in ("La", "Zr", "O") for eta, zeta in etas_zetas
                                           for lam in (-1, 1)), seed=6)
    plan = FusedPlan(pot.acsf)
    E, U, H = plan.shape
    assert (U, H) == (6, 25)
    for c in range(3):
        s = plan.mom_slot[c, 2]                                  # the O slot
        lsu = plan.mom_lsu[c, s]
        assert plan.mom_nb[c, s] == 2
        cols = plan.mom_ub[c, s].ravel().tolist()
        assert cols[-2:] == [U, U]                               # two pads in the second block
        real = cols[:6]
        assert sorted(real) == list(range(6))
        assert [lsu[u] for u in real] == sorted(lsu.tolist(), reverse=True)
        assert plan.mom_hb[c, s].tolist() == [(lsu[real[0]] + 1) ** 2, (lsu[real[4]] + 1) ** 2]
    _assert_fused_md_matches(pot, frames)
