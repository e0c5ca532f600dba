# The two commands of the quick start:
#   make run    the whole stack (nginx in front of gunicorn) on http://127.0.0.1:5000
#   make test   the whole test suite
#   make bench  the slow-client benchmark (about fifteen minutes; see tests/bench/)
# All three set up what they need first: a virtualenv in .venv, the requirements and nginx.

VENV := .venv
PYTHON := $(VENV)/bin/python
PORT ?= 5000

# Run the Procfile's web command itself, so `make run` starts exactly what Heroku starts.
WEB_COMMAND = $(shell sed -n 's/^web: *//p' Procfile)

.PHONY: run test bench setup nginx

run: setup
	$(PYTHON) manage.py collectstatic --noinput --verbosity 0
	$(PYTHON) manage.py migrate --noinput
	@echo "Serving on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PORT=$(PORT) $(WEB_COMMAND)

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Writes tests/bench/results.md and tests/bench/results.png.
bench: setup $(VENV)/.bench-installed
	$(PYTHON) -m tests.bench

setup: $(VENV)/.installed nginx bin/sigterm_as_sigquit.so

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || python3 -m venv $(VENV)
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

# Lets nginx finish its requests when Heroku-style SIGTERM reaches it (bin/start-nginx).
bin/sigterm_as_sigquit.so: bin/sigterm_as_sigquit.c
	bin/build-sigterm-shim
