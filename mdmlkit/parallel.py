"""Run independent tasks serially, on local processes or on a dask cluster, results in order.

:func:`run_tasks` is the one place where mdmlkit fans work out (heating runs of
:func:`mdmlkit.md.heating.heat_many`, the sizes of
:func:`mdmlkit.landscape.sizescan.run_size_scan`)::

    from mdmlkit.parallel import run_tasks

    run_tasks(f, tasks)                          # serial
    run_tasks(f, tasks, n_jobs=4)                # 4 local processes (spawn)
    run_tasks(f, tasks, executor=pool)           # any concurrent.futures.Executor (kept open)
    run_tasks(f, tasks, executor=client)         # a dask.distributed.Client (duck-typed)

Results come back in task order whatever finishes first, so a parallel run returns
what the serial one does whenever each task is deterministic.  An exception raised by
a task is re-raised unchanged (same type, same message) with a note naming the task
(``exc.__notes__``, shown in the traceback).  ``fn`` and the tasks must pickle for
process pools and dask (module-level functions, :func:`functools.partial` of them);
processes started here limit BLAS/OpenMP/torch to one thread each, so ``n_jobs``
workers use ``n_jobs`` cores.  dask is optional and never imported by this module: a
client is recognised by having ``submit`` and ``gather``.
"""
from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mdmlkit.errors import InputError

__all__ = ["EXECUTORS", "resolve_n_jobs", "is_dask_client", "run_tasks", "exit_with_parent"]

#: Executor names accepted by :func:`run_tasks` (besides executor objects).
EXECUTORS = ("serial", "process")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


def resolve_n_jobs(n_jobs: int | None, n_tasks: int | None = None) -> int:
    """Worker count: ``None`` or ``-1`` = all cores, ``-k`` = all but ``k - 1``; capped at ``n_tasks``."""
    cores = os.cpu_count() or 1
    if n_jobs is None:
        n = cores
    elif isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise InputError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    else:
        n = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    if n_tasks is not None:
        n = min(n, max(1, int(n_tasks)))
    return int(n)


def is_dask_client(obj: Any) -> bool:
    """True for an object used like a ``dask.distributed.Client`` (``submit`` + ``gather``)."""
    return callable(getattr(obj, "submit", None)) and callable(getattr(obj, "gather", None))


def exit_with_parent(poll_s: float = 1.0) -> None:
    """In a worker process: exit as soon as the process that started it is gone.

    A daemon thread compares ``os.getppid()`` with the parent at the call every
    ``poll_s`` seconds; when the parent died (killed, even by SIGKILL, the worker is
    re-parented) the worker ends with ``os._exit(1)``.  Process pools otherwise keep
    computing their current task as orphans after their run was stopped.  Every
    process pool of mdmlkit calls it in its initializer; call it in your own.
    """
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="mdmlkit-exit-with-parent", daemon=True).start()


def _limit_threads() -> None:
    """Process-pool initializer: one BLAS/OpenMP/torch thread per worker; the worker ends with
    its parent (:func:`exit_with_parent`)."""
    import sys

    exit_with_parent()

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"                 # for libraries the tasks import later
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)                  # for those already loaded
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _name(i: int, n: int, task: Any, names: Sequence[str] | None, desc: str | None) -> str:
    what = names[i] if names is not None else _repr.repr(task)
    return f"{desc or 'run_tasks'}: task {i} of {n} ({what})"


def _fail(exc: BaseException, where: str) -> BaseException:
    """Add a note naming the task (once) and return ``exc``."""
    note = f"raised in {where}"
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)
    return exc


