"""Past the connection limit through PgBouncer (docs/database.md, "When you outgrow the budget").

The web process connects through the connection pooler when one is set up, and everything
else (the release phase's migrate, `heroku run`) connects directly. Here a real PgBouncer
(tests/pgbouncer.py) runs in transaction pooling mode in front of a role whose CONNECTION
LIMIT of 3 stands for a small plan, with a pool of 2 server connections: two stacks of four
workers (two Standard-2X dynos) that get 503s when they connect directly answer every request
through it. The tests skip where PostgreSQL or pgbouncer is missing, and fail instead in CI.
"""

import contextlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.conftest import running_stack, temporary_runtime_dir
from tests.pgbouncer import running_pgbouncer
from tests.stack import OVER_HTTPS, PRODUCTION_ENV, REPO, gunicorn_settings, procfile_line
from tests.test_database_budget import CONNECTION_LIMIT, limited_database_url  # noqa: F401 (a fixture)
from tests.test_settings import HEROKU_ENV, load_settings

# Server connections PgBouncer may open to the role: fewer than it may have.
POOL_SIZE = 2
# Two Standard-2X dynos: eight workers, each wanting a connection, on a role allowed three.
STACKS = 2
WORKERS_PER_STACK = 4
# The load: this many clients at once, each sending requests back to back, to both stacks.
CLIENTS = 12
REQUESTS_PER_STACK = 60
# Only catches a hang: a request that waits for one of the pool's connections waits for
# milliseconds.
ANSWER_TIMEOUT = 20

# Writes a row, then reads rows back through QuerySet.iterator() (tests/views.py).
ROUND_TRIP = "/database/round-trip/"
POOLER_STARTUP_LINE = "through the connection pooler"
# What config/gunicorn.conf.py puts in the web process's environment (raw_env), which the
# release phase and one-off commands never read.
WEB_PROCESS_ENV = dict(variable.split("=", 1) for variable in gunicorn_settings()["raw_env"])
POOLED_URL = "postgres://app:pool-secret@pooler.example.com:5432/app"
ON_DYNO_URL = "postgres://app:pool-secret@127.0.0.1:6000/db1"


@pytest.fixture
def pooler(limited_database_url):  # noqa: F811 (the fixture imported above)
    """PgBouncer in front of the limited role's database, with a pool smaller than its limit;
    pooler.direct_url connects to the database directly."""
    assert POOL_SIZE < CONNECTION_LIMIT
    with running_pgbouncer(limited_database_url, pool_size=POOL_SIZE) as running:
        yield running


def round_trip(stack, headers=None):
    return requests.get(stack.url + ROUND_TRIP, headers=headers, timeout=ANSWER_TIMEOUT)


# --- Which database each process connects to ---------------------------------------------


def test_only_the_web_process_connects_through_the_pool_url_and_without_server_side_cursors():
    env = {"DATABASE_URL": "postgres://app:secret@db.example.com:5432/app", "DATABASE_CONNECTION_POOL_URL": POOLED_URL}

    web = load_settings(**env, **WEB_PROCESS_ENV)["DATABASE"]
    release = load_settings(**env)["DATABASE"]  # the release phase reads no gunicorn config

    assert (web["HOST"], web["DISABLE_SERVER_SIDE_CURSORS"]) == ("pooler.example.com", True)
    assert (release["HOST"], release["DISABLE_SERVER_SIDE_CURSORS"]) == ("db.example.com", False)


def test_without_a_pooler_the_web_process_connects_directly_with_server_side_cursors():
    database = load_settings(DATABASE_URL="postgres://app:secret@db.example.com:5432/app", **WEB_PROCESS_ENV)["DATABASE"]

    assert (database["HOST"], database["DISABLE_SERVER_SIDE_CURSORS"]) == ("db.example.com", False)


def test_a_web_process_started_without_the_gunicorn_config_warns_that_it_ignores_the_pooler():
    env = {"DJANGO_SECRET_KEY": "a-secret", "DATABASE_CONNECTION_POOL_URL": POOLED_URL}

    [warning] = load_settings(**env)["STARTUP_WARNINGS"]

    assert "DJANGO_USE_CONNECTION_POOL=1" in warning and "config/gunicorn.conf.py" in warning
    assert load_settings(**env, **WEB_PROCESS_ENV)["STARTUP_WARNINGS"] == []


