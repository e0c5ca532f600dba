"""The whole web process, end to end: real nginx in front of real gunicorn running Django,
started through bin/start-nginx exactly as the Procfile starts it. The pages are the tests'
own (tests/urls.py), which the stack serves as it would serve any app's."""

import re
import uuid

import requests


def test_home_page_is_served_through_nginx(stack):
    response = stack.get("/")

    assert response.status_code == 200
    assert "It works" in response.text
    # nginx answered (and does not say which version it is).
    assert response.headers["Server"] == "nginx"


def test_access_line_is_logfmt_with_the_user_agent_and_referer_sent(stack):
    request_id = str(uuid.uuid4())
    user_agent = 'Mozilla/5.0 (Linux; Android 14) "quoted" test-agent'
    referer = "https://example.com/some page?q=1"

    stack.get("/?from=test", headers={"User-Agent": user_agent, "Referer": referer, "X-Request-ID": request_id})

    fields = stack.wait_for_access_line(request_id)
    assert fields["method"] == "GET"
    assert fields["path"] == "/?from=test"
    assert fields["status"] == "200"
    assert fields["remote_addr"] == "127.0.0.1"
    # nginx writes the double quotes as \x22, so they cannot end the quoted value early; the
    # parser decodes them (tests/test_logs.py checks the raw line).
    assert fields["user_agent"] == user_agent
    assert fields["referer"] == referer
    assert float(fields["measure#nginx.service"].removesuffix("s")) >= 0
    assert float(fields["upstream_response_time"]) >= 0


def test_request_id_reaches_django(stack):
    request_id = "router-" + uuid.uuid4().hex

    response = stack.get("/", headers={"X-Request-ID": request_id})

    assert request_id in response.text


def test_nginx_makes_up_a_request_id_when_the_router_sent_none(stack):
    response = stack.get("/")

    shown = re.search(r"<code>([0-9a-f]{32})</code>", response.text)
    assert shown, "the page should show the request id nginx generated"
    assert stack.wait_for_access_line(shown.group(1))["status"] == "200"


def test_static_file_referenced_by_the_home_page_is_served(stack):
    stylesheet = re.search(r'href="(/static/tests/style\.[0-9a-f]+\.css)"', stack.get("/").text)
    assert stylesheet, "the home page should link its hashed stylesheet"

    response = stack.get(stylesheet.group(1))

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert "font-family" in response.text


def test_a_page_writes_to_and_reads_from_the_database(stack):
    def rows_counted():
        response = stack.get("/database/")
        assert response.status_code == 200
        return int(re.search(r'class="count">(\d+)<', response.text).group(1))

    first = rows_counted()
    second = rows_counted()

    assert second == first + 1


def test_sigterm_stops_nginx_and_gunicorn_and_their_workers_and_exits_zero(stack):
    stack.get("/")
    assert set(stack.child_pids()) == {"app", "nginx"}

    status = stack.stop()

    assert status == 0
    assert stack.leftover_processes() == [], "every process of the stack should be gone, workers included"
    assert not stack.socket_path.exists(), "gunicorn should remove its socket"
    try:
        stack.get("/")
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("nginx still answers after the wrapper exited")
