"""Break each behaviour the suite claims to guard, and check that its test notices.

A test that still passes when the behaviour it names is broken proves nothing. Each mutation
below breaks one behaviour in a copy of the repository, by replacing one piece of text in one
file, and names the tests that must then fail. `make mutations` (python -m tests.mutations)
runs each of them RUNS times, in a fresh copy each time; docs/claims.md names the mutation
that proves a claim's test. It takes a few minutes, so CI does not run it.

    python -m tests.mutations                    every mutation
    python -m tests.mutations warning-per-worker one, by name

A mutation is "caught" when pytest reports failed tests (exit status 1) in every run; a
collection error, a skipped test or a pass is not. First the same tests run once in a copy
without the mutation, and must pass there: otherwise a copy that cannot run them at all would
count as catching everything. Where the text to replace is no longer in the file, the
mutation fails loudly: the code moved, and the mutation must move with it.
"""

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.stack import copy_of_repository

# Each mutation must be caught this many times out of this many: a test that catches a
# broken behaviour only by luck (reading before it waits) shows here.
RUNS = 3
PYTEST_PASSED = 0
PYTEST_FAILED = 1  # pytest's exit status when tests ran and some failed


@dataclass
class Mutation:
    name: str
    behaviour: str  # what is broken, in a user's words
    file: str
    find: str  # replaced once; it must stand in the file exactly once
    replace: str
    tests: list
    needs_root: bool = False

    def apply(self, copy):
        path = copy / self.file
        text = path.read_text()
        count = text.count(self.find)
        if count != 1:
            raise SystemExit(f"mutation {self.name}: the text to replace stands {count} times in {self.file}")
        path.write_text(text.replace(self.find, self.replace))


