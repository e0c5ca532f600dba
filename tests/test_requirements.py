"""requirements-floors.txt pins exactly the lower bounds that requirements.txt states.

CI's floors pass (.ci/run) installs the runtime requirements with requirements-floors.txt as
pip constraints. If a lower bound moved in one file and not in the other, that pass would
quietly test versions that are no longer the floor, and the promise of requirements.txt
would go untested.
"""

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.stack import REPO


def requirements_in(filename):
    """The requirements a pip requirements file lists, without its comments and blank lines."""
    lines = (line.partition("#")[0].strip() for line in (REPO / filename).read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def versions_by_operator(requirements, operator):
    """Sorted (package name, version) pairs, one for each bound with this operator. A list,
    not a dict keyed by name: a package named twice (with markers, say) keeps both bounds,
    and a file that disagrees about either of them shows."""
    return sorted(
        (canonicalize_name(requirement.name), Version(specifier.version))
        for requirement in requirements
        for specifier in requirement.specifier
        if specifier.operator == operator
    )


def test_every_runtime_requirement_has_a_lower_bound():
    runtime = requirements_in("requirements.txt")
    with_floor = {name for name, _ in versions_by_operator(runtime, ">=")}

    without_floor = [str(requirement) for requirement in runtime
                     if canonicalize_name(requirement.name) not in with_floor]

    assert runtime, "requirements.txt lists no requirements"
    assert without_floor == [], "give these a >= bound, so that CI's floors pass can test it"


def test_floors_file_pins_each_lower_bound_of_requirements_txt():
    lower_bounds = versions_by_operator(requirements_in("requirements.txt"), ">=")

    pinned = versions_by_operator(requirements_in("requirements-floors.txt"), "==")

    assert pinned == lower_bounds, "requirements-floors.txt must pin each >= bound of requirements.txt"


def test_floors_file_pins_nothing_loosely():
    # A line such as `Django>=5.2` would leave pip free to pick any version in the floors pass.
    floors = requirements_in("requirements-floors.txt")

    loose = [str(requirement) for requirement in floors
             if [specifier.operator for specifier in requirement.specifier] != ["=="]]

    assert loose == [], "every line of requirements-floors.txt must be one exact `==` pin"
