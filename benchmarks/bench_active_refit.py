"""Benchmark: learning curves without retraining noise — every budget's labelled set trained from scratch.

The curves of ``bench_active.py --profile md-pool`` (and ``production``) retrain by
warm start: each round continues from the previous round's weights, so a curve
carries the path of its retrainings, and one unlucky round can double its error
(more than the strategies differ).  This benchmark keeps every run's *choices*
and re-evaluates them: for each (strategy, seed) run of a finished result JSON
and each budget n, the first n structures the run labelled are trained **from
scratch** — the same initial weights for a seed, a longer fixed schedule
(``--steps`` optimiser steps of ``--batch`` structures, learning rate decayed
exponentially from ``--lr`` to ``lr/10``, input scaling and reference energies
fitted on the set) — and evaluated on the same test split and hot test set.
Differences between strategies are then differences between labelled sets.

* **Choices** are read from the run's checkpoint in the source's work folder when it
  is still there.  Otherwise queries that need no trained potential (random,
  autoencoder, FPS, the extrapolation criterion) are replayed
  (:func:`mdmlkit.active.replay_selections`) from the seed and the pool; QBC's
  choices depend on its trained committees, so without a checkpoint its runs are
  left out.  The kinds of structure chosen in every round are checked against the
  source run's records, and a run that does not match is left out (named in the
  output, ``runs``).  The choices are stored with the result (``selections``).
* **Labels** come from the profile's teacher through its disk label cache (the one
  ``bench_active.py`` fills), so structures labelled before cost nothing.
* **Label gate** (``--max-force``, ``--min-distance``): an MD pool holds broken frames (two
  atoms pushed together by a potential outside its range) that the teacher answers with
  forces of hundreds of eV/Å; one such label dominates a squared-error loss and the curve
  then measures which strategy avoided it.  With the gate such labels count as spent (the
  call was paid) but are not trained on (``n_trained`` in the records), as a careful user
  would do (:func:`mdmlkit.active.oracle.label_problem`).
* **Budget 50** (the random initial set) is the same for every strategy of a seed:
  trained once per seed and shared.
* **Resumable.**  Each (strategy, seed, budget) result is saved atomically under
  ``<work folder>/refit-<protocol key>/`` (a training in progress checkpoints every epoch
  beside it and resumes); a rerun trains only what is missing, and
  the result JSON (``benchmarks/results/active_<profile>_refit.json`` and ``.png``) is
  rewritten after every training.  Budgets run in the order given (``--budgets``,
  default the final budget first), so a partial run already answers the end point.
* **Schedules that grow with the set.**  ``--epochs E`` trains every set E epochs instead of a
  fixed step count; ``--steps S --min-epochs E`` trains the larger of the two (small sets get
  S steps, large ones E epochs), which neither under-trains the small sets nor the large ones.
  A training that another protocol of the same source already ran with the same schedule
  (the same epochs and learning-rate decay for the same set, :func:`schedule`; each work
  folder keeps its ``protocol.json``) is copied (``reused_from``), not trained again.
* **Mixtures** (``--mix A,B``): the sets of a strategy that labels, each round, alternately
  A's and B's picks of that round (:func:`mix_rounds`): whether two queries' strengths add up,
  at the cost of trainings only (every label is already paid).  A proxy, not a query: a real
  mixed query would choose its later rounds from its own mixed set.
* **No source run** (``--replay-profile PROFILE``): the choices of the queries that need no
  trained potential (random, autoencoder, FPS, the extrapolation criterion) are replayed
  from the profile's settings (``--profile-args`` adds bench_active.py settings), with no
  warm-started curves to pay for first; the result is ``active_<profile>_refit.json``.

Usage::

    python benchmarks/bench_active_refit.py --workers 2        # from active_md-pool.json
    python benchmarks/bench_active_refit.py --budgets 800 --steps 2400
    python benchmarks/bench_active_refit.py --workers 2 --max-force 25 --min-distance 1.2 \
        --out benchmarks/results/active_md-pool_refit_gated.json
    python benchmarks/bench_active_refit.py --workers 2 --max-force 25 --min-distance 1.2 \
        --min-epochs 60 --out benchmarks/results/active_md-pool_refit_gated_envelope.json
    python benchmarks/bench_active_refit.py --workers 2 --max-force 25 --min-distance 1.2 \
        --min-epochs 60 --mix autoencoder,qbc --out benchmarks/results/active_md-pool_refit_gated_envelope_mix.json
    python benchmarks/bench_active_refit.py --replay-profile md-pool-skewed --workers 2 \
        --strategies random,autoencoder,fps,autoencoder:beta=0 --steps 2400 --min-epochs 60 --max-force 25 --min-distance 1.2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import bench_active as ba  # noqa: E402

#: the shared random initial set of a seed, trained once (its records are copied to every strategy)
INITIAL = "initial"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=ba.RESULT.with_name("active_md-pool.json"),
                   help="result JSON of bench_active.py (a learning-curve profile) whose runs to refit")
    p.add_argument("--replay-profile", default=None, metavar="PROFILE",
                   help="no source run: replay the choices of this bench_active.py learning-curve "
                        "profile (e.g. md-pool-skewed) for queries that need no trained potential "
                        "(--strategies, default random,autoencoder; --seeds, default the profile's) "
                        "and train only the from-scratch sets (no warm-started curves)")
    p.add_argument("--profile-args", default="", metavar="ARGS",
                   help="with --replay-profile: further bench_active.py settings, e.g. "
                        "'--pool-hot-stride 4 --seeds 0,1,2,3'")
    p.add_argument("--budgets", default=None,
                   help="comma-separated labelled-set sizes in the order to run (default: the final "
                        "budget, then every other, largest first, the shared initial set last)")
    p.add_argument("--steps", type=int, default=2400, help="optimiser steps per training")
    p.add_argument("--batch", type=int, default=None, help="structures per step (default: the source's)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default: the source's)")
    p.add_argument("--strategies", default=None, help="comma-separated (default: every run of the source)")
    p.add_argument("--seeds", default=None, help="comma-separated (default: every seed of the source)")
    p.add_argument("--epochs", type=int, default=None,
                   help="train every set this many epochs instead of --steps optimiser steps (a larger "
                        "set then gets proportionally more steps: a fixed step count trains the largest "
                        "budgets least, which flattens the curves)")
    p.add_argument("--min-epochs", type=int, default=None,
                   help="with --steps: train every set at least this many epochs as well (max of the "
                        "two; small sets get the steps, large ones the epochs).  Trainings that this "
                        "rule makes identical to ones of another protocol's work folder are reused")
    p.add_argument("--max-force", type=float, default=None,
                   help="label gate: labels with a force component above this (eV/Å) are not "
                        "trained on (they still count as labels spent); e.g. 25, the data set's rule")
    p.add_argument("--min-distance", type=float, default=None,
                   help="label gate: frames with two atoms closer than this (Å) are not trained on")
    p.add_argument("--mix", default=None, metavar="A,B",
                   help="also train the sets of a mixture of two strategies' choices, e.g. "
                        "autoencoder,qbc: per seed and round, alternately A's and B's picks of that "
                        "round (A first, no structure twice), as run 'A+B' (no new labels)")
    p.add_argument("--workers", type=int, default=1, help="training processes (one thread each)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="the source's work folder (default: bench_active.py's for its settings)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def budgets_of(settings: dict) -> list[int]:
    """Labelled-set sizes after each round of a learning-curve profile."""
    sizes = [int(settings["n_initial"])]
    for k in settings["schedule"]:
        sizes.append(sizes[-1] + int(k))
    return sizes


def profile_args(settings: dict, workers: int = 1) -> argparse.Namespace:
    """bench_active.py's arguments for the source's settings."""
    args = ba.parse_args(["--profile", settings["profile"]])
    for k, v in settings.items():
        setattr(args, k, v)
    args.workers = workers
    return args


def checkpoint_selections(run_dir: Path) -> list[list[int]] | None:
    """Labelled pool indices per round from an ActiveLearningLoop checkpoint (``state.json``);
    None without one."""
    state = Path(run_dir) / "state.json"
    if not state.is_file():
        return None
    sel = json.loads(state.read_text()).get("selections", [])
    rounds: dict[int, list[int]] = {}
    for r in sel:
        if r.get("status") == "labelled" and int(r["pool_index"]) >= 0:
            rounds.setdefault(int(r["round"]), []).append(int(r["pool_index"]))
    return [rounds.get(i, []) for i in range(max(rounds) + 1)] if rounds else None


def kinds_match(rounds: list[list[int]], kinds, records: list[dict]) -> list[int]:
    """Rounds whose chosen kinds differ from the source records' ``selected_kinds`` ([] = all match)."""
    bad = []
    for rec in records:
        r = int(rec["round"])
        want = rec.get("selected_kinds")
        if want is None:
            continue
        got = dict(Counter(str(kinds[i]) for i in rounds[r])) if r < len(rounds) else {}
        if got != want:
            bad.append(r)
    return sorted(bad)


