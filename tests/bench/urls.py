"""The project's own URLs, plus the benchmark's pages under /bench/."""

from django.urls import path

from myproject.urls import urlpatterns as project_urlpatterns

from . import views

urlpatterns = [
    *project_urlpatterns,
    path("bench/small/", views.small_page),
    path("bench/large/", views.large_page),
    path("bench/upload/", views.upload),
]
