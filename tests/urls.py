"""The project's URLs, /worker-pid/, and under /misbehave/ views that fail on purpose
(tests/settings.py)."""

from django.urls import include, path

from tests import views

urlpatterns = [
    path("worker-pid/", views.worker_pid),
    path("misbehave/slow/<int:seconds>/", views.slow),
    path("misbehave/raise/<slug:token>/", views.raise_error),
    path("misbehave/raise-where-nothing-catches/<slug:token>/", views.raise_where_nothing_catches),
    path("", include("myproject.urls")),
]
