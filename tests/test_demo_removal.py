"""The one command in docs/development.md for deleting the demo app leaves a working project."""

import subprocess
import sys

from tests.stack import REPO, copy_of_repository


def remove_demo_command():
    """The command exactly as docs/development.md prints it."""
    guide = (REPO / "docs" / "development.md").read_text()
    return next(line for line in guide.splitlines() if line.startswith("rm -r myproject/demo"))


def test_removing_the_demo_app_leaves_a_project_that_passes_checks(tmp_path):
    project = copy_of_repository(tmp_path / "project")

    subprocess.run(remove_demo_command(), shell=True, cwd=project, check=True)

    assert not (project / "myproject" / "demo").exists()
    assert not list((project / "myproject").glob("*.bak"))
    assert "demo" not in (project / "myproject" / "settings.py").read_text()
    check = subprocess.run([sys.executable, "manage.py", "check"], cwd=project, capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "myproject.settings"})
    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout
