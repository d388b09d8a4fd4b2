"""``python -m bench NAME [--reps N] [--quick] [--out DIR]`` and ``python -m bench --list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench._harness import (
    DEFAULT_REPS,
    QUICK_REPS,
    RESULTS_DIR,
    Result,
    UnknownBenchmark,
    available,
    describe,
    load,
    progress,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="Run one benchmark.")
    p.add_argument("name", nargs="?", help="benchmark to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"repetitions (default {DEFAULT_REPS}, {QUICK_REPS} with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name in available():
            print(f"{name:12s} {describe(load(name))}")
        return 0
    if not args.name:
        parser.print_usage(sys.stderr)
        print(f"error: name a benchmark; available: {', '.join(available())}", file=sys.stderr)
        return 2
    if args.reps is not None and args.reps < 1:
        print("error: --reps must be at least 1", file=sys.stderr)
        return 2
    try:
        module = load(args.name)
    except UnknownBenchmark as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reps = args.reps if args.reps is not None else (QUICK_REPS if args.quick else DEFAULT_REPS)
    progress(f"benchmark {args.name}: {reps} repetitions{' (quick)' if args.quick else ''}")
    result: Result = module.run(reps=reps, quick=args.quick)
    json_path, md_path = result.write(args.out)
    print()
    print(result.title)
    print(result.console())
    print(f"\nwrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
