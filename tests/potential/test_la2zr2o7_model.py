"""The shipped La2Zr2O7 HDNNPs (``models/la2zr2o7`` and the smaller, faster
``models/la2zr2o7-fast``) and their accuracy claims.

Checks that the model loads (mdmlkit ``model.pt`` and the n2p2 files), that it
reproduces, structure by structure, the test-split errors recorded in
``benchmarks/results/<model>_accuracy.json`` by ``benchmarks/train_la2zr2o7.py``
on a subset of the test split (every 4th structure), that the recorded totals follow
from those per-structure errors, and that an n2p2 export reloads to identical
predictions.  The reference labels are the teacher's (CHGNet) in ``data/la2zr2o7``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["la2zr2o7", "la2zr2o7-fast"]      # models/<name>, benchmarks/results/<name>_accuracy.json
EVERY = 4   # test-split subset: structures 0, 4, 8, ... (all kinds and both cell sizes)


@pytest.fixture(scope="module", params=SHIPPED)
def model_dir(request) -> Path:
    return REPO / "models" / request.param


@pytest.fixture(scope="module")
def model(model_dir):
    from mdmlkit.potential import HDNNP

    return HDNNP.load(model_dir / "model.pt")


@pytest.fixture(scope="module")
def claim(model_dir) -> dict:
    claim = json.loads((REPO / "benchmarks" / "results" / f"{model_dir.name}_accuracy.json").read_text())
    assert claim["model"]["path"] == f"models/{model_dir.name}"
    return claim


@pytest.fixture(scope="module")
def subset():
    from mdmlkit.systems.la2zr2o7 import load_la2zr2o7

    frames = load_la2zr2o7("test")
    idx = np.arange(0, len(frames), EVERY)
    return idx, [frames[i] for i in idx]


@pytest.fixture(scope="module")
def evaluation(model, subset):
    from mdmlkit.potential import evaluate

    return evaluate(model, subset[1], source="test subset")


def _predict(model, frames):
    from mdmlkit.descriptors import AtomsBatch

    batch = AtomsBatch.from_atoms(frames, model.elements, model.cutoff, dtype=model.dtype)
    e, f = model.energy_and_forces(batch)
    return e.detach().numpy(), f.detach().numpy()


def test_shipped_files(model, model_dir, claim):
    names = ["model.pt", "input.nn", "scaling.data", "training_history.json"]
    names += [f"weights.{z:03d}.data" for z in (8, 40, 57)]
    sizes = {n: (model_dir / n).stat().st_size for n in names}
    # small enough to ship in git: 92 931 weights of la2zr2o7, n2p2 text weights ≈ 60 bytes each
    assert sum(sizes.values()) < 8_000_000, sizes
    assert model.elements == ["La", "Zr", "O"]
    assert model.is_scaling_fitted
    assert model.acsf.short_cutoff == pytest.approx(6.0)          # angular functions within 6 Å
    assert model.cutoff == pytest.approx(claim["model"]["cutoff_A"])  # radial ones may reach further
    assert all(n > 0 for n in model.n_features.values())


def test_claimed_totals_follow_from_per_structure_errors(claim):
    test = claim["errors"]["test"]
    per = test["per_structure"]
    de = np.asarray(per["energy_error_meV_atom"])
    frmse = np.asarray(per["force_rmse_meV_A"])
    n = np.asarray(per["n_atoms"])
    assert len(de) == len(frmse) == len(n) == test["n_structures"]
    assert np.sqrt(np.mean(de ** 2)) == pytest.approx(test["energy_rmse_meV_atom"], rel=1e-4)
    # force RMSE over all components = sqrt(sum_s 3 n_s rmse_s^2 / sum_s 3 n_s)
    f_all = np.sqrt(np.sum(n * frmse ** 2) / np.sum(n)) / 1000.0
    assert f_all == pytest.approx(test["force_rmse_eV_A"], rel=1e-4)
    met = claim["target_met"]
    assert met["energy"] == (test["energy_rmse_meV_atom"] <= claim["target"]["energy_rmse_meV_atom"])
    assert met["forces"] == (test["force_rmse_eV_A"] <= claim["target"]["force_rmse_eV_A"])
    assert claim["command"].startswith("python benchmarks/train_la2zr2o7.py")


def test_reproduces_claimed_test_errors_on_subset(claim, subset, evaluation):
    idx, frames = subset
    per = claim["errors"]["test"]["per_structure"]
    de = 1000.0 * (evaluation["energy_pred_per_atom"] - evaluation["energy_ref_per_atom"])
    np.testing.assert_allclose(de, np.asarray(per["energy_error_meV_atom"])[idx], atol=2e-3, rtol=0)
    np.testing.assert_allclose(evaluation["force_rmse_per_structure_meV_A"],
                               np.asarray(per["force_rmse_meV_A"])[idx], atol=2e-2, rtol=1e-6)
    # the subset is a fair sample: its RMSEs are close to the claimed full-split values
    test = claim["errors"]["test"]
    assert evaluation["energy_rmse_meV_atom"] < 1.5 * test["energy_rmse_meV_atom"]
    assert evaluation["force_rmse_eV_A"] < 1.5 * test["force_rmse_eV_A"]
    assert set(evaluation["by_kind"]) == set(test["by_kind"])   # every kind is represented


def test_perfect_crystal_matches_teacher(model, claim):
    """The relaxed pyrochlore of the teacher (manifest) is a near-minimum of the model too."""
    from mdmlkit.systems.la2zr2o7 import data_dir
    from mdmlkit.systems.pyrochlore import conventional_cell

    relaxed = json.loads((data_dir() / "la2zr2o7" / "manifest.json").read_text())["relaxed"]
    atoms = conventional_cell(relaxed["a"], relaxed["x48f"])
    e, f = _predict(model, [atoms])
    tol = max(3.0 * claim["errors"]["test"]["energy_rmse_meV_atom"], 5.0)
    assert 1000.0 * abs(e[0] / len(atoms) - relaxed["energy_per_atom"]) < tol
    # site symmetry: La (16d, -3m), Zr (16c, -3m) and O' (8b, -43m) sites leave no vector
    # invariant, so their forces vanish exactly in the perfect crystal
    sym = np.array(atoms.get_chemical_symbols())
    on_centre = np.r_[np.flatnonzero(sym != "O"), np.arange(len(atoms) - 8, len(atoms))]
    assert np.abs(f[on_centre]).max() < 1e-8
    assert np.abs(f).max() < 20 * claim["errors"]["test"]["force_rmse_eV_A"]


def test_n2p2_files_and_export_reload_identically(model, model_dir, subset, tmp_path):
    from mdmlkit.potential import load_n2p2_model, save_n2p2_model

    frames = subset[1][:6]
    e_ref, f_ref = _predict(model, frames)
    shipped = load_n2p2_model(model_dir)                 # the n2p2 files that ship beside model.pt
    save_n2p2_model(model, tmp_path / "export")
    exported = load_n2p2_model(tmp_path / "export")
    for other in (shipped, exported):
        assert other.elements == model.elements
        e, f = _predict(other, frames)
        np.testing.assert_allclose(e, e_ref, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(f, f_ref, rtol=1e-10, atol=1e-10)
    for name in ("input.nn", "scaling.data"):
        assert (tmp_path / "export" / name).exists()


def test_float32_predictions_close_to_float64(model, subset):
    """The shipped model cast to float32 (angular moments included, zeta up to 8) predicts
    energies and forces about a hundred times closer to float64 than its test errors."""
    import copy

    import torch

    frames = subset[1][:12]
    e64, f64 = _predict(model, frames)
    e32, f32 = _predict(copy.deepcopy(model).to(torch.float32), frames)
    n = np.array([len(a) for a in frames])
    assert 1000.0 * np.abs((e32 - e64) / n).max() < 0.02            # meV/atom
    assert 1000.0 * np.abs(f32 - f64).max() < 0.5                    # meV/Å


def test_fused_kernels_match_eager(model, subset):
    """``HDNNPCalculator(compile="numba")`` (fused kernels, tabulated radial factors) gives
    the shipped model's energies, forces and stress on test structures of both cell sizes
    (vacancies and hot snapshots included) to ~1e-9 relative of the eager calculator."""
    from mdmlkit.potential import HDNNPCalculator

    fused = HDNNPCalculator(model, device="cpu", extrapolation="ignore", compile="numba")
    eager = HDNNPCalculator(model, device="cpu", extrapolation="ignore")
    frames = [a for a in subset[1] if len(a) == 88][:2] + [a for a in subset[1] if len(a) != 88][:2]
    for atoms in frames:
        res = []
        for calc in (fused, eager):
            a = atoms.copy()
            a.calc = calc
            res.append((a.get_potential_energy(), a.get_forces(), a.get_stress()))
        assert res[0][0] == pytest.approx(res[1][0], rel=1e-9, abs=1e-7)
        np.testing.assert_allclose(res[0][1], res[1][1], atol=1e-6)      # eV/Å
        np.testing.assert_allclose(res[0][2], res[1][2], atol=1e-8)      # eV/Å³


def _train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_la2zr2o7", REPO / "benchmarks" / "train_la2zr2o7.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv, message", [
    (["--drop-zeta-above", "4"], "give --init-model"),
    (["--init-model", "m.pt", "--drop-zeta-elements", "O"], "give both"),
    (["--init-model", "m.pt", "--drop-zeta-above", "4", "--drop-zeta-elements", "Ce"], "'Ce'"),
    (["--long-radial", "5"], "must exceed --rc"),
])
def test_train_script_rejects_inconsistent_pruning_options(argv, message, capsys):
    """Bad option combinations stop in the parser, before any data is read or model built."""
    with pytest.raises(SystemExit) as exc:
        _train_script().main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_train_script_work_dir_depends_on_pruned_elements():
    """Runs that prune different centre elements never resume each other's checkpoints."""
    mod = _train_script()
    base = ["--init-model", "m.pt", "--drop-zeta-above", "4"]
    dirs = {mod.default_work_dir(mod.build_parser().parse_args(base + extra))
            for extra in ([], ["--drop-zeta-elements", "O"], ["--drop-zeta-elements", "La", "Zr"])}
    assert len(dirs) == 3


