"""`make rename NAME=...` (bin/rename_project.py) gives the package a name of your own.

A fork (tests/fork.py: a copy with the demo deleted and the package renamed, each the
documented way) keeps no trace of the old name and starts: Django's checks pass, gunicorn
loads the app the Procfile names, and the tests Heroku CI runs (app.json) pass. The whole
suite in a fork is `make test-fork`. Skipped once the package has been renamed: the rename
works once.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from rename_project import TEMPLATE_NAME, project_files

from tests.fork import FORK_NAME, make_fork
from tests.stack import REPO, copy_of_repository

if not (REPO / TEMPLATE_NAME).is_dir():
    pytest.skip(f"the package is no longer named {TEMPLATE_NAME}", allow_module_level=True)

# The one file that keeps the old name, and says so.
KEEPS_THE_OLD_NAME = "bin/rename_project.py"


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    return make_fork(tmp_path_factory.mktemp("fork") / "app")


def run_in(project, *command):
    """A command in `project` with its own settings, as a fresh shell would run it there."""
    return subprocess.run(command, cwd=project, capture_output=True, text=True,
                          env={"PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"})


def test_a_fork_keeps_the_old_name_in_no_file_but_the_renaming_script(fork):
    # Every path in the fork, found without the script's own list of files, which could
    # leave out the very files it forgot.
    paths = [path.relative_to(fork) for path in fork.rglob("*") if "__pycache__" not in path.parts]
    named = [str(path) for path in paths if TEMPLATE_NAME in str(path)]
    mentions = [str(path) for path in paths if (fork / path).is_file() and not (fork / path).is_symlink()
                and TEMPLATE_NAME.encode() in (fork / path).read_bytes()]

    assert named == []
    assert mentions == [KEEPS_THE_OLD_NAME]


def test_a_fork_passes_djangos_checks(fork):
    check = run_in(fork, sys.executable, "manage.py", "check")

    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout


def test_gunicorn_loads_the_app_a_forks_procfile_names(fork):
    web_command = re.search(r"^web: (.*)$", (fork / "Procfile").read_text(), flags=re.MULTILINE).group(1).split()
    gunicorn = web_command[web_command.index("gunicorn"):]

    assert gunicorn[-1] == f"{FORK_NAME}.wsgi"
    # Loads config/gunicorn.conf.py, which imports the package, and then the app.
    result = run_in(fork, *gunicorn, "--check-config")
    assert result.returncode == 0, result.stderr


def test_heroku_cis_test_command_passes_in_a_fork(fork):
    command = shlex.split(json.loads((fork / "app.json").read_text())["environments"]["test"]["scripts"]["test"])

    assert command[0] == "python"
    result = run_in(fork, sys.executable, *command[1:])
    assert result.returncode == 0, result.stdout[-5000:]


@pytest.fixture(scope="module")
def untouched_copy(tmp_path_factory):
    return copy_of_repository(tmp_path_factory.mktemp("refusals") / "app")


@pytest.mark.parametrize(("name", "reason"), [
    ("my-site", "not a name Python can import"),
    ("2fast", "not a name Python can import"),
    ("class", "not a name Python can import"),
    (TEMPLATE_NAME, f"named {TEMPLATE_NAME} already"),
    ("tests", "clashes with tests at the top of the project"),
    ("manage", "clashes with manage.py at the top of the project"),
    ("staticfiles", "clashes with staticfiles"),
    ("django", "a module Python imports already"),
    ("json", "a module Python imports already"),
])
def test_a_name_that_cannot_work_is_refused_and_nothing_changes(untouched_copy, name, reason):
    before = {path: path.read_bytes() for path in project_files(untouched_copy)}

    result = run_in(untouched_copy, sys.executable, "bin/rename_project.py", name)

    assert result.returncode != 0
    assert reason in result.stderr
    assert {path: path.read_bytes() for path in project_files(untouched_copy)} == before
