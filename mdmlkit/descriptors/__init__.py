"""n2p2-compatible atom-centred symmetry functions in torch.

Modules: :mod:`.cutoff` (cutoff functions), :mod:`.neighbors` (neighbour
lists), :mod:`.terms` (radial/angular terms), :mod:`.symfunc` (function
definitions, ``input.nn`` I/O, n2p2 order), :mod:`.batch` (``AtomsBatch``),
:mod:`.acsf` (the ``ACSF`` module), :mod:`.generate` (automatic sets and
CUR/correlation selection).
"""
from mdmlkit.descriptors.acsf import ACSF
from mdmlkit.descriptors.batch import AtomsBatch, build_triplets
from mdmlkit.descriptors.cutoff import CUTOFF_TYPES, cutoff_function
from mdmlkit.descriptors.generate import generate_set, long_radial_functions, select_functions
from mdmlkit.descriptors.neighbors import neighbor_list
from mdmlkit.descriptors.symfunc import SymmetryFunction, SymmetryFunctionSet, parse_symfunction_line

__all__ = [
    "ACSF", "AtomsBatch", "CUTOFF_TYPES", "SymmetryFunction", "SymmetryFunctionSet",
    "build_triplets", "cutoff_function", "generate_set", "long_radial_functions", "neighbor_list",
    "parse_symfunction_line", "select_functions",
]
