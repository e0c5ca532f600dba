"""Procfile runners on your machine. honcho (and foreman) run every line of the Procfile,
`release:` included, and stop everything once one process exits, so `honcho start` alone
stops the web process a second after migrate finishes. `honcho start web` is the command
that works (docs/where-it-runs.md): it serves pages through nginx, and Ctrl-C stops it all.
"""

import sys
import uuid
from pathlib import Path

from tests.conftest import running
from tests.stack import NGINX_DEFAULT_WORKERS, Stack, parse_logfmt

HONCHO = Path(sys.executable).parent / "honcho"
# honcho's exit status when Ctrl-C stopped it.
HONCHO_CTRL_C_STATUS = 130


class HonchoStack(Stack):
    """`honcho start web` in this repository, with a stack's environment (honcho passes PORT
    on), stopped with Ctrl-C and checked like any other stack."""

    def __init__(self, runtime_dir):
        super().__init__(runtime_dir, command=[str(HONCHO), "start", "web"])

    def stop(self):
        return self.press_ctrl_c(runner_status=HONCHO_CTRL_C_STATUS)


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
