"""Re-map and re-cluster the sizes of a scan interactively, without touching the scan.

:meth:`MapExplorer.widget` is the notebook's explorer (ipywidgets); it calls
:meth:`MapExplorer.view` when a control is released.  Fitted maps of the scan are
never changed: other embeddings are fitted on a :func:`sklearn.base.clone` of the
size's map (cached per setting), and every re-clustering works on a deep copy (cached
per setting too, so going back to a setting is instant).

What keeps the widget responsive and honest:

* a busy line ("fitting umap for Cu55 ...") whenever a call is not cached
  (:meth:`MapExplorer.is_cached`), i.e. before every refit;
* sliders report on release only (``continuous_update=False``): one refit per change,
  not one per tick;
* controls that do not apply are disabled (:meth:`MapExplorer.applies`: perplexity
  only for t-SNE);
* the eps slider spans the k-distance curve of the map shown
  (:meth:`MapExplorer.eps_range`) and is reset to its knee whenever size, embedding
  or perplexity change;
* the energy panel has a colour bar, the basin panel a legend (basin, frames, mean T).
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import clone

from mdmlkit.errors import InputError
from mdmlkit.landscape.basins import default_min_samples, k_distance_curve, knee_index
from mdmlkit.landscape.embedding import LandscapeMap
from mdmlkit.landscape.sizescan import SizeLandscape, SizeScan

__all__ = ["MapView", "MapExplorer", "EpsRange", "frames_near_temperature", "PERPLEXITY_EMBEDDINGS",
           "EMBEDDINGS"]

#: embeddings offered by the explorer
EMBEDDINGS = ("tsne", "umap", "pca", "tsne-sklearn")
#: embeddings that have a perplexity
PERPLEXITY_EMBEDDINGS = frozenset({"tsne", "tsne-sklearn"})


class EpsRange(NamedTuple):
    """Slider range for DBSCAN ``eps`` (map units) from a k-distance curve."""

    min: float
    max: float
    step: float
    value: float


def _nice_step(span: float, n: int = 100) -> float:
    """A round step (1, 2 or 5 x 10^k) giving about ``n`` steps over ``span``."""
    raw = max(span / n, 1e-12)
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw)


class MapView(NamedTuple):
    """One size (``landscape``) and a map of its frames (``map``, a private copy)."""

    landscape: SizeLandscape
    map: LandscapeMap


class MapExplorer:
    """Maps of a :class:`~mdmlkit.landscape.sizescan.SizeScan` under other settings.

    Parameters
    ----------
    scan : SizeScan
        Fitted scan; neither it nor its maps are modified.
    """

    def __init__(self, scan: SizeScan, max_views: int = 64):
        self.scan = scan
        self.max_views = int(max_views)
        self._fitted: dict[tuple[int, str, float], LandscapeMap] = {}
        self._views: OrderedDict[tuple, MapView] = OrderedDict()
        self._eps: dict[tuple, EpsRange] = {}

    @staticmethod
    def applies(embedding: str) -> dict[str, bool]:
        """Which settings mean something for ``embedding``: ``{"perplexity": bool}``."""
        return {"perplexity": embedding in PERPLEXITY_EMBEDDINGS}

    def _key(self, size: int, embedding: str, perplexity: float) -> tuple[int, str, float]:
        """Cache key; the perplexity is ignored (0) where it does not apply."""
        return (int(size), str(embedding),
                float(perplexity) if embedding in PERPLEXITY_EMBEDDINGS else 0.0)

    def is_fitted(self, size: int, embedding: str, perplexity: float) -> bool:
        """True when the map for these settings exists (no refit needed)."""
        sl = self.scan[size]
        if embedding == sl.map.embedding and (embedding not in PERPLEXITY_EMBEDDINGS
                                              or float(perplexity) == float(sl.map.perplexity)):
            return True
        return self._key(size, embedding, perplexity) in self._fitted

    def is_cached(self, size: int, embedding: str, perplexity: float, eps: float | None = None,
                  min_samples: int | None = None) -> bool:
        """True when :meth:`view` with these arguments returns at once (from the cache)."""
        return (self._key(size, embedding, perplexity) + (eps, min_samples)) in self._views

    def base_map(self, size: int, embedding: str, perplexity: float) -> LandscapeMap:
        """The scan's map when the settings match it, else a fitted clone (cached).

        Treat the result as read-only; :meth:`view` returns copies.
        """
        if int(size) not in self.scan.sizes:
            raise InputError(f"size {size} is not in the scan (sizes {sorted(self.scan.sizes)})")
        sl = self.scan[size]
        if embedding == sl.map.embedding and (embedding not in PERPLEXITY_EMBEDDINGS
                                              or float(perplexity) == float(sl.map.perplexity)):
            return sl.map
        key = self._key(size, embedding, perplexity)
        if key not in self._fitted:
            m = clone(sl.map).set_params(embedding=embedding, perplexity=float(perplexity))
            self._fitted[key] = m.fit(sl.features, energies=sl.table["E_pot"])
        return self._fitted[key]

    def view(self, size: int, embedding: str, perplexity: float, eps: float | None = None,
             min_samples: int | None = None) -> MapView:
        """A copy of the map for ``(size, embedding, perplexity)`` re-clustered with
        ``eps`` (map units) and ``min_samples`` (``None``: automatic).

        Results are cached by their arguments (the last ``max_views``); treat them as
        read-only.
        """
        key = self._key(size, embedding, perplexity) + (eps, min_samples)
        if key in self._views:
            self._views.move_to_end(key)
            return self._views[key]
        m = copy.deepcopy(self.base_map(size, embedding, perplexity))
        v = MapView(self.scan[size], m.recluster(eps=eps, min_samples=min_samples))
        self._views[key] = v
        while len(self._views) > self.max_views:
            self._views.popitem(last=False)
        return v

    def eps_range(self, size: int, embedding: str, perplexity: float,
                  min_samples: int | None = None) -> EpsRange:
        """DBSCAN ``eps`` slider range (map units) of the map for these settings.

        From the k-distance curve (``k = min_samples``, default as the clustering's):
        ``min`` its smallest positive value, ``max`` its largest (beyond it every frame
        is a core point: one basin), ``value`` its knee (the automatic eps) and a round
        ``step`` of about 1/100 of the range.  Cached; fits the map if needed.
        """
        m = self.base_map(size, embedding, perplexity)
        Y = m.embedding_
        k = int(min_samples) if min_samples is not None else int(default_min_samples(len(Y)))
        k = max(2, min(k, len(Y)))
        key = self._key(size, embedding, perplexity) + (k,)
        if key not in self._eps:
            curve = k_distance_curve(Y, k)
            pos = curve[curve > 0]
            lo = float(pos[0]) if len(pos) else 1e-3
            hi = float(max(curve[-1], lo * 10))
            knee = float(curve[knee_index(curve)])
            step = _nice_step(hi - lo)
            lo_r = math.floor(lo / step) * step
            hi_r = math.ceil(hi / step) * step
            value = min(max(round(knee / step) * step, lo_r + step), hi_r)
            self._eps[key] = EpsRange(max(lo_r, step), hi_r, step, value)
        return self._eps[key]

    def widget(self, size: int | None = None, embedding: str = "tsne", perplexity: float = 30.0,
               temperature: float | None = None, t_tol_K: float = 25.0, figsize: tuple = (11.0, 4.3)) -> Any:
        """The explorer as an ipywidgets box (needs a running kernel; see module doc).

        Returns an ``ipywidgets.VBox`` with ``.explorer_controls`` (dict of the controls),
        ``.explorer_status`` (the busy line) and ``.explorer_refresh()`` attached for tests.
        """
        return _build_widget(self, size, embedding, perplexity, temperature, t_tol_K, figsize)


def _build_widget(ex: MapExplorer, size: int | None, embedding: str, perplexity: float,
                  temperature: float | None, t_tol_K: float, figsize: tuple) -> Any:
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    sizes = sorted(ex.scan.sizes)
    size = int(size if size is not None else sizes[0])
    T_all = np.concatenate([np.asarray(ex.scan[n].table["T_target"], float) for n in sizes])
    t_lo, t_hi = float(np.floor(T_all.min())), float(np.ceil(T_all.max()))
    slider = dict(continuous_update=False, style={"description_width": "initial"})
    size_w = w.Dropdown(options=sizes, value=size, description="size")
    emb_w = w.Dropdown(options=list(EMBEDDINGS), value=embedding, description="embedding")
    perp_w = w.FloatSlider(value=float(perplexity), min=5, max=100, step=5, description="perplexity",
                           readout_format=".0f", **slider)
    ms_w = w.IntSlider(value=int(ex.scan[size].map.min_samples_), min=2, max=300, description="min_samples",
                       **slider)
    eps_w = w.FloatSlider(value=1.0, min=0.01, max=2.0, step=0.01, description="eps (map units)",
                          readout_format=".3g", **slider)
    T_w = w.FloatSlider(value=float(temperature if temperature is not None else t_lo), min=t_lo, max=t_hi,
                        step=25, description="T (K)", readout_format=".0f", **slider)
    status = w.HTML()
    out = w.Output(layout=w.Layout(min_height="320px"))
    controls = dict(size=size_w, embedding=emb_w, perplexity=perp_w, eps=eps_w, min_samples=ms_w, T=T_w)
    state = {"muted": False}

    def set_busy(msg: str | None) -> None:
        status.value = ("" if msg is None else
                        f"<span style='color:#b26a00'>&#9203; {msg} &hellip; (the map below is the previous "
                        f"setting until this finishes)</span>")

    def reset_eps() -> None:
        n, emb, perp = size_w.value, emb_w.value, perp_w.value
        if not ex.is_fitted(n, emb, perp):
            set_busy(f"fitting {emb} for Cu{n}" + (f" (perplexity {perp:.0f})" if ex.applies(emb)["perplexity"]
                                                   else "") + ", first time only")
        r = ex.eps_range(n, emb, perp, ms_w.value)
        state["muted"] = True
        try:
            # widen first so that min <= value <= max holds at every intermediate step
            eps_w.min, eps_w.max = min(eps_w.min, r.min), max(eps_w.max, r.max)
            eps_w.step, eps_w.value = r.step, r.value
            eps_w.min, eps_w.max = r.min, r.max
        finally:
            state["muted"] = False

    def draw() -> None:
        n, emb, perp = size_w.value, emb_w.value, perp_w.value
        if not ex.is_cached(n, emb, perp, eps_w.value, ms_w.value):
            set_busy(f"{'clustering' if ex.is_fitted(n, emb, perp) else 'fitting ' + emb} for Cu{n}")
        try:
            sl, m = ex.view(n, emb, perp, eps=eps_w.value, min_samples=ms_w.value)
            near = frames_near_temperature(sl.table["T_target"], T_w.value, tol_K=t_tol_K)
            E = np.asarray(sl.table["E_pot"], float) / sl.n_atoms
            out.clear_output(wait=True)
            with out:
                fig, axes = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
                sc = axes[0].scatter(*m.embedding_.T, c=E, s=5, alpha=0.5, cmap="viridis")
                fig.colorbar(sc, ax=axes[0], label="E_pot (eV/atom)")
                if near.any():
                    axes[0].scatter(*m.embedding_[near].T, facecolors="none", edgecolors="k", s=18, lw=0.8,
                                    label=f"T = {T_w.value:.0f} ± {t_tol_K:.0f} K ({int(near.sum())} frames)")
                    axes[0].legend(fontsize=7, loc="best")
                axes[0].set_title(f"Cu{sl.n_atoms} {emb}: potential energy")
                cmap = plt.get_cmap("tab10")
                labels = np.asarray(m.labels_)
                axes[1].scatter(*m.embedding_.T, c=[cmap(int(lb) % 10) for lb in labels], s=5)
                T_frames = np.asarray(sl.table["T_target"], float)
                handles = [Line2D([], [], ls="", marker="o", color=cmap(b % 10),
                                  label=f"basin {b}: {int((labels == b).sum())} frames, "
                                        f"T {T_frames[labels == b].mean():.0f} K")
                           for b in range(int(m.n_basins_))]
                axes[1].legend(handles=handles[:10], fontsize=7, loc="best",
                               title=None if len(handles) <= 10 else f"first 10 of {len(handles)} basins")
                axes[1].set_title(f"{m.n_basins_} basin{'s' if m.n_basins_ != 1 else ''} "
                                  f"(DBSCAN eps {eps_w.value:.3g}, min_samples {ms_w.value})")
                for ax in axes:
                    ax.set_xlabel("map coordinate 1 (arb. units)"); ax.set_ylabel("map coordinate 2 (arb. units)")
                plt.show()
        finally:
            set_busy(None)

    def on_map_change(change: Any = None) -> None:
        if state["muted"]:
            return
        perp_w.disabled = not ex.applies(emb_w.value)["perplexity"]
        state["muted"] = True
        try:
            ms_w.value = int(ex.scan[size_w.value].map.min_samples_) if change is not None and \
                change.get("owner") is size_w else ms_w.value
        finally:
            state["muted"] = False
        reset_eps()
        draw()

    def on_cluster_change(change: Any = None) -> None:
        if state["muted"]:
            return
        if change is not None and change.get("owner") is ms_w:
            reset_eps()
        draw()

    for c in (size_w, emb_w, perp_w):
        c.observe(on_map_change, "value")
    for c in (eps_w, ms_w, T_w):
        c.observe(on_cluster_change, "value")
    on_map_change()
    box = w.VBox([w.HBox([size_w, emb_w, perp_w]), w.HBox([eps_w, ms_w, T_w]), status, out])
    box.explorer_controls, box.explorer_status, box.explorer_refresh = controls, status, on_map_change
    return box


def frames_near_temperature(temperatures: np.ndarray, T: float, tol_K: float = 25.0) -> np.ndarray:
    """Boolean mask of the frames whose temperature is within ``tol_K`` of ``T`` (K)."""
    if not tol_K >= 0:
        raise InputError(f"tol_K must be >= 0 K, got {tol_K}")
    return np.abs(np.asarray(temperatures, float) - float(T)) <= tol_K
