"""Tests for bin/erb.py: every template must render exactly as Ruby's `erb` does, or fail.

Most tests compare against the real `erb` command. Starting Ruby takes ~80 ms,
too slow for hundreds of cases, so a small Ruby driver forks once per case and
loads the `erb` executable found on PATH inside the child, with that case's
ENV and ARGV; `test_driver_agrees_with_erb_command` checks the driver against
plain `erb FILE` runs for a sample of cases.
"""

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from erb import TemplateError, render

# Environments the corpus runs under. The renderer sees exactly what Ruby sees
# (plus PATH, which the templates never read). No LANG: the erb command reads
# the template as UTF-8 whatever the locale.
ENVS = {
    "unset": {},
    "empty": {"PORT": "", "HOST": "", "LIST": "", "FLAG": "", "NUM": ""},
    "typical": {"PORT": "8080", "HOST": "example.com", "LIST": "a,b,c", "FLAG": "true", "NUM": "4"},
    "odd": {"PORT": " 80_80 ", "HOST": "  ", "LIST": ",a,,b,,", "FLAG": "false", "NUM": "-0d12abc"},
    "words": {"PORT": "abc", "HOST": "a b\tc", "LIST": " x  y ", "FLAG": "0", "NUM": "+7_"},
}
ALL = tuple(ENVS)

