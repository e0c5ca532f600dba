"""Procfile runners on your machine. honcho and foreman run every line of the Procfile,
`release:` included, and stop everything once one process exits, so `honcho start` alone
stops the web process a second after migrate finishes. `honcho start web` and `foreman start
web` are the commands that work (docs/where-it-runs.md): they serve pages through nginx, and
Ctrl-C stops it all.

foreman is Ruby (Debian's package ruby-foreman); its test is skipped where it is missing.
"""

import os
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import running
from tests.stack import NGINX_DEFAULT_WORKERS, Stack, parse_logfmt

HONCHO = Path(sys.executable).parent / "honcho"
# honcho's exit status when Ctrl-C stopped it.
HONCHO_CTRL_C_STATUS = 130

FOREMAN = shutil.which("foreman")
# foreman exits with the status of the first process that exited: the web process's 0.
FOREMAN_CTRL_C_STATUS = 0
# foreman gives each line of the Procfile its own port, 100 apart from its base port: web,
# the second line, gets the base port plus 100 (5100 by default).
FOREMAN_WEB_PORT_OFFSET = 100


class HonchoStack(Stack):
    """`honcho start web` in this repository, with a stack's environment (honcho passes PORT
    on), stopped with Ctrl-C and checked like any other stack."""

    def __init__(self, runtime_dir):
        super().__init__(runtime_dir, command=[str(HONCHO), "start", "web"])

    def stop(self):
        return self.press_ctrl_c(runner_status=HONCHO_CTRL_C_STATUS)


class ForemanStack(Stack):
    """`foreman start web` in this repository, with a base port that gives the web process
    this stack's port; stopped with Ctrl-C, to which foreman adds a SIGTERM of its own."""

    def __init__(self, runtime_dir, extra_env=None):
        super().__init__(runtime_dir, extra_env=extra_env)
        base_port = self.port - FOREMAN_WEB_PORT_OFFSET
        self.command = [FOREMAN, "start", "web", "--port", str(base_port)]

    def stop(self):
        return self.press_ctrl_c(runner_status=FOREMAN_CTRL_C_STATUS)


def access_line_behind_a_prefix(stack, request_id):
    """nginx's line for `request_id`, parsed, with what honcho puts before it (time, name) cut."""
    stack.wait_for_output(f'request_id="{request_id}"')
    (line,) = [line for line in stack.stdout_lines() if f'request_id="{request_id}"' in line]
    return parse_logfmt(line[line.index("measure#nginx.service="):])


def test_honcho_start_web_serves_pages_and_ctrl_c_stops_every_process(runtime_dir):
    with running(HonchoStack(runtime_dir)) as stack:
        request_id = str(uuid.uuid4())
        page = stack.get("/", headers={"X-Request-ID": request_id})

        assert page.status_code == 200, stack.output()
        # Served through nginx: its access line, behind honcho's prefix, says so.
        assert access_line_behind_a_prefix(stack, request_id)["status"] == "200"
        # honcho, start-nginx, nginx and its workers, gunicorn and its workers (and the shell
        # honcho may start the command with): each checked to be gone once Ctrl-C has stopped
        # the stack.
        workers = NGINX_DEFAULT_WORKERS + int(stack.env["WEB_CONCURRENCY"])
        assert len(stack.seen_processes) >= 4 + workers, stack.output()


def test_foreman_start_web_serves_and_its_sigterm_after_ctrl_c_is_no_second_signal(runtime_dir):
    # Ctrl-C reaches foreman and the web process at once, and foreman then sends the web
    # process a SIGTERM of its own. A slow request keeps nginx stopping while that SIGTERM
    # comes: it must not be taken for a second Ctrl-C, which kills everything at once.
    if FOREMAN is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install foreman (Debian's ruby-foreman)")
        pytest.skip("foreman is not installed (Debian: apt-get install ruby-foreman)")
    with running(ForemanStack(runtime_dir, {"DJANGO_SETTINGS_MODULE": "tests.settings"})) as stack:
        assert f"at=listening url=http://127.0.0.1:{stack.port}" in stack.output()
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(requests.get, f"{stack.url}/misbehave/slow/1/", timeout=30)
            stack.wait_for_output("slow-view-started")

            stack.stop()

            assert slow.result().text == "finished"
        output = stack.output()
        assert "sending SIGTERM to all processes" in output
        assert "at=kill" not in output
        assert "at=stopped process=nginx status=0" in output and "at=stopped process=app status=0" in output
        assert stack.process.returncode == FOREMAN_CTRL_C_STATUS
        assert not Path(stack.env["APP_INITIALIZED_PATH"]).exists()
