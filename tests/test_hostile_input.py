"""Hostile and malformed requests against the running stack in production mode.

Each one must be answered by nginx or Django with a 4xx: never a 5xx (which would page
someone for a client's garbage), never a hang, never a connection closed without a word, and
never with anything it should not show. Everything is sent to 127.0.0.1 only, and every test sends a
bounded number of requests.
"""

import http.client
import socket
import ssl
import time
import uuid

import pytest
import requests

from tests.stack import PRODUCTION_ENV, REPO

# Generous: each answer below comes at once, so this only catches a hang.
ANSWER_TIMEOUT = 10

# What Heroku's router adds to every request it forwards; without it, production-mode Django
# redirects to https and would never look at the rest of the request.
ROUTER_HEADERS = b"X-Forwarded-Proto: https\r\n"

# What nginx logs when it closes a connection without answering (`return 444`): no answer.
CLOSED_WITHOUT_ANSWER = 444

# Things no answer may contain: nginx's version, a Python traceback, the secret key, where
# the app lives on disk, and the files the path traversal attempts are after.
LEAKS = [b"nginx/", b"Traceback", PRODUCTION_ENV["DJANGO_SECRET_KEY"].encode(), str(REPO).encode(),
         b"root:x:0:0", b"DJANGO_SECRET_KEY"]


def send(stack, request):
    """Send raw bytes; return (status, raw answer), with status None if no answer could be read.

    A test fails if no answer arrives within ANSWER_TIMEOUT (socket.timeout): that is a hang.
    """
    with socket.create_connection(("127.0.0.1", stack.port), timeout=ANSWER_TIMEOUT) as connection:
        try:
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # nginx may answer and close before reading everything we send
        response = http.client.HTTPResponse(connection)
        try:
            response.begin()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None, b""
        head = f"HTTP/1.1 {response.status} {response.reason}\r\n{response.headers}".encode()
        return response.status, head + body


def assert_refused_cleanly(stack, request):
    """A 4xx, and nothing in the answer that should stay private. Returns the status."""
    lines_before = len(stack.access_lines())
    status, answer = send(stack, request)
    if status is None:
        # nginx did answer, but a client that sent more than nginx read (a 100 KB header)
        # may have its connection reset before it can read the answer: nginx's line says.
        status = int(next_access_line(stack, lines_before)["status"])

    assert 400 <= status < 500 and status != CLOSED_WITHOUT_ANSWER, answer[:500]
    for leak in LEAKS:
        assert leak not in answer, f"{leak!r} leaked in:\n{answer[:2000]!r}"
    return status


