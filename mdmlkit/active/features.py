"""Per-atom symmetry-function descriptors of many structures, computed once and cached.

A :class:`DescriptorTable` holds the raw (unscaled) symmetry functions of a list
of structures: for every element one matrix ``G[el]`` [atoms of el, n_features[el]]
(rows in structure order, then atom order) and ``owner[el]`` giving the
structure of each row.  :class:`DescriptorCache` computes them with the
:class:`~mdmlkit.descriptors.ACSF` module of a
:class:`~mdmlkit.descriptors.SymmetryFunctionSet` (e.g. the potential's own
``model.sfs``) and keeps them keyed by a structure fingerprint (species,
positions, cell, pbc), so a pool scored in every active-learning round is
described only once.  A cache is an explicit object: whoever creates it owns it
(an :class:`~mdmlkit.active.ActiveLearningLoop`, a benchmark, a query) and it
holds at most ``max_structures`` structures (least recently used dropped first).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mdmlkit.errors import EmptyTrajectoryError, InputError, ModelMismatchError
from mdmlkit.utils import check_elements

__all__ = ["DescriptorTable", "DescriptorCache", "structure_fingerprint", "as_frames",
           "unlabelled_copy", "check_table"]


def structure_fingerprint(atoms: Atoms) -> str:
    """SHA-1 of atomic numbers, positions and cell (rounded to 1e-6 Å) and pbc."""
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, dtype=float), 6).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    return h.hexdigest()


def as_frames(frames, source: str = "pool") -> list[Atoms]:
    """A list of ``ase.Atoms`` from one Atoms or a sequence; raises on an empty input."""
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise EmptyTrajectoryError(f"{source}: no structures")
    for k, a in enumerate(frames):
        if not isinstance(a, Atoms):
            raise InputError(f"{source}: structure {k} is a {type(a).__name__}, not ase.Atoms")
        if len(a) == 0:
            raise EmptyTrajectoryError(f"{source}: structure {k} has no atoms")
    return frames


def unlabelled_copy(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` without its calculator (labels hidden from queries)."""
    a = atoms.copy()
    a.calc = None
    return a


