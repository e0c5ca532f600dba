"""Render config/nginx.conf.erb the way Ruby's `erb` command does, without Ruby.

Heroku's nginx buildpack turns `config/nginx.conf.erb` into `nginx.conf` by
running Ruby's `erb` command-line tool with the dyno's environment. This module
renders the same file in Python, so it must obey one rule:

    For every template, `render` returns exactly the bytes that `erb TEMPLATE`
    (Ruby 3.x) prints under the same environment, or it raises TemplateError
    naming the file, the line and the reason.

A silently different nginx.conf would be worse than no nginx.conf, so whatever
is outside the small subset of Ruby below is refused, never approximated.

Template syntax (the `erb` command enables "percent lines" and no trimming):
  <%= expr %>   prints expr (nil prints nothing)     <%# ... %>  comment
  <% code %>    runs code                            <%%         a literal "<%"
  % code        a whole line of code                 %%          a literal "%" at line start
Every newline after a tag is kept; `<%- -%>` is a Ruby syntax error.

Ruby subset:
  literals     'single', "double #{interpolated}", 12, 1_000, -3, true, false, nil
  ENV          ENV['NAME'], ENV.fetch('NAME'), ENV.fetch('NAME', default),
               ENV.fetch('NAME') { default }
  variables    name = expr  (then used as `name`)
  methods      .to_i .to_s .empty? .nil? .split(sep)  and  list.each do |item| ... end
  operators    ! - * + < <= > >= == != && || ?: not and or, and `if`/`unless` modifiers
  statements   if / elsif / else / unless / end, separated by newlines or `;`

How it works: the template is cut into text and code exactly like ERB's own
scanner (`_scan`), the code is tokenized (`_Lexer`) and parsed (`_Parser`) into
small node objects, the `if`/`each` ... `end` statements, which may span many
tags, are nested into blocks (`_build_tree`), and the blocks are run. Ruby
values are Python values: nil is None, true/false are bool, Integer is int,
String is str and Array is list. The whole template is parsed before anything
runs, because Ruby also rejects a syntax error in a branch that never runs.
"""

import re
from contextlib import contextmanager
from typing import Mapping


class TemplateError(Exception):
    """A template that cannot be rendered exactly as Ruby's erb would."""

    def __init__(self, filename: str, lineno: int, reason: str):
        super().__init__(f"{filename}:{lineno}: {reason}")
        self.filename = filename
        self.lineno = lineno
        self.reason = reason


class _Refused(Exception):
    """Internal error without a file name; `render` turns it into TemplateError."""

    def __init__(self, lineno, reason):
        super().__init__(reason)
        self.lineno = lineno
        self.reason = reason
        self.code = None  # the tag's code, added by whoever knows it

    def message(self):
        if self.code is None:
            return self.reason
        code = " ".join(self.code.split())
        if len(code) > 80:
            code = code[:77] + "..."
        return f"{self.reason} in `{code}`"


def render(source: str, filename: str, env: Mapping[str, str]) -> str:
    """Render ERB `source` the way `erb FILENAME` (Ruby 3.x CLI) prints it, with ENV = env."""
    try:
        _refuse_unusual_source(source)
        tree = _build_tree(_parse_segments(_scan(source)))
        context = _Context(env)
        _run_body(tree, context)
        return "".join(context.output)
    except _Refused as error:
        raise TemplateError(filename, error.lineno, error.message()) from None


# --- Step 1: cut the template into text and code, like ERB's scanner -------

# The same tokens, in the same order, as ERB::Compiler::TrimScanner uses when
# percent lines are on and trimming is off (the erb command's default).
_ERB_TOKEN = re.compile(r"(.*?)(<%%|<%=|<%#|<%|%%>|%>|\n|\Z)", re.DOTALL)

# ERB reads "magic comments" (<%# coding: ... %>) at the very start of a template.
_LEADING_COMMENT = re.compile(r"<%#(.*)%>|%#(.*)\n")
_MAGIC_COMMENT = re.compile(r"coding\s*[=:]|frozen[-_]string[-_]literal\s*:")


class _Text:
    def __init__(self, text):
        self.text = text


class _Code:
    """The code of one tag or percent line; `tag` is '<%', '<%=' or '%'."""

    def __init__(self, tag, code, line):
        self.tag = tag
        self.code = code
        self.line = line


