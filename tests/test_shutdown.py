"""Stopping the web process loses no request.

Eight slow requests are in flight on four gunicorn workers: four being answered, four queued
behind them. Then the stack is stopped the way each platform does it:

- only the wrapper is signalled (`heroku local`, honcho, Docker, systemd): it stops nginx
  gracefully, then gunicorn;
- every process in the dyno gets SIGTERM at the same moment (Heroku): nginx finishes its
  requests only because bin/sigterm_as_sigquit.so turns that SIGTERM into a SIGQUIT, and the
  queued requests are answered only because gunicorn's master keeps its socket open.

The last test shows the loss this prevents, with the shim left out.
"""

import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.stack import REPO, Stack

IN_FLIGHT = 8
WORKERS = 4
SLOW_SECONDS = 2


def start_slow_stack(runtime_dir, app_dir=REPO):
    stack = Stack(runtime_dir, app_dir=app_dir,
                  extra_env={"DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": str(WORKERS)})
    stack.prepare()
    stack.start()
    return stack


def slow_requests_in_flight(stack, pool):
    """Send the slow requests and return their futures once nginx has them all."""
    futures = [pool.submit(requests.get, f"{stack.url}/misbehave/slow/{SLOW_SECONDS}/", timeout=60)
               for _ in range(IN_FLIGHT)]
    time.sleep(0.5)  # loopback: the requests reach nginx in microseconds; this is plenty
    return futures


def completed(futures):
    """How many requests got a 200, waiting for each to end one way or another."""
    count = 0
    for future in futures:
        try:
            count += future.result().status_code == 200
        except requests.RequestException:
            pass
    return count


def signal_every_process(stack, signum):
    """What Heroku does when it stops a dyno: the same signal to every process at once."""
    for pid in stack.process_tree():
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


@pytest.fixture
def slow_stack(runtime_dir):
    stack = start_slow_stack(runtime_dir)
    yield stack
    stack.clean_up()


def test_signalling_only_the_wrapper_finishes_every_request(slow_stack):
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(slow_stack, pool)

        slow_stack.process.send_signal(signal.SIGTERM)

        assert completed(futures) == IN_FLIGHT
    assert slow_stack.process.wait(30) == 0


def test_second_signal_stops_everything_at_once(slow_stack):
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        slow_requests_in_flight(slow_stack, pool)
        pids = slow_stack.child_pids()

        slow_stack.process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        slow_stack.process.send_signal(signal.SIGINT)

        slow_stack.process.wait(5)
    assert "reason=second-signal" in slow_stack.output()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_sigterm_to_every_process_at_once_finishes_every_request(slow_stack):
    assert "sigterm-shim" not in slow_stack.output(), "the shim should be built and loaded"
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(slow_stack, pool)

        signal_every_process(slow_stack, signal.SIGTERM)

        assert completed(futures) == IN_FLIGHT
    assert slow_stack.process.wait(30) == 0


def test_without_the_shim_sigterm_to_every_process_loses_requests(runtime_dir):
    app_dir = runtime_dir / "app"
    shutil.copytree(REPO, app_dir, ignore=shutil.ignore_patterns(
        ".git", ".venv", "staticfiles", "db.sqlite3", "nginx.conf", "sigterm_as_sigquit.so"))
    stack = start_slow_stack(runtime_dir, app_dir)
    try:
        assert "reason=sigterm-shim-missing" in stack.output()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            futures = slow_requests_in_flight(stack, pool)

            signal_every_process(stack, signal.SIGTERM)

            # nginx's fast shutdown cuts every connection: this is what the shim prevents.
            assert completed(futures) < IN_FLIGHT
    finally:
        stack.clean_up()
