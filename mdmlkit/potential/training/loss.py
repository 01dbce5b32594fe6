"""The training loss and running error sums.

Loss (per optimiser step, over a batch of ``S`` structures with ``N`` atoms)::

    L = w_E · mean_s ((E_s − E_s^ref) / N_s)²  +  w_F · mean_{i,α} (F_iα − F_iα^ref)²

i.e. the energy term is the MSE of the energy per atom (eV²/atom²), the force term
the MSE per force component (eV²/Å²).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mdmlkit.errors import MissingLabelError
from mdmlkit.potential.evaluate import predict
from mdmlkit.potential.training.distributed import all_reduce_

__all__ = ["energy_force_loss", "ErrorSums"]


def energy_force_loss(model: torch.nn.Module, batch, energy_ref: torch.Tensor, forces_ref: torch.Tensor | None,
                      n_atoms: torch.Tensor, energy_weight: float = 1.0, force_weight: float = 0.1,
                      n_structures: int | None = None, n_components: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The training loss of ``batch`` and its residuals.

    ``L = w_E Σ_s ((E_s − E_s^ref)/N_s)² / n_structures + w_F Σ_{i,α} (F_iα − F_iα^ref)² / n_components``
    (eV²/atom², eV²/Å²); the normalisers default to this batch's structure and
    force-component counts (the trainer passes the global batch's counts when the
    batch is one rank's shard).  The force term keeps the graph
    (``create_graph=True``) so that ``L.backward()`` differentiates through the forces.

    Returns
    -------
    loss : scalar Tensor
    de : Tensor [S], energy error per atom (eV/atom), detached
    df : Tensor [N, 3] force error (eV/Å), detached, or None without force term
    """
    use_f = force_weight > 0
    if use_f and forces_ref is None:
        raise MissingLabelError("energy_force_loss: force_weight > 0 but no reference forces")
    n_structures = int(energy_ref.numel()) if n_structures is None else n_structures
    energy, forces = predict(model, batch, forces=use_f, create_graph=use_f)
    de = (energy - energy_ref) / n_atoms
    loss = energy_weight * (de ** 2).sum() / n_structures
    df = None
    if use_f:
        df = forces - forces_ref
        n_components = df.numel() if n_components is None else n_components
        loss = loss + force_weight * (df ** 2).sum() / n_components
        df = df.detach()
    return loss, de.detach(), df


@dataclass
class ErrorSums:
    """Running error sums ``v = [se_e, ae_e, n_s, se_f, ae_f, n_comp]`` (eV/atom, eV/Å)
    over an epoch's batches, summed over ranks by :meth:`reduce`."""

    v: torch.Tensor

    @classmethod
    def zeros(cls, device, dtype) -> ErrorSums:
        return cls(torch.zeros(6, device=device, dtype=dtype))

    def add(self, de_per_atom: torch.Tensor, df: torch.Tensor | None) -> None:
        """Add energy errors per atom (eV/atom) and force errors (eV/Å, or None)."""
        de_per_atom = de_per_atom.detach()
        self.v[0] += (de_per_atom ** 2).sum()
        self.v[1] += de_per_atom.abs().sum()
        self.v[2] += de_per_atom.numel()
        if df is not None:
            df = df.detach()
            self.v[3] += (df ** 2).sum()
            self.v[4] += df.abs().sum()
            self.v[5] += df.numel()

    def reduce(self) -> ErrorSums:
        """Sum over ranks (in place); returns self."""
        all_reduce_(self.v)
        return self

    def metrics(self, energy_weight: float, force_weight: float) -> dict[str, float]:
        """``loss`` and energy/force RMSE and MAE (meV/atom, meV/Å); NaN where nothing was added."""
        se_e, ae_e, n_s, se_f, ae_f, n_c = (float(x) for x in self.v.cpu())
        mse_e = se_e / n_s if n_s else math.nan
        mse_f = se_f / n_c if n_c else math.nan
        loss = energy_weight * mse_e + (force_weight * mse_f if n_c else 0.0)
        return {"loss": loss,
                "energy_rmse_meV_atom": 1000.0 * math.sqrt(mse_e) if n_s else math.nan,
                "energy_mae_meV_atom": 1000.0 * ae_e / n_s if n_s else math.nan,
                "force_rmse_meV_A": 1000.0 * math.sqrt(mse_f) if n_c else math.nan,
                "force_mae_meV_A": 1000.0 * ae_f / n_c if n_c else math.nan}
