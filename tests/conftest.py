"""Fixtures that start the real stack; the Stack class itself is in tests/stack.py."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.stack import Stack


@pytest.fixture
def runtime_dir():
    """A temporary directory that nginx's workers can enter.

    pytest's tmp_path sits in a directory only its owner may enter; when the tests run as
    root, nginx's workers run as `nobody` and could not reach the socket there.
    """
    path = Path(tempfile.mkdtemp(prefix="stack-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(runtime_dir):
    """A running stack with a migrated database and collected static files."""
    running = Stack(runtime_dir)
    running.prepare()
    try:
        running.start()
        yield running
    finally:
        running.clean_up()


@pytest.fixture
def start_stack(runtime_dir):
    """Start a stack set up differently from `stack`: start_stack(extra_env, migrate=False).
    Once per test, since the stack lives in runtime_dir."""
    started = []

    def start(extra_env=None, migrate=True):
        running = Stack(runtime_dir, extra_env=extra_env)
        started.append(running)
        running.prepare(migrate=migrate)
        running.start()
        return running

    yield start
    for running in started:
        running.clean_up()
