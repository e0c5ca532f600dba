"""The project's URLs plus the test-only views, under /test/."""

from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("test/slow/", views.slow),
    path("", include("myproject.urls")),
]
