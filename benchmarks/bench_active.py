"""Benchmark: active-learning queries for an HDNNP of La2Zr2O7 (pool-based, replay oracle).

Two experiments on the CHGNet-labelled La2Zr2O7 data set (``data/la2zr2o7``):

1. **Learning curves.**  The pool is a seeded random subset of the training
   split (labels revealed only when a structure is chosen), the test set a
   seeded subset of the fixed test split.  Every strategy — autoencoder (AE),
   query by committee (QBC, DP-GEN model deviation), farthest-point sampling
   (FPS) and random — starts from the same ``n_initial`` random structures and
   the same weights for a given seed, then runs ``rounds`` rounds of ``k``
   structures.  Each round trains the potential for the same number of optimiser
   steps (``--steps`` batches of 4 structures), continuing from the previous
   round's weights (``--cold-start``: from the same initial weights each round).
   Reported:
   energy (meV/atom) and force (meV/Å) test RMSE vs labelled structures (mean ±
   std over seeds), the labels each strategy needs to reach random's final
   accuracy, and the wall time of each query (fit + select).
2. **Out-of-distribution detection.**  Potential, AE, FPS (and QBC) are fitted
   on "cool" structures only (eos/strain/thermal/md with T <= ``--cool-max-T``,
   no defects); on held-out test structures we compare their uncertainty with
   the potential's force error for cool (ID), hot (thermal/md with T >=
   ``--hot-min-T``) and defect (vacancy, frenkel) cells: ROC AUC, flagged
   fractions and force RMSE per group.

``--profile production`` is the learning-curve benchmark at full size: the
whole training split (4 295 structures) is the pool, the whole test split (530)
and the teacher-labelled hot test set (120 frames at 2000-3000 K,
``data/la2zr2o7/hot_test.extxyz.gz``; never selected or trained on) are the test
sets, the potential has the symmetry functions and 40-40 networks of
``models/la2zr2o7-fast``, and the labelled set grows geometrically from 50 to
3 000 structures (round sizes 50, 100, 200, 400, 800, 1400).  **Retraining
rule:** round 0 trains from scratch (fitting the input scaling and reference
energies); every later round warm-starts from the previous round's weights with
a new optimiser, the learning rate restarted at ``--lr`` and decayed
exponentially to ``lr/10`` over ``--steps`` optimiser steps of ``--batch``
structures (the same number of steps every round, whatever the set size), the
scaling and reference energies of round 0 kept.  Committee members (QBC) follow
the same rule.  (strategy, seed) runs go to ``--workers`` processes; finished
runs are reloaded from their checkpoints, so an interrupted benchmark resumes
where it stopped, and the result JSON is rewritten (``"complete": false``)
after every finished run.  Strategies or seeds can be added later: the
finished runs of an existing result JSON with the same settings (apart from
``--strategies`` and ``--seeds``) are kept in it and never run again (another
``--out`` starts afresh), and all runs of one profile share one work folder
and its label cache.  FPS, QBC and the
extrapolation query reject picks with atoms closer than 1.2 Å (broken MD
frames of the unlabelled pool, which these outlier-seeking queries would pick
first; random and the autoencoder query have no such guard).  Reported per strategy: the four curves (test and hot
test, energy and force RMSE) with mean and spread over seeds, labels to reach
random's final accuracy and the absolute targets (2 meV/atom, 100 meV/Å),
and paired differences to random with 95 % confidence intervals.

``--profile md-pool`` runs that protocol on the unlabelled MD pool (``data/la2zr2o7_pool``,
20 290 frames at 300-3000 K) with the live CHGNet teacher (schedule 50 -> 800 labels);
``--profile md-pool-skewed`` on a production-like view of it (``--pool-hot-stride 8``:
every frame of the runs at <= 1000 K, every 8th frame of the hotter runs; 10 264 frames,
86 % cool).  Random and the autoencoder need no trained potential to choose, so their
labelled sets can also be drawn and trained without these warm-started curves
(``bench_active_refit.py --replay-profile``).

``--dataset synthetic`` runs the same on small EMT-labelled Cu/Ni cells (no
La2Zr2O7 data needed; for smoke tests).  Runs checkpoint under ``--workdir``
and resume.  ``mdmlkit.utils.machine_info`` (CPU, load average) is recorded at
the start and the end.

Usage::

    python benchmarks/bench_active.py --quick     # tiny settings (smoke test)
    python benchmarks/bench_active.py             # moderate size -> benchmarks/results/active.json
    python benchmarks/bench_active.py --profile production --workers 2
                                                  # -> benchmarks/results/active_production.json
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULT = REPO / "benchmarks" / "results" / "active.json"

#: ``steps``: optimiser steps (batches of ``BATCH`` structures) per training, whatever the
#: training-set size, so every round costs the same and small sets are not under-trained
PRESETS = {
    "quick": dict(seeds=[0, 1], rounds=2, k=5, n_initial=5, pool_size=200, test_size=60,
                  steps=50, hidden=[8], n_radial=4, committee=2, ae_steps=300,
                  ood_train=30, ood_test=30),
    "moderate": dict(seeds=[0, 1, 2], rounds=5, k=15, n_initial=20, pool_size=1000, test_size=200,
                     steps=300, hidden=[10, 10], n_radial=5, committee=3, ae_steps=1500,
                     ood_train=100, ood_test=80),
    # pool_size/test_size 0: the whole split; schedule: round sizes after the initial set
    "production": dict(seeds=[0, 1, 2], rounds=6, k=0, schedule=[50, 100, 200, 400, 800, 1400],
                       n_initial=50, pool_size=0, test_size=0, steps=1200, batch=8, lr=2e-3,
                       hidden=[40, 40], n_radial=5, committee=3, ae_steps=3000, ood_train=0,
                       ood_test=0, sfs_from="models/la2zr2o7-fast/input.nn"),
    # the production protocol on the unlabelled MD pool (data/la2zr2o7_pool, 300-3000 K),
    # labelled on request by the live CHGNet teacher (disk label cache shared by all runs)
    "md-pool": dict(seeds=[0, 1, 2], rounds=4, k=0, schedule=[50, 100, 200, 400],
                    n_initial=50, pool_size=0, test_size=0, steps=1200, batch=8, lr=2e-3,
                    hidden=[40, 40], n_radial=5, committee=3, ae_steps=3000, ood_train=0,
                    ood_test=0, sfs_from="models/la2zr2o7-fast/input.nn", pool_source="md",
                    oracle="chgnet"),
}
# the md-pool protocol on a production-like view of the pool: every frame of the runs at
# <= 1000 K, every 8th frame of the hotter runs (10 264 frames, 86 % cool), as a user's dump of
# long runs at working temperatures and short hot excursions (mdmlkit.systems.la2zr2o7.thin_hot_runs)
PRESETS["md-pool-skewed"] = {**PRESETS["md-pool"], "pool_hot_stride": 8}
#: profiles that run the resumable learning-curve protocol (``production``)
CURVE_PROFILES = ("production", "md-pool", "md-pool-skewed")
BATCH = 4
#: absolute targets of the production curves: the shipped model's test accuracy, and on the hot
#: test set the accuracy a robust shipped model must keep (5 meV/atom, 0.25 eV/Å)
TARGETS = {"energy_rmse_meV_atom": 2.0, "force_rmse_meV_A": 100.0,
           "hot/energy_rmse_meV_atom": 5.0, "hot/force_rmse_meV_A": 250.0}
#: the autoencoder query of the production profile: rank-scaled informativeness x
#: representativeness, k-means++ batches in the latent space
AE_PRODUCTION = dict(informativeness_scale="rank", batch_rule="kmeans++", beta=1.0)
#: n2p2's extrapolation criterion as a query, with a DP-GEN-like upper trust level (candidates more
#: than 5 range widths outside the labelled range are picked last) and a geometric guard: picks with
#: atoms closer than 1.2 Å (the on-the-fly guard) are rejected.  Without the guard both variants
#: picked broken MD frames of the pool first (atoms 0.5 Å apart, forces up to 500 eV/Å;
#: docs/active-learning.md)
EXTRAPOLATION_PRODUCTION = dict(trust_hi=5.0, min_distance=1.2)
#: farthest-point sampling and QBC in the production profiles: the same geometric guard (FPS takes
#: the farthest outliers first and QBC the largest force deviation, and 79 of the MD pool's 20 290
#: frames have atoms closer than 1.2 Å)
FPS_PRODUCTION = dict(min_distance=1.2)
QBC_PRODUCTION = dict(min_distance=1.2)
#: settings that do not change a (strategy, seed) run, nor the work folder
RUN_INDEPENDENT = ("out", "workdir", "no_progress", "workers", "replot", "strategies", "seeds")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    p.add_argument("--profile", choices=sorted(PRESETS), default=None,
                   help="settings preset (default: moderate; --quick = --profile quick)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes for (strategy, seed) runs (production profile)")
    p.add_argument("--dataset", choices=["la2zr2o7", "synthetic"], default="la2zr2o7")
    p.add_argument("--pool-source", choices=["split", "md"], default=None,
                   help="candidates: the labelled training split (replay oracle) or the unlabelled "
                        "MD pool labelled by --oracle (md-pool profile)")
    p.add_argument("--pool-hot-stride", type=int, default=None,
                   help="MD pool: keep every frame of the runs at <= --cool-max-T and every N-th "
                        "frame of the hotter runs (md-pool-skewed: 8; default 1, the whole pool)")
    p.add_argument("--oracle", default=None,
                   help="teacher of the MD pool: 'chgnet' or 'package.module:factory' "
                        "(synthetic data: default ase.calculators.emt:EMT)")
    p.add_argument("--strategies", default="random,autoencoder,fps,qbc")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=None)
    for name in ("rounds", "k", "n_initial", "pool_size", "test_size", "steps", "committee",
                 "ae_steps", "n_radial", "ood_train", "ood_test"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    p.add_argument("--hidden", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--schedule", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="round sizes after the initial set, e.g. 50,100,200 (production)")
    p.add_argument("--batch", type=int, default=None, help="structures per optimiser step")
    p.add_argument("--lr", type=float, default=None, help="learning rate at the start of a round")
    p.add_argument("--rc", type=float, default=6.0, help="symmetry-function cutoff, Å")
    p.add_argument("--cool-max-T", type=float, default=1000.0, help="K")
    p.add_argument("--hot-min-T", type=float, default=1700.0, help="K")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--cold-start", action="store_true",
                   help="retrain from scratch every round (default: continue from the previous "
                        "round's weights, committee members too)")
    p.add_argument("--float64", action="store_true", help="train in float64 (default float32)")
    p.add_argument("--no-ood", action="store_true", help="skip the OOD experiment")
    p.add_argument("--out", type=Path, default=None,
                   help=f"result JSON (default {RESULT.relative_to(REPO)}; quick runs: active_quick.json)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="checkpoints (default benchmarks/.cache/active-<hash of settings>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--replot", action="store_true",
                   help="only redraw the figure of an existing production result JSON")
    args = p.parse_args(argv)
    args.profile = args.profile or ("quick" if args.quick else "moderate")
    args.quick = args.profile == "quick"
    preset = {"schedule": None, "batch": BATCH, "lr": 3e-3, "sfs_from": None, "pool_source": "split",
              "oracle": None, "pool_hot_stride": 1, **PRESETS[args.profile]}
    for key, val in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, val)
    return args


def load_data(args):
    """(pool, test) frames and the element list: the pool labelled (training split) or, with
    ``pool_source="md"``, unlabelled MD frames (``data/la2zr2o7_pool``) for a live oracle."""
    from mdmlkit.active import random_subset

    rng = np.random.default_rng(12345)
    md = getattr(args, "pool_source", "split") == "md"
    if args.dataset == "synthetic":
        from mdmlkit.active.synthetic import emt_frames

        def mix(n, seed):
            n_th, n_hot, n_st = n // 2, n // 8, n // 4
            hot = emt_frames(n_hot, "thermal", (1700, 2000), seed=seed + 1)
            for a in hot:
                a.info["kind"] = "hot"
            return (emt_frames(n_th, "thermal", (300, 1000), seed=seed) + hot
                    + emt_frames(n_st, "strain", seed=seed + 2)
                    + emt_frames(n - n_th - n_hot - n_st, "vacancy", seed=seed + 3))

        pool, test = mix(args.pool_size, 100), mix(args.test_size, 200)
        if md:
            for a in pool:
                a.calc = None
        return pool, test, ["Cu", "Ni"]
    from mdmlkit.systems.la2zr2o7 import load_la2zr2o7, load_pool, thin_hot_runs

    test = load_la2zr2o7("test")
    if md:
        md_pool = load_pool()
        stride = int(getattr(args, "pool_hot_stride", 1) or 1)
        keep = thin_hot_runs(md_pool.info, stride, args.cool_max_T) if stride > 1 else range(len(md_pool))
        train = [md_pool[int(i)] for i in keep]
    else:
        train = load_la2zr2o7("train")
    pool = random_subset(train, args.pool_size, rng) if args.pool_size else train
    test = random_subset(test, args.test_size, rng) if args.test_size else test
    return pool, test, ["La", "Zr", "O"]


class FixedSteps:
    """``n_labelled -> Trainer kwargs`` with about ``steps`` optimiser steps per training.

    ``decay``: the learning rate falls exponentially from ``lr`` to ``lr · decay``
    over the training (per-epoch factor), so every (warm-started) round restarts
    the schedule; None keeps ``lr`` constant.  A class (not a closure) so that it
    pickles into worker processes.
    """

    def __init__(self, steps: int, batch: int = BATCH, lr: float = 3e-3, decay: float | None = None,
                 min_epochs: int = 5, max_epochs: int = 400):
        self.steps, self.batch, self.lr, self.decay = int(steps), int(batch), float(lr), decay
        self.min_epochs, self.max_epochs = int(min_epochs), int(max_epochs)
        self.__name__ = f"fixed_steps_{steps}_batch_{batch}" + (f"_decay_{decay}" if decay else "")

    def __call__(self, n: int) -> dict:
        epochs = int(np.clip(np.ceil(self.steps * self.batch / max(n, 1)), self.min_epochs,
                             self.max_epochs))
        kw = {"batch_size": self.batch, "patience": None, "lr": self.lr, "force_weight": 0.1,
              "max_epochs": epochs}
        if self.decay:
            kw.update(lr_schedule="exponential", lr_gamma=float(self.decay ** (1.0 / epochs)))
        return kw

    def __repr__(self) -> str:
        return self.__name__


def trainer_settings(steps: int, batch: int = BATCH, lr: float = 3e-3, decay: float | None = None):
    """See :class:`FixedSteps`."""
    if decay is None:
        return FixedSteps(steps, batch, lr)
    return FixedSteps(steps, batch, lr, decay, min_epochs=3)


def ood_experiment(args, sfs, model_factory, trainer_kwargs, progress):
    """Fit on cool structures; compare detectors' uncertainty with the potential's error."""
    from mdmlkit.active import make_query, ood_detection, ood_split
    from mdmlkit.potential.training.trainer import Trainer

    rng = np.random.default_rng(777)
    if args.dataset == "synthetic":
        from mdmlkit.active.synthetic import emt_frames

        train = emt_frames(args.ood_train, "thermal", (300, 900), seed=301)
        groups = {"cool": emt_frames(args.ood_test, "thermal", (300, 900), seed=302),
                  "hot": emt_frames(args.ood_test, "thermal", (1700, 2000), seed=303),
                  "defect": emt_frames(args.ood_test, "vacancy", (300, 900), seed=304)}
    else:
        from mdmlkit.systems.la2zr2o7 import load_la2zr2o7

        train, groups = ood_split(load_la2zr2o7("train"), load_la2zr2o7("test"), args.ood_train,
                                  args.ood_test, rng, cool_max_T=args.cool_max_T,
                                  hot_min_T=args.hot_min_T, defect_kinds=("vacancy", "frenkel"))
    t0 = time.perf_counter()
    model = model_factory(0)
    Trainer(model, seed=0, progress=progress, **trainer_kwargs(len(train))).fit(train)
    t_train = time.perf_counter() - t0
    detectors = {"autoencoder": make_query("autoencoder", sfs=sfs, steps=args.ae_steps, seed=0),
                 "fps": make_query("fps", sfs=sfs),
                 "extrapolation": make_query("extrapolation", sfs=sfs, threshold=0.05)}
    if args.committee >= 2 and "qbc" in args.strategies and not args.quick:
        detectors["qbc"] = make_query("qbc", model=model_factory(0), n_models=args.committee,
                                      trainer_kwargs=trainer_kwargs)
    out = {"n_train": len(train), "n_per_group": {g: len(v) for g, v in groups.items()},
           "train_time_s": t_train, "detectors": {}}
    for name, det in detectors.items():
        t1 = time.perf_counter()
        det.fit(train)
        fit_s = time.perf_counter() - t1
        res = {"fit_time_s": fit_s, "threshold": float(det.threshold_)}
        for g in ("hot", "defect"):
            if not groups[g]:
                continue
            r = ood_detection(det, model, groups["cool"], groups[g])
            res[g] = {key: r[key] for key in ("auc", "flagged_id", "flagged_ood",
                                              "force_rmse_id_mean", "force_rmse_ood_mean",
                                              "spearman")}
            res[g]["uncertainty_id_median"] = float(np.median(r["uncertainty_id"]))
            res[g]["uncertainty_ood_median"] = float(np.median(r["uncertainty_ood"]))
        out["detectors"][name] = res
    return out


# ----------------------------------------------------------------------------- production

def live_oracle(args, workdir: Path, n_workers: int = 1):
    """The oracle of an unlabelled (``pool_source="md"``) pool: the teacher with a disk label
    cache under ``workdir`` shared by all runs (``n_workers`` labelling processes); None for a
    labelled pool (replay)."""
    if getattr(args, "pool_source", "split") != "md":
        return None
    from mdmlkit.active import LabelCache, Oracle

    spec = args.oracle or ("ase.calculators.emt:EMT" if args.dataset == "synthetic" else "chgnet")
    return Oracle(spec, cache=LabelCache(Path(workdir) / "labels"), timeout_s=900, n_workers=n_workers)


def _production_setup(args):
    """(pool, test, hot, sfs, model factory, trainer kwargs, strategies) of the production profile."""
    import torch

    from mdmlkit.active import make_query
    from mdmlkit.descriptors import SymmetryFunctionSet, generate_set
    from mdmlkit.systems.la2zr2o7 import load_hot_test

    pool, test, elements = load_data(args)
    if args.dataset == "synthetic":
        from mdmlkit.active.synthetic import emt_frames

        hot = emt_frames(max(args.test_size // 2, 4), "thermal", (1700, 2000), seed=999)
    else:
        hot = load_hot_test()
    if args.sfs_from and args.dataset != "synthetic":
        sfs = SymmetryFunctionSet.from_input_nn(REPO / args.sfs_from)
    else:
        sfs = generate_set(elements, rc=args.rc, n_radial=args.n_radial, n_angular=1)
    dtype = torch.float64 if args.float64 else torch.float32
    factory = ModelFactory(sfs, tuple(args.hidden), dtype)
    tk = trainer_settings(args.steps, args.batch, args.lr, decay=0.1)
    params = {"autoencoder": dict(sfs=sfs, steps=args.ae_steps, **AE_PRODUCTION),
              "fps": dict(sfs=sfs, **FPS_PRODUCTION),
              "extrapolation": dict(sfs=sfs, **EXTRAPOLATION_PRODUCTION),
              "qbc": dict(n_models=args.committee, warm_start=not args.cold_start, **QBC_PRODUCTION)}
    strategies = {}
    for spec in args.strategies:             # "name" or a variant "name:key=value[:key=value]"
        name, overrides = split_strategy(spec)
        strategies[spec] = make_query(name, **{**params.get(name, {}), **overrides})
    return pool, test, hot, sfs, factory, tk, strategies


def split_strategy(spec: str) -> tuple[str, dict]:
    """A strategy of the learning-curve profiles: a registered query name, or a variant of one
    with parameters of its own, ``"autoencoder:beta=0"`` -> ``("autoencoder", {"beta": 0})``
    (numbers, ``true``/``false`` and words).  A variant is a strategy of its own, named by the
    whole spec, and shares the profile's work folder and label cache."""
    from mdmlkit.errors import InputError

    name, *items = spec.split(":")
    overrides: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier() or not text:
            raise InputError(f"strategy {spec!r}: write a variant as name:key=value[:key=value], "
                             "e.g. autoencoder:beta=0")
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text
    return name, overrides


