"""Surfaces over a 2-D landscape map: interpolated energy, frame density, complexity.

All functions take the map ``embedding [n_frames, 2]`` (arbitrary map units) and
return grids in matplotlib's convention: axes ``x [nx]``, ``y [ny]`` and values
``[ny, nx]`` (row = y), ready for ``plt.pcolormesh(x, y, values)`` or ``contourf``.
Energies are in eV; densities in frames-fraction per map-unit^2 (integrate to 1).

Triangulation-based steps run with BLAS limited to one thread: scipy's Delaunay
computes one tiny LAPACK solve per triangle, for which thread start-up dominates.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage
from threadpoolctl import threadpool_limits

from mdmlkit.errors import InputError
from mdmlkit.landscape._checks import check_embedding, check_labels, check_values

__all__ = ["Surface", "grid_axes", "hull_mask", "interpolate_surface", "density",
           "smooth_surface", "local_minima", "landscape_complexity"]


class Surface(NamedTuple):
    """A gridded field over the map: ``x [nx]``, ``y [ny]``, ``values [ny, nx]``
    (NaN where undefined, e.g. outside the convex hull of the frames)."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray

    def __repr__(self) -> str:
        v = self.values
        fin = np.isfinite(v)
        rng = f"{np.nanmin(v):.4g} .. {np.nanmax(v):.4g}" if fin.any() else "all NaN"
        return (f"Surface({len(self.x)}x{len(self.y)} grid, x {self.x[0]:.3g}..{self.x[-1]:.3g}, "
                f"y {self.y[0]:.3g}..{self.y[-1]:.3g}, values {rng}, {fin.mean():.0%} defined)")


def _grid_shape(grid: int | tuple[int, int]) -> tuple[int, int]:
    nx, ny = (grid, grid) if np.isscalar(grid) else tuple(grid)
    nx, ny = int(nx), int(ny)
    if nx < 3 or ny < 3:
        raise InputError(f"grid must be at least 3x3 nodes, got {nx}x{ny}")
    return nx, ny


def grid_axes(embedding: Any, grid: int | tuple[int, int] = 200, padding: float = 0.02
              ) -> tuple[np.ndarray, np.ndarray]:
    """Grid axes ``(x [nx], y [ny])`` spanning the map plus ``padding`` x its extent."""
    Y = check_embedding(embedding, "grid_axes", 1)
    nx, ny = _grid_shape(grid)
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - padding * span, hi + padding * span
    return np.linspace(lo[0], hi[0], nx), np.linspace(lo[1], hi[1], ny)


