"""The ``mdmlkit`` console entry point.

Examples::

    mdmlkit run-notebooks                 # all notebooks, demo profile -> outputs/
    mdmlkit run-notebooks --quick --only 01
    mdmlkit md heat --size 55 --t-start 300 --t-end 1500 --rate 5 --out runs/cu55.extxyz
    mdmlkit lammps-plugin                 # build pair_style mdmlkit, print the .so path
    mdmlkit train --train train.extxyz --val val.extxyz --input-nn input.nn --out model/
    torchrun --nproc_per_node 2 -m mdmlkit.potential.training.ddp ...      # data-parallel training
"""
from __future__ import annotations

import argparse
import sys


def _cmd_run_notebooks(args: argparse.Namespace) -> int:
    from mdmlkit.nbtools.runner import run_notebooks

    runs = run_notebooks(args.output, profile="quick" if args.quick else args.profile,
                         only=args.only or None, html=not args.no_html,
                         cell_timeout=args.cell_timeout or None, progress=not args.quiet,
                         heartbeat_s=args.heartbeat)
    failed = [r for r in runs if not r.ok]
    for r in failed:
        print(f"[mdmlkit] FAILED {r.notebook}: {r.error}", file=sys.stderr)
    if not runs:
        print("[mdmlkit] no notebooks matched", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _cmd_md_heat(args: argparse.Namespace) -> int:
    from mdmlkit.md.heating import heat
    from mdmlkit.systems.cu_clusters import cu_calculator, make_cluster

    calc = cu_calculator(args.engine)
    atoms = make_cluster(args.size, kind=args.kind, calculator=calc, seed=args.seed)
    result = heat(atoms, calc, t_start=args.t_start, t_end=args.t_end,
                  rate_K_per_ps=args.rate, timestep_fs=args.timestep,
                  sample_every=args.sample_every, seed=args.seed, trajectory=args.out)
    print(result)
    return 0


def _cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    from mdmlkit.potential.training.ddp import main_train

    return int(main_train(rest) or 0)


def _cmd_fix_nglview(args: argparse.Namespace) -> int:
    from mdmlkit.nbtools import nglview_fix as nglview_labext

    return nglview_labext.main(([] if args.check else ["--fix"]) + ["--prefix", args.prefix])


def _cmd_lammps_plugin(args: argparse.Namespace) -> int:
    from mdmlkit.md.lammps_hdnnp import build_plugin

    print(build_plugin(args.build_dir, force=args.force, verbose=args.verbose, native=args.native))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdmlkit", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    rn = sub.add_parser("run-notebooks", help="execute all notebooks headless (papermill) + HTML")
    rn.add_argument("--output", default="outputs", help="output folder (default: outputs)")
    rn.add_argument("--quick", action="store_true", help="notebook defaults (small, as in the tests)")
    rn.add_argument("--profile", default="demo", help="parameter profile from notebooks/profiles.json")
    rn.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 01 02")
    rn.add_argument("--no-html", action="store_true", help="skip the HTML export")
    rn.add_argument("--cell-timeout", type=int, default=900,
                    help="seconds per cell before the notebook is run again once (0: no limit; "
                         "use 0 for the long 'full' profile)")
    rn.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    rn.add_argument("--heartbeat", type=float, default=30.0,
                    help="seconds between 'still running' lines of a long cell (0: none; default 30)")
    rn.set_defaults(func=_cmd_run_notebooks)

    fx = sub.add_parser("fix-nglview", help="make nglview's JupyterLab extension register the "
                        "version its Python side requests (nglview 4.0.1 bug; 3D views stay blank)")
    fx.add_argument("--check", action="store_true", help="only report (exit 1 on a mismatch)")
    fx.add_argument("--prefix", default=sys.prefix, help="environment prefix (default: this one)")
    fx.set_defaults(func=_cmd_fix_nglview)

    md = sub.add_parser("md", help="molecular dynamics")
    mdsub = md.add_subparsers(dest="md_command", required=True)
    h = mdsub.add_parser("heat", help="heat a Cu_n cluster with a linear temperature ramp")
    h.add_argument("--size", type=int, required=True, help="number of Cu atoms")
    h.add_argument("--kind", default="auto", help="auto|icosahedron|decahedron|octahedron")
    h.add_argument("--engine", default="asap3", help="asap3 (default) or ase")
    h.add_argument("--t-start", type=float, default=300.0, help="K")
    h.add_argument("--t-end", type=float, default=1500.0, help="K")
    h.add_argument("--rate", type=float, default=5.0, help="heating rate, K/ps")
    h.add_argument("--timestep", type=float, default=2.0, help="fs")
    h.add_argument("--sample-every", type=int, default=100, help="steps between frames")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--out", required=True, help="extxyz trajectory path")
    h.set_defaults(func=_cmd_md_heat)

    lp = sub.add_parser("lammps-plugin", help="build pair_style mdmlkit (LAMMPS plugin) if stale; "
                        "prints the plugin path for 'plugin load'")
    lp.add_argument("--build-dir", default=None, help="build folder (default ~/.cache/mdmlkit/lammps-plugin/generic or /native)")
    lp.add_argument("--force", action="store_true", help="rebuild even if up to date")
    lp.add_argument("--verbose", action="store_true", help="show CMake's output")
    lp.add_argument("--native", action="store_true", help="compile for this CPU (-march=native)")
    lp.set_defaults(func=_cmd_lammps_plugin)

    tr = sub.add_parser("train", add_help=False,
                        help="train an HDNNP (also under torchrun); `mdmlkit train --help`")
    tr.set_defaults(func=_cmd_train, passthrough=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if getattr(args, "passthrough", False):
        return args.func(args, rest)
    if rest:
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
