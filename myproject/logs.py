"""Log records as logfmt lines, each carrying the id of the request being handled.

Django (LOGGING in myproject/settings.py) and gunicorn (logconfig_dict in
config/gunicorn.conf.py) both write through LogfmtFormatter, so every line the app prints
reads like nginx's access line and a log add-on can search them all by request_id:

    level=ERROR logger=django.request request_id=5f2c3e0a-8a0b-4b8c-9a55-0d4e2f6c9d10 msg="Internal Server Error: /visits/"
    level=ERROR logger=django.request request_id=5f2c3e0a-8a0b-4b8c-9a55-0d4e2f6c9d10 traceback="Traceback (most recent call last):"
    level=ERROR logger=django.request request_id=5f2c3e0a-8a0b-4b8c-9a55-0d4e2f6c9d10 traceback="  File \\"/app/myproject/demo/views.py\\", line 15, in visits"

This module must not import Django: gunicorn's master process loads it before any app.
"""

import contextvars
import json
import logging
import sys
import threading
import traceback

# The X-Request-ID of the request this thread is handling: nginx sets the header on every
# request (the router's id, or its own), and the pre_request hook in config/gunicorn.conf.py
# puts it here. "-" between requests, as nginx writes for "none".
request_id = contextvars.ContextVar("request_id", default="-")

# Heroku splits log lines longer than 10,000 bytes. Each value is cut to this many characters
# before it is escaped, and an escaped character takes at most 12 bytes (one outside the BMP
# becomes a JSON surrogate pair), so a message or a traceback line never takes more than
# 6,002 bytes. The rest of a line is short: level, logger and the request id nginx checked.
MAX_VALUE_LENGTH = 500

# A record's traceback is cut to this many lines, in the middle. A database error and the
# error that caused it took 63 here; a long chain of different errors, or a group of many,
# could take thousands, for every request that raises them.
MAX_TRACEBACK_LINES = 150


def logfmt_value(value):
    """A value as logfmt: bare when it is printable ASCII without spaces, quotes, `=` or
    backslashes; otherwise quoted with JSON's escapes (\\", \\\\, \\n, \\u00e9), so that no
    value can break a line or forge a key, and every line is printable ASCII."""
    text = str(value)[:MAX_VALUE_LENGTH]
    if text and text.isascii() and text.isprintable() and not any(char in text for char in ' "=\\'):
        return text
    return json.dumps(text)


def logfmt_line(**fields):
    return " ".join(f"{key}={logfmt_value(value)}" for key, value in fields.items())


class LogfmtFormatter(logging.Formatter):
    """level=... logger=... request_id=... msg="...", one line per record.

    A traceback becomes one line per traceback line, each with the same level, logger and
    request_id, so that `heroku logs --tail` shows it as Python prints it, every line still
    parses as logfmt, and a long traceback is never one line too long for Heroku.
    """

    def format(self, record):
        # Read here, in the thread that logged the record, which is the thread handling the
        # request (logging's StreamHandler formats as it emits).
        context = {"level": record.levelname, "logger": record.name, "request_id": request_id.get()}
        lines = [logfmt_line(**context, msg=record.getMessage())]
        for traceback_line in self.traceback_lines(record):
            lines.append(logfmt_line(**context, traceback=traceback_line))
        return "\n".join(lines)

    def traceback_lines(self, record):
        text = ""
        if record.exc_info:
            text += self.formatException(record.exc_info) + "\n"
        if record.stack_info:
            text += self.formatStack(record.stack_info)
        return cut_in_the_middle(text.splitlines(), MAX_TRACEBACK_LINES)

    def formatException(self, exc_info):
        """The traceback as Python prints it, but an error raised again while that same error
        was being handled is shown once, with a line that counts the repeats.

        Django raises such repeats when it cannot import the root URLconf (a syntax error in
        a view it imports): each middleware looks for the 500 page through it, and fails the
        same way. Python would print the same SyntaxError eleven times over, about 640 lines
        for every request, with the file and line that matter at the very end.
        """
        if exc_info[1] is None:
            return super().formatException(exc_info)
        lines, shown, repeats = [], None, 0
        for error, lead in chain_of(exc_info[1]):
            if lead == CONTEXT_LINE and same_error(error, shown):
                repeats += 1
                continue
            lines += repeat_note(shown, repeats)
            if lead:
                lines += ["", lead, ""]
            lines += "".join(traceback.format_exception(type(error), error, error.__traceback__, chain=False)).splitlines()
            shown, repeats = error, 0
        return "\n".join(lines + repeat_note(shown, repeats))


# What Python prints between two chained tracebacks.
CAUSE_LINE = "The above exception was the direct cause of the following exception:"
CONTEXT_LINE = "During handling of the above exception, another exception occurred:"


def chain_of(error):
    """[(exception, the line Python prints before it, or None for the first)], oldest first,
    following __cause__ and __context__ as Python does when it prints a traceback."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if error.__cause__ is not None:
            chain.append((error, CAUSE_LINE))
            error = error.__cause__
        elif error.__context__ is not None and not error.__suppress_context__:
            chain.append((error, CONTEXT_LINE))
            error = error.__context__
        else:
            chain.append((error, None))
            error = None
    return chain[::-1]


def same_error(error, other):
    """The same error as Python would print its last line: type and message (for a
    SyntaxError the message names the file and line)."""
    return type(error) is type(other) and str(error) == str(other)


def repeat_note(error, repeats):
    if not repeats:
        return []
    return ["", f"[The same {type(error).__name__} was raised again {repeats} more times while it was being "
                f"handled; those tracebacks are left out]"]


def cut_in_the_middle(lines, limit):
    """At most `limit` lines: the first third and the end, which has the error itself."""
    if len(lines) <= limit:
        return lines
    head = limit // 3
    tail = limit - head - 1
    return [*lines[:head], f"[{len(lines) - head - tail} lines left out]", *lines[-tail:]]


def log_what_python_would_print_itself():
    """Send through logging, as logfmt lines, the two errors Python prints on stderr itself.

    An exception raised where nothing can catch it (in a __del__ method, a weakref callback):
    Python prints "Exception ignored in: ..." and a traceback. An exception that ends a thread:
    Python prints the thread's traceback. Both would be several raw lines in the log; here each
    is an ERROR of the "python" logger, with the request id of the thread that raised it (a
    thread the app starts itself has none: "-").
    """
    logger = logging.getLogger("python")

    def log_unraisable(unraisable):
        exc_info = (unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
        message = unraisable.err_msg or "Exception ignored in"
        if unraisable.object is None:
            logger.error("%s", message, exc_info=exc_info)
        else:
            logger.error("%s: %r", message, unraisable.object, exc_info=exc_info)

    def log_thread_exception(args):
        if issubclass(args.exc_type, SystemExit):
            return  # how a thread may end on purpose; Python says nothing about it either
        name = args.thread.name if args.thread else "unknown"
        logger.error("Exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.unraisablehook = log_unraisable
    threading.excepthook = log_thread_exception
