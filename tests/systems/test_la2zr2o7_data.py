"""Tests of data-set loading, labelling (checkpoint/resume/failures), splits, summary."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.errors import InconsistentFramesError, InputError, MissingLabelError, NonFiniteError, OracleError
from mdmlkit.io.frames import read_frames, write_frames
from mdmlkit.systems import la2zr2o7 as D
from mdmlkit.systems import pyrochlore as P
from mdmlkit.systems.teacher import resolve_teacher, teacher_info, toy_calculator

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "la2zr2o7"


class Flaky(Calculator):
    """Toy teacher wrapper: raises on structures with info['fail'] == 'raise', NaN on 'nan'.

    Counts its calls; ``stop_after`` simulates an interrupted run (KeyboardInterrupt).
    """

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.inner = toy_calculator()
        self.calls = 0
        self.stop_after = stop_after

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        mode = atoms.info.get("fail")
        if mode == "raise":
            raise RuntimeError("SCF did not converge")
        a = atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces(),
                        "stress": a.get_stress()}
        if mode == "nan":
            self.results["forces"] = self.results["forces"].copy()
            self.results["forces"][1, 2] = np.nan


def make_frames(n=12, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        at = P.primitive_cell(10.9, 0.36)
        at.rattle(0.05, seed=int(rng.integers(1 << 30)))
        at.info["kind"] = ["thermal", "strain", "vacancy"][k % 3]
        frames.append(at)
    return frames


def direct(atoms):
    a = atoms.copy()
    a.calc = toy_calculator()
    return a.get_potential_energy(), a.get_forces(), a.get_stress()


# ----------------------------------------------------------------------------- label

def test_label_matches_direct_calculation_and_keeps_input():
    frames = make_frames(5)
    before = [f.positions.copy() for f in frames]
    out = D.label(frames, toy_calculator(), progress=False)
    assert isinstance(out, D.LabelledFrames) and len(out) == 5 and out.indices == list(range(5))
    assert out.failures == {} and "n_labelled=5" in repr(out)
    for f, lab, pos in zip(frames, out, before):
        e, F, S = direct(f)
        assert lab.get_potential_energy() == pytest.approx(e)
        assert np.allclose(lab.get_forces(), F) and np.allclose(lab.get_stress(), S)
        assert lab.info["kind"] == f.info["kind"]
        assert f.calc is None and np.array_equal(f.positions, pos)
    D.validate_labelled(out, need=("energy", "forces", "stress"))


def test_label_nonperiodic_has_no_stress():
    mol = Atoms("O2", positions=[[0, 0, 0], [0, 0, 2.2]])
    out = D.label([mol], toy_calculator(), progress=False)
    assert "stress" not in out[0].calc.results
    D.validate_labelled(out, need=("energy", "forces", "stress"))   # stress not needed


def test_label_accepts_factory():
    out = D.label(make_frames(2), toy_calculator, progress=False)
    assert len(out) == 2


def test_failures_skip_records_and_keeps_others():
    frames = make_frames(8)
    frames[2].info["fail"] = "raise"
    frames[5].info["fail"] = "nan"
    out = D.label(frames, Flaky(), on_error="skip", progress=False, chunk_size=3)
    assert out.indices == [0, 1, 3, 4, 6, 7]
    assert set(out.failures) == {2, 5}
    assert "SCF did not converge" in out.failures[2] and "non-finite forces" in out.failures[5]


def test_failures_raise_names_structure_and_saves_progress(tmp_path):
    frames = make_frames(6)
    frames[4].info["fail"] = "raise"
    with pytest.raises(OracleError, match=r"structure 4 \(kind=strain\).*SCF"):
        D.label(frames, Flaky(), checkpoint=tmp_path / "ck", progress=False, chunk_size=10)
    frames[4].info["fail"] = None
    frames2 = make_frames(6)
    frames2[1].info["fail"] = "nan"
    with pytest.raises(NonFiniteError, match="structure 1"):
        D.label(frames2, Flaky(), progress=False)
    # the 4 structures labelled before the failure were saved: only 2 remain
    calc = Flaky()
    out = D.label(frames, calc, checkpoint=tmp_path / "ck", progress=False)
    assert len(out) == 6 and calc.calls == 2


def test_checkpoint_resume_after_interruption(tmp_path):
    frames = make_frames(10)
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        D.label(frames, Flaky(stop_after=7), checkpoint=ck, progress=False, chunk_size=3)
    assert len(list(ck.glob("chunk_*.extxyz"))) == 2          # 6 structures in 2 chunks
    assert not list(ck.glob(".*part*"))                         # no half-written files
    calc = Flaky()
    out = D.label(frames, calc, checkpoint=ck, progress=False, chunk_size=3)
    assert calc.calls == 4 and out.indices == list(range(10))
    for f, lab in zip(frames, out):
        e, F, S = direct(f)
        assert lab.get_potential_energy() == pytest.approx(e, abs=1e-6)
        assert np.allclose(lab.get_forces(), F, atol=1e-6)
        assert np.allclose(lab.get_stress(), S, atol=1e-6)
        assert "_label_index" not in lab.info
    # a finished checkpoint is reused without any calculation
    calc = Flaky()
    assert len(D.label(frames, calc, checkpoint=ck, progress=False)) == 10 and calc.calls == 0
    # different structures are refused
    with pytest.raises(InconsistentFramesError, match="different structures"):
        D.label(make_frames(10, seed=1), Flaky(), checkpoint=ck, progress=False)


def test_skipped_failures_are_remembered_on_resume(tmp_path):
    frames = make_frames(4)
    frames[1].info["fail"] = "raise"
    D.label(frames, Flaky(), checkpoint=tmp_path, on_error="skip", progress=False)
    calc = Flaky()
    out = D.label(frames, calc, checkpoint=tmp_path, on_error="skip", progress=False)
    assert calc.calls == 0 and set(out.failures) == {1}


def test_label_with_worker_processes(tmp_path):
    frames = make_frames(6)
    out = D.label(frames, toy_calculator, checkpoint=tmp_path, progress=False, chunk_size=2,
                  workers=2)
    assert out.indices == list(range(6))
    for f, lab in zip(frames, out):
        assert lab.get_potential_energy() == pytest.approx(direct(f)[0], abs=1e-6)


def test_label_bad_arguments():
    with pytest.raises(InputError, match="on_error"):
        D.label(make_frames(1), toy_calculator(), on_error="ignore")
    with pytest.raises(InputError, match="calculator"):
        D.label(make_frames(1), 42, progress=False)


# ----------------------------------------------------------------------------- validate

def test_validate_labelled_errors_name_structure_and_atom():
    out = D.label(make_frames(3), toy_calculator(), progress=False)
    unl = make_frames(3)
    with pytest.raises(MissingLabelError, match=r"data.xyz: structure 0 \(kind=thermal\).*no labels"):
        D.validate_labelled(unl, source="data.xyz")
    partial = [a.copy() for a in out]
    for a, b in zip(partial, out):
        a.calc = SinglePointCalculator(a, energy=b.get_potential_energy())
    with pytest.raises(MissingLabelError, match="structure 0.*no forces"):
        D.validate_labelled(partial)
    bad = [a.copy() for a in out]
    for a, b in zip(bad, out):
        F = b.get_forces().copy()
        a.calc = SinglePointCalculator(a, energy=b.get_potential_energy(), forces=F)
    bad[2].calc.results["forces"][7, 0] = np.inf
    with pytest.raises(NonFiniteError, match="structure 2.*atom 7"):
        D.validate_labelled(bad)
    stale = [a.copy() for a in out]
    for a, b in zip(stale, out):
        a.calc = b.calc
    stale[1].positions[0] += 0.1
    with pytest.raises(MissingLabelError, match="structure 1.*stale"):
        D.validate_labelled(stale)
    with pytest.raises(InputError, match="unknown label"):
        D.validate_labelled(out, need=("charges",))


# ----------------------------------------------------------------------------- splits

def test_split_labels_stratified_seeded_and_grouped():
    kinds = ["a"] * 500 + ["b"] * 100 + ["c"] * 40
    s = D.split_labels(kinds, seed=3)
    for kind, n in (("a", 500), ("b", 100), ("c", 40)):
        sub = s[np.array(kinds) == kind]
        assert abs((sub == "train").sum() - 0.8 * n) <= 1
        assert abs((sub == "val").sum() - 0.1 * n) <= 1
        assert abs((sub == "test").sum() - 0.1 * n) <= 1
    assert np.array_equal(s, D.split_labels(kinds, seed=3))
    assert not np.array_equal(s, D.split_labels(kinds, seed=4))
    # adding a kind does not reshuffle the others
    s2 = D.split_labels(kinds + ["d"] * 30, seed=3)
    assert np.array_equal(s2[:640], s)
    # groups (e.g. MD trajectories) stay in one split
    groups = [f"traj{k // 20}" for k in range(200)]
    sg = D.split_labels(["md"] * 200, seed=0, groups=groups)
    for g in set(groups):
        assert len(set(sg[np.array(groups) == g])) == 1
    assert set(sg) == {"train", "val", "test"}
    with pytest.raises(InputError):
        D.split_labels(kinds, fractions=(0.5, 0.2, 0.2))


# ----------------------------------------------------------------------------- files/summary

def test_write_read_roundtrip_gz(tmp_path):
    out = D.label(make_frames(4), toy_calculator(), progress=False)
    out[0].info.update(split="train", T=1200.0, strain=np.arange(6) * 0.01)
    path = write_frames(out, tmp_path / "x.extxyz.gz")
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"   # gzip magic
    # reproducible bytes: no time stamp or temporary file name in the gzip header
    again = write_frames(out, tmp_path / "y.extxyz.gz")
    assert again.read_bytes() == path.read_bytes()
    back = read_frames(path)
    assert len(back) == 4
    for a, b in zip(out, back):
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy())
        assert np.allclose(a.get_forces(), b.get_forces()) and np.allclose(a.get_stress(), b.get_stress())
    assert back[0].info["T"] == 1200.0 and np.allclose(back[0].info["strain"], np.arange(6) * 0.01)


def test_read_frames_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_frames(tmp_path / "nope.extxyz")
    bad = tmp_path / "bad.extxyz"
    bad.write_text("3\nLattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nO 0 0\n")
    with pytest.raises(D.MalformedFileError, match="bad.extxyz"):
        read_frames(bad)


def test_summarize_counts_and_statistics():
    out = D.label(make_frames(9), toy_calculator(), progress=False)
    for a, s in zip(out, ["train"] * 7 + ["val", "test"]):
        a.info["split"] = s
    summ = D.summarize(out)
    assert summ.n_structures == 9 and summ.by_kind == {"strain": 3, "thermal": 3, "vacancy": 3}
    assert summ.by_split == {"train": 7, "val": 1, "test": 1}
    assert summ.compositions == {"La4Zr4O14": 9}
    e = np.array([a.get_potential_energy() / len(a) for a in out])
    assert summ.energy_per_atom["mean"] == pytest.approx(e.mean())
    f = np.concatenate([a.get_forces().ravel() for a in out])
    assert summ.force_rms == pytest.approx(np.sqrt(np.mean(f ** 2)))
    assert "thermal" in str(summ) and "DatasetSummary" in repr(summ)
    assert D.summarize(make_frames(2)).n_unlabelled == 2


def test_load_la2zr2o7_from_custom_dir_and_env(tmp_path, monkeypatch):
    out = D.label(make_frames(9), toy_calculator(), progress=False)
    d = tmp_path / "la2zr2o7"
    for name, part in (("train", out[:6]), ("val", out[6:8]), ("test", out[8:])):
        write_frames(part, d / f"{name}.extxyz.gz")
    assert len(D.load_la2zr2o7("val", path=d)) == 2
    assert len(D.load_la2zr2o7("all", path=d)) == 9
    assert all(a.info["kind"] == "strain" for a in D.load_la2zr2o7("train", d, kinds=["strain"]))
    monkeypatch.setenv("MDMLKIT_DATA", str(tmp_path))
    assert D.data_dir() == tmp_path and len(D.load_la2zr2o7("test")) == 1
    with pytest.raises(InputError, match="split"):
        D.load_la2zr2o7("training", path=d)
    with pytest.raises(InputError, match="kind"):
        D.load_la2zr2o7("val", path=d, kinds=["nope"])
    with pytest.raises(FileNotFoundError, match="MDMLKIT_DATA"):
        D.load_la2zr2o7("train", path=tmp_path / "empty")


# ----------------------------------------------------------------------------- teacher spec

def test_resolve_teacher_specs():
    assert resolve_teacher("toy") is toy_calculator and resolve_teacher("emt-test") is toy_calculator
    assert resolve_teacher("mdmlkit.systems.teacher:toy_calculator") is toy_calculator
    assert resolve_teacher(toy_calculator) is toy_calculator
    for bad in ("nonexistent_pkg_xyz:f", "mdmlkit.systems.teacher:nothing", "vasp"):
        with pytest.raises(InputError):
            resolve_teacher(bad)
    info = teacher_info(toy_calculator())
    assert info["teacher"] == "toy-LennardJones" and info["teacher_version"].startswith("ase ")


def test_missing_chgnet_gives_install_hint(monkeypatch):
    import sys

    from mdmlkit.systems import teacher

    for mod in ("chgnet", "chgnet.model", "chgnet.model.dynamics"):
        monkeypatch.setitem(sys.modules, mod, None)   # import of these now fails
    with pytest.raises(ImportError, match=r"pip install mdmlkit\[teacher\]"):
        teacher.chgnet_calculator()
    factory = resolve_teacher("chgnet")
    with pytest.raises(teacher.TeacherUnavailableError):
        factory()


# ----------------------------------------------------------------------------- generator

def _generator():
    spec = importlib.util.spec_from_file_location("la2zr2o7_generate", SHIPPED / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generate_script_smoke_and_resume(tmp_path):
    gen = _generator()
    args = ["--n-structures", "30", "--teacher", "toy", "--out", str(tmp_path / "out"),
            "--work", str(tmp_path / "work"), "--no-progress", "--md-equil-steps", "5",
            "--md-interval", "2", "--max-force", "1e3"]
    assert gen.main(args) == 0
    frames = D.load_la2zr2o7("all", path=tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(frames) == 30 == sum(v["n_structures"] for v in manifest["files"].values())
    assert sum(gen.plan_counts(5400).values()) == 5400
    for a in frames:
        assert a.info["teacher"] == "toy-LennardJones" and a.info["split"] in D.SPLITS
        assert a.info["kind"] in {"eos", "strain", "thermal", "md", "vacancy", "frenkel", "antisite"}
        assert a.info["cell"] in ("prim", "conv") and len(a) in (20, 21, 22, 86, 87, 88)
    assert {a.info["kind"] for a in frames} >= {"thermal", "md", "vacancy", "frenkel", "antisite"}
    # the rerun resumes from the checkpoints and reproduces the files exactly
    before = {n: (tmp_path / "out" / n).read_bytes() for n in manifest["files"]}
    assert gen.main(args) == 0
    after = {n: (tmp_path / "out" / n).read_bytes() for n in manifest["files"]}
    assert before == after
    assert all(hashlib.sha256(before[n]).hexdigest() == v["sha256"]
               for n, v in manifest["files"].items())


# ----------------------------------------------------------------------------- shipped data

def test_shipped_data_set():
    if not (SHIPPED / "val.extxyz.gz").is_file():
        pytest.skip("shipped La2Zr2O7 data not generated yet")
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    n = {k: v["n_structures"] for k, v in manifest["files"].items()}
    assert sum(n.values()) >= 5000
    assert n["train.extxyz.gz"] > 7 * n["val.extxyz.gz"]
    assert sum(v["bytes"] for v in manifest["files"].values()) < 20e6
    val = D.load_la2zr2o7("val")
    assert len(val) == n["val.extxyz.gz"]
    for a in val:
        assert a.info["split"] == "val" and a.info["teacher"] == "CHGNet"
        assert {"teacher_version", "teacher_model", "kind", "cell", "T", "seed"} <= set(a.info)
        sym = a.get_chemical_symbols()
        assert sym.count("La") + sym.count("Zr") == (8 if a.info["cell"] == "prim" else 32)
        assert np.linalg.norm(a.get_forces(), axis=1).max() <= manifest["settings"]["max_force"]
    # no stoichiometric structure lies below the teacher's relaxed ground state
    e_min = manifest["relaxed"]["energy_per_atom"]
    stoich = [a for a in val if a.info["kind"] != "vacancy"]
    assert min(a.get_potential_energy() / len(a) for a in stoich) >= e_min - 1e-3


@pytest.mark.teacher
def test_label_with_chgnet_teacher(chgnet_calc):
    calc = chgnet_calc
    frames = make_frames(2)
    out = D.label(frames, calc, progress=False)
    D.validate_labelled(out, need=("energy", "forces", "stress"))
    info = teacher_info(calc)
    assert info["teacher"] == "CHGNet" and info["teacher_model"] not in ("", "unknown")
    # forces are the negative gradient of the energy (central finite difference)
    a = frames[0].copy()
    h = 1e-3
    e = []
    for sgn in (-1, 1):
        b = a.copy()
        b.positions[3, 1] += sgn * h
        b.calc = calc
        e.append(b.get_potential_energy())
    assert -(e[1] - e[0]) / (2 * h) == pytest.approx(out[0].get_forces()[3, 1], abs=0.05)


def test_start_cell_uses_the_data_sets_relaxed_lattice_and_defect_counts():
    import json

    import numpy as np

    from mdmlkit.errors import InputError
    from mdmlkit.systems.la2zr2o7 import RELAXED_LATTICE, data_dir, start_cell

    relaxed = json.loads((data_dir() / "la2zr2o7" / "manifest.json").read_text())["relaxed"]
    assert RELAXED_LATTICE["a0"] == relaxed["a"] and RELAXED_LATTICE["x48f"] == relaxed["x48f"]
    rng = np.random.default_rng(0)
    perfect, label = start_cell("perfect", "conv", 1000.0, rng)
    assert label == "none" and len(perfect) == 88
    a = RELAXED_LATTICE["a0"] * (1 + RELAXED_LATTICE["alpha_per_K"] * 1000.0)
    assert np.allclose(perfect.cell.lengths(), a)                       # thermal expansion applied
    vac, label = start_cell("vacancy", "conv", 300.0, rng, n_defects=2)
    assert label == "2xV_O" and vac.get_chemical_symbols().count("O") == 56 - 2
    anti, label = start_cell("antisite", "prim", 300.0, rng)
    assert label == "1xLa<->Zr" and sorted(anti.numbers) == sorted(start_cell("perfect", "prim", 300.0, rng)[0].numbers)
    with pytest.raises(InputError, match="kind"):
        start_cell("shear", "prim", 300.0, rng)


def test_hot_training_splits():
    """The labelled hot pool frames (generate_hot_train.py): files as the manifest says, every
    frame traceable to its pool frame, 2000-3000 K, the data set's force rule, and nothing
    shared with the hot test set or between the two splits."""
    if not (SHIPPED / "hot_train.extxyz.gz").is_file():
        pytest.skip("hot training frames not generated")
    manifest = json.loads((SHIPPED / "hot_train.json").read_text())
    frames = {s: D.load_la2zr2o7(s) for s in ("hot_train", "hot_val")}
    for s, fr in frames.items():
        entry = manifest["files"][s]
        assert len(fr) == entry["n_structures"] > 0
        assert hashlib.sha256((SHIPPED / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
        assert all(a.info["split"] == s and a.info["source"] == "pool" for a in fr)
        assert {float(a.info["T"]) for a in fr} == set(manifest["settings"]["temperatures"])
        assert max(np.linalg.norm(a.get_forces(), axis=1).max() for a in fr) <= manifest["settings"]["max_force"]
    idx = [int(a.info["pool_index"]) for fr in frames.values() for a in fr]
    assert len(set(idx)) == len(idx) == manifest["n_kept"] == manifest["n_labelled"] - len(manifest["dropped"])
    pool = D.load_pool()
    for a in frames["hot_val"][::10]:
        p = pool[int(a.info["pool_index"])]
        assert p.get_chemical_symbols() == a.get_chemical_symbols()
        np.testing.assert_allclose(a.positions, p.positions, atol=1e-5)
    hot_test = {hashlib.sha1(np.round(a.positions, 3).tobytes()).hexdigest() for a in D.load_hot_test()}
    assert not hot_test & {hashlib.sha1(np.round(a.positions, 3).tobytes()).hexdigest()
                           for fr in frames.values() for a in fr}


def test_teacher_md_training_frames():
    """hot_md_train: the hot test set's protocol with other seeds (generate_hot_test.py
    --seed ... --split hot_md_train): same cells and temperatures, once per seed, its own
    manifest with each seed's equilibration model, no shared frame."""
    from collections import Counter

    if not (SHIPPED / "hot_md_train.extxyz.gz").is_file():
        pytest.skip("teacher-MD training frames not generated")
    manifest = json.loads((SHIPPED / "hot_md_train.json").read_text())
    test_manifest = json.loads((SHIPPED / "hot_test.json").read_text())
    frames = D.load_la2zr2o7("hot_md_train")
    assert len(frames) == manifest["n_structures"]
    assert hashlib.sha256((SHIPPED / manifest["file"]).read_bytes()).hexdigest() == manifest["sha256"]
    seeds = manifest["settings"]["seeds"]
    assert not set(seeds) & set(test_manifest["settings"]["seeds"])
    assert {k: v for k, v in manifest["settings"].items() if k != "seeds"} == \
        {k: v for k, v in test_manifest["settings"].items() if k != "seeds"}
    assert sorted(manifest["equilibration_model"]) == sorted(map(str, seeds))
    assert manifest["complete"] and manifest["use"].startswith("training")
    assert test_manifest["use"].startswith("test only")
    assert all(a.info["split"] == "hot_md_train" and a.info["kind"] == "md_hot" for a in frames)
    assert {a.info["seed"] for a in frames} == set(seeds)
    hot_test = D.load_hot_test()
    key = lambda a: (a.info["cell"], a.info["defect"], a.info["T"])  # noqa: E731
    assert Counter(map(key, frames)) == Counter({k: len(seeds) * n
                                                  for k, n in Counter(map(key, hot_test)).items()})
    seen = {hashlib.sha1(np.round(a.positions, 3).tobytes()).hexdigest() for a in hot_test}
    assert not seen & {hashlib.sha1(np.round(a.positions, 3).tobytes()).hexdigest() for a in frames}


