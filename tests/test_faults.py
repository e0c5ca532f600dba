"""Faults, end to end: a gunicorn worker killed mid-request, a view that raises, a view slower
than the timeout, and a database that is unreachable at boot or goes away mid-run. Each must
end in a clean answer and a clear log, and the stack must recover by itself."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import dj_database_url
import psycopg
import pytest
import requests

from tests.stack import OVER_HTTPS, REPO, free_port
from tests.tcp_proxy import TcpProxy

# Generous bounds that only catch a hang; nothing here should take more than a few seconds.
ANSWER_TIMEOUT = 20
# How long Django waits for PostgreSQL to answer (connect_timeout in myproject/settings.py).
DATABASE_CONNECT_TIMEOUT = 5


def get(stack, path):
    return requests.get(stack.url + path, headers=OVER_HTTPS, timeout=ANSWER_TIMEOUT,
                        allow_redirects=False)


def assert_is_our_unavailable_page(response):
    # Our config/errors/unavailable.html, not nginx's default page.
    assert "Temporarily unavailable" in response.text
    assert len(response.content) < 2048
    assert "nginx" not in response.text


def test_a_worker_killed_mid_request_gives_a_502_page_and_the_next_request_succeeds(production_stack):
    response = answer_once_its_worker_is_killed(production_stack)

    assert response.status_code == 502
    assert_is_our_unavailable_page(response)
    assert get(production_stack, "/").status_code == 200


def answer_once_its_worker_is_killed(stack):
    """Send a slow request, SIGKILL the gunicorn worker running it, and return the answer."""
    token = uuid.uuid4().hex
    in_flight = InFlight(stack, f"/misbehave/slow/4/?token={token}")
    worker = wait_for_worker_serving(stack, token)
    assert parent_of(worker) == stack.child_pids()["app"], "only ever kill our own gunicorn's worker"
    os.kill(worker, signal.SIGKILL)
    return in_flight.result()


class InFlight:
    """A request running in a thread, so that the test can act while it is in flight."""

    def __init__(self, stack, path):
        self.response = None
        self.thread = threading.Thread(target=self._run, args=(stack, path))
        self.thread.start()

    def _run(self, stack, path):
        self.response = get(stack, path)

    def result(self):
        self.thread.join(ANSWER_TIMEOUT)
        assert self.response is not None, "the request in flight never got an answer"
        return self.response


def wait_for_worker_serving(stack, token):
    """The pid of the gunicorn worker running the slow view for `token`, from its log line."""
    pattern = re.compile(rf"slow-view-started pid=(\d+) path=\S*token={token}")
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        found = pattern.search(stack.output())
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"the slow view never started:\n{stack.output()}")


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stat:
        # The second field (the command) is in parentheses and may hold spaces; ppid follows it.
        return int(stat.read().rpartition(")")[2].split()[1])


def test_a_view_that_raises_gives_a_500_page_and_one_logged_traceback(production_stack):
    token = uuid.uuid4().hex

    response = get(production_stack, f"/misbehave/raise/{token}/")

    assert response.status_code == 500
    assert "Server Error (500)" in response.text
    assert token not in response.text and "Traceback" not in response.text
    log = production_stack.wait_for_output(f"RuntimeError: deliberate failure {token}")
    assert log.count(f"RuntimeError: deliberate failure {token}") == 1
    assert "Traceback (most recent call last)" in log


def test_a_view_slower_than_the_timeout_ends_as_a_clean_504(production_stack):
    # The stack's nginx waits 5 s here (20 s in production, below the router's 30 s: see
    # tests/test_nginx_config.py); the view would take 8.
    response = get(production_stack, "/misbehave/slow/8/")

    assert response.status_code == 504
    assert_is_our_unavailable_page(response)


def test_the_release_phase_fails_clearly_when_the_database_is_unreachable():
    closed_port = free_port()  # nothing listens there
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port}/app"}

    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=ANSWER_TIMEOUT)

    assert result.returncode != 0
    assert f'connection to server at "127.0.0.1", port {closed_port} failed: Connection refused' in result.stderr


@contextlib.contextmanager
def silent_database_url():
    """A PostgreSQL URL for a server that never answers. Its socket is listened on but never
    accepted from: the kernel completes the TCP handshake and then nothing more, like a
    server behind a firewall that drops packets."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        yield f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/app"


