"""Training HDNNPs on energies (eV) and forces (eV/Å).

* :class:`Trainer` (:mod:`.trainer`): Adam, learning-rate schedule, early stopping,
  checkpoints, data parallelism under ``torchrun``.
* :mod:`.loss`: :func:`energy_force_loss`, :class:`ErrorSums`.
* :mod:`.distributed`: ``torch.distributed`` helpers; :mod:`.ddp`: the command line.
* :class:`LiveLossPlot` (:mod:`.liveplot`): a notebook callback redrawing the curves.
"""
from mdmlkit.potential.training.liveplot import LiveLossPlot
from mdmlkit.potential.training.loss import ErrorSums, energy_force_loss
from mdmlkit.potential.training.trainer import CHECKPOINT_NAME, Trainer

__all__ = ["CHECKPOINT_NAME", "ErrorSums", "LiveLossPlot", "Trainer", "energy_force_loss"]
