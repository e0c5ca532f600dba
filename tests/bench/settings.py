"""The real project's settings, plus the pages the benchmark requests.

Selected with DJANGO_SETTINGS_MODULE=tests.bench.settings by the benchmark and by the tests
that use those pages, so they never appear in the app you deploy.
"""

from myproject.settings import *  # noqa: F403 (everything, exactly as deployed)

ROOT_URLCONF = "tests.bench.urls"
