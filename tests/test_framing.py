"""Ambiguous HTTP/1.1 framing, sent through the whole stack: nginx, gunicorn and Django.

When two parsers can disagree on where a request's body ends, the bytes one of them leaves
over become the start of another request: request smuggling. Behind nginx only nginx reads
what clients send; it reads each request whole and hands gunicorn a copy that it framed
itself. These tests hold the stack to the guarantee docs/security.md gives, on whichever nginx
is first on PATH (CI runs them on every nginx it tests):

- each crafted request is either refused with a 4xx (a 501 or 505 would do too, though
  config/nginx.conf.erb turns both into a 400), or it runs exactly once and Django sees
  exactly the body its sender framed;
- the ordinary request sent after it on the same connection is answered as itself, or not at
  all when nginx closes the connection after a refusal; never as anything else;
- no bytes of one request ever become part of another.

Each case goes out in one write together with the ordinary request after it, as a client that
pipelines would send them, and the replies are read until nginx closes the connection. Every
request goes to the echo view in tests/views.py, which answers with what Django received and
logs a line each time it runs. Everything is sent to 127.0.0.1, one connection per case.
"""

import hashlib
import http.client
import io
import json
import socket
import uuid
from dataclasses import dataclass

import pytest
import requests

# Generous: every answer here comes at once, so this only catches a hang.
ANSWER_TIMEOUT = 5

# What Heroku's router adds to every request it forwards; without it, production-mode Django
# redirects to https and never reads the body.
ROUTER_HEADER = b"X-Forwarded-Proto: https"

# The body every crafted request carries is a whole request of its own. Framed as its sender
# meant, it is only bytes of a body; framed any other way, nginx would find a request for
# /echo/smuggled/ in it and run that.
SMUGGLED_PATH = "/echo/smuggled/"
SMUGGLED = b"GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n\r\n" % (SMUGGLED_PATH.encode(), ROUTER_HEADER)
LENGTH = b"%d" % len(SMUGGLED)
SIZE = b"%x" % len(SMUGGLED)  # the same, as a chunk size: in hexadecimal
# The same body chunked: one chunk, then the last chunk, with no trailer fields.
CHUNKED = SIZE + b"\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"
# A Content-Length that covers the chunk-size line alone, and leaves the smuggled request to
# be read as the next one.
SIZE_LINE_LENGTH = b"%d" % len(SIZE + b"\r\n")

# Stands for the path of the request under test, in each case's request line.
PATH = b"<path>"

# Any 4xx refuses a request; so do 501 (a Transfer-Encoding nginx does not know) and 505 (an
# HTTP version it does not speak), which config/nginx.conf.erb answers as 400.
REFUSALS = {*range(400, 500), 501, 505}


@dataclass
class Case:
    """A crafted request, and the body its sender framed: Django must see exactly that body
    if the request runs. `framed` is None where no reading of the request is right, so that
    only a refusal is; `must_run` where a refusal is wrong too (an ordinary request)."""

    headers: list[bytes]
    body: bytes
    framed: bytes | None
    must_run: bool = False
    request_line: bytes = b"POST " + PATH + b" HTTP/1.1"
    host: bytes = b"localhost"
    line_end: bytes = b"\r\n"  # of the request line and of each header line

    @property
    def method(self):
        return self.request_line.split()[0].decode()

    def request(self, path):
        lines = [self.request_line.replace(PATH, path), b"Host: " + self.host, ROUTER_HEADER, *self.headers]
        return b"".join(line + self.line_end for line in lines) + self.line_end + self.body


def chunked(size_line, last_chunk=b"0\r\n\r\n"):
    """The smuggled request as one chunk, after `size_line`, then `last_chunk`."""
    return size_line + SMUGGLED + b"\r\n" + last_chunk


TE_CHUNKED = b"Transfer-Encoding: chunked"
CONTENT_LENGTH = b"Content-Length: " + LENGTH

