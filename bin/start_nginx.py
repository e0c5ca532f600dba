#!/usr/bin/env python3
"""Run nginx in front of an app server, both in one dyno, and keep them together.

Usage:

    bin/start-nginx [-f] COMMAND [ARGS...]   run the app and nginx (the Procfile's web process)
    bin/start-nginx --render [TEMPLATE]      print the rendered template (config/nginx.conf.erb)
    bin/start-nginx --check                  render config/nginx.conf and have nginx test it

    bin/start-nginx gunicorn -c config/gunicorn.conf.py myproject.wsgi

The story, in the order run() tells it:

1. Render config/nginx.conf.erb to config/nginx.conf (ERB without Ruby: see bin/erb.py)
   and have nginx test it, so a broken config fails before anything starts.
2. Start COMMAND, the app server.
3. Wait until the app touches its readiness file ($APP_INITIALIZED_PATH, default
   /tmp/app-initialized), so nginx never answers 502 while the app boots. -f skips this.
4. Start nginx in the foreground, listening on $PORT.
5. Supervise: when either process exits on its own, stop the other and exit 1, saying which.
6. On SIGTERM or SIGINT, stop nginx gracefully first (it finishes every request it has
   accepted), then the app, and exit 0. The same signal a second time stops both at once
   (see SignalInbox).

However it ends, nothing it started is left behind: whatever remains of a stopped process's
group (workers that outlived their master) is killed, and if this script itself is killed,
nginx and the app get SIGINT from the kernel and take their workers down with them. Their
output reaches this script's stdout and stderr through pipes, one line at a time (see
bin/log_relay.py), whatever those are: a terminal, a file, a pipe or a socket. As PID 1 of a
container it also reaps the orphans the kernel hands it.

On Heroku every process in the dyno gets SIGTERM at the same moment, so step 6 cannot order
anything there. Two things make that case lose no request either: nginx is started with
bin/sigterm_as_sigquit.so preloaded, which turns its SIGTERM into a graceful SIGQUIT, and the
app is told so (NGINX_GRACEFUL_SIGTERM=1), so that gunicorn keeps its socket open and its
workers serving until nginx has finished (see config/gunicorn.conf.py).

It has the same command line as the start-nginx of Heroku's nginx buildpack, and progress
lines in the same key=value style, but needs no Ruby. Standard library only: it runs before
anything else in the dyno and must not depend on the app's packages. bin/start-nginx is only
a launcher for this file, because the nginx buildpack overwrites bin/start-nginx with its own
at build time (bin/post_compile puts ours back).
"""

import contextlib
import ctypes
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import erb
from log_relay import LogRelay

APP_DIR = Path(__file__).resolve().parent.parent
TEMPLATE = APP_DIR / "config" / "nginx.conf.erb"
CONFIG = APP_DIR / "config" / "nginx.conf"
SIGTERM_SHIM = APP_DIR / "bin" / "sigterm_as_sigquit.so"

# Heroku stops a dyno that has not bound $PORT within 60 seconds of starting (error R10).
# Give up a little earlier, with a message that says what to check.
APP_READY_TIMEOUT = float(os.environ.get("APP_READY_TIMEOUT", 45))

# How long each process gets to finish its requests on shutdown before it is killed. Heroku
# sends SIGKILL 30 seconds after SIGTERM: nginx's own limit (worker_shutdown_timeout in
# config/nginx.conf.erb) is 20 seconds, and the app has nothing left to do once nginx is gone.
NGINX_STOP_TIMEOUT = 25
APP_STOP_TIMEOUT = 4
# Once both have exited, how long to wait for the last of their output (see LogRelay.drain),
# and then for whatever reads ours to take it all.
LOG_DRAIN_TIMEOUT = 1
OUTPUT_CLOSE_TIMEOUT = 5

POLL_INTERVAL = 0.05

# nginx reads its config within milliseconds of starting. The lock on config/nginx.conf (see
# config_in_place) is not held longer than this for one that never forks a worker.
NGINX_CONFIG_READ_TIMEOUT = 5

# A dying parent can have the kernel send its children a signal: prctl(PR_SET_PDEATHSIG),
# Linux only. SIGINT is nginx's fast shutdown and the signal this script stops gunicorn with
# (see run()); each master stops its workers on it. prctl is looked up here, before any child
# is forked, because a forked child of a process with a thread (the log writer) must do as
# little as possible before exec.
PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGINT
PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

