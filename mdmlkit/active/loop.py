"""The pool-based active-learning loop: select → label → retrain → evaluate, repeated.

::

    loop = ActiveLearningLoop(AutoencoderQuery(), pool, model=HDNNP(sfs, hidden=(10, 10)),
                              oracle=EMT(), initial=10, k=5, n_rounds=4, test=test,
                              trainer_kwargs={"max_epochs": 50}, workdir="al_run")
    loop.run()                    # resumes from al_run/ after an interruption
    loop.learning_curve()         # n_labelled, energy/force RMSE per round
    loop.selection_table()        # which structures were chosen and why

Round 0 labels ``initial`` random pool structures (or takes a labelled list) and
trains the potential.  Each later round fits the query on the current training
set, selects ``k`` unlabelled pool structures, labels them with the oracle,
retrains (from scratch with the same seed, or continuing from the previous
weights with ``warm_start=True``) and evaluates on the fixed ``test`` set.

Checkpoints (``workdir``): after labelling and after training of every round
``state.json`` (the commit point, written last and atomically), the labelled
structures (``labelled_rNNNN.traj``, ASE trajectory, lossless) and the model
weights (``model_rNNNN.pt``) are written; :meth:`run` continues from the last
commit, so an interrupted run makes the same selections as an uninterrupted one.

Failures: a structure on which the oracle raises or returns NaN is recorded
(``failures_``, ``selections_``), marked failed in the pool (never offered
again) and skipped; the round goes on with the others.  Oracle calls, including
failed ones, count against ``budget``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from mdmlkit.active.features import DescriptorCache, as_frames, unlabelled_copy
from mdmlkit.active.metrics import METRICS, metric_label, select_metrics
from mdmlkit.active.onthefly import run_on_the_fly
from mdmlkit.active.oracle import as_oracle
from mdmlkit.active.queries.base import LoopContext, Query, prepare_query
from mdmlkit.active.replay import initial_indices
from mdmlkit.errors import (
    CheckpointFallbackWarning,
    CheckpointMismatchError,
    CorruptCheckpointError,
    EmptyTrajectoryError,
    InputError,
    OracleError,
)
from mdmlkit.potential.committee import reinitialise
from mdmlkit.potential.data import check_training_frames
from mdmlkit.potential.training.trainer import Trainer
from mdmlkit.utils import (
    atomic_path,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    check_elements,
    format_settings_diff,
    load_torch_file,
    read_json_file,
    settings_diff,
)

__all__ = ["ActiveLearningLoop"]

log = logging.getLogger(__name__)

_FORMAT = "mdmlkit.active-loop/1"
_PREV_STATE = "state.prev.json"
#: trainer_kwargs that say where/how to train, not what is learned (not compared on resume)
_TRAINER_RUN_KEYS = ("device", "checkpoint_dir", "checkpoint_every", "progress", "callbacks")


def _plain(obj):
    """JSON-able description of a setting: numbers, strings and containers as they are,
    other objects by their class name (never by ``repr``, which may hold addresses)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"<callable {obj.__qualname__}>"
    return f"<{type(obj).__name__}>"


def _readable_state(path: Path | None) -> tuple[str, dict] | None:
    """(text, parsed) of a state file that parses, else None."""
    if path is None or not path.is_file():
        return None
    try:
        text = path.read_text()
        state = json.loads(text)
    except (OSError, ValueError):
        return None
    return (text, state) if isinstance(state, dict) and state.get("format") == _FORMAT else None


def _state_files(state: dict) -> set:
    """Data files a state refers to."""
    otf = state.get("otf") or {}
    return {state.get("labelled_file"), state.get("model_file"), otf.get("atoms_file")} - {None}


def _read_traj(path: Path, what: str, remedy: str, allow_empty: bool = False) -> list[Atoms]:
    """Frames of an ASE ``.traj`` checkpoint file; damaged or missing ones raise
    :class:`~mdmlkit.errors.CorruptCheckpointError` naming the file."""
    import ase.io

    if not path.is_file():
        raise CorruptCheckpointError(f"{what} file is missing; {remedy}", path=str(path))
    if path.stat().st_size == 0:
        if allow_empty:
            return []
        raise CorruptCheckpointError(f"{what} file is empty; {remedy}", path=str(path))
    try:
        frames = ase.io.read(path, ":", format="traj")
    except Exception as exc:  # noqa: BLE001 - ASE raises many types on damaged files
        raise CorruptCheckpointError(f"{what} file is truncated or unreadable "
                                     f"({type(exc).__name__}: {exc}); {remedy}", path=str(path)) from exc
    if not frames and not allow_empty:
        raise CorruptCheckpointError(f"{what} file holds no structures; {remedy}", path=str(path))
    return list(frames)


