"""Procfile runners on your machine. honcho (and foreman) run every line of the Procfile,
`release:` included, and stop everything once one process exits, so `honcho start` alone
stops the web process a second after migrate finishes. `honcho start web` is the command
that works (docs/where-it-runs.md): it serves pages through nginx, and Ctrl-C stops it all.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.stack import REPO, STARTUP_TIMEOUT, Stack, children_of

HONCHO = Path(sys.executable).parent / "honcho"


def descendants(pid):
    found = []
    for child in children_of(pid):
        found += [child, *descendants(child)]
    return found


def running(pid):
    """Still a live process (a zombie has finished: only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for_page(url, honcho):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and honcho.poll() is None:
        with contextlib.suppress(requests.ConnectionError):
            return requests.get(url, timeout=5)
        time.sleep(0.1)
    raise AssertionError("nothing answered through honcho")


def test_honcho_start_web_serves_pages_and_ctrl_c_stops_every_process(runtime_dir):
    stack = Stack(runtime_dir)  # for its environment: a free PORT, its own socket and paths
    stack.prepare()
    # A session of its own, like a terminal's foreground job; honcho gives web PORT.
    honcho = subprocess.Popen([HONCHO, "start", "web"], cwd=REPO, env=stack.env, start_new_session=True,
                              stdout=stack.stdout_path.open("ab"), stderr=subprocess.STDOUT)
    started = []
    try:
        page = wait_for_page(stack.url + "/", honcho)
        started = descendants(honcho.pid)
        # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
        os.killpg(honcho.pid, signal.SIGINT)
        status = honcho.wait(30)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(running(pid) for pid in started):
            time.sleep(0.05)
        left = [pid for pid in started if running(pid)]
    finally:
        for pid in [honcho.pid, *started]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        honcho.wait()

    output = stack.stdout_path.read_text(errors="replace")
    assert page.status_code == 200, output
    assert "measure#nginx.service=" in output  # the page came through nginx
    assert len(started) >= 6, output  # sh, start-nginx, nginx and its workers, gunicorn and its workers
    assert status == 130, output  # honcho's status for SIGINT
    assert left == [], output
