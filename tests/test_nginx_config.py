"""config/nginx.conf.erb itself: Ruby's erb (what Heroku's nginx buildpack runs) and
bin/erb.py render it to the same bytes, and nginx accepts the result."""

import os
import re
import shutil
import subprocess

import pytest

import erb
from tests.stack import REPO, gunicorn_settings

TEMPLATE = REPO / "config" / "nginx.conf.erb"

ENVIRONMENTS = {
    "heroku-defaults": {"PORT": "31337"},
    "all-overrides": {
        "PORT": "8080",
        "NGINX_WORKERS": "4",
        "NGINX_WORKER_CONNECTIONS": "2048",
        "NGINX_ACCESS_LOG_PATH": "logs/nginx/access.log",
        "NGINX_ERROR_LOG_PATH": "logs/nginx/error.log",
        "NGINX_SOCKET_PATH": "/tmp/other.socket",
        "NGINX_TMP_DIR": "/tmp/elsewhere",
        "NGINX_PROXY_READ_TIMEOUT": "3s",
    },
    "empty-values": {"PORT": "5000", "NGINX_WORKERS": ""},
}


def ruby_erb(env):
    if not shutil.which("erb"):
        if os.environ.get("CI"):
            pytest.fail("Ruby's erb is required in CI")
        pytest.skip("Ruby's erb is not installed")
    result = subprocess.run(["erb", str(TEMPLATE)], env={"PATH": os.environ["PATH"], **env},
                            capture_output=True, check=True)
    return result.stdout.decode()


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_template_renders_the_same_under_ruby_erb_and_ours(env_name):
    env = ENVIRONMENTS[env_name]

    ours = erb.render(TEMPLATE.read_text(), "config/nginx.conf.erb", env)

    assert ours == ruby_erb(env)


def test_rendered_config_is_accepted_by_nginx(runtime_dir):
    env = {"PORT": "31337", "NGINX_TMP_DIR": str(runtime_dir)}
    config = REPO / "config" / "test-nginx.conf"  # beside mime.types, which it includes
    config.write_text(erb.render(TEMPLATE.read_text(), "config/nginx.conf.erb", env))
    try:
        result = subprocess.run([shutil.which("nginx", path=f"{os.environ['PATH']}:/usr/sbin"), "-t",
                                 "-p", f"{REPO}/", "-c", str(config)], capture_output=True, text=True)
    finally:
        config.unlink()

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_socket_default_matches_gunicorn_config():
    rendered = erb.render(TEMPLATE.read_text(), "config/nginx.conf.erb", {"PORT": "1"})
    gunicorn_config = (REPO / "config" / "gunicorn.conf.py").read_text()

    assert "server unix:/tmp/nginx.socket " in rendered
    assert 'os.environ.get("NGINX_SOCKET_PATH", "/tmp/nginx.socket")' in gunicorn_config


def test_nginx_gives_up_on_gunicorn_before_gunicorn_and_the_router_do():
    # Heroku's router answers H12 after 30 s; gunicorn kills a worker after its `timeout`.
    # nginx must give up first, so that the client gets its clean 504 (tests/test_faults.py).
    rendered = erb.render(TEMPLATE.read_text(), "config/nginx.conf.erb", {"PORT": "1"})
    nginx_timeout = int(re.search(r"^\s*proxy_read_timeout (\d+)s;", rendered, re.MULTILINE).group(1))

    assert nginx_timeout < gunicorn_settings()["timeout"] < 30


def test_x_forwarded_proto_is_never_made_from_nginx_scheme():
    # Inside the dyno nginx only sees plain http, so $scheme would tell Django that every
    # request is insecure and it would redirect forever. The router's header passes through.
    assert "$scheme" not in TEMPLATE.read_text()
