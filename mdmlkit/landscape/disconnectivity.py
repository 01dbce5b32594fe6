"""Disconnectivity graphs of the minima visited along MD trajectories.

::

    from mdmlkit.landscape.disconnectivity import DisconnectivityGraph

    g = DisconnectivityGraph.from_inherent(ism)        # an InherentStructureMap
    g = DisconnectivityGraph.from_paths(E_minima, minimum_ids, E_frames, run_ids=run_ids)
    g.connections                                      # {(a, b): eV}
    g.components(level)                                # superbasins at an energy level
    g.tree()                                           # merge tree (leaves = minima)
    g.gap(), g.n_minima_visited(T, 600.0)

Connections
-----------
Each trajectory is a sequence of frames, each quenched to a minimum (id ``-1``: flagged
quench, skipped).  Between two *consecutive distinct* minima ``a`` (last frame in a) and
``b`` (next frame in b) the connection energy is the **highest quenched energy met on that
stretch of the path**, frames at both ends included; frames whose minimum is not a graph
node (``nodes``) count as path points.  With every visited minimum a node, a direct hop
gives ``max(E_a, E_b)``.  Each pair keeps its lowest connection over all hops and runs.

What a connection means: the trajectory went from ``a`` to ``b`` without its inherent
structure rising above that energy.  It is an upper bound on the height of the best path
*over minima* between a and b (the minimax of inherent-structure energies), **not** a
transition state: the true saddle lies above both minima, so the barrier itself is
larger (a connection energy is a lower bound on the saddle energy).  Refining connections
by nudged-elastic-band searches is not done here.

Tree
----
The standard construction (Becker & Karplus 1997; Wales, Miller & Walsh 1998): at each
energy level, minima below the level joined by connections below the level form the
superbasins (:meth:`DisconnectivityGraph.components`).  :meth:`~DisconnectivityGraph.tree`
gives the exact merge tree (every level at which two superbasins join; Kruskal order),
with leaves at the energies of the minima; :func:`mdmlkit.viz.plotting.plot_disconnectivity`
draws it.  Minima never connected to each other stay separate trees.

Units: eV, K.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, OptionalDependencyError
from mdmlkit.landscape.minima import deduplicate_minima

__all__ = ["connections_from_paths", "TreeNode", "DisconnectivityGraph"]


def _runs(x: Any, name: str) -> list[np.ndarray]:
    """One 1-D array or a list of them (one per run)."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return [x]
    if isinstance(x, (list, tuple)) and len(x) and np.ndim(x[0]) == 1:
        return [np.asarray(v) for v in x]
    if isinstance(x, (list, tuple)):
        return [np.asarray(x)]
    raise InputError(f"{name}: expected an array or a list of arrays (one per run), "
                     f"got {type(x).__name__}")


