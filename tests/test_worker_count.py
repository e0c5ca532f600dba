"""How many gunicorn workers config/gunicorn.conf.py asks for.

WEB_CONCURRENCY wins. Without it (Fir's Python CNB sets none), the count follows the rule the
classic Python buildpack applies at dyno boot: one worker per 256 MB of the container's
memory limit, at most 2 per CPU core plus 1; where no limit can be read, 2.
"""

import os

import pytest

from tests.stack import gunicorn_settings


@pytest.fixture
def settings(monkeypatch):
    def read(**environment):
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return gunicorn_settings()

    return read


def test_web_concurrency_wins(settings):
    config = settings(WEB_CONCURRENCY="7")

    assert (config["workers"], config["WORKERS_CHOSEN_FROM"]) == (7, "WEB_CONCURRENCY")


@pytest.mark.parametrize("dyno, memory_mb, cores, workers", [
    ("Standard-1X", 512, 8, 2),
    ("Standard-2X", 1024, 8, 4),
    ("Performance-M", 2560, 2, 5),
    ("Performance-L", 14336, 8, 17),
    ("a container under 256 MB", 200, 4, 1),
])
def test_without_web_concurrency_the_classic_buildpacks_count_per_dyno_size(settings, dyno, memory_mb, cores, workers):
    # The figures the classic buildpack's own script gives for each size.
    assert settings()["workers_for"](memory_mb, cores) == workers


@pytest.mark.parametrize("written, limit_mb", [
    ("536870912\n", 512),  # cgroup v2 or v1, a 512 MB limit
    ("max\n", None),  # cgroup v2 without a limit
    ("9223372036854771712\n", None),  # cgroup v1 without a limit
])
def test_the_memory_limit_is_read_from_the_cgroup(settings, tmp_path, written, limit_mb):
    limit_file = tmp_path / "memory.max"
    limit_file.write_text(written)

    assert settings()["memory_limit_mb"]([tmp_path / "absent", limit_file]) == limit_mb


def test_without_web_concurrency_the_choice_says_what_decided_it(settings):
    config = settings()
    memory_mb = config["memory_limit_mb"]()

    if memory_mb is None:
        assert (config["workers"], config["WORKERS_CHOSEN_FROM"]) == (2, "no memory limit found")
    else:
        cores = len(os.sched_getaffinity(0))
        assert config["workers"] == config["workers_for"](memory_mb, cores)
        assert config["WORKERS_CHOSEN_FROM"] == f"{memory_mb} MB of memory and {cores} CPU cores"
