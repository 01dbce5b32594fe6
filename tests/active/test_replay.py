"""Replaying a query's choices without training (mdmlkit.active.replay) against the real loop."""
from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mdmlkit.active import (
    ActiveLearningLoop,
    AutoencoderQuery,
    CommitteeQuery,
    ExtrapolationQuery,
    FarthestPointQuery,
    RandomQuery,
    initial_indices,
    replay_selections,
    replayable,
)
from mdmlkit.active.queries.base import query_for_seed
from mdmlkit.active.synthetic import emt_frames
from mdmlkit.descriptors import generate_set
from mdmlkit.errors import InputError
from mdmlkit.potential import HDNNP

TRAIN = {"max_epochs": 3, "batch_size": 4, "patience": None, "lr": 5e-3}


@pytest.fixture(scope="module")
def sfs():
    return generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)


@pytest.fixture(scope="module")
def pool():
    frames = (emt_frames(14, "thermal", (300, 1500), reps=(2, 1, 1), seed=41)
              + emt_frames(6, "strain", reps=(2, 1, 1), seed=42))
    for a in frames:
        a.calc = None                     # unlabelled: the loop asks the EMT oracle
    return frames


@pytest.mark.parametrize("query", [RandomQuery(), FarthestPointQuery(),
                                   AutoencoderQuery(steps=60, informativeness_scale="rank",
                                                    batch_rule="kmeans++"),
                                   ExtrapolationQuery(min_distance=1.2)],
                         ids=["random", "fps", "autoencoder", "extrapolation"])
def test_replay_equals_the_loop_that_trains(query, pool, sfs):
    """The loop trains a potential between rounds; the replay trains nothing and must choose the
    same pool indices in the same order (queries that need no potential)."""
    seed, schedule = 3, [3, 5]
    loop = ActiveLearningLoop(query_for_seed(query, seed), pool, HDNNP(sfs, hidden=(4,), seed=seed),
                              oracle=EMT(), initial=4, k=schedule, n_rounds=len(schedule), seed=seed,
                              trainer_kwargs=TRAIN, progress=False)
    loop.run()
    by_round = [[s["pool_index"] for s in loop.selections_ if s["round"] == r] for r in range(3)]
    got = replay_selections(query, pool, seed, 4, schedule, sfs=sfs)
    assert [g.tolist() for g in got] == by_round
    assert got[0].tolist() == initial_indices(seed, len(pool), 4).tolist()


def test_replay_refuses_committees_and_bad_input(pool, sfs):
    qbc = CommitteeQuery(n_models=2)
    assert not replayable(qbc) and replayable(RandomQuery())
    with pytest.raises(InputError, match="cannot be replayed"):
        replay_selections(qbc, pool, 0, 4, [2], sfs=sfs)
    with pytest.raises(InputError, match="round sizes must be positive"):
        replay_selections(RandomQuery(), pool, 0, 4, [2, 0])
    with pytest.raises(InputError, match="initial=30"):
        initial_indices(0, len(pool), 30)
    # the pool running out ends the replay early, with every structure chosen once
    got = replay_selections(RandomQuery(), pool, 0, 4, [10, 10, 10])
    flat = np.concatenate(got)
    assert [len(g) for g in got] == [4, 10, 6] and sorted(flat.tolist()) == list(range(len(pool)))
