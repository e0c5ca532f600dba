"""However the web process ends, nothing it started is left running, and it starts again at once.

nginx's workers outlive a killed master and keep answering on $PORT; gunicorn's outlive theirs;
and nobody stops either master when bin/start-nginx itself is killed. Each test records every
process of a running stack (the wrapper, both masters and all their workers), ends the stack
one way, and checks that within 2 seconds none of them is left and that a second start on the
same port and socket serves again.
"""

import os
import signal
import time

import pytest

from tests.stack import Stack

GONE_WITHIN = 2  # seconds: the promise in the README
NGINX_WORKERS = 2
GUNICORN_WORKERS = 2


def kill_nginx_master(stack):
    os.kill(stack.child_pids()["nginx"], signal.SIGKILL)


def kill_gunicorn_master(stack):
    os.kill(stack.child_pids()["app"], signal.SIGKILL)


def kill_the_wrapper(stack):
    stack.process.kill()


def press_ctrl_c(stack):
    # A terminal sends SIGINT to its foreground process group: the wrapper's (nginx and
    # gunicorn each run in a session of their own).
    os.killpg(stack.process.pid, signal.SIGINT)


def send_sigterm_to_the_wrapper(stack):
    stack.process.send_signal(signal.SIGTERM)


ENDINGS = [kill_nginx_master, kill_gunicorn_master, kill_the_wrapper, press_ctrl_c, send_sigterm_to_the_wrapper]


def running(pid):
    """True while `pid` is a live process; a zombie has ended and only waits to be collected."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def left_running(pids, within):
    deadline = time.monotonic() + within
    while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("end", ENDINGS, ids=lambda end: end.__name__)
def test_nothing_is_left_and_the_next_start_serves(runtime_dir, end):
    stack = Stack(runtime_dir, extra_env={"WEB_CONCURRENCY": str(GUNICORN_WORKERS), "NGINX_WORKERS": str(NGINX_WORKERS)})
    stack.prepare()
    try:
        stack.start()
        started = stack.process_tree()
        assert len(started) == 1 + 2 + NGINX_WORKERS + GUNICORN_WORKERS, started

        end(stack)

        assert left_running(started, GONE_WITHIN) == []
        stack.process.wait(5)
        stack.start()
        assert stack.get("/").status_code == 200
    finally:
        stack.clean_up()

