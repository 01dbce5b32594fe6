"""Building blocks of n2p2 symmetry functions (torch, vectorised).

All symmetry functions used here factorise into per-pair radial factors

    R(r) = exp(-eta (r - rs)^2) f_c(r)

and a per-triplet angular factor ``2^(1-zeta) (1 + lambda cos)^zeta``
(zero where 1 + lambda cos <= 0):

* type 2:  G = sum_j R(r_ij)
* type 9:  G = 2^(1-zeta) sum_{j<k} (1 + lambda cos)^zeta R(r_ij) R(r_ik)
* type 3:  as type 9 times R(r_jk)

For type 9 with integer zeta and |lambda| <= 1 the triplet sum is evaluated
exactly through angular moments (no triplets).  The angular factor is a
polynomial of degree zeta in cos, expanded in Legendre polynomials,
(1 + lambda cos)^zeta = sum_l c_l P_l(cos), and the addition theorem
P_l(u_j . u_k) = sum_m S_lm(u_j) S_lm(u_k) (real solid harmonics S_lm in Racah
normalisation, u_j = r_ij / r_ij) turns the double sum into products of moments:
sum_{j,k} R_j R'_k P_l(u_j . u_k) = sum_m M_lm M'_lm with M_lm = sum_j R_j S_lm(u_j).
Per pair only (zeta_max + 1)^2 harmonics are accumulated (81 for zeta <= 8);
the j = k terms of a same-element sum are R_j^2 (1 + lambda)^zeta and are
subtracted.  The cost is O(pairs x harmonics) instead of O(triplets), and the
Legendre basis keeps the sums well conditioned.  (Expansions of this kind are
used by the SOAP power spectrum and by Gaussian-moment descriptors.)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from mdmlkit.descriptors.cutoff import cutoff_function


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


def solid_harmonics(u: torch.Tensor, l_max: int, table: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Real regular solid harmonics S_lm(u) of unit vectors u [..., 3], l = 0..l_max.

    Racah normalisation (S_l0 = P_l(u_z)), so that the addition theorem reads
    sum_m S_lm(u) S_lm(v) = P_l(u . v).  Returns [..., (l_max + 1)^2], degree l in
    columns l^2 .. l^2 + 2l (m = -l..l).  Built degree by degree with the standard
    recurrences (Helgaker, Jorgensen & Olsen, eqs. 6.4.70-6.4.73) as element-wise
    products of slices, for |u| = 1: no gathers or scatters forward or backward.
    ``table``: :func:`harmonic_recurrence_table` (l_max) in u's dtype and device,
    to avoid rebuilding it on every call.
    """
    if table is None:
        table = harmonic_recurrence_table(l_max).to(dtype=u.dtype, device=u.device)
    x, y, z = u[..., 0:1], u[..., 1:2], u[..., 2:3]
    prev, cur = None, torch.ones_like(x)
    out = [cur]
    k = 0
    for l in range(l_max):                    # degree l -> l + 1
        a = table[k:k + 2 * l + 1]
        mid = cur * z * a                     # m = -l..l
        if l > 0:
            b = table[k + 2 * l + 1:k + 4 * l]
            mid = mid - torch.nn.functional.pad(prev * b, (1, 1))       # S_{l-1,+-l} = 0
        k += 4 * l if l > 0 else 1
        d = math.sqrt((2.0 if l == 0 else 1.0) * (2 * l + 1) / (2 * l + 2))
        top, bottom = cur[..., -1:], cur[..., :1]           # S_ll, S_l,-l
        if l == 0:
            hi, lo = d * x, d * y
        else:
            hi, lo = d * (x * top - y * bottom), d * (y * top + x * bottom)
        prev, cur = cur, torch.cat([lo, mid, hi], dim=-1)
        out.append(cur)
    return torch.cat(out, dim=-1)


def harmonic_recurrence_table(l_max: int) -> torch.Tensor:
    """Coefficients of the z-recurrence of :func:`solid_harmonics`, flat float64.

    For l = 0..l_max - 1: a_m = (2l + 1) / sqrt((l+m+1)(l-m+1)) for m = -l..l, then
    (l > 0) b_m = sqrt((l+m)(l-m) / ((l+m+1)(l-m+1))) for m = -(l-1)..l-1, in
    S_{l+1,m} = a_m z S_lm - b_m S_{l-1,m}.
    """
    parts = []
    for l in range(l_max):
        m = np.arange(-l, l + 1, dtype=float)
        den = np.sqrt((l + m + 1) * (l - m + 1))
        parts.append((2 * l + 1) / den)
        if l > 0:
            parts.append((np.sqrt((l + m) * (l - m)) / den)[1:-1])
    return torch.as_tensor(np.concatenate(parts) if parts else np.zeros(0))


def degree_sum_table(l_max: int) -> torch.Tensor:
    """D [(l_max + 1)^2, l_max + 1] (float64): column l sums the harmonics of degree l."""
    deg = np.repeat(np.arange(l_max + 1), 2 * np.arange(l_max + 1) + 1)
    return torch.as_tensor((deg[:, None] == np.arange(l_max + 1)[None, :]).astype(float))


def legendre_lambda_table(lam: torch.Tensor, zeta: torch.Tensor, l_max: int) -> torch.Tensor:
    """Legendre coefficients of (1 + lambda cos)^zeta for integer zeta <= l_max.

    Returns c [K, l_max + 1] (float64) with (1 + lambda x)^zeta = sum_l c_l P_l(x).
    """
    from numpy.polynomial import legendre

    rows = []
    for lm, zt in zip(lam.tolist(), zeta.tolist()):
        n = int(zt)
        power = [math.comb(n, k) * lm ** k for k in range(n + 1)]
        c = legendre.poly2leg(power)
        rows.append(np.pad(c, (0, l_max + 1 - len(c))))
    return torch.as_tensor(np.array(rows), dtype=torch.float64).reshape(len(rows), l_max + 1)


