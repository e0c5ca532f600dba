"""Slow clients cannot starve fast ones: a short, untimed version of `make bench`.

100 attackers against the stack's 2 gunicorn workers. Without nginx in front, 4 of them
would be enough to leave no worker for anyone else (tests/bench/results.md shows it).
"""

import time

from tests.bench import load

ATTACKERS = {"slow readers": 50, "slow uploaders": 50}
# Generous: the attackers connect over load.RAMP_UP seconds.
CONNECT_TIMEOUT = 20


def test_fast_requests_succeed_while_slow_readers_and_uploaders_hold_connections(start_stack):
    # The benchmark's pages (a large one, an upload) added to the app.
    stack = start_stack({"DJANGO_SETTINGS_MODULE": "tests.bench.settings"})
    with load.Attack(ATTACKERS, stack.port, seconds=20) as attack:
        wait_until_connected(attack, sum(ATTACKERS.values()))
        results = [load.fetch(stack.port, "/bench/small/", timeout=10) for _ in range(20)]
        attackers_connected = attack.connected.value

    assert attackers_connected == sum(ATTACKERS.values()), "the attack should still be under way"
    assert all(result.ok for result in results)


def wait_until_connected(attack, count):
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while attack.connected.value < count:
        assert time.monotonic() < deadline, f"only {attack.connected.value} of {count} attackers connected"
        time.sleep(0.05)
