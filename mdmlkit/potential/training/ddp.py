"""Command-line HDNNP training, single- or multi-process (``torchrun``).

Examples::

    # one process
    python -m mdmlkit.potential.training.ddp --train train.extxyz --val val.extxyz \\
        --input-nn input.nn --out model_dir --epochs 200
    # two data-parallel processes (gloo on CPU, nccl on GPUs)
    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        -m mdmlkit.potential.training.ddp --train train.extxyz --val val.extxyz \\
        --input-nn input.nn --out model_dir

Each rank reads all structures but computes only its shard of every global
batch; gradients are summed over ranks (see :mod:`mdmlkit.potential.training.trainer`),
so ``--batch-size`` is the global number of structures per optimiser step and
the result does not depend on the number of processes (up to float rounding).
Only rank 0 writes ``model_dir``: ``model.pt`` (``HDNNP.save``),
``checkpoints/checkpoint.pt``, ``history.json``, ``metrics.json`` (errors on
the training and validation sets, and ``rank_weight_max_abs_diff``, which is 0
when all ranks ended with the same weights) and, with
``--n2p2``, the n2p2 files ``input.nn``, ``scaling.data``, ``weights.ZZZ.data``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ase.io
import numpy as np
import torch
import torch.distributed as dist

from mdmlkit.descriptors import SymmetryFunctionSet
from mdmlkit.errors import EmptyTrajectoryError
from mdmlkit.io.n2p2 import read_input_nn
from mdmlkit.potential.model import HDNNP
from mdmlkit.potential.n2p2_model import hdnnp_settings, save_n2p2_model
from mdmlkit.potential.training.distributed import init_distributed, rank_weight_spread
from mdmlkit.potential.training.trainer import Trainer
from mdmlkit.utils import atomic_write_json

__all__ = ["main_train", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdmlkit train", description="Train a Behler-Parrinello HDNNP "
                                "on energies (eV) and forces (eV/Å); torchrun for data parallelism.")
    p.add_argument("--train", required=True, help="labelled structures (extxyz or any ase.io format)")
    p.add_argument("--val", help="validation structures (default: --val-fraction of --train)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="random validation share of --train when --val is absent (default 0.1)")
    p.add_argument("--input-nn", required=True, help="n2p2 input.nn with elements and symmetry functions")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default: input.nn or 25 25)")
    p.add_argument("--activation", help="hidden activation (default: input.nn or tanh)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8, help="structures per step (global)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="plateau", choices=["plateau", "exponential", "none"])
    p.add_argument("--energy-weight", type=float, default=1.0)
    p.add_argument("--force-weight", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=20, help="early stopping patience (epochs; 0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/checkpoint.pt")
    p.add_argument("--n2p2", action="store_true", help="also write n2p2 weights/scaling files")
    p.add_argument("--threads", type=int, help="torch intra-op threads per process")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _read(path, what):
    frames = ase.io.read(path, index=":")
    if not frames:
        raise EmptyTrajectoryError(f"{path}: no structures in the {what} file")
    return frames


def _summary(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not isinstance(v, np.ndarray)}


def main_train(argv: list[str] | None = None) -> int:
    """Run training from command-line arguments (see :func:`build_parser`); returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = init_distributed(args.device)
    ok = False
    try:
        out = Path(args.out)
        train = _read(args.train, "training")
        if args.val:
            val = _read(args.val, "validation")
        else:
            perm = np.random.default_rng(args.seed).permutation(len(train))
            n_val = int(round(args.val_fraction * len(train)))
            val = [train[i] for i in perm[:n_val]]
            train = [train[i] for i in perm[n_val:]]
        settings = read_input_nn(args.input_nn)
        sfs = SymmetryFunctionSet.from_settings(settings)
        arch = hdnnp_settings(settings)
        if args.hidden:
            arch["hidden"] = tuple(args.hidden)
        if args.activation:
            arch["activation"] = args.activation
        arch.setdefault("hidden", (25, 25))
        model = HDNNP(sfs, **arch, dtype=getattr(torch, args.dtype), seed=args.seed)
        trainer = Trainer(model, energy_weight=args.energy_weight, force_weight=args.force_weight,
                          lr=args.lr, lr_schedule=None if args.lr_schedule == "none" else args.lr_schedule,
                          batch_size=args.batch_size, max_epochs=args.epochs,
                          patience=args.patience or None, seed=args.seed, device=device,
                          checkpoint_dir=out / "checkpoints", progress=not args.quiet)
        trainer.fit(train, val, resume=args.resume)
        spread = rank_weight_spread(model) if world > 1 else 0.0
        if rank == 0:
            model.save(out / "model.pt")
            atomic_write_json(out / "history.json", trainer.history_)
            metrics = {"train": _summary(trainer.evaluate(train)),
                       "val": _summary(trainer.evaluate(val)) if val else None,
                       "best_epoch": trainer.best_epoch_, "stopped_early": trainer.stopped_early_,
                       "world_size": world, "rank_weight_max_abs_diff": spread,
                       "params": trainer.hyperparameters(),
                       "n_train": len(train), "n_val": len(val)}
            atomic_write_json(out / "metrics.json", metrics)
            if args.n2p2:
                save_n2p2_model(model, out / "n2p2")
            print(trainer.rmse_table(every=max(1, len(trainer.history_) // 20)))
            print(f"[mdmlkit train] wrote {out} ({world} process(es))")
        ok = True
    finally:
        # on failure skip the collective clean-up (a barrier could wait forever for the
        # other ranks); the process exits and torchrun stops the rest
        if ok and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_train())
