"""IPv6: nginx accepts on IPv4 and IPv6 where the host has IPv6, and boots IPv4-only where it
has none. bin/start-nginx decides (choose_ipv6); NGINX_LISTEN_IPV6=1 or 0 forces either way."""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.stack import REPO, WEB_COMMAND, Stack, parse_logfmt


def host_has_ipv6():
    """The wrapper's own probe, written again on purpose: a test must not ask the code it
    tests whether to run."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not host_has_ipv6(), reason="this host has no IPv6")


@needs_ipv6
def test_the_stack_answers_on_ipv4_and_on_ipv6(stack):
    request_id = str(uuid.uuid4())

    over_ipv4 = requests.get(f"http://127.0.0.1:{stack.port}/", timeout=10)
    over_ipv6 = requests.get(f"http://[::1]:{stack.port}/", headers={"X-Request-ID": request_id}, timeout=10)

    assert over_ipv4.status_code == 200
    assert over_ipv6.status_code == 200
    # The access line (which the strict logfmt parser read) has the IPv6 client's address.
    assert stack.wait_for_access_line(request_id)["remote_addr"] == "::1"


def test_ipv6_forced_off_still_boots_and_refuses_ipv6(start_stack):
    stack = start_stack({"NGINX_LISTEN_IPV6": "0"})

    assert stack.get("/").status_code == 200
    if host_has_ipv6():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", stack.port), timeout=10)


def test_a_value_other_than_0_or_1_is_a_clear_error(runtime_dir):
    env = {**os.environ, "PORT": "5000", "NGINX_TMP_DIR": str(runtime_dir), "NGINX_LISTEN_IPV6": "yes"}

    result = subprocess.run([REPO / "bin" / "start-nginx", "--check"], env=env, capture_output=True, text=True)

    assert result.returncode == 2
    assert "NGINX_LISTEN_IPV6 must be 1" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_a_host_without_ipv6_still_boots_on_ipv4(runtime_dir):
    # A network namespace of its own whose loopback has IPv6 switched off, as in a
    # container on a host without IPv6. The test reaches it from inside, with nsenter.
    stack = Stack(runtime_dir)
    stack.prepare()
    without_ipv6 = ("PATH=$PATH:/usr/sbin:/sbin; ip link set lo up && "
                    "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && exec \"$@\"")
    stack.process = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", without_ipv6, "sh", *WEB_COMMAND], cwd=REPO, env=stack.env,
        start_new_session=True, stdout=stack.stdout_path.open("ab"), stderr=stack.stderr_path.open("ab"),
    )
    try:
        status = status_from_inside(stack)
        stack.wait_for_workers()
        stack.stop_and_check()
    finally:
        stack.clean_up()

    detected = [parse_logfmt(line) for line in stack.stdout_lines() if "at=ipv6-detected" in line]
    assert detected and detected[0]["listen_ipv6"] == "0", stack.output()
    assert status == "200", stack.output()


def status_from_inside(stack):
    """GET / on 127.0.0.1 from inside the stack's network namespace; its status, once it answers."""
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).status)"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and stack.process.poll() is None:
        inside = subprocess.run(["nsenter", f"--target={stack.process.pid}", "--net", "--",
                                 sys.executable, "-c", fetch, f"http://127.0.0.1:{stack.port}/"],
                                capture_output=True, text=True)
        if inside.returncode == 0:
            return inside.stdout.strip()
        time.sleep(0.2)
    raise AssertionError(f"nothing answered inside the namespace:\n{stack.output()}")