def run_settings(args, leave_out: Sequence[str]) -> dict:
    """The run's settings as plain JSON values, without ``leave_out``; ``pool_hot_stride`` only
    when it thins the pool (so that results and work folders of the whole pool keep their keys)."""
    settings = {k: v for k, v in vars(args).items() if k not in leave_out}
    if settings.get("pool_hot_stride", 1) in (1, None):
        settings.pop("pool_hot_stride", None)
    return json.loads(json.dumps(settings, default=str))


def work_folder(settings: dict) -> Path:
    """The default work folder (checkpoints, label cache) of a learning-curve profile: one per
    setting, whatever the strategies and seeds (:data:`RUN_INDEPENDENT`)."""
    shared = {k: v for k, v in settings.items() if k not in RUN_INDEPENDENT}
    key = hashlib.sha1(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:10]
    return REPO / "benchmarks" / ".cache" / f"active-{key}"


def earlier_runs(path: Path, shared: dict) -> list[dict]:
    """Records of the finished (strategy, seed) runs in the result JSON ``path`` when its
    settings equal ``shared`` (apart from :data:`RUN_INDEPENDENT`); [] when the file is missing
    or was made with other settings."""
    if not Path(path).is_file():
        return []
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    theirs = {k: v for k, v in d.get("settings", {}).items() if k not in RUN_INDEPENDENT}
    if theirs != shared:
        return []
    done = {tuple(x.rsplit("/seed_", 1)) for x in d.get("runs_done", [])}
    keep = {(s, int(sd)) for s, sd in done}
    return [r for r in d.get("records", []) if (r.get("strategy"), int(r.get("seed", -1))) in keep]


