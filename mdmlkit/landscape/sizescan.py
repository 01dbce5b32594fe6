"""Size scans of Cu_n heating landscapes: the workflow behind notebook 01.

One call runs (or resumes) heating MD for every size and seed, fingerprints every
frame, maps each size's frames with a :class:`~mdmlkit.landscape.LandscapeMap`,
labels the morphology of each basin, and reads off the thermodynamics
(caloric curve, heat-capacity peak, Lindemann index, transitions, amorphous zone)
and the landscape complexity, so sizes — magic (13, 55, 147) and not — can be
compared in one table::

    from mdmlkit.landscape import LandscapeMap
    from mdmlkit.landscape.sizescan import run_size_scan
    from mdmlkit.md.heating import HeatingSettings

    scan = run_size_scan([12, 13, 14], seeds=[0, 1], outdir="runs",
                         heating=HeatingSettings(t_end=1400),
                         landscape=LandscapeMap(embedding="tsne", random_state=0))
    scan.summary()          # one row per size
    scan[13].map.labels_    # basin of every frame of Cu13 (a clone of the template, fitted)
    scan.issues()           # what could not be measured, naming size and run

Energies in eV, temperatures in K, times in fs/ps.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from sklearn.base import clone

from mdmlkit.errors import EmptyTrajectoryError, InputError
from mdmlkit.landscape.embedding import LandscapeMap
from mdmlkit.landscape.fingerprints import make_fingerprint
from mdmlkit.landscape.structure import MotifClassifier, coordination_stats
from mdmlkit.landscape.thermo import caloric_curve, lindemann_index
from mdmlkit.landscape.transitions import amorphous_zone, basin_occupancy, transition_temperatures
from mdmlkit.md.heating import HeatingSettings, heat_many
from mdmlkit.md.trajectory import frame_table
from mdmlkit.utils import check_frames

__all__ = [
    "MAGIC_SIZES", "AnalysisSettings", "SizeLandscape", "SizeScan", "is_magic",
    "stability_second_difference", "analyse_size", "run_size_scan", "low_energy_morphology",
    "LOW_ENERGY_FRACTION", "SUMMARY_HEADERS", "SUMMARY_FORMATS",
]
#: fraction of a basin's frames, lowest potential energy first, that name its morphology
LOW_ENERGY_FRACTION = 0.1
#: readable column headers (with units) and number formats of :meth:`SizeScan.summary` rows
SUMMARY_HEADERS = {
    "n_atoms": "size n (atoms)", "magic": "magic", "n_frames": "frames", "n_runs": "runs",
    "T_melt_Cv_K": "T_melt, C peak (K)", "T_melt_Lindemann_K": "T_melt, Lindemann δ = 0.1 (K)",
    "T_leave_start_basin_K": "leaves start basin (K)", "T_amorphous_K": "amorphous from (K)",
    "n_basins": "basins", "n_local_minima": "PES local minima", "roughness": "PES roughness (eV/atom)",
    "C_peak_kB_per_atom": "C peak (k_B/atom)", "E_min_per_atom_eV": "lowest E_pot (eV/atom)",
    "stability_d2E_eV": "stability Δ2E (eV)", "start_motif": "start morphology",
}
SUMMARY_FORMATS = {"T_melt_Cv_K": ".0f", "T_melt_Lindemann_K": ".0f", "T_leave_start_basin_K": ".0f",
                   "T_amorphous_K": ".0f", "C_peak_kB_per_atom": ".1f", "E_min_per_atom_eV": ".3f",
                   "stability_d2E_eV": "+.3f", "roughness": ".3g"}
#: Icosahedral (Mackay) magic numbers: 13, 55, 147, 309, ...
MAGIC_SIZES = (13, 55, 147, 309, 561)


@dataclass(frozen=True)
class AnalysisSettings:
    """How each size's frames are analysed by :func:`analyse_size`.

    Attributes
    ----------
    fingerprint : "coulomb" (the seed paper's), "rdf", "cn" or "acsf"
        Frame fingerprint (:func:`mdmlkit.landscape.fingerprints.make_fingerprint`).
    lindemann_window : int
        Frames per Lindemann window; runs shorter than two windows get none.
    temperature_bins : int
        Bins of the basin-occupancy and amorphous-zone histograms over T.
    transition_min_frames : int
        Frames a departure from the start basin must last.
    """

    fingerprint: str = "coulomb"
    lindemann_window: int = 50
    temperature_bins: int = 24
    transition_min_frames: int = 5

    def __post_init__(self) -> None:
        if int(self.lindemann_window) < 2 or int(self.temperature_bins) < 1 \
                or int(self.transition_min_frames) < 1:
            raise InputError(f"AnalysisSettings: lindemann_window >= 2, temperature_bins >= 1 and "
                             f"transition_min_frames >= 1 needed, got {self}")


def is_magic(n: int) -> bool:
    """True for the icosahedral magic numbers 10k³/3 + 5k² + 11k/3 + 1."""
    return int(n) in MAGIC_SIZES


@dataclass
class SizeLandscape:
    """Everything the scan learned about one cluster size.

    Attributes
    ----------
    n_atoms, magic
    frames : all frames of all runs of this size (run after run)
    table : per-frame columns (``T_target`` K, ``E_pot`` eV, ``run_id`` …)
    features : fingerprint matrix ``[n_frames, n_features]``
    map : the fitted :class:`~mdmlkit.landscape.LandscapeMap`
    frame_motifs : morphology label of every frame (icosahedral/decahedral/fcc-like/amorphous)
    basin_table : one dict per basin: size, energies, temperatures, representative frame,
        representative's motif, majority motif of members, ``morphology`` (majority motif of
        its lowest-energy frames, :func:`low_energy_morphology`), mean coordination
    caloric : :class:`~mdmlkit.landscape.thermo.CaloricCurve` over the runs
    melting_cv : heat-capacity-peak melting point; ``melting_lindemann``: Lindemann (δ = 0.1)
    lindemann : list of per-run :class:`~mdmlkit.landscape.thermo.LindemannResult`
    transitions : per-run temperature of leaving the starting basin
    occupancy : basin occupancy vs temperature
    amorphous : temperature zone where frames are amorphous by CNA
    complexity : map complexity (basins, local minima of the interpolated PES, roughness)
    issues : what could not be measured, one message per problem naming size and run
    """

    n_atoms: int
    magic: bool
    frames: list[Atoms] = field(repr=False)
    table: dict[str, np.ndarray] = field(repr=False)
    features: np.ndarray = field(repr=False)
    map: Any = field(repr=False)
    frame_motifs: np.ndarray = field(repr=False)
    basin_table: list[dict[str, Any]] = field(repr=False)
    caloric: Any = field(repr=False)
    melting_cv: Any = None
    melting_lindemann: Any = None
    lindemann: list[Any] = field(default_factory=list, repr=False)
    transitions: Any = field(default=None, repr=False)
    occupancy: Any = field(default=None, repr=False)
    amorphous: Any = field(default=None, repr=False)
    complexity: dict[str, Any] = field(default_factory=dict, repr=False)
    issues: list[str] = field(default_factory=list, repr=False)

    def basin_note(self) -> str:
        """Why the basins say nothing about morphology ("" when they may): one basin only."""
        if len(self.basin_table) == 1:
            b = self.basin_table[0]
            return (f"single basin: the map does not resolve morphologies at these settings "
                    f"(its lowest-energy frames are {b['morphology']})")
        return ""

    def run_slices(self) -> dict[str, np.ndarray]:
        """Frame indices of each run (by ``run_id``), in time order."""
        ids = np.asarray(self.table["run_id"])
        return {rid: np.flatnonzero(ids == rid) for rid in dict.fromkeys(ids.tolist())}

    def summary(self) -> dict[str, Any]:
        """One row of :meth:`SizeScan.summary`."""
        tr = self.transitions
        return {
            "n_atoms": self.n_atoms,
            "magic": self.magic,
            "n_frames": len(self.frames),
            "n_runs": len(self.run_slices()),
            "T_melt_Cv_K": float(self.melting_cv.T_melt) if self.melting_cv else float("nan"),
            "C_peak_kB_per_atom": float(self.melting_cv.peak) if self.melting_cv else float("nan"),
            "T_melt_Lindemann_K": (float(self.melting_lindemann.T_melt)
                                   if self.melting_lindemann else float("nan")),
            "T_leave_start_basin_K": float(tr.mean) if tr is not None else float("nan"),
            "T_amorphous_K": float(getattr(self.amorphous, "T_onset", np.nan)),
            "n_basins": int(self.complexity.get("n_basins", self.map.n_basins_)),
            "n_local_minima": int(self.complexity.get("n_local_minima", -1)),
            "roughness": float(self.complexity.get("roughness", np.nan)),
            "E_min_per_atom_eV": float(np.min(self.table["E_pot"]) / self.n_atoms),
            "start_motif": str(self.frame_motifs[0]),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"SizeLandscape(Cu{self.n_atoms}{' magic' if self.magic else ''}: "
                f"{s['n_frames']} frames / {s['n_runs']} runs, {s['n_basins']} basins, "
                + (f"T_melt(Cv)={s['T_melt_Cv_K']:.0f} K)" if np.isfinite(s["T_melt_Cv_K"])
                   else "T_melt(Cv)=n/a)"))


@dataclass
class SizeScan:
    """Results of :func:`run_size_scan` keyed by cluster size."""

    sizes: dict[int, SizeLandscape]
    settings: dict[str, Any]

    def __getitem__(self, n: int) -> SizeLandscape:
        return self.sizes[int(n)]

    def issues(self) -> list[str]:
        """Every size's :attr:`SizeLandscape.issues`, by size."""
        return [msg for n in sorted(self.sizes) for msg in self.sizes[n].issues]

    def __iter__(self):
        return iter(self.sizes.values())

    def summary(self) -> list[dict[str, Any]]:
        """One dict per size (sorted by size); see :meth:`SizeLandscape.summary`.

        Adds ``stability_d2E_eV``, the second difference of the lowest total energy
        ``Δ2E(n) = E(n+1) + E(n-1) - 2 E(n)`` (eV; NaN unless n-1 and n+1 were scanned):
        positive for a size more stable than its neighbours (the usual cluster-science
        signature of a magic number).
        """
        rows = [self.sizes[n].summary() for n in sorted(self.sizes)]
        d2 = stability_second_difference([r["n_atoms"] for r in rows],
                                         [r["E_min_per_atom_eV"] * r["n_atoms"] for r in rows])
        for r, v in zip(rows, d2):
            r["stability_d2E_eV"] = float(v)
        return rows

    def magic_contrast(self, key: str) -> list[dict[str, Any]]:
        """For each magic size, ``key`` against the mean of its scanned non-magic neighbours.

        Returns rows ``{n_atoms, value, neighbours, neighbour_values, neighbour_mean,
        difference, note}``; ``difference = value - neighbour_mean`` (same unit as ``key``;
        the mean is over the neighbours whose value is defined).  Neighbours are
        the non-magic sizes of the scan closest below and above.  ``note`` is "" when
        the difference is defined, else says why not (``"n/a: ..."``, e.g. the
        stability of a neighbour needs the sizes on both sides of it).
        """
        rows, summary = [], {r["n_atoms"]: r for r in self.summary()}
        sizes = sorted(self.sizes)
        nonmagic = [n for n in sizes if not is_magic(n)]
        for n in sizes:
            if not is_magic(n):
                continue
            below = [m for m in nonmagic if m < n]
            above = [m for m in nonmagic if m > n]
            neigh = ([below[-1]] if below else []) + ([above[0]] if above else [])
            neigh = [m for m in neigh if abs(m - n) <= max(3, 0.1 * n)]
            value = float(summary[n][key])
            vals = [float(summary[m][key]) for m in neigh]
            finite = [v for v in vals if np.isfinite(v)]
            mean = float(np.mean(finite)) if finite else float("nan")
            rows.append(dict(n_atoms=n, value=value, neighbours=neigh, neighbour_values=vals, neighbour_mean=mean,
                             difference=value - mean,
                             note=self._contrast_note(key, n, value, neigh, vals)))
        return rows

    def _contrast_note(self, key: str, n: int, value: float, neigh: list[int],
                       vals: list[float]) -> str:
        """Why a magic contrast is undefined ("" when it is defined)."""
        have = ", ".join(str(m) for m in sorted(self.sizes))
        stability = key == "stability_d2E_eV"
        if not neigh:
            return f"n/a: needs ≥ 2 sizes around {n} (have {have})"
        if not np.isfinite(value):
            if stability:
                return f"n/a: needs ≥ 2 sizes around {n} (have {have})"
            return f"n/a: {key} not measured for Cu{n} (see scan.issues())"
        missing = [m for m, v in zip(neigh, vals) if not np.isfinite(v)]
        if len(missing) == len(neigh):
            if stability:
                return (f"n/a: needs ≥ 2 sizes around {', '.join(map(str, missing))} "
                        f"(have {have})")
            return (f"n/a: {key} not measured for {', '.join(f'Cu{m}' for m in missing)} "
                    "(see scan.issues())")
        return ""

    def format_summary(self) -> str:
        """The summary as a fixed-width text table."""
        rows = self.summary()
        cols = ["n_atoms", "magic", "n_frames", "T_melt_Cv_K", "T_melt_Lindemann_K",
                "T_leave_start_basin_K", "T_amorphous_K", "n_basins", "n_local_minima",
                "C_peak_kB_per_atom", "E_min_per_atom_eV", "stability_d2E_eV", "start_motif"]
        out = ["  ".join(f"{c:>12.12s}" for c in cols)]
        for r in rows:
            cells = []
            for c in cols:
                v = r[c]
                cells.append(f"{v:>12.4g}" if isinstance(v, float) else f"{str(v):>12.12s}")
            out.append("  ".join(cells))
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"SizeScan(sizes={sorted(self.sizes)})"


