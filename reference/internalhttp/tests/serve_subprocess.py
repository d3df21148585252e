"""Serve the test application with ``serve_forever()`` in a process of its own.

Run by the tests that need a separate process: to limit its file
descriptors, to measure its memory, or to send it SIGTERM. It prints the
start-up line on stderr (where the parent reads the port from) and, from an
``atexit`` handler, ``atexit ran`` on stdout: proof that the process exited
normally.

    python serve_subprocess.py [--nofile N] [--grace-period S] [--head-timeout S]

Imported, it offers :func:`start` and :func:`finish` to run it.
"""

from __future__ import annotations

import argparse
import atexit
import re
import resource
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

from internalhttp.serving import serve_forever

_SCRIPT = str(Path(__file__).resolve())
_ANNOUNCED = re.compile(
    r"internalhttp: serving .* on http://([0-9.]+):([0-9]+) \(Ctrl-C or SIGTERM to stop\)"
)


Starter = Callable[..., Tuple["subprocess.Popen[str]", Tuple[str, int]]]


def start(*options: str, timeout: float = 10.0) -> Tuple[subprocess.Popen[str], Tuple[str, int]]:
    """Start this script; return the process and the address from its start-up line."""
    process = subprocess.Popen(
        [sys.executable, _SCRIPT, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        if selector.select(timeout):
            line = process.stderr.readline()  # printed and flushed as one line
            found = _ANNOUNCED.fullmatch(line.strip())
            if found:
                return process, (found.group(1), int(found.group(2)))
    process.kill()
    process.wait()
    raise AssertionError("the server process did not announce where it listens")


def finish(process: subprocess.Popen[str], timeout: float = 15.0) -> Tuple[int, str, List[str]]:
    """Wait for the process (killing it after ``timeout``); its status, stdout, stderr lines."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err.splitlines()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def main() -> int:
    # Imported here: importing this module (for start()) needs no test app.
    from framework_support import build_app  # next to this script, so on sys.path

    parser = argparse.ArgumentParser()
    parser.add_argument("--nofile", type=int, default=0, help="RLIMIT_NOFILE to set first (0: unchanged)")
    parser.add_argument("--grace-period", type=float, default=10.0)
    parser.add_argument("--head-timeout", type=float, default=10.0)
    args = parser.parse_args()
    # A process started from a run that ignores SIGINT (nohup, a script's
    # background job) inherits that, and Python then leaves it ignored: give
    # it the handler a command-line run has, so that SIGINT tests are the same anywhere.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    app = build_app()
    # A request still in progress for X-Seconds seconds: for the shutdown tests.
    app.add_route("/sleep", lambda headers, body: time.sleep(float(headers["X-Seconds"])) or "slept")
    atexit.register(lambda: print("atexit ran", flush=True))
    serve_forever(app, "127.0.0.1", 0, grace_period=args.grace_period, head_timeout=args.head_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
