#!/usr/bin/env python3
"""Run nginx in front of an app server, both in one dyno, and keep them together.

Usage:

    bin/start-nginx [-f] COMMAND [ARGS...]
    bin/start-nginx gunicorn -c config/gunicorn.conf.py myproject.wsgi

The story, in the order main() tells it:

1. Render config/nginx.conf.erb to config/nginx.conf (ERB without Ruby: see bin/erb.py)
   and have nginx check it, so a broken config fails before anything starts.
2. Start COMMAND, the app server.
3. Wait until the app touches its readiness file ($APP_INITIALIZED_PATH, default
   /tmp/app-initialized), so nginx never answers 502 while the app boots. -f skips this.
4. Start nginx in the foreground, listening on $PORT.
5. Supervise: when either process exits on its own, stop the other and exit 1, saying which.
6. On SIGTERM or SIGINT, stop nginx gracefully first (it finishes the requests it has
   accepted), then the app, and exit 0.

It has the same command line as the start-nginx of Heroku's nginx buildpack, and progress
lines in the same key=value style, but needs no Ruby. Standard library only: it runs before
anything else in the dyno and must not depend on the app's packages.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import erb

APP_DIR = Path(__file__).resolve().parent.parent
TEMPLATE = APP_DIR / "config" / "nginx.conf.erb"
CONFIG = APP_DIR / "config" / "nginx.conf"

# Heroku stops a dyno that has not bound $PORT within 60 seconds of starting (error R10).
# Give up a little earlier, with a message that says what to check.
APP_READY_TIMEOUT = float(os.environ.get("APP_READY_TIMEOUT", 45))

# How long each process gets to finish its requests on shutdown before it is killed. Heroku
# sends SIGKILL 30 seconds after SIGTERM, so both together stay under that.
NGINX_STOP_TIMEOUT = 10
APP_STOP_TIMEOUT = 15

POLL_INTERVAL = 0.05

# Exit statuses, so that a supervisor (or a person) can tell what happened.
EXIT_STOPPED = 0  # stopped on request, after a clean shutdown
EXIT_PROCESS_EXITED = 1  # nginx or the app exited on its own; the other was stopped
EXIT_BAD_SETUP = 2  # wrong usage, PORT, template or nginx config, or nginx missing
EXIT_APP_NOT_READY = 3  # the app never touched its readiness file

NGINX_INSTALL_HELP = """\
nginx was not found. It is looked for at bin/nginx (where Heroku's nginx buildpack puts it),
then at $NGINX_BIN, then as `nginx` on PATH. To install it:
    Debian/Ubuntu:  sudo apt-get install nginx
    macOS:          brew install nginx
If it is installed already but not on PATH (Debian puts it in /usr/sbin), add its directory
to PATH or point NGINX_BIN at an nginx binary."""


class SetupError(Exception):
    """Something to fix before anything can start; the message says what."""


def log(**fields):
    """Print one progress line, key=value like the nginx buildpack's."""
    pairs = " ".join(f"{key}={quote(str(value))}" for key, value in fields.items())
    print(f"wrapper=start-nginx {pairs}", flush=True)


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


def quote(value):
    if value and not any(char in value for char in ' "=\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SignalInbox:
    """Records SIGTERM and SIGINT; the main loop decides what to do about them.

    Handlers only note the signal (as gunicorn's arbiter does), so nothing complicated ever
    runs in the middle of another piece of code.
    """

    def __init__(self):
        self.received = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._record)

    def _record(self, signum, frame):
        self.received.append(signal.Signals(signum).name)

    def __len__(self):
        return len(self.received)


def parse_arguments(argv):
    """Return (wait_for_app, command), following the buildpack's `[-f] COMMAND...`."""
    wait_for_app = True
    if argv[:1] == ["-f"]:
        wait_for_app = False
        argv = argv[1:]
    if not argv:
        raise SetupError("usage: bin/start-nginx [-f] COMMAND [ARGS...]")
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


def render_config():
    """Render the ERB template exactly as Ruby's erb would, or explain why it cannot."""
    # newline="" keeps \r\n line ends as they are, as Ruby does.
    with open(TEMPLATE, encoding="utf-8", newline="") as template:
        source = template.read()
    try:
        text = erb.render(source, str(TEMPLATE.relative_to(APP_DIR)), os.environ)
    except erb.TemplateError as error:
        raise SetupError(f"cannot render the nginx config: {error}") from None
    CONFIG.write_text(text, encoding="utf-8", newline="")
    log(at="config-rendered", path=CONFIG.relative_to(APP_DIR))


def nginx_command(nginx):
    # The prefix is the app directory, as with the buildpack's script, so relative paths in
    # the config (mime.types, static files) mean the same under both.
    return [nginx, "-p", f"{APP_DIR}/", "-c", str(CONFIG)]


def check_nginx_config(nginx):
    """Have nginx read the config now, so a mistake fails the boot with nginx's own words."""
    result = subprocess.run([*nginx_command(nginx), "-t", "-q"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SetupError(f"nginx rejected {CONFIG.relative_to(APP_DIR)}:\n{result.stdout.decode(errors='replace')}")


@contextlib.contextmanager
def scratch_directory():
    """Give nginx a directory of its own for its pid and temporary files, removed at exit.

    A fresh one per run, so that several copies of the app can run side by side. Readable by
    all because, when started as root, nginx's workers run as `nobody` and must reach their
    temp directories inside it. Set NGINX_TMP_DIR to choose the directory yourself.
    """
    if "NGINX_TMP_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="nginx-") as path:
        os.chmod(path, 0o755)
        os.environ["NGINX_TMP_DIR"] = path
        yield


def start(name, command):
    # Each child gets its own process group, so a Ctrl-C in the terminal reaches only this
    # wrapper, which then stops them in the right order.
    process = subprocess.Popen(command, start_new_session=True)
    log(at=f"{name}-start", pid=process.pid, cmd=" ".join(command))
    return process


def wait_until_ready(app, ready_file, signals):
    """Wait for the readiness file. Return None when ready, else the exit status to use."""
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
        time.sleep(POLL_INTERVAL)
    log(at="app-initialized")
    return None


def supervise(processes, signals):
    """Block until a signal arrives or a process exits. Return the status to exit with."""
    while True:
        if signals:
            log(at="shutdown", signal=signals.received[0])
            return EXIT_STOPPED
        for name, process in processes.items():
            if process.poll() is not None:
                log(at="exit", process=name, **exit_fields(process.returncode))
                return EXIT_PROCESS_EXITED
        time.sleep(POLL_INTERVAL)


def stop(name, process, stop_signal, timeout):
    """Ask a process to stop, and kill it if it has not within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log(at="kill", process=name, reason=f"still running after {timeout}s")
        process.kill()
        process.wait()
    log(at="stopped", process=name, **exit_fields(process.returncode))


def main(argv):
    signals = SignalInbox()
    with scratch_directory():
        try:
            wait_for_app, command = parse_arguments(argv)
            check_port()
            nginx = find_nginx()
            render_config()
            check_nginx_config(nginx)
        except SetupError as error:
            print(f"start-nginx: {error}", file=sys.stderr, flush=True)
            return EXIT_BAD_SETUP
        return run(command, nginx, wait_for_app, signals)


def run(command, nginx, wait_for_app, signals):
    ready_file = Path(os.environ.get("APP_INITIALIZED_PATH", "/tmp/app-initialized"))
    ready_file.unlink(missing_ok=True)
    processes = {"app": start("app", command)}
    status = wait_until_ready(processes["app"], ready_file, signals) if wait_for_app else None
    if status is None:
        processes["nginx"] = start("nginx", nginx_command(nginx))
        status = supervise(processes, signals)

    # nginx first (QUIT: stop accepting, finish what it has), so that the app is still there
    # to answer the requests nginx is finishing; then the app (TERM: gunicorn's graceful stop).
    stop("nginx", processes.get("nginx"), signal.SIGQUIT, NGINX_STOP_TIMEOUT)
    stop("app", processes["app"], signal.SIGTERM, APP_STOP_TIMEOUT)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
