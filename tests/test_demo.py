"""The demo app through Django's test client, against whichever database DATABASE_URL
names (SQLite when unset; CI runs this file against PostgreSQL too).

Skipped once the demo is deleted (docs/development.md): nothing else in the suite needs it.
"""

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import override_settings

if not apps.is_installed("myproject.demo"):
    pytest.skip("the demo app has been deleted", allow_module_level=True)

from myproject.demo.models import Visit  # noqa: E402 (only once the demo is known to be there)


@pytest.fixture(scope="module", autouse=True)
def collected_static(tmp_path_factory):
    # The hashed-name storage needs the manifest that collectstatic writes, as in production.
    # Written elsewhere than staticfiles/: that one is the stacks', with the tests' own files.
    with override_settings(STATIC_ROOT=tmp_path_factory.mktemp("staticfiles")):
        call_command("collectstatic", "--noinput", verbosity=0)
        yield


def test_home_page_links_hashed_static_files(client):
    response = client.get("/")

    assert response.status_code == 200
    assert b"/static/demo/style." in response.content
    assert b"/static/demo/logo." in response.content


@pytest.mark.django_db
def test_visits_page_records_each_visit_and_lists_the_latest(client):
    client.get("/visits/", headers={"User-Agent": "first-browser"})
    response = client.get("/visits/", headers={"User-Agent": "second-browser"})

    assert response.status_code == 200
    assert Visit.objects.count() == 2
    assert response.context["visit_count"] == 2
    assert [visit.user_agent for visit in response.context["recent_visits"]] == ["second-browser", "first-browser"]


@pytest.mark.django_db
def test_visits_page_truncates_long_user_agents(client):
    client.get("/visits/", headers={"User-Agent": "x" * 1000})

    assert len(Visit.objects.get().user_agent) == 200
