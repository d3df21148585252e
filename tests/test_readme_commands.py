"""The README's install line and commands, taken from README.md itself.

The application, the ``opentelemetry-instrument`` command lines (Usage and
Deploying), ``otlp_tree``'s command and sample output, and the install line
are read out of the README's code blocks, so that the README cannot drift
from what runs here. The commands run as written, the environment variables
they set included, with the console scripts and ``python`` of the environment
that runs the tests first on PATH (as in the activated virtualenv the README
creates); only the ports differ (free loopback ones, also for
``OTEL_EXPORTER_OTLP_ENDPOINT``), gunicorn gets 2 workers instead of 4, and
the error tests add a raising route, a bad setting and bounded export
timeouts. With the logging bridge installed, errors must still reach stderr.
The tox env ``readme`` runs this file in a fresh virtualenv that holds
nothing but what the README's install line installed (no gunicorn: the
Deploying tests are skipped there; the ``tests`` envs run them).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from launch import stop_process
from otlp_tree import Receiver
from readme_blocks import ROOT, code_blocks, command_lines, install_command, readme_section, split_command

TIMEOUT_S = 60
SDK = tuple(int(part) for part in importlib.metadata.version("opentelemetry-sdk").split(".")[:2])
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


def instrument_command(exporter: str) -> tuple[dict[str, str], list[str]]:
    """The README's ``opentelemetry-instrument`` line that exports to ``exporter`` (otlp or console):
    the environment it sets and the command it runs."""
    commands = command_lines(readme_section("Usage"), "opentelemetry-instrument")
    assert len(commands) == 2, commands
    (command,) = [c for c in commands if ("console" in c) == (exporter == "console")]
    return split_command(command)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A route added to the README's app.py where a test needs a handler that raises.
RAISING_ROUTE = """

@server.route("/fail")
def fail(headers, body):
    raise RuntimeError("the handler failed on purpose")
"""


def _environment(**env: str) -> dict[str, str]:
    """This process's environment without OTEL_*, the tested environment's scripts first on PATH."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    environment.update(env)
    return environment


def _run_app(
    tmp_path: Path,
    command: tuple[dict[str, str], list[str]],
    requests: tuple[tuple[str, int], ...] = (("/users/42", 200),),
    extra_route: str = "",
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run the README's app.py with ``command``, send it ``requests`` (path, expected status), then
    Ctrl-C (SIGINT). ``env`` comes on top of the command's own environment."""
    app = readme_app()
    assert f'"127.0.0.1", {APP_PORT})' in app
    port = _free_port()
    app = app.replace(f'"127.0.0.1", {APP_PORT})', f'"127.0.0.1", {port})')
    (tmp_path / "app.py").write_text(
        app.replace('\n\nif __name__ == "__main__":', extra_route + '\n\nif __name__ == "__main__":')
    )
    command_env, argv = command
    process = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *argv],
        cwd=tmp_path,
        env=_environment(**command_env, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        statuses = [_get_when_up(f"http://127.0.0.1:{port}{path}", process) for path, _ in requests]
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert statuses == [status for _, status in requests], stderr
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _get_when_up(url: str, process: subprocess.Popen[Any]) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.read()
            return error.code
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered on {url} (exit status {process.poll()})")


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


def test_the_start_up_line_names_the_public_server_class(tmp_path: Path) -> None:
    result = _run_app(tmp_path, instrument_command("console"))

    assert "internalhttp: serving InternalHTTPServer('shop') on http://127.0.0.1:" in result.stderr


def _readme_sample(section: str) -> list[re.Pattern[str]]:
    """The README's ``otlp_tree`` sample in ``section``, a pattern per line: any trace id and duration."""
    (sample,) = code_blocks(readme_section(section), "text")
    patterns = []
    for line in sample.splitlines():
        pattern = re.escape(line).replace("5f0c1d2e", "[0-9a-f]{8}")
        patterns.append(re.compile(re.sub(r"\\ +0\\.41$", r" +[0-9]+\\.[0-9]{2}", pattern) + "$"))
    return patterns


def test_the_otlp_command_and_otlp_tree_print_the_readme_sample(tmp_path: Path) -> None:
    # As the README has it: the receiver from the repository root, the application exporting to it.
    (tree_command,) = command_lines(readme_section("Seeing your own traces"), "python")
    tree_env, tree_argv = split_command(tree_command)
    tree_port = _free_port()
    tree = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *tree_argv, "--port", str(tree_port)],
        cwd=ROOT,
        env=_environment(COLUMNS="100", **tree_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _get_when_up(f"http://127.0.0.1:{tree_port}/", tree)  # its 404 says it is up
        result = _run_app(
            tmp_path, instrument_command("otlp"), OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{tree_port}"
        )
        tree.send_signal(signal.SIGINT)  # the application has exported everything on its exit
        printed, _ = tree.communicate(timeout=TIMEOUT_S)
    finally:
        if tree.poll() is None:
            tree.kill()
            tree.communicate()

    assert result.returncode == 0, result.stderr
    sample = _readme_sample("Seeing your own traces")
    lines = printed.splitlines()
    starts = [i for i, line in enumerate(lines) if sample[0].match(line)]
    assert len(starts) == 1, printed
    block = lines[starts[0] : starts[0] + len(sample)]
    assert len(block) == len(sample) and all(p.match(line) for p, line in zip(sample, block, strict=True)), (
        printed
    )


def test_the_otlp_command_shows_a_handler_traceback_an_export_failure_and_a_configuration_error(
    tmp_path: Path,
) -> None:
    # The README's install line installs the logging bridge, whose root handler would
    # otherwise replace Python's last-resort output: the case this test is about.
    assert importlib.util.find_spec("opentelemetry.instrumentation.logging") is not None
    result = _run_app(
        tmp_path,
        instrument_command("otlp"),
        requests=(("/fail", 500),),
        extra_route=RAISING_ROUTE,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_free_port()}",  # nothing listens there
        OTEL_PYTHON_INTERNALHTTP_OPT_IN="no-such-opt-in",
        # Bounded: each export gives up after a second, spans go out after 100 ms.
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )

    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: the handler failed on purpose" in result.stderr
    assert "Failed to export span" in result.stderr  # SDK 1.42 says "span batch"
    assert "OTEL_PYTHON_INTERNALHTTP_OPT_IN" in result.stderr