def test_hot_generator_refuses_to_finish_a_seed_with_another_model(tmp_path):
    """A seed folder started with one equilibration model refuses another ``--model``
    (naming both) before any teacher is built or any file written."""
    import importlib.util

    from mdmlkit.errors import CheckpointMismatchError

    spec = importlib.util.spec_from_file_location("ght", SHIPPED / "generate_hot_test.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    seed_dir = tmp_path / "work" / "seed7"
    seed_dir.mkdir(parents=True)
    (seed_dir / "equilibration_model.json").write_text(json.dumps({"model": "old", "sha256": "0" * 64}))
    (seed_dir / "hot_00.extxyz").write_text("")
    out = tmp_path / "out.extxyz.gz"
    with pytest.raises(CheckpointMismatchError, match="equilibrated with old"):
        gen.main(["--seed", "7", "--work", str(tmp_path / "work"), "--out", str(out), "--split", "x"])
    assert not out.exists() and not (tmp_path / "x.json").exists()


def test_thin_hot_runs_keeps_cool_runs_and_every_nth_hot_frame():
    """A temperature-skewed view of a pool: every frame at <= cool_max_T, one in `stride` of
    each hotter run in step order (starting at its first frame, whatever the storage order);
    stride 1 is the whole pool; bad strides and pools without the columns are refused."""
    info = {"T": np.array([300.0] * 5 + [2000.0] * 7 + [1000.0] * 2 + [3000.0] * 3),
            "run": np.array([0] * 5 + [1] * 7 + [2] * 2 + [3] * 3),
            "step": np.array([0, 3, 6, 9, 12, 18, 0, 3, 6, 9, 12, 15, 0, 3, 6, 0, 3])}
    assert D.thin_hot_runs(info, 1).tolist() == list(range(17))
    kept = D.thin_hot_runs(info, 3)
    # runs 1 and 3 stored out of order: run 1 keeps steps 0, 9, 18 (rows 6, 9, 5), run 3 step 0
    assert kept.tolist() == [0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 15]
    assert D.thin_hot_runs(info, 3, cool_max_T=2500.0).tolist() == list(range(14)) + [15]
    with pytest.raises(InputError, match="positive integer"):
        D.thin_hot_runs(info, 0)
    with pytest.raises(InputError, match=r"no info column\(s\) \['run'\]"):
        D.thin_hot_runs({"T": info["T"], "step": info["step"]}, 2)
    pool = D.load_pool()                      # the shipped pool: 14 cells x 7 temperatures
    kept = D.thin_hot_runs(pool.info, 8)
    T = pool.info["T"][kept]
    assert (T <= 1000).sum() == (pool.info["T"] <= 1000).sum()
    for r in np.unique(pool.info["run"][pool.info["T"] > 1000]):
        n = int((pool.info["run"] == r).sum())
        assert int((pool.info["run"][kept] == r).sum()) == -(-n // 8)
