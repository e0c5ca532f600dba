"""Answer HEAD requests with the headers of GET and no body, in Django itself.

Django runs the GET view for a HEAD request and, since Django 1.10, hands the whole body to the
WSGI server, leaving it to the server to drop (Django ticket #26052). gunicorn 27 drops it, as
RFC 9110 requires, and logs a warning for every such request:

    WSGI app sent body bytes on a no-body response (method=HEAD status=200); dropping per RFC 9110.

An uptime monitor that checks with HEAD would fill the log with it. So the body is dropped
here instead, by the outermost middleware (first in MIDDLEWARE), once every other one has
done its work: the headers they computed from the body (Content-Length, an ETag) stay those
of GET, as RFC 9110 asks of a HEAD answer, and gunicorn has nothing to drop. Silencing
gunicorn's warning in the logging config instead would also hide whatever else gunicorn's
WSGI logger may warn about, now or in a later version.
"""


class HeadWithoutBodyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method == "HEAD":
            # As Django's test client does (django.test.client.conditional_content_removal).
            if response.streaming:
                response.streaming_content = []
            else:
                response.content = b""
        return response