def connections_from_paths(minimum_ids: Any, energies: Any, nodes: Any = None
                           ) -> dict[tuple[int, int], float]:
    """Connections between minima from per-frame minimum ids (module docstring).

    Parameters
    ----------
    minimum_ids : int array [n_frames] or list of such (one per run)
        Minimum of each frame in time order; -1 for frames without one (skipped).
    energies : float array [n_frames] or list of such
        Quenched energy of each frame, eV (NaN allowed for frames with id -1).
    nodes : iterable of int, optional
        Minima that are graph nodes; frames in other minima are path points.  ``None``:
        every minimum with id >= 0.

    Returns
    -------
    dict
        ``{(a, b): energy}`` with ``a < b``, the lowest connection energy (eV) of each pair.

    Raises
    ------
    InconsistentFramesError
        a run whose ids and energies differ in length, or different numbers of runs.
    """
    ids_runs, e_runs = _runs(minimum_ids, "minimum_ids"), _runs(energies, "energies")
    if len(ids_runs) != len(e_runs):
        raise InconsistentFramesError(
            f"connections_from_paths: {len(ids_runs)} runs of minimum ids but {len(e_runs)} "
            "runs of energies")
    node_set = None if nodes is None else {int(n) for n in nodes}
    out: dict[tuple[int, int], float] = {}
    for r, (ids, e) in enumerate(zip(ids_runs, e_runs)):
        if len(ids) != len(e):
            raise InconsistentFramesError(
                f"connections_from_paths: run {r} has {len(ids)} minimum ids but {len(e)} "
                "energies (one per frame needed)")
        ids = np.asarray(ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            if not np.array_equal(ids, ids.astype(np.int64)):
                raise InputError(f"connections_from_paths: run {r}: minimum ids must be integers")
        ids = ids.astype(np.int64)
        e = np.asarray(e, dtype=np.float64)
        bad = np.flatnonzero((ids >= 0) & ~np.isfinite(e))
        if bad.size:
            raise InputError(f"connections_from_paths: run {r}, frame {int(bad[0])}: "
                             f"non-finite energy {e[bad[0]]} for minimum {int(ids[bad[0]])}")
        last, top = -1, -math.inf        # last node visited; highest energy since leaving it
        for k in range(len(ids)):
            m = int(ids[k])
            if m < 0:
                continue
            top = max(top, float(e[k]))
            if node_set is not None and m not in node_set:
                continue
            if last >= 0 and m != last:
                key = (min(last, m), max(last, m))
                out[key] = min(out.get(key, math.inf), top)
            last, top = m, float(e[k])
    return out


@dataclass(frozen=True)
class TreeNode:
    """One node of the merge tree: a minimum (leaf, ``children == ()``) or a merge.

    ``energy`` (eV): the minimum's energy for a leaf, the merge level otherwise;
    ``minima``: the minima below this node (sorted); ``children``: node indices in
    :meth:`DisconnectivityGraph.tree`; ``parent``: index of the node above (-1 for a root).
    """

    energy: float
    minima: tuple
    children: tuple
    parent: int = -1


class DisconnectivityGraph:
    """Minima, their connections and the disconnectivity tree (module docstring).

    Parameters
    ----------
    energies : float array [n_minima]
        Energy of each minimum, eV (minimum ids index this array).
    connections : dict
        ``{(a, b): eV}`` (e.g. :func:`connections_from_paths`).
    morphologies : list of str, optional
        Morphology of each minimum (for colouring).
    nodes : iterable of int, optional
        Minima shown in the graph; ``None``: all.
    """

    def __init__(self, energies: Any, connections: dict, morphologies: Sequence[str] | None = None,
                 nodes: Any = None):
        self.energies = np.asarray(energies, dtype=np.float64)
        if self.energies.ndim != 1 or not np.all(np.isfinite(self.energies)):
            raise InputError("DisconnectivityGraph: energies must be a 1-D array of finite eV values")
        n = len(self.energies)
        if morphologies is not None and len(morphologies) != n:
            raise InconsistentFramesError(
                f"DisconnectivityGraph: {len(morphologies)} morphologies for {n} minima")
        self.morphologies = None if morphologies is None else list(morphologies)
        self.nodes = np.arange(n) if nodes is None else np.unique(np.asarray(list(nodes), dtype=np.int64))
        if self.nodes.size and (self.nodes.min() < 0 or self.nodes.max() >= n):
            raise InputError(f"DisconnectivityGraph: node ids must lie in 0..{n - 1}")
        node_set = set(self.nodes.tolist())
        self.connections: dict[tuple[int, int], float] = {}
        for (a, b), e in dict(connections).items():
            a, b = int(a), int(b)
            if a == b or not (0 <= a < n and 0 <= b < n):
                raise InputError(f"DisconnectivityGraph: bad connection ({a}, {b}) for {n} minima")
            if a not in node_set or b not in node_set:
                continue
            if not math.isfinite(e) or e < max(self.energies[a], self.energies[b]) - 1e-9:
                raise InputError(f"DisconnectivityGraph: connection ({a}, {b}) at {e} eV lies "
                                 "below one of its minima")
            key = (min(a, b), max(a, b))
            self.connections[key] = min(self.connections.get(key, math.inf), float(e))

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_paths(cls, minimum_energies: Any, minimum_ids: Any, frame_energies: Any,
                   morphologies: Sequence[str] | None = None, nodes: Any = None
                   ) -> DisconnectivityGraph:
        """Graph from per-run frame sequences (:func:`connections_from_paths`)."""
        return cls(minimum_energies, connections_from_paths(minimum_ids, frame_energies, nodes),
                   morphologies, nodes)

    @classmethod
    def from_inherent(cls, ism: Any, min_count: int = 1) -> DisconnectivityGraph:
        """Graph of a fitted :class:`~mdmlkit.landscape.inherent.InherentStructureMap`.

        Frames are split into runs by ``run_id`` (consecutive frames of one run); minima
        visited by fewer than ``min_count`` frames are path points, not nodes.
        """
        return cls.from_quench(ism.quench_result_, ism.minima_, min_count)

    @classmethod
    def from_quench(cls, result: Any, minima: Any = None, min_count: int = 1
                    ) -> DisconnectivityGraph:
        """Graph of a :class:`~mdmlkit.landscape.minima.QuenchResult` of frames in time
        order (no map needed).

        ``minima``: its :func:`~mdmlkit.landscape.minima.deduplicate_minima` (computed with
        the default tolerances when None).  Frames are split into runs by ``run_id``;
        minima visited by fewer than ``min_count`` frames are path points, not nodes.
        """
        if minima is None:
            minima = deduplicate_minima(result)
        mins = minima
        ids = np.asarray(mins.frame_minimum)
        e = np.asarray(result.energies, dtype=np.float64)
        if len(ids) != len(e):
            raise InconsistentFramesError(
                f"DisconnectivityGraph.from_quench: {len(e)} quenched frames but the minima "
                f"cover {len(ids)}")
        run_ids = list(result.run_ids)
        cuts = [0] + [k for k in range(1, len(ids)) if run_ids[k] != run_ids[k - 1]] + [len(ids)]
        nodes = np.flatnonzero(np.asarray(mins.counts) >= min_count)
        return cls.from_paths(mins.energies, [ids[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
                              [e[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
                              mins.morphologies, nodes)

    # ------------------------------------------------------------------ analysis
    def components(self, level: float) -> list[list[int]]:
        """Superbasins at energy ``level`` (eV): connected components of the minima with
        energy <= level joined by connections <= level; each sorted, lowest minimum first
        in each, components ordered by their lowest energy."""
        parent = {int(m): int(m) for m in self.nodes if self.energies[m] <= level}

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for (a, b), e in self.connections.items():
            if e <= level and a in parent and b in parent:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        groups: dict[int, list[int]] = {}
        for m in parent:
            groups.setdefault(find(m), []).append(m)
        comps = [sorted(g, key=lambda m: (self.energies[m], m)) for g in groups.values()]
        return sorted(comps, key=lambda g: (self.energies[g[0]], g[0]))

    def tree(self) -> list[TreeNode]:
        """Exact merge tree: leaves (one per node minimum, in order of ``nodes``) then the
        merges in order of energy; roots have ``parent == -1``."""
        leaves = [int(m) for m in self.nodes]
        nodes: list[dict[str, Any]] = [{"energy": float(self.energies[m]), "minima": (m,),
                                        "children": (), "parent": -1} for m in leaves]
        top = {m: k for k, m in enumerate(leaves)}          # minimum -> current top node
        owner = {m: m for m in leaves}                      # union-find over minima

        def find(x: int) -> int:
            while owner[x] != x:
                owner[x] = owner[owner[x]]
                x = owner[x]
            return x

        for (a, b), e in sorted(self.connections.items(), key=lambda kv: (kv[1], kv[0])):
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            ta, tb = top[ra], top[rb]
            k = len(nodes)
            nodes.append({"energy": float(e),
                          "minima": tuple(sorted(nodes[ta]["minima"] + nodes[tb]["minima"])),
                          "children": (ta, tb), "parent": -1})
            nodes[ta]["parent"] = nodes[tb]["parent"] = k
            root = min(ra, rb)
            owner[max(ra, rb)] = root
            top[root] = k
        return [TreeNode(**d) for d in nodes]

    def gap(self) -> float:
        """Energy between the lowest and the second-lowest node minimum, eV (NaN if < 2)."""
        e = np.sort(self.energies[self.nodes])
        return float(e[1] - e[0]) if len(e) > 1 else float("nan")

    def to_networkx(self):
        """``networkx.Graph`` of the node minima (attributes ``energy``, ``morphology``)
        and connections (attribute ``energy``)."""
        try:
            import networkx as nx
        except ImportError as exc:  # pragma: no cover - networkx ships with torch
            raise OptionalDependencyError("to_networkx needs networkx (pip install networkx)") from exc
        g = nx.Graph()
        for m in self.nodes:
            g.add_node(int(m), energy=float(self.energies[m]),
                       morphology=None if self.morphologies is None else self.morphologies[m])
        for (a, b), e in self.connections.items():
            g.add_edge(a, b, energy=e)
        return g

    @staticmethod
    def n_minima_visited(minimum_ids: Any, temperatures: Any, below_K: float) -> int:
        """Distinct minima (id >= 0) visited by frames colder than ``below_K`` K
        (``minimum_ids`` and ``temperatures`` [n_frames])."""
        ids = np.asarray(minimum_ids)
        T = np.asarray(temperatures, dtype=np.float64)
        if ids.shape != T.shape or ids.ndim != 1:
            raise InconsistentFramesError(
                f"n_minima_visited: {ids.shape} minimum ids but {T.shape} temperatures")
        if not len(ids):
            raise EmptyTrajectoryError("n_minima_visited: no frames")
        sel = ids[(T < below_K) & (ids >= 0)]
        return int(len(np.unique(sel)))

    def __repr__(self) -> str:
        roots = sum(1 for t in self.tree() if t.parent == -1) if len(self.nodes) else 0
        gap = self.gap()
        return (f"DisconnectivityGraph({len(self.nodes)} minima, {len(self.connections)} "
                f"connections, {roots} tree(s)"
                + (f", gap {gap:.3f} eV" if math.isfinite(gap) else "") + ")")
