"""Per-element autoencoders over atom-centred symmetry-function vectors (torch).

For every element ``el`` a small fully connected autoencoder maps the
standardised symmetry-function vector x_i = (G_i − μ_el) / σ_el of an atom
(n_features[el] numbers, μ/σ from the training set) to a latent vector z_i
(``latent_dim`` numbers) and back::

    z_i = enc_el(x_i),     x̂_i = dec_el(z_i),
    e_i = (1 / n_features[el]) · Σ_f (x̂_if − x_if)²        (reconstruction error)

Environments like those of the training set reconstruct well (small e_i);
environments the training set does not cover reconstruct badly.  The
networks are trained with Adam on the mean of e_i over all training atoms.
:class:`~mdmlkit.active.queries.AutoencoderQuery` turns e_i and z_i into
active-learning scores.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mdmlkit.errors import EmptyTrajectoryError, InputError, ModelMismatchError
from mdmlkit.utils import resolve_device

__all__ = ["ElementAutoencoder", "SymmetryFunctionAutoencoder"]


@contextlib.contextmanager
def _few_threads(device: torch.device, n: int = 1):
    """Run tiny CPU matrix products on ``n`` thread(s) (thread start-up dominates otherwise)."""
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(min(n, old))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    act = {"tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU, "silu": nn.SiLU}
    if activation not in act:
        raise InputError(f"activation {activation!r} not in {sorted(act)}")
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(act[activation]())
    return nn.Sequential(*layers)


class ElementAutoencoder(nn.Module):
    """Encoder n_in → hidden… → latent (linear), decoder latent → …hidden → n_in (linear)."""

    def __init__(self, n_in: int, hidden: Sequence[int] = (32,), latent_dim: int = 4,
                 activation: str = "tanh"):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if n_in < 1 or latent_dim < 1 or any(h < 1 for h in hidden):
            raise InputError(f"autoencoder widths must be >= 1 (n_in={n_in}, hidden={hidden}, "
                             f"latent_dim={latent_dim})")
        self.encoder = _mlp([n_in, *hidden, latent_dim], activation)
        self.decoder = _mlp([latent_dim, *reversed(hidden), n_in], activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


class SymmetryFunctionAutoencoder(nn.Module):
    """One :class:`ElementAutoencoder` per element plus per-element standardisation.

    Parameters
    ----------
    n_features : dict element -> int
        Symmetry functions per element.
    hidden, latent_dim, activation
        Architecture of every element's autoencoder.
    std_floor : float
        Lower bound on σ_el (in units of G) so that functions that are (nearly)
        constant in the training set do not blow up; a function that is constant
        in training but varies in the pool still gives a large error, as it should.

    Buffers ``mean_<el>``/``std_<el>`` hold the training-set statistics.
    """

    def __init__(self, n_features: Mapping[str, int], hidden: Sequence[int] = (32,),
                 latent_dim: int = 4, activation: str = "tanh", std_floor: float = 1e-4):
        super().__init__()
        self.elements = list(n_features)
        self.n_features = {el: int(n) for el, n in n_features.items()}
        self.latent_dim = int(latent_dim)
        self.std_floor = float(std_floor)
        self.nets = nn.ModuleDict({el: ElementAutoencoder(n, hidden, latent_dim, activation)
                                   for el, n in self.n_features.items() if n > 0})
        for el, n in self.n_features.items():
            self.register_buffer(f"mean_{el}", torch.zeros(n))
            self.register_buffer(f"std_{el}", torch.ones(n))

    # ------------------------------------------------------------ scaling
    def fit_scaling(self, G: Mapping[str, np.ndarray]) -> None:
        """Set μ_el, σ_el from training rows ``G[el]`` (raw symmetry functions)."""
        for el in self.elements:
            X = np.asarray(G[el], dtype=np.float64)
            if X.shape[0] == 0:
                continue
            mu = X.mean(axis=0)
            sd = np.maximum(X.std(axis=0), self.std_floor)
            getattr(self, f"mean_{el}").copy_(torch.as_tensor(mu))
            getattr(self, f"std_{el}").copy_(torch.as_tensor(sd))

    def standardise(self, el: str, G: torch.Tensor) -> torch.Tensor:
        return (G - getattr(self, f"mean_{el}")) / getattr(self, f"std_{el}")

    # ------------------------------------------------------------ forward
    def errors_and_latent(self, el: str, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-atom reconstruction error e_i [n] and latent z_i [n, latent_dim] of raw rows ``G``."""
        x = self.standardise(el, G)
        x_hat, z = self.nets[el](x)
        return ((x_hat - x) ** 2).mean(dim=1), z

    # ------------------------------------------------------------ training
    def fit(self, G: Mapping[str, np.ndarray], steps: int = 1500, lr: float = 3e-3,
            batch_size: int = 128, weight_decay: float = 0.0, seed: int = 0,
            max_rows: int | None = 50_000, device=None, progress: bool = False) -> list[dict]:
        """Fit scaling and train every element's autoencoder on the rows ``G[el]``.

        ``steps`` Adam steps per element on minibatches of ``batch_size`` atoms
        (reshuffled every pass over the rows; at most ``max_rows`` rows, a seeded
        random subset, per element), learning rate ``lr`` halved at 50 % and 75 %
        of the steps.  A fixed number of steps keeps the cost per active-learning
        round constant as the training set grows.  Reproducible for a given
        ``seed`` (CPU).

        Returns the history: one dict per element and pass (``element``,
        ``step``, ``loss`` = mean e_i over the pass).
        """
        from tqdm.auto import tqdm

        present = [el for el in self.elements if el in self.nets and np.asarray(G[el]).shape[0] > 0]
        if not present:
            raise EmptyTrajectoryError("autoencoder training set: no atoms")
        if steps < 1 or batch_size < 1:
            raise InputError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
        self.fit_scaling(G)
        dev = resolve_device(device or "cpu")
        self.to(dev)
        rng = np.random.default_rng(seed)
        history: list[dict] = []
        with torch.random.fork_rng(devices=[]), _few_threads(dev):
            torch.manual_seed(seed)
            for el in present:
                net = self.nets[el]
                for m in net.modules():
                    if isinstance(m, nn.Linear):
                        m.reset_parameters()
                X = np.asarray(G[el], dtype=np.float32)
                if max_rows is not None and X.shape[0] > max_rows:
                    X = X[np.sort(rng.choice(X.shape[0], max_rows, replace=False))]
                Xt = self.standardise(el, torch.as_tensor(X, dtype=torch.float32, device=dev)
                                      ).detach()
                n = Xt.shape[0]
                bs = min(int(batch_size), n)
                opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
                sched = torch.optim.lr_scheduler.MultiStepLR(
                    opt, milestones=[max(1, steps // 2), max(1, (3 * steps) // 4)], gamma=0.5)
                step = 0
                bar = tqdm(total=steps, desc=f"autoencoder {el}", disable=not progress, leave=False)
                while step < steps:
                    perm = torch.as_tensor(rng.permutation(n), device=dev)
                    total, seen = 0.0, 0
                    for b in range(0, n - bs + 1, bs):       # full batches only
                        xb = Xt[perm[b:b + bs]]
                        x_hat, _ = net(xb)
                        loss = ((x_hat - xb) ** 2).mean()
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        sched.step()
                        total += float(loss.detach()) * bs
                        seen += bs
                        step += 1
                        bar.update(1)
                        if step >= steps:
                            break
                    history.append({"element": el, "step": step, "loss": total / max(seen, 1)})
                bar.close()
        self.eval()
        return history

    @torch.no_grad()
    def evaluate(self, G: Mapping[str, np.ndarray], chunk: int = 65536
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-atom errors ``{el: [n]}`` and latent vectors ``{el: [n, latent_dim]}``."""
        dev = next(self.parameters()).device
        errs, lats = {}, {}
        for el in self.elements:
            X = np.asarray(G[el], dtype=np.float32)
            if X.shape[0] == 0:
                errs[el] = np.zeros(0)
                lats[el] = np.zeros((0, self.latent_dim))
                continue
            if el not in self.nets:
                raise ModelMismatchError(f"element {el} has no symmetry functions")
            e_parts, z_parts = [], []
            with _few_threads(dev):
                for s in range(0, X.shape[0], chunk):
                    e, z = self.errors_and_latent(el, torch.as_tensor(X[s:s + chunk], device=dev))
                    e_parts.append(e.cpu().double().numpy())
                    z_parts.append(z.cpu().double().numpy())
            errs[el] = np.concatenate(e_parts)
            lats[el] = np.concatenate(z_parts)
        return errs, lats
