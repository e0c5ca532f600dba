"""The real stack for tests: bin/start-nginx, nginx and gunicorn, started as on a dyno.

Each stack gets a free port and its own socket, readiness file, nginx scratch directory and
SQLite database in a fresh temporary directory, so tests never collide with `make run` or
each other. Every process the stack starts, workers included, is recorded while it runs, so
that a test can check that none of them outlives the stack (tests/conftest.py does it after
every test that stops the stack).
"""

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

# The strict parser every log line must pass; tests/test_start_nginx.py uses it too.
from tests.logfmt import parse as parse_logfmt

REPO = Path(__file__).resolve().parent.parent


def procfile_line(process_type):
    """What the Procfile runs for `process_type` (web, release), as the text after its name."""
    [line] = [line for line in (REPO / "Procfile").read_text().splitlines() if line.startswith(f"{process_type}:")]
    return line.removeprefix(f"{process_type}:").strip()


# What every stack runs: the Procfile's web line.
WEB_COMMAND = shlex.split(procfile_line("web"))
STARTUP_TIMEOUT = 30
NGINX_DEFAULT_WORKERS = 4  # worker_processes in config/nginx.conf.erb, without NGINX_WORKERS
SHUTDOWN_TIMEOUT = 35

# Every stack runs the project's settings plus the tests' own pages and static file
# (tests/settings.py), so that the tests depend on nothing the project serves: they pass
# with the demo app deleted (tests/fork.py checks it).
TESTS_SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.settings"}

# The stack as it runs on a dyno: DYNO makes the settings the production ones (https
# redirect, HSTS, secure cookies) and the secret key is a real one. gunicorn writes its own
# access lines too (GUNICORN_ACCESS_LOG=1), so a test can see every request that reached
# gunicorn.
PRODUCTION_ENV = {
    "DYNO": "web.1",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "GUNICORN_ACCESS_LOG": "1",
}


# What Heroku's router adds to a request that came over https: production settings then
# serve it rather than redirect it.
OVER_HTTPS = {"X-Forwarded-Proto": "https"}


def gunicorn_settings():
    """The settings config/gunicorn.conf.py makes, read the way gunicorn reads the file."""
    path = REPO / "config" / "gunicorn.conf.py"
    settings = {"__file__": str(path)}
    exec(path.read_text(), settings)
    return settings


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def system_nginx():
    """The nginx installed on this machine (Debian puts it in /usr/sbin, often not on PATH)."""
    return shutil.which("nginx", path=f"{os.environ['PATH']}{os.pathsep}/usr/sbin")


