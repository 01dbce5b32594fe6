"""Error metrics of a potential on labelled structures.

:func:`evaluate` predicts energies (eV) and forces (eV/Å) of labelled
``ase.Atoms`` and compares them with the references: energy RMSE/MAE per atom
(meV/atom), force-component RMSE/MAE (eV/Å and meV/Å), per-structure values for
parity plots and, when ``atoms.info["kind"]`` is set, the same summary per kind.
:class:`~mdmlkit.potential.Trainer` reports with it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mdmlkit.potential.data import LabelledStructures, check_training_frames, model_cutoff, model_elements

__all__ = ["evaluate", "error_summary", "predict"]


def predict(model: torch.nn.Module, batch, forces: bool, create_graph: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Energies ``[S]`` (eV) and, if ``forces``, forces ``[N, 3]`` (eV/Å) of ``batch``
    (``None`` otherwise); ``create_graph`` keeps the graph of the forces for training."""
    if not forces:
        return model(batch), None
    return model.energy_and_forces(batch, create_graph=create_graph)


def error_summary(de_per_atom: np.ndarray, df: np.ndarray | None) -> dict[str, float]:
    """Summary errors from residuals.

    Parameters
    ----------
    de_per_atom : array [S]
        Energy error per atom of each structure, eV/atom.
    df : array [N, 3] or None
        Force errors, eV/Å.

    Returns
    -------
    dict
        ``n_structures``, ``energy_rmse_meV_atom``, ``energy_mae_meV_atom`` and,
        with forces, ``force_rmse_eV_A``, ``force_rmse_meV_A``, ``force_mae_eV_A``,
        ``force_mae_meV_A`` (over force components).
    """
    out = {"n_structures": int(de_per_atom.size),
           "energy_rmse_meV_atom": 1000.0 * float(np.sqrt(np.mean(de_per_atom ** 2))),
           "energy_mae_meV_atom": 1000.0 * float(np.mean(np.abs(de_per_atom)))}
    if df is not None and df.size:
        rmse = float(np.sqrt(np.mean(df ** 2)))
        mae = float(np.mean(np.abs(df)))
        out.update({"force_rmse_eV_A": rmse, "force_rmse_meV_A": 1000.0 * rmse,
                    "force_mae_eV_A": mae, "force_mae_meV_A": 1000.0 * mae})
    return out


def evaluate(model: torch.nn.Module, frames: Sequence[Any], batch_size: int = 32,
             source: str = "frames") -> dict[str, Any]:
    """Errors of ``model`` on labelled structures (energies in eV, forces in eV/Å).

    Parameters
    ----------
    model : HDNNP
        Any potential with ``model(batch)`` and ``model.energy_and_forces(batch)``;
        evaluated on its own device and dtype, left in its train/eval mode.
    frames : list of ase.Atoms
        Structures with a reference energy (forces optional; see
        :func:`mdmlkit.potential.data.frame_labels`).
    batch_size : int
        Structures per forward pass.
    source : str
        Name of the set in error messages.

    Returns
    -------
    dict
        The :func:`error_summary` keys; per structure (parity plots):
        ``energy_ref``, ``energy_pred`` (eV), ``n_atoms``, ``energy_ref_per_atom``,
        ``energy_pred_per_atom`` (eV/atom), ``force_rmse_per_structure_meV_A``
        (when labelled), ``kind``; per atom: ``forces_ref`` (None without force
        labels), ``forces_pred`` (``[N_total, 3]``, eV/Å) and ``atom_structure``
        (structure index of each row); ``by_kind``: :func:`error_summary` per
        ``atoms.info["kind"]`` (when any structure has a kind).

    Raises
    ------
    EmptyTrajectoryError, UnknownElementError, NonFiniteError, MissingLabelError
        Naming ``source`` and the structure.
    """
    p = next(model.parameters())
    elements = model_elements(model)
    energies, forces = check_training_frames(frames, elements, source, require_forces=False)
    has_f = all(f is not None for f in forces)
    data = LabelledStructures(frames, energies, forces, elements, model_cutoff(model), p.device, p.dtype,
                              source)
    was_training = model.training
    model.eval()
    e_pred, f_pred = [], []
    try:
        for b in range(0, data.n, batch_size):
            batch, *_ = data.batch(range(b, min(b + batch_size, data.n)))
            e, f = predict(model, batch, forces=True)
            e_pred.append(e.detach().cpu().numpy())
            f_pred.append(f.detach().cpu().numpy())
    finally:
        model.train(was_training)
    e_pred = np.concatenate(e_pred)
    f_pred = np.concatenate(f_pred)
    n_atoms = data.n_atoms
    atom_structure = np.repeat(np.arange(data.n), n_atoms)
    de = (e_pred - energies) / n_atoms
    f_ref = np.concatenate(forces) if has_f else None
    df = f_pred - f_ref if has_f else None
    out: dict[str, Any] = error_summary(de, df)
    out.update({"energy_ref": energies, "energy_pred": e_pred, "n_atoms": n_atoms,
                "energy_ref_per_atom": energies / n_atoms, "energy_pred_per_atom": e_pred / n_atoms,
                "forces_ref": f_ref, "forces_pred": f_pred, "atom_structure": atom_structure,
                "kind": np.array(data.kinds)})
    if has_f:
        sq = np.bincount(atom_structure, weights=(df ** 2).sum(axis=1), minlength=data.n)
        out["force_rmse_per_structure_meV_A"] = 1000.0 * np.sqrt(sq / (3 * n_atoms))
    if any(data.kinds):
        kinds = np.array(data.kinds)
        out["by_kind"] = {kind: error_summary(de[kinds == kind], df[(kinds == kind)[atom_structure]]
                                              if has_f else None)
                          for kind in sorted(set(data.kinds))}
    return out
