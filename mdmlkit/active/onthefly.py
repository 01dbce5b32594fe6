"""On-the-fly active learning during molecular dynamics.

The workflow the reference work sketched ("reconstruction loss of a new MD
session"): run MD with the current potential, score every ``check_every``-th
frame with the query, and when the query flags frames (their uncertainty exceeds
``threshold``) label them with the oracle, add them to the training set, retrain,
refit the query and continue the MD with the new potential.

    >>> loop = ActiveLearningLoop(AutoencoderQuery(), pool, model, oracle=EMT(), initial=10,
    ...                           warm_start=True, trainer_kwargs=finetune_schedule(10, ...))
    >>> res = loop.run_on_the_fly(atoms, n_steps=2000, temperature_K=[1200, 1500],
    ...                           check_every=20, label_batch=4)
    >>> res.stages          # per temperature: steps, teacher calls, fraction, roll-backs, drift

Production features:

* **Fast MD.** The potential runs through :class:`~mdmlkit.potential.HDNNPCalculator`
  with ``compile=True`` when the model supports it (``compile="auto"``); the
  calculator is rebuilt only after a retraining.
* **Batched labelling.** Flagged frames (at least ``min_flag_spacing`` steps apart)
  are collected until ``label_batch`` of them are pending, then labelled together
  and the potential is retrained once.  Retraining cost is set by the loop: with
  ``ActiveLearningLoop(warm_start=True, trainer_kwargs=finetune_schedule(...))``
  every retraining is a warm-started fine-tune of a bounded number of optimiser
  steps that keeps round 0's scaling.
* **Blow-up guards**, checked after every MD step: non-finite positions or energies,
  two atoms closer than ``min_distance`` (Å), or a change of the total energy
  (potential + kinetic) by more than ``max_energy_jump`` (eV/atom) since the last
  good checked frame.  The step is rolled back to that frame, the offending frame
  is labelled (it is exactly what the potential lacks), the potential retrained and
  the MD restarted from the good frame with a fresh random stream.  After
  ``max_retries`` consecutive failures from the same frame the run ends with status
  ``"md_failed"`` and an event saying why.
* **Temperature stages.** ``temperature_K`` may be a sequence (e.g. 2000, 2500,
  3000 K): ``n_steps`` are run at each, continuing the same trajectory; the
  result's ``stages`` give the teacher-call fraction of each.
* **Resumable.** The loop's ``workdir`` checkpoint (written after every labelling,
  every retraining, every stage and every ``checkpoint_every`` steps) holds the MD
  state, the pending frames and the trace; calling again with the same settings
  continues where it stopped.

MD: Langevin thermostat (ASE), ``timestep_fs`` (fs), ``friction`` (1/fs),
``temperature_K`` (K); initial velocities from a Maxwell–Boltzmann
distribution.  The random stream of every block of ``check_every`` steps is
seeded from ``(seed, step, retry)``, so the run is reproducible and a resumed
run follows the uninterrupted one.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units

from mdmlkit.active.features import structure_fingerprint, unlabelled_copy
from mdmlkit.errors import CheckpointMismatchError, InputError
from mdmlkit.utils import check_elements

__all__ = ["OnTheFlyResult", "finetune_schedule", "min_interatomic_distance", "run_on_the_fly"]

_TRACE_KEYS = ("step", "time_fs", "stage", "T_target", "uncertainty", "threshold", "flagged",
               "T_kinetic", "E_pot", "E_tot")


@dataclass
class OnTheFlyResult:
    """Outcome of :func:`run_on_the_fly`.

    Attributes
    ----------
    trace : dict[str, ndarray]
        Per checked (good) frame: ``step`` (counted over all stages), ``time_fs`` (fs),
        ``stage``, ``T_target`` (K), ``uncertainty`` (the query's statistic),
        ``threshold``, ``flagged`` (0/1), ``T_kinetic`` (K), ``E_pot`` and ``E_tot``
        (eV, current potential).
    events : list of dict
        One per labelled frame (``status`` "labelled" or "failed"; ``reason`` "flag" or
        "guard"; step, stage, uncertainty, threshold, round, and the retraining's
        training-set size, time and test errors), one per roll-back (``status``
        "rolled_back", ``reason``, ``retry``) and a final ``"md_failed"`` event when
        the guards gave up.
    atoms : ase.Atoms
        Final MD configuration (with momenta).
    status : str
        "completed", "max_labels" (stopped at ``max_labels``) or "md_failed".
    stages : list of dict
        Per temperature stage: ``T_K``, ``n_steps``, ``n_checked``, ``n_flagged``,
        ``n_teacher_calls``, ``teacher_fraction`` (calls per MD step), ``n_rollbacks``,
        ``drift_meV_atom_ps`` (slope of E_tot per atom; NVT, so a trend, not a
        conservation test) and ``max_jump_meV_atom`` (largest |ΔE_tot| per atom
        between consecutive checked frames).
    calculator : str
        The MD calculator used ("numba", "torch" or "eager").
    time_s : float
        Wall time of this call, s.
    """

    trace: dict[str, np.ndarray]
    events: list[dict]
    atoms: Atoms
    status: str
    stages: list[dict] = field(default_factory=list)
    calculator: str = "eager"
    time_s: float = 0.0
    n_labels: int = field(init=False)
    n_rollbacks: int = field(init=False)

    def __post_init__(self):
        self.n_labels = sum(1 for e in self.events if e.get("status") == "labelled")
        self.n_rollbacks = sum(1 for e in self.events if e.get("status") == "rolled_back")

    def __repr__(self) -> str:
        n = len(self.trace.get("step", []))
        last = int(self.trace["step"][-1]) if n else 0
        return (f"OnTheFlyResult(status={self.status!r}, steps={last}, checked_frames={n}, "
                f"labelled={self.n_labels}, rollbacks={self.n_rollbacks}, "
                f"time={self.time_s:.3g} s)")


def finetune_schedule(n_initial: int, initial: dict, steps: int, batch_size: int = 8,
                      **finetune) -> Callable[[int], dict]:
    """``trainer_kwargs`` for an on-the-fly loop: a full training for round 0, then
    warm-started fine-tunes of about ``steps`` optimiser steps each.

    Use with ``ActiveLearningLoop(..., warm_start=True)`` (which keeps round 0's input
    scaling and reference energies).  A training set of ``n <= n_initial`` structures
    (round 0) gets ``initial``; larger ones get ``max_epochs = ceil(steps *
    batch_size / n)`` (at least 1), ``batch_size``, ``patience=None`` and ``finetune``.
    """
    if steps < 1 or batch_size < 1 or n_initial < 1:
        raise InputError(f"finetune_schedule: n_initial, steps and batch_size must be >= 1, "
                         f"got {n_initial}, {steps}, {batch_size}")
    initial, finetune = dict(initial), dict(finetune)

    def trainer_kwargs(n: int) -> dict:
        if n <= n_initial:
            return dict(initial)
        return {"patience": None, **finetune, "batch_size": batch_size,
                "max_epochs": max(1, math.ceil(steps * batch_size / n))}

    trainer_kwargs.__qualname__ = (f"finetune_schedule(n_initial={n_initial}, steps={steps}, "
                                   f"batch_size={batch_size})")
    return trainer_kwargs


def min_interatomic_distance(atoms: Atoms, cutoff: float) -> float:
    """Smallest interatomic distance (Å, minimum image) if it is below ``cutoff`` (Å), else inf.

    Small cells whose periodic widths exceed ``2 cutoff``: all pairs, the image found by
    rounding fractional differences (exact for distances below half the width); else
    ASE's neighbour list."""
    n = len(atoms)
    if n < 2:
        return math.inf
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = atoms.cell.array
    if n <= 300 and (not pbc.any() or abs(np.linalg.det(cell)) > 1e-12):
        inv = np.linalg.inv(cell) if pbc.any() else None
        widths = 1.0 / np.linalg.norm(inv, axis=0) if inv is not None else None
        if inv is None or np.all(widths[pbc] > 2.0 * cutoff):
            i, j = np.triu_indices(n, 1)
            dr = atoms.positions[i] - atoms.positions[j]
            if inv is not None:
                df = dr @ inv
                df[:, pbc] -= np.round(df[:, pbc])
                dr = df @ cell
            dmin = float(np.sqrt(np.einsum("ij,ij->i", dr, dr).min()))
            return dmin if dmin < cutoff else math.inf
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, float(cutoff))
    return float(d.min()) if d.size else math.inf


