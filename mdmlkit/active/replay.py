"""Replay the selections of an active-learning run without training or labelling.

A query that needs no trained potential (random, autoencoder, farthest-point, the
extrapolation criterion: every query without ``"model"`` in ``loop_inputs``)
chooses from the pool positions and the labelled set alone.  Its choices in an
:class:`~mdmlkit.active.ActiveLearningLoop` can therefore be repeated exactly
from the seed, the pool and the round sizes: the same random initial set
(:func:`initial_indices`), the same clone of the query per seed, fitted on the
structures chosen so far in the order they were labelled.  That is what a
re-evaluation of a learning curve needs (e.g. training every budget's labelled set
from scratch) when the run's checkpoints are gone.  Committee queries (QBC) depend
on the trained members and cannot be replayed; read their selections from the
run's checkpoint (``ActiveLearningLoop.selections_``).

The replay assumes every chosen structure was labelled (no oracle failures); a
loop whose oracle failed on some structures chose from a different pool afterwards.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mdmlkit.errors import InputError

__all__ = ["initial_indices", "replay_selections", "replayable"]


def initial_indices(seed: int, n_pool: int, n_initial: int) -> np.ndarray:
    """The pool indices of the random initial set of a loop with ``seed`` (sorted).

    ``numpy.random.default_rng([seed, 0])`` draws ``n_initial`` distinct indices of
    ``range(n_pool)``: for one seed every strategy starts from the same structures.
    """
    if not 1 <= int(n_initial) <= int(n_pool):
        raise InputError(f"initial={n_initial} random structures requested from a pool of "
                         f"{n_pool}")
    rng = np.random.default_rng([int(seed), 0])
    return np.sort(rng.choice(int(n_pool), int(n_initial), replace=False))


def replayable(query) -> bool:
    """Whether ``query`` chooses without a trained potential (so :func:`replay_selections`
    can repeat its choices)."""
    return "model" not in getattr(query, "loop_inputs", ())


def replay_selections(query, pool: Sequence, seed: int, n_initial: int, schedule: Sequence[int],
                      sfs=None, cache=None, progress: bool = False) -> list[np.ndarray]:
    """The pool indices an :class:`~mdmlkit.active.ActiveLearningLoop` with this query chooses.

    Parameters
    ----------
    query : Query
        A query that needs no trained potential (:func:`replayable`); cloned with
        ``seed`` set, as :func:`~mdmlkit.active.run_learning_curves` does.
    pool : sequence of ase.Atoms (a list or a :class:`~mdmlkit.active.FramePool`)
        The candidate pool; labels are not needed.
    seed : int
        The run's seed (initial set and query seed).
    n_initial : int
        Random structures of round 0.
    schedule : sequence of int
        Structures chosen in rounds 1, 2, ... (the loop's ``k``).
    sfs, cache
        What the loop gives the query (the potential's ``sfs``; a
        :class:`~mdmlkit.active.DescriptorCache`).
    progress : bool
        A tqdm bar over the rounds.

    Returns
    -------
    list of ndarray
        Round 0's indices, then each round's in the order chosen.
    """
    from tqdm.auto import tqdm

    from mdmlkit.active.queries.base import LoopContext, prepare_query, query_for_seed

    if not replayable(query):
        raise InputError(f"{type(query).__name__} chooses with trained potentials and cannot be "
                         "replayed; read its selections from the run's checkpoint")
    sizes = [int(k) for k in schedule]
    if any(k < 1 for k in sizes):
        raise InputError(f"schedule: round sizes must be positive, got {list(schedule)}")
    n_pool = len(pool)
    q = prepare_query(query_for_seed(query, int(seed)),
                      LoopContext(model=None, sfs=sfs, trainer_kwargs=None, cache=cache))
    rounds = [initial_indices(seed, n_pool, n_initial)]
    chosen = list(rounds[0])
    free = np.ones(n_pool, dtype=bool)
    free[rounds[0]] = False
    for k in tqdm(sizes, desc=f"replay {getattr(query, 'name', type(query).__name__)} seed {seed}",
                  disable=not progress):
        cand = np.flatnonzero(free)
        if cand.size == 0:
            break
        q.fit([pool[i] for i in chosen])
        sel = q.select([pool[i] for i in cand], min(k, cand.size))
        picked = cand[np.asarray(sel.indices, dtype=np.int64)]
        rounds.append(picked)
        chosen.extend(picked.tolist())
        free[picked] = False
    return rounds