def test_train_script_work_dir_depends_on_extra_splits(tmp_path):
    """A run with extra training splits, with other ones, or with a regenerated extra split
    (same name, other content) never resumes another run's checkpoint."""
    mod = _train_script()
    (tmp_path / "hot_md_train.extxyz.gz").write_bytes(b"first")
    base = ["--init-model", "m.pt", "--data", str(tmp_path)]

    def work(*extra):
        return mod.default_work_dir(mod.build_parser().parse_args(base + list(extra)))

    plain, hot = work(), work("--extra-train", "hot_md_train")
    assert plain != hot != work("--extra-val", "hot_md_train")
    assert plain == work()  # runs without extra splits keep their folder
    (tmp_path / "hot_md_train.extxyz.gz").write_bytes(b"second")
    assert work("--extra-train", "hot_md_train") != hot


def test_train_script_widen_needs_a_model_and_names_its_run():
    """--widen grows a trained model: without --init-model the parser refuses it; a widened run
    never resumes the checkpoint of the same run without it."""
    mod = _train_script()
    with pytest.raises(SystemExit) as exc:
        mod.main(["--widen", "128", "128"])
    assert exc.value.code == 2
    base = ["--init-model", "m.pt"]
    dirs = {mod.default_work_dir(mod.build_parser().parse_args(base + extra))
            for extra in ([], ["--widen", "128", "128"], ["--widen", "96", "96"])}
    assert len(dirs) == 3