MUTATIONS = [
    Mutation(
        "process-left-after-ctrl-c",
        "a process that escapes into its own session survives Ctrl-C under make run and honcho",
        "config/gunicorn.conf.py",
        "    APP_INITIALIZED_PATH.touch()\n",
        "    APP_INITIALIZED_PATH.touch()\n"
        "    import subprocess; subprocess.Popen(['sleep', '300'], start_new_session=True)\n",
        ["tests/test_procfile_runners.py::test_honcho_start_web_serves_pages_and_ctrl_c_stops_every_process",
         "tests/test_make_run.py::test_make_run_reads_dotenv_and_the_shell_wins"],
    ),
    Mutation(
        "nginx-workers-as-root",
        "nginx's workers run as whoever started nginx, not as the owner of the app directory",
        "bin/start_nginx.py",
        '    os.environ["NGINX_USER"] = owner.pw_name\n',
        '    os.environ["NGINX_USER"] = "root"\n',
        ["tests/test_root_private_dir.py::test_nginx_workers_run_as_the_owner_of_the_app_directory"],
        needs_root=True,
    ),
    Mutation(
        "listen-ipv6-always",
        "nginx listens on [::] whatever the host has",
        "bin/start_nginx.py",
        '        choice = "1" if host_has_ipv6() else "0"\n',
        '        choice = "1"\n',
        ["tests/test_ipv6.py::test_a_host_without_ipv6_still_boots_on_ipv4"],
    ),
    Mutation(
        "warning-per-worker",
        "the startup warnings are logged by every worker, and again by every restarted one",
        "config/gunicorn.conf.py",
        "    if worker.age == 1 and settings.configured:\n",
        "    if settings.configured:\n",
        ["tests/test_database_budget.py::test_a_dyno_with_an_explicit_sqlite_url_boots_with_a_warning",
         "tests/test_make_run.py::test_the_development_key_warning_is_one_logfmt_line_per_make_run"],
    ),
    Mutation(
        "development-key-warning-despite-a-key",
        "the development-key warning is printed although a secret key is set",
        "myproject/settings.py",
        "\nif not SECRET_KEY:\n",
        '\nif not SECRET_KEY or "DYNO" not in os.environ:\n',
        ["tests/test_make_run.py::test_no_development_key_warning_with_a_secret_key",
         "tests/test_make_run.py::test_make_run_reads_dotenv_and_the_shell_wins"],
    ),
    Mutation(
        "reload-stalls",
        "a reloaded worker takes 8 seconds to come back",
        "config/gunicorn.conf.py",
        "    from django.conf import settings\n",
        "    from django.conf import settings\n"
        "    import time; time.sleep(8 if worker.age > 2 else 0)\n",
        ["tests/test_make_run.py::test_an_edited_view_is_served_without_restarting_the_stack",
         "tests/test_make_run.py::test_an_edited_template_is_served_without_restarting_the_stack"],
    ),
    Mutation(
        "variable-read-through-a-helper-undocumented",
        "a variable read through a helper (django_env_bool) is missing from docs/configuration.md",
        "bin/start_nginx.py",
        '        if django_env_bool("DJANGO_HSTS_PRELOAD", True):\n',
        '        if django_env_bool("DJANGO_HSTS_PRELOAD", True) and django_env_bool("DJANGO_HSTS_UNDOCUMENTED", True):\n',
        ["tests/test_docs.py::test_every_environment_variable_the_code_reads_is_in_the_configuration_table"],
    ),
    Mutation(
        "a-failing-hook-stops-gunicorn",
        "a hook in config/gunicorn.conf.py that raises ends its worker, and gunicorn halts",
        "config/gunicorn.conf.py",
        "def never_stops_the_server(hook):\n",
        "def never_stops_the_server(hook):\n    return hook\n",
        ["tests/test_gunicorn_hooks.py::test_a_hook_that_fails_is_logged_and_gunicorn_carries_on"],
    ),
    Mutation(
        "hooks-need-django-settings",
        "an app without DJANGO_SETTINGS_MODULE makes post_worker_init fail",
        "config/gunicorn.conf.py",
        "    if worker.age == 1 and settings.configured:\n",
        "    if worker.age == 1:\n",
        ["tests/test_gunicorn_hooks.py::test_an_app_without_django_settings_is_served_by_the_same_config"],
    ),
    Mutation(
        "no-nginx-version-in-the-start-line",
        "the nginx-start line does not say which nginx serves",
        "bin/start_nginx.py",
        "nginx_env, version=version)",
        "nginx_env)",
        ["tests/test_start_nginx.py::test_the_nginx_start_line_names_the_version_that_serves"],
    ),
    Mutation(
        "harness-parses-half-lines",
        "the tests parse a line the stack is still writing",
        "tests/stack.py",
        '    return written[:written.rfind(b"\\n") + 1].splitlines()\n',
        "    return written.splitlines()\n",
        ["tests/test_logfmt.py::test_the_harness_leaves_a_line_still_being_written_for_the_next_read"],
    ),
    Mutation(
        "upstream-http-1-0",
        "nginx talks HTTP/1.0 to gunicorn (1.22's default), so a stream that broke off looks whole",
        "config/nginx.conf.erb",
        "        proxy_http_version 1.1;\n",
        "        proxy_http_version 1.0;\n",
        ["tests/test_upstream_protocol.py"],
    ),
    Mutation(
        "upstream-connection-left-to-nginx",
        "nginx leaves the Connection header to its version's default (none since 1.29.7)",
        "config/nginx.conf.erb",
        "        proxy_set_header Connection close;\n",
        '        proxy_set_header Connection "";\n',
        ["tests/test_upstream_protocol.py::test_gunicorn_receives_http_1_1_with_connection_close"],
    ),
    Mutation(
        "survivor-stopped-late",
        "when nginx or the app exits on its own, the other is stopped only 5 seconds later",
        "bin/start_nginx.py",
        '                log(at="exit", process=name, **exit_fields(process.returncode))\n',
        '                log(at="exit", process=name, **exit_fields(process.returncode))\n'
        "                time.sleep(5)\n",
        ["tests/test_start_nginx.py::test_when_one_process_exits_the_other_is_stopped_within_a_second_and_named"],
    ),
    Mutation(
        "nginx-default-page-for-a-request-it-cannot-read",
        "a request nginx cannot read (framed two ways at once) gets nginx's own 400 page",
        "config/nginx.conf.erb",
        "        error_page 400 501 505 =400 /nginx-errors/bad-request.html;\n",
        "        error_page 501 505 =400 /nginx-errors/bad-request.html;\n",
        ["tests/test_refusal_pages.py::test_a_request_framed_two_ways_gets_400_and_our_page"],
    ),
    Mutation(
        "nginx-default-page-for-a-post-to-a-file",
        "a POST to a file nginx serves gets nginx's own 405 page",
        "config/nginx.conf.erb",
        "        error_page 405 /nginx-errors/method-not-allowed.html;\n",
        "",
        ["tests/test_refusal_pages.py::test_a_post_to_a_file_nginx_serves_gets_405_and_our_page"],
    ),
    Mutation(
        "dying-master-reported-as-a-clean-stop",
        "the web process exits 0 when nginx or gunicorn died on its own",
        "bin/start_nginx.py",
        "EXIT_PROCESS_EXITED = 1 ",
        "EXIT_PROCESS_EXITED = 0 ",
        ["tests/test_nothing_left_behind.py::test_nothing_is_left_and_the_next_start_serves"],
    ),
    Mutation(
        "fir-build-skips-the-sigterm-shim",
        "project.toml's build step does not build the SIGTERM shim, so a Fir dyno's nginx cuts requests",
        "project.toml",
        "bin/build-sigterm-shim\n",
        "true\n",
        ["tests/test_fir.py::test_sigterm_finishes_every_request_in_flight"],
        needs_root=True,
    ),
    Mutation(
        "nginx-module-ubuntu-lacks",
        "the nginx config uses headers-more, which Heroku's nginx has and Ubuntu's and Debian's lack",
        "config/nginx.conf.erb",
        "    server_tokens off;\n",
        "    server_tokens off;\n    more_clear_headers Server;\n",
        ["tests/test_fir.py::test_a_page_and_its_static_file_are_served_over_ipv4_and_ipv6_and_logged"],
        needs_root=True,
    ),
    Mutation(
        "project-templates-folder-unwatched",
        "make run does not reload on an edit in the project-level templates/ folder",
        "config/gunicorn.conf.py",
        '    if (APP_DIR / "templates").is_dir():\n        template_folders.append(APP_DIR / "templates")\n',
        "",
        ["tests/test_make_run.py::test_a_template_in_a_project_level_folder_added_while_running_reloads"],
    ),
    Mutation(
        "new-app-unwatched",
        "make run watches only the packages the template ships, not an app added with startapp",
        "config/gunicorn.conf.py",
        '    packages = sorted(init.parent for init in APP_DIR.glob("*/__init__.py"))\n',
        '    packages = [APP_DIR / "myproject", APP_DIR / "tests"]\n',
        ["tests/test_make_run.py::test_an_app_started_while_running_reloads_its_templates_and_views"],
    ),
    Mutation(
        "head-answered-with-a-body",
        "Django hands gunicorn a body for HEAD, and gunicorn 27 logs a warning for every one",
        "myproject/settings.py",
        '    "myproject.head_requests.HeadWithoutBodyMiddleware",\n',
        "",
        ["tests/test_logs.py::test_a_head_request_gets_the_headers_of_get_no_body_and_no_line_but_its_access_line"],
    ),
    Mutation(
        "error-django-lets-out-logged-by-gunicorn",
        "a syntax error in a view reaches gunicorn, which logs it without the request's id",
        "myproject/settings.py",
        '    "myproject.server_error.ServerErrorMiddleware",\n',
        "",
        ["tests/test_logs.py::test_a_syntax_error_in_a_view_logs_one_short_traceback_per_request_with_its_id"],
    ),
    Mutation(
        "repeated-errors-printed-in-full",
        "an error raised again while it was being handled is printed again every time",
        "myproject/logs.py",
        "    return type(error) is type(other) and str(error) == str(other)\n",
        "    return False\n",
        ["tests/test_logs.py::test_a_syntax_error_in_a_view_logs_one_short_traceback_per_request_with_its_id"],
    ),
    Mutation(
        "long-tracebacks-kept-whole",
        "a traceback of any length is logged whole",
        "myproject/logs.py",
        "    if len(lines) <= limit:\n",
        "    if True:\n",
        ["tests/test_log_formatter.py::test_a_chain_longer_than_the_limit_keeps_its_start_and_its_end"],
    ),
    Mutation(
        "any-two-signals-kill",
        "a runner's SIGTERM after Ctrl-C counts as a second signal and kills everything mid-shutdown",
        "bin/start_nginx.py",
        "        return len(set(self.received)) < len(self.received)\n",
        "        return len(self.received) > 1\n",
        ["tests/test_shutdown.py::test_a_runners_sigterm_after_ctrl_c_is_no_second_signal",
         "tests/test_procfile_runners.py::test_foreman_start_web_serves_and_its_sigterm_after_ctrl_c_is_no_second_signal"],
    ),
    Mutation(
        "no-listening-line",
        "the web process does not say where it listens",
        "bin/start_nginx.py",
        "        say_where_it_listens(nginx_process)\n",
        "",
        ["tests/test_start_nginx.py::test_it_says_where_it_listens_as_a_url_on_your_machine_and_as_a_port_on_a_dyno"],
    ),
    Mutation(
        "control-socket-open",
        "gunicorn opens a control socket nothing uses, and says so at every start",
        "config/gunicorn.conf.py",
        "control_socket_disable = True\n",
        "control_socket_disable = False\n",
        ["tests/test_logs.py::test_gunicorn_opens_no_control_socket_which_nothing_uses"],
    ),
    Mutation(
        "secret-key-command-needs-python",
        "the boot error's secret-key command runs `python`, which Debian 12 does not have",
        "myproject/settings.py",
        """            "DJANGO_SECRET_KEY=\\"$(python3 -c""",
        """            "DJANGO_SECRET_KEY=\\"$(python -c""",
        ["tests/test_settings.py::test_the_secret_key_command_it_gives_runs_where_python3_is_the_only_python"],
    ),
    Mutation(
        "postgresql-database-never-created",
        ".env.example's PostgreSQL URL names a database that nothing says to create",
        ".env.example",
        "#   createdb -h 127.0.0.1 -U postgres myproject\n",
        "",
        ["tests/test_make_run.py::test_dotenv_examples_postgresql_line_works_once_its_database_is_created_as_it_says"],
    ),
    Mutation(
        "reload-said-to-be-on-in-a-dyno",
        "the configuration table says GUNICORN_RELOAD is always on in a dyno",
        "docs/configuration.md",
        "never on a dyno (`DYNO` set), whatever its value",
        "always on a dyno",
        ["tests/test_make_run.py::test_gunicorn_reloads_only_when_asked_and_never_on_a_dyno"],
    ),
    Mutation(
        "stylesheet-sent-as-text-under-nosniff",
        "nginx sends .css files as text/plain, so that browsers refuse to apply them (nosniff)",
        "config/mime.types",
        "    text/css                    css;\n",
        "    text/plain                  css;\n",
        ["tests/test_browser.py::test_a_demo_page_loads_whole_with_its_styles"],
    ),
    Mutation(
        "favicon-through-django",
        "/favicon.ico goes to a gunicorn worker, which answers 404",
        "config/nginx.conf.erb",
        "        location ~ ^/(favicon\\.ico|robots\\.txt)$ {\n",
        "        location ~ ^/(robots\\.txt)$ {\n",
        ["tests/test_browser.py::test_the_favicon_comes_from_nginx_and_no_worker_sees_it",
         "tests/test_nginx_static_and_limits.py::test_favicon_and_robots_txt_come_from_nginx_and_are_cached_for_a_day"],
    ),
    Mutation(
        "body-too-large-page-without-its-limit",
        "the 413 page no longer says the limit (its server-side include is off)",
        "config/nginx.conf.erb",
        "            ssi on;\n",
        "            ssi off;\n",
        ["tests/test_refusal_pages.py::"
         "test_a_body_over_the_limit_gets_413_and_a_page_naming_the_limit_and_its_setting"],
    ),
    Mutation(
        "headers-too-large-page-for-400",
        "the page for headers too large is set for 400, which never catches nginx's internal 494",
        "config/nginx.conf.erb",
        "        error_page 494 /nginx-errors/headers-too-large.html;\n",
        "        error_page 400 /nginx-errors/headers-too-large.html;\n",
        ["tests/test_refusal_pages.py::test_a_header_over_8_kb_gets_400_and_a_page_that_blames_the_cookies"],
    ),
    Mutation(
        "demo-removal-leaves-an-unused-import",
        "deleting the demo as documented leaves myproject/urls.py importing include for nothing",
        "myproject/urls.py",
        "from django.urls import include  # demo app\nfrom django.urls import path\n",
        "from django.urls import include, path\n",
        ["tests/test_demo_removal.py::test_the_urls_file_imports_nothing_it_does_not_use"],
    ),
    Mutation(
        "demo-tests-need-the-demo",
        "a fork without the demo cannot run the tests Heroku CI runs (app.json)",
        "tests/test_demo.py",
        'if not apps.is_installed("myproject.demo"):\n    pytest.skip("the demo app has been deleted", allow_module_level=True)\n',
        "",
        ["tests/test_rename.py::test_heroku_cis_test_command_passes_in_a_fork"],
    ),
    Mutation(
        "rename-misses-a-file",
        "make rename leaves the old name in config/gunicorn.conf.py",
        "bin/rename_project.py",
        "path.relative_to(project) != THIS_FILE:\n",
        'path.relative_to(project) != THIS_FILE and name != "gunicorn.conf.py":\n',
        ["tests/test_rename.py::test_a_fork_keeps_the_old_name_in_no_file_but_the_renaming_script",
         "tests/test_rename.py::test_gunicorn_loads_the_app_a_forks_procfile_names"],
    ),
    Mutation(
        "pooled-url-ignored",
        "the web process connects to DATABASE_URL although a connection pooler is set up",
        "myproject/settings.py",
        "PROCESS_DATABASE_URL = CONNECTION_POOL_URL if USE_CONNECTION_POOL else DATABASE_URL\n",
        "PROCESS_DATABASE_URL = DATABASE_URL\n",
        ["tests/test_connection_pooler.py::test_eight_workers_on_a_three_connection_role_serve_every_request_through_pgbouncer",
         "tests/test_connection_pooler.py::test_the_web_process_logs_which_pooler_it_uses_without_the_password"],
    ),
    Mutation(
        "web-process-without-the-pool-variable",
        "config/gunicorn.conf.py does not say that it is the web process, so it ignores the pooler",
        "config/gunicorn.conf.py",
        'raw_env = ["DJANGO_USE_CONNECTION_POOL=1"]\n',
        "raw_env = []\n",
        ["tests/test_connection_pooler.py::test_eight_workers_on_a_three_connection_role_serve_every_request_through_pgbouncer",
         "tests/test_connection_pooler.py::test_only_the_web_process_connects_through_the_pool_url_and_without_server_side_cursors"],
    ),
    Mutation(
        "server-side-cursors-through-the-pooler",
        "server-side cursors stay on through a transaction pooler, so QuerySet.iterator() fails",
        "myproject/settings.py",
        'DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = USE_CONNECTION_POOL\n',
        'DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = False\n',
        ["tests/test_connection_pooler.py::test_a_queryset_read_with_iterator_works_through_the_pooler"],
    ),
    Mutation(
        "migrations-through-the-pooler",
        "every process connects through the pooler, the release phase's migrate included",
        "myproject/settings.py",
        'USE_CONNECTION_POOL = env_bool("DJANGO_USE_CONNECTION_POOL", False) and bool(CONNECTION_POOL_URL)\n',
        "USE_CONNECTION_POOL = bool(CONNECTION_POOL_URL)\n",
        ["tests/test_connection_pooler.py::test_the_release_phase_migrates_through_the_direct_url_never_through_the_pooler"],
    ),
    Mutation(
        "tls-to-the-on-dyno-pgbouncer",
        "on a dyno, the settings ask the on-dyno PgBouncer, which speaks no TLS, for TLS",
        "myproject/settings.py",
        '                     and PROCESS_DATABASE_URL != os.environ.get("DATABASE_URL_PGBOUNCER")),\n',
        "                     ),\n",
        ["tests/test_connection_pooler.py::test_a_queryset_read_with_iterator_works_through_the_pooler",
         "tests/test_connection_pooler.py::test_on_a_dyno_heroku_s_pooler_needs_tls_and_the_on_dyno_pgbouncer_on_loopback_none"],
    ),
]


