"""A compiled energy kernel for MD with small cells (``HDNNPCalculator(compile=True)``).

In an MD step of a few hundred atoms the eager HDNNP spends most of its time in
the per-operation overhead of ~2000 small torch operations (forward and
backward), not in arithmetic.  :class:`PaddedEnergy` writes the whole path from
positions to atomic energies as one pure tensor function of a *fixed* neighbour
layout: the pairs of a Verlet list (``rc + skin``), sorted into padded
per-element tables (:meth:`ACSF.padded_layout`), including the pairs beyond rc,
which contribute exactly zero.  The layout changes only when the Verlet list is
rebuilt, so ``torch.compile`` (inductor: fused C++/OpenMP kernels on CPU, Triton
on GPU) traces it once and the compiled forward and backward are reused every
step.  Values equal the eager model's to floating-point summation order.

Limits: every symmetry function must be evaluated on the padded tables (types 2
and 9 with integer zeta <= 8, |lambda| <= 1; :attr:`ACSF.supports_padded`).
Compilation costs tens of seconds on first use (cached by torch afterwards).
"""
from __future__ import annotations

import torch
from torch import nn

from .model import HDNNP

__all__ = ["PaddedEnergy", "PaddedLayout"]


class PaddedLayout:
    """Everything :class:`PaddedEnergy` needs besides positions and strain, for one pair list.

    The arrays are padded to a *capacity* (pairs, and slots per padded table) with
    some headroom, so that the next Verlet list of the same MD run usually fits the
    same shapes and the compiled kernel is reused without recompiling; pass the
    previous layout's :attr:`capacity` to keep it (it only grows).  Padding pairs
    point from atom 0 to itself shifted beyond every cutoff (zero contribution).

    Attributes: ``pair_i``, ``pair_j`` [P_cap] (global atom indices), ``shifts``
    [P_cap, 3] (image shifts, Å), ``tables`` (LongTensors [n_c, nb_cap], see
    :meth:`~mdmlkit.descriptors.ACSF.padded_layout`; empty slots hold ``P_cap``),
    ``element_index`` (atoms of each element), ``species`` [N], ``n_pairs`` (real
    pairs) and ``capacity`` (``(P_cap, (nb_cap, ...))``).
    """

    def __init__(self, model: HDNNP, batch, capacity: tuple | None = None,
                 headroom: float = 1.1) -> None:
        if batch.n_structures != 1:
            raise ValueError(f"a padded layout describes one structure, the batch has {batch.n_structures}")
        sel, tables = model.acsf.padded_layout(batch)
        n_pairs = int(sel.numel())
        nbs = [int(t.shape[1]) for t in tables]
        grow = lambda n: max(int(n * headroom) + 1, n)  # noqa: E731
        if capacity is None or capacity[0] < n_pairs or len(capacity[1]) != len(nbs) or any(
                c < n for c, n in zip(capacity[1], nbs)):
            old = capacity if capacity is not None and len(capacity[1]) == len(nbs) else (0, (0,) * len(nbs))
            capacity = (max(old[0], grow(n_pairs)), tuple(max(c, grow(n)) for c, n in zip(old[1], nbs)))
        p_cap, nb_cap = capacity
        self.capacity = capacity
        self.n_pairs = n_pairs
        dev = sel.device
        extra = p_cap - n_pairs
        far = model.acsf.far_vector(batch.shifts)
        self.pair_i = torch.cat([batch.pair_i.index_select(0, sel),
                                 torch.zeros(extra, dtype=torch.long, device=dev)])
        self.pair_j = self.pair_i.clone()
        self.pair_j[:n_pairs] = batch.pair_j.index_select(0, sel)
        self.shifts = torch.cat([batch.shifts.index_select(0, sel), far.expand(extra, 3)])
        # empty slots: n_pairs (pad pairs / the appended far vector) -> P_cap
        self.tables = []
        for t, cap in zip(tables, nb_cap):
            t = torch.where(t == n_pairs, torch.full_like(t, p_cap), t)
            pad = torch.full((t.shape[0], cap - t.shape[1]), p_cap, dtype=torch.long, device=dev)
            self.tables.append(torch.cat([t, pad], dim=1).contiguous())
        self.element_index = [batch.element_index[el] for el in model.elements]
        self.species = batch.species

    def __repr__(self) -> str:
        shapes = ", ".join("x".join(map(str, t.shape)) for t in self.tables)
        return (f"PaddedLayout(n_atoms={self.species.numel()}, n_pairs={self.n_pairs} "
                f"(capacity {self.capacity[0]}), tables=[{shapes}])")

    def arguments(self) -> tuple:
        """The layout arguments of :meth:`PaddedEnergy.forward`, in order."""
        return (self.pair_i, self.pair_j, self.shifts, self.tables, self.element_index, self.species)


class PaddedEnergy(nn.Module):
    """Atomic energies (eV) and raw symmetry functions from positions on a padded layout.

    ``forward(positions [N, 3] Å, strain [1, 3, 3] or None, *layout.arguments())``
    returns ``(e_atoms [N], G {el: [n_el, n_features]})``.  Differentiate the sum of
    ``e_atoms`` with respect to positions (forces) and strain (virial).
    """

    def __init__(self, model: HDNNP) -> None:
        super().__init__()
        if not model.acsf.supports_padded:
            raise ValueError("compile=True needs every symmetry function on padded tables "
                             "(types 2 and 9 with integer zeta <= 8, |lambda| <= 1); this model has "
                             "functions that need explicit triplets (e.g. type 3)")
        self.model = model

    def forward(self, positions, strain, pair_i, pair_j, shifts, tables, element_index, species):
        model = self.model
        acsf = model.acsf
        vec = positions.index_select(0, pair_j) - positions.index_select(0, pair_i) + shifts
        if strain is not None:
            vec = vec @ (torch.eye(3, dtype=vec.dtype, device=vec.device) + strain[0])
        vec = vec.to(acsf.dtype)
        vec_ext = torch.cat([vec, acsf.far_vector(vec)])
        counts = [idx.shape[0] for idx in element_index]
        parts: dict[str, torch.Tensor] = {}
        k = 0
        for c in acsf.dense_elements:
            neighbours = acsf.dense_neighbours(c)
            if counts[c] == 0:
                parts.update(acsf._dense_empty(c, vec))
            else:
                blocks = {e: vec_ext[tables[k + m]] for m, e in enumerate(neighbours)}
                parts.update(acsf.dense_parts(c, blocks))
            k += len(neighbours)
        G = acsf.assemble(parts, counts, vec)
        index = dict(zip(model.elements, element_index))
        return model.atomic_energies_from(G, index, species), G
