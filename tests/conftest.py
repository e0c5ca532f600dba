"""Fixtures that start the real stack; the Stack class itself is in tests/stack.py.

Every stack a test starts goes through running_stack(): built (static files collected, the
database migrated), started, and at the end stopped the way `heroku local` stops it, checked
to have left no process behind, workers included, and cleaned up whatever happened.
"""

import contextlib
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.stack import PRODUCTION_ENV, REPO, WEB_COMMAND, Stack


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
def running(stack, *, migrate=True, stdout=None):
    """Build and start `stack`, always clean it up; stop and check it when the block ends.

    The check (Stack.stop_and_check) fails the test if the stack does not stop cleanly or
    leaves any process running. stdout is where the web process prints (a file in the stack's
    directory unless given: a socket or a pipe, say).
    """
    try:
        stack.prepare(migrate=migrate)
        stack.start(stdout=stdout)
        yield stack
        stack.stop_and_check()
    finally:
        stack.clean_up()


def running_stack(runtime_dir, *, app_dir=REPO, extra_env=None, migrate=True, command=WEB_COMMAND, stdout=None):
    """A started stack, as running() starts it.

    app_dir is the app to run: this repository, or a copy of it (copy_of_repository() in
    tests/stack.py) that a test changes first. runtime_dir holds the stack's socket, logs and
    database. command is the web process (the Procfile's, unless a test needs another).
    """
    stack = Stack(runtime_dir, app_dir=app_dir, extra_env=extra_env, command=command)
    return running(stack, migrate=migrate, stdout=stdout)


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
    with temporary_runtime_dir() as path, running_stack(path, extra_env=env) as running:
        yield running


@pytest.fixture
def start_stack(runtime_dir):
    """Start a stack set up differently from `stack`:

        start_stack({"GUNICORN_ACCESS_LOG": "1"}, migrate=False)
        start_stack(app_dir=copy_of_repository(runtime_dir / "app"))
        start_stack(command=["bin/start-nginx", "-f", "sh", "-c", "..."], stdout=a_socket)

    Each one gets a directory of its own in runtime_dir, so a test may start several.
    """
    with contextlib.ExitStack() as stacks:
        def start(extra_env=None, migrate=True, *, app_dir=REPO, command=WEB_COMMAND, stdout=None):
            directory = Path(tempfile.mkdtemp(prefix="stack-", dir=runtime_dir))
            directory.chmod(0o755)
            return stacks.enter_context(running_stack(directory, app_dir=app_dir, extra_env=extra_env,
                                                      migrate=migrate, command=command, stdout=stdout))

        yield start
