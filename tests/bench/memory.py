"""Memory of the whole web process, with gunicorn's preload_app off and on.

    .venv/bin/python -m tests.bench.memory

For each setting, several times over: start the stack as on a Standard-1X dyno (production
settings, WEB_CONCURRENCY=2), read the proportional set size (PSS) of every process in it
(bin/start-nginx, nginx's master and workers, gunicorn's master and workers) at rest, then
again after a burst of requests to the home page and to the page that writes to the
database. PSS divides each shared page among the processes sharing it, so the sum is what
the dyno really uses, which is what Heroku's R14 limit counts against (512 MB on a
Standard-1X). Prints a markdown table of the medians, in MiB. About two minutes; loopback
only, and every process it starts is stopped before it exits.
"""

import statistics
import sys
import tempfile
import threading
from pathlib import Path

import requests

from tests.bench.probes import kib_line
from tests.stack import PRODUCTION_ENV, Stack, children_of

RUNS = 3
BURST_THREADS = 8
BURST_REQUESTS_PER_THREAD = 250
PATHS = ("/", "/visits/")
# The router's headers: without X-Forwarded-Proto, production settings redirect to https.
HEADERS = {"X-Forwarded-Proto": "https", "Host": "example.herokuapp.com"}


def memory_by_part(stack):
    """MiB of PSS for each part of the web process, and their total."""
    pids = stack.child_pids()
    gunicorn_workers = children_of(pids["app"])
    nginx_workers = children_of(pids["nginx"])
    parts = {
        "bin/start-nginx": [stack.process.pid],
        "nginx (master and workers)": [pids["nginx"], *nginx_workers],
        "gunicorn master": [pids["app"]],
        "gunicorn workers": gunicorn_workers,
    }
    # Read process by process, not with probes.pss_kib: a process that vanished while it was
    # measured must fail the run, not count as nothing.
    mib = {name: sum(kib_line(pid, "smaps_rollup", "Pss") for pid in group) / 1024 for name, group in parts.items()}
    mib["total"] = sum(mib.values())
    return mib


def burst(stack):
    """BURST_THREADS clients, each sending requests back to back; every one must get a 200."""
    failures = []

    def client():
        with requests.Session() as session:
            for number in range(BURST_REQUESTS_PER_THREAD):
                path = PATHS[number % len(PATHS)]
                response = session.get(stack.url + path, headers=HEADERS, timeout=10)
                if response.status_code != 200:
                    failures.append((path, response.status_code))

    threads = [threading.Thread(target=client) for _ in range(BURST_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the burst got errors: {failures[:5]}")


def measure_once(preload):
    env = {
        **PRODUCTION_ENV,
        # The app as deployed, without the test suite's misbehaving views.
        "DJANGO_SETTINGS_MODULE": "myproject.settings",
        "GUNICORN_ACCESS_LOG": "0",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_CMD_ARGS": "--access-logfile -" + (" --preload" if preload else ""),
    }
    with tempfile.TemporaryDirectory(prefix="memory-") as path:
        runtime_dir = Path(path)
        runtime_dir.chmod(0o755)
        stack = Stack(runtime_dir, extra_env=env)
        stack.prepare()
        try:
            stack.start()
            # At rest: booted, and each worker has answered once (Django loads its URLconf,
            # views and templates on the first request, not at boot).
            for _ in range(4):
                stack.get("/", headers=HEADERS)
            at_rest = memory_by_part(stack)
            burst(stack)
            after_burst = memory_by_part(stack)
        finally:
            stack.clean_up()
    return at_rest, after_burst


def median_by_part(samples):
    return {name: statistics.median(sample[name] for sample in samples) for name in samples[0]}


def main():
    results = {}
    for preload in (False, True):
        runs = [measure_once(preload) for _ in range(RUNS)]
        results[preload] = (median_by_part([run[0] for run in runs]), median_by_part([run[1] for run in runs]))
        print(f"preload_app={preload}: {RUNS} runs done", file=sys.stderr, flush=True)

    parts = list(results[False][0])
    print("| MiB of PSS (median of %d runs) | preload off, at rest | after the burst "
          "| preload on, at rest | after the burst |" % RUNS)
    print("| --- | --- | --- | --- | --- |")
    for name in parts:
        cells = [f"{results[preload][moment][name]:.1f}" for preload in (False, True) for moment in (0, 1)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
