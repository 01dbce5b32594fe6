"""Pool-based active-learning benchmarks: learning curves, labels-to-target, OOD detection.

::

    strategies = {"random": RandomQuery(), "ae": AutoencoderQuery(), "fps": FarthestPointQuery(),
                  "qbc": CommitteeQuery(n_models=3)}
    res = run_learning_curves(strategies, pool, test, seeds=(0, 1, 2), rounds=5, k=10,
                              n_initial=10, model=HDNNP(sfs, hidden=(10, 10)),
                              trainer_kwargs={"max_epochs": 40})
    res.curve("force_rmse_meV_A")   # mean and spread over seeds per round
    labels_to_reach(res)        # labels each strategy needs for random's final accuracy
    paired_comparison(res)      # each strategy vs random, paired over seeds (compare.py)

Every (strategy, seed) run is an :class:`~mdmlkit.active.ActiveLearningLoop` on
the same pool with a :class:`~mdmlkit.active.ReplayOracle` revealing the stored
labels (or, for an unlabelled pool, a live ``oracle`` such as the CHGNet teacher with a
disk label cache); for one seed all strategies start from the same random initial set and
the same weight initialisation, and are evaluated on the same fixed test set.
With ``workdir`` every run checkpoints and an interrupted benchmark resumes.
Descriptors are computed once per structure for all runs (one
:class:`~mdmlkit.active.DescriptorCache` per symmetry-function set, owned by the
benchmark call).  Plots: :func:`mdmlkit.viz.plotting.plot_learning_curves`.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mdmlkit.active.features import DescriptorCache
from mdmlkit.active.loop import ActiveLearningLoop
from mdmlkit.active.metrics import METRICS, select_metrics
from mdmlkit.active.oracle import ReplayOracle
from mdmlkit.active.queries.base import Query, query_for_seed
from mdmlkit.errors import EmptyTrajectoryError, InputError
from mdmlkit.parallel import run_tasks
from mdmlkit.utils import atomic_write_json

__all__ = ["LearningCurves", "run_learning_curves", "labels_to_reach", "ood_detection"]


@dataclass
class LearningCurves:
    """Results of :func:`run_learning_curves`.

    Attributes
    ----------
    records : list of dict
        One per (strategy, seed, round): ``strategy``, ``seed``, ``round``,
        ``n_labelled``, test errors (``energy_rmse_meV_atom``, ``force_rmse_meV_A``,
        MAEs), ``query_time_s`` (query fit + select, s), ``label_time_s``,
        ``train_time_s``, ``n_failed_total``, ``selected_kinds`` (``atoms.info["kind"]``
        counts of the structures labelled in that round) and ``by_kind`` test errors.
    meta : dict
        Parameters of the benchmark.
    """

    records: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r["strategy"] for r in self.records))

    @property
    def seeds(self) -> list[int]:
        return sorted({int(r["seed"]) for r in self.records})

    def __repr__(self) -> str:
        return (f"LearningCurves(strategies={self.strategies}, seeds={self.seeds}, "
                f"records={len(self.records)})")

    def curve(self, strategy: str, metric: str = "force_rmse_meV_A") -> dict[str, np.ndarray]:
        """Mean and spread over seeds per round.

        Returns ``n_labelled`` (mean over seeds), ``mean``, ``std`` (ddof=0),
        ``min``, ``max``, ``values`` [n_seeds, n_rounds] of ``metric`` (rows in
        the order of ``seeds``) and ``seeds``; rounds missing for a seed are NaN.
        """
        rows = [r for r in self.records if r["strategy"] == strategy]
        if not rows:
            raise InputError(f"no results for strategy {strategy!r}; have {self.strategies}")
        seeds = sorted({r["seed"] for r in rows})
        n_rounds = max(r["round"] for r in rows) + 1
        vals = np.full((len(seeds), n_rounds), np.nan)
        nlab = np.full((len(seeds), n_rounds), np.nan)
        for r in rows:
            s = seeds.index(r["seed"])
            vals[s, r["round"]] = r.get(metric, np.nan)
            nlab[s, r["round"]] = r["n_labelled"]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {"n_labelled": np.nanmean(nlab, axis=0), "mean": np.nanmean(vals, axis=0),
                    "std": np.nanstd(vals, axis=0), "min": np.nanmin(vals, axis=0),
                    "max": np.nanmax(vals, axis=0), "values": vals,
                    "seeds": np.asarray(seeds, dtype=np.int64)}

    def query_time(self, strategy: str) -> dict[str, float]:
        """Wall time per query round (fit + select), s: mean, std, total over all runs."""
        t = np.array([r["query_time_s"] for r in self.records
                      if r["strategy"] == strategy and r["round"] > 0], dtype=float)
        if t.size == 0:
            return {"mean": float("nan"), "std": float("nan"), "total": 0.0}
        return {"mean": float(t.mean()), "std": float(t.std()), "total": float(t.sum())}

    def summary(self, metric: str = "force_rmse_meV_A") -> dict[str, dict]:
        """Per strategy: final ``n_labelled``, final mean ± std of ``metric`` and query time."""
        out = {}
        for s in self.strategies:
            c = self.curve(s, metric)
            out[s] = {"n_labelled": float(c["n_labelled"][-1]), "mean": float(c["mean"][-1]),
                      "std": float(c["std"][-1]), "query_time_s": self.query_time(s)["mean"]}
        return out

    def summary_frame(self, metrics: Sequence[str] = ("energy_rmse_meV_atom", "force_rmse_meV_A"),
                      reference: str = "random"):
        """One row per strategy: final labels, final mean ± std of each metric, and the labels
        needed to reach ``reference``'s final mean (count and fraction of the reference's
        labels; empty when not reached within the budget), as a ``pandas.DataFrame``."""
        import pandas as pd

        rows = []
        for s in self.strategies:
            row = {"strategy": s, "seeds": len({r["seed"] for r in self.records if r["strategy"] == s})}
            for m in metrics:
                c = self.curve(s, m)
                row["labels"] = int(round(c["n_labelled"][-1]))
                row[m] = f"{c['mean'][-1]:.3g} ± {c['std'][-1]:.2g}"
                if reference in self.strategies:
                    reach = labels_to_reach(self, metric=m, reference=reference)[s]
                    row[f"labels to {reference}'s final ({m})"] = (
                        "not reached" if reach["n_labelled"] is None else
                        f"{reach['n_labelled']:.0f} ({reach['fraction']:.2f})")
            rows.append(row)
        return pd.DataFrame(rows).set_index("strategy")

    def table(self):
        """All records as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame(self.records)

    def to_dict(self) -> dict:
        return {"records": self.records, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Mapping) -> LearningCurves:
        return cls(list(d["records"]), dict(d.get("meta", {})))

    def save(self, path) -> Path:
        """Write JSON atomically."""
        atomic_write_json(path, self.to_dict())
        return Path(path)


