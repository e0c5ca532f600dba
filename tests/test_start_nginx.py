"""bin/start-nginx's own behaviour: what it refuses to start with, how it waits for the
app, and what it does when one of its two processes exits. Real nginx and real processes
throughout; where a test needs the app to misbehave, the app is a small Python command."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.stack import REPO, Stack, free_port, parse_logfmt

PYTHON = sys.executable


@pytest.fixture
def app_dir(runtime_dir):
    """A copy of the parts start-nginx uses (bin/ and config/), safe to edit."""
    copy = runtime_dir / "app"
    for part in ("bin", "config"):
        shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("nginx.conf"))
    return copy


def wrapper_env(runtime_dir, **overrides):
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "NGINX_SOCKET_PATH": str(runtime_dir / "nginx.socket"),
        "APP_INITIALIZED_PATH": str(runtime_dir / "app-initialized"),
        **overrides,
    }
    return {name: value for name, value in env.items() if value is not None}


def run_wrapper(app_dir, env, *command, timeout=30):
    # Through this Python explicitly: some tests run it with a PATH that has no python3.
    return subprocess.run([PYTHON, str(app_dir / "bin" / "start-nginx"), *command], cwd=app_dir,
                          env=env, capture_output=True, text=True, timeout=timeout)


def progress(result):
    """The wrapper's key=value progress lines, parsed."""
    return [parse_logfmt(line) for line in result.stdout.splitlines() if line.startswith("wrapper=")]


def test_unset_port_is_a_clear_error(app_dir, runtime_dir):
    result = run_wrapper(app_dir, wrapper_env(runtime_dir, PORT=None), PYTHON, "-c", "pass")

    assert result.returncode == 2
    assert "PORT must be a TCP port number" in result.stderr
    assert not (app_dir / "config" / "nginx.conf").exists()


def test_port_that_is_not_a_number_is_a_clear_error(app_dir, runtime_dir):
    result = run_wrapper(app_dir, wrapper_env(runtime_dir, PORT="http"), PYTHON, "-c", "pass")

    assert result.returncode == 2
    assert "got 'http'" in result.stderr


def test_missing_command_prints_usage(app_dir, runtime_dir):
    result = run_wrapper(app_dir, wrapper_env(runtime_dir))

    assert result.returncode == 2
    assert "usage: bin/start-nginx [-f] COMMAND" in result.stderr


def test_missing_nginx_says_how_to_install_it(app_dir, runtime_dir):
    env = wrapper_env(runtime_dir, NGINX_BIN=None, PATH=str(runtime_dir))

    result = run_wrapper(app_dir, env, PYTHON, "-c", "pass")

    assert result.returncode == 2
    assert "nginx was not found" in result.stderr
    assert "apt-get install nginx" in result.stderr
    assert "brew install nginx" in result.stderr


def test_nginx_bin_that_is_not_executable_is_a_clear_error(app_dir, runtime_dir):
    env = wrapper_env(runtime_dir, NGINX_BIN=str(runtime_dir / "no-such-nginx"))

    result = run_wrapper(app_dir, env, PYTHON, "-c", "pass")

    assert result.returncode == 2
    assert "NGINX_BIN" in result.stderr and "not an executable file" in result.stderr


def test_template_error_names_file_and_line_and_starts_nothing(app_dir, runtime_dir):
    template = app_dir / "config" / "nginx.conf.erb"
    template.write_text(template.read_text().replace("server_tokens off;", "server_tokens <%= ENV['PORT'].upcase %>;"))
    line = next(number for number, text in enumerate(template.read_text().splitlines(), 1) if "upcase" in text)

    result = run_wrapper(app_dir, wrapper_env(runtime_dir), PYTHON, "-c", "open('started', 'w')")

    assert result.returncode == 2
    assert f"config/nginx.conf.erb:{line}:" in result.stderr
    assert not (app_dir / "started").exists()


