"""The project's URLs, plus the tests' own (tests/settings.py): /worker-pid/, views under
/misbehave/ that fail on purpose, and under /echo/ one that reports what it received."""

from django.urls import include, path

from tests import views

urlpatterns = [
    path("worker-pid/", views.worker_pid),
    path("misbehave/slow/<int:seconds>/", views.slow),
    path("misbehave/raise/<slug:token>/", views.raise_error),
    path("misbehave/raise-where-nothing-catches/<slug:token>/", views.raise_where_nothing_catches),
    path("echo/<slug:marker>/", views.echo),
    path("", include("myproject.urls")),
]