def stability_second_difference(sizes: Sequence[int], energies: Sequence[float]) -> np.ndarray:
    """Second difference ``Δ2E(n) = E(n+1) + E(n-1) - 2 E(n)`` of total energies (eV).

    ``sizes`` and ``energies`` (total energy of the lowest structure of each size, eV)
    are matched by position; entries whose n-1 or n+1 is missing get NaN.  Δ2E > 0
    marks a size that is more stable than the mean of its neighbours.
    """
    sizes = [int(n) for n in sizes]
    if len(sizes) != len(energies):
        raise InputError(f"{len(sizes)} sizes but {len(energies)} energies")
    if len(set(sizes)) != len(sizes):
        raise InputError(f"duplicate cluster sizes in {sizes}")
    E = dict(zip(sizes, (float(e) for e in energies)))
    return np.array([E[n + 1] + E[n - 1] - 2.0 * E[n] if (n - 1 in E and n + 1 in E) else np.nan
                     for n in sizes])


def low_energy_morphology(motifs: Sequence[str], energies: Sequence[float],
                          fraction: float = LOW_ENERGY_FRACTION) -> tuple[str, float]:
    """Morphology of a set of frames read from its lowest-energy frames.

    Hot frames are labelled "amorphous" by CNA whatever isomer they vibrate about,
    so a basin's majority label says more about its temperatures than its
    structure.  Returns the majority motif of the ``fraction`` of frames (at least
    one) with the lowest potential energy, and the share of those frames it holds.
    """
    motifs = np.asarray(motifs, dtype=object)
    energies = np.asarray(energies, float)
    if motifs.size == 0 or motifs.shape != energies.shape:
        raise InputError(f"low_energy_morphology: {motifs.size} motifs for {energies.size} energies "
                         "(need the same number, at least one)")
    if not 0.0 < float(fraction) <= 1.0:
        raise InputError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, int(np.ceil(float(fraction) * motifs.size)))
    low = motifs[np.argsort(energies, kind="stable")[:k]].astype(str)
    kinds, counts = np.unique(low, return_counts=True)
    return str(kinds[np.argmax(counts)]), float(counts.max() / k)