# Exit statuses, so that a supervisor (or a person) can tell what happened.
EXIT_STOPPED = 0  # stopped on request, after a clean shutdown
EXIT_PROCESS_EXITED = 1  # nginx or the app exited on its own; the other was stopped
EXIT_BAD_SETUP = 2  # wrong usage, PORT, template or nginx config, or nginx missing
EXIT_APP_NOT_READY = 3  # the app never touched its readiness file

USAGE = """\
usage: bin/start-nginx [-f] COMMAND [ARGS...]
       bin/start-nginx --render [TEMPLATE]
       bin/start-nginx --check"""

NGINX_INSTALL_HELP = """\
nginx was not found. It is looked for at bin/nginx (where Heroku's nginx buildpack puts it),
then at $NGINX_BIN, then as `nginx` on PATH. To install it:
    Debian/Ubuntu:  sudo apt-get install nginx
    macOS:          brew install nginx
If it is installed already but not on PATH (Debian puts it in /usr/sbin), add its directory
to PATH or point NGINX_BIN at an nginx binary."""


class SetupError(Exception):
    """Something to fix before anything can start; the message says what."""


# Everything this script prints, its own lines and its children's, goes through one writer,
# so that no two lines are ever mixed (see bin/log_relay.py).
OUTPUT = LogRelay()


def log(**fields):
    """Print one progress line, key=value like the nginx buildpack's."""
    pairs = " ".join(f"{key}={quote(str(value))}" for key, value in fields.items())
    OUTPUT.print(sys.stdout, f"wrapper=start-nginx {pairs}")


def quote(value):
    """Bare when safe, else quoted with JSON's escapes (as myproject/logs.py does), so that no
    value (a command line, a path) can break the line or forge a key."""
    if value and value.isascii() and value.isprintable() and not any(char in value for char in ' "=\\'):
        return value
    return json.dumps(value)


def exit_fields(returncode):
    """status=N for a process that exited, signal=NAME for one a signal ended."""
    if returncode < 0:
        return {"signal": signal.Signals(-returncode).name}
    return {"status": returncode}


def status_of_early_exit(returncode):
    """The app's own status, as a shell would report it (128+N for signal N), never 0."""
    if returncode < 0:
        return 128 - returncode
    return returncode or EXIT_PROCESS_EXITED


class SignalInbox:
    """Records SIGTERM and SIGINT; the main loop decides what to do about them.

    Handlers only note the signal (as gunicorn's arbiter does), so nothing complicated ever
    runs in the middle of another piece of code.

    The first signal asks for a graceful stop. The same signal again insists: a person who
    presses Ctrl-C twice wants everything stopped now. The other signal does not, because
    runners send it on their own after the first: a terminal's Ctrl-C reaches foreman and the
    web process at once, and foreman then sends the web process SIGTERM, moments later.
    """

    def __init__(self):
        self.received = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._record)

    def _record(self, signum, frame):
        self.received.append(signal.Signals(signum).name)

    def __bool__(self):
        return bool(self.received)

    def insisted(self):
        """Whether one signal came twice."""
        return len(set(self.received)) < len(self.received)


# Setup: everything that can be wrong before a process starts.


def parse_command(argv):
    """Return (wait_for_app, command), following the buildpack's `[-f] COMMAND...`."""
    wait_for_app = True
    if argv[:1] == ["-f"]:
        wait_for_app = False
        argv = argv[1:]
    if not argv:
        raise SetupError(USAGE)
    if not shutil.which(argv[0]):
        raise SetupError(f"cannot start the app: {argv[0]!r} was not found on PATH")
    return wait_for_app, argv


def check_port():
    port = os.environ.get("PORT", "")
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise SetupError(f"PORT must be a TCP port number (1-65535) for nginx to listen on, got {port!r}")


def find_nginx():
    """bin/nginx (where the buildpack puts it), then $NGINX_BIN, then nginx on PATH."""
    bundled = APP_DIR / "bin" / "nginx"
    if bundled.is_file():
        return str(bundled)
    chosen = os.environ.get("NGINX_BIN")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise SetupError(f"NGINX_BIN is {chosen!r}, which is not an executable file")
        return chosen
    found = shutil.which("nginx")
    if not found:
        raise SetupError(NGINX_INSTALL_HELP)
    return found


