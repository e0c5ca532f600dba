"""A fork: a copy of this project made its user's own, as docs/development.md says, with the
demo app deleted by the command printed there and the package renamed by `make rename`.

    make test-fork      builds one in a temporary directory and runs `make test` there

The suite must pass in it as it passes here: no test may need the demo, nor the package's
old name. That run is as long as `make test` itself, so CI runs it once, apart;
tests/test_rename.py builds a fork within `make test` and checks it in seconds.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.stack import REPO, copy_of_repository

FORK_NAME = "mysite"


def remove_demo_command():
    """The command that deletes the demo app, exactly as docs/development.md prints it."""
    guide = (REPO / "docs" / "development.md").read_text()
    return next(line for line in guide.splitlines() if line.startswith("rm -r myproject/demo"))


def make_fork(destination, name=FORK_NAME):
    """Copy this project to `destination`, delete the demo and rename the package to `name`,
    each the documented way; return the copy. It uses the test suite's virtualenv."""
    fork = copy_of_repository(destination)
    (fork / ".venv").symlink_to(sys.prefix)
    if (fork / "myproject" / "demo").is_dir():
        subprocess.run(remove_demo_command(), shell=True, cwd=fork, check=True)
    subprocess.run(["make", "--no-print-directory", "rename", f"NAME={name}"], cwd=fork, check=True,
                   stdout=subprocess.DEVNULL)
    return fork


def main():
    with tempfile.TemporaryDirectory(prefix="fork-") as directory:
        fork = make_fork(Path(directory) / "app")
        print(f"--- make test in a fork, with the demo deleted and the package renamed {FORK_NAME}: {fork}",
              flush=True)
        status = subprocess.run(["make", "--no-print-directory", "test"], cwd=fork).returncode
    sys.exit(status)


if __name__ == "__main__":
    main()
