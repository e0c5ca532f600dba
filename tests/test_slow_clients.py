"""Slow clients cannot starve fast ones: a short, untimed version of `make bench`.

100 attackers against the stack's 2 gunicorn workers. Without nginx in front, 4 of them
would be enough to leave no worker for anyone else (tests/bench/results.md shows it).
"""

import time

import pytest

from tests.bench import load
from tests.stack import Stack

ATTACKERS = {"slow readers": 50, "slow uploaders": 50}


@pytest.fixture
def bench_stack(runtime_dir):
    """The stack, with the benchmark's pages (a large one, an upload) added to the app."""
    running = Stack(runtime_dir, extra_env={"DJANGO_SETTINGS_MODULE": "tests.bench.settings"})
    running.prepare()
    try:
        running.start()
        yield running
    finally:
        running.clean_up()


def test_fast_requests_succeed_while_slow_readers_and_uploaders_hold_connections(bench_stack):
    with load.Attack(ATTACKERS, bench_stack.port, seconds=20) as attack:
        time.sleep(load.RAMP_UP + 1)
        results = [load.fetch(bench_stack.port, "/bench/small/", timeout=10) for _ in range(20)]
        attackers_connected = attack.connected.value

    assert attackers_connected == sum(ATTACKERS.values()), "the attack should be under way"
    assert all(result.ok for result in results)
