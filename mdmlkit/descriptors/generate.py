"""Automatic symmetry-function sets and data-driven selection.

Generation (:func:`generate_set`) follows the radial grids of n2p2's
``sfparamgen`` (``SymFuncParamGenerator.generate_radial_params``):

* ``rule="gastegger2018"`` (Gastegger et al., J. Chem. Phys. 148, 241709, 2018):
  an equidistant grid r_1..r_n = linspace(r_lower, r_upper, n);
  ``mode="shifted"``: rs = r_i, eta = 1 / (2 dr^2) with dr the grid spacing;
  ``mode="centred"``: rs = 0, eta_i = 1 / (2 r_i^2).
* ``rule="imbalzano2018"`` (Imbalzano et al., J. Chem. Phys. 148, 241730, 2018):
  ``mode="centred"``: rs = 0, eta_i = (m^(i/m) / rc)^2, i = 0..m, m = n - 1;
  ``mode="shifted"``: rs_i = rc / n^(i/n), i = 0..n, eta_i = 1/(rs_i - rs_{i+1})^2,
  keeping rs_1..rs_n (ascending).

Radial functions (type 2) are made for every (central, neighbour) element
pair.  Angular functions (type 9 by default, or 3) use their own
(rs, eta) grid (``angular_mode``, default centred, from ``angular_r_lower`` =
rc/3 to rc, i.e. the broad Gaussians usual for angular terms) combined with
every zeta in ``zetas`` and lambda in ``lambdas``, for every central element
and unordered neighbour pair, as ``sfparamgen`` does.

Selection (:func:`select_functions`) evaluates a set on training structures
and keeps, per element,

* ``method="cur"``: the greedy deterministic CUR selection of Imbalzano et
  al. (2018): standardise the feature matrix X (atoms x functions), take the
  column with the largest leverage score pi_j = sum_{xi<k} v_{xi j}^2 (top k
  right singular vectors), orthogonalise all columns to it, repeat.  Done on
  the Gram matrix C = X^T X, which the orthogonalisation updates as
  C <- C - C[:, c] C[c, :] / C[c, c], so the cost is independent of the
  number of atoms after the first product;
* ``method="correlation"``: drop constant functions, then repeatedly drop
  one of the most correlated pair (the one more correlated on average with
  the rest) until all |corr| <= ``threshold`` (and, if given, at most
  ``n_select`` remain).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from mdmlkit.descriptors.acsf import ACSF
from mdmlkit.descriptors.symfunc import SymmetryFunction, SymmetryFunctionSet, atomic_number
from mdmlkit.errors import InputError, ModelMismatchError
from mdmlkit.utils import resolve_device

RULES = ("gastegger2018", "imbalzano2018")
MODES = ("shifted", "centred")


def radial_grid(n: int, rc: float, mode: str = "shifted", rule: str = "gastegger2018",
                r_lower: float = 1.0, r_upper: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(rs, eta) pairs, Å and Å^-2, of one grid (see module docstring).

    ``r_lower``/``r_upper`` (Å) only apply to ``rule="gastegger2018"``
    (``r_upper`` defaults to ``rc``).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if rule not in RULES:
        raise InputError(f"rule must be one of {RULES}, got {rule!r}")
    if n < 1:
        raise InputError(f"need at least one grid point, got n={n}")
    if rule == "gastegger2018":
        r_upper = rc if r_upper is None else r_upper
        lo_ok = r_lower > 0 if mode == "centred" else r_lower >= 0
        if not (lo_ok and r_lower < r_upper <= rc):
            raise InputError(f"need {'0 <' if mode == 'centred' else '0 <='} r_lower < "
                             f"r_upper <= rc, got {r_lower}, {r_upper}, {rc}")
        if n == 1:
            grid = np.array([r_upper])
            dr = r_upper - r_lower
        else:
            grid = np.linspace(r_lower, r_upper, n)
            dr = grid[1] - grid[0]
        if mode == "centred":
            return np.zeros(n), 1.0 / (2.0 * grid ** 2)
        return grid, np.full(n, 1.0 / (2.0 * dr * dr))
    if mode == "centred":
        m = max(n - 1, 1)
        i = np.arange(n)
        return np.zeros(n), (m ** (i / m) / rc) ** 2
    i = np.arange(n + 1)
    rs_ext = rc / n ** (i / n)
    eta = 1.0 / (rs_ext[:-1] - rs_ext[1:]) ** 2
    return np.flip(rs_ext[1:]).copy(), np.flip(eta).copy()


def long_radial_functions(elements: Sequence[str], rc_long: float, r_from: float = 5.0
                          ) -> list[SymmetryFunction]:
    """Radial functions (type 2) that reach ``rc_long`` Å, for every (central, neighbour)
    element pair: one wide function (eta = 0, a smooth neighbour count) and Gaussians of
    width ~0.7 Å (eta = 1 Å^-2) centred every 1 Å from ``r_from`` to ``rc_long - 1`` Å.

    Added to a set with a shorter cutoff (e.g. with :meth:`HDNNP.with_functions
    <mdmlkit.potential.HDNNP.with_functions>`), they let the networks see beyond it at
    little cost: :class:`~mdmlkit.descriptors.ACSF` evaluates them on their own tier of
    neighbour tables, so the angular functions keep their shorter neighbour lists.
    """
    if not r_from < rc_long:
        raise InputError(f"need r_from < rc_long, got r_from={r_from} Å, rc_long={rc_long} Å")
    shifts = np.arange(r_from, rc_long - 1.0 + 1e-9, 1.0)
    return [SymmetryFunction(c, 2, e, eta=eta, rs=float(rs), rc=rc_long)
            for c in elements for e in elements
            for eta, rs in [(0.0, 0.0)] + [(1.0, r) for r in shifts]]


def generate_set(elements: Sequence[str], rc: float = 6.0, n_radial: int = 6,
                 n_angular: int = 2, mode: str = "shifted", rule: str = "gastegger2018",
                 cutoff_type: int = 6, alpha: float = 0.0,
                 zetas: Sequence[float] = (1.0, 4.0), lambdas: Sequence[float] = (-1.0, 1.0),
                 angular_type: int = 9, r_lower: float = 1.0, r_upper: float | None = None,
                 angular_mode: str = "centred", angular_r_lower: float | None = None
                 ) -> SymmetryFunctionSet:
    """Generate a symmetry-function set on standard parameter grids.

    Parameters
    ----------
    elements : sequence of str
        Elements, in the order they should appear in ``input.nn``.
    rc : float
        Cutoff radius of all functions, Å.
    n_radial : int
        Radial (rs, eta) pairs per (central, neighbour) element pair.
    n_angular : int
        Angular (rs, eta) pairs; each is combined with every zeta and lambda.
    mode, rule : str
        Radial grid (see module docstring): ``"shifted"``/``"centred"``,
        ``"gastegger2018"``/``"imbalzano2018"``.
    cutoff_type, alpha : int, float
        n2p2 cutoff function and inner-cutoff fraction.
    zetas, lambdas : sequences of float
        Angular exponents and signs.
    angular_type : {9, 3}
        Wide (9) or narrow (3) angular functions; 0 for none.
    r_lower, r_upper : float
        Radial grid bounds, Å (gastegger rule).
    angular_mode : str
        Grid mode of the angular (rs, eta) pairs (same rule).
    angular_r_lower : float, optional
        Lower bound of the angular grid, Å (default rc / 3).

    Returns
    -------
    SymmetryFunctionSet
        Per central element: len(elements) * n_radial radial functions and
        n_pairs * n_angular * len(zetas) * len(lambdas) angular ones, with
        n_pairs = len(elements) (len(elements) + 1) / 2.
    """
    elements = list(elements)
    if angular_type not in (0, 3, 9):
        raise InputError(f"angular_type must be 3, 9 or 0 (none), got {angular_type}")
    rs_r, eta_r = radial_grid(n_radial, rc, mode, rule, r_lower, r_upper)
    funcs: list[SymmetryFunction] = []
    for c in elements:
        for e in elements:
            funcs += [SymmetryFunction(c, 2, e, eta=float(h), rs=float(s), rc=rc,
                                       cutoff_type=cutoff_type, alpha=alpha)
                      for s, h in zip(rs_r, eta_r)]
    if angular_type and n_angular > 0:
        lo = rc / 3.0 if angular_r_lower is None else angular_r_lower
        rs_a, eta_a = radial_grid(n_angular, rc, angular_mode, rule, lo, None)
        by_z = sorted(elements, key=atomic_number)
        pairs = [(a, b) for i, a in enumerate(by_z) for b in by_z[i:]]
        for c in elements:
            for e1, e2 in pairs:
                for s, h in zip(rs_a, eta_a):
                    for z in zetas:
                        for lam in lambdas:
                            funcs.append(SymmetryFunction(
                                c, angular_type, e1, e2, eta=float(h), rs=float(s), rc=rc,
                                lambda_=float(lam), zeta=float(z), cutoff_type=cutoff_type,
                                alpha=alpha))
    return SymmetryFunctionSet(elements, funcs, cutoff_type=cutoff_type, alpha=alpha)


# ------------------------------------------------------------------ selection
def _standardise(X: np.ndarray, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Columns scaled to zero mean / unit variance; also the non-constant column mask."""
    X = np.asarray(X, dtype=float)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    scale = np.maximum(np.abs(mean), np.abs(X).max(axis=0, initial=0.0))
    ok = std > tol * np.maximum(scale, 1e-300)
    Z = np.zeros_like(X)
    Z[:, ok] = (X[:, ok] - mean[ok]) / std[ok]
    return Z, ok


