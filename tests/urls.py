"""The tests' URLs (tests/settings.py), ahead of the project's own: a home page at / and a
page that uses the database at /database/, which the stack's tests request in place of the
project's pages (so they pass with the demo app deleted, whatever the project serves at /);
/worker-pid/; views under /misbehave/ that fail on purpose, under /echo/ one that reports
what it received, under /upstream/ views that show what nginx sends gunicorn, and
/database/round-trip/, for the connection pooler's tests."""

from django.urls import include, path

from tests import views

urlpatterns = [
    path("", views.home),
    path("database/", views.database),
    path("worker-pid/", views.worker_pid),
    path("database/round-trip/", views.database_round_trip),
    path("misbehave/slow/<int:seconds>/", views.slow),
    path("misbehave/raise/<slug:token>/", views.raise_error),
    path("misbehave/raise-where-nothing-catches/<slug:token>/", views.raise_where_nothing_catches),
    path("echo/<slug:marker>/", views.echo),
    path("upstream/request/", views.upstream_request),
    # The same view under STATIC_URL, which nginx passes to gunicorn from another location
    # (@django), for names that are no static file.
    path("static/upstream/request/", views.upstream_request),
    path("upstream/streamed/<int:lines>/", views.streamed),
    path("upstream/streamed-then-raise/<int:lines>/", views.streamed_then_raise),
    path("", include("myproject.urls")),
]
