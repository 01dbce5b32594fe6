"""Basins versus temperature: persistent departures, occupancy fractions, amorphous zone."""
from __future__ import annotations

import numpy as np
import pytest

from mdmlkit.errors import InconsistentFramesError, InputError
from mdmlkit.landscape import transitions


def test_transition_temperatures_need_a_persistent_departure():
    T = np.arange(100.0, 200.0)
    run1 = np.zeros(100, int)
    run1[20:23] = 2          # brief excursion: ignored with min_frames=5
    run1[60:] = 1            # leaves for good at T = 160
    run2 = np.zeros(100, int)
    run2[40:46] = 3          # leaves for 6 frames (>= 5): counts
    run3 = np.zeros(100, int)  # never leaves
    res = transitions.transition_temperatures([run1, run2, run3], [T, T, T], min_frames=5)
    np.testing.assert_array_equal(res.T[:2], [160.0, 140.0])
    assert np.isnan(res.T[2]) and res.frame[2] == -1
    np.testing.assert_array_equal(res.new_label[:2], [1, 3])
    assert res.mean == pytest.approx(150.0) and "3 runs, 2 left" in repr(res)
    strict = transitions.transition_temperatures(run2, T, min_frames=10)
    assert np.isnan(strict.T[0])
    with pytest.raises(InconsistentFramesError):
        transitions.transition_temperatures(run1, T[:50])


def test_basin_occupancy_counts_fractions():
    T = np.repeat([150.0, 250.0], 10)
    labels = np.array([0] * 7 + [1] * 3 + [1] * 5 + [-1] * 5)
    Tc, occ = transitions.basin_occupancy(labels, T, bins=[100, 200, 300])
    np.testing.assert_allclose(Tc, [150, 250])
    res = transitions.basin_occupancy(labels, T, bins=[100, 200, 300])
    np.testing.assert_array_equal(res.basins, [-1, 0, 1])
    np.testing.assert_allclose(occ, [[0.0, 0.7, 0.3], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(occ.sum(axis=1), 1.0)
    np.testing.assert_array_equal(res.dominant(), [0, -1])   # tie -> first column (-1)
    assert "3 basins" in repr(res)


def test_amorphous_zone_from_labels():
    T = np.linspace(300, 1300, 1001)
    labels = np.where(T < 950, 0, -1)
    labels[100:103] = -1                              # a brief early excursion
    zone = transitions.amorphous_zone(T, labels, amorphous_labels=(-1,), bins=np.arange(300, 1301, 50))
    assert zone.T_onset == pytest.approx(975.0)
    assert zone.T_max == pytest.approx(1300.0)
    assert "975-1300 K" in repr(zone)
    none = transitions.amorphous_zone(T, np.zeros_like(labels), bins=10)
    assert np.isnan(none.T_onset)
    with pytest.raises(InputError):
        transitions.amorphous_zone()
