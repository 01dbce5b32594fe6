"""HDNNPCalculator (ASE) and extrapolation checks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet
from test_potential_model import SFS_TEXT, long_radial_functions, random_structure

from mdmlkit.descriptors import SymmetryFunctionSet
from mdmlkit.errors import InputError, UnknownElementError
from mdmlkit.io.n2p2 import read_input_data
from mdmlkit.potential import (
    HDNNP,
    ExtrapolationError,
    ExtrapolationReport,
    ExtrapolationWarning,
    HDNNPCalculator,
    check_extrapolation,
)


@pytest.fixture(scope="module")
def frames():
    return [random_structure(14, 11, True), random_structure(10, 12, False), random_structure(16, 13, True)]


@pytest.fixture(scope="module")
def model(frames):
    m = HDNNP(SymmetryFunctionSet.from_text(SFS_TEXT), hidden=(12, 12), activation="tanh", seed=2)
    return m.fit_scaling(frames).fit_reference_energies(frames, [-2.0 * len(a) for a in frames])


@pytest.fixture(scope="module")
def tiered_model(model, frames):
    """``model`` plus radial functions to 6.5 Å (second tier of padded tables), with
    non-zero weights on them."""
    m = model.with_functions(long_radial_functions(), frames)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for el in m.elements:
            w = m.networks[el].linears[0].weight
            w.add_(0.3 * torch.randn(w.shape, generator=gen, dtype=w.dtype) * (w == 0))
    return m


def compressed(atoms: Atoms, factor: float = 0.85) -> Atoms:
    a = atoms.copy()
    if a.pbc.all():
        a.set_cell(a.cell[:] * factor, scale_atoms=True)
    else:
        a.positions *= factor
    return a


def test_reproduces_n2p2_reference(n2p2_ref):
    calc = HDNNPCalculator(n2p2_ref, device="cpu")          # the n2p2 model directory itself
    for atoms, ref in zip(read_input_data(n2p2_ref / "input.data"), read_input_data(n2p2_ref / "output.data")):
        atoms.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("error", ExtrapolationWarning)   # training structures: in range
            e = atoms.get_potential_energy()
        assert e == pytest.approx(ref.get_potential_energy(), rel=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-9)
        assert atoms.get_potential_energies().sum() == pytest.approx(e, rel=1e-12)
        assert not calc.last_report


def test_forces_and_stress_vs_numerical(model, frames):
    atoms = frames[0].copy()
    atoms.calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore")
    f = atoms.get_forces()
    num_f = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(f, num_f, atol=1e-6)
    s = atoms.get_stress()
    num_s = calculate_numerical_stress(atoms, eps=1e-5, voigt=True)
    np.testing.assert_allclose(s, num_s, atol=1e-7)
    assert np.abs(s).max() > 1e-4, "stress unexpectedly zero"


def _nve_error(model, atoms, dt_fs: float, steps: int) -> float:
    atoms = atoms.copy()
    atoms.calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore")
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3))
                      * np.sqrt(atoms.get_masses()[:, None] * units.kB * 300))
    Stationary(atoms)
    etot = []
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    dyn.attach(lambda: etot.append(atoms.get_total_energy()), interval=1)
    dyn.run(steps)
    return float(np.abs(np.array(etot) - etot[0]).max())


def test_nve_conserves_energy(model, frames):
    """Velocity Verlet with consistent, smooth forces: the total-energy error over the same
    30 fs is small and shrinks as dt² (halving dt divides it by ~4)."""
    atoms = frames[2]
    err_1 = _nve_error(model, atoms, 1.0, 30)
    err_05 = _nve_error(model, atoms, 0.5, 60)
    kinetic_scale = 1.5 * len(atoms) * units.kB * 300
    assert err_05 < 2e-3 * kinetic_scale, f"energy error {err_05:.2e} eV over 30 fs"
    assert 2.5 < err_1 / err_05 < 6.0, (err_1, err_05)


def test_unknown_element(model):
    atoms = Atoms("LaCuO", positions=[[0, 0, 0], [2.2, 0, 0], [0, 2.2, 0]])
    atoms.calc = HDNNPCalculator(model, device="cpu")
    with pytest.raises(UnknownElementError, match="atom 1 is Cu"):
        atoms.get_potential_energy()


def test_stress_of_cluster_not_implemented(model, frames):
    atoms = frames[1].copy()
    atoms.calc = HDNNPCalculator(model, device="cpu")
    atoms.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_extrapolation_modes(model, frames):
    inside, outside = frames[0].copy(), compressed(frames[0])
    inside.calc = HDNNPCalculator(model, device="cpu", extrapolation="raise")
    inside.get_potential_energy()                       # a training structure: no error
    assert inside.calc.last_report is not None and len(inside.calc.last_report) == 0

    outside.calc = HDNNPCalculator(model, device="cpu", extrapolation="warn")
    with pytest.warns(ExtrapolationWarning, match="outside the training range"):
        outside.get_potential_energy()
    report = outside.calc.last_report
    assert report and report.structures == [0]

    outside.calc = HDNNPCalculator(model, device="cpu", extrapolation="raise")
    with pytest.raises(ExtrapolationError, match="symfunction_short"):
        outside.get_potential_energy()

    outside.calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        outside.get_potential_energy()
    assert outside.calc.last_report is None
    with pytest.raises(ValueError, match="extrapolation"):
        HDNNPCalculator(model, extrapolation="maybe")


def _count_extrapolation_warnings(atoms, calc, n_calls: int, scale: float = 1e-3) -> list:
    """Warnings of ``n_calls`` calls on ``atoms`` moved by ``scale`` Å each time."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(n_calls):
            atoms.positions += rng.normal(scale=scale, size=atoms.positions.shape)
            calc.reset()
            atoms.get_forces()
    return [x for x in w if issubclass(x.category, ExtrapolationWarning)]


