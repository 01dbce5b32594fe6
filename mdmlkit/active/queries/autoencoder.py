"""The autoencoder query: informativeness × representativeness, diverse batches."""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mdmlkit.active.autoencoder import SymmetryFunctionAutoencoder
from mdmlkit.active.features import DescriptorCache, DescriptorTable
from mdmlkit.active.queries.base import Selection, check_k, pool_size, top_k
from mdmlkit.active.queries.descriptor import DescriptorQuery
from mdmlkit.errors import InputError, ModelMismatchError

__all__ = ["AutoencoderQuery", "AutoencoderEmbedding", "structure_embedding"]


def structure_embedding(table: DescriptorTable, latent: dict[str, np.ndarray],
                        latent_dim: int) -> np.ndarray:
    """f_s: per structure, the mean latent vector of its atoms of each element, concatenated.

    ``latent[el]`` holds the rows of ``table.G[el]``; elements absent from a
    structure contribute zeros.  Returns [n_structures, len(table.elements) · latent_dim].
    """
    S = table.n_structures
    cols = []
    for el in table.elements:
        Z = latent.get(el)
        f = np.zeros((S, latent_dim))
        if Z is not None and Z.shape[0]:
            np.add.at(f, table.owner[el], Z)
            f /= np.maximum(np.bincount(table.owner[el], minlength=S), 1)[:, None]
        cols.append(f)
    return np.concatenate(cols, axis=1)


@dataclass
class AutoencoderEmbedding:
    """What a fitted :class:`AutoencoderQuery` sees in some structures (:meth:`AutoencoderQuery.embed`).

    Attributes
    ----------
    elements : list[str]
    latent : dict[str, ndarray]
        ``latent[el]``: [atoms of el, latent_dim] latent vectors z_i (arb. units).
    atom_error : dict[str, ndarray]
        ``atom_error[el]``: [atoms of el] relative reconstruction errors ẽ_i
        (× mean training error of el).
    owner, atom : dict[str, ndarray]
        Structure index and atom index (within its structure) of every row.
    n_atoms : ndarray [n_structures]
    structure : ndarray [n_structures, n_elements · latent_dim]
        Structure embeddings f_s (the space of the diversity rule).
    informativeness : ndarray [n_structures]
        I(s), × mean training error.
    """

    elements: list[str]
    latent: dict[str, np.ndarray]
    atom_error: dict[str, np.ndarray]
    owner: dict[str, np.ndarray]
    atom: dict[str, np.ndarray]
    n_atoms: np.ndarray
    structure: np.ndarray
    informativeness: np.ndarray

    def atom_errors_by_structure(self) -> list[np.ndarray]:
        """ẽ_i as one array per structure, in atom order."""
        out = [np.zeros(int(n)) for n in self.n_atoms]
        for el in self.elements:
            for s, a, v in zip(self.owner[el], self.atom[el], self.atom_error[el]):
                out[s][a] = v
        return out


