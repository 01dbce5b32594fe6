"""Neighbour lists: integer pair indices and cell shifts (numpy, non-differentiable).

The pair list is full (both i->j and j->i) and excludes only an atom's pair
with itself in the same image; periodic images of the atom itself are
included, so cells smaller than twice the cutoff are handled.  The vector
from i to j is ``positions[j] - positions[i] + shift @ cell`` with the integer
image offsets ``shift``.  Gradients flow later, when torch computes those
vectors from positions.

Backends (``method``): ``"matscipy"`` (C, fastest), ``"ase"``
(``ase.neighborlist.primitive_neighbor_list``, numpy binning), ``"kdtree"``
(``scipy.spatial.cKDTree`` per periodic image) and ``"brute"`` (this module's
vectorised all-pairs over the needed images; O(N^2), for small systems and as an
independent check).  ``"auto"`` picks matscipy when it is installed, else ase
(``benchmarks/bench_descriptors.py`` compares them).  The binning backends
(matscipy, ase) need memory and time in proportion to the number of
cutoff-sized bins of the box around the atoms, which a few far-flung atoms (an
atom evaporated from a cluster, a periodic box of mostly vacuum) can make
astronomical; beyond :data:`MAX_BINS` bins the k-d tree is used instead.

Periodic cells are checked first (:func:`check_cell`): every periodic cell vector
must be at least :data:`MIN_CELL_LENGTH` long, every cell height (the width of the
cell perpendicular to the other periodic vectors) at least :data:`MIN_CELL_HEIGHT`,
the cell's condition number at most :data:`MAX_CELL_CONDITION`, and the periodic
images within the cutoff at most :data:`MAX_PERIODIC_IMAGES`; otherwise
:class:`~mdmlkit.errors.DegenerateCellError`.  The work of a call is therefore
bounded: no cell makes the search loop (almost) forever over images.
"""
from __future__ import annotations

import math

import numpy as np

from mdmlkit.errors import DegenerateCellError, InputError, NonFiniteError

__all__ = ["NEIGHBOR_METHODS", "MAX_BINS", "MIN_CELL_LENGTH", "MIN_CELL_HEIGHT", "MAX_CELL_CONDITION",
           "MAX_PERIODIC_IMAGES", "check_cell", "cell_heights", "have_matscipy", "image_counts",
           "neighbor_list"]

NEIGHBOR_METHODS = ("auto", "matscipy", "ase", "brute", "kdtree")
#: Most cutoff-sized bins a binning backend (matscipy, ase) may use; above, "kdtree".
MAX_BINS = 100_000
#: Shortest allowed periodic cell vector, Å.
MIN_CELL_LENGTH = 0.5
#: Smallest allowed cell height (width perpendicular to the other periodic vectors), Å.
MIN_CELL_HEIGHT = 0.5
#: Largest allowed 2-norm condition number of the periodic cell vectors.
MAX_CELL_CONDITION = 1e6
#: Most periodic images a neighbour search may visit: prod(2 n_k + 1) with
#: n_k = ceil(cutoff / height_k) over the periodic directions (a 0.5 Å cube with a
#: 9 Å cutoff needs 37^3 = 50 653).
MAX_PERIODIC_IMAGES = 100_000


def have_matscipy() -> bool:
    """True when the optional matscipy neighbour list can be imported."""
    try:
        import matscipy.neighbours  # noqa: F401
    except ImportError:
        return False
    return True


