# The two commands of the quick start:
#   make run    the whole stack (nginx in front of gunicorn) on http://127.0.0.1:5000
#   make test   the whole test suite
#   make bench  the slow-client benchmark (about fifteen minutes; see tests/bench/)
#   make bench-database  direct against pooled database connections (about two minutes)
#   make mutations  checks that each test fails when the behaviour it guards is broken
# Each sets up what it needs first: a virtualenv in .venv, the requirements and nginx (and,
# for make test, Chromium for the browser tests).
# And one for testing with the nginx Heroku's dynos run rather than your machine's:
#   make heroku-nginx   puts it in .heroku-nginx/ and says how to test with it
# And, to make the template yours (docs/development.md):
#   make rename NAME=mysite   give the project package a name of your own
#   make test-fork            the whole suite in a copy with the demo deleted and the package renamed

# The virtualenv, and the Python that creates it. CI (.ci/run) sets both to test other
# Pythons in virtualenvs of their own: make test VENV=/tmp/venv-3.13 PYTHON3=python3.13
VENV ?= .venv
PYTHON3 ?= python3
PYTHON := $(VENV)/bin/python

# make run's defaults. A variable set in your shell or in .env wins over these.
PORT ?= 5000
# Workers restart when a Python file or a template changes (config/gunicorn.conf.py).
GUNICORN_RELOAD ?= 1

# make run reads .env when there is one, as `heroku local` does (KEY=value lines, # comments,
# quotes), with python-dotenv; --no-override keeps what your shell already sets.
DOTENV = $(if $(wildcard .env),$(VENV)/bin/dotenv run --no-override --)

# Run the Procfile's web command itself, so `make run` starts exactly what Heroku starts.
WEB_COMMAND = $(shell sed -n 's/^web: *//p' Procfile)

.PHONY: run run-stack test test-fork mutations rename bench bench-database setup nginx chromium heroku-nginx

# Through a second make, so that .env's variables are in the environment before the
# defaults above are decided.
run: setup
	$(DOTENV) $(MAKE) --no-print-directory run-stack

# What make run starts once .env is read; run it through make run.
run-stack:
	$(PYTHON) manage.py collectstatic --noinput --verbosity 0
	$(PYTHON) manage.py migrate --noinput
	@echo "Serving on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	PATH="$(abspath $(VENV))/bin:$$PATH" PORT=$(PORT) GUNICORN_RELOAD=$(GUNICORN_RELOAD) $(WEB_COMMAND)

test: setup chromium
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# As long as make test, so not part of it (make test checks such a copy in seconds); CI runs
# it once. PYTEST_ARGS reaches the suite in the copy.
test-fork: setup
	$(PYTHON) -m tests.fork

# Breaks each behaviour the tests guard, in a copy, and checks that its tests fail
# (tests/mutations.py): a few minutes, so neither make test nor CI runs it. One at a time:
# make mutations MUTATIONS=warning-per-worker
mutations: setup chromium
	$(PYTHON) -m tests.mutations $(MUTATIONS)

# bin/rename_project.py says what it changes and which names it refuses. It needs the
# virtualenv, to refuse the names of the packages installed there, but not nginx.
rename: $(VENV)/.installed
	$(PYTHON) bin/rename_project.py $(NAME)

# Writes tests/bench/results.md and tests/bench/results.png.
bench: setup $(VENV)/.bench-installed
	$(PYTHON) -m tests.bench

# Prints requests per second and p99 on a page that writes and reads, connected to PostgreSQL
# directly and through PgBouncer (tests/bench/database.py; docs/database.md quotes it). Needs
# PostgreSQL and pgbouncer.
bench-database: setup
	$(PYTHON) -m tests.bench.database

setup: $(VENV)/.installed nginx bin/sigterm_as_sigquit.so

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The benchmark's own tools (the servers it compares with, and matplotlib) stay out of
# requirements-dev.txt, so that `make test` and CI do not install them.
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PYTHON) -m pip install --quiet -r requirements-bench.txt
	touch $@

nginx:
	@bin/install-nginx

# For tests/test_browser.py only; without it those tests are skipped (they fail in CI).
chromium:
	@bin/install-chromium

# Lets nginx finish its requests when Heroku-style SIGTERM reaches it (bin/start-nginx).
bin/sigterm_as_sigquit.so: bin/sigterm_as_sigquit.c
	bin/build-sigterm-shim

# The nginx Heroku runs: the binary that the nginx buildpack (release v1.18, the commit below)
# unpacks into bin/ of every heroku-24 app, for Linux on x86-64. The sha256 is the file's.
HEROKU_NGINX_URL = https://raw.githubusercontent.com/heroku/heroku-buildpack-nginx/ba0e664bb490b9e5c39ecfaeb15da05fe6fa6675/nginx-heroku-24-amd64.tgz
HEROKU_NGINX_SHA256 = 4a82596c8d6c3d51cc9f36a18fa87a23b13ad7a8e8d1bba5acfb16754b98ef5b
HEROKU_NGINX_DIR = .heroku-nginx
# A copy of that file to use instead of downloading it, as CI does (its machines cannot reach
# GitHub): make heroku-nginx HEROKU_NGINX_TARBALL=../shared/heroku-nginx/nginx-heroku-24-amd64.tgz
HEROKU_NGINX_TARBALL =

# Checked before it is unpacked: a different file stops here. --no-overwrite-dir keeps the
# directory as mkdir made it, where the tarball's own entry would make it private to its owner.
heroku-nginx:
	mkdir -p $(HEROKU_NGINX_DIR)
ifdef HEROKU_NGINX_TARBALL
	cp --no-preserve=mode $(HEROKU_NGINX_TARBALL) $(HEROKU_NGINX_DIR)/nginx.tgz
else
	curl --fail --silent --show-error --location --output $(HEROKU_NGINX_DIR)/nginx.tgz $(HEROKU_NGINX_URL)
endif
	echo "$(HEROKU_NGINX_SHA256)  $(HEROKU_NGINX_DIR)/nginx.tgz" | sha256sum --check --strict
	tar --extract --gzip --file $(HEROKU_NGINX_DIR)/nginx.tgz --directory $(HEROKU_NGINX_DIR) \
		--no-same-owner --no-overwrite-dir
	@$(HEROKU_NGINX_DIR)/nginx -v 2>&1
	@echo "Test with it first on PATH:"
	@echo '    PATH="$(abspath $(HEROKU_NGINX_DIR)):$$PATH" make test'