# (id, template, environments). Ruby either prints something, which we must
# reproduce byte for byte, or fails, in which case we must raise TemplateError.
CORPUS = [
    # Plain text
    ("text-only", "worker_processes 4;\nevents {}\n", ("unset",)),
    ("text-no-final-newline", "a\nb", ("unset",)),
    ("text-crlf", "a\r\n<%= 1 %>\r\n% if true\r\nb\r\n% end\r\n", ("unset",)),
    ("text-utf8", "# café ☕ <%= 'ünï' %>\n", ("unset",)),
    ("empty-template", "", ("unset",)),
    ("blank-lines", "\n\n<% %>\n\n", ("unset",)),
    # ENV lookups and defaults
    ("env-single-quotes", "listen <%= ENV['PORT'] %>;\n", ALL),
    ("env-double-quotes", 'listen <%= ENV["PORT"] %>;\n', ALL),
    ("env-or-int", "listen <%= ENV['PORT'] || 5000 %>;\n", ALL),
    ("env-or-string", "server_name <%= ENV['HOST'] || 'localhost' %>;\n", ALL),
    ("env-or-chain", "<%= ENV['NOPE'] || ENV['HOST'] || 'x' %>\n", ALL),
    ("env-or-false", "<%= ENV['PORT'] || false %>|<%= nil || nil %>\n", ALL),
    ("env-interpolated-key", "<%= ENV[\"PO#{'RT'}\"] %>\n", ALL),
    ("env-nonstring-key", "<%= ENV[1] %>\n", ("unset",)),
    ("env-multiline-index", "<%= ENV[\n  'PORT'\n] %>\n", ("typical",)),
    # ENV.fetch
    ("fetch-one-arg", "<%= ENV.fetch('PORT') %>\n", ALL),
    ("fetch-default", "<%= ENV.fetch('PORT', 5000) %>\n", ALL),
    ("fetch-block", "<%= ENV.fetch('PORT') { 'dflt' } %>\n", ALL),
    ("fetch-block-then-method", "<%= ENV.fetch('NUM') { '3' }.to_i * 2 %>\n", ALL),
    ("fetch-nil-default", "<%= ENV.fetch('PORT', nil).nil? %>\n", ALL),
    ("fetch-too-many-args", "<%= ENV.fetch('PORT', 1, 2) %>\n", ("unset",)),
    # if / elsif / else / unless
    ("if-tag", "<% if ENV['FLAG'] %>on<% end %>\n", ALL),
    ("if-else-tag", "<% if ENV['FLAG'] == 'true' %>on<% else %>off<% end %>\n", ALL),
    (
        "if-elsif-else",
        "<% if ENV['PORT'] == '8080' %>\nA\n<% elsif ENV['PORT'] %>\nB\n<% else %>\nC\n<% end %>\n",
        ALL,
    ),
    ("unless-else", "<% unless ENV['HOST'] %>no host<% else %>host<% end %>\n", ALL),
    ("unless-elsif-is-error", "<% unless 1 %>a<% elsif 2 %>b<% end %>\n", ("unset",)),
    ("nested-if", "% if ENV['PORT']\n% if ENV['HOST']\nboth\n% end\nport\n% end\n", ALL),
    ("if-parens", "<% if(ENV['FLAG']) %>y<% end %>\n", ALL),
    ("if-semicolons-one-tag", "<% if ENV['FLAG']; x = 1; else; x = 2; end %><%= x %>\n", ALL),
    ("if-multiline-condition", "<% if ENV['PORT'] &&\n     ENV['HOST'] %>both<% end %>\n", ALL),
    ("if-missing-end", "<% if ENV['FLAG'] %>on\n", ("unset",)),
    ("extra-end", "a<% end %>\n", ("unset",)),
    ("else-after-else", "<% if 1 %>a<% else %>b<% else %>c<% end %>\n", ("unset",)),
    ("elsif-after-else", "<% if nil %>a<% else %>b<% elsif 1 %>c<% end %>\n", ("unset",)),
    ("else-without-if", "<% else %>\n", ("unset",)),
    ("if-without-condition", "<% if %>a<% end %>\n", ("unset",)),
    # Truthiness and operators
    ("truthy-empty-string", "<% if ENV['HOST'] %>set<% else %>unset<% end %>\n", ALL),
    ("print-comparisons", "<%= ENV['PORT'] == '' %> <%= ENV['PORT'] != nil %> <%= ENV['PORT'] == nil %>\n", ALL),
    ("int-vs-string-equality", "<%= 1 == '1' %> <%= ENV['NUM'].to_i == 4 %> <%= nil == false %>\n", ALL),
    ("not-operator", "<%= !ENV['FLAG'] %> <%= !!ENV['FLAG'] %> <%= !nil == true %>\n", ALL),
    ("and-or-values", "<%= ENV['PORT'] && ENV['HOST'] %>|<%= ENV['PORT'] || ENV['HOST'] %>\n", ALL),
    ("precedence-and-over-or", "<%= ENV['NOPE'] || ENV['PORT'] && 'both' %>\n", ALL),
    ("precedence-not-eq", "<%= !ENV['PORT'] == false %>\n", ALL),
    ("equality-chain-is-error", "<%= 1 == 1 == 1 %>\n", ("unset",)),
    ("word-operators", "<% if not ENV['FLAG'] or ENV['PORT'] and ENV['HOST'] %>y<% end %>\n", ALL),
    ("word-operators-in-output", "<%= (ENV['NOPE'] or 'd') %>|<%= not nil %>\n", ALL),
    ("ternary", "<%= ENV['FLAG'] == 'true' ? 'on' : 'off' %>\n", ALL),
    ("ternary-nested", "<%= ENV['PORT'] ? ENV['HOST'] ? 'both' : 'port' : 'none' %>\n", ALL),
    ("modifier-if", "<%= 'listen 443 ssl;' if ENV['FLAG'] %>|<%= 'x' unless ENV['FLAG'] %>\n", ALL),
    ("modifier-in-parens", "<%= (ENV['PORT'] if ENV['FLAG']) || 'none' %>\n", ALL),
    ("predicate-before-equals-is-error", "<%= ''.empty?==true %>\n", ("unset",)),
    ("modifier-on-assignment", "<% x = 'a' %><% x = 'b' if ENV['PORT'] %><%= x %>\n", ALL),
    ("comparisons", "<%= ENV['NUM'].to_i > 3 %> <%= 2 <= 2 %> <%= 'a' < 'b' %> <%= 'b' >= 'c' %>\n", ALL),
    ("comparison-mixed-is-error", "<%= 1 < 'a' %>\n", ("unset",)),
    ("comparison-nil-is-error", "<%= ENV['NOPE'] > 1 %>\n", ("unset",)),
    ("arithmetic", "<%= ENV['NUM'].to_i * 2 + 1 - -3 %> <%= 2 - 3 * 4 %> <%= -2.to_s %>\n", ALL),
    ("int-literals", "<%= 1_000 %> <%= 0 %> <%= -0 %> <%= 123456789012345678901234567890 + 1 %>\n", ("unset",)),
    ("bad-int-literal", "<%= 1__0 %>\n", ("unset",)),
    # Conversions and predicates
    ("to-i", "<%= ENV['PORT'].to_i %>|<%= ENV['NUM'].to_i %>\n", ALL),
    ("to-i-unset-is-zero", "<%= ENV['NOPE'].to_i %>|<%= nil.to_i %>|<%= 7.to_i %>\n", ("unset",)),
    ("to-i-parens-default", "<%= (ENV['PORT'] || 1024).to_i %>\n", ALL),
    ("to-i-true-is-error", "<%= true.to_i %>\n", ("unset",)),
    (
        "to-i-edge-strings",
        "<%= ' 12'.to_i %> <%= \"\\t\\n-7\".to_i %> <%= '+5'.to_i %> <%= '+-5'.to_i %> <%= '- 5'.to_i %>"
        " <%= '1_000'.to_i %> <%= '1__000'.to_i %> <%= '_1'.to_i %> <%= '1_'.to_i %> <%= '0d12'.to_i %>"
        " <%= '-0D1_0'.to_i %> <%= '0x1A'.to_i %> <%= '012'.to_i %> <%= '1e3'.to_i %> <%= ''.to_i %>"
        " <%= \"\\v\\f\\r9\".to_i %> <%= '12abc'.to_i %> <%= '٣'.to_i %> <%= '0d_1'.to_i %>\n",
        ("unset",),
    ),
    ("to-s", "<%= ENV['PORT'].to_s.empty? %>|<%= 5.to_s + 'x' %>|<%= nil.to_s %>|<%= true.to_s %>\n", ALL),
    ("empty-predicate", "<% if ENV['HOST'] && !ENV['HOST'].empty? %>host<% end %>\n", ALL),
    ("empty-on-nil-is-error", "<%= ENV['HOST'].empty? %>\n", ("unset", "empty")),
    ("nil-predicate", "<%= ENV['HOST'].nil? %> <%= nil.nil? %> <%= false.nil? %>\n", ALL),
    ("method-call-empty-parens", "<%= ENV['NUM'].to_i() %>\n", ALL),
    # Strings
    ("interpolation", "<%= \"#{ENV['HOST']}:#{ENV['PORT'] || 80}/x\" %>\n", ALL),
    ("interpolation-nested-quotes", "<%= \"a#{ENV['NOPE'] || \"b#{1 + 1}\"}c\" %>\n", ("unset",)),
    ("interpolation-with-fetch-block", "<%= \"#{ENV.fetch('PORT') { 'p' }}\" %>\n", ALL),
    ("interpolation-empty", "<%= \"a#{}b\" %>\n", ("unset",)),
    ("concat", "<%= 'root ' + (ENV['HOST'] || 'h') + ';' %>\n", ALL),
    ("concat-nil-is-error", "<%= ENV['HOST'] + 'x' %>\n", ALL),
    ("string-plus-int-is-error", "<%= 'a' + 1 %>\n", ("unset",)),
    ("int-plus-string-is-error", "<%= 1 + 'a' %>\n", ("unset",)),
    ("single-quote-escapes", "<%= 'a\\\\b\\'c\\nd\\qe' %>\n", ("unset",)),
    ("double-quote-escapes", "<%= \"t\\tn\\nq\\\"b\\\\h\\#{x}s\\se\\e\" %>\n", ("unset",)),
    ("hash-without-brace", "<%= \"a#b#\" %>\n", ("unset",)),
    ("multiline-string", "<%= 'a\nb' %>\n", ("unset",)),
    ("unterminated-string", "<%= 'abc %>\n", ("unset",)),
    # split / each
    ("split-each", "<% ENV['LIST'].split(',').each do |v| %>server <%= v %>;\n<% end %>", ("typical", "odd", "empty", "words")),
    ("split-each-unset-is-error", "<% ENV['LIST'].split(',').each do |v| %><%= v %><% end %>", ("unset",)),
    ("split-space", "% (ENV['LIST'] || '').split(' ').each do |v|\n[<%= v %>]\n% end\n", ALL),
    ("split-no-arg", "<% (ENV['HOST'] || '').split.each do |w| %>(<%= w %>)<% end %>\n", ALL),
    ("split-empty-sep", "<% 'abc'.split('').each do |c| %><%= c %>-<% end %>\n", ("unset",)),
    ("split-multichar-sep", "<% 'a, b,,c, '.split(', ').each do |c| %>[<%= c %>]<% end %>\n", ("unset",)),
    ("split-empty-checks", "<%= ''.split(',').empty? %> <%= ',,'.split(',').empty? %>\n", ("unset",)),
    ("split-arrays-equal", "<%= 'a,b'.split(',') == 'a b'.split %>\n", ("unset",)),
    ("each-nested", "<% 'a,b'.split(',').each do |x| %><% '1,2'.split(',').each do |y| %><%= x + y %> <% end %><% end %>\n", ("unset",)),
    ("each-block-var-is-local", "<% 'a'.split(',').each do |v| %><% w = v %><% end %><%= w %>\n", ("unset",)),
    ("each-shadows-outer", "<% v = 'out' %><% 'in'.split(',').each do |v| %><%= v %><% end %><%= v %>\n", ("unset",)),
    ("each-assigns-outer", "<% last = '' %><% 'a,b'.split(',').each do |v| %><% last = v %><% end %><%= last %>\n", ("unset",)),
    ("each-on-string-is-error", "<% 'ab'.each do |c| %><%= c %><% end %>\n", ("unset",)),
    ("else-in-each-is-error", "<% [1].each do |v| %>a<% else %>b<% end %>\n", ("unset",)),
    # ERB tags and percent lines
    ("comment-tag", "a<%# anything: if else end %>b\n<%# multi\nline %>c\n", ("unset",)),
    ("literal-tag-open", "a <%% b %%> c %> d\n", ("unset",)),
    ("escaped-close-in-code", "<%= '%%>' %>\n", ("unset",)),
    ("percent-lines", "%\na\n%%b\n%%%>c\n% # comment\n%  \nd\n", ("unset",)),
    ("percent-line-code", "% x = ENV['PORT'] || 'none'\nport=<%= x %>\n", ALL),
    ("percent-only-at-line-start", " % if true\n", ("unset",)),
    ("percent-eof-no-newline", "a\n% if true\nb\n% end", ("unset",)),
    ("percent-inside-multiline-tag", "<% x = 1\n%>\n% y = 2\n<%= x + y %>\n", ("unset",)),
    ("percent-not-in-tag", "<% if true\n%><%= 1 %>\n%><% end %>\n", ("unset",)),
    ("mixed-tag-and-percent", "<% if ENV['FLAG'] %>\n% if ENV['PORT']\nboth\n% end\n<% end %>\n", ALL),
    ("trim-tag-is-error", "<%- if true -%>\nx\n<%- end -%>\n", ("unset",)),
    ("output-empty-tag", "a<%= %>b<%=\n%>c<%= () %>d\n", ("unset",)),
    ("newlines-after-tags-kept", "<% x = 1 %>\n<% if true %>\nX\n<% end %>\n", ("unset",)),
    ("multiline-tag", "<%\n  port = ENV['PORT'] || '80'\n  host = ENV['HOST'] || 'h'\n%>\n<%= host %>:<%= port %>\n", ALL),
    ("comment-ended-by-newline", "<% x = 1 # a comment\n%><%= x %>\n", ("unset",)),
    ("percent-trailing-comment", "% x = 2 # set x\n<%= x %>\n", ("unset",)),
    # Variables
    ("assign-and-use", "<% port = ENV['PORT'] || 'y' %>listen <%= port %>;\n", ALL),
    ("reassign", "<% a = 1 %><% a = a + 1 %><%= a %>\n", ("unset",)),
    ("undefined-variable-is-error", "<%= nope %>\n", ("unset",)),
    ("use-before-assign-is-error", "<%= x %><% x = 1 %>\n", ("unset",)),
    ("method-call-style-is-error", "<%= foo(1) %>\n", ("unset",)),
    ("unknown-method-on-nil-is-error", "<%= ENV['NOPE'].strip %>\n", ("unset",)),
    ("nil-plus-string-is-error", "<%= nil + 'x' %>\n", ("unset",)),
    ("unbalanced-paren-is-error", "<%= (1 %>\n", ("unset",)),
    ("heredoc-is-error", "<%= <<~X %>\n", ("unset",)),
    ("multiple-statements", "<% a = 'x'; b = 'y' %><%= a + b %>\n", ("unset",)),
]