def cur_select(X: np.ndarray, n_select: int, k: int = 1) -> list[int]:
    """Greedy deterministic CUR column selection (Imbalzano et al. 2018).

    Parameters
    ----------
    X : array [n_samples, n_features]
        Feature matrix (standardised internally; constant columns never chosen).
    n_select : int
        Number of columns to choose (fewer if the rank is exhausted).
    k : int
        Singular vectors entering the leverage score.

    Returns
    -------
    list[int]
        Chosen column indices in order of selection.
    """
    Z, ok = _standardise(X)
    C = Z.T @ Z
    chosen: list[int] = []
    tol = 1e-9 * max(float(np.trace(C)), 1e-300)
    for _ in range(min(n_select, int(ok.sum()))):
        w, V = np.linalg.eigh(C)                    # ascending; top-k at the end
        kk = max(1, min(k, len(w)))
        lev = (V[:, -kk:] ** 2).sum(axis=1)
        lev[~ok] = -np.inf
        lev[chosen] = -np.inf
        lev[np.diag(C) <= tol] = -np.inf            # nothing left in this column
        if not np.isfinite(lev).any():
            break
        c = int(np.argmax(lev))
        chosen.append(c)
        col = C[:, c].copy()
        C = C - np.outer(col, col) / col[c]
    return chosen