def test_extrapolation_warnings_are_aggregated(model, frames):
    """Every call extrapolates; the calculator warns at the first call and then at most once
    per ``warn_every`` calls, and keeps the totals for extrapolation_report()."""
    outside = compressed(frames[0])
    per_call = HDNNPCalculator(model, device="cpu", skin=0.0, warn_every=1)
    report = check_extrapolation(model, [outside])
    assert report                                          # the reference: it extrapolates
    calc = HDNNPCalculator(model, device="cpu", warn_every=1000)
    w = _count_extrapolation_warnings(outside, calc, 25)
    assert len(w) == 1 and "call 1:" in str(w[0].message)
    assert "extrapolation_report()" in str(w[0].message)
    tally = calc.extrapolation_report()
    assert tally.calls == 25 and tally.calls_extrapolated == 25 and tally.fraction == 1.0
    assert "25 of 25 call(s)" in tally.summary()
    # the per-(element, function) rows agree with an independent check of the last structure
    last = calc.last_report
    assert {(r.element, r.function) for r in last} <= set(tally.rows)
    assert sum(r["count"] for r in tally.rows.values()) == tally.values >= len(last)
    worst = max(last, key=lambda r: r.excess)
    assert tally.worst["worst_excess"] >= worst.excess
    table = tally.table(max_rows=None)
    assert len(table.splitlines()) == 1 + len(tally.rows)
    df_cols = tally.to_dict()
    assert len(df_cols["element"]) == len(tally.rows)
    assert "<table>" in tally._repr_html_()
    # warn_every=10: calls 1, 11, 21 warn, with the running summary after the first
    calc10 = HDNNPCalculator(model, device="cpu", warn_every=10)
    w = _count_extrapolation_warnings(outside, calc10, 25)
    assert len(w) == 3 and "extrapolation so far: 11 of 11 call(s)" in str(w[1].message)
    # warn_every=1 is the old behaviour: one warning per extrapolating call
    assert len(_count_extrapolation_warnings(outside, per_call, 5)) == 5
    # reset: new totals, and the next extrapolating call warns again
    snapshot = calc.extrapolation_report(reset=True)
    assert snapshot.calls == 25 and calc.extrapolation_report().calls == 0
    assert len(_count_extrapolation_warnings(outside, calc, 3)) == 1
    # training structures: counted, nothing reported
    inside = HDNNPCalculator(model, device="cpu")
    assert not _count_extrapolation_warnings(frames[0], inside, 3, scale=0.0)
    assert inside.extrapolation_report().calls == 3 and not inside.extrapolation_report()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="warn_every"):
            HDNNPCalculator(model, warn_every=bad)