def _fingerprint(frames: Sequence[Atoms]) -> str:
    from mdmlkit.systems.la2zr2o7 import frames_fingerprint

    return frames_fingerprint(frames)


class ActiveLearningLoop:
    """Pool-based active learning of an HDNNP (see the module docstring).

    Parameters
    ----------
    query : Query
        Selection strategy (:class:`AutoencoderQuery`, :class:`CommitteeQuery`,
        :class:`FarthestPointQuery`, :class:`RandomQuery`, or your own).  It is
        never changed: the loop works on ``query_``, a clone with the parameters
        the query lists in ``loop_inputs`` filled in from the loop where they are
        None (``sfs=model.sfs``, ``cache``, and for a :class:`CommitteeQuery`
        ``model`` and ``trainer_kwargs``; see :func:`~mdmlkit.active.prepare_query`).
    pool : sequence of ase.Atoms
        Unlabelled candidates.  Labels they carry are hidden from the query
        (copies without calculators are used).
    model : HDNNP
        Template potential; it is copied, never trained in place.
    oracle : ASE calculator, factory, :class:`Oracle` or None
        Labels the chosen structures; None = the CHGNet teacher.  For
        benchmarks, :class:`ReplayOracle` reveals labels of a labelled pool.
    initial : int or sequence of labelled ase.Atoms
        Round 0: this many random pool structures (seeded by ``seed``), or a
        labelled starting set (not from the pool).
    k : int or sequence of int
        Structures selected per round (the last round takes what is left), or
        one batch size per round (e.g. ``[50, 100, 200, 400]`` for a geometric
        learning curve; the loop stops after the last entry).
    budget : int, optional
        Maximum oracle calls after the initial set.  A budget larger than the
        pool is capped at the pool size (with a warning).
    n_rounds : int, optional
        Rounds after round 0 (default: until the budget or the pool runs out).
    test, val : sequence of labelled ase.Atoms, optional
        Fixed test set for the learning curve; validation set for early stopping.
    extra_tests : dict name -> sequence of labelled ase.Atoms, optional
        Further fixed test sets (e.g. ``{"hot": load_hot_test()}``), evaluated
        every round; their errors go into the round record as ``"<name>/<metric>"``.
    trainer_kwargs : dict or callable
        For :class:`~mdmlkit.potential.Trainer` (``progress`` defaults to False), or
        ``n_labelled -> dict`` to adapt training to the set size (e.g. a fixed number
        of optimiser steps per round: ``max_epochs ≈ steps · batch_size / n_labelled``).
    warm_start : bool
        Continue training from the previous round's weights (a new
        :class:`~mdmlkit.potential.Trainer` each round, so the learning-rate schedule
        restarts).  Warm-started rounds keep the input scaling and reference energies
        fitted in round 0 (``fit_normalisation=False`` unless ``trainer_kwargs`` sets it).
    new_label_share : float
        In [0, 1).  For warm-started rounds: the structures labelled since the last
        training are repeated in that round's training set until they make up at least
        this share of it (0: no repeats).  A few new labels (an on-the-fly frame that
        broke the MD) are otherwise drowned by thousands of old ones in a short
        fine-tune: with one new frame among 2 000 and 300 optimiser steps of 8, the new
        frame is seen about twice; with ``new_label_share=0.2`` in one step out of five.
    workdir : path, optional
        Checkpoint directory (resumed automatically when it holds a checkpoint).
    seed : int
        Seeds the initial choice, the weight initialisation and the training.
    progress : bool
        tqdm bar over rounds.
    callbacks : iterable of callables
        ``cb(loop, record)`` after every trained round (e.g. live plots).
    cache : DescriptorCache, optional
        Descriptor cache shared with the query (default: a new one for
        ``model.sfs``, owned by this loop).

    ``pool``, ``model``, ``query``, ``test`` and ``val`` are never modified.

    Attributes
    ----------
    query_ : Query
        The working (configured, fitted) clone of ``query``.
    labelled_ : list of ase.Atoms
        Training set; ``info["al_round"]`` and ``info["al_pool_index"]`` (−1: not from the pool).
    pool_status_ : ndarray of str
        "unlabelled", "labelled" or "failed" per pool structure.
    history_ : list of dict
        One record per round (learning curve, timings).
    selections_ : list of dict
        Every chosen structure: round, pool index, status and the query's reasons.
    failures_ : dict[int, str]
        Pool index -> oracle failure.
    model_ : HDNNP
        Potential of the last trained round.
    n_oracle_calls_ : int
        After the initial set.
    """

    def __init__(self, query: Query, pool: Sequence[Atoms], model, oracle=None,
                 initial: int | Sequence[Atoms] = 10, k: int = 10, budget: int | None = None,
                 n_rounds: int | None = None, test: Sequence[Atoms] | None = None,
                 val: Sequence[Atoms] | None = None,
                 extra_tests: Mapping[str, Sequence[Atoms]] | None = None,
                 trainer_kwargs: dict | Callable[[int], dict] | None = None,
                 warm_start: bool = False, workdir=None, seed: int = 0, progress: bool = True,
                 callbacks: Iterable[Callable] = (), cache: DescriptorCache | None = None,
                 new_label_share: float = 0.0):
        if not isinstance(query, Query):
            raise InputError(f"query must be a mdmlkit.active Query, got {type(query).__name__}")
        self.pool = [unlabelled_copy(a) for a in as_frames(pool, "pool")]
        check_elements(self.pool, model.elements, "pool", owner="the potential and its descriptor")
        ks = [k] if isinstance(k, (int, np.integer, bool)) or not isinstance(k, Iterable) else list(k)
        if not ks or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1
                         for x in ks):
            raise InputError(f"k (structures per round) must be a positive integer or a non-empty "
                             f"sequence of them, got {k!r}")
        if n_rounds is not None and n_rounds < 0:
            raise InputError(f"n_rounds must be >= 0, got {n_rounds}")
        if isinstance(initial, (int, np.integer)) and not isinstance(initial, bool):
            if not 1 <= initial <= len(self.pool):
                raise InputError(f"initial={initial} random structures requested from a pool of "
                                 f"{len(self.pool)}")
        else:
            initial = list(initial)
            if not initial:
                raise EmptyTrajectoryError("initial training set: no structures")
        self.query = query
        self.model = model
        self.oracle = as_oracle(oracle)
        self.initial = initial
        self.k = int(ks[0]) if len(ks) == 1 and not isinstance(k, Iterable) else [int(x) for x in ks]
        if isinstance(self.k, list) and (n_rounds is None or n_rounds > len(self.k)):
            n_rounds = len(self.k)
        n_avail = len(self.pool) - (initial if isinstance(initial, (int, np.integer)) else 0)
        if budget is not None:
            if budget < 0:
                raise InputError(f"budget must be >= 0, got {budget}")
            if budget > n_avail:
                warnings.warn(f"budget={budget} exceeds the {n_avail} pool structures left after the "
                              f"initial set; the loop stops when the pool is exhausted",
                              stacklevel=2)
                budget = n_avail
        self.budget = budget
        self.n_rounds = n_rounds
        self.test = None if test is None else list(test)
        self.extra_tests = {str(name): list(frames) for name, frames in (extra_tests or {}).items()}
        self.val = None if val is None else list(val)
        self.trainer_kwargs = trainer_kwargs if callable(trainer_kwargs) else dict(trainer_kwargs or {})
        self.warm_start = bool(warm_start)
        if not 0.0 <= float(new_label_share) < 1.0:
            raise InputError(f"new_label_share must be in [0, 1), got {new_label_share!r}")
        self.new_label_share = float(new_label_share)
        self.workdir = None if workdir is None else Path(workdir)
        self.seed = int(seed)
        self.progress = progress
        self.callbacks = list(callbacks)
        self.cache = DescriptorCache(model.sfs) if cache is None else cache
        self._reset_state()

    # ------------------------------------------------------------------ setup
    def _reset_state(self) -> None:
        self.query_ = prepare_query(self.query, LoopContext(
            model=self.model, sfs=self.model.sfs, trainer_kwargs=self.trainer_kwargs,
            cache=self.cache))
        self.labelled_: list[Atoms] = []
        self.pool_status_ = np.full(len(self.pool), "unlabelled", dtype="<U10")
        self.history_: list[dict] = []
        self.selections_: list[dict] = []
        self.failures_: dict[int, str] = {}
        self.model_ = None
        self.trainer_ = None
        self.n_oracle_calls_ = 0
        self.round_ = -1            # last round whose labels are in labelled_
        self.phase_ = "trained"     # "labelled": round_ labelled but not yet trained
        self.otf_state_: dict | None = None
        self._pending: dict = {}

    def __repr__(self) -> str:
        st = (f", round={self.round_}, labelled={len(self.labelled_)}, "
              f"failed={len(self.failures_)}") if self.round_ >= 0 else ", not started"
        last = ""
        if self.history_ and "force_rmse_meV_A" in self.history_[-1]:
            h = self.history_[-1]
            last = (f", test E={h['energy_rmse_meV_atom']:.2f} meV/atom, "
                    f"F={h['force_rmse_meV_A']:.0f} meV/Å")
        return (f"ActiveLearningLoop(query={type(self.query).__name__}, pool={len(self.pool)}, "
                f"k={self.k}, budget={self.budget}, n_rounds={self.n_rounds}, "
                f"warm_start={self.warm_start}{st}{last})")

    # ------------------------------------------------------------------ state
    @property
    def unlabelled_indices(self) -> np.ndarray:
        return np.flatnonzero(self.pool_status_ == "unlabelled")

    def _config(self) -> dict:
        init = int(self.initial) if isinstance(self.initial, (int, np.integer)) else \
            {"frames": _fingerprint(self.initial)}
        if not hasattr(self, "_pool_fp"):
            self._pool_fp = _fingerprint(self.pool)
        if not hasattr(self, "_sets_fp"):
            extra = getattr(self, "extra_tests", None) or {}
            self._sets_fp = {
                "test": None if self.test is None else _fingerprint(self.test),
                "val": None if self.val is None else _fingerprint(self.val),
                "extra_tests": {name: _fingerprint(fr) for name, fr in extra.items()}}
            sfs = getattr(self.model, "sfs", None)
            arch = {"class": type(self.model).__name__,
                    "config": _plain(self.model.config()) if hasattr(self.model, "config") else None,
                    "sfs": None if sfs is None or not hasattr(sfs, "to_input_nn_lines") else
                    hashlib.sha1("\n".join(sfs.to_input_nn_lines()).encode()).hexdigest()}
            self._arch = arch
        tk = self.trainer_kwargs
        trainer = _plain(tk) if callable(tk) else _plain(
            {k: v for k, v in tk.items() if k not in _TRAINER_RUN_KEYS})
        query_params = _plain(self.query.get_params(deep=False)) if hasattr(self.query, "get_params") \
            else None
        return {"pool": self._pool_fp, "n_pool": len(self.pool), "k": self.k,
                "seed": self.seed, "initial": init, "query": type(self.query).__name__,
                "warm_start": self.warm_start, "query_params": query_params,
                **({"new_label_share": self.new_label_share} if self.new_label_share else {}),
                "trainer_kwargs": trainer, "model": self._arch, "oracle": self.oracle.oracle_id,
                **self._sets_fp}

    def _state_path(self) -> Path | None:
        return None if self.workdir is None else self.workdir / "state.json"

    def _prev_state_path(self) -> Path | None:
        return None if self.workdir is None else self.workdir / _PREV_STATE

    def save_checkpoint(self) -> None:
        """Write the current state atomically to ``workdir`` (no-op without one).

        The data files of every save get new names and ``state.json`` (the commit
        point) is written last; the previous commit is kept as ``state.prev.json``
        with its files until the next save completes, so :meth:`load_checkpoint` can
        fall back to it when the latest state is damaged.
        """
        if self.workdir is None:
            return
        import ase.io

        self.workdir.mkdir(parents=True, exist_ok=True)
        self._save_seq = getattr(self, "_save_seq", 0) + 1
        tag = f"r{self.round_:04d}_{self.phase_}_{self._save_seq:05d}"
        lab_name = f"labelled_{tag}.traj"
        with atomic_path(self.workdir / lab_name) as tmp:
            ase.io.write(tmp, self.labelled_, format="traj") if self.labelled_ else tmp.write_bytes(b"")
        model_name = None
        if self.model_ is not None:
            model_name = f"model_{tag}.pt"
            atomic_torch_save({k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
                              self.workdir / model_name)
        otf_name = None
        if self.otf_state_ is not None and self.otf_state_.get("atoms") is not None:
            otf_name = f"otf_{tag}.traj"
            with atomic_path(self.workdir / otf_name) as tmp:
                ase.io.write(tmp, self.otf_state_["atoms"], format="traj")
        state = {"format": _FORMAT, "config": self._config(), "round": self.round_,
                 "phase": self.phase_, "pool_status": self.pool_status_.tolist(),
                 "failures": {str(k): v for k, v in self.failures_.items()},
                 "history": self.history_, "selections": self.selections_,
                 "n_oracle_calls": self.n_oracle_calls_, "n_labelled": len(self.labelled_),
                 "labelled_file": lab_name, "save_seq": self._save_seq,
                 "model_file": model_name, "pending": self._pending,
                 "otf": None if self.otf_state_ is None else
                 {k: v for k, v in self.otf_state_.items() if k != "atoms"} | {"atoms_file": otf_name}}
        path, prev = self._state_path(), self._prev_state_path()
        keep = {lab_name, model_name, otf_name}
        old = _readable_state(path)
        if old is not None:                       # the last good commit becomes the fallback
            atomic_write_text(prev, old[0])
            keep |= _state_files(old[1])
        atomic_write_json(path, state)
        for f in self.workdir.iterdir():
            if f.is_file() and f.name not in keep and f.suffix in (".traj", ".pt") and \
                    f.name.startswith(("labelled_r", "model_r", "otf_r")):
                f.unlink()

    def _clear_checkpoint(self) -> None:
        """Remove the state files of ``workdir`` (``run(resume=False)``)."""
        if self.workdir is None or not self.workdir.is_dir():
            return
        for f in self.workdir.iterdir():
            if f.is_file() and (f.name in ("state.json", _PREV_STATE) or (
                    f.suffix in (".traj", ".pt") and
                    f.name.startswith(("labelled_r", "model_r", "otf_r")))):
                f.unlink()

    def load_checkpoint(self) -> bool:
        """Restore the state from ``workdir``; False when there is no checkpoint.

        A damaged latest state (truncated ``state.json``, labelled ``.traj`` or model
        file) falls back to the previous commit ``state.prev.json`` with a
        :class:`~mdmlkit.errors.CheckpointFallbackWarning`; the labelled set and the
        state always come from the same commit (nothing lost or duplicated: the
        rounds after it are redone).  Raises
        :class:`~mdmlkit.errors.CheckpointMismatchError` naming the settings when the
        checkpoint was written for another set-up, and
        :class:`~mdmlkit.errors.CorruptCheckpointError` when no commit is readable.
        """
        path, prev = self._state_path(), self._prev_state_path()
        if path is None or not (path.is_file() or prev.is_file()):
            return False
        problems = []
        for p in (path, prev):
            if not p.is_file():
                problems.append(f"{p}: missing")
                continue
            try:
                restored = self._read_state(p)
            except CorruptCheckpointError as exc:
                problems.append(str(exc))
                continue
            for name, value in restored.items():
                setattr(self, name, value)
            if p == prev:
                warnings.warn(CheckpointFallbackWarning(
                    f"{path} (or a file it names) is damaged ({problems[0]}); resumed from the "
                    f"previous checkpoint {prev} (round {self.round_}, {self.phase_}); the rounds "
                    "after it are redone"), stacklevel=2)
            return True
        raise CorruptCheckpointError(
            "no readable active-learning checkpoint: " + " | ".join(problems)
            + "; delete the workdir (or run(resume=False)) to start afresh", path=str(self.workdir))

    def _read_state(self, path: Path) -> dict:
        """The attributes stored by the commit ``path`` (nothing is changed here)."""
        remedy = "delete it to fall back to the previous checkpoint, or run(resume=False)"
        state = read_json_file(path, "active-learning state", remedy)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise CorruptCheckpointError(f"not an active-learning checkpoint ({_FORMAT}); {remedy}",
                                         path=str(path))
        if not isinstance(state.get("config"), dict):
            raise CorruptCheckpointError(f"state lacks its 'config'; {remedy}", path=str(path))
        diff = settings_diff(state["config"], self._config())
        if diff:
            raise CheckpointMismatchError(
                f"{path} was written for a different set-up ({format_settings_diff(diff)}); use a "
                "fresh workdir, the original pool/parameters, or run(resume=False)")
        try:
            out = {"pool_status_": np.asarray(state["pool_status"], dtype="<U10"),
                   "failures_": {int(k): v for k, v in state["failures"].items()},
                   "history_": list(state["history"]), "selections_": list(state["selections"]),
                   "n_oracle_calls_": int(state["n_oracle_calls"]), "round_": int(state["round"]),
                   "phase_": str(state["phase"]), "_pending": dict(state.get("pending") or {}),
                   "_save_seq": int(state.get("save_seq", 0))}
            lab_name, model_name, otf = state["labelled_file"], state.get("model_file"), state.get("otf")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptCheckpointError(f"state is incomplete ({type(exc).__name__}: {exc}); "
                                         f"{remedy}", path=str(path)) from exc
        if out["pool_status_"].shape != (len(self.pool),):
            raise CorruptCheckpointError(f"pool_status has {out['pool_status_'].size} entries for "
                                         f"a pool of {len(self.pool)}; {remedy}", path=str(path))
        lab = self.workdir / lab_name
        labelled = _read_traj(lab, "labelled structures", remedy, allow_empty=True)
        n_rec = state.get("n_labelled")
        n_pool = int((out["pool_status_"] == "labelled").sum())
        n_from_pool = sum(1 for a in labelled if int(a.info.get("al_pool_index", 0)) >= 0)
        if (n_rec is not None and len(labelled) != int(n_rec)) or (
                all("al_pool_index" in a.info for a in labelled) and n_from_pool != n_pool):
            raise CorruptCheckpointError(
                f"holds {len(labelled)} labelled structures ({n_from_pool} from the pool) but the "
                f"state {path.name} records {n_rec} ({n_pool} from the pool); {remedy}", path=str(lab))
        out["labelled_"] = labelled
        out["model_"] = None
        if model_name:
            weights = load_torch_file(self.workdir / model_name, "active-learning model", remedy)
            model = copy.deepcopy(self.model)
            try:
                model.load_state_dict(weights)
            except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
                raise CorruptCheckpointError(f"weights do not fit the model ({exc}); {remedy}",
                                             path=str(self.workdir / model_name)) from exc
            out["model_"] = model
        if otf is not None:
            otf = dict(otf)
            name = otf.pop("atoms_file", None)
            otf["atoms"] = _read_traj(self.workdir / name, "on-the-fly MD state", remedy)[-1] \
                if name else None
        out["otf_state_"] = otf
        return out

    # ------------------------------------------------------------------ steps
    def label_structures(self, pool_indices: Sequence[int], round_: int, reasons: Sequence[dict] | None = None,
               count: bool = True, frames: Sequence[Atoms] | None = None) -> dict:
        """Label pool structures (or ``frames``, recorded with pool index −1), add them to
        ``labelled_`` and record the selections; returns ``n_new``, ``n_failed`` and
        ``label_time_s`` (s)."""
        frames = [self.pool[i] for i in pool_indices] if frames is None else list(frames)
        res = self.oracle.label(frames, progress=False)
        strategy = self.query.name
        for j, pi in enumerate(pool_indices):
            rec = {"round": round_, "pool_index": int(pi), "strategy": strategy}
            if reasons is not None:
                rec.update({k: v for k, v in reasons[j].items()})
            if j in res.labelled:
                a = res.labelled[j]
                a.info["al_round"] = round_
                a.info["al_pool_index"] = int(pi)
                self.labelled_.append(a)
                if pi >= 0:
                    self.pool_status_[pi] = "labelled"
                rec["status"] = "labelled"
            else:
                if pi >= 0:
                    self.pool_status_[pi] = "failed"
                    self.failures_[int(pi)] = res.failures[j]
                rec["status"] = "failed"
                rec["failure"] = res.failures[j]
                log.warning("round %d: pool structure %d could not be labelled (%s); skipped",
                            round_, pi, res.failures[j])
            rec["label_time_s"] = res.times[j]
            self.selections_.append(rec)
        if count:
            self.n_oracle_calls_ += len(frames)
        return {"n_new": len(res.labelled), "n_failed": len(res.failures),
                "label_time_s": res.time_s}

    def _initial_round(self) -> None:
        t0 = time.perf_counter()
        if isinstance(self.initial, (int, np.integer)):
            idx = initial_indices(self.seed, len(self.pool), int(self.initial))
            info = self.label_structures(idx.tolist(), 0, [{"rank": r, "reason": "initial random"}
                                                 for r in range(len(idx))], count=False)
        else:
            check_training_frames(self.initial, self.model.elements, "initial training set")
            for a in self.initial:
                b = a.copy()
                b.calc = a.calc
                b.info["al_round"] = 0
                b.info["al_pool_index"] = -1
                self.labelled_.append(b)
            info = {"n_new": len(self.initial), "n_failed": 0, "label_time_s": 0.0}
        if not self.labelled_:
            raise OracleError("round 0: the oracle failed on every initial structure: "
                              + "; ".join(f"{k}: {v}" for k, v in list(self.failures_.items())[:3]))
        self.mark_labelled(0, {"mode": "initial", "n_selected": int(info["n_new"] + info["n_failed"]),
                               "query_fit_time_s": 0.0, "query_select_time_s": 0.0,
                               "wall_label_s": time.perf_counter() - t0, **info})

    def mark_labelled(self, round_: int, record: dict) -> None:
        """Round ``round_`` has its labels; ``record`` (mode, counts, timings) goes into its
        history record when :meth:`train_round` trains it."""
        self.round_, self.phase_ = int(round_), "labelled"
        self._pending = {"round": int(round_), **record}

    def _select_round(self, r: int, n: int) -> None:
        pool_idx = self.unlabelled_indices
        t0 = time.perf_counter()
        self.query_.fit(self.labelled_)
        t_fit = time.perf_counter() - t0
        sel = self.query_.select([self.pool[i] for i in pool_idx], n)
        t_sel = time.perf_counter() - t0 - t_fit
        chosen = pool_idx[np.asarray(sel.indices, dtype=np.int64)]
        info = self.label_structures(chosen.tolist(), r, sel.reasons)
        self.mark_labelled(r, {"mode": "pool", "n_selected": int(n), "query_fit_time_s": t_fit,
                               "query_select_time_s": t_sel, **info})

    def _with_new_labels_repeated(self) -> tuple[list[Atoms], int]:
        """``(training set, repeats)``: ``labelled_`` with the structures labelled since the
        last trained round repeated so that they make up ``new_label_share`` of it."""
        share = self.new_label_share
        n_prev = int(self.history_[-1]["n_labelled"]) if self.history_ else len(self.labelled_)
        new = self.labelled_[n_prev:]
        n_old = len(self.labelled_) - len(new)
        if share <= 0.0 or not new or n_old == 0:
            return self.labelled_, 1
        reps = max(1, math.ceil(share * n_old / ((1.0 - share) * len(new))))
        return self.labelled_ + new * (reps - 1), reps

    def _trainer_kwargs(self, n: int) -> dict:
        tk = self.trainer_kwargs
        return dict(tk(n)) if callable(tk) else dict(tk)

    def _new_model(self):
        if self.warm_start and self.model_ is not None:
            return self.model_
        return reinitialise(copy.deepcopy(self.model), self.seed)

    def train_round(self) -> dict:
        """Train (or keep) the potential on ``labelled_``, evaluate, record and checkpoint the
        round; returns its history record."""
        r = self.round_
        warm = self.warm_start and self.model_ is not None
        train_set, reps = self._with_new_labels_repeated() if warm else (self.labelled_, 1)
        kw = {"progress": False, **self._trainer_kwargs(len(train_set))}
        kw.pop("seed", None)
        ckpt = None
        if self.workdir is not None:
            ckpt = self.workdir / f"trainer_r{r:04d}"
            kw["checkpoint_dir"] = ckpt
        t0 = time.perf_counter()
        rec = dict(self._pending)
        rec.setdefault("round", r)
        if rec.get("n_new", 1) == 0 and self.model_ is not None:
            trainer, model = self.trainer_, self.model_       # nothing new: keep the model
            rec["retrained"] = False
        else:
            model = self._new_model()
            if model is self.model_:          # warm start: keep round 0's scaling and offsets
                kw.setdefault("fit_normalisation", False)
            if reps > 1:
                rec["new_label_repeats"] = reps
            trainer = Trainer(model, seed=self.seed, **kw)
            try:
                trainer.fit(train_set, self.val, resume=ckpt is not None)
            except CorruptCheckpointError as exc:      # a damaged round checkpoint: train afresh
                warnings.warn(CheckpointFallbackWarning(
                    f"round {r}: {exc}; training this round afresh"), stacklevel=2)
                import shutil

                shutil.rmtree(ckpt, ignore_errors=True)
                trainer.fit(train_set, self.val, resume=False)
            rec["retrained"] = True
            rec["epochs"] = len(trainer.history_)
        rec["train_time_s"] = time.perf_counter() - t0
        rec["n_labelled"] = len(self.labelled_)
        rec["n_oracle_calls"] = self.n_oracle_calls_
        rec["n_failed_total"] = len(self.failures_)
        if self.test is not None:
            if trainer is None:       # resumed run that kept its model: a trainer only to evaluate
                trainer = Trainer(model, progress=False)
            t1 = time.perf_counter()
            ev = trainer.evaluate(self.test, source="test set")
            rec.update(select_metrics(ev))
            if "by_kind" in ev:
                rec["by_kind"] = {kd: select_metrics(v) for kd, v in ev["by_kind"].items()}
            rec["eval_time_s"] = time.perf_counter() - t1
        if self.extra_tests:
            if trainer is None:
                trainer = Trainer(model, progress=False)
            for name, frames in self.extra_tests.items():
                ev = trainer.evaluate(frames, source=f"test set {name!r}")
                rec.update({f"{name}/{key}": v for key, v in select_metrics(ev).items()})
        self.model_, self.trainer_ = model, trainer
        self.history_.append(rec)
        self.phase_ = "trained"
        self._pending = {}
        self.save_checkpoint()
        if ckpt is not None and ckpt.is_dir():
            import shutil

            shutil.rmtree(ckpt, ignore_errors=True)
        for cb in self.callbacks:
            cb(self, rec)
        return rec

    def _rounds_done(self) -> int:
        return sum(1 for h in self.history_ if h.get("mode") == "pool")

    def _next_size(self, n_rounds: int | None) -> int:
        """Structures to select in the next round (0: stop)."""
        if n_rounds is not None and self._rounds_done() >= n_rounds:
            return 0
        k = self.k if isinstance(self.k, int) else self.k[min(self._rounds_done(), len(self.k) - 1)]
        n = min(k, self.unlabelled_indices.size)
        if self.budget is not None:
            n = min(n, self.budget - self.n_oracle_calls_)
        return max(n, 0)

    # ------------------------------------------------------------------ public
    def run(self, n_rounds: int | None = None, resume: bool = True) -> ActiveLearningLoop:
        """Run (or continue) the loop until ``n_rounds`` pool rounds, the budget or the pool is used up.

        ``n_rounds`` overrides the constructor's.  With ``resume`` (default) and a
        checkpoint in ``workdir`` the loop continues from it; ``resume=False``
        starts afresh (the old checkpoint is overwritten).
        """
        from tqdm.auto import tqdm

        n_rounds = self.n_rounds if n_rounds is None else n_rounds
        if self.round_ < 0:
            if not resume:
                self._clear_checkpoint()
            if not (resume and self.load_checkpoint()):
                self._reset_state()
        total = None
        if n_rounds is not None:
            total = n_rounds + 1
        elif self.budget is not None:
            total = (math.ceil(self.budget / self.k) if isinstance(self.k, int) else len(self.k)) + 1
        bar = tqdm(total=total, initial=len(self.history_), desc=f"active learning ({self.query.name})",
                   unit="round", disable=not self.progress)
        try:
            if self.round_ < 0:
                self._initial_round()
                self.save_checkpoint()
            while True:
                if self.phase_ == "labelled":
                    rec = self.train_round()
                    bar.update(1)
                    if "force_rmse_meV_A" in rec:
                        bar.set_postfix(n=rec["n_labelled"], E=f"{rec['energy_rmse_meV_atom']:.2f}",
                                        F=f"{rec['force_rmse_meV_A']:.0f}")
                n = self._next_size(n_rounds)
                if n == 0:
                    break
                self._select_round(self.round_ + 1, n)
                self.save_checkpoint()
        finally:
            bar.close()
        return self

    def run_on_the_fly(self, atoms: Atoms, n_steps: int, temperature_K: float, **kwargs):
        """On-the-fly learning during MD; see :func:`mdmlkit.active.onthefly.run_on_the_fly`."""
        return run_on_the_fly(self, atoms, n_steps, temperature_K, **kwargs)

    # ------------------------------------------------------------------ results
    def learning_curve(self) -> dict[str, np.ndarray]:
        """Per trained round: ``round``, ``n_labelled``, ``n_oracle_calls``, the test-set
        ``energy_rmse_meV_atom``, ``force_rmse_meV_A`` (and MAEs) and the timings (s)."""
        keys = ["round", "n_labelled", "n_oracle_calls", *METRICS, "query_fit_time_s",
                "query_select_time_s", "label_time_s", "train_time_s"]
        return {k: np.array([h.get(k, np.nan) for h in self.history_], dtype=float) for k in keys}

    def selection_table(self):
        """``selections_`` as a ``pandas.DataFrame`` (one row per chosen structure)."""
        import pandas as pd

        return pd.DataFrame(self.selections_)

    def plot(self, metric: str = "force_rmse_meV_A", ax=None, label: str | None = None):
        """Test error vs labelled structures (one line; pass ``ax`` to overlay several loops)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        lc = self.learning_curve()
        ax.plot(lc["n_labelled"], lc[metric], "o-", ms=3,
                label=label or self.query.name)
        ax.set_xlabel("labelled structures (count)")
        ax.set_ylabel(metric_label(metric))
        ax.legend()
        return ax
