"""The README's install line and no-code-change commands, taken from README.md itself.

The application, the ``opentelemetry-instrument`` command lines and the
install line are read out of the README's code blocks, so that the README
cannot drift from what runs here. The commands run as written, with the
console scripts and ``python`` of the environment that runs the tests first
on PATH (as in the activated virtualenv the README creates); only the port
the application listens on and, for OTLP, ``OTEL_EXPORTER_OTLP_ENDPOINT``
(the receiver's free port instead of 4318) differ. The tox env
``readme`` runs this file in a fresh virtualenv that holds nothing but what
the README's install line installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from otlp_tree import Receiver
from readme_blocks import ROOT, code_blocks, command_lines, install_command, readme_section

TIMEOUT_S = 60
APP_PORT = "8000"  # the port the README's app.py listens on

# Runs a command with SIGINT's default action restored: a child inherits an
# ignored SIGINT (nohup, a script's background job), and Python then installs
# no KeyboardInterrupt handler, so Ctrl-C could not stop the application.
WITH_DEFAULT_SIGINT = "; ".join(
    [
        "import os, signal, sys",
        "signal.signal(signal.SIGINT, signal.SIG_DFL)",
        "os.execvp(sys.argv[1], sys.argv[1:])",
    ]
)


def readme_app() -> str:
    (app,) = [
        block for block in code_blocks(readme_section("Usage"), "python") if block.startswith("# app.py")
    ]
    return app


def instrument_command(exporter: str) -> list[str]:
    """The README's ``opentelemetry-instrument`` line that exports to ``exporter`` (otlp or console)."""
    commands = command_lines(readme_section("Usage"), "opentelemetry-instrument")
    assert len(commands) == 2, commands
    (command,) = [c for c in commands if ("console" in c) == (exporter == "console")]
    return shlex.split(command)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_app(tmp_path: Path, command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run the README's app.py with ``command``, send it one request, then Ctrl-C (SIGINT)."""
    app = readme_app()
    assert f'"127.0.0.1", {APP_PORT})' in app
    port = _free_port()
    (tmp_path / "app.py").write_text(app.replace(f'"127.0.0.1", {APP_PORT})', f'"127.0.0.1", {port})'))
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    environment.update(env)
    process = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *command],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = _get_when_up(f"http://127.0.0.1:{port}/users/42", process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert status == 200, stderr
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _get_when_up(url: str, process: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the application did not answer on {url} (exit status {process.poll()})")


def _console_objects(stdout: str) -> list[dict[str, object]]:
    """The JSON objects the console exporters printed, one after the other."""
    decoder = json.JSONDecoder()
    objects, position = [], 0
    while True:
        position = stdout.find("{", position)
        if position == -1:
            return objects
        found, position = decoder.raw_decode(stdout, position)
        objects.append(found)


def test_the_console_command_prints_the_request_span_and_metrics(tmp_path: Path) -> None:
    result = _run_app(tmp_path, instrument_command("console"))

    assert result.returncode == 0, result.stderr
    assert "not found" not in result.stderr
    objects = _console_objects(result.stdout)
    spans = [(o["name"], o["kind"]) for o in objects if "trace_id" in o.get("context", {})]  # type: ignore[operator]
    assert spans == [("GET /users/<user_id>", "SpanKind.SERVER")]
    assert '"http.server.duration"' in result.stdout or '"http.server.request.duration"' in result.stdout


def test_the_otlp_command_exports_the_request_span_and_metrics_over_otlp_http(tmp_path: Path) -> None:
    with Receiver() as receiver:
        result = _run_app(tmp_path, instrument_command("otlp"), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)

        assert result.returncode == 0, result.stderr
        assert "not found" not in result.stderr and "Failed to export" not in result.stderr, result.stderr
        assert [(s.service, s.name, s.kind) for s in receiver.spans()] == [
            ("shop", "GET /users/<user_id>", "SERVER")
        ]
        assert receiver.metric_names() & {"http.server.duration", "http.server.request.duration"}


def test_the_install_line_installs_the_framework_and_the_instrumentation_with_the_tested_releases() -> None:
    command = install_command()

    assert command[:4] == ["pip", "install", "-c", "constraints.txt"]
    assert (ROOT / command[3]).is_file()
    paths = [arg for arg in command[4:] if arg.startswith((".", "/"))]
    assert sorted(paths) == [".", "./reference/internalhttp"]
    assert all((ROOT / path / "setup.cfg").is_file() for path in paths)


@pytest.mark.parametrize(
    "distribution",
    [
        "internalhttp",
        "opentelemetry-ext-internalhttp",
        *[arg for arg in install_command()[4:] if arg[0].isalpha()],
    ],
)
def test_what_the_install_line_installs_is_what_these_tests_run_with(distribution: str) -> None:
    # Run by the tox env "readme", this holds in a virtualenv made by the install line alone.
    assert importlib.metadata.version(distribution)
