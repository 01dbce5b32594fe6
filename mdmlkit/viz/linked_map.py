"""A linked, clickable landscape map: click a point of the 2-D map, see its 3-D structure.

:class:`LinkedMap` renders as one self-contained HTML block (``_repr_html_``): the data
(map coordinates, energies, temperatures, basins, morphologies and every structure's
positions) is embedded as JSON and drawn by a few hundred lines of plain JavaScript on two
``<canvas>`` elements: a scatter plot of the map and a ball model of the structure, rotated
by dragging.  Nothing is loaded from the network and no kernel or widget manager is
needed, so the view works the same in JupyterLab (trusted output, i.e. a notebook run in
the session) and in the standalone HTML report of :mod:`mdmlkit.nbtools.html_report`.

* hover a point: its structure, energy, temperature, basin and morphology (preview);
* click a point: keep it selected;
* click a basin button: highlight its members, show its representative and a clickable
  list of its members;
* "colour by": energy, temperature, basin or morphology.

::

    from mdmlkit.viz.linked_map import LinkedMap

    LinkedMap(embedding, frames, energy=E, temperature=T, labels=basins,
              morphology=morph).show()
    LinkedMap.from_inherent(ism, temperature=T)        # inherent-structure map
    LinkedMap.from_landscape(size_landscape)           # map of the MD frames

Positions are stored centred on each structure's centroid as 16-bit integers (resolution
better than 0.01 Å for clusters up to ~300 Å across).  Units: Å, eV, K.
"""
from __future__ import annotations

import base64
import html as _html
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.data.colors import jmol_colors

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError
from mdmlkit.utils import atomic_path

__all__ = ["LinkedMap", "COLOR_BY"]

#: What the points can be coloured by.
COLOR_BY = ("energy", "temperature", "basin", "morphology")


def _column(values: Any, n: int, name: str, kind: str = "float") -> list | None:
    """``values`` as a JSON-ready list of length ``n`` (None stays None)."""
    if values is None:
        return None
    if kind == "str":
        out = [None if v is None else str(v) for v in values]
    else:
        arr = np.asarray(values, dtype=np.float64 if kind == "float" else np.int64)
        if arr.ndim != 1:
            raise InconsistentFramesError(f"LinkedMap: {name} must be 1-D, got shape {arr.shape}")
        out = arr.tolist()
    if len(out) != n:
        raise InconsistentFramesError(
            f"LinkedMap: {len(out)} values of {name} for {n} points (one per point/frame expected)")
    if kind == "float":  # JSON has no NaN: missing values become null
        out = [None if not np.isfinite(v) else float(f"{v:.9g}") for v in out]
    return out


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


