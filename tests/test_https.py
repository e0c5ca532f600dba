"""HTTPS on Heroku, end to end: the router's X-Forwarded-Proto passes through nginx to Django,
which redirects plain http, sends HSTS and marks its cookies secure (production mode)."""

import requests

from tests.stack import OVER_HTTPS


def get(stack, path, headers):
    return requests.get(stack.url + path, headers=headers, timeout=10, allow_redirects=False)


def test_plain_http_is_redirected_to_the_same_url_over_https(production_stack):
    response = get(production_stack, "/database/?page=2", {"X-Forwarded-Proto": "http"})

    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{production_stack.port}/database/?page=2"


def test_https_requests_are_served_with_hsts(production_stack):
    response = get(production_stack, "/", OVER_HTTPS)

    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_cookies_are_sent_over_https_only(production_stack):
    # The admin's login page sets the CSRF cookie.
    response = get(production_stack, "/admin/login/", OVER_HTTPS)

    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    assert all(cookie.secure for cookie in response.cookies)


def test_the_local_stack_serves_plain_http_without_redirecting(stack):
    # `make run`: no router, no X-Forwarded-Proto, and no https to redirect to.
    response = get(stack, "/", {})

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
