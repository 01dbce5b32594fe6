"""Energy-landscape mapping of MD frames: fingerprint, embed, find basins, measure.

::

    from mdmlkit.landscape import CoulombMatrixEigenvalues, LandscapeMap, landscape_complexity

    X = CoulombMatrixEigenvalues().fit_transform(frames)            # [n, N]
    lm = LandscapeMap(embedding="tsne", random_state=0).fit(X, energies=E_pot)
    lm.labels_, lm.representatives_, lm.basin_stats_
    x, y, E = lm.surface(grid=200)                                    # eV on the map
    lm.recluster(eps=3.0, min_samples=50)                             # clustering only

Modules: :mod:`~mdmlkit.landscape.fingerprints` (frame fingerprints),
:mod:`~mdmlkit.landscape.structure` (neighbours, common-neighbour analysis, motifs),
:mod:`~mdmlkit.landscape.embedding` (:class:`LandscapeMap`),
:mod:`~mdmlkit.landscape.basins` (DBSCAN/HDBSCAN, ``suggest_eps``, noise
reassignment, canonical labels, medoids, ``basin_agreement``),
:mod:`~mdmlkit.landscape.surface` (interpolated PES, density, complexity),
:mod:`~mdmlkit.landscape.thermo` (caloric curve, heat capacity, melting, Lindemann),
:mod:`~mdmlkit.landscape.transitions` (basins versus temperature),
:mod:`~mdmlkit.landscape.explorer` (re-mapping without touching fitted maps),
:mod:`~mdmlkit.landscape.sizescan` (the whole workflow over cluster sizes),
:mod:`~mdmlkit.landscape.minima` (inherent structures),
:mod:`~mdmlkit.landscape.inherent` (maps of inherent structures),
:mod:`~mdmlkit.landscape.disconnectivity` (disconnectivity graphs).
Private helpers: ``_checks`` (input validation) and ``_binning`` (temperature bins).
"""
from mdmlkit.landscape._checks import MIN_FRAMES
from mdmlkit.landscape.basins import (
                                      MAX_CLUSTER_SAMPLES,
                                      MIN_SAMPLES_FRACTION,
                                      basin_agreement,
                                      basin_medoids,
                                      canonical_labels,
                                      cluster_embedding,
                                      default_min_samples,
                                      k_distance_curve,
                                      knee_index,
                                      match_labels,
                                      reassign_noise,
                                      suggest_eps,
)
from mdmlkit.landscape.disconnectivity import DisconnectivityGraph, TreeNode, connections_from_paths
from mdmlkit.landscape.embedding import EMBEDDINGS, LandscapeMap
from mdmlkit.landscape.explorer import MapExplorer, frames_near_temperature
from mdmlkit.landscape.fingerprints import FINGERPRINTS, CoulombMatrixEigenvalues, make_fingerprint
from mdmlkit.landscape.inherent import (
                                      FLAGGED,
                                      FamilyOccupancy,
                                      InherentStructureMap,
                                      compare_with_instantaneous,
                                      map_scores,
                                      morphology_codes,
                                      separated_families,
)
from mdmlkit.landscape.minima import (
                                      DistinctMinima,
                                      QuenchResult,
                                      QuenchSettings,
                                      classify_minimum,
                                      deduplicate_minima,
                                      quench,
)
from mdmlkit.landscape.sizescan import AnalysisSettings, SizeLandscape, SizeScan, analyse_size, run_size_scan
from mdmlkit.landscape.structure import (
    MotifClassifier,
    common_neighbour_analysis,
    icosahedral_defects,
)
from mdmlkit.landscape.surface import (
                                      Surface,
                                      density,
                                      grid_axes,
                                      hull_mask,
                                      interpolate_surface,
                                      landscape_complexity,
                                      local_minima,
                                      smooth_surface,
)
from mdmlkit.landscape.thermo import (
                                      CaloricCurve,
                                      LindemannResult,
                                      MeltingPoint,
                                      auto_smoothing,
                                      caloric_curve,
                                      heat_capacity,
                                      lindemann_index,
                                      melting_temperature,
)
from mdmlkit.landscape.transitions import (
                                      AmorphousZone,
                                      BasinOccupancy,
                                      Transitions,
                                      amorphous_zone,
                                      basin_occupancy,
                                      transition_temperatures,
)

__all__ = [
    "LandscapeMap", "EMBEDDINGS", "MIN_FRAMES", "MAX_CLUSTER_SAMPLES", "MIN_SAMPLES_FRACTION",
    "suggest_eps", "k_distance_curve", "knee_index", "default_min_samples", "cluster_embedding",
    "reassign_noise", "canonical_labels", "basin_medoids", "basin_agreement", "match_labels",
    "Surface", "grid_axes", "hull_mask", "interpolate_surface", "density", "smooth_surface",
    "local_minima", "landscape_complexity",
    "FINGERPRINTS", "CoulombMatrixEigenvalues", "make_fingerprint",
    "MotifClassifier", "common_neighbour_analysis", "icosahedral_defects",
    "CaloricCurve", "LindemannResult", "MeltingPoint", "auto_smoothing", "caloric_curve", "heat_capacity",
    "lindemann_index", "melting_temperature",
    "AmorphousZone", "BasinOccupancy", "Transitions", "amorphous_zone", "basin_occupancy",
    "transition_temperatures",
    "MapExplorer", "frames_near_temperature",
    "AnalysisSettings", "SizeLandscape", "SizeScan", "analyse_size", "run_size_scan",
    "DistinctMinima", "QuenchResult", "QuenchSettings", "classify_minimum", "deduplicate_minima", "quench",
    "FLAGGED", "FamilyOccupancy", "InherentStructureMap", "compare_with_instantaneous", "map_scores",
    "morphology_codes", "separated_families",
    "DisconnectivityGraph", "TreeNode", "connections_from_paths",
]
