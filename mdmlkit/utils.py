"""Small shared helpers: atomic file writes, devices, seeds, validation."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdmlkit.errors import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    EmptyTrajectoryError,
    InconsistentFramesError,
    MissingFileError,
    NonFiniteError,
    UnknownElementError,
)

PathLike = str | os.PathLike

#: Attribute a calculator may carry to declare the elements it models (a tuple of symbols);
#: set by :func:`mdmlkit.systems.cu_clusters.cu_calculator`, read by the MD drivers.
ELEMENTS_ATTR = "mdmlkit_elements"


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The rename is atomic on POSIX file systems, so readers see either the old
    file or the complete new one, never a half-written file.  On an exception the
    temporary file is removed and ``path`` is left untouched.

    >>> with atomic_path("out.extxyz") as tmp:   # doctest: +SKIP
    ...     ase.io.write(tmp, frames)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sfx = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part" + sfx, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results should be readable
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to ``path`` atomically (checkpoints are never half-written)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def resolve_device(device: str | None | Any = None):
    """Return a ``torch.device``: ``None``/"auto" picks CUDA when present, else CPU."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_frames(frames: Sequence[Any], source: str = "<frames>", min_frames: int = 1,
                 same_size: bool = False) -> None:
    """Validate a list of ``ase.Atoms``: enough frames, finite positions, equal sizes.

    Raises :class:`EmptyTrajectoryError`, :class:`NonFiniteError` or
    :class:`InconsistentFramesError` naming ``source`` and the frame index.
    """
    n = len(frames)
    if n < min_frames:
        raise EmptyTrajectoryError(
            f"{source}: {n} frame(s), at least {min_frames} needed")
    n0 = len(frames[0])
    for k, atoms in enumerate(frames):
        pos = atoms.get_positions()
        if not np.all(np.isfinite(pos)):
            bad = np.where(~np.isfinite(pos).all(axis=1))[0]
            raise NonFiniteError(f"{source}: frame {k} has non-finite positions (atoms {bad[:10].tolist()})")
        if same_size and len(atoms) != n0:
            raise InconsistentFramesError(
                f"{source}: frame {k} has {len(atoms)} atoms but frame 0 has {n0}; "
                "one map needs frames of equal size")


def check_elements(frames: Sequence[Any], elements: Sequence[str] | Any | None,
                   source: str = "frames", owner: str = "the model") -> None:
    """Raise :class:`~mdmlkit.errors.UnknownElementError` for the first atom (in structure
    order) whose element is not in ``elements``, naming ``source``, structure and atom.

    ``elements`` is a sequence of symbols, or an object (e.g. a calculator) carrying
    :data:`ELEMENTS_ATTR`; ``None`` or an object without that attribute means "no
    restriction".  Unknown elements are never skipped silently: ``owner`` (e.g. "the
    committee") says what knows only ``elements``.
    """
    if elements is not None and not isinstance(elements, (list, tuple, set, frozenset)):
        elements = getattr(elements, ELEMENTS_ATTR, None)
    if elements is None:
        return
    known = set(elements)
    for k, atoms in enumerate(frames):
        symbols = atoms.get_chemical_symbols()
        if not known.issuperset(symbols):
            i = next(i for i, s in enumerate(symbols) if s not in known)
            raise UnknownElementError(f"{source}: structure {k}, atom {i} is {symbols[i]!r}; "
                                      f"{owner} knows only {list(elements)}")



def jsonable(obj: Any) -> Any:
    """``obj`` after a JSON round trip (tuples become lists, unknown objects ``str``)."""
    return json.loads(json.dumps(obj, default=lambda o: _json_default_str(o)))


def _json_default_str(o: Any) -> Any:
    try:
        return _json_default(o)
    except TypeError:
        return str(o)


