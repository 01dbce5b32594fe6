"""Reliability trials in small: kill-and-resume (SIGKILL), damaged files, changed settings.

Each resumable run (heating MD, Trainer, ActiveLearningLoop) is killed with SIGKILL in
a fresh interpreter at a fixed point, resumed here, and compared with an uninterrupted
run: nothing lost, nothing duplicated, identical results.  Truncated checkpoints,
models and state files must raise :mod:`mdmlkit.errors` exceptions naming the file (or,
for the active-learning loop, fall back to the previous good checkpoint), and resuming
with other settings must be refused naming the setting.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mdmlkit.errors import (
    CheckpointFallbackWarning,
    CheckpointMismatchError,
    CorruptCheckpointError,
    MalformedFileError,
    MissingFileError,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*constant over the data:UserWarning")

HERE = Path(__file__).resolve().parent
TRAIN = {"max_epochs": 3, "batch_size": 4, "patience": None, "lr": 5e-3}


def _run_killed(code: str, cwd: Path) -> None:
    """Run ``code`` in a fresh interpreter that must end by SIGKILL (sent by itself)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    script = "import os, signal\nimport test_reliability as T\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# ============================================================================ heating MD
def cu13():
    from mdmlkit.systems.cu_clusters import make_cluster

    return make_cluster(13, kind="icosahedron")


def heat_short(atoms, path, **kw):
    from mdmlkit.md.heating import heat

    args = dict(t_start=300, t_end=500, rate_K_per_ps=100, sample_every=20, checkpoint_every=4,
                progress=False, trajectory=path)
    args.update(kw)
    return heat(atoms, "asap3", **args)


@pytest.fixture(scope="module")
def heat_ref(tmp_path_factory):
    pytest.importorskip("asap3")
    path = tmp_path_factory.mktemp("heat") / "ref.extxyz"
    heat_short(cu13(), path)
    return path


def test_heat_killed_resumes_to_the_identical_trajectory(heat_ref, tmp_path):
    _run_killed("""
        def kill(frame):
            if frame.info["step"] == 620:        # between checkpoints (every 80 steps)
                os.kill(os.getpid(), signal.SIGKILL)
        T.heat_short(T.cu13(), "run.extxyz", callback=kill)
    """, tmp_path)
    path = tmp_path / "run.extxyz"
    assert not path.exists() and (tmp_path / "run.extxyz.ckpt.npz").is_file()
    res = heat_short(cu13(), path)
    assert res.resumed_from_step == 560 and res.complete
    assert path.read_bytes() == heat_ref.read_bytes()          # nothing lost or duplicated


def test_heat_refuses_other_settings_and_reruns_on_request(heat_ref, tmp_path):
    path = tmp_path / "run.extxyz"
    shutil.copy(heat_ref, path)
    shutil.copy(heat_ref.with_name("ref.extxyz.settings.json"), tmp_path / "run.extxyz.settings.json")
    assert heat_short(cu13(), path).skipped
    with pytest.raises(CheckpointMismatchError, match=r"run.extxyz.*friction: 0.005 \(saved\) vs 0.05"):
        heat_short(cu13(), path, friction=0.05)
    with pytest.raises(CheckpointMismatchError, match="t_start.*t_end"):
        heat_short(cu13(), path, t_start=400, t_end=700)
    # a trajectory without its sidecar (older mdmlkit) is checked against its frames
    (tmp_path / "run.extxyz.settings.json").unlink()
    with pytest.raises(CheckpointMismatchError, match="t_end: 500.0 \\(saved\\) vs 700.0"):
        heat_short(cu13(), path, t_end=700)
    res = heat_short(cu13(), path, t_end=700, overwrite=True)
    assert res.complete and res.frames[-1].info["T_target"] == pytest.approx(700)
    assert heat_short(cu13(), path, t_end=700).skipped
    path.unlink()                 # a sidecar left alone holds nothing to resume: no refusal
    assert heat_short(cu13(), path, t_end=600).complete


