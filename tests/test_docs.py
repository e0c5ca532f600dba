"""The documentation holds together: its links lead somewhere, and its environment table is whole.

Links: every relative link and image in README.md and docs/*.md names a file that exists,
and every #anchor names a heading of that file, with GitHub's rules for heading anchors.
Links to other sites are not fetched.

The environment table: every environment variable the code reads is a row of the table in
docs/configuration.md. "The code" is what runs the app or starts it, the files a person
forking the template would change:

- Python (bin/*.py, config/gunicorn.conf.py, manage.py, myproject/**/*.py): the first
  argument of os.environ.get/setdefault, os.getenv, os.environ["X"] and `"X" in os.environ`,
  and of every helper a file defines that reads the environment under the name it is given
  as its first argument, whatever the helper is called (env_bool in myproject/settings.py,
  django_env_bool in bin/start_nginx.py).
- config/nginx.conf.erb: ENV['X'].
- Shell (bin/ scripts without an extension, Procfile, .ci/run): $X and ${X...} that the
  script does not assign itself.
- Makefile: variables given with ?= (a default the environment overrides) and variables
  used but never assigned.

tests/ is not "the code": it sets variables to drive the app, it does not read new ones.
The operating system's own variables (PATH, HOME, LD_PRELOAD...), which the code passes on
rather than reads as settings, and bash's own (SECONDS) are not in the table either.
"""

import ast
import re

from tests.mutations import MUTATIONS
from tests.stack import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIGURATION = REPO / "docs" / "configuration.md"

OPERATING_SYSTEM_VARIABLES = {"PATH", "HOME", "LD_PRELOAD", "TMPDIR", "USER", "SHELL", "PWD"}
# Set by bash itself (SECONDS counts the seconds since the script started).
SHELL_BUILTINS = {"SECONDS"}
MAKE_BUILTINS = {"CURDIR", "MAKE", "MAKEFLAGS", "SHELL"}


# --- Markdown -------------------------------------------------------------------------


def prose_lines(path):
    """The lines of a Markdown file outside fenced code blocks."""
    lines, in_code = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def github_anchor(heading):
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for line in prose_lines(path):
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            anchor = github_anchor(heading.group(1))
            # A repeated heading gets -1, -2... on GitHub.
            found.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
            seen[anchor] = seen.get(anchor, 0) + 1
    return found


def relative_links(path):
    """(target, anchor) of each link and image that points inside the repository."""
    for line in prose_lines(path):
        # Inline code is not a link, even when it looks like one.
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
            if not re.match(r"[a-z]+:", target):
                file, _, anchor = target.partition("#")
                yield file, anchor


def test_every_relative_link_in_the_docs_leads_to_a_file_and_heading():
    broken = []
    for doc in DOCS:
        for file, anchor in relative_links(doc):
            target = (doc.parent / file).resolve() if file else doc
            if not target.exists():
                broken.append(f"{doc.relative_to(REPO)}: {file} does not exist")
            elif anchor and anchor not in anchors(target):
                broken.append(f"{doc.relative_to(REPO)}: {file}#{anchor} names no heading")
    assert not broken, "\n".join(broken)


def test_the_readme_fits_on_a_screen_and_starts_with_what_a_newcomer_needs():
    # The first screen says what this is and why, shows the diagram, the two commands of the
    # quick start and the Heroku deploy; everything else is a link away, in docs/.
    readme = (REPO / "README.md").read_text()
    lines = readme.splitlines()

    assert len(lines) <= 80, f"README.md has {len(lines)} lines; move the rest to docs/"
    for must_have in ["nginx in front of gunicorn", "one web dyno", "make run", "make test",
                      "git push heroku main", "](docs/"]:
        assert must_have in readme, must_have


def test_github_anchors_drop_punctuation_and_keep_hyphens():
    assert github_anchor("On Heroku, and the nginx buildpack's own script") == \
        "on-heroku-and-the-nginx-buildpacks-own-script"
    assert github_anchor("make run, make test, make bench") == "make-run-make-test-make-bench"


# --- Environment variables ------------------------------------------------------------


def is_os_environ(node):
    return isinstance(node, ast.Attribute) and node.attr == "environ" and \
        isinstance(node.value, ast.Name) and node.value.id == "os"


