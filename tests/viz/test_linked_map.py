"""Tests of mdmlkit.viz.linked_map: the embedded data round-trips (positions, energies,
basins), the HTML is self-contained (no remote script), the constructors from an
inherent-structure map and bad input (count mismatches) raise mdmlkit errors."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Decahedron, Icosahedron

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError
from mdmlkit.viz.linked_map import LinkedMap


def _frames(n: int = 6) -> list[Atoms]:
    shapes = [Icosahedron("Cu", 2), Decahedron("Cu", 2, 2, 0)]
    out = []
    for i in range(n):
        a = shapes[i % 2].copy()
        a.positions += np.random.default_rng(i).normal(scale=0.05, size=a.positions.shape) + 10.0 * i
        out.append(a)
    return out


def _data(html: str) -> dict:
    m = re.search(r'<script type="application/json" class="lm-data">(.*?)</script>', html, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def test_html_embeds_the_data():
    frames = _frames()
    emb = np.column_stack([np.arange(6.0), np.arange(6.0) ** 2])
    E = np.array([-1.5, -1.25, np.nan, -1.0, -0.5, -0.25])
    lm = LinkedMap(emb, frames, energy=E, temperature=np.linspace(300, 800, 6),
                   labels=[0, 0, 1, 1, -1, 1], morphology=["icosahedral", "decahedral"] * 3,
                   title="Cu13 <test>")
    html = lm._repr_html_()
    assert "<script src" not in html and "http" not in html.split("lm-data")[1]  # nothing remote
    d = _data(html)
    assert d["n"] == 6 and d["x"] == emb[:, 0].tolist() and d["y"] == emb[:, 1].tolist()
    assert d["energy"] == [-1.5, -1.25, None, -1.0, -0.5, -0.25]       # NaN -> null
    assert d["labels"] == [0, 0, 1, 1, -1, 1] and d["morphology"][1] == "decahedral"
    assert d["title"] == "Cu13 <test>" and "<test>" not in html          # escaped in the page
    # positions: centred per frame, 16-bit, error below half a quantum
    pos = np.frombuffer(base64.b64decode(d["pos"]), dtype="<i2").reshape(-1, 3) * d["posScale"]
    ref = np.concatenate([a.positions - a.positions.mean(0) for a in frames])
    assert np.abs(pos - ref).max() <= 0.5 * d["posScale"] + 1e-12
    assert d["natoms"] == 13 and d["sharedNumbers"]
    assert set(np.frombuffer(base64.b64decode(d["numbers"]), dtype=np.uint8)) == {29}
    assert d["colors"]["29"].startswith("#") and d["radii"]["29"] == pytest.approx(1.32)
    # basins: members, ranges, morphology counts, representative = member nearest the centroid
    b1 = next(b for b in d["basins"] if b["label"] == 1)
    assert b1["n"] == 3 and b1["E"] == [-1.0, -0.25] and b1["T"] == [500.0, 800.0]
    assert b1["morphology"] == {"decahedral": 2, "icosahedral": 1}
    assert b1["representative"] == 3                     # centroid of points 2, 3, 5
    assert lm.representatives == {-1: 4, 0: 0, 1: 3}
    assert "LinkedMap(6 points, 3 basins" in repr(lm)


def test_variable_atom_counts_and_explicit_representatives(tmp_path):
    frames = _frames(3) + [Atoms("CuO", positions=[[0, 0, 0], [1.8, 0, 0]])]
    lm = LinkedMap(np.random.default_rng(0).normal(size=(4, 2)), frames, labels=[2, 2, 2, 5],
                   representatives={2: 1}, color_by="basin", ids=[10, 20, 30, 40])
    d = lm.data()
    assert d["ids"] == [10, 20, 30, 40] and d["names"] is None
    assert d["natoms"] == [13, 13, 13, 2] and not d["sharedNumbers"]
    assert list(np.frombuffer(base64.b64decode(d["numbers"]), dtype=np.uint8)[-2:]) == [29, 8]
    assert lm.representatives == {2: 1, 5: 3} and d["colorBy"] == "basin"
    page = lm.to_html(tmp_path / "map.html")
    assert (tmp_path / "map.html").read_text() == page and page.startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]


def test_mismatched_counts_raise():
    frames = _frames(4)
    emb = np.zeros((5, 2))
    with pytest.raises(InconsistentFramesError, match="4 frames for 5 map points"):
        LinkedMap(emb, frames)
    emb = np.zeros((4, 2))
    with pytest.raises(InconsistentFramesError, match="3 values of energy for 4 points"):
        LinkedMap(emb, frames, energy=[1, 2, 3])
    with pytest.raises(InconsistentFramesError, match="morphology"):
        LinkedMap(emb, frames, morphology=["a"] * 5)
    with pytest.raises(InconsistentFramesError, match="labels"):
        LinkedMap(emb, frames, labels=[0, 1])
    with pytest.raises(InputError, match=r"shape \(n_points, 2\)"):
        LinkedMap(np.zeros((4, 3)), frames)
    with pytest.raises(EmptyTrajectoryError):
        LinkedMap(np.zeros((0, 2)), [])
    emb[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match="point 2"):
        LinkedMap(emb, frames)
    with pytest.raises(InputError, match="color_by"):
        LinkedMap(np.zeros((4, 2)), frames, color_by="spin")
    with pytest.raises(InputError, match="not a member"):
        LinkedMap(np.zeros((4, 2)), frames, labels=[0, 0, 1, 1], representatives={0: 3})
    with pytest.raises(InputError, match="frame 1"):
        LinkedMap(np.zeros((2, 2)), [frames[0], "Cu13"])


def test_from_inherent_shows_quenched_structures():
    pytest.importorskip("asap3")
    from mdmlkit.landscape.embedding import LandscapeMap
    from mdmlkit.landscape.inherent import InherentStructureMap
    from mdmlkit.landscape.minima import quench

    frames = _frames(12)
    for i, a in enumerate(frames):
        a.positions -= 10.0 * i
    res = quench(frames, progress=False)
    ism = InherentStructureMap(landscape_map=LandscapeMap(embedding="pca", eps=0.5, min_samples=2),
                               progress=False).fit(frames, quench_result=res)
    T = np.linspace(300, 1000, len(frames))
    lm = LinkedMap.from_inherent(ism, temperature=T, frame_ids=np.arange(12) * 5)
    valid = np.flatnonzero(ism.minimum_ids_ >= 0)
    assert len(lm) == len(valid)
    assert lm.ids == (valid * 5).tolist()
    assert lm.names[0] == f"frame {valid[0] * 5} → minimum {ism.minimum_ids_[valid[0]]}"
    assert lm.energy == pytest.approx(np.asarray(res.energies)[valid])
    assert lm.morphology == [ism.morphology_[i] for i in valid]
    assert lm.temperature == pytest.approx(T[valid])
    assert np.allclose(lm.frames[0].positions, res.structures[valid[0]].positions)
    for b, r in lm.representatives.items():        # lowest-energy member of each basin
        members = [k for k in range(len(lm)) if lm.labels[k] == b]
        assert lm.energy[r] == min(lm.energy[k] for k in members)
    with pytest.raises(InconsistentFramesError, match="temperatures"):
        LinkedMap.from_inherent(ism, temperature=T[:-1])
    with pytest.raises(InconsistentFramesError, match="frame ids"):
        LinkedMap.from_inherent(ism, frame_ids=[1, 2])
    with pytest.raises(InputError, match="not fitted"):
        LinkedMap.from_inherent(InherentStructureMap())


def test_from_landscape_uses_the_size_scan_columns():
    from types import SimpleNamespace

    frames = _frames(6)
    emb = np.arange(12.0).reshape(6, 2)
    sl = SimpleNamespace(
        n_atoms=13, frames=frames, frame_motifs=np.array(["icosahedral", "amorphous"] * 3, dtype=object),
        table={"E_pot": np.linspace(-30, -29, 6), "T_target": np.linspace(300, 800, 6),
               "run_id": np.array(["a", "a", "a", "b", "b", "b"])},
        map=SimpleNamespace(embedding_=emb, labels_=np.array([0, 0, 0, 1, 1, 1])),
        basin_table=[{"basin": 0, "representative": 2}, {"basin": 1, "representative": 3}])
    lm = LinkedMap.from_landscape(sl)
    assert lm.energy == pytest.approx(sl.table["E_pot"]) and lm.temperature == pytest.approx(sl.table["T_target"])
    assert lm.labels == [0, 0, 0, 1, 1, 1] and lm.morphology[1] == "amorphous"
    assert lm.representatives == {0: 2, 1: 3} and lm.names[4] == "frame 4 (b)"
    assert lm.title == "Cu13: map of the MD frames"
    assert LinkedMap.from_landscape(sl, title="x").title == "x"