def analyse_size(frames: Sequence[Atoms], landscape: LandscapeMap | None = None,
                 analysis: AnalysisSettings | None = None, progress: bool = False) -> SizeLandscape:
    """Map and analyse the frames of one cluster size (several runs allowed).

    Parameters
    ----------
    frames : list of ase.Atoms
        At least 10 frames of equal size carrying the ``atoms.info`` keys of
        :data:`mdmlkit.md.trajectory.INFO_KEYS` (e.g. written by :func:`mdmlkit.md.heating.heat`).
    landscape : LandscapeMap, optional
        Template map (its parameters only): a :func:`sklearn.base.clone` of it is fitted
        here, the template is never changed.  Default ``LandscapeMap()``.
    analysis : AnalysisSettings, optional
        Fingerprint, Lindemann window, temperature bins.

    Quantities that cannot be measured for these frames (no heat-capacity peak inside
    the ramp, runs too short for a Lindemann window) are left None/empty and
    explained in ``result.issues``; any other error propagates.
    """
    analysis = analysis if analysis is not None else AnalysisSettings()
    template = landscape if landscape is not None else LandscapeMap()
    frames = list(frames)
    label = f"Cu{len(frames[0]) if frames else '?'}"
    check_frames(frames, source=f"{label} frames", min_frames=10, same_size=True)
    n = len(frames[0])
    table = frame_table(frames)
    X = make_fingerprint(analysis.fingerprint, progress=progress).fit_transform(frames)
    lm = clone(template).fit(X, energies=table["E_pot"])
    motifs = np.asarray(MotifClassifier(progress=progress).transform(frames))

    ids = np.asarray(table["run_id"])
    runs = {rid: np.flatnonzero(ids == rid) for rid in dict.fromkeys(ids.tolist())}
    T = np.asarray(table["T_target"], float)

    basin_table = []
    for b, rep in enumerate(lm.representatives_):
        members = np.flatnonzero(lm.labels_ == b)
        kinds, counts = np.unique(motifs[members], return_counts=True)
        low, low_frac = low_energy_morphology(motifs[members], table["E_pot"][members])
        cs = coordination_stats(frames[int(rep)])
        basin_table.append(dict(
            basin=b, size=int(members.size), fraction=float(members.size / len(frames)),
            representative=int(rep), representative_motif=str(motifs[int(rep)]),
            majority_motif=str(kinds[np.argmax(counts)]),
            majority_fraction=float(counts.max() / members.size),
            morphology=low, morphology_fraction=low_frac,
            E_mean_eV=float(np.mean(table["E_pot"][members])),
            E_min_eV=float(np.min(table["E_pot"][members])),
            T_mean_K=float(T[members].mean()), T_min_K=float(T[members].min()),
            T_max_K=float(T[members].max()), mean_coordination=float(cs["mean"])))

    issues: list[str] = []
    per_run = [{k: v[idx] for k, v in table.items()} for idx in runs.values()]
    cc = caloric_curve(per_run)
    try:
        m_cv = cc.melting_temperature()
    except EmptyTrajectoryError as exc:      # too few bins for a heat-capacity peak
        m_cv = None
        issues.append(f"{label} (runs {', '.join(runs)}): no heat-capacity melting point: {exc}")
    if m_cv is not None and m_cv.flag:       # peak at the end of the ramp, or C < 0
        issues.append(f"{label} (runs {', '.join(runs)}): no heat-capacity melting point: {m_cv.flag}")
    window = int(analysis.lindemann_window)
    lind = []
    for rid, idx in runs.items():
        if idx.size >= 2 * window:
            lind.append(lindemann_index([frames[i] for i in idx], window=window))
        else:
            issues.append(f"{label} run {rid}: {idx.size} frames, fewer than two Lindemann "
                          f"windows of {window}; no Lindemann index")
    m_lind = None
    if lind:
        Tm = [r.melting_temperature().T_melt for r in lind]
        m_lind = lind[0].melting_temperature()
        m_lind.T_melt = float(np.nanmean(Tm)) if np.isfinite(Tm).any() else float("nan")
    labels_runs = [lm.labels_[idx] for idx in runs.values()]
    T_runs = [T[idx] for idx in runs.values()]
    transitions = transition_temperatures(labels_runs, T_runs,
                                          min_frames=analysis.transition_min_frames)
    occ = basin_occupancy(lm.labels_, T, bins=analysis.temperature_bins)
    amorph = amorphous_zone(temperatures=T, labels=(motifs == "amorphous").astype(int),
                            amorphous_labels=(1,), bins=analysis.temperature_bins)
    complexity = lm.complexity()
    return SizeLandscape(n, is_magic(n), frames, table, X, lm, motifs, basin_table, cc, m_cv,
                         m_lind, lind, transitions, occ, amorph, complexity, issues)