@dataclass
class DescriptorTable:
    """Raw symmetry functions of ``n_structures`` structures, grouped by element.

    Attributes
    ----------
    elements : list[str]
        Descriptor elements (order of the symmetry-function set).
    G : dict[str, ndarray]
        ``G[el]``: [n atoms of el, n_features[el]] raw symmetry functions (float32).
    owner : dict[str, ndarray]
        ``owner[el]``: [n atoms of el] index of the structure each row belongs to.
    atom : dict[str, ndarray]
        ``atom[el]``: [n atoms of el] index of each row's atom within its structure.
    n_structures : int
    n_atoms : ndarray [n_structures]
        Atoms per structure.
    """

    elements: list[str]
    G: dict[str, np.ndarray]
    owner: dict[str, np.ndarray]
    atom: dict[str, np.ndarray]
    n_structures: int
    n_atoms: np.ndarray

    def __len__(self) -> int:
        return self.n_structures

    def __repr__(self) -> str:
        rows = ", ".join(f"{el}: {self.G[el].shape[0]}x{self.G[el].shape[1]}" for el in self.elements)
        return f"DescriptorTable(n_structures={self.n_structures}, rows={{{rows}}})"

    @classmethod
    def from_parts(cls, elements: Sequence[str], parts: Sequence[Mapping[str, np.ndarray]],
                   atoms: Sequence[Mapping[str, np.ndarray]], n_features: Mapping[str, int]
                   ) -> DescriptorTable:
        """Stack per-structure ``{el: G [n_el, n_features]}`` and ``{el: atom indices}``."""
        elements = list(elements)
        G, owner, atom = {}, {}, {}
        for el in elements:
            blocks = [p[el] for p in parts]
            counts = np.array([b.shape[0] for b in blocks], dtype=np.int64)
            G[el] = (np.concatenate(blocks).astype(np.float32, copy=False) if counts.sum()
                     else np.zeros((0, n_features[el]), dtype=np.float32))
            owner[el] = np.repeat(np.arange(len(parts)), counts)
            atom[el] = (np.concatenate([a[el] for a in atoms]).astype(np.int64) if counts.sum()
                        else np.zeros(0, dtype=np.int64))
        n_atoms = np.array([sum(p[el].shape[0] for el in elements) for p in parts], dtype=np.int64)
        return cls(elements, G, owner, atom, len(parts), n_atoms)

    def subset(self, indices: Sequence[int]) -> DescriptorTable:
        """The structures ``indices`` (in that order, renumbered 0..len-1)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_structures):
            raise IndexError(f"structure index out of range 0..{self.n_structures - 1}")
        G, owner, atom = {}, {}, {}
        for el in self.elements:
            # rows of each requested structure, in request order
            order = np.argsort(self.owner[el], kind="stable")
            starts = np.searchsorted(self.owner[el][order], idx, side="left")
            ends = np.searchsorted(self.owner[el][order], idx, side="right")
            counts = ends - starts
            rows = order[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
                         if idx.size else np.zeros(0, dtype=np.int64)].astype(np.int64)
            G[el] = self.G[el][rows]
            owner[el] = np.repeat(np.arange(idx.size), counts)
            atom[el] = self.atom[el][rows]
        return DescriptorTable(list(self.elements), G, owner, atom, int(idx.size),
                               self.n_atoms[idx])

    def structure_features(self, mean: Mapping[str, np.ndarray] | None = None,
                           std: Mapping[str, np.ndarray] | None = None,
                           stats: Sequence[str] = ("mean", "std")) -> np.ndarray:
        """One vector per structure: per-element mean (and std) of the (standardised) rows.

        ``(G - mean) / std`` is applied per element first when ``mean``/``std`` are
        given.  Elements absent from a structure contribute zeros.  Returns
        [n_structures, sum over elements of len(stats) * n_features[el]].
        """
        cols = []
        S = self.n_structures
        for el in self.elements:
            X = self.G[el].astype(np.float64)
            if mean is not None:
                X = (X - mean[el]) / std[el]
            cnt = np.bincount(self.owner[el], minlength=S).astype(np.float64)
            safe = np.maximum(cnt, 1.0)[:, None]
            m = np.zeros((S, X.shape[1]))
            np.add.at(m, self.owner[el], X)
            m /= safe
            if "mean" in stats:
                cols.append(m)
            if "std" in stats:
                v = np.zeros((S, X.shape[1]))
                np.add.at(v, self.owner[el], (X - m[self.owner[el]]) ** 2)
                cols.append(np.sqrt(v / safe))
        return np.concatenate(cols, axis=1) if cols else np.zeros((S, 0))


class DescriptorCache:
    """Computes raw symmetry functions per structure and keeps the most recently used.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        The descriptor (the potential's ``model.sfs`` is a natural choice).
    batch_size : int
        Structures per :class:`~mdmlkit.descriptors.AtomsBatch`.
    max_structures : int
        Bound of the cache: at most this many structures are kept; beyond it the
        least recently used ones are dropped.  One entry takes about
        4 bytes × atoms × symmetry functions per element (e.g. 10 kB for an
        88-atom cell with 30 functions).
    device : str or torch.device, optional
        Where the descriptors are evaluated (default CPU).

    There is no process-wide cache: share one by passing the same object to
    several queries (``cache=``) or to :class:`~mdmlkit.active.ActiveLearningLoop`.
    A cache is a shared resource, not a value: ``copy.deepcopy`` (and hence
    ``sklearn.base.clone`` of a query holding it) returns the same cache.
    """

    def __init__(self, sfs, batch_size: int = 32, max_structures: int = 20_000, device=None):
        import torch

        from mdmlkit.descriptors import ACSF
        from mdmlkit.utils import resolve_device

        if isinstance(max_structures, bool) or int(max_structures) < 1:
            raise InputError(f"max_structures must be a positive integer, got {max_structures!r}")
        self.sfs = sfs
        self.elements = list(sfs.elements)
        self.n_features = dict(sfs.n_features)
        self.batch_size = int(batch_size)
        self.max_structures = int(max_structures)
        self.device = resolve_device(device or "cpu")
        self._acsf = ACSF(sfs).to(self.device, torch.float64)
        self._store: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self.n_computed = 0

    def __deepcopy__(self, memo) -> DescriptorCache:
        return self

    def describes(self, sfs) -> bool:
        """Whether this cache computes the symmetry functions of ``sfs`` (same input.nn lines)."""
        return sfs is self.sfs or (list(sfs.elements) == self.elements
                                   and sfs.to_input_nn_lines() == self.sfs.to_input_nn_lines())

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return (f"DescriptorCache(elements={self.elements}, n_features={self.n_features}, "
                f"cached={len(self)}, computed={self.n_computed})")

    def clear(self) -> None:
        self._store.clear()

    def _raise_for_structure(self, frames, chunk, source) -> None:
        """Re-raise a batch-building error naming the structure in the caller's numbering."""
        import torch

        from mdmlkit.descriptors import AtomsBatch

        for i in chunk:
            try:
                AtomsBatch.from_atoms([frames[i]], self.elements, self.sfs.cutoff,
                                      device=self.device, dtype=torch.float64)
            except InputError as exc:
                msg = str(exc).replace("structure 0", f"structure {i}", 1)
                raise type(exc)(f"{source}: {msg}") from exc

    def table(self, frames, source: str = "pool", progress: bool = False) -> DescriptorTable:
        """Descriptors of ``frames`` (cached ones are reused)."""
        import torch
        from tqdm.auto import tqdm

        from mdmlkit.descriptors import AtomsBatch

        frames = as_frames(frames, source)
        check_elements(frames, self.elements, source, owner="the descriptor")
        keys = [structure_fingerprint(a) for a in frames]
        for key in keys:
            if key in self._store:
                self._store.move_to_end(key)        # most recently used last
        todo = [i for i, key in enumerate(keys) if key not in self._store]
        # one computation per distinct structure
        first: dict[str, int] = {}
        for i in todo:
            first.setdefault(keys[i], i)
        todo = sorted(first.values())
        starts = range(0, len(todo), self.batch_size)
        computed: dict[str, dict[str, np.ndarray]] = {}
        for s in tqdm(starts, desc="symmetry functions", disable=not progress or len(todo) < 50,
                      leave=False):
            chunk = todo[s:s + self.batch_size]
            try:
                batch = AtomsBatch.from_atoms([frames[i] for i in chunk], self.elements,
                                              self.sfs.cutoff, device=self.device,
                                              dtype=torch.float64)
            except InputError:
                self._raise_for_structure(frames, chunk, source)
                raise
            with torch.no_grad():
                G = self._acsf(batch)
            for el in self.elements:
                g = G[el].cpu().numpy().astype(np.float32)
                own = batch.structure[batch.element_index[el]].cpu().numpy()
                for local, i in enumerate(chunk):
                    computed.setdefault(keys[i], {})[el] = g[own == local]
            self.n_computed += len(chunk)
        for key, part in computed.items():
            self._store[key] = part
        parts = [self._store[k] if k in self._store else computed[k] for k in keys]
        while len(self._store) > self.max_structures:
            self._store.popitem(last=False)
        atoms = []
        for a in frames:
            sym = np.asarray(a.get_chemical_symbols())
            atoms.append({el: np.flatnonzero(sym == el) for el in self.elements})
        return DescriptorTable.from_parts(self.elements, parts, atoms, self.n_features)


def check_table(table: DescriptorTable, elements: Sequence[str], source: str) -> None:
    """Raise :class:`ModelMismatchError` if ``table`` was built for other elements."""
    if list(table.elements) != list(elements):
        raise ModelMismatchError(f"{source}: descriptor elements {table.elements} differ from "
                                 f"the query's {list(elements)}")
