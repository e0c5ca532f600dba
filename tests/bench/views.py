"""Three pages with known sizes, so every server is asked to do exactly the same work."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

# What fast clients ask for: about a kilobyte, like a small HTML page or a JSON response.
SMALL_PAGE = b"<!doctype html>\n<title>Small page</title>\n" + b"<p>An ordinary, small page.</p>\n" * 30

# What slow readers ask for: 256 KiB, a heavy page. It must be far larger than what the
# kernel's socket buffers hold for one connection (tens of kilobytes on a real network), or
# the server would hand the whole page to the kernel and never wait for the reader.
LARGE_PAGE_SIZE = 256 * 1024
LARGE_PAGE = (b"<p>" + b"A heavy page, read slowly. " * 40 + b"</p>\n") * (LARGE_PAGE_SIZE // 1088 + 1)
LARGE_PAGE = LARGE_PAGE[:LARGE_PAGE_SIZE]


def small_page(request):
    return HttpResponse(SMALL_PAGE)


def large_page(request):
    return HttpResponse(LARGE_PAGE)


# Uploads come from scripts, not forms, so there is no CSRF token to check.
@csrf_exempt
@require_POST
def upload(request):
    """Read the whole body, as a view handling a form or a file would, and say how big it was."""
    return HttpResponse(f"received {len(request.body)} bytes\n", content_type="text/plain")