def _analyse_job(frames: list[Atoms], landscape: LandscapeMap, analysis: AnalysisSettings
                 ) -> SizeLandscape:
    """One size of :func:`run_size_scan` (module level so that process pools can pickle it)."""
    return analyse_size(frames, landscape=landscape, analysis=analysis)


def run_size_scan(sizes: Iterable[int], seeds: Iterable[int] = (0, 1), outdir: str | Path = "runs",
                  heating: HeatingSettings | None = None, landscape: LandscapeMap | None = None,
                  analysis: AnalysisSettings | None = None, calculator: Any = "asap3",
                  progress: bool = True, executor: Any = None,
                  n_jobs: int | None = None, overwrite: bool = False) -> SizeScan:
    """Heat every size with every seed (resuming finished/interrupted runs), then analyse.

    Parameters
    ----------
    sizes : cluster sizes n of Cu_n
    seeds : independent runs per size
    outdir : folder for the ``Cu<n>_<kind>_s<seed>.extxyz`` trajectories (reused on rerun)
    heating : ramp, time step, sampling and starting motif (default
        ``HeatingSettings(t_start=300, t_end=1500, rate_K_per_ps=10)``: K, K/ps, fs)
    landscape : template :class:`~mdmlkit.landscape.LandscapeMap`, cloned per size
    analysis : fingerprint and analysis windows (:class:`AnalysisSettings`)
    calculator : potential for the MD (default asap3 EMT; by name or a picklable
        factory when running in parallel)
    progress : tqdm bars over runs and sizes
    executor, n_jobs : where the heating runs (one task per size and seed) and then the
        per-size analyses (one task per size) run, see :func:`mdmlkit.parallel.run_tasks`:
        ``None`` with ``n_jobs`` None or 1 is serial; ``"process"`` / ``n_jobs > 1``
        local processes; a ``concurrent.futures.Executor`` or a dask ``Client`` as given.
        Every run and size is independent and seeded, so the scan equals the serial one.
    overwrite : rerun existing runs in ``outdir`` that were made with other heating settings
        or another calculator (default: refuse them with
        :class:`~mdmlkit.errors.CheckpointMismatchError` naming the file and the settings;
        see :func:`mdmlkit.md.heating.heat_many`)
    """
    from functools import partial

    from mdmlkit.parallel import run_tasks

    heating = heating if heating is not None else HeatingSettings(t_start=300.0, t_end=1500.0,
                                                                  rate_K_per_ps=10.0)
    template = landscape if landscape is not None else LandscapeMap()
    analysis = analysis if analysis is not None else AnalysisSettings()
    sizes = list(sizes)
    bad = [n for n in sizes if isinstance(n, bool) or not isinstance(n, (int, np.integer))]
    if bad:
        raise InputError(f"run_size_scan: cluster sizes must be integers, got {bad!r}")
    sizes = sorted({int(n) for n in sizes})
    seeds = list(seeds)
    if not sizes:
        raise InputError("run_size_scan needs at least one size")
    results = heat_many(sizes, seeds, outdir=outdir, settings=heating, calculator=calculator,
                        progress=progress, executor=executor, n_jobs=n_jobs, overwrite=overwrite)
    by_size: dict[int, list[Atoms]] = {}
    for r in results:
        by_size.setdefault(len(r.frames[0]), []).extend(r.frames)
    maps = run_tasks(partial(_analyse_job, landscape=template, analysis=analysis),
                     [by_size[n] for n in sizes], executor=executor, n_jobs=n_jobs,
                     progress=progress, desc="mapping sizes", names=[f"Cu{n}" for n in sizes])
    settings = dict(sizes=sizes, seeds=seeds, heating=heating.as_dict(),
                    landscape=template.get_params(), analysis=asdict(analysis))
    return SizeScan(dict(zip(sizes, maps)), settings)
