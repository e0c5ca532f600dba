"""A 503 with Retry-After, instead of a 500, when PostgreSQL has no connection left for us.

Every gunicorn worker on every dyno, the release phase and each `heroku run` take one of the
database plan's connections (20 on Essential-0: see docs/database.md). When they are all in
use, PostgreSQL refuses the next one with "too many connections", and without this middleware
the request fails as a 500 with a traceback in the log. It is not a bug in the app but a
moment of overload that passes as soon as another request gives its connection back, so the
client gets 503 Service Unavailable with Retry-After, and the log gets one line that names the
cause. Every other exception, database errors included, is left to Django as before.
"""

from django.db import OperationalError
from django.http import HttpResponse
from django.utils.log import log_response

# When to try again. A connection is free again as soon as a request somewhere ends, so this
# is short; clients that honour Retry-After (crawlers, API clients) wait this long.
RETRY_AFTER_SECONDS = 5

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Temporarily unavailable</title>
</head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 4em auto; padding: 0 1em">
<h1>Temporarily unavailable</h1>
<p>The site is busier than its database can take right now. Please try again in a moment.</p>
</body>
</html>
"""

# The messages of PostgreSQL's SQLSTATE 53300 (too_many_connections): the server is full
# (max_connections, or all but the slots kept for superusers), or the role's or the database's
# CONNECTION LIMIT is reached. They have to be matched as text: PostgreSQL refuses the
# connection before a session exists, and libpq reports that as a message without its
# SQLSTATE, so psycopg raises a plain OperationalError, not errors.TooManyConnections.
# Heroku Postgres answers in English, the language these are written in.
TOO_MANY_CONNECTIONS_MESSAGES = (
    "sorry, too many clients already",
    "too many connections for role",
    "too many connections for database",
    "remaining connection slots are reserved",
)


def is_out_of_connections(exception):
    return isinstance(exception, OperationalError) and any(
        message in str(exception) for message in TOO_MANY_CONNECTIONS_MESSAGES
    )


class OutOfConnectionsMiddleware:
    """Turns "too many connections" raised by a view, or while rendering its template, into a 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_out_of_connections(exception):
            return None  # Django's usual 500, with its traceback in the log
        response = HttpResponse(PAGE, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        # The one log line for this request, as an error on Django's request logger like any
        # other 5xx; Django sees it has been logged and adds no "Service Unavailable" line of
        # its own. No traceback: the cause is known, and one per request would flood the log.
        log_response(
            "Service Unavailable: %s: the database refused a connection (%s). "
            "See docs/database.md for the connection budget.",
            request.path, str(exception).strip(), response=response, request=request,
        )
        return response
