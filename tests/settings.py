"""The project's settings plus a few views that misbehave on purpose or report what they
received (tests/urls.py).

Only the end-to-end tests that need such a view use this module, through
DJANGO_SETTINGS_MODULE in the stack they start. The app you deploy never has these views.
"""

from myproject.settings import *  # noqa: F403 (the real settings, unchanged)

ROOT_URLCONF = "tests.urls"
