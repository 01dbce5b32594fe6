"""Building blocks of n2p2 symmetry functions (torch, vectorised).

All symmetry functions used here factorise into per-pair radial factors

    R(r) = exp(-eta (r - rs)^2) f_c(r)

and a per-triplet angular factor ``2^(1-zeta) (1 + lambda cos)^zeta``
(zero where 1 + lambda cos <= 0):

* type 2:  G = sum_j R(r_ij)
* type 9:  G = 2^(1-zeta) sum_{j<k} (1 + lambda cos)^zeta R(r_ij) R(r_ik)
* type 3:  as type 9 times R(r_jk)

For type 9 with integer zeta and |lambda| <= 1 the triplet sum is evaluated
exactly through angular moments (no triplets): with u_j = r_ij / r_ij,
(u_j . u_k)^n = sum_{a+b+c=n} n!/(a! b! c!) (u_jx u_kx)^a (u_jy u_ky)^b (u_jz u_kz)^c,
so sum_{j,k} R_j R_k (u_j . u_k)^n = sum_abc w_abc m_abc m'_abc with the
moments m_abc = sum_j R_j u_jx^a u_jy^b u_jz^c, and
(1 + lambda cos)^zeta = sum_n C(zeta, n) lambda^n cos^n.  The j = k terms of a
same-element sum are R_j^2 (1 + lambda)^zeta and are subtracted.  The cost is
O(pairs x moments) instead of O(triplets).  (Moment expansions of this kind are
used e.g. by Gaussian-moment and moment-tensor descriptors.)
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .cutoff import cutoff_function


def radial_factors(r: torch.Tensor, eta: torch.Tensor, rs: torch.Tensor, rc: torch.Tensor,
                   cutoff_type: int, alpha: float) -> torch.Tensor:
    """R(r) = exp(-eta (r - rs)^2) f_c(r; rc) for r [P] and parameters [U] -> [P, U]."""
    d = r[:, None] - rs[None, :]
    g = torch.exp(-eta[None, :] * d * d)
    if bool((rc == rc[0]).all()):
        fc = cutoff_function(r, float(rc[0]), cutoff_type, alpha)[:, None]
    else:
        fc = cutoff_function(r[:, None], rc[None, :], cutoff_type, alpha)
    return g * fc


def _int_pow(b: torch.Tensor, n: int) -> torch.Tensor:
    """b**n for integer n >= 1 by repeated squaring (finite gradients at b = 0)."""
    out = None
    while n:
        if n & 1:
            out = b if out is None else out * b
        n >>= 1
        if n:
            b = b * b
    return out


def angular_factors(cos: torch.Tensor, lam: torch.Tensor, zeta: torch.Tensor) -> torch.Tensor:
    """2^(1-zeta) (1 + lambda cos)^zeta, zero where 1 + lambda cos <= 0: [T] x [A] -> [T, A]."""
    base = (1.0 + lam[None, :] * cos[:, None]).clamp_min(0.0)
    pref = torch.exp2(1.0 - zeta)[None, :]
    zl = zeta.tolist()
    if all(float(z).is_integer() and 1 <= z <= 64 for z in zl):
        cols = [_int_pow(base[:, k], int(z)) for k, z in enumerate(zl)]
        return torch.stack(cols, dim=1) * pref
    return torch.pow(base, zeta[None, :]) * pref


@lru_cache(maxsize=None)
def monomial_table(n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponents (a, b, c) of all monomials of degree 0..n_max, their degree and
    multinomial weight n!/(a! b! c!).  Returns (exps [M, 3], degree [M], weight [M])."""
    exps, deg, w = [], [], []
    for n in range(n_max + 1):
        for a in range(n, -1, -1):
            for b in range(n - a, -1, -1):
                c = n - a - b
                exps.append((a, b, c))
                deg.append(n)
                w.append(math.factorial(n) // (math.factorial(a) * math.factorial(b)
                                               * math.factorial(c)))
    return np.array(exps), np.array(deg), np.array(w, dtype=float)


def monomials(u: torch.Tensor, n_max: int) -> torch.Tensor:
    """u_x^a u_y^b u_z^c of unit vectors u [P, 3] for all monomials up to n_max -> [P, M].

    Powers are picked with one-hot matrix products rather than advanced
    indexing: same result, but the backward pass is a dense matmul instead of
    a slow scatter.
    """
    exps, _, _ = monomial_table(n_max)
    pw = [torch.ones_like(u)]
    for _ in range(n_max):
        pw.append(pw[-1] * u)
    pw = torch.stack(pw, dim=2)                                   # [P, 3, n_max+1]
    out = None
    for k in range(3):
        onehot = torch.zeros(n_max + 1, len(exps), dtype=u.dtype, device=u.device)
        onehot[torch.as_tensor(exps[:, k]), torch.arange(len(exps))] = 1.0
        x = pw[:, k, :] @ onehot
        out = x if out is None else out * x
    return out


def binomial_lambda_table(lam: torch.Tensor, zeta: torch.Tensor, n_max: int) -> torch.Tensor:
    """C(zeta, n) lambda^n for n = 0..n_max (zero for n > zeta): [K] -> [K, n_max+1]."""
    n = torch.arange(n_max + 1, dtype=lam.dtype, device=lam.device)
    z = zeta[:, None]
    logc = (torch.lgamma(z + 1) - torch.lgamma(n + 1) - torch.lgamma((z - n).clamp_min(0) + 1))
    c = torch.where(n[None, :] <= z, torch.exp(logc).round(), torch.zeros_like(logc))
    return c * lam[:, None] ** n[None, :]
