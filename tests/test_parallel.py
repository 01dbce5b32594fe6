"""mdmlkit.parallel.run_tasks: the same results, in task order, on every executor.

The reference is the plain list comprehension ``[fn(t) for t in tasks]``; tasks that
finish in reverse order check that results are put back in task order; failing tasks
check that the task's own exception comes back, naming the task.  The dask path is
tested with a minimal stand-in client (``submit`` + ``gather``); a real
``dask.distributed`` test runs only where dask is installed.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mdmlkit.errors import InputError
from mdmlkit.parallel import is_dask_client, resolve_n_jobs, run_tasks


def _slow_square(x: int) -> int:
    time.sleep(0.01 * (5 - x))              # later tasks finish first
    return x * x


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise InputError(f"bad value {x}")
    return x


class _FakeFuture:
    def __init__(self, fn, arg):
        self.fn, self.arg, self.cancelled = fn, arg, False

    def cancel(self):
        self.cancelled = True


class FakeClient:
    """The part of ``dask.distributed.Client`` that run_tasks uses; computes lazily in gather."""

    def __init__(self):
        self.submitted = []

    def submit(self, fn, arg):
        fut = _FakeFuture(fn, arg)
        self.submitted.append(fut)
        return fut

    def gather(self, futures):
        return [f.fn(f.arg) for f in futures]


@pytest.mark.parametrize("executor", ["serial", "threads", "fake-dask", None])
def test_results_in_task_order(executor):
    tasks = list(range(5))
    expect = [t * t for t in tasks]
    if executor == "threads":
        with ThreadPoolExecutor(4) as pool:
            got = run_tasks(_slow_square, tasks, executor=pool, progress=False)
            assert pool.submit(abs, -2).result() == 2           # left open for the caller
    elif executor == "fake-dask":
        client = FakeClient()
        got = run_tasks(_slow_square, tasks, executor=client, progress=False)
        assert [f.arg for f in client.submitted] == tasks
    else:
        got = run_tasks(_slow_square, tasks, executor=executor, progress=False)
    assert got == expect
    if executor in ("serial", None):
        assert run_tasks(_slow_square, [], executor=executor, progress=False) == []
    else:
        assert run_tasks(_slow_square, [], executor=FakeClient(), progress=False) == []


def test_process_pool_matches_serial():
    tasks = [3, 10, 0, 7, 20]
    serial = [math.factorial(t) for t in tasks]
    assert run_tasks(math.factorial, tasks, n_jobs=2, progress=False) == serial


def test_process_pool_failure_names_the_task():
    with pytest.raises(ValueError, match="negative") as info:
        run_tasks(math.factorial, [1, 2, -1, 4], n_jobs=2, progress=False, desc="facts")
    assert info.value.__notes__ == ["raised in facts: task 2 of 4 (-1)"]


@pytest.mark.parametrize("kind", ["serial", "threads", "fake-dask"])
def test_failure_is_the_tasks_own_exception(kind):
    tasks = [0, 1, 2, 3, 4]
    names = [f"run {t}" for t in tasks]
    if kind == "threads":
        with ThreadPoolExecutor(2) as pool:
            with pytest.raises(InputError, match="bad value 3") as info:
                run_tasks(_fails_on_three, tasks, executor=pool, progress=False, names=names,
                          desc="demo")
    else:
        client = FakeClient() if kind == "fake-dask" else "serial"
        with pytest.raises(InputError, match="bad value 3") as info:
            run_tasks(_fails_on_three, tasks, executor=client, progress=False, names=names,
                      desc="demo")
        if kind == "fake-dask":
            assert [f.cancelled for f in client.submitted] == [False] * 4 + [True]
    assert info.value.__notes__ == ["raised in demo: task 3 of 5 (run 3)"]


def test_progress_bar_is_shown(capsys):
    run_tasks(abs, [-1, -2], desc="tiny job", progress=True)
    assert "tiny job" in capsys.readouterr().err
    run_tasks(abs, [-1, -2], desc="quiet job", progress=False)
    assert "quiet job" not in capsys.readouterr().err


def test_bad_arguments():
    with pytest.raises(InputError, match="unknown executor 'gpu'"):
        run_tasks(abs, [1], executor="gpu")
    with pytest.raises(InputError, match="got object"):
        run_tasks(abs, [1], executor=object())
    with pytest.raises(InputError, match="2 names for 1 tasks"):
        run_tasks(abs, [1], names=["a", "b"])
    with pytest.raises(InputError, match="n_jobs"):
        run_tasks(abs, [1], executor="process", n_jobs=0)
    with pytest.raises(InputError, match="n_jobs"):
        resolve_n_jobs(2.5)


def test_resolve_n_jobs():
    import os

    cores = os.cpu_count() or 1
    assert resolve_n_jobs(None) == cores and resolve_n_jobs(-1) == cores
    assert resolve_n_jobs(3) == 3 and resolve_n_jobs(3, n_tasks=2) == 2
    assert resolve_n_jobs(-cores - 5) == 1
    assert resolve_n_jobs(4, n_tasks=0) == 1


def test_dask_client_is_duck_typed():
    assert is_dask_client(FakeClient())
    assert not is_dask_client(ThreadPoolExecutor)       # the class: submit but no gather
    assert not is_dask_client("serial")


def test_real_dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        assert run_tasks(_slow_square, range(5), executor=client, progress=False) == \
            [0, 1, 4, 9, 16]
        with pytest.raises(InputError, match="bad value 3") as info:
            run_tasks(_fails_on_three, range(5), executor=client, progress=False)
        assert "task 3 of 5" in info.value.__notes__[0]


_ORPHAN_SCRIPT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from mdmlkit.parallel import exit_with_parent


def work(path):
    import os
    open(path, "w").write(str(os.getpid()))
    time.sleep(120)


if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=exit_with_parent) as ex:
        ex.submit(work, sys.argv[1]).result()
"""


@pytest.mark.slow
def test_pool_workers_end_with_their_killed_parent(tmp_path):
    """SIGKILL the process that owns a pool: its busy worker must not compute on as an orphan."""
    import os
    import signal
    import subprocess
    import sys

    script, pidfile = tmp_path / "owner.py", tmp_path / "worker.pid"
    script.write_text(_ORPHAN_SCRIPT)
    owner = subprocess.Popen([sys.executable, str(script), str(pidfile)])
    try:
        t0 = time.monotonic()
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        worker = int(pidfile.read_text())
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)

        def alive(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            # a zombie (exited, not yet reaped) counts as gone
            stat = f"/proc/{pid}/stat"
            return not (os.path.exists(stat) and open(stat).read().split(")")[-1].split()[0] == "Z")

        t1 = time.monotonic()
        while alive(worker) and time.monotonic() - t1 < 15:
            time.sleep(0.2)
        assert not alive(worker), "the worker kept running after its parent was killed"
    finally:
        owner.kill()
