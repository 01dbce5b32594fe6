"""Benchmark: mdmlkit's HDNNP against n2p2, side by side, on the same model files and structures.

n2p2 (CompPhysVienna/n2p2, GPL-3.0) is a *peer to measure against*: its source lies
outside this repository (``../shared/peers/n2p2``); this script compiles n2p2's own
``libnnp`` (its default flags, ``-O3 -march=native -std=c++11``) plus a small C++
timing driver into ``benchmarks/.cache/n2p2/`` once, runs the driver as a separate
process and reads its output.  Nothing of n2p2 is copied into or linked with mdmlkit.
Without ``../shared/peers/n2p2``, g++ or the Eigen headers the script says why and
exits 0 (a skip).

What is timed, per call, energy + forces, one thread:

* **n2p2**: n2p2's ``Mode`` API (``nnp::Prediction``: ``setupGeneric``,
  ``setupSymmetryFunctionScaling``, ``setupNeuralNetworkWeights``, structure read
  from ``input.data``), neighbour list built once, one untimed warm-up call (it allocates
  the derivative memory; ``n2p2_first_call_s``), then per call
  ``calculateSymmetryFunctionGroups(s, true)`` (what ``evaluateNNP`` and n2p2's
  LAMMPS interface use) + ``calculateAtomicNeuralNetworks`` + ``calculateEnergy`` +
  ``calculateForces``.  n2p2's neighbour list (an O(N²) loop meant for its stand-alone
  tools; in LAMMPS, LAMMPS builds it) is *not* in the n2p2 time; it is reported
  separately as ``n2p2_neighbour_list_s``.
* **mdmlkit**: ``HDNNPCalculator(model_dir, compile=True)`` on the n2p2 directory
  itself (read by :func:`mdmlkit.potential.load_n2p2_model`), energy and forces of the
  same structure, ``torch.set_num_threads(1)``, numba one thread.  With the default
  0.5 Å skin the Verlet list of the first call is kept (the same positions), so, like
  the n2p2 time, this excludes the neighbour list (as in MD between list rebuilds);
  ``*_fresh_list`` is a second calculator with ``skin=0`` that rebuilds it in every
  call.  Type-3 functions run in the fused triplet kernels; a model that
  ``compile=True`` refuses runs the eager torch path, and the result says which path ran.

The driver process stays up between rounds (it reads the number of calls of each round
from stdin).  Rounds are interleaved (n2p2, mdmlkit, n2p2, mdmlkit, ...), so load changes on a
shared machine hit both alike; the median per-call time of each is reported as
µs/atom, and the ratio n2p2 / mdmlkit (> 1: mdmlkit faster).  Before any timing
the energies and forces of both must agree (relative 1e-8 of the energy, forces to
1e-7 of the largest force component: the fused kernels tabulate the radial factors,
error < 1e-8); a model/structure element mismatch is refused
with :class:`~mdmlkit.errors.ModelMismatchError`.

Models: ``shipped`` (``models/la2zr2o7``), ``shipped_fast``
(``models/la2zr2o7-fast``) and two classic n2p2 sets written to the cache folder
(:func:`classic_type3_model`; cosine cutoff, rc 6 Å, 24 radial type-2 functions per
element, 25-25 tanh networks, random weights, scaling fitted on four rattled/strained
88-atom cells): ``classic_type3`` with 24 narrow angular type-3 functions per element
(4 per neighbour pair, three different etas) and ``dense_type3`` with 96 (per pair
n2p2's usual grid: two etas, lambda = +-1, zeta = 1, 2, 4, 16).  Structures: the 88-atom conventional
pyrochlore cell (:func:`mdmlkit.systems.pyrochlore.conventional_cell`), its 2×2×2
(704) and 4×4×4 (5632) supercells, rattled by 0.02 Å with a fixed seed.

Usage::

    python benchmarks/bench_vs_n2p2.py                       # full run -> results/vs_n2p2.json
    python benchmarks/bench_vs_n2p2.py --sizes 88 --rounds 2 --models shipped --out /tmp/x.json
    python benchmarks/bench_vs_n2p2.py --build-only          # just build n2p2 + driver
"""
from __future__ import annotations

import argparse
import os

# one thread everywhere, before numpy/torch/numba import
for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

