"""Whole n2p2 model directories <-> :class:`~mdmlkit.potential.HDNNP`.

An n2p2 2G-HDNNP directory holds ``input.nn``, ``scaling.data`` and
``weights.ZZZ.data`` (file formats: :mod:`mdmlkit.io.n2p2`).
:func:`load_n2p2_model` builds an HDNNP from such a directory;
:func:`save_n2p2_model` writes one back so that it runs in n2p2 and LAMMPS
(``pair_style hdnnp``).  :func:`hdnnp_settings` is the one mapping from parsed
``input.nn`` settings to HDNNP constructor keywords.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdmlkit.descriptors import SymmetryFunctionSet
from mdmlkit.errors import MalformedFileError, MissingForceFieldError, ModelMismatchError
from mdmlkit.io.n2p2 import (
    ACTIVATION_LETTERS,
    read_input_nn,
    read_scaling_data,
    read_weights,
    weights_filename,
    write_input_nn,
    write_scaling_data,
    write_weights,
)
from mdmlkit.potential.model import HDNNP
from mdmlkit.utils import PathLike

__all__ = ["hdnnp_settings", "load_n2p2_model", "save_n2p2_model"]


def hdnnp_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """HDNNP constructor keywords from parsed ``input.nn`` settings.

    Parameters
    ----------
    settings : dict
        As returned by :func:`mdmlkit.io.n2p2.read_input_nn`.

    Returns
    -------
    dict
        ``hidden`` (per element), ``activation`` / ``output_activation`` (per
        element, mdmlkit activation names), ``scaling_mode``, ``scale_min`` and
        ``scale_max``; ``{}`` (HDNNP defaults) when the file has no network
        topology, i.e. only a descriptor section.
    """
    if settings["hidden"] is None:
        return {}
    acts = settings["activations"]
    return {"hidden": {el: list(h) for el, h in settings["hidden"].items()},
            "activation": {el: [ACTIVATION_LETTERS[a] for a in letters[:-1]] for el, letters in acts.items()},
            "output_activation": {el: ACTIVATION_LETTERS[letters[-1]] for el, letters in acts.items()},
            "scaling_mode": settings["scaling_mode"], "scale_min": settings["scale_min"],
            "scale_max": settings["scale_max"]}


def load_n2p2_model(directory: PathLike, epoch: int | None = None, dtype: torch.dtype | None = None,
                    device=None) -> HDNNP:
    """Build an :class:`~mdmlkit.potential.HDNNP` from an n2p2 model directory.

    Parameters
    ----------
    directory : path
        Holds ``input.nn``, ``scaling.data`` and the weight files.
    epoch : int, optional
        Read ``weights.ZZZ.EEEEEE.out`` written by ``nnp-train`` at that epoch
        instead of ``weights.ZZZ.data``.
    dtype : torch.dtype, optional
        Default ``torch.float64`` (n2p2 computes in double precision).
    device : str or torch.device, optional

    Raises
    ------
    MalformedFileError
        A file does not parse (path and line named), or ``input.nn`` has no
        network topology.
    MissingForceFieldError
        A weights file is missing.
    ModelMismatchError
        The files disagree (elements, numbers of functions, numbers of weights).
    """
    directory = Path(directory)
    nn_path = directory / "input.nn"
    settings = read_input_nn(nn_path)
    if settings["hidden"] is None:
        raise MalformedFileError("no network topology (global_hidden_layers_short, global_nodes_short, "
                                 "global_activation_short)", str(nn_path))
    sfs = SymmetryFunctionSet.from_settings(settings)
    model = HDNNP(sfs, **hdnnp_settings(settings), dtype=dtype or torch.float64, device=device)

    if settings["scaling_mode"] != "none" or (directory / "scaling.data").exists():
        stats = read_scaling_data(directory / "scaling.data", sfs.elements,
                                  n_features={el: sfs.n_features[el] for el in sfs.elements})
        if settings["scaling_mode"] == "scale_sigma":
            for el, s in stats.items():
                if not np.all(np.isfinite(s["Gsigma"])):
                    raise ModelMismatchError(f"{directory / 'scaling.data'}: scale_symmetry_functions_sigma "
                                             f"needs the sigma column (missing for {el})")
        model.set_scaling(stats)

    norm = settings["normalization"]
    energy_scale = 1.0 if norm is None else 1.0 / norm["conv_energy"]
    mean_energy = 0.0 if norm is None else norm["mean_energy"]
    model.set_reference_energies({el: e0 + mean_energy for el, e0 in settings["atom_energy"].items()})
    model.set_energy_scale(energy_scale)

    for el in sfs.elements:
        wpath = directory / weights_filename(el, epoch)
        if not wpath.is_file():
            raise MissingForceFieldError(f"{wpath}: weights for {el} not found")
        values = read_weights(wpath)
        sizes = model.layer_sizes(el)
        n_expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        if values.size != n_expected:
            raise ModelMismatchError(f"{wpath}: {values.size} connections, but the network of {el} "
                                     f"({'-'.join(map(str, sizes))}) needs {n_expected}")
        model.set_n2p2_connections(el, values, normalize_nodes=settings["normalize_nodes"])
    return model


def save_n2p2_model(model: HDNNP, directory: PathLike, header: str | None = None) -> Path:
    """Write ``model`` as an n2p2 model directory; returns the directory.

    Writes ``input.nn``, ``scaling.data`` and ``weights.ZZZ.data`` (each
    atomically), readable by :func:`load_n2p2_model`, n2p2's tools and LAMMPS
    ``pair_style hdnnp``.  Reference energies (eV) become ``atom_energy`` lines;
    an energy scale other than 1 is written as n2p2 normalisation (``conv_energy``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sfs = model.sfs
    elements = list(sfs.elements)
    stats = model.scaling_statistics()
    if model.scaling_mode in ("scale", "center_scale"):
        flat = [el for el in elements if np.any(stats[el]["Gmax"] - stats[el]["Gmin"] <= 0)]
        if flat:
            warnings.warn(f"symmetry functions of {flat} have Gmax == Gmin; n2p2 divides by that range "
                          "and will produce NaN for them — remove constant functions before exporting",
                          stacklevel=2)
    e_scale = model.energy_scale
    normalization = None if e_scale == 1.0 else {"mean_energy": 0.0, "conv_energy": 1.0 / e_scale,
                                                 "conv_length": 1.0, "conv_charge": 1.0}
    letters = {v: k for k, v in ACTIVATION_LETTERS.items()}
    write_input_nn(
        directory / "input.nn", elements=elements, cutoff_type=sfs.cutoff_type,
        cutoff_alpha=sfs.alpha, symfunction_lines=sfs.to_input_nn_lines(),
        hidden={el: model.layer_sizes(el)[1:-1] for el in elements},
        activations={el: [letters[a] for a in model.activations(el)] for el in elements},
        scaling_mode=model.scaling_mode, scale_min=model.scale_min, scale_max=model.scale_max,
        atom_energy=model.reference_energies, normalization=normalization,
        header=header or f"n2p2 2G-HDNNP written by mdmlkit\n{model!r}")
    write_scaling_data(directory / "scaling.data", stats)
    for el in elements:
        write_weights(directory / weights_filename(el), model.n2p2_connections(el), model.layer_sizes(el))
    return directory