def test_heat_many_checks_every_finished_run(tmp_path):
    pytest.importorskip("asap3")
    from mdmlkit.md.heating import HeatingSettings, heat_many

    st = HeatingSettings(t_start=300, t_end=340, rate_K_per_ps=200, sample_every=25)
    heat_many([13], [0, 1], outdir=tmp_path, settings=st, progress=False)
    other = HeatingSettings(t_start=300, t_end=340, rate_K_per_ps=200, sample_every=25,
                            thermostat="bussi")
    with pytest.raises(CheckpointMismatchError, match="Cu13_auto_s0.extxyz.*thermostat"):
        heat_many([13], [0, 1], outdir=tmp_path, settings=other, progress=False)
    again = heat_many([13], [0, 1], outdir=tmp_path, settings=other, progress=False, overwrite=True)
    assert not any(r.skipped for r in again)
    assert all(r.skipped for r in heat_many([13], [0, 1], outdir=tmp_path, settings=other,
                                            progress=False))


def test_heat_damaged_files_name_the_file(heat_ref, tmp_path):
    path = tmp_path / "run.extxyz"
    heat_short(cu13(), path, max_steps=300)                  # stopped at a checkpoint
    side = tmp_path / "run.extxyz.settings.json"
    ckpt = tmp_path / "run.extxyz.ckpt.npz"
    saved = side.read_bytes()
    _truncate(side)
    with pytest.raises(CorruptCheckpointError, match="run.extxyz.settings.json"):
        heat_short(cu13(), path)
    side.write_bytes(saved)
    _truncate(ckpt)
    with pytest.raises(MalformedFileError, match="run.extxyz.ckpt.npz.*delete it"):
        heat_short(cu13(), path)
    res = heat_short(cu13(), path, resume=False)
    assert res.complete and path.read_bytes() == heat_ref.read_bytes()


# ============================================================================ Trainer
def trainer_setup():
    from cuni_data import emt_frames

    from mdmlkit.descriptors import generate_set
    from mdmlkit.potential import HDNNP

    sfs = generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)
    frames = emt_frames(10, seed=0)
    return HDNNP(sfs, hidden=(4,), seed=0), frames[:8], frames[8:]


def trainer_kw(**extra):
    return dict(lr=5e-3, batch_size=4, max_epochs=5, patience=None, seed=1, progress=False,
                **extra)


@pytest.fixture(scope="module")
def trainer_ref(tmp_path_factory):
    from mdmlkit.potential.training import Trainer

    model, train, val = trainer_setup()
    t = Trainer(model, checkpoint_dir=tmp_path_factory.mktemp("tref"), **trainer_kw()).fit(train, val)
    return t


