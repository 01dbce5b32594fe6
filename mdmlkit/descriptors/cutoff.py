"""Cutoff functions f_c(r) with n2p2's numbering and definitions (torch).

n2p2 (``CutoffFunction``) numbers the types as in ``input.nn``'s ``cutoff_type``
keyword.  With an inner cutoff ``r_ci = alpha * rc`` and
``x = (r - r_ci) / (rc - r_ci)``:

====  ========  ==================================================  ===========
type  name      f_c for r_ci <= r < rc                              uses alpha
====  ========  ==================================================  ===========
0     hard      1                                                   yes
1     cos       (cos(pi x) + 1) / 2                                 yes
2     tanhu     tanh^3(1 - r/rc)                                    no
3     tanh      c tanh^3(1 - r/rc), c such that f_c(0) = 1          no
4     exp       exp(1 - 1/(1 - x^2))                                yes
5     poly1     (2x - 3) x^2 + 1                                    yes
6     poly2     ((15 - 6x) x - 10) x^3 + 1                          yes
7     poly3     (x (x (20x - 70) + 84) - 35) x^4 + 1                yes
8     poly4     (x (x ((315 - 70x) x - 540) + 420) - 126) x^5 + 1   yes
====  ========  ==================================================  ===========

f_c = 1 for r < r_ci (types using alpha) and f_c = 0 for r >= rc (all types).
Distances in Å.  All functions are written so that autograd gives finite,
correct derivatives everywhere (no NaN from untaken ``torch.where`` branches).
"""
from __future__ import annotations

import math

import torch

from mdmlkit.errors import InputError

#: n2p2 cutoff type number -> name.
CUTOFF_TYPES: dict[int, str] = {
    0: "hard", 1: "cos", 2: "tanhu", 3: "tanh", 4: "exp",
    5: "poly1", 6: "poly2", 7: "poly3", 8: "poly4",
}
#: Types whose shape ignores the inner cutoff alpha (n2p2 evaluates them on r/rc).
NO_ALPHA_TYPES = frozenset({2, 3})

_E = math.e
_TANH_PRE = ((_E + 1.0 / _E) / (_E - 1.0 / _E)) ** 3   # 1 / tanh(1)^3


def check_cutoff_params(cutoff_type: int, alpha: float) -> None:
    """Raise :class:`~mdmlkit.errors.InputError` unless ``cutoff_type`` is 0..8 and ``0 <= alpha < 1``."""
    if int(cutoff_type) != cutoff_type or int(cutoff_type) not in CUTOFF_TYPES:
        raise InputError(f"unknown cutoff type {cutoff_type!r}; n2p2 types are "
                         + ", ".join(f"{k} ({v})" for k, v in CUTOFF_TYPES.items()))
    if not 0.0 <= alpha < 1.0:
        raise InputError(f"inner cutoff parameter alpha={alpha} must satisfy 0 <= alpha < 1")


def cutoff_function(r: torch.Tensor, rc: float | torch.Tensor, cutoff_type: int = 6,
                    alpha: float = 0.0) -> torch.Tensor:
    """Evaluate the n2p2 cutoff function f_c(r).

    Parameters
    ----------
    r : Tensor
        Distances, Å (any shape).
    rc : float or Tensor
        Cutoff radius, Å (broadcast against ``r``).
    cutoff_type : int
        n2p2 cutoff type number (see module docstring).
    alpha : float
        Inner cutoff as a fraction of ``rc`` (``r_ci = alpha * rc``).

    Returns
    -------
    Tensor
        f_c(r), dimensionless, broadcast shape of ``r`` and ``rc``.
    """
    check_cutoff_params(cutoff_type, alpha)
    rc = torch.as_tensor(rc, dtype=r.dtype, device=r.device)
    inside = r < rc
    if cutoff_type == 0:
        return inside.to(r.dtype)
    if cutoff_type in NO_ALPHA_TYPES:
        # clamp: tanh(1 - r/rc)^3 has value and slope 0 at rc, so the clamped
        # branch is exact and smooth.
        t = torch.tanh(1.0 - torch.minimum(r, rc) / rc)
        f = t * t * t
        return f * _TANH_PRE if cutoff_type == 3 else f
    rci = alpha * rc
    # Clamping x to [0, 1] reproduces f = 1 below r_ci and f = 0 beyond rc
    # (values and zero slopes), since every shape below has f(0) = 1,
    # f(1) = 0 and f'(0) = f'(1) = 0.
    x = ((r - rci) / (rc - rci) if alpha else r / rc).clamp(0.0, 1.0)
    if cutoff_type == 1:
        return 0.5 * (torch.cos(math.pi * x) + 1.0)
    if cutoff_type == 4:
        ok = x < 1.0
        xs = torch.where(ok, x, torch.zeros_like(x))
        return torch.where(ok, torch.exp(1.0 - 1.0 / (1.0 - xs * xs)), torch.zeros_like(x))
    if cutoff_type == 5:
        return (2.0 * x - 3.0) * x * x + 1.0
    if cutoff_type == 6:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
    x2 = x * x
    if cutoff_type == 7:
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0
    return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0
