"""gunicorn settings for running behind nginx in the same dyno.

nginx (see config/nginx.conf.erb) owns $PORT, absorbs slow clients and writes the access log.
gunicorn only ever talks to nginx, over a unix socket, so its workers spend their time running
Django rather than waiting on a phone's upload.

Settings: https://docs.gunicorn.org/en/stable/settings.html
"""

import functools
import logging
import os
import signal
from pathlib import Path

from myproject import logs

# nginx forwards every request to this socket; the path must match the `upstream` block in
# config/nginx.conf.erb, which reads the same variable. Never bind $PORT here: nginx does.
# The default is the one Heroku's nginx buildpack expects; tests and a second local copy
# override it so that they do not collide.
NGINX_SOCKET_PATH = os.environ.get("NGINX_SOCKET_PATH", "/tmp/nginx.socket")
bind = [f"unix:{NGINX_SOCKET_PATH}"]

# This is the web process: where a connection pooler is set up (DATABASE_CONNECTION_POOL_URL,
# or the on-dyno PgBouncer), its workers connect through it (myproject/settings.py). The
# release phase's migrate and one-off `manage.py` commands never read this file, so they keep
# the direct DATABASE_URL, as migrations must. gunicorn sets these variables as it starts,
# before any worker loads the settings. docs/database.md, "When you outgrow the budget".
raw_env = ["DJANGO_USE_CONNECTION_POOL=1"]

# No control socket. gunicorn 25.1 and later open one for its `gunicornc` tool (worker
# status, more or fewer workers, reload, stop), by default in $HOME, where two copies of the
# app would fight over one path. Nothing in this template uses it: bin/start-nginx stops
# gunicorn with signals, Heroku sizes it with WEB_CONCURRENCY, and on a dyno nobody is there
# to type the commands. Off, it is one socket fewer that could stop the app, and one line
# fewer in the log at every start. To use gunicornc on your machine, set
# control_socket = f"{NGINX_SOCKET_PATH}.ctl" here and remove this line.
control_socket_disable = True

# How many workers. WEB_CONCURRENCY wins when set: on Cedar, Heroku's classic Python buildpack
# sets it at dyno boot from the dyno's memory and cores (2 on Standard-1X, 4 on Standard-2X).
# On Fir nothing sets it (the Python CNB does not), so the same rule is applied here: one
# worker per 256 MB of the container's memory limit, at most 2 per core plus 1. Where no
# memory limit can be read (a laptop, most CI machines), 2, as the classic buildpack then
# leaves gunicorn's count alone too. on_starting logs which it was.
# Plain sync workers are right here: nginx hands each one a complete request and takes the
# whole response at once, so a worker is never left waiting on the network.
CGROUP_MEMORY_LIMITS = [
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2, as in most containers today
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1, as on Cedar's dynos
]
MEMORY_PER_WORKER_MB = 256
WORKERS_WITHOUT_A_LIMIT = 2


def memory_limit_mb(limit_files=CGROUP_MEMORY_LIMITS):
    """The container's memory limit in MB, or None where there is none to read. cgroup v2
    says "max" for no limit; v1 a huge number (over 1 TB, which no dyno has)."""
    for path in limit_files:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) // 2**20 <= 2**20:
            return int(value) // 2**20
    return None


