"""URL configuration: https://docs.djangoproject.com/en/5.2/topics/http/urls/"""

from django.contrib import admin
from django.urls import include  # demo app
from django.urls import path

urlpatterns = [
    path("", include("myproject.demo.urls")),  # demo app
    path("admin/", admin.site.urls),
]