def _replay(task: dict) -> list[list[int]]:
    """Replay one (strategy, seed) run's choices (in a worker process)."""
    import torch

    from mdmlkit.active import DescriptorCache, replay_selections

    torch.set_num_threads(1)
    pa = profile_args(task["settings"])
    pa.strategies = [task["strategy"]]
    pool, _, _, sfs, _, _, strategies = ba._production_setup(pa)
    rounds = replay_selections(strategies[task["strategy"]], pool, task["seed"],
                               int(pa.n_initial), pa.schedule, sfs=sfs, cache=DescriptorCache(sfs),
                               progress=task["progress"])
    return [r.tolist() for r in rounds]


def run_selections(source: dict, args, kinds, wanted, progress: bool):
    """``({"strategy/seed_s": rounds}, {"strategy/seed_s": note})`` for the source's runs:
    replayed (``args.workers`` processes) or read from the checkpoints, stored in the source's
    work folder (``refit-selections.json``, whatever the protocol) and checked against the
    source's chosen kinds."""
    from mdmlkit.active import make_query, replayable
    from mdmlkit.utils import atomic_write_json

    settings = source["settings"]
    store = Path(args.src_workdir) / "refit-selections.json"
    saved = json.loads(store.read_text()) if store.is_file() else {}
    notes = {}
    replay = []
    for s, seed in wanted:
        tag = f"{s}/seed_{seed}"
        if tag in saved:
            continue
        rounds = checkpoint_selections(Path(args.src_workdir) / "curves" / s / f"seed_{seed}")
        if rounds is not None:
            saved[tag] = {"rounds": rounds, "how": "read from the run's checkpoint"}
        elif replayable(make_query(ba.split_strategy(s)[0])):
            replay.append({"strategy": s, "seed": seed, "settings": settings, "progress": progress})
        else:
            notes[tag] = (f"left out: {s} cannot be replayed and its checkpoint "
                          f"({args.src_workdir}/curves/{s}/seed_{seed}) is gone")
    atomic_write_json(store, saved)

    def keep(t, rounds):
        saved[f"{t['strategy']}/seed_{t['seed']}"] = {"rounds": rounds, "how": "replayed"}
        atomic_write_json(store, saved)
        print(f"  replayed {t['strategy']} seed {t['seed']}", flush=True)

    if replay:
        print(f"replaying {len(replay)} runs' choices on {args.workers} worker(s)", flush=True)
    if args.workers <= 1:
        for t in replay:
            keep(t, _replay(t))
    elif replay:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        from mdmlkit.parallel import exit_with_parent

        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"),
                                 initializer=exit_with_parent) as ex:
            futs = {ex.submit(_replay, t): t for t in replay}
            for f in as_completed(futs):
                keep(futs[f], f.result())
    out = {}
    for s, seed in wanted:
        tag = f"{s}/seed_{seed}"
        if tag not in saved:
            continue
        rounds, how = saved[tag]["rounds"], saved[tag]["how"]
        recs = [r for r in source["records"] if r["strategy"] == s and int(r["seed"]) == seed]
        bad = kinds_match(rounds, kinds, recs)
        if bad:
            notes[tag] = f"left out: the {how} choices differ from the source run in rounds {bad}"
            continue
        out[tag] = rounds
        notes[tag] = (f"{how}; chosen kinds match the source run in every round"
                      if any("selected_kinds" in r for r in recs) else
                      f"{how} (no source run to check the chosen kinds against)")
    return out, notes


