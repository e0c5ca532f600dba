"""A static file has the same headers whether nginx serves it or whitenoise serves it through
Django (where nginx is not in front: runserver, a deploy without nginx): the security headers
Django puts on every page included, HSTS over https on a dyno with the same value.

The same hashed file is fetched from nginx and straight from gunicorn over its unix socket,
and the headers that decide how browsers and caches treat it must be the same. The others are
each server's own business and differ between nginx versions (nginx 1.30, which Heroku runs,
adds Accept-Ranges to the files gzip_static serves; Debian 12's 1.22 does not), so they are
not compared.
"""

import email.message
import http.client
import json
import os
import socket
import subprocess

import pytest

from tests.stack import PRODUCTION_ENV, REPO

# What a browser or a cache does with the file: how to read it, how long to keep it, who may
# use it, and the security headers Django's SecurityMiddleware adds to every response.
HEADERS_THAT_MATTER = (
    "content-type", "content-encoding", "vary", "cache-control", "access-control-allow-origin",
    "x-content-type-options", "referrer-policy", "cross-origin-opener-policy",
    "strict-transport-security",
)

REQUEST_HEADERS = {"Accept-Encoding": "gzip"}
OVER_HTTPS = {**REQUEST_HEADERS, "X-Forwarded-Proto": "https"}


class UnixSocketConnection(http.client.HTTPConnection):
    """HTTP to gunicorn's unix socket, which nginx normally talks to."""

    def __init__(self, socket_path):
        super().__init__("localhost", timeout=10)
        self.socket_path = socket_path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


def hashed_static_path():
    manifest = json.loads((REPO / "staticfiles" / "staticfiles.json").read_text())
    return "/static/" + manifest["paths"]["tests/style.css"]


def fetch(connection, headers):
    """(status, {name: value} of each header that matters, None where it is absent)."""
    try:
        connection.request("GET", hashed_static_path(), headers=headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    received = {name: response.getheader(name) for name in HEADERS_THAT_MATTER}
    received["content-type"] = unquoted_parameters(received["content-type"])
    return response.status, received


def unquoted_parameters(content_type):
    """whitenoise writes charset="utf-8", nginx charset=utf-8: the same value (RFC 9110,
    section 5.6.6: a parameter's value means the same quoted or not)."""
    parsed = email.message.Message()
    parsed["Content-Type"] = content_type
    return "; ".join([parsed.get_content_type(), *(f"{key}={value}" for key, value in parsed.get_params()[1:])])


def from_nginx(stack, headers):
    return fetch(http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10), headers)


def from_whitenoise(stack, headers):
    return fetch(UnixSocketConnection(stack.socket_path), headers)


def test_same_headers_over_plain_http(stack):
    nginx = from_nginx(stack, REQUEST_HEADERS)
    whitenoise = from_whitenoise(stack, REQUEST_HEADERS)

    assert nginx == whitenoise
    status, headers = nginx
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "max-age=315360000, public, immutable"
    assert headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("hsts_env, expected_hsts", [
    ({}, "max-age=31536000; includeSubDomains; preload"),
    ({"DJANGO_HSTS_SECONDS": "3600", "DJANGO_HSTS_PRELOAD": "no"}, "max-age=3600; includeSubDomains"),
    ({"DJANGO_HSTS_SECONDS": "0"}, None),
], ids=["defaults", "shorter-no-preload", "off"])
def test_same_headers_over_https_on_a_dyno(start_stack, hsts_env, expected_hsts):
    stack = start_stack({**PRODUCTION_ENV, **hsts_env})

    nginx = from_nginx(stack, OVER_HTTPS)
    whitenoise = from_whitenoise(stack, OVER_HTTPS)

    assert nginx == whitenoise
    assert nginx[1]["strict-transport-security"] == expected_hsts


def test_no_hsts_over_plain_http_on_a_dyno(start_stack):
    # Django redirects such a request to https (and sends no HSTS on the redirect); nginx
    # serves the file, without HSTS, which browsers ignore over plain http anyway.
    stack = start_stack(PRODUCTION_ENV)

    status, headers = from_nginx(stack, {**REQUEST_HEADERS, "X-Forwarded-Proto": "http"})

    assert status == 200
    assert headers["strict-transport-security"] is None


def test_hsts_seconds_that_are_not_a_number_are_a_clear_error(runtime_dir):
    env = {**os.environ, "PORT": "5000", "NGINX_TMP_DIR": str(runtime_dir), "DJANGO_HSTS_SECONDS": "1y"}

    result = subprocess.run([REPO / "bin" / "start-nginx", "--check"], env=env, capture_output=True, text=True)

    assert result.returncode == 2
    assert "DJANGO_HSTS_SECONDS must be a whole number of seconds, got '1y'" in result.stderr