def _plain(d: dict) -> dict:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()}


class ModelFactory:
    """``seed -> HDNNP`` (picklable)."""

    def __init__(self, sfs, hidden, dtype):
        self.sfs, self.hidden, self.dtype = sfs, hidden, dtype

    def __call__(self, seed: int):
        from mdmlkit.potential import HDNNP

        return HDNNP(self.sfs, hidden=self.hidden, seed=seed, dtype=self.dtype)


def _production_run(task: dict) -> list[dict]:
    """One (strategy, seed) learning curve in a worker process; returns its records."""
    import argparse as _ap

    import torch

    from mdmlkit.active import run_learning_curves

    torch.set_num_threads(1)
    args = _ap.Namespace(**task["args"])
    pool, test, hot, _, factory, tk, strategies = _production_setup(args)
    res = run_learning_curves({task["strategy"]: strategies[task["strategy"]]}, pool, test,
                              seeds=[task["seed"]], k=args.schedule, n_initial=args.n_initial,
                              model=factory, trainer_kwargs=tk, warm_start=not args.cold_start,
                              workdir=Path(task["workdir"]), progress=False,
                              extra_tests={"hot": hot} if hot else None,
                              oracle=live_oracle(args, Path(task["workdir"]).parent))
    for r in res.records:
        r["run_wall_s"] = res.meta.get("run_wall_s", {}).get(f"{task['strategy']}/seed_{task['seed']}")
    return res.records