def _cache_for(caches: list[DescriptorCache], sfs) -> DescriptorCache:
    """The cache of ``caches`` that describes ``sfs``, added when missing."""
    for c in caches:
        if c.describes(sfs):
            return c
    caches.append(DescriptorCache(sfs))
    return caches[-1]


def run_learning_curves(strategies: Mapping[str, Query | Callable[[int], Query]],
                        pool: Sequence[Atoms], test: Sequence[Atoms], seeds: Sequence[int] = (0, 1, 2),
                        rounds: int = 5, k: int | Sequence[int] = 10, n_initial: int = 10, model=None,
                        trainer_kwargs: dict | Callable[[int], dict] | None = None, val: Sequence[Atoms] | None = None,
                        warm_start: bool = False, workdir=None, progress: bool = True,
                        callback: Callable[[dict], None] | None = None,
                        extra_tests: Mapping[str, Sequence[Atoms]] | None = None,
                        oracle=None, n_jobs: int | None = None, executor: Any = None) -> LearningCurves:
    """Learning curves of several strategies on a pool of candidates (see module docstring).

    Parameters
    ----------
    strategies : dict name -> Query or callable(seed) -> Query
        Query instances are cloned per seed (``sklearn.base.clone``, their ``seed``
        set to the run's seed); the instances themselves are not changed.
    pool : sequence of ase.Atoms
        Candidates.  Without ``oracle`` they must be labelled: a :class:`ReplayOracle`
        reveals a label only when the structure is chosen.
    test : sequence of labelled ase.Atoms
        Fixed held-out test set.
    seeds : sequence of int
        One run per seed and strategy (initial set, weights, training order).
    rounds, k, n_initial : int
        Query rounds, structures per round (or one batch size per round, e.g.
        ``[50, 100, 200]`` for a geometric curve; ``rounds`` is then ``len(k)``),
        random initial structures.
    model : HDNNP or callable(seed) -> HDNNP
        Potential template.
    trainer_kwargs : dict or callable
        For :class:`~mdmlkit.potential.Trainer`, or ``n_labelled -> dict``.
    val : sequence of labelled ase.Atoms, optional
        Validation set for early stopping (same for all runs).
    warm_start : bool
        Retrain from the previous round's weights.
    workdir : path, optional
        ``workdir/<strategy>/seed_<s>`` checkpoints; finished runs are reloaded.
    progress : bool
        tqdm bar over runs.
    callback : callable, optional
        Called with each finished run's records (list of dict).
    extra_tests : dict name -> sequence of labelled ase.Atoms, optional
        Further fixed test sets (e.g. a hot test set); records get ``"<name>/<metric>"``.
    oracle : Oracle, ASE calculator or callable, optional
        A live oracle for an unlabelled pool (e.g. ``Oracle("chgnet", cache=...)``): every
        run labels what it chooses through it, and with a :class:`LabelCache` a structure
        chosen by several runs is computed once.
    n_jobs, executor : optional
        Where the (strategy, seed) runs go (:func:`mdmlkit.parallel.run_tasks`): serial by
        default; ``n_jobs > 1`` local processes (one torch thread each); a
        ``concurrent.futures.Executor`` or a dask ``Client`` as given.  Every run is seeded
        and independent, so the curves equal the serial ones (runs on one torch thread).
        In parallel, strategies, ``model`` and ``trainer_kwargs`` must pickle (no lambdas),
        ``callback`` is called for every run once all have finished, and each process keeps
        its own descriptor cache.
    """
    from tqdm.auto import tqdm

    if not strategies:
        raise InputError("no strategies given")
    pool = list(pool)
    if not pool:
        raise EmptyTrajectoryError("benchmark pool: no structures")
    if model is None:
        raise InputError("give a potential template (HDNNP) or a factory seed -> HDNNP")
    if isinstance(k, (int, np.integer)):
        ks = [int(k)] * int(rounds)
    else:
        ks = [int(x) for x in k]
        rounds = len(ks)
    if n_initial + sum(ks) > len(pool):
        raise InputError(f"n_initial + the round sizes = {n_initial + sum(ks)} exceeds the pool "
                         f"({len(pool)} structures)")
    oracle = ReplayOracle(pool) if oracle is None else oracle
    extra_tests = {str(n): list(f) for n, f in (extra_tests or {}).items()}
    res = LearningCurves(meta={"seeds": list(seeds), "rounds": rounds,
                               "k": k if isinstance(k, (int, np.integer)) else ks,
                               "n_initial": n_initial, "n_pool": len(pool), "n_test": len(test),
                               "oracle": type(oracle).__name__,
                               "n_extra_tests": {n: len(f) for n, f in extra_tests.items()},
                               "trainer_kwargs": repr(trainer_kwargs) if callable(trainer_kwargs) else
                               {kk: v for kk, v in (trainer_kwargs or {}).items()
                                if isinstance(v, (int, float, str, bool, type(None)))},
                               "warm_start": warm_start, "strategies": list(strategies)})
    runs = [(name, s) for s in seeds for name in strategies]
    one_run = partial(_learning_curve_run, strategies=dict(strategies), pool=pool, test=test,
                      model=model, oracle=oracle, n_initial=n_initial,
                      k=k if isinstance(k, (int, np.integer)) else ks, rounds=rounds, val=val,
                      extra_tests=extra_tests, trainer_kwargs=trainer_kwargs,
                      warm_start=warm_start, workdir=workdir)
    if executor is None and (n_jobs is None or n_jobs == 1):
        caches: list[DescriptorCache] = []     # one descriptor cache shared by the runs
        bar = tqdm(runs, desc="learning curves", disable=not progress, unit="run")
        for name, seed in bar:
            bar.set_postfix(strategy=name, seed=seed)
            run_records, wall = one_run((name, seed), caches=caches)
            _add_run(res, f"{name}/seed_{seed}", run_records, wall, callback)
        bar.close()
        return res
    outs = run_tasks(one_run, runs, executor=executor, n_jobs=n_jobs, progress=progress,
                     desc="learning curves", names=[f"{n}/seed_{s}" for n, s in runs])
    for (name, seed), (run_records, wall) in zip(runs, outs):
        _add_run(res, f"{name}/seed_{seed}", run_records, wall, callback)
    return res