def cell_heights(cell: np.ndarray, pbc) -> np.ndarray:
    """Height of the cell along each periodic vector, Å: the length of the part of the
    vector perpendicular to the other *periodic* vectors (``V / |b x c|`` for a fully
    periodic cell, ``|a|`` with one periodic direction).  ``inf`` along non-periodic
    directions; 0 for linearly dependent periodic vectors."""
    cell = np.asarray(cell, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    heights = np.full(3, np.inf)
    per = np.flatnonzero(pbc)
    if len(per) == 0:
        return heights
    P = cell[per]
    gram = P @ P.T
    try:
        dual = np.diag(np.linalg.inv(gram))          # |dual vector|^2 within the span
    except np.linalg.LinAlgError:
        heights[per] = 0.0
        return heights
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(dual > 0, 1.0 / np.sqrt(np.abs(dual)), 0.0)
    heights[per] = np.where(np.isfinite(h), h, 0.0)
    return heights


def check_cell(cell: np.ndarray | None, pbc, cutoff: float | None = None, where: str = "") -> np.ndarray:
    """Refuse a degenerate periodic cell before any neighbour search.

    Parameters
    ----------
    cell : array [3, 3]
        Cell vectors as rows, Å (only the periodic ones are checked).
    pbc : bool or array of 3 bool
    cutoff : float, optional
        Neighbour cutoff, Å: also bound the number of periodic images to search.
    where : str
        Prefix of error messages (e.g. ``"structure 3"``).

    Returns
    -------
    array [3]
        :func:`cell_heights` (inf along non-periodic directions).

    Raises
    ------
    NonFiniteError
        NaN/inf in a periodic cell vector.
    DegenerateCellError
        A periodic vector shorter than :data:`MIN_CELL_LENGTH`, a height below
        :data:`MIN_CELL_HEIGHT`, a condition number above :data:`MAX_CELL_CONDITION`,
        or more than :data:`MAX_PERIODIC_IMAGES` images within ``cutoff``.
    """
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    pre = f"{where}: " if where else ""
    if not pbc.any():
        return np.full(3, np.inf)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float)
    if cell.shape != (3, 3):
        raise InputError(f"{pre}cell must be 3x3, got shape {cell.shape}")
    per = np.flatnonzero(pbc)
    if not np.all(np.isfinite(cell[per])):
        raise NonFiniteError(f"{pre}non-finite periodic cell vectors {cell[per].tolist()}")
    lengths = np.linalg.norm(cell, axis=1)
    for k in per:
        if lengths[k] < MIN_CELL_LENGTH:
            raise DegenerateCellError(
                f"{pre}periodic cell vector {k} {cell[k].tolist()} is {lengths[k]:.3g} Å long, "
                f"less than the minimum {MIN_CELL_LENGTH} Å (pbc={pbc.tolist()})")
    heights = cell_heights(cell, pbc)
    k = int(np.argmin(heights))                 # the thinnest direction
    if heights[k] < MIN_CELL_HEIGHT:
        raise DegenerateCellError(
            f"{pre}the cell is {heights[k]:.3g} Å high along vector {k}, less than the minimum "
            f"{MIN_CELL_HEIGHT} Å: the periodic vectors {cell[per].tolist()} are (nearly) "
            "linearly dependent")
    cond = float(np.linalg.cond(cell[per]))
    if not cond <= MAX_CELL_CONDITION:
        raise DegenerateCellError(f"{pre}the periodic cell vectors {cell[per].tolist()} are "
                                  f"ill-conditioned (condition number {cond:.3g} > {MAX_CELL_CONDITION:g})")
    if cutoff is not None:
        n = [int(math.ceil(float(cutoff) / heights[k])) for k in per]
        images = math.prod(2 * m + 1 for m in n)
        if images > MAX_PERIODIC_IMAGES:
            raise DegenerateCellError(
                f"{pre}a {cutoff:g} Å cutoff needs {images} periodic images of this cell (heights "
                f"{np.round(heights[per], 4).tolist()} Å), more than the limit {MAX_PERIODIC_IMAGES}; "
                "use a larger (super)cell")
    return heights