PRODUCTION_METRICS = ("energy_rmse_meV_atom", "force_rmse_meV_A", "hot/energy_rmse_meV_atom",
                      "hot/force_rmse_meV_A")


def summarise(res) -> dict:
    """Curves, labels to random's final and to :data:`TARGETS`, paired differences to random per
    budget, whole-curve geometric-mean error ratios to random and label ratios at equal error
    (common-slope power laws; both over the rounds after the initial set)."""
    from mdmlkit.active import curve_ratio, label_ratio, labels_to_reach, paired_comparison

    out = {"targets": TARGETS, "curves": {}, "labels_to_reach_random_final": {},
           "labels_to_reach_target": {}, "paired_vs_random": {}, "curve_ratio_vs_random": {},
           "label_ratio_vs_random": {}}
    if not res.records:
        return out
    for s in res.strategies:
        out["curves"][s] = {m: {k2: v.tolist() for k2, v in res.curve(s, m).items() if k2 != "values"}
                            for m in PRODUCTION_METRICS}
    if "random" in res.strategies:
        for m in PRODUCTION_METRICS:
            out["labels_to_reach_random_final"][m] = labels_to_reach(res, metric=m)
            out["labels_to_reach_target"][m] = labels_to_reach(res, metric=m, target=TARGETS[m])
            if len(res.strategies) > 1 and len(res.seeds) > 1:
                out["paired_vs_random"][m] = {s: _plain(dataclasses.asdict(pc))
                                              for s, pc in paired_comparison(res, metric=m).items()}
                out["curve_ratio_vs_random"][m] = {s: cr.to_dict()
                                                   for s, cr in curve_ratio(res, metric=m).items()}
                out["label_ratio_vs_random"][m] = {s: lr.to_dict()
                                                   for s, lr in label_ratio(res, metric=m).items()}
    return out