__all__ = ["N2P2Peer", "PeerUnavailable", "build_n2p2", "check_agreement", "classic_type3_model",
           "main", "pyrochlore_cells"]

PEER_DIR = ROOT.parent / "shared" / "peers" / "n2p2"
CACHE = ROOT / "benchmarks" / ".cache" / "n2p2"
RESULTS = ROOT / "benchmarks" / "results" / "vs_n2p2.json"
EIGEN_DIRS = (Path("/usr/include/eigen3"), Path("/usr/local/include/eigen3"))
N2P2_CFLAGS = "-O3 -march=native -std=c++11 -DEIGEN_DONT_PARALLELIZE"   # n2p2's makefile.gnu defaults
SIZES = {88: 1, 704: 2, 5632: 4}
MODELS = ("shipped", "shipped_fast", "classic_type3", "dense_type3")
SHIPPED_DIRS = {"shipped": ROOT / "models" / "la2zr2o7", "shipped_fast": ROOT / "models" / "la2zr2o7-fast"}
RTOL = 1e-8              # energies, relative
FORCE_RTOL = 1e-7        # forces, of the largest component (the fused kernels tabulate radial factors)
GOAL_SHIPPED = 10.0      # n2p2 / mdmlkit per atom, shipped model, every size
GOAL_TYPE3 = 1.0         # n2p2 / mdmlkit per atom, type-3 set

DRIVER_CPP = r"""// Timing driver for the mdmlkit benchmark (benchmarks/bench_vs_n2p2.py); links n2p2's libnnp.
// usage: n2p2_timer MODEL_DIR INPUT_DATA FORCES_OUT
// Sets up the model, reads the structure, builds the neighbour list, makes one untimed call (it
// allocates the derivative memory), writes the forces to FORCES_OUT and prints "ready"; then reads
// integers K from stdin: times K energy + forces calls and prints "times_s t1 .. tK" and "energy E";
// K <= 0 or end of input: rewrites FORCES_OUT and exits.
#include "Prediction.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>
using namespace nnp;
typedef std::chrono::steady_clock Clock;
static double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}
static void call(Prediction& p, Structure& s) {
    p.calculateSymmetryFunctionGroups(s, true);
    p.calculateAtomicNeuralNetworks(s, true);
    p.calculateEnergy(s);
    p.calculateForces(s);
}
static double physicalEnergy(Prediction& p, Structure s) {   // a copy: s stays in internal units
    if (p.useNormalization()) s.toPhysicalUnits(p.getMeanEnergy(), p.getConvEnergy(), p.getConvLength(), p.getConvCharge());
    p.addEnergyOffset(s, false);
    return s.energy;
}
static int writeForces(Prediction& p, Structure s, char const* path) {
    if (p.useNormalization()) s.toPhysicalUnits(p.getMeanEnergy(), p.getConvEnergy(), p.getConvLength(), p.getConvCharge());
    FILE* f = std::fopen(path, "w");
    if (!f) { std::fprintf(stderr, "cannot write %s\n", path); return 3; }
    for (auto const& a : s.atoms) std::fprintf(f, "%.17g %.17g %.17g\n", a.f[0], a.f[1], a.f[2]);
    std::fclose(f);
    return 0;
}
int main(int argc, char** argv) {
    if (argc != 4) { std::fprintf(stderr, "usage: %s MODEL_DIR INPUT_DATA FORCES_OUT\n", argv[0]); return 2; }
    std::string dir = argv[1];
    Prediction p;
    p.log.writeToStdout = false;
    p.fileNameSettings = dir + "/input.nn";
    p.fileNameScaling = dir + "/scaling.data";
    p.formatWeightsFilesShort = dir + "/weights.%03zu.data";
    p.formatWeightsFilesCharge = dir + "/weightse.%03zu.data";
    Clock::time_point t0 = Clock::now();
    p.setup();
    double setup_s = since(t0);
    p.readStructureFromFile(argv[2]);
    Structure& s = p.structure;
    t0 = Clock::now();
    s.calculateNeighborList(p.getMaxCutoffRadius());
    double nl_s = since(t0);
    t0 = Clock::now();
    call(p, s);
    double first_s = since(t0);
    std::printf("natoms %zu\nsetup_s %.9g\nneighbour_list_s %.9g\nfirst_call_s %.9g\nenergy %.17g\n",
                s.numAtoms, setup_s, nl_s, first_s, physicalEnergy(p, s));
    if (writeForces(p, s, argv[3])) return 3;
    std::printf("ready\n");
    std::fflush(stdout);
    int k = 0;
    while (std::cin >> k && k > 0) {
        std::vector<double> times;
        for (int r = 0; r < k; ++r) {
            t0 = Clock::now();
            call(p, s);
            times.push_back(since(t0));
        }
        std::printf("times_s");
        for (double t : times) std::printf(" %.9g", t);
        std::printf("\nenergy %.17g\n", physicalEnergy(p, s));
        std::fflush(stdout);
    }
    return writeForces(p, s, argv[3]);
}
"""

