"""A strict logfmt parser for the tests: a line either parses completely or raises ValueError.

logfmt has no formal grammar. This one accepts what common parsers agree on, and nothing
more, so that a line it accepts is safe for the lenient ones too:

    line   = pair *(" " pair)
    pair   = key "=" value
    key    = one or more characters other than space, `=`, `"` and `\\`
    value  = bare / quoted
    bare   = zero or more characters other than space, `=`, `"` and `\\`
    quoted = `"` *(any character but `"` and `\\`, or an escape) `"`
    escape = JSON's (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX) or nginx's \\xHH, one byte

No library fits: the `logfmt` package on PyPI has had no release since 2018 and silently
skips what it cannot read, which would let a broken line pass.
"""

import json
import re

PAIR = re.compile(r'([^ ="\\]+)=(?:"((?:[^"\\]|\\.)*)"|([^ ="\\]*))')
ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|.)")


def parse(line):
    """The line's key=value pairs as a dict of strings, in order. One line, with or without
    its line end."""
    line = line.removesuffix("\n")
    fields = {}
    position = 0
    while True:
        match = PAIR.match(line, position)
        if not match:
            raise ValueError(f"not logfmt at character {position}: {line!r}")
        key, quoted, bare = match.groups()
        if key in fields:
            raise ValueError(f"key {key!r} appears twice: {line!r}")
        fields[key] = bare if quoted is None else unquote(quoted)
        position = match.end()
        if position == len(line):
            return fields
        if line[position] != " ":
            raise ValueError(f"expected a space at character {position}: {line!r}")
        position += 1


def unquote(text):
    """Decode the escapes of a quoted value. nginx's \\xHH is a byte, returned as the
    character with that number (as WSGI decodes header bytes); the rest is JSON's."""
    as_json = ESCAPE.sub(lambda match: f"\\u00{match[1]}" if match[1] else match[0], text)
    return json.loads(f'"{as_json}"')