# Templates Ruby accepts that we refuse on purpose: (id, template, env, text the
# error message must contain, to show it names the offending code).
REFUSED = [
    ("unclosed-tag-printed-as-text", "a <%= 1 + 1\nb\n", {}, "never closed"),
    ("comment-swallows-text", "x<% # c %>\ny\n", {}, "comment"),
    ("launcher-local-variable", "<%= version %>\n", {}, "version"),
    ("assigned-in-skipped-branch", "<% if false %><% x = 1 %><% end %><%= x.nil? %>\n", {}, "x.nil?"),
    ("unsupported-method", "<%= ENV['PORT'].upcase %>\n", {"PORT": "80"}, "ENV['PORT'].upcase"),
    ("regexp-match", "<%= 'ab' =~ /b/ %>\n", {}, "=~"),
    ("float", "<%= 1.5 %>\n", {}, "1.5"),
    ("octal", "<%= 012 %>\n", {}, "012"),
    ("string-times-int", "<%= 'ab' * 2 %>\n", {}, "'ab' * 2"),
    ("array-literal", "<%= [1, 2].size %>\n", {}, "[1, 2]"),
    ("print-array", "<%= 'a,b'.split(',') %>\n", {}, "split"),
    ("fetch-without-parens", "<%= ENV.fetch 'PORT', 'd' %>\n", {}, "ENV.fetch"),
    ("fetch-default-and-block", "<%= ENV.fetch('PORT', 1) { 2 } %>\n", {}, "ENV.fetch"),
    ("ambiguous-minus", "<% x = 5 %><%= x -1 %>\n", {}, "x -1"),
    ("unary-minus-string", "<%= -ENV['PORT'] %>\n", {"PORT": "80"}, "-ENV['PORT']"),
    ("instance-variable-interpolation", "<%= \"a#@x\" %>\n", {}, "#@"),
    ("hex-escape", "<%= \"\\x41\" %>\n", {}, "\\x"),
    ("magic-comment", "<%# -*- coding: us-ascii -*- %>x\n", {}, "magic comment"),
    ("frozen-string-comment", "%# frozen_string_literal: true\nx\n", {}, "magic comment"),
    ("brace-block", "<% 'a'.split(',').each { |v| %><%= v %><% } %>\n", {}, "{"),
    ("ternary-without-spaces", "<%= true ?1 : 2 %>\n", {}, "?"),
    ("else-with-statement", "<% if nil %>a<% else x = 1 %><% end %>\n", {}, "else x = 1"),
    ("then-keyword", "<% if true then %>a<% end %>\n", {}, "then"),
    ("op-assign", "<% x = 1 %><% x += 1 %>\n", {}, "+="),
    ("assignment-then-or", "<% x = ENV['NOPE'] or 'd' %><%= x %>\n", {}, "'or' after an assignment"),
    ("unclosed-comment-printed-as-text", "a <%# note\n", {}, "'<%#' is never closed"),
    ("non-ascii-env-value", "<%= ENV['HOST'] %>\n", {"HOST": "café"}, "non-ASCII"),
    ("each-with-index", "<% 'a'.split(',').each_with_index do |v, i| %><% end %>\n", {}, "do"),
    ("leading-dot-continuation", "<%= ENV['PORT']\n  .to_i %>\n", {"PORT": "1"}, ".to_i"),
    ("puts", "<% puts 'x' %>\n", {}, "puts 'x'"),
    ("global-variable", "<%= $0 %>\n", {}, "$0"),
]


