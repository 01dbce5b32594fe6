"""Behler–Parrinello neural network potentials (2G-HDNNP), n2p2-compatible.

* :class:`HDNNP` (:mod:`.model`): one feed-forward network per element on
  n2p2-scaled symmetry functions; energies (eV), forces (eV/Å) and stress (eV/Å³)
  by autograd; ``save``/``load``.
* :mod:`.n2p2_model`: :func:`load_n2p2_model` / :func:`save_n2p2_model` (n2p2 model
  directories, run in LAMMPS ``pair_style hdnnp``); file formats in :mod:`mdmlkit.io.n2p2`.
* :class:`HDNNPCalculator` (:mod:`.calculator`): ASE calculator with extrapolation checks;
  ``compile=True`` runs it through compiled kernels: fused numba loops on a CPU
  (:mod:`mdmlkit.descriptors.kernels.fused`), one ``torch.compile``d kernel on a GPU
  (:mod:`.compiled`).
* :mod:`.extrapolation`: :func:`check_extrapolation`, :class:`ExtrapolationReport`,
  :class:`ExtrapolationTally`, :class:`ExtrapolationWarning`.
* :func:`evaluate` (:mod:`.evaluate`): error metrics of a model on labelled frames.
* :class:`Trainer` (:mod:`.training`), :class:`Committee` (:mod:`.committee`).
"""
from mdmlkit.potential.calculator import HDNNPCalculator
from mdmlkit.potential.committee import Committee, CommitteeCalculator
from mdmlkit.potential.evaluate import evaluate
from mdmlkit.potential.extrapolation import (
                                             ExtrapolationError,
                                             ExtrapolationReport,
                                             ExtrapolationTally,
                                             ExtrapolationWarning,
                                             check_extrapolation,
)
from mdmlkit.potential.model import HDNNP, AtomicNetwork
from mdmlkit.potential.n2p2_model import hdnnp_settings, load_n2p2_model, save_n2p2_model
from mdmlkit.potential.training import LiveLossPlot, Trainer

__all__ = [
    "HDNNP", "AtomicNetwork", "HDNNPCalculator",
    "ExtrapolationError", "ExtrapolationReport", "ExtrapolationTally", "ExtrapolationWarning", "check_extrapolation",
    "hdnnp_settings", "load_n2p2_model", "save_n2p2_model", "evaluate",
    "Trainer", "LiveLossPlot", "Committee", "CommitteeCalculator",
]