def _refuse_unusual_source(source):
    """Refuse the two things that change how Ruby reads the whole template."""
    surrogate = re.search("[\ud800-\udfff]", source)
    if surrogate:
        line = source.count("\n", 0, surrogate.start()) + 1
        raise _Refused(line, "the template is not valid UTF-8")
    position = 0
    while match := _LEADING_COMMENT.match(source, position):
        comment = match.group(1) if match.group(1) is not None else match.group(2)
        if _MAGIC_COMMENT.search(comment):
            line = source.count("\n", 0, match.start()) + 1
            raise _Refused(line, "magic comments (coding, frozen_string_literal) are not supported")
        position = match.end()


def _lines(source):
    """Split like Ruby's String#each_line: every line keeps its "\\n"."""
    lines = source.split("\n")
    for line in lines[:-1]:
        yield line + "\n"
    if lines[-1]:
        yield lines[-1]


def _chomp(line):
    for ending in ("\r\n", "\n", "\r"):
        if line.endswith(ending):
            return line[: -len(ending)]
    return line


def _scan(source):
    """Return the template as a list of _Text and _Code segments."""
    segments = []
    text = []  # literal text not yet added to segments
    tag = None  # the opening tag while inside one, else None
    code = []
    code_line = 0

    def flush_text():
        if text:
            segments.append(_Text("".join(text)))
            text.clear()

    for lineno, line in enumerate(_lines(source), start=1):
        # A line starting with "%" is code, unless it starts with "%%", which
        # stands for the rest of the line with one "%" removed.
        if tag is None and line.startswith("%"):
            line = line[1:]
            if not line.startswith("%"):
                flush_text()
                segments.append(_Code("%", _chomp(line), lineno))
                continue
        for match in _ERB_TOKEN.finditer(line):
            for token in match.groups():
                if not token:
                    continue
                if tag is None:
                    if token in ("<%", "<%=", "<%#"):
                        flush_text()
                        tag, code, code_line = token, [], lineno
                    else:
                        text.append("<%" if token == "<%%" else token)
                elif token == "%>":
                    if tag != "<%#":
                        segments.append(_Code(tag, "".join(code), code_line))
                    tag = None
                else:
                    code.append("%>" if token == "%%>" else token)
    if tag is not None:
        # Ruby's erb prints the unclosed code as if it were text: surely a mistake.
        raise _Refused(code_line, f"'{tag}' is never closed with '%>'")
    flush_text()
    return segments


# --- Step 2: tokenize Ruby code --------------------------------------------

_KEYWORDS = {
    "BEGIN", "END", "alias", "and", "begin", "break", "case", "class", "def", "defined",
    "do", "else", "elsif", "end", "ensure", "false", "for", "if", "in", "module", "next",
    "nil", "not", "or", "redo", "rescue", "retry", "return", "self", "super", "then",
    "true", "undef", "unless", "until", "when", "while", "yield",
}
_SUPPORTED_KEYWORDS = {
    "if", "elsif", "else", "unless", "end", "do", "and", "or", "not", "true", "false", "nil",
}
# Longest operators first, so that e.g. "||=" is not read as "||" then "=".
_OPERATOR = re.compile(
    r"\*\*=?|<=>|===|=~|!~|==|!=|&&=|\|\|=|&&|\|\||<<=?|>>=?|[-+*/%^&|<>]=|::|\.\.\.?"
    r"|&\.|=>|->|[-+*/%<>=!(){}\[\],.|?:&^~]"
)
_SUPPORTED_OPERATORS = {
    "==", "!=", "&&", "||", "+", "-", "*", "<", "<=", ">", ">=", "=", "!",
    "(", ")", "[", "]", "{", "}", ",", ".", "|", "?", ":",
}
_NUMBER = re.compile(r"[0-9]+(?:_[0-9]+)*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACES = " \t\r\f\v"  # Ruby reads a "\r" inside a line as a space
_DOUBLE_QUOTE_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "s": " ", "e": "\x1b", "a": "\x07", "b": "\b",
    "f": "\f", "v": "\v", "\\": "\\", '"': '"', "'": "'", "#": "#",
}


class _Token:
    """kind is 'int', 'str', 'name', 'const', 'kw', 'op', 'sep' or 'eof'.

    For 'str' the value is a list of parts: str, or a token list for "#{...}".
    `spaced` says whether whitespace comes right before the token, which Ruby
    uses to tell `f (x)` from `f(x)` and `a -1` from `a - 1`.
    """

    def __init__(self, kind, value, line, spaced):
        self.kind = kind
        self.value = value
        self.line = line
        self.spaced = spaced

    def describe(self):
        return "end of code" if self.kind == "eof" else f"'{self.value}'"


