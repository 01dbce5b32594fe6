"""ASE calculator for :class:`~mdmlkit.potential.HDNNP` models.

>>> calc = HDNNPCalculator("model.pt")                  # doctest: +SKIP
>>> calc = HDNNPCalculator("n2p2_model_dir/")            # input.nn + scaling.data + weights
>>> atoms.calc = calc
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Energies in eV, forces in eV/Å, stress in eV/Å³ (ASE Voigt order xx, yy, zz, yz,
xz, xy; positive = tensile).  Every call computes the symmetry functions once,
checks them against the training range (:mod:`~mdmlkit.potential.extrapolation`)
and differentiates the energy by autograd (one backward pass gives forces and
the virial).

Neighbour list: a Verlet list with a ``skin`` (default 0.5 Å) is built for
``rc + skin`` and reused while no atom has moved more than ``skin / 2`` from
where it was when the list was built and the cell, periodicity and atoms are
unchanged; the pairs within ``rc`` are picked from it every call.  The pairs
are then exactly those a fresh list would give, so results equal a fresh-list
calculation up to floating-point summation order (~1e-15 relative);
``skin=0`` builds a new list on every call (cheaper when the cell changes
every step, as in NPT or cell relaxations, which rebuild the list anyway).
The skin trades list rebuilds against list length: the compiled kernel
(``compile=True``) evaluates every pair of its padded tables, beyond rc too
(exactly zero there), and the pairs within rc + skin grow as (rc + skin)^3;
a larger skin means fewer rebuilds but longer tables, and leaves room for the
larger vibrations of hot runs.
``calc.neighbor_list_builds`` counts the builds; set ``calc.timings = {}`` to
record where the time of each call goes.

Compiled kernels, for long MD runs of one system (``compile=``):

* ``"numba"`` (CPU; what ``compile=True`` picks on a CPU): fused numba loops over
  the pairs of every atom (:mod:`mdmlkit.descriptors.kernels.fused`) for the symmetry
  functions and for dE/d(pair vector); the atomic networks run as numpy matrix
  products (:mod:`~mdmlkit.descriptors.kernels.networks`), or inside the kernel for
  models with angular functions on explicit triplets (type 3, non-integer zeta).
  Radial factors come from quintic tables (error < 1e-8), so energies and forces
  equal the eager ones to ~1e-9 relative.  Compiled once per dtype and cached on
  disk; uses ``torch.get_num_threads()`` threads at call time (or ``n_threads``) and
  never changes torch's own thread setting.
* ``"torch"`` (what ``compile=True`` picks on a GPU): the whole path from positions
  to energies as one ``torch.compile``d kernel on the padded Verlet-list layout
  (:mod:`mdmlkit.potential.compiled`), after a one-off compilation (again whenever
  the atoms change or the neighbour tables outgrow their capacity).
  ``dtype=torch.float32`` runs vectorised float32 loops; energies and forces stay
  within ~1e-3 meV/atom and ~0.05 meV/Å of float64 for the shipped La2Zr2O7
  models, far below their errors.

``"numba"`` takes every n2p2 type 2, 3 and 9 function; ``"torch"`` needs types 2 and 9
with integer zeta <= 8.

Extrapolation over many calls (MD): every check is added to a running
:class:`~mdmlkit.potential.extrapolation.ExtrapolationTally` (calls that
extrapolated; per element and function the out-of-range values and the worst
excursion).  With ``extrapolation="warn"`` the first extrapolating call warns at
once and later ones at most once per ``warn_every`` calls, with the running
summary, so that a hot run prints a few warnings instead of one per step;
``calc.extrapolation_report()`` gives the full table, ``calc.last_report`` the
records of the last call.
"""
from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mdmlkit.errors import (
    EmptyTrajectoryError,
    InputError,
    MissingForceFieldError,
    NonFiniteError,
    UnknownElementError,
)
from mdmlkit.potential.extrapolation import (
    DEFAULT_TOLERANCE,
    ExtrapolationError,
    ExtrapolationReport,
    ExtrapolationTally,
    ExtrapolationWarning,
    find_extrapolation,
)
from mdmlkit.potential.model import HDNNP
from mdmlkit.potential.n2p2_model import load_n2p2_model
from mdmlkit.utils import resolve_device

__all__ = ["HDNNPCalculator", "load_model"]

_MODES = ("warn", "raise", "ignore")
# compiled kernels one process may hold (models x cell sizes x dtypes) before torch._dynamo
# would fall back to eager execution (its default recompile_limit is 8)
COMPILED_KERNELS_LIMIT = 64


