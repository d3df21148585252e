"""Run the overhead benchmarks in interleaved rounds and check the budget.

Each round runs every scenario of ``bench_dispatch.py`` once through pyperf
(worker processes, calibrated loops) and appends to one result file, so that
drift on a shared machine (another process waking up, the CPU clocking
down) lands on every scenario alike instead of on whichever ran last. The
table compares each scenario with the bare framework and with the SDK
reference ``b_sdk_batch`` from the same file.

    python benchmarks/run_benchmarks.py [--rounds 4] [--ablation] [--scenarios a,b] [--output results.json]

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

from bench_dispatch import SCENARIOS, default_scenarios  # noqa: E402  (a sibling script, importable once its folder is on the path)

# The reference every ratio is taken against (issue 14): what one request
# minimally costs with the SDK defaults, written out in bench_dispatch.py.
REFERENCE = "b_sdk_batch"
# (scenario, the most its overhead may be, as a ratio of REFERENCE's
# overhead) — all overheads are over "bare", all from the same run.
RATIO_BUDGETS = [
    ("instrumented_default", 1.0),
    ("instrumented_stable", 1.0),
    ("instrumented_api_only", 0.10),
    ("instrumented_always_off", 0.65),
]
# (scenario, the most it may cost over bare, in microseconds)
ABSOLUTE_BUDGETS_US = [
    ("instrumented_suppressed", 2.0),
    ("instrumented_excluded", 2.0),
    ("after_uninstrument", 0.5),
]
# Scenarios whose overhead is taken over another baseline than "bare".
BASELINES = {"wsgi_contrib_middleware": "wsgi_bare", "flask_contrib": "flask_bare"}
# (instrumented scenario, its replay): the ablation's "our own code" lines.
REPLAYS = [
    ("instrumented_default", "replay_default"),
    ("instrumented_stable", "replay_stable"),
    ("instrumented_always_off", "replay_always_off"),
]


def _run_rounds(rounds: int, output: Path, scenarios: list[str], clock: str, pyperf_args: list[str]) -> None:
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
                "--scenarios",
                ",".join(scenarios),
                "--clock",
                clock,
                *pyperf_args,
            ],
            check=True,
        )


def _values_us(output: Path, rounds: int) -> dict[str, list[list[float]]]:
    """Per scenario, its values in µs, one list per round (one list for all if rounds cannot be told)."""
    suite = pyperf.BenchmarkSuite.load(str(output))
    found: dict[str, list[list[float]]] = {}
    for bench in suite.get_benchmarks():
        # Runs are appended round after round, each round the same number
        # per scenario; calibration runs carry no values.
        runs = [[value * 1e6 for value in run.values] for run in bench.get_runs() if run.values]
        per_round = len(runs) // rounds if rounds and len(runs) % rounds == 0 else len(runs)
        found[bench.get_name()] = [
            [value for run in runs[start : start + per_round] for value in run]
            for start in range(0, len(runs), per_round)
        ]
    # The table in the order the scenarios are declared, whichever order
    # the first round ran them in.
    return {name: found[name] for name in SCENARIOS if name in found} | found


def _median(rounds: list[list[float]]) -> float:
    return statistics.median(value for values in rounds for value in values)


class _Table:
    """Medians over all rounds, and the same figure per round for the spread."""

    def __init__(self, values: dict[str, list[list[float]]]) -> None:
        self.values = values
        self.medians = {name: _median(rounds) for name, rounds in values.items()}

    def overhead(self, name: str) -> float:
        return self.medians[name] - self.medians[BASELINES.get(name, "bare")]

    def ratio(self, name: str) -> float:
        return self.overhead(name) / self.overhead(REFERENCE)

    def round_ratios(self, name: str) -> list[float]:
        """The ratio to the reference computed within each round alone."""
        baseline = BASELINES.get(name, "bare")
        series = zip(
            self.values[name], self.values[baseline], self.values[REFERENCE], self.values["bare"], strict=True
        )
        return [
            (statistics.median(own) - statistics.median(base))
            / (statistics.median(reference) - statistics.median(bare))
            for own, base, reference, bare in series
        ]

    def spread(self, name: str) -> str:
        ratios = self.round_ratios(name)
        return f"{min(ratios):.2f}..{max(ratios):.2f}" if len(ratios) > 1 else ""


def _print_table(table: _Table) -> None:
    print(f"\n{'scenario':26} {'us/request':>11} {'over base':>10} {'x ' + REFERENCE:>14} {'per round':>11}")
    for name, value in table.medians.items():
        if name in BASELINES.values():
            print(f"{name:26} {value:11.2f}")
            continue
        base = f"   (over {BASELINES[name]})" if name in BASELINES else ""
        overhead = "" if name == "bare" else f"{table.overhead(name):10.2f}"
        ratio = "" if name == "bare" else f"{table.ratio(name):14.2f}"
        spread = "" if name == "bare" else f"{table.spread(name):>11}"
        print(f"{name:26} {value:11.2f} {overhead:>10} {ratio:>14} {spread}{base}")


def _print_ablation(table: _Table) -> None:
    pairs = [(own, replay) for own, replay in REPLAYS if own in table.medians and replay in table.medians]
    if not pairs:
        return
    print("\nablation: the project's OpenTelemetry calls replayed with none of its code")
    for own, replay in pairs:
        ours = table.medians[own] - table.medians[replay]
        print(
            f"  {own:26} = {table.ratio(own):.2f} x {REFERENCE}; its calls alone (replay) "
            f"= {table.ratio(replay):.2f} x; its own Python = {ours:+.2f} us/request"
        )


def _check_budget(table: _Table) -> bool:
    print("\nbudget (issue 14)")
    all_met = True
    for name, limit in RATIO_BUDGETS:
        if name not in table.medians:
            continue
        ratio = table.ratio(name)
        met = ratio <= limit
        all_met &= met
        print(f"  {'ok  ' if met else 'FAIL'} {name} overhead = {ratio:.2f} x {REFERENCE} (at most {limit})")
    for name, limit_us in ABSOLUTE_BUDGETS_US:
        if name not in table.medians:
            continue
        overhead = table.overhead(name)
        met = overhead <= limit_us
        all_met &= met
        print(f"  {'ok  ' if met else 'FAIL'} {name} = {overhead:+.2f} us over bare (at most {limit_us})")
    return all_met


def _report(values: dict[str, list[list[float]]]) -> bool:
    table = _Table(values)
    _print_table(table)
    _print_ablation(table)
    return _check_budget(table)


def _replay_works() -> bool:
    """Whether bench_replay can record and replay a request of the current instrumentation.

    Tried once in a subprocess before the rounds: a replay that cannot be
    built would stop a pyperf worker, and with it the whole run, budget
    lines included.
    """
    for mode in ("default", "http", "always_off"):
        tried = subprocess.run(
            [sys.executable, str(HERE / "bench_replay.py"), mode], capture_output=True, text=True
        )
        if tried.returncode != 0:
            print(
                f"ablation left out: bench_replay.py {mode} failed:\n{tried.stderr[-2000:]}", file=sys.stderr
            )
            return False
    return True


def _chosen(args: argparse.Namespace) -> list[str]:
    if not args.scenarios:
        return default_scenarios(args.ablation and _replay_works())
    wanted = ["bare", REFERENCE, *args.scenarios.split(",")]
    # Each once, and the baselines that the chosen ones are measured over.
    wanted += [BASELINES[name] for name in wanted if name in BASELINES]
    return [name for name in SCENARIOS if name in wanted]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also time the replays of the project's OpenTelemetry calls (bench_replay.py)",
    )
    parser.add_argument(
        "--scenarios", help="comma-separated scenarios to time (default: all; bare and b_sdk_batch always)"
    )
    parser.add_argument("--output", type=Path, help="pyperf JSON file to write (default: a temporary file)")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="CPU time of the worker process (default; steady on a shared machine) or wall clock",
    )
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
            _run_rounds(args.rounds, output, _chosen(args), args.clock, pyperf_args)
        print(f"\nµs of {'CPU time' if args.clock == 'cpu' else 'wall-clock time'} per request")
        met = _report(_values_us(output, args.rounds))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
