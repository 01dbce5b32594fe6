"""A live plot of the training curves in a notebook (a :class:`~mdmlkit.potential.Trainer` callback)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mdmlkit.potential.training.trainer import Trainer

__all__ = ["LiveLossPlot"]


class LiveLossPlot:
    """Trainer callback that redraws the RMSE curves in a Jupyter notebook after each epoch.

    Parameters
    ----------
    every : int
        Redraw every ``every`` epochs.
    figsize : tuple
        Figure size, inches.

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
