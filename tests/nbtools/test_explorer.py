"""MapExplorer's widget logic without a browser: eps ranges from the data, caching,
disabled controls, per-size reset and the busy line (ipywidgets without a frontend)."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from mdmlkit.landscape import LandscapeMap
from mdmlkit.landscape.basins import k_distance_curve, suggest_eps
from mdmlkit.landscape.explorer import MapExplorer
from mdmlkit.landscape.sizescan import AnalysisSettings, run_size_scan
from mdmlkit.md.heating import HeatingSettings

matplotlib.use("Agg")
pytest.importorskip("asap3")


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return run_size_scan([12, 13], seeds=[0], outdir=tmp_path_factory.mktemp("scan"),
                         heating=HeatingSettings(t_start=300.0, t_end=1300.0, rate_K_per_ps=100.0,
                                                 sample_every=20),
                         landscape=LandscapeMap(embedding="pca", random_state=0),
                         analysis=AnalysisSettings(lindemann_window=10), progress=False)


def test_applies():
    assert MapExplorer.applies("tsne") == {"perplexity": True}
    assert MapExplorer.applies("tsne-sklearn")["perplexity"]
    assert not MapExplorer.applies("umap")["perplexity"] and not MapExplorer.applies("pca")["perplexity"]


def test_eps_range_follows_the_k_distance_curve(scan):
    ex = MapExplorer(scan)
    for n in (12, 13):
        m = scan[n].map
        k = int(m.min_samples_)
        r = ex.eps_range(n, "pca", 30.0, k)
        curve = k_distance_curve(m.embedding_, k)
        assert 0 < r.min < r.value < r.max
        assert r.min <= curve[curve > 0][0] + r.step and curve[-1] <= r.max <= 1.2 * curve[-1] + r.step
        assert r.value == pytest.approx(suggest_eps(m.embedding_, k), abs=r.step)
        extent = np.ptp(m.embedding_, axis=0).max()
        assert r.max <= extent                                  # not 0.2-20 on a map of extent 7
        assert 50 <= (r.max - r.min) / r.step <= 500
        assert ex.eps_range(n, "pca", 30.0, k) is r             # cached
    assert ex.eps_range(12, "pca", 30.0, 5) != ex.eps_range(12, "pca", 30.0, 20)


def test_views_are_cached_by_parameters(scan):
    ex = MapExplorer(scan)
    assert not ex.is_cached(13, "pca", 30.0, 0.5, 5)
    v = ex.view(13, "pca", 30.0, eps=0.5, min_samples=5)
    assert ex.is_cached(13, "pca", 30.0, 0.5, 5)
    assert ex.view(13, "pca", 30.0, eps=0.5, min_samples=5) is v
    # the perplexity means nothing for PCA: same cache entry, no refit
    assert ex.view(13, "pca", 55.0, eps=0.5, min_samples=5) is v and ex.is_fitted(13, "pca", 55.0)
    assert not ex.is_fitted(13, "tsne", 30.0)
    assert ex.view(13, "pca", 30.0, eps=0.6, min_samples=5) is not v
    ex.max_views = 1
    ex.view(12, "pca", 30.0)
    assert len(ex._views) == 1


def test_widget_disables_resets_and_shows_busy(scan, monkeypatch):
    ex = MapExplorer(scan)
    box = ex.widget(size=12, embedding="pca", perplexity=30.0)
    c = box.explorer_controls
    assert c["perplexity"].disabled                      # PCA has no perplexity
    assert all(not c[k].continuous_update for k in ("perplexity", "eps", "min_samples", "T"))
    r12 = ex.eps_range(12, "pca", 30.0, c["min_samples"].value)
    assert (c["eps"].min, c["eps"].max, c["eps"].value) == pytest.approx((r12.min, r12.max, r12.value))
    # a new size resets eps (and min_samples) to that size's map
    c["size"].value = 13
    assert c["min_samples"].value == int(scan[13].map.min_samples_)
    r13 = ex.eps_range(13, "pca", 30.0, c["min_samples"].value)
    assert (c["eps"].min, c["eps"].max, c["eps"].value) == pytest.approx((r13.min, r13.max, r13.value))
    # a refit shows the busy line while it runs, and clears it afterwards
    seen = []
    fit = ex.base_map

    def spy(*a, **k):
        seen.append(box.explorer_status.value)
        return fit(*a, **k)
    monkeypatch.setattr(ex, "base_map", spy)
    c["embedding"].value = "tsne-sklearn"
    assert not c["perplexity"].disabled
    assert any("fitting tsne-sklearn for Cu13" in s for s in seen), seen
    assert box.explorer_status.value == ""
    # eps changes re-cluster only: no busy "fitting" line, the figure is redrawn
    seen.clear()
    c["eps"].value = c["eps"].max
    assert not any("fitting" in s for s in seen)
