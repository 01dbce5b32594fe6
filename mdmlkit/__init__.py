"""mdmlkit — machine learning on molecular dynamics.

The folders are the architecture:

* **Landscape mapping of nanocluster MD** — :mod:`mdmlkit.md` (heating runs, plain
  runs, LAMMPS), :mod:`mdmlkit.landscape` (fingerprints, common-neighbour analysis,
  embedding, basins, energy surface, thermodynamics, size scans).
* **Behler–Parrinello potentials** — :mod:`mdmlkit.descriptors` (n2p2-compatible
  symmetry functions and their kernels), :mod:`mdmlkit.potential` (HDNNP, training,
  committee, extrapolation, ASE calculator), :mod:`mdmlkit.io` (n2p2 files).
* **Active learning** — :mod:`mdmlkit.active` (queries, oracles, loop, on-the-fly MD,
  learning-curve benchmark).
* The systems studied — :mod:`mdmlkit.systems` (Cu clusters, La2Zr2O7 structures and
  data set, the CHGNet teacher); figures — :mod:`mdmlkit.viz`; notebook tooling —
  :mod:`mdmlkit.nbtools`; errors — :mod:`mdmlkit.errors`.

The most used names are available from the top level (imported on first use)::

    import mdmlkit
    lm = mdmlkit.LandscapeMap().fit(X, energies=E)
    calc = mdmlkit.HDNNPCalculator(mdmlkit.HDNNP.load("model.pt"))

Units follow ASE: Å, eV, eV/Å, K, fs.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: top-level name -> module that defines it (imported lazily, so ``import mdmlkit.errors``
#: does not pull in torch).
_EXPORTS = {
    "heat": "mdmlkit.md",
    "read_trajectory": "mdmlkit.md",
    "frame_table": "mdmlkit.md",
    "LandscapeMap": "mdmlkit.landscape",
    "SymmetryFunctionSet": "mdmlkit.descriptors",
    "ACSF": "mdmlkit.descriptors",
    "HDNNP": "mdmlkit.potential",
    "HDNNPCalculator": "mdmlkit.potential",
    "Trainer": "mdmlkit.potential",
    "Committee": "mdmlkit.potential",
    "ActiveLearningLoop": "mdmlkit.active",
    "Oracle": "mdmlkit.active",
}
_SUBPACKAGES = ("active", "descriptors", "errors", "io", "landscape", "md", "nbtools", "potential",
                "systems", "utils", "viz")

__all__ = ["__version__", *_SUBPACKAGES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mdmlkit.{name}")
    raise AttributeError(f"module 'mdmlkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
