"""One client cannot take the dyno, and overload fails fast (config/nginx.conf.erb).

- The per-client limit: requests from one address (the last X-Forwarded-For entry, as
  Heroku's router sends it) beyond NGINX_CLIENT_CONCURRENCY get 429 from nginx, while other
  addresses, and requests that came through no router, are served.
- Overload: when gunicorn's queue is full, nginx answers 503 at once, and the stack
  recovers by itself once the queue drains.

A request is "in progress" here by being an upload whose body never comes: nginx has counted
it against its client as soon as its headers arrived, and gunicorn never sees it.
"""

import contextlib
import socket
import time
import uuid
from pathlib import Path

import pytest

import erb
from tests.stack import gunicorn_settings, parse_logfmt
from tests.test_nginx_config import TEMPLATE, ruby_erb

ABUSER = "203.0.113.7"
NEIGHBOUR = "198.51.100.7"
DEFAULT_LIMIT = 200


@contextlib.contextmanager
def uploads_in_progress(stack, count, forwarded_for=None):
    """`count` uploads whose bodies never arrive, held open for the block; from a router
    (with X-Forwarded-For) or, without `forwarded_for`, as `make run` or a test sends them.

    The block starts once nginx holds every one of them (none was answered), and ends once
    nginx has logged the end of each: until then it still counts them against their client,
    and the next uploads from the same address would be refused in their place.
    """
    router_header = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    request_ids = [str(uuid.uuid4()) for _ in range(count)]
    connections = []
    try:
        for request_id in request_ids:
            connection = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
            connections.append(connection)
            connection.sendall(
                f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: {request_id}\r\n"
                f"{router_header}Content-Length: 1000\r\n\r\n".encode()
            )
        wait_until_nginx_has_read_every_request_head(stack, connections)
        answered = {fields.get("request_id") for fields in stack.access_lines()} & set(request_ids)
        assert not answered, f"{len(answered)} of {count} uploads were answered instead of held"
        yield
    finally:
        for connection in connections:
            connection.close()
    stack.wait_for_access_lines(request_ids, timeout=10)


def wait_until_nginx_has_read_every_request_head(stack, connections, timeout=10):
    """Wait until nginx has read every byte sent on `connections`, and so counted each
    request against its client (it does that as soon as it has read a request's head)."""
    client_ports = {connection.getsockname()[1] for connection in connections}
    deadline = time.monotonic() + timeout
    while unread := connections_with_unread_bytes(stack.port, client_ports):
        assert time.monotonic() < deadline, f"nginx has not read {len(unread)} of {len(client_ports)} request heads"
        time.sleep(0.05)


def connections_with_unread_bytes(server_port, client_ports):
    """The client ports among `client_ports` whose connection to `server_port` still has
    bytes waiting in the server's end (its receive queue, in /proc/net/tcp), or that the
    kernel does not list yet."""
    waiting = set(client_ports)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]  # address:port, tx:rx queues
        local_port, remote_port = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        if local_port == server_port and remote_port in waiting and int(queues.split(":")[1], 16) == 0:
            waiting.discard(remote_port)
    return waiting


def status_within(stack, expected, forwarded_for, timeout=10):
    """GET until the answer is `expected` or `timeout` seconds have passed; the last status.

    nginx counts a held request once it has read its head, and forgets it once it has seen
    the connection close: a moment after the test's own socket calls, longer on a busy machine.
    """
    deadline = time.monotonic() + timeout
    while (status := get(stack, forwarded_for)[0].status_code) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


def get(stack, forwarded_for=None):
    """A GET as the router sends it (with X-Forwarded-For), or as a local client does."""
    request_id = str(uuid.uuid4())
    headers = {"X-Request-ID": request_id}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    response = stack.get("/", headers=headers)
    return response, stack.wait_for_access_line(request_id)


def start_with(start_stack, limit=None, **env):
    if limit is not None:
        env["NGINX_CLIENT_CONCURRENCY"] = str(limit)
    # gunicorn writes an access line too, so a test can tell whether a request reached it.
    return start_stack({"GUNICORN_ACCESS_LOG": "1", **env})


def gunicorn_access_lines(stack):
    return [line for line in stack.stdout_lines() if "logger=gunicorn.access" in line]


def settled_gunicorn_access_lines(stack, timeout=5):
    """gunicorn's access lines, once there is one for every request nginx has passed to it.

    gunicorn writes its line after its response has gone, so a moment after nginx's: the
    stack's first request (the one that found it serving) may still be logged a while later.
    """
    deadline = time.monotonic() + timeout
    while True:
        lines = gunicorn_access_lines(stack)
        passed = {fields["request_id"] for fields in stack.access_lines() if fields["upstream_connect_time"] != "-"}
        if passed <= {parse_logfmt(line)["request_id"] for line in lines} or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# --- The per-client limit ---------------------------------------------------------------


