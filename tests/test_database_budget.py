"""Many dynos, one database (docs/database.md).

A dyno never falls back to a SQLite file silently, and when the dynos together want more
PostgreSQL connections than the plan allows, requests get a 503 with Retry-After instead of a
500, and every dyno answers again as soon as the load is gone. Several stacks started side
by side stand for several dynos; a role with a CONNECTION LIMIT stands for the plan's limit.
The PostgreSQL tests skip when no PostgreSQL server answers (see postgres_server).
"""

import contextlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.conftest import running_stack, temporary_runtime_dir
from tests.stack import OVER_HTTPS, PRODUCTION_ENV, REPO, STARTUP_TIMEOUT, Stack
from tests.test_faults import role_with_a_database
from tests.test_settings import load_settings

# Three dynos of two workers each (Standard-1X) against a plan with room for three.
STACKS = 3
WORKERS_PER_STACK = 2
CONNECTION_LIMIT = 3
# The load: this many clients at once, each sending requests back to back, to all stacks.
CLIENTS = 12
REQUESTS_PER_STACK = 60
# Bounds that only catch a hang; each request and the recovery take well under a second.
ANSWER_TIMEOUT = 20
RECOVERY_TIMEOUT = 10

ADD_POSTGRES = "heroku addons:create heroku-postgresql:essential-0"
SQLITE_WARNING = "DATABASE_URL is a SQLite file"
OUT_OF_CONNECTIONS_LOG = "the database refused a connection"


# --- No silent SQLite on a dyno ----------------------------------------------------------


def test_the_release_phase_on_a_dyno_without_database_url_stops_and_says_how_to_add_postgres():
    env = {"PATH": "/usr/bin:/bin", "DYNO": "release.1", "DJANGO_SECRET_KEY": "x"}

    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=ANSWER_TIMEOUT)

    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr
    assert ADD_POSTGRES in result.stderr


def test_a_web_dyno_without_database_url_refuses_to_boot(runtime_dir):
    stack = Stack(runtime_dir, extra_env=PRODUCTION_ENV)
    del stack.env["DATABASE_URL"]
    try:
        # gunicorn's workers fail to load the app, and gunicorn and then bin/start-nginx exit;
        # nginx may or may not have answered once before that.
        with contextlib.suppress(AssertionError):
            stack.start()
        assert stack.process.wait(STARTUP_TIMEOUT) != 0
        assert ADD_POSTGRES in stack.output()
    finally:
        stack.clean_up()


def test_a_dyno_with_an_explicit_sqlite_url_boots_with_a_warning(start_stack):
    stack = start_stack(PRODUCTION_ENV)  # DATABASE_URL=sqlite:///... in a temporary directory

    assert stack.get("/", headers=OVER_HTTPS).status_code == 200
    # Once for the web process, not once per worker (WEB_CONCURRENCY=2), counted once every
    # worker has logged what it logs as it boots.
    stack.wait_until_every_worker_has_answered()
    assert stack.output().count(SQLITE_WARNING) == 1


def test_no_sqlite_warning_locally():
    assert not any(SQLITE_WARNING in warning for warning in load_settings()["STARTUP_WARNINGS"])


def test_heroku_ci_without_database_url_still_loads_the_settings():
    # Heroku CI sets DYNO and CI together; app.json gives it an in-dyno PostgreSQL anyway.
    assert load_settings(DYNO="test.1", CI="true")["DATABASE"]["ENGINE"] == "django.db.backends.sqlite3"


# --- How long a worker keeps its connection ---------------------------------------------


def test_connections_are_closed_after_each_request_by_default():
    database = load_settings(DATABASE_URL="postgres://user:pw@db.example.com:5432/app")["DATABASE"]

    assert database["CONN_MAX_AGE"] == 0


