#!/usr/bin/env python3
"""Give the project package, `myproject`, a name of your own, everywhere it appears.

    make rename NAME=mysite      (or: .venv/bin/python bin/rename_project.py mysite)

The package is the directory myproject/ (settings, URLs, the WSGI entry point), and its name
is written in about forty files: the Procfile, manage.py, config/gunicorn.conf.py,
pytest.ini, the tests and the docs. This renames the directory and replaces the name in every
file of the project, that is every file but .git/ and what .gitignore lists (the virtualenv,
staticfiles/, the SQLite database, your .env), which are yours or rebuilt. Review the change
with `git status` and `git diff`, run `make test`, and commit.

It refuses, changing nothing, a name Python could not import the package by (not an
identifier, or a keyword), a name Python already imports something else by (the standard
library, Django, anything installed: one would hide the other), and a name that something at
the top of the project has already (tests, config, manage...).

It works once: this file is the one file that keeps the old name, so that it can tell a
project that is no longer named `myproject` and leave it alone.
"""

import argparse
import importlib.util
import keyword
import os
import sys
from pathlib import Path

TEMPLATE_NAME = "myproject"
PROJECT = Path(__file__).resolve().parent.parent
THIS_FILE = Path("bin", Path(__file__).name)  # in the project


class Refused(Exception):
    """A reason not to rename, for the user."""


def ignored_names(project):
    """The names .gitignore lists, and .git: left alone wherever they are in the tree."""
    lines = (project / ".gitignore").read_text().splitlines()
    return {".git", *(Path(line.rstrip("/")).name for line in lines if line.strip() and not line.startswith("#"))}


def project_files(project):
    """Every file of the project as a clone has it, this one excepted; symlinks are not followed."""
    skip = ignored_names(project)
    for directory, subdirectories, files in os.walk(project):
        subdirectories[:] = sorted(name for name in subdirectories if name not in skip)
        for name in sorted(files):
            path = Path(directory, name)
            if name not in skip and not path.is_symlink() and path.relative_to(project) != THIS_FILE:
                yield path


def check_name(project, name):
    """Raise Refused unless `name` can be the package's new name."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise Refused(f"{name!r} is not a name Python can import: use letters, digits and "
                      "underscores, not starting with a digit, and not a keyword (such as mysite)")
    if name == TEMPLATE_NAME:
        raise Refused(f"the package is named {name} already")
    taken = sorted(path.name for path in project.iterdir() if path.name in (name, f"{name}.py"))
    taken += sorted(ignored_names(project) & {name, f"{name}.py"})
    if taken:
        raise Refused(f"{name!r} clashes with {taken[0]} at the top of the project")
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        raise Refused(f"{name!r} is the name of a module Python imports already: one would hide the other")


def rename(project, name):
    """Rename the package directory and every mention of its name; return the files rewritten."""
    if not (project / TEMPLATE_NAME / "settings.py").is_file():
        raise Refused(f"there is no {TEMPLATE_NAME}/settings.py here: the package has been renamed "
                      "already, and renaming it again is a job for your editor")
    check_name(project, name)
    (project / TEMPLATE_NAME).rename(project / name)
    rewritten = []
    for path in project_files(project):
        data = path.read_bytes()
        if TEMPLATE_NAME.encode() in data:
            path.write_bytes(data.replace(TEMPLATE_NAME.encode(), name.encode()))
            rewritten.append(path.relative_to(project))
    return rewritten


def main():
    parser = argparse.ArgumentParser(prog="make rename", usage="make rename NAME=mysite",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the package's new name, such as mysite")
    arguments = parser.parse_args()
    try:
        rewritten = rename(PROJECT, arguments.name)
    except Refused as reason:
        sys.exit(f"make rename: not renamed: {reason}.")
    print(f"renamed {TEMPLATE_NAME}/ to {arguments.name}/, and the name in {len(rewritten)} files:")
    for path in rewritten:
        print(f"  {path}")
    print("Next: git status, make test, then commit.")


if __name__ == "__main__":
    main()
