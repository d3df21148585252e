"""Run the overhead benchmarks in interleaved rounds and check the budget.

Each round runs every scenario of ``bench_dispatch.py`` once through pyperf
(worker processes, calibrated loops) and appends to one result file, so that
drift on a shared machine (another process waking up, the CPU clocking
down) lands on every scenario alike instead of on whichever ran last. The
table compares each scenario with the bare framework and with the minimal SDK
reference from the same file.

    python benchmarks/run_benchmarks.py [--rounds 4] [--output results.json]

Exits 1 when a budget line fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pyperf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_dispatch import SCENARIOS  # noqa: E402  (a sibling script, importable once its folder is on the path)

SCENARIO_ORDER = list(SCENARIOS)

# (scenario, compared with, the most its overhead may be, as a ratio of the
# compared scenario's overhead) — all overheads are over "bare".
RATIO_BUDGETS = [
    ("instrumented_default", "reference_sdk", 1.0),
    ("instrumented_stable", "reference_sdk", 1.0),
    ("instrumented_api_only", "reference_api_only", 1.1),
]
# (scenario, the most it may cost over bare, in microseconds)
ABSOLUTE_BUDGETS_US = [
    ("instrumented_suppressed", 2.0),
    ("instrumented_excluded", 2.0),
    ("after_uninstrument", 0.5),
]


def _run_rounds(rounds: int, output: Path, pyperf_args: list[str]) -> None:
    for round_number in range(1, rounds + 1):
        print(f"round {round_number}/{rounds} ...", file=sys.stderr, flush=True)
        # Every other round runs the scenarios last to first, so that drift
        # within a round (a round takes tens of seconds) does not always
        # favour the scenarios that come first.
        order = ["--reverse-order"] if round_number % 2 == 0 else []
        subprocess.run(
            [
                sys.executable,
                str(HERE / "bench_dispatch.py"),
                "--quiet",
                "--append",
                str(output),
                *order,
                *pyperf_args,
            ],
            check=True,
        )


def _medians_us(output: Path) -> dict[str, float]:
    suite = pyperf.BenchmarkSuite.load(str(output))
    medians = {
        bench.get_name(): statistics.median(bench.get_values()) * 1e6 for bench in suite.get_benchmarks()
    }
    # The table in the order the scenarios are declared, whichever order
    # the first round ran them in.
    return {name: medians[name] for name in SCENARIO_ORDER if name in medians} | medians


def _report(medians: dict[str, float]) -> bool:
    bare = medians["bare"]
    reference_overhead = medians["reference_sdk"] - bare
    print(f"\n{'scenario':28} {'us/request':>11} {'over bare':>10} {'x reference':>12}")
    for name, value in medians.items():
        if name.startswith("wsgi_"):
            continue
        overhead = value - bare
        print(f"{name:28} {value:11.2f} {overhead:10.2f} {overhead / reference_overhead:12.2f}")
    if "wsgi_bare" in medians and "wsgi_contrib_middleware" in medians:
        wsgi_overhead = medians["wsgi_contrib_middleware"] - medians["wsgi_bare"]
        print(
            f"{'wsgi_contrib_middleware':28} {medians['wsgi_contrib_middleware']:11.2f} "
            f"{wsgi_overhead:10.2f} {wsgi_overhead / reference_overhead:12.2f}   (over a bare WSGI app)"
        )

    print("\nbudget")
    all_met = True
    for name, compared, limit in RATIO_BUDGETS:
        ratio = (medians[name] - bare) / (medians[compared] - bare)
        met = ratio <= limit
        all_met &= met
        print(f"  {'ok  ' if met else 'FAIL'} {name} overhead = {ratio:.2f} x {compared} (at most {limit})")
    for name, limit_us in ABSOLUTE_BUDGETS_US:
        overhead = medians[name] - bare
        met = overhead <= limit_us
        all_met &= met
        print(f"  {'ok  ' if met else 'FAIL'} {name} = {overhead:+.2f} us over bare (at most {limit_us})")
    return all_met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--output", type=Path, help="pyperf JSON file to write (default: a temporary file)")
    parser.add_argument(
        "--report-only", action="store_true", help="only print the table of an existing --output"
    )
    args, pyperf_args = parser.parse_known_args()
    if args.report_only and args.output is None:
        # Without a file to read, the table would be read from a temporary
        # file that was never written.
        parser.error("--report-only needs --output FILE")
    if not pyperf_args:
        # Each round: 2 worker processes, 3 timed values each, after 1 warm-up.
        pyperf_args = ["--processes", "2", "--values", "3", "--warmups", "1"]

    with tempfile.TemporaryDirectory() as scratch:
        output = args.output or Path(scratch) / "results.json"
        if not args.report_only:
            if output.exists():
                output.unlink()
            _run_rounds(args.rounds, output, pyperf_args)
        met = _report(_medians_us(output))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
