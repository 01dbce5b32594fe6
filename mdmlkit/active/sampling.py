"""Seeded subsets of labelled data sets for active-learning studies.

* :func:`random_subset` — a pool or test set drawn without replacement;
* :func:`temperature` — a structure's temperature from ``atoms.info["T"]`` (K);
* :func:`ood_split` — an out-of-distribution study: a "cool" training set and
  held-out cool, hot and defect groups (``atoms.info["kind"]`` and ``["T"]``, as in
  :func:`mdmlkit.systems.la2zr2o7.load_la2zr2o7` and
  :func:`mdmlkit.active.synthetic.emt_frames`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mdmlkit.errors import InputError

__all__ = ["COOL_KINDS", "HOT_KINDS", "random_subset", "stratified_subset", "temperature", "ood_split"]

#: Kinds of defect-free structures (equation of state, strain, thermal, MD).
COOL_KINDS: tuple[str, ...] = ("eos", "strain", "thermal", "md")
#: Kinds whose temperature makes them "hot" above a threshold.
HOT_KINDS: tuple[str, ...] = ("thermal", "md")


def random_subset(frames: Sequence[Atoms], n: int, rng: np.random.Generator) -> list[Atoms]:
    """``min(n, len(frames))`` structures drawn without replacement by ``rng``, in their
    original order (the same objects, not copies)."""
    if isinstance(n, bool) or int(n) < 0:
        raise InputError(f"subset size must be >= 0, got {n!r}")
    idx = np.sort(rng.choice(len(frames), min(int(n), len(frames)), replace=False))
    return [frames[i] for i in idx]


def stratified_subset(frames: Sequence[Atoms], n: int | None, key: str = "kind", seed: int = 0) -> list[Atoms]:
    """``n`` structures drawn as evenly as possible from every value of ``atoms.info[key]``.

    Round robin over the groups (sorted by value), each group in a seeded random order;
    the result keeps the frames' original order.  ``n=None`` or ``n >= len(frames)``
    returns all frames.
    """
    if n is None or n >= len(frames):
        return list(frames)
    if isinstance(n, bool) or int(n) < 0:
        raise InputError(f"subset size must be >= 0, got {n!r}")
    missing = [i for i, a in enumerate(frames) if key not in a.info]
    if missing:
        raise InputError(f"structure {missing[0]} has no atoms.info[{key!r}] to stratify by")
    rng = np.random.default_rng(seed)
    groups = np.array([a.info[key] for a in frames])
    pools = [rng.permutation(np.flatnonzero(groups == g)) for g in sorted(set(groups))]
    take: list[int] = []
    k = 0
    while len(take) < n:
        take += [int(p[k]) for p in pools if k < len(p)][: n - len(take)]
        k += 1
    return [frames[i] for i in sorted(take)]


def temperature(atoms: Atoms) -> float:
    """``atoms.info["T"]`` in K (0 when absent or None)."""
    return float(atoms.info.get("T", 0.0) or 0.0)


def ood_split(train: Sequence[Atoms], test: Sequence[Atoms], n_train: int, n_test: int,
              rng: np.random.Generator, cool_max_T: float = 1000.0, hot_min_T: float = 1700.0,
              defect_kinds: Sequence[str] = ("vacancy",), cool_kinds: Sequence[str] = COOL_KINDS,
              hot_kinds: Sequence[str] = HOT_KINDS) -> tuple[list[Atoms], dict[str, list[Atoms]]]:
    """A cool training set from ``train`` and held-out groups from ``test``.

    * cool: ``kind`` in ``cool_kinds`` and T <= ``cool_max_T`` (K);
    * hot: ``kind`` in ``hot_kinds`` and T >= ``hot_min_T`` (K);
    * defect: ``kind`` in ``defect_kinds``.

    Draws (with :func:`random_subset`, in this order) ``n_train`` cool training
    structures, then ``n_test`` each of cool, hot and defect test structures.
    Returns ``(training set, {"cool": ..., "hot": ..., "defect": ...})``.
    """
    if hot_min_T < cool_max_T:
        raise InputError(f"hot_min_T={hot_min_T} K is below cool_max_T={cool_max_T} K: the "
                         "cool and hot groups would overlap")

    def cool(a: Atoms) -> bool:
        return a.info.get("kind") in cool_kinds and temperature(a) <= cool_max_T

    def hot(a: Atoms) -> bool:
        return a.info.get("kind") in hot_kinds and temperature(a) >= hot_min_T

    def defect(a: Atoms) -> bool:
        return a.info.get("kind") in defect_kinds

    train_set = random_subset([a for a in train if cool(a)], n_train, rng)
    groups = {name: random_subset([a for a in test if keep(a)], n_test, rng)
              for name, keep in (("cool", cool), ("hot", hot), ("defect", defect))}
    return train_set, groups
