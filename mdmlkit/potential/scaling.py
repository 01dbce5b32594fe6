"""Symmetry-function scaling (n2p2 conventions).

Scaling modes (n2p2 ``input.nn`` keywords in brackets), with statistics
``Gmin, Gmax, Gmean, Gsigma`` of the raw functions over the training set and the
target interval ``[Smin, Smax]``:

=================  =====================================================================
mode               G' =
=================  =====================================================================
``none``           G
``scale``          Smin + (Smax − Smin)·(G − Gmin)/(Gmax − Gmin)   [scale_symmetry_functions]
``center``         G − Gmean                                     [center_symmetry_functions]
``center_scale``   Smin + (Smax − Smin)·(G − Gmean)/(Gmax − Gmin)  [both of the above]
``scale_sigma``    Smin + (Smax − Smin)·(G − Gmean)/Gsigma         [scale_symmetry_functions_sigma]
=================  =====================================================================

A function with zero range (or zero sigma) is mapped to a constant (factor 0)
instead of n2p2's division by zero.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mdmlkit.errors import InputError
from mdmlkit.io.n2p2 import SCALING_MODES

__all__ = ["SymmetryFunctionScaling", "SCALING_MODE_NAMES"]

#: The scaling modes (the n2p2 keywords that select each: :data:`mdmlkit.io.n2p2.SCALING_MODES`).
SCALING_MODE_NAMES = tuple(SCALING_MODES)

class SymmetryFunctionScaling(nn.Module):
    """Scale the raw symmetry functions of one element (n2p2 modes, see module doc).

    Buffers ``G_min``, ``G_max``, ``G_mean``, ``G_sigma`` (``[n_features]``) hold
    the training-set statistics; they default to 0, 1, 0, 1.
    """

    def __init__(self, n_features: int, mode: str = "center_scale", scale_min: float = 0.0,
                 scale_max: float = 1.0):
        super().__init__()
        if mode not in SCALING_MODE_NAMES:
            raise InputError(f"scaling mode {mode!r} not in {SCALING_MODE_NAMES}")
        if not (math.isfinite(scale_min) and math.isfinite(scale_max)) or scale_max <= scale_min:
            raise InputError(f"need scale_min < scale_max, got {scale_min}, {scale_max}")
        self.mode, self.scale_min, self.scale_max = mode, float(scale_min), float(scale_max)
        self.register_buffer("G_min", torch.zeros(n_features))
        self.register_buffer("G_max", torch.ones(n_features))
        self.register_buffer("G_mean", torch.zeros(n_features))
        self.register_buffer("G_sigma", torch.ones(n_features))

    @property
    def n_features(self) -> int:
        return self.G_min.numel()

    def _factor(self, denom: torch.Tensor) -> torch.Tensor:
        width = self.scale_max - self.scale_min
        safe = torch.where(denom > 0, denom, torch.ones_like(denom))
        return torch.where(denom > 0, width / safe, torch.zeros_like(denom))

    def forward(self, G: torch.Tensor) -> torch.Tensor:
        """``G`` [n_atoms, n_features] raw -> scaled (same shape)."""
        m = self.mode
        if m == "none":
            return G
        if m == "center":
            return G - self.G_mean
        if m == "scale":
            return self.scale_min + self._factor(self.G_max - self.G_min) * (G - self.G_min)
        if m == "center_scale":
            return self.scale_min + self._factor(self.G_max - self.G_min) * (G - self.G_mean)
        return self.scale_min + self._factor(self.G_sigma) * (G - self.G_mean)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, mode={self.mode!r}, smin={self.scale_min}, smax={self.scale_max}"