class _Lexer:
    def __init__(self, code, line, comments_end_at_eof):
        self.code = code
        self.pos = 0
        self.line = line
        # A "#" comment is only harmless if a newline ends it: in a tag, ERB
        # appends the following text's code on the same line, and the comment
        # would swallow it. A percent line always ends with a newline.
        self.comments_end_at_eof = comments_end_at_eof

    def refuse(self, reason):
        raise _Refused(self.line, reason)

    def peek_char(self, offset=0):
        index = self.pos + offset
        return self.code[index] if index < len(self.code) else ""

    def tokenize(self, in_interpolation=False):
        tokens = []
        braces = 0
        while True:
            start = self.pos
            while self.peek_char() and self.peek_char() in _SPACES:
                self.pos += 1
            spaced = self.pos > start or not tokens
            char = self.peek_char()
            if not char:
                if in_interpolation:
                    self.refuse("unterminated string interpolation")
                tokens.append(_Token("eof", None, self.line, spaced))
                return tokens
            if char in "\n;":
                tokens.append(_Token("sep", char, self.line, spaced))
                self.line += char == "\n"
                self.pos += 1
            elif char == "#":
                self.skip_comment()
            elif char in "'\"":
                tokens.append(self.string(spaced))
            elif "0" <= char <= "9":
                tokens.append(self.number(spaced, negative=False))
            elif _IDENTIFIER.match(char):
                tokens.append(self.identifier(spaced, tokens))
            else:
                operator = self.operator(spaced, tokens)
                if in_interpolation and operator.value == "}" and braces == 0:
                    tokens.append(_Token("eof", None, self.line, spaced))
                    return tokens
                braces += {"{": 1, "}": -1}.get(operator.value, 0)
                tokens.append(operator)

    def skip_comment(self):
        end = self.code.find("\n", self.pos)
        if end == -1:
            if not self.comments_end_at_eof:
                self.refuse("a '#' comment must be followed by a newline inside the tag")
            end = len(self.code)
        self.pos = end

    def number(self, spaced, negative):
        match = _NUMBER.match(self.code, self.pos)
        text = match.group()
        self.pos = match.end()
        if _IDENTIFIER.match(self.peek_char()) or self.peek_char() == "_":
            self.refuse(f"unsupported number literal '{text}{self.peek_char()}'")
        if self.peek_char() == "." and "0" <= self.peek_char(1) <= "9":
            self.refuse("floating point numbers are not supported")
        if len(text) > 1 and text.startswith("0"):
            self.refuse(f"'{text}' is an octal number in Ruby; not supported")
        value = int(text.replace("_", ""))
        return _Token("int", -value if negative else value, self.line, spaced)

    def identifier(self, spaced, tokens):
        line = self.line
        word = _IDENTIFIER.match(self.code, self.pos).group()
        self.pos += len(word)
        after_dot = tokens and tokens[-1].kind == "op" and tokens[-1].value == "."
        # Ruby reads "empty?" as one name unless an "=" follows ("empty?==" is
        # a syntax error in Ruby 3.1).
        suffix = self.peek_char()
        if suffix in ("?", "!") and self.peek_char(1) != "=":
            if not after_dot:
                self.refuse(f"unsupported method call '{word}{suffix}'")
            word += suffix
            self.pos += 1
        if word == "_erbout" or (word.startswith("__") and word.endswith("__")):
            self.refuse(f"'{word}' is reserved by ERB or Ruby")
        if after_dot:
            return _Token("name", word, line, spaced)
        if word in _KEYWORDS:
            if word not in _SUPPORTED_KEYWORDS:
                self.refuse(f"unsupported Ruby keyword '{word}'")
            return _Token("kw", word, line, spaced)
        kind = "const" if word[0].isupper() else "name"
        return _Token(kind, word, line, spaced)

    def operator(self, spaced, tokens):
        match = _OPERATOR.match(self.code, self.pos)
        if not match:
            self.refuse(f"unsupported character {self.peek_char()!r}")
        op = match.group()
        if op not in _SUPPORTED_OPERATORS:
            self.refuse(f"unsupported operator '{op}'")
        self.pos = match.end()
        space_after = self.peek_char() in _SPACES + "\n"
        if op in ("+", "-", "*"):
            if _ends_value(tokens[-1] if tokens else None):
                # `a -1` means a(-1) when `a` is a method; Ruby guesses, we refuse.
                if spaced and not space_after:
                    self.refuse(f"ambiguous '{op}': put spaces on both sides of it")
            elif op == "-" and "0" <= self.peek_char() <= "9":
                return self.number(spaced, negative=True)
            elif op == "-":
                op = "unary -"
            else:
                self.refuse(f"unsupported unary '{op}'")
        if op in ("?", ":") and not (spaced and space_after):
            self.refuse(f"'{op}' is only supported as `condition ? a : b`, with spaces around it")
        return _Token("op", op, self.line, spaced)

    def string(self, spaced):
        line = self.line
        quote = self.peek_char()
        self.pos += 1
        parts = []
        text = []
        while True:
            char = self.peek_char()
            if not char:
                raise _Refused(line, "unterminated string")
            self.pos += 1
            if char == quote:
                break
            if char == "\n":
                self.line += 1
            if char == "\\" and quote == "'":
                # In single quotes only \\ and \' are escapes.
                if self.peek_char() in ("\\", "'"):
                    char = self.peek_char()
                    self.pos += 1
            elif char == "\\":
                escape = self.peek_char()
                if escape not in _DOUBLE_QUOTE_ESCAPES:
                    self.refuse(f"unsupported escape '\\{escape}' in a double-quoted string")
                char = _DOUBLE_QUOTE_ESCAPES[escape]
                self.pos += 1
            elif char == "#" and quote == '"' and self.peek_char() in ("{", "@", "$"):
                if self.peek_char() != "{":
                    self.refuse("'#@' and '#$' interpolate variables in Ruby; write '\\#'")
                self.pos += 1
                parts.append("".join(text))
                text = []
                parts.append(self.tokenize(in_interpolation=True))
                continue
            text.append(char)
        parts.append("".join(text))
        return _Token("str", parts, line, spaced)


