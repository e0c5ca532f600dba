"""How nginx talks to gunicorn, end to end: HTTP/1.1 with `Connection: close` (config/nginx.conf.erb
says why), and streamed responses arrive as gunicorn sent them: whole, or visibly broken off
when the view failed before the end.

Without those two directives nginx 1.22 and 1.30 send different requests, so these tests
matter on both: the stack runs the nginx that bin/start-nginx finds (NGINX_BIN, else PATH).
"""

import pytest
import requests

from tests.views import numbered_lines

# As the router sends requests (production_stack redirects plain http to https), and without
# gzip, so that the body is compared byte for byte as gunicorn sent it.
ROUTER_HEADERS = {"X-Forwarded-Proto": "https", "Accept-Encoding": "identity"}
# About 190 KB: more than nginx's 32 KB of memory buffers, so part goes through a temporary file.
LINES = 10_000


def get(stack, path):
    return requests.get(stack.url + path, headers=ROUTER_HEADERS, timeout=20, allow_redirects=False)


@pytest.mark.parametrize("path", ["/upstream/request/", "/static/upstream/request/"],
                         ids=["location /", "location @django"])
def test_gunicorn_receives_http_1_1_with_connection_close(production_stack, path):
    response = get(production_stack, path)

    assert response.json() == {"protocol": "HTTP/1.1", "connection": "close"}


@pytest.mark.parametrize("query", ["", "?unbuffered"], ids=["buffered", "X-Accel-Buffering: no"])
def test_a_streamed_response_without_content_length_arrives_whole(production_stack, query):
    response = get(production_stack, f"/upstream/streamed/{LINES}/{query}")

    assert response.status_code == 200
    assert "Content-Length" not in response.headers
    assert response.content == b"".join(numbered_lines(LINES))


def test_a_streamed_response_whose_view_fails_before_the_end_reaches_the_client_broken_off(production_stack):
    # gunicorn has sent the status and part of the body when the view raises; all it can do is
    # close the connection. Over HTTP/1.1 its chunks lack their end, so nginx cuts the client's
    # response short too, rather than end it properly as a whole 200.
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(production_stack, f"/upstream/streamed-then-raise/{LINES}/")