class LinkedMap:
    """A 2-D landscape map linked to a 3-D view of each point's structure.

    Parameters
    ----------
    embedding : float array [n_points, 2]
        Map coordinates of each point (arbitrary units).
    frames : sequence of ase.Atoms [n_points]
        The structure shown for each point (an MD frame or its quenched minimum).
    energy : float array [n_points], optional
        Energy of each point, eV (e.g. potential energy of the frame or of its minimum).
    temperature : float array [n_points], optional
        Temperature of each point, K.
    labels : int array [n_points], optional
        Basin of each point (-1: none/noise).
    morphology : sequence of str [n_points], optional
        Morphology of each point.
    representatives : mapping basin -> point index, optional
        Point shown when a basin is selected; default: the member nearest the basin's
        centroid on the map.
    ids : int array [n_points], optional
        Number of each point in the caller's numbering (e.g. its frame index), used in the
        default captions and the basin member lists; default ``0 … n_points - 1``.
    names : sequence of str [n_points], optional
        Caption of each point (default ``"frame <id>"``).
    title : str
        Heading above the map.
    color_by : one of :data:`COLOR_BY`
        Initial colouring (switchable in the view); default ``"energy"`` when given.
    width, height : int
        Size of the map canvas, CSS pixels (the 3-D view is ``height`` square).

    Raises
    ------
    InconsistentFramesError
        When the number of frames, or of any per-point value, differs from the number of
        map points.
    EmptyTrajectoryError, NonFiniteError, InputError
        No points; NaN/inf in the map coordinates or positions; bad ``color_by`` or
        representative.
    """

    def __init__(self, embedding: Any, frames: Sequence[Atoms], *, energy: Any = None,
                 temperature: Any = None, labels: Any = None, morphology: Sequence[str] | None = None,
                 representatives: Mapping[int, int] | None = None, ids: Any = None,
                 names: Sequence[str] | None = None, title: str = "", color_by: str | None = None, width: int = 520, height: int = 400):
        emb = np.asarray(embedding, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[1] != 2:
            raise InputError(f"LinkedMap: embedding must have shape (n_points, 2), got {emb.shape}")
        n = len(emb)
        if n == 0:
            raise EmptyTrajectoryError("LinkedMap: the map has no points")
        frames = list(frames)
        if len(frames) != n:
            raise InconsistentFramesError(
                f"LinkedMap: {len(frames)} frames for {n} map points; pass one structure per point")
        bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
        if len(bad):
            raise NonFiniteError(f"LinkedMap: map coordinates of point {int(bad[0])} are not finite")
        for i, a in enumerate(frames):
            if not isinstance(a, Atoms):
                raise InputError(f"LinkedMap: frame {i} is a {type(a).__name__}, not ase.Atoms")
            if not np.isfinite(a.positions).all():
                raise NonFiniteError(f"LinkedMap: positions of frame {i} are not finite")
            if len(a) == 0:
                raise EmptyTrajectoryError(f"LinkedMap: frame {i} has no atoms")
        self.embedding = emb
        self.frames = frames
        self.energy = _column(energy, n, "energy")
        self.temperature = _column(temperature, n, "temperature")
        self.labels = _column(labels, n, "labels", "int")
        self.morphology = _column(morphology, n, "morphology", "str")
        self.ids = _column(ids, n, "ids", "int")
        self.names = _column(names, n, "names", "str")
        if color_by is None:
            color_by = next((c for c, v in (("energy", self.energy), ("basin", self.labels),
                                            ("temperature", self.temperature),
                                            ("morphology", self.morphology)) if v is not None),
                            "energy")
        if color_by not in COLOR_BY:
            raise InputError(f"LinkedMap: color_by must be one of {COLOR_BY}, got {color_by!r}")
        self.color_by = color_by
        self.title = str(title)
        self.width = int(width)
        self.height = int(height)
        self.representatives = self._representatives(representatives)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_landscape(cls, landscape: Any, **kwargs: Any) -> LinkedMap:
        """The map of a :class:`~mdmlkit.landscape.sizescan.SizeLandscape` (MD frames):
        potential energy, target temperature, basins, CNA motif of each frame and each
        basin's representative frame."""
        sl = landscape
        table = sl.table
        reps = {int(b["basin"]): int(b["representative"]) for b in (sl.basin_table or [])}
        run = table.get("run_id")
        names = None if run is None else [f"frame {i} ({r})" for i, r in enumerate(run)]
        kw = dict(energy=table.get("E_pot"), temperature=table.get("T_target"),
                  labels=sl.map.labels_, morphology=list(map(str, sl.frame_motifs)),
                  representatives=reps, names=names,
                  title=f"Cu{sl.n_atoms}: map of the MD frames")
        kw.update(kwargs)
        return cls(sl.map.embedding_, sl.frames, **kw)

    @classmethod
    def from_inherent(cls, ism: Any, temperature: Any = None, frame_ids: Any = None,
                      **kwargs: Any) -> LinkedMap:
        """The map of a fitted :class:`~mdmlkit.landscape.inherent.InherentStructureMap`:
        one point per frame with a minimum, showing its *quenched* structure, the minimum's
        energy and morphology; ``temperature`` [n_frames] (K) is that of the MD frame and
        ``frame_ids`` [n_frames] its number in the caller's numbering (default: position
        in the fitted frames).  A basin's representative is the lowest-energy minimum
        among its frames."""
        if not hasattr(ism, "labels_"):
            raise InputError("LinkedMap.from_inherent: the InherentStructureMap is not fitted")
        ids = np.asarray(ism.minimum_ids_)
        valid = np.flatnonzero(ids >= 0)
        qr = ism.quench_result_
        E = np.asarray(qr.energies, dtype=np.float64)[valid]
        T = None
        if temperature is not None:
            T_all = np.asarray(temperature, dtype=np.float64)
            if T_all.shape != (len(ids),):
                raise InconsistentFramesError(
                    f"LinkedMap.from_inherent: {T_all.shape} temperatures for {len(ids)} frames")
            T = T_all[valid]
        labels = np.asarray(ism.labels_)[valid]
        reps = {}
        for b in np.unique(labels):
            members = np.flatnonzero(labels == b)
            reps[int(b)] = int(members[np.argmin(E[members])])
        fid = np.arange(len(ids)) if frame_ids is None else np.asarray(frame_ids, dtype=np.int64)
        if fid.shape != (len(ids),):
            raise InconsistentFramesError(
                f"LinkedMap.from_inherent: {fid.shape} frame ids for {len(ids)} frames")
        names = [f"frame {int(fid[i])} → minimum {int(ids[i])}" for i in valid]
        kw = dict(energy=E, temperature=T, labels=labels,
                  morphology=[ism.morphology_[i] for i in valid], representatives=reps,
                  ids=fid[valid], names=names, title="inherent-structure map (quenched frames)")
        kw.update(kwargs)
        return cls(ism.map_.embedding_, [qr.structures[i] for i in valid], **kw)

    # ------------------------------------------------------------------ data
    def __len__(self) -> int:
        return len(self.frames)

    def _representatives(self, reps: Mapping[int, int] | None) -> dict[int, int]:
        if self.labels is None:
            return {}
        lab = np.asarray(self.labels)
        out: dict[int, int] = {}
        for b in sorted(set(lab.tolist())):
            members = np.flatnonzero(lab == b)
            if reps is not None and b in reps:
                r = int(reps[b])
                if r not in set(members.tolist()):
                    raise InputError(f"LinkedMap: representative {r} of basin {b} is not a member "
                                     f"of that basin")
                out[int(b)] = r
            else:
                xy = self.embedding[members]
                out[int(b)] = int(members[np.argmin(((xy - xy.mean(0)) ** 2).sum(1))])
        return out

    def _basins(self) -> list[dict[str, Any]]:
        if self.labels is None:
            return []
        lab = np.asarray(self.labels)
        out = []
        for b, rep in self.representatives.items():
            members = np.flatnonzero(lab == b)
            row: dict[str, Any] = {"label": b, "n": int(len(members)), "representative": rep}
            for key, col in (("E", self.energy), ("T", self.temperature)):
                if col is not None:
                    v = np.array([col[i] for i in members if col[i] is not None], dtype=float)
                    if len(v):
                        row[key] = [float(f"{v.min():.9g}"), float(f"{v.max():.9g}")]
            if self.morphology is not None:
                names, counts = np.unique([str(self.morphology[i]) for i in members],
                                          return_counts=True)
                row["morphology"] = {str(k): int(c) for k, c in
                                     sorted(zip(names, counts), key=lambda t: -t[1])}
            out.append(row)
        return out

    def data(self) -> dict[str, Any]:
        """The JSON document the view draws (map, per-point values, basins, structures)."""
        natoms = np.array([len(a) for a in self.frames], dtype=np.int64)
        pos = np.concatenate([a.positions - a.positions.mean(axis=0) for a in self.frames])
        scale = max(float(np.abs(pos).max()) / 32000.0, 1e-6)
        numbers = [a.numbers for a in self.frames]
        shared = all(len(z) == len(numbers[0]) and np.array_equal(z, numbers[0]) for z in numbers)
        zs = np.unique(np.concatenate(numbers))
        if zs.min() < 1 or zs.max() >= len(jmol_colors):
            raise InputError(f"LinkedMap: atomic numbers {zs.tolist()} are not all elements")
        colors = {int(z): "#" + "".join(f"{int(round(255 * c)):02x}" for c in jmol_colors[z])
                  for z in zs}
        radii = {int(z): float(covalent_radii[z]) for z in zs}
        return {
            "n": len(self.frames), "title": self.title, "colorBy": self.color_by,
            "x": [float(f"{v:.5g}") for v in self.embedding[:, 0]],
            "y": [float(f"{v:.5g}") for v in self.embedding[:, 1]],
            "energy": self.energy, "temperature": self.temperature, "labels": self.labels,
            "morphology": self.morphology, "names": self.names, "ids": self.ids, "basins": self._basins(),
            "natoms": int(natoms[0]) if (natoms == natoms[0]).all() else natoms.tolist(),
            "posScale": scale, "pos": _b64(np.round(pos / scale).astype("<i2")),
            "numbers": _b64((numbers[0] if shared else np.concatenate(numbers)).astype(np.uint8)),
            "sharedNumbers": bool(shared), "colors": colors, "radii": radii,
        }

    # ------------------------------------------------------------------ output
    def _repr_html_(self) -> str:
        uid = "mdmlkit-lm-" + uuid.uuid4().hex[:12]
        payload = json.dumps(self.data(), separators=(",", ":"), allow_nan=False)
        payload = payload.replace("<", "\\u003c")  # no "</script>" or "<!--" inside the element
        h = self.height
        return (
            f'<div class="mdmlkit-linked-map" id="{uid}" data-width="{self.width}" data-height="{h}" '
            f'style="font:12px/1.35 sans-serif;color:#222;background:#fff;padding:4px">'
            f'<div class="lm-fallback" style="color:#888">Interactive map ({len(self)} points): '
            f'it needs JavaScript (a trusted notebook or the HTML report).</div></div>'
            f'<script type="application/json" class="lm-data">{payload}</script>'
            f"<script>{_JS}\n(function(){{var s=document.currentScript;"
            f"var root=document.getElementById({json.dumps(uid)});"
            f"if(!root&&s){{root=s.parentNode.querySelector('#'+{json.dumps(uid)});}}"
            f"var data=JSON.parse(root.nextElementSibling.textContent);"
            f"window.mdmlkitLinkedMap(root,data);}})();</script>"
        )

    def to_html(self, path: Path | str | None = None) -> str:
        """A standalone HTML page of the view; written atomically to ``path`` when given."""
        title = _html.escape(self.title or "mdmlkit linked map")
        page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
                f"<body>{self._repr_html_()}</body></html>\n")
        if path is not None:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(page, encoding="utf-8")
        return page

    def show(self) -> None:
        """Display the view in a notebook (IPython)."""
        from IPython.display import HTML, display

        display(HTML(self._repr_html_()))

    def __repr__(self) -> str:
        nb = len(self.representatives)
        return (f"LinkedMap({len(self)} points, {nb} basins, colour by {self.color_by}"
                f"{', ' + repr(self.title) if self.title else ''})")