def build(copy):
    """What `make setup` gives a checkout: this virtualenv (which make run's tests use too),
    and the SIGTERM shim."""
    (copy / ".venv").symlink_to(Path(sys.prefix))
    subprocess.run(["bin/build-sigterm-shim"], cwd=copy, check=True, stdout=subprocess.DEVNULL)


def run_once(mutation, mutated=True):
    """pytest's exit status for the mutation's tests, in a fresh copy, mutated or not."""
    with tempfile.TemporaryDirectory(prefix="mutation-") as directory:
        os.chmod(directory, 0o755)  # nginx's workers may run as another user and must enter it
        copy = copy_of_repository(Path(directory) / "app")
        build(copy)
        if mutated:
            mutation.apply(copy)
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *mutation.tests],
                              cwd=copy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def caught_every_time(mutation):
    control = run_once(mutation, mutated=False)
    if control != PYTEST_PASSED:
        print(f"{mutation.name}: its tests do not pass without the mutation (pytest status {control})")
        return False
    statuses = [run_once(mutation) for _ in range(RUNS)]
    caught = statuses.count(PYTEST_FAILED)
    print(f"{mutation.name}: caught {caught} of {RUNS} (pytest statuses {statuses}): {mutation.behaviour}", flush=True)
    return caught == RUNS


def main(names):
    chosen = [mutation for mutation in MUTATIONS if not names or mutation.name in names]
    unknown = set(names) - {mutation.name for mutation in MUTATIONS}
    if unknown:
        raise SystemExit(f"no such mutation: {', '.join(sorted(unknown))}")
    missed = []
    for mutation in chosen:
        if mutation.needs_root and os.geteuid() != 0:
            print(f"{mutation.name}: not run, its test needs root")
            continue
        if not caught_every_time(mutation):
            missed.append(mutation.name)
    if missed:
        raise SystemExit(f"not caught every time: {', '.join(missed)}")
    print(f"every mutation was caught, {RUNS} times out of {RUNS}")


if __name__ == "__main__":
    main(sys.argv[1:])
