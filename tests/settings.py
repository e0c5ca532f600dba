"""Settings for test stacks: the project's own, plus the views in tests/testapp.

Selected with DJANGO_SETTINGS_MODULE=tests.settings, so the test-only views never exist in
the app you deploy.
"""

from myproject.settings import *  # noqa: F403 (the point is to take every setting)

ROOT_URLCONF = "tests.testapp.urls"
