"""Committees (ensembles) of HDNNPs: mean predictions and model deviation.

A :class:`Committee` holds several independently trained potentials (different
weight initialisations and, optionally, bootstrap resamples of the training set).
The spread of their predictions is an estimate of the model error used for
query-by-committee active learning; the force criterion is DP-GEN's *model
deviation*::

    ε_F = max_i sqrt( ⟨ |F_i − ⟨F_i⟩|² ⟩ )

with ⟨·⟩ the average over committee members (population statistics, ddof=0)
and i running over the atoms of a structure.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mdmlkit.descriptors import AtomsBatch
from mdmlkit.errors import EmptyTrajectoryError, InputError, MissingForceFieldError, ModelMismatchError
from mdmlkit.potential.data import model_cutoff, model_elements
from mdmlkit.potential.evaluate import evaluate, predict
from mdmlkit.potential.model import HDNNP
from mdmlkit.potential.training.trainer import Trainer
from mdmlkit.utils import atomic_write_json, check_elements

__all__ = ["Committee", "CommitteeCalculator", "reinitialise"]

_MANIFEST = "committee.json"


def reinitialise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Draw fresh random weights for ``model`` in place, reproducibly from ``seed``.

    Uses ``model.reset_parameters()`` when the model defines it, else the
    ``reset_parameters()`` of every sub-module (e.g. ``torch.nn.Linear``).  The
    global torch RNG state is left unchanged.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hasattr(model, "reset_parameters"):
            model.reset_parameters()
        else:
            for m in model.modules():
                if m is not model and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    return model


class Committee:
    """An ensemble of HDNNPs with mean prediction and uncertainty.

    Parameters
    ----------
    models : sequence of HDNNP
        At least two trained potentials over the same elements.

    Attributes
    ----------
    trainers_ : list of Trainer or None
        Set by :meth:`train` (histories of the members).
    """

    def __init__(self, models: Sequence[torch.nn.Module]):
        models = list(models)
        if len(models) < 2:
            raise InputError(f"a committee needs at least 2 models, got {len(models)}")
        els = [model_elements(m) for m in models]
        for k, e in enumerate(els[1:], 1):
            if e != els[0]:
                raise ModelMismatchError(f"committee member {k} has elements {e}, member 0 has {els[0]}")
        self.models = models
        self.elements = els[0]
        self.cutoff = max(model_cutoff(m) for m in models)
        self.trainers_: list[Trainer] | None = None

    def __len__(self) -> int:
        return len(self.models)

    def __repr__(self) -> str:
        return f"Committee(n_models={len(self)}, elements={self.elements}, cutoff={self.cutoff:g} Å)"

    # -- training ------------------------------------------------------------
    @classmethod
    def train(cls, frames_train: Sequence[Any], frames_val: Sequence[Any] | None = None,
              n_models: int = 4, model: torch.nn.Module | Callable[[int], torch.nn.Module] | None = None,
              trainer_kwargs: dict | None = None, seeds: Sequence[int] | None = None,
              bootstrap: bool = False, checkpoint_dir=None, resume: bool = False) -> Committee:
        """Train ``n_models`` potentials and return them as a committee.

        Parameters
        ----------
        frames_train, frames_val : list of ase.Atoms
            Labelled structures (energy in eV, forces in eV/Å).
        n_models : int
            Committee size (ignored when ``seeds`` is given).
        model : HDNNP or callable
            Template whose copies are re-initialised with each seed (see
            :func:`reinitialise`), or ``seed -> HDNNP`` factory.
        trainer_kwargs : dict
            Passed to :class:`Trainer` (``seed`` and ``checkpoint_dir`` are set per member).
        seeds : sequence of int
            One per member (default ``0..n_models-1``); drive the weight
            initialisation, the shuffling and the bootstrap resample.
        bootstrap : bool
            Train each member on a resample (with replacement, same size) of ``frames_train``.
        checkpoint_dir : path
            Members checkpoint under ``checkpoint_dir/member_K``; with ``resume=True``
            finished members are reloaded and an interrupted member continues.
        """
        if model is None:
            raise InputError("give a template model (HDNNP) or a factory seed -> HDNNP")
        seeds = list(range(n_models)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) < 2:
            raise InputError("a committee needs at least 2 members")
        if len(set(seeds)) != len(seeds):
            raise InputError(f"committee seeds must differ, got {seeds}")
        if len(frames_train) == 0:
            raise EmptyTrajectoryError("committee training set: no structures")
        kwargs = dict(trainer_kwargs or {})
        kwargs.pop("seed", None)
        kwargs.pop("checkpoint_dir", None)
        models, trainers = [], []
        for k, seed in enumerate(seeds):
            m = model(seed) if callable(model) and not isinstance(model, torch.nn.Module) \
                else reinitialise(copy.deepcopy(model), seed)
            frames = frames_train
            if bootstrap:
                idx = np.random.default_rng([seed, 7919]).integers(0, len(frames_train), len(frames_train))
                frames = [frames_train[i] for i in idx]
            ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member_{k}"
            trainer = Trainer(m, seed=seed, checkpoint_dir=ckpt, **kwargs)
            trainer.fit(frames, frames_val, resume=resume and ckpt is not None)
            models.append(m)
            trainers.append(trainer)
        com = cls(models)
        com.trainers_ = trainers
        return com

    # -- prediction ------------------------------------------------------------
    def _predict_fused(self, frames, e_all: list, f_all: list) -> None:
        """Every member's energies (eV) and forces (eV/Å) of ``frames`` through the fused
        kernels, appended per structure to ``e_all[k]`` / ``f_all[k]``."""
        from mdmlkit.descriptors.kernels.fused import FusedEnergy, numba

        if numba is None:
            raise InputError("Committee.predict(compile=True) needs numba (pip install numba)")
        for k, m in enumerate(self.models):
            if next(m.parameters()).device.type != "cpu":
                raise InputError(f"Committee.predict(compile=True) runs on the CPU; member {k} is on "
                                 f"{next(m.parameters()).device}")
        kernels = [FusedEnergy(m) for m in self.models]
        dtypes = {next(m.parameters()).dtype for m in self.models}
        batches = {}
        for atoms in frames:
            for dt in dtypes:
                batches[dt] = AtomsBatch.from_atoms([atoms], elements=self.elements, cutoff=self.cutoff,
                                                    device="cpu", dtype=dt)
            for k, (m, fe) in enumerate(zip(self.models, kernels)):
                e_atoms, _, g_pos, _ = fe(batches[next(m.parameters()).dtype], strain=False)
                e_all[k].append(np.array([float(e_atoms.double().sum())]))
                f_all[k].append(-g_pos.double().numpy())

    def _check(self, frames, source):
        if len(frames) == 0:
            raise EmptyTrajectoryError(f"{source}: no structures")
        check_elements(frames, self.elements, source, owner="the committee")

    def predict(self, frames: Sequence[Any], batch_size: int = 32, source: str = "frames",
                compile: bool = False) -> dict:
        """Committee predictions for a list of ``ase.Atoms`` (or one).

        ``compile=True`` evaluates every member with the fused CPU kernels of
        ``HDNNPCalculator(compile="numba")``, one structure at a time with one neighbour
        list per structure shared by the members (``batch_size`` unused); same results
        to round-off, several times faster on large pools.  Needs numba and members on
        the CPU.

        Returns
        -------
        dict with
            ``energy_mean``, ``energy_std`` : ``[S]`` total energies (eV);
            ``energy_std_per_atom`` : ``[S]`` (eV/atom);
            ``energies`` : ``[M, S]`` every member's energies (eV);
            ``forces_mean``, ``forces_std`` : list of ``[N_s, 3]`` arrays (eV/Å,
            std per component);
            ``atomic_force_deviation`` : list of ``[N_s]`` arrays,
            sqrt(⟨|F_i − ⟨F_i⟩|²⟩) per atom (eV/Å);
            ``max_atomic_force_deviation`` : ``[S]`` DP-GEN model deviation (eV/Å);
            ``mean_atomic_force_deviation`` : ``[S]`` (eV/Å).
        """
        if isinstance(frames, Atoms):
            frames = [frames]
        self._check(frames, source)
        n_atoms = np.array([len(a) for a in frames])
        bounds = np.concatenate([[0], np.cumsum(n_atoms)])
        p0 = next(self.models[0].parameters())
        e_all: list[list[np.ndarray]] = [[] for _ in self.models]
        f_all: list[list[np.ndarray]] = [[] for _ in self.models]
        modes = [m.training for m in self.models]
        for m in self.models:
            m.eval()
        try:
            if compile:
                self._predict_fused(frames, e_all, f_all)
            batch_starts = [] if compile else range(0, len(frames), batch_size)
            for b in batch_starts:
                # one neighbour list per batch, shared by all members
                batch = AtomsBatch.from_atoms(list(frames[b:b + batch_size]), elements=self.elements,
                                              cutoff=self.cutoff, device=p0.device, dtype=p0.dtype)
                for k, m in enumerate(self.models):
                    p = next(m.parameters())
                    same = (p.dtype, p.device) == (p0.dtype, p0.device)
                    mb = batch if same else batch.to(p.device, p.dtype)
                    e, f = predict(m, mb, forces=True)
                    e_all[k].append(e.detach().cpu().double().numpy())
                    f_all[k].append(f.detach().cpu().double().numpy())
        finally:
            for m, mode in zip(self.models, modes):
                m.train(mode)
        e_all = [np.concatenate(e) for e in e_all]
        f_all = [np.concatenate(f) for f in f_all]
        E = np.stack(e_all)                       # [M, S]
        F = np.stack(f_all)                       # [M, N, 3]
        F_mean = F.mean(axis=0)
        F_std = F.std(axis=0)
        dev = np.sqrt(((F - F_mean) ** 2).sum(axis=2).mean(axis=0))   # [N]
        split = lambda a: [a[bounds[s]:bounds[s + 1]] for s in range(len(frames))]  # noqa: E731
        atom_structure = np.repeat(np.arange(len(frames)), n_atoms)
        max_dev = np.full(len(frames), -np.inf)
        np.maximum.at(max_dev, atom_structure, dev)
        mean_dev = np.bincount(atom_structure, weights=dev, minlength=len(frames)) / n_atoms
        return {"energy_mean": E.mean(axis=0), "energy_std": E.std(axis=0),
                "energy_std_per_atom": E.std(axis=0) / n_atoms, "energies": E,
                "forces_mean": split(F_mean), "forces_std": split(F_std),
                "atomic_force_deviation": split(dev),
                "max_atomic_force_deviation": max_dev, "mean_atomic_force_deviation": mean_dev,
                "n_atoms": n_atoms}

    def evaluate(self, frames: Sequence[Any], batch_size: int = 32, source: str = "frames") -> list[dict]:
        """Errors of every member on labelled structures (:func:`mdmlkit.potential.evaluate`)."""
        return [evaluate(m, frames, batch_size=batch_size, source=f"{source} (member {k})")
                for k, m in enumerate(self.models)]

    def max_force_deviation(self, frames: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """DP-GEN model deviation ε_F (eV/Å) of every structure, ``[S]``."""
        return self.predict(frames, batch_size)["max_atomic_force_deviation"]

    def calculator(self, **kwargs) -> CommitteeCalculator:
        """An ASE calculator giving the committee mean and deviations."""
        return CommitteeCalculator(self, **kwargs)

    # -- persistence -----------------------------------------------------------
    def save(self, directory) -> Path:
        """Write ``member_K.pt`` files (via ``HDNNP.save``) and ``committee.json`` to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for k, m in enumerate(self.models):
            name = f"member_{k}.pt"
            m.save(directory / name)
            files.append(name)
        atomic_write_json(directory / _MANIFEST, {"format": "mdmlkit.committee/1", "members": files,
                                                  "elements": self.elements})
        return directory

    @classmethod
    def load(cls, directory, device=None) -> Committee:
        """Read a committee written by :meth:`save`."""
        directory = Path(directory)
        manifest = directory / _MANIFEST
        if not manifest.is_file():
            raise MissingForceFieldError(f"{manifest}: no committee manifest")
        meta = json.loads(manifest.read_text())
        kw = {} if device is None else {"device": device}
        return cls([HDNNP.load(directory / f, **kw) for f in meta["members"]])


class CommitteeCalculator(Calculator):
    """ASE calculator: committee-mean energy (eV) and forces (eV/Å) plus deviations.

    ``calc.results`` additionally holds ``energy_std`` (eV), ``energies`` (per
    member, eV), ``forces_std`` (``[N, 3]``, eV/Å), ``atomic_force_deviation``
    (``[N]``, eV/Å) and ``max_force_deviation`` (DP-GEN ε_F, eV/Å).
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, committee: Committee, **kwargs):
        super().__init__(**kwargs)
        self.committee = committee

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        p = self.committee.predict([self.atoms], source="CommitteeCalculator")
        e = float(p["energy_mean"][0])
        self.results = {"energy": e, "free_energy": e, "forces": p["forces_mean"][0],
                        "energy_std": float(p["energy_std"][0]), "energies": p["energies"][:, 0],
                        "forces_std": p["forces_std"][0],
                        "atomic_force_deviation": p["atomic_force_deviation"][0],
                        "max_force_deviation": float(p["max_atomic_force_deviation"][0])}
