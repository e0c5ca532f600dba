"""Fast clients and slow attackers, over plain sockets on 127.0.0.1 (standard library only).

Fast clients are ordinary visitors: they ask for a small page and read the answer at once.
Attackers are slow clients, the way phones on a bad network are, only many at once:

    slow readers     ask for a 256 KiB page and read it at 4 KB a second
    slow uploaders   send a 1 MiB body at 1 KB a second
    slowloris        send their headers one line every 5 seconds, and never finish them

Each attacker reconnects whenever the server closes on it or answers, so the pressure stays
constant (a crowd's attackers, being people, first wait as long as a refusal's Retry-After
asks). Attacks run in a separate process (run_attack) that stops by itself after its
duration, so that their work does not slow down the fast clients' measurements in this one.

Through Heroku's router every request carries the client's address as the last
X-Forwarded-For entry. Attackers and fast clients can send one (documentation and benchmark
ranges only: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15), so that the
benchmark can play one abusive address or a crowd of distinct ones.

Loopback is not a real network: its segments are 64 KiB, and Linux then grows a socket's
send buffer to megabytes, so a server could hand a whole page to the kernel and never wait
for a slow reader. Attackers therefore set TCP_MAXSEG to 1460 bytes before connecting, as
on an Ethernet path, which keeps the server's send buffer to tens of kilobytes.
"""

import asyncio
import math
import multiprocessing
import os
import re
import resource
import socket
import threading
import time
from dataclasses import dataclass

HOST = "127.0.0.1"

ETHERNET_MSS = 1460

SLOW_READ_SIZE = 4096
SLOW_READ_INTERVAL = 1.0
# A phone's small receive window: the reader holds at most this much the server has sent.
SLOW_READER_RECEIVE_BUFFER = 4096

UPLOAD_SIZE = 1024 * 1024
UPLOAD_CHUNK = 1024
UPLOAD_INTERVAL = 1.0

SLOWLORIS_INTERVAL = 5.0

# Attackers connect over this many seconds rather than all at once, as a crowd would.
RAMP_UP = 2.0
# After a failed connection, wait this long before trying again.
RECONNECT_DELAY = 0.5

# A fast client that has no answer after this long counts as failed: a visitor who waits
# five seconds for a small page has been hurt, whatever the status code says afterwards.
FAST_TIMEOUT = 5.0


# What the benchmark counts of the answers attackers get: these statuses, any "other", and
# connections the server "closed unanswered" (nginx does that when it runs out of
# worker_connections: it closes connections still waiting for their request, and says so
# only at the `warn` level, below what it logs).
COUNTED_STATUSES = (200, 429, 502, 503, 504)
ANSWER_KINDS = (*COUNTED_STATUSES, "other", "closed unanswered")


def request_head(method, path, extra_headers="", forwarded_for=None):
    return (f"{request_start(method, path, forwarded_for)}{extra_headers}Connection: close\r\n\r\n").encode()


def request_start(method, path, forwarded_for=None):
    """The request line and the first headers; with the client's address as the router
    sends it, when there is one."""
    router_header = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    return f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n{router_header}"


