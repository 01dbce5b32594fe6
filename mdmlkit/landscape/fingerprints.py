"""Frame fingerprints: fixed-length vectors describing whole clusters.

Each fingerprint is a scikit-learn transformer over a list of ``ase.Atoms``::

    X = CoulombMatrixEigenvalues().fit_transform(frames)     # [n_frames, n_features]

Frames are treated as isolated clusters: Cartesian distances, periodic images
ignored.  Work is batched: frames with equal atom counts are stacked into
``[F, N, 3]`` arrays and processed in chunks whose temporaries stay below
``max_bytes`` (default 64 MB); there is no Python loop over atoms or pairs.
``progress=True`` shows a tqdm bar over frames.

:class:`AveragedACSF` evaluates :mod:`mdmlkit.descriptors` (torch), imported lazily.

Input is validated with :func:`mdmlkit.utils.check_frames`: an empty list raises
:class:`~mdmlkit.errors.EmptyTrajectoryError`, NaN/inf positions raise
:class:`~mdmlkit.errors.NonFiniteError` naming the frame.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from scipy.special import erf
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mdmlkit.errors import AtomsTooCloseError, InconsistentFramesError, InputError
from mdmlkit.landscape._checks import check_atoms_list

__all__ = [
    "CoulombMatrixEigenvalues", "PairDistanceHistogram", "SortedPairDistances",
    "CoordinationHistogram", "AveragedACSF", "make_fingerprint", "rdf_first_minimum",
    "FINGERPRINTS", "DEFAULT_CU_SYMFUNCS", "default_cu_symmetry_functions",
]


# ----------------------------------------------------------------------------- batching

def _pair_distances(pos: np.ndarray) -> np.ndarray:
    """``[F, N, N]`` Cartesian distances (Å) of stacked positions ``[F, N, 3]``."""
    diff = pos[:, :, None, :] - pos[:, None, :, :]
    return np.sqrt(np.einsum("fijk,fijk->fij", diff, diff))


def _upper(d: np.ndarray) -> np.ndarray:
    """``[F, P]`` upper-triangle (i < j) entries of ``[F, N, N]``, P = N(N-1)/2."""
    iu = np.triu_indices(d.shape[-1], 1)
    return d[:, iu[0], iu[1]]


def _batches(frames: Sequence[Atoms], bytes_per_frame, max_bytes: float
             ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(frame_indices, positions [F,N,3], numbers [F,N])`` of equal-size chunks."""
    sizes = np.array([len(a) for a in frames])
    for n in np.unique(sizes):
        idx = np.nonzero(sizes == n)[0]
        step = max(1, int(max_bytes // max(1, bytes_per_frame(int(n)))))
        for start in range(0, len(idx), step):
            sel = idx[start:start + step]
            pos = np.stack([frames[k].get_positions() for k in sel]).reshape(len(sel), n, 3)
            num = np.stack([frames[k].get_atomic_numbers() for k in sel]).reshape(len(sel), n)
            yield sel, pos, num


class _FrameFingerprint(TransformerMixin, BaseEstimator):
    """Shared machinery: validation, size-grouped chunking, tqdm, feature names."""

    _prefix = "fp"

    # -- subclass hooks
    def _fit(self, frames: list[Atoms]) -> None:
        """Learn what the fingerprint needs (widths, cutoffs); default: nothing."""

    def _width(self) -> int:
        raise NotImplementedError

    def _bytes_per_frame(self, n: int) -> int:
        return 8 * 4 * n * n                                      # diff [N,N,3] + d [N,N]

    def _batch(self, pos: np.ndarray, num: np.ndarray, sel: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_sizes(self, frames: list[Atoms]) -> None:
        """Raise if a frame cannot be represented with the current width."""

    # -- sklearn API
    def fit(self, frames: Sequence[Atoms] | Atoms, y: Any = None):
        """Validate ``frames`` and learn the output width (and any data-derived parameter)."""
        frames = check_atoms_list(frames, f"{type(self).__name__}.fit")
        self._fit(frames)
        self.n_features_out_ = self._width()
        return self

    def transform(self, frames: Sequence[Atoms] | Atoms) -> np.ndarray:
        """Fingerprints ``[n_frames, n_features]`` (float64)."""
        from tqdm.auto import tqdm

        frames = check_atoms_list(frames, f"{type(self).__name__}.transform")
        self._check_sizes(frames)
        width = self._width()
        out = np.zeros((len(frames), width))
        with tqdm(total=len(frames), desc=type(self).__name__, disable=not self.progress,
                  leave=False) as bar:
            for sel, pos, num in _batches(frames, self._bytes_per_frame, self.max_bytes):
                out[sel] = self._batch(pos, num, sel)
                bar.update(len(sel))
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array([f"{self._prefix}{k}" for k in range(self._width())], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


# ----------------------------------------------------------------------------- Coulomb matrix

class CoulombMatrixEigenvalues(_FrameFingerprint):
    """Sorted eigenvalues of the Coulomb matrix (Rupp et al., PRL 108, 058301 (2012)).

    ``M_ii = 0.5 Z_i^2.4`` and ``M_ij = Z_i Z_j / r_ij`` with ``r_ij`` in **Å**
    (not Bohr), as in the seed study: off-diagonal entries are in e^2/Å (Z in units
    of e), the diagonal is Rupp's dimensionless fit 0.5 Z^2.4.
    The spectrum is invariant to rotation, translation and permutation of atoms.

    Parameters
    ----------
    n_eigen : int, optional
        Number of eigenvalues kept (the first ``n_eigen`` in ``sort`` order).  ``None``:
        all of them; the width is then learned by :meth:`fit` as the largest atom count
        seen (``n_features_out_``), and :meth:`transform` before :meth:`fit` raises
        ``NotFittedError``.
    sort : {"descending", "abs"}
        Order by value (largest first) or by absolute value (largest first).
    pad : bool
        Frames with fewer eigenvalues than the width get zeros appended *after*
        sorting (``True``), or raise :class:`~mdmlkit.errors.InconsistentFramesError`
        (``False``).  With ``n_eigen=None`` a frame larger than the fitted width always
        raises.
    min_distance : float
        Two atoms closer than this (Å) raise :class:`~mdmlkit.errors.AtomsTooCloseError`.
    progress : bool
        tqdm progress bar.
    max_bytes : float
        Memory bound (bytes) of the batched temporaries.
    """

    _prefix = "cm_eig"

    def __init__(self, n_eigen: int | None = None, sort: str = "descending", pad: bool = True,
                 min_distance: float = 1e-3, progress: bool = False, max_bytes: float = 64e6):
        self.n_eigen = n_eigen
        self.sort = sort
        self.pad = pad
        self.min_distance = min_distance
        self.progress = progress
        self.max_bytes = max_bytes

    def _validate_params(self) -> None:
        if self.sort not in ("descending", "abs"):
            raise InputError(f"CoulombMatrixEigenvalues: sort must be 'descending' or 'abs', "
                             f"got {self.sort!r}")
        if self.n_eigen is not None and int(self.n_eigen) < 1:
            raise InputError(f"CoulombMatrixEigenvalues: n_eigen must be >= 1, got {self.n_eigen}")

    def _fit(self, frames: list[Atoms]) -> None:
        self._validate_params()
        sizes = {len(a) for a in frames}
        if not self.pad and len(sizes) > 1:
            self._raise_sizes(frames, "pad=False")
        self.max_atoms_ = max(sizes)

    def _width(self) -> int:
        if self.n_eigen is not None:
            return int(self.n_eigen)
        check_is_fitted(self, "max_atoms_",
                        msg="CoulombMatrixEigenvalues(n_eigen=None) learns its width in fit(); "
                            "call fit/fit_transform first or pass n_eigen")
        return int(self.max_atoms_)

    @staticmethod
    def _raise_sizes(frames: list[Atoms], why: str) -> None:
        n0 = len(frames[0])
        for k, a in enumerate(frames):
            if len(a) != n0:
                raise InconsistentFramesError(
                    f"CoulombMatrixEigenvalues: frame {k} has {len(a)} atoms but frame 0 has "
                    f"{n0} ({why})")

    def _check_sizes(self, frames: list[Atoms]) -> None:
        self._validate_params()
        width = self._width()
        sizes = np.array([len(a) for a in frames])
        if self.n_eigen is None and np.any(sizes > width):
            k = int(np.argmax(sizes > width))
            raise InconsistentFramesError(
                f"CoulombMatrixEigenvalues: frame {k} has {sizes[k]} atoms, more than the "
                f"{width} learned in fit(); refit or pass n_eigen")
        if not self.pad and np.any(sizes < width):
            k = int(np.argmax(sizes < width))
            raise InconsistentFramesError(
                f"CoulombMatrixEigenvalues: frame {k} has {sizes[k]} atoms, fewer than the "
                f"{width} eigenvalues required (pad=False)")

    def _bytes_per_frame(self, n: int) -> int:
        return 8 * 6 * n * n

    def _batch(self, pos, num, sel):
        d = _pair_distances(pos)
        n = pos.shape[1]
        z = num.astype(float)
        off = ~np.eye(n, dtype=bool)
        if n > 1:
            dmin = np.where(off, d, np.inf).min(axis=(1, 2))
            if np.any(dmin < self.min_distance):
                f = int(np.argmax(dmin < self.min_distance))
                i, j = np.unravel_index(np.argmin(np.where(off, d[f], np.inf)), (n, n))
                raise AtomsTooCloseError(
                    f"CoulombMatrixEigenvalues: frame {int(sel[f])}: atoms {i} and {j} are "
                    f"{d[f, i, j]:.3g} Å apart (< {self.min_distance} Å)")
        d[:, ~off] = 1.0                                           # avoid 0-division on diagonal
        m = z[:, :, None] * z[:, None, :] / d
        diag = 0.5 * z ** 2.4
        m[:, np.arange(n), np.arange(n)] = diag
        ev = np.linalg.eigvalsh(m)                                  # ascending, [F, N]
        if self.sort == "abs":
            order = np.argsort(-np.abs(ev), axis=1, kind="stable")
            ev = np.take_along_axis(ev, order, axis=1)
        else:
            ev = ev[:, ::-1]
        width = self._width()
        out = np.zeros((len(pos), width))
        k = min(width, n)
        out[:, :k] = ev[:, :k]
        return out

    def __repr__(self) -> str:
        return (f"CoulombMatrixEigenvalues(n_eigen={self.n_eigen}, sort={self.sort!r}, "
                f"pad={self.pad}, r in Å)")


# ----------------------------------------------------------------------------- pair distances

class PairDistanceHistogram(_FrameFingerprint):
    """Histogram of all pair distances (an un-normalised radial distribution).

    Bins are ``n_bins`` equal intervals of ``[0, r_max)`` Å; distances beyond ``r_max``
    are dropped.  With ``smearing=sigma`` (Å) each distance is a normalised Gaussian
    integrated exactly over the bins (mass beyond ``[0, r_max)`` is dropped).

    Parameters
    ----------
    r_max : float
        Upper edge of the last bin, Å.
    n_bins : int
    normalize : bool or "per_atom"
        ``True``: divide by the number of pairs N(N-1)/2 (fractions of pairs, so
        clusters of different size compare; the row sums to 1 when ``r_max`` exceeds
        the cluster diameter); ``"per_atom"``: multiply by 2/N (mean number of
        neighbours per atom in each shell; the first peak integrates to the mean
        coordination); ``False``: raw pair counts.
    smearing : float, optional
        Gaussian width sigma, Å.
    progress, max_bytes :
        as in :class:`CoulombMatrixEigenvalues`.
    """

    _prefix = "rdf"

    def __init__(self, r_max: float = 8.0, n_bins: int = 80, normalize: bool | str = True,
                 smearing: float | None = None, progress: bool = False, max_bytes: float = 64e6):
        self.r_max = r_max
        self.n_bins = n_bins
        self.normalize = normalize
        self.smearing = smearing
        self.progress = progress
        self.max_bytes = max_bytes

    def _width(self) -> int:
        if int(self.n_bins) < 1 or not self.r_max > 0:
            raise InputError(f"PairDistanceHistogram: need n_bins >= 1 and r_max > 0 Å, got "
                             f"n_bins={self.n_bins}, r_max={self.r_max}")
        if self.normalize not in (True, False, "per_atom"):
            raise InputError("PairDistanceHistogram: normalize must be True, False or 'per_atom', "
                             f"got {self.normalize!r}")
        if self.smearing is not None and not self.smearing > 0:
            raise InputError(f"PairDistanceHistogram: smearing must be > 0 Å, got {self.smearing}")
        return int(self.n_bins)

    @property
    def bin_edges(self) -> np.ndarray:
        """Bin edges ``[n_bins + 1]``, Å."""
        return np.linspace(0.0, float(self.r_max), int(self.n_bins) + 1)

    @property
    def bin_centers(self) -> np.ndarray:
        """Bin centres ``[n_bins]``, Å."""
        e = self.bin_edges
        return 0.5 * (e[1:] + e[:-1])

    def _bytes_per_frame(self, n: int) -> int:
        p = n * (n - 1) // 2
        extra = 8 * p * (int(self.n_bins) + 1) if self.smearing else 8 * 2 * p
        return 8 * 4 * n * n + extra

    def _batch(self, pos, num, sel):
        f, n = pos.shape[:2]
        r = _upper(_pair_distances(pos))                           # [F, P]
        hist = _histogram(r, self.bin_edges, self.smearing)
        if self.normalize is True:
            hist /= max(n * (n - 1) / 2, 1)
        elif self.normalize == "per_atom":
            hist *= 2.0 / n
        return hist

    def __repr__(self) -> str:
        return (f"PairDistanceHistogram(r_max={self.r_max} Å, n_bins={self.n_bins}, "
                f"normalize={self.normalize!r}, smearing={self.smearing})")


def _histogram(r: np.ndarray, edges: np.ndarray, smearing: float | None) -> np.ndarray:
    """Row-wise histogram ``[F, n_bins]`` of distances ``r [F, P]`` on equal-width ``edges``.

    With ``smearing`` (Å) each distance is a unit Gaussian integrated exactly over the
    bins; only the bins within 6 sigma of it are evaluated (the neglected tail mass is
    < 2e-9 per pair).
    """
    f = len(r)
    nb = len(edges) - 1
    width = edges[1] - edges[0]
    rows = np.broadcast_to(np.arange(f)[:, None], r.shape)
    if not smearing:
        b = np.floor((r - edges[0]) / width).astype(np.int64)
        keep = (b >= 0) & (b < nb)
        flat = rows[keep] * nb + b[keep]
        return np.bincount(flat, minlength=f * nb).reshape(f, nb).astype(float)
    scale = np.sqrt(2.0) * smearing
    n_touch = int(np.ceil(12.0 * smearing / width)) + 2
    if n_touch >= nb:                                          # dense: every bin
        cdf = 0.5 * erf((edges[None, None, :] - r[:, :, None]) / scale)
        return np.diff(cdf, axis=2).sum(axis=1)
    first = np.floor((r - 6.0 * smearing - edges[0]) / width).astype(np.int64)
    idx = first[:, :, None] + np.arange(n_touch + 1)           # edge indices [F, P, w+1]
    cdf = 0.5 * erf((edges[0] + idx * width - r[:, :, None]) / scale)
    mass = np.diff(cdf, axis=2)                                 # bins idx[..., :-1]
    bins = idx[:, :, :-1]
    keep = (bins >= 0) & (bins < nb)
    flat = np.broadcast_to(rows[:, :, None], bins.shape)[keep] * nb + bins[keep]
    return np.bincount(flat, weights=mass[keep], minlength=f * nb).reshape(f, nb)


class SortedPairDistances(_FrameFingerprint):
    """The ``n`` shortest pair distances of each frame, ascending, Å.

    ``n=None`` keeps all N(N-1)/2 distances; all frames must then have the same size
    as the ones passed to :meth:`fit` (otherwise
    :class:`~mdmlkit.errors.InconsistentFramesError`).  With ``n`` given, frames with
    fewer than ``n`` pairs raise the same error.
    """

    _prefix = "dist"

    def __init__(self, n: int | None = None, progress: bool = False, max_bytes: float = 64e6):
        self.n = n
        self.progress = progress
        self.max_bytes = max_bytes

    def _fit(self, frames: list[Atoms]) -> None:
        if self.n is None:
            n0 = len(frames[0])
            for k, a in enumerate(frames):
                if len(a) != n0:
                    raise InconsistentFramesError(
                        f"SortedPairDistances(n=None): frame {k} has {len(a)} atoms but frame 0 "
                        f"has {n0}; pass n=... to compare clusters of different size")
            self.n_pairs_ = n0 * (n0 - 1) // 2

    def _width(self) -> int:
        if self.n is not None:
            if int(self.n) < 1:
                raise InputError(f"SortedPairDistances: n must be >= 1, got {self.n}")
            return int(self.n)
        check_is_fitted(self, "n_pairs_", msg="SortedPairDistances(n=None) learns its width in "
                                               "fit(); call fit/fit_transform first or pass n")
        return int(self.n_pairs_)

    def _check_sizes(self, frames: list[Atoms]) -> None:
        width = self._width()
        for k, a in enumerate(frames):
            p = len(a) * (len(a) - 1) // 2
            if (self.n is None and p != width) or p < width:
                raise InconsistentFramesError(
                    f"SortedPairDistances: frame {k} has {len(a)} atoms ({p} pairs) but "
                    f"{width} distances are required")

    def _batch(self, pos, num, sel):
        r = np.sort(_upper(_pair_distances(pos)), axis=1)
        return r[:, :self._width()]

    def __repr__(self) -> str:
        return f"SortedPairDistances(n={self.n}, Å)"


# ----------------------------------------------------------------------------- coordination

def rdf_first_minimum(frames: Sequence[Atoms] | Atoms, r_max: float = 6.0, bin_width: float = 0.02,
                      sigma: float = 0.1) -> float:
    """Position (Å) of the first minimum of the pooled radial distribution of ``frames``.

    The pair-distance histogram of all frames (bins of ``bin_width`` Å) is smoothed with
    a Gaussian of width ``sigma`` (Å) and divided by r^2 (shape of g(r) up to a
    constant); the first minimum
    after the global maximum (the first-neighbour peak of a metal) is returned.  For Cu
    clusters it is ~3.0-3.2 Å at 0 K (the gap between the shells at 2.55 and 3.61 Å)
    and ~3.3 Å in the liquid.

    Raises :class:`~mdmlkit.errors.InputError` when no pair lies below ``r_max`` or no
    minimum follows the peak (increase ``r_max``).
    """
    frames = check_atoms_list(frames, "rdf_first_minimum")
    edges = np.arange(0.0, r_max + bin_width, bin_width)
    counts = np.zeros(len(edges) - 1)
    for _sel, pos, _num in _batches(frames, lambda n: 8 * 5 * n * n, 64e6):
        counts += _histogram(_upper(_pair_distances(pos)), edges, None).sum(axis=0)
    if counts.sum() <= 0:
        raise InputError(f"rdf_first_minimum: no pair distance below r_max={r_max} Å")
    half = int(np.ceil(4 * sigma / bin_width))
    x = np.arange(-half, half + 1) * bin_width
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    counts = np.convolve(counts, kernel / kernel.sum(), mode="same")
    r = 0.5 * (edges[1:] + edges[:-1])
    g = counts / r ** 2
    peak = int(np.argmax(g))
    dg = np.diff(g[peak:])
    rising = np.nonzero(dg > 0)[0]
    if len(rising) == 0:
        raise InputError(f"rdf_first_minimum: no minimum after the first peak at {r[peak]:.2f} Å "
                         f"below r_max={r_max} Å")
    return float(r[peak + rising[0]])


class CoordinationHistogram(_FrameFingerprint):
    """Fraction of atoms with each coordination number 0 ... ``max_cn``.

    ``CN_i = sum_j f(r_ij)`` with a hard step ``f = [r < cutoff]`` or, with
    ``smooth=w`` (Å), the Fermi function ``f = 1 / (1 + exp((r - cutoff) / w))``; a
    non-integer CN is split linearly between its two neighbouring bins, so the
    fingerprint is continuous in the positions.  CN above ``max_cn`` count in the last
    bin.  Each row sums to 1.

    Parameters
    ----------
    cutoff : float, optional
        Å.  ``None``: :meth:`fit` sets ``cutoff_`` to :func:`rdf_first_minimum` of the fit
        frames (~3.0-3.3 Å for Cu); :meth:`transform` before :meth:`fit` then raises
        ``NotFittedError``.
    max_cn : int
    smooth : float, optional
        Fermi width, Å (e.g. 0.1).
    progress, max_bytes :
        as in :class:`CoulombMatrixEigenvalues`.
    """

    _prefix = "cn"

    def __init__(self, cutoff: float | None = None, max_cn: int = 16, smooth: float | None = None,
                 progress: bool = False, max_bytes: float = 64e6):
        self.cutoff = cutoff
        self.max_cn = max_cn
        self.smooth = smooth
        self.progress = progress
        self.max_bytes = max_bytes

    def _fit(self, frames: list[Atoms]) -> None:
        self.cutoff_ = float(self.cutoff) if self.cutoff is not None else rdf_first_minimum(frames)

    def _rc(self) -> float:
        if self.cutoff is not None:
            rc = float(self.cutoff)
        else:
            check_is_fitted(self, "cutoff_", msg="CoordinationHistogram(cutoff=None) learns its "
                                                 "cutoff in fit(); call fit/fit_transform first")
            rc = self.cutoff_
        if not rc > 0:
            raise InputError(f"CoordinationHistogram: cutoff must be > 0 Å, got {rc}")
        return rc

    def _width(self) -> int:
        if int(self.max_cn) < 1:
            raise InputError(f"CoordinationHistogram: max_cn must be >= 1, got {self.max_cn}")
        return int(self.max_cn) + 1

    def coordination(self, frames: Sequence[Atoms] | Atoms) -> list[np.ndarray]:
        """Per-atom (possibly fractional) coordination numbers of each frame."""
        frames = check_atoms_list(frames, "CoordinationHistogram.coordination")
        out: list[np.ndarray] = [np.empty(0)] * len(frames)
        for sel, pos, _num in _batches(frames, self._bytes_per_frame, self.max_bytes):
            cn = self._cn(pos)
            for k, f in enumerate(sel):
                out[f] = cn[k]
        return out

    def _cn(self, pos: np.ndarray) -> np.ndarray:
        d = _pair_distances(pos)
        rc = self._rc()
        if self.smooth:
            w = np.exp(np.clip(-(d - rc) / float(self.smooth), -700, 700))
            f = w / (1.0 + w)
        else:
            f = (d < rc).astype(float)
        n = pos.shape[1]
        f[:, np.arange(n), np.arange(n)] = 0.0
        return f.sum(axis=2)                                        # [F, N]

    def _batch(self, pos, num, sel):
        cn = np.minimum(self._cn(pos), float(self._width() - 1))
        lo = np.floor(cn).astype(np.int64)
        frac = cn - lo
        hi = np.minimum(lo + 1, self._width() - 1)
        f, n = cn.shape
        nb = self._width()
        rows = np.broadcast_to(np.arange(f)[:, None], cn.shape)
        hist = np.bincount((rows * nb + lo).ravel(), weights=(1 - frac).ravel(), minlength=f * nb)
        hist += np.bincount((rows * nb + hi).ravel(), weights=frac.ravel(), minlength=f * nb)
        return hist.reshape(f, nb) / n

    def __repr__(self) -> str:
        rc = self.cutoff if self.cutoff is not None else getattr(self, "cutoff_", None)
        rcs = f"{rc:.3f} Å" if rc is not None else "auto (fit)"
        return f"CoordinationHistogram(cutoff={rcs}, max_cn={self.max_cn}, smooth={self.smooth})"


# ----------------------------------------------------------------------------- ACSF

#: Default Cu symmetry functions (n2p2 ``input.nn`` syntax, Å): five type-2 radial
#: (rs = 0) and eight type-9 angular functions, n2p2 cutoff type 6 (poly2), rc = 6 Å.
DEFAULT_CU_SYMFUNCS = (
    [f"symfunction_short Cu 2 Cu {eta} 0.0 6.0" for eta in (0.003, 0.02, 0.06, 0.2, 0.6)]
    + [f"symfunction_short Cu 9 Cu Cu {eta} {lam} {zeta} 6.0"
       for eta in (0.005, 0.03) for lam in (-1.0, 1.0) for zeta in (1.0, 4.0)]
)


def default_cu_symmetry_functions():
    """The :data:`DEFAULT_CU_SYMFUNCS` as a ``mdmlkit.descriptors.SymmetryFunctionSet``."""
    from mdmlkit.descriptors import SymmetryFunctionSet

    text = "\n".join(["number_of_elements 1", "elements Cu", "cutoff_type 6 0.0",
                      *DEFAULT_CU_SYMFUNCS]) + "\n"
    fd, path = tempfile.mkstemp(suffix=".input.nn")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return SymmetryFunctionSet.from_input_nn(path)
    finally:
        os.unlink(path)


class AveragedACSF(TransformerMixin, BaseEstimator):
    """Atom-centred symmetry functions averaged over the atoms of each frame.

    Uses :mod:`mdmlkit.descriptors` (n2p2-compatible, torch).  For each element of the
    set (in ``sfs.elements`` order) the mean of its atoms' raw symmetry-function
    vectors; an element absent from a frame contributes zeros.

    Parameters
    ----------
    symmetry_function_set : SymmetryFunctionSet or path to input.nn, optional
        ``None``: :func:`default_cu_symmetry_functions` (13 functions, rc = 6 Å).
    batch_size : int
        Frames per descriptor evaluation.
    device : str, optional
        torch device (``None``: CUDA when available).
    progress : bool
    """

    def __init__(self, symmetry_function_set: Any = None, batch_size: int = 64,
                 device: str | None = None, progress: bool = False):
        self.symmetry_function_set = symmetry_function_set
        self.batch_size = batch_size
        self.device = device
        self.progress = progress

    def _sfs(self):
        from mdmlkit.descriptors import SymmetryFunctionSet

        sfs = self.symmetry_function_set
        if sfs is None:
            return default_cu_symmetry_functions()
        if isinstance(sfs, (str, os.PathLike)):
            return SymmetryFunctionSet.from_input_nn(sfs)
        return sfs

    def fit(self, frames: Sequence[Atoms] | Atoms, y: Any = None) -> AveragedACSF:
        check_atoms_list(frames, "AveragedACSF.fit")
        self.sfs_ = self._sfs()
        self.n_features_out_ = sum(self.sfs_.n_features[el] for el in self.sfs_.elements)
        return self

    def transform(self, frames: Sequence[Atoms] | Atoms) -> np.ndarray:
        """Averaged symmetry functions ``[n_frames, sum_el n_features[el]]``."""
        import torch
        from tqdm.auto import tqdm

        from mdmlkit.descriptors import ACSF, AtomsBatch
        from mdmlkit.utils import resolve_device

        frames = check_atoms_list(frames, "AveragedACSF.transform")
        sfs = getattr(self, "sfs_", None)
        if sfs is None:
            sfs = self._sfs()
        device = resolve_device(self.device)
        acsf = ACSF(sfs).to(device, torch.float64)
        widths = [sfs.n_features[el] for el in sfs.elements]
        offsets = np.concatenate([[0], np.cumsum(widths)])
        out = np.zeros((len(frames), int(offsets[-1])))
        step = max(1, int(self.batch_size))
        with torch.no_grad(), tqdm(total=len(frames), desc="AveragedACSF",
                                   disable=not self.progress, leave=False) as bar:
            for start in range(0, len(frames), step):
                chunk = frames[start:start + step]
                batch = AtomsBatch.from_atoms(chunk, elements=sfs.elements, cutoff=sfs.cutoff,
                                              device=device, dtype=torch.float64)
                g = acsf(batch)
                structure = batch.structure
                for e, el in enumerate(sfs.elements):
                    idx = batch.element_index[el]
                    if len(idx) == 0:
                        continue
                    s = structure[idx]
                    sums = torch.zeros(len(chunk), widths[e], dtype=torch.float64, device=device)
                    sums.index_add_(0, s, g[el])
                    cnt = torch.bincount(s, minlength=len(chunk)).clamp(min=1).unsqueeze(1)
                    out[start:start + len(chunk), offsets[e]:offsets[e + 1]] = \
                        (sums / cnt).cpu().numpy()
                bar.update(len(chunk))
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        sfs = getattr(self, "sfs_", None)
        if sfs is None:
            sfs = self._sfs()
        return np.array([f"acsf_{el}{k}" for el in sfs.elements
                         for k in range(sfs.n_features[el])], dtype=object)

    def __repr__(self) -> str:
        sfs = self.symmetry_function_set
        what = "default Cu set (13 functions, rc=6 Å)" if sfs is None else repr(sfs)
        return f"AveragedACSF({what}, batch_size={self.batch_size}, device={self.device!r})"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


# ----------------------------------------------------------------------------- factory

#: Names accepted by :func:`make_fingerprint`.
FINGERPRINTS = {
    "coulomb": CoulombMatrixEigenvalues,
    "rdf": PairDistanceHistogram,
    "distances": SortedPairDistances,
    "cn": CoordinationHistogram,
    "acsf": AveragedACSF,
}


def make_fingerprint(name: str, **kwargs: Any) -> TransformerMixin:
    """Build a fingerprint by short name: ``"coulomb"``, ``"rdf"``, ``"distances"``,
    ``"cn"`` or ``"acsf"``; ``kwargs`` go to its constructor."""
    try:
        cls = FINGERPRINTS[name.lower()]
    except (KeyError, AttributeError):
        raise InputError(f"unknown fingerprint {name!r}; choose from {sorted(FINGERPRINTS)}"
                         ) from None
    return cls(**kwargs)