def test_on_a_dyno_heroku_s_pooler_needs_tls_and_the_on_dyno_pgbouncer_on_loopback_none():
    # bin/start-pgbouncer points DATABASE_URL at its PgBouncer and sets DATABASE_URL_PGBOUNCER.
    heroku_pooling = load_settings(**HEROKU_ENV, DATABASE_CONNECTION_POOL_URL=POOLED_URL, **WEB_PROCESS_ENV)
    on_dyno = load_settings(**{**HEROKU_ENV, "DATABASE_URL": ON_DYNO_URL}, DATABASE_URL_PGBOUNCER=ON_DYNO_URL,
                            **WEB_PROCESS_ENV)

    assert heroku_pooling["DATABASE"]["OPTIONS"]["sslmode"] == "require"
    assert on_dyno["DATABASE"]["PORT"] == 6000
    assert on_dyno["DATABASE"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert "sslmode" not in on_dyno["DATABASE"]["OPTIONS"]


def test_the_startup_line_names_the_database_url_without_its_password():
    env = {"DATABASE_URL": "postgres://app:direct-secret@db.example.com:5432/app?sslmode=require",
           "DATABASE_CONNECTION_POOL_URL": POOLED_URL}

    assert load_settings(**env, **WEB_PROCESS_ENV)["STARTUP_INFO"] == [
        "Database: postgres://app@pooler.example.com:5432/app, through the connection pooler "
        "(transaction pooling: no server-side cursors)."]
    assert load_settings(**env)["STARTUP_INFO"] == ["Database: postgres://app@db.example.com:5432/app."]


# --- Through a real PgBouncer ------------------------------------------------------------


def test_eight_workers_on_a_three_connection_role_serve_every_request_through_pgbouncer(pooler):
    direct = {"DATABASE_URL": pooler.direct_url}
    pooled = {**direct, "DATABASE_CONNECTION_POOL_URL": pooler.url}

    # Connected directly, the same load runs out of connections: it is heavy enough.
    statuses = load_two_dynos(direct)
    assert 503 in statuses, "the load never reached the role's limit, so this test would prove nothing"

    statuses = load_two_dynos(pooled)

    counts = {status: statuses.count(status) for status in set(statuses)}
    assert statuses == [200] * len(statuses), f"{counts}; PgBouncer's log ends:\n{pooler.log()[-3000:]}"
    # PgBouncer's own count: every request went through it (two transactions each, at least).
    assert pooler.transactions() >= 2 * len(statuses)


def load_two_dynos(env):
    """Start STACKS stacks of WORKERS_PER_STACK workers with `env`, load them, stop them;
    the statuses of the load's responses."""
    env = {**env, "DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": str(WORKERS_PER_STACK)}
    with contextlib.ExitStack() as cleanup:
        stacks = [cleanup.enter_context(running_stack(cleanup.enter_context(temporary_runtime_dir()), extra_env=env))
                  for _ in range(STACKS)]
        targets = [stack for _ in range(REQUESTS_PER_STACK) for stack in stacks]
        with ThreadPoolExecutor(CLIENTS) as clients:
            return [response.status_code for response in clients.map(round_trip, targets)]


def open_server_connections(pooler, count):
    """Leave `count` idle server connections in PgBouncer's pool, by holding as many
    transactions open at once. It hands them out in turn (tests/pgbouncer.py), so that each
    of a client's transactions lands on another one."""
    clients = [psycopg.connect(pooler.url) for _ in range(count)]
    try:
        for client in clients:
            client.execute("SELECT 1")  # begins a transaction, which holds a server connection
    finally:
        for client in clients:
            client.commit()
            client.close()


@pytest.mark.parametrize("setup", ["heroku-connection-pooling", "on-dyno-pgbouncer"])
def test_a_queryset_read_with_iterator_works_through_the_pooler(setup, pooler, start_stack):
    if setup == "heroku-connection-pooling":
        stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": pooler.direct_url,
                             "DATABASE_CONNECTION_POOL_URL": pooler.url})
        headers = None
    else:
        # What bin/start-pgbouncer hands the web process, on a dyno, where the settings ask
        # every other PostgreSQL server for TLS. The release phase, which it does not start,
        # migrates directly.
        migrate(pooler.direct_url)
        stack = start_stack({**PRODUCTION_ENV, "DATABASE_URL": pooler.url, "DATABASE_URL_PGBOUNCER": pooler.url},
                            migrate=False)
        headers = OVER_HTTPS
    open_server_connections(pooler, POOL_SIZE)

    pages = [round_trip(stack, headers) for _ in range(2 * POOL_SIZE)]

    assert [page.status_code for page in pages] == [200] * len(pages), stack.output()
    assert pages[-1].text == f"wrote 1 row, read {len(pages)}"


def migrate(database_url):
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=REPO, check=True,
                   env={**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "myproject.settings"})


def test_the_web_process_logs_which_pooler_it_uses_without_the_password(pooler, start_stack):
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": pooler.direct_url,
                         "DATABASE_CONNECTION_POOL_URL": pooler.url})

    stack.wait_until_every_worker_has_answered()
    assert stack.stop() == 0

    [line] = [line for line in stack.stderr_lines() if POOLER_STARTUP_LINE in line]
    assert f"msg=\"Database: {pooler.url_without_password}, {POOLER_STARTUP_LINE}" in line
    assert "level=INFO logger=myproject.settings" in line
    assert pooler.database["PASSWORD"] not in stack.output()


def test_the_release_phase_migrates_through_the_direct_url_never_through_the_pooler(pooler):
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
           "DJANGO_SETTINGS_MODULE": "myproject.settings",
           "DATABASE_URL": pooler.direct_url, "DATABASE_CONNECTION_POOL_URL": pooler.url}

    subprocess.run(["sh", "-c", procfile_line("release")], cwd=REPO, env=env, check=True, capture_output=True)

    with psycopg.connect(pooler.direct_url) as database:
        assert database.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
    assert pooler.transactions() == 0, "PgBouncer carried the migration's transactions"
    # The count is PgBouncer's own, and it counts: a query made with the web process's
    # variables goes through it.
    subprocess.run([sys.executable, "manage.py", "shell", "-c", "from django.db import connection; "
                    "connection.cursor().execute('SELECT 1')"], cwd=REPO, env={**env, **WEB_PROCESS_ENV}, check=True)
    assert pooler.transactions() > 0