def environment_keys(tree, helpers=frozenset()):
    """The expressions `tree` reads the environment with: the first argument of each call of
    os.environ.get/setdefault, os.getenv or one of `helpers`, X in os.environ["X"], and the
    left side of `X in os.environ`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            reads_environ = isinstance(function, ast.Attribute) and (
                (function.attr in {"get", "setdefault"} and is_os_environ(function.value))
                or (function.attr == "getenv" and isinstance(function.value, ast.Name) and function.value.id == "os"))
            if (reads_environ or (isinstance(function, ast.Name) and function.id in helpers)) and node.args:
                yield node.args[0]
        elif isinstance(node, ast.Subscript) and is_os_environ(node.value):
            yield node.slice
        elif isinstance(node, ast.Compare) and any(is_os_environ(each) for each in node.comparators):
            yield node.left


def environment_helpers(tree):
    """Functions that read the environment under the name given as their first argument."""
    helpers = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.args.args:
            name_argument = function.args.args[0].arg
            if any(isinstance(key, ast.Name) and key.id == name_argument for key in environment_keys(function)):
                helpers.add(function.name)
    return helpers


def python_variables(source):
    tree = ast.parse(source)
    keys = environment_keys(tree, environment_helpers(tree))
    return {key.value for key in keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}


def erb_variables(source):
    """ENV['X'] in Ruby code: inside <% %> tags and on lines that start with %."""
    ruby = re.findall(r"<%.*?%>", source, flags=re.DOTALL) + re.findall(r"^%.*$", source, flags=re.MULTILINE)
    return {name for code in ruby for name in re.findall(r"ENV\['([A-Z0-9_]+)'\]", code)}


def shell_variables(source):
    # A comment starts with a # at the start of a line or after a space ($# is no comment).
    code = re.sub(r"(^|\s)#.*$", "", source, flags=re.MULTILINE)
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", code))
    assigned = set(re.findall(r"(?:^|[\s;])(?:export )?([A-Z][A-Z0-9_]*)=", code, flags=re.MULTILINE))
    return used - assigned


def makefile_variables(source):
    with_defaults = set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", source, flags=re.MULTILINE))
    used = set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", source))
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*) [:?]?=", source, flags=re.MULTILINE))
    return with_defaults | (used - assigned - MAKE_BUILTINS)


def code_files():
    """(path, reader) for every file of "the code", as the module's docstring defines it."""
    for path in sorted((REPO / "bin").iterdir()):
        if path.suffix == ".py":
            yield path, python_variables
        elif not path.suffix and path.is_file():
            yield path, shell_variables
    yield REPO / "config" / "gunicorn.conf.py", python_variables
    yield REPO / "manage.py", python_variables
    for path in sorted((REPO / "myproject").rglob("*.py")):
        yield path, python_variables
    yield REPO / "config" / "nginx.conf.erb", erb_variables
    yield REPO / "Procfile", shell_variables
    yield from ((path, shell_variables) for path in sorted((REPO / ".ci").glob("run*")))
    yield REPO / "Makefile", makefile_variables


def variables_the_code_reads():
    found = {}
    for path, reader in code_files():
        for name in reader(path.read_text()):
            found.setdefault(name, path.relative_to(REPO))
    return {name: path for name, path in found.items() if name not in OPERATING_SYSTEM_VARIABLES | SHELL_BUILTINS}


def documented_variables():
    """The first column of docs/configuration.md's table: `NAME` cells."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", CONFIGURATION.read_text(), flags=re.MULTILINE))


def test_every_environment_variable_the_code_reads_is_in_the_configuration_table():
    documented = documented_variables()
    missing = {name: str(path) for name, path in variables_the_code_reads().items() if name not in documented}
    assert not missing, f"read by the code but not in docs/configuration.md: {missing}"


def test_the_readers_find_variables_in_each_kind_of_file():
    # The search above is only as good as these readers; each must see what it is for.
    assert python_variables('import os\nos.environ.get("A_B")\nos.environ["C"]\n"D" in os.environ\n'
                            'def env_bool(name): return os.environ.get(name)\nenv_bool("E")\nos.getenv("F")\n'
                            'def flag(key, default):\n    if key not in os.environ: return default\n'
                            'flag("G", False)\nprint("H")') == {"A_B", "C", "D", "E", "F", "G"}
    assert erb_variables("# ENV['X'] in a comment\nlisten <%= ENV['PORT'] %>;\n% if ENV['Y']\n% end") == {"PORT", "Y"}
    assert shell_variables('X=1\necho "$X ${Y:-} $Z $#"\n# $COMMENTED\necho  # and $ANOTHER') == {"Y", "Z"}
    assert makefile_variables("PORT ?= 5000\nVENV := .venv\nrun:\n\t$(VENV) $(PYTEST_ARGS) $(CURDIR)") == \
        {"PORT", "PYTEST_ARGS"}


def test_every_mutation_is_listed_in_the_claims():
    # docs/claims.md names the mutation that proves each test it lists (tests/mutations.py).
    claims = (REPO / "docs" / "claims.md").read_text()

    unlisted = [mutation.name for mutation in MUTATIONS if f"| `{mutation.name}` |" not in claims]

    assert unlisted == [], f"add these to docs/claims.md's 'Proved by breaking it': {unlisted}"
