"""The project's settings plus the tests' own pages and static file (tests/urls.py,
tests/views.py, tests/templates/, tests/static/), and a few views that misbehave on purpose
or report what they received.

Every stack the tests start runs with these settings (DJANGO_SETTINGS_MODULE in
tests/stack.py), so that the stack's tests depend on nothing the project serves: they pass
with the demo app deleted. The app you deploy never has these pages.
"""

from myproject.settings import *  # noqa: F403 (the real settings, unchanged)
from myproject.settings import INSTALLED_APPS

# The tests package as an app, so that collectstatic collects tests/static/ into
# staticfiles/ (where nginx serves it from, as it serves any app's static files) and Django
# finds tests/templates/.
INSTALLED_APPS = [*INSTALLED_APPS, "tests"]

ROOT_URLCONF = "tests.urls"