def _case_id(case):
    return case[0]


# --- Running Ruby -------------------------------------------------------------

ERB_COMMAND = shutil.which("erb")

# Forks once per case and runs the `erb` executable inside the child, with the
# case's ENV and ARGV, as `erb TEMPLATE` would run it. The executable is
# evaluated at the top level, where a main script's local variables live,
# because templates can see them (the RubyGems wrapper defines `version`); the
# driver itself therefore keeps no top-level local variables. Loading what
# every run needs up front is what makes each forked run fast.
RUBY_DRIVER = r"""
require "json"
require "erb"
Gem.activate_bin_path("erb", "erb", ">= 0.a") if Gem.respond_to?(:activate_bin_path)
$erb_command = ARGV.shift
puts JSON.generate(JSON.parse($stdin.read).map { |run|
  pid = fork do
    $stdout.reopen(run["stdout"], "wb")
    $stderr.reopen(run["stderr"], "wb")
    ENV.replace(run["env"])
    ARGV.replace([run["template"]])
    $0 = $erb_command
    eval(File.read($erb_command), TOPLEVEL_BINDING, $erb_command)
  end
  Process.wait(pid)
  $?.exitstatus
})
"""


class RubyRun:
    def __init__(self, status, stdout, stderr):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr


def require_erb():
    if ERB_COMMAND is None:
        if os.environ.get("CI"):
            pytest.fail("Ruby's `erb` command is not on PATH, but CI is set: install ruby")
        pytest.skip("Ruby's `erb` command is not on PATH; install ruby to compare with it")