def _add_run(res: LearningCurves, key: str, run_records: list[dict], wall: float,
             callback: Callable[[dict], None] | None) -> None:
    """Add one finished run (``key`` = ``strategy/seed_s``) to ``res`` and report it."""
    res.records.extend(run_records)
    res.meta.setdefault("run_wall_s", {})[key] = wall
    if callback is not None:
        callback(run_records)


def _learning_curve_run(task: tuple[str, int], *, strategies, pool, test, model, oracle,
                        n_initial, k, rounds, val, extra_tests, trainer_kwargs, warm_start,
                        workdir, caches: list[DescriptorCache] | None = None
                        ) -> tuple[list[dict], float]:
    """One (strategy, seed) run of :func:`run_learning_curves`: its records and wall time (s)."""
    name, seed = task
    m = model(seed) if callable(model) and not hasattr(model, "state_dict") else model
    query = query_for_seed(strategies[name], seed)
    wd = None if workdir is None else Path(workdir) / name / f"seed_{seed}"
    loop = ActiveLearningLoop(query, pool, m, oracle=oracle, initial=n_initial, k=k,
                              n_rounds=rounds, test=test, val=val, extra_tests=extra_tests,
                              trainer_kwargs=trainer_kwargs, warm_start=warm_start, workdir=wd,
                              seed=seed, progress=False,
                              cache=_cache_for([] if caches is None else caches, m.sfs))
    t0 = time.perf_counter()
    loop.run()
    run_records = []
    for h in loop.history_:
        rec = {"strategy": name, "seed": int(seed), "round": int(h["round"]),
               "n_labelled": int(h["n_labelled"]),
               "query_time_s": float(h.get("query_fit_time_s", 0.0) + h.get("query_select_time_s", 0.0)),
               "query_fit_time_s": float(h.get("query_fit_time_s", 0.0)),
               "query_select_time_s": float(h.get("query_select_time_s", 0.0)),
               "label_time_s": float(h.get("label_time_s", 0.0)),
               "train_time_s": float(h.get("train_time_s", 0.0)),
               "n_failed_total": int(h.get("n_failed_total", 0))}
        rec.update(select_metrics(h))
        rec.update({key: v for key, v in h.items()
                    if "/" in key and key.rsplit("/", 1)[1] in METRICS})
        if "by_kind" in h:
            rec["by_kind"] = h["by_kind"]
        kinds: dict[str, int] = {}
        for sel in loop.selections_:
            if sel["round"] == h["round"] and sel["status"] == "labelled":
                kd = str(pool[sel["pool_index"]].info.get("kind", "unknown"))
                kinds[kd] = kinds.get(kd, 0) + 1
        rec["selected_kinds"] = kinds
        run_records.append(rec)
    return run_records, time.perf_counter() - t0