@pytest.mark.filterwarnings("ignore::mdmlkit.errors.ExtrapolationWarning")
def test_run_md_stops_or_flags_when_too_many_steps_extrapolate(model, frames, tmp_path):
    from mdmlkit.md.runs import MIN_STEPS_FOR_FRACTION, run_md

    outside = compressed(frames[0])
    kw = dict(temperature_K=10.0, steps=60, timestep_fs=0.5, sample_every=5, progress=False)
    calc = HDNNPCalculator(model, device="cpu")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = run_md(outside, calc, max_extrapolated_fraction=0.5, **kw)
    ex = res.extrapolation
    assert not res.complete and ex["exceeded"] and ex["fraction"] == 1.0
    assert ex["stopped_at_step"] == 50 and res.frames[-1].info["step"] == 50   # first frame past 50 calls
    assert ex["calls"] >= MIN_STEPS_FOR_FRACTION
    msgs = [str(x.message) for x in w if issubclass(x.category, ExtrapolationWarning)]
    assert len(msgs) == 2 and "stopped at step 50" in msgs[1]               # not one per step

    # flag: the run completes and is marked; a trajectory is written as usual
    res = run_md(outside, lambda: HDNNPCalculator(model, device="cpu", extrapolation="warn"),
                 max_extrapolated_fraction=0.5, extrapolation_action="flag", checkpoint_every=4,
                 trajectory=tmp_path / "flag.extxyz", **kw)
    ex = res.extrapolation
    assert res.complete and ex["exceeded"] and ex["stopped_at_step"] is None
    assert ex["calls"] >= 61 and ex["calls_extrapolated"] == ex["calls"]     # summed over segments
    assert len(res.frames) == 13

    # at or below the threshold: counted, not exceeded (and no run_md warning)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = run_md(frames[0], HDNNPCalculator(model, device="cpu"), max_extrapolated_fraction=1.0, **kw)
    assert res.complete and not res.extrapolation["exceeded"] and res.extrapolation["calls"] >= 61
    assert not any("max_extrapolated_fraction" in str(x.message) for x in w)
    res = run_md(frames[0], HDNNPCalculator(model, device="cpu", extrapolation="ignore"), **kw)
    assert res.extrapolation is None                   # nothing counted without the check

    with pytest.raises(InputError, match="max_extrapolated_fraction"):
        run_md(outside, HDNNPCalculator(model, extrapolation="ignore"), max_extrapolated_fraction=0.1, **kw)
    with pytest.raises(InputError, match="max_extrapolated_fraction"):
        run_md(outside, calc, max_extrapolated_fraction=1.5, **kw)
    with pytest.raises(InputError, match="extrapolation_action"):
        run_md(outside, calc, max_extrapolated_fraction=0.1, extrapolation_action="pause", **kw)


def test_check_extrapolation_report(model, frames):
    test = [frames[0], compressed(frames[1], 0.8), frames[2], compressed(frames[2], 1.3)]
    report = check_extrapolation(model, test, batch_size=3)      # two chunks
    assert isinstance(report, ExtrapolationReport)
    assert report.structures == [1, 3]
    assert report.n_structures == 4 and report.n_atoms == sum(len(a) for a in test)
    for r in report:
        lo, hi = r.G_min, r.G_max
        tol = report.tolerance * (hi - lo)
        assert r.value < lo - tol or r.value > hi + tol
        assert r.line == model.sfs.functions[r.element][r.function].to_line()
        assert test[r.structure].get_chemical_symbols()[r.atom] == r.element
        assert r.excess > 0
    cols = report.to_dict()
    assert set(cols) == {"structure", "atom", "element", "function", "value", "G_min", "G_max", "line"}
    text = repr(report)
    assert "outside the training range" in text and "symfunction_short" in text
    assert "<table>" in report._repr_html_()
    assert "no extrapolation" in repr(check_extrapolation(model, frames))


def test_check_extrapolation_needs_fitted_scaling(frames):
    m = HDNNP(SymmetryFunctionSet.from_text(SFS_TEXT), hidden=(3,))
    with pytest.raises(InputError, match="not fitted"):
        check_extrapolation(m, frames)
    with pytest.warns(UserWarning, match="not fitted"):
        HDNNPCalculator(m, device="cpu")


def test_loading_and_dtype(tmp_path, model, frames):
    path = model.save(tmp_path / "m.pt")
    atoms = frames[0].copy()
    atoms.calc = HDNNPCalculator(path, device="cpu")
    e64 = atoms.get_potential_energy()
    calc32 = HDNNPCalculator(model, device="cpu", dtype=torch.float32)
    assert calc32.model is not model and model.dtype == torch.float64   # caller's model untouched
    atoms.calc = calc32
    assert atoms.get_potential_energy() == pytest.approx(e64, rel=1e-5)
    assert "float32" in repr(calc32)
    with pytest.raises(FileNotFoundError):
        HDNNPCalculator(tmp_path / "missing.pt")