def _strip(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


def test_trainer_killed_resumes_to_the_same_weights(trainer_ref, tmp_path):
    import torch

    from mdmlkit.potential.training import Trainer

    _run_killed("""
        from mdmlkit.potential.training import Trainer
        def kill(trainer, record):
            if record["epoch"] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        model, train, val = T.trainer_setup()
        Trainer(model, checkpoint_dir="run", callbacks=[kill], **T.trainer_kw()).fit(train, val)
    """, tmp_path)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["epoch"] == 3
    model, train, val = trainer_setup()
    t = Trainer(model, checkpoint_dir=tmp_path / "run", **trainer_kw()).fit(train, val, resume=True)
    assert _strip(t.history_) == _strip(trainer_ref.history_)
    for (k, a), b in zip(model.state_dict().items(), trainer_ref.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_trainer_damaged_or_mismatched_checkpoint(trainer_ref, tmp_path):
    from mdmlkit.potential.training import Trainer

    run = tmp_path / "run"
    shutil.copytree(trainer_ref.checkpoint_dir, run)
    model, train, val = trainer_setup()
    with pytest.raises(CheckpointMismatchError, match="lr: 0.005 \\(saved\\) vs 0.01"):
        Trainer(model, checkpoint_dir=run, **{**trainer_kw(), "lr": 1e-2}).fit(train, val, resume=True)
    with pytest.raises(CheckpointMismatchError, match="training data"):
        Trainer(model, checkpoint_dir=run, **trainer_kw()).fit(train[:6], val, resume=True)
    # a longer run may continue a shorter one
    longer = Trainer(model, checkpoint_dir=run, **{**trainer_kw(), "max_epochs": 6})
    assert len(longer.fit(train, val, resume=True).history_) == 6
    _truncate(run / "checkpoint.pt")
    with pytest.raises(CorruptCheckpointError, match=f"{run / 'checkpoint.pt'}.*fit\\(resume=False\\)"):
        Trainer(model, checkpoint_dir=run, **trainer_kw()).fit(train, val, resume=True)
    Trainer(model, checkpoint_dir=run, **trainer_kw()).fit(train, val, resume=False)   # afresh


def test_damaged_model_file_names_the_file(tmp_path):
    from mdmlkit.potential import HDNNP

    model, *_ = trainer_setup()
    path = model.save(tmp_path / "model.pt")
    assert HDNNP.load(path).config() == model.config()
    _truncate(path)
    with pytest.raises(CorruptCheckpointError, match="model.pt.*truncated or unreadable"):
        HDNNP.load(path)
    path.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="model.pt"):
        HDNNP.load(path)
    with pytest.raises(MissingFileError, match="missing.pt"):
        HDNNP.load(tmp_path / "missing.pt")


# ============================================================================ active learning
def loop_setup(workdir, oracle=None, trainer_kwargs=None, **kw):
    from ase.calculators.emt import EMT

    from mdmlkit.active import ActiveLearningLoop, RandomQuery
    from mdmlkit.active.synthetic import emt_frames
    from mdmlkit.descriptors import generate_set
    from mdmlkit.potential import HDNNP

    sfs = generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)
    pool = emt_frames(12, "thermal", (300, 900), reps=(2, 1, 1), seed=11)
    test = emt_frames(4, "thermal", (300, 900), reps=(2, 1, 1), seed=13)
    args = dict(initial=3, k=2, n_rounds=2, test=test, workdir=workdir, progress=False,
                trainer_kwargs=TRAIN if trainer_kwargs is None else trainer_kwargs)
    args.update(kw)
    return ActiveLearningLoop(RandomQuery(seed=0), pool, HDNNP(sfs, hidden=(4,), seed=0),
                              oracle=EMT() if oracle is None else oracle, **args)


def killing_oracle(after_calls: int):
    """An EMT oracle (same identity as EMT's) that SIGKILLs its process on call ``after_calls + 1``."""
    from ase.calculators.emt import EMT

    from mdmlkit.active import Oracle

    class Killer(EMT):
        calls = 0

        def calculate(self, *args, **kwargs):
            Killer.calls += 1
            if Killer.calls > after_calls:
                os.kill(os.getpid(), signal.SIGKILL)
            super().calculate(*args, **kwargs)

    return Oracle(Killer(), oracle_id=Oracle(EMT()).oracle_id)


def _chosen(loop):
    return [(s["round"], s["pool_index"], s["status"]) for s in loop.selections_]


def _assert_same_loop(loop, ref):
    assert _chosen(loop) == _chosen(ref)
    idx = [a.info["al_pool_index"] for a in loop.labelled_]
    assert len(idx) == len(set(idx)) == 3 + 2 + 2                   # nothing lost or duplicated
    assert sorted(idx) == sorted(np.flatnonzero(loop.pool_status_ == "labelled").tolist())
    assert loop.n_oracle_calls_ == ref.n_oracle_calls_
    lc, lr = loop.learning_curve(), ref.learning_curve()
    np.testing.assert_array_equal(lc["n_labelled"], lr["n_labelled"])
    np.testing.assert_allclose(lc["force_rmse_meV_A"], lr["force_rmse_meV_A"], rtol=1e-9)