def run_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], executor: Any = None,
              n_jobs: int | None = None, progress: bool = True, desc: str | None = None,
              names: Sequence[str] | None = None) -> list[Any]:
    """``[fn(task) for task in tasks]``, possibly in parallel; results in task order.

    Parameters
    ----------
    fn : callable of one argument
        Applied to every task; must pickle (module level) unless run serially or on
        threads.
    tasks : iterable
        One argument per call.
    executor : None | "serial" | "process" | concurrent.futures.Executor | dask Client
        ``None``: serial when ``n_jobs`` is None or 1, else ``"process"``.
        ``"process"``: a ``ProcessPoolExecutor`` (spawn start, one thread per worker)
        with :func:`resolve_n_jobs` ``(n_jobs)`` workers, shut down afterwards.  An
        ``Executor`` or a dask ``Client`` (anything with ``submit`` and ``gather``) is
        used as given and left open.
    n_jobs : int, optional
        Worker processes for ``"process"`` (``None``/-1: all cores).
    progress : bool
        tqdm progress bar over tasks.
    desc : str, optional
        Progress-bar label; also used in the note of a failing task.
    names : sequence of str, optional
        Human-readable name of each task for error notes (default: a short repr).

    Returns
    -------
    list
        ``fn(task)`` for every task, in task order.

    Raises
    ------
    InputError
        Unknown executor, bad ``n_jobs`` or ``names`` of the wrong length.
    Exception
        The first failing task's own exception (other pending tasks are cancelled),
        with a note ``"raised in <desc>: task i of n (<name>)"``.
    """
    from concurrent.futures import Executor

    tasks = list(tasks)
    n = len(tasks)
    if names is not None and len(names) != n:
        raise InputError(f"run_tasks: {len(names)} names for {n} tasks")
    if executor is None:
        executor = "serial" if n_jobs is None or n_jobs == 1 else "process"
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise InputError(f"run_tasks: unknown executor {executor!r}; choose from {EXECUTORS}, "
                             "a concurrent.futures.Executor or a dask.distributed.Client")
        workers = resolve_n_jobs(n_jobs, n)  # validates n_jobs in every mode
        if executor == "serial" or n <= 1 or workers == 1:
            return _serial(fn, tasks, progress, desc, names)
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_limit_threads) as pool:
            return _on_executor(pool, fn, tasks, progress, desc, names)
    if isinstance(executor, Executor):
        return _on_executor(executor, fn, tasks, progress, desc, names)
    if is_dask_client(executor):
        return _on_client(executor, fn, tasks, progress, desc, names)
    raise InputError(f"run_tasks: executor must be None, one of {EXECUTORS}, a "
                     f"concurrent.futures.Executor or a dask Client, got {type(executor).__name__}")


def _bar(n: int, progress: bool, desc: str | None):
    from tqdm.auto import tqdm

    return tqdm(total=n, desc=desc, disable=not progress)


def _serial(fn, tasks, progress, desc, names) -> list[Any]:
    out = []
    with _bar(len(tasks), progress, desc) as bar:
        for i, task in enumerate(tasks):
            try:
                out.append(fn(task))
            except Exception as exc:
                _fail(exc, _name(i, len(tasks), task, names, desc))
                raise
            bar.update(1)
    return out


def _on_executor(executor, fn, tasks, progress, desc, names) -> list[Any]:
    from concurrent.futures import FIRST_EXCEPTION, wait

    futures = [executor.submit(fn, t) for t in tasks]
    index = {f: i for i, f in enumerate(futures)}
    pending = set(futures)
    with _bar(len(tasks), progress, desc) as bar:
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            bar.update(len(done))
            failed = sorted(index[f] for f in done if f.exception() is not None)
            if failed:
                for f in pending:
                    f.cancel()
                i = failed[0]
                raise _fail(futures[i].exception(), _name(i, len(tasks), tasks[i], names, desc))
    return [f.result() for f in futures]


def _on_client(client, fn, tasks, progress, desc, names) -> list[Any]:
    futures = [client.submit(fn, t) for t in tasks]
    out = []
    with _bar(len(tasks), progress, desc) as bar:
        for i, fut in enumerate(futures):
            try:
                (res,) = client.gather([fut])
            except Exception as exc:
                for f in futures[i + 1:]:
                    cancel = getattr(f, "cancel", None)
                    if callable(cancel):
                        cancel()
                _fail(exc, _name(i, len(tasks), tasks[i], names, desc))
                raise
            out.append(res)
            bar.update(1)
    return out
