"""n2p2-compatible atom-centred symmetry functions in torch.

Modules: :mod:`.cutoff` (cutoff functions), :mod:`.neighbors` (neighbour
lists), :mod:`.terms` (radial/angular terms), :mod:`.symfunc` (function
definitions, n2p2 order; ``input.nn`` is parsed by :mod:`mdmlkit.io.n2p2`),
:mod:`.batch` (``AtomsBatch``), :mod:`.acsf` (the ``ACSF`` module and the
``ACSFPlan`` its compiled kernels read), :mod:`.generate` (automatic sets and
CUR/correlation selection), :mod:`.kernels.fused` (numba kernels for MD on a CPU).
"""
from mdmlkit.descriptors.acsf import ACSF, ACSFPlan, MomentTables
from mdmlkit.descriptors.batch import AtomsBatch, build_triplets
from mdmlkit.descriptors.cutoff import CUTOFF_TYPES, cutoff_function
from mdmlkit.descriptors.generate import (
                                          cur_select,
                                          generate_set,
                                          long_radial_functions,
                                          pairwise_correlations,
                                          reconstruction_error,
                                          select_functions,
)
from mdmlkit.descriptors.neighbors import have_matscipy, neighbor_list
from mdmlkit.descriptors.symfunc import SymmetryFunction, SymmetryFunctionSet, atomic_number, parse_symfunction_line

__all__ = [
    "ACSF", "ACSFPlan", "AtomsBatch", "CUTOFF_TYPES", "MomentTables", "SymmetryFunction",
    "SymmetryFunctionSet", "atomic_number", "build_triplets", "cutoff_function", "generate_set",
    "have_matscipy", "long_radial_functions", "neighbor_list", "parse_symfunction_line",
    "select_functions", "cur_select", "pairwise_correlations", "reconstruction_error",
]
