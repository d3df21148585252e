"""Where one instrumented request's time goes, by function (cProfile).

Builds one scenario of ``bench_dispatch.py`` (``instrumented_default`` unless
told otherwise), sends it ``--requests`` requests under cProfile and prints
the functions with the most time of their own. cProfile adds a fixed cost
to every call, so the shares of many small functions are overstated; use
it to find where to look, and the pyperf scenarios (and the replay
ablation) to tell what a change saved.

    python benchmarks/profile_request.py [scenario] [--requests 20000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dispatch  # a sibling script, importable once its folder is on the path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenario", nargs="?", default="instrumented_default", choices=bench_dispatch.SCENARIOS
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    call = bench_dispatch.SCENARIOS[args.scenario]()
    for _ in range(1000):  # caches filled, first-call costs paid, outside the profile
        call()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.requests):
        call()
    profile.disable()
    stats = pstats.Stats(profile)
    print(f"{args.scenario}: {args.requests} requests; per-request µs = tottime / {args.requests} x 1e6")
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