def settings_diff(saved: dict[str, Any], now: dict[str, Any],
                  ignore: Sequence[str] = ()) -> dict[str, tuple[Any, Any]]:
    """Settings that differ: ``{name: (saved, now)}`` (compared after a JSON round trip).

    Names only in ``now`` are compared against ``None`` unless missing from ``saved``
    altogether (older files that did not record them are not refused for that);
    names in ``ignore`` are skipped.
    """
    a, b = jsonable(dict(saved)), jsonable(dict(now))
    return {k: (a.get(k), v) for k, v in b.items()
            if k not in ignore and k in a and a[k] != v}


def format_settings_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    """``"t_end: 1300.0 (saved) vs 1400.0 (now); friction: ..."`` for an error message."""
    return "; ".join(f"{k}: {a!r} (saved) vs {b!r} (now)" for k, (a, b) in diff.items())


def read_json_file(path: PathLike, what: str = "state file",
                   remedy: str = "delete it to start afresh") -> Any:
    """Parsed JSON of ``path``; :class:`~mdmlkit.errors.MissingFileError` when it is missing,
    :class:`~mdmlkit.errors.CorruptCheckpointError` (naming the file and ``remedy``) when it is
    truncated or not JSON."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise MissingFileError(f"{path}: {what} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(f"unreadable {what} ({type(exc).__name__}: {exc}); {remedy}",
                                     path=str(path)) from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CorruptCheckpointError(f"{what} is truncated or not JSON ({exc}); {remedy}",
                                     path=str(path)) from exc


def load_torch_file(path: PathLike, what: str = "checkpoint",
                    remedy: str = "delete it to start afresh", map_location: Any = "cpu",
                    weights_only: bool = True) -> Any:
    """``torch.load`` that names the file: :class:`~mdmlkit.errors.MissingFileError` when it is
    missing, :class:`~mdmlkit.errors.CorruptCheckpointError` (with ``remedy``) when it is
    truncated or unreadable (``PytorchStreamReader`` errors, ``EOFError``, unpickling errors,
    ``OSError``)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError, KeyError,
            AttributeError, ImportError, IndexError, TypeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CorruptCheckpointError(f"{what} is truncated or unreadable "
                                     f"({type(exc).__name__}: {msg}); {remedy}",
                                     path=str(path)) from exc


def check_run_settings(work: PathLike, settings: dict[str, Any]) -> None:
    """Refuse to resume a run folder made with other settings.

    On first use the settings are written to ``work/settings.json`` (atomically); later
    calls compare them (after a JSON round trip) and raise
    :class:`~mdmlkit.errors.CheckpointMismatchError` naming the folder and the differing
    settings; an unreadable ``settings.json`` raises :class:`~mdmlkit.errors.CorruptCheckpointError`.
    """
    work = Path(work)
    f = work / "settings.json"
    settings = jsonable(settings)
    if f.is_file():
        old = read_json_file(f, "run settings", "restore it or use another work folder")
        if old != settings:
            diff = {k: (old.get(k), settings.get(k)) for k in sorted(set(old) | set(settings))
                    if old.get(k) != settings.get(k)}
            raise CheckpointMismatchError(f"{work} holds runs made with other settings "
                                          f"({format_settings_diff(diff)}); use another work folder")
    else:
        atomic_write_json(f, settings)

def machine_info(packages: Sequence[str] = ("numpy", "torch", "ase"), **extra: Any) -> dict[str, Any]:
    """Where a measurement was taken, for benchmark records.

    CPU model and count, memory (GiB), load averages (1/5/15 min), platform, Python,
    torch intra-op threads, the CUDA device (if any), ``<package>`` versions for each of
    ``packages`` that imports (None otherwise) and any ``extra`` items.
    """
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(),
                            "platform": platform.platform(), "python": platform.python_version()}
    try:
        info["mem_total_GiB"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # pragma: no cover
        info["load_average"] = None
    for name in packages:
        try:
            mod = __import__(name)
            version = getattr(mod, "__version__", None)
            if version is None:
                from importlib.metadata import version as dist_version

                version = dist_version(name)
            info[name] = str(version)
        except Exception:  # noqa: BLE001 - optional packages may be missing or broken
            info[name] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    info.update(extra)
    return info
