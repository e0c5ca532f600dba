"""bin/start-nginx as PID 1 of a container, which is what `docker run` makes of it.

PID 1 gets only the signals it has a handler for, `docker stop` sends SIGTERM to it alone,
and every process whose parent dies is handed to it to collect. `unshare --pid --fork
--mount-proc` gives the wrapper that life without a container runtime; it needs root.
"""

import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import running
from tests.stack import WEB_COMMAND, Stack, children_of

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="a PID namespace of its own needs root and unshare"
)

NEW_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc"]
IN_FLIGHT = 8
WORKERS = 4


def pid_in_its_namespace(host_pid):
    """The last number on /proc/PID/status's NSpid line: the PID as its own namespace sees it."""
    with open(f"/proc/{host_pid}/status") as status:
        for line in status:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError(f"no NSpid line for {host_pid}")


class ContainerStack(Stack):
    """A stack whose wrapper is PID 1 of a new PID namespace, under `unshare`."""

    def __init__(self, tmp_path, app_command=WEB_COMMAND[1:], extra_env=None):
        super().__init__(tmp_path, extra_env=extra_env, command=[*NEW_PID_NAMESPACE, WEB_COMMAND[0], *app_command])

    def pid1(self):
        """The wrapper's PID as this test sees it: unshare's only child. None once it is gone."""
        children = children_of(self.process.pid)
        return children[0] if children else None

    def stop(self):
        """`docker stop`: SIGTERM to PID 1 alone. unshare exits with its status."""
        self.record_processes()
        os.kill(self.pid1(), signal.SIGTERM)
        return self.wait_for_exit()

    def child_pids(self):
        """The wrapper logs its children's PIDs as its own namespace numbers them; these are
        the same processes as the test sees them, so that clean_up never signals a stranger."""
        pid1 = self.pid1()
        if pid1 is None:
            return {}
        host_pid = {pid_in_its_namespace(pid): pid for pid in children_of(pid1)}
        return {name: host_pid[pid] for name, pid in super().child_pids().items() if pid in host_pid}


def wait_for_log_lines(stack, text, count, timeout=30):
    deadline = time.monotonic() + timeout
    while stack.output().count(text) < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines with {text!r}:\n{stack.output()}"
        time.sleep(0.05)


def zombies_among(pids):
    states = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                states[pid] = stat.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            pass
    return [pid for pid, state in states.items() if state == "Z"]


def test_docker_stop_finishes_every_request_in_flight_and_exits_0(runtime_dir):
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": str(WORKERS)}
    with running(ContainerStack(runtime_dir, extra_env=env)) as stack, ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = [pool.submit(requests.get, f"{stack.url}/misbehave/slow/2/", timeout=60)
                   for _ in range(IN_FLIGHT)]
        # Every worker is busy with one; the other four wait in nginx and gunicorn's queue.
        wait_for_log_lines(stack, "slow-view-started", WORKERS)

        assert stack.stop() == 0

        assert [future.result().status_code for future in futures] == [200] * IN_FLIGHT


def test_orphans_handed_to_pid_1_are_collected(runtime_dir):
    # The app's shell starts a `sleep` in a subshell that exits at once, so the sleep's parent
    # is gone and the kernel hands it to PID 1; a PID 1 that never waits for it leaves a zombie.
    app_command = ["sh", "-c", "(sleep 0.3 &); exec gunicorn -c config/gunicorn.conf.py myproject.wsgi"]
    with running(ContainerStack(runtime_dir, app_command=app_command)) as stack:
        pid1 = stack.pid1()

        # By the time the stack serves, the sleep has exited; collected, it is gone at once.
        deadline = time.monotonic() + 2
        while (zombies := zombies_among(children_of(pid1))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert zombies == []
        assert stack.get("/").status_code == 200