def correlation_prune(X: np.ndarray, threshold: float = 0.95,
                      n_select: int | None = None) -> list[int]:
    """Indices kept after removing constant and strongly correlated columns.

    Repeatedly drops one column of the pair with the largest |Pearson
    correlation| (the one with the larger mean |corr| to the remaining columns;
    on a tie the later column) until the largest |corr| <= ``threshold`` and at
    most ``n_select`` columns remain.  Returns sorted indices.
    """
    Z, ok = _standardise(X)
    keep = list(np.flatnonzero(ok))
    if len(keep) <= 1:
        return keep
    corr = np.abs(Z[:, keep].T @ Z[:, keep]) / len(Z)
    np.fill_diagonal(corr, 0.0)
    alive = np.ones(len(keep), dtype=bool)
    while alive.sum() > 1:
        sub = np.where(np.outer(alive, alive), corr, -1.0)
        p, q = np.unravel_index(int(np.argmax(sub)), sub.shape)
        if sub[p, q] <= threshold and (n_select is None or alive.sum() <= n_select):
            break
        mean_p = corr[p, alive].sum() - corr[p, q]
        mean_q = corr[q, alive].sum() - corr[q, p]
        lo, hi = min(p, q), max(p, q)
        mean_lo, mean_hi = (mean_p, mean_q) if p < q else (mean_q, mean_p)
        drop = lo if mean_lo > mean_hi + 1e-12 else hi
        alive[drop] = False
    return sorted(int(keep[i]) for i in np.flatnonzero(alive))


