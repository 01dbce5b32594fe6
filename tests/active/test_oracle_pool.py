"""Tests of the on-disk FramePool, its use as an active-learning pool with a cached
oracle, and the shipped La2Zr2O7 pool / hot test readers."""
from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mdmlkit.active import ActiveLearningLoop, FramePool, Oracle, RandomQuery
from mdmlkit.active.features import structure_fingerprint
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import generate_set
from mdmlkit.errors import EmptyTrajectoryError, InputError, MalformedFileError, MissingFileError
from mdmlkit.potential import HDNNP
from mdmlkit.systems.la2zr2o7 import data_dir, load_hot_test, load_pool


@pytest.fixture(scope="module")
def frames():
    fr = emt_frames(7, "thermal", (300, 900), reps=(2, 1, 1), seed=5)
    for k, a in enumerate(fr):
        a.info.update(kind="thermal" if k % 2 else "md", T=300.0 + 100 * k, source=f"traj{k // 3}")
    return fr


@pytest.fixture
def pool_dir(frames, tmp_path):
    FramePool.write(frames[:4], tmp_path / "pool-00.npz")
    FramePool.write(frames[4:], tmp_path / "pool-01.npz")
    return tmp_path


def test_pool_round_trip_and_indexing(frames, pool_dir):
    pool = FramePool(pool_dir, cache_chunks=1)
    assert len(pool) == 7 and pool.n_chunks == 2 and "n_frames=7" in repr(pool)
    assert set(pool.columns) >= {"kind", "T", "source"}
    np.testing.assert_array_equal(pool.info["T"], [a.info["T"] for a in frames])
    assert list(pool.info["kind"]) == [a.info["kind"] for a in frames]
    for k, a in enumerate(frames):
        b = pool[k]
        np.testing.assert_array_equal(b.numbers, a.numbers)
        # float32 storage: positions within float32 resolution, cell and pbc exact
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(b.positions, a.positions.astype(np.float32))
        np.testing.assert_array_equal(b.cell.array, a.cell.array)
        assert b.calc is None and b.info["pool_index"] == k and b.info["source"] == a.info["source"]
    # the same frame always hashes the same (stable label-cache keys)
    assert structure_fingerprint(pool[5]) == structure_fingerprint(pool[5])
    assert [a.info["pool_index"] for a in pool[1:6:2]] == [1, 3, 5]
    assert [a.info["pool_index"] for a in pool[np.array([6, 0, 4])]] == [6, 0, 4]
    assert pool[-1].info["pool_index"] == 6
    mask = np.zeros(7, bool)
    mask[[2, 3]] = True
    assert [a.info["pool_index"] for a in pool[mask]] == [2, 3]
    assert [a.info["pool_index"] for a in pool] == list(range(7))
    assert [(s, len(c)) for s, c in pool.iter_chunks()] == [(0, 4), (4, 3)]
    single = FramePool(pool_dir / "pool-01.npz")
    assert len(single) == 3
    with pytest.raises(IndexError):
        pool[7]
    with pytest.raises(InputError):
        pool[np.array([0.5])]


def test_pool_bad_input(frames, tmp_path):
    with pytest.raises(MissingFileError):
        FramePool(tmp_path / "nope")
    with pytest.raises(MissingFileError):
        FramePool(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(MalformedFileError, match="bad.npz"):
        FramePool(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", numbers=np.zeros(2))
    with pytest.raises(MalformedFileError, match="lacks"):
        FramePool(tmp_path / "partial.npz")
    with pytest.raises(EmptyTrajectoryError):
        FramePool.write([], tmp_path / "e.npz")
    with pytest.raises(InputError):
        FramePool.write(frames, tmp_path / "x.txt")


def test_loop_runs_on_a_frame_pool_with_a_cached_oracle(frames, pool_dir, tmp_path):
    labelled_pool = emt_frames(10, "thermal", (300, 900), reps=(2, 1, 1), seed=6)
    FramePool.write(labelled_pool, tmp_path / "al" / "pool.npz")
    pool = FramePool(tmp_path / "al" / "pool.npz")
    test = emt_frames(3, "thermal", (300, 900), reps=(2, 1, 1), seed=7)
    model = HDNNP(generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1), hidden=(4,), seed=0)
    calls = []

    class Counting(EMT):
        def calculate(self, *a, **kw):
            calls.append(1)
            super().calculate(*a, **kw)

    def run(workdir):
        oracle = Oracle(Counting(), cache=tmp_path / "labels", oracle_id="emt")
        loop = ActiveLearningLoop(RandomQuery(seed=0), pool, model, oracle=oracle, initial=3, k=2,
                                  n_rounds=1, test=test, workdir=workdir, progress=False,
                                  trainer_kwargs={"max_epochs": 2, "batch_size": 4, "patience": None})
        loop.run()
        return loop

    first = run(tmp_path / "w1")
    assert len(first.labelled_) == 5 and len(calls) == 5
    second = run(tmp_path / "w2")            # another run (or strategy): labels come from the cache
    assert len(second.labelled_) == 5 and len(calls) == 5
    for a, b in zip(first.labelled_, second.labelled_, strict=True):
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())


def test_shipped_pool_and_hot_test_when_present():
    root = data_dir()
    if not any((root / "la2zr2o7_pool").glob("pool-*.npz")):
        pytest.skip("the La2Zr2O7 pool has not been generated")
    pool = load_pool()
    assert len(pool) > 1000
    info = pool.info
    assert {"perfect", "vacancy", "frenkel", "antisite"} <= set(info["kind"])
    assert info["T"].min() == 300 and info["T"].max() >= 2000
    assert np.all(info["d_min"] >= 0.5)
    a = pool[len(pool) // 2]
    assert a.calc is None and a.pbc.all() and len(a) in (21, 22, 86, 87, 88)
    if not (root / "la2zr2o7" / "hot_test.extxyz.gz").is_file():
        pytest.skip("the hot test set has not been generated")
    hot = load_hot_test()
    assert all(h.info["split"] == "hot_test" and h.info["T"] >= 2000 for h in hot)
    assert np.isfinite(hot[0].get_forces()).all()
