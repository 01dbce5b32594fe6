"""Labelled structures for training and evaluation.

* :func:`frame_labels` / :func:`check_training_frames`: reference energies (eV)
  and forces (eV/Å) stored on ``ase.Atoms``, validated (errors name the set,
  structure and atom).
* :class:`LabelledStructures`: the structures with their neighbour lists cached
  as single-structure :class:`~mdmlkit.descriptors.AtomsBatch` es on one device;
  ``batch(idx)`` concatenates them (:func:`concatenate_batches`) without
  recomputing anything.
* :func:`model_elements` / :func:`model_cutoff`: what a potential needs of a batch.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mdmlkit.descriptors import AtomsBatch
from mdmlkit.errors import EmptyTrajectoryError, InputError, MissingLabelError, ModelMismatchError, NonFiniteError
from mdmlkit.utils import check_elements

__all__ = ["frame_labels", "check_training_frames", "concatenate_batches", "LabelledStructures",
           "model_elements", "model_cutoff"]


def model_elements(model: torch.nn.Module) -> list[str]:
    """Element symbols of a potential (``model.elements`` or ``model.sfs.elements``)."""
    for obj in (model, getattr(model, "sfs", None)):
        els = getattr(obj, "elements", None)
        if els is not None:
            return list(els)
    raise InputError(f"{type(model).__name__} exposes no element list (model.elements / model.sfs.elements)")


def model_cutoff(model: torch.nn.Module) -> float:
    """Neighbour-list cutoff of a potential, Å (``model.sfs.cutoff`` or ``model.cutoff``)."""
    sfs = getattr(model, "sfs", None)
    if sfs is not None and getattr(sfs, "cutoff", None) is not None:
        return float(sfs.cutoff)
    return float(model.cutoff)


def frame_labels(atoms, index: int = 0, source: str = "frames",
                 require_forces: bool = True) -> tuple[float, np.ndarray | None]:
    """Reference energy (eV) and forces (eV/Å, ``[N, 3]``) stored on ``atoms``.

    Looks in ``atoms.calc.results`` (what ``ase.io.read`` gives for extxyz with
    ``energy``/``forces``) and then in ``atoms.info["energy"]`` /
    ``atoms.arrays["forces"]``.  Never runs a calculator.

    Raises
    ------
    MissingLabelError
        naming ``source`` and the structure ``index`` when a label is absent.
    NonFiniteError
        when the energy or a force component is NaN/inf.
    """
    results = getattr(atoms.calc, "results", None) or {}
    energy = results.get("energy", results.get("free_energy", atoms.info.get("energy")))
    if energy is None:
        raise MissingLabelError(f"{source}: structure {index} ({atoms.get_chemical_formula()}) "
                                "has no reference energy (atoms.calc.results['energy'] or "
                                "atoms.info['energy'])")
    energy = float(np.asarray(energy).reshape(()))
    if not math.isfinite(energy):
        raise NonFiniteError(f"{source}: structure {index} has a non-finite energy ({energy})")
    forces = results.get("forces")
    if forces is None:
        forces = atoms.arrays.get("forces")
    if forces is None:
        if require_forces:
            raise MissingLabelError(f"{source}: structure {index} ({atoms.get_chemical_formula()}) "
                                    "has no reference forces (atoms.calc.results['forces'] or "
                                    "atoms.arrays['forces'])")
        return energy, None
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (len(atoms), 3):
        raise MissingLabelError(f"{source}: structure {index} has forces of shape {forces.shape}, "
                                f"expected ({len(atoms)}, 3)")
    if not np.all(np.isfinite(forces)):
        bad = np.where(~np.isfinite(forces).all(axis=1))[0]
        raise NonFiniteError(f"{source}: structure {index} has non-finite forces "
                             f"on atoms {bad[:10].tolist()}")
    return energy, forces


def check_training_frames(frames: Sequence[Any], elements: Sequence[str], source: str = "frames",
                          require_forces: bool = True) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Validate labelled structures and return their energies (eV) and forces (eV/Å).

    Checks that there is at least one structure, that every atom's element is in
    ``elements``, that positions/cells are finite and that energies (and forces,
    when ``require_forces``) are present and finite.

    Raises
    ------
    EmptyTrajectoryError, UnknownElementError, NonFiniteError, MissingLabelError
        naming ``source``, the structure index and (where relevant) the atom index.
    """
    if len(frames) == 0:
        raise EmptyTrajectoryError(f"{source}: no structures")
    check_elements(frames, elements, source, owner="the model")
    energies = np.empty(len(frames))
    forces: list[np.ndarray | None] = []
    for k, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise EmptyTrajectoryError(f"{source}: structure {k} has no atoms")
        pos = atoms.get_positions()
        if not np.all(np.isfinite(pos)):
            bad = np.where(~np.isfinite(pos).all(axis=1))[0]
            raise NonFiniteError(f"{source}: structure {k} has non-finite positions "
                                 f"(atoms {bad[:10].tolist()})")
        if not np.all(np.isfinite(atoms.get_cell().array)):
            raise NonFiniteError(f"{source}: structure {k} has a non-finite cell")
        energies[k], f = frame_labels(atoms, k, source, require_forces)
        forces.append(f)
    return energies, forces


