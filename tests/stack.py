"""The real stack for tests: bin/start-nginx, nginx and gunicorn, started as on a dyno.

Each stack gets a free port and its own socket, readiness file, nginx scratch directory and
SQLite database in a fresh temporary directory, so tests never collide with `make run` or
each other, and every process a test started is stopped when it ends.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

# The strict parser every log line must pass; tests/test_start_nginx.py uses it too.
from tests.logfmt import parse as parse_logfmt

REPO = Path(__file__).resolve().parent.parent
WEB_COMMAND = ["bin/start-nginx", "gunicorn", "-c", "config/gunicorn.conf.py", "myproject.wsgi"]
STARTUP_TIMEOUT = 30
SHUTDOWN_TIMEOUT = 35

# The stack as it runs on a dyno: DYNO makes the settings the production ones (https
# redirect, HSTS, secure cookies) and the secret key is a real one. gunicorn writes its own
# access lines too (GUNICORN_ACCESS_LOG=1), so a test can see every request that reached
# gunicorn. tests/settings.py adds views that misbehave on purpose.
PRODUCTION_ENV = {
    "DYNO": "web.1",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_SETTINGS_MODULE": "tests.settings",
    "GUNICORN_ACCESS_LOG": "1",
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children_of(pid):
    """Direct child processes of `pid`, forked by any of its threads."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


class Stack:
    """One running copy of the web process, started the way the Procfile starts it."""

    def __init__(self, tmp_path, *, app_dir=REPO, extra_env=None, command=WEB_COMMAND):
        self.app_dir = app_dir
        self.command = command
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
            # What Heroku's Python buildpack sets in every dyno.
            "GUNICORN_CMD_ARGS": "--access-logfile -",
            "FORWARDED_ALLOW_IPS": "*",
            **(extra_env or {}),
        }
        (tmp_path / "nginx").mkdir()
        self.process = None

    def prepare(self, migrate=True):
        """What Heroku's build and release phase do: collect static files and migrate."""
        commands = [["collectstatic", "--noinput"]] + ([["migrate", "--noinput"]] if migrate else [])
        for command in commands:
            subprocess.run([sys.executable, "manage.py", *command, "--verbosity", "0"],
                           cwd=self.app_dir, env=self.env, check=True)

    def start(self):
        # Append mode, as on the pipe Heroku reads: nginx opens /dev/stdout anew, and without
        # it gunicorn's writes would land over nginx's lines instead of after them.
        self.process = subprocess.Popen(
            self.command, cwd=self.app_dir, env=self.env, start_new_session=True,
            stdout=self.stdout_path.open("ab"), stderr=self.stderr_path.open("ab"),
        )
        self.wait_until_serving()

    def wait_until_serving(self, timeout=STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"start-nginx exited with {self.process.returncode}:\n{self.output()}")
            try:
                # Any answer will do; in production mode it is a redirect to https.
                requests.get(self.url + "/", timeout=5, allow_redirects=False)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"nothing answered on port {self.port} within {timeout}s:\n{self.output()}")

    def get(self, path, **kwargs):
        return requests.get(self.url + path, timeout=10, **kwargs)

    def send_raw(self, request):
        """Send bytes exactly as given, which no HTTP library would, and return the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            connection.sendall(request)
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
        return reply

    def stdout_lines(self):
        return self.stdout_path.read_text(errors="replace").splitlines()

    def log_lines(self):
        """Every line printed so far, stdout's then stderr's, as bytes: what Heroku collects."""
        return self.stdout_path.read_bytes().splitlines() + self.stderr_path.read_bytes().splitlines()

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

    def process_tree(self):
        """Every PID of this stack: the wrapper, nginx and gunicorn, and their workers."""
        pids = [self.process.pid, *self.child_pids().values()]
        for pid in list(pids[1:]):
            pids += children_of(pid)
        return pids

    def stop(self):
        """SIGTERM the wrapper, as `heroku local` would, and return its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(SHUTDOWN_TIMEOUT)

    def clean_up(self):
        """Make sure nothing this stack started outlives the test."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the wrapper and anything in its group
        self.process.wait()
        for pid in self.child_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