MAKEFILE = """# generated by benchmarks/bench_vs_n2p2.py: n2p2's libnnp (outside the repo) + timing driver
SRC := {src}
CXX := g++
CXXFLAGS := {cflags}
INC := -I$(SRC) -I{eigen}
SRCS := $(wildcard $(SRC)/*.cpp)
OBJS := $(patsubst $(SRC)/%.cpp,obj/%.o,$(SRCS))
n2p2_timer: driver.cpp libnnp.a
\t$(CXX) $(CXXFLAGS) $(INC) -o $@ driver.cpp libnnp.a
libnnp.a: $(OBJS)
\tar rcs $@ $^
obj/%.o: $(SRC)/%.cpp | obj
\t$(CXX) $(CXXFLAGS) $(INC) -c -o $@ $<
obj:
\tmkdir -p obj
"""


class PeerUnavailable(Exception):
    """n2p2 cannot be built here (no peer source, compiler or Eigen): the benchmark is skipped."""


def _eigen_dir() -> Path | None:
    return next((d for d in EIGEN_DIRS if (d / "Eigen" / "Core").is_file()), None)


def build_n2p2(peer: Path = PEER_DIR, cache: Path = CACHE, jobs: int = 1, quiet: bool = False) -> Path:
    """Compile n2p2's libnnp and the timing driver into ``cache`` (once; make skips what is built).

    Returns the driver executable.  Raises :class:`PeerUnavailable` when the peer source,
    g++, make or the Eigen headers are missing.
    """
    src = peer / "src" / "libnnp"
    if not (src / "Prediction.cpp").is_file():
        raise PeerUnavailable(f"no n2p2 source at {peer} (../shared/peers/n2p2 is only present in the "
                              "development checkout)")
    for tool in ("g++", "make", "ar"):
        if shutil.which(tool) is None:
            raise PeerUnavailable(f"{tool} not found")
    eigen = _eigen_dir()
    if eigen is None:
        raise PeerUnavailable("Eigen headers not found (apt-get install libeigen3-dev)")
    cache.mkdir(parents=True, exist_ok=True)
    _write_if_changed(cache / "driver.cpp", DRIVER_CPP)
    _write_if_changed(cache / "Makefile", MAKEFILE.format(src=src.resolve(), cflags=N2P2_CFLAGS, eigen=eigen))
    t0 = time.perf_counter()
    cmd = ["nice", "-n", "10", "make", f"-j{jobs}", "n2p2_timer"]
    proc = subprocess.run(cmd, cwd=cache, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building n2p2 in {cache} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if "g++" in proc.stdout and "libnnp.a" in proc.stdout:   # libnnp (re)compiled: record how long
        (cache / "build_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    if not quiet and "g++" in proc.stdout:
        print(f"built n2p2 libnnp + driver in {time.perf_counter() - t0:.0f} s ({cache})")
    return cache / "n2p2_timer"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def pyrochlore_cells(sizes=tuple(SIZES), rattle: float = 0.02, seed: int = 18) -> dict:
    """La2Zr2O7 pyrochlore cells {n_atoms: Atoms}: 88 conventional, 704 = 2×2×2, 5632 = 4×4×4, rattled (Å)."""
    from mdmlkit.systems.pyrochlore import conventional_cell, supercell

    cells = {}
    for n in sizes:
        if n not in SIZES:
            raise SystemExit(f"--sizes: {n} atoms not in {sorted(SIZES)}")
        atoms = supercell(conventional_cell(), SIZES[n])
        atoms.rattle(rattle, seed=seed + n)
        cells[n] = atoms
    return cells


#: Angular (eta, lambda, zeta) per neighbour pair of the two type-3 sets (rs 0, rc 6 Å).
TYPE3_ANGULAR = {
    # four functions with three different etas: little to share between functions
    "classic_type3": [(0.0001, 1, 1), (0.0001, -1, 1), (0.003, 1, 4), (0.008, -1, 2)],
    # n2p2's usual grid: per eta both lambdas and zeta 1, 2, 4, 16
    "dense_type3": [(eta, lam, zeta) for eta in (0.001, 0.01) for lam in (1, -1) for zeta in (1, 2, 4, 16)],
}


def classic_type3_model(directory: Path, angular=None) -> Path:
    """Write a classic n2p2 model (radial type 2 + narrow angular type 3) to ``directory``.

    Per element 24 type-2 functions (8 (eta, rs) per neighbour element) and, per neighbour
    pair, one type-3 function for every (eta, lambda, zeta) of ``angular`` (default
    ``TYPE3_ANGULAR["classic_type3"]``: 4 per pair, 24 per element; ``"dense_type3"``: 16
    per pair, 96 per element), cosine cutoff, rc 6 Å; tanh networks with 25-25 hidden
    units and random weights (seed 0), scaling fitted on four rattled and strained 88-atom
    cells.
    """
    import torch

    from mdmlkit.descriptors import SymmetryFunctionSet
    from mdmlkit.potential import HDNNP
    from mdmlkit.potential.n2p2_model import save_n2p2_model
    from mdmlkit.systems.pyrochlore import conventional_cell

    elements = ("La", "Zr", "O")
    rc = 6.0
    lines = ["elements La Zr O", "cutoff_type 1 0.0"]
    radial = [(0.001, 0.0), (0.01, 0.0), (0.03, 0.0), (0.06, 0.0), (0.15, 2.0), (0.3, 2.5), (0.6, 3.0),
              (1.5, 3.5)]
    angular = TYPE3_ANGULAR["classic_type3"] if angular is None else angular
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    for c in elements:
        lines += [f"symfunction_short {c} 2 {n} {eta} {rs} {rc}" for n in elements for eta, rs in radial]
        lines += [f"symfunction_short {c} 3 {a} {b} {eta} {lam} {zeta} {rc}"
                  for a, b in pairs for eta, lam, zeta in angular]
    sfs = SymmetryFunctionSet.from_text("\n".join(lines))
    model = HDNNP(sfs, hidden=(25, 25), activation="tanh", dtype=torch.float64, seed=0)
    train = []
    for k in range(4):
        atoms = conventional_cell()
        atoms.rattle(0.1, seed=k)
        atoms.set_cell(atoms.cell[:] * (1 + 0.02 * (k - 1.5)), scale_atoms=True)
        train.append(atoms)
    model.fit_scaling(train)
    model.fit_reference_energies(train, np.random.default_rng(0).normal(-8.0, 0.01, len(train)) * 88)
    return save_n2p2_model(model, directory, header="classic n2p2 set (types 2 + 3) for bench_vs_n2p2.py")


def _check_elements(model_dir: Path, atoms, name: str) -> list[str]:
    from mdmlkit.errors import ModelMismatchError
    from mdmlkit.io.n2p2 import read_input_nn

    elements = list(read_input_nn(model_dir / "input.nn")["elements"])
    missing = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if missing:
        raise ModelMismatchError(f"model {name} ({model_dir / 'input.nn'}: elements {elements}) cannot evaluate "
                                 f"the {len(atoms)}-atom structure: no network for {missing}")
    return elements


class N2P2Peer:
    """The compiled n2p2 timing driver on one (model directory, input.data), kept running between rounds.

    ``energy``/``forces``/``first_call_s``/``neighbour_list_s``/``setup_s`` are set after start-up
    (one untimed warm-up call); :meth:`time` runs ``reps`` timed calls, :meth:`close` ends
    the process and re-reads the forces of the last call.
    """

    def __init__(self, executable: Path, model_dir: Path, input_data: Path):
        self.forces_out = input_data.with_suffix(".n2p2_forces")
        self.what = f"n2p2 driver on {model_dir} / {input_data}"
        self.proc = subprocess.Popen([str(executable), str(model_dir), str(input_data), str(self.forces_out)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env={**os.environ, "OMP_NUM_THREADS": "1"})
        head = self._read_until("ready")
        self.n_atoms = int(head["natoms"])
        self.setup_s, self.neighbour_list_s = head["setup_s"], head["neighbour_list_s"]
        self.first_call_s, self.energy = head["first_call_s"], head["energy"]
        self.forces = np.loadtxt(self.forces_out).reshape(-1, 3)

    def _read_until(self, last: str) -> dict:
        out = {}
        for line in self.proc.stdout:
            key, *vals = line.split()
            if key != "ready":
                out[key] = [float(v) for v in vals] if key == "times_s" else float(vals[0])
            if key == last:
                return out
        err = self.proc.stderr.read()
        self.proc.wait()
        raise SystemExit(f"{self.what} failed (rc {self.proc.returncode}):\n{err[-3000:]}")

    def time(self, reps: int) -> tuple[list[float], float]:
        """``reps`` timed energy + forces calls: (seconds of each, energy after them)."""
        self.proc.stdin.write(f"{reps}\n")
        self.proc.stdin.flush()
        out = self._read_until("energy")
        return out["times_s"], out["energy"]

    def close(self) -> np.ndarray:
        """End the driver; the forces of its last call."""
        self.proc.stdin.write("0\n")
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise SystemExit(f"{self.what} failed (rc {self.proc.returncode}):\n{self.proc.stderr.read()[-3000:]}")
        return np.loadtxt(self.forces_out).reshape(-1, 3)


class MdmlkitSide:
    """``HDNNPCalculator`` on an n2p2 model directory, compiled when the model allows it."""

    def __init__(self, model_dir: Path, atoms, skin: float = 0.5):
        import torch

        from mdmlkit.errors import InputError
        from mdmlkit.potential import HDNNPCalculator

        torch.set_num_threads(1)
        kw = dict(skin=skin, extrapolation="ignore")
        try:
            self.calc = HDNNPCalculator(model_dir, compile=True, n_threads=1, **kw)
            self.path = f"compile=True ({self.calc.compile})"
        except InputError as exc:
            self.calc = HDNNPCalculator(model_dir, compile=False, **kw)
            self.path = f"eager torch (compile=True refused: {exc})"
        self.atoms = atoms.copy()
        t0 = time.perf_counter()
        self.energy, self.forces = self._call()
        self.warmup_s = time.perf_counter() - t0

    def _call(self):
        from ase.calculators.calculator import all_changes

        self.calc.calculate(self.atoms, ["energy", "forces"], all_changes)
        return float(self.calc.results["energy"]), np.array(self.calc.results["forces"])

    def time(self, reps: int) -> list[float]:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            self._call()
            times.append(time.perf_counter() - t0)
        return times


def check_agreement(e_ref: float, f_ref: np.ndarray, e: float, f: np.ndarray, what: str,
                    rtol: float = RTOL, force_rtol: float = FORCE_RTOL) -> dict:
    """Energy (relative) and force (relative to the largest component) differences; SystemExit beyond them."""
    de = abs(e - e_ref) / max(abs(e_ref), 1e-300)
    fscale = max(float(np.abs(f_ref).max()), 1e-12)
    df = float(np.abs(f - f_ref).max()) / fscale
    if f.shape != f_ref.shape or not (de <= rtol and df <= force_rtol):
        raise SystemExit(f"{what}: n2p2 and mdmlkit disagree (energy {e_ref!r} vs {e!r}, rel {de:.2e}; "
                         f"forces max rel {df:.2e}; tolerances {rtol:g}, {force_rtol:g}) -- no timing reported")
    return {"energy_rel_diff": de, "forces_max_rel_diff": df, "energy_eV": e_ref}


def _plan(n: int, quick: bool) -> tuple[int, int]:
    """(rounds, calls per round) for an n-atom cell."""
    if quick:
        return 2, 1
    return {88: (5, 6), 704: (4, 2), 5632: (3, 1)}[n]


def _describe(model_dir: Path) -> dict:
    from mdmlkit.potential.n2p2_model import load_n2p2_model

    model = load_n2p2_model(model_dir)
    types = sorted({f.type for fs in model.sfs.functions.values() for f in fs})
    el = model.elements[0]
    return {"dir": str(model_dir.relative_to(ROOT)) if model_dir.is_relative_to(ROOT) else str(model_dir),
            "elements": model.elements, "functions_per_element": model.n_features,
            "symmetry_function_types": types, "cutoff_A": model.cutoff,
            "network": "-".join(map(str, model.layer_sizes(el))) + " " + "/".join(model.activations(el))}


def _build_seconds() -> float | None:
    try:
        return float((CACHE / "build_seconds.txt").read_text())
    except (OSError, ValueError):
        return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per (model, size)")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 1 call (smoke test)")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--peer", type=Path, default=PEER_DIR)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from mdmlkit.io.n2p2 import write_input_data
    from mdmlkit.utils import atomic_write_json, machine_info

    t_start = time.perf_counter()
    load_start = _load()
    try:
        exe = build_n2p2(args.peer)
    except PeerUnavailable as exc:
        print(f"SKIP bench_vs_n2p2: {exc}")
        return None
    if args.build_only:
        print(exe)
        return None
    work = CACHE / "run"
    work.mkdir(parents=True, exist_ok=True)
    model_dirs = {m: SHIPPED_DIRS[m] for m in args.models if m in SHIPPED_DIRS}
    for name, angular in TYPE3_ANGULAR.items():
        if name in args.models:
            model_dirs[name] = classic_type3_model(CACHE / "models" / name, angular)
    cells = pyrochlore_cells(args.sizes)
    inputs = {}
    for n, atoms in cells.items():
        inputs[n] = work / f"pyrochlore_{n}.data"
        write_input_data(atoms, inputs[n])

    for name, mdir in model_dirs.items():       # every pair refused or accepted before any timing
        for atoms in cells.values():
            _check_elements(mdir, atoms, name)
    rows = []
    for name, mdir in model_dirs.items():
        for n, atoms in cells.items():
            rounds, reps = _plan(n, args.quick)
            rounds = args.rounds or rounds
            side = MdmlkitSide(mdir, atoms)                # default skin: list kept, as n2p2's
            fresh = MdmlkitSide(mdir, atoms, skin=0.0)     # neighbour list rebuilt on every call
            peer = N2P2Peer(exe, mdir, inputs[n])
            agree = check_agreement(peer.energy, peer.forces, side.energy, side.forces, f"{name}, {n} atoms")
            check_agreement(peer.energy, peer.forces, fresh.energy, fresh.forces, f"{name}, {n} atoms, skin 0")
            t_n2p2, t_mdml, t_fresh = [], [], []
            for _ in range(rounds):
                times, energy = peer.time(reps)
                check_agreement(peer.energy, peer.forces, energy, peer.forces, f"{name}, {n} atoms, n2p2 repeat")
                t_n2p2 += times
                t_mdml += side.time(reps)
                t_fresh += fresh.time(reps)
            f_last = peer.close()
            check_agreement(peer.energy, peer.forces, energy, f_last, f"{name}, {n} atoms, n2p2 after timing")
            for calc_side in (side, fresh):
                e2, f2 = calc_side._call()
                check_agreement(peer.energy, peer.forces, e2, f2, f"{name}, {n} atoms (after timing)")
            med_n, med_m, med_f = (statistics.median(t) for t in (t_n2p2, t_mdml, t_fresh))
            row = {"model": name, "n_atoms": n, "mdmlkit_path": side.path, "rounds": rounds,
                   "calls_per_round": reps,
                   "n2p2_us_per_atom": 1e6 * med_n / n, "mdmlkit_us_per_atom": 1e6 * med_m / n,
                   "ratio_n2p2_over_mdmlkit": med_n / med_m,
                   "mdmlkit_fresh_list_us_per_atom": 1e6 * med_f / n,
                   "ratio_n2p2_over_mdmlkit_fresh_list": med_n / med_f,
                   "n2p2_s": t_n2p2, "mdmlkit_s": t_mdml, "mdmlkit_fresh_list_s": t_fresh,
                   "n2p2_best_us_per_atom": 1e6 * min(t_n2p2) / n,
                   "mdmlkit_best_us_per_atom": 1e6 * min(t_mdml) / n,
                   "n2p2_neighbour_list_s": peer.neighbour_list_s, "n2p2_first_call_s": peer.first_call_s,
                   "mdmlkit_warmup_s": side.warmup_s,
                   **agree}
            rows.append(row)
            print(f"{name:14s} {n:5d} atoms  n2p2 {row['n2p2_us_per_atom']:9.1f} µs/atom  mdmlkit "
                  f"{row['mdmlkit_us_per_atom']:8.1f} (fresh list {row['mdmlkit_fresh_list_us_per_atom']:8.1f}) "
                  f"µs/atom  ratio {row['ratio_n2p2_over_mdmlkit']:6.2f} "
                  f"({row['ratio_n2p2_over_mdmlkit_fresh_list']:5.2f})  [{side.path.split(' (')[0]}]", flush=True)
            del side, fresh

    goals = {}
    shipped = [r["ratio_n2p2_over_mdmlkit"] for r in rows if r["model"] == "shipped"]
    if shipped:
        goals["shipped_ge_10x_every_size"] = bool(min(shipped) >= GOAL_SHIPPED)
    for name in TYPE3_ANGULAR:
        t3 = [r["ratio_n2p2_over_mdmlkit"] for r in rows if r["model"] == name]
        if t3:
            key = "type3" if name == "classic_type3" else name
            goals[f"{key}_ge_n2p2_every_size"] = bool(min(t3) >= GOAL_TYPE3)
    result = {
        "benchmark": "bench_vs_n2p2",
        "what": "energy + forces per call, one thread, same n2p2 model files and structures; n2p2 time = "
                "calculateSymmetryFunctionGroups + calculateAtomicNeuralNetworks + calculateEnergy + "
                "calculateForces (its neighbour list built once before, excluded, reported separately); "
                "mdmlkit time = HDNNPCalculator.calculate on the same positions with the default 0.5 Å skin "
                "(Verlet list kept, as in MD between rebuilds) and, *_fresh_list, with skin=0 (neighbour list "
                "rebuilt in every call); medians of interleaved rounds",
        "n2p2": {"source": str(args.peer), "commit": "61daa0dfd065c842eaabc40ab283658510e066a5",
                 "cflags": N2P2_CFLAGS, "compiler": subprocess.run(["g++", "--version"], capture_output=True,
                                                                   text=True).stdout.splitlines()[0],
                 "build_s": _build_seconds(), "build": "nice -n 10 make -j1 (once, cached)"},
        "models": {name: _describe(d) for name, d in model_dirs.items()},
        "structures": {str(n): f"La2Zr2O7 pyrochlore, conventional cell x{SIZES[n]}^3, rattled 0.02 Å"
                       for n in cells},
        "rows": rows, "goals": {"shipped_min_ratio": GOAL_SHIPPED, "type3_min_ratio": GOAL_TYPE3, **goals},
        "machine": machine_info(("numpy", "torch", "ase", "numba"), load_average_start=load_start,
                                load_average_end=_load(), threads=1),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    if not args.quick or args.out != RESULTS:
        atomic_write_json(args.out, result)
        print(f"-> {args.out}")
    _table(rows)
    print(f"goals: {goals}; load {load_start} -> {result['machine']['load_average_end']}; "
          f"{result['wall_s']:.0f} s")
    return result


def _table(rows) -> None:
    print(f"\n{'model':14s} {'atoms':>5s} {'n2p2 µs/atom':>13s} {'mdmlkit µs/atom':>16s} {'n2p2/mdmlkit':>13s} "
          f"{'fresh-list µs/atom':>19s} {'n2p2/fresh':>11s}  path")
    for r in rows:
        print(f"{r['model']:14s} {r['n_atoms']:5d} {r['n2p2_us_per_atom']:13.1f} {r['mdmlkit_us_per_atom']:16.1f} "
              f"{r['ratio_n2p2_over_mdmlkit']:13.2f} {r['mdmlkit_fresh_list_us_per_atom']:19.1f} "
              f"{r['ratio_n2p2_over_mdmlkit_fresh_list']:11.2f}  {r['mdmlkit_path'].split(' (')[0]}")


if __name__ == "__main__":
    main()