def plot_budget(recs: list[dict], source_recs: list[dict], budget: int, path: Path, title: str) -> Path:
    """One budget, four panels (test/hot test × energy/force RMSE): every seed's from-scratch error
    per strategy (filled, mean as a bar) beside the warm-started error of the same run (open)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdmlkit.active.metrics import metric_label
    from mdmlkit.utils import atomic_path

    strategies = sorted({r["strategy"] for r in recs}, key=lambda s: (s != "random", s))
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8), constrained_layout=True)
    for ax, m in zip(axes, ba.PRODUCTION_METRICS):
        for j, s in enumerate(strategies):
            mine = [r[m] for r in recs if r["strategy"] == s and r["n_labelled"] == budget]
            warm = [r[m] for r in source_recs if r["strategy"] == s and r["n_labelled"] == budget]
            ax.plot(np.full(len(mine), j - 0.12), mine, "o", color=f"C{j}", ms=6)
            ax.plot(np.full(len(warm), j + 0.12), warm, "s", mfc="none", color=f"C{j}", ms=6)
            if mine:
                ax.hlines(np.mean(mine), j - 0.3, j + 0.05, color=f"C{j}", lw=2)
        ax.axhline(ba.TARGETS[m], color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(strategies)), strategies, rotation=20, fontsize=8)
        ax.set_ylabel(metric_label(m))
        ax.set_yscale("log")
    axes[0].plot([], [], "ko", label="from scratch (bar: mean)")
    axes[0].plot([], [], "ks", mfc="none", label="warm start, same run")
    axes[0].plot([], [], "k--", lw=0.8, label="target")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}, {budget} labels")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- workers
_SETUP: dict = {}


def _init_worker(settings: dict) -> None:
    import torch

    from mdmlkit.parallel import exit_with_parent

    exit_with_parent()
    torch.set_num_threads(1)
    pa = profile_args(settings)
    pa.strategies = []
    _, test, hot, _, factory, _, _ = ba._production_setup(pa)
    _SETUP.update(test=test, hot=hot, factory=factory)


#: protocol fields two refit protocols must share for a training of one to stand for the other's
#: (the schedule itself is compared set by set: :func:`schedule`)
SHARED_FIELDS = ("batch", "lr", "lr_final", "float64", "hidden", "label_gate")


def chosen_key(indices) -> str:
    """A short fingerprint of a labelled set (its pool indices in the order chosen)."""
    return hashlib.sha1(json.dumps([int(i) for i in indices]).encode()).hexdigest()[:16]


def mix_rounds(rounds_a: list[list[int]], rounds_b: list[list[int]]) -> list[list[int]]:
    """The labelled set of a mixture of two runs of one seed: round 0 (their shared initial
    set) as it is; each later round as large as A's, filled alternately with A's and B's picks
    of that round in their order (A first), skipping structures already chosen; when both are
    used up, with their later rounds' picks the same way."""
    from mdmlkit.errors import InputError

    if list(rounds_a[0]) != list(rounds_b[0]) or len(rounds_a) != len(rounds_b):
        raise InputError("--mix: the two runs must share their initial set and number of rounds")
    taken = set(rounds_a[0])
    out = [list(rounds_a[0])]
    for r in range(1, len(rounds_a)):
        queues = [[i for rr in rounds[r:] for i in rr] for rounds in (rounds_a, rounds_b)]
        pos, picks, turn = [0, 0], [], 0
        while len(picks) < len(rounds_a[r]) and (pos[0] < len(queues[0]) or pos[1] < len(queues[1])):
            q = queues[turn]
            while pos[turn] < len(q) and q[pos[turn]] in taken:
                pos[turn] += 1
            if pos[turn] < len(q):
                picks.append(q[pos[turn]])
                taken.add(q[pos[turn]])
                pos[turn] += 1
            turn = 1 - turn
        out.append(picks)
    return out