def nginx_version(nginx):
    """What `nginx -v` says, such as 1.30.2: printed when nginx starts, so that `heroku logs`
    shows which nginx serves (the buildpack's, or another found on PATH)."""
    result = subprocess.run([nginx, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    said = result.stdout.decode(errors="replace").strip()
    # "nginx version: nginx/1.30.2"; another build may name itself otherwise (openresty/...).
    return said.removeprefix("nginx version: ").removeprefix("nginx/") or "unknown"


def render(template):
    """Render an ERB template exactly as Ruby's erb would, or explain why it cannot."""
    # newline="" keeps \r\n line ends as they are, as Ruby does.
    try:
        with open(template, encoding="utf-8", newline="") as file:
            source = file.read()
    except OSError as error:
        raise SetupError(f"cannot read the template: {error}") from None
    try:
        return erb.render(source, display_path(template), os.environ)
    except erb.TemplateError as error:
        raise SetupError(f"cannot render the nginx config: {error}") from None


def render_config():
    """config/nginx.conf.erb rendered with this start's environment (NGINX_TMP_DIR included)."""
    rendered = render(TEMPLATE)
    log(at="config-rendered", path=display_path(CONFIG))
    return rendered


def display_path(path):
    """A path relative to the app, as people know it (config/nginx.conf.erb)."""
    path = Path(path).resolve()
    return str(path.relative_to(APP_DIR)) if path.is_relative_to(APP_DIR) else str(path)


@contextlib.contextmanager
def config_in_place(rendered):
    """Write `rendered` to config/nginx.conf, and keep it there until the block ends.

    The file is one per checkout, where the nginx buildpack has it, but each start writes its
    own (its PORT, its socket path). Two starts at once in one checkout (make run while make
    test starts its stacks) would each have nginx read whichever was written last, and one
    would serve on the other's port. So each holds a lock on the file from writing it until
    nginx has read it; another start waits for it, a moment at most.
    """
    try:
        config = open(CONFIG, "a", encoding="utf-8", newline="")  # "a": not emptied before the lock
    except OSError as error:
        raise SetupError(f"cannot write the rendered config: {error}") from None
    with config:
        fcntl.flock(config, fcntl.LOCK_EX)
        try:
            config.truncate(0)
            config.write(rendered)
            config.flush()
        except OSError as error:
            raise SetupError(f"cannot write the rendered config: {error}") from None
        yield


def nginx_command(nginx):
    # The prefix is the app directory, as with the buildpack's script, so relative paths in
    # the config (mime.types, static files) mean the same under both.
    # nginx opens its compiled-in error log before it reads the config's error_log. Heroku's
    # binary has logs/error.log under the prefix, which no app has, so every start would
    # print "[alert] could not open error log file". -e stderr (nginx 1.19.5 and later) is
    # where the config sends errors anyway.
    return [nginx, "-e", "stderr", "-p", f"{APP_DIR}/", "-c", str(CONFIG)]


def wait_until_nginx_has_read_its_config(nginx, pause):
    """nginx forks its workers once it has read its config and opened its ports: wait for the
    first of them, or for nginx to exit. Linux only (/proc); elsewhere nginx's own start, a
    few milliseconds, is not covered by config_in_place's lock."""
    children = Path(f"/proc/{nginx.pid}/task/{nginx.pid}/children")
    deadline = time.monotonic() + NGINX_CONFIG_READ_TIMEOUT
    while nginx.poll() is None and time.monotonic() < deadline:
        try:
            if children.read_text().split():
                return
        except OSError:
            return  # no /proc here, or no children list in this kernel
        pause()


def say_where_it_listens(nginx):
    """Once nginx listens, print where: on your machine as a URL to open (runners choose
    ports of their own, 5000, 5006 or 5100: docs/where-it-runs.md); on a dyno the port alone,
    since the app's address is the router's, which the dyno does not know."""
    if nginx.poll() is not None:
        return  # it could not start: supervise() says so
    port = os.environ["PORT"]
    if "DYNO" in os.environ:
        log(at="listening", port=port)
    else:
        log(at="listening", url=f"http://127.0.0.1:{port}")


def test_nginx_config(nginx):
    """Have nginx read the config now, so a mistake fails the boot with nginx's own words."""
    result = subprocess.run([*nginx_command(nginx), "-t", "-q"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SetupError(f"nginx rejected {display_path(CONFIG)}:\n{result.stdout.decode(errors='replace')}")


def choose_template_variables():
    """Work out the values config/nginx.conf.erb needs that no one sets by hand."""
    choose_nginx_user()
    choose_ipv6()
    choose_static_hsts()


def choose_nginx_user():
    """As root, run nginx's workers as the owner of the app directory (NGINX_USER).

    A master started as root runs its workers as `nobody`, who cannot enter a checkout under
    a directory only its owner may enter (/root, `mktemp -d`, /home/NAME on recent Ubuntu):
    every static file then falls back to gunicorn after `[crit] stat() ... (13: Permission
    denied)`, and nginx's own error pages become 403s. The owner of the checkout can read it.
    The price: when that owner is root, as in a clone in /root, the workers run as root too,
    so a flaw in nginx would hand an attacker root instead of `nobody`. The app itself (and
    so the code that handles every request nginx passes on) already runs as root there.
    Not root (a dyno, most machines): nothing is set, and nginx keeps its workers as the user
    that started it. Set NGINX_USER ("user [group]", as nginx's `user` directive takes them)
    to choose yourself.
    """
    if os.geteuid() != 0 or "NGINX_USER" in os.environ:
        return
    try:
        owner = pwd.getpwuid(APP_DIR.stat().st_uid)
    except KeyError:
        log(at="warning", reason="app-owner-unknown",
            msg=f"{APP_DIR} belongs to a user with no name; nginx's workers run as nobody")
        return
    os.environ["NGINX_USER"] = owner.pw_name
    log(at="nginx-user", user=owner.pw_name)


def choose_ipv6():
    """Listen on IPv6 as well as IPv4 where this host has IPv6 (NGINX_LISTEN_IPV6).

    Some platforms give a container only IPv6, which is why Heroku's own Python starter binds
    [::]. Elsewhere IPv6 is switched off, and then nginx either listens on it for nothing or
    (with the kernel's ipv6.disable=1) refuses to start: "socket() [::]:5000 failed (97:
    Address family not supported by protocol)". So look first, unless NGINX_LISTEN_IPV6 is
    set: 1 listens on IPv6 whatever the host has, 0 never does.
    """
    choice = os.environ.get("NGINX_LISTEN_IPV6")
    if choice is None:
        choice = "1" if host_has_ipv6() else "0"
        os.environ["NGINX_LISTEN_IPV6"] = choice
        log(at="ipv6-detected", listen_ipv6=choice)
    if choice not in ("0", "1"):
        raise SetupError(f"NGINX_LISTEN_IPV6 must be 1 (listen on IPv6 too), 0 (IPv4 only) or unset "
                         f"(IPv6 too when this host has it), got {choice!r}")


def host_has_ipv6():
    """Whether IPv6 works here: a socket can be bound to its loopback address, ::1."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def choose_static_hsts():
    """The Strict-Transport-Security value Django puts on https pages (NGINX_STATIC_HSTS).

    nginx sends it on the static files it serves over https, so that they carry the same
    header as when whitenoise serves them through Django. It is worked out from the same
    variables, with the same defaults and rules, as in myproject/settings.py, which this
    script cannot import: change both together (tests/test_static_headers.py compares them).
    """
    on_heroku = "DYNO" in os.environ and "CI" not in os.environ
    seconds = os.environ.get("DJANGO_HSTS_SECONDS", "31536000" if on_heroku else "0")
    try:
        seconds = int(seconds)
    except ValueError:
        raise SetupError(f"DJANGO_HSTS_SECONDS must be a whole number of seconds, got {seconds!r}") from None
    value = ""
    if seconds:
        value = f"max-age={seconds}"
        if django_env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True):
            value += "; includeSubDomains"
        if django_env_bool("DJANGO_HSTS_PRELOAD", True):
            value += "; preload"
    os.environ["NGINX_STATIC_HSTS"] = value


def django_env_bool(name, default):
    """env_bool() of myproject/settings.py: 1, true, yes or on mean on; anything else set, off."""
    if name not in os.environ:
        return default
    return os.environ[name].strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def scratch_directory():
    """Give nginx a directory of its own for its pid and temporary files, removed at exit.

    A fresh one per run, so that several copies of the app can run side by side. Readable by
    all because, when started as root, nginx's workers may run as another user (the app
    directory's owner: see choose_nginx_user) and must reach their temp directories inside
    it. Set NGINX_TMP_DIR to choose the directory yourself.
    """
    if "NGINX_TMP_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="nginx-") as path:
        os.chmod(path, 0o755)
        os.environ["NGINX_TMP_DIR"] = path
        yield


# Running: start, wait, supervise, stop.


class Children:
    """nginx and the app: starting them, relaying their output, and making sure they go."""

    def __init__(self):
        self.processes = {}
        self.relay = OUTPUT

    def start(self, name, command, env, **fields):
        # Each child gets its own process group, so a Ctrl-C in the terminal reaches only
        # this wrapper, which then stops them in the right order; and its workers share that
        # group, so that one killpg() reaches any of them its master left behind.
        process = subprocess.Popen(
            command, env=env, start_new_session=True,
            stdout=self.relay.pipe_to(sys.stdout), stderr=self.relay.pipe_to(sys.stderr),
            preexec_fn=exit_with(os.getpid()),
        )
        self.relay.close_child_ends()
        self.processes[name] = process
        log(at=f"{name}-start", pid=process.pid, **fields, cmd=" ".join(command))
        return process

    def pause(self):
        """Wait a moment, passing on the children's output and collecting orphans."""
        self.relay.pump(POLL_INTERVAL)
        self.reap_orphans()

    def reap_orphans(self):
        """Collect exited processes that were handed to us rather than started by us.

        As PID 1 of a container (docker run, unshare --pid), every process whose parent dies
        becomes our child; one nobody waits for stays a zombie. Our own children are left to
        their Popen, which collects them and keeps their status.
        """
        if sys.platform != "linux":
            return
        ours = {process.pid: process for process in self.processes.values()}
        while True:
            try:
                exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if exited is None:
                return
            if exited.si_pid in ours:
                ours[exited.si_pid].poll()
            else:
                os.waitpid(exited.si_pid, 0)

    def kill_group(self, name):
        """SIGKILL what is left of a child's process group: workers whose master is gone
        keep serving (nginx's hold $PORT) until something ends them."""
        process = self.processes.get(name)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def exit_with(parent_pid):
    """What a child runs before it starts: have the kernel send it PARENT_DEATH_SIGNAL when
    this script dies, even by SIGKILL, which no handler of ours would see. Linux only."""

    def set_parent_death_signal():
        if PRCTL is None:
            return
        PRCTL(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL))
        # Too late if this script died before that line: the child has another parent now.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), PARENT_DEATH_SIGNAL)

    return set_parent_death_signal


def graceful_sigterm_env():
    """nginx's environment with the SIGTERM shim preloaded, or None when it is not built.

    LD_PRELOAD goes to nginx alone: in gunicorn's workers, SIGTERM must keep its meaning.
    """
    if not SIGTERM_SHIM.is_file():
        log(at="warning", reason="sigterm-shim-missing",
            msg=f"{display_path(SIGTERM_SHIM)} is not built (make, or bin/post_compile on Heroku); "
                "when Heroku stops this dyno, nginx will cut the requests in flight")
        return None
    preload = " ".join(filter(None, [str(SIGTERM_SHIM), os.environ.get("LD_PRELOAD")]))
    return {**os.environ, "LD_PRELOAD": preload}


def check_shim_loaded(children):
    """Say so loudly when nginx ignored LD_PRELOAD (a statically linked nginx does)."""
    nginx = children.processes["nginx"]
    maps = Path(f"/proc/{nginx.pid}/maps")
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and nginx.poll() is None:
        with contextlib.suppress(OSError):
            if str(SIGTERM_SHIM) in maps.read_text():
                return
        children.pause()
    if nginx.poll() is None:
        log(at="warning", reason="sigterm-shim-not-loaded",
            msg="nginx did not load the SIGTERM shim; when Heroku stops this dyno, nginx will cut the requests in flight")


def wait_until_ready(children, ready_file, signals):
    """Wait for the readiness file. Return None when ready, else the exit status to use."""
    app = children.processes["app"]
    deadline = time.monotonic() + APP_READY_TIMEOUT
    while not ready_file.exists():
        if signals:
            log(at="shutdown", signal=signals.received[0])
            return EXIT_STOPPED
        if app.poll() is not None:
            log(at="exit", process="app", **exit_fields(app.returncode), reason="exited-before-ready")
            return status_of_early_exit(app.returncode)
        if time.monotonic() > deadline:
            log(at="error", reason="app-not-ready", timeout=APP_READY_TIMEOUT,
                msg=f"the app did not create {ready_file}; check that it binds the socket and runs the when_ready hook")
            return EXIT_APP_NOT_READY
        children.pause()
    log(at="app-initialized")
    return None


def supervise(children, signals):
    """Block until a signal arrives or a process exits. Return the status to exit with."""
    while True:
        if signals:
            log(at="shutdown", signal=signals.received[0])
            return EXIT_STOPPED
        for name, process in children.processes.items():
            if process.poll() is not None:
                log(at="exit", process=name, **exit_fields(process.returncode))
                return EXIT_PROCESS_EXITED
        children.pause()


def stop(children, name, stop_signal, timeout, signals):
    """Ask a process to stop; kill it after `timeout` seconds, or when a signal comes a second
    time. Either way, kill whatever is left of its process group."""
    process = children.processes.get(name)
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(stop_signal)
        log(at="stopping", process=name, signal=stop_signal.name)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if signals.insisted() or time.monotonic() > deadline:
                reason = "second-signal" if signals.insisted() else f"still running after {timeout}s"
                log(at="kill", process=name, reason=reason)
                children.kill_group(name)
                process.wait()
            children.pause()
        log(at="stopped", process=name, **exit_fields(process.returncode))
    children.kill_group(name)


def run(command, nginx, rendered, wait_for_app, signals):
    nginx_env = graceful_sigterm_env()
    # Tell the app whether nginx will finish its requests on SIGTERM (and that it runs
    # under this script at all): config/gunicorn.conf.py reads it. Its output now goes
    # through a pipe, so Python would hold back what it prints until a buffer fills:
    # unbuffered, as Heroku's Python buildpack sets it.
    graceful = nginx_env is not None
    app_env = {"PYTHONUNBUFFERED": "1", **os.environ, "NGINX_GRACEFUL_SIGTERM": "1" if graceful else "0"}

    ready_file = Path(os.environ.get("APP_INITIALIZED_PATH", "/tmp/app-initialized"))
    ready_file.unlink(missing_ok=True)
    children = Children()
    children.start("app", command, app_env)
    status = wait_until_ready(children, ready_file, signals) if wait_for_app else None
    if status is None:
        version = nginx_version(nginx)
        # Written again: another start in this checkout may have written its own meanwhile.
        with config_in_place(rendered):
            nginx_process = children.start("nginx", nginx_command(nginx), nginx_env, version=version)
            wait_until_nginx_has_read_its_config(nginx_process, children.pause)
        say_where_it_listens(nginx_process)
        if graceful:
            check_shim_loaded(children)
        status = supervise(children, signals)

    # nginx first (SIGQUIT: stop accepting, finish every request it has), while the app is
    # still there to answer them. Once nginx is gone no request can reach the app, so it may
    # stop quickly; with the shim, gunicorn's master ignores SIGTERM and takes SIGINT as its
    # graceful stop (config/gunicorn.conf.py).
    stop(children, "nginx", signal.SIGQUIT, NGINX_STOP_TIMEOUT, signals)
    app_stop_signal = signal.SIGINT if graceful else signal.SIGTERM
    stop(children, "app", app_stop_signal, APP_STOP_TIMEOUT, signals)
    # Both are gone: print the last lines they wrote, such as the last request's.
    children.relay.drain(LOG_DRAIN_TIMEOUT)
    return status


# The three commands.


def print_rendered(argv):
    template = Path(argv[0]) if argv else TEMPLATE
    sys.stdout.write(render(template))
    return EXIT_STOPPED


def check_config():
    check_port()
    nginx = find_nginx()
    choose_template_variables()
    with scratch_directory():
        with config_in_place(render_config()):
            test_nginx_config(nginx)
    OUTPUT.print(sys.stdout, f"{display_path(CONFIG)}: nginx accepts it")
    return EXIT_STOPPED


def start_web_process(argv):
    signals = SignalInbox()
    wait_for_app, command = parse_command(argv)
    check_port()
    nginx = find_nginx()
    choose_template_variables()
    with scratch_directory():
        rendered = render_config()
        with config_in_place(rendered):
            test_nginx_config(nginx)
        return run(command, nginx, rendered, wait_for_app, signals)


def main(argv):
    try:
        if argv[:1] == ["--render"]:
            return print_rendered(argv[1:])
        if argv[:1] == ["--check"]:
            return check_config()
        return start_web_process(argv)
    except SetupError as error:
        OUTPUT.print(sys.stderr, f"start-nginx: {error}")
        return EXIT_BAD_SETUP
    finally:
        OUTPUT.close(OUTPUT_CLOSE_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