class AutoencoderQuery(DescriptorQuery):
    r"""Autoencoder query: informativeness × representativeness, diverse batches.

    A :class:`~mdmlkit.active.autoencoder.SymmetryFunctionAutoencoder` (one
    autoencoder per element) is trained on the atoms of the training set.  For a
    pool structure s with atoms i (element el(i)):

    * per-atom reconstruction error of the standardised symmetry functions
      x_i = (G_i − μ_el)/σ_el (μ, σ over the training atoms), relative to the
      mean training error ē_el of that element::

          e_i = mean_f (x̂_if − x_if)²,        ẽ_i = e_i / ē_el

    * **informativeness** (environments the training set does not cover
      reconstruct badly)::

          I_max(s) = max_i ẽ_i,   I_mean(s) = mean_i ẽ_i,
          I(s) = w_max · I_max(s) + (1 − w_max) · I_mean(s)

    * **representativeness** (how many pool environments a structure stands
      for): a Gaussian kernel density of its atoms' latent vectors z_i among
      the latent vectors of the pool's atoms of the same element (a seeded
      random reference subset Z_el of at most ``n_density_ref`` atoms)::

          ρ(z_i) = mean_{z_j ∈ Z_el} exp(−|z_i − z_j|² / (2 h_el²)),
          h_el = bandwidth · sqrt(mean_j |z_j − z̄_el|²)        (RMS spread of Z_el)
          R(s) = mean_i ρ(z_i) / max_pool ρ   ∈ (0, 1]

      (``density_space="input"`` uses the standardised inputs x_i instead of
      z_i: more faithful, since an autoencoder may map unfamiliar environments
      onto familiar codes, but costlier for many symmetry functions.)

    * **combined score** (information density): ``S(s) = T(I(s)) · R(s)^beta``, where
      ``T`` is set by ``informativeness_scale``: ``"linear"`` (T(I) = I), ``"log"``
      (T(I) = log(1 + I)) or ``"rank"`` (T(I) = rank of I(s) in the pool / pool size,
      in (0, 1]).  I spans orders of magnitude on real pools (a few very hot
      structures dominate); rank or log scaling keeps representativeness and
      diversity in play instead of filling a batch with one kind.

    * **diversity rule** (greedy, maximal-marginal-relevance style): with the
      structure embedding f_s = per-element mean latent vector (concatenated)
      and sim(s, t) = exp(−|f_s − f_t|² / (2 h_f²)), h_f = bandwidth × RMS spread
      of f over the pool, the batch B is built one structure at a time by::

          pick argmax_s  S(s) · (1 − diversity · max_{t ∈ B} sim(s, t))

      Structures whose embedding equals that of a chosen one (|f_s − f_t| ≤
      1e-6 h_f, e.g. exact copies) are skipped while any other candidate is left,
      also with ``diversity=0`` (which otherwise reduces the rule to top-k of S).

      ``batch_rule="kmeans++"`` instead seeds the batch like k-means++ (as in
      BADGE): the first pick is argmax S, each further one is drawn with
      probability ∝ S(s) · D(s)², D(s) = min_{t ∈ B} |f_s − f_t| (seeded by
      ``seed``), so a batch spreads over the latent space in proportion to where
      the informative structures are; ``diversity`` is not used.

    The on-the-fly statistic :meth:`uncertainty` is I(s); ``threshold_`` is
    ``threshold`` or ``flag_factor`` × the largest I(s) over the training set.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        Descriptor (e.g. the potential's ``model.sfs``); filled in by
        :class:`~mdmlkit.active.ActiveLearningLoop` when None.
    hidden, latent_dim, activation
        Autoencoder architecture (per element).
    steps, lr, batch_size, weight_decay, max_rows
        Training: ``steps`` Adam steps per element on minibatches of ``batch_size``
        atoms (at most ``max_rows`` atoms per element), so the cost per fit does
        not grow with the training set.
    w_max : float in [0, 1]
        Weight of I_max in I.
    beta : float >= 0
        Exponent of the representativeness (0: informativeness only).
    bandwidth : float > 0
        Kernel width relative to the RMS spread of the latent cloud.
    density_space : {"latent", "input"}
        Where the representativeness density is computed (see above).
    informativeness_scale : {"linear", "log", "rank"}
        Transform T of I(s) in the combined score (see above).
    batch_rule : {"mmr", "kmeans++"}
        Diversity rule of a batch (see above).
    diversity : float in [0, 1]
        Strength of the diversity penalty (0: plain top-k of S).
    n_density_ref : int
        Reference atoms per element for the density.
    flag_factor, threshold
        On-the-fly flagging threshold (see above).
    seed : int
        Seeds the autoencoder initialisation, minibatches and density reference.
    device : str, optional
        Torch device for the autoencoder (default CPU).
    cache : DescriptorCache, optional
        Descriptor cache to share (default: a private one, ``cache_``); filled in
        by the loop when None.
    progress : bool
        tqdm bars while computing descriptors / training.

    Attributes
    ----------
    autoencoder_ : SymmetryFunctionAutoencoder
    error_scale_ : dict[str, float]
        ē_el, mean training reconstruction error per element.
    train_informativeness_ : ndarray
        I(s) of the training structures.
    threshold_ : float
    history_ : list of dict
        Training losses per element and pass over the rows.
    n_train_ : int
    fit_time_s_ : float

    :meth:`embed` gives the latent vectors, relative atom errors and structure
    embeddings f_s of any structures (e.g. for plots).
    """

    name = "autoencoder"

    def __init__(self, sfs=None, hidden: Sequence[int] = (32,), latent_dim: int = 4,
                 activation: str = "tanh", steps: int = 1500, lr: float = 3e-3,
                 batch_size: int = 128, weight_decay: float = 0.0, max_rows: int | None = 50_000,
                 w_max: float = 0.5, beta: float = 1.0, bandwidth: float = 0.25,
                 density_space: str = "latent", diversity: float = 1.0, n_density_ref: int = 2000,
                 informativeness_scale: str = "linear", batch_rule: str = "mmr", flag_factor: float = 1.2,
                 threshold: float | None = None, seed: int = 0, device=None,
                 cache: DescriptorCache | None = None, progress: bool = False):
        self.sfs = sfs
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.activation = activation
        self.steps = steps
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.max_rows = max_rows
        self.w_max = w_max
        self.beta = beta
        self.bandwidth = bandwidth
        self.density_space = density_space
        self.diversity = diversity
        self.n_density_ref = n_density_ref
        self.informativeness_scale = informativeness_scale
        self.batch_rule = batch_rule
        self.flag_factor = flag_factor
        self.threshold = threshold
        self.seed = seed
        self.device = device
        self.cache = cache
        self.progress = progress

    def _check_params(self) -> None:
        if not 0.0 <= self.w_max <= 1.0:
            raise InputError(f"w_max must be in [0, 1], got {self.w_max}")
        if self.beta < 0:
            raise InputError(f"beta must be >= 0, got {self.beta}")
        if not self.bandwidth > 0:
            raise InputError(f"bandwidth must be > 0, got {self.bandwidth}")
        if self.density_space not in ("latent", "input"):
            raise InputError(f"density_space must be 'latent' or 'input', got {self.density_space!r}")
        if not 0.0 <= self.diversity <= 1.0:
            raise InputError(f"diversity must be in [0, 1], got {self.diversity}")
        if self.informativeness_scale not in ("linear", "log", "rank"):
            raise InputError("informativeness_scale must be 'linear', 'log' or 'rank', got "
                             f"{self.informativeness_scale!r}")
        if self.batch_rule not in ("mmr", "kmeans++"):
            raise InputError(f"batch_rule must be 'mmr' or 'kmeans++', got {self.batch_rule!r}")

    # -- fitting ----------------------------------------------------------------
    def fit(self, train) -> AutoencoderQuery:
        """Train the autoencoder on the atoms of ``train`` (Atoms list or DescriptorTable)."""
        self._check_params()
        t0 = time.perf_counter()
        table = self.descriptor_table(train, "training set")
        n_features = {el: table.G[el].shape[1] for el in table.elements}
        ae = SymmetryFunctionAutoencoder(n_features, self.hidden, self.latent_dim, self.activation)
        self.history_ = ae.fit(table.G, steps=self.steps, lr=self.lr, batch_size=self.batch_size,
                               weight_decay=self.weight_decay, seed=self.seed,
                               max_rows=self.max_rows, device=self.device, progress=self.progress)
        self.autoencoder_ = ae
        errs, _ = ae.evaluate(table.G)
        self.elements_ = [el for el in table.elements if table.G[el].shape[0] > 0]
        self.error_scale_ = {el: max(float(errs[el].mean()), 1e-12) for el in self.elements_}
        self.n_train_ = table.n_structures
        info = self._informativeness(table, errs)
        self.train_informativeness_ = info["informativeness"]
        self._calibrate(self.train_informativeness_)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    # -- scoring ----------------------------------------------------------------
    def _errors(self, table: DescriptorTable, source: str):
        self._check_fitted()
        missing = [el for el in table.elements
                   if table.G[el].shape[0] > 0 and el not in self.error_scale_]
        if missing:
            s = int(table.owner[missing[0]][0])
            raise ModelMismatchError(
                f"{source}: structure {s} contains {missing[0]}, which has no atoms in the "
                f"autoencoder's training set (trained on {self.elements_}); add a structure with "
                f"{missing[0]} to the training set first")
        return self.autoencoder_.evaluate(table.G)

    def _informativeness(self, table: DescriptorTable, errs) -> dict[str, np.ndarray]:
        S = table.n_structures
        i_max = np.full(S, -np.inf)
        i_sum = np.zeros(S)
        worst_atom = np.full(S, -1, dtype=np.int64)
        worst_el = np.full(S, "", dtype=object)
        for el in table.elements:
            if table.G[el].shape[0] == 0:
                continue
            e = errs[el] / self.error_scale_[el]
            own = table.owner[el]
            i_sum += np.bincount(own, weights=e, minlength=S)
            # per-structure maximum and its atom (vectorised: sort by (owner, e))
            order = np.lexsort((e, own))
            last = np.r_[own[order][1:] != own[order][:-1], True]
            rows = order[last]
            s_idx = own[rows]
            better = e[rows] > i_max[s_idx]
            i_max[s_idx[better]] = e[rows][better]
            worst_atom[s_idx[better]] = table.atom[el][rows][better]
            worst_el[s_idx[better]] = el
        i_mean = i_sum / table.n_atoms
        info = self.w_max * i_max + (1.0 - self.w_max) * i_mean
        return {"informativeness": info, "informativeness_max": i_max,
                "informativeness_mean": i_mean, "worst_atom": worst_atom, "worst_element": worst_el}

    def _density(self, table: DescriptorTable, lat) -> np.ndarray:
        """R(s): mean normalised density of the structure's atoms among the pool's (rows ``lat``)."""
        import torch

        S = table.n_structures
        r_sum = np.zeros(S)
        rng = np.random.default_rng([int(self.seed), 1])
        for el in table.elements:
            Z = lat.get(el)
            if Z is None or Z.shape[0] == 0:
                continue
            ref = Z if Z.shape[0] <= self.n_density_ref else \
                Z[np.sort(rng.choice(Z.shape[0], self.n_density_ref, replace=False))]
            spread = np.sqrt(np.mean(np.sum((ref - ref.mean(axis=0)) ** 2, axis=1)))
            h = max(self.bandwidth * spread, 1e-12)
            Zt, Rt = torch.as_tensor(Z), torch.as_tensor(ref)
            rho = np.concatenate([
                torch.exp(-torch.cdist(Zt[s:s + 8192], Rt) ** 2 / (2 * h * h)).mean(dim=1).numpy()
                for s in range(0, Z.shape[0], 8192)])
            rho = rho / rho.max()
            r_sum += np.bincount(table.owner[el], weights=rho, minlength=S)
        return r_sum / table.n_atoms

    def _score_all(self, pool, source: str = "pool"):
        table = self.descriptor_table(pool, source)
        errs, lat = self._errors(table, source)
        out = self._informativeness(table, errs)
        if self.density_space == "input":
            import torch

            space = {el: self.autoencoder_.standardise(el, torch.as_tensor(table.G[el]))
                     .double().numpy() for el in table.elements if el in self.error_scale_}
        else:
            space = lat
        R = self._density(table, space)
        out["representativeness"] = R
        out["score"] = self._scaled_informativeness(out["informativeness"]) * R ** self.beta
        return out, table, lat

    def _scaled_informativeness(self, info: np.ndarray) -> np.ndarray:
        """T(I): the informativeness transform of the combined score."""
        if self.informativeness_scale == "log":
            return np.log1p(np.maximum(info, 0.0))
        if self.informativeness_scale == "rank":
            from scipy.stats import rankdata

            return rankdata(info, method="average") / max(info.size, 1)
        return info

    def score(self, pool) -> dict[str, np.ndarray]:
        """Per pool structure: ``score`` S, ``informativeness`` I, ``informativeness_max``,
        ``informativeness_mean``, ``representativeness`` R, ``worst_atom`` (index of the
        atom with the largest ẽ_i) and ``worst_element``."""
        return self._score_all(pool)[0]

    def uncertainty(self, frames) -> np.ndarray:
        """I(s) of each structure (no pool needed)."""
        table = self.descriptor_table(frames, "frames")
        errs, _ = self._errors(table, "frames")
        return self._informativeness(table, errs)["informativeness"]

    def embed(self, frames) -> AutoencoderEmbedding:
        """Latent vectors z_i, relative errors ẽ_i, embeddings f_s and I(s) of ``frames``.

        One evaluation of the autoencoder; see :class:`AutoencoderEmbedding`.
        """
        table = self.descriptor_table(frames, "frames")
        errs, lat = self._errors(table, "frames")
        rel = {el: errs[el] / self.error_scale_.get(el, 1.0) for el in table.elements}
        return AutoencoderEmbedding(
            elements=list(table.elements), latent=lat, atom_error=rel, owner=table.owner,
            atom=table.atom, n_atoms=table.n_atoms,
            structure=structure_embedding(table, lat, self.latent_dim),
            informativeness=self._informativeness(table, errs)["informativeness"])

    def atom_errors(self, frames) -> list[np.ndarray]:
        """ẽ_i of every atom, one array per structure in atom order (e.g. to colour atoms)."""
        return self.embed(frames).atom_errors_by_structure()

    # -- selection --------------------------------------------------------------
    def select(self, pool, k: int) -> Selection:
        """Greedy diverse batch of ``k`` structures (see the class docstring)."""
        t0 = time.perf_counter()
        k = check_k(k, pool_size(pool))
        self._check_fitted()
        sc, table, lat = self._score_all(pool)
        S = sc["score"]
        f = structure_embedding(table, lat, self.latent_dim)
        if self.batch_rule == "kmeans++":
            return self._select_kmeanspp(sc, f, k, t0)
        spread = np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=1)))
        h = max(self.bandwidth * spread, 1e-12)
        n = S.size
        max_sim = np.zeros(n)
        duplicate = np.zeros(n, dtype=bool)
        taken = np.zeros(n, dtype=bool)
        chosen, reasons = [], []
        for r in range(k):
            adjusted = S * (1.0 - self.diversity * max_sim)
            cand = ~taken & ~duplicate
            only_dupes = not cand.any()
            if only_dupes:
                cand = ~taken
            masked = np.where(cand, adjusted, -np.inf)
            i = int(top_k(masked, 1)[0])
            reasons.append({"rank": r, "score": float(S[i]), "adjusted_score": float(adjusted[i]),
                            "informativeness": float(sc["informativeness"][i]),
                            "informativeness_max": float(sc["informativeness_max"][i]),
                            "informativeness_mean": float(sc["informativeness_mean"][i]),
                            "representativeness": float(sc["representativeness"][i]),
                            "max_similarity_to_batch": float(max_sim[i]),
                            "worst_atom": int(sc["worst_atom"][i]),
                            "worst_element": str(sc["worst_element"][i]),
                            "duplicate_of_batch": bool(duplicate[i])})
            chosen.append(i)
            taken[i] = True
            d = np.linalg.norm(f - f[i], axis=1)
            max_sim = np.maximum(max_sim, np.exp(-d ** 2 / (2 * h * h)))
            duplicate |= d <= 1e-6 * h
        if any(r["duplicate_of_batch"] for r in reasons):
            warnings.warn("AutoencoderQuery.select: the pool ran out of distinct structures; the "
                          "batch contains duplicates", stacklevel=2)
        return Selection(np.asarray(chosen, dtype=np.int64), reasons, self.name,
                         time.perf_counter() - t0, sc)

    def _select_kmeanspp(self, sc: dict, f: np.ndarray, k: int, t0: float) -> Selection:
        """k-means++-style batch: argmax S first, then draws ∝ S · D² (D: distance to the batch)."""
        S = np.maximum(np.asarray(sc["score"], dtype=float), 0.0)
        n = S.size
        rng = np.random.default_rng([int(self.seed), 2, n])
        d2 = np.full(n, np.inf)
        taken = np.zeros(n, dtype=bool)
        chosen, reasons = [], []
        for r in range(k):
            if r == 0:
                i = int(top_k(S, 1)[0])
            else:
                w = np.where(taken, 0.0, S * d2)
                if not np.isfinite(w).all() or w.sum() <= 0:      # all left are copies or score 0
                    w = np.where(taken, 0.0, np.where(np.isfinite(d2), d2, 0.0) + 1e-300)
                i = int(rng.choice(n, p=w / w.sum()))
            reasons.append({"rank": r, "score": float(S[i]),
                            "informativeness": float(sc["informativeness"][i]),
                            "representativeness": float(sc["representativeness"][i]),
                            "distance_to_batch": float(np.sqrt(d2[i])) if r else float("inf"),
                            "worst_atom": int(sc["worst_atom"][i]),
                            "worst_element": str(sc["worst_element"][i])})
            chosen.append(i)
            taken[i] = True
            d2 = np.minimum(d2, np.sum((f - f[i]) ** 2, axis=1))
        return Selection(np.asarray(chosen, dtype=np.int64), reasons, self.name,
                         time.perf_counter() - t0, sc)