def _ends_value(token):
    """Whether `token` can end an operand, making a following "-" binary."""
    if token is None:
        return False
    if token.kind in ("int", "str", "name", "const"):
        return True
    if token.kind == "kw":
        return token.value in ("true", "false", "nil", "end")
    return token.kind == "op" and token.value in (")", "]", "}")


# --- Step 3: parse tokens into nodes ----------------------------------------


class _Parser:
    """Recursive descent over Ruby's precedence, loosest first:

    modifier if/unless < and, or < not < ?: < || < && < == != (non-associative)
    < < <= > >= < + - < * < ! and unary - < .method calls
    """

    def __init__(self, tokens):
        self.tokens = tokens
        self.index = 0

    def peek(self, offset=0):
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self):
        token = self.peek()
        self.index += 1
        return token

    def at(self, kind, *values):
        token = self.peek()
        return token.kind == kind and (not values or token.value in values)

    def expect(self, kind, value=None):
        if not self.at(kind, *([value] if value else [])):
            self.unexpected()
        return self.advance()

    def unexpected(self):
        token = self.peek()
        raise _Refused(token.line, f"unexpected {token.describe()} (unsupported or invalid Ruby)")

    def skip_newlines(self):
        while self.at("sep", "\n"):
            self.advance()

    # Whole tags

    def statements(self):
        """The code of a `<% %>` tag or a percent line: a list of statements."""
        result = []
        while True:
            while self.at("sep"):
                self.advance()
            if self.at("eof"):
                return result
            result.append(self.statement())
            if not self.at("sep", "\n", ";") and not self.at("eof"):
                self.unexpected()

    def output_expression(self):
        """The code of a `<%= %>` tag: one expression, or nothing (nil)."""
        self.skip_newlines()
        if self.at("eof"):
            return _Literal(None)
        expression = self.modifiers(self.logical())
        self.skip_newlines()
        self.expect("eof")
        return expression

    def statement(self):
        token = self.peek()
        if self.at("kw", "if", "unless", "elsif"):
            self.advance()
            return _BlockMarker(token.value, token.line, self.logical())
        if self.at("kw", "else", "end"):
            self.advance()
            return _BlockMarker(token.value, token.line)
        if self.at("name") and self.peek(1).kind == "op" and self.peek(1).value == "=":
            self.index += 2
            self.skip_newlines()
            assignment = _Assign(token.value, self.ternary(), token.line)
            if self.at("kw", "and", "or"):
                # Ruby reads `x = a or b` as `(x = a) or b`: surely not what was meant.
                raise _Refused(token.line, f"'{self.peek().value}' after an assignment; use '&&' or '||'")
            return self.modifiers(assignment)
        expression = self.logical()
        if self.at("kw", "do"):
            return self.each_block(expression)
        return self.modifiers(expression)

    def modifiers(self, expression):
        while self.at("kw", "if", "unless"):
            keyword = self.advance()
            expression = _Modifier(expression, self.logical(), keyword.value == "unless", keyword.line)
        return expression

    def each_block(self, call):
        if not (isinstance(call, _MethodCall) and call.name == "each" and not call.arguments):
            raise _Refused(self.peek().line, "'do' blocks are only supported as `list.each do |item|`")
        line = self.advance().line
        self.expect("op", "|")
        variable = self.expect("name").value
        self.expect("op", "|")
        return _BlockMarker("each", line, call.receiver, variable)

    # Expressions, loosest binding first

    def logical(self):
        left = self.negation()
        while self.at("kw", "and", "or"):
            keyword = self.advance().value
            self.skip_newlines()
            left = _Logical(keyword == "and", left, self.negation())
        return left

    def negation(self):
        if self.at("kw", "not"):
            line = self.advance().line
            return _Not(self.negation(), line)
        return self.ternary()

    def ternary(self):
        condition = self.logical_or()
        if not self.at("op", "?"):
            return condition
        self.advance()
        self.skip_newlines()
        if_true = self.ternary()
        self.expect("op", ":")
        self.skip_newlines()
        return _Ternary(condition, if_true, self.ternary())

    def logical_or(self):
        left = self.logical_and()
        while self.at("op", "||"):
            self.advance()
            self.skip_newlines()
            left = _Logical(False, left, self.logical_and())
        return left

    def logical_and(self):
        left = self.equality()
        while self.at("op", "&&"):
            self.advance()
            self.skip_newlines()
            left = _Logical(True, left, self.equality())
        return left

    def equality(self):
        left = self.comparison()
        if self.at("op", "==", "!="):
            token = self.advance()
            self.skip_newlines()
            left = _Binary(token.value, left, self.comparison(), token.line)
            if self.at("op", "==", "!="):  # `a == b == c` is a syntax error in Ruby
                self.unexpected()
        return left

    def comparison(self):
        return self.binary_chain(("<", "<=", ">", ">="), self.additive)

    def additive(self):
        return self.binary_chain(("+", "-"), self.multiplicative)

    def multiplicative(self):
        return self.binary_chain(("*",), self.unary)

    def binary_chain(self, operators, operand):
        left = operand()
        while self.at("op", *operators):
            token = self.advance()
            self.skip_newlines()
            left = _Binary(token.value, left, operand(), token.line)
        return left

    def unary(self):
        if self.at("op", "!"):
            line = self.advance().line
            return _Not(self.unary(), line)
        if self.at("op", "unary -"):
            line = self.advance().line
            return _Negate(self.unary(), line)
        return self.method_calls(self.primary())

    def method_calls(self, receiver):
        while self.at("op", "."):
            self.advance()
            name = self.expect("name")
            arguments = []
            if self.at("op", "(") and not self.peek().spaced:
                arguments = self.call_arguments()
            receiver = _MethodCall(receiver, name.value, arguments, name.line)
        return receiver

    def call_arguments(self):
        self.expect("op", "(")
        self.skip_newlines()
        arguments = []
        while not self.at("op", ")"):
            arguments.append(self.ternary())
            self.skip_newlines()
            if not self.at("op", ")"):
                self.expect("op", ",")
                self.skip_newlines()
        self.advance()
        return arguments

    def primary(self):
        token = self.advance()
        if token.kind == "int":
            return _Literal(token.value)
        if token.kind == "str":
            return _String([self.interpolation(part) for part in token.value], token.line)
        if token.kind == "kw" and token.value in ("true", "false", "nil"):
            return _Literal({"true": True, "false": False, "nil": None}[token.value])
        if token.kind == "op" and token.value == "(":
            return self.parenthesized()
        if token.kind == "const" and token.value == "ENV":
            return self.env_access(token)
        if token.kind == "const":
            raise _Refused(token.line, f"unsupported constant '{token.value}'")
        if token.kind == "name":
            if self.at("op", "(") and not self.peek().spaced:
                raise _Refused(token.line, f"unsupported method call '{token.value}(...)'")
            return _Variable(token.value, token.line)
        self.index -= 1
        self.unexpected()

    def interpolation(self, part):
        if isinstance(part, str):
            return part
        parser = _Parser(part)
        return parser.output_expression()

    def parenthesized(self):
        self.skip_newlines()
        if self.at("op", ")"):  # `()` is nil in Ruby
            self.advance()
            return _Literal(None)
        inner = self.modifiers(self.logical())
        self.skip_newlines()
        self.expect("op", ")")
        return inner

    def env_access(self, token):
        if self.at("op", "[") and not self.peek().spaced:
            self.advance()
            self.skip_newlines()
            name = self.ternary()
            self.skip_newlines()
            self.expect("op", "]")
            return _EnvLookup(name, token.line)
        if self.at("op", ".") and self.peek(1).kind == "name" and self.peek(1).value == "fetch":
            self.index += 2
            if not (self.at("op", "(") and not self.peek().spaced):
                raise _Refused(token.line, "ENV.fetch is only supported with parentheses: ENV.fetch('NAME')")
            arguments = self.call_arguments()
            if len(arguments) not in (1, 2):
                raise _Refused(token.line, "ENV.fetch takes 1 or 2 arguments")
            block = None
            if self.at("op", "{"):
                if len(arguments) == 2:
                    raise _Refused(token.line, "ENV.fetch with both a default and a block")
                self.advance()
                if self.at("op", "|"):
                    raise _Refused(token.line, "block parameters in ENV.fetch are not supported")
                self.skip_newlines()
                block = self.logical()
                self.skip_newlines()
                self.expect("op", "}")
            return _EnvFetch(arguments, block, token.line)
        raise _Refused(token.line, "ENV is only supported as ENV['NAME'] or ENV.fetch(...)")