def next_access_line(stack, lines_before):
    """The first access line nginx wrote after the first `lines_before`."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while len(lines := stack.access_lines()) <= lines_before:
        assert time.monotonic() < deadline, "no answer, and no access line either"
        time.sleep(0.05)
    return lines[lines_before]


def get(path, *headers, host=b"localhost"):
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: " + host, *headers]
    return b"\r\n".join(lines) + b"\r\n" + ROUTER_HEADERS + b"Connection: close\r\n\r\n"


def test_the_stack_serves_a_normal_request_in_production_mode(production_stack):
    # The control for everything below: the same raw requests do work when they are sane.
    status, answer = send(production_stack, get(b"/"))

    assert status == 200
    assert b"It works" in answer


def test_a_declared_2_gb_body_is_refused_before_it_is_sent(production_stack):
    request = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2147483648\r\n" + ROUTER_HEADERS + b"\r\n"

    assert assert_refused_cleanly(production_stack, request) == 413


def test_a_100_kb_header_is_refused(production_stack):
    assert assert_refused_cleanly(production_stack, get(b"/", b"X-Big: " + b"a" * 100_000)) == 400


def test_hundreds_of_headers_are_refused(production_stack):
    headers = [b"X-Header-%d: value" % number for number in range(500)]

    assert_refused_cleanly(production_stack, get(b"/", *headers))


def test_a_100_kb_uri_is_refused(production_stack):
    assert assert_refused_cleanly(production_stack, get(b"/" + b"a" * 100_000)) == 414


# Each of these frames the body one way for nginx and, if nginx were lenient, another way for
# gunicorn, which would then read the hidden second request as a new one. The hidden request
# is for a path that exists nowhere else, so it is found in gunicorn's access log if it ever
# gets there.
SMUGGLING = {
    "content-length-and-chunked": [b"Content-Length: 4", b"Transfer-Encoding: chunked"],
    "chunked-and-content-length": [b"Transfer-Encoding: chunked", b"Content-Length: 4"],
    "two-transfer-encodings": [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"],
    "chunked-not-last": [b"Transfer-Encoding: chunked, identity", b"Content-Length: 4"],
    "obfuscated-chunked": [b"Transfer-Encoding: xchunked", b"Content-Length: 4"],
    "two-content-lengths": [b"Content-Length: 4", b"Content-Length: 50"],
}


@pytest.mark.parametrize("framing", SMUGGLING)
def test_conflicting_body_framing_is_refused_and_smuggles_nothing(production_stack, framing):
    hidden_path = f"/smuggled-{uuid.uuid4().hex}/".encode()
    hidden = b"GET " + hidden_path + b" HTTP/1.1\r\nHost: localhost\r\n" + ROUTER_HEADERS + b"\r\n"
    request = (b"POST / HTTP/1.1\r\nHost: localhost\r\n" + b"\r\n".join(SMUGGLING[framing]) + b"\r\n"
               + ROUTER_HEADERS + b"\r\n0\r\n\r\n" + hidden)

    assert_refused_cleanly(production_stack, request)

    assert_reaches_gunicorn(production_stack, b"/control-" + uuid.uuid4().hex.encode() + b"/")
    assert hidden_path.decode() not in gunicorn_access_log(production_stack)


def gunicorn_access_log(stack):
    # gunicorn's lines quote the request line ("GET /path HTTP/1.1"); nginx's say path="...".
    return "\n".join(line for line in stack.stdout_lines() if '"GET /' in line)


def assert_reaches_gunicorn(stack, path):
    """Proves the smuggling check can see a request that does get through. gunicorn logs a
    request after answering it, so its line may come a moment after the answer."""
    send(stack, get(path))
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while path.decode() not in gunicorn_access_log(stack):
        assert time.monotonic() < deadline, f"{path!r} never reached gunicorn's access log"
        time.sleep(0.05)


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",  # a chunk size past 2**64
    b"3\r\nabcdef\r\n0\r\n\r\n",  # a chunk longer than it said
    b"-3\r\nabc\r\n0\r\n\r\n",  # a negative size
    # nginx tolerates bare newlines, so this body is "abc" and Django refuses the POST for
    # its missing CSRF token; the NULs after it are then a broken second request.
    b"3\nabc\n0\n\n\x00\x00",
])
def test_malformed_chunked_bodies_are_refused(production_stack, body):
    request = b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n" + ROUTER_HEADERS + b"\r\n" + body

    assert_refused_cleanly(production_stack, request)


@pytest.mark.parametrize("host_lines", [
    [b"Host: evil.example.com"],  # not in ALLOWED_HOSTS
    [],  # HTTP/1.1 without a Host
    [b"Host: a b"],
    [b"Host: ../../etc"],
    [b"Host: localhost@evil.example.com"],
    [b"Host: localhost", b"Host: evil.example.com"],
    [b"Host: evil.example.com", b"X-Forwarded-Host: localhost"],
    [b"Host: " + b"a" * 300 + b".example.com"],
], ids=["unknown", "missing", "space", "dots", "userinfo", "twice", "x-forwarded-host", "long"])
def test_invalid_or_hostile_host_headers_are_refused(production_stack, host_lines):
    request = b"\r\n".join([b"GET / HTTP/1.1", *host_lines]) + b"\r\n" + ROUTER_HEADERS + b"\r\n"

    status = assert_refused_cleanly(production_stack, request)

    assert status == 400


@pytest.mark.parametrize("path", [
    b"/static/../myproject/settings.py",
    b"/static/../../../../etc/passwd",
    b"/static/..%2fmyproject%2fsettings.py",
    b"/static/%2e%2e/myproject/settings.py",
    b"/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/static/tests/..%2f..%2f..%2fmyproject%2fsettings.py",
    b"/static/%252e%252e/myproject/settings.py",  # encoded twice
    b"/static/..%5cmyproject%5csettings.py",  # backslashes
    b"/static/%c0%ae%c0%ae/myproject/settings.py",  # overlong UTF-8 dots
    b"/static//etc/passwd",
])
def test_path_traversal_on_static_finds_nothing(production_stack, path):
    assert_refused_cleanly(production_stack, get(path))


@pytest.mark.parametrize("path", [b"/%00", b"/static/%00.css", b"/\x00", b"/%ff%fe/", b"/\xff\xfe/", b"/database/%c3%28/"],
                         ids=["encoded-nul", "encoded-nul-static", "raw-nul", "encoded-invalid-utf8",
                              "raw-invalid-utf8", "invalid-utf8-in-route"])
def test_nul_and_invalid_utf8_in_the_path_are_refused(production_stack, path):
    assert_refused_cleanly(production_stack, get(path))


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/9.9", b"HTTP/1.1.1", b"FOO/1.0", b"HTTP/1"])
def test_unknown_http_versions_are_refused(production_stack, version):
    request = b"GET / " + version + b"\r\nHost: localhost\r\n" + ROUTER_HEADERS + b"\r\n"

    assert assert_refused_cleanly(production_stack, request) == 400


def test_an_http_0_9_request_gets_only_a_400_page(production_stack):
    # HTTP/0.9 has no status line and no headers: the answer is the body alone. It has no
    # Host header either, so Django refuses it.
    with socket.create_connection(("127.0.0.1", production_stack.port), timeout=ANSWER_TIMEOUT) as connection:
        connection.sendall(b"GET /\r\n")
        answer = read_until_closed(connection)

    assert b"Bad Request (400)" in answer
    for leak in LEAKS:
        assert leak not in answer


def test_tls_sent_to_the_plain_port_is_refused(production_stack):
    assert assert_refused_cleanly(production_stack, tls_client_hello()) == 400


def tls_client_hello():
    """The first bytes a browser sends to an https:// URL."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def read_until_closed(connection):
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


HALF_OPEN_CONNECTIONS = 300


def test_real_users_are_served_while_hundreds_of_connections_hang_half_open(production_stack):
    # Slowloris: connections that send part of a request and then nothing. Half stop in the
    # headers, half in the body. nginx holds them all; gunicorn's two workers never see them.
    stalled = []
    try:
        for number in range(HALF_OPEN_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", production_stack.port), timeout=ANSWER_TIMEOUT)
            stalled.append(connection)
            if number % 2:
                connection.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            else:
                connection.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\npart")

        for _ in range(10):
            response = requests.get(production_stack.url + "/", headers={"X-Forwarded-Proto": "https"},
                                    timeout=ANSWER_TIMEOUT)
            assert response.status_code == 200
    finally:
        for connection in stalled:
            connection.close()