def status_of(response):
    """The status code at the start of a response, or None if there is none."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else None


def fast_client_address(index):
    return f"198.51.100.{10 + index}"


def crowd_address(index):
    """A distinct address for each of up to 65,536 attackers, from 198.18.0.0/15."""
    return f"198.18.{index // 256}.{index % 256}"


# --- Fast clients ---------------------------------------------------------------------------

@dataclass
class Result:
    ok: bool
    seconds: float
    status: int = None  # None when no answer came


def success_rate(results):
    return sum(r.ok for r in results) / len(results)


def percentile_ms(results, fraction):
    """Latency in milliseconds; infinite when that many requests failed."""
    times = sorted(r.seconds if r.ok else math.inf for r in results)
    return times[math.ceil(fraction * len(times)) - 1] * 1000


def fetch(port, path, timeout=FAST_TIMEOUT, forwarded_for=None):
    """One request on a new connection; ok when a complete 200 arrives within `timeout`."""
    start = time.perf_counter()
    deadline = start + timeout
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request_head("GET", path, forwarded_for=forwarded_for))
            status = status_of(read_until_closed(sock, deadline))
    except OSError:  # refused, reset or timed out
        status = None
    return Result(status == 200, time.perf_counter() - start, status)


def read_until_closed(sock, deadline):
    chunks = []
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def paced_clients(port, path, seconds, clients=4, requests_per_second=25, through_router=False):
    """`clients` visitors, each sending `requests_per_second`, for `seconds`. Returns Results.

    Through the router, each visitor has an address of its own in X-Forwarded-For.

    Paced rather than as fast as possible: fast clients stand for a site's normal traffic,
    so their latency shows the attack's effect rather than the machine's limit. A visitor
    whose request was slow sends the next one at once but never makes up for lost time, so
    a server that stalls gets fewer requests, as it would from people giving up.
    """
    results = []
    interval = 1 / requests_per_second
    start = time.perf_counter()
    end = start + seconds

    def visitor(offset, forwarded_for):
        due = start + offset
        while due < end:
            time.sleep(max(0.0, due - time.perf_counter()))
            results.append(fetch(port, path, forwarded_for=forwarded_for))
            due = max(due + interval, time.perf_counter())

    threads = [threading.Thread(target=visitor, args=(i * interval / clients,
                                                      fast_client_address(i) if through_router else None))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class KeepAliveClient:
    """GET requests over one connection, as browsers and Heroku's router send them.

    The connection is reopened whenever the server closes it, which gunicorn's sync workers
    do after every response. Responses must carry a Content-Length (Django's do).
    """

    def __init__(self, port):
        self.port = port
        self.sock = None

    def get(self, path):
        """True for a complete 200; False (and a new connection next time) for anything else."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection((HOST, self.port), timeout=FAST_TIMEOUT)
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            head, body = self.read_head()
            length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
            while len(body) < length:
                body += self.receive()
            if re.search(rb"(?im)^connection: *close", head):
                self.close()
            return head.split(b" ", 2)[1] == b"200"
        except (OSError, AttributeError):  # a dropped connection, or no Content-Length
            self.close()
            return False

    def read_head(self):
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.receive()
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    def receive(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        return chunk

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _count_requests(port, path, seconds, counter):
    client = KeepAliveClient(port)
    end = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < end:
        done += client.get(path)
    client.close()
    with counter.get_lock():
        counter.value += done


def requests_per_second(port, path, seconds=3.0, processes=4):
    """Successful requests per second, with `processes` clients each sending back to back.

    Separate processes, not threads, so the client side is not held back by Python's GIL.
    """
    counter = multiprocessing.Value("i", 0)
    workers = [multiprocessing.Process(target=_count_requests, args=(port, path, seconds, counter))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + FAST_TIMEOUT + 5)
    return counter.value / seconds


# --- Attackers ------------------------------------------------------------------------------

async def open_slow_connection(port, receive_buffer=None):
    """A non-blocking socket connected the way a client on a real network would be."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, ETHERNET_MSS)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


async def slow_reader(loop, sock, forwarded_for, statuses):
    await loop.sock_sendall(sock, request_head("GET", "/bench/large/", forwarded_for=forwarded_for))
    first = await loop.sock_recv(sock, SLOW_READ_SIZE)
    count_status(statuses, first)
    while await loop.sock_recv(sock, SLOW_READ_SIZE):
        await asyncio.sleep(SLOW_READ_INTERVAL)
    return first


async def slow_uploader(loop, sock, forwarded_for, statuses):
    headers = f"Content-Type: application/octet-stream\r\nContent-Length: {UPLOAD_SIZE}\r\n"
    await loop.sock_sendall(sock, request_head("POST", "/bench/upload/", headers, forwarded_for))
    for _ in range(UPLOAD_SIZE // UPLOAD_CHUNK):
        # A server that answers before the body is complete (429, 503) has refused it:
        # stop sending, as browsers do, and start again.
        if answered_early(sock):
            break
        await loop.sock_sendall(sock, b"x" * UPLOAD_CHUNK)
        await asyncio.sleep(UPLOAD_INTERVAL)
    first = await loop.sock_recv(sock, 65536)
    count_status(statuses, first)
    while await loop.sock_recv(sock, 65536):
        pass
    return first


def answered_early(sock):
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def retry_after(response):
    """Seconds a refusal (429, 503) asks the client to wait, from its Retry-After header."""
    if status_of(response) not in (429, 503):
        return 0
    found = re.search(rb"(?im)^retry-after: *(\d+)", response)
    return int(found.group(1)) if found else 0


def count_status(statuses, response):
    status = status_of(response)
    kind = status if status in COUNTED_STATUSES else "closed unanswered" if response == b"" else "other"
    index = ANSWER_KINDS.index(kind)
    with statuses.get_lock():
        statuses[index] += 1


async def slowloris(loop, sock, forwarded_for, statuses):
    # The request line and one header, then a header line now and then, never the blank
    # line that would end the headers.
    await loop.sock_sendall(sock, request_start("GET", "/bench/small/", forwarded_for).encode())
    while True:
        await asyncio.sleep(SLOWLORIS_INTERVAL)
        await loop.sock_sendall(sock, b"X-Still-There: yes\r\n")


ATTACKS = {"slow readers": slow_reader, "slow uploaders": slow_uploader, "slowloris": slowloris}


async def attacker(kind, port, start_delay, connected, forwarded_for, statuses, polite):
    """One attacker: connect, attack, and start again whenever the server lets go.

    A polite one, like a person in a crowd, waits as long as a refusal's Retry-After says
    before trying again; an abusive one tries again at once.
    """
    loop = asyncio.get_running_loop()
    receive_buffer = SLOW_READER_RECEIVE_BUFFER if kind == "slow readers" else None
    await asyncio.sleep(start_delay)
    while True:
        try:
            sock = await open_slow_connection(port, receive_buffer)
        except OSError:
            await asyncio.sleep(RECONNECT_DELAY)
            continue
        connected[kind] += 1
        response = b""
        try:
            response = await ATTACKS[kind](loop, sock, forwarded_for, statuses)
        except OSError:  # the server reset the connection or timed us out
            pass
        finally:
            connected[kind] -= 1
            sock.close()
        if polite:
            await asyncio.sleep(retry_after(response))


def attacker_address(addresses, index):
    """None: no X-Forwarded-For, as a client reaching nginx directly; else the abusive
    address for everyone, or with "crowd" an address of its own for each attacker."""
    if addresses == "crowd":
        return crowd_address(index)
    return addresses


async def attack(plan, port, seconds, connected_report, addresses, statuses):
    connected = dict.fromkeys(plan, 0)
    tasks = []
    index = 0
    for kind, count in plan.items():
        for i in range(count):
            forwarded_for = attacker_address(addresses, index)
            index += 1
            tasks.append(asyncio.create_task(
                attacker(kind, port, RAMP_UP * i / count, connected, forwarded_for, statuses,
                         polite=addresses == "crowd")))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
        connected_report.value = sum(connected.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_attack(plan, port, seconds, connected_report, addresses, statuses):
    """Process body: run the attackers in `plan` ({kind: count}) for `seconds`, then stop."""
    # At the lowest CPU priority Linux has: on Heroku attackers are somewhere else on the
    # internet and cost the dyno no CPU, while here they share its two cores with the stack
    # they attack. SCHED_IDLE runs only on a core nothing else wants, and gives way at once
    # when anything else wakes; at nice 19, 10,000 refused slow readers still doubled the
    # fast clients' p99 compared with SCHED_IDLE (11 ms against 5.4 ms, measured here).
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one descriptor per attacker
    asyncio.run(attack(plan, port, seconds, connected_report, addresses, statuses))


class Attack:
    """Attackers in a process of their own: `with Attack({"slowloris": 200}, port, 30):`

    `addresses`: None (no X-Forwarded-For), one address for all, or "crowd" for a distinct
    address each (a crowd of people, who wait as long as Retry-After asks). An empty plan is
    no attack at all, so that "no attack" reads like any other scenario. `statuses()` counts
    the answers attackers got, by status.
    """

    def __init__(self, plan, port, seconds, addresses=None):
        self.plan = plan
        self.connected = multiprocessing.Value("i", 0)
        self.status_counts = multiprocessing.Array("i", len(ANSWER_KINDS))
        self.process = multiprocessing.Process(
            target=run_attack, args=(plan, port, seconds, self.connected, addresses, self.status_counts))

    def statuses(self):
        """{status: count} of the answers attackers have had so far (see ANSWER_KINDS)."""
        return dict(zip(ANSWER_KINDS, self.status_counts[:]))

    def __enter__(self):
        if self.plan:
            self.process.start()
        return self

    def __exit__(self, *exc_info):
        if not self.plan:
            return
        # It stops by itself after `seconds`; this only ends it early if the block finished first.
        self.process.terminate()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
