"""
Django settings for myproject.

Everything that differs between your machine and Heroku comes from an environment variable,
read here and nowhere else. On Heroku, set them with `heroku config:set NAME=value`.

Settings reference: https://docs.djangoproject.com/en/5.2/ref/settings/
Deployment checklist: https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Heroku sets DYNO in every running dyno (web.1, release.2, ...), but not while building
# the app or in Heroku CI. This is the one place that tells "running on Heroku" apart.
IS_HEROKU_APP = "DYNO" in os.environ and "CI" not in os.environ


def env_list(name, default):
    """A comma-separated environment variable as a list, with surrounding spaces removed."""
    value = os.environ.get(name, default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_bool(name, default):
    """An on/off environment variable: 1, true, yes or on mean on; anything else set means off."""
    if name not in os.environ:
        return default
    return os.environ[name].strip().lower() in {"1", "true", "yes", "on"}


def without_password(url):
    """A database URL for the log: its password, and its query string, which may hold
    one too, left out."""
    scheme, separator, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}{separator}{credentials.partition(':')[0]}{at}{location.partition('?')[0]}"


# Warnings about how this copy is set up, each one line of plain text. They are logged once
# per start of the web process, by gunicorn's first worker (post_worker_init in
# config/gunicorn.conf.py), and not here: every worker and every manage.py command imports
# this file, and the same warning five times over buries the lines that matter.
STARTUP_WARNINGS = []
# What the web process should say about itself when it starts, logged the same way at INFO:
# which database it uses, for one.
STARTUP_INFO = []

# Signs sessions, password reset links and CSRF tokens, so it must be secret and must not
# change between restarts (a new key logs everyone out). On Heroku it is required:
#   heroku config:set DJANGO_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
# Not a random key per boot: that would log everyone out on every restart and deploy.
# Locally a fixed development key is used, with a warning, so that `make run` and the tests
# work with no setup.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if IS_HEROKU_APP:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it once with: heroku config:set "
            "DJANGO_SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')\""
        )
    STARTUP_WARNINGS.append(
        "DJANGO_SECRET_KEY is not set: using the development key, which is fine on your "
        "machine and must never be used in production."
    )
    SECRET_KEY = "django-insecure-local-development-key-do-not-use-in-production"

# Debug pages show settings and source code to anyone who triggers an error, so they are
# off unless you ask for them: DJANGO_DEBUG=1 make run
DEBUG = env_bool("DJANGO_DEBUG", False)

# Host names this site answers to. Requests for any other host get a 400, which stops
# Host-header attacks. The defaults cover your machine and every *.herokuapp.com app; add a
# custom domain with: heroku config:set DJANGO_ALLOWED_HOSTS=www.example.com
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ".herokuapp.com,localhost,127.0.0.1,[::1]")

# Origins allowed to POST forms here when they differ from the request's own host, for
# example https://www.example.com behind a CDN. Comma-separated, with the scheme.
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# HTTPS. Heroku's router terminates TLS and says so in X-Forwarded-Proto; nginx passes the
# header through unchanged (never as its own $scheme, which is always http inside the dyno),
# so Django can trust it to know which requests came over HTTPS.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# On Heroku, Django redirects plain-http requests to https (here, not in nginx, so the one
# place that decides is the one that also sets HSTS and secure cookies, and it works with or
# without nginx). Locally `make run` serves plain http with no X-Forwarded-Proto, so all of
# this stays off there; otherwise every request would redirect to an https that isn't there.
SECURE_SSL_REDIRECT = IS_HEROKU_APP
SESSION_COOKIE_SECURE = IS_HEROKU_APP
CSRF_COOKIE_SECURE = IS_HEROKU_APP

# HSTS tells browsers to use only https for this host for DJANGO_HSTS_SECONDS (one year by
# default, what hstspreload.org asks for). Browsers remember it, so it cannot be taken back
# early. Before pointing a custom domain here, make sure every subdomain of it serves https,
# or set DJANGO_HSTS_INCLUDE_SUBDOMAINS=0; on a new domain start with DJANGO_HSTS_SECONDS=3600.
# The header is sent only on https responses, so it never reaches `make run`.
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000 if IS_HEROKU_APP else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)


INSTALLED_APPS = [
    "myproject.demo",  # demo app
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Ahead of django.contrib.staticfiles, so that `runserver` serves static files the way
    # production does: https://whitenoise.readthedocs.io/en/stable/django.html
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    # First, so that it sees every response last: a HEAD request gets the headers of GET, and
    # no body. See myproject/head_requests.py.
    "myproject.head_requests.HeadWithoutBodyMiddleware",
    # Next, so that it catches an exception Django lets out when it cannot make its own 500
    # page (a syntax error in a view the URLconf imports). See myproject/server_error.py.
    "myproject.server_error.ServerErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware, so static files skip the rest of the stack. In
    # production nginx serves them before they reach gunicorn; whitenoise covers runserver,
    # the tests and any deployment without nginx.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that its 503 (database out of connections) still gets the headers of every
    # middleware above. See myproject/out_of_connections.py.
    "myproject.out_of_connections.OutOfConnectionsMiddleware",
]

ROOT_URLCONF = "myproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Templates of the whole project, if you want a folder for them: [BASE_DIR / "templates"].
        # make run reloads on an edit there, as in each app's templates/ folder.
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "myproject.wsgi.application"


# Heroku Postgres sets DATABASE_URL. Without it, on your machine and in the tests, the app uses
# a SQLite file, so nothing needs installing. On a dyno that file would be a copy of its own
# in each dyno, emptied at every restart: the release phase would migrate a database no web
# dyno sees, and everything written would be lost within a day. So a dyno without
# DATABASE_URL stops at boot; an explicit sqlite:/// URL is still allowed there, with a warning.
# https://github.com/jazzband/dj-database-url
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    if IS_HEROKU_APP:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set, so this dyno has no database. Add Heroku Postgres, which "
            "sets it, with: heroku addons:create heroku-postgresql:essential-0"
        )
    DATABASE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
elif IS_HEROKU_APP and DATABASE_URL.startswith("sqlite"):
    STARTUP_WARNINGS.append(
        "DATABASE_URL is a SQLite file: each dyno has its own copy, and it is emptied every time "
        "the dyno restarts (at least once a day). Use Heroku Postgres to keep your data."
    )

# Past the plan's connection limit, the web process's workers can share a few connections
# through PgBouncer in transaction pooling mode (docs/database.md, "When you outgrow the
# budget"). Either Heroku runs it beside the database (Standard plans and up), and
#   heroku pg:connection-pooling:attach DATABASE_URL --as DATABASE_CONNECTION_POOL
# sets DATABASE_CONNECTION_POOL_URL; or the on-dyno PgBouncer buildpack runs it in each dyno,
# and its bin/start-pgbouncer, in front of the web command, sets DATABASE_URL_PGBOUNCER (and
# points DATABASE_URL at it too, for the processes it starts).
CONNECTION_POOL_URL = (os.environ.get("DATABASE_CONNECTION_POOL_URL")
                       or os.environ.get("DATABASE_URL_PGBOUNCER", ""))
# Only the web process connects through the pooler: config/gunicorn.conf.py, which nothing else
# reads, sets DJANGO_USE_CONNECTION_POOL=1. The release phase's migrate and every `heroku run`
# keep the direct DATABASE_URL. Heroku warns that migrations break through a transaction pooler
# (https://help.heroku.com/UYH8N2WW, with Rails' advisory lock as its example): the pooler
# gives each transaction whichever server connection is free, so what a migration sets for its
# session (a lock, a `SET lock_timeout` in a RunSQL) is lost or lands on other clients'
# transactions; and a long migration would hold one of the pool's few connections throughout.
USE_CONNECTION_POOL = env_bool("DJANGO_USE_CONNECTION_POOL", False) and bool(CONNECTION_POOL_URL)
PROCESS_DATABASE_URL = CONNECTION_POOL_URL if USE_CONNECTION_POOL else DATABASE_URL
if USE_CONNECTION_POOL:
    STARTUP_INFO.append(f"Database: {without_password(PROCESS_DATABASE_URL)}, through the connection pooler "
                        "(transaction pooling: no server-side cursors).")
else:
    STARTUP_INFO.append(f"Database: {without_password(PROCESS_DATABASE_URL)}.")
# Only gunicorn logs the warnings, so only a web process whose gunicorn was started without
# config/gunicorn.conf.py (or with another raw_env) shows this one.
if CONNECTION_POOL_URL and not USE_CONNECTION_POOL:
    STARTUP_WARNINGS.append(
        "A connection pooler is set up (DATABASE_CONNECTION_POOL_URL or DATABASE_URL_PGBOUNCER), but "
        "this web process runs without DJANGO_USE_CONNECTION_POOL=1, so it does not connect "
        "through it: start gunicorn with -c config/gunicorn.conf.py, which sets it (see docs/database.md)."
    )

# How many seconds a worker keeps its database connection between requests (Django's
# CONN_MAX_AGE). 0, the default, opens one per request and closes it at the end. That cost
# 10 to 30 ms more per request here (a page with three queries, local PostgreSQL, see
# docs/database.md), likely more on Heroku, where the database needs TLS across the network.
# In exchange a connection is held only while a request runs. A kept connection is given
# back only at the end of a request after that age, so a worker that gets no requests keeps
# its connection for good, and the dynos need as many connections as they have workers.
# When your budget fits (docs/database.md), keep them: heroku config:set DJANGO_CONN_MAX_AGE=600
# Kept connections are checked before reuse, so a restarted database is noticed.
# On Heroku, PostgreSQL connections must use TLS (sslmode=require); SQLite has no such
# option, and the on-dyno PgBouncer, on the dyno's own loopback, speaks none (it uses TLS to
# the database itself).
DATABASES = {
    "default": dj_database_url.parse(
        PROCESS_DATABASE_URL,
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", 0)),
        conn_health_checks=True,
        ssl_require=(IS_HEROKU_APP and PROCESS_DATABASE_URL.startswith("postgres")
                     and PROCESS_DATABASE_URL != os.environ.get("DATABASE_URL_PGBOUNCER")),
    ),
}
# A server-side cursor (what QuerySet.iterator() reads through) lives on the server connection
# that opened it, and a transaction pooler may give the next fetch another one: "cursor does
# not exist". Without them Django reads a result whole, and iterator() still works.
# https://docs.djangoproject.com/en/5.2/ref/databases/#transaction-pooling-server-side-cursors
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = USE_CONNECTION_POOL
# A PostgreSQL server that stops answering (rather than refusing) would otherwise hold a
# request until nginx's 504, and the release phase's migrate for minutes: give up after 5 s.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


# Static files: `collectstatic` (run by Heroku's Python buildpack at build time, and by
# `make run`) copies them to STATIC_ROOT with a content hash in each name and a compressed
# copy beside each. Hashed names can be cached by browsers forever.
# https://whitenoise.readthedocs.io/en/stable/django.html
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


# Everything Django logs goes to stderr, which Heroku collects into `heroku logs`. Without
# this, Django prints nothing at all when DEBUG is off, not even the traceback of a 500.
# Each record is one logfmt line (a traceback, one line per traceback line) with the id of
# the request it belongs to, the same id as in nginx's access line: see myproject/logs.py.
# https://docs.djangoproject.com/en/5.2/topics/logging/
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "logfmt": {"()": "myproject.logs.LogfmtFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "logfmt"},
    },
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO"),
    },
    "loggers": {
        # Django's default config gives this logger a handler of its own that prints, in
        # another format, when DEBUG is on; without it every record goes through the root.
        "django": {"handlers": []},
        # Django logs every 4xx as a warning here ("Not Found: /wp-login.php"): crawler noise,
        # and nginx's access line has the status already. 5xx errors and their tracebacks
        # are errors, and still logged. DisallowedHost is logged by django.security instead.
        "django.request": {"level": "ERROR"},
    },
}
