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
                   cutoff_type: int, alpha: float, fc: torch.Tensor | None = None) -> torch.Tensor:
    """R(r) = exp(-eta (r - rs)^2) f_c(r; rc) for r [...] and parameters [U] -> [..., U].

    ``fc``: f_c(r) already evaluated (shape of ``r``), valid when all ``rc``
    are equal (the caller knows); saves evaluating it once per parameter block.
    """
    d = r[..., None] - rs
    g = torch.exp(-eta * d * d)
    if fc is not None:
        return g * fc[..., None]
    if bool((rc == rc[0]).all()):
        fc = cutoff_function(r, float(rc[0]), cutoff_type, alpha)[..., None]
    else:
        fc = cutoff_function(r[..., None], rc, cutoff_type, alpha)
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
    if not any(float(z).is_integer() and 1 <= z <= 64 for z in zl):
        return torch.pow(base, zeta[None, :]) * pref
    # mixed: repeated squaring where zeta is an integer, pow (transcendental) only elsewhere
    cols = [_int_pow(base[:, k], int(z)) if float(z).is_integer() and 1 <= z <= 64
            else torch.pow(base[:, k], z) for k, z in enumerate(zl)]
    return torch.stack(cols, dim=1) * pref


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
    """u_x^a u_y^b u_z^c of unit vectors u [..., 3] for all monomials up to n_max -> [..., M].

    Columns in the order of :func:`monomial_table`.  Degree n is built from
    degree n - 1 with three broadcast products of contiguous slices (the
    monomials of degree n - 1 times u_x, those without x times u_y, z^(n-1)
    times u_z), so forward and backward are plain element-wise products and
    concatenations (no gathers or scatters).
    """
    degs = [torch.ones_like(u[..., :1])]
    if n_max >= 1:
        degs.append(u)
    ux, uy, uz = u[..., 0:1], u[..., 1:2], u[..., 2:3]
    for n in range(2, n_max + 1):
        prev = degs[-1]
        degs.append(torch.cat([ux * prev, uy * prev[..., -n:], uz * prev[..., -1:]], dim=-1))
    return torch.cat(degs, dim=-1)


def monomials_top(u: torch.Tensor, n_max: int) -> torch.Tensor:
    """Monomials of unit vectors u [..., 3] of degrees n_max - 1 and n_max only -> [..., T].

    For unit vectors the lower degrees follow from these two
    (u_x^2 + u_y^2 + u_z^2 = 1; see :func:`moment_lift_table`), so per pair only
    T = (n_max + 1)^2 columns are written (25 instead of 35 for n_max = 4), and
    degree n_max is built from the pieces of degree n_max - 1 without
    intermediate copies.  Columns: degree n_max - 1 then n_max, each in
    :func:`monomial_table` order (n_max <= 1: all monomials).
    """
    ones = torch.ones_like(u[..., :1])
    if n_max <= 1:
        return torch.cat([ones, u], dim=-1) if n_max == 1 else ones
    ux, uy, uz = u[..., 0:1], u[..., 1:2], u[..., 2:3]
    d = ones if n_max == 2 else u              # degree k - 1 -> k, up to n_max - 2
    for k in range(2, n_max - 1):
        d = torch.cat([ux * d, uy * d[..., -k:], uz * d[..., -1:]], dim=-1)
    n = n_max - 1                              # degree n = [a, b, c] pieces, degree n + 1 from them
    a, b, c = ux * d, uy * d[..., -n:], uz * d[..., -1:]
    return torch.cat([a, b, c, ux * a, ux * b, ux * c, uy * b, uy * c, uz * c], dim=-1)


@lru_cache(maxsize=None)
def _lift_table(n_max: int) -> np.ndarray:
    exps, deg, _ = monomial_table(n_max)
    top = [tuple(e) for e, d in zip(exps, deg) if d >= n_max - 1]
    row = {e: k for k, e in enumerate(top)}
    lift = np.zeros((len(top), len(exps)))
    for col, (e, d) in enumerate(zip(exps, deg)):
        j = (n_max - d) // 2                   # (x^2 + y^2 + z^2)^j lifts degree d to d + 2j
        for p in range(j + 1):
            for q in range(j - p + 1):
                r = j - p - q
                w = math.factorial(j) // (math.factorial(p) * math.factorial(q) * math.factorial(r))
                lift[row[(e[0] + 2 * p, e[1] + 2 * q, e[2] + 2 * r)], col] += w
    return lift


def moment_lift_table(n_max: int) -> torch.Tensor:
    """L [T, M] with ``monomials(u, n_max) == monomials_top(u, n_max) @ L`` for unit u.

    A monomial of degree d < n_max - 1 equals that monomial times
    (u_x^2 + u_y^2 + u_z^2)^j with d + 2j in {n_max - 1, n_max}, expanded
    multinomially; the same linear map takes top-degree angular moments to all
    moments.  Float64.
    """
    return torch.as_tensor(_lift_table(n_max))


def binomial_lambda_table(lam: torch.Tensor, zeta: torch.Tensor, n_max: int) -> torch.Tensor:
    """C(zeta, n) lambda^n for n = 0..n_max (zero for n > zeta): [K] -> [K, n_max+1]."""
    n = torch.arange(n_max + 1, dtype=lam.dtype, device=lam.device)
    z = zeta[:, None]
    logc = (torch.lgamma(z + 1) - torch.lgamma(n + 1) - torch.lgamma((z - n).clamp_min(0) + 1))
    c = torch.where(n[None, :] <= z, torch.exp(logc).round(), torch.zeros_like(logc))
    return c * lam[:, None] ** n[None, :]
