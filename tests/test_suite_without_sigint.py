"""The test suite runs to the end with SIGINT ignored, as under ``nohup`` or as a script's background job.

A child pytest runs the framework's Ctrl-C tests with SIGINT ignored from
its start; they must pass, not wait for a KeyboardInterrupt that never comes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORING_SIGINT = "; ".join(
    [
        "import signal, sys, pytest",
        "signal.signal(signal.SIGINT, signal.SIG_IGN)",
        "sys.exit(pytest.main(sys.argv[1:]))",
    ]
)


def test_the_ctrl_c_tests_pass_with_sigint_ignored() -> None:
    command = [
        sys.executable,
        "-c",
        IGNORING_SIGINT,
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=30",
        "-k",
        "ctrl_c or interrupt or sigint",
        "reference/internalhttp/tests/test_framework_serving.py",
        # Its SIGINT test signals a server process, which inherits the disposition.
        "reference/internalhttp/tests/test_framework_shutdown.py",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
