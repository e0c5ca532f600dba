"""What nginx does itself in front of Django: static files, the favicon and robots.txt, and
bodies that are too large.

Through the real stack (bin/start-nginx, nginx, gunicorn), as in tests/test_stack.py.
"""

import json
import uuid

import pytest
import requests

from tests.stack import REPO


def hashed_name(name):
    manifest = json.loads((REPO / "staticfiles" / "staticfiles.json").read_text())
    return manifest["paths"][name]


def test_hashed_static_file_comes_from_nginx_gzipped_and_cached_forever(stack):
    request_id = str(uuid.uuid4())
    name = hashed_name("tests/style.css")

    response = stack.get("/static/" + name, headers={"Accept-Encoding": "gzip", "X-Request-ID": request_id},
                         stream=True)

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    # The very bytes of the .gz file collectstatic wrote (gzip_static), not nginx's own
    # compression on the fly, which would give other bytes (and skips files this small).
    assert response.raw.read(decode_content=False) == (REPO / "staticfiles" / (name + ".gz")).read_bytes()
    assert response.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    # gunicorn never saw it: nginx logs no upstream time for a request it answered itself.
    assert stack.wait_for_access_line(request_id)["upstream_response_time"] == "-"


def test_static_file_without_a_hash_is_cached_briefly(stack):
    response = stack.get("/static/tests/style.css")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "max-age=60, public"


def test_static_file_missing_on_disk_gets_djangos_answer(stack):
    request_id = str(uuid.uuid4())

    response = stack.get("/static/tests/not-collected.css", headers={"X-Request-ID": request_id})

    assert response.status_code == 404
    assert stack.wait_for_access_line(request_id)["upstream_response_time"] != "-"


@pytest.mark.parametrize("name, content_type", [("favicon.ico", "image/x-icon"),
                                                ("robots.txt", "text/plain; charset=utf-8")])
def test_favicon_and_robots_txt_come_from_nginx_and_are_cached_for_a_day(stack, name, content_type):
    request_id = str(uuid.uuid4())

    response = stack.get("/" + name, headers={"X-Request-ID": request_id})

    assert response.status_code == 200
    assert response.content == (REPO / "config" / "site-root" / name).read_bytes()
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == "max-age=86400, public"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # No gunicorn worker was asked: nginx logs no upstream for a request it answered itself.
    assert stack.wait_for_access_line(request_id)["upstream_connect_time"] == "-"


def test_body_over_the_limit_is_refused_by_nginx(start_stack):
    stack = start_stack({"NGINX_CLIENT_MAX_BODY_SIZE": "1"})  # megabytes

    response = requests.post(stack.url + "/", data=b"x" * (1024 * 1024 + 1), timeout=10)

    assert response.status_code == 413
