"""Neighbour lists: integer pair indices and cell shifts (numpy, non-differentiable).

The pair list is full (both i->j and j->i) and excludes only an atom's pair
with itself in the same image; periodic images of the atom itself are
included, so cells smaller than twice the cutoff are handled.  The vector
from i to j is ``positions[j] - positions[i] + shift @ cell`` with the integer
image offsets ``shift``.  Gradients flow later, when torch computes those
vectors from positions.

Backends (``method``): ``"matscipy"`` (C, fastest), ``"ase"``
(``ase.neighborlist.primitive_neighbor_list``, numpy binning) and ``"brute"``
(this module's vectorised all-pairs over the needed images; O(N^2), for small
systems and as an independent check).  ``"auto"`` picks matscipy when it is
installed, else ase (``benchmarks/bench_descriptors.py`` compares them).
"""
from __future__ import annotations

import math

import numpy as np

from mdmlkit.errors import InputError

NEIGHBOR_METHODS = ("auto", "matscipy", "ase", "brute")


def have_matscipy() -> bool:
    """True when the optional matscipy neighbour list can be imported."""
    try:
        import matscipy.neighbours  # noqa: F401
    except ImportError:
        return False
    return True


def image_counts(cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> np.ndarray:
    """Images needed per cell vector so that every neighbour within ``cutoff`` is found
    for atoms whose fractional coordinates lie in [0, 1): ``ceil(cutoff / width)``,
    with ``width`` the perpendicular width of the cell along that direction (Å).
    Zero for non-periodic directions."""
    cell = np.asarray(cell, dtype=float)
    n = np.zeros(3, dtype=np.int64)
    if not np.any(pbc):
        return n
    inv = np.linalg.inv(cell)            # columns are reciprocal vectors (no 2 pi)
    widths = 1.0 / np.linalg.norm(inv, axis=0)
    for k in range(3):
        if pbc[k]:
            n[k] = int(math.ceil(cutoff / widths[k]))
    return n


def _complete_cell(cell: np.ndarray, pbc: np.ndarray, positions: np.ndarray,
                   cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Replace non-periodic cell vectors by orthonormal-direction ones spanning the atoms.

    Returns the completed cell and an origin; ``positions - origin`` lie inside
    the cell along the non-periodic directions.  The origin is orthogonal to
    the periodic vectors, so subtracting it changes no periodic fractional
    coordinate (and hence no image shift).  Only used for binning: shifts
    along non-periodic directions are always zero.
    """
    cell = np.array(cell, dtype=float)
    origin = np.zeros(3)
    if np.all(pbc):
        return cell, origin
    per = np.flatnonzero(pbc)
    if len(per):
        _, _, vt = np.linalg.svd(cell[per])
        normals = vt[len(per):]          # orthonormal complement of the periodic vectors
    else:
        normals = np.eye(3)
    for d, k in zip(normals, np.flatnonzero(~pbc)):
        proj = positions @ d
        cell[k] = d * (proj.max() - proj.min() + 2.0 * cutoff)
        origin = origin + d * (proj.min() - cutoff)
    return cell, origin


def _brute(positions, cell, pbc, cutoff):
    n = len(positions)
    if n == 0:
        return (np.zeros(0, np.int64),) * 2 + (np.zeros((0, 3), np.int64),)
    if np.any(pbc):
        inv = np.linalg.inv(cell)
        frac = positions @ inv
        fl = np.where(pbc, np.floor(frac), 0.0)
        pos = positions - fl @ cell
        fl = fl.astype(np.int64)
    else:
        pos, fl = positions, np.zeros((n, 3), np.int64)
    nimg = image_counts(cell, pbc, cutoff)
    grids = [np.arange(-m, m + 1) for m in nimg]
    shifts = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
    shift_vecs = shifts @ cell if np.any(pbc) else np.zeros((len(shifts), 3))
    c2 = cutoff * cutoff
    I, J, S = [], [], []
    diff = pos[None, :, :] - pos[:, None, :]            # [i, j, 3]
    for s, sv in zip(shifts, shift_vecs):
        d = diff + sv
        mask = np.einsum("ijk,ijk->ij", d, d) < c2
        if not s.any():
            np.fill_diagonal(mask, False)
        i, j = np.nonzero(mask)
        I.append(i)
        J.append(j)
        S.append(np.broadcast_to(s, (len(i), 3)))
    i = np.concatenate(I)
    j = np.concatenate(J)
    s = np.concatenate(S).astype(np.int64)
    # undo the wrapping: r_ij = pos_w[j] - pos_w[i] + s@cell
    #                         = pos[j] - pos[i] + (s - fl[j] + fl[i])@cell
    return i.astype(np.int64), j.astype(np.int64), s - fl[j] + fl[i]


def neighbor_list(positions: np.ndarray, cell: np.ndarray | None, pbc, cutoff: float,
                  method: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i, j, shift) with ``|positions[j] - positions[i] + shift @ cell| < cutoff``.

    Parameters
    ----------
    positions : array [N, 3]
        Cartesian positions, Å.
    cell : array [3, 3] or None
        Cell vectors as rows, Å (ignored along non-periodic directions; may be
        zero/None for clusters).
    pbc : bool or array of 3 bool
        Periodicity per cell vector.
    cutoff : float
        Cutoff radius, Å.
    method : {"auto", "matscipy", "ase", "brute"}
        Backend (see module docstring).

    Returns
    -------
    i, j : int64 arrays [P]
        Pair indices, sorted by ``i`` (stable).
    shifts : int64 array [P, 3]
        Integer image offsets (zero along non-periodic directions).
    """
    positions = np.ascontiguousarray(positions, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float)
    if method not in NEIGHBOR_METHODS:
        raise InputError(f"unknown neighbour method {method!r}; choose from {NEIGHBOR_METHODS}")
    if method == "auto":
        method = "matscipy" if have_matscipy() else "ase"
    if len(positions) == 0:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros((0, 3), np.int64)
    if method == "brute":
        i, j, s = _brute(positions, cell, pbc, cutoff)
    elif method == "matscipy":
        from matscipy.neighbours import neighbour_list as _mnl

        full, origin = _complete_cell(cell, pbc, positions, cutoff)
        i, j, s = _mnl("ijS", positions=positions - origin, cell=full, pbc=pbc,
                       cutoff=float(cutoff))
    else:
        from ase.neighborlist import primitive_neighbor_list

        full, origin = _complete_cell(cell, pbc, positions, cutoff)
        i, j, s = primitive_neighbor_list("ijS", pbc, full, positions - origin, float(cutoff),
                                          self_interaction=False)
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    s = np.asarray(s, np.int64).reshape(-1, 3)
    order = np.argsort(i, kind="stable")
    return i[order], j[order], s[order]
