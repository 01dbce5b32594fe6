"""``LandscapeMap``: fingerprints -> standard scaling -> 2-D embedding -> basins.

The seed study (de Mendonça et al., J. Chem. Inf. Model. 2022) mapped ~2500 MD
frames of Cu_n clusters: Coulomb-matrix eigenvalues -> ``StandardScaler`` ->
sklearn ``TSNE(n_components=2, init="random")`` -> ``DBSCAN(eps=7,
min_samples=250)`` on the map -> noise frames reassigned by a 5-NN classifier.
:class:`LandscapeMap` does the same in one scikit-learn estimator, scaled to
10^5 frames:

* ``embedding="tsne"`` (default): openTSNE (Poličar et al., J. Stat. Softw. 2024)
  with FFT-accelerated interpolation of the repulsive forces
  (``negative_gradient_method="fft"``, Linderman et al., Nat. Methods 2019; O(n)
  per iteration) for maps of >= 10 000 frames and Barnes-Hut below (the FFT grid
  has a fixed cost per iteration that does not pay off on small maps;
  ``tsne_gradient`` overrides),
  approximate neighbours (Annoy) for n >= 1000, PCA initialisation
  (deterministic, preserves global layout) and a fixed seed.  By default the
  attractive forces are exaggerated by 2 after the early-exaggeration phase
  (``exaggeration=2``; Kobak & Berens, Nat. Commun. 10, 5416 (2019)): plain t-SNE
  spreads every region to nearly uniform density, so on large continuous
  trajectories (e.g. 20 000 frames of Cu147 heated 300 -> 1300 K) solid and liquid
  become two lobes joined by a neck *as dense as the lobes*, which no DBSCAN eps
  separates; with exaggeration 2 they are separate islands and the automatic eps
  finds them.  ``exaggeration=1`` gives the classic map.  New frames are placed
  on the existing map by ``TSNEEmbedding.transform`` (optimising only the new
  points against the fixed reference map).
* ``embedding="tsne-sklearn"``: :class:`sklearn.manifold.TSNE` with
  ``init="random"`` (Barnes-Hut, O(n log n)), the seed study's setting; it has no
  out-of-sample extension, so :meth:`LandscapeMap.transform` places new frames at
  the inverse-distance-weighted mean map position of their 10 nearest training
  frames in (scaled) feature space.
* ``embedding="umap"``: umap-learn (McInnes et al. 2018) with ``n_neighbors``,
  ``min_dist`` and ``random_state``; a fixed seed makes umap-learn run single
  threaded, and numba compiles its kernels on first use.  Uses
  ``UMAP.transform`` for new frames.
* ``embedding="pca"``: the first two principal components (linear, exact transform).

Basins come from :func:`~mdmlkit.landscape.basins.cluster_embedding` (DBSCAN or
sklearn's HDBSCAN), then noise reassignment, canonical numbering and medoids (see
:mod:`mdmlkit.landscape.basins`).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from mdmlkit.errors import InconsistentFramesError, InputError
from mdmlkit.landscape._checks import check_embedding, check_features, check_values
from mdmlkit.landscape.basins import (
    MAX_CLUSTER_SAMPLES,
    basin_medoids,
    canonical_labels,
    cluster_embedding,
    reassign_noise,
)
from mdmlkit.landscape.surface import Surface, density, interpolate_surface, landscape_complexity

__all__ = ["LandscapeMap", "EMBEDDINGS"]

#: Accepted values of ``LandscapeMap(embedding=...)``.
EMBEDDINGS = ("tsne", "tsne-sklearn", "umap", "pca")
#: ``tsne_gradient="auto"`` uses FFT gradients from this many frames on.
_FFT_MIN_FRAMES = 10_000
#: Training neighbours used by the ``tsne-sklearn`` out-of-sample placement.
_PLACE_K = 10


class LandscapeMap(BaseEstimator):
    """Map MD frames to 2-D and find the basins of the landscape.

    Parameters
    ----------
    embedding : {"tsne", "tsne-sklearn", "umap", "pca"}
        Embedding method (see the module docstring).
    perplexity : float
        t-SNE perplexity (effective number of neighbours; clipped to ``(n - 1) / 3``).
    n_neighbors : int
        UMAP neighbourhood size.
    min_dist : float
        UMAP minimum distance between embedded points (map units).
    exaggeration : float
        openTSNE exaggeration of the attractive forces in the main phase (1: plain
        t-SNE; 2: denser, better separated basins, see the module docstring).
    tsne_gradient : {"auto", "fft", "bh"}
        openTSNE repulsive-force method; ``"auto"``: FFT for n >= 10 000, else
        Barnes-Hut.
    n_iter : int, optional
        Optimisation iterations (t-SNE: after 250 early-exaggeration iterations;
        UMAP: epochs).  ``None``: the library default (openTSNE 500, sklearn 1000
        in total, UMAP 200-500).
    clustering : {"dbscan", "hdbscan"}
        Density clustering of the map.
    eps : float, optional
        DBSCAN radius in map units; ``None``: :func:`~mdmlkit.landscape.basins.suggest_eps`
        (knee of the k-distance curve).  For HDBSCAN the ``cluster_selection_epsilon``.
    min_samples : int, optional
        DBSCAN ``min_samples`` / HDBSCAN ``min_cluster_size``; ``None``:
        ``max(10, round(0.02 * n_frames))`` (the seed used 10 % of 2500 frames).
    noise_reassign_k : int
        Neighbours of the kNN vote that reassigns noise frames and predicts basins
        of new frames.
    max_cluster_samples : int, optional
        Cluster maps larger than this on a subsample (see
        :mod:`mdmlkit.landscape.basins`); ``None``: never.
    random_state : int, optional
        Seed of the embedding, subsamples and medoid sampling.
    n_jobs : int, optional
        Threads for openTSNE / sklearn / UMAP (``None``: 1; -1: all cores).
    verbose : bool
        Print stage timings.

    Attributes
    ----------
    scaler_ : StandardScaler
    embedding_ : ndarray ``[n, 2]``
        Map coordinates of the training frames.
    raw_labels_ : ndarray ``[n]``
        Basin of each frame with ``-1`` for noise (before reassignment).
    labels_ : ndarray ``[n]``
        Basin of each frame after noise reassignment (no ``-1``), numbered by
        decreasing basin size (ties: lower mean energy first).
    n_basins_ : int
    representatives_ : ndarray ``[n_basins_]``
        Frame index of each basin's medoid on the map.
    basin_stats_ : list of dict
        Per basin: ``basin, size, fraction, noise_fraction, representative``,
        ``E_mean, E_std, E_min, E_max`` (eV, when energies are known) and
        ``<col>_mean`` for each numeric column of ``frames_meta``.
    energies_ : ndarray ``[n]`` or None
        eV.
    eps_, min_samples_ : the values used by the clustering.
    timings_ : dict
        Wall time (s) of ``scale``, ``embed`` and ``cluster``.
    """

    def __init__(self, embedding: str = "tsne", perplexity: float = 30.0, n_neighbors: int = 15,
                 min_dist: float = 0.1, exaggeration: float = 2.0, tsne_gradient: str = "auto", n_iter: int | None = None, clustering: str = "dbscan",
                 eps: float | None = None, min_samples: int | None = None,
                 noise_reassign_k: int = 5,
                 max_cluster_samples: int | None = MAX_CLUSTER_SAMPLES,
                 random_state: int | None = 0, n_jobs: int | None = None, verbose: bool = False):
        self.embedding = embedding
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.exaggeration = exaggeration
        self.tsne_gradient = tsne_gradient
        self.n_iter = n_iter
        self.clustering = clustering
        self.eps = eps
        self.min_samples = min_samples
        self.noise_reassign_k = noise_reassign_k
        self.max_cluster_samples = max_cluster_samples
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, energies: Any = None, frames_meta: Mapping[str, Any] | None = None,
            y: Any = None) -> LandscapeMap:
        """Scale, embed and cluster frame fingerprints ``X [n_frames, n_features]``.

        ``energies [n_frames]`` (eV) feed the basin statistics and the tie-break of
        basin numbering; when ``None`` and ``frames_meta`` has ``"E_pot"``, that is
        used.  ``frames_meta`` is a mapping of per-frame columns (e.g.
        :func:`mdmlkit.md.trajectory.frame_table` output); numeric columns are averaged per basin.
        """
        self._check_params()
        X = check_features(X, "LandscapeMap.fit")
        n = len(X)
        self.frames_meta_ = self._check_meta(frames_meta, n)
        if energies is None and "E_pot" in self.frames_meta_:
            energies = self.frames_meta_["E_pot"]
        self.energies_ = None if energies is None else check_values(energies, n, "LandscapeMap.fit")
        self.timings_ = {}
        t0 = time.perf_counter()
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)
        self.n_features_in_ = X.shape[1]
        self.n_frames_ = n
        self.timings_["scale"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.embedding_, self._model = self._embed(Xs)
        self.timings_["embed"] = time.perf_counter() - t0
        self._log(f"embedded {n} frames ({self.embedding}) in {self.timings_['embed']:.1f} s")
        self._cluster()
        return self

    def fit_transform(self, X: Any, energies: Any = None,
                      frames_meta: Mapping[str, Any] | None = None, y: Any = None) -> np.ndarray:
        """:meth:`fit` and return ``embedding_ [n_frames, 2]``."""
        return self.fit(X, energies, frames_meta).embedding_

    def recluster(self, eps: float | None = None, min_samples: int | None = None,
                  clustering: str | None = None) -> LandscapeMap:
        """Redo only the clustering on the stored map (fast; no re-embedding).

        The arguments become the estimator's parameters (``None`` = automatic), so
        ``clone(m)`` reproduces the current state.  Returns ``self``.
        """
        check_is_fitted(self, "embedding_")
        self.eps = eps
        self.min_samples = min_samples
        if clustering is not None:
            self.clustering = clustering
        self._check_params()
        self._cluster()
        return self

    def _cluster(self) -> None:
        t0 = time.perf_counter()
        Y = self.embedding_
        raw, self.eps_, self.min_samples_ = cluster_embedding(
            Y, self.clustering, self.eps, self.min_samples, self.max_cluster_samples,
            vote_k=self.noise_reassign_k, random_state=self.random_state, n_jobs=self.n_jobs)
        labels = reassign_noise(Y, raw, self.noise_reassign_k)
        labels, _ = canonical_labels(labels, self.energies_, Y)
        raw = np.where(raw >= 0, labels, -1)          # same numbering as labels_
        self.raw_labels_, self.labels_ = raw, labels
        self.n_basins_ = int(labels.max()) + 1
        self.noise_fraction_ = float((raw < 0).mean())
        self.representatives_ = basin_medoids(Y, labels, random_state=self.random_state)
        self._knn = KNeighborsClassifier(
            n_neighbors=min(self.noise_reassign_k, len(Y))).fit(Y, labels)
        self.basin_stats_ = self._basin_stats()
        self.timings_["cluster"] = time.perf_counter() - t0
        self._log(f"{self.n_basins_} basins ({self.clustering}, eps={self.eps_}, "
                  f"min_samples={self.min_samples_}, noise {self.noise_fraction_:.1%}) in "
                  f"{self.timings_['cluster']:.2f} s")

    def _basin_stats(self) -> list[dict[str, Any]]:
        n = len(self.labels_)
        stats = []
        for b in range(self.n_basins_):
            m = self.labels_ == b
            s: dict[str, Any] = {"basin": b, "size": int(m.sum()), "fraction": float(m.mean()),
                                 "noise_fraction": float((self.raw_labels_[m] < 0).mean()),
                                 "representative": int(self.representatives_[b])}
            if self.energies_ is not None:
                e = self.energies_[m]
                s.update(E_mean=float(e.mean()), E_std=float(e.std()), E_min=float(e.min()),
                         E_max=float(e.max()))
            for col, v in self.frames_meta_.items():
                if v.dtype.kind in "fiub" and len(v) == n:
                    s[f"{col}_mean"] = float(v[m].mean())
            stats.append(s)
        return stats

    # ------------------------------------------------------------------ new frames
    def transform(self, X: Any) -> np.ndarray:
        """Place new frames ``X [m, n_features]`` on the fitted map -> ``[m, 2]``.

        t-SNE (openTSNE): ``TSNEEmbedding.transform`` (new points optimised against
        the fixed map, perplexity 5, 250 iterations); UMAP: ``UMAP.transform``;
        PCA: exact; tsne-sklearn: kNN interpolation (see the module docstring).
        """
        check_is_fitted(self, "embedding_")
        Xs = self.scaler_.transform(check_features(X, "LandscapeMap.transform", 1,
                                                   n_features=self.n_features_in_))
        if self.embedding == "tsne":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(self._model.transform(Xs), dtype=np.float64)
        if self.embedding in ("umap", "pca"):
            return np.asarray(self._model.transform(Xs), dtype=np.float64)
        nn = self._model
        d, idx = nn.kneighbors(Xs)
        exact = d[:, 0] < 1e-6                        # a training frame (standardised units)
        w = 1.0 / np.maximum(d, 1e-6)
        w[exact] = 0.0
        w[exact, 0] = 1.0
        w /= w.sum(axis=1, keepdims=True)
        return np.einsum("mk,mkd->md", w, self.embedding_[idx])

    def predict(self, X: Any) -> np.ndarray:
        """Basin labels of new frames: :meth:`transform`, then the kNN vote
        (``noise_reassign_k`` neighbours) among the training frames on the map."""
        return self.predict_map(self.transform(X))

    def predict_map(self, Y: Any) -> np.ndarray:
        """Basin labels of points ``Y [m, 2]`` given directly in map coordinates."""
        check_is_fitted(self, "labels_")
        return self._knn.predict(check_embedding(Y, "LandscapeMap.predict_map", 1))

    # ------------------------------------------------------------------ surfaces
    def surface(self, grid: int = 200, method: str = "linear", **kwargs: Any) -> Surface:
        """:func:`~mdmlkit.landscape.surface.interpolate_surface` of the fitted energies (eV)."""
        return interpolate_surface(self.embedding_, self._need_energies(), grid, method, **kwargs)

    def density(self, grid: int = 200, **kwargs: Any) -> Surface:
        """:func:`~mdmlkit.landscape.surface.density` of the fitted frames on the map."""
        check_is_fitted(self, "embedding_")
        return density(self.embedding_, grid, **kwargs)

    def complexity(self, **kwargs: Any) -> dict[str, Any]:
        """:func:`~mdmlkit.landscape.surface.landscape_complexity` of the fitted map."""
        return landscape_complexity(self.embedding_, self._need_energies(), self.labels_, **kwargs)

    def _need_energies(self) -> np.ndarray:
        check_is_fitted(self, "embedding_")
        if self.energies_ is None:
            raise InputError("LandscapeMap: fitted without energies; pass energies= to fit()")
        return self.energies_

    # ------------------------------------------------------------------ internals
    def _check_params(self) -> None:
        if self.embedding not in EMBEDDINGS:
            raise InputError(f"LandscapeMap: embedding must be one of {EMBEDDINGS}, "
                             f"got {self.embedding!r}")
        if self.clustering not in ("dbscan", "hdbscan"):
            raise InputError(f"LandscapeMap: clustering must be 'dbscan' or 'hdbscan', "
                             f"got {self.clustering!r}")
        if not self.exaggeration > 0:
            raise InputError(f"LandscapeMap: exaggeration must be > 0, got {self.exaggeration}")
        if not self.perplexity > 0:
            raise InputError(f"LandscapeMap: perplexity must be > 0, got {self.perplexity}")
        if self.tsne_gradient not in ("auto", "fft", "bh"):
            raise InputError(f"LandscapeMap: tsne_gradient must be 'auto', 'fft' or 'bh', "
                             f"got {self.tsne_gradient!r}")
        if int(self.noise_reassign_k) < 1:
            raise InputError(f"LandscapeMap: noise_reassign_k must be >= 1, "
                             f"got {self.noise_reassign_k}")

    @staticmethod
    def _check_meta(meta: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
        if meta is None:
            return {}
        out = {}
        for col, v in dict(meta).items():
            a = np.asarray(v)
            if a.ndim != 1 or len(a) != n:
                raise InconsistentFramesError(
                    f"LandscapeMap.fit: frames_meta[{col!r}] has shape {a.shape}, expected ({n},)")
            out[str(col)] = a
        return out

    def _threads(self) -> int:
        return 1 if self.n_jobs is None else int(self.n_jobs)

    def _embed(self, Xs: np.ndarray) -> tuple[np.ndarray, Any]:
        n = len(Xs)
        perp = float(min(self.perplexity, max(1.0, (n - 1) / 3.0)))
        if self.embedding == "tsne":
            from openTSNE import TSNE

            kw = {} if self.n_iter is None else {"n_iter": int(self.n_iter)}
            grad = self.tsne_gradient
            if grad == "auto":
                grad = "fft" if n >= _FFT_MIN_FRAMES else "bh"
            tsne = TSNE(n_components=2, perplexity=perp, initialization="pca",
                        negative_gradient_method=grad, exaggeration=float(self.exaggeration), n_jobs=self._threads(),
                        random_state=self.random_state, verbose=False, **kw)
            model = tsne.fit(Xs)
            # openTSNE's transform() centres the reference map's bounding box in place;
            # do it now so that embedding_ and the stored model keep the same coordinates
            model -= (np.max(model, axis=0) + np.min(model, axis=0)) / 2
            return np.asarray(model, dtype=np.float64).copy(), model
        if self.embedding == "tsne-sklearn":
            from sklearn.manifold import TSNE

            kw = {} if self.n_iter is None else {"max_iter": int(self.n_iter) + 250}
            Y = TSNE(n_components=2, perplexity=min(perp, n - 1.0), init="random",
                     random_state=self.random_state, n_jobs=self.n_jobs, **kw).fit_transform(Xs)
            nn = NearestNeighbors(n_neighbors=min(_PLACE_K, n)).fit(Xs)
            return np.asarray(Y, dtype=np.float64), nn
        if self.embedding == "umap":
            import umap

            kw = {} if self.n_iter is None else {"n_epochs": int(self.n_iter)}
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*n_jobs.*")
                model = umap.UMAP(n_components=2, n_neighbors=int(min(self.n_neighbors, n - 1)),
                                  min_dist=self.min_dist, random_state=self.random_state,
                                  n_jobs=self._threads(), **kw)
                Y = model.fit_transform(Xs)
            return np.asarray(Y, dtype=np.float64), model
        from sklearn.decomposition import PCA

        model = PCA(n_components=2, random_state=self.random_state).fit(Xs)
        return model.transform(Xs), model

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(f"[LandscapeMap] {msg}", flush=True)

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        base = super().__repr__(N_CHAR_MAX)
        if not hasattr(self, "labels_"):
            return base
        eps = "auto" if self.eps_ is None else f"{self.eps_:.3g}"
        return (f"{base}  # fitted: {self.n_frames_} frames -> {self.n_basins_} basins "
                f"(eps={eps}, min_samples={self.min_samples_}, "
                f"noise {self.noise_fraction_:.1%})")
