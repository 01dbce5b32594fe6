"""Behler–Parrinello neural network potentials (2G-HDNNP), n2p2-compatible.

* :class:`HDNNP` (:mod:`.model`): one feed-forward network per element on
  n2p2-scaled symmetry functions; energies (eV), forces (eV/Å) and stress (eV/Å³)
  by autograd; ``save``/``load``.
* :mod:`.n2p2`: ``input.data``, ``input.nn``, ``scaling.data`` and weight files;
  :func:`load_n2p2_model` / :func:`save_n2p2_model` (runs in LAMMPS ``pair_style hdnnp``).
* :class:`HDNNPCalculator` (:mod:`.calculator`): ASE calculator with extrapolation checks;
  ``compile=True`` runs it through compiled kernels: fused numba loops on a CPU
  (:mod:`.fused`), one ``torch.compile``d kernel on a GPU (:mod:`.compiled`).
* :mod:`.extrapolation`: :func:`check_extrapolation`, :class:`ExtrapolationReport`,
  :class:`ExtrapolationWarning`.
* :class:`Trainer` (:mod:`.training`), :class:`Committee` (:mod:`.committee`).
"""
from mdmlkit.potential.calculator import HDNNPCalculator
from mdmlkit.potential.extrapolation import (ExtrapolationError, ExtrapolationReport, ExtrapolationWarning,
                            check_extrapolation)
from mdmlkit.potential.model import HDNNP, AtomicNetwork
from mdmlkit.io.n2p2 import (load_n2p2_model, read_input_data, read_input_nn, read_scaling_data, read_weights,
                   save_n2p2_model, write_input_data, write_scaling_data, write_weights)

__all__ = [
    "HDNNP", "AtomicNetwork", "HDNNPCalculator",
    "ExtrapolationError", "ExtrapolationReport", "ExtrapolationWarning", "check_extrapolation",
    "load_n2p2_model", "save_n2p2_model", "read_input_data", "write_input_data", "read_input_nn",
    "read_scaling_data", "write_scaling_data", "read_weights", "write_weights",
    "Trainer", "Committee", "CommitteeCalculator",
]

_LAZY = {"Trainer": "mdmlkit.potential.training.trainer", "LiveLossPlot": "mdmlkit.potential.training.trainer", "Committee": "mdmlkit.potential.committee",
         "CommitteeCalculator": "mdmlkit.potential.committee"}


def __getattr__(name):  # lazy: training/committee pull in more machinery
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
