"""myproject/settings.py reads everything that differs between machines from the
environment. Each case imports the settings in a fresh interpreter with exactly the
environment given, as a dyno or `make run` would."""

import json
import os
import re
import secrets
import subprocess
import sys

from tests.stack import REPO

SHOW_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": settings.CSRF_TRUSTED_ORIGINS,
    "DATABASE": settings.DATABASES["default"],
    "STORAGES": settings.STORAGES,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": settings.SECURE_HSTS_PRELOAD,
    "STARTUP_WARNINGS": settings.STARTUP_WARNINGS,
    "STARTUP_INFO": settings.STARTUP_INFO,
}, default=str))
"""

# What a dyno has: DYNO set by Heroku, a real secret key, and Heroku Postgres's DATABASE_URL.
HEROKU_ENV = {"DYNO": "web.1", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
              "DATABASE_URL": "postgres://user:pw@db.example.com:5432/app"}


def load_settings(**env):
    result = run_settings(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_settings(**env):
    clean_env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "myproject.settings", **env}
    return subprocess.run([sys.executable, "-c", SHOW_SETTINGS], cwd=REPO, env=clean_env,
                          capture_output=True, text=True)


def test_debug_is_off_unless_asked_for():
    assert load_settings()["DEBUG"] is False
    assert load_settings(DJANGO_DEBUG="1")["DEBUG"] is True
    assert load_settings(DJANGO_DEBUG="true")["DEBUG"] is True
    assert load_settings(DJANGO_DEBUG="0")["DEBUG"] is False


def test_secret_key_comes_from_the_environment():
    assert load_settings(DJANGO_SECRET_KEY="s3cret")["SECRET_KEY"] == "s3cret"


def test_a_development_key_is_used_locally_when_none_is_set_with_a_warning():
    result = run_settings()
    settings = json.loads(result.stdout)

    assert "insecure" in settings["SECRET_KEY"]
    assert any("DJANGO_SECRET_KEY is not set" in warning for warning in settings["STARTUP_WARNINGS"])
    # Logged once by gunicorn's first worker (tests/test_make_run.py), not at every import.
    assert result.stderr == ""


def test_no_warning_when_a_secret_key_is_set():
    assert load_settings(DJANGO_SECRET_KEY="s3cret")["STARTUP_WARNINGS"] == []


def test_on_heroku_a_missing_secret_key_stops_the_boot_with_instructions():
    result = run_settings(DYNO="web.1")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "heroku config:set" in result.stderr


def test_the_secret_key_command_it_gives_runs_where_python3_is_the_only_python(tmp_path):
    # Debian 12 and Ubuntu have python3 but no `python`; the README gives the same command.
    (tmp_path / "python3").symlink_to(sys.executable)
    boot_error = run_settings(DYNO="web.1").stderr
    readme = (REPO / "README.md").read_text()

    for text in (boot_error, readme):
        (command,) = re.findall(r'DJANGO_SECRET_KEY="\$\((.+?)\)"', text)
        result = subprocess.run(["/bin/sh", "-c", command], env={"PATH": str(tmp_path)},
                                capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stderr)
        assert re.fullmatch(r"[A-Za-z0-9_-]{60,}\n", result.stdout)


def test_heroku_ci_runs_without_a_secret_key():
    # Heroku CI sets both DYNO and CI; it is a test run, not production.
    assert load_settings(DYNO="test.1", CI="true")["SECRET_KEY"]


def test_sqlite_is_used_when_database_url_is_unset():
    database = load_settings()["DATABASE"]

    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"].endswith("db.sqlite3")


def test_postgres_comes_from_database_url_with_checked_connections():
    # How long connections are kept: tests/test_database_budget.py.
    database = load_settings(DATABASE_URL="postgres://user:pw@db.example.com:5433/app")["DATABASE"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.example.com", 5433, "app")
    assert database["CONN_HEALTH_CHECKS"] is True


def test_postgres_requires_tls_on_heroku():
    database = load_settings(**HEROKU_ENV)["DATABASE"]

    assert database["OPTIONS"]["sslmode"] == "require"


def test_postgres_does_not_require_tls_locally():
    database = load_settings(DATABASE_URL="postgres://postgres@127.0.0.1:5432/test")["DATABASE"]

    assert "sslmode" not in database.get("OPTIONS", {})


def test_sqlite_gets_no_tls_option_on_heroku():
    # sqlite3.connect() would fail on every request with an unexpected `sslmode` argument.
    database = load_settings(**(HEROKU_ENV | {"DATABASE_URL": "sqlite:////tmp/db.sqlite3"}))["DATABASE"]

    assert "OPTIONS" not in database


def test_allowed_hosts_default_to_local_addresses_and_herokuapp_com():
    hosts = load_settings()["ALLOWED_HOSTS"]

    assert ".herokuapp.com" in hosts
    assert {"localhost", "127.0.0.1"} <= set(hosts)


def test_allowed_hosts_and_csrf_origins_are_comma_separated_lists():
    settings = load_settings(DJANGO_ALLOWED_HOSTS="www.example.com, example.com",
                             DJANGO_CSRF_TRUSTED_ORIGINS="https://www.example.com")

    assert settings["ALLOWED_HOSTS"] == ["www.example.com", "example.com"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://www.example.com"]


def test_static_files_are_compressed_and_hashed_by_whitenoise():
    storage = load_settings()["STORAGES"]["staticfiles"]["BACKEND"]

    assert storage == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_on_heroku_http_is_redirected_and_cookies_are_secure():
    settings = load_settings(**HEROKU_ENV)

    assert settings["SECURE_SSL_REDIRECT"] is True
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["CSRF_COOKIE_SECURE"] is True


def test_hsts_is_on_for_a_year_on_heroku_with_subdomains_and_preload():
    settings = load_settings(**HEROKU_ENV)

    assert settings["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert settings["SECURE_HSTS_PRELOAD"] is True


def test_hsts_is_configurable_from_the_environment():
    settings = load_settings(**HEROKU_ENV, DJANGO_HSTS_SECONDS="3600", DJANGO_HSTS_INCLUDE_SUBDOMAINS="0",
                             DJANGO_HSTS_PRELOAD="false")

    assert settings["SECURE_HSTS_SECONDS"] == 3600
    assert settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert settings["SECURE_HSTS_PRELOAD"] is False


def test_locally_plain_http_is_served_without_redirects_or_hsts():
    # `make run` has no TLS in front of it: a redirect to https would lead nowhere.
    settings = load_settings()

    assert settings["SECURE_SSL_REDIRECT"] is False
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["SECURE_HSTS_SECONDS"] == 0


def deploy_check(**env):
    clean_env = {"PATH": os.environ["PATH"], **env}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=clean_env, capture_output=True, text=True)


def test_djangos_deployment_checklist_passes_with_the_heroku_environment():
    result = deploy_check(**HEROKU_ENV)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_djangos_deployment_checklist_flags_the_local_environment():
    # The check above means something only if the same check fails without the settings it needs.
    result = deploy_check()

    assert result.returncode != 0
    assert "security.W008" in result.stderr  # SECURE_SSL_REDIRECT
    assert "security.W009" in result.stderr  # the development SECRET_KEY