def schedule(protocol: dict, n: int) -> dict:
    """Trainer keyword arguments of one from-scratch training of ``n`` structures under
    ``protocol``: ``epochs`` epochs, or about ``steps`` optimiser steps (at least
    ``min_epochs`` epochs, else 3), the learning rate decayed exponentially to a tenth."""
    epochs = protocol.get("epochs")
    if epochs:
        fixed = ba.FixedSteps(0, protocol["batch"], protocol["lr"], 0.1, min_epochs=epochs, max_epochs=epochs)
    else:
        fixed = ba.FixedSteps(protocol["steps"], protocol["batch"], protocol["lr"], 0.1,
                              min_epochs=protocol.get("min_epochs") or 3, max_epochs=400)
    return fixed(n)


def reuse_trainings(workdir: Path, protocol: dict, todo: list[dict], n_trained: dict) -> dict:
    """Copy into ``workdir`` the records of trainings that another refit protocol of the same
    source (a sibling ``refit-*`` folder with its ``protocol.json``) already ran with the
    same :data:`SHARED_FIELDS`, the same number of trained structures and the same
    :func:`schedule`, so that, e.g., "max(2 400 steps, 60 epochs)" costs only the sets that
    neither protocol trained (a record that names its labelled set, ``chosen``, must name
    the same one).  ``n_trained``: task path -> structures it trains on.
    Returns {task path: the folder reused}; the copies carry ``reused_from``."""
    from mdmlkit.utils import atomic_write_json

    others = []
    for d in sorted(workdir.parent.glob("refit-*")):
        if d == workdir or not (d / "protocol.json").is_file():
            continue
        try:
            other = json.loads((d / "protocol.json").read_text())
        except ValueError:
            continue
        if all(other.get(f) == protocol.get(f) for f in SHARED_FIELDS):
            others.append((d, other))
    reused = {}
    for t in todo:
        n = n_trained[t["path"]]
        for d, other in others:
            src = d / Path(t["path"]).name
            if not src.is_file():
                continue
            rec = json.loads(src.read_text())
            if rec.get("chosen", chosen_key(t["indices"])) != chosen_key(t["indices"]):
                continue                     # another labelled set under the same name
            if rec.get("n_trained") == n and schedule(other, n) == schedule(protocol, n):
                atomic_write_json(Path(t["path"]), {**rec, "reused_from": d.name})
                reused[t["path"]] = d.name
                break
    return reused


