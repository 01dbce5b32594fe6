"""Stratified sampling of structures by a label in atoms.info."""
from collections import Counter

import pytest
from ase import Atoms

from mdmlkit.active import stratified_subset
from mdmlkit.errors import InputError


def _frames():
    kinds = ["a"] * 10 + ["b"] * 3 + ["c"] * 6
    return [Atoms("H", positions=[[i, 0, 0]], info={"kind": k, "i": i}) for i, k in enumerate(kinds)]


def test_balanced_deterministic_and_in_order():
    frames = _frames()
    sub = stratified_subset(frames, 9, seed=1)
    counts = Counter(a.info["kind"] for a in sub)
    assert counts == {"a": 3, "b": 3, "c": 3}
    idx = [a.info["i"] for a in sub]
    assert idx == sorted(idx)                                   # original order kept
    assert [a.info["i"] for a in stratified_subset(frames, 9, seed=1)] == idx
    # a small group runs out: the others fill the rest as evenly as they can
    counts = Counter(a.info["kind"] for a in stratified_subset(frames, 13, seed=0))
    assert counts["b"] == 3 and abs(counts["a"] - counts["c"]) <= 1 and sum(counts.values()) == 13


def test_all_frames_and_bad_input():
    frames = _frames()
    assert stratified_subset(frames, None) == frames
    assert stratified_subset(frames, 100) == frames
    with pytest.raises(InputError, match="kind"):
        stratified_subset([Atoms("H")] * 3, 2)
    with pytest.raises(InputError):
        stratified_subset(frames, -1)