def _parse_segments(segments):
    """Turn _Text/_Code segments into a flat list of runnable items and markers."""
    items = []
    for segment in segments:
        if isinstance(segment, _Text):
            items.append(_Output(_Literal(segment.text), line=None, code=None))
            continue
        lexer = _Lexer(segment.code, segment.line, comments_end_at_eof=segment.tag == "%")
        with _naming(segment.code):
            parser = _Parser(lexer.tokenize())
            if segment.tag == "<%=":
                items.append(_Output(parser.output_expression(), segment.line, segment.code))
            else:
                for statement in parser.statements():
                    if isinstance(statement, _BlockMarker):
                        statement.code = segment.code
                    else:
                        statement = _Statement(statement, segment.code)
                    items.append(statement)
    return items


# --- Step 4: nest if/unless/each ... end into blocks ------------------------


class _BlockMarker:
    """A statement that opens, continues or closes a block: if, unless, elsif,
    else, each (do |variable|) or end. Blocks may span several tags."""

    def __init__(self, keyword, line, expression=None, variable=None):
        self.keyword = keyword
        self.line = line
        self.expression = expression
        self.variable = variable
        self.code = None  # the tag's code, for error messages


class _IfBlock:
    def __init__(self, marker):
        self.keyword = marker.keyword  # "if" or "unless"
        self.line = marker.line
        self.code = marker.code
        self.branches = [(marker.expression, [])]  # (condition or None for else, body)

    def run(self, context):
        for index, (condition, body) in enumerate(self.branches):
            if condition is None:
                chosen = True
            else:
                with _naming(self.code):
                    chosen = _truthy(condition.evaluate(context))
                if index == 0 and self.keyword == "unless":
                    chosen = not chosen
            if chosen:
                _run_body(body, context)
                return


