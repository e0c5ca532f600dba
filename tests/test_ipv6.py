"""IPv6: nginx accepts on IPv4 and IPv6 where the host has IPv6, and boots IPv4-only where it
has none. bin/start-nginx decides (choose_ipv6); NGINX_LISTEN_IPV6=1 or 0 forces either way."""

import os
import shutil
import socket
import subprocess
import uuid

import pytest
import requests

from tests.stack import REPO, parse_logfmt


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


def test_ipv6_forced_off_still_boots(start_stack):
    stack = start_stack({"NGINX_LISTEN_IPV6": "0"})

    assert stack.get("/").status_code == 200


@needs_ipv6
def test_ipv6_forced_off_refuses_ipv6(start_stack):
    stack = start_stack({"NGINX_LISTEN_IPV6": "0"})

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("::1", stack.port), timeout=10)


def test_a_value_other_than_0_or_1_is_a_clear_error(runtime_dir):
    env = {**os.environ, "PORT": "5000", "NGINX_TMP_DIR": str(runtime_dir), "NGINX_LISTEN_IPV6": "yes"}

    result = subprocess.run([REPO / "bin" / "start-nginx", "--check"], env=env, capture_output=True, text=True)

    assert result.returncode == 2
    assert "NGINX_LISTEN_IPV6 must be 1" in result.stderr


@pytest.fixture
def without_ipv6(runtime_dir):
    """LD_PRELOAD for a web process that runs as on a host with no IPv6 at all (tests/no_ipv6.c)."""
    compiler = shutil.which("cc")
    if not compiler:
        if os.environ.get("CI"):
            pytest.fail("CI needs a C compiler (it builds bin/sigterm_as_sigquit.so too)")
        pytest.skip("building tests/no_ipv6.c needs a C compiler (cc)")
    library = runtime_dir / "no_ipv6.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-Wall", "-Wextra", "-o", library, REPO / "tests" / "no_ipv6.c", "-ldl"], check=True)
    return {"LD_PRELOAD": str(library)}


def test_a_host_without_ipv6_still_boots_on_ipv4(start_stack, without_ipv6):
    stack = start_stack(without_ipv6)

    assert stack.get("/").status_code == 200
    detected = [parse_logfmt(line) for line in stack.stdout_lines() if "at=ipv6-detected" in line]
    assert [line["listen_ipv6"] for line in detected] == ["0"], stack.output()
