"""However the web process ends, nothing it started is left running, and it starts again at once.

nginx's workers outlive a killed master and keep answering on $PORT; gunicorn's outlive theirs;
and nobody stops either master when bin/start-nginx itself is killed. Each test records every
process of a running stack (the wrapper, both masters and all their workers), ends the stack
one way, and checks that within 2 seconds none of them is left and that a second start on the
same port and socket serves again (and, at the end of the test, stops cleanly).
"""

import os
import signal

import pytest

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


# Each ending, and the wrapper's exit status after it (docs/start-nginx.md): 1 when one of
# its processes exited on its own, 0 when it was asked to stop, and SIGKILL's when killed.
ENDINGS = [
    (kill_nginx_master, 1),
    (kill_gunicorn_master, 1),
    (kill_the_wrapper, -signal.SIGKILL),
    (press_ctrl_c, 0),
    (send_sigterm_to_the_wrapper, 0),
]


@pytest.mark.parametrize("end, wrapper_status", ENDINGS, ids=[end.__name__ for end, _ in ENDINGS])
def test_nothing_is_left_and_the_next_start_serves(start_stack, end, wrapper_status):
    stack = start_stack({"WEB_CONCURRENCY": str(GUNICORN_WORKERS), "NGINX_WORKERS": str(NGINX_WORKERS)})
    # The wrapper, both masters and every worker: all recorded, so all checked below.
    assert len(stack.seen_processes) == 1 + 2 + NGINX_WORKERS + GUNICORN_WORKERS, stack.output()

    end(stack)

    assert stack.leftover_processes(wait=GONE_WITHIN) == []
    assert stack.wait_for_exit(5) == wrapper_status, stack.output()
    stack.start()
    assert stack.get("/").status_code == 200