# --- Deploying: gunicorn, from the repository root -------------------------------------


@dataclass
class DeployRun:
    statuses: list[int]
    exit_status: int | None
    stderr: str


def deploy_command() -> tuple[dict[str, str], list[str]]:
    (command,) = command_lines(readme_section("Deploying"), "opentelemetry-instrument")
    return split_command(command)


def _wait_for_listening(stderr: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", stderr.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"gunicorn is not listening:\n{stderr.read_text(errors='replace')}")


def _run_deploy(tmp_path: Path, endpoint: str, paths: tuple[str, ...], **env: str) -> DeployRun:
    """The README's deploy command, from the repository root, on a loopback port with 2 workers."""
    pytest.importorskip(
        "gunicorn", reason="gunicorn is not in the README's install line (the tox 'tests' envs have it)"
    )
    if SDK < (1, 44):  # as tests/test_gunicorn.py; the README says what to do with those
        pytest.skip("before opentelemetry-sdk 1.44 forked workers keep the master's SDK state")
    command_env, argv = deploy_command()
    bind = argv.index("-b") + 1
    assert argv[bind] == "0.0.0.0:8001" and argv[argv.index("-w") + 1] == "4", argv
    argv[bind], argv[argv.index("-w") + 1] = "127.0.0.1:0", "2"  # loopback only; fewer workers
    environment = _environment(**{**command_env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env})
    environment.pop("PYTHONPATH", None)  # the configuration file alone must find the application
    stderr = tmp_path / "gunicorn.stderr"
    with open(stderr, "wb") as stderr_file:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=stderr_file
        )
    try:
        port = _wait_for_listening(stderr, process)
        statuses = [_get_when_up(f"http://127.0.0.1:{port}{path}", process) for path in paths]
    finally:
        exit_status = stop_process(process, timeout=TIMEOUT_S)
    return DeployRun(statuses, exit_status, stderr.read_text(errors="replace"))


def test_the_deploy_command_serves_and_exports_from_the_repository_root(tmp_path: Path) -> None:
    with Receiver() as receiver:
        run = _run_deploy(tmp_path, receiver.endpoint, ("/items/42",))

        assert (run.statuses, run.exit_status) == ([200], 0), run.stderr
        assert [(s.service, s.name) for s in receiver.spans(kind="SERVER")] == [
            ("backend", "GET /items/<item_id>")
        ]


def test_the_deploy_command_shows_a_handler_traceback_and_an_export_failure_on_stderr(tmp_path: Path) -> None:
    # The logging bridge is installed: without a stderr handler beside it, both would be lost.
    assert importlib.util.find_spec("opentelemetry.instrumentation.logging") is not None
    run = _run_deploy(
        tmp_path,
        f"http://127.0.0.1:{_free_port()}",  # a closed port: the collector is down
        ("/items/42/reviews",),  # the backend handler that raises
        OTEL_PYTHON_INTERNALHTTP_OPT_IN="no-such-opt-in",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )

    assert run.statuses == [500]
    assert "Traceback (most recent call last)" in run.stderr
    assert "RuntimeError: the reviews database is unreachable" in run.stderr
    assert "Failed to export span" in run.stderr
    assert "OTEL_PYTHON_INTERNALHTTP_OPT_IN" in run.stderr


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