CASES = {
    # --- Content-Length and Transfer-Encoding together ---------------------------------
    # Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3), so the body is the
    # chunked one; a parser that believed Content-Length would run the smuggled request.
    "content-length then chunked":
        Case([b"Content-Length: " + SIZE_LINE_LENGTH, TE_CHUNKED], CHUNKED, framed=SMUGGLED),
    "chunked then content-length":
        Case([TE_CHUNKED, b"Content-Length: " + SIZE_LINE_LENGTH], CHUNKED, framed=SMUGGLED),

    # --- Transfer-Encoding written strangely -------------------------------------------
    # Spaces and tabs around a value are not part of it, and codings ignore case (RFC 9110
    # sections 5.5 and 10.1.4): each of these is still chunked.
    "chunked with a trailing space": Case([b"Transfer-Encoding: chunked "], CHUNKED, framed=SMUGGLED),
    "chunked with a trailing tab": Case([b"Transfer-Encoding: chunked\t"], CHUNKED, framed=SMUGGLED),
    "chunked after a tab": Case([b"Transfer-Encoding:\tchunked"], CHUNKED, framed=SMUGGLED),
    "Chunked in capitals": Case([b"Transfer-Encoding: Chunked"], CHUNKED, framed=SMUGGLED),
    # A coding the server does not know, or chunked anywhere but last, leaves no way to find
    # the end of the body (RFC 9112 section 6.1): only a refusal is right, and a
    # Content-Length beside it must not be used instead.
    "xchunked": Case([b"Transfer-Encoding: xchunked"], CHUNKED, framed=None),
    "xchunked with a content-length": Case([b"Transfer-Encoding: xchunked", CONTENT_LENGTH], SMUGGLED, framed=None),
    "chunked, identity": Case([b"Transfer-Encoding: chunked, identity"], CHUNKED, framed=None),
    "a vertical tab before chunked": Case([b"Transfer-Encoding:\x0bchunked"], CHUNKED, framed=None),
    "identity with a content-length": Case([b"Transfer-Encoding: identity", CONTENT_LENGTH], SMUGGLED, framed=None),
    # A coding nginx does not decode, although chunked is last.
    "gzip, chunked": Case([b"Transfer-Encoding: gzip, chunked"], CHUNKED, framed=None),
    # Two headers make one list: chunked twice, or chunked before another coding.
    "two transfer-encoding headers, both chunked": Case([TE_CHUNKED, TE_CHUNKED], CHUNKED, framed=None),
    "two transfer-encoding headers, chunked then identity":
        Case([TE_CHUNKED, b"Transfer-Encoding: identity"], CHUNKED, framed=None),
    # Whitespace between a field name and its colon must be refused (RFC 9112 section 5.1).
    "a space before the colon of transfer-encoding": Case([b"Transfer-Encoding : chunked"], CHUNKED, framed=None),

    # --- Content-Length ----------------------------------------------------------------
    # The same value twice, or listed twice, may be taken as that value (RFC 9110 section 8.6).
    "content-length twice, equal": Case([CONTENT_LENGTH, CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED),
    "content-length listed twice, equal": Case([CONTENT_LENGTH + b", " + LENGTH], SMUGGLED, framed=SMUGGLED),
    # Different values, or anything but digits, leave the length unknown (RFC 9112 section 6.3).
    "content-length twice, different": Case([b"Content-Length: 0", CONTENT_LENGTH], SMUGGLED, framed=None),
    "content-length listed twice, different": Case([b"Content-Length: 0, " + LENGTH], SMUGGLED, framed=None),
    "content-length with a plus sign": Case([b"Content-Length: +" + LENGTH], SMUGGLED, framed=None),
    "content-length of -1": Case([b"Content-Length: -1"], SMUGGLED, framed=None),

    # --- Chunk sizes, extensions and trailers --------------------------------------------
    "a chunk size past 2**64": Case([TE_CHUNKED], chunked(b"ffffffffffffffffffff\r\n"), framed=None),
    # 2**64 plus the real size: a parser that overflowed quietly would read the real chunk.
    "a chunk size that wraps round to the real one":
        Case([TE_CHUNKED], chunked(b"1" + SIZE.zfill(16) + b"\r\n"), framed=None),
    "a chunk size with leading zeros": Case([TE_CHUNKED], chunked(SIZE.zfill(32) + b"\r\n"), framed=SMUGGLED),
    # Extensions mean nothing to the server, which skips them up to the end of the line...
    "a chunk extension": Case([TE_CHUNKED], chunked(SIZE + b";ext=1\r\n"), framed=SMUGGLED),
    "a malformed chunk extension": Case([TE_CHUNKED], chunked(SIZE + b';="unterminated\r\n'), framed=SMUGGLED),
    # ...but does the line end at a bare LF, or at the CRLF after it? No answer is right.
    "a bare LF in a chunk extension": Case([TE_CHUNKED], chunked(SIZE + b";a\nb\r\n"), framed=None),
    # Trailer fields come after the body and cannot change its length.
    "trailer fields after the last chunk":
        Case([TE_CHUNKED], chunked(SIZE + b"\r\n", last_chunk=b"0\r\nX-Trailer: yes\r\n\r\n"), framed=SMUGGLED),
    "a content-length trailer after the last chunk":
        Case([TE_CHUNKED], chunked(SIZE + b"\r\n", last_chunk=b"0\r\nContent-Length: 0\r\n\r\n"), framed=SMUGGLED),

    # --- Line ends and odd bytes in the head ---------------------------------------------
    # A bare LF may end a line (RFC 9112 section 2.2), in the head and in a chunked body.
    "LF-only line ends in the request line and headers":
        Case([CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED, line_end=b"\n"),
    "LF-only chunk lines": Case([TE_CHUNKED], SIZE + b"\n" + SMUGGLED + b"\n0\n\n", framed=SMUGGLED),
    # A bare CR or a NUL in a header, or a header folded onto the next line (obs-fold), may
    # be refused, or the CR, the NUL or the fold read as a space (RFC 9112 sections 2.2 and
    # 5.2, RFC 9110 section 5.5); the body stays the one Content-Length frames, whatever the
    # odd line seems to say.
    "a bare CR inside a header line":
        Case([b"X-Note: one\rContent-Length: 0", CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED),
    "a NUL in a header value": Case([b"X-Note: one\x00two", CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED),
    "a header folded onto a line that starts with a space":
        Case([b"X-Note: one", b" two", CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED),
    "a header folded onto a line that starts with a tab":
        Case([b"X-Note: one", b"\ttwo", CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED),
    "transfer-encoding folded onto the next line": Case([b"Transfer-Encoding:", b" chunked"], CHUNKED, framed=SMUGGLED),

    # --- Other ways to end up with a second request ------------------------------------
    # Pipelining: two complete requests in one write. The first simply runs.
    "an ordinary request (pipelining)": Case([CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED, must_run=True),
    # An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 section 6.1).
    "HTTP/1.0 with chunked":
        Case([TE_CHUNKED], CHUNKED, framed=None, request_line=b"POST " + PATH + b" HTTP/1.0"),
    # An offer to switch to HTTP/2 without TLS, which a server may ignore: the request runs
    # (or is refused) as HTTP/1.1, and the next one is still HTTP/1.1.
    "an h2c upgrade":
        Case([b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"],
             b"", framed=b"", request_line=b"GET " + PATH + b" HTTP/1.1"),
    # The path is what follows the host, whatever host the request line names.
    "an absolute-form request line":
        Case([CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED, request_line=b"POST http://localhost" + PATH + b" HTTP/1.1"),
    "an absolute-form request line for another host":
        Case([CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED,
             request_line=b"POST http://other.example" + PATH + b" HTTP/1.1"),
    "an absolute-form request line and a host header that disagrees":
        Case([CONTENT_LENGTH], SMUGGLED, framed=SMUGGLED, host=b"other.example",
             request_line=b"POST http://localhost" + PATH + b" HTTP/1.1"),
}


@dataclass
class Reply:
    """One reply that came back on a connection."""

    status: int
    body: bytes

    def echo(self):
        """What the echo view said it received, or None if it was not the one to answer."""
        try:
            return json.loads(self.body) if self.status == 200 else None
        except ValueError:
            return None


def new_path():
    """A path for the echo view that no other request uses."""
    return f"/echo/{uuid.uuid4().hex}/"


def ordinary_request(path, body):
    """A plain POST, sent after each case on the same connection. It asks nginx to close the
    connection once it has answered, so that reading until the end never waits."""
    return (b"POST %s HTTP/1.1\r\nHost: localhost\r\n%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (path.encode(), ROUTER_HEADER, len(body), body))


def exchange(stack, data):
    """Send `data` in one write on a fresh connection; return every reply, once nginx has
    closed the connection. A case fails if nginx neither answers nor closes within
    ANSWER_TIMEOUT: that is a hang."""
    received = b""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=ANSWER_TIMEOUT) as connection:
        connection.sendall(data)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"no end of the answer within {ANSWER_TIMEOUT}s: a hang. Received so far: {received!r}")
    return parse_replies(received)


class Received(io.BytesIO):
    """The bytes that came back on a connection, as a socket for http.client to read reply
    after reply: it closes its file after each reply, and this one stays open for the next."""

    def makefile(self, mode):
        return self

    def close(self):
        pass


def parse_replies(received):
    """Cut what came back into replies; a reply cut short fails the case."""
    stream, replies = Received(received), []
    while stream.tell() < len(received):
        response = http.client.HTTPResponse(stream)
        response.begin()
        replies.append(Reply(response.status, response.read()))
    return replies


def sent_as(path, body, method="POST"):
    """What the echo view answers for a request that reached it exactly as it was sent."""
    return {"method": method, "path": path, "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def ran_as_framed(case, path, reply):
    """Whether the crafted request ran, once its reply shows that it was refused or ran with
    exactly the body its sender framed (anything else fails the case)."""
    if reply.status in REFUSALS:
        assert not case.must_run, f"an ordinary request was refused: {reply}"
        return False
    assert case.framed is not None, f"it ran, though only a refusal is right: {reply}"
    assert reply.echo() == sent_as(path, case.framed, case.method), reply
    return True


def runs_logged(stack, answered_paths, paths):
    """How many times the echo view ran for each of `paths`, counted once the log has the
    line of each of `answered_paths`. The view logs before it answers, and gunicorn's workers
    all log through one pipe, so by then the log has every run that came before too."""
    for path in answered_paths:
        stack.wait_for_output(f" path={path} ")
    output = stack.output()
    return {path: output.count(f" path={path} ") for path in paths}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_request_is_refused_or_runs_once_as_framed_and_the_next_is_untouched(production_stack, case):
    first, second = new_path(), new_path()
    second_body = b"the second request's own body, for " + second.encode()

    replies = exchange(production_stack, case.request(first.encode()) + ordinary_request(second, second_body))

    assert replies, "the connection was closed without a word"
    first_ran = ran_as_framed(case, first, replies[0])
    # The second request is answered as itself, or not at all; nothing else is answered.
    assert [reply.echo() for reply in replies[1:]] in ([], [sent_as(second, second_body)]), replies[1:]
    second_ran = len(replies) == 2
    answered = [path for path, ran in [(first, first_ran), (second, second_ran)] if ran]
    # The smuggled request never ran: here, nor in an earlier case (which would fail this one too).
    runs = runs_logged(production_stack, answered, [first, second, SMUGGLED_PATH])
    assert runs == {first: int(first_ran), second: int(second_ran), SMUGGLED_PATH: 0}


def test_a_chunked_upload_reaches_django_whole(production_stack):
    # 1 MB in 64 KB chunks: bigger than nginx's 16 KB body buffer, so it goes through a
    # temporary file, and well under the 10 MB limit.
    pieces = [uuid.uuid4().bytes * 4096 for _ in range(16)]
    body = b"".join(pieces)
    path = new_path()

    response = requests.post(production_stack.url + path, data=iter(pieces), timeout=ANSWER_TIMEOUT,
                             headers={"X-Forwarded-Proto": "https"})

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.json() == sent_as(path, body)
