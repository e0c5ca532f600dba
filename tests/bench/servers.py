"""The four ways the benchmark serves the same Django project, each with the same 4 workers.

    this stack        nginx in front of gunicorn sync workers, through bin/start-nginx (the Procfile)
    gunicorn sync     gunicorn's sync workers on the port, as the Python buildpack runs an app
                      that has no nginx: what this template replaces
    gunicorn gthread  gthread workers with 5 threads each, preloaded, as
                      heroku/python-getting-started's gunicorn.conf.py configures them today
    waitress          waitress with 4 threads, the pure-Python server often suggested instead

Each server also gives the process IDs the benchmark inspects: the app's (whose threads run
Django) and nginx's.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.load import HOST, fetch
from tests.stack import REPO, Stack, children_of, free_port

WORKERS = 4
SETTINGS = "tests.bench.settings"
STARTUP_TIMEOUT = 30
STOP_TIMEOUT = 15


def wait_until_serving(port, process, describe):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{describe} exited with status {process.returncode}")
        if fetch(port, "/bench/small/", timeout=2).ok:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{describe} did not answer on port {port} within {STARTUP_TIMEOUT}s")


class ThisStack:
    name = "this stack"

    def __init__(self, runtime_dir, workers=WORKERS):
        self.stack = Stack(runtime_dir, extra_env={"DJANGO_SETTINGS_MODULE": SETTINGS, "WEB_CONCURRENCY": str(workers)})
        self.port = self.stack.port
        self.socket_path = self.stack.socket_path
        self.temp_dir = self.stack.env["NGINX_TMP_DIR"]
        self.pids = {}  # "app" and "nginx", once started

    def start(self):
        self.stack.prepare()
        self.stack.start()
        wait_until_serving(self.port, self.stack.process, self.name)
        # Read once: finding them means parsing the whole log, which grows by a line per
        # request, and doing that every second would slow the fast clients being measured.
        self.pids = self.stack.child_pids()

    def stop(self):
        if self.stack.process is not None:
            self.stack.stop()
        self.stack.clean_up()

    def app_pids(self):
        """The gunicorn workers: the processes that run Django."""
        return children_of(self.pids["app"])

    def nginx_pids(self):
        master = self.pids["nginx"]
        return [master, *children_of(master)]

    def web_process_pids(self):
        """bin/start-nginx, nginx and gunicorn with their workers: what the Procfile's web runs."""
        return [self.stack.process.pid, *self.nginx_pids(), self.pids["app"], *self.app_pids()]

    def error_log(self):
        """What nginx and gunicorn wrote to stderr, where nginx's error log goes."""
        return "\n".join(self.stack.stderr_lines())


class Peer:
    """A server that listens on the port itself, started from a command line."""

    def __init__(self, name, command, runtime_dir):
        self.name = name
        self.port = free_port()
        self.command = [arg.format(port=self.port, host=HOST, workers=WORKERS, log=runtime_dir / "access.log")
                        for arg in command]
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": f"sqlite:///{runtime_dir / 'db.sqlite3'}",
        }
        self.output = runtime_dir / f"{name.replace(' ', '-')}.log"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, start_new_session=True,
                                        stdout=self.output.open("wb"), stderr=subprocess.STDOUT)
        wait_until_serving(self.port, self.process, self.name)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def app_pids(self):
        """gunicorn's workers, or waitress's single process."""
        return children_of(self.process.pid) or [self.process.pid]

    def nginx_pids(self):
        return []


# The gunicorn peers write an access line per request, as nginx does in this stack and as
# gunicorn does on Heroku (the Python buildpack sets GUNICORN_CMD_ARGS="--access-logfile -").
# waitress has no access log of its own.
PEER_COMMANDS = {
    "gunicorn sync": ["gunicorn", "--workers", "{workers}", "--bind", "{host}:{port}",
                      "--access-logfile", "{log}", "myproject.wsgi"],
    "gunicorn gthread": ["gunicorn", "--workers", "{workers}", "--worker-class", "gthread", "--threads", "5",
                         "--preload", "--timeout", "20", "--reuse-port", "--bind", "{host}:{port}",
                         "--access-logfile", "{log}", "myproject.wsgi"],
    "waitress": ["waitress-serve", "--threads", "{workers}", "--listen", "{host}:{port}",
                 "myproject.wsgi:application"],
}


def all_servers(runtime_dir):
    """The four servers, this stack first. Each needs its own directory under runtime_dir."""
    servers = []
    for name in ["this stack", *PEER_COMMANDS]:
        directory = runtime_dir / name.replace(" ", "-")
        directory.mkdir(mode=0o755)
        servers.append(ThisStack(directory) if name == "this stack" else Peer(name, PEER_COMMANDS[name], directory))
    return servers
