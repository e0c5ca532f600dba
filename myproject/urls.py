"""URL configuration: https://docs.djangoproject.com/en/5.2/topics/http/urls/"""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("myproject.demo.urls")),  # demo app
    path("admin/", admin.site.urls),
]
