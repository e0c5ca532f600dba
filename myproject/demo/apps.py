from django.apps import AppConfig


class DemoConfig(AppConfig):
    """A two-page example to show the stack works; delete it when you start your own app."""

    name = "myproject.demo"
    default_auto_field = "django.db.models.BigAutoField"
