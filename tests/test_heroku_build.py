"""What happens on Heroku, simulated step by step in a copy of the app.

The nginx buildpack's compile puts bin/nginx in place and copies its own start script over
bin/start-nginx; the Python buildpack then runs bin/post_compile. Booting then runs the
Procfile's web command. The buildpacks' order decides whose start script the dyno runs, so
both orders are checked. The stand-in for the buildpack's script below is ours, written to
the behaviour DESIGN.md describes (erb, fixed paths, no timeout, exit 1 when a child exits),
except that it reads the readiness path from APP_INITIALIZED_PATH so tests can run side by
side.
"""

import os
import shutil
import signal
import subprocess

import pytest

from tests.stack import REPO, copy_of_repository, system_nginx

BUILDPACK_START_SCRIPT = r"""#!/usr/bin/env bash
# Stand-in for the nginx buildpack's bin/start-nginx (see tests/test_heroku_build.py).
erb config/nginx.conf.erb > config/nginx.conf
mkdir -p logs/nginx && touch logs/nginx/access.log logs/nginx/error.log
tail -qF -n 0 logs/nginx/*.log &
"$@" &
while [[ ! -f "$APP_INITIALIZED_PATH" ]]; do sleep 1; done
bin/nginx -p . -c config/nginx.conf &
wait -n
echo "buildpack=nginx at=exit"
exit 1
"""


def nginx_buildpack_compile(build_dir):
    shutil.copy(system_nginx(), build_dir / "bin" / "nginx")
    start_script = build_dir / "bin" / "start-nginx"
    start_script.write_text(BUILDPACK_START_SCRIPT)
    start_script.chmod(0o755)


def python_buildpack_post_compile(build_dir):
    result = subprocess.run(["bin/post_compile"], cwd=build_dir, capture_output=True, text=True, check=True)
    return result.stdout + result.stderr


@pytest.fixture
def build_dir(runtime_dir):
    """A fresh checkout of the app, as Heroku's build starts from."""
    return copy_of_repository(runtime_dir / "build")


# What a dyno has: DYNO set, and with it the production settings and a secret key.
DYNO_ENV = {"DYNO": "web.1", "DJANGO_SECRET_KEY": "x"}


def test_buildpacks_nginx_then_python_run_this_apps_start_script(start_stack, build_dir):
    nginx_buildpack_compile(build_dir)

    build_output = python_buildpack_post_compile(build_dir)

    assert (build_dir / "bin" / "start-nginx").read_bytes() == (REPO / "bin" / "start-nginx").read_bytes()
    assert (build_dir / "bin" / "sigterm_as_sigquit.so").is_file()
    assert "bin/nginx is missing" not in build_output
    stack = start_stack(DYNO_ENV, app_dir=build_dir)
    response = stack.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    output = stack.output()
    assert f"cmd=\"{build_dir}/bin/nginx " in output, "nginx should be the buildpack's bin/nginx"
    # The one warning expected: this dyno's database is the stack's SQLite file.
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert all("DATABASE_URL is a SQLite file" in line for line in warnings), warnings


def test_buildpacks_in_the_other_order_still_serve_and_say_what_is_lost(start_stack, build_dir):
    if not shutil.which("erb"):
        if os.environ.get("CI"):
            pytest.fail("Ruby's erb is required in CI")
        pytest.skip("the buildpack's start script needs Ruby's erb")

    build_output = python_buildpack_post_compile(build_dir)
    nginx_buildpack_compile(build_dir)

    assert "bin/nginx is missing: the nginx buildpack has not run before the Python one" in build_output
    stack = start_stack(DYNO_ENV, app_dir=build_dir)
    assert stack.get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
    assert "bin/start-nginx is the nginx buildpack's, not this app's" in stack.output()
    # Stopped as Heroku stops a dyno: the buildpack's script has no SIGTERM handler of its
    # own, so it dies of it, and must leave nothing behind all the same.
    stack.signal_every_process(signal.SIGTERM)
    assert stack.wait_for_exit() == -signal.SIGTERM
    assert stack.leftover_processes() == []
