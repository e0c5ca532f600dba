"""nginx's own refusals: requests over its size limits, requests it cannot read, and methods
its files do not take. Each keeps its status and gets a page of ours (config/errors/) that says
what went wrong, never nginx's default page.

Sent raw, as tests/test_hostile_input.py sends hostile requests, to 127.0.0.1 only.
"""

import http.client
import socket

from tests.stack import OVER_HTTPS

# nginx's default error pages end with this line; ours never have it.
NGINX_DEFAULT_PAGE = b"<center>nginx</center>"
ANSWER_TIMEOUT = 10


def ask(stack, request):
    """Send raw bytes; return nginx's answer as an http.client response with its body read."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=ANSWER_TIMEOUT) as connection:
        connection.sendall(request)
        response = http.client.HTTPResponse(connection)
        response.begin()
        response.body = response.read()
        return response


def request(*lines):
    head = [*lines, b"Host: localhost", *(f"{name}: {value}".encode() for name, value in OVER_HTTPS.items()),
            b"Connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n"


def assert_our_page(response, title):
    assert response.getheader("Content-Type") == "text/html"
    assert f"<title>{title}</title>".encode() in response.body
    assert NGINX_DEFAULT_PAGE not in response.body


def test_a_body_over_the_limit_gets_413_and_a_page_naming_the_limit_and_its_setting(start_stack):
    stack = start_stack({"NGINX_CLIENT_MAX_BODY_SIZE": "3"})  # megabytes
    # nginx refuses on the declared length, before any of the body is sent.
    over_the_limit = request(b"POST / HTTP/1.1", b"Content-Length: %d" % (3 * 1024 * 1024 + 1))

    response = ask(stack, over_the_limit)

    assert response.status == 413
    assert_our_page(response, "Request too large")
    assert b"at most 3 MB" in response.body
    assert b"NGINX_CLIENT_MAX_BODY_SIZE" in response.body


def test_a_uri_over_8_kb_gets_414_and_our_page(production_stack):
    response = ask(production_stack, request(b"GET /" + b"a" * 9000 + b" HTTP/1.1"))

    assert response.status == 414
    assert_our_page(response, "Address too long")


def test_a_header_over_8_kb_gets_400_and_a_page_that_blames_the_cookies(production_stack):
    response = ask(production_stack, request(b"GET / HTTP/1.1", b"Cookie: session=" + b"a" * 9000))

    assert response.status == 400
    assert_our_page(response, "Request headers too large")
    assert b"cookies" in response.body


def test_headers_over_32_kb_in_all_get_400_and_the_same_page(production_stack):
    # Each line fits in a buffer, but not all of them in the four together.
    headers = [b"X-Header-%d: %s" % (number, b"a" * 1000) for number in range(40)]

    response = ask(production_stack, request(b"GET / HTTP/1.1", *headers))

    assert response.status == 400
    assert_our_page(response, "Request headers too large")


def test_a_request_framed_two_ways_gets_400_and_our_page(production_stack):
    # Content-Length and Transfer-Encoding together, which nginx refuses outright
    # (tests/test_framing.py sends the rest of the ambiguous framings).
    framed_twice = request(b"POST / HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: chunked") + b"0\r\n\r\n"

    response = ask(production_stack, framed_twice)

    assert response.status == 400
    assert_our_page(response, "Bad request")


def test_a_post_to_a_file_nginx_serves_gets_405_and_our_page(production_stack):
    response = ask(production_stack, request(b"POST /favicon.ico HTTP/1.1", b"Content-Length: 0"))

    assert response.status == 405
    assert_our_page(response, "Method not allowed")