def test_one_address_over_the_limit_gets_429_while_others_are_served(start_stack):
    stack = start_with(start_stack, limit=3)

    with uploads_in_progress(stack, 3, ABUSER):
        reached_gunicorn_before = len(settled_gunicorn_access_lines(stack))
        # A forged first entry changes nothing: the router appends the address it saw.
        refused, refused_line = get(stack, forwarded_for=f"{NEIGHBOUR}, {ABUSER}")
        reached_gunicorn_after = len(gunicorn_access_lines(stack))
        neighbour, _ = get(stack, forwarded_for=NEIGHBOUR)
        local, _ = get(stack)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"
    assert "Too many requests" in refused.text and "nginx" not in refused.text
    assert (refused_line["status"], refused_line["client_addr"]) == ("429", ABUSER)
    assert refused_line["upstream_connect_time"] == "-"
    assert reached_gunicorn_after == reached_gunicorn_before
    assert neighbour.status_code == 200
    assert local.status_code == 200


def test_the_address_is_served_again_once_its_requests_end(start_stack):
    stack = start_with(start_stack, limit=3)

    with uploads_in_progress(stack, 3, ABUSER):
        assert status_within(stack, 429, ABUSER) == 429

    assert status_within(stack, 200, ABUSER) == 200


def test_requests_without_x_forwarded_for_are_never_limited(start_stack):
    stack = start_with(start_stack, limit=3)

    with uploads_in_progress(stack, 3):
        response, _ = get(stack)

    assert response.status_code == 200


def test_the_default_limit_is_200_requests_per_address(start_stack):
    stack = start_with(start_stack)

    with uploads_in_progress(stack, DEFAULT_LIMIT - 1, ABUSER):
        under, _ = get(stack, forwarded_for=ABUSER)
    with uploads_in_progress(stack, DEFAULT_LIMIT, ABUSER):
        over = status_within(stack, 429, ABUSER)

    assert (under.status_code, over) == (200, 429)


def test_a_limit_of_0_turns_the_limit_off(start_stack):
    stack = start_with(start_stack, limit=0)

    with uploads_in_progress(stack, DEFAULT_LIMIT, ABUSER):
        response, _ = get(stack, forwarded_for=ABUSER)

    assert response.status_code == 200


@pytest.mark.parametrize("limit", [None, "0", "50"])
def test_the_limit_renders_the_same_under_ruby_erb_and_ours(limit):
    env = {"PORT": "5000"} | ({"NGINX_CLIENT_CONCURRENCY": limit} if limit else {})

    ours = erb.render(TEMPLATE.read_text(), "config/nginx.conf.erb", env)

    assert ours == ruby_erb(env)
    assert ("limit_conn per_client" in ours) == (limit != "0")


# --- Overload ---------------------------------------------------------------------------


@contextlib.contextmanager
def gunicorns_queue_full(stack):
    """Fill gunicorn's socket queue with connections that never send a request.

    Each worker accepts one and waits on it; the rest wait in the queue until the kernel
    refuses the next connection with EAGAIN, exactly as when nginx has queued more requests
    than the workers can take. Closing them lets the workers go back to work.
    """
    connections = []
    try:
        while fill(stack.socket_path, connections):
            # A worker may still have been about to accept one: top the queue up again.
            time.sleep(0.5)
        yield
    finally:
        for connection in connections:
            connection.close()


def fill(socket_path, connections, most=5000):
    """Connect until the queue refuses; True if at least one connection got in."""
    added = 0
    while added < most:
        connection = socket.socket(socket.AF_UNIX)
        connection.setblocking(False)
        try:
            connection.connect(str(socket_path))
        except BlockingIOError:
            connection.close()
            return added > 0
        connections.append(connection)
        added += 1
    raise AssertionError(f"gunicorn's queue took {most} connections without refusing one")


def test_a_full_queue_gives_503_with_retry_after_at_once_and_recovers_by_itself(start_stack):
    # A small queue, so that the test needs only a few connections to fill it.
    stack = start_with(start_stack, GUNICORN_CMD_ARGS="--access-logfile - --backlog 8")

    with gunicorns_queue_full(stack):
        started = time.monotonic()
        overloaded, overloaded_line = get(stack, forwarded_for=NEIGHBOUR)
        waited = time.monotonic() - started

    assert overloaded.status_code == 503
    assert overloaded.headers["Retry-After"] == "5"
    assert "Temporarily unavailable" in overloaded.text and "nginx" not in overloaded.text
    assert waited < 2, "nginx must not wait for a place in the queue"
    # What tells overload apart from a 503 that Django sent: nginx never connected.
    assert (overloaded_line["status"], overloaded_line["upstream_connect_time"]) == ("503", "-")
    assert "(11: Resource temporarily unavailable)" in stack.output()
    assert status_once_the_queue_drains(stack) == 200


def status_once_the_queue_drains(stack, timeout=10):
    """The first status other than 503, asking until `timeout`: closing the connections that
    filled the queue does not empty it; the workers still accept and drop each of them."""
    deadline = time.monotonic() + timeout
    while True:
        status = get(stack, forwarded_for=NEIGHBOUR)[0].status_code
        if status != 503 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_gunicorns_queue_outlasts_one_client_and_fits_under_the_kernels_cap():
    # One address at its limit must never fill the queue by itself, or a single client could
    # turn everyone else's requests into 503s. Past net.core.somaxconn (4096, which a dyno
    # cannot change) the kernel would cut the queue silently.
    assert DEFAULT_LIMIT * 2 < gunicorn_settings()["backlog"] <= 4096
