"""nginx's and the app's lines reach the web process's stdout whatever stdout is, each whole.

The wrapper gives nginx and gunicorn pipes of its own and is the only writer of its stdout and
stderr (bin/log_relay.py). Before that, nginx opened /dev/stdout itself, which fails when stdout
is a socket (`heroku local`) or a file or pipe the app's user may not open by name (Dokku).
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.logfmt import parse
from tests.conftest import running
from tests.stack import WEB_COMMAND, Stack, copy_of_repository, whole_lines
from tests.test_logs import raw_request

NOBODY = 65534


def access_line_for(written, request_id):
    """nginx's line for `request_id` in what the web process has written (bytes), or None."""
    for line in map(bytes.decode, whole_lines(written)):
        if line.startswith("measure#nginx.service=") and f'request_id="{request_id}"' in line:
            return parse(line)
    return None


def test_stdout_may_be_a_socket(start_stack):
    """What `heroku local`, systemd's journal and pm2 give a process."""
    ours, theirs = socket.socketpair()
    with ours:
        with theirs:
            stack = start_stack(stdout=theirs)
        request_id = uuid.uuid4().hex

        assert stack.get("/", headers={"X-Request-ID": request_id}).status_code == 200

        received = b""
        ours.settimeout(10)
        while access_line_for(received, request_id) is None:
            received += ours.recv(65536)
        assert access_line_for(received, request_id)["status"] == "200"


class StackAsNobody(Stack):
    """A stack in a copy of the app, run as `nobody` once root has built it. nobody keeps the
    right to read and search any directory (CAP_DAC_READ_SEARCH), so that it reaches the
    tests' Python wherever that is, but not the right to write to another user's file."""

    AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]

    def __init__(self, runtime_dir):
        self.runtime_dir = runtime_dir
        super().__init__(runtime_dir, app_dir=copy_of_repository(runtime_dir / "app"),
                         command=[*self.AS_NOBODY, *WEB_COMMAND])
        # The wrapper looks gunicorn up on PATH with access(), which judges by the real user
        # alone, capabilities aside: a virtualenv inside a private directory (a clone in
        # `mktemp -d`) is out of its reach. A copy of the script in a directory it can read
        # is found, and runs the virtualenv's Python, which the capability lets it reach.
        scripts = runtime_dir / "bin"
        scripts.mkdir()
        shutil.copy(Path(sys.executable).parent / "gunicorn", scripts)
        self.env["PATH"] = f"{scripts}{os.pathsep}{self.env['PATH']}"

    def prepare(self, migrate=True):
        super().prepare(migrate)
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(self.runtime_dir)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_user_who_may_not_open_stdout_by_name_still_logs(runtime_dir):
    """Dokku's case: the app runs as a user that does not own the file or pipe its stdout is."""
    root_owned = runtime_dir / "root-owned.log"
    root_owned.touch(mode=0o644)
    with root_owned.open("ab") as stdout, running(StackAsNobody(runtime_dir / "stack"), stdout=stdout) as stack:
        request_id = uuid.uuid4().hex

        assert stack.get("/", headers={"X-Request-ID": request_id}).status_code == 200

        deadline = time.monotonic() + 10
        while access_line_for(root_owned.read_bytes(), request_id) is None:
            assert time.monotonic() < deadline, root_owned.read_text()
            time.sleep(0.05)
    assert root_owned.stat().st_uid == 0


def test_long_lines_from_two_nginx_workers_and_gunicorn_stay_whole(start_stack):
    """200 requests at once, each logged in a line of about 8,600 bytes, read from a pipe by a
    reader slower than they come, so that the pipe is full while they are written: the case
    where Linux may split a write of more than 4,096 bytes and mix it with another."""
    read_end, write_end = os.pipe()
    received = bytearray()
    slowly = threading.Event()
    slowly.set()
    reader = threading.Thread(target=read_slowly, args=(read_end, received, slowly))
    reader.start()
    request_ids = [uuid.uuid4().hex for _ in range(200)]
    escaped = b"\xff"  # nginx writes it as \xFF: four bytes in the line for one sent
    try:
        with os.fdopen(write_end, "wb") as stdout:
            stack = start_stack({"NGINX_WORKERS": "2", "GUNICORN_ACCESS_LOG": "1"}, stdout=stdout)
        with ThreadPoolExecutor(len(request_ids)) as pool:
            list(pool.map(lambda request_id: stack.send_raw(raw_request(
                b"X-Request-ID: " + request_id.encode(),
                b"User-Agent: " + escaped * 8000,
                b"Referer: " + escaped * 1000,
                request_line=b"GET /" + escaped * 2000 + b" HTTP/1.1",
            )), request_ids))
        # Every line has been written into a full pipe, the case this test is about. Now read
        # at full speed: the web process gives whatever reads its output 5 seconds to take the
        # rest once it stops (OUTPUT_CLOSE_TIMEOUT), and a starved slow reader could miss that.
        slowly.clear()
        assert stack.stop() == 0
    finally:
        reader.join(60)

    lines = bytes(received).splitlines()
    access_lines = [parse(line.decode()) for line in lines if line.startswith(b"measure#nginx.service=")]
    for line in lines:
        parse(line.decode())  # raises on a line that is not whole logfmt
    ours = [fields for fields in access_lines if fields["request_id"] in request_ids]
    assert sorted(fields["request_id"] for fields in ours) == sorted(request_ids)
    assert min(len(fields["path"]) + len(fields["user_agent"]) + len(fields["referer"]) for fields in ours) == 2000


def read_slowly(read_end, received, slowly):
    """Read 4 KiB at a time, pausing after each while `slowly` is set."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(4096):
            received += chunk
            if slowly.is_set():
                time.sleep(0.01)


def test_the_last_lines_are_printed_before_the_wrapper_exits(stack):
    request_id = uuid.uuid4().hex

    assert stack.get("/", headers={"X-Request-ID": request_id}).status_code == 200
    assert stack.stop() == 0

    assert access_line_for(stack.stdout_path.read_bytes(), request_id)["status"] == "200"
    # gunicorn's master says this as it exits, after the wrapper has seen it go.
    assert stack.stderr_lines()[-1].endswith('msg="Shutting down: Master"')

