"""Views for the tests (tests/urls.py), never in the deployed app: a home page and a page that
uses the database, which the stack's tests request in place of the project's own pages (the
demo's, until you delete it); views that misbehave on purpose, for tests/test_faults.py and
tests/test_logs.py; one that reports what it received, for tests/test_framing.py; some that
show what nginx hands gunicorn, for tests/test_upstream_protocol.py; one that says which
worker answered; one that writes to the database and reads back, for
tests/test_connection_pooler.py."""

import hashlib
import logging
import os
import threading
import time
import uuid

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

LONGEST_SLEEP = 60
ROWS_READ_BACK = 5


def home(request):
    """A page from a template, linking a static file, that shows the request's id."""
    return render(request, "tests/home.html")


def database(request):
    """Write a row, then read the table back, as most pages of an app do. The row is a
    session, in the table of django.contrib.sessions, which the project's own migrations
    create: the tests need no model of their own, and an unmigrated database fails here."""
    SessionStore().create()
    return HttpResponse(f'<p>Sessions saved: <span class="count">{Session.objects.count()}</span></p>')


def worker_pid(request):
    """The pid of the gunicorn worker that answers: a worker answers only once it has booted."""
    return HttpResponse(str(os.getpid()))


def database_round_trip(request):
    """Write a row, then read the latest rows back through QuerySet.iterator(), one row per
    fetch: what a server-side cursor would spread over several transactions. Sessions, because
    every copy of the app has their table."""
    Session.objects.create(session_key=uuid.uuid4().hex, session_data="", expire_date=timezone.now())
    latest = Session.objects.order_by("-expire_date")[:ROWS_READ_BACK]
    read = sum(1 for _ in latest.iterator(chunk_size=1))
    return HttpResponse(f"wrote 1 row, read {read}")


def slow(request, seconds):
    """Answer after `seconds`. Logs its worker's pid first, so a test can kill that worker."""
    logger.warning("slow-view-started pid=%d path=%s", os.getpid(), request.get_full_path())
    time.sleep(min(seconds, LONGEST_SLEEP))
    return HttpResponse("finished")


def raise_error(request, token):
    """Fail with an exception whose message carries `token`, to find its traceback in the log."""
    raise RuntimeError(f"deliberate failure {token}")


class RaisesWhenCollected:
    def __init__(self, token):
        self.token = token

    def __del__(self):
        raise RuntimeError(f"deliberate failure in __del__ {self.token}")


def raise_where_nothing_catches(request, token):
    """Raise where Python, not the view, must report it: in __del__ and in a thread."""
    RaisesWhenCollected(token)  # collected at once, and its __del__ raises

    def fail():
        raise RuntimeError(f"deliberate failure in a thread {token}")

    thread = threading.Thread(target=fail, name=f"failing-{token}")
    thread.start()
    thread.join()
    return HttpResponse("raised twice")


@csrf_exempt
def echo(request, marker):
    """Answer with what Django received: the method, the path (with `marker`, which tells
    requests apart) and the body's length and sha256. Each run also logs a line, so that a
    test can count how often a request ran. No CSRF check: tests POST bodies of their own."""
    received = {
        "method": request.method,
        "path": request.path,
        "length": len(request.body),
        "sha256": hashlib.sha256(request.body).hexdigest(),
    }
    logger.warning("echo-view-ran %s", " ".join(f"{key}={value}" for key, value in received.items()))
    return JsonResponse(received)


def upstream_request(request):
    """The request line's HTTP version and the Connection header, as gunicorn received them."""
    return JsonResponse({"protocol": request.META["SERVER_PROTOCOL"],
                         "connection": request.META.get("HTTP_CONNECTION")})


def numbered_lines(count):
    """The body the streaming views send, a line at a time; a test builds the same to compare."""
    return [f"line {number} of {count}\n".encode() for number in range(1, count + 1)]


def streamed(request, lines):
    """A response sent as it is made, so without a Content-Length. ?unbuffered asks nginx to
    pass it on as it comes (X-Accel-Buffering: no), as a view streaming events would."""
    response = StreamingHttpResponse(numbered_lines(lines), content_type="text/plain")
    if "unbuffered" in request.GET:
        response["X-Accel-Buffering"] = "no"
    return response


def streamed_then_raise(request, lines):
    """Stream `lines` lines, then fail: the response is already under way, so the client can
    only learn of it from the way the response ends."""
    def body():
        yield from numbered_lines(lines)
        raise RuntimeError("deliberate failure in the middle of a streamed response")

    return StreamingHttpResponse(body(), content_type="text/plain")
