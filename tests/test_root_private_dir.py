"""Run as root from a checkout under a directory only root may enter (a clone in /root, a
`mktemp -d`, a container's working directory): nginx still serves static files and its own
error pages itself, with no [crit] or [error] line.

Started as root, nginx would run its workers as `nobody`, who cannot enter such a checkout;
bin/start-nginx runs them as the checkout's owner instead (choose_nginx_user). These tests
start a copy of this repository placed in a 0700 directory, and one that belongs to another
user; as anyone but root that is no different from the rest of the suite, so they are
skipped.
"""

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import running_stack, temporary_runtime_dir
from tests.stack import NGINX_DEFAULT_WORKERS, OVER_HTTPS, PRODUCTION_ENV, copy_of_repository
from tests.test_faults import answer_once_its_worker_is_killed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root's nginx changes its workers' user")

# A user every Debian and Ubuntu system has, who is neither root nor nobody.
ANOTHER_USER = "daemon"


@pytest.fixture(scope="module")
def private_stack():
    """A production-mode stack started from a copy of the repository in a 0700 directory."""
    private_dir = Path(tempfile.mkdtemp(prefix="private-"))  # 0700, like /root
    env = {**PRODUCTION_ENV, "NGINX_PROXY_READ_TIMEOUT": "2s"}
    try:
        app_dir = copy_of_repository(private_dir / "app")
        with temporary_runtime_dir() as runtime_dir, running_stack(runtime_dir, app_dir=app_dir, extra_env=env) as stack:
            yield stack
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)


def static_path(stack):
    manifest = json.loads((stack.app_dir / "staticfiles" / "staticfiles.json").read_text())
    return "/static/" + manifest["paths"]["tests/style.css"]


def get(stack, path, **headers):
    return requests.get(stack.url + path, headers={**OVER_HTTPS, **headers}, timeout=20,
                        allow_redirects=False)


def test_the_copy_really_is_out_of_reach_of_nobody(private_stack):
    assert (private_stack.app_dir.parent.stat().st_mode & 0o777) == 0o700


def test_static_files_are_served_by_nginx_itself(private_stack):
    request_id = str(uuid.uuid4())

    response = get(private_stack, static_path(private_stack), **{"X-Request-ID": request_id})

    assert response.status_code == 200
    assert "font-family" in response.text
    # nginx connected to no upstream, and gunicorn (which logs every request here) saw none.
    assert private_stack.wait_for_access_line(request_id)["upstream_connect_time"] == "-"
    assert request_id not in "\n".join(line for line in private_stack.stdout_lines()
                                       if not line.startswith("measure#nginx.service="))


def test_a_502_is_our_page(private_stack):
    response = answer_once_its_worker_is_killed(private_stack)

    assert response.status_code == 502
    assert "Temporarily unavailable" in response.text
    private_stack.wait_for_output("upstream prematurely closed")


def test_a_504_is_our_page(private_stack):
    response = get(private_stack, "/misbehave/slow/4/")

    assert response.status_code == 504
    assert "Temporarily unavailable" in response.text
    # nginx's [error] line for it, which test_nginx_logs_no_crit_or_error_line must not count.
    private_stack.wait_for_output("upstream timed out")


def test_an_unknown_http_version_gets_our_400_page(private_stack):
    answer = private_stack.send_raw(b"GET / HTTP/2.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"This server could not understand the request." in answer


def test_nginx_logs_no_crit_or_error_line(private_stack):
    # A static file and an error page of nginx's own: where its workers cannot enter the
    # app directory, each of them logs a [crit] line. (The 502 and 504 above log an [error]
    # each, rightly: only the lines logged from here on count.)
    outputs = [private_stack.stdout_path, private_stack.stderr_path]
    sizes_before = [output.stat().st_size for output in outputs]
    get(private_stack, static_path(private_stack))
    private_stack.send_raw(b"GET / HTTP/2.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")

    logged = b"".join(output.read_bytes()[size:] for output, size in zip(outputs, sizes_before))
    nginx_complaints = [line for line in logged.splitlines() if b"[crit]" in line or b"[error]" in line]

    assert nginx_complaints == []


def test_nginx_workers_run_as_the_owner_of_the_app_directory(start_stack, runtime_dir):
    # A checkout that belongs to neither root, who starts nginx here, nor nobody, whom nginx
    # would choose: only then can the three be told apart.
    app_dir = copy_of_repository(runtime_dir / "app")
    subprocess.run(["chown", "-R", f"{ANOTHER_USER}:", app_dir], check=True)
    stack = start_stack(app_dir=app_dir)

    nginx = stack.child_pids()["nginx"]
    ps = subprocess.run(["ps", "-o", "user=", "--ppid", str(nginx)], capture_output=True, text=True, check=True)

    assert ps.stdout.split() == [ANOTHER_USER] * NGINX_DEFAULT_WORKERS
