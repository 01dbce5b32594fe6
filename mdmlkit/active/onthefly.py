"""On-the-fly active learning during molecular dynamics.

The workflow the reference work sketched ("reconstruction loss of a new MD
session"): run MD with the current potential, score every ``check_every``-th
frame with the query, and when the query flags it (its uncertainty exceeds
``threshold``) stop, label that frame with the oracle, add it to the training
set, retrain, refit the query and continue the MD from the flagged frame with
the new potential.

    >>> loop = ActiveLearningLoop(AutoencoderQuery(), pool, model, oracle=EMT(), initial=10)
    >>> res = loop.run_on_the_fly(atoms, n_steps=2000, temperature_K=1200, check_every=20)
    >>> res.events          # which frames were flagged, why, what happened

MD: Langevin thermostat (ASE), ``timestep_fs`` (fs), ``friction`` (1/fs),
``temperature_K`` (K); initial velocities from a Maxwell–Boltzmann
distribution.  The random streams are seeded from ``(seed, step)`` at every
restart, so the run is reproducible and resumes (from the loop's ``workdir``
checkpoint, written after every retraining) where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units

from mdmlkit.active.features import unlabelled_copy
from mdmlkit.errors import InputError
from mdmlkit.utils import check_elements

__all__ = ["OnTheFlyResult", "run_on_the_fly"]

_TRACE_KEYS = ("step", "time_fs", "uncertainty", "threshold", "flagged", "T_kinetic", "E_pot")


@dataclass
class OnTheFlyResult:
    """Outcome of :func:`run_on_the_fly`.

    Attributes
    ----------
    trace : dict[str, ndarray]
        Per checked frame: ``step``, ``time_fs`` (fs), ``uncertainty`` (the query's
        statistic), ``threshold``, ``flagged`` (0/1), ``T_kinetic`` (K), ``E_pot``
        (eV, current potential).
    events : list of dict
        One per flagged frame: step, uncertainty, threshold, oracle status,
        training-set size and test errors after retraining (when a test set is set).
    atoms : ase.Atoms
        Final MD configuration (with momenta).
    status : str
        "completed", "max_labels" (stopped at ``max_labels``) or "md_failed"
        (the MD produced an invalid structure; ``events[-1]`` says why).
    time_s : float
        Wall time of this call, s.
    """

    trace: dict[str, np.ndarray]
    events: list[dict]
    atoms: Atoms
    status: str
    time_s: float = 0.0
    n_labels: int = field(init=False)

    def __post_init__(self):
        self.n_labels = sum(1 for e in self.events if e.get("status") == "labelled")

    def __repr__(self) -> str:
        n = len(self.trace.get("step", []))
        last = int(self.trace["step"][-1]) if n else 0
        return (f"OnTheFlyResult(status={self.status!r}, steps={last}, checked_frames={n}, "
                f"flagged={len(self.events)}, labelled={self.n_labels}, time={self.time_s:.3g} s)")


def _thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann momenta (ASE >= 3.29 ``thermalize_momenta``, else the older name)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    else:   # pragma: no cover - older ASE
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


def run_on_the_fly(loop, atoms: Atoms, n_steps: int, temperature_K: float, timestep_fs: float = 1.0,
                   check_every: int = 10, max_labels: int | None = None, friction: float = 0.01,
                   threshold: float | None = None, seed: int | None = None,
                   progress: bool = True) -> OnTheFlyResult:
    """Run MD with the loop's potential, labelling and retraining when the query flags a frame.

    Parameters
    ----------
    loop : ActiveLearningLoop
        Provides the potential, query, oracle, training set and checkpoints; its
        round 0 is run first if it has not been.
    atoms : ase.Atoms
        Starting configuration (copied; elements must be known to the potential).
    n_steps : int
        MD steps in total.
    temperature_K : float
        Thermostat temperature, K.
    timestep_fs, friction : float
        MD time step (fs) and Langevin friction (1/fs).
    check_every : int
        Score every this many steps.
    max_labels : int, optional
        Stop after this many oracle calls in this run.
    threshold : float, optional
        Flag when the uncertainty exceeds this (default: the query's ``threshold_``,
        recalibrated at every refit).
    seed : int, optional
        MD random streams (default: the loop's seed).
    progress : bool
        tqdm bar over MD steps.
    """
    from ase.md.langevin import Langevin
    from tqdm.auto import tqdm

    from mdmlkit.potential.calculator import HDNNPCalculator

    if n_steps < 1 or check_every < 1:
        raise InputError(f"n_steps and check_every must be >= 1, got {n_steps}, {check_every}")
    if not temperature_K > 0 or not timestep_fs > 0 or not friction >= 0:
        raise InputError("temperature_K and timestep_fs must be > 0 and friction >= 0")
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise InputError("on-the-fly MD needs a non-empty ase.Atoms start structure")
    check_elements([atoms], loop.model.elements, "on-the-fly start structure",
                   owner="the potential")
    seed = loop.seed if seed is None else int(seed)
    t_start = time.perf_counter()

    if loop.round_ < 0:
        loop.run(n_rounds=0)
    while loop.phase_ == "labelled":      # a checkpoint taken between labelling and training
        loop.train_round()
    state = loop.otf_state_
    if state is not None and not state.get("finished") and state.get("atoms") is not None:
        md = state["atoms"].copy()
        step = int(state["step"])
        trace = {k: list(v) for k, v in state["trace"].items()}
        events = list(state["events"])
        n_labels = int(state["n_labels"])
    else:
        md = atoms.copy()
        _thermalize(md, temperature_K, np.random.default_rng([seed, 0]))
        step, trace, events, n_labels = 0, {k: [] for k in _TRACE_KEYS}, [], 0

    def snapshot(finished: bool) -> None:
        loop.otf_state_ = {"atoms": md.copy(), "step": step, "trace": trace, "events": events,
                           "n_labels": n_labels, "finished": finished,
                           "temperature_K": temperature_K}

    query = loop.query_
    query.fit(loop.labelled_)
    status = "completed"
    bar = tqdm(total=n_steps, initial=step, desc="on-the-fly MD", unit="step", disable=not progress)
    try:
        while step < n_steps:
            md.calc = HDNNPCalculator(loop.model_, extrapolation="ignore")
            # fixcm=False: ASE's centre-of-mass fix biases NVT sampling in small cells
            dyn = Langevin(md, timestep_fs * units.fs, temperature_K=temperature_K,
                           friction=friction / units.fs, fixcm=False,
                           rng=np.random.default_rng([seed, step]))
            flagged = False
            while step < n_steps and not flagged:
                n = min(check_every, n_steps - step)
                try:
                    dyn.run(n)
                    e_pot = float(md.get_potential_energy())
                except InputError as exc:   # e.g. atoms too close: the potential drove MD astray
                    events.append({"step": step + n, "status": "md_failed",
                                   "reason": f"{type(exc).__name__}: {exc}"})
                    status = "md_failed"
                    break
                step += n
                bar.update(n)
                frame = unlabelled_copy(md)
                u = float(query.uncertainty([frame])[0])
                thr = float(query.threshold_ if threshold is None else threshold)
                flagged = u > thr
                for key, v in zip(_TRACE_KEYS, (step, step * timestep_fs, u, thr, int(flagged),
                                                md.get_temperature(), e_pot)):
                    trace[key].append(float(v))
                if flagged:
                    if max_labels is not None and n_labels >= max_labels:
                        status = "max_labels"
                        break
                    r = loop.round_ + 1
                    info = loop.label_structures([-1], r, [{"rank": 0, "reason": "on-the-fly flag",
                                                  "md_step": step, "uncertainty": u,
                                                  "threshold": thr}], frames=[frame])
                    n_labels += 1
                    ev = {"step": step, "time_fs": step * timestep_fs, "uncertainty": u,
                          "threshold": thr, "round": r,
                          "status": "labelled" if info["n_new"] else "failed"}
                    if info["n_new"]:
                        loop.mark_labelled(r, {"mode": "on_the_fly", "md_step": step,
                                               "n_selected": 1, "query_fit_time_s": 0.0,
                                               "query_select_time_s": 0.0, **info})
                        snapshot(False)
                        t0 = time.perf_counter()
                        rec = loop.train_round()
                        query.fit(loop.labelled_)
                        ev["retrain_time_s"] = time.perf_counter() - t0
                        ev["n_labelled"] = len(loop.labelled_)
                        for m in ("energy_rmse_meV_atom", "force_rmse_meV_A"):
                            if m in rec:
                                ev[m] = rec[m]
                    else:
                        ev["failure"] = loop.failures_.get(-1) or loop.selections_[-1].get("failure")
                    events.append(ev)
                    bar.set_postfix(labels=n_labels, u=f"{u:.3g}")
                    snapshot(False)
                    loop.save_checkpoint()
            if status != "completed":
                break
    finally:
        bar.close()
    snapshot(True)
    loop.save_checkpoint()
    md.calc = None
    return OnTheFlyResult({k: np.asarray(v, dtype=float) for k, v in trace.items()}, events, md,
                          status, time.perf_counter() - t_start)
