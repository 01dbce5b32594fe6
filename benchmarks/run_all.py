"""Run every benchmark in one go (``make bench``); each writes benchmarks/results/<name>.json.

    python benchmarks/run_all.py            # full settings (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick    # smoke settings where a benchmark has them

Run on an otherwise idle machine: the figures are wall times and ratios measured in the
same run, and every result file records the machine and its load average.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, supports --quick)
BENCHMARKS = [
    ("bench_md.py", True),
    ("bench_descriptors.py", False),
    ("bench_potential.py", False),
    ("bench_training.py", True),
    ("bench_landscape.py", True),
    ("bench_active.py", True),
    ("bench_vs_n2p2.py", True),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="benchmark names, e.g. md landscape")
    args = ap.parse_args(argv)
    failed = []
    for script, has_quick in BENCHMARKS:
        name = script[len("bench_"):-3]
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script)] + (["--quick"] if args.quick and has_quick else [])
        print("[bench]", " ".join(cmd), flush=True)
        if subprocess.call(cmd) != 0:
            failed.append(name)
    if failed:
        print("[bench] failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
