"""Training of high-dimensional neural network potentials (HDNNPs).

:class:`Trainer` fits an :class:`~mdmlkit.potential.HDNNP` to reference energies
(eV) and forces (eV/Å) with Adam, an optional learning-rate schedule and early
stopping on the validation loss (loss: :mod:`.loss`).  Symmetry functions are
recomputed inside every training step from the positions (forces need ∂G/∂R and
the force loss needs a second derivative, ``create_graph=True``); the neighbour
lists (integer pair indices and periodic shifts) are built once per structure and
cached (:class:`~mdmlkit.potential.data.LabelledStructures`).

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
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from mdmlkit.errors import CheckpointMismatchError, CorruptCheckpointError, InputError, ModelMismatchError
from mdmlkit.potential.data import LabelledStructures, check_training_frames, model_cutoff, model_elements
from mdmlkit.potential.evaluate import evaluate, predict
from mdmlkit.potential.training.distributed import all_reduce_, broadcast_, rank_and_world
from mdmlkit.potential.training.loss import ErrorSums, energy_force_loss
from mdmlkit.utils import (
    atomic_torch_save,
    format_settings_diff,
    jsonable,
    load_torch_file,
    resolve_device,
    settings_diff,
)

__all__ = ["Trainer", "CHECKPOINT_NAME"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = "mdmlkit.trainer/1"
#: constructor arguments that say where/how to run, not what is learned
_RUN_SETTINGS = ("model", "device", "checkpoint_dir", "checkpoint_every", "progress", "callbacks")
#: hyper-parameters that may change when a run is resumed (a longer run continues a shorter one)
_RESUMABLE = ("max_epochs",)
_CHECKPOINT_KEYS = ("epoch", "finished", "model", "optimizer", "scheduler", "best_state",
                    "best_loss", "best_epoch", "bad_epochs", "stopped_early", "history", "params",
                    "rng")


def _data_fingerprint(train_frames: Sequence[Any], val_frames: Sequence[Any] | None) -> str:
    """SHA-1 of the training and validation structures and their energy labels."""
    import hashlib

    h = hashlib.sha1()
    for name, frames in (("train", train_frames), ("val", val_frames or [])):
        h.update(f"{name}:{len(frames)}|".encode())
        for a in frames:
            h.update(np.asarray(a.numbers, dtype=np.int64).tobytes())
            h.update(np.round(np.asarray(a.positions, dtype=float), 8).tobytes())
            h.update(np.round(np.asarray(a.cell.array, dtype=float), 8).tobytes())
            res = getattr(getattr(a, "calc", None), "results", None) or {}
            e = res.get("energy", a.info.get("energy"))
            h.update(repr(None if e is None else round(float(e), 10)).encode())
    return h.hexdigest()


def _call_callback(cb, trainer: Trainer, record: dict) -> None:
    if hasattr(cb, "on_epoch_end"):
        cb.on_epoch_end(trainer, record)
    else:
        cb(trainer, record)


class Trainer(BaseEstimator):
    """Fit an HDNNP to energies and forces (Adam + LR schedule + early stopping).

    Parameters follow scikit-learn's convention: stored verbatim, read by
    ``get_params``/``set_params``, so ``sklearn.base.clone(trainer)`` gives an
    unfitted trainer with the same settings (and a copy of the model).

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
    history_ : list of dict (set by :meth:`fit`)
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
            raise InputError(f"lr_schedule must be 'plateau', 'exponential' or None, not {lr_schedule!r}")
        if batch_size < 1 or max_epochs < 0 or checkpoint_every < 1:
            raise InputError("batch_size and checkpoint_every must be >= 1 and max_epochs >= 0")
        if energy_weight < 0 or force_weight < 0 or energy_weight + force_weight == 0:
            raise InputError("energy_weight and force_weight must be >= 0 and not both 0")
        self.model = model
        self.energy_weight = energy_weight
        self.force_weight = force_weight
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.callbacks = callbacks
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.lr_gamma = lr_gamma
        self.min_lr = min_lr
        self.grad_clip = grad_clip
        self.weight_decay = weight_decay
        self.fit_normalisation = fit_normalisation

    def hyperparameters(self) -> dict[str, Any]:
        """The parameters that determine the result (``get_params`` without the model
        and the run settings: device, checkpointing, progress, callbacks)."""
        return {k: v for k, v in self.get_params(deep=False).items() if k not in _RUN_SETTINGS}

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        history = getattr(self, "history_", [])
        state = f", epochs_run={len(history)}" if history else ""
        if getattr(self, "best_epoch_", None) is not None:
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
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / CHECKPOINT_NAME

    def _resolve_device(self) -> torch.device:
        if self.device is None and torch.cuda.is_available() and rank_and_world()[1] > 1:
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return resolve_device(self.device)

    def _dtype(self) -> torch.dtype:
        p = next(iter(self.model.parameters()), None)
        return p.dtype if p is not None else torch.get_default_dtype()

    def _make_dataset(self, frames, source, device, dtype, progress):
        elements = model_elements(self.model)
        need_f = self.force_weight > 0
        energies, forces = check_training_frames(frames, elements, source, require_forces=need_f)
        if not need_f:
            forces = [None] * len(forces)
        return LabelledStructures(frames, energies, forces, elements, model_cutoff(self.model), device, dtype,
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

    def _fit_normalisation(self, frames, data: LabelledStructures) -> None:
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
    def _step(self, data: LabelledStructures, idx: np.ndarray, opt, params, sums: ErrorSums, rank: int, world: int):
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
            all_reduce_(flat)
            offset = 0
            for p in params:
                n = p.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p))
                offset += n
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()

    def _validate(self, data: LabelledStructures, rank: int, world: int) -> ErrorSums:
        sums = ErrorSums.zeros(data.device, data.dtype)
        idx = np.arange(data.n)[rank::world]
        use_f = self.force_weight > 0
        for b in range(0, len(idx), max(self.batch_size, 16)):
            batch, e_ref, f_ref, n_at = data.batch(idx[b:b + max(self.batch_size, 16)])
            energy, forces = predict(self.model, batch, forces=use_f)
            sums.add((energy.detach() - e_ref) / n_at, None if not use_f else forces.detach() - f_ref)
        return sums.reduce()

    # -- checkpoints -----------------------------------------------------------
    def _checkpoint_state(self, epoch, opt, sched, best_state, bad_epochs, finished) -> dict:
        return {"format": _CHECKPOINT_FORMAT, "epoch": epoch, "finished": finished,
                "model": self.model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": None if sched is None else sched.state_dict(),
                "best_state": best_state, "best_loss": self.best_loss_, "best_epoch": self.best_epoch_,
                "bad_epochs": bad_epochs, "stopped_early": self.stopped_early_,
                "history": self.history_, "params": self.hyperparameters(),
                "data": getattr(self, "_data_fp", None),
                "model_config": jsonable(self.model.config()) if hasattr(self.model, "config") else None,
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                        "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}

    def _save_checkpoint(self, *args, rank: int) -> None:
        if self.checkpoint_path is not None and rank == 0:
            atomic_torch_save(self._checkpoint_state(*args), self.checkpoint_path)

    def load_checkpoint(self, path=None, device=None) -> dict:
        """Read a checkpoint written by :meth:`fit` (default: ``checkpoint_dir/checkpoint.pt``).

        Raises :class:`~mdmlkit.errors.CorruptCheckpointError` (naming the file) for a
        truncated or unreadable file, :class:`~mdmlkit.errors.ModelMismatchError` for a
        file that is not a Trainer checkpoint.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise InputError("no checkpoint path: give one or set checkpoint_dir")
        remedy = "delete it, or call fit(resume=False) to train afresh"
        state = load_torch_file(path, "Trainer checkpoint", remedy, map_location=device or "cpu",
                                weights_only=False)
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            fmt = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ModelMismatchError(f"{path}: not an mdmlkit Trainer checkpoint "
                                     f"(format {fmt!r})")
        missing = [k for k in _CHECKPOINT_KEYS if k not in state]
        if missing:
            raise CorruptCheckpointError(f"Trainer checkpoint lacks {missing}; {remedy}",
                                         path=str(path))
        return state

    def _check_resume_settings(self, state: dict, path, data_fp: str) -> None:
        """Refuse to resume a checkpoint made with other hyper-parameters, model or data."""
        saved = dict(state["params"])
        now = self.hyperparameters()
        if "model_config" in state and hasattr(self.model, "config"):
            saved["model"], now["model"] = state["model_config"], jsonable(self.model.config())
        if "data" in state:
            saved["training data"], now["training data"] = state["data"], data_fp
        diff = settings_diff(saved, now, ignore=_RESUMABLE)
        if diff:
            raise CheckpointMismatchError(
                f"{path}: checkpoint was written with other settings ({format_settings_diff(diff)}); "
                "use the original settings, call fit(resume=False) to train afresh, or another "
                "checkpoint_dir")

    def _restore(self, state, opt, sched, path) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ModelMismatchError(f"{path}: checkpoint does not fit this model: {exc}") from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise CorruptCheckpointError(f"Trainer checkpoint holds no usable weights ({exc}); "
                                         "delete it, or call fit(resume=False)", path=str(path)) from exc
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

    # -- public API ------------------------------------------------------------
    def fit(self, train_frames: Sequence[Any], val_frames: Sequence[Any] | None = None,
            resume: bool = False) -> Trainer:
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
            Without a checkpoint training starts afresh.  A checkpoint made with
            other hyper-parameters (all but ``max_epochs``), another architecture
            or other training/validation data raises
            :class:`~mdmlkit.errors.CheckpointMismatchError` naming the settings; a
            truncated one :class:`~mdmlkit.errors.CorruptCheckpointError`.

        Returns
        -------
        self, with the best weights loaded into ``model``.
        """
        rank, world = rank_and_world()
        device = self._resolve_device()
        self.model.to(device)
        dtype = self._dtype()
        show = self.progress and rank == 0
        state = None
        self._data_fp = _data_fingerprint(train_frames, val_frames)
        if resume:
            if self.checkpoint_path is None:
                raise InputError("resume=True needs checkpoint_dir")
            if self.checkpoint_path.exists():
                state = self.load_checkpoint(device=device)
                self._check_resume_settings(state, self.checkpoint_path, self._data_fp)
            else:
                log.info("no checkpoint at %s; starting a new run", self.checkpoint_path)
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.best_loss_: float = math.inf
        self.stopped_early_ = False
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
            broadcast_(list(self.model.parameters()) + list(self.model.buffers()))
        bar = tqdm(total=self.max_epochs, initial=start - 1, desc="training", unit="epoch",
                   disable=not show)
        epoch = start - 1
        try:
            for epoch in range(start, self.max_epochs + 1):
                t0 = time.perf_counter()
                lr_now = opt.param_groups[0]["lr"]
                self.model.train()
                perm = np.random.default_rng([self.seed, epoch]).permutation(train.n)
                sums = ErrorSums.zeros(device, dtype)
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
                for cb in list(self.callbacks):
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
        """Errors of the current model on labelled structures: :func:`mdmlkit.potential.evaluate`."""
        return evaluate(self.model, frames, batch_size=batch_size, source=source)

    def rmse_table(self, every: int = 1) -> str:
        """The training history as a fixed-width text table (RMSEs in meV/atom and meV/Å)."""
        head = (f"{'epoch':>5}  {'lr':>8}  {'E_train':>9}  {'E_val':>9}  {'F_train':>9}  {'F_val':>9}"
                f"  {'time/s':>7}")
        lines = [head, f"{'':>5}  {'':>8}  {'meV/atom':>9}  {'meV/atom':>9}  {'meV/Å':>9}  {'meV/Å':>9}",
                 "-" * len(head)]
        history = getattr(self, "history_", [])
        best = getattr(self, "best_epoch_", None)
        for h in history:
            if (h["epoch"] - 1) % every and h["epoch"] != best and h is not history[-1]:
                continue
            mark = " *" if h["epoch"] == best else ""
            lines.append(f"{h['epoch']:>5}  {h['lr']:>8.1e}  {h['train_energy_rmse_meV_atom']:>9.3f}  "
                         f"{h['val_energy_rmse_meV_atom']:>9.3f}  {h['train_force_rmse_meV_A']:>9.1f}  "
                         f"{h['val_force_rmse_meV_A']:>9.1f}  {h['time_s']:>7.2f}{mark}")
        if best is not None:
            lines.append(f"* best epoch {best} (weights restored)"
                         + ("; stopped early" if self.stopped_early_ else ""))
        return "\n".join(lines)