def plot_production(res, path: Path, complete: bool = True, profile: str = "production",
                    title: str | None = None) -> Path:
    """Four panels (test/hot test × energy/force RMSE vs labels, log-log) -> ``path`` (PNG);
    ``title`` replaces the default one (the command that made the curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdmlkit.utils import atomic_path
    from mdmlkit.viz.plotting import plot_learning_curves

    fig, axes = plt.subplots(1, 4, figsize=(18, 4), constrained_layout=True)
    for ax, m in zip(axes, ("energy_rmse_meV_atom", "force_rmse_meV_A", "hot/energy_rmse_meV_atom",
                            "hot/force_rmse_meV_A")):
        if not any(np.isfinite(r.get(m, np.nan)) for r in res.records):
            ax.text(0.5, 0.5, f"no {m} in the results", ha="center", transform=ax.transAxes)
            continue
        plot_learning_curves(res, m, ax=ax, logx=True, logy=True, target=TARGETS[m])
    fig.suptitle((title or f"La2Zr2O7 HDNNP learning curves (benchmarks/bench_active.py --profile {profile})")
                 + ("" if complete else f" — partial: {len(set((r['strategy'], r['seed']) for r in res.records))} runs"))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def production(args) -> int:
    """The production learning-curve benchmark (see the module docstring)."""
    from mdmlkit.active import LearningCurves
    from mdmlkit.nbtools import format_table
    from mdmlkit.utils import atomic_write_json, machine_info

    t_start = time.perf_counter()
    machine_start = machine_info()
    settings = run_settings(args, ("out", "workdir", "no_progress", "workers", "replot"))
    shared = {k: v for k, v in settings.items() if k not in RUN_INDEPENDENT}
    workdir = args.workdir or work_folder(settings)
    out_path = args.out or RESULT.with_name(f"active_{args.profile}.json")
    earlier = earlier_runs(out_path, shared)
    finished = {(r["strategy"], int(r["seed"])) for r in earlier}
    if earlier:
        print(f"keeping {len(finished)} finished runs of {out_path.name} (same settings; another "
              "--out or deleting the file starts afresh)", flush=True)
    settings["strategies"] = sorted(set(args.strategies) | {r["strategy"] for r in earlier})
    settings["seeds"] = sorted(set(args.seeds) | {int(r["seed"]) for r in earlier})
    # random and the AE query for every seed first (the question of the benchmark), then FPS and QBC
    order = {"random": (0, 0), "autoencoder": (0, 1), "extrapolation": (0, 2), "fps": (1, 0), "qbc": (1, 1)}
    tasks = sorted(({"strategy": s, "seed": sd, "args": settings, "workdir": str(workdir / "curves")}
                    for s in args.strategies for sd in args.seeds if (s, sd) not in finished),
                   key=lambda t: (order.get(t["strategy"], (9, 0))[0], t["seed"],
                                  order.get(t["strategy"], (9, 0))[1]))
    print(f"production learning curves: {len(tasks)} runs on {args.workers} worker(s); "
          f"checkpoints in {workdir}", flush=True)
    records: list[dict] = list(earlier)
    metrics = PRODUCTION_METRICS

    def report(done_records, complete):
        res = LearningCurves(list(done_records), {"settings": settings})
        what = ("pool = training split, replay oracle = the CHGNet labels"
                if args.pool_source != "md" else
                f"pool = unlabelled MD frames (data/la2zr2o7_pool), live oracle {args.oracle or 'chgnet'} "
                "with a disk label cache")
        out = {"benchmark": f"active learning, {args.profile} learning curves ({what})",
               "complete": complete, "settings": settings,
               "query_settings": {"autoencoder": AE_PRODUCTION, "extrapolation": EXTRAPOLATION_PRODUCTION,
                                  "fps": FPS_PRODUCTION, "qbc": {"n_models": args.committee,
                                                                 **QBC_PRODUCTION}},
               "retraining_rule":
                   f"round 0 from scratch; later rounds warm start, {args.steps} optimiser steps of "
                   f"{args.batch} structures, lr {args.lr} decayed x0.1 per round, scaling kept",
               "machine_start": machine_start, "machine_end": machine_info(),
               "wall_s": time.perf_counter() - t_start, "targets": TARGETS,
               "runs_done": sorted({f"{r['strategy']}/seed_{r['seed']}" for r in done_records}),
               **summarise(res), "records": list(done_records)}
        atomic_write_json(out_path, out)
        if done_records:
            plot_production(res, out_path.with_suffix(".png"), complete, args.profile)
        return res, out

    def on_done(recs):
        records.extend(recs)
        report(records, False)
        r = recs[-1]
        print(f"  done {r['strategy']} seed {r['seed']}: n={r['n_labelled']} "
              f"E={r['energy_rmse_meV_atom']:.2f} meV/atom F={r['force_rmse_meV_A']:.0f} meV/Å "
              f"hot E={r.get('hot/energy_rmse_meV_atom', float('nan')):.2f} "
              f"F={r.get('hot/force_rmse_meV_A', float('nan')):.0f}", flush=True)

    if args.workers <= 1:
        for t in tasks:
            on_done(_production_run(t))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        from mdmlkit.parallel import exit_with_parent

        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"),
                                 initializer=exit_with_parent) as ex:
            futs = [ex.submit(_production_run, t) for t in tasks]
            for f in as_completed(futs):
                on_done(f.result())
    res, out = report(records, True)
    rows = []
    for s in res.strategies:
        row = {"strategy": s}
        for m in metrics:
            c = res.curve(s, m)
            row[m] = f"{c['mean'][-1]:.3g} ± {c['std'][-1]:.2g}"
        r = out["labels_to_reach_random_final"].get("force_rmse_meV_A", {}).get(s, {})
        row["reach"] = r.get("n_labelled")
        rows.append(row)
    print("\n" + format_table(rows, headers={
        "energy_rmse_meV_atom": "E test (meV/atom)", "force_rmse_meV_A": "F test (meV/Å)",
        "hot/energy_rmse_meV_atom": "E hot", "hot/force_rmse_meV_A": "F hot",
        "reach": "labels for random's final F"}))
    print(f"\nwrote {out_path} ({time.perf_counter() - t_start:.0f} s)")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.profile in CURVE_PROFILES:
        if args.replot:
            from mdmlkit.active import LearningCurves

            path = args.out or RESULT.with_name(f"active_{args.profile}.json")
            from mdmlkit.utils import atomic_write_json

            d = json.loads(Path(path).read_text())
            res = LearningCurves.from_dict(d)
            d.update(summarise(res))        # summaries of the current code (e.g. new targets)
            atomic_write_json(path, d)
            print(plot_production(res, Path(path).with_suffix(".png"), d.get("complete", False), args.profile))
            return 0
        return production(args)
    import torch

    torch.set_num_threads(args.threads)
    from mdmlkit.active import QUERIES, labels_to_reach, make_query, run_learning_curves
    from mdmlkit.descriptors import generate_set
    from mdmlkit.nbtools import format_table
    from mdmlkit.potential import HDNNP
    from mdmlkit.utils import atomic_write_json, machine_info

    progress = not args.no_progress
    t_start = time.perf_counter()
    machine_start = machine_info()
    pool, test, elements = load_data(args)
    sfs = generate_set(elements, rc=args.rc, n_radial=args.n_radial, n_angular=1)

    dtype = torch.float64 if args.float64 else torch.float32

    def model_factory(seed):
        return HDNNP(sfs, hidden=tuple(args.hidden), seed=seed, dtype=dtype)

    trainer_kwargs = trainer_settings(args.steps, args.batch, args.lr)
    query_params = {"autoencoder": dict(sfs=sfs, steps=args.ae_steps), "fps": dict(sfs=sfs),
                    "qbc": dict(n_models=args.committee, warm_start=not args.cold_start)}
    unknown = set(args.strategies) - set(QUERIES)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)}; choose from {sorted(QUERIES)}")
    strategies = {s: make_query(s, **query_params.get(s, {})) for s in args.strategies}
    settings = run_settings(args, ("out", "workdir", "no_progress"))
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    workdir = args.workdir or REPO / "benchmarks" / ".cache" / f"active-{key}"
    print(f"pool {len(pool)}, test {len(test)}, sfs {sfs.n_features}, strategies {args.strategies}, "
          f"seeds {args.seeds}; checkpoints in {workdir}", flush=True)

    res = run_learning_curves(strategies, pool, test, seeds=args.seeds, rounds=args.rounds, k=args.k,
                              n_initial=args.n_initial, model=model_factory,
                              trainer_kwargs=trainer_kwargs, warm_start=not args.cold_start,
                              workdir=workdir / "curves", progress=progress)
    t_curves = time.perf_counter() - t_start
    summary = {"force": res.summary("force_rmse_meV_A"), "energy": res.summary("energy_rmse_meV_atom")}
    reach = {m: labels_to_reach(res, metric=m) if "random" in res.strategies else {}
             for m in ("force_rmse_meV_A", "energy_rmse_meV_atom")}
    curves = {s: {m: {k2: v.tolist() for k2, v in res.curve(s, m).items() if k2 != "values"}
                  for m in ("force_rmse_meV_A", "energy_rmse_meV_atom")} for s in res.strategies}
    ood = None
    if not args.no_ood:
        ood = ood_experiment(args, sfs, model_factory, trainer_kwargs, progress)
    out = {"benchmark": "active learning (pool-based, replay oracle)",
           "dataset": args.dataset, "settings": settings, "sfs_n_features": sfs.n_features,
           "machine_start": machine_start, "machine_end": machine_info(),
           "wall_s": {"learning_curves": t_curves, "total": time.perf_counter() - t_start},
           "curves": curves, "final": summary, "labels_to_reach_random_final": reach,
           "query_time_s": {s: res.query_time(s) for s in res.strategies},
           "ood_detection": ood, "learning_curve_records": res.records}
    path = args.out or (RESULT if not args.quick else RESULT.with_name("active_quick.json"))
    atomic_write_json(path, out)

    rows = []
    for s in res.strategies:
        f, e = summary["force"][s], summary["energy"][s]
        r = reach["force_rmse_meV_A"].get(s, {})
        rows.append({"strategy": s, "n": f["n_labelled"], "F": f["mean"], "F_std": f["std"],
                     "E": e["mean"], "E_std": e["std"], "query_s": f["query_time_s"],
                     "reach": r.get("n_labelled"), "fraction": r.get("fraction")})
    print("\n" + format_table(rows, floatfmt=".3g", headers={
        "n": "labelled", "F": "F RMSE (meV/Å)", "F_std": "± (seeds)", "E": "E RMSE (meV/atom)",
        "E_std": "± (seeds)", "query_s": "query (s)", "reach": "labels for random's final F",
        "fraction": "fraction"}))
    if ood:
        print(f"\nOOD (trained on {ood['n_train']} cool structures)")
        print(format_table([{"detector": name, "group": g, **{k: r[g][k] for k in (
            "auc", "flagged_id", "flagged_ood", "force_rmse_id_mean", "force_rmse_ood_mean")}}
            for name, r in ood["detectors"].items() for g in ("hot", "defect") if g in r],
            floatfmt=".3g", headers={"auc": "ROC AUC", "flagged_id": "flagged ID",
                                     "flagged_ood": "flagged OOD",
                                     "force_rmse_id_mean": "F RMSE ID (meV/Å)",
                                     "force_rmse_ood_mean": "F RMSE OOD (meV/Å)"}))
    print(f"\nwrote {path} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