def full_env(env):
    return {"PATH": os.environ["PATH"], **env}


def all_runs():
    """Every (template, env) the tests need Ruby's answer for."""
    runs = [(template, ENVS[env_name]) for _, template, env_names in CORPUS for env_name in env_names]
    runs += [(template, env) for _, template, env, _ in REFUSED]
    return runs


def ruby_results(tmp_dir):
    """Run every case through Ruby at once; returns {(template, env items): RubyRun}."""
    runs = all_runs()
    jobs = []
    for index, (template, env) in enumerate(runs):
        path = os.path.join(tmp_dir, f"case{index}.erb")
        with open(path, "wb") as file:
            file.write(template.encode("utf-8"))
        jobs.append({
            "template": path,
            "env": full_env(env),
            "stdout": path + ".out",
            "stderr": path + ".err",
        })
    completed = subprocess.run(
        ["ruby", "-e", RUBY_DRIVER, ERB_COMMAND],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        env=full_env({}),
        check=True,
    )
    results = {}
    for (template, env), job, status in zip(runs, jobs, json.loads(completed.stdout)):
        with open(job["stdout"], "rb") as out, open(job["stderr"], "rb") as err:
            results[template, tuple(sorted(env.items()))] = RubyRun(status, out.read(), err.read())
    return results