def labels_to_reach(results: LearningCurves, target: float | None = None,
                    metric: str = "force_rmse_meV_A", reference: str = "random") -> dict[str, dict]:
    """Labels each strategy needs to reach ``target`` (default: ``reference``'s final mean error).

    The seed-averaged curve of every strategy is scanned round by round; the
    first round whose mean ``metric`` is at or below ``target`` gives
    ``n_labelled`` (mean over seeds) and ``fraction`` = n_labelled / (final
    ``n_labelled`` of the reference strategy).  A strategy that never reaches the
    target gets ``n_labelled=None`` and ``fraction=None`` (it would need more
    than the benchmark's budget).

    Returns ``{strategy: {"n_labelled", "fraction", "round", "final_mean", "target"}}``.
    """
    if reference not in results.strategies:
        raise InputError(f"reference strategy {reference!r} not in the results {results.strategies}")
    ref = results.curve(reference, metric)
    n_ref = float(ref["n_labelled"][-1])
    if target is None:
        target = float(ref["mean"][-1])
    out = {}
    for s in results.strategies:
        c = results.curve(s, metric)
        hit = np.flatnonzero(c["mean"] <= target + 1e-12)
        if hit.size:
            r = int(hit[0])
            n = float(c["n_labelled"][r])
            out[s] = {"n_labelled": n, "fraction": n / n_ref, "round": r,
                      "final_mean": float(c["mean"][-1]), "target": float(target)}
        else:
            out[s] = {"n_labelled": None, "fraction": None, "round": None,
                      "final_mean": float(c["mean"][-1]), "target": float(target)}
    return out


