"""The logs a running stack prints, end to end: nginx's access line, the request id from the
router to Django, Django's and gunicorn's lines, all logfmt whatever a client sends.

Every stack here runs with the environment Heroku's Python buildpack sets in a dyno
(GUNICORN_CMD_ARGS="--access-logfile -", FORWARDED_ALLOW_IPS="*"; see tests/stack.py).
"""

import re
import time
import uuid

import pytest

from tests.logfmt import parse
from tests.stack import REPO, complete_lines, copy_of_repository

HEROKU_MAX_LINE_BYTES = 10_000  # Logplex splits longer lines in two


def router_headers(request_id):
    """What Heroku's router adds to every request: the client's own X-Forwarded-For entries
    (forgeable) followed by the address the router saw."""
    return {
        "X-Request-ID": request_id,
        "X-Forwarded-For": "198.51.100.23, 203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "Via": "1.1 vegur",
    }


def new_request_id():
    return str(uuid.uuid4())


def wait_for_lines(stack, request_id, logger, count=1, timeout=5):
    """The parsed stderr/stdout lines of `logger` that carry request_id, once there are `count`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [parse(line.decode()) for line in stack.log_lines() if f"logger={logger} ".encode() in line]
        matching = [fields for fields in lines if fields["request_id"] == request_id]
        if len(matching) >= count or time.monotonic() > deadline:
            return matching
        time.sleep(0.05)


def raw_request(*header_lines, request_line=b"GET /?hostile HTTP/1.1"):
    return b"\r\n".join([request_line, b"Host: localhost", *header_lines, b"Connection: close", b"", b""])


def send_hostile(stack, *header_lines, request_line=b"GET /?hostile HTTP/1.1", request_id=None):
    """Send a raw request (which no HTTP library would) and return nginx's line for it, as
    bytes, once every line on stdout so far has passed assert_one_safe_line: a byte that split
    a line would leave a fragment that does not."""
    request_id = request_id or uuid.uuid4().hex
    stack.send_raw(raw_request(b"X-Request-ID: " + request_id.encode(), *header_lines, request_line=request_line))
    stack.wait_for_access_line(request_id)
    lines = complete_lines(stack.stdout_path)
    for line in lines:
        assert_one_safe_line(line)
    (line,) = [line for line in lines if request_id.encode() in line]
    return line


def assert_one_safe_line(line):
    """One line that any logfmt parser reads the same way, and Heroku does not split."""
    assert line.isascii() and line.decode().isprintable(), line
    assert len(line) < HEROKU_MAX_LINE_BYTES
    return parse(line.decode())


def documented_access_log_keys():
    """The keys docs/logs.md documents, from the first column of its table."""
    logs_section = (REPO / "docs" / "logs.md").read_text().split("## nginx's access line", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", logs_section, flags=re.MULTILINE)
    table = first_cells[first_cells.index("key") + 1:]
    return {key for cell in table for key in re.findall(r"`([^`]+)`", cell)}


# --- nginx's access line ---------------------------------------------------------------


def test_access_line_has_every_documented_key_with_the_routers_values(stack):
    request_id = new_request_id()
    headers = {**router_headers(request_id), "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)",
               "Referer": "https://example.com/a page"}

    stack.get("/?from=router", headers=headers)

    fields = stack.wait_for_access_line(request_id)
    assert set(fields) == documented_access_log_keys()
    assert (fields["method"], fields["path"], fields["status"]) == ("GET", "/?from=router", "200")
    # The last X-Forwarded-For entry is the one the router appended; the rest can be forged.
    assert fields["client_addr"] == "203.0.113.9"
    assert fields["forwarded_for"] == "198.51.100.23, 203.0.113.9"
    assert fields["remote_addr"] == "127.0.0.1"
    assert (fields["forwarded_proto"], fields["via"]) == ("https", "1.1 vegur")
    assert (fields["user_agent"], fields["referer"]) == (headers["User-Agent"], headers["Referer"])
    assert int(fields["body_bytes_sent"]) > 0
    assert fields["measure#nginx.service"] == fields["request_time"] + "s"
    for key in ("request_time", "upstream_connect_time", "upstream_header_time", "upstream_response_time"):
        assert float(fields[key]) >= 0


def test_without_x_forwarded_for_the_client_is_the_connecting_address(stack):
    request_id = new_request_id()

    stack.get("/", headers={"X-Request-ID": request_id})

    fields = stack.wait_for_access_line(request_id)
    assert fields["client_addr"] == "127.0.0.1"
    assert fields["forwarded_for"] == ""


# What nginx lets through to the log line, byte for byte; the user agent is where each goes.
HOSTILE_USER_AGENTS = {
    "quotes-backslashes-and-key-value-text": b'a" status=999 forged=1 \\" \\',
    "control-bytes": b"\x01\x1b[31mred\x7f",
    "non-utf8-bytes": b"\xff\xfe\xc3\x28 \xe9t\xe9",
}


@pytest.mark.parametrize("user_agent", HOSTILE_USER_AGENTS.values(), ids=HOSTILE_USER_AGENTS.keys())
def test_hostile_header_stays_inside_its_value_on_one_line(stack, user_agent):
    line = send_hostile(stack, b"User-Agent: " + user_agent)

    fields = parse(line.decode())
    assert "forged" not in fields
    assert fields["status"].isdigit()
    assert fields["user_agent"] == user_agent.decode("latin-1")


def test_hostile_bytes_in_the_path_stay_inside_its_value(stack):
    line = send_hostile(stack, request_line=b'GET /\xff"\\"x=1 HTTP/1.1')

    fields = parse(line.decode())
    assert fields["path"] == '/\xff"\\"x=1'
    assert "x" not in fields


def test_a_20_kb_user_agent_gives_one_line(stack):
    line = send_hostile(stack, b"User-Agent: " + b"x" * 20_000)

    # nginx refuses a header line longer than its buffers (8 KB) before it reads it.
    assert parse(line.decode())["status"] == "400"


def test_long_user_agent_is_cut_to_500_bytes(stack):
    line = send_hostile(stack, b"User-Agent: " + b"\xff" * 7_000)

    assert parse(line.decode())["user_agent"] == "\xff" * 500


def test_worst_case_line_stays_under_herokus_limit(stack):
    """Every value a client controls, at its longest, made of bytes that nginx escapes."""
    escaped = b"\xff"
    line = send_hostile(
        stack,
        b"X-Forwarded-For: " + escaped * 200 + b", " + b"f" * 45,
        b"X-Forwarded-Proto: " + escaped * 100,
        b"Via: " + escaped * 100,
        b"Referer: " + escaped * 1000,
        b"User-Agent: " + escaped * 1000,
        request_line=b"A" * 100 + b" /" + escaped * 2000 + b" HTTP/1.1",
        request_id=(uuid.uuid4().hex * 7)[:200],
    )

    fields = parse(line.decode())
    assert len(fields["path"]) == 1000 and len(fields["user_agent"]) == 500
    assert fields["client_addr"] == "f" * 45
    # docs/logs.md quotes this length. Every value here is at its longest, each in the same
    # number of bytes every time (times are printed as 0.000), so the length is exact.
    assert len(line) == 9_203
    # 300 bytes to spare for an IPv6 remote_addr and longer numbers on Heroku.
    assert len(line) < HEROKU_MAX_LINE_BYTES - 300


# --- one request id from the router to Django ----------------------------------------------


@pytest.mark.parametrize("sent", ["short-id", "a" * 201, 'abcdefghijklmnopqrstuvwxyz" forged=1'])
def test_an_id_the_router_would_refuse_is_replaced_by_nginxs_own(stack, sent):
    response = stack.get("/", headers={"X-Request-ID": sent})

    shown_to_django = re.search(r"<code>(.*?)</code>", response.text).group(1)
    assert re.fullmatch(r"[0-9a-f]{32}", shown_to_django)
    assert stack.wait_for_access_line(shown_to_django)["status"] == "200"


def test_disallowed_host_error_carries_the_same_request_id_as_the_access_line(stack):
    request_id = new_request_id()

    response = stack.get("/", headers={**router_headers(request_id), "Host": "evil.example.com"})

    assert response.status_code == 400
    assert stack.wait_for_access_line(request_id)["status"] == "400"
    error = wait_for_lines(stack, request_id, "django.security.DisallowedHost")[0]
    assert error["level"] == "ERROR"
    assert "evil.example.com" in error["msg"]


def test_500_traceback_is_logged_line_by_line_with_the_request_id(start_stack):
    # Without migrations the database page fails as a real app does: no such table.
    stack = start_stack(migrate=False)
    request_id = new_request_id()

    response = stack.get("/database/", headers=router_headers(request_id))

    assert response.status_code == 500
    assert stack.wait_for_access_line(request_id)["status"] == "500"
    lines = wait_for_lines(stack, request_id, "django.request", count=3)
    assert lines[0] == {"level": "ERROR", "logger": "django.request", "request_id": request_id,
                        "msg": "Internal Server Error: /database/"}
    tracebacks = [fields["traceback"] for fields in lines[1:]]
    assert tracebacks[0] == "Traceback (most recent call last):"
    assert tracebacks[-1].endswith("no such table: django_session")


# The record of an error that comes back with every request stays this short. A syntax error
# in a view took 43 lines here (58 in the demo's views), and 640 before: eleven chained
# tracebacks of the same SyntaxError.
MOST_LINES_FOR_ONE_ERROR = 80


def test_a_syntax_error_in_a_view_logs_one_short_traceback_per_request_with_its_id(start_stack, runtime_dir):
    # A view with a syntax error, which the root URLconf imports: every page fails with it.
    app = copy_of_repository(runtime_dir / "app")
    (app / "myproject" / "broken_view.py").write_text(
        "from django.http import HttpResponse\n\n\ndef view(request)\n    return HttpResponse()\n")
    urls = app / "myproject" / "urls.py"
    urls.write_text(urls.read_text().replace("urlpatterns = [", "from myproject import broken_view\n\nurlpatterns = ["))
    # migrate would stop at the error: Django's checks import the URLconf.
    stack = start_stack(app_dir=app, migrate=False)
    request_ids = [new_request_id() for _ in range(3)]

    for request_id in request_ids:
        assert stack.get("/", headers=router_headers(request_id)).status_code == 500

    stack.wait_for_access_lines(request_ids)
    assert stack.stop() == 0
    lines = [assert_one_safe_line(line) for line in stack.log_lines()]
    for request_id in request_ids:
        logged = [fields for fields in lines if fields.get("request_id") == request_id and "logger" in fields]
        assert 0 < len(logged) <= MOST_LINES_FOR_ONE_ERROR, len(logged)
        assert logged[0]["msg"] == "Internal Server Error: /"
        # Near the end, as Python prints it: the file and line, then the error they hold.
        ending = [fields.get("traceback") for fields in logged[-6:]]
        assert f'  File "{app}/myproject/broken_view.py", line 4' in ending, ending
        assert "SyntaxError: expected ':'" in ending
    # Nothing about these requests was logged without their id.
    assert not [fields for fields in lines if fields.get("level") == "ERROR" and fields["request_id"] == "-"]


def test_errors_python_would_print_itself_are_log_lines(start_stack):
    # An exception in __del__ ("Exception ignored in ...") and one that ends a thread: Python
    # prints both on stderr itself, in lines that are not logfmt, unless told otherwise.
    stack = start_stack()
    request_id = new_request_id()
    token = uuid.uuid4().hex[:12]

    response = stack.get(f"/misbehave/raise-where-nothing-catches/{token}/", headers=router_headers(request_id))

    assert response.status_code == 200
    stack.wait_for_output(f"deliberate failure in __del__ {token}")
    stack.wait_for_output(f"deliberate failure in a thread {token}")
    lines = [assert_one_safe_line(line) for line in stack.log_lines()]
    python_lines = [fields for fields in lines if fields.get("logger") == "python"]
    messages = [fields["msg"] for fields in python_lines if "msg" in fields]
    # Python's own words: "Exception ignored in: <function ...__del__ ...>" up to 3.13,
    # "Exception ignored while calling deallocator <function ...__del__ ...>" from 3.14.
    assert any(message.startswith("Exception ignored ") and "RaisesWhenCollected.__del__" in message
               for message in messages), messages
    assert f"Exception in thread failing-{token}" in messages
    # __del__ ran in the thread handling the request, and its lines carry the request's id.
    assert any(f"__del__ {token}" in fields.get("traceback", "") for fields in python_lines
               if fields["request_id"] == request_id)


def test_404s_from_crawlers_are_left_to_the_access_line(stack):
    request_id = new_request_id()

    stack.get("/wp-login.php", headers=router_headers(request_id))

    assert stack.wait_for_access_line(request_id)["status"] == "404"
    assert b"logger=django.request" not in b"\n".join(stack.log_lines())


def head_and_body(reply):
    """A raw HTTP reply split into its status line, its headers but Date ({name: value}),
    and its body."""
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    headers.pop("Date")
    return status_line, headers, body


def test_a_head_request_gets_the_headers_of_get_no_body_and_no_line_but_its_access_line(start_stack):
    # One worker, so that GET and HEAD of /worker-pid/ get the same page: that worker's pid.
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": "1"})
    request_id = new_request_id()

    get = stack.send_raw(raw_request(request_line=b"GET /worker-pid/ HTTP/1.1"))
    head = stack.send_raw(raw_request(b"X-Request-ID: " + request_id.encode(),
                                      request_line=b"HEAD /worker-pid/ HTTP/1.1"))

    get_status, get_headers, get_body = head_and_body(get)
    head_status, head_headers, head_body = head_and_body(head)
    assert head_status == get_status == "HTTP/1.1 200 OK"
    assert head_headers == get_headers
    assert head_headers["Content-Length"] == str(len(get_body))
    assert head_body == b""
    assert stack.wait_for_access_line(request_id)["method"] == "HEAD"
    # Read once the stack has stopped, when every line it will print has been printed.
    assert stack.stop() == 0
    mentions = [line for line in stack.log_lines() if request_id.encode() in line]
    assert len(mentions) == 1, mentions
    assert mentions[0].startswith(b"measure#nginx.service=")


# --- gunicorn's access log: off despite the buildpack, on when asked ------------------------


def test_one_access_line_per_request_although_the_buildpack_asks_gunicorn_for_one(stack):
    assert stack.env["GUNICORN_CMD_ARGS"] == "--access-logfile -"
    request_id = new_request_id()

    stack.get("/", headers=router_headers(request_id))

    stack.wait_for_access_line(request_id)
    # gunicorn's sync worker would write its line only after the response has gone to nginx,
    # maybe after nginx's own line: stop the stack, which lets every process finish writing.
    assert stack.stop() == 0
    stdout = complete_lines(stack.stdout_path)
    assert all(line.startswith((b"wrapper=", b"measure#nginx.service=")) for line in stdout), stdout
    mentions = [line for line in stack.log_lines() if request_id.encode() in line]
    assert len(mentions) == 1


def test_gunicorn_opens_no_control_socket_which_nothing_uses(stack):
    # gunicorn would say "Control socket listening at ..." at every start, for a socket that
    # could stop the app and that nothing here talks to (config/gunicorn.conf.py).
    assert "Control socket" not in stack.output()
    assert not list(stack.socket_path.parent.glob("*.ctl"))


def test_gunicorns_access_line_on_demand_carries_the_same_request_id(start_stack):
    stack = start_stack({"GUNICORN_ACCESS_LOG": "1"})
    request_id = new_request_id()

    stack.get("/?on=demand", headers=router_headers(request_id))

    assert stack.wait_for_access_line(request_id)["status"] == "200"
    (gunicorn_line,) = wait_for_lines(stack, request_id, "gunicorn.access")
    assert gunicorn_line["msg"].startswith("GET /?on=demand HTTP/1.1 200 ")


# --- everything together --------------------------------------------------------------------


def test_every_line_the_stack_prints_from_start_to_stop_is_logfmt(start_stack):
    stack = start_stack({"GUNICORN_ACCESS_LOG": "1"}, migrate=False)
    stack.get("/", headers=router_headers(new_request_id()))
    stack.get("/wp-login.php")
    stack.get("/database/")  # a 500 with a traceback
    stack.get("/", headers={"Host": "evil.example.com"})
    for user_agent in HOSTILE_USER_AGENTS.values():
        stack.send_raw(raw_request(b"User-Agent: " + user_agent))
    stack.send_raw(raw_request(b"User-Agent: " + b"x" * 20_000))

    assert stack.stop() == 0

    lines = stack.log_lines()
    for line in lines:
        assert_one_safe_line(line)
    sources = {parse(line.decode()).get("logger", "nginx" if line.startswith(b"measure#") else "wrapper")
               for line in lines}
    assert {"wrapper", "nginx", "gunicorn.error", "gunicorn.access", "django.request",
            "django.security.DisallowedHost"} <= sources
