"""Training HDNNPs on energies and forces: :class:`Trainer` (:mod:`.trainer`) and
data-parallel training under ``torchrun`` (:mod:`.ddp`)."""
from mdmlkit.potential.training.trainer import LiveLossPlot, Trainer

__all__ = ["LiveLossPlot", "Trainer"]
