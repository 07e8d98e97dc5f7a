"""Command line: ``python -m geomops demo`` and ``python -m geomops config``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geomops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the continuous-convolution (and pose-gradient) demo")
    demo.add_argument("--points", type=int, default=20000, help="number of points (default 20000)")
    demo.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    sub.add_parser("config", help="print the build and runtime configuration")
    args = parser.parse_args(argv)
    if args.command == "config":
        from . import show_config
        show_config()
        return 0
    from ._demo import run_demo
    return run_demo(num_points=args.points, num_threads=args.threads)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        sys.exit(0)
