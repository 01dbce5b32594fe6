"""Files: frames as extended XYZ (:mod:`.frames`: validated reads, atomic reproducible
writes) and the n2p2/RuNNer model and data files shared with other codes (:mod:`.n2p2`).  Whole n2p2
model directories are read/written by :func:`mdmlkit.potential.load_n2p2_model` /
:func:`~mdmlkit.potential.save_n2p2_model`.
"""
from mdmlkit.io.frames import read_frames, write_frames
from mdmlkit.io.n2p2 import (
                             ACTIVATION_LETTERS,
                             SCALING_MODES,
                             n2p2_element_order,
                             parse_input_nn,
                             read_input_data,
                             read_input_nn,
                             read_scaling_data,
                             read_weights,
                             weights_filename,
                             write_input_data,
                             write_input_nn,
                             write_scaling_data,
                             write_weights,
)

__all__ = ["ACTIVATION_LETTERS", "SCALING_MODES", "n2p2_element_order", "parse_input_nn", "read_input_data",
           "read_input_nn", "read_scaling_data", "read_weights", "weights_filename", "write_input_data",
           "write_input_nn", "write_scaling_data", "write_weights", "read_frames", "write_frames"]