class _EachBlock:
    def __init__(self, marker):
        self.keyword = "each"
        self.line = marker.line
        self.code = marker.code
        self.list = marker.expression
        self.variable = marker.variable
        self.body = []

    def run(self, context):
        with _naming(self.code):
            values = self.list.evaluate(context)
            if not isinstance(values, list):
                raise _Refused(self.line, f"undefined method 'each' for {_class_name(values)}")
        for value in values:
            # Each call of a Ruby block gets fresh block-local variables.
            context.scopes.append({self.variable: value})
            try:
                _run_body(self.body, context)
            finally:
                context.scopes.pop()


def _build_tree(items):
    root = []
    open_blocks = []  # innermost last

    def current_body():
        if not open_blocks:
            return root
        block = open_blocks[-1]
        return block.body if isinstance(block, _EachBlock) else block.branches[-1][1]

    for item in items:
        if not isinstance(item, _BlockMarker):
            current_body().append(item)
            continue
        keyword = item.keyword
        innermost = open_blocks[-1] if open_blocks else None
        if keyword in ("if", "unless", "each"):
            block = _EachBlock(item) if keyword == "each" else _IfBlock(item)
            current_body().append(block)
            open_blocks.append(block)
        elif keyword == "end":
            if innermost is None:
                raise _Refused(item.line, "'end' without a matching 'if', 'unless' or 'do'")
            open_blocks.pop()
        else:  # elsif, else
            usable = (
                isinstance(innermost, _IfBlock)
                and innermost.branches[-1][0] is not None
                and not (keyword == "elsif" and innermost.keyword == "unless")
            )
            if not usable:
                raise _Refused(item.line, f"unexpected '{keyword}'")
            innermost.branches.append((item.expression, []))
    if open_blocks:
        block = open_blocks[-1]
        raise _Refused(block.line, f"'{block.keyword}' is never closed with 'end'")
    return root


