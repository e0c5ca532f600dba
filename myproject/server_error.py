"""A 500 page, logged with the request's id, when Django cannot make its own.

Django answers an exception in a view with its 500 page, which it finds through the root
URLconf (handler500). When that URLconf cannot be imported, as when a view it imports has a
syntax error, looking for the page raises the same error again: in each middleware, each time
chained to the one before, until Django gives up and lets the exception out to gunicorn.
gunicorn logged it as one record of eleven chained tracebacks, about 640 lines a request,
without the request's id (its hooks have reset it by then), and answered with a bare page of
its own.

This middleware, outermost but for myproject/head_requests.py, catches what Django let out,
logs it as Django logs any other 500 ("Internal Server Error: /path" on the django.request
logger, while the request is still being handled, so with its id) and answers with Django's
default 500 page (a 500.html template of yours, if there is one). The logging formatter
(myproject/logs.py) shows the repeats of the error as one line.
"""

from django.conf import settings
from django.utils.log import log_response
from django.views.defaults import server_error


class ServerErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        except Exception as error:
            # A setting for test suites that want the exception itself, as Django lets it out.
            if settings.DEBUG_PROPAGATE_EXCEPTIONS:
                raise
            response = server_error(request)
            log_response("%s: %s", "Internal Server Error", request.path,
                         response=response, request=request, exception=error)
            return response