def reconstruction_error(X: np.ndarray, columns: Sequence[int]) -> float:
    """Relative Frobenius error of the least-squares reconstruction of the
    standardised X from its ``columns``: ||Z - Z_c Z_c^+ Z|| / ||Z||."""
    Z, _ = _standardise(X)
    norm = np.linalg.norm(Z)
    if norm == 0:
        return 0.0
    if len(columns) == 0:
        return 1.0
    Zc = Z[:, list(columns)]
    coef, *_ = np.linalg.lstsq(Zc, Z, rcond=None)
    return float(np.linalg.norm(Z - Zc @ coef) / norm)


def pairwise_correlations(X: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
    """Off-diagonal |Pearson correlation| of the columns of ``X`` ([n_atoms, n_functions];
    only ``columns`` if given), one value per unordered pair of non-constant columns."""
    x = np.asarray(X, dtype=float)
    if columns is not None:
        x = x[:, list(columns)]
    x = x[:, x.std(0) > 0]
    if x.shape[1] < 2:
        return np.empty(0)
    c = np.abs(np.corrcoef(x.T))
    return c[np.triu_indices_from(c, k=1)]


def select_functions(sfs: SymmetryFunctionSet, frames=None,
                     n_select: int | Mapping[str, int] | None = None,
                     method: str = "cur", threshold: float = 0.95, k: int = 1,
                     features: Mapping[str, np.ndarray] | None = None,
                     batch_size: int = 32, device=None, progress: bool = False
                     ) -> SymmetryFunctionSet:
    """Select informative symmetry functions on training structures.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        Candidate set.
    frames : sequence of Atoms, optional
        Structures to evaluate ``sfs`` on (not needed with ``features``).
    n_select : int or dict[str, int]
        Functions to keep per element (required for ``"cur"``; optional upper
        bound for ``"correlation"``).
    method : {"cur", "correlation"}
    threshold : float
        Largest allowed |correlation| (``"correlation"``).
    k : int
        Singular vectors in the CUR leverage score.
    features : dict[str, array], optional
        Precomputed ``ACSF(sfs).compute(frames)``.
    batch_size, device, progress
        Passed to the feature computation.

    Returns
    -------
    SymmetryFunctionSet
        The kept functions (n2p2 order).  Elements without atoms in
        ``frames`` keep all functions (with a warning).
    """
    if method not in ("cur", "correlation"):
        raise InputError(f"method must be 'cur' or 'correlation', got {method!r}")
    if method == "cur" and n_select is None:
        raise InputError("method='cur' needs n_select")
    if features is None:
        if frames is None:
            raise InputError("give frames or precomputed features")
        acsf = ACSF(sfs).to(resolve_device(device), torch.float64)
        features = acsf.compute(frames, batch_size=batch_size, progress=progress)
    keep: dict[str, list[int]] = {}
    for el in sfs.elements:
        X = np.asarray(features[el])
        if X.shape[1] != sfs.n_features[el]:
            raise ModelMismatchError(f"{el}: features have {X.shape[1]} columns, the set "
                             f"{sfs.n_features[el]}")
        n = n_select.get(el) if isinstance(n_select, Mapping) else n_select
        if len(X) < 2:
            warnings.warn(f"{el}: fewer than 2 atoms in the data; keeping all "
                          f"{X.shape[1]} functions", stacklevel=2)
            continue
        if method == "cur":
            keep[el] = sorted(cur_select(X, int(n), k=k))
        else:
            keep[el] = correlation_prune(X, threshold, None if n is None else int(n))
    return sfs.subset(keep)
