"""A visitor's first visit, in a real browser, through the whole stack.

Headless Chromium (tests/browser.py) loads the demo's pages and the admin through nginx and
gunicorn as `make run` starts them (the demo's are skipped once it is deleted, as in
`make test-fork`), and the test fails on anything a visitor would meet:
an error in the console, a stylesheet, image or favicon answered with anything but 2xx or
not at all, a stylesheet that the browser fetched but did not apply (a wrong content type
under nosniff, say). Where no Chromium is installed the tests are skipped, saying how to
install it; in CI (CI set) they fail instead, so that CI never passes without them.
"""

import os
import secrets
import subprocess
import sys
import time

import pytest
from django.apps import apps
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import chromium, why_no_chromium
from tests.conftest import running_stack, temporary_runtime_dir

# What a visitor meets is the project's own pages, not the tests' (tests/settings.py).
PROJECT_SETTINGS = {"DJANGO_SETTINGS_MODULE": "myproject.settings"}
# Deleting the demo (docs/development.md) leaves the admin and the favicon to test.
needs_the_demo = pytest.mark.skipif(not apps.is_installed("myproject.demo"), reason="the demo app has been deleted")

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = secrets.token_urlsafe(16)
LOGIN_TIMEOUT = 10


@pytest.fixture(scope="module")
def site():
    """One stack for the module's tests, as `make run` starts it, with a superuser."""
    if reason := why_no_chromium():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    with temporary_runtime_dir() as path, running_stack(path, extra_env=PROJECT_SETTINGS) as stack:
        create_superuser(stack)
        yield stack


@pytest.fixture
def browser():
    """A fresh browser for each test: nothing cached, no cookie."""
    with chromium() as fresh:
        yield fresh


def create_superuser(stack):
    subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", ADMIN_USERNAME,
                    "--email", "admin@example.com"],
                   cwd=stack.app_dir, env={**stack.env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}, check=True)


def wait_for_request_to(stack, path, timeout=5):
    """nginx's access line for the first request to `path`, once nginx has logged it."""
    deadline = time.monotonic() + timeout
    while not (lines := [fields for fields in stack.access_lines() if fields["path"] == path]):
        assert time.monotonic() < deadline, f"no request to {path} within {timeout}s:\n{stack.output()}"
        time.sleep(0.05)
    return lines[0]


@needs_the_demo
@pytest.mark.parametrize("path", ["/", "/visits/"])
def test_a_demo_page_loads_whole_with_its_styles(site, browser, path):
    browser.visit(site.url + path)

    assert browser.problems() == []
    # Set by the demo's stylesheet (myproject/demo/static/demo/style.css); a header is a
    # block without it.
    assert browser.computed_style("header", "display") == "flex"


def test_the_favicon_comes_from_nginx_and_no_worker_sees_it(site, browser):
    # A page every project has, the demo or not: the browser asks for the favicon on it.
    browser.visit(site.url + "/admin/login/")

    favicon = wait_for_request_to(site, "/favicon.ico")
    assert favicon["status"] == "200"
    # nginx logs no upstream time for a request it answered itself.
    assert favicon["upstream_connect_time"] == "-"
    assert browser.problems() == []


def test_an_admin_logs_in_and_every_admin_page_loads_whole(site, browser):
    browser.visit(site.url + "/admin/login/")
    assert browser.computed_style("#header", "display") == "flex"  # the admin's own stylesheet

    browser.driver.find_element(By.ID, "id_username").send_keys(ADMIN_USERNAME)
    browser.driver.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
    browser.driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    WebDriverWait(browser.driver, LOGIN_TIMEOUT).until(expected_conditions.url_to_be(site.url + "/admin/"))
    assert "Site administration" in browser.driver.page_source
    assert browser.computed_style("#header", "display") == "flex"
    assert browser.problems() == []
