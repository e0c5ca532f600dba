"""A dyno of Heroku's Fir generation, reproduced as closely as this machine allows.

No Cloud Native Buildpack build can run here (no pack, no images), so the parts of one that
decide whether the app works are put together by hand, from what project.toml declares and
what the buildpacks' sources say they do (docs/fir.md has the list, and what stays unproved):

- nginx is Debian's package, downloaded with `apt-get download` and unpacked with
  `dpkg-deb -x` into a layer directory, as heroku/deb-packages does with Ubuntu's; the web
  process's PATH is built from scratch, with that layer's usr/sbin and no system nginx.
- each step project.toml declares runs as written: its inline scripts as they stand, the
  Python CNB's part as it runs it (`manage.py collectstatic --link --noinput`).
- the Procfile's web line runs as `bash -c` (as heroku/procfile has it) as PID 1 of a PID
  namespace, as a user other than root, with no WEB_CONCURRENCY (the Python CNB sets none).

Unpacking and namespaces need root and apt: elsewhere those tests skip, saying why, except in
CI (CI set), where they fail. The checks that need neither run everywhere.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tests.conftest import running, temporary_runtime_dir
from tests.logfmt import parse as parse_logfmt
from tests.stack import (NGINX_DEFAULT_WORKERS, OVER_HTTPS, REPO, STARTUP_TIMEOUT, children_of,
                         copy_of_repository)
from tests.test_pid1 import NEW_PID_NAMESPACE, ContainerStack, pid_in_its_namespace
from tests.test_shutdown import IN_FLIGHT, outcomes, slow_requests_in_flight

PROJECT = tomllib.loads((REPO / "project.toml").read_text())
BUILDPACKS = PROJECT["io"]["buildpacks"]["group"]
EXCLUDED = PROJECT["io"]["buildpacks"]["exclude"]
DEB_PACKAGES = PROJECT["com"]["heroku"]["buildpacks"]["deb-packages"]["install"]
# heroku/deb-packages also installs the dependencies a package has that the run image lacks.
# Of nginx's, that is nginx-common (its libraries are in every Ubuntu and Debian image).
DEPENDENCIES_NOT_IN_THE_RUN_IMAGE = ["nginx-common"]

# Fir runs the app as `heroku` (uid 1000); any user but root shows the same things: what it
# may not write, and a PID 1 that is not root. Full paths: the dyno's PATH has neither tool.
DYNO_USER = [shutil.which("setpriv") or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
IN_A_PID_NAMESPACE = [shutil.which("unshare") or "unshare", *NEW_PID_NAMESPACE[1:]]
DYNO_UID = 65534
# Without a C compiler or system nginx: the run image has neither. bin/start-nginx needs
# `dirname`; everything else is in the Python layer or the nginx layer.
TOOLS_THE_WRAPPER_NEEDS = ["dirname"]
# Eight requests on this machine's two workers: four rounds of this many seconds.
SLOW_SECONDS = 1


def procfile_line(process_type):
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name == process_type:
            return command.strip()
    raise AssertionError(f"no {process_type} line in the Procfile")


# --- Checks that need no root ------------------------------------------------------------


def test_python_version_file_asks_for_the_python_runtime_txt_asks_for():
    # Cedar reads runtime.txt first, Fir only .python-version: both must get the same Python.
    runtime_txt = (REPO / "runtime.txt").read_text().strip()
    python_version = (REPO / ".python-version").read_text().strip()

    assert runtime_txt == f"python-{python_version}"


def test_project_toml_keeps_out_of_the_build_everything_a_clone_lacks():
    ignored = [line for line in (REPO / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]

    assert sorted(set(ignored) - set(EXCLUDED)) == []


def test_project_toml_installs_nginx_and_runs_the_python_buildpack_and_the_procfile():
    ids = [buildpack.get("id") for buildpack in BUILDPACKS]

    assert "nginx" in DEB_PACKAGES
    # deb-packages first, so that nginx is on PATH for every step after it.
    assert ids[0] == "heroku/deb-packages"
    assert {"heroku/python", "heroku/procfile"} <= set(ids)


# --- A dyno ------------------------------------------------------------------------------


def need_root_and_apt():
    missing = [tool for tool in ("apt-get", "dpkg-deb", "unshare", "setpriv") if not shutil.which(tool)]
    reason = None
    if os.geteuid() != 0:
        reason = "a Fir-shaped dyno needs root (a PID namespace, another user)"
    elif missing:
        reason = f"a Fir-shaped dyno needs {', '.join(missing)}"
    if reason and os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run it")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def nginx_layer():
    """The layer heroku/deb-packages would make: the packages unpacked, nothing configured.
    Downloaded once per test run."""
    need_root_and_apt()
    with tempfile.TemporaryDirectory(prefix="deb-packages-") as directory:
        downloads, layer = Path(directory, "downloads"), Path(directory, "layer")
        downloads.mkdir()
        subprocess.run(["apt-get", "download", "--quiet", *DEB_PACKAGES, *DEPENDENCIES_NOT_IN_THE_RUN_IMAGE],
                       cwd=downloads, check=True, capture_output=True)
        for package in sorted(downloads.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(package), str(layer)], check=True)
        Path(directory).chmod(0o755)
        yield layer


@pytest.fixture(scope="session")
def python_layer():
    """A stand-in for the Python CNB's layers: a Python the dyno's user may run (this test
    run's own may sit where only root can reach it, as under /root/.pyenv), with a copy of
    this test run's packages (its virtualenv may be just as far out of reach: a checkout in
    a 0700 directory, as CI's is), and the gunicorn command."""
    need_root_and_apt()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if python is None or subprocess.run([*DYNO_USER, python, "-c", ""]).returncode != 0:
        reason = f"no {version} that another user may run, in /usr/local/bin, /usr/bin or /bin"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="python-layer-") as directory:
        layer = Path(directory)
        layer.chmod(0o755)
        subprocess.run([python, "-m", "venv", "--without-pip", str(layer)], check=True)
        site_packages = layer / "lib" / version / "site-packages"
        shutil.copytree(sysconfig.get_paths()["purelib"], site_packages, dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        gunicorn = layer / "bin" / "gunicorn"
        gunicorn.write_text(f"#!{layer}/bin/python\nfrom gunicorn.app.wsgiapp import run\nrun()\n")
        gunicorn.chmod(0o755)
        yield layer


def layer_path(layer):
    """What deb-packages puts on PATH, at build and at run time."""
    return [str(layer / "usr" / "sbin"), str(layer / "usr" / "bin"), str(layer / "bin")]


def as_the_dyno_user(command, cwd, env):
    """Run a command as the build and the dyno run it: as their user, in the app directory."""
    result = subprocess.run([*DYNO_USER, *command], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def build_env(layers, app):
    # The build image has a compiler and the usual tools, but no nginx of its own.
    path = [str(layers.python / "bin"), *layer_path(layers.nginx), "/usr/local/bin", "/usr/bin", "/bin"]
    # The settings the dyno below runs with: the project's, plus the tests' own pages and
    # static files, which collectstatic must therefore collect too.
    return {"PATH": os.pathsep.join(path), "HOME": str(app), "LANG": "C.UTF-8",
            "DJANGO_SETTINGS_MODULE": "tests.settings"}


def build(app, layers):
    """Each step project.toml lists, in its order."""
    env = build_env(layers, app)
    for buildpack in BUILDPACKS:
        if "script" in buildpack:
            script = buildpack["script"]
            as_the_dyno_user([script.get("shell", "/bin/sh"), "-c", script["inline"]], app, env)
        elif buildpack["id"] == "heroku/python":
            # The dependencies are this venv's. The CNB collects the static files with --link.
            assert not (app / "runtime.txt").exists(), "the Python CNB fails the build when runtime.txt exists"
            assert (app / ".python-version").is_file()
            as_the_dyno_user(["python", "manage.py", "collectstatic", "--link", "--noinput"], app, env)
        else:
            # heroku/deb-packages made nginx_layer; heroku/procfile only reads the Procfile.
            assert buildpack["id"] in ("heroku/deb-packages", "heroku/procfile"), buildpack


@pytest.fixture(scope="session")
def layers(nginx_layer, python_layer):
    return SimpleNamespace(nginx=nginx_layer, python=python_layer)


@pytest.fixture(scope="module")
def fir_app(layers):
    """This app, built as project.toml says and released once, as a deploy does; owned by the
    dyno's user, as /workspace is. Its database is a SQLite file beside it."""
    with temporary_runtime_dir() as directory:
        app = SimpleNamespace(directory=copy_of_repository(directory / "workspace"), layers=layers,
                              tools=tools_directory(directory / "tools"),
                              database_url=f"sqlite:///{directory}/database/db.sqlite3")
        (directory / "database").mkdir()
        subprocess.run(["chown", "-R", f"{DYNO_UID}:{DYNO_UID}", str(app.directory), str(directory / "database")],
                       check=True)
        build(app.directory, layers)
        as_the_dyno_user(["/bin/bash", "-c", procfile_line("release")], app.directory, dyno_environment(app))
        yield app


def tools_directory(directory):
    """Links to the few tools of the run image that the web process needs, and no others."""
    directory.mkdir()
    for tool in TOOLS_THE_WRAPPER_NEEDS:
        (directory / tool).symlink_to(shutil.which(tool))
    return directory


def dyno_environment(app):
    """What a Fir dyno's processes have, and nothing from this machine: PATH from the layers,
    DYNO and the config vars. The Python CNB sets no WEB_CONCURRENCY."""
    path = [str(app.layers.python / "bin"), *layer_path(app.layers.nginx), str(app.tools)]
    return {
        "PATH": os.pathsep.join(path),
        "HOME": str(app.directory),
        "LANG": "C.UTF-8",
        "DYNO": "web.1",
        "DJANGO_SECRET_KEY": "a-secret-for-this-test-only-" + "x" * 30,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": app.database_url,
    }


class FirDyno(ContainerStack):
    """The Procfile's web line under `bash -c`, as PID 1 of a PID namespace, as another user,
    with only what a Fir dyno has on PATH and in its environment."""

    def __init__(self, runtime_dir, app):
        dyno_dir = runtime_dir / "dyno"
        dyno_dir.mkdir()
        os.chown(dyno_dir, DYNO_UID, DYNO_UID)
        super().__init__(dyno_dir)
        self.app_dir = app.directory
        self.command = [*IN_A_PID_NAMESPACE, *DYNO_USER, "/bin/bash", "-c", procfile_line("web")]
        self.env = {
            **dyno_environment(app),
            "PORT": str(self.port),
            # Where every test stack has them, not in /tmp where `make run` may have its own.
            "NGINX_SOCKET_PATH": str(self.socket_path),
            "APP_INITIALIZED_PATH": str(dyno_dir / "app-initialized"),
        }

    def prepare(self, migrate=True):
        """Nothing to do: fir_app built and released the app."""

    def workers_chosen(self):
        """The worker count config/gunicorn.conf.py logged it chose, and why."""
        for line in self.output().splitlines():
            fields = parse_logfmt(line) if line.startswith("level=") else {}
            if fields.get("msg", "").startswith("workers="):
                count, _, reason = fields["msg"].removeprefix("workers=").partition(" chosen from ")
                return int(count), reason
        return None

    def wait_for_workers(self):
        """As Stack's, with the worker count gunicorn logged instead of WEB_CONCURRENCY's."""
        self.wait_for_output("at=nginx-start")
        pids = self.child_pids()
        expected = {pids["app"]: self.workers_chosen()[0], pids["nginx"]: NGINX_DEFAULT_WORKERS}
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while any(len(children_of(pid)) < count for pid, count in expected.items()):
            self.fail_if_exited()
            assert time.monotonic() < deadline, f"workers missing after {STARTUP_TIMEOUT}s:\n{self.output()}"
            time.sleep(0.05)
        self.record_processes()

    def signal_every_process_in_the_dyno(self, signum):
        """What Heroku does: the same signal to every process in the dyno, PID 1 included
        (unshare, outside the dyno, is left alone)."""
        self.record_processes()
        pids = [self.pid1()]
        for pid in pids:
            pids += children_of(pid)
        for pid in pids:
            # A process may end between the listing and its signal (a worker that finished).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


@pytest.fixture(scope="module")
def dyno(fir_app):
    with temporary_runtime_dir() as directory, running(FirDyno(directory, fir_app)) as started:
        yield started


def test_the_web_line_runs_as_pid_1_as_another_user_with_the_nginx_from_the_layer(dyno, layers):
    pid1 = dyno.pid1()
    assert pid_in_its_namespace(pid1) == 1
    assert "bin/start_nginx.py" in Path(f"/proc/{pid1}/cmdline").read_text()
    assert Path(f"/proc/{pid1}").stat().st_uid == DYNO_UID
    assert f'cmd="{layers.nginx}/usr/sbin/nginx ' in dyno.output()
    # No WEB_CONCURRENCY: the count came from gunicorn.conf.py's own rule, and says from what.
    workers, reason = dyno.workers_chosen()
    assert reason != "WEB_CONCURRENCY"
    assert dyno.output().count(" chosen from ") == 1
    assert len(children_of(dyno.child_pids()["app"])) == workers


def test_a_page_and_its_static_file_are_served_over_ipv4_and_ipv6_and_logged(dyno):
    request_ids = {}
    for family, host in (("ipv4", "127.0.0.1"), ("ipv6", "[::1]")):
        request_ids[family] = {kind: f"fir-test-{kind}-over-{family}" for kind in ("page", "static")}
        page = requests.get(f"http://{host}:{dyno.port}/", timeout=10,
                            headers={**OVER_HTTPS, "X-Request-ID": request_ids[family]["page"]})
        stylesheet = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', page.text).group(1)
        static = requests.get(f"http://{host}:{dyno.port}{stylesheet}", timeout=10,
                              headers={**OVER_HTTPS, "X-Request-ID": request_ids[family]["static"]})
        assert (page.status_code, static.status_code) == (200, 200)
        assert static.headers["Content-Type"].startswith("text/css")

    lines = dyno.wait_for_access_lines([request_id for ids in request_ids.values() for request_id in ids.values()])
    assert lines[request_ids["ipv4"]["page"]]["remote_addr"] == "127.0.0.1"
    assert lines[request_ids["ipv6"]["page"]]["remote_addr"] == "::1"
    # The static file came from nginx itself: no request reached gunicorn for it.
    assert lines[request_ids["ipv6"]["static"]]["upstream_connect_time"] == "-"
    # Every line the dyno printed is logfmt (the strict parser raises on anything else), and
    # the one warning is the expected one: this dyno's database is a SQLite file.
    every_line = [parse_logfmt(line) for line in dyno.stdout_lines() + dyno.stderr_lines()]
    warnings = [fields["msg"] for fields in every_line if fields.get("level") == "WARNING"]
    assert all(warning.startswith("DATABASE_URL is a SQLite file") for warning in warnings), warnings


@pytest.mark.parametrize("who", ["only PID 1", "every process"])
def test_sigterm_finishes_every_request_in_flight(fir_app, runtime_dir, who):
    stack = FirDyno(runtime_dir, fir_app)
    with running(stack), ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = slow_requests_in_flight(stack, pool, headers=OVER_HTTPS, seconds=SLOW_SECONDS)

        if who == "only PID 1":
            os.kill(stack.pid1(), signal.SIGTERM)
        else:
            stack.signal_every_process_in_the_dyno(signal.SIGTERM)

        assert outcomes(futures) == [200] * IN_FLIGHT
        assert stack.wait_for_exit() == 0