@pytest.fixture(scope="module")
def ruby(tmp_path_factory):
    require_erb()
    results = ruby_results(str(tmp_path_factory.mktemp("erb")))
    return lambda template, env: results[template, tuple(sorted(env.items()))]


# --- Comparison with Ruby -----------------------------------------------------

CORPUS_RUNS = [
    pytest.param(template, env_name, id=f"{case_id}[{env_name}]")
    for case_id, template, env_names in CORPUS
    for env_name in env_names
]


@pytest.mark.parametrize("template, env_name", CORPUS_RUNS)
def test_matches_ruby(ruby, template, env_name):
    env = ENVS[env_name]
    expected = ruby(template, env)
    if expected.status == 0:
        assert render(template, "t.erb", full_env(env)).encode("utf-8") == expected.stdout
    else:
        with pytest.raises(TemplateError):
            render(template, "t.erb", full_env(env))


@pytest.mark.parametrize("case_id, template, env, named", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_on_purpose(ruby, case_id, template, env, named):
    assert ruby(template, env).status == 0, "Ruby rejects this too: move it to CORPUS"
    with pytest.raises(TemplateError) as error:
        render(template, "t.erb", full_env(env))
    assert named in str(error.value)


def test_driver_agrees_with_erb_command(ruby, tmp_path):
    """The forking driver must give what a plain `erb FILE` run gives."""
    sample = all_runs()[::20] + [(template, env) for _, template, env, _ in REFUSED]

    def run_erb(index):
        template, env = sample[index]
        path = tmp_path / f"t{index}.erb"
        path.write_bytes(template.encode("utf-8"))
        return subprocess.run([ERB_COMMAND, str(path)], env=full_env(env), capture_output=True)

    with ThreadPoolExecutor() as pool:
        direct_runs = list(pool.map(run_erb, range(len(sample))))
    for (template, env), direct in zip(sample, direct_runs):
        via_driver = ruby(template, env)
        assert (direct.returncode, direct.stdout) == (via_driver.status, via_driver.stdout), template


# --- Errors without Ruby ------------------------------------------------------


@pytest.mark.parametrize(
    "template, lineno, reason",
    [
        pytest.param("a\nb\n<% if ENV['X'] %>\nc\n", 3, "'if' is never closed", id="unclosed-if"),
        pytest.param("a\n% if true\n% end\n% end\n", 4, "'end' without", id="extra-end"),
        pytest.param("a\n<%= 1 +\n  2 +\n  nope.upcase %>\n", 4, "upcase", id="multiline-tag"),
        pytest.param("a\nb\nc\n<%= nil + 'x' %>\n", 4, "'+' between nil", id="runtime-error"),
        pytest.param("a\n<%= 1\nb\n", 2, "'<%=' is never closed", id="unclosed-tag"),
        pytest.param("a\n%x = 1 2\n", 2, "unexpected '2'", id="percent-line"),
        pytest.param("<% 'a\nb\nc %>\n", 1, "unterminated string", id="unterminated-string"),
        pytest.param("a\n<%= ENV.fetch('X') %>\n", 2, "key not found", id="fetch-unset"),
        pytest.param("<% 'a'.split(',').each do |v| %>\n\n<% else %>\n<% end %>\n", 3, "unexpected 'else'", id="else-in-each"),
    ],
)
def test_error_line_numbers(template, lineno, reason):
    with pytest.raises(TemplateError) as error:
        render(template, "conf/nginx.conf.erb", {})
    assert error.value.filename == "conf/nginx.conf.erb"
    assert error.value.lineno == lineno
    assert reason in error.value.reason
    assert str(error.value) == f"conf/nginx.conf.erb:{lineno}: {error.value.reason}"


def test_render_ignores_unrelated_environment():
    assert render("<%= ENV['A'] %>-<%= ENV['B'] || 'b' %>\n", "t.erb", {"A": "1"}) == "1-b\n"


def test_error_names_the_code():
    with pytest.raises(TemplateError) as error:
        render("x\n<%= ENV['PORT'].to_f %>\n", "t.erb", {"PORT": "1"})
    assert "ENV['PORT'].to_f" in error.value.reason
