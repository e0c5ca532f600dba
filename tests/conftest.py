"""Fixtures that start the real stack; the Stack class itself is in tests/stack.py."""

import contextlib
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.stack import PRODUCTION_ENV, Stack


@contextlib.contextmanager
def temporary_runtime_dir():
    """A temporary directory that nginx's workers can enter.

    pytest's tmp_path sits in a directory only its owner may enter; when the tests run as
    root, nginx's workers run as the owner of the app directory (bin/start-nginx's
    choose_nginx_user), who may be someone else and could not reach the socket there.
    """
    path = Path(tempfile.mkdtemp(prefix="stack-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running_stack(runtime_dir, extra_env=None):
    """A started stack with a migrated database and collected static files, always cleaned up."""
    stack = Stack(runtime_dir, extra_env=extra_env)
    stack.prepare()
    try:
        stack.start()
        yield stack
    finally:
        stack.clean_up()


@pytest.fixture
def runtime_dir():
    with temporary_runtime_dir() as path:
        yield path


@pytest.fixture
def stack(runtime_dir):
    """A running stack, as `make run` starts it."""
    with running_stack(runtime_dir) as running:
        yield running


@pytest.fixture(scope="module")
def production_stack():
    """One running stack in production mode (see PRODUCTION_ENV), shared by a module's tests.

    nginx gives up on gunicorn after 5 s instead of 20 s, so that the timeout test is quick.
    """
    env = {**PRODUCTION_ENV, "NGINX_PROXY_READ_TIMEOUT": "5s"}
    with temporary_runtime_dir() as path, running_stack(path, env) as running:
        yield running


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