def test_django_conn_max_age_sets_how_long_a_connection_is_kept():
    database = load_settings(DATABASE_URL="postgres://user:pw@db.example.com:5432/app",
                             DJANGO_CONN_MAX_AGE="600")["DATABASE"]

    assert database["CONN_MAX_AGE"] == 600


# --- Out of connections: 503, never 500 -------------------------------------------------


@pytest.fixture
def limited_database_url():
    """A new role that may hold CONNECTION_LIMIT connections at once, and a new database it
    owns, on the test server; both dropped afterwards. Yields the URL to connect as that role."""
    with role_with_a_database("budget", CONNECTION_LIMIT) as url:
        yield url


def visit(stack):
    """GET the tests' /database/ page, which writes to the database and reads from it."""
    return requests.get(stack.url + "/database/", timeout=ANSWER_TIMEOUT)


def request_log_lines(stack):
    """The lines Django logged about requests: 4xx and 5xx answers, and their tracebacks."""
    return [line for line in stack.output().splitlines() if "logger=django.request" in line]


def test_a_request_that_finds_no_free_connection_gets_a_503_then_the_next_one_succeeds(
        limited_database_url, start_stack):
    stack = start_stack({"DATABASE_URL": limited_database_url})
    assert visit(stack).status_code == 200

    # Something else (other dynos, a `heroku run`) holds every connection the role may have.
    held = [psycopg.connect(limited_database_url) for _ in range(CONNECTION_LIMIT)]
    try:
        refused = visit(stack)
    finally:
        for connection in held:
            connection.close()

    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert "Temporarily unavailable" in refused.text and len(refused.content) < 2048
    assert answers_200_within(stack, RECOVERY_TIMEOUT) is not None
    # One line for the request, from django.request, that names the cause, and no traceback.
    # Read once the stack has stopped: then every line it will print has been printed.
    assert stack.stop() == 0
    [log_line] = request_log_lines(stack)
    assert OUT_OF_CONNECTIONS_LOG in log_line and "too many connections for role" in log_line
    assert "level=ERROR" in log_line
    assert "Traceback" not in stack.output()


def test_several_dynos_over_the_connection_limit_answer_200_or_503_never_500_and_recover(
        limited_database_url):
    env = {"DATABASE_URL": limited_database_url, "WEB_CONCURRENCY": str(WORKERS_PER_STACK)}
    with contextlib.ExitStack() as cleanup:
        stacks = [cleanup.enter_context(running_stack(cleanup.enter_context(temporary_runtime_dir()), extra_env=env))
                  for _ in range(STACKS)]

        responses = load_all(stacks)

        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        assert statuses.count(503) > 0, "the load never reached the limit, so this test proved nothing"
        assert statuses.count(200) > 0
        assert all(response.headers["Retry-After"].isdigit() for response in responses if response.status_code == 503)

        # The load is over: with the default DJANGO_CONN_MAX_AGE=0 no idle worker holds a
        # connection, so every dyno answers 200 again at once.
        for stack in stacks:
            assert answers_200_within(stack, RECOVERY_TIMEOUT) is not None

        # One log line per 503, naming the cause, and no tracebacks: read once the stacks
        # have stopped, when every line they will print has been printed.
        assert [stack.stop() for stack in stacks] == [0] * STACKS
        log_lines = [line for stack in stacks for line in request_log_lines(stack)]
        assert len(log_lines) == statuses.count(503)
        assert all(OUT_OF_CONNECTIONS_LOG in line for line in log_lines)
        assert not any("Traceback" in stack.output() for stack in stacks)


def load_all(stacks):
    """CLIENTS requests at a time, REQUESTS_PER_STACK to each stack, interleaved."""
    targets = [stack for _ in range(REQUESTS_PER_STACK) for stack in stacks]
    with ThreadPoolExecutor(CLIENTS) as clients:
        return list(clients.map(visit, targets))


def answers_200_within(stack, seconds):
    """Seconds until /database/ answers 200, asking every 0.1 s; None if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if visit(stack).status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    return None