def workers_for(memory_mb, cores):
    """The classic Python buildpack's rule, at least 1."""
    return min(max(1, memory_mb // MEMORY_PER_WORKER_MB), 2 * cores + 1)


def choose_workers():
    """(workers, what decided it)."""
    if "WEB_CONCURRENCY" in os.environ:
        return int(os.environ["WEB_CONCURRENCY"]), "WEB_CONCURRENCY"
    memory_mb = memory_limit_mb()
    if memory_mb is None:
        return WORKERS_WITHOUT_A_LIMIT, "no memory limit found"
    # The cores this process may run on, as nproc counts them (Linux, as cgroups are).
    cores = len(os.sched_getaffinity(0))
    return workers_for(memory_mb, cores), f"{memory_mb} MB of memory and {cores} CPU cores"


workers, WORKERS_CHOSEN_FROM = choose_workers()
worker_class = "sync"

# Each worker imports the app for itself. Importing it once in the master (preload_app)
# would save about 20 MB with 2 workers, measured (docs/memory.md), out of the 512 MB of a
# Standard-1X; but gunicorn cannot reload code the master has loaded, and anything the app
# opens while it is imported (a database connection, a thread) would be shared by every
# worker forked from it.
preload_app = False

# Connections nginx has opened but no worker has accepted yet wait in the socket's queue.
# When it is full, the next connection is refused at once and nginx answers 503 with
# Retry-After (config/nginx.conf.erb, @gunicorn_failed). The kernel caps the queue at
# net.core.somaxconn (4096), which a dyno cannot change; gunicorn asks for 2048. A long queue
# is no kindness: every queued request counts against nginx's 20-second proxy_read_timeout,
# and one that waits longer gets a 504 while its worker still runs it later, for nobody. At
# 50 requests a second (2 workers, 40 ms a request) 1024 is 20 seconds of work: enough to
# absorb a burst, or five clients at their per-client limit of 200, and past that visitors
# learn at once that the dyno is full instead of after 20 seconds.
backlog = 1024

# Heroku's router gives up on a request after 30 seconds (error H12). Kill a worker stuck
# longer than that, so it is replaced instead of holding its slot forever.
timeout = 25

# On shutdown, give requests in flight this long to finish. Heroku sends SIGKILL 30 seconds
# after SIGTERM, so this must end well before that.
graceful_timeout = 20

# Code reload, for `make run` (which sets GUNICORN_RELOAD=1), never on a dyno. Each worker
# checks once a second whether a file it watches has changed, and if so finishes its request
# and exits; the master starts a fresh one. The socket stays open meanwhile and nginx stays
# up, so requests wait a moment for the new worker instead of failing. Polling, because
# gunicorn's inotify engine needs an extra package and Linux. What each worker watches is
# decided as it starts (files_to_watch, from post_fork below).
# https://docs.gunicorn.org/en/stable/settings.html#reload
APP_DIR = Path(__file__).resolve().parent.parent
reload = os.environ.get("GUNICORN_RELOAD") == "1" and "DYNO" not in os.environ
reload_engine = "poll"


def files_to_watch():
    """Patterns for the project's own Python files and templates, as the project is now.

    On its own gunicorn watches the modules a worker has imported, from the first time it
    sees them; Django imports views on the first request, so an edit right after it would go
    unseen. Templates are not modules at all, and Django caches them in each worker. Hence
    these patterns, which gunicorn expands anew every second, so that a file added under
    them is seen too:
    - every Python file of each package at the top of the project (a folder with an
      __init__.py: myproject/, the apps beside it, tests/), at any depth;
    - every file under their templates/ folders, and under templates/ at the top, the
      project-level folder people add to TEMPLATES["DIRS"].
    Each worker asks as it starts (post_fork), so an app made with `manage.py startapp`
    while the stack runs, or a templates/ folder added at the top, is watched from the
    restart that adding it to the settings causes.

    Only those trees are walked, each pass: not .venv/ or staticfiles/ (thousands of files,
    and a change there needs collectstatic and a restart anyway), nor any other folder that
    is no package, such as node_modules/. For this project a pass finds 72 files in under a
    millisecond. A template folder anywhere else needs a pattern of its own here.
    """
    packages = sorted(init.parent for init in APP_DIR.glob("*/__init__.py"))
    python_files = [f"{package}/**/*.py" for package in packages]
    template_folders = [folder for package in packages for folder in sorted(package.glob("**/templates"))]
    if (APP_DIR / "templates").is_dir():
        template_folders.append(APP_DIR / "templates")
    # "folder/**" matches the folder itself too: a template added to it changes its time.
    return python_files + [f"{folder}/**" for folder in template_folders]


# Logging. gunicorn's own messages go to stderr as logfmt lines, through the formatter
# Django uses (myproject/logs.py), so every line in `heroku logs` parses the same way.
#
# nginx writes the access line, so gunicorn writes none by default: a second line per
# request would only double the log. Heroku's Python buildpack sets
# GUNICORN_CMD_ARGS="--access-logfile -" in every dyno, and that outranks this file; but
# gunicorn applies logconfig_dict after --access-logfile, so the logger settings below decide.
# To see gunicorn's access line too (one more line per request, with the same request_id as
# nginx's): heroku config:set GUNICORN_ACCESS_LOG=1
# https://docs.gunicorn.org/en/stable/settings.html#logconfig-dict
ACCESS_LOG = os.environ.get("GUNICORN_ACCESS_LOG", "") == "1"
access_log_format = "%(r)s %(s)s %(b)s bytes %(M)sms"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "logfmt": {"()": "myproject.logs.LogfmtFormatter"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "logfmt", "stream": "ext://sys.stderr"},
        "stdout": {"class": "logging.StreamHandler", "formatter": "logfmt", "stream": "ext://sys.stdout"},
    },
    # Django configures the root logger again in each worker, in the same format.
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        # No level here, so that --log-level still sets it.
        "gunicorn.error": {"handlers": ["stderr"], "propagate": False},
        # Access lines are INFO records; at WARNING they are dropped.
        "gunicorn.access": {
            "handlers": ["stdout"],
            "level": "INFO" if ACCESS_LOG else "WARNING",
            "propagate": False,
        },
    },
}


