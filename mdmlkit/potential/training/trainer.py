"""Training of high-dimensional neural network potentials (HDNNPs).

:class:`Trainer` fits an :class:`~mdmlkit.potential.HDNNP` to reference energies
(eV) and forces (eV/Å) with Adam, an optional learning-rate schedule and early
stopping on the validation loss.  Symmetry functions are recomputed inside every
training step from the positions (forces need ∂G/∂R and the force loss needs a
second derivative, ``create_graph=True``); the neighbour lists (integer pair
indices and periodic shifts) are built once per structure and cached.

Loss (per optimiser step, over a batch of ``S`` structures with ``N`` atoms)::

    L = w_E · mean_s ((E_s − E_s^ref) / N_s)²  +  w_F · mean_{i,α} (F_iα − F_iα^ref)²

i.e. the energy term is the MSE of the energy per atom (eV²/atom²), the force term
the MSE per force component (eV²/Å²).

Data-parallel training: when ``torch.distributed`` is initialised (e.g. by
``torchrun``, see :mod:`mdmlkit.potential.training.ddp`), every rank takes a disjoint shard
of each global batch, the gradients are summed over ranks with ``all_reduce``
(the per-rank losses are normalised by the *global* batch counts, so the summed
gradient equals the single-process gradient of the same global batch) and only
rank 0 writes checkpoints and shows the progress bar.
"""
from __future__ import annotations

import copy
import logging
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from mdmlkit.errors import (EmptyTrajectoryError, InputError, MissingLabelError, ModelMismatchError,
                      NonFiniteError)
from mdmlkit.utils import atomic_torch_save, check_elements, resolve_device