def ood_detection(query: Query, model, in_distribution: Sequence[Atoms],
                  out_of_distribution: Sequence[Atoms], threshold: float | None = None) -> dict[str, Any]:
    """Does the (fitted) query flag out-of-distribution structures the potential fails on?

    Parameters
    ----------
    query : fitted Query with :meth:`~Query.uncertainty`
    model : trained HDNNP
        The potential trained on the same training set as the query.
    in_distribution, out_of_distribution : sequences of labelled ase.Atoms
        Held-out structures like the training set / unlike it (e.g. 2000 K
        snapshots or vacancy cells kept out of the training set).
    threshold : float, optional
        Flagging threshold (default ``query.threshold_``).

    Returns
    -------
    dict with per-structure ``uncertainty_id``/``_ood`` and ``force_rmse_id``/``_ood``
    (meV/Å, the potential's error computed from the labels), ``auc`` (ROC AUC of
    the uncertainty separating OOD from ID; 0.5 = chance, 1 = perfect),
    ``flagged_id``/``flagged_ood`` (fractions above the threshold),
    ``force_rmse_id_mean``/``_ood_mean`` and ``spearman`` (rank correlation of
    uncertainty and force error over all structures).
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from mdmlkit.potential.training.trainer import Trainer

    ids, oods = list(in_distribution), list(out_of_distribution)
    if not ids or not oods:
        raise EmptyTrajectoryError("ood_detection needs in- and out-of-distribution structures")
    u_id = np.asarray(query.uncertainty(ids), dtype=float)
    u_ood = np.asarray(query.uncertainty(oods), dtype=float)
    thr = float(query.threshold_ if threshold is None else threshold)
    tr = Trainer(model, progress=False)
    f_id = tr.evaluate(ids, source="in-distribution")["force_rmse_per_structure_meV_A"]
    f_ood = tr.evaluate(oods, source="out-of-distribution")["force_rmse_per_structure_meV_A"]
    y = np.r_[np.zeros(len(ids)), np.ones(len(oods))]
    u = np.r_[u_id, u_ood]
    f = np.r_[f_id, f_ood]
    return {"uncertainty_id": u_id, "uncertainty_ood": u_ood, "force_rmse_id": f_id,
            "force_rmse_ood": f_ood, "threshold": thr, "auc": float(roc_auc_score(y, u)),
            "flagged_id": float(np.mean(u_id > thr)), "flagged_ood": float(np.mean(u_ood > thr)),
            "force_rmse_id_mean": float(np.sqrt(np.mean(f_id ** 2))),
            "force_rmse_ood_mean": float(np.sqrt(np.mean(f_ood ** 2))),
            "spearman": float(spearmanr(u, f).statistic)}