# --- Step 5: run ------------------------------------------------------------


class _Context:
    def __init__(self, env):
        self.env = env
        self.scopes = [{}]  # local variables; one dict per running block, innermost last
        self.output = []

    def lookup(self, name, line):
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        # Ruby would see nil for a variable assigned only in a branch that did
        # not run, or a variable of the erb launcher script itself: refuse both.
        raise _Refused(line, f"undefined local variable or method '{name}' (or not assigned yet)")

    def assign(self, name, value):
        for scope in reversed(self.scopes):
            if name in scope:
                scope[name] = value
                return
        self.scopes[-1][name] = value


def _run_body(body, context):
    for item in body:
        item.run(context)


@contextmanager
def _naming(code):
    """Add the tag's code to any error raised inside the `with` block."""
    try:
        yield
    except _Refused as error:
        error.code = error.code or code
        raise


class _Output:
    """Text, or the value of `<%= %>`, appended to the output."""

    def __init__(self, expression, line, code):
        self.expression = expression
        self.line = line
        self.code = code

    def run(self, context):
        with _naming(self.code):
            context.output.append(_to_s(self.expression.evaluate(context), self.line))


class _Statement:
    """A statement of `<% %>` or a percent line, run for its effect."""

    def __init__(self, expression, code):
        self.expression = expression
        self.code = code

    def run(self, context):
        with _naming(self.code):
            self.expression.evaluate(context)


# Ruby semantics on Python values


def _truthy(value):
    return value is not None and value is not False


def _class_name(value):
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {int: "an Integer", str: "a String", list: "an Array"}[type(value)]


def _ruby_equal(left, right):
    # Python says 1 == True and 1 == 1.0; Ruby compares classes first.
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_ruby_equal, left, right))
    return left == right


def _to_s(value, line):
    if isinstance(value, list):
        raise _Refused(line, "printing an Array is not supported")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# Ruby's String#to_i: optional whitespace, sign and "0d" prefix, then digits
# with single underscores between them; anything else stops the number.
_STRING_TO_I = re.compile(r"[ \t\n\v\f\r]*([+-]?)(?:0[dD])?([0-9]+(?:_[0-9]+)*)")
_AWK_SPACE = " \t\n\v\f\r"


def _string_to_i(text):
    match = _STRING_TO_I.match(text)
    if not match:
        return 0
    value = int(match.group(2).replace("_", ""))
    return -value if match.group(1) == "-" else value


def _split(text, separator, line):
    if separator is None or separator == " ":
        # Ruby's awk-style split: runs of ASCII whitespace, ends ignored.
        stripped = text.strip(_AWK_SPACE)
        return re.split(f"[{re.escape(_AWK_SPACE)}]+", stripped) if stripped else []
    if not isinstance(separator, str):
        raise _Refused(line, f"split with {_class_name(separator)} separator is not supported")
    if separator == "":
        return list(text)
    parts = text.split(separator)
    while parts and parts[-1] == "":  # Ruby drops trailing empty fields
        parts.pop()
    return parts


# Expression nodes: each has evaluate(context) returning a Ruby value.


class _Literal:
    def __init__(self, value):
        self.value = value

    def evaluate(self, context):
        return self.value


class _String:
    def __init__(self, parts, line):
        self.parts = parts  # str, or an expression node for "#{...}"
        self.line = line

    def evaluate(self, context):
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
            else:
                pieces.append(_to_s(part.evaluate(context), self.line))
        return "".join(pieces)


class _Variable:
    def __init__(self, name, line):
        self.name = name
        self.line = line

    def evaluate(self, context):
        return context.lookup(self.name, self.line)


class _Assign:
    def __init__(self, name, value, line):
        self.name = name
        self.value = value
        self.line = line

    def evaluate(self, context):
        value = self.value.evaluate(context)
        context.assign(self.name, value)
        return value


def _env_value(context, name, line):
    """ENV[name], or None when unset."""
    if not isinstance(name, str):
        raise _Refused(line, f"no implicit conversion of {_class_name(name)} into String (ENV key)")
    if "\0" in name:
        raise _Refused(line, "ENV key contains a NUL character")
    value = context.env.get(name)
    if value is not None and not value.isascii():
        # Ruby tags ENV strings with the locale's encoding, so mixing them with
        # the UTF-8 template may fail or not depending on LANG: refuse.
        raise _Refused(line, f"ENV['{name}'] contains non-ASCII characters")
    return value


