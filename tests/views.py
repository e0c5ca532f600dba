"""Views that misbehave on purpose, for tests/test_faults.py. Never in the deployed app."""

import logging
import os
import time

from django.http import HttpResponse

logger = logging.getLogger(__name__)

LONGEST_SLEEP = 60


def slow(request, seconds):
    """Answer after `seconds`. Logs its worker's pid first, so a test can kill that worker."""
    logger.warning("slow-view-started pid=%d path=%s", os.getpid(), request.get_full_path())
    time.sleep(min(seconds, LONGEST_SLEEP))
    return HttpResponse("finished")


def raise_error(request, token):
    """Fail with an exception whose message carries `token`, to find its traceback in the log."""
    raise RuntimeError(f"deliberate failure {token}")
