"""Tests of the label cache and the cached, parallel, fault-tolerant Oracle."""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mdmlkit.active.labelcache import LabelCache, label_key, oracle_identity
from mdmlkit.active.oracle import Oracle, as_oracle
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.errors import InputError
from mdmlkit.systems.teacher import toy_calculator


@pytest.fixture(scope="module")
def frames():
    return emt_frames(6, "thermal", (300, 900), reps=(1, 1, 1), seed=3)


class Flaky(EMT):
    """EMT that raises on structures whose first x coordinate is in ``bad``, NaN on ``nan``."""

    def __init__(self, bad=(), nan=(), interrupt_after=None, sleep=0.0):
        super().__init__()
        self.bad, self.nan, self.calls = set(bad), set(nan), 0
        self.interrupt_after, self.sleep = interrupt_after, sleep

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt     # the job is killed mid-labelling
        if self.sleep:
            time.sleep(self.sleep)
        x = round(float(atoms.positions[0, 0]), 6)
        if x in self.bad:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes or ["positions"])
        if x in self.nan:
            self.results["energy"] = np.nan


def _x(a):
    return round(float(a.positions[0, 0]), 6)


def test_cache_hit_is_bit_identical_and_skips_the_calculator(frames, tmp_path):
    calc = Flaky()
    first = Oracle(calc, cache=tmp_path).label(frames)
    assert calc.calls == len(frames) and not first.cached and len(first.labelled) == len(frames)
    again = Oracle(calc, cache=LabelCache(tmp_path))
    res = again.label(frames)
    assert calc.calls == len(frames) and res.cached == set(range(len(frames)))
    assert again.n_cache_hits == len(frames) and again.n_calls == 0
    for k, a in enumerate(frames):
        direct = a.copy()
        direct.calc = EMT()
        assert res.labelled[k].get_potential_energy() == direct.get_potential_energy()
        np.testing.assert_array_equal(res.labelled[k].get_forces(), direct.get_forces())
        np.testing.assert_array_equal(res.labelled[k].get_stress(), direct.get_stress())
    assert len(LabelCache(tmp_path)) == len(frames)


def test_structure_hash_rounding_and_oracle_identity(frames):
    a = frames[0]
    oid = oracle_identity(EMT())
    moved = a.copy()
    moved.positions += 1e-9
    assert label_key(moved, oid) == label_key(a, oid)
    moved.positions += 1e-3
    assert label_key(moved, oid) != label_key(a, oid)
    other = oracle_identity(toy_calculator())
    assert other != oid and label_key(a, other) != label_key(a, oid)
    # settings are part of the identity
    assert oracle_identity(EMT(asap_cutoff=True)) != oid


def test_interrupted_write_and_garbage_entries_do_not_break_the_cache(frames, tmp_path):
    cache = LabelCache(tmp_path)
    oid = oracle_identity(EMT())
    Oracle(EMT(), cache=cache).label(frames[:2])
    key = label_key(frames[0], oid)
    # a writer killed mid-write leaves its hidden temporary file (never renamed)
    (tmp_path / key[:2] / f".{key}.x1y2.part.json").write_text('{"format": "mdmlkit-lab')
    # a truncated entry (not written by LabelCache) is a miss and is recomputed
    (tmp_path / label_key(frames[1], oid)[:2] / f"{label_key(frames[1], oid)}.json").write_text("{\"fo")
    cache = LabelCache(tmp_path)
    assert len(cache) == 2 and cache.get(frames[0], oid).ok and cache.get(frames[1], oid) is None
    calc = Flaky()
    res = Oracle(calc, cache=cache, oracle_id=oid).label(frames[:2])
    assert calc.calls == 1 and res.cached == {0} and cache.get(frames[1], oid).ok


def _writer(path, seed, n):
    cache = LabelCache(path)
    fr = emt_frames(n, "thermal", (300, 900), reps=(1, 1, 1), seed=seed)
    shared = emt_frames(4, "thermal", (300, 900), reps=(1, 1, 1), seed=99)
    o = Oracle(EMT(), cache=cache)
    for _ in range(3):            # both processes rewrite the shared entries repeatedly
        for a in shared:
            cache.put(a, o.oracle_id, {"energy": 1.0, "forces": np.zeros((len(a), 3))})
    o.label(fr)