def _train(task: dict) -> dict:
    """Train one labelled set from scratch and evaluate it; the record is saved to ``task["path"]``."""
    import copy

    from mdmlkit.active.metrics import select_metrics
    from mdmlkit.errors import CorruptCheckpointError
    from mdmlkit.potential.committee import reinitialise
    from mdmlkit.potential.training.trainer import Trainer
    from mdmlkit.utils import atomic_write_json

    if not _SETUP:
        _init_worker(task["settings"])
    seed, frames = int(task["seed"]), task["frames"]
    if not frames:
        from mdmlkit.errors import InputError

        raise InputError(f"{task['strategy']} seed {seed}, {task['budget']} labels: no label is left "
                         "to train on (every one failed or was gated out); loosen the gate")
    model = reinitialise(copy.deepcopy(_SETUP["factory"](seed)), seed)
    kw = schedule(task["protocol"], len(frames))
    ckpt = Path(task["path"]).with_suffix(".ckpt")       # an interrupted training resumes
    t0 = time.perf_counter()
    trainer = Trainer(model, seed=seed, progress=False, checkpoint_dir=ckpt, **kw)
    try:
        trainer.fit(frames, resume=True)
    except CorruptCheckpointError:
        shutil.rmtree(ckpt, ignore_errors=True)
        trainer.fit(frames, resume=False)
    rec = {"strategy": task["strategy"], "seed": seed, "round": int(task["round"]),
           "n_labelled": int(task["budget"]), "n_trained": len(frames), "chosen": chosen_key(task["indices"]),
           "train_time_s": time.perf_counter() - t0,
           "epochs": len(trainer.history_), "protocol": "from scratch"}
    # training-set errors along the schedule (about 10 points): has the training converged?
    hist = trainer.history_
    keep = sorted({int(round(x)) for x in np.linspace(0, len(hist) - 1, min(len(hist), 10))})
    rec["train_curve"] = [{k: hist[i].get(k) for k in ("epoch", "lr", "train_energy_rmse_meV_atom",
                                                       "train_force_rmse_meV_A")} for i in keep]
    ev = trainer.evaluate(_SETUP["test"], source="test set")
    rec.update(select_metrics(ev))
    if "by_kind" in ev:
        rec["by_kind"] = {k: select_metrics(v) for k, v in ev["by_kind"].items()}
    if _SETUP["hot"]:
        ev = trainer.evaluate(_SETUP["hot"], source="hot test set")
        rec.update({f"hot/{k}": v for k, v in select_metrics(ev).items()})
    atomic_write_json(Path(task["path"]), rec)
    shutil.rmtree(ckpt, ignore_errors=True)
    return rec


