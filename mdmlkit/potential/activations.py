"""Activation functions of the atomic networks, with n2p2's definitions and letters
(:data:`mdmlkit.io.n2p2.ACTIVATION_LETTERS`)."""
from __future__ import annotations

import torch
from torch import nn

from mdmlkit.errors import InputError
from mdmlkit.io.n2p2 import ACTIVATION_LETTERS

__all__ = ["Activation", "ACTIVATIONS", "canonical_activation"]

#: Accepted activation names -> canonical name (n2p2 letters included).
_ALIASES = {**ACTIVATION_LETTERS, **{name: name for name in ACTIVATION_LETTERS.values()},
            "identity": "linear", "sigmoid": "logistic"}
ACTIVATIONS = tuple(sorted(set(_ALIASES.values())))


def canonical_activation(name: str) -> str:
    """Canonical activation name for ``name`` (a name such as "tanh" or an n2p2 letter)."""
    try:
        return _ALIASES[name]
    except KeyError:
        raise InputError(f"unknown activation {name!r}; choose from {sorted(_ALIASES)}") from None


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