def test_hot_error_decomposition_separates_bias_from_scatter():
    """benchmarks/la2zr2o7_hot_errors.py: errors = a known offset per trajectory + a known
    scatter per frame; the split into trajectory means and within-trajectory RMS recovers them."""
    import importlib.util

    from ase.build import bulk

    spec = importlib.util.spec_from_file_location(
        "hot_errors", Path(__file__).resolve().parents[2] / "benchmarks" / "la2zr2o7_hot_errors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    frames, errors, offsets, scatter = [], [], {"t0": 2.0, "t1": -4.0}, np.array([1.0, -1.0, 3.0, -3.0])
    for traj, off in offsets.items():
        for s in scatter:
            a = bulk("Cu", cubic=True)
            a.info.update(md_traj=traj, defect="none", cell="conv", T=2000.0)
            frames.append(a)
            errors.append(off + s)
    r = mod.decompose(frames, errors)
    assert r["n_frames"] == 8 and r["n_trajectories"] == 2
    assert r["rms_trajectory_mean_meV_atom"] == pytest.approx(np.sqrt((2.0 ** 2 + 4.0 ** 2) / 2))
    assert r["rms_within_trajectory_meV_atom"] == pytest.approx(np.sqrt(np.mean(scatter ** 2)))
    assert r["trajectories"]["t1"]["mean_error_meV_atom"] == pytest.approx(-4.0)
    assert r["energy_rmse_meV_atom"] ** 2 == pytest.approx(
        r["rms_trajectory_mean_meV_atom"] ** 2 + r["rms_within_trajectory_meV_atom"] ** 2)


def test_residual_fit_finds_what_only_the_extra_features_explain():
    """benchmarks/la2zr2o7_residual_fit.py: a residual made of a per-atom function of the
    extra features is removed by the fit that sees them, not by the one on the model's own
    features; ``_join`` keeps each atom with its structure, and the "select" split (when
    present) picks the iteration."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "residual_fit", Path(__file__).resolve().parents[2] / "benchmarks" / "la2zr2o7_residual_fit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    els = ["A", "B"]

    def split(n_structures):
        nat = rng.integers(3, 7, n_structures)
        d = {"G": {}, "sid": {}, "L": {"x": {}}, "nat": nat.astype(float), "kind": np.array(["k"] * n_structures)}
        resid = np.zeros(n_structures)
        for e in els:
            n_e = int(nat.sum())
            sid = np.repeat(np.arange(n_structures), nat)
            L = rng.normal(size=(n_e, 2))
            d["G"][e], d["L"]["x"][e], d["sid"][e] = rng.normal(size=(n_e, 3)), L, sid
            np.add.at(resid, sid, 0.01 * np.tanh(L[:, 0] - 0.5 * L[:, 1]))
        d["resid"] = resid
        return d

    a, b = split(60), split(40)
    joined = mod._join([a, b])
    assert len(joined["resid"]) == 100 and joined["sid"]["A"].max() == 99
    np.testing.assert_array_equal(joined["L"]["x"]["B"][-len(b["L"]["x"]["B"]):], b["L"]["x"]["B"])
    data = {"train": joined, "val": split(40), "test": split(40)}
    data["select"] = mod._join([data["val"], split(20)])
    without = mod.fit(data, els, None, hidden=8, iterations=400, seed=0)
    with_x = mod.fit(data, els, "x", hidden=8, iterations=400, seed=0)
    assert set(with_x["rmse_meV_atom"]) == {"train", "val", "test", "select"}
    assert with_x["rmse_meV_atom"]["test"] < 0.5 * without["rmse_meV_atom"]["test"]
    assert with_x["best_iteration"] > 0
