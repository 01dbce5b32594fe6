"""Basins on a 2-D landscape map.

Density clustering of the map (DBSCAN or HDBSCAN), the DBSCAN ``eps`` from the
knee of the k-distance curve, k-nearest-neighbour reassignment of noise frames,
canonical (deterministic) basin numbering, basin medoids, and agreement between
two partitions.  Map coordinates are in the arbitrary units of the embedding.

Large maps
----------
DBSCAN's neighbourhood lists grow as ``n_frames * min_samples`` and sklearn's
HDBSCAN builds its spanning tree in O(n^2), so maps with more than
``max_samples`` (default 20 000) frames are clustered on a uniform random
subsample of ``m = max_samples`` frames with ``min_samples`` scaled by ``m / n``.
This keeps the density threshold (frames per eps-disk per frame) unchanged: the
k-th-neighbour radius depends on ``k / n`` only.  The other frames then take the
majority label (noise included) of their ``k`` nearest subsample frames on the map.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from mdmlkit.errors import InputError
from mdmlkit.landscape._checks import check_embedding, check_labels, check_values

__all__ = [
    "MIN_SAMPLES_FRACTION", "MIN_MIN_SAMPLES", "MAX_CLUSTER_SAMPLES", "default_min_samples",
    "k_distance_curve", "knee_index", "suggest_eps", "cluster_embedding", "reassign_noise",
    "canonical_labels", "basin_medoids", "basin_agreement", "match_labels",
]

#: ``min_samples=None`` uses this fraction of the frames (the seed study used 250 of
#: ~2500 frames, i.e. 10 %, on a map of a few basins; 2 % also resolves smaller ones).
MIN_SAMPLES_FRACTION = 0.02
#: Lower bound of the automatic ``min_samples`` (below ~10 DBSCAN splits t-SNE maps
#: into many spurious mini-basins of a few frames).
MIN_MIN_SAMPLES = 10
#: Maps larger than this are clustered on a subsample (see module docstring).
MAX_CLUSTER_SAMPLES = 20_000


def default_min_samples(n_frames: int) -> int:
    """``max(10, round(0.02 * n_frames))``: the automatic DBSCAN ``min_samples``."""
    return max(MIN_MIN_SAMPLES, int(round(MIN_SAMPLES_FRACTION * n_frames)))


def _subsample(n: int, m: int | None, random_state: int | None) -> np.ndarray | None:
    """Sorted random indices of ``m`` of ``n`` items, or ``None`` when ``n <= m``."""
    if m is None or n <= m:
        return None
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=int(m), replace=False))


def _scaled_k(k: int, n: int, m: int) -> int:
    return max(2, int(round(k * m / n)))


# ----------------------------------------------------------------------------- eps

def k_distance_curve(embedding: Any, k: int, max_samples: int | None = MAX_CLUSTER_SAMPLES,
                     random_state: int | None = 0) -> np.ndarray:
    """Ascending distances of each frame to its ``k``-th nearest neighbour on the map.

    The frame itself counts as the first neighbour, as in DBSCAN's ``min_samples``:
    with ``k = min_samples`` a frame is a DBSCAN core point exactly when
    ``eps >=`` its value.  Maps with more than ``max_samples`` frames use a random
    subsample with ``k`` scaled by ``max_samples / n`` (same distances on average).

    Returns
    -------
    ndarray ``[n or max_samples]``, map units, sorted ascending (plot against rank
    to see the knee).
    """
    Y = check_embedding(embedding, "k_distance_curve")
    k = int(k)
    if k < 2:
        raise InputError(f"k_distance_curve: k must be >= 2 (the frame itself is the first), got {k}")
    sub = _subsample(len(Y), max_samples, random_state)
    if sub is not None:
        k = _scaled_k(k, len(Y), len(sub))
        Y = Y[sub]
    if k > len(Y):
        raise InputError(f"k_distance_curve: k={k} exceeds the {len(Y)} frames")
    nn = NearestNeighbors(n_neighbors=k).fit(Y)
    d, _ = nn.kneighbors(Y)
    return np.sort(d[:, -1])


def knee_index(curve: Any) -> int:
    """Index of the knee of an ascending curve: the point farthest below its chord.

    Both axes are scaled to [0, 1] (rank and value); the chord then is the diagonal
    and the knee maximises ``x - y`` (equivalent to the maximum perpendicular
    distance to the chord; Kneedle's difference curve, Satopaa et al. 2011, without
    smoothing).  A straight or concave curve returns its last index.
    """
    y = np.asarray(curve, dtype=np.float64)
    n = len(y)
    if n < 3 or y[-1] <= y[0]:
        return max(n - 1, 0)
    x = np.linspace(0.0, 1.0, n)
    yn = (y - y[0]) / (y[-1] - y[0])
    return int(np.argmax(x - yn))


def suggest_eps(embedding: Any, min_samples: int, max_samples: int | None = MAX_CLUSTER_SAMPLES,
                random_state: int | None = 0) -> float:
    """DBSCAN ``eps`` (map units) at the knee of the k-distance curve, ``k = min_samples``.

    Frames left of the knee sit in dense regions (their k-th neighbour is close),
    frames right of it are sparse outliers between basins; eps at the knee makes the
    dense frames core points and leaves the gaps empty (Ester et al., KDD 1996;
    knee as in :func:`knee_index`).
    """
    curve = k_distance_curve(embedding, min_samples, max_samples, random_state)
    eps = float(curve[knee_index(curve)])
    if eps <= 0.0:                       # duplicated frames: take the smallest positive distance
        pos = curve[curve > 0]
        eps = float(pos[0]) if len(pos) else 1.0
    return eps


# ----------------------------------------------------------------------------- clustering

def cluster_embedding(embedding: Any, method: str = "dbscan", eps: float | None = None,
                      min_samples: int | None = None,
                      max_samples: int | None = MAX_CLUSTER_SAMPLES, vote_k: int = 5,
                      random_state: int | None = 0, n_jobs: int | None = None
                      ) -> tuple[np.ndarray, float | None, int]:
    """Density-cluster a map; returns ``(raw_labels [n] with -1 = noise, eps, min_samples)``.

    ``method="dbscan"``: :class:`sklearn.cluster.DBSCAN` with ``eps`` (``None``:
    :func:`suggest_eps`) and ``min_samples`` (``None``: :func:`default_min_samples`).
    ``method="hdbscan"``: :class:`sklearn.cluster.HDBSCAN` (sklearn >= 1.3,
    Campello et al. 2013) with ``min_cluster_size = min_samples``, its own
    ``min_samples = max(5, min_samples // 10)`` (core-distance neighbours; small keeps
    it fast and the density estimate local) and ``cluster_selection_epsilon = eps``
    (0 when ``None``); HDBSCAN picks the density level per basin, so ``eps`` is not
    needed.  The returned ``eps`` and ``min_samples`` are the values used on the full
    map (before subsample scaling, see the module docstring).
    """
    from sklearn.cluster import DBSCAN, HDBSCAN

    Y = check_embedding(embedding, "cluster_embedding")
    n = len(Y)
    ms = default_min_samples(n) if min_samples is None else int(min_samples)
    if ms < 2:
        raise InputError(f"cluster_embedding: min_samples must be >= 2, got {ms}")
    ms = min(ms, n)
    if eps is not None and not float(eps) > 0:
        raise InputError(f"cluster_embedding: eps must be > 0 (map units), got {eps}")
    sub = _subsample(n, max_samples, random_state)
    Ys = Y if sub is None else Y[sub]
    ms_sub = ms if sub is None else _scaled_k(ms, n, len(sub))
    if method == "dbscan":
        eps_used = float(eps) if eps is not None else suggest_eps(Ys, ms_sub, max_samples=None)
        lab = DBSCAN(eps=eps_used, min_samples=ms_sub, n_jobs=n_jobs).fit_predict(Ys)
    elif method == "hdbscan":
        eps_used = float(eps) if eps is not None else None
        lab = HDBSCAN(min_cluster_size=max(2, ms_sub), min_samples=max(5, ms_sub // 10),
                      cluster_selection_epsilon=eps_used or 0.0, n_jobs=n_jobs,
                      copy=True).fit_predict(Ys)
    else:
        raise InputError(f"cluster_embedding: method must be 'dbscan' or 'hdbscan', got {method!r}")
    if sub is None:
        return lab.astype(np.int64), eps_used, ms
    raw = np.empty(n, dtype=np.int64)
    raw[sub] = lab
    rest = np.setdiff1d(np.arange(n), sub, assume_unique=True)
    knn = KNeighborsClassifier(n_neighbors=min(vote_k, len(sub))).fit(Ys, lab)
    raw[rest] = knn.predict(Y[rest])
    return raw, eps_used, ms


def reassign_noise(embedding: Any, raw_labels: Any, k: int = 5) -> np.ndarray:
    """Give each noise frame (label -1) the majority label of its ``k`` nearest
    non-noise frames on the map (the seed study's 5-NN classifier).

    When every frame is noise, all frames get basin 0 and a warning is issued.
    """
    Y = check_embedding(embedding, "reassign_noise")
    raw = check_labels(raw_labels, len(Y), "reassign_noise", "raw_labels")
    noise = raw < 0
    if not noise.any():
        return raw.copy()
    if noise.all():
        warnings.warn("no basin found (all frames are noise): every frame is put in basin 0; "
                      "lower min_samples or raise eps", RuntimeWarning, stacklevel=2)
        return np.zeros(len(raw), dtype=np.int64)
    k = max(1, min(int(k), int((~noise).sum())))
    knn = KNeighborsClassifier(n_neighbors=k).fit(Y[~noise], raw[~noise])
    out = raw.copy()
    out[noise] = knn.predict(Y[noise])
    return out


def canonical_labels(labels: Any, energies: Any = None, embedding: Any = None
                     ) -> tuple[np.ndarray, dict[int, int]]:
    """Renumber basins 0, 1, ... by decreasing size; ties by increasing mean energy,
    then by the basin centroid on the map (x, then y), then by the old label.

    Noise (-1) stays -1.  The result depends only on the partition (and energies /
    map), not on frame order or the clustering's arbitrary numbering.

    Returns ``(new_labels, mapping old -> new)``.
    """
    lab = check_labels(labels, None, "canonical_labels")
    n = len(lab)
    E = None if energies is None else check_values(energies, n, "canonical_labels")
    Y = None if embedding is None else check_embedding(embedding, "canonical_labels", 1)
    keys = []
    for b in np.unique(lab[lab >= 0]):
        m = lab == b
        e = float(E[m].mean()) if E is not None else 0.0
        c = Y[m].mean(axis=0) if Y is not None else (0.0, 0.0)
        keys.append((-int(m.sum()), e, float(c[0]), float(c[1]), int(b)))
    keys.sort()
    mapping = {k[-1]: i for i, k in enumerate(keys)}
    return _apply_mapping(lab, mapping), mapping


def _apply_mapping(lab: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = np.full(len(lab), -1, dtype=np.int64)
    for old, new in mapping.items():
        out[lab == old] = new
    return out


def basin_medoids(embedding: Any, labels: Any, max_members: int = 2000,
                  random_state: int | None = 0) -> np.ndarray:
    """Frame index of the medoid of each basin 0 .. B-1 on the map.

    The medoid is the member with the smallest summed Euclidean distance to the
    other members (a real frame, unlike the centroid).  For basins with more than
    ``max_members`` frames it is the medoid of a uniform random subsample of that
    size (O(m^2) distances instead of O(n^2)).
    """
    Y = check_embedding(embedding, "basin_medoids", 1)
    lab = check_labels(labels, len(Y), "basin_medoids")
    rng = np.random.default_rng(random_state)
    basins = np.unique(lab[lab >= 0])
    out = np.empty(len(basins), dtype=np.int64)
    for i, b in enumerate(basins):
        members = np.nonzero(lab == b)[0]
        if len(members) > max_members:
            members = np.sort(rng.choice(members, size=max_members, replace=False))
        d = cdist(Y[members], Y[members]).sum(axis=1)
        out[i] = members[int(np.argmin(d))]
    return out


# ----------------------------------------------------------------------------- comparison

def _contingency(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    c = np.zeros((len(ua), len(ub)), dtype=np.int64)
    np.add.at(c, (ia, ib), 1)
    return ua, ub, c


def basin_agreement(labels_a: Any, labels_b: Any) -> dict[str, Any]:
    """Compare two basin partitions of the same frames.

    Returns a dict with ``ari`` (adjusted Rand index: 1 identical, ~0 random),
    ``matched_fraction`` (fraction of frames with the same basin after the best
    one-to-one matching of labels, Hungarian algorithm on the contingency table),
    ``mapping`` (label of b -> matched label of a) and ``n_basins_a``/``n_basins_b``.
    Noise (-1) is treated as one more label.
    """
    a = check_labels(labels_a, None, "basin_agreement", "labels_a")
    b = check_labels(labels_b, len(a), "basin_agreement", "labels_b")
    if len(a) == 0:
        raise InputError("basin_agreement: empty label arrays")
    ua, ub, c = _contingency(a, b)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return {
        "ari": float(adjusted_rand_score(a, b)),
        "matched_fraction": float(c[rows, cols].sum() / len(a)),
        "mapping": {int(ub[j]): int(ua[i]) for i, j in zip(rows, cols)},
        "n_basins_a": int((ua >= 0).sum()),
        "n_basins_b": int((ub >= 0).sum()),
    }


def match_labels(reference: Any, labels: Any) -> np.ndarray:
    """Relabel ``labels`` to agree best with ``reference`` (Hungarian matching).

    Labels without a partner get new numbers after the largest reference label;
    noise (-1) stays -1.
    """
    ref = check_labels(reference, None, "match_labels", "reference")
    lab = check_labels(labels, len(ref), "match_labels")
    mapping = basin_agreement(ref, lab)["mapping"]
    nxt = int(max(ref.max(initial=-1), -1)) + 1
    out = np.full(len(lab), -1, dtype=np.int64)
    for b in np.unique(lab):
        if b < 0:
            continue
        tgt = mapping.get(int(b))
        if tgt is None or tgt < 0:
            tgt, nxt = nxt, nxt + 1
        out[lab == b] = tgt
    return out
