"""The README's install line on a fresh virtualenv, then the README's commands with what it installed.

Usage (the tox env ``readme``): ``python tests/run_readme_install.py VENV_DIR``.
The virtualenv gets exactly the README's ``pip install`` line, run from the
repository root as the README says, plus pytest to run
``tests/test_readme_commands.py`` with its interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

from readme_blocks import ROOT, install_command


def main(venv_dir: str) -> int:
    directory = Path(venv_dir)
    venv.create(directory, with_pip=True, clear=True)
    bin_dir = directory / "bin"
    env = dict(os.environ)
    env.pop("PIP_CONSTRAINT", None)  # tox's: the README line names its constraints itself
    command = install_command()
    print("README:", " ".join(command), flush=True)
    subprocess.run([str(bin_dir / "pip"), *command[1:]], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "-c", "constraints.txt", "pytest", "pytest-timeout"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    tests = [str(bin_dir / "pytest"), "-p", "no:cacheprovider", "tests/test_readme_commands.py"]
    return subprocess.run(tests, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
