"""The variables bin/start-nginx works out for config/nginx.conf.erb (NGINX_USER,
NGINX_LISTEN_IPV6, NGINX_STATIC_HSTS): Ruby's erb renders the template the same with them, and
without them, as under the nginx buildpack's own script, the config is what it was before."""

import pytest

import erb
from tests.test_nginx_config import TEMPLATE, ruby_erb

SET_BY_START_NGINX = {
    "as-root-with-ipv6": {"PORT": "5000", "NGINX_USER": "app staff", "NGINX_LISTEN_IPV6": "1",
                          "NGINX_STATIC_HSTS": "max-age=31536000; includeSubDomains; preload"},
    "no-ipv6-no-hsts": {"PORT": "5000", "NGINX_LISTEN_IPV6": "0", "NGINX_STATIC_HSTS": ""},
}


def ours(env):
    return erb.render(TEMPLATE.read_text(), "config/nginx.conf.erb", env)


@pytest.mark.parametrize("env_name", SET_BY_START_NGINX)
def test_ruby_erb_renders_the_same(env_name):
    env = SET_BY_START_NGINX[env_name]

    assert ours(env) == ruby_erb(env)


def test_with_every_variable_set_the_config_has_them():
    rendered = ours(SET_BY_START_NGINX["as-root-with-ipv6"])

    assert "\nuser app staff;\n" in rendered
    assert "listen [::]:5000;" in rendered
    assert '"max-age=31536000; includeSubDomains; preload";' in rendered


def test_under_the_buildpacks_script_nothing_is_added():
    rendered = ours({"PORT": "5000"})

    assert "\nuser " not in rendered
    assert "[::]" not in rendered
    assert '(,|$)" "";' in rendered  # no HSTS value: nginx sends no such header
