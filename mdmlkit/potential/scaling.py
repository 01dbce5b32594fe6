"""Symmetry-function scaling (n2p2 conventions) and activation functions (n2p2 letters).

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

__all__ = ["SymmetryFunctionScaling", "Activation", "ACTIVATIONS", "canonical_activation"]

SCALING_MODE_NAMES = ("none", "scale", "center", "center_scale", "scale_sigma")

#: Accepted activation names -> canonical name (n2p2 letters included).
_ALIASES = {
    "l": "linear", "linear": "linear", "identity": "linear",
    "t": "tanh", "tanh": "tanh",
    "s": "logistic", "logistic": "logistic", "sigmoid": "logistic",
    "p": "softplus", "softplus": "softplus",
    "r": "relu", "relu": "relu",
    "g": "gaussian", "gaussian": "gaussian",
    "c": "cos", "cos": "cos",
    "S": "revlogistic", "revlogistic": "revlogistic",
    "e": "exp", "exp": "exp",
    "h": "harmonic", "harmonic": "harmonic",
}
ACTIVATIONS = tuple(sorted(set(_ALIASES.values())))


def canonical_activation(name: str) -> str:
    """Canonical activation name for ``name`` (a name such as "tanh" or an n2p2 letter)."""
    try:
        return _ALIASES[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ALIASES)}") from None


class Activation(nn.Module):
    """Element-wise activation with n2p2's definitions.

    linear x; tanh; logistic 1/(1+e^−x); softplus ln(1+e^x); relu; gaussian
    exp(−x²/2); cos; revlogistic 1 − logistic; exp e^−x; harmonic x².
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = canonical_activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.name
        if n == "linear":
            return x
        if n == "tanh":
            return torch.tanh(x)
        if n == "logistic":
            return torch.sigmoid(x)
        if n == "softplus":
            # n2p2 switches to the identity above x = 35
            return nn.functional.softplus(x, beta=1.0, threshold=35.0)
        if n == "relu":
            return torch.relu(x)
        if n == "gaussian":
            return torch.exp(-0.5 * x * x)
        if n == "cos":
            return torch.cos(x)
        if n == "revlogistic":
            return 1.0 - torch.sigmoid(x)
        if n == "exp":
            return torch.exp(-x)
        return x * x  # harmonic

    def extra_repr(self) -> str:
        return self.name


class SymmetryFunctionScaling(nn.Module):
    """Scale the raw symmetry functions of one element (n2p2 modes, see module doc).

    Buffers ``G_min``, ``G_max``, ``G_mean``, ``G_sigma`` (``[n_features]``) hold
    the training-set statistics; they default to 0, 1, 0, 1.
    """

    def __init__(self, n_features: int, mode: str = "center_scale", scale_min: float = 0.0,
                 scale_max: float = 1.0):
        super().__init__()
        if mode not in SCALING_MODE_NAMES:
            raise ValueError(f"scaling mode {mode!r} not in {SCALING_MODE_NAMES}")
        if not (math.isfinite(scale_min) and math.isfinite(scale_max)) or scale_max <= scale_min:
            raise ValueError(f"need scale_min < scale_max, got {scale_min}, {scale_max}")
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