class _EnvLookup:
    def __init__(self, name, line):
        self.name = name
        self.line = line

    def evaluate(self, context):
        return _env_value(context, self.name.evaluate(context), self.line)


class _EnvFetch:
    def __init__(self, arguments, block, line):
        self.arguments = arguments
        self.block = block
        self.line = line

    def evaluate(self, context):
        name = self.arguments[0].evaluate(context)
        value = _env_value(context, name, self.line)
        if value is not None:
            return value
        if self.block is not None:
            return self.block.evaluate(context)
        if len(self.arguments) == 2:
            return self.arguments[1].evaluate(context)
        raise _Refused(self.line, f"key not found: {name!r} (KeyError from ENV.fetch)")


class _Not:
    def __init__(self, operand, line):
        self.operand = operand
        self.line = line

    def evaluate(self, context):
        return not _truthy(self.operand.evaluate(context))


class _Negate:
    def __init__(self, operand, line):
        self.operand = operand
        self.line = line

    def evaluate(self, context):
        value = self.operand.evaluate(context)
        if type(value) is not int:
            raise _Refused(self.line, f"unary '-' on {_class_name(value)} is not supported")
        return -value


class _Logical:
    """&&, and (is_and=True) or ||, or: return an operand, like Ruby."""

    def __init__(self, is_and, left, right):
        self.is_and = is_and
        self.left = left
        self.right = right

    def evaluate(self, context):
        left = self.left.evaluate(context)
        if _truthy(left) == self.is_and:
            return self.right.evaluate(context)
        return left


class _Ternary:
    def __init__(self, condition, if_true, if_false):
        self.condition = condition
        self.if_true = if_true
        self.if_false = if_false

    def evaluate(self, context):
        if _truthy(self.condition.evaluate(context)):
            return self.if_true.evaluate(context)
        return self.if_false.evaluate(context)


class _Modifier:
    """`expression if condition` (or unless): nil when the expression is skipped."""

    def __init__(self, expression, condition, is_unless, line):
        self.expression = expression
        self.condition = condition
        self.is_unless = is_unless
        self.line = line

    def evaluate(self, context):
        if _truthy(self.condition.evaluate(context)) != self.is_unless:
            return self.expression.evaluate(context)
        return None


class _Binary:
    def __init__(self, operator, left, right, line):
        self.operator = operator
        self.left = left
        self.right = right
        self.line = line

    def evaluate(self, context):
        left = self.left.evaluate(context)
        right = self.right.evaluate(context)
        op = self.operator
        if op == "==":
            return _ruby_equal(left, right)
        if op == "!=":
            return not _ruby_equal(left, right)
        both = (type(left), type(right))
        if op == "+" and both in ((int, int), (str, str), (list, list)):
            return left + right
        if op == "-" and both == (int, int):
            return left - right
        if op == "*" and both == (int, int):
            return left * right
        if op in ("<", "<=", ">", ">=") and both in ((int, int), (str, str)):
            # Ruby compares strings byte by byte; for UTF-8 that is code point order.
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        raise _Refused(
            self.line,
            f"'{op}' between {_class_name(left)} and {_class_name(right)}"
            " (an error in Ruby, or unsupported)",
        )


class _MethodCall:
    def __init__(self, receiver, name, arguments, line):
        self.receiver = receiver
        self.name = name
        self.arguments = arguments
        self.line = line

    def evaluate(self, context):
        value = self.receiver.evaluate(context)
        arguments = [argument.evaluate(context) for argument in self.arguments]
        name = self.name
        if name == "split" and isinstance(value, str) and len(arguments) <= 1:
            return _split(value, arguments[0] if arguments else None, self.line)
        if arguments:
            raise _Refused(self.line, f"'.{name}' with arguments is not supported")
        if name == "nil?":
            return value is None
        if name == "to_s" and not isinstance(value, list):
            return _to_s(value, self.line)
        if name == "to_i" and (value is None or type(value) is int):
            return 0 if value is None else value
        if name == "to_i" and isinstance(value, str):
            return _string_to_i(value)
        if name == "empty?" and isinstance(value, (str, list)):
            return len(value) == 0
        if name == "each":
            raise _Refused(self.line, "'.each' is only supported as `list.each do |item|`")
        raise _Refused(self.line, f"undefined or unsupported method '.{name}' for {_class_name(value)}")