def test_two_processes_writing_concurrently_do_not_corrupt(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s, 8)) for s in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = LabelCache(tmp_path)
    assert len(cache) == 8 + 8 + 4 and cache.stats() == {"ok": 20, "failed": 0}
    assert not list(tmp_path.glob("??/.*"))           # no temporary file left behind


def test_faults_are_recorded_skipped_and_not_retried_forever(frames, tmp_path):
    bad, nan = _x(frames[1]), _x(frames[2])
    close = frames[3].copy()
    close.positions[1] = close.positions[0] + [0.2, 0.0, 0.0]
    batch = [frames[0], frames[1], frames[2], close, frames[4]]
    calc = Flaky(bad={bad}, nan={nan})
    oracle = Oracle(calc, cache=LabelCache(tmp_path, max_attempts=2))
    res = oracle.label(batch)
    assert sorted(res.labelled) == [0, 4]
    assert "SCF did not converge" in res.failures[1] and "non-finite energy" in res.failures[2]
    assert "AtomsTooCloseError" in res.failures[3] and "atoms 0 and 1" in res.failures[3]
    assert calc.calls == 4                               # the too-close structure was never sent
    oracle.label(batch)                                  # second attempt of the two failures
    assert calc.calls == 6
    res3 = oracle.label(batch)                           # max_attempts reached: no more calls
    assert calc.calls == 6 and "not retried" in res3.failures[1] and sorted(res3.labelled) == [0, 4]
    # without a cache, failures are remembered by the oracle with the same rule
    calc2 = Flaky(bad={bad})
    o2 = Oracle(calc2, max_attempts=1)
    o2.label(frames[:2])
    o2.label(frames[:2])
    assert calc2.calls == 3


def test_timeout_is_a_failure_not_a_hang(frames):
    calc = Flaky(sleep=5.0)
    t0 = time.perf_counter()
    res = Oracle(calc, timeout_s=0.3).label(frames[:2])
    assert time.perf_counter() - t0 < 3.0
    assert not res.labelled and all("OracleTimeoutError" in r for r in res.failures.values())


def test_parallel_labels_equal_serial_labels(frames, tmp_path):
    la = bulk("Cu", cubic=True)
    la.set_chemical_symbols(["La", "Cu", "Cu", "Cu"])      # EMT has no La: the worker's call fails
    batch = [*frames, la]
    serial = Oracle(EMT).label(batch)
    par_oracle = Oracle(EMT, n_workers=2, cache=tmp_path, start_method="fork")
    par = par_oracle.label(batch)
    assert sorted(par.labelled) == sorted(serial.labelled) == list(range(len(frames)))
    assert set(par.failures) == {len(frames)} and par.failures[len(frames)] == serial.failures[len(frames)]
    for k in serial.labelled:
        assert par.labelled[k].get_potential_energy() == serial.labelled[k].get_potential_energy()
        np.testing.assert_array_equal(par.labelled[k].get_forces(), serial.labelled[k].get_forces())
    assert par_oracle.n_calls == len(batch)
    # a toy-teacher name works with workers too, and a rerun is served from the cache
    named = Oracle("toy", cache=tmp_path)
    r1 = named.label(frames[:3])
    r2 = Oracle("toy", cache=tmp_path).label(frames[:3])
    assert r2.cached == {0, 1, 2}
    np.testing.assert_array_equal(r1.labelled[2].get_forces(), r2.labelled[2].get_forces())


