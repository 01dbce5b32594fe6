"""Thermodynamics of heating runs: caloric curve, heat capacity, melting, Lindemann index.

Inputs are heating runs from :func:`mdmlkit.md.heating.heat` — a
:class:`~mdmlkit.md.engine.MDResult`, a list of frames, or a
:func:`~mdmlkit.md.trajectory.frame_table` dict — or lists of those (several runs).
Basins versus temperature (transitions, occupancy, amorphous zone):
:mod:`mdmlkit.landscape.transitions`.

Units: K, eV; heat capacities per atom in units of k_B (the classical
harmonic solid has C = 3 k_B, Dulong–Petit).

Melting criteria
----------------
* caloric curve: the peak of the heat capacity ``C = dE_tot/dT / (N k_B)``,
  the slope of a Gaussian-weighted local linear fit of E_tot(T) (no edge bias).
  The energy of a small cluster fluctuates by ``sqrt(3N) k_B T`` from frame to
  frame (≈ 0.5 eV for Cu13 at 1000 K), far more than it rises over a few tens of
  K, so a narrow fit window turns noise into C < 0 and spurious peaks; by default
  the window is widened until the standard error of C is below
  ``C_TOLERANCE`` k_B/atom (:func:`auto_smoothing`).  A peak at either end of the
  ramp, or C < 0 beyond its error, is flagged (:attr:`MeltingPoint.flag`) and
  not reported as a melting temperature;
* Lindemann index: ``δ = <sqrt(<r_ij²> - <r_ij>²) / <r_ij>>`` over atom pairs,
  averaged over sliding windows of frames.  Solid clusters have δ ≈ 0.02–0.06;
  δ jumps above ≈ 0.1–0.15 on melting (Berry's criterion; the liquid value keeps
  growing with the window length because atoms diffuse, so state the window).
  Default: threshold 0.1 with windows of 50 frames.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import kB

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError, InputError, NonFiniteError
from mdmlkit.landscape._binning import bin_mean, digitize, temperature_edges

__all__ = [
    "CaloricCurve", "MeltingPoint", "LindemannResult", "caloric_curve", "heat_capacity",
    "melting_temperature", "lindemann_index", "auto_smoothing", "C_TOLERANCE", "EDGE_FRACTION",
]
#: target standard error of C (k_B/atom) for the automatic fit window
C_TOLERANCE = 0.5
#: a C maximum within this fraction of the ramp's span from either end is no peak
EDGE_FRACTION = 0.05


# =========================================================================== inputs
def _as_tables(runs: Any) -> list[dict[str, np.ndarray]]:
    """Normalise one run or many runs to a list of frame tables."""
    from mdmlkit.md.engine import MDResult
    from mdmlkit.md.trajectory import frame_table

    def one(r):
        if isinstance(r, MDResult):
            return frame_table(r.frames)
        if isinstance(r, dict):
            return {k: np.asarray(v) for k, v in r.items()}
        if isinstance(r, (list, tuple)) and (len(r) == 0 or isinstance(r[0], Atoms)):
            return frame_table(r)
        raise InputError(f"cannot read a heating run from {type(r).__name__}")

    if isinstance(runs, (MDResult, dict)) or (
            isinstance(runs, (list, tuple)) and len(runs) and isinstance(runs[0], Atoms)):
        runs = [runs]
    if isinstance(runs, (list, tuple)) and len(runs) == 0:
        raise EmptyTrajectoryError("no heating runs given")
    return [one(r) for r in runs]


# =========================================================================== caloric curve
@dataclass
class MeltingPoint:
    """A melting temperature and the curve it was read from.

    ``flag`` is empty for a valid melting point; otherwise it says why there is none
    (e.g. the C maximum sits at the end of the ramp) and ``T_melt`` and ``peak`` are
    NaN, while ``T_peak`` keeps where the maximum of the curve was (K).
    """

    T_melt: float
    method: str
    T: np.ndarray = field(repr=False)
    value: np.ndarray = field(repr=False)   # C (k_B/atom) or Lindemann δ
    peak: float = float("nan")              # C at the peak (k_B/atom) or the δ threshold
    flag: str = ""
    T_peak: float = float("nan")
    smooth_K: float = float("nan")          # fit window of C (K), heat-capacity method only
    error: np.ndarray | None = field(default=None, repr=False)   # standard error of value

    @property
    def ok(self) -> bool:
        """True when this is a melting temperature (no flag)."""
        return not self.flag and bool(np.isfinite(self.T_melt))

    def __repr__(self) -> str:
        if self.flag:
            return f"MeltingPoint(none, method={self.method!r}: {self.flag})"
        what = "C_peak" if "capacity" in self.method else "threshold"
        return (f"MeltingPoint(T_melt={self.T_melt:.1f} K, method={self.method!r}, "
                f"{what}={self.peak:.3g})")


@dataclass
class CaloricCurve:
    """Mean energies per temperature bin, averaged over runs.

    Attributes
    ----------
    T : mean temperature of the frames in each bin, K (bins without frames are dropped)
    E_pot, E_tot : mean energies, eV (per-run bin means averaged over runs)
    E_pot_std, E_tot_std : spread over runs, eV (0 for one run)
    counts : frames per bin, all runs
    n_atoms, n_runs, bin_width (K), temperature_key
    """

    T: np.ndarray
    E_pot: np.ndarray
    E_tot: np.ndarray
    E_pot_std: np.ndarray
    E_tot_std: np.ndarray
    counts: np.ndarray
    n_atoms: int
    n_runs: int
    bin_width: float
    temperature_key: str = "T_target"

    def heat_capacity(self, smooth_K: float | None = None, energy: str = "E_tot",
                      return_error: bool = False):
        """``(T, C)``: C in k_B per atom; see :func:`heat_capacity`."""
        return heat_capacity(self, smooth_K=smooth_K, energy=energy, return_error=return_error)

    def melting_temperature(self, smooth_K: float | None = None, energy: str = "E_tot",
                            T_range: tuple[float, float] | None = None) -> MeltingPoint:
        """Heat-capacity peak; see :func:`melting_temperature`."""
        return melting_temperature(self, smooth_K=smooth_K, energy=energy, T_range=T_range)

    def __repr__(self) -> str:
        return (f"CaloricCurve({len(self.T)} bins of {self.bin_width:g} K, "
                f"{self.T.min():.0f}-{self.T.max():.0f} K, n_atoms={self.n_atoms}, "
                f"n_runs={self.n_runs}, E_pot {self.E_pot.min():.3f}..{self.E_pot.max():.3f} eV)")


def caloric_curve(runs: Any, bin_width: float = 10.0, T_range: tuple[float, float] | None = None,
                  temperature_key: str = "T_target") -> CaloricCurve:
    """Caloric curve E(T) of one or several heating runs.

    Frames are binned by ``temperature_key`` (default the ramp temperature
    ``T_target``; ``"T_kinetic"`` is noisier) into bins of ``bin_width`` K; each
    run's bin means are averaged over runs.  Needs at least 2 frames per run and
    runs of equal atom count.
    """
    tables = _as_tables(runs)
    n_atoms = None
    for r, t in enumerate(tables):
        if len(t.get(temperature_key, ())) < 2:
            raise EmptyTrajectoryError(f"run {r}: {len(t.get(temperature_key, ()))} frame(s); "
                                       "a caloric curve needs at least 2")
        n = int(np.asarray(t["n_atoms"])[0])
        if n_atoms is None:
            n_atoms = n
        elif n != n_atoms:
            raise InconsistentFramesError(f"run {r} has {n} atoms but run 0 has {n_atoms}")
    T_all = np.concatenate([np.asarray(t[temperature_key], float) for t in tables])
    if T_range is not None:
        T_all = T_all[(T_all >= T_range[0]) & (T_all <= T_range[1])]
        if T_all.size == 0:
            raise EmptyTrajectoryError(f"no frames in T_range {T_range}")
    edges = temperature_edges(T_all, bin_width, as_width=True)
    nb = len(edges) - 1
    per_run = {"E_pot": [], "E_tot": [], "T": []}
    counts = np.zeros(nb)
    for t in tables:
        T = np.asarray(t[temperature_key], float)
        idx = digitize(T, edges)
        if T_range is not None:
            idx[(T < T_range[0]) | (T > T_range[1])] = -1
        for key in per_run:
            m, c = bin_mean(np.asarray(t[temperature_key if key == "T" else key], float), idx, nb)
            per_run[key].append(m)
        counts += c
    keep = counts > 0
    mean = {k: np.nanmean(np.array(v), axis=0)[keep] for k, v in per_run.items()}
    std = {k: (np.nanstd(np.array(v), axis=0)[keep] if len(tables) > 1 else np.zeros(keep.sum()))
           for k, v in per_run.items()}
    return CaloricCurve(mean["T"], mean["E_pot"], mean["E_tot"], std["E_pot"], std["E_tot"],
                        counts[keep], int(n_atoms), len(tables), float(bin_width), temperature_key)


def _local_slope(x: np.ndarray, y: np.ndarray, w_counts: np.ndarray, sigma: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Slope dy/dx of a Gaussian-weighted local linear fit at every x, and its standard error.

    ``y`` are bin means of ``w_counts`` frames each; the per-frame noise variance is
    estimated from the weighted residuals of each local fit.  The error assumes
    uncorrelated frames: slow fluctuations (e.g. isomer hopping) make the real one larger.
    """
    g = np.exp(-0.5 * ((x[None, :] - x[:, None]) / sigma) ** 2)   # [i, j]
    w = g * w_counts[None, :]
    sw = w.sum(axis=1, keepdims=True)
    xm = (w * x[None, :]).sum(axis=1, keepdims=True) / sw
    ym = (w * y[None, :]).sum(axis=1, keepdims=True) / sw
    dx = x[None, :] - xm
    cov = (w * dx * (y[None, :] - ym)).sum(axis=1)
    var = (w * dx ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = cov / var
        resid = y[None, :] - ym - slope[:, None] * dx
        n_eff = g.sum(axis=1) ** 2 / (g ** 2).sum(axis=1)        # bins effectively in the fit
        s2 = (w * resid ** 2).sum(axis=1) / g.sum(axis=1) * n_eff / np.maximum(n_eff - 2.0, 1e-12)
        err = np.sqrt(s2 * (g ** 2 * w_counts[None, :] * dx ** 2).sum(axis=1)) / var
    return slope, err


def auto_smoothing(curve: CaloricCurve, energy: str = "E_tot", tolerance: float = C_TOLERANCE,
                   start_K: float = 30.0) -> float:
    """Narrowest fit window (K) whose heat capacity is known to ``tolerance`` k_B/atom.

    Widths ``start_K × 1.5^k`` are tried up to a quarter of the curve's span; the
    first whose median standard error of C (over the curve away from its ends) is
    at most ``tolerance`` is returned, else the widest.
    """
    span = float(curve.T.max() - curve.T.min())
    widths = [start_K]
    while widths[-1] * 1.5 <= max(span / 4.0, start_K):
        widths.append(widths[-1] * 1.5)
    for width in widths:
        _, _, err = heat_capacity(curve, smooth_K=width, energy=energy, return_error=True)
        inner = (curve.T >= curve.T.min() + width) & (curve.T <= curve.T.max() - width)
        e = err[inner & np.isfinite(err)] if inner.any() else err[np.isfinite(err)]
        if e.size and float(np.median(e)) <= tolerance:
            return float(width)
    return float(widths[-1])


def heat_capacity(curve: CaloricCurve, smooth_K: float | None = None, energy: str = "E_tot",
                  return_error: bool = False) -> tuple[np.ndarray, ...]:
    """Heat capacity per atom in k_B, ``C(T) = dE/dT / (N k_B)``.

    ``dE/dT`` is the slope of a local linear fit of ``energy`` (``"E_tot"`` or
    ``"E_pot"``; E_pot gives C − 3/2 for a classical system) against T with
    Gaussian weights of width ``smooth_K`` K, so noise is smoothed without the
    edge bias of smoothing followed by differences.  ``smooth_K=None`` picks the
    width with :func:`auto_smoothing`.  Returns ``(T, C)``, or ``(T, C, C_err)``
    with the standard error of C (k_B/atom) when ``return_error``.
    """
    if energy not in ("E_tot", "E_pot"):
        raise InputError(f"energy must be 'E_tot' or 'E_pot', got {energy!r}")
    if len(curve.T) < 3:
        raise EmptyTrajectoryError(f"caloric curve has {len(curve.T)} bins; need >= 3")
    if smooth_K is None:
        smooth_K = auto_smoothing(curve, energy=energy)
    if smooth_K <= 0:
        raise InputError(f"smooth_K must be positive, got {smooth_K}")
    slope, err = _local_slope(curve.T, getattr(curve, energy), curve.counts, smooth_K)
    scale = curve.n_atoms * kB
    if return_error:
        return curve.T.copy(), slope / scale, err / scale
    return curve.T.copy(), slope / scale


def melting_temperature(curve: CaloricCurve, smooth_K: float | None = None, energy: str = "E_tot",
                        T_range: tuple[float, float] | None = None,
                        edge_fraction: float = EDGE_FRACTION) -> MeltingPoint:
    """Melting temperature (K) at the heat-capacity peak of a caloric curve.

    The peak of ``C(T)`` (:func:`heat_capacity`; ``smooth_K=None``: automatic
    window) within ``T_range`` (default: the whole curve except ``smooth_K`` at
    each end) is refined by a parabola through the three highest points.

    No melting temperature is reported (``T_melt`` NaN, :attr:`MeltingPoint.flag`
    says why) when the maximum lies at either end of the range searched or within
    ``edge_fraction`` of the ramp's span from either end of the curve (the peak, if
    any, is outside the ramp) or when
    C drops below zero by more than twice its standard error (E(T) too noisy for
    a derivative at these settings).
    """
    if smooth_K is None:
        smooth_K = auto_smoothing(curve, energy=energy)
    T, C, err = heat_capacity(curve, smooth_K=smooth_K, energy=energy, return_error=True)
    lo, hi = T_range if T_range is not None else (T.min() + smooth_K, T.max() - smooth_K)
    sel = np.flatnonzero((T >= lo) & (T <= hi) & np.isfinite(C))
    if sel.size == 0:
        raise EmptyTrajectoryError(f"no caloric-curve bins within {lo:.0f}-{hi:.0f} K")
    i = sel[np.argmax(C[sel])]
    Tm = float(T[i])
    if 0 < i < len(T) - 1 and np.all(np.isfinite(C[i - 1:i + 2])):
        a, b, _ = np.polyfit(T[i - 1:i + 2] - T[i], C[i - 1:i + 2], 2)
        if a < 0:
            Tm = float(np.clip(T[i] - b / (2 * a), T[i - 1], T[i + 1]))
    method = f"heat capacity peak ({energy})"
    t0, t1 = float(T.min()), float(T.max())
    margin = float(edge_fraction) * (t1 - t0)
    flag = ""
    if Tm >= t1 - margin or (i == sel[-1] and sel.size > 1):
        flag = (f"no C peak inside the ramp (C still rises at {Tm:.0f} K, the end of the range "
                f"searched; the ramp ends at {t1:.0f} K): extend T_END")
    elif Tm <= t0 + margin or (i == sel[0] and sel.size > 1):
        flag = (f"no C peak inside the ramp (C is largest at {Tm:.0f} K, the start of the range "
                f"searched; the ramp starts at {t0:.0f} K): start the ramp lower")
    else:
        neg = sel[C[sel] < -2.0 * err[sel]]
        if neg.size:
            k = neg[np.argmin(C[neg])]
            flag = (f"C < 0 ({C[k]:.1f} ± {err[k]:.1f} k_B/atom at {T[k]:.0f} K, fit window "
                    f"{smooth_K:g} K): E(T) too noisy for a derivative; use more runs or a slower ramp")
    if flag:
        return MeltingPoint(float("nan"), method, T, C, float("nan"), flag=flag, T_peak=Tm,
                            smooth_K=float(smooth_K), error=err)
    return MeltingPoint(Tm, method, T, C, float(C[i]), T_peak=Tm, smooth_K=float(smooth_K), error=err)


# =========================================================================== Lindemann
@dataclass
class LindemannResult:
    """Lindemann index over windows of frames.

    Attributes
    ----------
    frame : centre frame index of each window
    T : mean temperature of each window (K; NaN if frames carry none)
    delta : cluster Lindemann index per window (mean of ``delta_atoms``)
    delta_atoms : per-atom index, ``[n_windows, n_atoms]``
    window, stride : frames per window, frames between window starts
    """

    frame: np.ndarray
    T: np.ndarray
    delta: np.ndarray
    delta_atoms: np.ndarray = field(repr=False)
    window: int
    stride: int

    def melting_temperature(self, threshold: float = 0.1) -> MeltingPoint:
        """T where δ crosses ``threshold`` for good (after the last window below it),
        linearly interpolated.  NaN if δ never exceeds it."""
        above = self.delta >= threshold
        if not above.any() or not np.isfinite(self.T).all():
            Tm = float("nan")
        elif above.all():
            Tm = float(self.T[0])
        else:
            last_below = int(np.flatnonzero(~above)[-1])
            if last_below == len(self.delta) - 1:
                Tm = float("nan")
            else:
                d0, d1 = self.delta[last_below], self.delta[last_below + 1]
                t0, t1 = self.T[last_below], self.T[last_below + 1]
                Tm = float(t0 + (threshold - d0) / (d1 - d0) * (t1 - t0))
        return MeltingPoint(Tm, "Lindemann index", self.T, self.delta, float(threshold))

    def __repr__(self) -> str:
        return (f"LindemannResult({len(self.delta)} windows of {self.window} frames, "
                f"delta {np.nanmin(self.delta):.3f}..{np.nanmax(self.delta):.3f}, "
                f"T {np.nanmin(self.T):.0f}..{np.nanmax(self.T):.0f} K)")


def lindemann_index(frames: Sequence[Atoms] | np.ndarray, window: int = 50,
                    stride: int | None = None, temperatures: np.ndarray | None = None,
                    temperature_key: str = "T_target") -> LindemannResult:
    """Lindemann index of a cluster over sliding windows of frames.

    For each window of ``window`` consecutive frames and each atom i,
    ``δ_i = 1/(N-1) Σ_{j≠i} sqrt(<r_ij²> - <r_ij>²) / <r_ij>`` (averages over the
    window); the cluster index is the mean of δ_i.  Vectorised over pairs;
    memory ``window × N(N-1)/2`` floats.

    Parameters
    ----------
    frames : list of ase.Atoms (same atoms, same order) or array ``[F, N, 3]`` (Å)
    window : int
        Frames per window (≥ 2).  The liquid δ grows with the window's duration
        (atoms diffuse), so too short windows cross a threshold late.
    stride : int, optional
        Frames between window starts (default ``window``: non-overlapping).
    temperatures : array [F], optional
        Per-frame temperature (K); default ``info[temperature_key]`` of the frames.
    """
    if isinstance(frames, np.ndarray):
        pos = np.asarray(frames, float)
        T = np.full(len(pos), np.nan) if temperatures is None else np.asarray(temperatures, float)
    else:
        from mdmlkit.utils import check_frames

        check_frames(frames, source="lindemann_index", same_size=True)
        pos = np.stack([f.positions for f in frames])
        if temperatures is not None:
            T = np.asarray(temperatures, float)
        else:
            T = np.array([float(f.info.get(temperature_key, np.nan)) for f in frames])
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise InputError(f"positions must be [frames, atoms, 3], got {pos.shape}")
    F, N = pos.shape[:2]
    if not np.all(np.isfinite(pos)):
        k = int(np.flatnonzero(~np.isfinite(pos).all(axis=(1, 2)))[0])
        raise NonFiniteError(f"lindemann_index: frame {k} has non-finite positions")
    window = int(window)
    stride = window if stride is None else int(stride)
    if window < 2 or stride < 1:
        raise InputError(f"window must be >= 2 and stride >= 1, got {window}, {stride}")
    if F < window:
        raise EmptyTrajectoryError(f"lindemann_index: {F} frame(s), a window needs {window}")
    if N < 2:
        raise InputError("lindemann_index needs at least 2 atoms")
    if len(T) != F:
        raise InconsistentFramesError(f"{len(T)} temperatures for {F} frames")
    i, j = np.triu_indices(N, 1)
    starts = np.arange(0, F - window + 1, stride)
    delta_atoms = np.empty((len(starts), N))
    for w, s in enumerate(starts):                      # loop over windows only
        p = pos[s:s + window]
        r = np.linalg.norm(p[:, i] - p[:, j], axis=-1)  # [window, pairs]
        mean = r.mean(axis=0)
        rel = np.sqrt(np.clip((r * r).mean(axis=0) - mean**2, 0.0, None)) / mean
        delta_atoms[w] = (np.bincount(i, rel, minlength=N) + np.bincount(j, rel, minlength=N)) / (N - 1)
    centre = starts + (window - 1) / 2.0
    Tw = np.array([T[s:s + window].mean() for s in starts])
    return LindemannResult(centre, Tw, delta_atoms.mean(axis=1), delta_atoms, window, stride)