def concatenate_batches(batches: Sequence[Any]):
    """One :class:`~mdmlkit.descriptors.AtomsBatch` holding all structures of ``batches``.

    Pair indices are offset, nothing is recomputed (the neighbour lists are
    reused); the positions are a fresh leaf tensor (no ``requires_grad``).
    """
    if not batches:
        raise EmptyTrajectoryError("concatenate_batches: no batches")
    b0 = batches[0]
    for k, b in enumerate(batches[1:], 1):
        if b.elements != b0.elements or b.cutoff != b0.cutoff:
            raise ModelMismatchError(f"batch {k} has elements {b.elements} / cutoff {b.cutoff} Å, "
                                     f"batch 0 has {b0.elements} / {b0.cutoff} Å")
    n_at = [b.positions.shape[0] for b in batches]
    n_st = [b.n_structures for b in batches]
    atom_off = np.concatenate([[0], np.cumsum(n_at)[:-1]]).tolist()
    st_off = np.concatenate([[0], np.cumsum(n_st)[:-1]]).tolist()
    cat = torch.cat
    return AtomsBatch(
        elements=b0.elements, cutoff=b0.cutoff,
        positions=cat([b.positions.detach() for b in batches]),
        numbers=cat([b.numbers for b in batches]),
        species=cat([b.species for b in batches]),
        structure=cat([b.structure + o for b, o in zip(batches, st_off)]),
        n_atoms=cat([b.n_atoms for b in batches]),
        cells=cat([b.cells for b in batches]),
        pbc=cat([b.pbc for b in batches]),
        pair_i=cat([b.pair_i + o for b, o in zip(batches, atom_off)]),
        pair_j=cat([b.pair_j + o for b, o in zip(batches, atom_off)]),
        cell_shifts=cat([b.cell_shifts for b in batches]))


class LabelledStructures:
    """Labelled structures with their neighbour lists cached on ``device``.

    Parameters
    ----------
    frames : list of ase.Atoms
    energies : array [S]
        Reference energies, eV.
    forces : list of array [N_s, 3] or None
        Reference forces, eV/Å (None where absent).
    elements, cutoff : list of str, float
        The model's elements and neighbour cutoff (Å).
    device, dtype
        Where the cached batches live.
    source : str
        Name of the set in error messages.
    progress : bool
        tqdm bar while building the neighbour lists.

    ``batch(idx)`` concatenates the cached single-structure batches and returns
    ``(batch, energy_ref [B], forces_ref [N, 3] or None, n_atoms [B])``; only the
    positions tensor is fresh (a new leaf, so ``requires_grad`` can be set).
    """

    def __init__(self, frames, energies, forces, elements, cutoff, device, dtype, source="frames",
                 progress=False):
        desc = f"{source}: neighbour lists"
        self.n = len(frames)
        self.n_atoms = np.array([len(a) for a in frames], dtype=np.int64)
        self.kinds = [str(a.info.get("kind", "")) for a in frames]
        self.device, self.dtype = device, dtype
        self.energies = torch.as_tensor(energies, dtype=dtype, device=device)
        self.forces = [None if f is None else torch.as_tensor(f, dtype=dtype, device=device) for f in forces]
        self.items = []
        # leave=True: a notebook bar closed with leave=False is a widget model that is gone from
        # the saved notebook ("Error displaying widget: model not found" when it is reopened)
        for k, atoms in enumerate(tqdm(frames, desc=desc, disable=not progress, leave=True)):
            try:
                self.items.append(AtomsBatch.from_atoms([atoms], elements=elements, cutoff=cutoff,
                                                        device=device, dtype=dtype))
            except InputError as exc:   # e.g. AtomsTooCloseError: name the structure in *this* set
                msg = str(exc).replace("structure 0", f"structure {k}", 1)
                raise type(exc)(f"{source}: {msg}") from None

    def batch(self, idx: Sequence[int]):
        idx = [int(i) for i in idx]
        batch = concatenate_batches([self.items[i] for i in idx])
        e_ref = self.energies[idx]
        f_ref = None
        if all(self.forces[i] is not None for i in idx):
            f_ref = torch.cat([self.forces[i] for i in idx])
        n_atoms = torch.as_tensor(self.n_atoms[idx], dtype=self.dtype, device=self.device)
        return batch, e_ref, f_ref, n_atoms