def hull_mask(embedding: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean ``[ny, nx]``: grid nodes inside the convex hull of the map points."""
    from scipy.spatial import ConvexHull, Delaunay, QhullError

    Y = check_embedding(embedding, "hull_mask", 3)
    try:
        hull = Delaunay(Y[ConvexHull(Y).vertices])
    except QhullError as exc:
        raise InputError(f"hull_mask: the map points are degenerate (collinear?): {exc}") from None
    xx, yy = np.meshgrid(x, y)
    with threadpool_limits(limits=1, user_api="blas"):
        inside = hull.find_simplex(np.column_stack([xx.ravel(), yy.ravel()]))
    return inside.reshape(xx.shape) >= 0


def interpolate_surface(embedding: Any, energies: Any, grid: int | tuple[int, int] = 200,
                        method: str = "linear", smoothing: float = 0.0,
                        padding: float = 0.02, max_points: int | None = 20_000,
                        random_state: int | None = 0) -> Surface:
    """Interpolate per-frame energies (eV) onto a regular grid over the map.

    Parameters
    ----------
    embedding : array ``[n, 2]``
        Map coordinates of the frames.
    energies : array ``[n]``
        Energy of each frame, eV (e.g. ``E_pot``).
    grid : int or (nx, ny)
        Number of grid nodes per axis.
    method : {"linear", "cubic", "rbf"}
        ``"linear"``/``"cubic"``: :func:`scipy.interpolate.griddata` (piecewise-linear
        on the Delaunay triangulation / Clough-Tocher C1 cubic).  ``"rbf"``:
        :class:`scipy.interpolate.RBFInterpolator` with a thin-plate-spline kernel on
        the 64 nearest frames of each node.
    smoothing : float
        RBF smoothing (0: exact interpolation; larger values fit noisy MD energies
        by a smoother surface).  Ignored by linear/cubic.
    padding :
        Extra margin of the grid, as a fraction of the map extent.
    max_points : int, optional
        Interpolate through a uniform random subsample of this many frames (the
        triangulation of 10^5 frames costs more than it adds on a 200 x 200 grid);
        the convex hull is always that of all frames.  ``None``: all frames.

    Returns
    -------
    Surface
        ``values`` in eV, NaN outside the convex hull of the frames (no extrapolation;
        with subsampling, the thin rim between the subsample's hull and the full
        hull takes the nearest subsampled frame's energy).
    """
    from scipy.interpolate import RBFInterpolator, griddata

    Y = check_embedding(embedding, "interpolate_surface", 3)
    E = check_values(energies, len(Y), "interpolate_surface")
    x, y = grid_axes(Y, grid, padding)
    xx, yy = np.meshgrid(x, y)
    if method not in ("linear", "cubic", "rbf"):
        raise InputError(f"interpolate_surface: method must be 'linear', 'cubic' or 'rbf', "
                         f"got {method!r}")
    inside = hull_mask(Y, x, y)
    if max_points is not None and len(Y) > max_points:
        sel = np.random.default_rng(random_state).choice(len(Y), int(max_points), replace=False)
        Y, E = Y[sel], E[sel]
    values = np.full(xx.shape, np.nan)
    nodes = np.column_stack([xx[inside], yy[inside]])
    with threadpool_limits(limits=1, user_api="blas"):
        if method == "rbf":                   # many tiny local solves: one thread is fastest
            rbf = RBFInterpolator(Y, E, kernel="thin_plate_spline", smoothing=float(smoothing),
                                  neighbors=min(64, len(Y)))
            values[inside] = rbf(nodes)
        else:
            values[inside] = griddata(Y, E, nodes, method=method)
    # nodes inside the full hull but outside the subsample's: nearest frame's energy
    gap = inside & ~np.isfinite(values)
    if gap.any():
        values[gap] = griddata(Y, E, np.column_stack([xx[gap], yy[gap]]), method="nearest")
    return Surface(x, y, values)


def density(embedding: Any, grid: int | tuple[int, int] = 200, bandwidth: Any = None,
            method: str = "binned", padding: float = 0.1) -> Surface:
    """Kernel density estimate of the frames on the map (integrates to 1 over the plane).

    Parameters
    ----------
    bandwidth : float or (bx, by), optional
        Gaussian kernel standard deviation per axis, map units.  ``None``: Scott's
        rule, ``std(axis) * n^(-1/6)``.
    method : {"binned", "exact"}
        ``"binned"`` (default, O(n + grid^2), fine for 10^5-10^6 frames): frames are
        spread bilinearly onto the grid nodes (linear binning) and the counts are
        convolved with the Gaussian (:func:`scipy.ndimage.gaussian_filter`); accurate
        when the bandwidth spans a few grid cells.  ``"exact"``:
        the same diagonal-Gaussian KDE summed exactly (separable kernel, one matrix
        product per chunk of frames), O(n grid^2).
    padding :
        Extra margin of the grid (fraction of the extent) so the tails fit.

    Returns
    -------
    Surface
        density in 1/map-unit^2; mass beyond the grid is dropped.
    """
    Y = check_embedding(embedding, "density", 2)
    n = len(Y)
    x, y = grid_axes(Y, grid, padding)
    if bandwidth is None:
        bw = Y.std(axis=0) * n ** (-1.0 / 6.0)
    else:
        bw = np.broadcast_to(np.asarray(bandwidth, dtype=np.float64), (2,)).copy()
    bw = np.where(bw > 0, bw, 1e-12 + np.abs(Y).max() * 1e-6)
    dx, dy = x[1] - x[0], y[1] - y[0]
    if method == "exact":
        # separable Gaussian kernel: D[y, x] = 1/n sum_i g(y - y_i) g(x - x_i), by matmul
        values = np.zeros((len(y), len(x)))
        for start in range(0, n, 8192):
            P = Y[start:start + 8192]
            gx = np.exp(-0.5 * ((x[:, None] - P[None, :, 0]) / bw[0]) ** 2)
            gy = np.exp(-0.5 * ((y[:, None] - P[None, :, 1]) / bw[1]) ** 2)
            values += gy @ gx.T
        return Surface(x, y, values / (n * 2.0 * np.pi * bw[0] * bw[1]))
    if method != "binned":
        raise InputError(f"density: method must be 'binned' or 'exact', got {method!r}")
    fx = (Y[:, 0] - x[0]) / dx
    fy = (Y[:, 1] - y[0]) / dy
    ix = np.clip(np.floor(fx).astype(np.int64), 0, len(x) - 2)
    iy = np.clip(np.floor(fy).astype(np.int64), 0, len(y) - 2)
    tx, ty = fx - ix, fy - iy
    counts = np.zeros(len(y) * len(x))
    for ox, oy, w in ((0, 0, (1 - tx) * (1 - ty)), (1, 0, tx * (1 - ty)),
                      (0, 1, (1 - tx) * ty), (1, 1, tx * ty)):
        counts += np.bincount((iy + oy) * len(x) + ix + ox, weights=w, minlength=counts.size)
    counts = counts.reshape(len(y), len(x))
    values = ndimage.gaussian_filter(counts, sigma=(bw[1] / dy, bw[0] / dx), mode="constant",
                                     truncate=4.0)
    return Surface(x, y, values / (n * dx * dy))


def smooth_surface(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (``sigma`` in grid cells) that ignores NaN nodes.

    Normalised convolution: ``G*(v w) / G*w`` with ``w`` = 1 on defined nodes, so
    values near the hull edge are not pulled towards zero; NaN nodes stay NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if sigma <= 0:
        return v.copy()
    num = ndimage.gaussian_filter(np.where(ok, v, 0.0), sigma, mode="constant")
    den = ndimage.gaussian_filter(ok.astype(np.float64), sigma, mode="constant")
    out = np.full_like(v, np.nan)
    out[ok] = num[ok] / den[ok]
    return out


def local_minima(values: np.ndarray, size: int = 3) -> np.ndarray:
    """``[k, 2]`` (row, col) grid indices of the local minima of a gridded surface.

    A node is a minimum when it equals the minimum of its ``size x size``
    neighbourhood and the whole neighbourhood is defined (finite): minima on the
    edge of the defined region are artefacts of truncating the surface there and
    are not counted.  A flat set of connected minimum nodes (plateau) counts once
    (at one of its nodes), and only if no node of equal value next to it drains to a
    lower one.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    foot = np.ones((size, size), dtype=bool)
    interior = ndimage.binary_erosion(ok, structure=foot, border_value=0)
    filled = np.where(ok, v, np.inf)
    is_min = (filled == ndimage.minimum_filter(filled, footprint=foot, mode="nearest")) & interior
    # a plateau is a minimum only if it is entirely made of minimum nodes: a node with an
    # equal-valued neighbour that is not a minimum lies on a plateau that drains elsewhere
    r = size // 2
    pad_v = np.pad(filled, r, constant_values=np.nan)
    pad_m = np.pad(is_min, r, constant_values=False)
    leaks = np.zeros_like(is_min)
    ny, nx = v.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            nb_v = pad_v[r + dy:r + dy + ny, r + dx:r + dx + nx]
            nb_m = pad_m[r + dy:r + dy + ny, r + dx:r + dx + nx]
            leaks |= is_min & ~nb_m & (nb_v == filled)
    lab, k = ndimage.label(is_min, structure=np.ones((3, 3), dtype=bool))
    if k == 0:
        return np.zeros((0, 2), dtype=np.int64)
    index = np.arange(1, k + 1)
    keep = ~np.asarray(ndimage.maximum(leaks, lab, index), dtype=bool)
    if not keep.any():
        return np.zeros((0, 2), dtype=np.int64)
    idx = ndimage.minimum_position(filled, lab, index=index[keep])
    return np.asarray(idx, dtype=np.int64).reshape(-1, 2)


def landscape_complexity(embedding: Any, energies: Any, labels: Any = None,
                         grid: int | tuple[int, int] = 100, method: str = "linear",
                         smooth: float = 2.0, size: int = 3) -> dict[str, Any]:
    """Scalar measures of how rugged the energy landscape on the map is.

    The energies are interpolated on a ``grid`` (:func:`interpolate_surface`),
    smoothed with a Gaussian of ``smooth`` grid cells (:func:`smooth_surface`) to
    remove thermal noise, and analysed inside the convex hull of the frames.
    Numbers depend on ``grid`` and ``smooth``: compare maps at equal settings.

    Returns
    -------
    dict
        ``n_basins`` (distinct labels >= 0, ``None`` without labels),
        ``n_local_minima`` (:func:`local_minima` of the smoothed surface),
        ``minima_xy [k, 2]`` (map units) and ``minima_E [k]`` (eV) of those minima,
        ``roughness`` (standard deviation of ``|grad E|`` of the smoothed surface,
        eV per map unit), ``energy_range`` (max - min of the frame energies, eV),
        ``n_frames``.
    """
    Y = check_embedding(embedding, "landscape_complexity", 3)
    E = check_values(energies, len(Y), "landscape_complexity")
    n_basins = None
    if labels is not None:
        lab = check_labels(labels, len(Y), "landscape_complexity")
        n_basins = int(len(np.unique(lab[lab >= 0])))
    surf = interpolate_surface(Y, E, grid=grid, method=method)
    v = smooth_surface(surf.values, smooth)
    mins = local_minima(v, size=size)
    gy, gx = np.gradient(v, surf.y, surf.x)
    g = np.hypot(gx, gy)
    g = g[np.isfinite(g)]
    return {
        "n_basins": n_basins,
        "n_local_minima": int(len(mins)),
        "minima_xy": np.column_stack([surf.x[mins[:, 1]], surf.y[mins[:, 0]]]),
        "minima_E": v[mins[:, 0], mins[:, 1]],
        "roughness": float(g.std()) if g.size else float("nan"),
        "energy_range": float(E.max() - E.min()),
        "n_frames": int(len(Y)),
    }