# Server hooks: https://docs.gunicorn.org/en/stable/settings.html#server-hooks
#
# gunicorn lets an exception in a hook end the process that runs it: a worker whose
# post_worker_init raises exits with "Worker failed to boot", and gunicorn then halts
# altogether, failing the requests nginx has in flight. Nothing these hooks do (logging,
# a request id, a file for bin/start-nginx) is worth that, so each one is wrapped: a hook
# that fails logs its error and traceback as logfmt lines, and gunicorn carries on.
def never_stops_the_server(hook):
    @functools.wraps(hook)  # gunicorn checks a hook's arguments, which wraps() keeps
    def carry_on(*args):
        try:
            hook(*args)
        except Exception:
            logging.getLogger("gunicorn.error").exception(
                "the %s hook in config/gunicorn.conf.py failed; gunicorn carries on", hook.__name__)

    return carry_on


@never_stops_the_server
def pre_request(worker, req):
    # nginx sends every request with an X-Request-ID (the router's, or one it made up); every
    # line logged while this worker handles the request carries it, Django's and gunicorn's.
    # gunicorn upper-cases header names.
    headers = dict(req.headers)
    logs.request_id.set(headers.get("X-REQUEST-ID", "-"))


@never_stops_the_server
def post_fork(server, worker):
    # Errors Python would print raw (in a __del__ method, or one that ends a thread) become
    # log lines like any other (myproject/logs.py).
    logs.log_what_python_would_print_itself()
    # The worker starts its reloader after this hook, with the files its copy of the
    # settings names: the project as it is now, apps added since the master started included.
    if worker.cfg.reload:
        worker.cfg.set("reload_extra_files", files_to_watch())


@never_stops_the_server
def post_worker_init(worker):
    # The settings' startup lines (STARTUP_INFO and STARTUP_WARNINGS in myproject/settings.py)
    # are logged here, by the first worker alone: once per start of the web process, rather
    # than once per worker, again each time a worker restarts, and again for every manage.py
    # command.
    # Django is imported here, in a worker that has loaded the app, and not at the top: the
    # master reads this file too, and does not load the app (preload_app is off).
    # An app that is not Django (or has no DJANGO_SETTINGS_MODULE) has no such settings.
    from django.conf import settings

    if worker.age == 1 and settings.configured:
        logger = logging.getLogger("myproject.settings")
        for message in getattr(settings, "STARTUP_INFO", []):
            logger.info(message)
        for message in getattr(settings, "STARTUP_WARNINGS", []):
            logger.warning(message)


@never_stops_the_server
def post_request(worker, req, environ, resp):
    # Called after gunicorn's access line, so that line has the id too.
    logs.request_id.set("-")


# bin/start-nginx starts nginx only once this file exists, so nginx never answers 502 while
# the app is still booting. when_ready runs after the socket is bound (connections wait in
# its backlog until a worker accepts them). Do not set reuse_port: with it, gunicorn binds in
# each worker after this hook has run, and nginx would find no socket.
APP_INITIALIZED_PATH = Path(os.environ.get("APP_INITIALIZED_PATH", "/tmp/app-initialized"))

# When Heroku stops a dyno, every process in it gets SIGTERM at the same moment. Normally
# gunicorn's master would close and remove its socket at once, and the requests nginx still
# has queued for it would fail with 502. bin/start-nginx sets NGINX_GRACEFUL_SIGTERM=1 when
# nginx will finish those requests on SIGTERM (see bin/sigterm_as_sigquit.c); the master then
# ignores SIGTERM and replaces each worker that finishes its request and exits, until nginx is
# done and bin/start-nginx stops the master with SIGINT.
#
# That SIGINT is taken as a graceful stop, SIGTERM's usual meaning, rather than gunicorn's
# quick one: each worker finishes the request it has (one nginx gave up on is still written to
# the database in full) and leaves its loop between requests. A quick stop raises SystemExit in
# each worker wherever the signal finds it, and when that is inside a garbage collector's
# callback, Python prints "Exception ignored in ..." and a traceback that are no log lines.
NGINX_GRACEFUL_SIGTERM = os.environ.get("NGINX_GRACEFUL_SIGTERM")


@never_stops_the_server
def on_starting(server):
    # Once per start, from the master: the worker count, and what decided it.
    server.log.info("workers=%d chosen from %s", workers, WORKERS_CHOSEN_FROM)
    # bin/start-nginx always sets the variable; without it, another script started us.
    if NGINX_GRACEFUL_SIGTERM is None and "DYNO" in os.environ:
        server.log.warning(
            "bin/start-nginx is the nginx buildpack's, not this app's: requests in flight are "
            "lost when the dyno stops. Set the buildpacks in the order heroku-community/nginx, "
            "heroku/python and deploy again."
        )


@never_stops_the_server
def when_ready(server):
    if NGINX_GRACEFUL_SIGTERM == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # The master's own handler queues a signal for its main loop; queue a SIGTERM instead.
        signal.signal(signal.SIGINT, lambda signum, frame: server.signal(signal.SIGTERM, frame))
    APP_INITIALIZED_PATH.touch()


@never_stops_the_server
def on_exit(server):
    # A file left behind would tell the next start that an app is ready before it is.
    APP_INITIALIZED_PATH.unlink(missing_ok=True)
