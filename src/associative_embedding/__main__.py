"""Command line: ``python -m associative_embedding warmup``.

Compiles the decoder's numba kernels (or loads them from numba's on-disk cache)
and prints how long that took, so that an install script or a container build
can pay for compilation once instead of the first ``decode`` call.
"""

from __future__ import annotations

import argparse
import sys
import time

DESCRIPTION = "Tools of the associative_embedding package."
WARMUP_HELP = (
    "Compile the decoder's numba kernels (CPU and tensor paths, float32 unless told "
    "otherwise) into numba's on-disk cache, or load them from it, and print the time it took. "
    "Run it in an install script or a container build, with NUMBA_CACHE_DIR set to a "
    "writable folder that later processes also see, so that their first decode does "
    "not compile."
)


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser: one subcommand, ``warmup``."""
    from .decoding import WORK_DTYPES

    parser = argparse.ArgumentParser(
        prog="python -m associative_embedding", description=DESCRIPTION
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    warm = commands.add_parser(
        "warmup", help="compile or load the decoder kernels", description=WARMUP_HELP
    )
    warm.add_argument(
        "--dtype",
        action="append",
        choices=WORK_DTYPES,
        dest="dtypes",
        help="work dtype to compile for; repeat for both (default: float32, which float16 "
        "and bfloat16 maps also decode in; add float64 only for float64 maps)",
    )
    return parser


def cache_dir() -> str:
    """Return where numba keeps compiled kernels: ``NUMBA_CACHE_DIR`` or the sources."""
    import numba

    return numba.config.CACHE_DIR or "next to the package's sources (__pycache__)"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "warmup":
        t0 = time.perf_counter()
        from .decoding import warmup

        dtypes = args.dtypes or ["float32"]
        warmup(dtypes)
        seconds = time.perf_counter() - t0
        print(
            f"decoder kernels ready in {seconds:.1f} s for {', '.join(dict.fromkeys(dtypes))} "
            f"(numba cache: {cache_dir()})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