_JS = r"""
window.mdmlkitLinkedMap = window.mdmlkitLinkedMap || function (root, D) {
  "use strict";
  var W = +root.getAttribute("data-width"), H = +root.getAttribute("data-height");
  var dpr = window.devicePixelRatio || 1, n = D.n;
  var TAB = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
  var VIR = [[68,1,84],[72,40,120],[62,74,137],[49,104,142],[38,130,142],[31,158,137],[53,183,121],[109,205,89],[180,222,44],[253,231,37]];
  function el(tag, css, text) { var e = document.createElement(tag); if (css) e.style.cssText = css; if (text != null) e.textContent = text; return e; }
  function b64(s) { var b = atob(s), u = new Uint8Array(b.length); for (var i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return u.buffer; }
  var P = new Int16Array(b64(D.pos)), Z = new Uint8Array(b64(D.numbers));
  var off = new Int32Array(n + 1);
  for (var i = 0; i < n; i++) off[i + 1] = off[i] + (typeof D.natoms === "number" ? D.natoms : D.natoms[i]);
  function fmt(v, d) { return v == null ? "–" : Number(v).toFixed(d); }
  function pid(i) { return D.ids ? D.ids[i] : i; }
  function name(i) { return D.names ? D.names[i] : "frame " + pid(i); }
  // ---------------------------------------------------------------- layout
  root.innerHTML = "";
  if (D.title) root.appendChild(el("div", "font-weight:bold;margin:2px 0 4px", D.title));
  var bar = el("div", "margin-bottom:4px"); root.appendChild(bar);
  bar.appendChild(el("span", "", "colour by "));
  var sel = el("select"); sel.className = "lm-colorby"; bar.appendChild(sel);
  ["energy", "temperature", "basin", "morphology"].forEach(function (k) {
    var col = k === "basin" ? D.labels : D[k]; if (!col) return;
    var o = el("option", "", k); o.value = k; if (k === D.colorBy) o.selected = true; sel.appendChild(o); });
  var basinBar = el("span", "margin-left:10px"); basinBar.className = "lm-basins"; bar.appendChild(basinBar);
  var row = el("div", "display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start"); root.appendChild(row);
  var left = el("div", "position:relative"); row.appendChild(left);
  var mapC = el("canvas", "width:" + W + "px;height:" + H + "px;border:1px solid #ccc;cursor:crosshair");
  mapC.className = "lm-map"; mapC.width = W * dpr; mapC.height = H * dpr; left.appendChild(mapC);
  var legend = el("div", "max-width:" + W + "px;margin-top:2px"); legend.className = "lm-legend"; left.appendChild(legend);
  var right = el("div", ""); row.appendChild(right);
  var V = H;
  var viewC = el("canvas", "width:" + V + "px;height:" + V + "px;border:1px solid #ccc;cursor:grab;background:#fff");
  viewC.className = "lm-structure"; viewC.width = V * dpr; viewC.height = V * dpr; right.appendChild(viewC);
  var info = el("div", "width:" + V + "px;min-height:3.5em;margin-top:3px"); info.className = "lm-info"; right.appendChild(info);
  var members = el("div", "max-width:" + (W + V + 10) + "px;max-height:7em;overflow:auto;margin-top:4px;font-size:11px");
  members.className = "lm-members"; root.appendChild(members);
  // ---------------------------------------------------------------- colours
  function catNames(k) { var col = k === "basin" ? D.labels : D.morphology, seen = {}, out = [];
    for (var i = 0; i < n; i++) { var v = col[i]; if (!(v in seen)) { seen[v] = 1; out.push(v); } }
    return out.sort(function (a, b) { return a < b ? -1 : a > b ? 1 : 0; }); }
  function colours(k) {
    var c = new Array(n);
    if (k === "basin" || k === "morphology") {
      var names = catNames(k), idx = {}, col = k === "basin" ? D.labels : D.morphology;
      names.forEach(function (v, j) { idx[v] = j; });
      for (var i = 0; i < n; i++) c[i] = (k === "basin" && col[i] < 0) ? "#bbbbbb" : TAB[idx[col[i]] % 10];
      return {c: c, names: names, k: k};
    }
    var v = D[k], lo = Infinity, hi = -Infinity;
    for (var i = 0; i < n; i++) if (v[i] != null) { lo = Math.min(lo, v[i]); hi = Math.max(hi, v[i]); }
    for (var i = 0; i < n; i++) {
      if (v[i] == null) { c[i] = "#bbbbbb"; continue; }
      var t = hi > lo ? (v[i] - lo) / (hi - lo) : 0.5, f = t * 9, j = Math.min(8, Math.floor(f)), u = f - j;
      var a = VIR[j], b = VIR[j + 1];
      c[i] = "rgb(" + [0, 1, 2].map(function (q) { return Math.round(a[q] + u * (b[q] - a[q])); }).join(",") + ")";
    }
    return {c: c, lo: lo, hi: hi, k: k};
  }
  var scheme = colours(sel.value || D.colorBy);
  function drawLegend() {
    legend.innerHTML = "";
    if (scheme.names) scheme.names.forEach(function (v) {
      var s = el("span", "margin-right:8px;white-space:nowrap");
      var sw = el("span", "display:inline-block;width:9px;height:9px;border-radius:5px;margin-right:3px;background:" +
        ((scheme.k === "basin" && v < 0) ? "#bbbbbb" : TAB[scheme.names.indexOf(v) % 10]));
      s.appendChild(sw); s.appendChild(document.createTextNode(scheme.k === "basin" ? (v < 0 ? "noise" : "B" + v) : v));
      legend.appendChild(s); });
    else {
      var unit = scheme.k === "energy" ? " eV" : " K";
      legend.appendChild(el("span", "", scheme.k + ": " + fmt(scheme.lo, scheme.k === "energy" ? 3 : 0) + unit + " "));
      legend.appendChild(el("span", "display:inline-block;width:120px;height:9px;vertical-align:middle;background:linear-gradient(to right," +
        VIR.map(function (a) { return "rgb(" + a.join(",") + ")"; }).join(",") + ")"));
      legend.appendChild(el("span", "", " " + fmt(scheme.hi, scheme.k === "energy" ? 3 : 0) + unit));
    }
  }
  // ---------------------------------------------------------------- map
  var xmin = Math.min.apply(null, D.x), xmax = Math.max.apply(null, D.x);
  var ymin = Math.min.apply(null, D.y), ymax = Math.max.apply(null, D.y);
  var pad = 14, sx = (W - 2 * pad) / ((xmax - xmin) || 1), sy = (H - 2 * pad) / ((ymax - ymin) || 1);
  function px(i) { return [pad + (D.x[i] - xmin) * sx, H - pad - (D.y[i] - ymin) * sy]; }
  var state = {selected: null, hover: null, basin: null};
  function drawMap() {
    var g = mapC.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
    var r = n > 3000 ? 2 : n > 800 ? 2.6 : 3.4;
    var inB = function (i) { return state.basin == null || D.labels[i] === state.basin; };
    for (var pass = 0; pass < 2; pass++) for (var i = 0; i < n; i++) {
      var on = inB(i); if (on !== (pass === 1)) continue;   // faded points first, then the rest
      var p = px(i); g.globalAlpha = on ? 0.9 : 0.15; g.fillStyle = scheme.c[i];
      g.beginPath(); g.arc(p[0], p[1], r, 0, 2 * Math.PI); g.fill();
    }
    g.globalAlpha = 1;
    [[state.selected, "#000", 3], [state.hover, "#e00", 2]].forEach(function (t) {
      if (t[0] == null) return; var p = px(t[0]);
      g.strokeStyle = t[1]; g.lineWidth = t[2]; g.beginPath(); g.arc(p[0], p[1], r + 5, 0, 2 * Math.PI); g.stroke(); });
    g.fillStyle = "#666"; g.font = "10px sans-serif"; g.fillText("map coordinate 1 →", W - 105, H - 3);
    g.save(); g.translate(10, 110); g.rotate(-Math.PI / 2); g.fillText("map coordinate 2 →", 0, 0); g.restore();
  }
  function nearest(mx, my) {
    var best = null, bd = 81;
    for (var i = 0; i < n; i++) { var p = px(i), d = (p[0] - mx) * (p[0] - mx) + (p[1] - my) * (p[1] - my);
      if (d < bd) { bd = d; best = i; } }
    return best;
  }
  // ---------------------------------------------------------------- structure view
  var R = [1, 0, 0, 0, 1, 0, 0, 0, 1], shown = null;
  function rot(ax, ang) { var c = Math.cos(ang), s = Math.sin(ang), M;
    M = ax === 0 ? [1, 0, 0, 0, c, -s, 0, s, c] : [c, 0, s, 0, 1, 0, -s, 0, c];
    var O = new Array(9);
    for (var a = 0; a < 3; a++) for (var b = 0; b < 3; b++) O[3 * a + b] = M[3 * a] * R[b] + M[3 * a + 1] * R[3 + b] + M[3 * a + 2] * R[6 + b];
    R = O; }
  rot(0, -0.35); rot(1, 0.45);
  function drawStructure(i) {
    shown = i;
    var g = viewC.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#fff"; g.fillRect(0, 0, V, V);
    if (i == null) { g.fillStyle = "#888"; g.font = "12px sans-serif"; g.fillText("hover or click a point", 10, 20); return; }
    var a0 = off[i], m = off[i + 1] - a0, at = [], ext = 0.5;
    for (var k = 0; k < m; k++) {
      var x = P[3 * (a0 + k)] * D.posScale, y = P[3 * (a0 + k) + 1] * D.posScale, z = P[3 * (a0 + k) + 2] * D.posScale;
      var zz = D.sharedNumbers ? Z[k] : Z[a0 + k], rad = (D.radii[zz] || 1.2) * 0.7;
      var X = R[0] * x + R[1] * y + R[2] * z, Y = R[3] * x + R[4] * y + R[5] * z, ZZ = R[6] * x + R[7] * y + R[8] * z;
      at.push([X, Y, ZZ, rad, D.colors[zz] || "#888888"]);
      ext = Math.max(ext, Math.sqrt(x * x + y * y + z * z) + rad);
    }
    at.sort(function (a, b) { return a[2] - b[2]; });
    var s = (V / 2 - 8) / ext, zmin = -ext;
    for (var k = 0; k < at.length; k++) {
      var A = at[k], cx = V / 2 + A[0] * s, cy = V / 2 - A[1] * s, rr = A[3] * s;
      var fade = 0.55 + 0.45 * (A[2] - zmin) / (2 * ext);
      var grd = g.createRadialGradient(cx - rr * 0.35, cy - rr * 0.35, rr * 0.1, cx, cy, rr);
      grd.addColorStop(0, "#ffffff"); grd.addColorStop(0.35, A[4]); grd.addColorStop(1, "#000000");
      g.globalAlpha = 1; g.fillStyle = grd; g.beginPath(); g.arc(cx, cy, rr, 0, 2 * Math.PI); g.fill();
      g.globalAlpha = 1 - fade; g.fillStyle = "#ffffff"; g.fill();
      g.globalAlpha = 1; g.strokeStyle = "rgba(0,0,0,0.35)"; g.lineWidth = 0.6; g.stroke();
    }
  }
  function pointText(i) {
    var t = name(i) + ": E = " + fmt(D.energy && D.energy[i], 3) + " eV";
    if (D.temperature) t += ", T = " + fmt(D.temperature[i], 0) + " K";
    if (D.labels) t += ", basin " + (D.labels[i] < 0 ? "none" : "B" + D.labels[i]);
    if (D.morphology) t += ", " + D.morphology[i];
    return t + " (" + (off[i + 1] - off[i]) + " atoms)";
  }
  function show(i, pinned) {
    drawStructure(i);
    info.textContent = i == null ? "" : (pinned ? "" : "▸ ") + pointText(i);
    info.setAttribute("data-point", i == null ? "" : String(i));
  }
  // ---------------------------------------------------------------- basins
  function selectBasin(b) {
    state.basin = (state.basin === b) ? null : b;
    members.innerHTML = "";
    Array.prototype.forEach.call(basinBar.children, function (e) { e.style.fontWeight = (+e.getAttribute("data-basin") === state.basin) ? "bold" : "normal"; });
    if (state.basin == null) { drawMap(); show(state.selected, true); return; }
    var B = D.basins.filter(function (x) { return x.label === b; })[0];
    state.selected = B.representative; drawMap(); show(B.representative, true);
    var txt = "B" + b + ": " + B.n + " points";
    if (B.E) txt += ", E " + fmt(B.E[0], 3) + "–" + fmt(B.E[1], 3) + " eV";
    if (B.T) txt += ", T " + fmt(B.T[0], 0) + "–" + fmt(B.T[1], 0) + " K";
    if (B.morphology) txt += ", " + Object.keys(B.morphology).map(function (k) { return k + " " + B.morphology[k]; }).join(", ");
    info.textContent = txt + ". Representative: " + pointText(B.representative);
    members.appendChild(el("span", "", "members (click one): "));
    var shownMembers = 0;
    for (var i = 0; i < n && shownMembers < 300; i++) if (D.labels[i] === b) {
      var a = el("a", "cursor:pointer;margin-right:6px;color:#0645ad", String(pid(i))); a.setAttribute("data-point", i);
      a.onclick = function () { var j = +this.getAttribute("data-point"); state.selected = j; drawMap(); show(j, true); };
      members.appendChild(a); shownMembers++;
    }
    if (B.n > shownMembers) members.appendChild(el("span", "", "… (" + (B.n - shownMembers) + " more)"));
  }
  (D.basins || []).forEach(function (B) {
    var bt = el("button", "margin:0 2px;font-size:11px;padding:1px 5px", B.label < 0 ? "noise" : "B" + B.label);
    bt.setAttribute("data-basin", B.label); bt.title = B.n + " points";
    bt.onclick = function () { selectBasin(B.label); }; basinBar.appendChild(bt); });
  // ---------------------------------------------------------------- events
  function mpos(ev) { var r = mapC.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; }
  mapC.addEventListener("mousemove", function (ev) { var p = mpos(ev), i = nearest(p[0], p[1]);
    if (i !== state.hover) { state.hover = i; drawMap(); if (i != null) show(i, false); else show(state.selected, true); } });
  mapC.addEventListener("mouseleave", function () { state.hover = null; drawMap(); show(state.selected, true); });
  mapC.addEventListener("click", function (ev) { var p = mpos(ev), i = nearest(p[0], p[1]);
    if (i != null) { state.selected = i; state.hover = null; drawMap(); show(i, true); } });
  sel.addEventListener("change", function () { scheme = colours(sel.value); drawLegend(); drawMap(); });
  var drag = null;
  viewC.addEventListener("mousedown", function (ev) { drag = [ev.clientX, ev.clientY]; ev.preventDefault(); });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (ev) { if (!drag || shown == null) return;
    rot(1, (ev.clientX - drag[0]) * 0.01); rot(0, (ev.clientY - drag[1]) * 0.01);
    drag = [ev.clientX, ev.clientY]; drawStructure(shown); });
  // for scripts and tests: where a point is drawn (CSS px within the map canvas), select it
  root.linkedMap = {pixelOf: function (i) { return px(i); }, select: function (i) { state.selected = i; drawMap(); show(i, true); },
                    selectBasin: selectBasin, n: n};
  root.setAttribute("data-ready", "1");
  var first = (D.basins || []).filter(function (B) { return B.label >= 0; })[0];
  var start = first ? first.representative : 0;
  state.selected = start; drawLegend(); drawMap(); show(start, true);
};
"""
