"""Compiled kernels for symmetry functions: fused numba loops for MD on a CPU (:mod:`.fused`).

They read only the documented :class:`~mdmlkit.descriptors.acsf.ACSFPlan` of an
:class:`~mdmlkit.descriptors.ACSF` module; the padded-torch path lives in
:mod:`mdmlkit.descriptors.acsf` itself.
"""
from mdmlkit.descriptors.kernels.fused import FusedEnergy, FusedPlan, tabulate_radial

__all__ = ["FusedEnergy", "FusedPlan", "tabulate_radial"]