def image_counts(cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> np.ndarray:
    """Images needed per cell vector so that every neighbour within ``cutoff`` is found
    for atoms whose fractional coordinates lie in [0, 1): ``ceil(cutoff / height)``,
    with ``height`` the perpendicular width of the cell along that direction
    (:func:`cell_heights`, Å).  Zero for non-periodic directions."""
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    heights = check_cell(cell, pbc, cutoff)
    n = np.zeros(3, dtype=np.int64)
    for k in np.flatnonzero(pbc):
        n[k] = int(math.ceil(cutoff / heights[k]))
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


def _wrapped(positions, cell, pbc, cutoff):
    """Positions wrapped into the cell along periodic directions and the integer offsets
    ``fl`` removed (``positions = pos + fl @ cell``)."""
    n = len(positions)
    if not np.any(pbc):
        return positions, np.zeros((n, 3), np.int64)
    full, origin = _complete_cell(cell, pbc, positions, cutoff)
    frac = (positions - origin) @ np.linalg.inv(full)
    fl = np.where(pbc, np.floor(frac), 0.0)
    return positions - fl @ full, fl.astype(np.int64)


def _image_shifts(cell, pbc, cutoff):
    nimg = image_counts(cell, pbc, cutoff)
    grids = [np.arange(-m, m + 1) for m in nimg]
    shifts = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
    shift_vecs = shifts @ cell if np.any(pbc) else np.zeros((len(shifts), 3))
    return shifts, shift_vecs


def _n_bins(full_cell: np.ndarray, cutoff: float) -> float:
    """Cutoff-sized bins of a (completed, full-rank) cell."""
    if cutoff <= 0:
        return math.inf
    heights = cell_heights(full_cell, np.ones(3, bool))
    return float(np.prod(np.maximum(1.0, np.floor(heights / cutoff))))


def _kdtree(positions, cell, pbc, cutoff):
    from scipy.spatial import cKDTree

    pos, fl = _wrapped(positions, cell, pbc, cutoff)
    shifts, shift_vecs = _image_shifts(cell, pbc, cutoff)
    tree = cKDTree(pos)
    I, J, S = [], [], []
    for s, sv in zip(shifts, shift_vecs):
        m = tree.sparse_distance_matrix(cKDTree(pos + sv), cutoff, output_type="ndarray")
        keep = m["v"] < cutoff
        if not s.any():
            keep &= m["i"] != m["j"]
        i, j = m["i"][keep].astype(np.int64), m["j"][keep].astype(np.int64)
        I.append(i)
        J.append(j)
        S.append(np.broadcast_to(s, (len(i), 3)))
    i, j = np.concatenate(I), np.concatenate(J)
    s = np.concatenate(S).astype(np.int64)
    order = np.lexsort((j, i))
    i, j, s = i[order], j[order], s[order]
    return i, j, s - fl[j] + fl[i]


def _brute(positions, cell, pbc, cutoff):
    n = len(positions)
    if n == 0:
        return (np.zeros(0, np.int64),) * 2 + (np.zeros((0, 3), np.int64),)
    pos, fl = _wrapped(positions, cell, pbc, cutoff)
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
    method : {"auto", "matscipy", "ase", "brute", "kdtree"}
        Backend (see module docstring; matscipy and ase fall back to kdtree beyond
        :data:`MAX_BINS` bins).

    Returns
    -------
    i, j : int64 arrays [P]
        Pair indices, sorted by ``i`` (stable).
    shifts : int64 array [P, 3]
        Integer image offsets (zero along non-periodic directions).

    Raises
    ------
    DegenerateCellError
        A degenerate periodic cell (:func:`check_cell`).
    """
    positions = np.ascontiguousarray(positions, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float)
    if method not in NEIGHBOR_METHODS:
        raise InputError(f"unknown neighbour method {method!r}; choose from {NEIGHBOR_METHODS}")
    if method == "auto":
        method = "matscipy" if have_matscipy() else "ase"
    if not (np.isfinite(cutoff) and cutoff >= 0):
        raise InputError(f"cutoff={cutoff!r} Å must be finite and >= 0")
    check_cell(cell, pbc, cutoff)
    if len(positions) == 0:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros((0, 3), np.int64)
    if method in ("matscipy", "ase"):
        full, origin = _complete_cell(cell, pbc, positions, cutoff)
        if _n_bins(full, cutoff) > MAX_BINS:
            method = "kdtree"
    if method == "brute":
        i, j, s = _brute(positions, cell, pbc, cutoff)
    elif method == "kdtree":
        i, j, s = _kdtree(positions, cell, pbc, cutoff)
    elif method == "matscipy":
        from matscipy.neighbours import neighbour_list as _mnl

        i, j, s = _mnl("ijS", positions=positions - origin, cell=full, pbc=pbc,
                       cutoff=float(cutoff))
    else:
        from ase.neighborlist import primitive_neighbor_list

        i, j, s = primitive_neighbor_list("ijS", pbc, full, positions - origin, float(cutoff),
                                          self_interaction=False)
    i = np.asarray(i, np.int64)
    j = np.asarray(j, np.int64)
    s = np.asarray(s, np.int64).reshape(-1, 3)
    if len(i) > 1 and np.any(i[1:] < i[:-1]):     # (matscipy's lists come sorted)
        order = np.argsort(i, kind="stable")
        i, j, s = i[order], j[order], s[order]
    return i, j, s
