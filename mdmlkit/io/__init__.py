"""File formats shared with other codes: n2p2/RuNNer model and data files (:mod:`.n2p2`).

Frames themselves are read and written with :mod:`ase.io` (extxyz)."""
from mdmlkit.io.n2p2 import (read_input_data, read_input_nn, read_scaling_data, read_weights, write_input_data,
                             write_input_nn, write_scaling_data, write_weights)

__all__ = ["read_input_data", "read_input_nn", "read_scaling_data", "read_weights", "write_input_data",
           "write_input_nn", "write_scaling_data", "write_weights"]
