"""A fork: a copy of this project made its user's own, as docs/development.md says, with the
demo app deleted by the command printed there and the package renamed by `make rename`.

tests/test_rename.py builds one and checks it in seconds.
"""

import subprocess
import sys

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