def _thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann momenta (ASE >= 3.29 ``thermalize_momenta``, else the older name)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    else:   # pragma: no cover - older ASE
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


def _langevin(atoms: Atoms, timestep_fs: float, temperature_K: float, friction: float,
              rng: np.random.Generator):
    """The MD integrator of one block (Langevin NVT; fixcm=False: ASE's centre-of-mass fix
    biases NVT sampling in small cells)."""
    from ase.md.langevin import Langevin

    return Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K,
                    friction=friction / units.fs, fixcm=False, rng=rng)


def _calculator(model, compile):
    """The MD calculator and its kind ("numba", "torch" or "eager")."""
    from mdmlkit.potential.calculator import HDNNPCalculator

    if compile in ("auto", True, "numba", "torch"):
        try:
            calc = HDNNPCalculator(model, extrapolation="ignore",
                                   compile=True if compile == "auto" else compile)
            return calc, str(calc.compile)
        except InputError:
            if compile != "auto":
                raise
    return HDNNPCalculator(model, extrapolation="ignore"), "eager"


def _encode(atoms: Atoms) -> dict:
    """JSON-able exact copy of a frame (floats round-trip through JSON)."""
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(), "pbc": [bool(p) for p in atoms.pbc]}


def _decode(d: dict) -> Atoms:
    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])