def test_killed_run_resumes_without_duplicated_or_lost_labels(frames, tmp_path):
    calc = Flaky(interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        Oracle(calc, cache=tmp_path).label(frames)
    assert len(LabelCache(tmp_path)) == 3                 # what was done is kept
    calc2 = Flaky()
    res = Oracle(calc2, cache=tmp_path).label(frames)
    assert calc2.calls == len(frames) - 3 and len(res.labelled) == len(frames)
    assert res.cached == {0, 1, 2}


def test_bad_arguments():
    with pytest.raises(InputError):
        Oracle(EMT(), n_workers=0)
    with pytest.raises(InputError):
        Oracle(EMT(), timeout_s=0)
    with pytest.raises(InputError):
        Oracle("no-such-teacher")
    with pytest.raises(InputError):
        Oracle(42).label([bulk("Cu")])
    assert isinstance(as_oracle(EMT()), Oracle) and "n_workers=1" in repr(Oracle(EMT()))
    with pytest.raises(InputError, match="picklable"):
        Oracle(lambda: EMT(), n_workers=2).label(emt_frames(2, reps=(1, 1, 1), seed=0))


def test_cached_labels_without_stress_are_not_reused_when_stress_is_wanted(frames, tmp_path):
    """A label cached by an oracle asked for no stress is relabelled by one that wants it."""
    cache = LabelCache(tmp_path / "c")
    no_stress = Oracle(EMT(), stress=False, cache=cache).label(frames[:2])
    assert all("stress" not in a.calc.results for a in no_stress.labelled.values())
    again = Oracle(EMT(), stress=True, cache=cache)
    res = again.label(frames[:2])
    assert again.n_calls == 2 and all("stress" in a.calc.results for a in res.labelled.values())
    third = Oracle(EMT(), stress=True, cache=cache)
    third.label(frames[:2])
    assert third.n_calls == 0 and third.n_cache_hits == 2
    # a label without stress is reused by an oracle that does not want one
    assert Oracle(EMT(), stress=False, cache=cache).label(frames[:2]).cached == {0, 1}


def test_damaged_cache_entry_is_recomputed(frames, tmp_path):
    cache = LabelCache(tmp_path / "c")
    oracle = Oracle(EMT(), cache=cache)
    ref = oracle.label(frames[:1]).labelled[0]
    (f,) = cache.files()
    f.write_text(f.read_text()[:40])                    # truncated by hand
    fresh = Oracle(EMT(), cache=cache)
    res = fresh.label(frames[:1]).labelled[0]
    assert fresh.n_calls == 1
    np.testing.assert_array_equal(res.get_forces(), ref.get_forces())
    assert Oracle(EMT(), cache=cache).label(frames[:1]).cached == {0}


def test_labels_with_forces_above_max_force_are_failures_but_stay_cached(tmp_path):
    """A compressed frame the calculator pushes apart with large forces is refused by
    ``max_force`` (named in the reason), from a fresh call and from the cache alike; the label
    itself stays in the cache, so an oracle without the limit gets it without a call."""
    good = bulk("Cu", "fcc", a=3.6, cubic=True)
    good.rattle(0.05, seed=1)
    bad = good.copy()
    bad.positions[1] = bad.positions[0] + [1.3, 0.0, 0.0]    # 1.3 Å apart: large EMT forces
    fmax = float(np.abs(Oracle(EMT()).label([bad]).labelled[0].get_forces()).max())
    assert fmax > 5.0
    strict = Oracle(EMT(), cache=tmp_path, max_force=5.0, min_distance=1.0)
    res = strict.label([good, bad])
    assert sorted(res.labelled) == [0] and sorted(res.failures) == [1]
    assert "LabelOutOfRange" in res.failures[1] and f"{fmax:.1f} eV/Å" in res.failures[1]
    assert strict.n_calls == 2 and strict.n_failures == 1
    assert "max_force=5 eV/Å" in repr(strict) and "max_force" not in repr(Oracle(EMT()))
    again = Oracle(EMT(), cache=tmp_path, max_force=5.0, min_distance=1.0).label([bad])
    assert 0 in again.failures and 0 in again.cached
    plain = Oracle(EMT(), cache=tmp_path, min_distance=1.0)
    res2 = plain.label([bad])
    assert plain.n_calls == 0 and np.abs(res2.labelled[0].get_forces()).max() == pytest.approx(fmax)
    with pytest.raises(InputError, match="max_force"):
        Oracle(EMT(), max_force=0.0)
