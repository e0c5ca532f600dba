"""myproject/logs.py: Django's and gunicorn's log records as logfmt lines with the request id."""

import logging
import sys
import traceback

import pytest

from myproject import logs
from tests.logfmt import parse

HEROKU_MAX_LINE_BYTES = 10_000


def format_record(message, *args, exc_info=None, name="myproject.views", level=logging.INFO):
    record = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    return logs.LogfmtFormatter().format(record).split("\n")


@pytest.fixture
def request_id():
    token = logs.request_id.set("5f2c3e0a-8a0b-4b8c-9a55-0d4e2f6c9d10")
    yield "5f2c3e0a-8a0b-4b8c-9a55-0d4e2f6c9d10"
    logs.request_id.reset(token)


def test_a_record_is_one_line_with_level_logger_request_id_and_message(request_id):
    (line,) = format_record("Paid %d orders", 3)

    assert line == f'level=INFO logger=myproject.views request_id={request_id} msg="Paid 3 orders"'


def test_outside_a_request_the_request_id_is_a_dash():
    (line,) = format_record("Booting worker")

    assert parse(line)["request_id"] == "-"


@pytest.mark.parametrize("message", [
    'a "quoted" word and a \\ backslash',
    "status=999 forged=1",
    "two\nlines\r\nand a tab\t",
    "control \x00\x1b[31m\x7f\x85 characters",
    "non-ASCII: café, 日本, 😀",
    "lone surrogate from a bad byte: \udcff",
    "",
])
def test_any_message_stays_one_printable_ascii_line_that_parses_back(message):
    (line,) = format_record(message)

    assert line.isascii() and line.isprintable()
    assert parse(line) == {"level": "INFO", "logger": "myproject.views", "request_id": "-", "msg": message}


def test_a_traceback_is_one_logfmt_line_per_traceback_line_with_the_request_id(request_id):
    try:
        raise ValueError('no such table: "demo_visit"')
    except ValueError:
        lines = format_record("Internal Server Error: /visits/", name="django.request", level=logging.ERROR,
                              exc_info=sys.exc_info())

    fields = [parse(line) for line in lines]
    assert fields[0]["msg"] == "Internal Server Error: /visits/"
    assert [line["traceback"] for line in fields[1:]][0] == "Traceback (most recent call last):"
    assert fields[-1]["traceback"] == "ValueError: no such table: \"demo_visit\""
    assert any(line["traceback"].startswith('  File "') for line in fields[1:])
    assert all(line["level"] == "ERROR" and line["request_id"] == request_id for line in fields)


def test_long_values_are_cut_so_that_no_line_reaches_herokus_limit():
    worst = "😀" * 20_000  # each becomes a 12-byte escape

    (line,) = format_record(worst)

    assert parse(line)["msg"] == worst[:logs.MAX_VALUE_LENGTH]
    assert len(line.encode()) < HEROKU_MAX_LINE_BYTES


def raised(function):
    try:
        function()
    except Exception:
        return sys.exc_info()
    raise AssertionError(f"{function} raised nothing")


def test_a_chain_of_different_errors_is_printed_as_python_prints_it():
    def lookup():
        try:
            {}["missing"]
        except KeyError as error:
            try:
                raise ValueError("no such key") from error
            except ValueError:
                raise RuntimeError("while reporting it")

    exc_info = raised(lookup)

    formatted = logs.LogfmtFormatter().formatException(exc_info)
    assert formatted == "".join(traceback.format_exception(*exc_info)).rstrip("\n")


def test_a_chain_longer_than_the_limit_keeps_its_start_and_its_end():
    def errors_while_handling(count):
        if count == 0:
            raise LookupError("the first error")
        try:
            errors_while_handling(count - 1)
        except Exception:
            raise ValueError(f"error number {count}")

    lines = format_record("failed", level=logging.ERROR, exc_info=raised(lambda: errors_while_handling(100)))

    tracebacks = [parse(line)["traceback"] for line in lines[1:]]
    assert len(tracebacks) == logs.MAX_TRACEBACK_LINES
    assert tracebacks[0] == "Traceback (most recent call last):"
    assert any(line.endswith(" lines left out]") for line in tracebacks)
    assert tracebacks[-1] == "ValueError: error number 100"
