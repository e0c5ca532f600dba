"""What the connection pooler costs: `make bench-database`, or `python -m tests.bench.database`.

Starts the real stack (nginx, gunicorn with 4 workers, Django) against PostgreSQL, once
connected directly and once through PgBouncer in transaction pooling mode with a pool of 2
server connections (tests/pgbouncer.py, as in tests/test_connection_pooler.py), each with
DJANGO_CONN_MAX_AGE=0 and 600. CLIENTS clients send requests back to back to the page that
writes a row and reads rows back (/database/round-trip/ in tests/views.py), and it prints
requests per second and latencies, as a markdown table, with the machine and the versions.

The four stacks run side by side, and each is measured ROUNDS times, in turn, in short
windows, so that a busy moment of a shared machine falls on all of them alike. It needs
PostgreSQL (the server DATABASE_URL names, or else postgres@127.0.0.1:5432) and pgbouncer; it
works as a role and in a database of its own, both dropped at the end. Everything runs on
127.0.0.1. About three minutes.
"""

import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import psycopg
import requests

from tests.pgbouncer import pgbouncer_binary, running_pgbouncer
from tests.conftest import running_stack as tests_running_stack, temporary_runtime_dir
from tests.stack import system_nginx
from tests.test_faults import role_with_a_database

WORKERS = 4  # a Standard-2X dyno
POOL_SIZE = 2
CLIENTS = 8
WARM_UP_SECONDS = 1
MEASURE_SECONDS = 6
ROUNDS = 5
PAGE = "/database/round-trip/"
CONN_MAX_AGES = ("0", "600")


@contextlib.contextmanager
def running_stack(env):
    """A stack as the tests start one (tests/conftest.py), with a Standard-2X's workers."""
    env = {"WEB_CONCURRENCY": str(WORKERS), **env}
    with temporary_runtime_dir() as path, tests_running_stack(path, extra_env=env) as stack:
        yield stack


def client(url, stop_warming, stop_measuring):
    """Requests back to back over one keep-alive connection to nginx until stop_measuring;
    the times, in ms, of those that started after stop_warming."""
    times = []
    with requests.Session() as session:
        while not stop_measuring.is_set():
            started = time.perf_counter()
            response = session.get(url, timeout=10)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (response.status_code, response.text[:200])
            if stop_warming.is_set():
                times.append(elapsed)
    return times


def measure(stack):
    """Requests per second and each request's time in ms, CLIENTS at a time."""
    stop_warming, stop_measuring = threading.Event(), threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client, stack.url + PAGE, stop_warming, stop_measuring) for _ in range(CLIENTS)]
        time.sleep(WARM_UP_SECONDS)
        stop_warming.set()
        time.sleep(MEASURE_SECONDS)
        stop_measuring.set()
        times = [elapsed for future in clients for elapsed in future.result()]
    return len(times) / MEASURE_SECONDS, times


def configurations(database_url, pooler_url):
    for conn_max_age in CONN_MAX_AGES:
        yield "direct", conn_max_age, {"DATABASE_URL": database_url, "DJANGO_CONN_MAX_AGE": conn_max_age}
        yield "through PgBouncer", conn_max_age, {"DATABASE_URL": database_url, "DATABASE_CONNECTION_POOL_URL": pooler_url,
                                                  "DJANGO_CONN_MAX_AGE": conn_max_age}


def versions(database_url):
    with psycopg.connect(database_url) as database:
        postgres = database.execute("SHOW server_version").fetchone()[0].split()[0]
    pgbouncer = subprocess.run([pgbouncer_binary(), "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    nginx = subprocess.run([system_nginx(), "-v"], capture_output=True, text=True).stderr.strip()
    python_packages = ", ".join(f"{name} {metadata.version(name)}" for name in ("Django", "gunicorn", "psycopg"))
    return f"PostgreSQL {postgres}, {pgbouncer}, {nginx}, {python_packages}, Python {platform.python_version()}"


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, load average {load:.2f} at the start"


def main():
    results = {}  # (connection, conn_max_age): ([requests per second, one per round], [times])
    with contextlib.ExitStack() as running:
        database_url = running.enter_context(role_with_a_database("bench_pooler"))
        pooler = running.enter_context(running_pgbouncer(database_url, pool_size=POOL_SIZE))
        print(f"{datetime.date.today()}: {machine()}")
        print(versions(database_url))
        print(f"\nGET {PAGE} through nginx and gunicorn ({WORKERS} workers), {CLIENTS} clients at once, "
              f"{ROUNDS} rounds of {MEASURE_SECONDS} s each; PgBouncer: transaction pooling, "
              f"{POOL_SIZE} server connections\n")
        stacks = {(connection, conn_max_age): running.enter_context(running_stack(env))
                  for connection, conn_max_age, env in configurations(database_url, pooler.url)}
        for _ in range(ROUNDS):
            for configuration, stack in stacks.items():
                rate, times = measure(stack)
                rates, all_times = results.setdefault(configuration, ([], []))
                rates.append(rate)
                all_times.extend(times)
    print("| Connection | DJANGO_CONN_MAX_AGE | requests/s: median of the rounds (lowest–highest) | median ms | p99 ms |")
    print("|---|---|---|---|---|")
    for (connection, conn_max_age), (rates, times) in results.items():
        p99 = statistics.quantiles(times, n=100)[98]
        print(f"| {connection} | {conn_max_age} | {statistics.median(rates):.0f} ({min(rates):.0f}–{max(rates):.0f}) "
              f"| {statistics.median(times):.1f} | {p99:.1f} |")
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
