"""Labelled data sets: the shipped La2Zr2O7 set, labelling with any ASE calculator.

Labels live where ASE puts them: each labelled ``ase.Atoms`` carries a
``SinglePointCalculator`` with ``energy`` (eV), ``forces`` (eV/A) and, for
periodic cells, ``stress`` (eV/A^3, Voigt order xx yy zz yz xz xy), so
``atoms.get_potential_energy()`` etc. work, and extended XYZ files round-trip
them.  Structure metadata is in ``atoms.info`` (``kind``, ``split``, ``T``,
teacher provenance; see ``data/la2zr2o7/README.md``).

Main entry points
-----------------
* :func:`load_la2zr2o7` - read the shipped train/val/test files;
* :func:`load_hot_test` - the teacher-MD test set at 2000-3000 K (test only);
* :func:`load_pool` - the unlabelled MD-frame candidate pool (lazy, on disk);
* :func:`thin_hot_runs` - a temperature-skewed (production-like) view of that pool;
* :func:`label` - label any list of structures with any ASE calculator, with
  atomic chunked checkpoints, resume, and per-structure failure records;
* :func:`validate_labelled` - check labels are present, fresh and finite;
* :func:`split_labels` - seeded train/val/test split stratified by kind;
* :func:`summarize` - counts per kind and label distributions.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.errors import (
    EmptyTrajectoryError,
    InconsistentFramesError,
    InputError,
    MalformedFileError,
    MissingFileError,
    MissingLabelError,
    NonFiniteError,
    OracleError,
)
from mdmlkit.io.frames import read_frames, write_frames
from mdmlkit.utils import PathLike, atomic_write_json

__all__ = [
    "HOT_SPLITS", "SPLITS", "data_dir", "load_la2zr2o7", "label",
    "LabelledFrames", "validate_labelled", "split_labels", "summarize", "DatasetSummary",
    "frames_fingerprint", "load_hot_test", "load_pool", "thin_hot_runs", "RELAXED_LATTICE", "start_cell",
]

#: CHGNet-relaxed lattice of the shipped data set (``manifest.json`` "relaxed"): a0 (Å),
#: x(48f), linear thermal expansion (1/K)
RELAXED_LATTICE = {"a0": 10.895642340313849, "x48f": 0.3328561222692458, "alpha_per_K": 9.1e-6}
START_KINDS = ("perfect", "vacancy", "frenkel", "antisite")

SPLITS = ("train", "val", "test")
#: extra hot training / validation data: labelled 2000-3000 K frames of the MD pool
#: (``generate_hot_train.py``) and of teacher MD (``generate_hot_test.py --split hot_md_train``)
HOT_SPLITS = ("hot_train", "hot_val", "hot_md_train")
_LA2ZR2O7 = "la2zr2o7"
_INDEX_KEY = "_label_index"
_PROPS = ("energy", "forces", "stress")


def start_cell(kind: str, cell: str, T: float, rng: np.random.Generator, n_defects: int = 1):
    """A perfect or defective La2Zr2O7 cell at the relaxed lattice expanded to ``T`` (K).

    ``cell``: "prim" (22 atoms) or "conv" (88); ``kind``: "perfect", "vacancy"
    (``n_defects`` O vacancies), "frenkel" (one O 48f -> 8a pair) or "antisite"
    (``n_defects`` La<->Zr pairs), drawn with ``rng``.  Returns ``(atoms, defect label)``.
    Used by the data scripts of ``data/la2zr2o7`` (hot test set) and ``data/la2zr2o7_pool``.
    """
    from mdmlkit.systems import pyrochlore as pyro

    if kind not in START_KINDS or cell not in ("prim", "conv"):
        raise InputError(f"start_cell: kind must be one of {START_KINDS} and cell 'prim' or 'conv', "
                         f"got {kind!r}, {cell!r}")
    lat = RELAXED_LATTICE
    a = lat["a0"] * (1.0 + lat["alpha_per_K"] * T)
    base = pyro.primitive_cell(a, lat["x48f"]) if cell == "prim" else pyro.conventional_cell(a, lat["x48f"])
    if kind == "perfect":
        return base, "none"
    if kind == "vacancy":
        return pyro.oxygen_vacancies(base, n_defects, rng), f"{n_defects}xV_O"
    if kind == "frenkel":
        return pyro.frenkel_pair(base, rng, site="48f"), "O48f->8a"
    return pyro.antisite(base, n_defects, rng), f"{n_defects}xLa<->Zr"


# ----------------------------------------------------------------------------- files

def data_dir() -> Path:
    """Root of mdmlkit's data: ``$MDMLKIT_DATA`` if set, else ``<repo>/data``."""
    env = os.environ.get("MDMLKIT_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "data"



def load_la2zr2o7(split: str = "train", path: PathLike | None = None,
                  kinds: Iterable[str] | None = None, validate: bool = True) -> list[Atoms]:
    """Load the shipped CHGNet-labelled La2Zr2O7 data set.

    Parameters
    ----------
    split : {"train", "val", "test", "all", "hot_train", "hot_val"}
        Which fixed split to read ("all" concatenates train, val, test).  ``hot_train`` /
        ``hot_val``: teacher-labelled 2000–3000 K frames of the MD pool
        (``generate_hot_train.py``); ``hot_md_train``: teacher-MD frames made like the hot
        test set from other start structures.  Extra training / validation data.
    path : path-like, optional
        Directory with ``train.extxyz.gz`` etc. (default ``data_dir()/la2zr2o7``;
        set ``MDMLKIT_DATA`` to relocate the data root).
    kinds : iterable of str, optional
        Keep only these structure kinds (``atoms.info["kind"]``, e.g. "thermal",
        "strain", "md", "vacancy", "frenkel", "antisite", "eos").
    validate : bool
        Check every frame has finite energy, forces and stress.

    Returns
    -------
    list of ase.Atoms
        Each with energy (eV), forces (eV/A), stress (eV/A^3) via a
        ``SinglePointCalculator`` and metadata in ``info``.
    """
    if split not in (*SPLITS, "all", *HOT_SPLITS):
        raise InputError(f"split must be one of {SPLITS + ('all',) + HOT_SPLITS}, got {split!r}")
    root = Path(path) if path is not None else data_dir() / _LA2ZR2O7
    names = SPLITS if split == "all" else (split,)
    files = [root / f"{name}.extxyz.gz" for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MissingFileError(
            f"La2Zr2O7 data set file(s) not found: {', '.join(missing)}. The files ship in the "
            "repository's data/la2zr2o7/ directory (regenerate with data/la2zr2o7/generate.py); "
            "point MDMLKIT_DATA at the directory that contains la2zr2o7/ or pass path=.")
    wanted = None if kinds is None else {str(k) for k in kinds}
    out: list[Atoms] = []
    seen: set[str] = set()
    for f in files:
        frames = read_frames(f)
        if wanted is not None:
            seen |= {str(a.info.get("kind")) for a in frames}
            frames = [a for a in frames if a.info.get("kind") in wanted]
        if validate and frames:
            validate_labelled(frames, need=_PROPS, source=str(f))
        out.extend(frames)
    if wanted is not None and not wanted <= seen:
        raise InputError(f"no structures of kind(s) {sorted(wanted - seen)} in "
                         f"{', '.join(map(str, files))}; kinds present: {sorted(seen)}")
    return out


def load_hot_test(path: PathLike | None = None, validate: bool = True) -> list[Atoms]:
    """Load the teacher-labelled hot test set (CHGNet MD frames at 2000, 2500, 3000 K).

    Snapshots of teacher NVT MD of the perfect conventional cell and of defective
    primitive cells (O vacancy, anion Frenkel pair, antisite); see the "Hot test set"
    section of ``data/la2zr2o7/README.md``.  For testing only: never train on it or
    select from it.

    Parameters
    ----------
    path : path-like, optional
        The file (default ``data_dir()/la2zr2o7/hot_test.extxyz.gz``).
    validate : bool
        Check every frame has finite energy (eV), forces (eV/Å) and stress (eV/Å³).
    """
    f = Path(path) if path is not None else data_dir() / _LA2ZR2O7 / "hot_test.extxyz.gz"
    if not f.is_file():
        raise MissingFileError(f"hot test set not found: {f} (regenerate with "
                               "data/la2zr2o7/generate_hot_test.py, or pass path=)")
    frames = read_frames(f)
    if validate:
        validate_labelled(frames, need=_PROPS, source=str(f))
    return frames


def load_pool(path: PathLike | None = None):
    """The unlabelled La2Zr2O7 candidate pool (HDNNP MD frames) as a lazy FramePool.

    Parameters
    ----------
    path : path-like, optional
        A pool chunk file or folder (default ``data_dir()/la2zr2o7_pool``).

    Returns
    -------
    mdmlkit.active.pool.FramePool
        ``len(pool)`` frames, ``pool[i]`` an unlabelled ``ase.Atoms``; ``pool.info``
        columns ``kind``, ``cell``, ``T`` (K), ``defect``, ``run``, ``step``,
        ``time_fs``, ``T_kinetic`` (K), ``d_min`` (Å), ``source``.
    """
    from mdmlkit.active.pool import FramePool

    return FramePool(Path(path) if path is not None else data_dir() / "la2zr2o7_pool")


def thin_hot_runs(info: dict, stride: int, cool_max_T: float = 1000.0) -> np.ndarray:
    """Pool indices of a production-like, temperature-skewed view of an MD pool.

    Every frame of the runs at thermostat temperature ≤ ``cool_max_T`` is kept and
    only every ``stride``-th frame (in step order) of each hotter run, as in the
    frame dump of a user who ran long at working temperatures and made short hot
    excursions.  ``stride=1`` keeps the whole pool.

    Parameters
    ----------
    info : dict
        The pool's ``info`` columns (``FramePool.info``): ``T`` (K), ``run`` and ``step``.
    stride : int
        Keep one frame in ``stride`` of the runs above ``cool_max_T``; ≥ 1.
    cool_max_T : float
        K.

    Returns
    -------
    ndarray of int
        Increasing pool indices.
    """
    if int(stride) != stride or stride < 1:
        raise InputError(f"thin_hot_runs: stride must be a positive integer, got {stride!r}")
    missing = [k for k in ("T", "run", "step") if k not in info]
    if missing:
        raise InputError(f"thin_hot_runs: the pool has no info column(s) {missing}")
    T = np.asarray(info["T"], dtype=float)
    run = np.asarray(info["run"])
    step = np.asarray(info["step"], dtype=float)
    keep = T <= cool_max_T
    for r in np.unique(run[~keep]):
        rows = np.flatnonzero((run == r) & ~keep)
        keep[rows[np.argsort(step[rows], kind="stable")][::int(stride)]] = True
    return np.flatnonzero(keep)


# ----------------------------------------------------------------------------- validation

def _label_of(atoms: Atoms, name: str):
    calc = atoms.calc
    if calc is None:
        return None
    return getattr(calc, "results", {}).get(name)


def validate_labelled(frames: Sequence[Atoms], need: Sequence[str] = ("energy", "forces"),
                      source: str = "<frames>") -> None:
    """Check that every frame carries finite, up-to-date labels.

    Parameters
    ----------
    frames : sequence of ase.Atoms
    need : sequence of str
        Labels required: any of "energy", "forces", "stress" ("stress" is only
        required for fully periodic frames).
    source : str
        Name of the data (file) used in error messages.

    Raises
    ------
    EmptyTrajectoryError, MissingLabelError, NonFiniteError
        Naming ``source``, the structure index (and kind) and, for forces, the atom.
    """
    bad = set(need) - set(_PROPS)
    if bad:
        raise InputError(f"unknown label(s) {sorted(bad)}; choose from {_PROPS}")
    if len(frames) == 0:
        raise EmptyTrajectoryError(f"{source}: no structures")
    for k, atoms in enumerate(frames):
        where = f"{source}: structure {k}" + (f" (kind={atoms.info['kind']})"
                                              if "kind" in atoms.info else "")
        pos = atoms.get_positions()
        if not np.all(np.isfinite(pos)):
            atom = int(np.flatnonzero(~np.isfinite(pos).all(axis=1))[0])
            raise NonFiniteError(f"{where}: non-finite position of atom {atom}")
        if atoms.calc is None:
            raise MissingLabelError(f"{where}: has no labels (no calculator results attached)")
        changes = atoms.calc.check_state(atoms) if hasattr(atoms.calc, "check_state") else []
        if changes:
            raise MissingLabelError(f"{where}: labels are stale ({', '.join(changes)} "
                                    "changed after labelling)")
        for name in need:
            if name == "stress" and not atoms.pbc.all():
                continue
            value = _label_of(atoms, name)
            if value is None:
                raise MissingLabelError(f"{where}: no {name} label")
            arr = np.asarray(value, dtype=float)
            if name == "forces" and arr.shape != (len(atoms), 3):
                raise MissingLabelError(f"{where}: forces have shape {arr.shape}, "
                                        f"expected ({len(atoms)}, 3)")
            if not np.all(np.isfinite(arr)):
                if name == "forces":
                    atom = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
                    raise NonFiniteError(f"{where}: non-finite force on atom {atom}")
                raise NonFiniteError(f"{where}: non-finite {name}")


# ----------------------------------------------------------------------------- labelling

class LabelledFrames(list):
    """List of labelled ``ase.Atoms`` plus bookkeeping of the labelling run.

    Attributes
    ----------
    indices : list of int
        Index (in the input list) of each labelled frame, same order as the list.
    failures : dict[int, str]
        Input index -> reason for structures that could not be labelled
        (calculator exception or non-finite result) with ``on_error="skip"``.
    """

    def __init__(self, frames=(), indices=(), failures=None):
        super().__init__(frames)
        self.indices = list(indices)
        self.failures = dict(failures or {})

    def __repr__(self) -> str:
        return f"LabelledFrames(n_labelled={len(self)}, n_failed={len(self.failures)})"


def frames_fingerprint(frames: Sequence[Atoms]) -> str:
    """SHA-256 of species, positions, cells and pbc (rounded to 1e-6 A)."""
    h = hashlib.sha256()
    for atoms in frames:
        h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
        h.update(np.round(atoms.get_positions(), 6).astype(np.float64).tobytes())
        h.update(np.round(atoms.cell.array, 6).astype(np.float64).tobytes())
        h.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    return h.hexdigest()


def _compute(atoms: Atoms, calc) -> tuple[Atoms | None, str | None, type | None]:
    """Label one structure. Returns (labelled copy, None, None) or (None, reason, error class)."""
    work = atoms.copy()
    work.calc = calc
    try:
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=float)
        stress = np.array(work.get_stress(voigt=True), dtype=float) if work.pbc.all() else None
    except Exception as exc:   # any calculator failure is recorded, not fatal
        return None, f"{type(exc).__name__}: {exc}", OracleError
    bad = [n for n, v in (("energy", energy), ("forces", forces), ("stress", stress))
           if v is not None and not np.all(np.isfinite(v))]
    if bad:
        return None, f"non-finite {', '.join(bad)} from the calculator", NonFiniteError
    out = atoms.copy()
    results: dict[str, Any] = {"energy": energy, "forces": forces}
    if stress is not None:
        results["stress"] = stress
    out.calc = SinglePointCalculator(out, **results)
    return out, None, None


class _Checkpoint:
    """Directory of labelled chunks: ``chunk_*.extxyz``, ``failures.json``, ``meta.json``."""

    def __init__(self, path: PathLike, frames: Sequence[Atoms]):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        meta = {"n_frames": len(frames), "fingerprint": frames_fingerprint(frames)}
        meta_file = self.path / "meta.json"
        if meta_file.is_file():
            old = json.loads(meta_file.read_text())
            if old.get("fingerprint") != meta["fingerprint"] or old.get("n_frames") != len(frames):
                raise InconsistentFramesError(
                    f"checkpoint {self.path} was written for different structures "
                    f"({old.get('n_frames')} frames, fingerprint {str(old.get('fingerprint'))[:12]}) "
                    f"than the {len(frames)} given now; use a fresh checkpoint directory")
        else:
            atomic_write_json(meta_file, meta)
        self.n_chunks = len(list(self.path.glob("chunk_*.extxyz")))

    def load(self) -> tuple[dict[int, Atoms], dict[int, str]]:
        done: dict[int, Atoms] = {}
        for f in sorted(self.path.glob("chunk_*.extxyz")):
            for atoms in read_frames(f):
                idx = atoms.info.pop(_INDEX_KEY, None)
                if idx is None:
                    raise MalformedFileError(f"frame without {_INDEX_KEY}", path=str(f))
                done[int(idx)] = atoms
        fail_file = self.path / "failures.json"
        failures = ({int(k): v for k, v in json.loads(fail_file.read_text()).items()}
                    if fail_file.is_file() else {})
        return done, failures

    def write_chunk(self, labelled: dict[int, Atoms]) -> None:
        if not labelled:
            return
        frames = []
        for idx in sorted(labelled):
            atoms = labelled[idx].copy()
            atoms.calc = labelled[idx].calc
            atoms.info[_INDEX_KEY] = idx
            frames.append(atoms)
        write_frames(frames, self.path / f"chunk_{self.n_chunks:06d}.extxyz")
        self.n_chunks += 1

    def write_failures(self, failures: dict[int, str]) -> None:
        atomic_write_json(self.path / "failures.json", {str(k): v for k, v in failures.items()})


def _as_calculator(calculator):
    """A calculator instance from an instance or a zero-argument factory."""
    if hasattr(calculator, "get_potential_energy") or hasattr(calculator, "calculate"):
        return calculator
    if callable(calculator):
        return calculator()
    raise InputError(f"calculator must be an ASE calculator or a factory, got {calculator!r}")


_WORKER_CALC = None


def _worker_init(factory) -> None:
    global _WORKER_CALC
    from mdmlkit.parallel import exit_with_parent

    exit_with_parent()
    _WORKER_CALC = factory()


def _worker_label(items: list[tuple[int, Atoms]]):
    out = []
    for idx, atoms in items:
        res, reason, err = _compute(atoms, _WORKER_CALC)
        out.append((idx, res, reason, err))
    return out


def label(frames: Sequence[Atoms], calculator, checkpoint: PathLike | None = None,
          progress: bool = True, on_error: str = "raise", chunk_size: int = 50,
          workers: int = 1, desc: str = "labelling") -> LabelledFrames:
    """Label structures with energies, forces and (periodic cells) stresses.

    Parameters
    ----------
    frames : sequence of ase.Atoms
        Structures to label; not modified.
    calculator : ase Calculator or zero-argument factory
        The teacher (CHGNet, VASP, ...).  With ``workers > 1`` it must be a
        picklable factory (each worker process builds its own calculator).
    checkpoint : path-like, optional
        Directory for atomic chunk files; an interrupted run resumes from it
        (the structures must be the same, checked by fingerprint).  Failures
        recorded there with ``on_error="skip"`` are not retried.
    progress : bool
        Show a tqdm progress bar.
    on_error : {"raise", "skip"}
        What to do when the calculator raises or returns NaN/inf for a
        structure: ``"raise"`` (after saving the structures already labelled)
        :class:`OracleError` / :class:`NonFiniteError` naming the structure, or
        ``"skip"`` it and record the reason in ``result.failures``.
    chunk_size : int
        Structures per checkpoint chunk.
    workers : int
        Worker processes (1 = label in this process).

    Returns
    -------
    LabelledFrames
        The successfully labelled copies in input order, with ``.indices``
        (input index of each) and ``.failures`` (input index -> reason).
    """
    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if chunk_size < 1 or workers < 1:
        raise InputError(f"chunk_size and workers must be >= 1, got {chunk_size}, {workers}")
    if workers > 1 and (hasattr(calculator, "calculate") or not callable(calculator)):
        raise InputError("workers > 1 needs a picklable calculator *factory* (a zero-argument "
                         "function returning a calculator), not a calculator instance")
    frames = list(frames)
    ckpt = _Checkpoint(checkpoint, frames) if checkpoint is not None else None
    done, failures = ckpt.load() if ckpt is not None else ({}, {})
    if on_error == "raise":
        failures = {}   # earlier skipped failures are retried when failing is fatal
    pending = [i for i in range(len(frames)) if i not in done and i not in failures]
    chunks = [pending[s:s + chunk_size] for s in range(0, len(pending), chunk_size)]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(frames), initial=len(frames) - len(pending), desc=desc,
               disable=not progress, unit="struct")

    def handle(results) -> None:
        new: dict[int, Atoms] = {}
        fatal = None
        for idx, res, reason, err in results:
            if res is not None:
                new[idx] = res
            elif on_error == "skip":
                failures[idx] = reason
            elif fatal is None:
                fatal = (idx, reason, err)
        done.update(new)
        if ckpt is not None:
            ckpt.write_chunk(new)
            if on_error == "skip":
                ckpt.write_failures(failures)
        bar.update(len(results))
        if fatal is not None:
            idx, reason, err = fatal
            kind = frames[idx].info.get("kind")
            raise err(f"{desc}: structure {idx}" + (f" (kind={kind})" if kind else "")
                      + f" could not be labelled: {reason}")

    try:
        if workers == 1 or len(chunks) <= 1:
            calc = _as_calculator(calculator)
            for chunk in chunks:
                results = []
                for idx in chunk:
                    res, reason, err = _compute(frames[idx], calc)
                    results.append((idx, res, reason, err))
                    if res is None and on_error == "raise":
                        break
                handle(results)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                     initializer=_worker_init, initargs=(calculator,)) as pool:
                futures = [pool.submit(_worker_label, [(i, frames[i]) for i in chunk])
                           for chunk in chunks]
                try:
                    for fut in as_completed(futures):
                        handle(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()

    order = sorted(done)
    return LabelledFrames([done[i] for i in order], order, failures)


# ----------------------------------------------------------------------------- splits

def split_labels(kinds: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                 seed: int = 0, groups: Sequence[Any] | None = None) -> np.ndarray:
    """Seeded train/val/test assignment stratified by structure kind.

    Within each kind the groups (default: every structure its own group; give
    e.g. the MD trajectory id so correlated snapshots stay together) are
    permuted with a generator seeded by ``seed`` and the kind's name, and cut at
    the cumulative ``fractions``.  Adding a new kind leaves the others'
    assignment unchanged.

    Returns
    -------
    numpy.ndarray of str
        "train", "val" or "test" per structure.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise InputError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    kinds_arr = np.asarray(kinds, dtype=object)
    n = len(kinds_arr)
    grp = np.arange(n).astype(object) if groups is None else np.asarray(groups, dtype=object)
    if len(grp) != n:
        raise InputError(f"{len(grp)} groups for {n} structures")
    out = np.empty(n, dtype="<U5")
    edges = np.cumsum(fr)
    for kind in sorted(set(kinds_arr.tolist()), key=str):
        members = np.flatnonzero(kinds_arr == kind)
        gids = sorted({str(g) for g in grp[members]})
        rng = np.random.default_rng([seed, zlib.crc32(str(kind).encode())])
        perm = [gids[p] for p in rng.permutation(len(gids))]
        sizes = {g: 0 for g in gids}
        for m in members:
            sizes[str(grp[m])] += 1
        counts = np.array([sizes[g] for g in perm], dtype=float)
        mid = (np.cumsum(counts) - counts / 2) / counts.sum()
        which = np.searchsorted(edges, mid, side="right").clip(0, 2)
        assign = {g: SPLITS[w] for g, w in zip(perm, which)}
        for m in members:
            out[m] = assign[str(grp[m])]
    return out


# ----------------------------------------------------------------------------- summary

@dataclass
class DatasetSummary:
    """Counts and label statistics of a list of structures (see :func:`summarize`)."""

    n_structures: int
    n_atoms_total: int
    by_kind: dict[str, int]
    by_split: dict[str, int]
    by_size: dict[int, int]
    compositions: dict[str, int]
    energy_per_atom: dict[str, float] = field(default_factory=dict)   # eV/atom
    energy_per_atom_by_kind: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    force_rms: float = float("nan")          # eV/A, over all components
    force_max: float = float("nan")          # eV/A, largest |F| of any atom
    force_max_by_kind: dict[str, float] = field(default_factory=dict)
    stress_range: tuple[float, float] = (float("nan"), float("nan"))   # eV/A^3
    n_unlabelled: int = 0

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def __str__(self) -> str:
        lines = [f"{self.n_structures} structures, {self.n_atoms_total} atoms"
                 + (f", {self.n_unlabelled} unlabelled" if self.n_unlabelled else "")]
        if self.by_split:
            lines.append("splits: " + ", ".join(f"{k}={v}" for k, v in self.by_split.items()))
        lines.append("sizes: " + ", ".join(f"{k} atoms: {v}" for k, v in sorted(self.by_size.items())))
        lines.append(f"{'kind':<12}{'count':>7}{'E/atom min':>12}{'mean':>10}{'max':>10}"
                     f"{'max|F|':>9}")
        for kind, count in self.by_kind.items():
            lo, mean, hi = self.energy_per_atom_by_kind.get(kind, (np.nan,) * 3)
            fmax = self.force_max_by_kind.get(kind, np.nan)
            lines.append(f"{kind:<12}{count:>7}{lo:>12.4f}{mean:>10.4f}{hi:>10.4f}{fmax:>9.2f}")
        if self.energy_per_atom:
            e = self.energy_per_atom
            lines.append(f"E/atom: {e['min']:.4f} .. {e['max']:.4f} eV (mean {e['mean']:.4f}, "
                         f"std {e['std']:.4f}); forces: rms {self.force_rms:.3f} eV/A, "
                         f"max |F| {self.force_max:.2f} eV/A")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"DatasetSummary(n_structures={self.n_structures}, kinds={self.by_kind}, "
                f"splits={self.by_split})")


def summarize(frames: Sequence[Atoms]) -> DatasetSummary:
    """Counts per kind/split/size/composition and energy, force, stress statistics."""
    from collections import Counter

    kinds = Counter(str(a.info.get("kind", "unknown")) for a in frames)
    splits = Counter(str(a.info["split"]) for a in frames if "split" in a.info)
    sizes = Counter(len(a) for a in frames)
    comps = Counter(a.get_chemical_formula(mode="metal") for a in frames)
    summary = DatasetSummary(
        n_structures=len(frames), n_atoms_total=int(sum(len(a) for a in frames)),
        by_kind=dict(sorted(kinds.items())),
        by_split={s: splits[s] for s in (*SPLITS, *sorted(set(splits) - set(SPLITS))) if s in splits},
        by_size=dict(sorted(sizes.items())), compositions=dict(comps.most_common()))
    e_at, kind_of, f_all, fmax_by_kind, s_all = [], [], [], {}, []
    for a in frames:
        e = _label_of(a, "energy")
        f = _label_of(a, "forces")
        if e is None or f is None:
            summary.n_unlabelled += 1
            continue
        kind = str(a.info.get("kind", "unknown"))
        e_at.append(float(e) / len(a))
        kind_of.append(kind)
        f = np.asarray(f, dtype=float)
        f_all.append(f.ravel())
        fmax_by_kind[kind] = max(fmax_by_kind.get(kind, 0.0), float(np.linalg.norm(f, axis=1).max()))
        s = _label_of(a, "stress")
        if s is not None:
            s_all.append(np.asarray(s, dtype=float).ravel())
    if e_at:
        e_arr = np.asarray(e_at)
        summary.energy_per_atom = {"min": float(e_arr.min()), "max": float(e_arr.max()),
                                   "mean": float(e_arr.mean()), "std": float(e_arr.std())}
        k_arr = np.asarray(kind_of)
        summary.energy_per_atom_by_kind = {
            k: (float(e_arr[k_arr == k].min()), float(e_arr[k_arr == k].mean()),
                float(e_arr[k_arr == k].max())) for k in summary.by_kind if np.any(k_arr == k)}
        fc = np.concatenate(f_all)
        summary.force_rms = float(np.sqrt(np.mean(fc ** 2)))
        summary.force_max = max(fmax_by_kind.values())
        summary.force_max_by_kind = dict(sorted(fmax_by_kind.items()))
    if s_all:
        sc = np.concatenate(s_all)
        summary.stress_range = (float(sc.min()), float(sc.max()))
    return summary
