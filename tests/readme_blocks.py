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


def command_lines(text: str, program: str) -> list[str]:
    """The lines of the ``sh`` blocks in ``text`` that run ``program``."""
    return [
        line.strip()
        for block in code_blocks(text, "sh")
        for line in block.splitlines()
        if line.strip().split(" ", 1)[0] == program
    ]


def install_command() -> list[str]:
    """The README's one ``pip install`` line, split as the shell would."""
    (command,) = command_lines(readme_section("Install"), "pip")
    return shlex.split(command)