@pytest.fixture(scope="module")
def loop_ref(tmp_path_factory):
    loop = loop_setup(tmp_path_factory.mktemp("al") / "ref")
    loop.run()
    return loop


def test_loop_killed_while_labelling_resumes_identically(loop_ref, tmp_path):
    _run_killed("T.loop_setup('work', oracle=T.killing_oracle(3 + 2 + 1)).run()", tmp_path)
    loop = loop_setup(tmp_path / "work")
    loop.run()
    _assert_same_loop(loop, loop_ref)


@pytest.mark.slow
def test_loop_killed_while_training_resumes_identically(loop_ref, tmp_path):
    _run_killed("""
        n = {"epochs": 0}
        def kill(trainer, record):
            n["epochs"] += 1
            if n["epochs"] == 3 * 2 + 2:              # epoch 2 of round 2's training
                os.kill(os.getpid(), signal.SIGKILL)
        T.loop_setup("work", trainer_kwargs={**T.TRAIN, "callbacks": [kill]}).run()
    """, tmp_path)
    ckpt = tmp_path / "work" / "trainer_r0002" / "checkpoint.pt"
    assert ckpt.is_file()
    work2 = tmp_path / "work2"
    shutil.copytree(tmp_path / "work", work2)
    loop = loop_setup(tmp_path / "work")
    loop.run()
    _assert_same_loop(loop, loop_ref)
    # a damaged round checkpoint: that round is trained afresh, with the same result
    _truncate(work2 / "trainer_r0002" / "checkpoint.pt")
    loop = loop_setup(work2)
    with pytest.warns(CheckpointFallbackWarning, match="checkpoint.pt.*afresh"):
        loop.run()
    _assert_same_loop(loop, loop_ref)


@pytest.mark.parametrize("damage", ["state", "labelled", "model"])
def test_loop_falls_back_to_the_previous_checkpoint(loop_ref, tmp_path, damage):
    import json

    work = tmp_path / "work"
    shutil.copytree(loop_ref.workdir, work)
    state = json.loads((work / "state.json").read_text())
    prev = json.loads((work / "state.prev.json").read_text())
    assert (state["round"], state["phase"]) == (2, "trained")
    assert (prev["round"], prev["phase"]) == (2, "labelled")
    target = {"state": "state.json", "labelled": state["labelled_file"],
              "model": state["model_file"]}[damage]
    _truncate(work / target)
    loop = loop_setup(work)
    with pytest.warns(CheckpointFallbackWarning, match=f"{target}"):
        assert loop.load_checkpoint()
    assert (loop.round_, loop.phase_, len(loop.labelled_)) == (2, "labelled", 7)
    loop.run()                                     # round 2 is trained again
    _assert_same_loop(loop, loop_ref)
    # the next commits are complete again: no warning on the next resume
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFallbackWarning)
        assert loop_setup(work).load_checkpoint()


def test_loop_with_no_readable_checkpoint_or_other_settings(loop_ref, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(loop_ref.workdir, work)
    with pytest.raises(CheckpointMismatchError, match="different set-up.*k: 2 \\(saved\\) vs 3"):
        loop_setup(work, k=3).run()
    with pytest.raises(CheckpointMismatchError, match="trainer_kwargs"):
        loop_setup(work, trainer_kwargs={**TRAIN, "max_epochs": 4}).run()
    _truncate(work / "state.json")
    (work / "state.prev.json").write_text("{")
    with pytest.raises(CorruptCheckpointError, match="state.json.*state.prev.json.*resume=False"):
        loop_setup(work).run()
    loop = loop_setup(work)
    loop.run(resume=False)                          # starts afresh, same result
    _assert_same_loop(loop, loop_ref)
