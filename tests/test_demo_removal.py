"""The one command in docs/development.md for deleting the demo app leaves a working project,
which shows at / what that guide says. Skipped once the demo is deleted.

The whole suite in such a copy is `make test-fork` (tests/fork.py).
"""

import ast
import os
import subprocess
import sys

import pytest

from tests.fork import remove_demo_command
from tests.stack import REPO, copy_of_repository

if not (REPO / "myproject" / "demo").is_dir():
    pytest.skip("the demo app has been deleted", allow_module_level=True)

# Asks the project for / through Django's test client, and prints the status and the page.
GET_HOME_PAGE = """
import django
from django.test import Client
django.setup()
response = Client().get("/", headers={"Host": "localhost"})
print(response.status_code)
print(response.content.decode())
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with the demo deleted by the documented command."""
    project = copy_of_repository(tmp_path_factory.mktemp("removal") / "project")
    subprocess.run(remove_demo_command(), shell=True, cwd=project, check=True)
    return project


def run_python(project, *arguments, **env):
    """Python in `project` with the project's own settings and nothing else from here."""
    return subprocess.run([sys.executable, *arguments], cwd=project, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "myproject.settings", **env})


def test_removing_the_demo_app_leaves_a_project_that_passes_checks(project):
    assert not (project / "myproject" / "demo").exists()
    assert not list((project / "myproject").glob("*.bak"))
    assert "demo" not in (project / "myproject" / "settings.py").read_text()
    assert "demo" not in (project / "myproject" / "urls.py").read_text()
    check = run_python(project, "manage.py", "check")
    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout


def test_the_urls_file_imports_nothing_it_does_not_use(project):
    tree = ast.parse((project / "myproject" / "urls.py").read_text())
    imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}

    assert imported <= used, f"unused: {imported - used}"


def test_without_the_demo_the_home_page_is_a_404(project):
    result = run_python(project, "-c", GET_HOME_PAGE)

    assert result.returncode == 0, result.stderr
    status, page = result.stdout.split("\n", 1)
    assert status == "404"
    assert "Not Found" in page


def test_without_the_demo_the_home_page_under_debug_is_djangos_welcome_page(project):
    result = run_python(project, "-c", GET_HOME_PAGE, DJANGO_DEBUG="1")

    assert result.returncode == 0, result.stderr
    status, page = result.stdout.split("\n", 1)
    assert status == "200"
    assert "The install worked successfully!" in page
