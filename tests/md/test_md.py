"""Heating MD: protocol, frames, resume, energy conservation, thermostats, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.cluster import Icosahedron

from mdmlkit.errors import (
    CheckpointMismatchError,
    EmptyTrajectoryError,
    InputError,
    MalformedFileError,
    MissingLabelError,
    NonFiniteError,
    UnknownElementError,
    UnstableDynamicsError,
)
from mdmlkit.md.heating import HeatingSettings, heat, heat_many
from mdmlkit.md.trajectory import INFO_KEYS, frame_table, read_trajectory
from mdmlkit.systems.cu_clusters import make_cluster

pytest.importorskip("asap3")


@pytest.fixture(scope="module")
def cu13():
    return make_cluster(13, kind="icosahedron")


@pytest.fixture(scope="module")
def cu55():
    return make_cluster(55, kind="icosahedron")


def _short(atoms, path=None, **kw):
    args = dict(t_start=300, t_end=500, rate_K_per_ps=100, sample_every=20, checkpoint_every=4,
                progress=False, trajectory=path)
    args.update(kw)
    return heat(atoms, "asap3", **args)


def test_frames_follow_the_protocol(cu13, tmp_path):
    res = _short(cu13, tmp_path / "run.extxyz", seed=3)
    t = frame_table(res.frames)
    assert set(t) == set(INFO_KEYS)
    n_steps = 1000  # 200 K at 100 K/ps = 2 ps = 1000 steps of 2 fs
    np.testing.assert_array_equal(t["step"], np.arange(0, n_steps + 1, 20))
    np.testing.assert_allclose(t["time_fs"], 2.0 * t["step"])
    np.testing.assert_allclose(t["T_target"], 300 + 200 * t["step"] / n_steps)
    np.testing.assert_allclose(t["E_tot"] - t["E_pot"],
                               1.5 * 13 * units.kB * t["T_kinetic"], rtol=1e-6)
    assert (t["run_id"] == "Cu13_s3").all() and (t["seed"] == 3).all() and (t["n_atoms"] == 13).all()
    assert res.complete and res.path.exists() and "Cu13_s3" in repr(res)
    # nothing but the finished trajectory and its settings sidecar is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.extxyz", "run.extxyz.settings.json"]
    again = read_trajectory(res.path)
    assert len(again) == len(res.frames) == 51


def test_same_seed_same_run_other_seed_differs(cu13):
    a = _short(cu13, seed=1)
    b = _short(cu13, seed=1)
    c = _short(cu13, seed=2)
    np.testing.assert_array_equal(a.frames[-1].positions, b.frames[-1].positions)
    assert not np.allclose(a.frames[-1].positions, c.frames[-1].positions)


class _Crash(RuntimeError):
    pass


def test_interrupted_run_resumes_to_identical_trajectory(cu55, tmp_path):
    _short(cu55, tmp_path / "ref.extxyz")                  # uninterrupted reference

    def crash(frame):
        if frame.info["step"] == 620:   # between checkpoints (every 4 frames = 80 steps)
            raise _Crash

    path = tmp_path / "run.extxyz"
    with pytest.raises(_Crash):
        _short(cu55, path, callback=crash)
    assert not path.exists()                                   # never half-written
    assert (tmp_path / "run.extxyz.ckpt.npz").exists()
    res = _short(cu55, path)
    assert res.resumed_from_step == 560 and res.complete
    assert path.read_bytes() == (tmp_path / "ref.extxyz").read_bytes()
    # a finished run is returned, not rerun
    assert _short(cu55, path).skipped


def test_max_steps_stops_at_a_checkpoint_and_continues(cu13, tmp_path):
    ref = _short(cu13, tmp_path / "ref.extxyz")
    path = tmp_path / "run.extxyz"
    part = _short(cu13, path, max_steps=300)
    assert not part.complete and part.frames[-1].info["step"] == 320 and not path.exists()
    full = _short(cu13, path)
    assert full.complete and full.resumed_from_step == 320
    assert path.read_bytes() == (tmp_path / "ref.extxyz").read_bytes()
    assert len(ref.frames) == len(full.frames)


def test_resume_with_other_settings_is_refused(cu13, tmp_path):
    path = tmp_path / "run.extxyz"
    _short(cu13, path, max_steps=100)
    with pytest.raises(CheckpointMismatchError, match="t_end"):
        _short(cu13, path, t_end=600)
    res = _short(cu13, path, t_end=600, resume=False)   # explicit restart works
    assert res.complete and res.frames[-1].info["T_target"] == pytest.approx(600)


def test_finished_run_with_other_settings_is_refused_or_overwritten(cu13, tmp_path):
    path = tmp_path / "run.extxyz"
    _short(cu13, path)
    for change, name in ((dict(t_start=400, t_end=600), "t_start"), (dict(friction=0.05), "friction"),
                         (dict(thermostat="bussi"), "thermostat"), (dict(timestep_fs=1.0), "timestep_fs"),
                         (dict(sample_every=10), "sample_every")):
        with pytest.raises(CheckpointMismatchError, match=name):
            _short(cu13, path, **change)
    assert _short(cu13, path).skipped                       # same settings: returned unchanged
    res = _short(cu13, path, t_start=400, t_end=600, overwrite=True)
    assert res.complete and not res.skipped
    assert res.frames[0].info["T_target"] == pytest.approx(400)
    assert _short(cu13, path, t_start=400, t_end=600).skipped


def test_ase_emt_engine_runs(cu13):
    res = heat(cu13, "ase", 300, 320, rate_K_per_ps=100, sample_every=20, progress=False)
    assert len(res.frames) == 6 and res.frames[-1].info["E_pot"] > 0


def test_heat_many_runs_each_size_and_seed_once(tmp_path):
    kw = dict(settings=HeatingSettings(t_start=300, t_end=340, rate_K_per_ps=200, sample_every=25),
              progress=False)
    first = heat_many([13, 14], seeds=[0, 1], outdir=tmp_path, **kw)
    assert [r.run_id for r in first] == ["Cu13_auto_s0", "Cu13_auto_s1", "Cu14_auto_s0",
                                         "Cu14_auto_s1"]
    assert not any(r.skipped for r in first)
    second = heat_many([13, 14], seeds=[0, 1], outdir=tmp_path, **kw)
    assert all(r.skipped for r in second)
    np.testing.assert_array_equal(first[3].frames[-1].positions, second[3].frames[-1].positions)


# ------------------------------------------------------------------ bad input
def test_cu_potential_refuses_other_elements():
    with pytest.raises(UnknownElementError, match="Au"):
        heat(Icosahedron("Au", 2), "asap3", progress=False)


def test_nan_positions_are_refused(cu13):
    bad = cu13.copy()
    bad.positions[4, 1] = np.nan
    with pytest.raises(NonFiniteError, match="atoms \\[4\\]"):
        heat(bad, "asap3", progress=False)


def test_blown_up_dynamics_names_the_step(cu13):
    bad = cu13.copy()
    bad.positions[1] = bad.positions[0] + [0.8, 0.0, 0.0]   # two atoms far too close
    with pytest.raises(UnstableDynamicsError, match="at step \\d+"):
        heat(bad, "asap3", 300, 400, sample_every=20, progress=False)


def test_bad_protocols(cu13):
    with pytest.raises(InputError, match="thermostat"):
        heat(cu13, thermostat="berendsen", progress=False)
    with pytest.raises(InputError, match="duration_ps"):
        heat(cu13, t_start=500, t_end=500, progress=False)
    with pytest.raises(InputError, match="positive"):
        heat(cu13, t_start=-5, progress=False)
    for bad, match in ((dict(sample_every=2.5), "sample_every must be an integer"),
                       (dict(t_start="300"), "t_start must be a number"),
                       (dict(seed="abc"), "seed must be an integer"),
                       (dict(max_steps=-5), "max_steps must be an integer >= 1"),
                       (dict(friction=float("nan")), "friction must be finite")):
        with pytest.raises(InputError, match=match):
            heat(cu13, progress=False, **bad)
    with pytest.raises(InputError, match="sample_every"):
        HeatingSettings(sample_every=2.5)


def test_overlapping_atoms_name_the_pair(cu13):
    from mdmlkit.errors import AtomsTooCloseError

    bad = cu13.copy()
    bad.positions[5] = bad.positions[2] + [0.1, 0.0, 0.0]
    with pytest.raises(AtomsTooCloseError, match="atoms 2 and 5 are 0.100 Å apart"):
        heat(bad, "asap3", progress=False)


def test_read_trajectory_errors(cu13, tmp_path):
    with pytest.raises(FileNotFoundError):
        read_trajectory(tmp_path / "missing.extxyz")
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    with pytest.raises(EmptyTrajectoryError, match="empty.extxyz"):
        read_trajectory(empty)
    junk = tmp_path / "junk.extxyz"
    junk.write_text("this is\nnot a trajectory\n")
    with pytest.raises(MalformedFileError, match="junk.extxyz"):
        read_trajectory(junk)
    res = _short(cu13, tmp_path / "ok.extxyz")
    one = tmp_path / "one.extxyz"
    import ase.io
    ase.io.write(one, res.frames[0])
    assert len(read_trajectory(one)) == 1
    with pytest.raises(EmptyTrajectoryError, match="1 frame"):
        read_trajectory(one, min_frames=2)
    # NaN coordinates in frame 2 of a file
    lines = (tmp_path / "ok.extxyz").read_text().splitlines()
    per = 13 + 2
    row = 2 * per + 2 + 5
    parts = lines[row].split()
    lines[row] = " ".join([parts[0], "nan"] + parts[2:])
    nanf = tmp_path / "nan.extxyz"
    nanf.write_text("\n".join(lines) + "\n")
    with pytest.raises(NonFiniteError, match="frame 2"):
        read_trajectory(nanf)


def test_frame_table_needs_labels(cu13):
    with pytest.raises(MissingLabelError, match="frame 0"):
        frame_table([cu13])
    with pytest.raises(EmptyTrajectoryError):
        frame_table([])
