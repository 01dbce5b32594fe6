"""The two systems the notebooks study, and their reference calculators.

* :mod:`.cu_clusters` — Cu_n nanoclusters: icosahedra, decahedra, octahedra,
  global-minimum search for non-magic sizes, the EMT calculator.
* :mod:`.pyrochlore` — La2Zr2O7 cells: primitive/conventional cells, strain,
  O vacancies, anion Frenkel pairs, antisites, inversion.
* :mod:`.la2zr2o7` — the shipped La2Zr2O7 data set (load, validate, label with any
  ASE calculator, split, summarise).
* :mod:`.teacher` — the CHGNet teacher (optional extra) and a toy fallback.
"""
from mdmlkit.systems.cu_clusters import cu_calculator, magic_sizes, make_cluster, relax
from mdmlkit.systems.la2zr2o7 import data_dir, load_hot_test, load_la2zr2o7, load_pool
from mdmlkit.systems.pyrochlore import conventional_cell, primitive_cell, supercell
from mdmlkit.systems.teacher import TeacherUnavailableError, chgnet_calculator, resolve_teacher

__all__ = [
    "cu_calculator", "magic_sizes", "make_cluster", "relax", "data_dir", "load_la2zr2o7", "load_hot_test", "load_pool",
    "conventional_cell", "primitive_cell", "supercell", "TeacherUnavailableError",
    "chgnet_calculator", "resolve_teacher",
]
