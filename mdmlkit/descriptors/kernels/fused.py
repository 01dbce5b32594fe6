"""Fused CPU kernels (numba) for HDNNP energies, forces and virials in MD.

Every type-2 and moment type-9 symmetry function (:mod:`mdmlkit.descriptors.terms`)
of a model is a short linear combination of per-atom *pair sums*: sums of the
model's distinct radial factors ``R_d(r_ij)`` over the neighbours of each
element, and the power spectrum ``P_gul = sum_m M_ulm M'_ulm`` of the harmonic
moments ``M_ulm = sum_j R_u(r_ij) S_lm(u_ij)`` (plus their diagonal
``sum_j R_u(r_ij)^2``).  Almost all the arithmetic of an MD step is in these
sums and in their gradients: loops over the pairs of each atom that keep their
data in cache.  :func:`radial_sums` and :func:`descriptor_values` give the
symmetry functions G of every atom, :class:`~.networks.NetworkTables` runs the
atomic networks and their gradient dE/dG (numpy matrix products, no torch graph),
and :func:`descriptor_gradients` and :func:`radial_gradients` turn dE/dG into dE/d(pair vector) for every pair (forces follow by one scatter,
the virial by one sum), recomputing radial factors and harmonics instead of
storing per-pair derivative tables.

* The radial factors are tabulated once per model as piecewise quintic
  polynomials (:func:`tabulate_radial`, error below 1e-8 of values and of
  derivatives x 1 Å), so a pair costs no exponentials; forces are the exact
  gradient of the tabulated energy.
* Radial sums visit each unordered pair once (both atoms get its terms).
* The harmonics run over all the neighbours within the moment cutoff at once
  (vectorised recurrences, forward and reverse mode; the neighbours ordered by element),
  and the moments over blocks of four radial factors and two harmonics per pass
  (eight products per loaded neighbour: the loops are bound by loads, not arithmetic).
  Loops that vectorise run over array views from index 0: numba's negative-index
  wraparound keeps LLVM from vectorising a loop with an offset index.
* Angular functions that have no moment form (type 3, n2p2's narrow angular
  functions with their r_jk factor, and type 9 with non-integer zeta) run over
  explicit triplets in one pass per atom (:func:`triplet_pass`): all triplets
  (j < k within the cutoff, r_jk from the two pair vectors, so no second neighbour
  search) of one centre are compacted into flat arrays and each stage (R(r_jk) from
  the same quintic tables, the angular factors with derivatives, the sums per
  function) is one loop over them; the atom's network then runs inside the kernel
  (:func:`~.networks.atom_network`), and its dE/dG turns the same arrays into dE/dcos,
  dE/dr_ij, dE/dr_ik, dE/dr_jk, so the triplets are built once per call.  Their
  dE/d(pair vector) joins that of the other functions, so forces and the virial
  need nothing more.

The kernels are compiled by numba (a dependency of umap-learn) on first use
(once per dtype; cached on disk afterwards), run in parallel
over atoms with ``torch.get_num_threads()`` numba threads (or ``n_threads``; the
torch setting is never changed, :func:`numba_threads`), and take float32 or
float64 arrays.  Pairs are those of a full, sorted list (``AtomsBatch``:
``pair_i`` sorted, vectors ``positions[j] - positions[i] + shift``); pairs beyond
a function's cutoff contribute exactly zero, so a Verlet list with a skin is used
as it is.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from mdmlkit.descriptors.batch import MIN_DISTANCE
from mdmlkit.descriptors.kernels.networks import NetworkTables, atom_network
from mdmlkit.errors import InputError

__all__ = ["FusedPlan", "FusedEnergy", "numba_threads", "tabulate_radial"]

try:                                     # numba comes with umap-learn, a core dependency
    import numba
    from numba import njit, prange
except ImportError:                      # pragma: no cover - exercised only without numba
    numba = None


def _numba_required():
    if numba is None:
        raise ImportError("the fused CPU kernels need numba (installed with umap-learn); "
                          "use HDNNPCalculator(compile='torch') instead")


def numba_threads(n_threads: int | None = None) -> int:
    """Set and return the numba threads of the next kernel call, leaving torch's setting alone.

    ``n_threads`` (default ``torch.get_num_threads()`` now) is capped by numba's pool
    size (``NUMBA_NUM_THREADS``).  Starting numba's pool (on its first use in the
    process) calls ``omp_set_num_threads(pool size)`` when numba's threading layer is
    OpenMP, and torch's OpenMP backend reads the same libgomp setting, so
    ``torch.get_num_threads()`` would silently grow to the pool size; the torch
    setting seen on entry is restored here.
    """
    _numba_required()
    before = torch.get_num_threads()
    want = before if n_threads is None else int(n_threads)
    if want < 1:
        raise InputError(f"n_threads={n_threads!r}: need at least 1 thread")
    threads = max(1, min(want, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)       # launches the pool on first use
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
    return threads


if numba is not None:
    @njit(inline="always", cache=True)
    def _table_eval(coef, off, K, n_int, invh, r, val, dval, o, values, derivatives):
        """The K tabulated functions of a table at r into val[o:o+K] and/or their r-derivatives
        (1/Å) into dval[o:o+K]; coefficients [n_int, K, 6], quintic in t = r/h - interval.
        (Views and unsigned offsets: numba's negative-index wraparound would add a compare
        and a select to every coefficient load.)"""
        x = r * invh
        m = min(np.uint64(x), np.uint64(n_int - 1))
        t = x - m
        cf = coef[off + np.int64(m) * 6 * K:]
        vv = val[o:o + K]
        dv = dval[o:o + K]
        for k in range(K):
            q = np.uint64(6) * np.uint64(k)
            c1 = cf[q + np.uint64(1)]
            c2 = cf[q + np.uint64(2)]
            c3 = cf[q + np.uint64(3)]
            c4 = cf[q + np.uint64(4)]
            c5 = cf[q + np.uint64(5)]
            if values:
                vv[k] = cf[q] + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * c5))))
            if derivatives:
                dv[k] = invh * (c1 + t * (2.0 * c2 + t * (3.0 * c3 + t * (4.0 * c4 + t * 5.0 * c5))))

    @njit(inline="always", cache=True)
    def _harmonics_soa(ux, uy, uz, ns, l_max, tab, dfac, Y):
        """Solid harmonics Y[h, :ns] of ns unit vectors (the recurrence of
        :func:`mdmlkit.descriptors.terms.solid_harmonics`, vectorised over vectors)."""
        for n in range(ns):
            Y[0, n] = 1.0
        k = 0
        for l in range(l_max):
            o_prev = (l - 1) * (l - 1)
            o_cur = l * l
            o_new = (l + 1) * (l + 1)
            for t in range(2 * l + 1):
                a = tab[k + t]
                for n in range(ns):
                    Y[o_new + 1 + t, n] = a * uz[n] * Y[o_cur + t, n]
            if l > 0:
                for t in range(2 * l - 1):
                    b = tab[k + 2 * l + 1 + t]
                    for n in range(ns):
                        Y[o_new + 2 + t, n] -= b * Y[o_prev + t, n]
                k += 4 * l
            else:
                k += 1
            d = dfac[l]
            tp = o_cur + 2 * l
            if l == 0:
                for n in range(ns):
                    Y[1, n] = d * uy[n]
                    Y[3, n] = d * ux[n]
            else:
                for n in range(ns):
                    Y[o_new, n] = d * (uy[n] * Y[tp, n] + ux[n] * Y[o_cur, n])
                    Y[o_new + 2 * l + 2, n] = d * (ux[n] * Y[tp, n] - uy[n] * Y[o_cur, n])

    @njit(inline="always", cache=True)
    def _harmonics_soa_backward(ux, uy, uz, ns, l_max, tab, dfac, Y, gY, gx, gy, gz):
        """Reverse mode of :func:`_harmonics_soa`: adds dE/du (the x, y, z polynomial
        derivatives) to gx, gy, gz [ns] given dE/dY in gY [H, ns] (gY is consumed)."""
        k_of = 0
        for l in range(l_max):        # offset of degree l's coefficients, for the way down
            k_of += 4 * l if l > 0 else 1
        for l in range(l_max - 1, -1, -1):
            k_of -= 4 * l if l > 0 else 1
            k = k_of
            o_prev = (l - 1) * (l - 1)
            o_cur = l * l
            o_new = (l + 1) * (l + 1)
            d = dfac[l]
            tp = o_cur + 2 * l
            lo = o_new
            hi = o_new + 2 * l + 2
            if l == 0:
                for n in range(ns):
                    gx[n] += d * gY[3, n]
                    gy[n] += d * gY[1, n]
            for n in range(ns if l > 0 else 0):
                gl = gY[lo, n]
                gh = gY[hi, n]
                T = Y[tp, n]
                B = Y[o_cur, n]
                gx[n] += d * (gl * B + gh * T)
                gy[n] += d * (gl * T - gh * B)
                gY[tp, n] += d * (uy[n] * gl + ux[n] * gh)
                gY[o_cur, n] += d * (ux[n] * gl - uy[n] * gh)
            if l > 0:
                for t in range(2 * l - 1):
                    b = tab[k + 2 * l + 1 + t]
                    for n in range(ns):
                        gY[o_prev + t, n] -= b * gY[o_new + 2 + t, n]
            for t in range(2 * l + 1):
                a = tab[k + t]
                for n in range(ns):
                    g = gY[o_new + 1 + t, n] * a
                    gz[n] += g * Y[o_cur + t, n]
                    gY[o_cur + t, n] += g * uz[n]

    @njit(parallel=True, fastmath=True, cache=True)
    def radial_sums(pos, start, pair_j, shifts, species, rgrp_rc, rgrp_n, rgrp_invh, rgrp_K,
                    rgrp_off, rgrp_col, coef, n_chunks, acc, closest):
        """acc[ch, i, e, d] (summed over ch): sum of the radial factor R_d(r_ij) over the
        element-e neighbours j of atom i.  Each unordered pair is evaluated once (by the
        atom of lower index; a pair of an atom with its own image by that atom, from both
        list entries) and counted for both atoms; chunk ch of the atoms adds into acc[ch],
        so that threads never write the same row.  acc is zeroed here.  closest[ch] gets
        (squared distance, pair index) of the closest pair the chunk saw (all pairs)."""
        n_atoms = pos.shape[0]
        D = acc.shape[3]
        n_chunks = acc.shape[0]
        rmax = 0.0
        for g in range(rgrp_K.shape[0]):
            rmax = max(rmax, rgrp_rc[g])
        for ch in prange(n_chunks):
            val = np.zeros(D, dtype=pos.dtype)
            acc[ch, :, :, :] = 0.0
            r2_min = np.inf
            p_min = -1
            for i in range(ch * n_atoms // n_chunks, (ch + 1) * n_atoms // n_chunks):
                ei = species[i]
                for p in range(start[i], start[i + 1]):
                    j = pair_j[p]
                    if j < i:
                        continue
                    vx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
                    vy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
                    vz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
                    r2 = vx * vx + vy * vy + vz * vz
                    if r2 < r2_min:
                        r2_min = r2
                        p_min = p
                    if r2 >= rmax * rmax:
                        continue
                    r = math.sqrt(r2)
                    ej = species[j]
                    for g in range(rgrp_K.shape[0]):
                        if r < rgrp_rc[g]:
                            o = rgrp_col[g]
                            K = rgrp_K[g]
                            _table_eval(coef, rgrp_off[g], K, rgrp_n[g], rgrp_invh[g], r, val, val, o,
                                        True, False)
                            vg = val[o:o + K]
                            ai = acc[ch, i, ej, o:o + K]
                            for d in range(K):
                                ai[d] += vg[d]
                            if j != i:
                                aj = acc[ch, j, ei, o:o + K]
                                for d in range(K):
                                    aj[d] += vg[d]
            closest[ch, 0] = r2_min
            closest[ch, 1] = p_min

    @njit(inline="always", cache=True)
    def _gather_moment_pairs(pos, start, pair_j, shifts, species, i, c, mom_slot, rcm,
                             mgrp_n, mgrp_invh, mgrp_off, nu, coef, derivatives,
                             slot_off, slot_n, fill, tp, ts, sx, sy, sz, sr, sp, R, dR, val, dval):
        """Unit vectors, distances, pair indices and radial factors R_u [u, n] (and dR_u/dr) of
        the neighbours of atom i within the moment cutoff, in one array ordered by moment
        slot: slot s holds entries ``slot_off[s]`` to ``slot_off[s] + slot_n[s]`` (so the
        harmonics run over all of them at once).  Returns the number of entries."""
        slot_n[:] = 0
        m = 0
        for p in range(start[i], start[i + 1]):
            j = pair_j[p]
            s = mom_slot[c, species[j]]
            if s < 0:
                continue
            vx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
            vy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
            vz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
            if vx * vx + vy * vy + vz * vz >= rcm * rcm:
                continue
            tp[m] = p
            ts[m] = s
            slot_n[s] += 1
            m += 1
        o = 0
        for s in range(slot_n.shape[0]):
            slot_off[s] = o
            fill[s] = o
            o += slot_n[s]
        for k in range(m):
            p = tp[k]
            j = pair_j[p]
            n = fill[ts[k]]
            fill[ts[k]] = n + 1
            vx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
            vy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
            vz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
            r = math.sqrt(vx * vx + vy * vy + vz * vz)
            sx[n] = vx / r
            sy[n] = vy / r
            sz[n] = vz / r
            sr[n] = r
            sp[n] = p
            _table_eval(coef, mgrp_off[c], nu, mgrp_n[c], mgrp_invh[c], r, val, dval, 0, True,
                        derivatives)
            for u in range(nu):
                R[u, n] = val[u]
            if derivatives:
                for u in range(nu):
                    dR[u, n] = dval[u]
        return m

    @njit(inline="always", cache=True)
    def _moment_scratch(pos, start, n_el, D, spec_g1, mom):
        """Sizes (E, U, H, L), the offsets of the power spectrum and of the diagonal in an
        atom's vector x (see :func:`descriptor_values`) and the most pairs of one atom."""
        E, U, H = mom.shape[1], mom.shape[2], mom.shape[3]
        L = int(round(math.sqrt(H)))
        o_spec = n_el * D
        o_diag = o_spec + spec_g1.shape[1] * U * L
        nbmax = 1
        for i in range(pos.shape[0]):
            nbmax = max(nbmax, start[i + 1] - start[i])
        return E, U, H, L, o_spec, o_diag, nbmax

    @njit(inline="always", cache=True)
    def _gather_buffers(pos, E, U, nbmax, n_x):
        """Per-chunk buffers: an atom's vector x [n_x], radial values and derivatives [U], and
        for :func:`_gather_moment_pairs` slot offsets, counts and cursors [E], pair indices
        and slots [nbmax], unit vector components, distances, pair indices [nbmax] and R_u
        [U + 1, nbmax] (row U stays zero: the padding of :func:`_block_moments`)."""
        return (np.empty(n_x, dtype=pos.dtype), np.zeros(max(U, 1), dtype=pos.dtype),
                np.zeros(max(U, 1), dtype=pos.dtype),
                np.empty(E, dtype=np.int64), np.empty(E, dtype=np.int64), np.empty(E, dtype=np.int64),
                np.empty(nbmax, dtype=np.int64), np.empty(nbmax, dtype=np.int64),
                np.empty(nbmax, dtype=pos.dtype), np.empty(nbmax, dtype=pos.dtype),
                np.empty(nbmax, dtype=pos.dtype), np.empty(nbmax, dtype=pos.dtype),
                np.empty(nbmax, dtype=np.int64), np.zeros((U + 1, nbmax), dtype=pos.dtype))

    @njit(inline="always", cache=True)
    def _block_moments(ub, Hb, U, o, ns, Rs, Y, mom_s):
        """Moments ``mom_s[u, h] = sum_n Rs[u, n] Y[h, n]`` (h < Hb, n from o to o + ns) of the
        (up to) four radial columns ``ub`` of one block at once, two harmonics h per pass:
        eight sums per loaded pair instead of one.  Column U pads a block (Rs[U] is zero;
        nothing is written for it)."""
        u0, u1, u2, u3 = ub[0], ub[1], ub[2], ub[3]
        e = o + ns                  # (slices: loops from 0 vectorise, offset indices do not)
        R0, R1, R2, R3 = Rs[u0, o:e], Rs[u1, o:e], Rs[u2, o:e], Rs[u3, o:e]
        for h in range(0, Hb - 1, 2):
            Yh = Y[h, o:e]
            Yk = Y[h + 1, o:e]
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = 0.0
            for n in range(ns):
                y = Yh[n]
                z = Yk[n]
                r0 = R0[n]
                r1 = R1[n]
                r2 = R2[n]
                r3 = R3[n]
                a0 += r0 * y
                a1 += r1 * y
                a2 += r2 * y
                a3 += r3 * y
                b0 += r0 * z
                b1 += r1 * z
                b2 += r2 * z
                b3 += r3 * z
            _put_pair(mom_s, U, u0, h, a0, b0)
            _put_pair(mom_s, U, u1, h, a1, b1)
            _put_pair(mom_s, U, u2, h, a2, b2)
            _put_pair(mom_s, U, u3, h, a3, b3)
        if Hb % 2:
            h = Hb - 1
            Yh = Y[h, o:e]
            a0 = a1 = a2 = a3 = 0.0
            for n in range(ns):
                y = Yh[n]
                a0 += R0[n] * y
                a1 += R1[n] * y
                a2 += R2[n] * y
                a3 += R3[n] * y
            for u, a in ((u0, a0), (u1, a1), (u2, a2), (u3, a3)):
                if u < U:
                    mom_s[u, h] = a

    @njit(inline="always", cache=True)
    def _put_pair(mom_s, U, u, h, a, b):
        if u < U:
            mom_s[u, h] = a
            mom_s[u, h + 1] = b

    @njit(inline="always", cache=True)
    def _block_moments_backward(ub, Hb, o, ns, Rs, dRs, Y, g_mom_s, gY, gR4, gr):
        """Reverse mode of :func:`_block_moments` from dE/dM in ``g_mom_s`` [U + 1, H] (row U
        zero): adds dE/dY to gY [H, n] and dE/dR_u dR_u/dr to gr [n] (n from o to o + ns);
        gR4 [4, nbmax] is scratch."""
        u0, u1, u2, u3 = ub[0], ub[1], ub[2], ub[3]
        e = o + ns                  # (slices: loops from 0 vectorise, offset indices do not)
        R0, R1, R2, R3 = Rs[u0, o:e], Rs[u1, o:e], Rs[u2, o:e], Rs[u3, o:e]
        g0, g1, g2, g3 = gR4[0], gR4[1], gR4[2], gR4[3]
        for n in range(ns):
            g0[n] = 0.0
            g1[n] = 0.0
            g2[n] = 0.0
            g3[n] = 0.0
        for h in range(0, Hb - 1, 2):
            c0, c1, c2, c3 = g_mom_s[u0, h], g_mom_s[u1, h], g_mom_s[u2, h], g_mom_s[u3, h]
            d0, d1, d2, d3 = (g_mom_s[u0, h + 1], g_mom_s[u1, h + 1], g_mom_s[u2, h + 1],
                              g_mom_s[u3, h + 1])
            Yh = Y[h, o:e]
            Yk = Y[h + 1, o:e]
            gYh = gY[h, o:e]
            gYk = gY[h + 1, o:e]
            for n in range(ns):
                y = Yh[n]
                z = Yk[n]
                r0 = R0[n]
                r1 = R1[n]
                r2 = R2[n]
                r3 = R3[n]
                gYh[n] += c0 * r0 + c1 * r1 + c2 * r2 + c3 * r3
                gYk[n] += d0 * r0 + d1 * r1 + d2 * r2 + d3 * r3
                g0[n] += c0 * y + d0 * z
                g1[n] += c1 * y + d1 * z
                g2[n] += c2 * y + d2 * z
                g3[n] += c3 * y + d3 * z
        if Hb % 2:
            h = Hb - 1
            c0, c1, c2, c3 = g_mom_s[u0, h], g_mom_s[u1, h], g_mom_s[u2, h], g_mom_s[u3, h]
            Yh = Y[h, o:e]
            gYh = gY[h, o:e]
            for n in range(ns):
                y = Yh[n]
                gYh[n] += c0 * R0[n] + c1 * R1[n] + c2 * R2[n] + c3 * R3[n]
                g0[n] += c0 * y
                g1[n] += c1 * y
                g2[n] += c2 * y
                g3[n] += c3 * y
        dR0, dR1, dR2, dR3 = dRs[u0, o:e], dRs[u1, o:e], dRs[u2, o:e], dRs[u3, o:e]
        grs = gr[o:e]
        for n in range(ns):
            grs[n] += g0[n] * dR0[n] + g1[n] * dR1[n] + g2[n] * dR2[n] + g3[n] * dR3[n]

    @njit(parallel=True, fastmath=True, cache=True)
    def descriptor_values(pos, start, pair_j, shifts, species, acc,
                          mom_slot, mom_nu, mom_rc, mgrp_n, mgrp_invh, mgrp_off, mom_lmax,
                          mom_ls, mom_nb, mom_ub, mom_hb, spec_n, spec_g1, spec_g2, g_ptr,
                          g_src, g_w, coef, tab, dfac, n_chunks, G, mom):
        """Symmetry functions G [N, F] of every atom from the radial sums ``acc`` of
        :func:`radial_sums` and the harmonic moments (kept in ``mom`` [N, E, U, H] for the
        gradients).

        Per atom, the vector x = [radial sums (n_el x D) | power spectrum P[g, u, l]
        (G x U x L) | diagonal sum_j R_u^2 (E x U)] is mapped to G by the sparse rows
        ``G[i, f] = sum_t g_w[t] x[g_src[t]]``, t in ``g_ptr[c, f]:g_ptr[c, f + 1]``.
        Moments of centre element c: neighbours of element e in slot ``mom_slot[c, e]``
        (-1: none) within ``mom_rc[c]``, radial factors from the table ``mgrp_*[c]``
        (``mom_nu[c]`` columns), degrees <= ``mom_lmax[c]``; P pairs the slots
        (``spec_g1[c, g]``, ``spec_g2[c, g]``) for g < ``spec_n[c]``.  Moments of slot s
        and radial column u run to the highest degree any function uses (``FusedPlan.mom_lsu``),
        rounded up to the highest of its block of four columns
        (``mom_ub[c, s, b]``, to ``mom_hb[c, s, b]`` harmonics; ``mom_nb[c, s]`` blocks); the
        harmonics of element c's neighbours run to degree ``mom_ls[c]``.  Moments beyond the
        degrees a function uses enter no G.
        """
        n_atoms, n_el, D = pos.shape[0], acc.shape[2], acc.shape[3]
        E, U, H, L, o_spec, o_diag, nbmax = _moment_scratch(pos, start, n_el, D, spec_g1, mom)
        n_chunks = max(1, min(n_atoms, n_chunks))
        for ch in prange(n_chunks):
            x, val, _, slot_off, slot_n, fill, tp, ts, sx, sy, sz, sr, sp, R = _gather_buffers(
                pos, E, U, nbmax, o_diag + E * U)
            Y = np.empty((H, nbmax), dtype=pos.dtype)
            for i in range(ch * n_atoms // n_chunks, (ch + 1) * n_atoms // n_chunks):
                c = species[i]
                x[:] = 0.0
                for e in range(n_el):
                    for d in range(D):
                        a = 0.0
                        for k in range(acc.shape[0]):
                            a += acc[k, i, e, d]
                        x[e * D + d] = a
                mom[i, :, :, :] = 0.0
                nu = mom_nu[c]
                if nu > 0:
                    lmax = mom_lmax[c]
                    nt = _gather_moment_pairs(pos, start, pair_j, shifts, species, i, c, mom_slot,
                                              mom_rc[c], mgrp_n, mgrp_invh, mgrp_off, nu, coef, False,
                                              slot_off, slot_n, fill, tp, ts, sx, sy, sz, sr, sp, R, R,
                                              val, val)
                    if mom_ls[c] >= 0:
                        _harmonics_soa(sx, sy, sz, nt, mom_ls[c], tab, dfac, Y)
                    for s in range(E):
                        ns = slot_n[s]
                        o = slot_off[s]
                        for u in range(nu):
                            Ru = R[u, o:o + ns]
                            a = 0.0
                            for n in range(ns):
                                a += Ru[n] * Ru[n]
                            x[o_diag + s * U + u] = a
                        if ns > 0:
                            for b in range(mom_nb[c, s]):
                                _block_moments(mom_ub[c, s, b], mom_hb[c, s, b], U, o, ns, R, Y, mom[i, s])
                    for g in range(spec_n[c]):
                        ga = spec_g1[c, g]
                        gb = spec_g2[c, g]
                        for u in range(nu):
                            Ma = mom[i, ga, u]
                            Mb = mom[i, gb, u]
                            for l in range(lmax + 1):
                                Mal = Ma[l * l:(l + 1) * (l + 1)]
                                Mbl = Mb[l * l:(l + 1) * (l + 1)]
                                a = 0.0
                                for h in range(2 * l + 1):
                                    a += Mal[h] * Mbl[h]
                                x[o_spec + (g * U + u) * L + l] = a
                G[i, :] = 0.0
                for f in range(g_ptr.shape[1] - 1):
                    a = 0.0
                    for t in range(g_ptr[c, f], g_ptr[c, f + 1]):
                        a += g_w[t] * x[g_src[t]]
                    G[i, f] = a

    @njit(parallel=True, fastmath=True, cache=True)
    def descriptor_gradients(pos, start, pair_j, shifts, species, gG,
                             mom_slot, mom_nu, mom_rc, mgrp_n, mgrp_invh, mgrp_off, mom_lmax,
                             mom_ls, mom_nb, mom_ub, mom_hb, spec_n, spec_g1, spec_g2, g_ptr,
                             g_src, g_w, coef, tab, dfac, n_chunks, mom, zero_pairs, g_acc, g_pair):
        """From dE/dG [N, F]: dE/d(radial sums) ``g_acc`` [N, n_el, D] (for
        :func:`radial_gradients`) and the moment part of dE/d(pair vector) ``g_pair`` [P, 3]
        (added; with ``zero_pairs`` set first to zero, so pairs outside every moment cutoff
        get zero)."""
        n_atoms, n_el, D = pos.shape[0], g_acc.shape[1], g_acc.shape[2]
        E, U, H, L, o_spec, o_diag, nbmax = _moment_scratch(pos, start, n_el, D, spec_g1, mom)
        n_chunks = max(1, min(n_atoms, n_chunks))
        for ch in prange(n_chunks):
            gx_all, val, dval, slot_off, slot_n, fill, tp, ts, sx, sy, sz, sr, sp, R = _gather_buffers(
                pos, E, U, nbmax, o_diag + E * U)
            dR = np.zeros((U + 1, nbmax), dtype=pos.dtype)
            Y = np.empty((H, nbmax), dtype=pos.dtype)
            gY = np.empty((H, nbmax), dtype=pos.dtype)
            gx = np.empty(nbmax, dtype=pos.dtype)
            gy = np.empty(nbmax, dtype=pos.dtype)
            gz = np.empty(nbmax, dtype=pos.dtype)
            gr = np.empty(nbmax, dtype=pos.dtype)
            gR4 = np.empty((4, nbmax), dtype=pos.dtype)
            g_mom = np.zeros((E, U + 1, H), dtype=pos.dtype)
            for i in range(ch * n_atoms // n_chunks, (ch + 1) * n_atoms // n_chunks):
                c = species[i]
                if zero_pairs:
                    for p in range(start[i], start[i + 1]):
                        g_pair[p, 0] = 0.0
                        g_pair[p, 1] = 0.0
                        g_pair[p, 2] = 0.0
                gx_all[:] = 0.0
                for f in range(g_ptr.shape[1] - 1):
                    q = gG[i, f]
                    for t in range(g_ptr[c, f], g_ptr[c, f + 1]):
                        gx_all[g_src[t]] += g_w[t] * q
                for e in range(n_el):
                    for d in range(D):
                        g_acc[i, e, d] = gx_all[e * D + d]
                nu = mom_nu[c]
                if nu == 0:
                    continue
                lmax = mom_lmax[c]
                g_mom[:, :U, :] = 0.0                   # (row U: the zero row of padded blocks)
                for g in range(spec_n[c]):
                    ga = spec_g1[c, g]
                    gb = spec_g2[c, g]
                    for u in range(nu):
                        for l in range(lmax + 1):
                            q = gx_all[o_spec + (g * U + u) * L + l]
                            for h in range(l * l, (l + 1) * (l + 1)):
                                g_mom[ga, u, h] += q * mom[i, gb, u, h]
                                g_mom[gb, u, h] += q * mom[i, ga, u, h]
                nt = _gather_moment_pairs(pos, start, pair_j, shifts, species, i, c, mom_slot,
                                          mom_rc[c], mgrp_n, mgrp_invh, mgrp_off, nu, coef, True,
                                          slot_off, slot_n, fill, tp, ts, sx, sy, sz, sr, sp, R, dR,
                                          val, dval)
                ls = mom_ls[c]
                if ls >= 0:
                    _harmonics_soa(sx, sy, sz, nt, ls, tab, dfac, Y)
                for h in range((ls + 1) * (ls + 1)):
                    gYh = gY[h]
                    for n in range(nt):
                        gYh[n] = 0.0
                for n in range(nt):
                    gr[n] = 0.0
                    gx[n] = 0.0
                    gy[n] = 0.0
                    gz[n] = 0.0
                for s in range(E):
                    ns = slot_n[s]
                    if ns == 0:
                        continue
                    o = slot_off[s]
                    grs = gr[o:o + ns]
                    for u in range(nu):                     # the diagonal sum_j R_u^2
                        Ru = R[u, o:o + ns]
                        dRu = dR[u, o:o + ns]
                        gdg = 2.0 * gx_all[o_diag + s * U + u]
                        for n in range(ns):
                            grs[n] += gdg * Ru[n] * dRu[n]
                    for b in range(mom_nb[c, s]):
                        _block_moments_backward(mom_ub[c, s, b], mom_hb[c, s, b], o, ns, R, dR, Y,
                                                g_mom[s], gY, gR4, gr)
                if ls > 0:
                    _harmonics_soa_backward(sx, sy, sz, nt, ls, tab, dfac, Y, gY, gx, gy, gz)
                for n in range(nt):
                    ux = sx[n]
                    uy = sy[n]
                    uz = sz[n]
                    inv = 1.0 / sr[n]
                    # only the tangential part of dE/du: the harmonics depend on the direction
                    dot = gx[n] * ux + gy[n] * uy + gz[n] * uz
                    p = sp[n]
                    g_pair[p, 0] += gr[n] * ux + (gx[n] - dot * ux) * inv
                    g_pair[p, 1] += gr[n] * uy + (gy[n] - dot * uy) * inv
                    g_pair[p, 2] += gr[n] * uz + (gz[n] - dot * uz) * inv

    @njit(parallel=True, fastmath=True, cache=True)
    def radial_gradients(pos, start, pair_j, shifts, species, rgrp_rc, rgrp_n, rgrp_invh, rgrp_K,
                         rgrp_off, rgrp_col, coef, n_chunks, g_acc, g_pair, virial):
        """Adds the radial sums' part of dE/d(pair vector) to ``g_pair`` (both directions of
        an unordered pair on the entry of the atom of lower index, as :func:`radial_sums`
        evaluates them) and writes each atom's virial sum_p v_p (x) dE/dv_p [N, 3, 3]."""
        n_atoms = pos.shape[0]
        D = g_acc.shape[2]
        rmax = 0.0
        for g in range(rgrp_K.shape[0]):
            rmax = max(rmax, rgrp_rc[g])
        n_chunks = max(1, min(n_atoms, n_chunks))
        for ch in prange(n_chunks):
            dval = np.zeros(D, dtype=pos.dtype)
            for i in range(ch * n_atoms // n_chunks, (ch + 1) * n_atoms // n_chunks):
                ei = species[i]
                w00 = w01 = w02 = w10 = w11 = w12 = w20 = w21 = w22 = 0.0
                for p in range(start[i], start[i + 1]):
                    j = pair_j[p]
                    vx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
                    vy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
                    vz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
                    r2 = vx * vx + vy * vy + vz * vz
                    if j >= i and r2 < rmax * rmax:
                        r = math.sqrt(r2)
                        ej = species[j]
                        dEdr = 0.0
                        for g in range(rgrp_K.shape[0]):
                            if r < rgrp_rc[g]:
                                o = rgrp_col[g]
                                K = rgrp_K[g]
                                _table_eval(coef, rgrp_off[g], K, rgrp_n[g], rgrp_invh[g], r, dval,
                                            dval, o, False, True)
                                dg = dval[o:o + K]
                                gi = g_acc[i, ej, o:o + K]
                                if j != i:
                                    gj = g_acc[j, ei, o:o + K]
                                    for d in range(K):
                                        dEdr += (gi[d] + gj[d]) * dg[d]
                                else:
                                    for d in range(K):
                                        dEdr += gi[d] * dg[d]
                        dEdr /= r
                        g_pair[p, 0] += dEdr * vx
                        g_pair[p, 1] += dEdr * vy
                        g_pair[p, 2] += dEdr * vz
                    gx0 = g_pair[p, 0]
                    gy0 = g_pair[p, 1]
                    gz0 = g_pair[p, 2]
                    w00 += vx * gx0
                    w01 += vx * gy0
                    w02 += vx * gz0
                    w10 += vy * gx0
                    w11 += vy * gy0
                    w12 += vy * gz0
                    w20 += vz * gx0
                    w21 += vz * gy0
                    w22 += vz * gz0
                virial[i, 0, 0] = w00
                virial[i, 0, 1] = w01
                virial[i, 0, 2] = w02
                virial[i, 1, 0] = w10
                virial[i, 1, 1] = w11
                virial[i, 1, 2] = w12
                virial[i, 2, 0] = w20
                virial[i, 2, 1] = w21
                virial[i, 2, 2] = w22

    # ------------------------------------------------------------ explicit triplets
    @njit(inline="always", cache=True)
    def _triplet_width(tt_K, tt_col):
        """Columns U of the widest centre element's triplet tables (at least 1)."""
        U = 1
        for t in range(tt_K.shape[0]):
            U = max(U, tt_col[t] + tt_K[t])
        return U

    @njit(inline="always", cache=True)
    def _gather_triplet_pairs(pos, start, pair_j, shifts, species, i, rct, t_lo, t_hi, tt_rc,
                              tt_n, tt_invh, tt_K, tt_off, tt_col, coef, derivatives,
                              seg, nx, ny, nz, nir, npr, nel, R, dR, val, dval):
        """The neighbours n of atom i within ``rct``, sorted by element (element e in
        ``seg[e]:seg[e + 1]``): pair vectors, inverse distances, pair indices, elements and the
        radial factors R[u, n] (and dR_u/dr) of the centre element's triplet tables
        ``t_lo:t_hi`` (zero beyond each table's rc)."""
        n_el = seg.shape[0] - 1
        seg[:] = 0
        for p in range(start[i], start[i + 1]):
            j = pair_j[p]
            vx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
            vy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
            vz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
            if vx * vx + vy * vy + vz * vz < rct * rct:
                seg[species[j] + 1] += 1
        for e in range(n_el):
            seg[e + 1] += seg[e]
        U = R.shape[0]
        for p in range(start[i], start[i + 1]):
            j = pair_j[p]
            vx = pos[j, 0] - pos[i, 0] + shifts[p, 0]
            vy = pos[j, 1] - pos[i, 1] + shifts[p, 1]
            vz = pos[j, 2] - pos[i, 2] + shifts[p, 2]
            r2 = vx * vx + vy * vy + vz * vz
            if r2 >= rct * rct:
                continue
            r = math.sqrt(r2)
            e = species[j]
            n = seg[e]                  # seg[e] runs up to the old seg[e + 1]; shifted back below
            seg[e] = n + 1
            nx[n] = vx
            ny[n] = vy
            nz[n] = vz
            nir[n] = 1.0 / r
            npr[n] = p
            nel[n] = e
            for u in range(U):
                val[u] = 0.0
                dval[u] = 0.0
            for t in range(t_lo, t_hi):
                if r < tt_rc[t]:
                    _table_eval(coef, tt_off[t], tt_K[t], tt_n[t], tt_invh[t], r, val, dval,
                                tt_col[t], True, derivatives)
            for u in range(U):
                R[u, n] = val[u]
            if derivatives:
                for u in range(U):
                    dR[u, n] = dval[u]
        for e in range(n_el, 0, -1):
            seg[e] = seg[e - 1]
        seg[0] = 0

    # The per-group loops below run over array views that start at the group's first triplet
    # (``X[g0:g1]``, index from 0) and index neighbours with unsigned ids: numba's
    # negative-index wraparound otherwise keeps LLVM from vectorising them.
    @njit(inline="always", cache=True)
    def _triplet_compact(c, seg, grp_map, grp_rc3, grp_has9, nx, ny, nz, nir, jid, kid, ccos, crjk,
                         gm):
        """All triplets (i, j, k) of one centre that contribute (j < k in the element-sorted
        neighbour order, so j's element e1 <= k's element e2; r_jk below the group's type-3
        cutoff, or all in a group with type-9 functions), in arrays over the triplets m,
        the triplets of group g in ``gm[g]:gm[g + n_groups]``: neighbour ids j, k (unsigned),
        r_jk^2 and cos theta.  Returns their number."""
        n_el = seg.shape[0] - 1
        n_groups = grp_rc3.shape[0]
        nm = 0
        for e1 in range(n_el):
            for e2 in range(e1, n_el):
                g = grp_map[c, e1, e2]
                if g < 0:
                    continue
                gm[g] = nm
                lim = grp_rc3[g] * grp_rc3[g]
                has9 = grp_has9[g]
                for a_ in range(seg[e1], seg[e1 + 1]):
                    xj, yj, zj, irj = nx[a_], ny[a_], nz[a_], nir[a_]
                    for k in range(max(a_ + 1, seg[e2]), seg[e2 + 1]):
                        xk, yk, zk = nx[k], ny[k], nz[k]
                        dx, dy, dz = xk - xj, yk - yj, zk - zj
                        r2 = dx * dx + dy * dy + dz * dz
                        # written always, kept by advancing nm (no unpredictable branch)
                        jid[nm] = a_
                        kid[nm] = k
                        crjk[nm] = r2
                        ccos[nm] = (xj * xk + yj * yk + zj * zk) * (irj * nir[k])
                        nm += 1 if (r2 < lim or has9) else 0
                gm[g + n_groups] = nm
        return nm

    @njit(inline="always", cache=True)
    def _triplet_rjk(nm, t_lo, t_hi, tt_rc, tt_n, tt_invh, tt_K, tt_off, tt_col, coef, crjk, Q, dQ,
                     ts, tq):
        """r_jk = sqrt(crjk) in place and the radial factors Q [u, m] = R_u(r_jk) of the tables
        ``t_lo:t_hi`` and d/dr_jk in dQ (zero beyond each table's rc), vectorised over m: per
        table the interval offsets ``tq`` and positions ``ts`` in it (-1 beyond rc) once, then
        one loop per column."""
        for m in range(nm):
            crjk[m] = math.sqrt(crjk[m])
        for t in range(t_lo, t_hi):
            rc, invh, K, o = tt_rc[t], tt_invh[t], tt_K[t], tt_col[t]
            top = np.uint64(tt_n[t] - 1)
            stride = np.uint64(6 * K)
            for m in range(nm):
                r = crjk[m]
                x = min(r, rc) * invh
                iv = min(np.uint64(x), top)
                ts[m] = x - iv if r < rc else -1.0
                tq[m] = iv * stride
            for kk in range(K):
                base = coef[tt_off[t] + 6 * kk:]
                Qk = Q[o + kk, :nm]
                dQk = dQ[o + kk, :nm]
                for m in range(nm):
                    s = ts[m]
                    q = tq[m]
                    c1 = base[q + np.uint64(1)]
                    c2 = base[q + np.uint64(2)]
                    c3 = base[q + np.uint64(3)]
                    c4 = base[q + np.uint64(4)]
                    c5 = base[q + np.uint64(5)]
                    v = base[q] + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5))))
                    d = invh * (c1 + s * (2.0 * c2 + s * (3.0 * c3 + s * (4.0 * c4 + s * 5.0 * c5))))
                    inside = s >= 0.0
                    Qk[m] = v if inside else 0.0
                    dQk[m] = d if inside else 0.0

    @njit(inline="always", cache=True)
    def _triplet_angular(nm, c, an_n, an_lam, an_zeta, an_pref, an_zint, derivatives, ccos, A, dA):
        """A [a, m] = 2^(1-zeta) (1 + lambda cos)^zeta (0 where 1 + lambda cos <= 0) of the
        centre element c's (lambda, zeta) pairs a, and d/dcos in dA, vectorised over m."""
        for a in range(an_n[c]):
            lam, zeta, pref, mz = an_lam[c, a], an_zeta[c, a], an_pref[c, a], an_zint[c, a]
            Aa = A[a]
            dAa = dA[a]
            for m in range(nm):
                Aa[m] = max(1.0 + lam * ccos[m], 0.0)
            if mz >= 0:                 # integer zeta: (1 + lambda cos)^(zeta - 1) by products
                for m in range(nm):
                    dAa[m] = 1.0
                for _ in range(mz):
                    for m in range(nm):
                        dAa[m] *= Aa[m]
            else:
                for m in range(nm):
                    b = Aa[m]
                    dAa[m] = b ** (zeta - 1.0) if b > 0.0 else 0.0
            for m in range(nm):
                b = Aa[m]
                q = dAa[m]
                Aa[m] = pref * q * b
                if derivatives:
                    dAa[m] = pref * zeta * lam * q if b > 0.0 else 0.0

    @njit(inline="always", cache=True)
    def _triplet_scratch(pos, start, n_el, U, n_ang, n_groups):
        """Per-chunk buffers of :func:`triplet_pass`: per neighbour [nb] (see
        :func:`_gather_triplet_pairs`) and per triplet [nb (nb - 1) / 2] (see
        :func:`_triplet_compact`); Q, dQ have U more rows of ones / zeros, the r_jk factor of
        type-9 functions (q = U + u); ``ts``, ``tq`` [nt]: table positions of r_jk
        (:func:`_triplet_rjk`)."""
        nb = 1
        for i in range(pos.shape[0]):
            nb = max(nb, start[i + 1] - start[i])
        nt = max(1, nb * (nb - 1) // 2)
        dt = pos.dtype
        na = max(n_ang, 1)
        Q = np.empty((2 * U, nt), dtype=dt)          # uninitialised: every stage writes what it
        dQ = np.empty((2 * U, nt), dtype=dt)         # reads (the type-9 rows: triplet_pass)
        return (np.zeros(n_el + 1, dtype=np.int64), np.empty(nb, dtype=dt), np.empty(nb, dtype=dt),
                np.empty(nb, dtype=dt), np.empty(nb, dtype=dt), np.empty(nb, dtype=np.int64),
                np.empty(nb, dtype=np.int64), np.empty((U, nb), dtype=dt), np.empty((U, nb), dtype=dt),
                np.empty(U, dtype=dt), np.empty(U, dtype=dt),
                np.empty(nt, dtype=np.uint64), np.empty(nt, dtype=np.uint64),
                np.empty(nt, dtype=dt), np.empty(nt, dtype=dt), Q, dQ,
                np.empty((na, nt), dtype=dt), np.empty((na, nt), dtype=dt),
                np.zeros(2 * max(n_groups, 1), dtype=np.int64),
                np.empty((6, nt), dtype=dt), np.empty((3, nb), dtype=dt),
                np.empty(nt, dtype=dt), np.empty(nt, dtype=np.uint64))

    @njit(inline="always", cache=True)
    def _segment_end(f, f1, fn_u, fn_q):
        """End of the run of functions from f (below f1) that share f's radial factors (u, q):
        the plan sorts each group's functions by (q, u), so a run is contiguous."""
        u, q = fn_u[f], fn_q[f]
        e = f + 1
        while e < f1 and fn_u[e] == u and fn_q[e] == q:
            e += 1
        return e

    @njit(inline="always", cache=True)
    def _triplet_sums(c, n_el, grp_map, grp_fptr, fn_col, fn_u, fn_a, fn_q, gm, A, R, Q, jid, kid,
                      W, G_row):
        """Adds each triplet function's sum over the centre's triplets to ``G_row``: function f
        (column ``fn_col[f]``) of group g adds A_a(cos) R_u(r_ij) R_u(r_ik) Q_q over the
        group's triplets, Q_q = R_u(r_jk) (type 3, q = u) or 1 (type 9, q = U + u).  The
        radial product W = R_u(r_ij) R_u(r_ik) Q_q is formed once per run of functions with
        the same (u, q) (scratch ``W`` [nt]); each function then adds sum_m A_a W with no
        gathered loads."""
        n_groups = grp_fptr.shape[0] - 1
        for e1 in range(n_el):
            for e2 in range(e1, n_el):
                g = grp_map[c, e1, e2]
                if g < 0:
                    continue
                m0, m1 = gm[g], gm[g + n_groups]
                js = jid[m0:m1]
                ks = kid[m0:m1]
                Wg = W[:m1 - m0]
                f, f1 = grp_fptr[g], grp_fptr[g + 1]
                while f < f1:
                    fe = _segment_end(f, f1, fn_u, fn_q)
                    Ru = R[fn_u[f]]
                    Qq = Q[fn_q[f], m0:m1]
                    for m in range(m1 - m0):
                        Wg[m] = Ru[js[m]] * Ru[ks[m]] * Qq[m]
                    for ff in range(f, fe):
                        Aa = A[fn_a[ff], m0:m1]
                        a = 0.0
                        for m in range(m1 - m0):
                            a += Aa[m] * Wg[m]
                        G_row[fn_col[ff]] += a
                    f = fe

    @njit(fastmath=True, cache=True)       # not inlined: more than 30 arguments (a *args call)
    def _triplet_backward(c, nm, n_el, grp_map, grp_fptr, fn_col, fn_u, fn_a, fn_q, gm, gG_row,
                          seg, nx, ny, nz, nir, npr, jid, kid, ccos, crjk, R, dR, Q, dQ, A, dA,
                          gt, gv, g_pair):
        """Adds the triplet functions' part of dE/d(pair vector) of one centre to ``g_pair``
        (its own list entries ``npr``) from its dE/dG row ``gG_row``: per triplet dE/dcos,
        dE/dr_ij, dE/dr_ik, dE/dr_jk (``gt[:4]`` [4, m]; per run of functions with the same
        radial factors (u, q) their weighted angular factors first, in ``gt[4:6]``, then one
        loop with the gathered R_u), then the three pair vectors."""
        n_groups = grp_fptr.shape[0] - 1
        gt[:4, :nm] = 0.0
        for e1 in range(n_el):
            for e2 in range(e1, n_el):
                g = grp_map[c, e1, e2]
                if g < 0:
                    continue
                m0, m1 = gm[g], gm[g + n_groups]
                nmg = m1 - m0
                js = jid[m0:m1]
                ks = kid[m0:m1]
                gc, gj, gk, gjk = gt[0, m0:m1], gt[1, m0:m1], gt[2, m0:m1], gt[3, m0:m1]
                SA, SdA = gt[4, :nmg], gt[5, :nmg]
                f, f1 = grp_fptr[g], grp_fptr[g + 1]
                while f < f1:           # per run of functions sharing (u, q): their weighted
                    fe = _segment_end(f, f1, fn_u, fn_q)     # angular sums, then one gather pass
                    for m in range(nmg):
                        SA[m] = 0.0
                        SdA[m] = 0.0
                    for ff in range(f, fe):
                        w = gG_row[fn_col[ff]]
                        Aa = A[fn_a[ff], m0:m1]
                        dAa = dA[fn_a[ff], m0:m1]
                        for m in range(nmg):
                            SA[m] += w * Aa[m]
                            SdA[m] += w * dAa[m]
                    Ru = R[fn_u[f]]
                    dRu = dR[fn_u[f]]
                    Qq = Q[fn_q[f], m0:m1]
                    dQq = dQ[fn_q[f], m0:m1]
                    for m in range(nmg):
                        j = js[m]
                        k = ks[m]
                        Rj = Ru[j]
                        Rk = Ru[k]
                        RjRk = Rj * Rk
                        sq = SA[m] * Qq[m]
                        gc[m] += SdA[m] * RjRk * Qq[m]
                        gj[m] += sq * dRu[j] * Rk
                        gk[m] += sq * Rj * dRu[k]
                        gjk[m] += SA[m] * RjRk * dQq[m]
                    f = fe
        nn = seg[n_el]
        gv[:, :nn] = 0.0
        # cos = v_j.v_k / (r_j r_k), r_jk = |v_k - v_j| (crjk: r_jk)
        for m in range(nm):
            j = jid[m]
            k = kid[m]
            xj, yj, zj, irj = nx[j], ny[j], nz[j], nir[j]
            xk, yk, zk, irk = nx[k], ny[k], nz[k], nir[k]
            gcm = gt[0, m]
            cs = gcm * ccos[m]
            cj = gcm * irj * irk
            sj = gt[1, m] * irj - cs * irj * irj
            sk = gt[2, m] * irk - cs * irk * irk
            h = gt[3, m] / crjk[m]
            hx, hy, hz = h * (xk - xj), h * (yk - yj), h * (zk - zj)
            gv[0, j] += cj * xk + sj * xj - hx
            gv[1, j] += cj * yk + sj * yj - hy
            gv[2, j] += cj * zk + sj * zj - hz
            gv[0, k] += cj * xj + sk * xk + hx
            gv[1, k] += cj * yj + sk * yk + hy
            gv[2, k] += cj * zj + sk * zk + hz
        for n in range(nn):
            p = npr[n]
            g_pair[p, 0] += gv[0, n]
            g_pair[p, 1] += gv[1, n]
            g_pair[p, 2] += gv[2, n]

    @njit(parallel=True, fastmath=True, cache=True)
    def triplet_pass(pos, start, pair_j, shifts, species, tr_rc, tt_ptr, tt_rc, tt_n, tt_invh,
                     tt_K, tt_off, tt_col, an_n, an_lam, an_zeta, an_pref, an_zint, grp_map,
                     grp_rc3, grp_has9, grp_fptr, fn_col, fn_u, fn_a, fn_q, coef,
                     n_layers, layers, weights, scale, e_ref, width, n_chunks, G, e_atoms, gG,
                     g_pair):
        """One pass per atom over the angular functions evaluated on explicit triplets (type 3,
        and type 9 outside the moments), the atomic network and the triplets' gradient.

        ``G`` [N, F] holds the other functions (radial sums and moments) on entry.  Per centre
        i: its triplets (each unordered neighbour pair (j, k) once, j of element e1 <= e2 of
        k, in the group ``grp_map[c, e1, e2]``; r_jk from the two pair vectors) with their
        radial factors R_u(r_ij), R_u(r_ik), R_u(r_jk) (quintic tables ``tt_ptr[c]:tt_ptr[c +
        1]``, columns u), angular factors A_a (pairs ``an_*[c, a]``) and derivatives are
        built once; the triplet sums complete ``G[i]``; the element network
        (:func:`~.networks.atom_network`) gives ``e_atoms[i]`` (eV) and ``gG[i]`` = dE/dG;
        and from the same triplet arrays the triplet part of dE/d(pair vector) is written to
        i's own list entries of ``g_pair`` (all of them set, so threads never share a row;
        :func:`descriptor_gradients` adds the moment part, :func:`radial_gradients` the
        radial part).  Per group g: type-3 cutoff ``grp_rc3[g]`` (0: none), any type 9,
        functions ``grp_fptr[g]:grp_fptr[g + 1]``."""
        n_atoms, n_el = pos.shape[0], tr_rc.shape[0]
        n_groups = grp_rc3.shape[0]
        U = _triplet_width(tt_K, tt_col)
        n_chunks = max(1, min(n_atoms, n_chunks))
        L = layers.shape[1]
        has9 = grp_has9.any()
        for ch in prange(n_chunks):
            (seg, nx, ny, nz, nir, npr, nel, R, dR, val, dval, jid, kid, ccos, crjk, Q, dQ, A, dA,
             gm, gt, gv, ts, tq) = _triplet_scratch(pos, start, n_el, U, an_lam.shape[1], n_groups)
            if has9:
                Q[U:] = 1.0
                dQ[U:] = 0.0
            H = np.zeros((L + 1, width), dtype=pos.dtype)
            Dn = np.zeros((L + 1, width), dtype=pos.dtype)
            for i in range(ch * n_atoms // n_chunks, (ch + 1) * n_atoms // n_chunks):
                c = species[i]
                for p in range(start[i], start[i + 1]):
                    g_pair[p, 0] = 0.0
                    g_pair[p, 1] = 0.0
                    g_pair[p, 2] = 0.0
                nm = 0
                t_lo, t_hi = tt_ptr[c], tt_ptr[c + 1]
                if tr_rc[c] != 0.0:
                    _gather_triplet_pairs(pos, start, pair_j, shifts, species, i, tr_rc[c], t_lo,
                                          t_hi, tt_rc, tt_n, tt_invh, tt_K, tt_off, tt_col, coef,
                                          True, seg, nx, ny, nz, nir, npr, nel, R, dR, val, dval)
                    nm = _triplet_compact(c, seg, grp_map, grp_rc3, grp_has9, nx, ny, nz, nir, jid,
                                          kid, ccos, crjk, gm)
                if nm > 0:
                    _triplet_rjk(nm, t_lo, t_hi, tt_rc, tt_n, tt_invh, tt_K, tt_off, tt_col, coef,
                                 crjk, Q, dQ, ts, tq)
                    _triplet_angular(nm, c, an_n, an_lam, an_zeta, an_pref, an_zint, True, ccos,
                                     A, dA)
                    _triplet_sums(c, n_el, grp_map, grp_fptr, fn_col, fn_u, fn_a, fn_q, gm, A, R,
                                  Q, jid, kid, gt[4], G[i])
                e_atoms[i] = atom_network(c, G[i], n_layers, layers, weights, scale, e_ref, H, Dn,
                                          gG[i])
                if nm > 0:
                    _triplet_backward(c, nm, n_el, grp_map, grp_fptr, fn_col, fn_u, fn_a, fn_q, gm,
                                      gG[i], seg, nx, ny, nz, nir, npr, jid, kid, ccos, crjk, R, dR,
                                      Q, dQ, A, dA, gt, gv, g_pair)

    @njit(cache=True)
    def _scatter_pairs(pair_i, pair_j, g_pair, out):
        """dE/dpositions from dE/d(pair vectors): v_p = r_j - r_i + shift."""
        out[:, :] = 0.0
        for p in range(pair_i.shape[0]):
            i = pair_i[p]
            j = pair_j[p]
            for a in range(3):
                out[i, a] -= g_pair[p, a]
                out[j, a] += g_pair[p, a]


def _radial_with_derivatives(r: torch.Tensor, eta, rs, rc, cutoff_type: int, alpha: float):
    """R_k(r), dR_k/dr and d2R_k/dr2 [len(r), K] (float64) by autograd through the reference
    :func:`~mdmlkit.descriptors.terms.radial_factors`."""
    from mdmlkit.descriptors.terms import radial_factors

    p = [torch.as_tensor(np.asarray(x, dtype=np.float64)) for x in (eta, rs, rc)]
    cols = []
    for k in range(len(p[0])):
        x = r.clone().requires_grad_(True)
        f = radial_factors(x, p[0][k:k + 1], p[1][k:k + 1], p[2][k:k + 1], cutoff_type, alpha)[:, 0]
        (d1,) = torch.autograd.grad(f.sum(), x, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), x, allow_unused=True)
        d2 = torch.zeros_like(x) if d2 is None else d2
        cols.append(torch.stack([f.detach(), d1.detach(), d2.detach()]))
    return torch.stack(cols, dim=-1).numpy()          # [3, len(r), K]


# quintic Hermite pieces p(t) = sum_q c_q t^q on [0, 1] from value, slope, curvature at both ends
_HERMITE_INV = np.linalg.inv(np.array([[1.0, 1.0, 1.0], [3.0, 4.0, 5.0], [6.0, 12.0, 20.0]]))


def tabulate_radial(eta, rs, rc: float, cutoff_type: int, alpha: float, tol: float = 1e-8,
                    h_start: float = 0.05, h_min: float = 0.002):
    """Quintic Hermite tables of the radial factors R_k(r) = exp(-eta_k (r - rs_k)^2) f_c(r; rc).

    Piecewise quintic polynomials on a uniform grid of [0, rc] (nodes on 0 and rc) that
    match value, first and second derivative of every function at every node, so the
    tabulated functions and their derivatives are continuous, and forces are the exact
    gradient of the tabulated energy (energy conservation in NVE).  The grid spacing is
    halved from ``h_start`` (Å) until the largest error of values and of derivatives x 1 Å
    at 9 points inside every interval is below ``tol`` (or ``h_min`` is reached); with an
    inner cutoff (``alpha`` > 0) the grid also has a node on ``alpha * rc`` when a grid of
    up to 4x the intervals allows it.  Each piece matches the one-sided limits at its ends.

    Returns ``(coef [n_int, 6, K] float64, h (Å), max error)``.
    """
    K = len(eta)
    h = h_start
    while True:
        n_int = max(1, int(math.ceil(rc / h - 1e-9)))
        if alpha > 0.0:     # a node on the inner cutoff alpha rc too, where f_c has a kink
            n_int = next((n for n in range(n_int, 4 * n_int + 1)
                          if abs(alpha * n - round(alpha * n)) < 1e-9), n_int)
        h = rc / n_int
        nodes = np.linspace(0.0, rc, n_int + 1)
        # one-sided limits at both ends of every interval (f_c'' jumps at alpha rc, a hard
        # cutoff's f_c at rc)
        f, d1, d2 = _radial_with_derivatives(torch.as_tensor(np.nextafter(nodes[:-1], np.inf)),
                                             eta, rs, [rc] * K, cutoff_type, alpha)
        fr, d1r, d2r = _radial_with_derivatives(torch.as_tensor(np.nextafter(nodes[1:], -np.inf)),
                                                eta, rs, [rc] * K, cutoff_type, alpha)
        c0, c1, c2 = f, h * d1, 0.5 * h * h * d2
        rhs = np.stack([fr - c0 - c1 - c2, h * d1r - c1 - 2.0 * c2,
                        h * h * d2r - 2.0 * c2], axis=1)                # [n_int, 3, K]
        c345 = np.einsum("ab,nbk->nak", _HERMITE_INV, rhs)
        coef = np.concatenate([np.stack([c0, c1, c2], axis=1), c345], axis=1)   # [n_int, 6, K]
        t = np.linspace(0.05, 0.95, 9)
        x = (np.arange(n_int)[:, None] + t[None, :]).ravel() * h
        ref = _radial_with_derivatives(torch.as_tensor(x), eta, rs, [rc] * K, cutoff_type, alpha)
        powers = t[None, :] ** np.arange(6)[:, None]                    # [6, 9]
        dpow = np.vstack([np.zeros((1, 9)), np.arange(1, 6)[:, None] * t[None, :] ** np.arange(5)[:, None]])
        val = np.einsum("nqk,qt->ntk", coef, powers).reshape(-1, K)
        der = np.einsum("nqk,qt->ntk", coef, dpow).reshape(-1, K) / h
        err = max(float(np.abs(val - ref[0]).max()), float(np.abs(der - ref[1]).max()))
        if err <= tol or h / 2 < h_min:
            return coef, h, err
        h /= 2


class FusedPlan:
    """The tables of the fused kernels for one :class:`~mdmlkit.descriptors.ACSF` (one dtype).

    * the model's distinct type-2 radial factors R(r; eta, rs, rc), over all element
      blocks, tabulated once per cutoff radius (:func:`tabulate_radial`, error below
      ``tol``; ``rgrp_*``: cutoff, intervals, 1/spacing, columns, offset in ``coef``, first
      column d);
    * per centre element, the radial factors of its moments in one table (``mgrp_*``),
      and per (centre, neighbour slot, radial column) the highest harmonic degree any of
      its functions uses (``mom_lsu``), the columns grouped in blocks of four by degree
      (``mom_nb``, ``mom_ub``, ``mom_hb``; moments beyond a block's degree are never computed);
    * the sparse rows that map each atom's pair sums to its symmetry functions in n2p2
      order (``g_ptr``, ``g_src``, ``g_w``; see :func:`descriptor_values`);
    * the functions evaluated over explicit triplets (type 3, type 9 outside the
      moments; ``n_triplet_functions``): per centre element their radial factors
      (tables), (lambda, zeta) pairs and groups by neighbour-element pair
      (:meth:`triplet_tables`, see :func:`triplet_pass`).

    Raises :class:`~mdmlkit.errors.InputError` for moment functions of one element with
    different cutoffs.
    """

    def __init__(self, acsf, dtype=np.float64, tol: float = 1e-8) -> None:
        plan = acsf.plan()
        from mdmlkit.descriptors.terms import harmonic_recurrence_table

        self.dtype = dt = np.dtype(dtype)
        ct, al = int(plan.cutoff_type), float(plan.alpha)
        self.n_el = n_el = len(plan.elements)
        self.n_features = [acsf.n_features[el] for el in plan.elements]
        radial = [p for cols in plan.columns.values() for kind, _, p in cols if kind == "radial"]
        key = lambda p, m: (float(p[2, m]), float(p[0, m]), float(p[1, m]))   # noqa: E731 (rc, eta, rs)
        distinct = sorted({key(p, m) for p in radial for m in range(p.shape[1])})
        column = {f: d for d, f in enumerate(distinct)}
        self.table_error, self.table_spacing = 0.0, {}
        coef_parts, off = [], 0

        def table(fs, label):
            nonlocal off
            coef, h, err = tabulate_radial([f[1] for f in fs], [f[2] for f in fs], fs[0][0], ct, al, tol)
            self.table_error = max(self.table_error, err)
            self.table_spacing[label] = h
            coef_parts.append(np.ascontiguousarray(coef.transpose(0, 2, 1)).ravel())   # [n_int, K, 6]
            off += coef.size
            return coef.shape[0], 1.0 / h, off - coef.size

        groups = []
        for rc in sorted({f[0] for f in distinct}):
            fs = [f for f in distinct if f[0] == rc]
            n_int, invh, o = table(fs, ("radial", rc))
            groups.append((rc, n_int, invh, len(fs), o, column[fs[0]]))
        g = np.array(groups, dtype=np.float64).reshape(-1, 6)
        self.rgrp_rc, self.rgrp_invh = g[:, 0].astype(dt), g[:, 2].astype(dt)
        self.rgrp_n, self.rgrp_K, self.rgrp_off, self.rgrp_col = (g[:, q].astype(np.int64)
                                                                  for q in (1, 3, 4, 5))
        self.D = D = max(len(distinct), 1)
        # moments: slots, radial tables, degrees, power-spectrum pairs per centre element
        moments = {c: m.params for c, m in plan.moments.items()}
        U = max([p.shape[1] for p in moments.values()] + [1])
        E = max([len(m.elements) for m in plan.moments.values()] + [1])
        l_max = max([m.n_max for m in plan.moments.values()] + [0])
        NG = max([len(m.g1) for m in plan.moments.values()] + [1])
        self.shape = (E, U, (l_max + 1) ** 2)
        self.mom_slot = np.full((n_el, n_el), -1, np.int64)
        self.mom_nu, self.mom_lmax = np.zeros(n_el, np.int64), np.zeros(n_el, np.int64)
        self.mgrp_n, self.mgrp_off = np.ones(n_el, np.int64), np.zeros(n_el, np.int64)
        mom_rc, mgrp_invh = np.zeros(n_el), np.ones(n_el)
        self.spec_n = np.zeros(n_el, np.int64)
        self.spec_g1, self.spec_g2 = np.zeros((n_el, NG), np.int64), np.zeros((n_el, NG), np.int64)
        o_spec = n_el * D
        o_diag = o_spec + NG * U * (l_max + 1)
        rows: dict[int, list[list[tuple[int, float]]]] = {}
        for c, m in plan.moments.items():
            pm = moments[c]
            if not np.all(pm[2] == pm[2, 0]):
                raise InputError("the fused kernels need one cutoff radius for all moment "
                                 f"functions of element {plan.elements[c]}")
            for s, e in enumerate(m.elements):
                self.mom_slot[c, e] = s
            self.mom_nu[c], self.mom_lmax[c], mom_rc[c] = pm.shape[1], m.n_max, pm[2, 0]
            self.mgrp_n[c], mgrp_invh[c], self.mgrp_off[c] = table(
                [key(pm, u) for u in range(pm.shape[1])], ("moments", plan.elements[c]))
            g1, g2, W = m.g1, m.g2, m.spectrum_map
            self.spec_n[c] = len(g1)
            self.spec_g1[c, :len(g1)], self.spec_g2[c, :len(g1)] = g1, g2
            u_c, l_c, n_s = pm.shape[1], m.n_max + 1, len(g1) * pm.shape[1] * (m.n_max + 1)
            src = [o_spec + (q // (u_c * l_c) * U + q // l_c % u_c) * (l_max + 1) + q % l_c
                   for q in range(n_s)]
            src += [o_diag + q // u_c * U + q % u_c for q in range(W.shape[1] - n_s)]
            rows[c] = [[(src[q], float(w)) for q, w in enumerate(row) if w != 0.0]
                       for row in W]
        self.mom_rc, self.mgrp_invh = mom_rc.astype(dt), mgrp_invh.astype(dt)
        n_cat = {c: sum(p.shape[1] if kind == "radial" else plan.moments[c].spectrum_map.shape[0]
                        for kind, _, p in plan.columns[c]) for c in range(n_el)}
        self._triplet_plan(acsf, plan, n_cat, table, dt)
        if self.table_error > tol:
            warnings.warn(f"radial tables reach an error of {self.table_error:.1e} (> {tol:.0e}) at the "
                          "finest grid; the fused kernels' results differ from the eager ones by as much",
                          RuntimeWarning, stacklevel=2)
        self.coef = np.concatenate(coef_parts + [np.zeros(1)]).astype(dt)
        self.tab = harmonic_recurrence_table(max(l_max, 1)).numpy().astype(dt)
        self.dfac = np.array([math.sqrt((2.0 if l == 0 else 1.0) * (2 * l + 1) / (2 * l + 2))
                              for l in range(max(l_max, 1))], dtype=dt)
        # symmetry function f of centre c = sum of w * x[src] (x: see descriptor_values)
        f_max = max(self.n_features + [1])
        self.g_ptr = np.zeros((n_el, f_max + 1), np.int64)
        src_all, w_all = [], []
        for c in range(n_el):
            cat: list[list[tuple[int, float]]] = []
            for kind, e, p in plan.columns[c]:
                if kind == "radial":
                    cat += [[(e * D + column[key(p, m)], 1.0)] for m in range(p.shape[1])]
                else:
                    cat += rows[c]
            inv = plan.inverse[c]
            for f in range(f_max):
                self.g_ptr[c, f] = len(src_all)
                if f < len(inv) and inv[f] < len(cat):      # (else: a triplet function)
                    for s_, w_ in cat[inv[f]]:
                        src_all.append(s_)
                        w_all.append(w_)
            self.g_ptr[c, f_max] = len(src_all)
        self.g_src = np.array(src_all + [0], np.int64)
        self.g_w = np.array(w_all + [0.0], dtype=dt)
        # highest degree of each (centre, slot, radial column) that a function uses
        self.mom_lsu = np.full((n_el, E, U), -1, np.int64)
        L = l_max + 1
        for c in range(n_el):
            for q in self.g_src[self.g_ptr[c, 0]:self.g_ptr[c, f_max]]:
                q = int(q) - o_spec
                if 0 <= q < NG * U * L:
                    g, u, l = q // (U * L), q // L % U, q % L
                    for slot in (self.spec_g1[c, g], self.spec_g2[c, g]):
                        self.mom_lsu[c, slot, u] = max(self.mom_lsu[c, slot, u], l)
        # the moment loops run over blocks of four radial columns (highest degree first;
        # column U, whose R is zero, pads the last block), each to its highest degree
        self.mom_ls = self.mom_lsu.max(axis=(1, 2))        # the degree of an element's harmonics
        n_blocks = (U + 3) // 4
        self.mom_nb = np.zeros((n_el, E), np.int64)
        self.mom_ub = np.full((n_el, E, n_blocks, 4), U, np.int64)
        self.mom_hb = np.zeros((n_el, E, n_blocks), np.int64)
        for c in range(n_el):
            for slot in range(E):
                cols = sorted((u for u in range(U) if self.mom_lsu[c, slot, u] >= 0),
                              key=lambda u: -self.mom_lsu[c, slot, u])
                for b in range(0, len(cols), 4):
                    self.mom_ub[c, slot, b // 4, :len(cols[b:b + 4])] = cols[b:b + 4]
                    self.mom_hb[c, slot, b // 4] = (self.mom_lsu[c, slot, cols[b]] + 1) ** 2
                self.mom_nb[c, slot] = (len(cols) + 3) // 4

    def _triplet_plan(self, acsf, plan, n_cat: dict, table, dt) -> None:
        """Tables of the functions the eager module evaluates over explicit triplets (type 3,
        type 9 outside the moments): the n2p2 columns past the radial and moment blocks
        of ``plan.columns`` (see :func:`triplet_pass` for the arrays)."""
        n_el = self.n_el
        U = 1
        per_c = {}
        for c, el in enumerate(plan.elements):
            inv = plan.inverse[c]
            fns = [(f, acsf.sfs.functions[el][f]) for f in range(len(inv)) if inv[f] >= n_cat[c]]
            for f, sf in fns:
                if sf.type not in (3, 9):
                    raise InputError(f"symmetry function {f} of {el} (type {sf.type}) is neither on "
                                     "the radial/moment tables nor an angular function")
            if fns:
                per_c[c] = fns
                U = max(U, len({(sf.rc, sf.eta, sf.rs) for _, sf in fns}))
        self.n_triplet_functions = sum(len(v) for v in per_c.values())
        sp = {el: k for k, el in enumerate(plan.elements)}
        tr_rc = np.zeros(n_el)
        tt, tt_ptr = [], [0]
        A = max([len({(sf.lambda_, sf.zeta) for _, sf in v}) for v in per_c.values()] + [1])
        self.an_n = np.zeros(n_el, np.int64)
        an_lam, an_zeta, an_pref = np.zeros((n_el, A)), np.ones((n_el, A)), np.zeros((n_el, A))
        self.an_zint = np.zeros((n_el, A), np.int64)
        cg_ptr, grp, fn = [0], [], []
        for c in range(n_el):
            fns = per_c.get(c, [])
            radial = sorted({(sf.rc, sf.eta, sf.rs) for _, sf in fns})
            ucol = {r: u for u, r in enumerate(radial)}
            for rc in sorted({r[0] for r in radial}):
                fs = [r for r in radial if r[0] == rc]
                n_int, invh, o = table(fs, ("triplets", plan.elements[c], rc))
                tt.append((rc, n_int, invh, len(fs), o, ucol[fs[0]]))
            tt_ptr.append(len(tt))
            ang = sorted({(sf.lambda_, sf.zeta) for _, sf in fns})
            acol = {a: k for k, a in enumerate(ang)}
            self.an_n[c] = len(ang)
            for k, (lam, zeta) in enumerate(ang):
                an_lam[c, k], an_zeta[c, k], an_pref[c, k] = lam, zeta, 2.0 ** (1.0 - zeta)
                self.an_zint[c, k] = int(zeta) - 1 if float(zeta).is_integer() and 1 <= zeta <= 64 else -1
            if fns:
                tr_rc[c] = max(sf.rc for _, sf in fns)
            groups: dict[tuple[int, int], list] = {}
            for f, sf in fns:
                groups.setdefault(tuple(sorted((sp[sf.e1], sp[sf.e2]))), []).append((f, sf))
            for (e1, e2), members in sorted(groups.items()):
                rc3 = max([sf.rc for _, sf in members if sf.type == 3] + [0.0])
                grp.append((e1, e2, rc3, int(any(sf.type == 9 for _, sf in members)), len(fn)))
                rows = []
                for f, sf in members:
                    u = ucol[(sf.rc, sf.eta, sf.rs)]
                    rows.append((f, u, acol[(sf.lambda_, sf.zeta)], u if sf.type == 3 else U + u))
                # functions sharing the radial factors (u, q) side by side: the kernels form
                # their radial product once per run (_triplet_sums, _triplet_backward)
                fn += sorted(rows, key=lambda r: (r[3], r[1], r[2]))
            cg_ptr.append(len(grp))
        self.tr_rc = tr_rc.astype(dt)
        t = np.array(tt, dtype=np.float64).reshape(-1, 6)
        self.tt_ptr = np.array(tt_ptr, np.int64)
        self.tt_rc, self.tt_invh = t[:, 0].astype(dt), t[:, 2].astype(dt)
        self.tt_n, self.tt_K, self.tt_off, self.tt_col = (t[:, q].astype(np.int64) for q in (1, 3, 4, 5))
        self.an_lam, self.an_zeta, self.an_pref = an_lam.astype(dt), an_zeta.astype(dt), an_pref.astype(dt)
        self.grp_map = np.full((n_el, n_el, n_el), -1, np.int64)     # [c, e1, e2] -> group
        for c in range(n_el):
            for k in range(cg_ptr[c], cg_ptr[c + 1]):
                e1, e2 = grp[k][0], grp[k][1]
                self.grp_map[c, e1, e2] = self.grp_map[c, e2, e1] = k
        g = np.array(grp, dtype=np.float64).reshape(-1, 5)
        self.grp_rc3, self.grp_has9 = g[:, 2].astype(dt), g[:, 3].astype(np.bool_)
        self.grp_fptr = np.append(g[:, 4], len(fn)).astype(np.int64)
        q = np.array(fn, dtype=np.int64).reshape(-1, 4)
        self.fn_col, self.fn_u, self.fn_a, self.fn_q = (np.ascontiguousarray(q[:, k]) for k in range(4))

    def triplet_tables(self) -> tuple:
        """Table arguments of :func:`triplet_pass` (up to ``coef``)."""
        return (self.tr_rc, self.tt_ptr, self.tt_rc, self.tt_n, self.tt_invh, self.tt_K, self.tt_off,
                self.tt_col, self.an_n, self.an_lam, self.an_zeta, self.an_pref, self.an_zint,
                self.grp_map, self.grp_rc3, self.grp_has9, self.grp_fptr,
                self.fn_col, self.fn_u, self.fn_a, self.fn_q, self.coef)

    def __repr__(self) -> str:
        return (f"FusedPlan(radial factors={self.D} in {len(self.rgrp_K)} tables, "
                f"moments={self.shape}, triplet functions={self.n_triplet_functions}, "
                f"table error={self.table_error:.1e}, "
                f"{self.coef.nbytes / 1024:.0f} KiB of tables)")

    def radial_tables(self) -> tuple:
        """Table arguments of :func:`radial_sums` / :func:`radial_gradients`."""
        return (self.rgrp_rc, self.rgrp_n, self.rgrp_invh, self.rgrp_K, self.rgrp_off,
                self.rgrp_col, self.coef)

    def descriptor_tables(self) -> tuple:
        """Table arguments of :func:`descriptor_values` / :func:`descriptor_gradients`."""
        return (self.mom_slot, self.mom_nu, self.mom_rc, self.mgrp_n, self.mgrp_invh, self.mgrp_off,
                self.mom_lmax, self.mom_ls, self.mom_nb, self.mom_ub, self.mom_hb,
                self.spec_n, self.spec_g1, self.spec_g2, self.g_ptr, self.g_src,
                self.g_w, self.coef, self.tab, self.dfac)


class FusedEnergy:
    """Atomic energies, symmetry functions, dE/dpositions and the virial of one structure.

    ``FusedEnergy(model)(batch)`` checks that no two atoms are closer than
    :data:`~mdmlkit.descriptors.batch.MIN_DISTANCE` (:class:`AtomsTooCloseError`) and
    returns ``(e_atoms [N] eV, G {el: [n_el, F]},
    dE/dpositions [N, 3] eV/Å, dE/dstrain [1, 3, 3] eV)`` as torch tensors in the model's
    dtype, the contract of :meth:`PaddedEnergy.energy_and_gradients` (CPU only).  The
    atomic networks and dE/dG run as numpy matrix products (:mod:`.networks`), so a call
    builds no torch graph.

    ``n_threads``: numba threads of every call (default: ``torch.get_num_threads()`` at
    call time, capped by numba's pool size); torch's own setting is never changed
    (:func:`numba_threads`).
    """

    def __init__(self, model, n_threads: int | None = None) -> None:
        _numba_required()
        if model.device.type != "cpu":
            raise InputError(f"the fused kernels run on the CPU, the model is on {model.device}")
        if n_threads is not None and not (isinstance(n_threads, (int, np.integer)) and n_threads >= 1):
            raise InputError(f"n_threads={n_threads!r}: need a positive integer or None")
        self.n_threads = None if n_threads is None else int(n_threads)
        numba_threads(self.n_threads)        # start numba's pool now, torch's setting kept
        self.model = model
        self.np_dtype = np.float32 if model.dtype == torch.float32 else np.float64
        self.plan = FusedPlan(model.acsf, self.np_dtype)
        self.networks = NetworkTables(model, self.np_dtype)
        self._pairs = None
        self._rows_cache = None

    def __repr__(self) -> str:
        return f"FusedEnergy(elements={self.model.elements}, dtype={self.np_dtype.__name__}, {self.plan!r})"

    def _pair_arrays(self, batch):
        st = batch._static
        if self._pairs is None or self._pairs[0] is not st:
            n = int(batch.species.numel())
            pi = batch.pair_i.cpu().numpy().astype(np.int64)
            start = np.searchsorted(pi, np.arange(n + 1)).astype(np.int64)
            self._pairs = (st, start, pi, batch.pair_j.cpu().numpy().astype(np.int64),
                           np.ascontiguousarray(batch.shifts.detach().cpu().numpy(), dtype=self.np_dtype),
                           batch.species.cpu().numpy().astype(np.int64))
        return self._pairs[1:]

    def _rows(self, batch) -> list:
        """Row indices of each element's atoms (numpy), cached with the pair arrays."""
        st = batch._static
        if self._rows_cache is None or self._rows_cache[0] is not st:
            self._rows_cache = (st, [batch.element_index[el].cpu().numpy() for el in self.model.elements])
        return self._rows_cache[1]

    def __call__(self, batch, strain: bool = True):
        if batch.n_structures != 1:
            raise InputError(f"the fused kernels take one structure, the batch has {batch.n_structures}")
        model, plan = self.model, self.plan
        start, pair_i, pair_j, shifts, species = self._pair_arrays(batch)
        pos = np.ascontiguousarray(batch.positions.detach().cpu().numpy(), dtype=self.np_dtype)
        n, dt = pos.shape[0], self.np_dtype
        threads = numba_threads(self.n_threads)
        chunks = 4 * threads                 # atoms per chunk: load balance of the moment loops
        acc = np.empty((threads, n, plan.n_el, plan.D), dt)
        closest = np.empty((threads, 2), np.float64)
        radial_sums(pos, start, pair_j, shifts, species, *plan.radial_tables(), threads, acc, closest)
        k = int(np.argmin(closest[:, 0]))
        if closest[k, 1] >= 0 and closest[k, 0] < MIN_DISTANCE ** 2:
            batch.raise_too_close(int(closest[k, 1]), math.sqrt(closest[k, 0]), MIN_DISTANCE)
        G = np.empty((n, plan.g_ptr.shape[1] - 1), dt)
        mom = np.empty((n, *plan.shape), dt)
        desc = plan.descriptor_tables()
        descriptor_values(pos, start, pair_j, shifts, species, acc, *desc, chunks, G, mom)
        g_acc = np.empty((n, plan.n_el, plan.D), dt)
        g_pair = np.empty((pair_j.shape[0], 3), dt)
        virial = np.empty((n, 3, 3), dt)
        if plan.n_triplet_functions:         # triplets, networks and triplet gradients in one pass
            e_atoms = np.empty(n, dt)
            gG = np.empty_like(G)
            triplet_pass(pos, start, pair_j, shifts, species, *plan.triplet_tables(),
                         *self.networks.packed(model), chunks, G, e_atoms, gG, g_pair)
        else:
            e_atoms, gG = self.networks.evaluate(model, G, self._rows(batch))
        descriptor_gradients(pos, start, pair_j, shifts, species, gG,
                             *desc, chunks, mom, not plan.n_triplet_functions, g_acc, g_pair)
        radial_gradients(pos, start, pair_j, shifts, species, *plan.radial_tables(), chunks,
                         g_acc, g_pair, virial)
        g_pos = np.empty((n, 3), dt)
        _scatter_pairs(pair_i, pair_j, g_pair, g_pos)
        g_strain = torch.from_numpy(virial.sum(axis=0))[None] if strain else None
        tG = torch.from_numpy(G)
        G_out = {el: tG.index_select(0, batch.element_index[el])[:, :f]
                 for el, f in zip(model.elements, plan.n_features)}
        return torch.from_numpy(e_atoms), G_out, torch.from_numpy(g_pos), g_strain