# ------------------------------------------------------------ Verlet (skin) lists
def assert_same_results(atoms, other_calc, rtol: float, atol: float) -> None:
    """Energy, per-atom energies, forces (and stress of a periodic cell) of ``atoms`` with its
    own calculator equal those of ``other_calc`` on a copy."""
    ref = atoms.copy()
    ref.calc = other_calc
    assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), rel=rtol, abs=atol)
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(atoms.get_potential_energies(), ref.get_potential_energies(),
                               rtol=rtol, atol=atol)
    if atoms.pbc.all():
        np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), rtol=rtol, atol=0.1 * atol)


def hot_md(atoms, calc, T: float = 2000.0) -> VelocityVerlet:
    """Velocity Verlet (2 fs) of ``atoms`` with ``calc`` from Maxwell-Boltzmann momenta at T (K)."""
    atoms.calc = calc
    rng = np.random.default_rng(5)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3))
                      * np.sqrt(atoms.get_masses()[:, None] * units.kB * T))
    Stationary(atoms)
    return VelocityVerlet(atoms, timestep=2.0 * units.fs)


@pytest.mark.parametrize("which, kind", [(0, "model"), (1, "model"), (0, "tiered_model")])
def test_skin_list_md_equals_fresh_lists(frames, which, kind, request):
    """Along a hot MD run, the calculator that reuses its skin list gives the energies,
    per-atom energies, forces and stress of a calculator that builds a fresh list every
    step, and it does rebuild when atoms have moved more than skin / 2 (periodic cell
    and cluster; a model with longer-range radial functions)."""
    model = request.getfixturevalue(kind)
    atoms = frames[which].copy()
    calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore", skin=0.4)
    fresh = HDNNPCalculator(model, device="cpu", extrapolation="ignore", skin=0.0)
    dyn = hot_md(atoms, calc)
    start = atoms.get_positions()
    max_disp = 0.0
    steps = 25
    for _ in range(steps):
        dyn.run(1)
        max_disp = max(max_disp, np.linalg.norm(atoms.get_positions() - start, axis=1).max())
        assert_same_results(atoms, fresh, rtol=1e-10, atol=1e-11)
    assert max_disp > 0.4, "the test should move atoms by more than the skin"
    assert 2 <= calc.neighbor_list_builds < steps // 2, calc.neighbor_list_builds
    assert fresh.neighbor_list_builds == steps


def test_skin_list_rebuilt_on_cell_change_and_big_moves(model, frames):
    atoms = frames[0].copy()
    calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore", skin=1.0)
    atoms.calc = calc
    atoms.get_forces()
    atoms.positions[3] += [0.3, 0.0, 0.0]           # < skin / 2: reused
    atoms.get_forces()
    assert calc.neighbor_list_builds == 1
    atoms.positions[3] += [0.3, 0.0, 0.0]           # 0.6 Å from the build positions: rebuilt
    atoms.get_forces()
    assert calc.neighbor_list_builds == 2
    atoms.set_cell(atoms.cell[:] * 1.01, scale_atoms=True)
    e = atoms.get_potential_energy()
    assert calc.neighbor_list_builds == 3
    ref = atoms.copy()
    ref.calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore", skin=0.0)
    assert e == pytest.approx(ref.get_potential_energy(), rel=1e-13)
    with pytest.raises(ValueError, match="skin"):
        HDNNPCalculator(model, skin=-1.0)


def test_timings_breakdown(model, frames):
    atoms = frames[0].copy()
    calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore")
    atoms.calc = calc
    atoms.get_forces()
    assert calc.timings is None
    calc.timings = {}
    atoms.positions[0] += 0.01
    atoms.get_forces()
    atoms.positions[0] += 0.01
    atoms.get_forces()
    assert calc.timings["calls"] == 2
    assert {"neighbour_list", "descriptors", "extrapolation_check", "networks", "backward",
            "results"} <= set(calc.timings)
    assert all(v >= 0 for v in calc.timings.values())
    assert "skin=0.5 Å" in repr(calc)


