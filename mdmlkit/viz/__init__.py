"""Figures used by the notebooks (matplotlib; axes labelled with units) and the linked,
clickable landscape map (:class:`~mdmlkit.viz.linked_map.LinkedMap`, HTML + JavaScript)."""
from mdmlkit.viz.linked_map import LinkedMap
from mdmlkit.viz.plotting import (
                                  plot_basins,
                                  plot_caloric,
                                  plot_disconnectivity,
                                  plot_energy_map,
                                  plot_errors_by_kind,
                                  plot_family_occupancy,
                                  plot_latent_space,
                                  plot_learning_curves,
                                  plot_magic,
                                  plot_occupancy,
                                  plot_parity,
                                  plot_radial_functions,
                                  plot_surface,
                                  plot_training_history,
)

__all__ = [
    "plot_basins", "plot_caloric", "plot_energy_map", "plot_errors_by_kind", "plot_latent_space",
    "plot_learning_curves", "plot_magic", "plot_occupancy", "plot_parity", "plot_radial_functions",
    "plot_surface", "plot_training_history", "plot_disconnectivity", "plot_family_occupancy",
    "LinkedMap",
]