def test_the_release_phase_gives_up_on_a_database_that_never_answers():
    with silent_database_url() as url:
        started = time.monotonic()
        # Twice the timeout leaves time for Python and Django to start, not for a timeout of 10 s.
        result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO,
                                env={"PATH": os.environ["PATH"], "DATABASE_URL": url},
                                capture_output=True, text=True, timeout=2 * DATABASE_CONNECT_TIMEOUT)
        waited = time.monotonic() - started

    assert result.returncode != 0
    assert "timeout expired" in result.stderr
    assert waited >= DATABASE_CONNECT_TIMEOUT, "it gave up before the timeout, so for another reason"


def test_a_request_gives_up_on_a_database_that_never_answers(start_stack):
    # nginx would answer 504 after 10 s: a 500 before that is Django giving up on its own.
    with silent_database_url() as url:
        stack = start_stack({"DATABASE_URL": url, "NGINX_PROXY_READ_TIMEOUT": "10s"}, migrate=False)
        started = time.monotonic()
        status = database_page_status(stack)
        waited = time.monotonic() - started

    assert status == 500
    stack.wait_for_output("timeout expired")
    assert waited >= DATABASE_CONNECT_TIMEOUT, "it gave up before the timeout, so for another reason"


@pytest.fixture
def postgres_database():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards. Yields its settings.

    On the server DATABASE_URL names, or else on 127.0.0.1:5432 as user postgres (CI's).
    """
    server = postgres_server()
    name = f"faults_{uuid.uuid4().hex}"
    with psycopg.connect(**server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**server, "dbname": name}
    finally:
        with psycopg.connect(**server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def postgres_server():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    database = dj_database_url.parse(url)
    server = {"host": database["HOST"], "port": int(database["PORT"] or 5432), "user": database["USER"],
              "password": database["PASSWORD"] or None, "dbname": database["NAME"]}
    try:
        psycopg.connect(**server, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        if os.environ.get("DATABASE_URL", "").startswith("postgres") or os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server answers on 127.0.0.1:5432 and DATABASE_URL is not a postgres URL: {error}")
    return server


@contextlib.contextmanager
def role_with_a_database(name_prefix, connection_limit=None):
    """A new role, with a CONNECTION LIMIT when one is given (a plan's, say), and a new
    database it owns, on the test server; yields the URL to connect as that role, and drops
    both afterwards."""
    server = postgres_server()
    name = f"{name_prefix}_{uuid.uuid4().hex}"
    password = uuid.uuid4().hex  # for servers that ask for one; trust auth ignores it
    limit = f"CONNECTION LIMIT {connection_limit}" if connection_limit is not None else ""
    with psycopg.connect(**server, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE \"{name}\" LOGIN {limit} PASSWORD '{password}'")
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    try:
        yield f"postgres://{name}:{password}@{server['host']}:{server['port']}/{name}"
    finally:
        with psycopg.connect(**server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def database_behind_proxy(postgres_database):
    """A migrated PostgreSQL database and a TcpProxy to it; yields (proxy, its DATABASE_URL)."""
    credentials = postgres_database["user"] + (f":{postgres_database['password']}" if postgres_database["password"] else "")
    address = f"{postgres_database['host']}:{postgres_database['port']}/{postgres_database['dbname']}"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=REPO, check=True,
                   env={**os.environ, "DATABASE_URL": f"postgres://{credentials}@{address}"})
    proxy = TcpProxy((postgres_database["host"], postgres_database["port"]))
    proxy.restore()
    try:
        yield proxy, f"postgres://{credentials}@127.0.0.1:{proxy.port}/{postgres_database['dbname']}"
    finally:
        proxy.cut()


def database_page_status(stack):
    return requests.get(stack.url + "/database/", timeout=ANSWER_TIMEOUT).status_code


def test_database_unreachable_at_boot_gives_500s_with_a_clear_log_then_recovers(database_behind_proxy, start_stack):
    proxy, url = database_behind_proxy
    proxy.cut()

    stack = start_stack({"DATABASE_URL": url}, migrate=False)
    assert requests.get(stack.url + "/", timeout=ANSWER_TIMEOUT).status_code == 200  # needs no database
    assert database_page_status(stack) == 500
    assert "OperationalError" in stack.wait_for_output("Connection refused")

    proxy.restore()
    assert database_page_status(stack) == 200


def test_database_lost_mid_run_gives_500s_then_recovers_when_it_is_back(database_behind_proxy, start_stack):
    proxy, url = database_behind_proxy
    stack = start_stack({"DATABASE_URL": url}, migrate=False)
    assert database_page_status(stack) == 200

    proxy.cut()  # also drops the connections Django keeps open between requests
    assert database_page_status(stack) == 500

    proxy.restore()
    assert database_page_status(stack) == 200