# ------------------------------------------------------------ compiled kernel
@pytest.mark.parametrize("which, kind", [(0, "model"), (1, "model"), (0, "tiered_model")])
def test_compiled_md_equals_eager(frames, which, kind, request):
    """``compile="torch"`` (one torch.compile'd kernel on the padded Verlet layout) gives
    the energies, per-atom energies, forces and stress of the eager calculator along a
    hot MD run with list rebuilds, and reuses its compiled code across rebuilds
    (periodic cell, cluster; two tiers of tables for longer-range radial functions)."""
    from torch._dynamo.utils import counters

    model = request.getfixturevalue(kind)
    atoms = frames[which].copy()
    calc = HDNNPCalculator(model, device="cpu", extrapolation="warn", skin=0.4, compile="torch")
    assert "compile='torch'" in repr(calc)
    assert torch._dynamo.config.recompile_limit >= 64     # many models in one process stay compiled
    eager = HDNNPCalculator(model, device="cpu", extrapolation="ignore", skin=0.0)
    dyn = hot_md(atoms, calc)
    graphs = None
    for step in range(20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            dyn.run(1)
        if step == 1:
            graphs = counters["stats"]["unique_graphs"]
        assert_same_results(atoms, eager, rtol=1e-9, atol=1e-10)
    assert calc.neighbor_list_builds >= 2
    # rebuilds that fit the layout's capacity reuse the compiled kernel (at most one regrowth)
    assert counters["stats"]["unique_graphs"] - graphs <= 1
    assert calc._layout[1].n_pairs > 0


def test_compiled_needs_padded_functions(frames):
    sfs = SymmetryFunctionSet.from_text("elements La Zr O\ncutoff_type 6 0.0\n" + "\n".join(
        f"symfunction_short {c} 3 O O 0.05 1 1.0 4.5" for c in ("La", "Zr", "O")) + "\n")
    m = HDNNP(sfs, hidden=(4,), seed=0)
    with pytest.raises(ValueError, match="explicit triplets"):
        HDNNPCalculator(m, device="cpu", compile="torch")


def test_check_state_matches_ase(model, frames):
    """The calculator's exact-comparison ``check_state`` reports what ASE's ``compare_atoms``
    reports (every change of positions, numbers, cell, pbc, charges, magmoms) and recomputes
    after a change far below any physical length."""
    from ase.calculators.calculator import compare_atoms

    atoms = frames[0].copy()
    calc = HDNNPCalculator(model, device="cpu", extrapolation="ignore")
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    assert calc.check_state(atoms) == []
    edits = {"positions": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-3),
             "numbers": lambda a: a.numbers.__setitem__(0, a.numbers[1] if a.numbers[0] != a.numbers[1]
                                                          else a.numbers[2]),
             "cell": lambda a: a.set_cell(a.cell[:] * 1.01),
             "pbc": lambda a: a.set_pbc([True, True, False]),
             "initial_charges": lambda a: a.set_initial_charges(np.full(len(a), 0.1)),
             "initial_magmoms": lambda a: a.set_initial_magnetic_moments(np.full(len(a), 0.5))}
    for name, edit in edits.items():
        other = atoms.copy()
        edit(other)
        assert sorted(calc.check_state(other)) == sorted(compare_atoms(calc.atoms, other)), name
        assert name in calc.check_state(other)
    tiny = atoms.copy()
    tiny.positions[3, 1] = np.nextafter(tiny.positions[3, 1], np.inf)
    assert calc.check_state(tiny) == ["positions"]
    tiny.calc = calc
    assert tiny.get_potential_energy() == pytest.approx(e0, abs=1e-9)


def test_extrapolation_range_follows_new_statistics(model, frames):
    """The cached accepted range of the extrapolation check is rebuilt when the scaling
    statistics change in place (a refit), and depends on the tolerance."""
    import copy

    m = copy.deepcopy(model)
    atoms = frames[1].copy()
    atoms.calc = HDNNPCalculator(m, device="cpu", extrapolation="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        atoms.get_potential_energy()                     # inside the fitted range
    assert not atoms.calc.last_report
    el = m.elements[0]
    with torch.no_grad():
        m.scalers[el].G_max.copy_(m.scalers[el].G_min)   # collapse the range: now extrapolating
    atoms.positions[0, 0] += 1e-4
    with pytest.warns(ExtrapolationWarning):
        atoms.get_potential_energy()
    assert atoms.calc.last_report
    assert {r.element for r in atoms.calc.last_report} >= {el}