__all__ = ["Trainer", "LiveLossPlot", "frame_labels", "check_training_frames", "concatenate_batches",
           "energy_force_loss"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = "mdmlkit.trainer/1"

# -----------------------------------------------------------------------------
# labels and validation
# -----------------------------------------------------------------------------


def frame_labels(atoms, index: int = 0, source: str = "frames",
                 require_forces: bool = True) -> tuple[float, np.ndarray | None]:
    """Reference energy (eV) and forces (eV/Å, ``[N, 3]``) stored on ``atoms``.

    Looks in ``atoms.calc.results`` (what ``ase.io.read`` gives for extxyz with
    ``energy``/``forces``) and then in ``atoms.info["energy"]`` /
    ``atoms.arrays["forces"]``.  Never runs a calculator.

    Raises
    ------
    MissingLabelError
        naming ``source`` and the structure ``index`` when a label is absent.
    NonFiniteError
        when the energy or a force component is NaN/inf.
    """
    results = getattr(atoms.calc, "results", None) or {}
    energy = results.get("energy", results.get("free_energy", atoms.info.get("energy")))
    if energy is None:
        raise MissingLabelError(f"{source}: structure {index} ({atoms.get_chemical_formula()}) "
                                "has no reference energy (atoms.calc.results['energy'] or "
                                "atoms.info['energy'])")
    energy = float(np.asarray(energy).reshape(()))
    if not math.isfinite(energy):
        raise NonFiniteError(f"{source}: structure {index} has a non-finite energy ({energy})")
    forces = results.get("forces")
    if forces is None:
        forces = atoms.arrays.get("forces")
    if forces is None:
        if require_forces:
            raise MissingLabelError(f"{source}: structure {index} ({atoms.get_chemical_formula()}) "
                                    "has no reference forces (atoms.calc.results['forces'] or "
                                    "atoms.arrays['forces'])")
        return energy, None
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (len(atoms), 3):
        raise MissingLabelError(f"{source}: structure {index} has forces of shape {forces.shape}, "
                                f"expected ({len(atoms)}, 3)")
    if not np.all(np.isfinite(forces)):
        bad = np.where(~np.isfinite(forces).all(axis=1))[0]
        raise NonFiniteError(f"{source}: structure {index} has non-finite forces "
                             f"on atoms {bad[:10].tolist()}")
    return energy, forces


def check_training_frames(frames: Sequence[Any], elements: Sequence[str], source: str = "frames",
                          require_forces: bool = True) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Validate labelled structures and return their energies (eV) and forces (eV/Å).

    Checks that there is at least one structure, that every atom's element is in
    ``elements``, that positions/cells are finite and that energies (and forces,
    when ``require_forces``) are present and finite.

    Raises
    ------
    EmptyTrajectoryError, UnknownElementError, NonFiniteError, MissingLabelError
        naming ``source``, the structure index and (where relevant) the atom index.
    """
    if len(frames) == 0:
        raise EmptyTrajectoryError(f"{source}: no structures")
    check_elements(frames, elements, source, owner="the model")
    energies = np.empty(len(frames))
    forces: list[np.ndarray | None] = []
    for k, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise EmptyTrajectoryError(f"{source}: structure {k} has no atoms")
        pos = atoms.get_positions()
        if not np.all(np.isfinite(pos)):
            bad = np.where(~np.isfinite(pos).all(axis=1))[0]
            raise NonFiniteError(f"{source}: structure {k} has non-finite positions "
                                 f"(atoms {bad[:10].tolist()})")
        if not np.all(np.isfinite(atoms.get_cell().array)):
            raise NonFiniteError(f"{source}: structure {k} has a non-finite cell")
        energies[k], f = frame_labels(atoms, k, source, require_forces)
        forces.append(f)
    return energies, forces


# -----------------------------------------------------------------------------
# cached structures -> batches
# -----------------------------------------------------------------------------


def _model_elements(model) -> list[str]:
    for obj in (model, getattr(model, "sfs", None)):
        els = getattr(obj, "elements", None)
        if els is not None:
            return list(els)
    raise TypeError(f"{type(model).__name__} exposes no element list (model.elements / model.sfs.elements)")


def _model_cutoff(model) -> float:
    sfs = getattr(model, "sfs", None)
    if sfs is not None and getattr(sfs, "cutoff", None) is not None:
        return float(sfs.cutoff)
    return float(model.cutoff)


def concatenate_batches(batches: Sequence[Any]):
    """One :class:`~mdmlkit.descriptors.AtomsBatch` holding all structures of ``batches``.

    Pair indices are offset, nothing is recomputed (the neighbour lists are
    reused); the positions are a fresh leaf tensor (no ``requires_grad``).
    """
    from mdmlkit.descriptors import AtomsBatch

    if not batches:
        raise EmptyTrajectoryError("concatenate_batches: no batches")
    b0 = batches[0]
    for k, b in enumerate(batches[1:], 1):
        if b.elements != b0.elements or b.cutoff != b0.cutoff:
            raise ModelMismatchError(f"batch {k} has elements {b.elements} / cutoff {b.cutoff} Å, "
                                     f"batch 0 has {b0.elements} / {b0.cutoff} Å")
    n_at = [b.positions.shape[0] for b in batches]
    n_st = [b.n_structures for b in batches]
    atom_off = np.concatenate([[0], np.cumsum(n_at)[:-1]]).tolist()
    st_off = np.concatenate([[0], np.cumsum(n_st)[:-1]]).tolist()
    cat = torch.cat
    return AtomsBatch(
        elements=b0.elements, cutoff=b0.cutoff,
        positions=cat([b.positions.detach() for b in batches]),
        numbers=cat([b.numbers for b in batches]),
        species=cat([b.species for b in batches]),
        structure=cat([b.structure + o for b, o in zip(batches, st_off)]),
        n_atoms=cat([b.n_atoms for b in batches]),
        cells=cat([b.cells for b in batches]),
        pbc=cat([b.pbc for b in batches]),
        pair_i=cat([b.pair_i + o for b, o in zip(batches, atom_off)]),
        pair_j=cat([b.pair_j + o for b, o in zip(batches, atom_off)]),
        cell_shifts=cat([b.cell_shifts for b in batches]))


class _Dataset:
    """Labelled structures with their neighbour lists cached on ``device``.

    ``batch(idx)`` concatenates the cached single-structure batches; only the
    positions tensor is fresh (a new leaf, so ``requires_grad`` can be set).
    """

    def __init__(self, frames, energies, forces, elements, cutoff, device, dtype, source="frames",
                 progress=False):
        from mdmlkit.descriptors import AtomsBatch
        from tqdm.auto import tqdm

        desc = f"{source}: neighbour lists"
        self.n = len(frames)
        self.n_atoms = np.array([len(a) for a in frames], dtype=np.int64)
        self.kinds = [str(a.info.get("kind", "")) for a in frames]
        self.device, self.dtype = device, dtype
        self.energies = torch.as_tensor(energies, dtype=dtype, device=device)
        self.forces = [None if f is None else torch.as_tensor(f, dtype=dtype, device=device) for f in forces]
        self.items = []
        for k, atoms in enumerate(tqdm(frames, desc=desc, disable=not progress, leave=False)):
            try:
                self.items.append(AtomsBatch.from_atoms([atoms], elements=elements, cutoff=cutoff,
                                                        device=device, dtype=dtype))
            except InputError as exc:   # e.g. AtomsTooCloseError: name the structure in *this* set
                msg = str(exc).replace("structure 0", f"structure {k}", 1)
                raise type(exc)(f"{source}: {msg}") from None

    def batch(self, idx: Sequence[int]):
        idx = [int(i) for i in idx]
        batch = concatenate_batches([self.items[i] for i in idx])
        e_ref = self.energies[idx]
        f_ref = None
        if all(self.forces[i] is not None for i in idx):
            f_ref = torch.cat([self.forces[i] for i in idx])
        n_atoms = torch.as_tensor(self.n_atoms[idx], dtype=self.dtype, device=self.device)
        return batch, e_ref, f_ref, n_atoms


def _predict(model, batch, forces: bool, create_graph: bool = False):
    """Energies ``[S]`` (eV) and, if ``forces``, forces ``[N, 3]`` (eV/Å) of ``batch``."""
    if not forces:
        return model(batch), None
    return model.energy_and_forces(batch, create_graph=create_graph)


def energy_force_loss(model, batch, energy_ref: torch.Tensor, forces_ref: torch.Tensor | None,
                      n_atoms: torch.Tensor, energy_weight: float = 1.0, force_weight: float = 0.1,
                      n_structures: int | None = None, n_components: int | None = None):
    """The training loss of ``batch`` and its residuals.

    ``L = w_E Σ_s ((E_s − E_s^ref)/N_s)² / n_structures + w_F Σ_{i,α} (F_iα − F_iα^ref)² / n_components``
    (eV²/atom², eV²/Å²); the normalisers default to this batch's structure and
    force-component counts (the trainer passes the global batch's counts when the
    batch is one rank's shard).  The force term keeps the graph
    (``create_graph=True``) so that ``L.backward()`` differentiates through the forces.

    Returns
    -------
    loss : scalar Tensor
    de : Tensor [S], energy error per atom (eV/atom), detached
    df : Tensor [N, 3] force error (eV/Å), detached, or None without force term
    """
    use_f = force_weight > 0
    if use_f and forces_ref is None:
        raise MissingLabelError("energy_force_loss: force_weight > 0 but no reference forces")
    n_structures = int(energy_ref.numel()) if n_structures is None else n_structures
    energy, forces = _predict(model, batch, forces=use_f, create_graph=use_f)
    de = (energy - energy_ref) / n_atoms
    loss = energy_weight * (de ** 2).sum() / n_structures
    df = None
    if use_f:
        df = forces - forces_ref
        n_components = df.numel() if n_components is None else n_components
        loss = loss + force_weight * (df ** 2).sum() / n_components
        df = df.detach()
    return loss, de.detach(), df


# -----------------------------------------------------------------------------
# distributed helpers
# -----------------------------------------------------------------------------


def _dist():
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_(t: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if _dist()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    import torch.distributed as dist

    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


# -----------------------------------------------------------------------------
# metrics
# -----------------------------------------------------------------------------


@dataclass
class _Sums:
    """Running error sums; ``[se_e, ae_e, n_s, se_f, ae_f, n_comp]`` (eV/atom, eV/Å)."""

    v: torch.Tensor

    @classmethod
    def zeros(cls, device, dtype):
        return cls(torch.zeros(6, device=device, dtype=dtype))

    def add(self, de_per_atom: torch.Tensor, df: torch.Tensor | None) -> None:
        de_per_atom = de_per_atom.detach()
        self.v[0] += (de_per_atom ** 2).sum()
        self.v[1] += de_per_atom.abs().sum()
        self.v[2] += de_per_atom.numel()
        if df is not None:
            df = df.detach()
            self.v[3] += (df ** 2).sum()
            self.v[4] += df.abs().sum()
            self.v[5] += df.numel()

    def reduce(self) -> "_Sums":
        _all_reduce_(self.v)
        return self

    def metrics(self, energy_weight: float, force_weight: float) -> dict[str, float]:
        se_e, ae_e, n_s, se_f, ae_f, n_c = (float(x) for x in self.v.cpu())
        mse_e = se_e / n_s if n_s else math.nan
        mse_f = se_f / n_c if n_c else math.nan
        loss = energy_weight * mse_e + (force_weight * mse_f if n_c else 0.0)
        return {"loss": loss,
                "energy_rmse_meV_atom": 1000.0 * math.sqrt(mse_e) if n_s else math.nan,
                "energy_mae_meV_atom": 1000.0 * ae_e / n_s if n_s else math.nan,
                "force_rmse_meV_A": 1000.0 * math.sqrt(mse_f) if n_c else math.nan,
                "force_mae_meV_A": 1000.0 * ae_f / n_c if n_c else math.nan}


def _error_summary(de_per_atom: np.ndarray, df: np.ndarray | None) -> dict[str, float]:
    out = {"n_structures": int(de_per_atom.size),
           "energy_rmse_meV_atom": 1000.0 * float(np.sqrt(np.mean(de_per_atom ** 2))),
           "energy_mae_meV_atom": 1000.0 * float(np.mean(np.abs(de_per_atom)))}
    if df is not None and df.size:
        rmse = float(np.sqrt(np.mean(df ** 2)))
        out.update({"force_rmse_eV_A": rmse, "force_rmse_meV_A": 1000.0 * rmse,
                    "force_mae_eV_A": float(np.mean(np.abs(df))),
                    "force_mae_meV_A": 1000.0 * float(np.mean(np.abs(df)))})
    return out


# -----------------------------------------------------------------------------
# Trainer
# -----------------------------------------------------------------------------


def _call_callback(cb, trainer: "Trainer", record: dict) -> None:
    if hasattr(cb, "on_epoch_end"):
        cb.on_epoch_end(trainer, record)
    else:
        cb(trainer, record)


class Trainer:
    """Fit an HDNNP to energies and forces (Adam + LR schedule + early stopping).

    Parameters
    ----------
    model : HDNNP
        The potential to train (in place).  Its scaling statistics and reference
        energies are fitted on the training set at the start of :meth:`fit`.
    energy_weight, force_weight : float
        Weights of the energy-per-atom MSE (eV²/atom²) and force-component MSE
        (eV²/Å²) in the loss.  ``force_weight=0`` trains on energies only (then
        forces are not required).
    lr : float
        Initial Adam learning rate.
    lr_schedule : {"plateau", "exponential", None}
        ``"plateau"``: multiply the LR by ``lr_factor`` after ``lr_patience`` epochs
        without validation improvement; ``"exponential"``: multiply by ``lr_gamma``
        every epoch; ``None``: constant.  Never below ``min_lr``.
    batch_size : int
        Structures per optimiser step (the *global* batch when data-parallel).
    max_epochs : int
        Upper bound on the number of epochs.
    patience : int or None
        Early stopping: stop after this many epochs without improvement of the
        validation loss (training loss when there is no validation set) and
        restore the best weights.  ``None`` disables early stopping (the best
        weights are still restored at the end).
    seed : int
        Seeds the per-epoch shuffling (epoch ``e`` uses ``default_rng([seed, e])``,
        so resuming needs no RNG state); the same model initialisation + seed
        give identical weights.
    device : str or torch.device or None
        ``None``: CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU.
    checkpoint_dir : path or None
        Where ``checkpoint.pt`` is written atomically every ``checkpoint_every``
        epochs and at the end (rank 0 only); ``fit(resume=True)`` continues from it.
    progress : bool
        Show a tqdm bar over epochs with the current RMSEs.
    callbacks : iterable
        Called after every epoch as ``cb(trainer, record)`` (or
        ``cb.on_epoch_end(trainer, record)``), ``record`` being the new
        ``history_`` entry; e.g. :class:`LiveLossPlot` in a notebook.
    lr_factor, lr_patience, lr_gamma, min_lr : float, int, float, float
        Schedule parameters (see ``lr_schedule``).
    grad_clip : float or None
        Clip the global gradient norm to this value.
    weight_decay : float
        Adam L2 penalty.
    fit_normalisation : bool
        Fit the symmetry-function scaling statistics and the per-element reference
        energies on the training set before training (default).  ``False`` keeps the
        model's own (warm starts, fine-tuning); they are fitted anyway when the
        model's scaling was never fitted.

    Attributes
    ----------
    history_ : list of dict
        One entry per epoch: ``epoch``, ``lr``, ``train_loss``, ``val_loss``,
        ``train_energy_rmse_meV_atom``, ``val_energy_rmse_meV_atom``,
        ``train_force_rmse_meV_A``, ``val_force_rmse_meV_A`` (and the MAEs),
        ``time_s``.  Training-set errors are accumulated over the epoch's batches.
    best_epoch_, best_loss_ : int, float
        Epoch whose weights were restored and its monitored loss.
    stopped_early_ : bool
    """

    def __init__(self, model, energy_weight: float = 1.0, force_weight: float = 0.1,
                 lr: float = 1e-3, lr_schedule: str | None = "plateau", batch_size: int = 8,
                 max_epochs: int = 100, patience: int | None = 20, seed: int = 0,
                 device=None, checkpoint_dir=None, checkpoint_every: int = 1,
                 progress: bool = True, callbacks: Iterable[Callable] = (),
                 lr_factor: float = 0.5, lr_patience: int = 5, lr_gamma: float = 0.98,
                 min_lr: float = 1e-6, grad_clip: float | None = None, weight_decay: float = 0.0,
                 fit_normalisation: bool = True):
        if lr_schedule not in ("plateau", "exponential", None):
            raise ValueError(f"lr_schedule must be 'plateau', 'exponential' or None, not {lr_schedule!r}")
        if batch_size < 1 or max_epochs < 0 or checkpoint_every < 1:
            raise ValueError("batch_size and checkpoint_every must be >= 1 and max_epochs >= 0")
        if energy_weight < 0 or force_weight < 0 or energy_weight + force_weight == 0:
            raise ValueError("energy_weight and force_weight must be >= 0 and not both 0")
        self.model = model
        self.energy_weight = float(energy_weight)
        self.force_weight = float(force_weight)
        self.lr = float(lr)
        self.lr_schedule = lr_schedule
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.patience = patience
        self.seed = int(seed)
        self.device = device
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = int(checkpoint_every)
        self.progress = progress
        self.callbacks = list(callbacks)
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.lr_gamma = lr_gamma
        self.min_lr = min_lr
        self.grad_clip = grad_clip
        self.weight_decay = weight_decay
        self.fit_normalisation = fit_normalisation
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.best_loss_: float = math.inf
        self.stopped_early_ = False

    # -- small helpers -----------------------------------------------------
    _PARAMS = ("energy_weight", "force_weight", "lr", "lr_schedule", "batch_size", "max_epochs",
               "patience", "seed", "lr_factor", "lr_patience", "lr_gamma", "min_lr", "grad_clip",
               "weight_decay", "fit_normalisation")

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (those that determine the result) as a dict."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def __repr__(self) -> str:
        state = f", epochs_run={len(self.history_)}" if self.history_ else ""
        if self.best_epoch_ is not None:
            h = self.history_[self.best_epoch_ - 1] if self.best_epoch_ - 1 < len(self.history_) else {}
            e = h.get("val_energy_rmse_meV_atom", h.get("train_energy_rmse_meV_atom", math.nan))
            f = h.get("val_force_rmse_meV_A", h.get("train_force_rmse_meV_A", math.nan))
            state += f", best_epoch={self.best_epoch_} (E {e:.2f} meV/atom, F {f:.1f} meV/Å)"
        return (f"Trainer(w_E={self.energy_weight}, w_F={self.force_weight}, lr={self.lr}, "
                f"schedule={self.lr_schedule}, batch_size={self.batch_size}, "
                f"max_epochs={self.max_epochs}, patience={self.patience}, seed={self.seed}{state})")

    @property
    def checkpoint_path(self) -> Path | None:
        """``checkpoint_dir / "checkpoint.pt"`` (or None)."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def _resolve_device(self) -> torch.device:
        if self.device is None and torch.cuda.is_available() and _dist()[1] > 1:
            import os

            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return resolve_device(self.device)

    def _dtype(self) -> torch.dtype:
        p = next(iter(self.model.parameters()), None)
        return p.dtype if p is not None else torch.get_default_dtype()

    def _make_dataset(self, frames, source, device, dtype, progress):
        elements = _model_elements(self.model)
        need_f = self.force_weight > 0
        energies, forces = check_training_frames(frames, elements, source, require_forces=need_f)
        if not need_f:
            forces = [None] * len(forces)
        return _Dataset(frames, energies, forces, elements, _model_cutoff(self.model), device, dtype,
                        source=source, progress=progress)

    def _make_optimizer(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=self.lr_factor, patience=self.lr_patience, min_lr=self.min_lr)
        elif self.lr_schedule == "exponential":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda ep: max(self.lr_gamma ** ep, self.min_lr / self.lr))
        else:
            sched = None
        return opt, sched

    def _fit_normalisation(self, frames, data: _Dataset) -> None:
        """Fit the model's per-element reference energies and scaling statistics.

        The raw symmetry functions are computed from the cached neighbour lists
        of ``data`` and handed to ``model.fit_scaling`` as arrays.
        """
        self.model.fit_reference_energies(frames, data.energies.detach().cpu().numpy())
        G: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            for b in range(0, data.n, 32):
                batch, *_ = data.batch(range(b, min(b + 32, data.n)))
                for el, g in self.model.descriptors(batch).items():
                    if g.shape[0]:
                        G.setdefault(el, []).append(g.detach().cpu())
        self.model.fit_scaling({el: torch.cat(v) for el, v in G.items()})

    # -- the training step ---------------------------------------------------
    def _step(self, data: _Dataset, idx: np.ndarray, opt, params, sums: _Sums, rank: int, world: int):
        """One optimiser step over the global batch ``idx`` (this rank's shard ``idx[rank::world]``)."""
        n_struct = len(idx)
        n_comp = 3 * int(data.n_atoms[idx].sum())
        for p in params:  # zero (not None) grads: every parameter gets an Adam update every step
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            else:
                p.grad.zero_()
        local = idx[rank::world]
        if len(local):
            batch, e_ref, f_ref, n_at = data.batch(local)
            loss, de, df = energy_force_loss(self.model, batch, e_ref, f_ref, n_at, self.energy_weight,
                                             self.force_weight, n_struct, n_comp)
            loss.backward()
            sums.add(de, df)
        if world > 1:
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            _all_reduce_(flat)
            offset = 0
            for p in params:
                n = p.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p))
                offset += n
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()

    def _validate(self, data: _Dataset, rank: int, world: int) -> _Sums:
        sums = _Sums.zeros(data.device, data.dtype)
        idx = np.arange(data.n)[rank::world]
        use_f = self.force_weight > 0
        for b in range(0, len(idx), max(self.batch_size, 16)):
            batch, e_ref, f_ref, n_at = data.batch(idx[b:b + max(self.batch_size, 16)])
            energy, forces = _predict(self.model, batch, forces=use_f)
            sums.add((energy.detach() - e_ref) / n_at, None if not use_f else forces.detach() - f_ref)
        return sums.reduce()

    # -- checkpoints -----------------------------------------------------------
    def _checkpoint_state(self, epoch, opt, sched, best_state, bad_epochs, finished) -> dict:
        return {"format": _CHECKPOINT_FORMAT, "epoch": epoch, "finished": finished,
                "model": self.model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": None if sched is None else sched.state_dict(),
                "best_state": best_state, "best_loss": self.best_loss_, "best_epoch": self.best_epoch_,
                "bad_epochs": bad_epochs, "stopped_early": self.stopped_early_,
                "history": self.history_, "params": self.get_params(),
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                        "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}

    def _save_checkpoint(self, *args, rank: int) -> None:
        if self.checkpoint_path is not None and rank == 0:
            atomic_torch_save(self._checkpoint_state(*args), self.checkpoint_path)

    def load_checkpoint(self, path=None, device=None) -> dict:
        """Read a checkpoint written by :meth:`fit` (default: ``checkpoint_dir/checkpoint.pt``)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("no checkpoint path: give one or set checkpoint_dir")
        state = torch.load(path, map_location=device or "cpu", weights_only=False)
        if state.get("format") != _CHECKPOINT_FORMAT:
            raise ModelMismatchError(f"{path}: not an mdmlkit Trainer checkpoint "
                                     f"(format {state.get('format')!r})")
        return state

    def _restore(self, state, opt, sched, path) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ModelMismatchError(f"{path}: checkpoint does not fit this model: {exc}") from exc
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state["scheduler"] is not None:
            sched.load_state_dict(state["scheduler"])
        self.history_ = list(state["history"])
        self.best_loss_ = state["best_loss"]
        self.best_epoch_ = state["best_epoch"]
        self.stopped_early_ = state["stopped_early"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        changed = {k: (v, getattr(self, k)) for k, v in state["params"].items()
                   if k in self._PARAMS and k != "max_epochs" and getattr(self, k) != v}
        if changed:
            log.warning("resuming %s with changed hyper-parameters (checkpoint, now): %s", path, changed)

    # -- public API ------------------------------------------------------------
    def fit(self, train_frames: Sequence[Any], val_frames: Sequence[Any] | None = None,
            resume: bool = False) -> "Trainer":
        """Train on labelled ``ase.Atoms`` (energies in eV, forces in eV/Å).

        Parameters
        ----------
        train_frames, val_frames : list of ase.Atoms
            Structures with reference ``energy`` and ``forces`` (see
            :func:`frame_labels`); ``atoms.info["kind"]`` optionally groups them in
            :meth:`evaluate`.  Without ``val_frames`` the training loss is
            monitored for early stopping.
        resume : bool
            Continue from ``checkpoint_dir/checkpoint.pt`` when it exists (model,
            optimiser, scheduler, RNG states, history, best weights); a finished
            run (stopped early or at ``max_epochs``) only has its best weights
            loaded, a run finished at a smaller ``max_epochs`` continues.
            Without a checkpoint training starts afresh.

        Returns
        -------
        self, with the best weights loaded into ``model``.
        """
        from tqdm.auto import tqdm

        rank, world = _dist()
        device = self._resolve_device()
        self.model.to(device)
        dtype = self._dtype()
        show = self.progress and rank == 0
        state = None
        if resume:
            if self.checkpoint_path is None:
                raise ValueError("resume=True needs checkpoint_dir")
            if self.checkpoint_path.exists():
                state = self.load_checkpoint(device=device)
            else:
                log.info("no checkpoint at %s; starting a new run", self.checkpoint_path)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt, sched = self._make_optimizer()
        if state is not None:
            self._restore(state, opt, sched, self.checkpoint_path)
            if state["finished"] and (state["stopped_early"] or state["epoch"] >= self.max_epochs):
                if state["best_state"] is not None:       # nothing left to do
                    self.model.load_state_dict(state["best_state"])
                return self

        train = self._make_dataset(train_frames, "training set", device, dtype, show)
        val = None
        if val_frames is not None and len(val_frames):
            val = self._make_dataset(val_frames, "validation set", device, dtype, show)
        if state is not None:
            start, best_state, bad = state["epoch"] + 1, state["best_state"], state["bad_epochs"]
        else:
            if self.fit_normalisation or not getattr(self.model, "is_scaling_fitted", False):
                self._fit_normalisation(train_frames, train)
            self.history_, self.best_epoch_, self.best_loss_, self.stopped_early_ = [], None, math.inf, False
            start, best_state, bad = 1, None, 0

        if world > 1:  # identical starting point on every rank
            _broadcast_(list(self.model.parameters()) + list(self.model.buffers()))
        bar = tqdm(total=self.max_epochs, initial=start - 1, desc="training", unit="epoch",
                   disable=not show)
        epoch = start - 1
        try:
            for epoch in range(start, self.max_epochs + 1):
                t0 = time.perf_counter()
                lr_now = opt.param_groups[0]["lr"]
                self.model.train()
                perm = np.random.default_rng([self.seed, epoch]).permutation(train.n)
                sums = _Sums.zeros(device, dtype)
                for b in range(0, train.n, self.batch_size):
                    self._step(train, perm[b:b + self.batch_size], opt, params, sums, rank, world)
                self.model.eval()
                tr = sums.reduce().metrics(self.energy_weight, self.force_weight)
                va = self._validate(val, rank, world).metrics(self.energy_weight, self.force_weight) \
                    if val is not None else None
                monitored = (va or tr)["loss"]
                if sched is not None:
                    sched.step(monitored) if self.lr_schedule == "plateau" else sched.step()
                if monitored < self.best_loss_:
                    self.best_loss_, self.best_epoch_, bad = monitored, epoch, 0
                    best_state = copy.deepcopy(self.model.state_dict())
                else:
                    bad += 1
                record = {"epoch": epoch, "lr": lr_now, "train_loss": tr["loss"],
                          "val_loss": va["loss"] if va else math.nan}
                for key in ("energy_rmse_meV_atom", "force_rmse_meV_A", "energy_mae_meV_atom",
                            "force_mae_meV_A"):
                    record["train_" + key] = tr[key]
                    record["val_" + key] = va[key] if va else math.nan
                record["time_s"] = time.perf_counter() - t0
                self.history_.append(record)
                stop = self.patience is not None and bad >= self.patience
                if not math.isfinite(monitored):
                    warnings.warn(f"training diverged (non-finite loss) in epoch {epoch}; stopping and "
                                  f"restoring the weights of epoch {self.best_epoch_}", RuntimeWarning,
                                  stacklevel=2)
                    stop = True
                self.stopped_early_ = stop
                if epoch % self.checkpoint_every == 0 and not stop and epoch < self.max_epochs:
                    self._save_checkpoint(epoch, opt, sched, best_state, bad, False, rank=rank)
                bar.update(1)
                src = va or tr
                bar.set_postfix(E=f"{src['energy_rmse_meV_atom']:.2f}meV/at",
                                F=f"{src['force_rmse_meV_A']:.0f}meV/Å", lr=f"{lr_now:.1e}")
                for cb in self.callbacks:
                    _call_callback(cb, self, record)
                if stop:
                    break
        finally:
            bar.close()
        # the final checkpoint keeps the last weights (a longer run can continue from them)
        self._save_checkpoint(epoch, opt, sched, best_state, bad, True, rank=rank)
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self

    def evaluate(self, frames: Sequence[Any], batch_size: int = 32, source: str = "frames") -> dict:
        """Errors of the current model on labelled structures.

        Returns
        -------
        dict with
            ``energy_rmse_meV_atom``, ``energy_mae_meV_atom``, ``force_rmse_eV_A``,
            ``force_rmse_meV_A``, ``force_mae_eV_A``, ``force_mae_meV_A``,
            ``n_structures``; per structure (parity plots): ``energy_ref``,
            ``energy_pred`` (eV), ``n_atoms``, ``energy_ref_per_atom``,
            ``energy_pred_per_atom`` (eV/atom), ``force_rmse_per_structure_meV_A``,
            ``kind``; per atom: ``forces_ref``, ``forces_pred`` (``[N_total, 3]``,
            eV/Å) and ``atom_structure`` (structure index of each row); and
            ``by_kind``: the summary metrics per ``atoms.info["kind"]`` (when any
            structure has a kind).
        """
        device = next(self.model.parameters()).device
        dtype = self._dtype()
        elements = _model_elements(self.model)
        energies, forces = check_training_frames(frames, elements, source, require_forces=False)
        has_f = all(f is not None for f in forces)
        data = _Dataset(frames, energies, forces, elements, _model_cutoff(self.model), device, dtype, source)
        was_training = self.model.training
        self.model.eval()
        e_pred, f_pred = [], []
        for b in range(0, data.n, batch_size):
            batch, *_ = data.batch(range(b, min(b + batch_size, data.n)))
            e, f = _predict(self.model, batch, forces=True)
            e_pred.append(e.detach().cpu().numpy())
            f_pred.append(f.detach().cpu().numpy())
        self.model.train(was_training)
        e_pred = np.concatenate(e_pred)
        f_pred = np.concatenate(f_pred)
        n_atoms = data.n_atoms
        atom_structure = np.repeat(np.arange(data.n), n_atoms)
        de = (e_pred - energies) / n_atoms
        f_ref = np.concatenate(forces) if has_f else None
        df = f_pred - f_ref if has_f else None
        out = _error_summary(de, df)
        out.update({"energy_ref": energies, "energy_pred": e_pred, "n_atoms": n_atoms,
                    "energy_ref_per_atom": energies / n_atoms, "energy_pred_per_atom": e_pred / n_atoms,
                    "forces_ref": f_ref, "forces_pred": f_pred, "atom_structure": atom_structure,
                    "kind": np.array(data.kinds)})
        if has_f:
            sq = np.bincount(atom_structure, weights=(df ** 2).sum(axis=1), minlength=data.n)
            out["force_rmse_per_structure_meV_A"] = 1000.0 * np.sqrt(sq / (3 * n_atoms))
        if any(data.kinds):
            kinds = np.array(data.kinds)
            out["by_kind"] = {}
            for kind in sorted(set(data.kinds)):
                sel = kinds == kind
                out["by_kind"][kind] = _error_summary(de[sel], df[sel[atom_structure]] if has_f else None)
        return out

    def rmse_table(self, every: int = 1) -> str:
        """The training history as a fixed-width text table (RMSEs in meV/atom and meV/Å)."""
        head = (f"{'epoch':>5}  {'lr':>8}  {'E_train':>9}  {'E_val':>9}  {'F_train':>9}  {'F_val':>9}"
                f"  {'time/s':>7}")
        lines = [head, f"{'':>5}  {'':>8}  {'meV/atom':>9}  {'meV/atom':>9}  {'meV/Å':>9}  {'meV/Å':>9}",
                 "-" * len(head)]
        for h in self.history_:
            if (h["epoch"] - 1) % every and h["epoch"] != self.best_epoch_ and h is not self.history_[-1]:
                continue
            mark = " *" if h["epoch"] == self.best_epoch_ else ""
            lines.append(f"{h['epoch']:>5}  {h['lr']:>8.1e}  {h['train_energy_rmse_meV_atom']:>9.3f}  "
                         f"{h['val_energy_rmse_meV_atom']:>9.3f}  {h['train_force_rmse_meV_A']:>9.1f}  "
                         f"{h['val_force_rmse_meV_A']:>9.1f}  {h['time_s']:>7.2f}{mark}")
        if self.best_epoch_ is not None:
            lines.append(f"* best epoch {self.best_epoch_} (weights restored)"
                         + ("; stopped early" if self.stopped_early_ else ""))
        return "\n".join(lines)


class LiveLossPlot:
    """Trainer callback that redraws the RMSE curves in a Jupyter notebook after each epoch.

    >>> trainer = Trainer(model, callbacks=[LiveLossPlot()])   # doctest: +SKIP
    """

    def __init__(self, every: int = 1, figsize=(9, 3.2)):
        self.every = every
        self.figsize = figsize
        self._handle = None

    def __call__(self, trainer: Trainer, record: dict) -> None:
        if record["epoch"] % self.every:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        h = trainer.history_
        ep = [r["epoch"] for r in h]
        fig, axes = plt.subplots(1, 2, figsize=self.figsize)
        for ax, key, unit in ((axes[0], "energy_rmse_meV_atom", "meV/atom"),
                              (axes[1], "force_rmse_meV_A", "meV/Å")):
            for split in ("train", "val"):
                ax.semilogy(ep, [r[f"{split}_{key}"] for r in h], label=split)
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{key.split('_')[0]} RMSE / {unit}")
            ax.legend()
        fig.tight_layout()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
