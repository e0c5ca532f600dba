"""tests/logfmt.py, the parser every log line of the stack must pass: it reads what nginx,
Django and the wrapper write, and refuses anything a log add-on could misread."""

import pytest

from tests.logfmt import parse


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
