"""partial_rdfs against a direct minimum-image histogram and the supercell invariance."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mdmlkit.errors import EmptyTrajectoryError, InputError
from mdmlkit.md.analysis import partial_rdfs


def _random_binary(n: int, L: float, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    sym = ["Zr"] * (n // 3) + ["O"] * (n - n // 3)
    return Atoms(sym, positions=rng.uniform(0, L, (n, 3)), cell=[L, L, L], pbc=True)


def _direct(frames, a, b, edges):
    """Minimum-image pair distances in a cubic box (valid for r_max < L/2)."""
    hist, norm = np.zeros(len(edges) - 1), 0.0
    for at in frames:
        L = at.cell.lengths()[0]
        sym = np.asarray(at.get_chemical_symbols())
        pa, pb = at.positions[sym == a], at.positions[sym == b]
        d = pa[:, None, :] - pb[None, :, :]
        d -= L * np.round(d / L)
        r = np.linalg.norm(d, axis=-1).ravel()
        hist += np.histogram(r[r > 1e-12], edges)[0]
        norm += len(pa) * len(pb) / at.get_volume()
    shell = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return hist / (norm * shell)


def test_matches_a_direct_histogram():
    frames = [_random_binary(60, 14.0, s) for s in range(3)]
    r, g = partial_rdfs(frames, pairs=[("Zr", "O"), ("O", "O")], r_max=6.0, dr=0.1)
    edges = np.arange(0.0, 6.0 + 0.05, 0.1)
    np.testing.assert_allclose(r, 0.5 * (edges[1:] + edges[:-1]))
    for a, b in [("Zr", "O"), ("O", "O")]:
        np.testing.assert_allclose(g[a, b], _direct(frames, a, b, edges), rtol=1e-12)


def test_small_cells_include_periodic_images():
    """A cell smaller than 2 r_max gives the same g(r) as its 3x3x3 supercell."""
    prim = bulk("ZrO2", "fluorite", a=5.13)
    prim.rattle(0.03, seed=1)          # keep distances off the bin edges
    r, g = partial_rdfs([prim], r_max=7.0, dr=0.05)
    _, g_big = partial_rdfs([prim.repeat(3)], r_max=7.0, dr=0.05)
    assert set(g) == {("Zr", "Zr"), ("Zr", "O"), ("O", "O")}
    for p in g:
        np.testing.assert_allclose(g[p], g_big[p], rtol=1e-10, atol=1e-12)
    # first Zr-O shell of fluorite at sqrt(3)/4 a, 8 neighbours per Zr
    k = np.argmax(g["Zr", "O"])
    assert abs(r[k] - np.sqrt(3) / 4 * 5.13) < 0.05
    edges = np.append(r - 0.025, r[-1] + 0.025)
    shell = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    first = r < 3.0                    # the next Zr-O shell is at sqrt(11)/4 a = 4.25 A
    n_zr_o = np.sum(g["Zr", "O"][first] * shell[first]) * 2 / prim.get_volume()
    assert n_zr_o == pytest.approx(8, abs=1e-9)


def test_ideal_gas_tends_to_one():
    frames = [_random_binary(300, 20.0, s) for s in range(4)]
    r, g = partial_rdfs(frames, pairs=[("O", "Zr")], r_max=5.0, dr=0.5)
    assert np.all(np.abs(g["O", "Zr"][2:] - 1) < 0.15)


def test_bad_input():
    with pytest.raises(EmptyTrajectoryError):
        partial_rdfs([])
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    with pytest.raises(InputError, match="frame 0 is not a periodic cell"):
        partial_rdfs([cluster])
    with pytest.raises(InputError, match="dr"):
        partial_rdfs([bulk("Cu")], dr=0.0)
    with pytest.raises(InputError, match="no frame contains"):
        partial_rdfs([bulk("Cu")], pairs=[("Cu", "O")])
