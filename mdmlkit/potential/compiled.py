"""A compiled energy kernel for MD with small cells (``HDNNPCalculator(compile=True)``).

In an MD step of a few hundred atoms the eager HDNNP spends most of its time in
the per-operation overhead of ~2000 small torch operations (forward and
backward), not in arithmetic.  :class:`PaddedEnergy` writes the whole path from
positions to atomic energies as one pure tensor function of a *fixed* neighbour
layout: the pairs of a Verlet list (``rc + skin``), sorted into padded
per-element tables (:meth:`ACSFPlan.padded_layout` of ``ACSF.plan()``), including the pairs beyond rc,
which contribute exactly zero.  The layout changes only when the Verlet list is
rebuilt, so ``torch.compile`` (inductor: fused C++/OpenMP kernels on CPU, Triton
on GPU) traces it once and the compiled forward and backward are reused every
step.  Values equal the eager model's to floating-point summation order.

Limits: every symmetry function must be evaluated on the padded tables (types 2
and 9 with integer zeta <= 8, |lambda| <= 1; ``ACSF.plan().padded``); models with
type-3 functions run compiled on a CPU through the fused numba kernels
(``compile="numba"``, what ``compile=True`` picks there).
Compilation happens on first use (cached by torch afterwards).
"""
from __future__ import annotations

import torch
from torch import nn

from mdmlkit.errors import InputError
from mdmlkit.potential.model import HDNNP

__all__ = ["PaddedEnergy", "PaddedLayout"]


class PaddedLayout:
    """Everything :class:`PaddedEnergy` needs besides positions and strain, for one pair list.

    For every (centre element c, neighbour element e) block of
    :meth:`~mdmlkit.descriptors.acsf.ACSFPlan.padded_layout`: the neighbour atom of every slot
    (``j_tables``, LongTensors [n_c, nb]) and its image shift (``shift_tables``,
    [n_c, nb, 3], Å), so that the pair vectors are ``positions[j] - positions[centre] +
    shift`` with no intermediate pair array (whose backward would be one more
    scatter).  Empty slots point from the centre to itself shifted beyond every
    cutoff (zero contribution).  The slots are padded to a *capacity* with some
    headroom, so that the next Verlet list of the same MD run usually fits the same
    shapes and the compiled kernel is reused without recompiling; pass the previous
    layout's :attr:`capacity` to keep it (it only grows).

    Attributes: ``j_tables``, ``shift_tables``, ``element_index`` (atoms of each
    element; row k of a block is atom ``element_index[c][k]``), ``species`` [N],
    ``n_pairs`` (real pairs in the list) and ``capacity`` (slots per block).
    """

    def __init__(self, model: HDNNP, batch, capacity: tuple | None = None,
                 headroom: float = 1.1) -> None:
        if batch.n_structures != 1:
            raise InputError(f"a padded layout describes one structure, the batch has {batch.n_structures}")
        plan = model.acsf.plan()
        tables = plan.padded_layout(batch)
        self.n_pairs = n_pairs = int(batch.pair_i.numel())
        nbs = tuple(int(t.shape[1]) for t in tables)
        if capacity is None or len(capacity) != len(nbs) or any(c < n for c, n in zip(capacity, nbs)):
            old = capacity if capacity is not None and len(capacity) == len(nbs) else (0,) * len(nbs)
            capacity = tuple(max(c, int(n * headroom) + 1) for c, n in zip(old, nbs))
        self.capacity = capacity
        self.element_index = [batch.element_index[el] for el in model.elements]
        self.species = batch.species
        far = plan.far_vector(batch.shifts)
        pair_j = torch.cat([batch.pair_j, batch.pair_j.new_zeros(1)])
        shifts = torch.cat([batch.shifts, far])
        self.j_tables, self.shift_tables = [], []
        for (c, _, _), t, cap in zip(plan.blocks, tables, capacity):
            t = torch.cat([t, t.new_full((t.shape[0], cap - t.shape[1]), n_pairs)], dim=1)
            centre = self.element_index[c][:, None].expand_as(t)
            empty = t == n_pairs
            self.j_tables.append(torch.where(empty, centre, pair_j[t]).contiguous())
            self.shift_tables.append(shifts[t].contiguous())     # empty: the far vector

    def __repr__(self) -> str:
        shapes = ", ".join("x".join(map(str, t.shape)) for t in self.j_tables)
        return f"PaddedLayout(n_atoms={self.species.numel()}, n_pairs={self.n_pairs}, tables=[{shapes}])"

    def arguments(self) -> tuple:
        """The layout arguments of :meth:`PaddedEnergy.forward`, in order."""
        return (self.j_tables, self.shift_tables, self.element_index, self.species)


class PaddedEnergy(nn.Module):
    """Atomic energies (eV) and raw symmetry functions from positions on a padded layout.

    ``forward(positions [N, 3] Å, strain [1, 3, 3] or None, *layout.arguments())``
    returns ``(e_atoms [N], G {el: [n_el, n_features]})``;
    :meth:`energy_and_gradients` adds the gradients of their sum with respect to
    positions (−forces) and strain (the virial), which is what gets compiled.
    """

    def __init__(self, model: HDNNP) -> None:
        super().__init__()
        self.plan = model.acsf.plan()
        if not self.plan.padded:
            raise InputError("compile=True needs every symmetry function on padded tables "
                             "(types 2 and 9 with integer zeta <= 8, |lambda| <= 1); this model has "
                             "functions that need explicit triplets (e.g. type 3); on a CPU, "
                             "compile='numba' runs them")
        self.model = model

    def forward(self, positions, strain, j_tables, shift_tables, element_index, species):
        model, plan = self.model, self.plan
        deform = None if strain is None else torch.eye(3, dtype=positions.dtype,
                                                       device=positions.device) + strain[0]
        counts = [idx.shape[0] for idx in element_index]
        parts: dict[str, torch.Tensor] = {}
        k = 0
        for c in dict.fromkeys(c for c, _, _ in plan.blocks):
            neighbours = [(e, t) for cc, e, t in plan.blocks if cc == c]
            if counts[c] == 0:
                parts.update(plan.dense_empty(c, positions))
            else:
                centre = positions.index_select(0, element_index[c])[:, None, :]
                blocks = {}
                for m, e in enumerate(neighbours):
                    v = positions[j_tables[k + m]] - centre + shift_tables[k + m]    # [n_c, nb, 3]
                    if deform is not None:
                        v = v @ deform
                    blocks[e] = v.to(model.acsf.dtype)
                parts.update(plan.dense_parts(c, blocks))
            k += len(neighbours)
        G = plan.assemble(parts, counts, positions)
        index = dict(zip(model.elements, element_index))
        return model.atomic_energies_from(G, index, species), G

    def energy_and_gradients(self, positions, strain, *layout):
        """``(e_atoms [N], G, ∂E/∂positions [N, 3], ∂E/∂strain [1, 3, 3] or None)``, E = Σ e_atoms.

        The gradients come from ``torch.func.grad``, so values and gradients are one
        forward-only graph: compiled, it runs without the autograd engine (call it
        under ``torch.no_grad()``; the model's parameters get no gradients).
        """
        def total(pos, st):
            e, G = self(pos, st, *layout)
            return e.sum(), (e, G)

        if strain is None:
            g_pos, (e, G) = torch.func.grad(lambda pos: total(pos, None), has_aux=True)(positions)
            return e, G, g_pos, None
        (g_pos, g_strain), (e, G) = torch.func.grad(total, argnums=(0, 1), has_aux=True)(positions, strain)
        return e, G, g_pos, g_strain