def _guard(md: Atoms, e_ref: float, min_distance: float, max_energy_jump: float) -> str | None:
    """Why the current MD frame is unphysical, or None."""
    if not np.all(np.isfinite(md.positions)):
        return "non-finite positions"
    e_pot = float(md.get_potential_energy())
    e_tot = e_pot + float(md.get_kinetic_energy())
    if not (math.isfinite(e_tot) and np.all(np.isfinite(md.get_forces()))):
        return f"non-finite energy or forces (E_pot={e_pot})"
    if min_distance > 0:
        d = min_interatomic_distance(md, min_distance)
        if d < min_distance:
            return f"atoms {d:.3f} Å apart (< min_distance={min_distance} Å)"
    jump = abs(e_tot - e_ref) / len(md)
    if jump > max_energy_jump:
        return (f"total energy changed by {jump:.3g} eV/atom since the last good frame "
                f"(> max_energy_jump={max_energy_jump} eV/atom)")
    return None


def _stage_summary(trace: dict, events: list[dict], temperatures: Sequence[float], n_steps: int,
                   n_atoms: int, done_step: int) -> list[dict]:
    out = []
    st = np.asarray(trace["stage"], dtype=int)
    for s, T in enumerate(temperatures):
        m = st == s
        steps = int(np.clip(done_step - s * n_steps, 0, n_steps))
        calls = [e for e in events if e.get("stage") == s and e.get("status") in ("labelled", "failed")]
        t_ps = np.asarray(trace["time_fs"], dtype=float)[m] / 1000.0
        e_tot = np.asarray(trace["E_tot"], dtype=float)[m] / n_atoms
        drift = float(np.polyfit(t_ps, e_tot, 1)[0] * 1000.0) if m.sum() >= 3 else math.nan
        jump = float(np.abs(np.diff(e_tot)).max() * 1000.0) if m.sum() >= 2 else math.nan
        out.append({"T_K": float(T), "n_steps": steps, "n_checked": int(m.sum()),
                    "n_flagged": int(np.asarray(trace["flagged"])[m].sum()),
                    "n_teacher_calls": len(calls),
                    "teacher_fraction": len(calls) / steps if steps else math.nan,
                    "n_rollbacks": sum(1 for e in events if e.get("stage") == s
                                       and e.get("status") == "rolled_back"),
                    "drift_meV_atom_ps": drift, "max_jump_meV_atom": jump})
    return out


