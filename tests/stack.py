"""Fixtures that start the real stack: bin/start-nginx, nginx and gunicorn, as on a dyno.

Each stack gets a free port and its own socket, readiness file, nginx scratch directory and
SQLite database in a fresh temporary directory, so tests never collide with `make run` or
each other, and every process a test started is stopped when it ends.
"""

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
WEB_COMMAND = ["bin/start-nginx", "gunicorn", "-c", "config/gunicorn.conf.py", "myproject.wsgi"]
STARTUP_TIMEOUT = 30
SHUTDOWN_TIMEOUT = 35

# The stack as it runs on a dyno: DYNO makes the settings the production ones (https
# redirect, HSTS, secure cookies), the secret key is a real one, and gunicorn writes its own
# access lines, as Heroku's Python buildpack makes it do, so a test can see every request
# that reached gunicorn. tests/settings.py adds views that misbehave on purpose.
PRODUCTION_ENV = {
    "DYNO": "web.1",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_SETTINGS_MODULE": "tests.settings",
    "GUNICORN_CMD_ARGS": "--access-logfile -",
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_logfmt(line):
    """Split a key=value line into a dict. nginx escapes quotes and backslashes in values as
    \\xHH, so shell-style splitting reads its quoted values exactly."""
    fields = {}
    for token in shlex.split(line):
        key, _, value = token.partition("=")
        fields[key] = value
    return fields


class Stack:
    """One running copy of the web process, started the way the Procfile starts it."""

    def __init__(self, tmp_path, extra_env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket_path = tmp_path / "nginx.socket"
        self.stdout_path = tmp_path / "stdout.log"
        self.stderr_path = tmp_path / "stderr.log"
        self.env = {
            # Not CI: the settings read DYNO together with CI as Heroku CI, never production.
            **{name: value for name, value in os.environ.items() if name != "CI"},
            # gunicorn from the same virtualenv as the tests.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PORT": str(self.port),
            "NGINX_SOCKET_PATH": str(self.socket_path),
            "APP_INITIALIZED_PATH": str(tmp_path / "app-initialized"),
            "NGINX_TMP_DIR": str(tmp_path / "nginx"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "WEB_CONCURRENCY": "2",
            **(extra_env or {}),
        }
        (tmp_path / "nginx").mkdir()
        self.process = None

    def prepare(self):
        """What Heroku's build and release phase do: collect static files and migrate."""
        for command in (["collectstatic", "--noinput"], ["migrate", "--noinput"]):
            subprocess.run([sys.executable, "manage.py", *command, "--verbosity", "0"],
                           cwd=REPO, env=self.env, check=True)

    def start(self):
        self.process = subprocess.Popen(
            WEB_COMMAND, cwd=REPO, env=self.env, start_new_session=True,
            stdout=self.stdout_path.open("wb"), stderr=self.stderr_path.open("wb"),
        )
        self.wait_until_serving()

    def wait_until_serving(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"start-nginx exited with {self.process.returncode}:\n{self.output()}")
            try:
                # Any answer will do; in production mode it is a redirect to https.
                requests.get(self.url + "/", timeout=5, allow_redirects=False)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"nothing answered on port {self.port} within {STARTUP_TIMEOUT}s:\n{self.output()}")

    def get(self, path, **kwargs):
        return requests.get(self.url + path, timeout=10, **kwargs)

    def stdout_lines(self):
        return self.stdout_path.read_text(errors="replace").splitlines()

    def output(self):
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def access_lines(self):
        """The access log lines nginx has written so far, parsed."""
        return [parse_logfmt(line) for line in self.stdout_lines() if line.startswith("measure#nginx.service=")]

    def wait_for_access_line(self, request_id, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for fields in self.access_lines():
                if fields.get("request_id") == request_id:
                    return fields
            time.sleep(0.05)
        raise AssertionError(f"no access line with request_id={request_id}:\n{self.output()}")

    def child_pids(self):
        """PIDs of the app and nginx, from the wrapper's `at=...-start` lines."""
        pids = {}
        for line in self.stdout_lines():
            fields = parse_logfmt(line) if line.startswith("wrapper=start-nginx") else {}
            if fields.get("at") in ("app-start", "nginx-start"):
                pids[fields["at"].removesuffix("-start")] = int(fields["pid"])
        return pids

    def stop(self):
        """SIGTERM the wrapper, as `heroku local` would, and return its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(SHUTDOWN_TIMEOUT)

    def clean_up(self):
        """Make sure nothing this stack started outlives the test."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.child_pids().values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