def replay_source(args) -> dict:
    """A stand-in source for ``--replay-profile``: the profile's settings and one placeholder
    record per (strategy, seed) run (no metrics, no chosen kinds to check); ``args.source``
    becomes the default result path ``active_<profile>.json``."""
    from mdmlkit.active import make_query, replayable
    from mdmlkit.errors import InputError

    profile = args.replay_profile
    if profile not in ba.CURVE_PROFILES:
        raise InputError(f"--replay-profile {profile!r}: choose a learning-curve profile {ba.CURVE_PROFILES}")
    strategies = (args.strategies or "random,autoencoder").split(",")
    stuck = [s for s in strategies if not replayable(make_query(ba.split_strategy(s)[0]))]
    if stuck:
        raise InputError(f"--replay-profile: {stuck} choose with trained potentials and cannot be "
                         "replayed without a source run (bench_active.py)")
    pa = ba.parse_args(["--profile", profile, *shlex.split(args.profile_args),
                        "--strategies", ",".join(strategies)])
    pa.strategies = strategies
    settings = ba.run_settings(pa, ("out", "workdir", "no_progress", "workers", "replot"))
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else settings["seeds"]
    args.source = ba.RESULT.with_name(f"active_{profile}.json")
    return {"settings": settings, "replayed_profile": profile,
            "records": [{"strategy": s, "seed": sd, "round": 0} for s in strategies for sd in seeds]}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    from mdmlkit.active import LearningCurves
    from mdmlkit.errors import InputError
    from mdmlkit.utils import atomic_write_json, machine_info

    args = parse_args(argv)
    t_start = time.perf_counter()
    machine_start = machine_info()
    if args.replay_profile:
        source = replay_source(args)
    else:
        try:
            source = json.loads(Path(args.source).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"--source {args.source}: cannot read a result JSON ({exc})") from exc
    settings = source["settings"]
    if settings.get("profile") not in ba.CURVE_PROFILES or not source.get("records"):
        raise InputError(f"{args.source}: not a learning-curve result of bench_active.py "
                         f"(profiles {ba.CURVE_PROFILES}) with records")
    sizes = budgets_of(settings)
    budgets = ([int(b) for b in args.budgets.split(",")] if args.budgets else
               [sizes[-1]] + sizes[-2:0:-1] + [sizes[0]])
    unknown = [b for b in budgets if b not in sizes]
    if unknown:
        raise InputError(f"--budgets {unknown}: the source's labelled-set sizes are {sizes}")
    runs = sorted({(r["strategy"], int(r["seed"])) for r in source["records"]})
    if args.strategies:
        runs = [x for x in runs if x[0] in args.strategies.split(",")]
    if args.seeds:
        runs = [x for x in runs if x[1] in {int(s) for s in args.seeds.split(",")}]
    if not runs:
        raise InputError(f"{args.source}: no (strategy, seed) run matches --strategies/--seeds")
    args.src_workdir = args.workdir or ba.work_folder(settings)
    batch = args.batch or int(settings["batch"])
    lr = args.lr or float(settings["lr"])
    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    if args.min_epochs is not None and (args.min_epochs < 1 or args.epochs):
        raise InputError(f"--min-epochs {args.min_epochs}: needs a positive number and --steps, not --epochs")
    length = (f"{args.epochs} epochs" if args.epochs else f"{args.steps} optimiser steps"
              if not args.min_epochs else f"max({args.steps} optimiser steps, {args.min_epochs} epochs)")
    protocol = {"steps": None if args.epochs else args.steps, "batch": batch, "lr": lr, "lr_final": lr / 10,
                "float64": bool(settings.get("float64")), "hidden": settings["hidden"]}
    if args.max_force is not None or args.min_distance is not None:   # (no gate: the old key)
        protocol["label_gate"] = {"max_force_eV_A": args.max_force, "min_distance_A": args.min_distance}
    if args.epochs:                           # (steps only: the old key)
        protocol["epochs"] = args.epochs
    if args.min_epochs:
        protocol["min_epochs"] = args.min_epochs
    key = hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:8]
    workdir = Path(args.src_workdir) / f"refit-{key}"
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(workdir / "protocol.json", protocol)     # what other protocols reuse by
    out_path = args.out or Path(args.source).with_name(Path(args.source).stem + "_refit.json")
    progress = not args.no_progress

    pa = profile_args(settings, args.workers)
    pool, _, _ = ba.load_data(pa)
    kinds = np.asarray([a.info.get("kind", "") for a in pool], dtype=object)
    mix = args.mix.split(",") if args.mix else None
    if mix is not None and (len(mix) != 2 or mix[0] == mix[1]):
        raise InputError(f"--mix {args.mix!r}: give two different strategies, e.g. autoencoder,qbc")
    if mix is not None:                      # the mixed strategies' own runs are needed
        have = {(r["strategy"], int(r["seed"])) for r in source["records"]}
        runs = sorted(set(runs) | {(m, seed) for m in mix for _, seed in runs} & have)
    selections, notes = run_selections(source, args, kinds, runs, progress)
    if mix is not None:
        seeds = sorted({int(t.rsplit("_", 1)[1]) for t in selections})
        mixed = 0
        for seed in seeds:
            a, b = (selections.get(f"{m}/seed_{seed}") for m in mix)
            if a is None or b is None:
                continue
            selections[f"{mix[0]}+{mix[1]}/seed_{seed}"] = mix_rounds(a, b)
            notes[f"{mix[0]}+{mix[1]}/seed_{seed}"] = (f"mixed: per round alternately {mix[0]}'s and "
                                                       f"{mix[1]}'s picks (no new labels)")
            mixed += 1
        if not mixed:
            raise InputError(f"--mix {args.mix}: no seed has runs of both strategies in {args.source}")
    for tag, note in notes.items():
        print(f"  {tag}: {note}", flush=True)

    # tasks: (strategy or INITIAL, seed, budget); the initial set once per seed
    tasks, needed = [], set()
    for b in budgets:
        r = sizes.index(b)
        done_initial = set()
        for tag, rounds in sorted(selections.items(), key=lambda kv: (int(kv[0].rsplit("_", 1)[1]), kv[0])):
            s, seed = tag.split("/seed_")[0], int(tag.rsplit("_", 1)[1])
            name = INITIAL if r == 0 else s
            if (name, seed) in done_initial:
                continue
            done_initial.add((name, seed))
            idx = [i for rr in rounds[:r + 1] for i in rr]
            needed.update(idx)
            tasks.append({"strategy": name, "seed": seed, "round": r, "budget": b, "indices": idx,
                          "path": str(workdir / f"{name}_seed{seed}_n{b}.json")})
    todo = [t for t in tasks if not Path(t["path"]).is_file()]
    print(f"refit of {len(selections)} runs at budgets {budgets}: {len(tasks)} trainings, "
          f"{len(todo)} to do ({length} of {batch}, from scratch); work folder {workdir}",
          flush=True)

    labelled = {}
    # with a gate every chosen label is read (from the cache once paid), so that the result lists
    # each gated label even when nothing is left to train
    need = sorted(needed if "label_gate" in protocol else {i for t in todo for i in t["indices"]})
    if need:
        oracle = ba.live_oracle(pa, Path(args.src_workdir), n_workers=args.workers)
        if oracle is None:                                   # a labelled pool: the replay labels
            labelled = {i: pool[i] for i in need}
        else:
            res = oracle.label([pool[i] for i in need], progress=progress)
            labelled = {need[j]: a for j, a in res.labelled.items()}
            print(f"labels: {len(need)} structures, {len(res.failures)} failed, {res.time_s:.0f} s",
                  flush=True)
    if "label_gate" in protocol:             # labels a careful user would not train on
        from mdmlkit.active.oracle import label_problem

        rejected = {i: r for i, a in labelled.items()
                    if (r := label_problem(a, args.max_force, args.min_distance or 0.0)) is not None}
        labelled = {i: a for i, a in labelled.items() if i not in rejected}
        print(f"label gate {protocol['label_gate']}: {len(rejected)} of {len(need)} labels not "
              "trained on", flush=True)
    reused = reuse_trainings(workdir, protocol, todo, {
        t["path"]: sum(i in labelled for i in t["indices"]) for t in todo})
    if reused:
        todo = [t for t in todo if t["path"] not in reused]
        print(f"reused {len(reused)} trainings with the same schedule from "
              f"{', '.join(sorted(set(reused.values())))}; {len(todo)} to train", flush=True)

    rule = (f"every budget from scratch: {length} (batches of {batch} structures), lr {lr} "
            f"decayed exponentially to {lr / 10}, scaling and reference energies fitted on the set, "
            "the seed's initial weights (as the source's round 0)"
            + ("" if "label_gate" not in protocol else
               f"; labels failing the gate {protocol['label_gate']} count as spent but are not "
               "trained on (n_trained in the records)"))

    def records_now() -> list[dict]:
        recs = []
        for t in tasks:
            if not Path(t["path"]).is_file():
                continue
            rec = json.loads(Path(t["path"]).read_text())
            if t["strategy"] == INITIAL:        # shared initial set: one record per strategy
                for tag in selections:
                    if int(tag.rsplit("_", 1)[1]) == t["seed"]:
                        recs.append({**rec, "strategy": tag.split("/seed_")[0], "shared_initial": True})
            else:
                recs.append(rec)
        return recs

    def done_records() -> list[dict]:
        return [json.loads(Path(t["path"]).read_text()) for t in tasks if Path(t["path"]).is_file()]

    def report(complete: bool) -> None:
        recs = records_now()
        res = LearningCurves(recs, {"settings": settings})
        out = {"benchmark": "active learning, learning curves re-evaluated: every budget's labelled "
                            "set trained from scratch (benchmarks/bench_active_refit.py)",
               "complete": complete, "source": (
                   f"none: choices replayed from profile {args.replay_profile}" if args.replay_profile
                   else str(Path(args.source).resolve().relative_to(REPO))
                   if Path(args.source).resolve().is_relative_to(REPO) else str(args.source)),
               "protocol": protocol, "protocol_key": key,
               "retraining_rule": rule, "budgets": budgets, "settings": settings, "runs": notes,
               "runs_done": sorted(tag for tag in selections if all(
                   Path(t["path"]).is_file() for t in tasks
                   if t["seed"] == int(tag.rsplit("_", 1)[1])
                   and t["strategy"] in (INITIAL, tag.split("/seed_")[0]))),
               "machine_start": machine_start, "machine_end": machine_info(),
               "wall_s": time.perf_counter() - t_start,
               "train_time_total_s": sum(rec["train_time_s"] for rec in done_records()
                                         if "reused_from" not in rec),
               "n_trainings_reused": sum("reused_from" in rec for rec in done_records()),
               "n_trainings_done": sum(
                   Path(t["path"]).is_file() for t in tasks), "n_trainings": len(tasks),
               **({"label_gate_rejected": {str(i): r for i, r in sorted(rejected.items())}}
                  if "label_gate" in protocol else {}),
               **(ba.summarise(res) if recs else {}), "records": recs,
               "selections": selections}
        atomic_write_json(out_path, out)
        title = (f"La2Zr2O7 HDNNP, every budget trained from scratch ({length}; "
                 f"{settings['profile']} choices; bench_active_refit.py)")
        done = sorted({r["n_labelled"] for r in recs})
        if len(done) == 1:          # one budget: seeds per strategy, beside the warm-started runs
            warm = [r for r in source["records"] if "n_labelled" in r]      # (none when replayed)
            plot_budget(recs, warm, done[0], out_path.with_suffix(".png"), title)
        elif recs:
            ba.plot_production(res, out_path.with_suffix(".png"), complete, settings["profile"],
                               title=title)

    def payload(t):
        frames = [labelled[i] for i in t["indices"] if i in labelled]
        return {**t, "frames": frames, "settings": settings, "protocol": protocol}

    def on_done(rec):
        report(False)
        print(f"  done {rec['strategy']} seed {rec['seed']} n={rec['n_labelled']}: "
              f"E={rec['energy_rmse_meV_atom']:.2f} meV/atom F={rec['force_rmse_meV_A']:.0f} meV/Å "
              f"hot E={rec.get('hot/energy_rmse_meV_atom', float('nan')):.2f} "
              f"F={rec.get('hot/force_rmse_meV_A', float('nan')):.0f} ({rec['train_time_s']:.0f} s)",
              flush=True)

    if args.workers <= 1:
        for t in todo:
            on_done(_train(payload(t)))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"),
                                 initializer=_init_worker, initargs=(settings,)) as ex:
            futs = [ex.submit(_train, payload(t)) for t in todo]
            for f in as_completed(futs):
                on_done(f.result())
    report(True)
    print(f"wrote {out_path} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