def run_on_the_fly(loop, atoms: Atoms, n_steps: int, temperature_K: float | Sequence[float],
                   timestep_fs: float = 1.0, check_every: int = 10, max_labels: int | None = None,
                   friction: float = 0.01, threshold: float | None = None, seed: int | None = None,
                   progress: bool = True, label_batch: int = 1, min_flag_spacing: int | None = None,
                   min_distance: float = 1.2, max_energy_jump: float = 0.5, max_retries: int = 3,
                   compile: bool | str = "auto", checkpoint_every: int | None = None) -> OnTheFlyResult:
    """Run MD with the loop's potential, labelling and retraining when the query flags frames.

    Parameters
    ----------
    loop : ActiveLearningLoop
        Provides the potential, query, oracle, training set and checkpoints; its
        round 0 is run first if it has not been.
    atoms : ase.Atoms
        Starting configuration (copied; elements must be known to the potential).
    n_steps : int
        MD steps per temperature stage.
    temperature_K : float or sequence of float
        Thermostat temperature(s), K: one stage per entry, run in order.
    timestep_fs, friction : float
        MD time step (fs) and Langevin friction (1/fs).
    check_every : int
        Score every this many steps (the blow-up guards run on every step).
    max_labels : int, optional
        Stop after this many oracle calls in this run.
    threshold : float, optional
        Flag when the uncertainty exceeds this (default: the query's ``threshold_``,
        recalibrated at every refit).
    seed : int, optional
        MD random streams (default: the loop's seed).
    progress : bool
        tqdm bar over MD steps.
    label_batch : int
        Flagged frames collected before they are labelled and the potential retrained
        (pending frames are also labelled at the end of every stage and on a roll-back).
    min_flag_spacing : int, optional
        Steps between two collected flagged frames (default ``check_every``).
    min_distance : float
        Guard: smallest allowed interatomic distance, Å (0 disables it).
    max_energy_jump : float
        Guard: largest allowed change of the total energy per atom (eV/atom) between
        the last good checked frame and any later step.
    max_retries : int
        Consecutive roll-backs to the same frame before the run ends as "md_failed".
    compile : {"auto", True, False, "numba", "torch"}
        Calculator kernels; "auto" compiles when the model supports it.
    checkpoint_every : int, optional
        Also checkpoint every this many steps (default: only at labelling, retraining
        and stage ends).
    """
    from tqdm.auto import tqdm

    temps = [float(t) for t in np.atleast_1d(np.asarray(temperature_K, dtype=float))]
    if not temps or not all(t > 0 and math.isfinite(t) for t in temps):
        raise InputError(f"temperature_K must be positive (K), got {temperature_K!r}")
    if n_steps < 1 or check_every < 1 or label_batch < 1 or max_retries < 0:
        raise InputError(f"n_steps, check_every and label_batch must be >= 1 and max_retries >= 0, "
                         f"got {n_steps}, {check_every}, {label_batch}, {max_retries}")
    if not timestep_fs > 0 or not friction >= 0:
        raise InputError("timestep_fs must be > 0 and friction >= 0")
    if not (min_distance >= 0 and max_energy_jump > 0):
        raise InputError(f"min_distance must be >= 0 Å and max_energy_jump > 0 eV/atom, got "
                         f"{min_distance}, {max_energy_jump}")
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise InputError("on-the-fly MD needs a non-empty ase.Atoms start structure")
    check_elements([atoms], loop.model.elements, "on-the-fly start structure",
                   owner="the potential")
    spacing = check_every if min_flag_spacing is None else int(min_flag_spacing)
    seed = loop.seed if seed is None else int(seed)
    total = n_steps * len(temps)
    settings = {"start": structure_fingerprint(atoms), "temperatures": temps,
                "n_steps": int(n_steps), "timestep_fs": float(timestep_fs),
                "check_every": int(check_every), "friction": float(friction), "seed": seed,
                "label_batch": int(label_batch), "min_flag_spacing": spacing,
                "min_distance": float(min_distance), "max_energy_jump": float(max_energy_jump)}
    t_start = time.perf_counter()

    if loop.round_ < 0:
        loop.run(n_rounds=0)
    while loop.phase_ == "labelled":      # a checkpoint taken between labelling and training
        loop.train_round()
    state = loop.otf_state_
    if state is not None and not state.get("finished") and state.get("atoms") is not None:
        old = state.get("settings")
        if old is not None and old != settings:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in settings.items()
                             if old.get(k) != v)
            raise CheckpointMismatchError(
                f"{loop.workdir}: an unfinished on-the-fly run with other settings ({diff}); "
                "rerun with its settings or use a fresh workdir")
        md = state["atoms"].copy()
        step = int(state["step"])
        trace = {k: list(state["trace"].get(k, [])) for k in _TRACE_KEYS}
        events = list(state["events"])
        n_labels = int(state["n_labels"])
        pending = list(state.get("pending", []))
        last_flag = int(state.get("last_flag", -spacing))
        retries = int(state.get("retries", 0))
    else:
        md = atoms.copy()
        _thermalize(md, temps[0], np.random.default_rng([seed, 0]))
        step, trace, events, n_labels, pending = 0, {k: [] for k in _TRACE_KEYS}, [], 0, []
        last_flag, retries = -spacing, 0

    def snapshot(finished: bool, status: str = "running") -> None:
        loop.otf_state_ = {"atoms": md.copy(), "step": step, "trace": trace, "events": events,
                           "n_labels": n_labels, "finished": finished, "pending": pending,
                           "last_flag": last_flag, "retries": retries, "status": status,
                           "settings": settings, "temperature_K": temps[min(step // n_steps,
                                                                             len(temps) - 1)]}

    query = loop.query_
    query.fit(loop.labelled_)
    calc, calc_kind = _calculator(loop.model_, compile)

    def attach() -> float:
        md.calc = calc
        return float(md.get_potential_energy() + md.get_kinetic_energy())

    def flush() -> None:
        """Label the pending frames and retrain once."""
        nonlocal n_labels, calc
        if not pending:
            return
        frames = [_decode(p["frame"]) for p in pending]
        r = loop.round_ + 1
        reasons = [{"rank": i, "reason": f"on-the-fly {p['reason']}", "md_step": p["step"],
                    "uncertainty": p["uncertainty"], "threshold": p["threshold"]}
                   for i, p in enumerate(pending)]
        info = loop.label_structures([-1] * len(frames), r, reasons, frames=frames)
        n_labels += len(frames)
        sel = loop.selections_[-len(frames):]
        batch = []
        for p, s in zip(pending, sel):
            ev = {k: p[k] for k in ("step", "stage", "uncertainty", "threshold", "reason")}
            ev.update(time_fs=p["step"] * timestep_fs, round=r, status=s["status"])
            if s["status"] != "labelled":
                ev["failure"] = s.get("failure")
            batch.append(ev)
        events.extend(batch)
        pending.clear()
        if info["n_new"]:
            loop.mark_labelled(r, {"mode": "on_the_fly", "md_step": step,
                                   "n_selected": len(frames), "query_fit_time_s": 0.0,
                                   "query_select_time_s": 0.0, **info})
            snapshot(False)
            loop.save_checkpoint()
            t0 = time.perf_counter()
            rec = loop.train_round()
            query.fit(loop.labelled_)
            calc, _ = _calculator(loop.model_, compile)
            extra = {"retrain_time_s": time.perf_counter() - t0, "n_labelled": len(loop.labelled_)}
            extra.update({k: v for k, v in rec.items() if k.endswith(("rmse_meV_atom", "rmse_meV_A"))})
            for ev in batch:
                ev.update(extra)
        snapshot(False)
        loop.save_checkpoint()

    status = "completed"
    bar = tqdm(total=total, initial=step, desc="on-the-fly MD", unit="step", disable=not progress)
    e_ref = attach()
    next_ckpt = None if not checkpoint_every else (step // checkpoint_every + 1) * checkpoint_every
    try:
        while step < total:
            stage = step // n_steps
            T = temps[stage]
            n = min(check_every, (stage + 1) * n_steps - step)
            good = md.copy()                      # positions and momenta of the last good frame
            dyn = _langevin(md, timestep_fs, T, friction, np.random.default_rng([seed, step, retries]))
            why, k = None, 0
            try:
                for i, _ in enumerate(dyn.irun(n)):
                    k = i
                    if i > 0:
                        why = _guard(md, e_ref, min_distance, max_energy_jump)
                        if why is not None:
                            break
            except InputError as exc:          # e.g. the calculator refuses the structure
                why = f"{type(exc).__name__}: {exc}"
            if why is not None:
                bad = unlabelled_copy(md)
                events.append({"step": step + k, "stage": stage, "status": "rolled_back",
                               "reason": why, "retry": retries, "rolled_back_to": step})
                if max_labels is None or n_labels + len(pending) < max_labels:
                    pending.append({"frame": _encode(bad), "step": step + k, "stage": stage,
                                    "uncertainty": math.nan, "threshold": math.nan,
                                    "reason": "guard"})
                md = good
                flush()
                retries += 1
                if retries > max_retries:
                    status = "md_failed"
                    events.append({"step": step, "stage": stage, "status": "md_failed",
                                   "reason": f"{max_retries} roll-backs to step {step} did not "
                                             f"help; last: {why}"})
                    break
                e_ref = attach()
                snapshot(False)
                continue
            retries = 0
            step += n
            bar.update(n)
            frame = unlabelled_copy(md)
            u = float(query.uncertainty([frame])[0])
            thr = float(query.threshold_ if threshold is None else threshold)
            flagged = u > thr
            e_pot = float(md.get_potential_energy())
            e_tot = e_pot + float(md.get_kinetic_energy())
            e_ref = e_tot
            for key, v in zip(_TRACE_KEYS, (step, step * timestep_fs, stage, T, u, thr, int(flagged),
                                            md.get_temperature(), e_pot, e_tot)):
                trace[key].append(float(v))
            if flagged and step - last_flag >= spacing:
                if max_labels is not None and n_labels + len(pending) >= max_labels:
                    flush()
                    status = "max_labels"
                    break
                pending.append({"frame": _encode(frame), "step": step, "stage": stage,
                                "uncertainty": u, "threshold": thr, "reason": "flag"})
                last_flag = step
                bar.set_postfix(labels=n_labels, pending=len(pending), u=f"{u:.3g}")
            end_of_stage = step % n_steps == 0
            if len(pending) >= label_batch or (end_of_stage and pending):
                flush()
                e_ref = attach()
            elif end_of_stage or (next_ckpt is not None and step >= next_ckpt):
                snapshot(False)
                loop.save_checkpoint()
            if next_ckpt is not None and step >= next_ckpt:
                next_ckpt = (step // checkpoint_every + 1) * checkpoint_every
    finally:
        bar.close()
    snapshot(True, status)
    loop.save_checkpoint()
    md.calc = None
    result_trace = {k: np.asarray(v, dtype=float) for k, v in trace.items()}
    return OnTheFlyResult(result_trace, events, md, status,
                          _stage_summary(trace, events, temps, n_steps, len(md), step),
                          calc_kind, time.perf_counter() - t_start)
