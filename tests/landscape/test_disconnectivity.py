"""Tests of mdmlkit.landscape.disconnectivity: connections from hand-built paths, the tree
against a brute-force connected-components computation, Cu13 minima, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from mdmlkit.errors import InconsistentFramesError, InputError
from mdmlkit.landscape.disconnectivity import DisconnectivityGraph, connections_from_paths

E = np.array([0.0, 0.5, 0.2, 0.9, 0.4])
RUN1 = np.array([0, 0, 1, 2, 2, -1, 3, 2, 0])
RUN2 = np.array([4, 1, 4])


def _frame_energies(ids: np.ndarray) -> np.ndarray:
    return np.where(ids >= 0, E[np.maximum(ids, 0)], np.nan)


def test_connections_of_hand_built_paths():
    conn = connections_from_paths([RUN1, RUN2], [_frame_energies(RUN1), _frame_energies(RUN2)])
    assert conn == {(0, 1): 0.5, (1, 2): 0.5, (2, 3): 0.9, (0, 2): 0.2, (1, 4): 0.5}


def test_non_node_minima_are_path_points():
    # minimum 1 is not a node: 0 -> (1) -> 2 meets 0.5, but 2 -> 0 later at 0.2 is lower
    conn = connections_from_paths([RUN1, RUN2], [_frame_energies(RUN1), _frame_energies(RUN2)],
                                  nodes=[0, 2, 3, 4])
    assert conn == {(0, 2): 0.2, (2, 3): 0.9}
    # without the direct 2 -> 0 hop the path over minimum 1 gives the connection
    conn = connections_from_paths(RUN1[:5], _frame_energies(RUN1[:5]), nodes=[0, 2])
    assert conn == {(0, 2): 0.5}


def _brute_components(energies, connections, level, nodes):
    """Independent: scipy connected components of the thresholded graph."""
    keep = np.array([m for m in nodes if energies[m] <= level], dtype=int)
    idx = {m: k for k, m in enumerate(keep)}
    rows = [idx[a] for (a, b), e in connections.items() if e <= level and a in idx and b in idx]
    cols = [idx[b] for (a, b), e in connections.items() if e <= level and a in idx and b in idx]
    adj = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(keep), len(keep)))
    _, lab = connected_components(adj, directed=False)
    return sorted(sorted(int(keep[k]) for k in np.flatnonzero(lab == c)) for c in np.unique(lab))


def _check_tree(g: DisconnectivityGraph):
    tree = g.tree()
    levels = sorted(set(g.energies.tolist()) | set(g.connections.values()))
    for level in levels + [max(levels) + 1.0]:
        got = sorted(sorted(c) for c in g.components(level))
        assert got == _brute_components(g.energies, g.connections, level, g.nodes)
    for node in tree:
        if not node.children:
            assert node.energy == g.energies[node.minima[0]]
            continue
        at = [sorted(c) for c in g.components(node.energy)]
        assert any(set(node.minima) <= set(c) for c in at)         # merged at its level
        below = [sorted(c) for c in g.components(np.nextafter(node.energy, -np.inf))]
        for child in node.children:                                # separate just below
            assert tree[child].parent == tree.index(node) and tree[child].energy <= node.energy
            if tree[child].energy < node.energy:                   # (a leaf at the level is new)
                assert sorted(tree[child].minima) in below
    roots = [t for t in tree if t.parent == -1]
    assert sorted(sorted(r.minima) for r in roots) == _brute_components(
        g.energies, g.connections, math.inf, g.nodes)


def test_tree_of_hand_built_graph_merges_at_the_right_energies():
    g = DisconnectivityGraph.from_paths(E, [RUN1, RUN2], [_frame_energies(RUN1), _frame_energies(RUN2)],
                                        morphologies=["a", "b", "c", "d", "e"])
    tree = g.tree()
    merges = [(t.energy, t.minima) for t in tree if t.children]
    assert merges == [(0.2, (0, 2)), (0.5, (0, 1, 2)), (0.5, (0, 1, 2, 4)), (0.9, (0, 1, 2, 3, 4))]
    assert g.components(0.45) == [[0, 2], [4]]
    assert g.components(0.5) == [[0, 2, 4, 1]]
    assert math.isclose(g.gap(), 0.2)
    _check_tree(g)
    nx_graph = g.to_networkx()
    assert nx_graph.number_of_edges() == 5 and nx_graph.nodes[3]["morphology"] == "d"
    assert "5 minima" in repr(g) and "1 tree(s)" in repr(g)


@pytest.mark.parametrize("seed", range(5))
def test_random_graphs_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 12
    energies = rng.uniform(0, 1, n)
    runs = [rng.integers(-1, n, size=rng.integers(5, 30)) for _ in range(3)]
    fe = [np.where(r >= 0, energies[np.maximum(r, 0)], np.nan) for r in runs]
    nodes = np.flatnonzero(rng.random(n) < 0.8)
    g = DisconnectivityGraph.from_paths(energies, runs, fe, nodes=nodes)
    assert set(g.nodes.tolist()) == set(nodes.tolist())
    _check_tree(g)


def test_mismatched_lengths_are_refused():
    with pytest.raises(InconsistentFramesError, match="run 1 has 3 minimum ids but 2 energies"):
        connections_from_paths([RUN1, RUN2], [_frame_energies(RUN1), np.zeros(2)])
    with pytest.raises(InconsistentFramesError, match="2 runs of minimum ids but 1 runs"):
        connections_from_paths([RUN1, RUN2], [_frame_energies(RUN1)])
    with pytest.raises(InputError, match="non-finite energy"):
        connections_from_paths(np.array([0, 1]), np.array([0.0, np.nan]))
    with pytest.raises(InconsistentFramesError, match="3 morphologies for 5 minima"):
        DisconnectivityGraph(E, {}, morphologies=["a", "b", "c"])
    with pytest.raises(InputError, match="below one of its minima"):
        DisconnectivityGraph(E, {(0, 3): 0.1})
    with pytest.raises(InconsistentFramesError):
        DisconnectivityGraph.n_minima_visited(RUN1, np.zeros(3), 600.0)


def test_n_minima_visited():
    T = np.linspace(300, 1100, len(RUN1))
    assert DisconnectivityGraph.n_minima_visited(RUN1, T, 600.0) == len({0, 1})   # 300-500 K
    assert DisconnectivityGraph.n_minima_visited(RUN1, T, 2000.0) == 4


# ----------------------------------------------------------------------------- Cu13


def test_cu13_icosahedron_is_global_minimum_with_positive_gap():
    pytest.importorskip("asap3")
    from mdmlkit.landscape.minima import classify_minimum, deduplicate_minima, quench
    from mdmlkit.md import heat
    from mdmlkit.systems.cu_clusters import make_cluster

    run = heat(make_cluster(13), "asap3", t_start=300, t_end=1200, rate_K_per_ps=300,
               sample_every=20, seed=1, progress=False)
    res = quench(run.frames, progress=False)
    mins = deduplicate_minima(res)
    assert len(mins) >= 2
    assert mins.morphologies[0] == "icosahedral"
    assert classify_minimum(mins.structures[0]) == "icosahedral"
    ids = mins.frame_minimum
    e = np.asarray(res.energies)
    g = DisconnectivityGraph.from_paths(mins.energies, ids, np.where(ids >= 0, e, np.nan),
                                        morphologies=mins.morphologies)
    assert g.gap() > 0.05
    assert math.isclose(g.gap(), mins.energies[1] - mins.energies[0])
    assert len(g.connections) >= 1
    _check_tree(g)
    # straight from the quench (one run): the same graph as from the paths by hand
    q = DisconnectivityGraph.from_quench(res)
    by_hand = DisconnectivityGraph.from_paths(mins.energies, ids, e, morphologies=mins.morphologies)
    assert q.connections == by_hand.connections and q.gap() == g.gap()
    assert q.morphologies == mins.morphologies
    assert DisconnectivityGraph.from_quench(res, mins, min_count=2).nodes.tolist() == \
        np.flatnonzero(mins.counts >= 2).tolist()


def test_plot_disconnectivity_and_occupancy():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdmlkit.landscape.inherent import FamilyOccupancy
    from mdmlkit.viz.plotting import plot_disconnectivity, plot_family_occupancy

    g = DisconnectivityGraph.from_paths(E, [RUN1, RUN2], [_frame_energies(RUN1), _frame_energies(RUN2)],
                                        morphologies=["icosahedral", "disordered", "decahedral",
                                                      "disordered", "icosahedral+adatom"])
    ax = plot_disconnectivity(g)
    assert "E - E_lowest (eV)" in ax.get_ylabel()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "icosahedral", "disordered", "decahedral", "icosahedral+adatom"}
    occ = FamilyOccupancy(np.array([350.0, 450.0]), np.array([[1.0, 0.0], [0.25, 0.75]]),
                          ["icosahedral", "disordered"], np.array([4, 4]), np.array([300.0, 400, 500]))
    ax = plot_family_occupancy(occ)
    assert ax.get_xlabel() == "T (K)"
    plt.close("all")
