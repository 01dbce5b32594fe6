"""How local is the teacher?  Oxygen-vacancy energies of La2Zr2O7 vs cell size, CHGNet vs the HDNNP.

A model with cutoff rc gives every atom an energy that depends on its neighbours
within rc only, so the (unrelaxed) vacancy energy ``E(cell - O) - E(cell)`` of a
periodic cell can only change with the cell size while vacancy images are close
enough for some atom to see two of them.  This script removes one oxygen of
each site (48f, 8b) from the primitive (22 atoms), conventional (88) and 2x2x2
(704) cells at the data set's lattice parameter and compares the teacher
(CHGNet, a message-passing network whose receptive field spans several 5 Å
graph hops) with HDNNPs.  A size dependence of the teacher that a model does not
show is energy its descriptors cannot learn: in the data set it appears as a bias
between the vacancy cells of the two sizes (see docs/la2zr2o7-model.md).

Usage::

    python benchmarks/la2zr2o7_locality.py            # ~2 min on 1 core; needs mdmlkit[teacher]
    python benchmarks/la2zr2o7_locality.py --model shipped=models/la2zr2o7/model.pt \
        --model other=/path/to/model.pt               # compare several models

Writes ``benchmarks/results/la2zr2o7_locality.json``.  Energies in eV.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def oxygen_of_site(atoms, site: str) -> int:
    """Index of the first O on ``site``: 48f O has two Zr within 2.5 Å, 8b O has none."""
    from ase.neighborlist import neighbor_list

    i, j = neighbor_list("ij", atoms, 2.5)
    sym = np.array(atoms.get_chemical_symbols())
    for k in np.flatnonzero(sym == "O"):
        n_zr = int(np.sum(sym[j[i == k]] == "Zr"))
        if (site == "48f" and n_zr == 2) or (site == "8b" and n_zr == 0):
            return int(k)
    raise ValueError(f"no O on site {site}")


def vacancy_energy(cell, site: str, calc) -> float:
    bulk = cell.copy()
    bulk.calc = calc
    defect = cell.copy()
    del defect[oxygen_of_site(cell, site)]
    defect.calc = calc
    return float(defect.get_potential_energy() - bulk.get_potential_energy())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=None, metavar="NAME=PATH",
                   help="HDNNP to compare (repeatable; default: the two shipped models)")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "la2zr2o7_locality.json"))
    args = p.parse_args(argv)
    import torch

    from mdmlkit.potential import HDNNPCalculator
    from mdmlkit.systems.la2zr2o7 import load_la2zr2o7
    from mdmlkit.systems.pyrochlore import conventional_cell, primitive_cell, supercell
    from mdmlkit.systems.teacher import chgnet_calculator, teacher_info
    from mdmlkit.utils import atomic_write_json, machine_info

    torch.set_num_threads(1)
    a = float(load_la2zr2o7("test")[0].info["a_ref"])
    teacher = chgnet_calculator(device="cpu")
    specs = args.model or [f"{m}=models/{m}/model.pt" for m in ("la2zr2o7", "la2zr2o7-fast")]
    bad = [spec for spec in specs if "=" not in spec]
    if bad:
        p.error(f"--model takes NAME=PATH, got {bad}")
    paths = dict(spec.split("=", 1) for spec in specs)
    models = {name: HDNNPCalculator(path if Path(path).is_absolute() else ROOT / path, device="cpu",
                                    extrapolation="ignore") for name, path in paths.items()}
    cells = {"primitive_22": primitive_cell(a=a), "conventional_88": conventional_cell(a=a),
             "supercell_704": supercell(conventional_cell(a=a), 2)}
    rows = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for site in ("48f", "8b"):
            for name, cell in cells.items():
                e_t = vacancy_energy(cell, site, teacher)
                e_m = {m: vacancy_energy(cell, site, calc) for m, calc in models.items()}
                rows.append({"site": site, "cell": name, "n_atoms": len(cell), "chgnet_eV": e_t,
                             "hdnnp_eV": e_m, "hdnnp_minus_chgnet_eV": {m: e - e_t for m, e in e_m.items()}})
                print(f"O({site}) vacancy, {name:16s} CHGNet {e_t:8.3f} eV  "
                      + "  ".join(f"{m} {e:8.3f} eV ({e - e_t:+.3f})" for m, e in e_m.items()), flush=True)
    result = {"description": __doc__.split("\n\n")[0], "lattice_parameter_A": a,
              "quantity": "E(cell without one O) - E(perfect cell), unrelaxed, eV",
              "teacher": teacher_info(teacher),
              "models": {m: {"path": paths[m], "cutoff_A": calc.model.cutoff,
                             "angular_cutoff_A": calc.model.acsf.short_cutoff}
                         for m, calc in models.items()},
              "rows": rows,
              "wall_s": time.perf_counter() - t0, "machine": machine_info()}
    atomic_write_json(args.output, result)
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
