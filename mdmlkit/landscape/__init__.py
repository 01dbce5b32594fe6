"""Energy-landscape mapping of MD frames: embed, find basins, interpolate, measure.

::

    from mdmlkit.landscape.fingerprints import CoulombMatrixEigenvalues
    from mdmlkit.landscape import LandscapeMap, landscape_complexity

    X = CoulombMatrixEigenvalues().fit_transform(frames)            # [n, N]
    lm = LandscapeMap(embedding="tsne", random_state=0).fit(X, energies=E_pot)
    lm.labels_, lm.representatives_, lm.basin_stats_
    x, y, E = lm.surface(grid=200)                                    # eV on the map
    lm.recluster(eps=3.0, min_samples=50)                             # clustering only

Modules: :mod:`~mdmlkit.landscape.embedding` (:class:`LandscapeMap`),
:mod:`~mdmlkit.landscape.basins` (DBSCAN/HDBSCAN, ``suggest_eps``, noise
reassignment, canonical labels, medoids, ``basin_agreement``) and
:mod:`~mdmlkit.landscape.surface` (interpolated PES, density, complexity).
"""
from mdmlkit.landscape._checks import MIN_FRAMES
from mdmlkit.landscape.basins import (MAX_CLUSTER_SAMPLES, MIN_SAMPLES_FRACTION, basin_agreement, basin_medoids,
                     canonical_labels, cluster_embedding, default_min_samples, k_distance_curve,
                     knee_index, match_labels, reassign_noise, suggest_eps)
from mdmlkit.landscape.embedding import EMBEDDINGS, LandscapeMap
from mdmlkit.landscape.surface import (Surface, density, grid_axes, hull_mask, interpolate_surface,
                      landscape_complexity, local_minima, smooth_surface)

__all__ = [
    "LandscapeMap", "EMBEDDINGS", "MIN_FRAMES", "MAX_CLUSTER_SAMPLES", "MIN_SAMPLES_FRACTION",
    "suggest_eps", "k_distance_curve", "knee_index", "default_min_samples", "cluster_embedding",
    "reassign_noise", "canonical_labels", "basin_medoids", "basin_agreement", "match_labels",
    "Surface", "grid_axes", "hull_mask", "interpolate_surface", "density", "smooth_surface",
    "local_minima", "landscape_complexity",
]
