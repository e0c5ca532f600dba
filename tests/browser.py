"""Headless Chromium for the tests, driven through Selenium: a page as a visitor's browser gets it.

tests/test_browser.py loads pages through the real stack with it. Run as a script, it starts
a stack and saves a screenshot of the demo's home page, the one in docs/:

    python -m tests.browser docs/demo-home.png

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`, which
`make test` runs as root through bin/install-chromium): the two packages are always the same
version, and nothing is downloaded. Selenium Manager, which would look for a driver online,
is never asked, because the driver's path is given.
"""

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

# Headless, and without Chromium's sandbox, which will not start as root (CI, containers). The
# rest keep it quiet on a machine without internet: no GPU, no first-run screens, and none of
# the background connections (updates, sync, QUIC) that would only fail. A fresh profile each
# time, so that no cache or cookie carries over from one run to the next.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW_SIZE = (900, 560)
PAGE_LOAD_TIMEOUT = 30

# Answers that are not failures: 304 is a cached copy the browser revalidated.
GOOD_STATUSES = set(range(200, 300)) | {304}


def why_no_chromium():
    """Why no browser can be started here, or None when one can."""
    missing = [name for name, path in [("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)] if not path]
    if missing:
        return (f"no {' or '.join(missing)} here: `make test` installs Chromium as root, "
                "else `sudo apt-get install chromium chromium-driver`")
    return None


@contextlib.contextmanager
def chromium():
    """A Browser, with a fresh profile; quit and removed when the block ends."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}", "--window-size={},{}".format(*WINDOW_SIZE)]:
        options.add_argument(flag)
    # The console, and the network events of every request (the "performance" log).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
            yield Browser(driver)
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    """One Chromium window, and what went wrong in it."""

    def __init__(self, driver):
        self.driver = driver
        self.site_requests = {}  # the network's request id: the URL, for each request of a site's page

    def visit(self, url):
        """Load `url` and return once the page and everything in it has loaded."""
        self.driver.get(url)

    def computed_style(self, selector, property_name):
        """The value the browser computed for a CSS property of the first element `selector`
        matches: what the page's stylesheets made of it, or the browser's default."""
        return self.driver.execute_script(
            "return getComputedStyle(document.querySelector(arguments[0])).getPropertyValue(arguments[1])",
            selector, property_name)

    def problems(self):
        """Everything that went wrong since the last call: console errors, answers with a status
        other than 2xx (for the page or anything in it, the favicon included), and requests
        that got no answer at all. Empty on a page that loaded whole."""
        return self.console_errors() + self.failed_requests()

    def console_errors(self):
        return [f"console: {entry['message']}" for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]

    def failed_requests(self):
        """Requests made by the site's pages that got a bad answer or none. The browser's own
        pages make requests too (its new-tab page fetches from the internet, and fails
        offline); those are left out."""
        failed = []
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            params = event["params"]
            if event["method"] == "Network.requestWillBeSent":
                if params["documentURL"].startswith(("http:", "https:")):
                    self.site_requests[params["requestId"]] = params["request"]["url"]
                continue
            url = self.site_requests.get(params.get("requestId"))
            if url is None:
                continue
            if event["method"] == "Network.responseReceived" and params["response"]["status"] not in GOOD_STATUSES:
                failed.append(f"{params['response']['status']} for {url}")
            elif event["method"] == "Network.loadingFailed" and not params["canceled"]:
                failed.append(f"{params['errorText']} {params.get('blockedReason', '')} for {url}")
        return failed

    def save_screenshot(self, path):
        self.driver.save_screenshot(str(path))


def save_screenshot_of_the_demo(path):
    """Start a stack as `make run` does, and save a PNG of its home page at `path`."""
    from tests.conftest import running_stack, temporary_runtime_dir

    with temporary_runtime_dir() as runtime_dir, running_stack(runtime_dir) as stack, chromium() as browser:
        browser.visit(stack.url + "/")
        problems = browser.problems()
        if problems:
            raise SystemExit("the page did not load whole:\n" + "\n".join(problems))
        browser.save_screenshot(path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.browser PNG_PATH")
    if reason := why_no_chromium():
        raise SystemExit(reason)
    save_screenshot_of_the_demo(Path(sys.argv[1]))
