"""A WSGI app that is not Django, for tests/test_gunicorn_hooks.py: config/gunicorn.conf.py
must serve any app, with or without Django settings."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain WSGI\n"]
