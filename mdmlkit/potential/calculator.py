"""ASE calculator for :class:`~mdmlkit.potential.HDNNP` models.

>>> calc = HDNNPCalculator("model.pt")                  # doctest: +SKIP
>>> calc = HDNNPCalculator("n2p2_model_dir/")            # input.nn + scaling.data + weights
>>> atoms.calc = calc
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Energies in eV, forces in eV/Å, stress in eV/Å³ (ASE Voigt order xx, yy, zz, yz,
xz, xy; positive = tensile).  Every call builds the neighbour list anew, computes
the symmetry functions once, checks them against the training range
(:mod:`~mdmlkit.potential.extrapolation`) and differentiates the energy by autograd.
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import UnknownElementError
from ..utils import resolve_device
from .extrapolation import (DEFAULT_TOLERANCE, ExtrapolationError, ExtrapolationReport,
                            ExtrapolationWarning, find_extrapolation)
from .model import HDNNP

__all__ = ["HDNNPCalculator", "load_model"]

_MODES = ("warn", "raise", "ignore")


def load_model(source, device=None, dtype: torch.dtype | None = None) -> HDNNP:
    """An HDNNP from a model, a file written by :meth:`HDNNP.save`, or an n2p2 directory."""
    if isinstance(source, HDNNP):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            from .n2p2 import load_n2p2_model

            return load_n2p2_model(path, dtype=dtype, device=device)
        if path.is_file():
            return HDNNP.load(path, device=device, dtype=dtype)
        raise FileNotFoundError(f"{path}: no such model file or n2p2 directory")
    raise TypeError(f"expected an HDNNP or a path, got {type(source).__name__}")


class HDNNPCalculator(Calculator):
    """ASE calculator: energy, per-atom energies, forces and stress of an HDNNP.

    Parameters
    ----------
    model : HDNNP or path
        The model, a file written by :meth:`HDNNP.save`, or an n2p2 model
        directory (``input.nn``, ``scaling.data``, ``weights.ZZZ.data``).
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU.
    dtype : torch.dtype, optional
        Default: the model's.  A model on another device/dtype is copied, the
        caller's model is left as it is.
    extrapolation : {"warn", "raise", "ignore"}
        What to do when a symmetry function leaves the training range: emit an
        :class:`ExtrapolationWarning`, raise :class:`ExtrapolationError`, or skip
        the check.  The last check is kept in :attr:`last_report`.
    tolerance : float
        Relative tolerance of the range check.

    Raises (on calculation)
    -----------------------
    UnknownElementError
        The structure contains an element the model does not know (named).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device=None, dtype: torch.dtype | None = None, extrapolation: str = "warn",
                 tolerance: float = DEFAULT_TOLERANCE, **kwargs):
        super().__init__(**kwargs)
        if extrapolation not in _MODES:
            raise ValueError(f"extrapolation={extrapolation!r}, choose from {_MODES}")
        device = resolve_device(device)
        model = load_model(model, device=device, dtype=dtype)
        dtype = dtype or model.dtype
        if model.device != device or model.dtype != dtype:
            model = copy.deepcopy(model).to(device=device, dtype=dtype)
        self.model = model.eval()
        self.extrapolation = extrapolation
        self.tolerance = float(tolerance)
        self.last_report: ExtrapolationReport | None = None
        if extrapolation != "ignore" and not model.is_scaling_fitted:
            warnings.warn("the model's scaling statistics are not fitted: extrapolation is not checked",
                          stacklevel=2)

    def __repr__(self) -> str:
        return (f"HDNNPCalculator(elements={self.model.elements}, cutoff={self.model.cutoff:g} Å, "
                f"device={self.model.device}, dtype={str(self.model.dtype).replace('torch.', '')}, "
                f"extrapolation={self.extrapolation!r})")

    def _check_elements(self, atoms) -> None:
        known = set(self.model.elements)
        for k, sym in enumerate(atoms.get_chemical_symbols()):
            if sym not in known:
                raise UnknownElementError(f"atom {k} is {sym}, which the HDNNP does not know "
                                          f"(elements {self.model.elements})")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        from ..descriptors import AtomsBatch

        atoms = self.atoms
        self._check_elements(atoms)
        want_stress = "stress" in properties
        periodic = bool(np.all(atoms.pbc))
        if want_stress and not periodic:
            raise PropertyNotImplementedError("stress needs a structure periodic in all three directions")
        model = self.model
        batch = AtomsBatch.from_atoms([atoms], model.elements, model.cutoff, device=model.device,
                                      dtype=model.dtype)
        with torch.enable_grad():
            pos = batch.positions.requires_grad_(True)
            inputs = [pos]
            strain = None
            if periodic:   # the virial is cheap: always give ASE the stress of a periodic cell
                strain = torch.zeros(1, 3, 3, dtype=model.dtype, device=model.device, requires_grad=True)
                inputs.append(strain)
            G = model.descriptors(batch, strain)
            self._extrapolation_check(G, batch)
            e_atoms = model.energy_from_descriptors(G, batch)
            energy = e_atoms.sum()
            grads = torch.autograd.grad(energy, inputs)
        e = float(energy.detach())
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["energies"] = e_atoms.detach().cpu().double().numpy()
        self.results["forces"] = -grads[0].detach().cpu().double().numpy()
        if strain is not None:
            g = grads[1][0].detach().cpu().double().numpy()
            sigma = 0.5 * (g + g.T) / atoms.get_volume()
            self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)

    def _extrapolation_check(self, G, batch) -> None:
        if self.extrapolation == "ignore" or not self.model.is_scaling_fitted:
            return
        report = find_extrapolation(self.model, G, batch, self.tolerance)
        self.last_report = report
        if report:
            msg = report.summary() + "\n" + report.table(max_rows=5)
            if self.extrapolation == "raise":
                raise ExtrapolationError(msg)
            warnings.warn(msg, ExtrapolationWarning)
