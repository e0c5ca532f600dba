"""No hook in config/gunicorn.conf.py can stop the server.

gunicorn ends a worker whose hook raises, and halts when that happens while a worker boots,
so a hook that only logs could fail every request in flight. Each hook is wrapped: its
failure becomes logfmt lines (the error and its traceback) and gunicorn carries on.
"""

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import running
from tests.stack import WEB_COMMAND, Stack, copy_of_repository, parse_logfmt

IN_FLIGHT = 8
CARRIES_ON = "gunicorn carries on"


def statuses_of_requests_at_once(stack, path="/"):
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        return list(pool.map(lambda _: stack.get(path).status_code, range(IN_FLIGHT)))


def test_an_app_without_django_settings_is_served_by_the_same_config(runtime_dir):
    # A plain WSGI app, and no DJANGO_SETTINGS_MODULE: the hooks that read Django's
    # settings must leave it alone.
    stack = Stack(runtime_dir, command=[*WEB_COMMAND[:-1], "tests.plain_wsgi"])
    stack.env.pop("DJANGO_SETTINGS_MODULE", None)
    with running(stack, migrate=False):
        statuses = statuses_of_requests_at_once(stack)

        assert statuses == [200] * IN_FLIGHT
        assert CARRIES_ON not in stack.output()


def break_hook(config, name):
    """Make the hook `name` in a copy's config/gunicorn.conf.py raise before it does anything."""
    text = config.read_text()
    definition = next(line for line in text.splitlines() if line.startswith(f"def {name}("))
    config.write_text(text.replace(definition, f"{definition}\n    raise RuntimeError('{name} broken on purpose')"))


def test_a_hook_that_fails_is_logged_and_gunicorn_carries_on(start_stack, runtime_dir):
    app = copy_of_repository(runtime_dir / "app")
    # One hook that runs as each worker boots, and one that runs for every request.
    for hook in ("post_worker_init", "pre_request"):
        break_hook(app / "config" / "gunicorn.conf.py", hook)
    stack = start_stack(app_dir=app)

    statuses = statuses_of_requests_at_once(stack)

    assert statuses == [200] * IN_FLIGHT
    lines = [parse_logfmt(line) for line in stack.stderr_lines()]
    for hook in ("post_worker_init", "pre_request"):
        failures = [line for line in lines if line.get("msg", "").startswith(f"the {hook} hook ")]
        assert failures, f"nothing logged the broken {hook}:\n{stack.output()}"
        assert all(line["level"] == "ERROR" and CARRIES_ON in line["msg"] for line in failures)
        assert any(f"{hook} broken on purpose" in line.get("traceback", "") for line in lines)
