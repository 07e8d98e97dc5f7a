"""Command line: ``python -m geomops demo`` and ``python -m geomops config``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geomops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the continuous-convolution and pose-gradient demo, write its figures")
    demo.add_argument("--points", type=int, default=20000, help="number of points (default 20000)")
    demo.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    demo.add_argument("--out", default="geomops-demo", metavar="DIR",
                      help="folder for the PNG figures (default: ./geomops-demo)")
    demo.add_argument("--no-figures", action="store_true", help="print the summary only, write no figures")
    demo.add_argument("--no-progress", action="store_true",
                      help="no progress bars (they are shown only when stderr is a terminal anyway)")
    sub.add_parser("config", help="print the build and runtime configuration")
    args = parser.parse_args(argv)
    if args.command == "config":
        from ._config import show_config
        show_config()
        return 0
    from ._demo import run_demo
    return run_demo(num_points=args.points, num_threads=args.threads, out_dir=None if args.no_figures else args.out,
                    show_progress=False if args.no_progress else None)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        sys.exit(0)
