"""app.json, which the Heroku Button and Heroku CI read: https://devcenter.heroku.com/articles/app-json-schema"""

import json
import shlex

from tests.stack import REPO

APP = json.loads((REPO / "app.json").read_text())


def test_app_json_has_a_name_and_description_for_the_button_page():
    assert APP["name"]
    assert APP["description"]


def test_buildpacks_are_nginx_first_and_python_last():
    # The last buildpack is the app's language; nginx only adds bin/nginx before it.
    assert [buildpack["url"] for buildpack in APP["buildpacks"]] == ["heroku-community/nginx", "heroku/python"]


def test_the_secret_key_is_generated_once_when_the_app_is_created():
    # Without it, settings.py stops the boot on Heroku.
    assert APP["env"]["DJANGO_SECRET_KEY"]["generator"] == "secret"


def test_a_postgres_database_is_provisioned():
    assert [addon["plan"] for addon in APP["addons"]] == ["heroku-postgresql:essential-0"]


def test_the_release_phase_migrates_the_database():
    # app.json cannot declare a release phase; the Procfile's `release` line runs on every
    # deploy, the Button's first one included.
    procfile = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())

    assert procfile["release"].strip() == "python manage.py migrate --noinput"


def test_heroku_ci_installs_the_test_tools_and_runs_tests_that_exist():
    test = APP["environments"]["test"]
    command = shlex.split(test["scripts"]["test"])
    named_files = [part for part in command if part.startswith("tests/")]

    assert "requirements-dev.txt" in test["scripts"]["test-setup"]
    assert command[:3] == ["python", "-m", "pytest"]
    assert named_files and all((REPO / path).is_file() for path in named_files)
    assert any(addon.startswith("heroku-postgresql:") for addon in test["addons"])
