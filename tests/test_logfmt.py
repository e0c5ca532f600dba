"""tests/logfmt.py, the parser every log line of the stack must pass: it reads what nginx,
Django and the wrapper write, and refuses anything a log add-on could misread. The harness
(tests/stack.py) hands it whole lines only."""

import pytest

from tests.logfmt import parse
from tests.stack import Stack


def test_bare_and_quoted_values():
    line = 'measure#nginx.service=0.016s method=GET path="/a b?c=d" empty="" bare_empty='

    assert parse(line) == {"measure#nginx.service": "0.016s", "method": "GET", "path": "/a b?c=d",
                           "empty": "", "bare_empty": ""}


def test_json_escapes_are_decoded():
    assert parse(r'msg="say \"hi\"\\ \n caf\u00e9 \ud83d\ude00"') == {"msg": 'say "hi"\\ \n café 😀'}


def test_nginx_hex_escapes_are_decoded_as_bytes():
    assert parse(r'user_agent="\x22quoted\x22 \x5C \xFF"') == {"user_agent": '"quoted" \\ \xff'}


def test_key_value_text_inside_quotes_is_part_of_the_value():
    assert parse('user_agent="a status=999 forged=1" status=200') == {"user_agent": "a status=999 forged=1",
                                                                       "status": "200"}


@pytest.mark.parametrize("line", [
    'msg="unterminated',
    'msg="stray" quote"',
    "msg=two words",
    "no_equals_sign",
    "key==value",
    'msg="bad escape \\q"',
    'msg="raw\tcontrol"',
    "a=1  b=2",
    " a=1",
    "a=1 a=2",
    "",
])
def test_anything_else_is_rejected(line):
    with pytest.raises(ValueError):
        parse(line)


def test_the_harness_leaves_a_line_still_being_written_for_the_next_read(tmp_path):
    # The web process may be in the middle of a line when a test reads its output: that
    # piece is not a line yet, and parsing it would fail the test for nothing.
    stack = Stack(tmp_path)
    stack.stdout_path.write_bytes(b'measure#nginx.service=0.001s status=200 request_id="a"\n'
                                  b'measure#nginx.service=0.587s method=GET via="" body')
    stack.stderr_path.write_bytes(b"half a line")

    assert [fields["request_id"] for fields in stack.access_lines()] == ["a"]
    assert stack.output() == 'measure#nginx.service=0.001s status=200 request_id="a"\n'