def copy_of_repository(destination):
    """Copy the repository to `destination` as a fresh clone has it, and return the path.

    A clone has nothing that .gitignore lists (the virtualenv, staticfiles, the database, the
    rendered config, the built shim), so neither has the copy: each test builds what it needs.
    """
    ignored = [Path(line.rstrip("/")).name for line in (REPO / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(".git", *ignored))
    return destination


def whole_lines(written):
    """The whole lines in what the web process has written so far, as bytes. It may be in
    the middle of a line while a test reads: that last, unfinished piece is left out."""
    return written[:written.rfind(b"\n") + 1].splitlines()


def complete_lines(path):
    """whole_lines() of a file the web process writes to."""
    return whole_lines(path.read_bytes())


def children_of(pid):
    """Direct child processes of `pid`, forked by any of its threads; none once it has ended
    (it may end while we look, as when a stack is being stopped)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found = []
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def stat_fields(pid):
    """The fields of /proc/PID/stat from the 3rd (the state) on. The command, the 2nd, is in
    parentheses and may hold spaces, so the split starts after it."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def start_time(pid):
    """When `pid` started (in clock ticks since boot), or None if it is not running.

    A pid and its start time name one process: a new process that is given a recycled pid
    has a later start time. A zombie has finished running, and counts as gone.
    """
    try:
        fields = stat_fields(pid)
    except OSError:
        return None
    state, started = fields[0], int(fields[19])  # fields 3 and 22
    return None if state in "ZX" else started


class Build:
    """This repository's build and release phase, done once per test run and shared by its
    stacks: static files collected into staticfiles/, and an empty SQLite database migrated,
    of which each stack gets a copy. Each takes about half a second, and the suite starts
    over a hundred stacks."""

    def __init__(self):
        self.static_collected = False
        self.migrated_databases = {}  # DJANGO_SETTINGS_MODULE: a migrated SQLite file
        self.directory = None  # where those are kept until the test run ends

    def collect_static_once(self, stack):
        """With the tests' settings, whatever the first stack runs: their static files are the
        project's and the tests' own, which every stack of the run may link to."""
        if not self.static_collected:
            stack.manage("collectstatic", "--noinput", env=TESTS_SETTINGS)
            self.static_collected = True

    def migrate_once(self, stack):
        """Migrate the stack's empty SQLite file: the first time for real, then by copying."""
        settings = stack.env.get("DJANGO_SETTINGS_MODULE", "")
        if settings in self.migrated_databases:
            shutil.copyfile(self.migrated_databases[settings], stack.database_path)
        else:
            stack.manage("migrate", "--noinput")
            self.migrated_databases[settings] = self.keep(stack.database_path)

    def keep(self, database):
        if self.directory is None:
            self.directory = tempfile.TemporaryDirectory(prefix="build-")
        kept = Path(self.directory.name) / f"{len(self.migrated_databases)}-{database.name}"
        shutil.copyfile(database, kept)
        return kept


BUILD = Build()


class Stack:
    """One running copy of the web process, started the way the Procfile starts it."""

    def __init__(self, tmp_path, *, app_dir=REPO, extra_env=None, command=WEB_COMMAND):
        self.app_dir = app_dir
        self.command = command
        self.port = free_port()
        self.database_path = tmp_path / "db.sqlite3"
        self.default_database_url = f"sqlite:///{self.database_path}"
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
            "DATABASE_URL": self.default_database_url,
            "WEB_CONCURRENCY": "2",
            # What Heroku's Python buildpack sets in every dyno.
            "GUNICORN_CMD_ARGS": "--access-logfile -",
            "FORWARDED_ALLOW_IPS": "*",
            **TESTS_SETTINGS,
            **(extra_env or {}),
        }
        (tmp_path / "nginx").mkdir()
        self.process = None
        # Every process seen in this stack's tree: pid -> start time (see start_time()).
        self.seen_processes = {}

    def prepare(self, migrate=True):
        """What Heroku's build and release phase do: collect static files and migrate.

        Heroku does both once per deploy, not once per dyno; so do the tests, once per test
        run (see Build), for every stack of this repository that uses its own SQLite file. A
        copy of the repository, or another database, gets both in full.
        """
        if self.app_dir != REPO:
            self.manage("collectstatic", "--noinput")
        else:
            BUILD.collect_static_once(self)
        if not migrate:
            return
        if self.app_dir == REPO and self.env["DATABASE_URL"] == self.default_database_url:
            BUILD.migrate_once(self)
        else:
            self.manage("migrate", "--noinput")

    def manage(self, *command, env=None):
        """Run a manage.py command with this stack's environment, and `env` over it."""
        subprocess.run([sys.executable, "manage.py", *command, "--verbosity", "0"],
                       cwd=self.app_dir, env={**self.env, **(env or {})}, check=True)

    def start(self, stdout=None):
        """Start the web process, printing to stdout (by default this stack's stdout.log), and
        wait until it serves with all its workers."""
        self.launch(stdout)
        self.wait_until_serving()
        self.wait_for_workers()

    def launch(self, stdout=None):
        """Start the web process and return at once."""
        # Append mode, so that a stack started again adds to what it printed before.
        self.stdout_path.touch()
        self.process = subprocess.Popen(
            self.command, cwd=self.app_dir, env=self.env, start_new_session=True,
            stdout=stdout or self.stdout_path.open("ab"), stderr=self.stderr_path.open("ab"),
        )

    def fail_if_exited(self):
        if self.process.poll() is not None:
            raise AssertionError(f"start-nginx exited with {self.process.returncode}:\n{self.output()}")

    def wait_until_serving(self, timeout=STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.fail_if_exited()
            try:
                # Any answer will do; in production mode it is a redirect to https.
                requests.get(self.url + "/", timeout=5, allow_redirects=False)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"nothing answered on port {self.port} within {timeout}s:\n{self.output()}")

    def wait_for_workers(self):
        """Wait until gunicorn and nginx have started all their workers, and record them."""
        pids = self.child_pids()
        expected = {pids.get("app"): int(self.env["WEB_CONCURRENCY"]),
                    pids.get("nginx"): int(self.env.get("NGINX_WORKERS") or NGINX_DEFAULT_WORKERS)}
        expected.pop(None, None)  # the nginx buildpack's script prints no pids
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while any(len(children_of(pid)) < count for pid, count in expected.items()):
            self.fail_if_exited()
            if time.monotonic() > deadline:
                raise AssertionError(f"workers missing after {STARTUP_TIMEOUT}s:\n{self.output()}")
            time.sleep(0.05)
        self.record_processes()

    def wait_until_every_worker_has_answered(self, timeout=STARTUP_TIMEOUT):
        """Wait until each gunicorn worker running now has answered a request.

        A worker answers only once it has booted, and so once it has logged everything it
        logs as it boots (the settings' warnings, say): after this, a count of such lines can
        no longer grow. Needs tests.settings (TESTS_SETTINGS), for /worker-pid/.
        """
        workers = set(children_of(self.child_pids()["app"]))
        answered = set()
        deadline = time.monotonic() + timeout
        # As many requests at once as there are workers, so that each gets its turn soon.
        with ThreadPoolExecutor(len(workers)) as pool:
            while not workers <= answered:
                assert time.monotonic() < deadline, f"workers {workers - answered} never answered:\n{self.output()}"
                answers = pool.map(lambda _: self.get("/worker-pid/", headers=OVER_HTTPS), workers)
                answered |= {int(answer.text) for answer in answers}

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

    # Every way of reading what the stack printed goes through complete_lines(), so that no
    # test ever parses half a line.

    def stdout_lines(self):
        return [line.decode(errors="replace") for line in complete_lines(self.stdout_path)]

    def stderr_lines(self):
        return [line.decode(errors="replace") for line in complete_lines(self.stderr_path)]

    def log_lines(self):
        """Every line printed so far, stdout's then stderr's, as bytes: what Heroku collects."""
        return complete_lines(self.stdout_path) + complete_lines(self.stderr_path)

    def output(self):
        return "".join(f"{line}\n" for line in self.stdout_lines() + self.stderr_lines())

    def wait_for_output(self, text, timeout=5):
        """Everything printed so far, once `text` is in it. The web process prints its
        children's lines as they reach it through its pipes, a moment after they were
        written: a line logged while a request was handled may come after the response."""
        deadline = time.monotonic() + timeout
        while text not in (output := self.output()):
            assert time.monotonic() < deadline, f"nothing printed {text!r} within {timeout}s:\n{output}"
            time.sleep(0.05)
        return output

    def access_lines(self):
        """The access log lines nginx has written so far, parsed."""
        return [parse_logfmt(line) for line in self.stdout_lines() if line.startswith("measure#nginx.service=")]

    def wait_for_access_line(self, request_id, timeout=5):
        return self.wait_for_access_lines([request_id], timeout)[request_id]

    def wait_for_access_lines(self, request_ids, timeout=5):
        """{request_id: its access line, parsed}, once nginx has logged each of `request_ids`."""
        deadline = time.monotonic() + timeout
        while True:
            found = {fields.get("request_id"): fields for fields in self.access_lines()}
            missing = set(request_ids) - found.keys()
            if not missing:
                return {request_id: found[request_id] for request_id in request_ids}
            if time.monotonic() > deadline:
                raise AssertionError(f"no access line with request_id={sorted(missing)[0]} "
                                     f"(nor {len(missing) - 1} more):\n{self.output()}")
            time.sleep(0.05)

    def child_pids(self):
        """PIDs of the app and nginx, from the wrapper's `at=...-start` lines."""
        pids = {}
        for line in self.stdout_lines():
            # A runner such as honcho may put a prefix of its own before each line.
            _, wrapper, rest = line.partition("wrapper=start-nginx")
            fields = parse_logfmt(wrapper + rest) if wrapper else {}
            if fields.get("at") in ("app-start", "nginx-start"):
                pids[fields["at"].removesuffix("-start")] = int(fields["pid"])
        return pids

    def process_tree(self):
        """Every PID of this stack now: the wrapper, nginx and gunicorn, and their workers."""
        pids = [self.process.pid]
        for pid in pids:  # grows as it goes: children, then their children
            pids += children_of(pid)
        return pids

    def record_processes(self):
        """Note every process running in the stack now, so that leftover_processes() knows it."""
        for pid in self.process_tree():
            started = start_time(pid)
            if started is not None:
                self.seen_processes.setdefault(pid, started)

    def leftover_processes(self, wait=2):
        """The recorded processes still running, after giving them `wait` seconds to go.

        Only processes with their recorded start time count, so a recycled pid is not one.
        """
        deadline = time.monotonic() + wait
        while True:
            left = [pid for pid, started in self.seen_processes.items() if start_time(pid) == started]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def stop(self):
        """SIGTERM the wrapper, as `heroku local` would, and return its exit status."""
        self.record_processes()
        self.process.send_signal(signal.SIGTERM)
        return self.wait_for_exit()

    def press_ctrl_c(self, runner_status):
        """Stop a stack started through a runner (make, honcho) as a terminal does: SIGINT to
        the runner's process group. Return 0 when the runner exited with `runner_status`, its
        own way of passing on a Ctrl-C, and bin/start-nginx stopped both processes cleanly, as
        its own exit status would say; otherwise the runner's status."""
        self.record_processes()
        os.killpg(self.process.pid, signal.SIGINT)
        self.wait_for_exit()
        output = self.output()
        stopped_cleanly = all(f"at=stopped process={name} status=0" in output for name in ("nginx", "app"))
        if self.process.returncode == runner_status and stopped_cleanly and "at=kill" not in output:
            return 0
        return self.process.returncode

    def signal_every_process(self, signum):
        """What Heroku does when it stops a dyno: the same signal to every process at once."""
        self.record_processes()
        for pid in self.process_tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def wait_for_exit(self, timeout=SHUTDOWN_TIMEOUT):
        """Wait for the wrapper to exit and return its status, recording the processes of the
        stack meanwhile: gunicorn starts fresh workers while it stops (config/gunicorn.conf.py)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            self.record_processes()
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.command, timeout)
            time.sleep(0.05)
        return self.process.returncode

    def stop_and_check(self):
        """Stop the stack gracefully unless the test did, then check that it left nothing.

        However the stack ended (stopped here, through a runner whose own exit status tells
        a Ctrl-C, or killed by the test on purpose), no process it started may outlive it.
        """
        if self.process.poll() is None:
            status = self.stop()
            assert status == 0, f"start-nginx exited with {status} when stopped:\n{self.output()}"
        left = self.leftover_processes()
        assert not left, f"still running after the stack stopped: {left}\n{self.output()}"

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
        for pid in self.leftover_processes(wait=0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
