"""Views that only the tests need, to make the app slow on purpose."""

import time

from django.http import HttpResponse


def slow(request):
    """Answer after ?seconds=N (at most 20), to keep a worker busy while a test acts."""
    seconds = min(float(request.GET.get("seconds", "1")), 20)
    time.sleep(seconds)
    return HttpResponse(f"slept {seconds}s\n", content_type="text/plain")