def test_config_nginx_rejects_fails_with_nginx_own_message_before_the_app_starts(app_dir, runtime_dir):
    template = app_dir / "config" / "nginx.conf.erb"
    template.write_text(template.read_text().replace("server_tokens off;", "server_tokens off;\n    no_such_directive on;"))

    result = run_wrapper(app_dir, wrapper_env(runtime_dir), PYTHON, "-c", "open('started', 'w')")

    assert result.returncode == 2
    assert 'unknown directive "no_such_directive"' in result.stderr
    assert not (app_dir / "started").exists()


def test_app_that_dies_before_it_is_ready_ends_the_wrapper_with_its_status(app_dir, runtime_dir):
    started = time.monotonic()

    result = run_wrapper(app_dir, wrapper_env(runtime_dir), PYTHON, "-c", "raise SystemExit(7)")

    assert result.returncode == 7
    assert time.monotonic() - started < 5
    assert {"at": "exit", "process": "app", "status": "7"}.items() <= progress(result)[-1].items()


def test_app_that_never_becomes_ready_is_given_up_on_with_advice(app_dir, runtime_dir):
    env = wrapper_env(runtime_dir, APP_READY_TIMEOUT="1")

    result = run_wrapper(app_dir, env, PYTHON, "-c", "import time; time.sleep(60)")

    assert result.returncode == 3
    assert any(line.get("reason") == "app-not-ready" and "when_ready" in line["msg"] for line in progress(result))


def test_stale_readiness_file_is_removed_before_start(app_dir, runtime_dir):
    (runtime_dir / "app-initialized").touch()
    env = wrapper_env(runtime_dir, APP_READY_TIMEOUT="1")

    result = run_wrapper(app_dir, env, PYTHON, "-c", "import time; time.sleep(60)")

    assert result.returncode == 3, "a file left by an earlier run must not count as ready"
    assert "nginx-start" not in result.stdout


def test_force_flag_starts_nginx_without_waiting_for_the_app(app_dir, runtime_dir):
    env = wrapper_env(runtime_dir)
    wrapper = subprocess.Popen([PYTHON, str(app_dir / "bin" / "start-nginx"), "-f", PYTHON, "-c",
                                "import time; time.sleep(60)"], cwd=app_dir, env=env,
                               stdout=subprocess.PIPE, text=True)
    try:
        lines = wait_for_progress(wrapper, "nginx-start")
        assert "app-initialized" not in [line.get("at") for line in lines]
    finally:
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(30) == 0


def wait_for_progress(wrapper, at):
    lines = []
    for raw in wrapper.stdout:
        if raw.startswith("wrapper="):
            lines.append(parse_logfmt(raw))
            if lines[-1]["at"] == at:
                return lines
    raise AssertionError(f"the wrapper exited before at={at}: {lines}")


@pytest.mark.parametrize("victim, survivor", [("app", "nginx"), ("nginx", "app")])
def test_when_one_process_exits_the_other_is_stopped_and_the_wrapper_says_which(stack, victim, survivor):
    pids = stack.child_pids()

    os.kill(pids[victim], signal.SIGKILL)

    assert stack.process.wait(10) == 1
    lines = [parse_logfmt(line) for line in stack.stdout_lines() if line.startswith("wrapper=")]
    assert {"at": "exit", "process": victim, "signal": "SIGKILL"}.items() <= lines[-2].items()
    assert {"at": "stopped", "process": survivor}.items() <= lines[-1].items()


def test_app_command_that_does_not_exist_is_a_clear_error(app_dir, runtime_dir):
    result = run_wrapper(app_dir, wrapper_env(runtime_dir), "no-such-app-server", "--bind", "x")

    assert result.returncode == 2
    assert "'no-such-app-server' was not found on PATH" in result.stderr


def test_app_killed_by_a_signal_before_it_is_ready_exits_like_a_shell_would(app_dir, runtime_dir):
    result = run_wrapper(app_dir, wrapper_env(runtime_dir), PYTHON, "-c",
                         "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")

    assert result.returncode == 128 + 9
    assert {"at": "exit", "process": "app", "signal": "SIGKILL"}.items() <= progress(result)[-1].items()
