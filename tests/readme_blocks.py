"""README.md's code blocks and command lines, for the tests that run them (standard library only)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_section(title: str) -> str:
    """The text of the README section ``## <title>``, up to the next ``## `` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def shell_commands(text: str) -> list[str]:
    """The commands of the ``sh`` blocks in ``text``, a backslash-continued one joined into one line."""
    commands = []
    for block in code_blocks(text, "sh"):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [
            line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
        ]
    return commands


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """``NAME=value ... program args`` as the environment it sets and the command it runs.

    >>> split_command("OTEL_SERVICE_NAME=shop opentelemetry-instrument python app.py  # a comment")
    ({'OTEL_SERVICE_NAME': 'shop'}, ['opentelemetry-instrument', 'python', 'app.py'])
    """
    words = shlex.split(command, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def command_lines(text: str, program: str) -> list[str]:
    """The commands of the ``sh`` blocks in ``text`` that run ``program`` (after any ``NAME=value``)."""
    return [command for command in shell_commands(text) if split_command(command)[1][:1] == [program]]


def install_command() -> list[str]:
    """The README's one ``pip install`` line, split as the shell would."""
    (command,) = command_lines(readme_section("Install"), "pip")
    return shlex.split(command)
