"""``AtomsBatch``: many structures flattened into one set of torch tensors.

Positions are a leaf tensor (set ``requires_grad`` for forces); the pair list
(integer indices and integer image offsets) is computed once in numpy when
the batch is built and never differentiated.  Pair vectors are computed in
torch from positions, so autograd gives forces (and, with a strain, stress).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from mdmlkit.descriptors.neighbors import check_cell, neighbor_list
from mdmlkit.errors import AtomsTooCloseError, EmptyTrajectoryError, InputError, NonFiniteError, UnknownElementError
from mdmlkit.utils import resolve_device

#: Default smallest allowed interatomic distance, Å.
MIN_DISTANCE = 0.5


class AtomsBatch:
    """A batch of structures with a shared neighbour list.

    Build with :meth:`from_atoms`.  Atoms of all structures are concatenated
    in input order.  The neighbour list and the index bookkeeping cached by
    :class:`ACSF` belong to the positions the batch was built with: positions
    may carry gradients (or be nudged for finite differences), but build a new
    batch when atoms really move (MD step, relaxation) -- or, with a list
    built for a larger cutoff (a Verlet "skin"), move the atoms with
    :meth:`with_positions` while no atom has moved more than half the skin
    (what :class:`~mdmlkit.potential.HDNNPCalculator` does in MD).

    Attributes
    ----------
    elements : list[str]
        Element symbols; ``species`` indexes into this list.
    cutoff : float
        Neighbour-list cutoff, Å.
    positions : Tensor [N, 3]
        Cartesian positions, Å (leaf tensor).
    numbers, species, structure : LongTensor [N]
        Atomic numbers, element index, structure index of each atom.
    n_structures : int
    n_atoms : LongTensor [S]
        Atoms per structure.
    cells : Tensor [S, 3, 3]
        Cell vectors as rows, Å (zero rows where the structure has none).
    pbc : BoolTensor [S, 3]
    pair_i, pair_j : LongTensor [P]
        Global atom indices of each (full, directed) pair, sorted by ``pair_i``.
    cell_shifts : LongTensor [P, 3]
        Integer image offsets of atom j.
    shifts : Tensor [P, 3]
        ``cell_shifts @ cell``, Å: ``r_ij = positions[j] - positions[i] + shifts``.
    element_index : dict[str, LongTensor]
        Indices of the atoms of each element, in batch order.
    local_index : LongTensor [N]
        Position of each atom within ``element_index[its element]``.
    """

    def __init__(self, *, elements, cutoff, positions, numbers, species, structure, n_atoms,
                 cells, pbc, pair_i, pair_j, cell_shifts):
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.positions = positions
        self.numbers = numbers
        self.species = species
        self.structure = structure
        self.n_atoms = n_atoms
        self.cells = cells
        self.pbc = pbc
        self.pair_i = pair_i
        self.pair_j = pair_j
        self.cell_shifts = cell_shifts
        if cells.shape[0] == 1:        # one cell: a matrix product, no per-pair gather
            self.shifts = cell_shifts.to(cells.dtype) @ cells[0]
        else:
            self.shifts = torch.einsum("pk,pkl->pl", cell_shifts.to(cells.dtype),
                                       cells[structure[pair_i]])
        self.element_index = {el: torch.nonzero(species == k).flatten()
                              for k, el in enumerate(self.elements)}
        local = torch.empty_like(species)
        for idx in self.element_index.values():
            local[idx] = torch.arange(len(idx), device=species.device)
        self.local_index = local
        self._cache: dict = {}    # bookkeeping that depends on the positions
        self._static: dict = {}   # bookkeeping that depends only on pairs and species (shared
        #                           with the batches made by with_positions)

    # ---------------------------------------------------------------- build
    @classmethod
    def from_atoms(cls, frames: Atoms | Sequence[Atoms], elements: Sequence[str],
                   cutoff: float, device=None, dtype: torch.dtype = torch.float64,
                   min_distance: float = MIN_DISTANCE,
                   neighbor_method: str = "auto") -> AtomsBatch:
        """Validate ``frames`` and build the batch with its neighbour list.

        Parameters
        ----------
        frames : Atoms or sequence of Atoms
            Structures; periodic along ``atoms.pbc`` (cells of any shape, also
            smaller than twice the cutoff), clusters with ``pbc=False``.
        elements : sequence of str
            Allowed elements (descriptor order).
        cutoff : float
            Neighbour cutoff, Å (the descriptor's largest rc).
        device, dtype
            Torch device (``None``: CUDA if available) and float dtype.
        min_distance : float
            Smallest allowed interatomic distance, Å.
        neighbor_method : str
            Backend of :func:`mdmlkit.descriptors.neighbors.neighbor_list`.

        Raises
        ------
        EmptyTrajectoryError
            No structures, or a structure without atoms.
        UnknownElementError
            An element not in ``elements`` (names element and structure).
        NonFiniteError
            NaN/inf positions or cell (names structure and atoms).
        AtomsTooCloseError
            Two atoms closer than ``min_distance`` (names structure and atoms).
        DegenerateCellError
            A degenerate periodic cell (vector or height below 0.5 Å, ill-conditioned,
            or too many periodic images within ``cutoff``:
            :func:`~mdmlkit.descriptors.neighbors.check_cell`).
        """
        if isinstance(frames, Atoms):
            frames = [frames]
        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError("AtomsBatch.from_atoms: no structures given")
        elements = list(elements)
        sp_of = {el: k for k, el in enumerate(elements)}
        pos_all, num_all, sp_all, st_all, cells, pbcs = [], [], [], [], [], []
        I, J, S = [], [], []
        offset = 0
        for s, atoms in enumerate(frames):
            if len(atoms) == 0:
                raise EmptyTrajectoryError(f"structure {s} has no atoms")
            symbols = atoms.get_chemical_symbols()
            bad = sorted({x for x in symbols if x not in sp_of})
            if bad:
                first = symbols.index(bad[0])
                raise UnknownElementError(
                    f"structure {s}: element {bad[0]!r} (atom {first}) is not among the "
                    f"descriptor elements {elements}")
            pos = np.asarray(atoms.get_positions(), dtype=float)
            if not np.all(np.isfinite(pos)):
                idx = np.flatnonzero(~np.isfinite(pos).all(axis=1))
                raise NonFiniteError(f"structure {s}: non-finite positions of atoms "
                                     f"{idx[:10].tolist()}")
            pbc = np.asarray(atoms.pbc, dtype=bool)
            cell = np.asarray(atoms.cell.array, dtype=float)
            if not np.all(np.isfinite(cell)):
                raise NonFiniteError(f"structure {s}: non-finite cell {cell.tolist()}")
            check_cell(cell, pbc, cutoff, where=f"structure {s}")
            i, j, sh = neighbor_list(pos, cell, pbc, cutoff, method=neighbor_method)
            if len(i):
                v = pos[j] - pos[i] + sh @ cell
                k = int(np.argmin(np.einsum("pk,pk->p", v, v)))
                dk = float(np.sqrt(v[k] @ v[k]))
                if dk < min_distance:
                    raise AtomsTooCloseError(
                        f"structure {s}: atoms {i[k]} ({symbols[i[k]]}) and {j[k]} "
                        f"({symbols[j[k]]}) are {dk:.4f} Å apart "
                        f"(image {sh[k].tolist()}), less than {min_distance} Å")
            pos_all.append(pos)
            num_all.append(atoms.numbers)
            sp_all.append(np.array([sp_of[x] for x in symbols], dtype=np.int64))
            st_all.append(np.full(len(atoms), s, dtype=np.int64))
            cells.append(cell)
            pbcs.append(pbc)
            I.append(i + offset)
            J.append(j + offset)
            S.append(sh)
            offset += len(atoms)
        device = resolve_device(device)
        lt = dict(dtype=torch.long, device=device)
        ft = dict(dtype=dtype, device=device)
        structure = torch.as_tensor(np.concatenate(st_all), **lt)
        return cls(
            elements=elements, cutoff=cutoff,
            positions=torch.as_tensor(np.concatenate(pos_all), **ft),
            numbers=torch.as_tensor(np.concatenate(num_all).astype(np.int64), **lt),
            species=torch.as_tensor(np.concatenate(sp_all), **lt),
            structure=structure,
            n_atoms=torch.as_tensor([len(a) for a in frames], **lt),
            cells=torch.as_tensor(np.stack(cells), **ft),
            pbc=torch.as_tensor(np.stack(pbcs), dtype=torch.bool, device=device),
            pair_i=torch.as_tensor(np.concatenate(I), **lt),
            pair_j=torch.as_tensor(np.concatenate(J), **lt),
            cell_shifts=torch.as_tensor(np.concatenate(S), **lt),
        )

    # ------------------------------------------------------------- tensors
    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.numel())

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    def __len__(self) -> int:
        return self.n_structures

    def __repr__(self) -> str:
        return (f"AtomsBatch(n_structures={self.n_structures}, n_atoms={self.positions.shape[0]}, "
                f"n_pairs={self.pair_i.numel()}, elements={self.elements}, "
                f"cutoff={self.cutoff:g} Å, dtype={self.dtype}, device={self.device})")

    def pair_vectors(self, strain: torch.Tensor | None = None,
                     index: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors r_j - r_i (+ image shift) of all pairs (or of pairs ``index``), Å, [P, 3].

        With ``strain`` [S, 3, 3] every vector of structure s becomes
        ``r @ (I + strain[s])``; the derivative of the energy with respect to
        a zero strain is the virial (stress times volume).
        """
        pi, pj, sh = self.pair_i, self.pair_j, self.shifts
        if index is not None:
            pi, pj, sh = pi[index], pj[index], sh[index]
        v = self.positions.index_select(0, pj) - self.positions.index_select(0, pi) + sh
        if strain is not None:
            eye = torch.eye(3, dtype=v.dtype, device=v.device)
            if strain.shape[0] == 1:          # one structure: a single [P, 3] @ [3, 3]
                v = v @ (eye + strain[0])
            else:
                v = torch.einsum("pk,pkl->pl", v, (eye + strain)[self.structure[pi]])
        return v

    def with_positions(self, positions) -> AtomsBatch:
        """The same structures and pair list with new Cartesian positions (Å, [N, 3]).

        Use with a pair list built for a cutoff larger than needed (``cutoff =
        rc + skin``): the list stays complete for ``rc`` as long as no atom
        has moved more than ``skin / 2`` from the positions it was built for
        (the caller checks that).  Index bookkeeping that depends only on the
        pairs and species is shared; everything depending on positions is
        recomputed.  The new positions are a fresh leaf tensor.
        """
        pos = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        if pos.shape != self.positions.shape:
            raise InputError(f"positions of shape {tuple(pos.shape)}, the batch has "
                             f"{tuple(self.positions.shape)}")
        new = object.__new__(AtomsBatch)
        new.__dict__.update(self.__dict__)
        new.positions = pos.detach()
        new._cache = {}
        return new

    def check_min_distance(self, min_distance: float = MIN_DISTANCE) -> None:
        """Raise :class:`AtomsTooCloseError` if two atoms are closer than ``min_distance`` Å."""
        if self.pair_i.numel() == 0:
            return
        d = self.detached_vectors().norm(dim=1)
        k = int(torch.argmin(d))
        if float(d[k]) < min_distance:
            self.raise_too_close(k, float(d[k]), min_distance)

    def raise_too_close(self, k: int, distance: float, min_distance: float = MIN_DISTANCE) -> None:
        """Raise :class:`AtomsTooCloseError` naming the structure, atoms and image of pair ``k``
        (``distance`` Å apart); for callers that found the closest pair themselves."""
        i, j = int(self.pair_i[k]), int(self.pair_j[k])
        s = int(self.structure[i])
        first = int((torch.cumsum(self.n_atoms, 0) - self.n_atoms)[s])
        el = self.elements
        raise AtomsTooCloseError(
            f"structure {s}: atoms {i - first} ({el[int(self.species[i])]}) and {j - first} "
            f"({el[int(self.species[j])]}) are {distance:.4f} Å apart "
            f"(image {self.cell_shifts[k].tolist()}), less than {min_distance} Å")

    def detached_vectors(self) -> torch.Tensor:
        """All pair vectors without autograd history (index bookkeeping), cached."""
        if "detached_vectors" not in self._cache:
            with torch.no_grad():
                self._cache["detached_vectors"] = self.pair_vectors()
        return self._cache["detached_vectors"]

    def to(self, device=None, dtype: torch.dtype | None = None) -> AtomsBatch:
        """Copy on another device and/or float dtype (positions stay a leaf)."""
        device = self.device if device is None else resolve_device(device)
        dtype = self.dtype if dtype is None else dtype
        mv = lambda t: t.to(device)  # noqa: E731
        return AtomsBatch(
            elements=self.elements, cutoff=self.cutoff,
            positions=self.positions.detach().to(device, dtype),
            numbers=mv(self.numbers), species=mv(self.species), structure=mv(self.structure),
            n_atoms=mv(self.n_atoms), cells=self.cells.to(device, dtype), pbc=mv(self.pbc),
            pair_i=mv(self.pair_i), pair_j=mv(self.pair_j), cell_shifts=mv(self.cell_shifts))

    # ------------------------------------------------------------ triplets
    def triplets(self, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs of pairs sharing a central atom, both shorter than ``cutoff`` (Å).

        Returns indices ``(a, b)`` into the pair arrays with ``pair_i[a] ==
        pair_i[b]`` and ``a < b``: every unordered neighbour pair (j, k) of
        every centre exactly once (periodic images count as distinct
        neighbours).  Built with index arithmetic, no Python loop over atoms;
        cached per cutoff.
        """
        key = ("triplets", float(cutoff))
        if key not in self._cache:
            d = self.detached_vectors().norm(dim=1)
            sel = torch.nonzero(d < cutoff).flatten()          # still sorted by centre
            self._cache[key] = build_triplets(self.pair_i[sel], self.positions.shape[0], sel)
        return self._cache[key]


def build_triplets(centre: torch.Tensor, n_atoms: int,
                   pair_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All (a, b), a < b, among pairs with equal ``centre`` (``centre`` sorted ascending).

    ``pair_index`` maps positions in ``centre`` to the returned indices
    (identity when None).  For a centre with n pairs there are n (n - 1) / 2
    triplets.
    """
    dev = centre.device
    m = centre.numel()
    pos = torch.arange(m, device=dev)
    counts = torch.bincount(centre, minlength=n_atoms)
    start = torch.cumsum(counts, 0) - counts
    rank = pos - start[centre]                       # position within the centre's run
    reps = counts[centre] - 1 - rank                 # partners after this pair
    first = torch.repeat_interleave(pos, reps)
    run_start = torch.cumsum(reps, 0) - reps
    t = torch.arange(first.numel(), device=dev) - torch.repeat_interleave(run_start, reps)
    second = first + 1 + t
    if pair_index is not None:
        first, second = pair_index[first], pair_index[second]
    return first, second
