"""The high-dimensional neural network potential (Behler–Parrinello, 2G-HDNNP).

Energy of a structure (eV)::

    E = Σ_i [ energy_scale · NN_{el(i)}( scale_{el(i)}( G_i ) ) + E0_{el(i)} ]

with ``G_i`` the raw symmetry functions of atom i (:class:`mdmlkit.descriptors.ACSF`),
``scale_el`` the n2p2 scaling of element el (:mod:`mdmlkit.potential.scaling`;
statistics ``G_min``/``G_max``/``G_mean``/``G_sigma`` stored as buffers), ``NN_el``
one feed-forward network per element and ``E0_el`` the per-element reference
energy (n2p2's ``atom_energy``).  ``energy_scale`` is 1 unless a model was
imported with n2p2 data-set normalisation.  Forces F = −∂E/∂R (eV/Å) and the stress
σ = (1/V) ∂E/∂ε (eV/Å³, ASE sign convention) come from autograd.

Interface (used by the trainer, the committee and the ASE calculator)
--------------------------------------------------------------------
``HDNNP(sfs, hidden=(25, 25), activation="tanh", scaling_mode="center_scale",
scale_min=0.0, scale_max=1.0, output_activation="linear", dtype=torch.float64,
device=None, seed=None)``

* ``model.sfs``, ``model.elements``, ``model.cutoff`` (Å), ``model.n_features``
* ``model(batch) -> Tensor[S]`` energies (eV) of an
  :class:`~mdmlkit.descriptors.AtomsBatch` (built with ``model.elements`` and
  ``model.cutoff``, same dtype/device as the model)
* ``model.atomic_energies(batch) -> Tensor[N]`` (eV, reference energies included)
* ``model.energy_and_forces(batch, create_graph=False) -> (E [S], F [N, 3])``
* ``model.energy_forces_stress(batch) -> (E [S], F [N, 3], stress [S, 3, 3])``
* ``model.descriptors(batch)`` raw G per element; ``model.energy_from_descriptors``
* ``model.fit_scaling(frames_or_G)``, ``model.fit_reference_energies(frames, energies=None)``
* ``model.reset_parameters()`` (fresh Glorot weights from the global torch RNG)
* ``model.save(path)`` / ``HDNNP.load(path, device=None, dtype=None)``;
  n2p2 files: :func:`mdmlkit.io.n2p2.save_n2p2_model` / ``load_n2p2_model``

Both float32 and float64 work (``model.to(torch.float32)``); n2p2 comparisons use
float64.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mdmlkit.descriptors import ACSF, AtomsBatch, SymmetryFunctionSet
from mdmlkit.errors import (
    CorruptCheckpointError,
    EmptyTrajectoryError,
    InputError,
    MissingLabelError,
    ModelMismatchError,
    UnknownElementError,
)
from mdmlkit.potential.activations import Activation, canonical_activation
from mdmlkit.potential.scaling import SCALING_MODE_NAMES, SymmetryFunctionScaling
from mdmlkit.utils import atomic_torch_save, load_torch_file, resolve_device

__all__ = ["HDNNP", "AtomicNetwork"]

_FORMAT = "mdmlkit.hdnnp/1"


class AtomicNetwork(nn.Module):
    """Feed-forward network of one element: G' [n, n_in] -> atomic energy [n].

    Parameters
    ----------
    sizes : sequence of int
        Widths input, hidden..., 1.
    activations : sequence of str
        One per layer after the input (hidden layers, then output).
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[str]):
        super().__init__()
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2 or sizes[-1] != 1 or min(sizes) < 1:
            raise InputError(f"network sizes {sizes}: need input width >= 1, hidden widths >= 1, output 1")
        if len(activations) != len(sizes) - 1:
            raise InputError(f"{len(activations)} activations for {len(sizes) - 1} layers")
        self.sizes = sizes
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(Activation(a) for a in activations)

    @property
    def activation_names(self) -> list[str]:
        return [a.name for a in self.acts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin, act in zip(self.linears, self.acts):
            x = act(lin(x))
        return x.squeeze(-1)

    def reset_parameters(self) -> None:
        """Glorot-uniform weights, zero biases (draws from the global torch RNG)."""
        for lin in self.linears:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def extra_repr(self) -> str:
        return "-".join(map(str, self.sizes)) + " (" + " ".join(self.activation_names) + ")"


def _per_element(value, elements: Sequence[str], name: str, convert) -> dict[str, Any]:
    """Expand a global value or a mapping element -> value to a dict over ``elements``."""
    if isinstance(value, Mapping):
        missing = [el for el in elements if el not in value]
        if missing:
            raise InputError(f"{name} gives no value for {missing}")
        return {el: convert(value[el]) for el in elements}
    return {el: convert(value) for el in elements}


class HDNNP(nn.Module):
    """Behler–Parrinello neural network potential (one network per element).

    Parameters
    ----------
    sfs : SymmetryFunctionSet or path
        Symmetry functions (or an n2p2 ``input.nn`` to read them from).
    hidden : sequence of int, or dict element -> sequence
        Hidden-layer widths (n2p2 ``global_nodes_short``).
    activation : str, sequence of str, or dict element -> either
        Hidden-layer activation(s): "tanh", "softplus", "logistic", "relu",
        "gaussian", "cos", "linear", ... or n2p2 letters ("t", "p", "s", ...).
    scaling_mode : {"center_scale", "scale", "center", "scale_sigma", "none"}
        n2p2 symmetry-function scaling (see :mod:`mdmlkit.potential.scaling`).
    scale_min, scale_max : float
        Target interval of the scaled functions (n2p2 ``scale_min_short``/``scale_max_short``).
    output_activation : str or dict
        Activation of the output neuron (n2p2 uses linear).
    dtype : torch.dtype
        float64 (default, as n2p2) or float32.
    device : str or torch.device, optional
        Default CPU.
    seed : int, optional
        Seed for the initial weights (global RNG left untouched); else the
        global torch RNG is used.

    Attributes
    ----------
    networks : ModuleDict element -> AtomicNetwork
    scalers : ModuleDict element -> SymmetryFunctionScaling
    acsf : ACSF
    """

    def __init__(self, sfs, hidden: Sequence[int] | Mapping[str, Sequence[int]] = (25, 25),
                 activation: str | Sequence[str] | Mapping[str, Any] = "tanh",
                 scaling_mode: str = "center_scale", scale_min: float = 0.0, scale_max: float = 1.0,
                 output_activation: str | Mapping[str, str] = "linear",
                 dtype: torch.dtype = torch.float64, device=None, seed: int | None = None):
        super().__init__()
        if isinstance(sfs, (str, os.PathLike)):
            sfs = SymmetryFunctionSet.from_input_nn(sfs)
        if scaling_mode not in SCALING_MODE_NAMES:
            raise InputError(f"scaling_mode {scaling_mode!r} not in {SCALING_MODE_NAMES}")
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.sfs = sfs
        elements = list(sfs.elements)
        empty = [el for el in elements if sfs.n_features[el] == 0]
        if empty:
            raise InputError(f"elements {empty} have no symmetry functions")
        self.scaling_mode = scaling_mode
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)

        hid = _per_element(hidden, elements, "hidden", lambda h: [int(n) for n in h])

        def acts_of(a):
            return [a] if isinstance(a, str) else list(a)

        act = _per_element(activation, elements, "activation", acts_of)
        out_act = _per_element(output_activation, elements, "output_activation", canonical_activation)
        self.acsf = ACSF(sfs)
        self.scalers = nn.ModuleDict()
        self.networks = nn.ModuleDict()
        # with a seed, all random draws (nn.Linear's own init too) come from a private RNG state
        rng = contextlib.nullcontext() if seed is None else torch.random.fork_rng(devices=[])
        with rng:
            if seed is not None:
                torch.manual_seed(int(seed))
            for el in elements:
                a = act[el]
                if len(a) == 1:
                    a = a * len(hid[el])
                if len(a) != len(hid[el]):
                    raise InputError(f"{el}: {len(a)} activations for {len(hid[el])} hidden layers")
                names = [canonical_activation(x) for x in a] + [out_act[el]]
                self.scalers[el] = SymmetryFunctionScaling(sfs.n_features[el], scaling_mode, scale_min,
                                                           scale_max)
                self.networks[el] = AtomicNetwork([sfs.n_features[el], *hid[el], 1], names)
            self.reset_parameters()
        self.register_buffer("atom_energy", torch.zeros(len(elements)))
        self.register_buffer("energy_scale_buf", torch.ones(()))
        self.register_buffer("scaling_fitted", torch.zeros((), dtype=torch.bool))
        self.to(device=resolve_device(device or "cpu"), dtype=dtype)

    # ------------------------------------------------------------------ info
    @property
    def elements(self) -> list[str]:
        """Element symbols (descriptor / ``input.nn`` order)."""
        return list(self.sfs.elements)

    @property
    def cutoff(self) -> float:
        """Largest symmetry-function cutoff radius, Å."""
        return float(self.sfs.cutoff)

    @property
    def n_features(self) -> dict[str, int]:
        return dict(self.sfs.n_features)

    @property
    def dtype(self) -> torch.dtype:
        return self.atom_energy.dtype

    @property
    def device(self) -> torch.device:
        return self.atom_energy.device

    def layer_sizes(self, element: str) -> list[int]:
        """Widths input, hidden..., output of ``element``'s network."""
        return list(self.networks[element].sizes)

    def activations(self, element: str) -> list[str]:
        """Activation names of ``element``'s network (hidden layers, then output)."""
        return self.networks[element].activation_names

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def reference_energies(self) -> dict[str, float]:
        """Per-element reference energies E0 (eV), added to every atom's network output."""
        return {el: float(e) for el, e in zip(self.elements, self.atom_energy.tolist())}

    @property
    def energy_scale(self) -> float:
        """Factor applied to the network outputs (1 unless imported with n2p2 normalisation)."""
        return float(self.energy_scale_buf)

    @property
    def is_scaling_fitted(self) -> bool:
        return bool(self.scaling_fitted)

    def __repr__(self) -> str:
        arch = "; ".join(f"{el}: {self.networks[el].extra_repr()}" for el in self.elements)
        fitted = "fitted" if self.is_scaling_fitted else "not fitted"
        scaling = self.scaling_mode
        if self.scaling_mode in ("scale", "center_scale", "scale_sigma"):
            scaling += f" [{self.scale_min:g}, {self.scale_max:g}]"
        e0 = ", ".join(f"{el}: {e:.4f}" for el, e in self.reference_energies.items())
        return (f"HDNNP(elements={self.elements}, cutoff={self.cutoff:g} Å, "
                f"functions={self.n_features}, networks={{{arch}}}, "
                f"scaling={scaling} ({fitted}), E0={{{e0}}} eV, "
                f"parameters={self.n_parameters()}, dtype={str(self.dtype).replace('torch.', '')}, "
                f"device={self.device})")

    # ------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """Draw fresh Glorot-uniform weights (zero biases) for every element network
        from the global torch RNG; scaling statistics and reference energies are kept."""
        for net in self.networks.values():
            net.reset_parameters()

    def set_scaling(self, stats: Mapping[str, Mapping[str, Any]]) -> HDNNP:
        """Set scaling statistics: ``element -> {"Gmin", "Gmax", "Gmean", "Gsigma"}`` arrays
        (n2p2-sorted function order, as :func:`~mdmlkit.io.n2p2.read_scaling_data`)."""
        for el in self.elements:
            if el not in stats:
                raise ModelMismatchError(f"scaling statistics lack element {el}")
            sc = self.scalers[el]
            for key, buf in (("Gmin", sc.G_min), ("Gmax", sc.G_max), ("Gmean", sc.G_mean),
                             ("Gsigma", sc.G_sigma)):
                v = torch.as_tensor(np.asarray(stats[el][key], dtype=np.float64))
                if v.shape != buf.shape:
                    raise ModelMismatchError(f"{el}: {key} has {v.numel()} values, the model has "
                                             f"{buf.numel()} symmetry functions")
                buf.copy_(v.to(buf))
        self.scaling_fitted.fill_(True)
        return self

    def scaling_statistics(self) -> dict[str, dict[str, np.ndarray]]:
        """``element -> {"Gmin", "Gmax", "Gmean", "Gsigma"}`` (float64 numpy arrays)."""
        out = {}
        for el in self.elements:
            sc = self.scalers[el]
            out[el] = {k: b.detach().cpu().double().numpy().copy() for k, b in
                       (("Gmin", sc.G_min), ("Gmax", sc.G_max), ("Gmean", sc.G_mean), ("Gsigma", sc.G_sigma))}
        return out

    def set_reference_energies(self, energies: Mapping[str, float]) -> HDNNP:
        """Set per-element reference energies (eV); elements not given keep theirs."""
        unknown = set(energies) - set(self.elements)
        if unknown:
            raise ModelMismatchError(f"reference energies for {sorted(unknown)}, not in {self.elements}")
        vals = self.atom_energy.detach().clone()
        for k, el in enumerate(self.elements):
            if el in energies:
                vals[k] = float(energies[el])
        self.atom_energy.copy_(vals)
        return self

    def set_energy_scale(self, scale: float) -> HDNNP:
        if not (math.isfinite(scale) and scale != 0.0):
            raise InputError(f"energy scale {scale} must be finite and non-zero")
        self.energy_scale_buf.fill_(float(scale))
        return self

    def n2p2_connections(self, element: str) -> np.ndarray:
        """Weights and biases of ``element``'s network in n2p2 order (float64)."""
        vals = []
        for lin in self.networks[element].linears:
            vals.append(lin.weight.detach().t().reshape(-1))   # previous neuron outer, this inner
            vals.append(lin.bias.detach().reshape(-1))
        return torch.cat(vals).cpu().double().numpy()

    def set_n2p2_connections(self, element: str, values, normalize_nodes: bool = False) -> HDNNP:
        """Load n2p2-ordered connections into ``element``'s network.

        ``normalize_nodes=True`` (n2p2 keyword) divides each layer's weights and bias
        by the width of the previous layer, which is what n2p2 does to the weighted sum.
        """
        values = torch.as_tensor(np.asarray(values, dtype=np.float64).ravel())
        net = self.networks[element]
        need = sum(l.weight.numel() + l.bias.numel() for l in net.linears)
        if values.numel() != need:
            raise ModelMismatchError(f"{element}: {values.numel()} connections, network "
                                     f"{'-'.join(map(str, net.sizes))} needs {need}")
        pos = 0
        with torch.no_grad():
            for lin in net.linears:
                n_out, n_in = lin.weight.shape
                w = values[pos:pos + n_in * n_out].reshape(n_in, n_out).t()
                pos += n_in * n_out
                b = values[pos:pos + n_out]
                pos += n_out
                div = float(n_in) if normalize_nodes else 1.0
                lin.weight.copy_((w / div).to(lin.weight))
                lin.bias.copy_((b / div).to(lin.bias))
        return self

    # ---------------------------------------------------------------- fitting
    def _raw_descriptor_batches(self, frames: list, batch_size: int, progress: bool, desc: str):
        """Raw symmetry functions ``{el: [n_el, n_features]}`` of ``frames``, one batch of
        ``batch_size`` structures at a time (no autograd graph)."""
        for s in _progress(range(0, len(frames), batch_size), progress, desc):
            batch = AtomsBatch.from_atoms(frames[s:s + batch_size], self.elements, self.cutoff,
                                          device=self.device, dtype=self.dtype)
            with torch.no_grad():
                yield self.acsf(batch)

    def _copy_with_functions(self, sfs, first_layers: Mapping[str, tuple]) -> HDNNP:
        """A model on ``sfs`` with this one's settings, reference energies and networks,
        except every first layer, which is ``first_layers[el] = (weight, bias)``."""
        new = HDNNP(sfs, dtype=self.dtype, device=self.device, seed=0, **self.config())
        with torch.no_grad():
            for el in self.elements:
                src, dst = self.networks[el].linears, new.networks[el].linears
                weight, bias = first_layers[el]
                dst[0].weight.copy_(weight.to(dst[0].weight))
                dst[0].bias.copy_(bias.to(dst[0].bias))
                for a, b in zip(src[1:], dst[1:]):
                    b.weight.copy_(a.weight)
                    b.bias.copy_(a.bias)
            new.atom_energy.copy_(self.atom_energy)
            new.energy_scale_buf.copy_(self.energy_scale_buf)
        return new

    def fit_scaling(self, data, batch_size: int = 16, progress: bool = False) -> HDNNP:
        """Set the scaling statistics from training data (n2p2 ``nnp-scaling``).

        Parameters
        ----------
        data : list of ase.Atoms, or dict element -> array [n_atoms, n_features]
            Structures (their raw symmetry functions are computed here) or
            precomputed raw symmetry functions.
        batch_size : int
            Structures per descriptor batch.

        Statistics per function: min, max, mean and sample standard deviation
        (n − 1 denominator, as n2p2) over all atoms of the element.  Constant functions trigger a warning
        (their scaled value is a constant, i.e. they carry no information).
        """
        if isinstance(data, Mapping):
            sums = {}
            for el in self.elements:
                G = data.get(el)
                if G is None:
                    continue
                G = torch.as_tensor(G, dtype=torch.float64).detach().cpu()
                if G.ndim != 2 or G.shape[1] != self.n_features[el]:
                    raise ModelMismatchError(f"{el}: descriptors of shape {tuple(G.shape)}, "
                                             f"model has {self.n_features[el]} functions")
                sums[el] = _Stats.of(G)
        else:
            frames = list(data)
            if not frames:
                raise EmptyTrajectoryError("fit_scaling: no structures")
            sums = {}
            for G in self._raw_descriptor_batches(frames, batch_size, progress, "scaling statistics"):
                for el, g in G.items():
                    if g.shape[0]:
                        st = _Stats.of(g.detach().double().cpu())
                        sums[el] = st if el not in sums else sums[el].merge(st)
        missing = [el for el in self.elements if el not in sums]
        if len(missing) == len(self.elements):
            raise EmptyTrajectoryError("fit_scaling: no atoms of any model element")
        if missing:
            warnings.warn(f"fit_scaling: no atoms of {missing}; their scaling statistics are left "
                          "unchanged", stacklevel=2)
        stats = self.scaling_statistics()
        for el, st in sums.items():
            stats[el] = st.result()
            flat = np.flatnonzero(stats[el]["Gmax"] - stats[el]["Gmin"] <= 0)
            if flat.size:
                lines = [self.sfs.functions[el][i].to_line() for i in flat[:3]]
                warnings.warn(f"{el}: {flat.size} symmetry function(s) are constant over the data "
                              f"(e.g. {lines}); they carry no information", stacklevel=2)
        return self.set_scaling(stats)

    def fit_reference_energies(self, frames, energies=None) -> HDNNP:
        """Least-squares per-element reference energies: E_s ≈ Σ_el n_{s,el} E0_el.

        Parameters
        ----------
        frames : list of ase.Atoms
        energies : array-like [S], optional
            Total energies (eV); default ``atoms.get_potential_energy()`` of each frame.

        With one stoichiometry only (e.g. all La2Zr2O7) the problem is rank
        deficient; the minimum-norm solution is used, which reproduces the mean
        energy per formula unit — the networks learn the rest.
        """
        frames = list(frames)
        if not frames:
            raise EmptyTrajectoryError("fit_reference_energies: no structures")
        if energies is None:
            energies = []
            for k, a in enumerate(frames):
                try:
                    energies.append(a.get_potential_energy())
                except Exception as exc:  # noqa: BLE001
                    raise MissingLabelError(f"structure {k} has no energy ({exc})") from None
        energies = np.asarray(energies, dtype=np.float64)
        if energies.shape != (len(frames),):
            raise InputError(f"{energies.size} energies for {len(frames)} structures")
        idx = {el: k for k, el in enumerate(self.elements)}
        counts = np.zeros((len(frames), len(self.elements)))
        for s, a in enumerate(frames):
            for sym in a.get_chemical_symbols():
                if sym not in idx:

                    raise UnknownElementError(f"structure {s}: element {sym} not in {self.elements}")
                counts[s, idx[sym]] += 1
        present = counts.sum(axis=0) > 0
        sol = np.zeros(len(self.elements))
        sol[present] = np.linalg.lstsq(counts[:, present], energies, rcond=None)[0]
        return self.set_reference_energies({el: sol[k] for el, k in idx.items() if present[k]})

    def with_functions(self, functions, data, batch_size: int = 16,
                       progress: bool = False) -> HDNNP:
        """A copy of this model with extra symmetry functions that start with zero weight.

        The new functions' scaling statistics are fitted on ``data`` (structures, as
        :meth:`fit_scaling`); every other statistic, weight and reference energy is
        copied, and the first-layer weights of the new inputs are zero, so the copy
        predicts exactly what this model does.  Training it further (a warm start)
        then learns what the new functions add — e.g. longer-range radial functions
        for a model whose errors come from effects beyond its cutoff.

        Parameters
        ----------
        functions : iterable of SymmetryFunction
            Functions to add (central and neighbour elements among the model's);
            one that the model already has raises ``InputError``.
        data : list of ase.Atoms
            Structures for the new functions' scaling statistics (the training set).
        """
        functions = list(functions)
        if not functions:
            raise InputError("with_functions: no functions to add")
        old = {el: list(self.sfs.functions[el]) for el in self.elements}
        dup = [f.to_line() for f in functions if f in old.get(f.central, [])]
        if dup:
            raise InputError(f"the model already has {dup}")
        sfs = SymmetryFunctionSet(self.elements, [f for fs in old.values() for f in fs] + functions,
                                  self.sfs.cutoff_type, self.sfs.alpha)
        if len(set(sfs)) != len(sfs):
            raise InputError("with_functions: the functions to add contain duplicates")
        first = {}
        with torch.no_grad():
            for el in self.elements:
                lin = self.networks[el].linears[0]
                cols = torch.as_tensor([sfs.functions[el].index(f) for f in old[el]])
                w = lin.weight.new_zeros(lin.weight.shape[0], sfs.n_features[el])
                w[:, cols] = lin.weight
                first[el] = (w, lin.bias)
        new = self._copy_with_functions(sfs, first)
        new.fit_scaling(data, batch_size=batch_size, progress=progress)
        stats_old, stats = self.scaling_statistics(), new.scaling_statistics()
        for el in self.elements:
            cols = [sfs.functions[el].index(f) for f in old[el]]
            for key in stats[el]:
                stats[el][key][cols] = stats_old[el][key]
        return new.set_scaling(stats)

    def widened(self, hidden: Sequence[int] | Mapping[str, Sequence[int]],
                init_scale: float = 1.0, seed: int | None = 0) -> HDNNP:
        """A copy of this model with wider hidden layers that predicts exactly what it does.

        Growing a trained model (Net2Net's "wider" step) gives it capacity without
        starting again from scratch. Each hidden layer keeps its units and weights. New
        units get Glorot-uniform incoming weights times ``init_scale`` and zero biases.
        Every weight *from* a new unit starts at zero: into the old units and into the
        output. So old units see exactly their old inputs, and the energy, forces and
        stress are unchanged. Training continues from there (a warm start). The zero
        outgoing weights get gradients from the first step, and the new units follow.

        Parameters
        ----------
        hidden : sequence of int, or dict element -> sequence
            New hidden widths, one per existing hidden layer (the depth stays), each at
            least the current width.
        init_scale : float
            Factor on the new units' Glorot-uniform incoming weights.
        seed : int or None
            Seed of the new units' random draws (a private RNG state; None: the global one).
        """
        hid = _per_element(hidden, self.elements, "hidden", lambda h: [int(n) for n in h])
        for el in self.elements:
            old = self.layer_sizes(el)[1:-1]
            if len(hid[el]) != len(old) or any(n < o for n, o in zip(hid[el], old)):
                raise InputError(f"{el}: hidden widths {hid[el]} cannot widen {old} "
                                 "(same number of layers, none narrower)")
        config = {**self.config(), "hidden": hid}
        new = HDNNP(self.sfs, dtype=self.dtype, device=self.device, seed=0, **config)
        rng = contextlib.nullcontext() if seed is None else torch.random.fork_rng(devices=[])
        with rng, torch.no_grad():
            if seed is not None:
                torch.manual_seed(int(seed))
            for el in self.elements:
                for src, dst in zip(self.networks[el].linears, new.networks[el].linears):
                    n_out, n_in = src.weight.shape
                    w = torch.empty_like(dst.weight)
                    nn.init.xavier_uniform_(w)
                    w.mul_(float(init_scale))
                    w[:, n_in:] = 0.0           # nothing flows out of a new unit at first
                    w[:n_out, :n_in] = src.weight
                    dst.weight.copy_(w)
                    dst.bias.zero_()
                    dst.bias[:n_out] = src.bias
            new.scalers.load_state_dict(self.scalers.state_dict())
            new.atom_energy.copy_(self.atom_energy)
            new.energy_scale_buf.copy_(self.energy_scale_buf)
            new.scaling_fitted.copy_(self.scaling_fitted)
        return new

    def without_functions(self, functions, data, batch_size: int = 16,
                          progress: bool = False) -> HDNNP:
        """A copy of this model without some symmetry functions, their weight folded
        into the functions it keeps.

        Pruning a trained model (e.g. the costly high-ζ angular functions, to make
        MD faster) need not start training again from scratch.  Over ``data``, each
        removed input's scaled value is fitted by least squares as a linear function
        of the kept scaled inputs, ``s_drop ≈ s_keep · B + b``; the first layer of every
        network then absorbs that fit (``W_keep += W_drop Bᵀ``, ``bias += W_drop b``),
        so the copy's first-layer pre-activations are the least-squares best
        approximation to the original ones on ``data`` (exact where the removed inputs
        are linear in the kept ones, e.g. zero-weight inputs).  Train the copy further
        (a warm start) to recover what the fit misses.  The inverse of
        :meth:`with_functions`.

        Parameters
        ----------
        functions : iterable of SymmetryFunction
            Functions to remove; one the model does not have raises ``InputError``,
            as does removing every function of an element.
        data : list of ase.Atoms
            Structures for the fit (the training set, or a representative part).

        The fit's quality, the R² of the removed pre-activation contribution per
        element, is kept in ``removal_r2_`` of the returned model.
        """
        functions = list(functions)
        if not functions:
            raise InputError("without_functions: no functions to remove")
        old = {el: list(self.sfs.functions[el]) for el in self.elements}
        missing = [f.to_line() for f in functions if f not in old.get(f.central, [])]
        if missing:
            raise InputError(f"the model does not have {missing}")
        removed = set(functions)
        drop = {el: [i for i, f in enumerate(old[el]) if f in removed] for el in self.elements}
        keep = {el: [i for i, f in enumerate(old[el]) if f not in removed] for el in self.elements}
        empty = [el for el in self.elements if not keep[el]]
        if empty:
            raise InputError(f"without_functions: no functions of {empty} would be left")
        frames = list(data)
        if not frames:
            raise EmptyTrajectoryError("without_functions: no structures to fit on")
        # normal equations of the fit, accumulated over batches in float64: [k+1, k+1], [k+1, d]
        xtx = {el: torch.zeros(len(keep[el]) + 1, len(keep[el]) + 1, dtype=torch.float64)
               for el in self.elements}
        xty = {el: torch.zeros(len(keep[el]) + 1, len(drop[el]), dtype=torch.float64)
               for el in self.elements}
        yty = {el: torch.zeros(len(drop[el]), len(drop[el]), dtype=torch.float64)
               for el in self.elements}
        for G in self._raw_descriptor_batches(frames, batch_size, progress, "fitting removed functions"):
            for el in self.elements:
                if not drop[el] or G[el].shape[0] == 0:
                    continue
                S = self.scalers[el](G[el]).detach().double().cpu()
                X = torch.cat([S[:, keep[el]], torch.ones(S.shape[0], 1, dtype=torch.float64)], dim=1)
                xtx[el] += X.T @ X
                xty[el] += X.T @ S[:, drop[el]]
                yty[el] += S[:, drop[el]].T @ S[:, drop[el]]
        sfs = SymmetryFunctionSet(self.elements,
                                  [old[el][i] for el in self.elements for i in keep[el]],
                                  self.sfs.cutoff_type, self.sfs.alpha)
        stats_old = self.scaling_statistics()
        stats = {el: {key: np.asarray(v)[keep[el]] for key, v in stats_old[el].items()}
                 for el in self.elements}
        r2, first = {}, {}
        with torch.no_grad():
            for el in self.elements:
                lin = self.networks[el].linears[0]
                W = lin.weight.detach().double().cpu()
                Wk, bias = W[:, keep[el]].clone(), lin.bias.detach().double().cpu().clone()
                if drop[el]:
                    n = xtx[el][-1, -1]
                    if n < 2:
                        raise EmptyTrajectoryError(f"without_functions: too few {el} atoms in data")
                    A = xtx[el]
                    ridge = 1e-10 * A.diagonal().abs().max()
                    B = torch.linalg.solve(A + ridge * torch.eye(A.shape[0], dtype=A.dtype), xty[el])
                    Wd = W[:, drop[el]]
                    Wk += Wd @ B[:-1].T
                    bias += Wd @ B[-1]
                    # R² of the removed pre-activation contribution S_drop Wdᵀ, from the
                    # accumulated moments: residual and total sums of squares
                    mu = xty[el][-1] / n
                    rss = torch.trace(Wd @ (yty[el] - xty[el].T @ B) @ Wd.T)
                    tss = torch.trace(Wd @ (yty[el] - n * torch.outer(mu, mu)) @ Wd.T)
                    r2[el] = float(1.0 - rss / tss) if tss > 0 else 1.0
                first[el] = (Wk, bias)
        new = self._copy_with_functions(sfs, first).set_scaling(stats)
        new.removal_r2_ = r2
        return new

    # --------------------------------------------------------------- forward
    def _check_batch(self, batch) -> None:
        if list(batch.elements) != self.elements:
            raise ModelMismatchError(f"batch elements {list(batch.elements)} differ from the model's "
                                     f"{self.elements}")
        if batch.positions.dtype != self.dtype:
            raise ModelMismatchError(f"batch dtype {batch.positions.dtype} differs from the model's "
                                     f"{self.dtype}; build it with dtype=model.dtype")

    def descriptors(self, batch, strain: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Raw symmetry functions ``{el: [n_el, n_features[el]]}`` of ``batch``."""
        self._check_batch(batch)
        return self.acsf(batch, strain)

    def energy_from_descriptors(self, G: Mapping[str, torch.Tensor], batch) -> torch.Tensor:
        """Atomic energies [N] (eV) from raw descriptors ``G`` of ``batch``'s atoms."""
        return self.atomic_energies_from(G, batch.element_index, batch.species)

    def atomic_energies_from(self, G: Mapping[str, torch.Tensor],
                             element_index: Mapping[str, torch.Tensor],
                             species: torch.Tensor) -> torch.Tensor:
        """Atomic energies [N] (eV) from raw descriptors; ``element_index[el]``: the atoms
        (rows of ``G[el]``) of each element, ``species`` [N]: element index of every atom."""
        e_nn = torch.zeros(species.shape[0], dtype=self.dtype, device=species.device)
        for el in self.elements:
            idx = element_index[el]
            if idx.numel() == 0:
                continue
            out = self.networks[el](self.scalers[el](G[el]))
            e_nn = e_nn.index_copy(0, idx, out)
        return e_nn * self.energy_scale_buf + self.atom_energy[species]

    def atomic_energies(self, batch) -> torch.Tensor:
        """Energy of every atom, eV, [N] (reference energies included)."""
        return self.energy_from_descriptors(self.descriptors(batch), batch)

    def forward(self, batch) -> torch.Tensor:
        """Total energy of every structure of ``batch``, eV, [S]."""
        e_atoms = self.atomic_energies(batch)
        return e_atoms.new_zeros(batch.n_structures).index_add(0, batch.structure, e_atoms)

    def energy_and_forces(self, batch, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies [S] (eV) and forces F = −∂E/∂R [N, 3] (eV/Å) by autograd.

        ``create_graph=True`` keeps the graph for a force loss (second derivatives).
        """
        with torch.enable_grad():
            pos = batch.positions
            if not pos.requires_grad:
                pos.requires_grad_(True)
            energy = self(batch)
            (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
        return energy, -grad

    def energy_forces_stress(self, batch, create_graph: bool = False
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energies [S] (eV), forces [N, 3] (eV/Å) and stress [S, 3, 3] (eV/Å³).

        The stress is σ = (1/V) ∂E/∂ε for a homogeneous strain ε applied to all
        pair vectors (ASE convention: positive = tensile); it is NaN for
        structures that are not periodic in all three directions.
        """
        with torch.enable_grad():
            pos = batch.positions
            if not pos.requires_grad:
                pos.requires_grad_(True)
            strain = torch.zeros(batch.n_structures, 3, 3, dtype=self.dtype, device=pos.device,
                                 requires_grad=True)
            G = self.descriptors(batch, strain)
            e_atoms = self.energy_from_descriptors(G, batch)
            energy = e_atoms.new_zeros(batch.n_structures).index_add(0, batch.structure, e_atoms)
            g_pos, g_strain = torch.autograd.grad(energy.sum(), (pos, strain), create_graph=create_graph)
        volume = torch.linalg.det(batch.cells).abs()
        periodic = batch.pbc.all(dim=1)
        stress = g_strain / torch.where(periodic, volume, torch.ones_like(volume))[:, None, None]
        stress = 0.5 * (stress + stress.transpose(1, 2))
        stress = torch.where(periodic[:, None, None], stress, torch.full_like(stress, float("nan")))
        return energy, -g_pos, stress

    # -------------------------------------------------------------------- I/O
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able) that rebuild this architecture."""
        return {
            "hidden": {el: self.layer_sizes(el)[1:-1] for el in self.elements},
            "activation": {el: self.activations(el)[:-1] for el in self.elements},
            "output_activation": {el: self.activations(el)[-1] for el in self.elements},
            "scaling_mode": self.scaling_mode, "scale_min": self.scale_min, "scale_max": self.scale_max,
        }

    def save(self, path) -> Path:
        """Save architecture, symmetry functions and all weights/statistics (atomic write).

        The file is a plain ``torch.save`` dict (tensors, strings, numbers only), so
        it loads with ``weights_only=True``.
        """
        path = Path(path)
        payload = {
            "format": _FORMAT,
            "sfs": "\n".join(self.sfs.to_input_nn_lines(header=True)),
            "config": self.config(),
            "dtype": str(self.dtype).replace("torch.", ""),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        atomic_torch_save(payload, path)
        return path

    @classmethod
    def load(cls, path, device=None, dtype: torch.dtype | None = None) -> HDNNP:
        """Load a model written by :meth:`save` (``device`` default CPU, ``dtype`` as saved).

        Raises :class:`~mdmlkit.errors.MissingFileError` for a missing file,
        :class:`~mdmlkit.errors.CorruptCheckpointError` (naming the file) for a truncated or
        unreadable one and :class:`~mdmlkit.errors.ModelMismatchError` for another format.
        """
        path = Path(path)
        remedy = "the file is damaged: save the model again or restore a copy"
        payload = load_torch_file(path, "HDNNP model file", remedy, map_location="cpu",
                                  weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ModelMismatchError(f"{path}: not an mdmlkit HDNNP file (format {_FORMAT})")
        missing = [k for k in ("sfs", "dtype", "config", "state_dict") if k not in payload]
        if missing:
            raise CorruptCheckpointError(f"HDNNP model file lacks {missing}; {remedy}", path=str(path))
        sfs = SymmetryFunctionSet.from_text(payload["sfs"], path=f"{path} [symmetry functions]")
        saved_dtype = getattr(torch, payload["dtype"])
        model = cls(sfs, dtype=saved_dtype, seed=0, **payload["config"])   # weights overwritten below
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise CorruptCheckpointError(f"HDNNP model file: weights do not fit its architecture "
                                         f"({str(exc).splitlines()[0]}); {remedy}", path=str(path)) from exc
        return model.to(device=resolve_device(device or "cpu"), dtype=dtype or saved_dtype)


class _Stats:
    """Streaming min/max/mean/M2 of descriptor columns (float64, Chan et al. merging)."""

    def __init__(self, n, mn, mx, mean, m2):
        self.n, self.mn, self.mx, self.mean, self.m2 = n, mn, mx, mean, m2

    @classmethod
    def of(cls, G: torch.Tensor) -> _Stats:
        mean = G.mean(0)
        return cls(G.shape[0], G.min(0).values, G.max(0).values, mean, ((G - mean) ** 2).sum(0))

    def merge(self, o: _Stats) -> _Stats:
        n = self.n + o.n
        delta = o.mean - self.mean
        return _Stats(n, torch.minimum(self.mn, o.mn), torch.maximum(self.mx, o.mx),
                      self.mean + delta * (o.n / n), self.m2 + o.m2 + delta * delta * (self.n * o.n / n))

    def result(self) -> dict[str, np.ndarray]:
        # n2p2 (nnp-scaling) reports the sample standard deviation (n - 1 in the denominator)
        var = self.m2 / (self.n - 1) if self.n > 1 else torch.zeros_like(self.m2)
        return {"Gmin": self.mn.numpy(), "Gmax": self.mx.numpy(), "Gmean": self.mean.numpy(),
                "Gsigma": var.clamp_min(0.0).sqrt().numpy()}


def _progress(it, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, disable=not enabled, leave=False)
