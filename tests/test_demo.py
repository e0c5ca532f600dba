"""The demo app through Django's test client, against whichever database DATABASE_URL
names (SQLite when unset; CI runs this file against PostgreSQL too)."""

import os

import pytest
from django.core.management import call_command
from django.db import connection

from myproject.demo.models import Visit


@pytest.fixture(scope="session", autouse=True)
def collected_static(django_db_blocker):
    # The hashed-name storage needs the manifest that collectstatic writes, as in production.
    call_command("collectstatic", "--noinput", verbosity=0)


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


def test_unknown_host_is_refused(client):
    response = client.get("/", headers={"Host": "evil.example.com"})

    assert response.status_code == 400


def test_the_suite_runs_on_the_database_database_url_names():
    # CI runs this file twice; this makes sure the PostgreSQL run really is on PostgreSQL.
    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"

    assert connection.vendor == expected
