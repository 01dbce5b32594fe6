"""Structure of MD frames: partial radial distribution functions of periodic cells."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mdmlkit.errors import EmptyTrajectoryError, InputError
from mdmlkit.utils import check_frames

__all__ = ["partial_rdfs"]


def partial_rdfs(frames: Sequence[Atoms], pairs: Sequence[tuple[str, str]] | None = None,
                 r_max: float = 6.0, dr: float = 0.04, source: str = "frames"
                 ) -> tuple[np.ndarray, dict[tuple[str, str], np.ndarray]]:
    """Partial radial distribution functions ``g_ab(r)`` averaged over periodic frames.

    ``g_ab(r) = Σ_frames n_ab(r) / Σ_frames (N_a N_b / V) · 4π/3 (r₊³ − r₋³)``, where
    ``n_ab(r)`` counts ordered pairs (centre of element ``a``, neighbour of element ``b``,
    periodic images included, so cells smaller than ``2 r_max`` work) with a distance in
    the shell ``[r₋, r₊)``.  For a homogeneous system ``g → 1`` at large r (``1 - 1/N_a``
    for ``a == b``).

    Parameters
    ----------
    frames : list of ase.Atoms
        Periodic structures (pbc in all directions; any sizes and compositions).
    pairs : list of (a, b), optional
        Element pairs; default every unordered pair of the elements present
        (``(a, b)`` with ``a`` before ``b`` in order of first appearance).
    r_max, dr : float
        Largest distance and bin width, Å.
    source : str
        Name used in error messages.

    Returns
    -------
    r : ndarray [n_bins]
        Bin centres, Å.
    g : dict (a, b) -> ndarray [n_bins]
        ``g_ab(r)`` (dimensionless).
    """
    from ase.neighborlist import neighbor_list

    frames = list(frames)
    if not frames:
        raise EmptyTrajectoryError(f"{source}: no frames for partial_rdfs")
    check_frames(frames, source=source)
    if not (np.isfinite(r_max) and np.isfinite(dr) and r_max > 0 and 0 < dr < r_max):
        raise InputError(f"partial_rdfs: need 0 < dr < r_max (Å), got dr={dr}, r_max={r_max}")
    for k, at in enumerate(frames):
        if not at.pbc.all() or at.cell.rank < 3:
            raise InputError(f"{source}: frame {k} is not a periodic cell (pbc {at.pbc.tolist()}); "
                             "partial_rdfs normalises by the cell volume")
    if pairs is None:
        els = list(dict.fromkeys(s for at in frames for s in at.get_chemical_symbols()))
        pairs = [(a, b) for i, a in enumerate(els) for b in els[i:]]
    pairs = [(str(a), str(b)) for a, b in pairs]
    edges = np.arange(0.0, r_max + dr / 2, dr)
    hist = {p: np.zeros(len(edges) - 1) for p in pairs}
    norm = {p: 0.0 for p in pairs}
    for at in frames:
        i, j, d = neighbor_list("ijd", at, float(edges[-1]))
        sym = np.asarray(at.get_chemical_symbols())
        vol = at.get_volume()
        for a, b in pairs:
            hist[a, b] += np.histogram(d[(sym[i] == a) & (sym[j] == b)], edges)[0]
            norm[a, b] += (sym == a).sum() * (sym == b).sum() / vol
    missing = [p for p in pairs if norm[p] == 0]
    if missing:
        raise InputError(f"{source}: no frame contains both elements of pair(s) {missing}")
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), {p: hist[p] / (norm[p] * shell) for p in pairs}