def load_model(source, device=None, dtype: torch.dtype | None = None) -> HDNNP:
    """An HDNNP from a model, a file written by :meth:`HDNNP.save`, or an n2p2 directory."""
    if isinstance(source, HDNNP):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return load_n2p2_model(path, dtype=dtype, device=device)
        if path.is_file():
            return HDNNP.load(path, device=device, dtype=dtype)
        raise MissingForceFieldError(f"{path}: no such model file or n2p2 directory")
    raise InputError(f"expected an HDNNP or a path, got {type(source).__name__}")


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
        :class:`ExtrapolationWarning` (aggregated, see ``warn_every``), raise
        :class:`ExtrapolationError`, or skip the check.  The last check is kept in
        :attr:`last_report`, the running totals in :meth:`extrapolation_report`.
    tolerance : float
        Relative tolerance of the range check.
    warn_every : int
        With ``extrapolation="warn"``: the first extrapolating call warns, later ones
        at most once per ``warn_every`` calls (a summary of all calls so far); 1
        warns on every extrapolating call.
    skin : float
        Verlet-list skin, Å (see the module docstring); 0 rebuilds the
        neighbour list on every call.
    compile : bool or {"numba", "torch"}
        Run energies, forces and stress through compiled kernels (see the
        module docstring): ``True`` picks ``"numba"`` on a CPU and ``"torch"``
        on a GPU; ``"torch"`` needs a model whose functions are all types 2
        and 9 with integer zeta <= 8 (InputError otherwise).  With ``"torch"`` the
        kernel's neighbour tables are sized from the first list with 10 %
        headroom; when a later list needs more slots (e.g. a hot run started
        from a perfect crystal) it compiles once more, which can take
        minutes, after which torch's dynamic shapes avoid further recompiles.  Start long hot runs from a
        thermalised structure to avoid that stall.
    n_threads : int, optional
        Threads of the numba kernels (``compile="numba"``); default
        ``torch.get_num_threads()`` at each call.  Torch's setting is never changed.

    Raises (on calculation)
    -----------------------
    UnknownElementError
        The structure contains an element the model does not know (named).
    EmptyTrajectoryError
        The structure has no atoms.
    DegenerateCellError
        A degenerate periodic cell (:func:`~mdmlkit.descriptors.neighbors.check_cell`).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device=None, dtype: torch.dtype | None = None, extrapolation: str = "warn",
                 tolerance: float = DEFAULT_TOLERANCE, skin: float = 0.5, compile: bool | str = False,
                 warn_every: int = 1000, n_threads: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if extrapolation not in _MODES:
            raise InputError(f"extrapolation={extrapolation!r}, choose from {_MODES}")
        if not (skin >= 0.0 and np.isfinite(skin)):
            raise InputError(f"skin={skin!r} Å must be finite and >= 0")
        if isinstance(warn_every, bool) or not isinstance(warn_every, (int, np.integer)) or warn_every < 1:
            raise InputError(f"warn_every={warn_every!r}: need a positive integer (calls)")
        device = resolve_device(device)
        model = load_model(model, device=device, dtype=dtype)
        dtype = dtype or model.dtype
        if model.device != device or model.dtype != dtype:
            model = copy.deepcopy(model).to(device=device, dtype=dtype)
        self.model = model.eval()
        self.extrapolation = extrapolation
        self.tolerance = float(tolerance)
        self.last_report: ExtrapolationReport | None = None
        self.warn_every = int(warn_every)
        self._tally = ExtrapolationTally()
        self._warned_at: int | None = None      # call number of the last ExtrapolationWarning
        self.skin = float(skin)
        self.neighbor_list_builds = 0
        #: Set to a dict to accumulate the wall time (s) of each phase of the calculations
        #: ("neighbour_list", "descriptors", "extrapolation_check", "networks", "backward",
        #: "results") and their number ("calls"); None (default) records nothing.
        self.timings: dict | None = None
        self._verlet: dict | None = None     # the reusable pair list and what it was built for
        if compile not in (False, True, "numba", "torch"):
            raise InputError(f"compile={compile!r}: choose False, True, 'numba' or 'torch'")
        if compile is True:
            from mdmlkit.descriptors.kernels.fused import numba as _numba

            compile = "numba" if device.type == "cpu" and _numba is not None else "torch"
        self.compile = compile
        self._kernel = None
        self._fused = None
        self._layout = None                  # (pair-list identity, PaddedLayout) when compiled
        if compile == "numba":
            from mdmlkit.descriptors.kernels.fused import FusedEnergy

            self._fused = FusedEnergy(self.model, n_threads=n_threads)
        elif compile == "torch":
            from mdmlkit.potential.compiled import PaddedEnergy

            # every model (and layout capacity) is one more compilation of the same code
            # object; past dynamo's default limit of 8 it would silently run eagerly
            cfg = torch._dynamo.config
            cfg.recompile_limit = max(cfg.recompile_limit, COMPILED_KERNELS_LIMIT)
            self._kernel = torch.compile(PaddedEnergy(self.model).energy_and_gradients, dynamic=False)
        if extrapolation != "ignore" and not model.is_scaling_fitted:
            warnings.warn("the model's scaling statistics are not fitted: extrapolation is not checked",
                          stacklevel=2)

    def __repr__(self) -> str:
        return (f"HDNNPCalculator(elements={self.model.elements}, cutoff={self.model.cutoff:g} Å, "
                f"skin={self.skin:g} Å, device={self.model.device}, "
                f"dtype={str(self.model.dtype).replace('torch.', '')}, "
                f"extrapolation={self.extrapolation!r}"
                + (f", compile={self.compile!r}" if self.compile else "") + ")")

    def _batch(self, atoms):
        """The batch of ``atoms``: the Verlet list moved to the new positions when valid,
        else a freshly built list (for ``rc + skin``)."""
        from mdmlkit.descriptors import AtomsBatch

        model = self.model
        pos = atoms.get_positions()
        v = self._verlet
        if (v is not None and self.skin > 0 and pos.shape == v["positions"].shape
                and np.array_equal(atoms.numbers, v["numbers"])
                and np.array_equal(atoms.pbc, v["pbc"])
                and np.array_equal(atoms.cell.array, v["cell"])):
            if not np.all(np.isfinite(pos)):
                idx = np.flatnonzero(~np.isfinite(pos).all(axis=1))
                raise NonFiniteError(f"structure 0: non-finite positions of atoms {idx[:10].tolist()}")
            d2 = np.einsum("ij,ij->i", pos - v["positions"], pos - v["positions"])
            if d2.max(initial=0.0) < (0.5 * self.skin) ** 2:
                batch = v["batch"].with_positions(pos)
                if self._fused is None:        # the fused kernels check distances themselves
                    batch.check_min_distance()
                return batch
        self._check_elements(atoms)
        batch = AtomsBatch.from_atoms([atoms], model.elements, model.cutoff + self.skin,
                                      device=model.device, dtype=model.dtype)
        self.neighbor_list_builds += 1
        if self.skin > 0:
            self._verlet = {"batch": batch, "positions": pos.copy(), "numbers": atoms.numbers.copy(),
                            "pbc": np.array(atoms.pbc, dtype=bool), "cell": atoms.cell.array.copy()}
        return batch

    def _padded_layout(self, batch):
        """The compiled kernel's layout of ``batch``'s pair list (made once per list, with
        the capacity of the previous one so that shapes, and the compiled code, stay)."""
        from mdmlkit.potential.compiled import PaddedLayout

        if self._layout is None or self._layout[0] is not batch._static:
            old = self._layout[1] if self._layout is not None else None
            same_atoms = old is not None and old.species.numel() == len(batch.species)
            self._layout = (batch._static, PaddedLayout(self.model, batch,
                                                        capacity=old.capacity if same_atoms else None))
        return self._layout[1]

    def _check_elements(self, atoms) -> None:
        known = set(self.model.elements)
        for k, sym in enumerate(atoms.get_chemical_symbols()):
            if sym not in known:
                raise UnknownElementError(f"atom {k} is {sym}, which the HDNNP does not know "
                                          f"(elements {self.model.elements})")

    def check_state(self, atoms, tol: float = 1e-15) -> list[str]:
        """ASE's list of changed properties since the last call, by exact array comparisons
        (a difference within ASE's ``tol`` counts as a change: one more evaluation, never a
        stale result); any other ``tol`` goes to ASE's own check."""
        prev = self.atoms
        if prev is None or tol != 1e-15:
            return super().check_state(atoms, tol)
        props = set(all_changes) - set(self.ignored_changes)
        changes = [p for p in ("cell", "pbc") if p in props
                   and not np.array_equal(np.asarray(getattr(prev, p)), np.asarray(getattr(atoms, p)))]
        a1, a2 = prev.arrays, atoms.arrays
        changes += sorted(props & (a1.keys() ^ a2.keys()))
        changes += [p for p in sorted(props & a1.keys() & a2.keys()) if not np.array_equal(a1[p], a2[p])]
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if len(atoms) == 0:
            raise EmptyTrajectoryError("HDNNPCalculator: the structure has no atoms (an HDNNP energy "
                                       "is a sum over atoms; give at least one)")
        want_stress = "stress" in properties
        periodic = bool(np.all(atoms.pbc))
        if want_stress and not periodic:
            raise PropertyNotImplementedError("stress needs a structure periodic in all three directions")
        tick = self._clock()
        batch = self._batch(atoms)
        tick("neighbour_list")
        if self._fused is not None:
            e_atoms, grads = self._fused_call(batch, periodic, tick)
        elif self._kernel is not None:
            e_atoms, grads = self._compiled_call(batch, periodic, tick)
        else:
            e_atoms, grads = self._eager_call(batch, periodic, tick)
        energy = e_atoms.sum()
        e = float(energy.detach())
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["energies"] = e_atoms.detach().cpu().double().numpy()
        self.results["forces"] = -grads[0].detach().cpu().double().numpy()
        if grads[1] is not None:
            g = grads[1][0].detach().cpu().double().numpy()
            sigma = 0.5 * (g + g.T) / atoms.get_volume()
            self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)
        tick("results")

    def _eager_call(self, batch, periodic: bool, tick):
        """Atomic energies and (∂E/∂positions, ∂E/∂strain or None) by autograd."""
        model = self.model
        with torch.enable_grad():
            pos = batch.positions.requires_grad_(True)
            inputs = [pos]
            strain = None
            if periodic:   # the virial is cheap: always give ASE the stress of a periodic cell
                strain = torch.zeros(1, 3, 3, dtype=model.dtype, device=model.device, requires_grad=True)
                inputs.append(strain)
            G = model.descriptors(batch, strain)
            tick("descriptors")
            self._extrapolation_check(G, batch)
            tick("extrapolation_check")
            e_atoms = model.energy_from_descriptors(G, batch)
            tick("networks")
            grads = torch.autograd.grad(e_atoms.sum(), inputs)
            tick("backward")
        return e_atoms, (grads[0], grads[1] if periodic else None)

    def _compiled_call(self, batch, periodic: bool, tick):
        """The same through the compiled kernel (values and gradients in one graph; the
        phases "descriptors" and "backward" are timed together as "descriptors")."""
        model = self.model
        strain = torch.zeros(1, 3, 3, dtype=model.dtype, device=model.device) if periodic else None
        with torch.no_grad():
            e_atoms, G, g_pos, g_strain = self._kernel(batch.positions.detach(), strain,
                                                       *self._padded_layout(batch).arguments())
        tick("descriptors")
        self._extrapolation_check(G, batch)
        tick("extrapolation_check")
        return e_atoms, (g_pos, g_strain)

    def _fused_call(self, batch, periodic: bool, tick):
        """The same through the fused numba kernels (phases "descriptors" and "backward"
        are timed together as "descriptors")."""
        e_atoms, G, g_pos, g_strain = self._fused(batch, strain=periodic)
        tick("descriptors")
        self._extrapolation_check(G, batch)
        tick("extrapolation_check")
        return e_atoms, (g_pos, g_strain)

    def _clock(self):
        """``tick(phase)`` adds the time since the previous tick to ``self.timings[phase]``
        (seconds; CUDA synchronised) when :attr:`timings` is a dict, else does nothing."""
        if self.timings is None:
            return lambda phase: None
        sync = torch.cuda.synchronize if self.model.device.type == "cuda" else (lambda: None)
        t = [time.perf_counter()]
        self.timings["calls"] = self.timings.get("calls", 0) + 1

        def tick(phase):
            sync()
            now = time.perf_counter()
            self.timings[phase] = self.timings.get(phase, 0.0) + now - t[0]
            t[0] = now
        return tick

    def extrapolation_report(self, reset: bool = False) -> ExtrapolationTally:
        """The extrapolation totals of all calls since construction (or the last reset):
        calls checked and extrapolated, per element and function the out-of-range values
        and the worst excursion (a copy; ``.table(None)`` prints every row).
        ``reset=True`` starts new totals afterwards."""
        out = self._tally.copy()
        if reset:
            self.reset_extrapolation()
        return out

    def reset_extrapolation(self) -> None:
        """Start new extrapolation totals (and warn again on the next extrapolating call)."""
        self._tally.reset()
        self._warned_at = None

    def _extrapolation_check(self, G, batch) -> None:
        if self.extrapolation == "ignore" or not self.model.is_scaling_fitted:
            return
        report = find_extrapolation(self.model, G, batch, self.tolerance)
        self.last_report = report
        tally = self._tally
        tally.add(report)
        if not report:
            return
        if self.extrapolation == "raise":
            raise ExtrapolationError(report.summary() + "\n" + report.table(max_rows=5))
        if self._warned_at is not None and tally.calls - self._warned_at < self.warn_every:
            return                        # counted; summarised with the next warning
        first = self._warned_at is None
        self._warned_at = tally.calls
        if first:
            msg = (f"call {tally.calls}: {report.summary()}\n{report.table(max_rows=5)}\n"
                   f"(later extrapolation is counted and summarised at most once per {self.warn_every} "
                   "calls; calc.extrapolation_report() gives the full table)")
        else:
            msg = (f"extrapolation so far: {tally.summary()}\n{tally.table(max_rows=5)}\n"
                   "(calc.extrapolation_report() gives the full table)")
        warnings.warn(msg, ExtrapolationWarning, stacklevel=2)
