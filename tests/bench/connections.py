"""What a kept database connection saves: `python -m tests.bench.connections` in the virtualenv.

Starts the real stack (nginx, gunicorn, Django) once with DJANGO_CONN_MAX_AGE=0, which opens
a PostgreSQL connection per request, and once with 600, which keeps it; times the same
sequential requests to the demo's /visits/ page (one insert, one count, one select) in each;
and prints the median and 90th percentile per request. The figures are in docs/database.md.

It needs a PostgreSQL server: the one DATABASE_URL names, or else postgres@127.0.0.1:5432.
It works in a database of its own, dropped at the end. About half a minute.
"""

import contextlib
import statistics
import time
import uuid

import psycopg
import requests

from tests.conftest import running_stack as tests_running_stack, temporary_runtime_dir
from tests.test_faults import postgres_server

WARM_UP_REQUESTS = 50
TIMED_REQUESTS = 1000
SETTINGS_COMPARED = ("0", "600")


@contextlib.contextmanager
def scratch_database():
    """A fresh database on the test server, as a URL, dropped afterwards."""
    server = postgres_server()
    name = f"bench_connections_{uuid.uuid4().hex}"
    with psycopg.connect(**server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    credentials = server["user"] + (f":{server['password']}" if server["password"] else "")
    try:
        yield f"postgres://{credentials}@{server['host']}:{server['port']}/{name}"
    finally:
        with psycopg.connect(**server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_stack(database_url, conn_max_age):
    """A stack as the tests start one (tests/conftest.py), on the given database."""
    env = {"DATABASE_URL": database_url, "DJANGO_CONN_MAX_AGE": conn_max_age}
    with temporary_runtime_dir() as path, tests_running_stack(path, extra_env=env) as stack:
        yield stack


def milliseconds_per_request(stack):
    """Times of sequential requests over one keep-alive connection to nginx, in ms."""
    times = []
    with requests.Session() as session:
        for number in range(WARM_UP_REQUESTS + TIMED_REQUESTS):
            started = time.perf_counter()
            response = session.get(stack.url + "/visits/", timeout=10)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.status_code
            if number >= WARM_UP_REQUESTS:
                times.append(elapsed)
    return times


def main():
    print(f"{TIMED_REQUESTS} sequential GET /visits/ through nginx and gunicorn (2 workers)\n")
    print("| DJANGO_CONN_MAX_AGE | median ms | 90th percentile ms |")
    print("|---|---|---|")
    with scratch_database() as database_url:
        for conn_max_age in SETTINGS_COMPARED:
            with running_stack(database_url, conn_max_age) as stack:
                times = milliseconds_per_request(stack)
            deciles = statistics.quantiles(times, n=10)
            print(f"| {conn_max_age} | {statistics.median(times):.2f} | {deciles[-1]:.2f} |")


if __name__ == "__main__":
    main()
