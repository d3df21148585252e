"""Instructions per request, counted by valgrind: the ablation's shares without timing noise.

pyperf times vary by several µs from one run to the next on a shared VM,
more than the project's own share of a request. Valgrind's callgrind tool
counts the machine instructions a process executes instead. Each
scenario of ``bench_dispatch.py`` runs in its own process under callgrind
twice, with a warm-up and then ``--small`` and ``--large`` requests; the
difference divided by the difference in requests is the instructions one
request takes, start-up and warm-up cancelled out.

String hashes are salted per process, and the salt decides where keys land
in every dict and set a request touches: with a random salt, the count of
one scenario moved by up to 6k instructions between processes, more than
most changes to the code. So each scenario is counted once per fixed
``PYTHONHASHSEED`` in ``--seeds`` (a count with a fixed seed repeats within
a few instructions) and the median over the seeds is printed, with the
seeds' spread beside it.

The cyclic garbage collector adds a second kind of noise: its collections
come after a count of allocations, not at a fixed request, and a full one
costs millions of instructions. Whether one lands between the two counts
moved a scenario by a few thousand instructions per request over 1,000
requests (``--large 1200``, the default until 2026-12-04). Over 5,000
requests (``--large 5200``) the same collection weighs a fifth as much per
request.

A third came from the batch span processor's own thread. Exporting every
512 spans, it woke while the requests ran, and how many instructions the
two threads spent handing the GIL over depended on the machine's timing:
one scenario, seed and commit counted 1.9k instructions per request apart
from one run to the next. The processor's timer is set beyond the run and
its queue and batch above the spans a run makes (``OTEL_BSP_*``), so it
never exports during a count; that cost is the SDK's, on another thread,
and the same for a scenario and its replay. ``random``, which the SDK
draws span ids and exemplars from, is seeded after the warm-up, and every
module is compiled before the first count (a count that wrote the
bytecode cache would pay for compiling). Two counts of one scenario and
seed, side by side, then differed by 8 and 51 instructions per request.

Printed: each scenario's instructions per request, the overhead over
``bare`` as a multiple of ``b_sdk_batch``'s (as ``run_benchmarks.py``
does), and for each instrumented mode the project's own share: instrumented
minus its replay, as a multiple of ``b_sdk_batch``'s overhead.

    python benchmarks/bench_instructions.py [--small 200] [--large 5200] [--jobs 2]
        [--seeds 0,1,2] [--scenarios a,b]

Needs ``valgrind`` on the PATH (Debian: ``apt-get install valgrind``); each
scenario takes about 70 s of CPU per seed at the defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Instrumented mode -> its replay (the ablation of bench_replay.py).
MODES = {
    "instrumented_default": "replay_default",
    "instrumented_stable": "replay_stable",
    "instrumented_always_off": "replay_always_off",
}
DEFAULT_SCENARIOS = ("bare", "b_sdk_batch", *MODES, *MODES.values())
_COLLECTED = re.compile(r"Collected : (\d+)")
# One request of a scenario, after a warm-up: run in the child process.
_CHILD = """
import sys
sys.path.insert(0, {here!r})
import bench_dispatch
call = bench_dispatch.SCENARIOS[{scenario!r}]()
for _ in range({warmup}):
    call()
import random
random.seed({seed})
for _ in range({requests}):
    call()
"""
# Beyond any run's spans: the batch span processor never exports during a count.
_NO_EXPORT = {
    "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    "OTEL_BSP_MAX_QUEUE_SIZE": "1000000",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000000",
}


def instructions(scenario: str, requests: int, warmup: int, seed: int) -> int:
    """The instructions of a process that makes ``scenario`` and sends it ``warmup + requests`` requests."""
    code = _CHILD.format(here=str(HERE), scenario=scenario, warmup=warmup, requests=requests, seed=seed)
    environment = dict(os.environ, **_NO_EXPORT, PYTHONHASHSEED=str(seed))
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=1800,
        check=False,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{scenario}: valgrind exited {result.returncode}:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def compile_modules(scenarios: list[str]) -> None:
    """Every module the scenarios import, compiled and cached, outside any count (a process each)."""
    for scenario in scenarios:
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_dispatch\n"
        code += f"bench_dispatch.SCENARIOS[{scenario!r}]()\n"
        environment = dict(os.environ, **_NO_EXPORT)
        subprocess.run([sys.executable, "-c", code], env=environment, timeout=600, check=True)


def per_request(scenario: str, small: int, large: int, warmup: int, seed: int) -> float:
    large_count = instructions(scenario, large, warmup, seed)
    return (large_count - instructions(scenario, small, warmup, seed)) / (large - small)


def report(counts: dict[str, list[float]]) -> list[str]:
    """The table: instructions per request (median over the seeds), and the shares as ratios."""
    medians = {scenario: statistics.median(per_seed) for scenario, per_seed in counts.items()}
    lines = [f"{'scenario':<28}{'instructions':>14}{'seeds spread':>14}{'x b_sdk_batch':>15}"]
    bare = medians.get("bare")
    reference = medians["b_sdk_batch"] - bare if bare is not None and "b_sdk_batch" in medians else None
    for scenario, count in medians.items():
        ratio = ""
        if reference and scenario not in ("bare", "b_sdk_batch") and bare is not None:
            ratio = f"{(count - bare) / reference:.3f}"
        spread = max(counts[scenario]) - min(counts[scenario])
        lines.append(f"{scenario:<28}{count:>14,.0f}{spread:>14,.0f}{ratio:>15}")
    lines.append("")
    lines.append("own Python (instrumented - replay):")
    for mode, replay in MODES.items():
        if mode in medians and replay in medians:
            own = medians[mode] - medians[replay]
            share = f"  {own / reference:.3f}x b_sdk_batch" if reference else ""
            lines.append(f"  {mode:<26}{own:>12,.0f}{share}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=5200)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2, help="counts (a scenario with one seed) run at once")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    parser.add_argument("--seeds", default="0,1,2", help="PYTHONHASHSEED values, each counted once")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    scenarios = [name for name in options.scenarios.split(",") if name]
    seeds = [int(seed) for seed in options.seeds.split(",") if seed]
    runs = [(name, seed) for name in scenarios for seed in seeds]
    compile_modules(scenarios)
    with ThreadPoolExecutor(options.jobs) as pool:
        results = pool.map(
            lambda run: per_request(run[0], options.small, options.large, options.warmup, run[1]), runs
        )
        counts: dict[str, list[float]] = {name: [] for name in scenarios}
        for (name, _), result in zip(runs, results, strict=True):
            counts[name].append(result)
    print("\n".join(report(counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
