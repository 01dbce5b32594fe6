"""An on-disk cache of oracle labels, keyed by structure and oracle.

Labels are expensive (a teacher or DFT call per structure), so every label an
:class:`~mdmlkit.active.oracle.Oracle` computes is stored once and reused by reruns,
resumed runs and other strategies.  The key is the SHA-1 of

* the structure fingerprint :func:`mdmlkit.active.features.structure_fingerprint`:
  atomic numbers, Cartesian positions and cell vectors rounded to 1e-6 Å, and pbc
  (so a copy moved by 1e-9 Å has the same key; a rigid translation by more does not);
* the oracle identity string (calculator name, package version, model and settings,
  see :func:`oracle_identity`), so labels of different oracles never mix.

Each entry is one small JSON file ``<root>/<key[:2]>/<key>.json`` written atomically
(temporary file + ``os.replace``): a process killed mid-write leaves at most a hidden
``.*.part.json`` file, which is ignored, and concurrent writers (threads or processes)
never corrupt an entry.  Floats are written with ``repr`` precision, so cached labels
are bit-identical to the computed ones.

Failures are cached too (status ``"failed"``, the error, the number of attempts):
:meth:`LabelCache.should_retry` says whether a failed structure may be tried again
(fewer than ``max_attempts`` attempts), so a bad structure is never retried forever.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.active.features import structure_fingerprint
from mdmlkit.errors import InputError
from mdmlkit.utils import PathLike, atomic_write_text

__all__ = ["LabelCache", "CacheEntry", "label_key", "oracle_identity"]

_FORMAT = "mdmlkit-labelcache/1"

log = logging.getLogger(__name__)


def label_key(atoms: Atoms, oracle_id: str) -> str:
    """Cache key (hex SHA-1) of a structure under an oracle identity string."""
    h = hashlib.sha1(structure_fingerprint(atoms).encode())
    h.update(b"|")
    h.update(str(oracle_id).encode())
    return h.hexdigest()


def oracle_identity(calculator: Any) -> str:
    """Identity string of a calculator: name, package version, model and settings.

    Uses :func:`mdmlkit.systems.teacher.teacher_info` plus the calculator's
    ``parameters`` (ASE calculators keep their settings there), e.g.
    ``"CHGNet|chgnet 0.4.2|0.3.0|{}"`` or ``"EMT|ase 3.26.0|n/a|{...}"``.
    """
    from mdmlkit.systems.teacher import teacher_info

    info = teacher_info(calculator)
    params = getattr(calculator, "parameters", None) or {}
    try:
        p = json.dumps(dict(params), sort_keys=True, default=str)
    except (TypeError, ValueError):
        p = repr(params)
    return f"{info['teacher']}|{info['teacher_version']}|{info['teacher_model']}|{p}"


@dataclass
class CacheEntry:
    """One cached label (``status == "ok"``) or failure (``status == "failed"``).

    Attributes
    ----------
    key, oracle, status : str
    results : dict
        ``energy`` (eV), ``forces`` (eV/Å, [n, 3]) and optionally ``stress``
        (eV/Å³, Voigt) as numpy arrays / float; empty for a failure.
    error : str or None
        Why the last attempt failed.
    attempts : int
        Failed attempts so far (0 for a label computed at the first try).
    time_s : float
        Wall time of the oracle call that produced the entry, s.
    stress_requested : bool or None
        Whether the oracle was asked for the stress when it made the label (None:
        not recorded); a label without stress made with ``stress_requested=False``
        is not reused by an oracle that wants the stress.
    """

    key: str
    oracle: str
    status: str
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    time_s: float = 0.0
    stress_requested: bool | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def labelled(self, atoms: Atoms) -> Atoms:
        """A copy of ``atoms`` carrying the cached labels on a SinglePointCalculator."""
        if not self.ok:
            raise InputError(f"cache entry {self.key[:12]} is a failure ({self.error}), not a label")
        out = atoms.copy()
        out.calc = SinglePointCalculator(out, **{k: (v.copy() if isinstance(v, np.ndarray) else v)
                                                 for k, v in self.results.items()})
        return out

    def __repr__(self) -> str:
        what = "ok" if self.ok else f"failed x{self.attempts}: {self.error}"
        return f"CacheEntry({self.key[:12]}, {what})"


class LabelCache:
    """Directory of cached oracle labels and failures (one atomic JSON file each).

    Parameters
    ----------
    path : path-like
        Cache directory (created if missing).
    max_attempts : int
        A structure whose oracle call failed this many times is not retried.

    Examples
    --------
    >>> cache = LabelCache("labels")                 # doctest: +SKIP
    >>> Oracle("chgnet", cache=cache, n_workers=2)   # doctest: +SKIP
    """

    def __init__(self, path: PathLike, max_attempts: int = 2):
        if int(max_attempts) < 1:
            raise InputError(f"max_attempts must be >= 1, got {max_attempts}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: label cache path exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_attempts = int(max_attempts)

    def _file(self, key: str) -> Path:
        return self.path / key[:2] / f"{key}.json"

    def files(self) -> list[Path]:
        """Entry files (temporary files of interrupted writes excluded)."""
        return sorted(p for p in self.path.glob("??/*.json") if not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.files())

    def __repr__(self) -> str:
        return f"LabelCache({str(self.path)!r}, entries={len(self)}, max_attempts={self.max_attempts})"

    def get(self, atoms: Atoms, oracle_id: str) -> CacheEntry | None:
        """The entry of ``atoms`` under ``oracle_id``, or None (also for an unreadable file)."""
        return self.get_key(label_key(atoms, oracle_id))

    def get_key(self, key: str) -> CacheEntry | None:
        f = self._file(key)
        try:
            d = json.loads(f.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):   # not written by LabelCache (writes are atomic): recompute
            log.warning("label cache entry %s is unreadable; it is recomputed and rewritten", f)
            return None
        if not isinstance(d, dict):
            log.warning("label cache entry %s is not a cache entry; it is recomputed", f)
            return None
        if d.get("format") != _FORMAT or d.get("key") != key:
            return None
        res: dict[str, Any] = {}
        for k, v in (d.get("results") or {}).items():
            res[k] = float(v) if k in ("energy", "free_energy") else np.asarray(v, dtype=float)
        sr = d.get("stress_requested")
        return CacheEntry(key=key, oracle=d["oracle"], status=d["status"], results=res,
                          error=d.get("error"), attempts=int(d.get("attempts", 0)),
                          time_s=float(d.get("time_s", 0.0)),
                          stress_requested=None if sr is None else bool(sr))

    def should_retry(self, entry: CacheEntry | None) -> bool:
        """True when there is no entry or a failure with fewer than ``max_attempts`` attempts."""
        return entry is None or (not entry.ok and entry.attempts < self.max_attempts)

    def _write(self, entry: CacheEntry, atoms: Atoms) -> CacheEntry:
        d = {"format": _FORMAT, "key": entry.key, "oracle": entry.oracle, "status": entry.status,
             "error": entry.error, "attempts": entry.attempts, "time_s": entry.time_s,
             "formula": atoms.get_chemical_formula(), "n_atoms": len(atoms),
             "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "stress_requested": entry.stress_requested,
             "results": {k: (v.tolist() if isinstance(v, np.ndarray) else float(v))
                         for k, v in entry.results.items()}}
        atomic_write_text(self._file(entry.key), json.dumps(d) + "\n")
        return entry

    def put(self, atoms: Atoms, oracle_id: str, results: dict[str, Any],
            time_s: float = 0.0, stress_requested: bool | None = None) -> CacheEntry:
        """Store labels (``energy`` eV, ``forces`` eV/Å, optional ``stress`` eV/Å³);
        ``stress_requested`` records whether the oracle was asked for the stress."""
        if "energy" not in results or "forces" not in results:
            raise InputError("a cached label needs 'energy' and 'forces'")
        res = {k: (float(v) if k == "energy" else np.asarray(v, dtype=float))
               for k, v in results.items() if k in ("energy", "forces", "stress")}
        key = label_key(atoms, oracle_id)
        old = self.get_key(key)
        return self._write(CacheEntry(key, str(oracle_id), "ok", res, None,
                                      old.attempts if old is not None else 0, float(time_s),
                                      stress_requested), atoms)

    def put_failure(self, atoms: Atoms, oracle_id: str, error: str, time_s: float = 0.0) -> CacheEntry:
        """Record a failed attempt (attempts incremented; an ok entry is left as it is)."""
        key = label_key(atoms, oracle_id)
        old = self.get_key(key)
        if old is not None and old.ok:
            return old
        attempts = (old.attempts if old is not None else 0) + 1
        return self._write(CacheEntry(key, str(oracle_id), "failed", {}, str(error), attempts,
                                      float(time_s)), atoms)

    def stats(self) -> dict[str, int]:
        """Counts of ``ok`` and ``failed`` entries."""
        out = {"ok": 0, "failed": 0}
        for f in self.files():
            e = self.get_key(f.stem)
            if e is not None:
                out["ok" if e.ok else "failed"] += 1
        return out
