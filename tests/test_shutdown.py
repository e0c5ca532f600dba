"""Stopping the web process loses no request.

Eight slow requests are in flight on four gunicorn workers: four being answered, four queued
behind them. Then the stack is stopped the way each platform does it:

- only the wrapper is signalled (`heroku local`, honcho, Docker, systemd): it stops nginx
  gracefully, then gunicorn;
- every process in the dyno gets SIGTERM at the same moment (Heroku): nginx finishes its
  requests only because bin/sigterm_as_sigquit.so turns that SIGTERM into a SIGQUIT, and the
  queued requests are answered only because gunicorn's master keeps its socket open.

Each is tried with the shim and without it (a copy of the app where it was never built), for
the README's table: 8/8 in every case but one, SIGTERM to every process without the shim: 0/8.
Every stack here must end with no process left, workers included (tests/conftest.py checks
it after a clean stop, and the second-signal test itself).
"""

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.stack import REPO, copy_of_repository

IN_FLIGHT = 8
WORKERS = 4
SLOW_SECONDS = 2
# Generous: only catches a hang; each request here takes SLOW_SECONDS or is cut at once.
REQUEST_TIMEOUT = 60
WAIT_TIMEOUT = 10
# How long a process the kernel was told to kill may take to disappear.
MOMENT = 0.5


@pytest.fixture(params=["with the shim", "without the shim"])
def slow_stack(request, start_stack, runtime_dir):
    """Four gunicorn workers and a slow view; in a copy without the shim for the second param."""
    with_shim = request.param == "with the shim"
    app_dir = REPO if with_shim else copy_of_repository(runtime_dir / "app")
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": str(WORKERS)},
                        app_dir=app_dir)
    if with_shim:
        assert "sigterm-shim" not in stack.output(), "the shim should be built and loaded"
    else:
        assert "reason=sigterm-shim-missing" in stack.output()
    stack.with_shim = with_shim
    return stack


def slow_requests_in_flight(stack, pool, headers=None, seconds=SLOW_SECONDS):
    """Send the slow requests and return their futures once nginx has passed them all on."""
    futures = [pool.submit(requests.get, f"{stack.url}/misbehave/slow/{seconds}/", headers=headers,
                           timeout=REQUEST_TIMEOUT)
               for _ in range(IN_FLIGHT)]
    deadline = time.monotonic() + WAIT_TIMEOUT
    while connections_to_gunicorn(stack) < IN_FLIGHT:
        assert time.monotonic() < deadline, f"only {connections_to_gunicorn(stack)} requests reached gunicorn's socket"
        time.sleep(0.02)
    return futures


def connections_to_gunicorn(stack):
    """Connections nginx has open to gunicorn's socket, accepted by a worker or still queued.

    The kernel lists both ends of each connection in /proc/net/unix; gunicorn's end carries
    the socket's path (the last column), as does the listening socket itself, whose flags
    have __SO_ACCEPTCON (0x10000) set.
    """
    count = 0
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[-1] == str(stack.socket_path) and not int(fields[3], 16) & 0x10000:
            count += 1
    return count


def outcomes(futures):
    """Each request's status code, or the name of the error that ended it."""
    results = []
    for future in futures:
        try:
            results.append(future.result().status_code)
        except requests.RequestException as error:
            results.append(type(error).__name__)
    return results


def test_signalling_only_the_wrapper_finishes_every_request(slow_stack):
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(slow_stack, pool)

        slow_stack.process.send_signal(signal.SIGTERM)

        assert outcomes(futures) == [200] * IN_FLIGHT
    assert slow_stack.wait_for_exit() == 0


def test_sigterm_to_every_process_at_once_finishes_every_request_only_with_the_shim(slow_stack):
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(slow_stack, pool)

        slow_stack.signal_every_process(signal.SIGTERM)

        if slow_stack.with_shim:
            assert outcomes(futures) == [200] * IN_FLIGHT
        else:
            # nginx's fast shutdown cuts every connection, even those it had already passed
            # on to gunicorn: this is what the shim prevents.
            assert outcomes(futures) == ["ConnectionError"] * IN_FLIGHT
    assert slow_stack.wait_for_exit() == 0


def test_a_request_a_worker_still_runs_after_nginx_has_gone_is_finished(start_stack):
    # A request nginx gave up on (its client left, or its 20 s were up) may still be running
    # in a worker when nginx has stopped. Sent straight to gunicorn's socket here, it must be
    # finished, not cut halfway through: bin/start-nginx stops gunicorn gracefully.
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings"})
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(REQUEST_TIMEOUT)
        connection.connect(str(stack.socket_path))
        connection.sendall(f"GET /misbehave/slow/{SLOW_SECONDS}/ HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        wait_for_line(stack, "slow-view-started")

        stack.process.send_signal(signal.SIGTERM)

        reply = connection.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.0 200 "), reply
    assert reply.endswith(b"finished")
    assert stack.wait_for_exit() == 0


def test_second_signal_stops_every_process_at_once(start_stack):
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": str(WORKERS)})
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(stack, pool)
        stack.record_processes()

        stack.process.send_signal(signal.SIGINT)
        wait_for_line(stack, "at=stopping process=nginx")
        stack.process.send_signal(signal.SIGINT)

        stack.wait_for_exit(WAIT_TIMEOUT)
        assert "reason=second-signal" in stack.output()
        # Killed, not finished: every process of the stack is gone, workers included, and so
        # no slow request gets its answer.
        assert stack.leftover_processes(wait=MOMENT) == []
        assert 200 not in outcomes(futures)


def test_a_runners_sigterm_after_ctrl_c_is_no_second_signal(start_stack):
    # foreman (and runners like it) send SIGTERM on their own right after the terminal's
    # SIGINT reached every process, the web process included: still one request to stop.
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": str(WORKERS)})
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(stack, pool)

        stack.process.send_signal(signal.SIGINT)
        wait_for_line(stack, "at=stopping process=nginx")
        stack.process.send_signal(signal.SIGTERM)

        assert outcomes(futures) == [200] * IN_FLIGHT
    assert stack.wait_for_exit() == 0
    assert "at=kill" not in stack.output()


def wait_for_line(stack, text):
    deadline = time.monotonic() + WAIT_TIMEOUT
    while text not in stack.output():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{stack.output()}"
        time.sleep(0.02)
