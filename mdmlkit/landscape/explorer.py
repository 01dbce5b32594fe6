"""Re-map and re-cluster the sizes of a scan interactively, without touching the scan.

The notebook's explorer widget calls :meth:`MapExplorer.view` on every slider move.
Fitted maps of the scan are never changed: other embeddings are fitted on a
:func:`sklearn.base.clone` of the size's map (cached per setting), and every
re-clustering works on a deep copy.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
from sklearn.base import clone

from mdmlkit.errors import InputError
from mdmlkit.landscape.embedding import LandscapeMap
from mdmlkit.landscape.sizescan import SizeLandscape, SizeScan

__all__ = ["MapView", "MapExplorer", "frames_near_temperature"]


class MapView(NamedTuple):
    """One size (``landscape``) and a map of its frames (``map``, a private copy)."""

    landscape: SizeLandscape
    map: LandscapeMap


class MapExplorer:
    """Maps of a :class:`~mdmlkit.landscape.sizescan.SizeScan` under other settings.

    Parameters
    ----------
    scan : SizeScan
        Fitted scan; neither it nor its maps are modified.
    """

    def __init__(self, scan: SizeScan):
        self.scan = scan
        self._fitted: dict[tuple[int, str, float], LandscapeMap] = {}

    def base_map(self, size: int, embedding: str, perplexity: float) -> LandscapeMap:
        """The scan's map when the settings match it, else a fitted clone (cached).

        Treat the result as read-only; :meth:`view` returns copies.
        """
        if int(size) not in self.scan.sizes:
            raise InputError(f"size {size} is not in the scan (sizes {sorted(self.scan.sizes)})")
        sl = self.scan[size]
        if (embedding, float(perplexity)) == (sl.map.embedding, float(sl.map.perplexity)):
            return sl.map
        key = (int(size), str(embedding), float(perplexity))
        if key not in self._fitted:
            m = clone(sl.map).set_params(embedding=embedding, perplexity=float(perplexity))
            self._fitted[key] = m.fit(sl.features, energies=sl.table["E_pot"])
        return self._fitted[key]

    def view(self, size: int, embedding: str, perplexity: float, eps: float | None = None,
             min_samples: int | None = None) -> MapView:
        """A copy of the map for ``(size, embedding, perplexity)`` re-clustered with
        ``eps`` (map units) and ``min_samples`` (``None``: automatic)."""
        m = copy.deepcopy(self.base_map(size, embedding, perplexity))
        return MapView(self.scan[size], m.recluster(eps=eps, min_samples=min_samples))


def frames_near_temperature(temperatures: np.ndarray, T: float, tol_K: float = 25.0) -> np.ndarray:
    """Boolean mask of the frames whose temperature is within ``tol_K`` of ``T`` (K)."""
    if not tol_K >= 0:
        raise InputError(f"tol_K must be >= 0 K, got {tol_K}")
    return np.abs(np.asarray(temperatures, float) - float(T)) <= tol_K
