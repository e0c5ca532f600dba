"""The project through Django's test client, with or without the demo app, against whichever
database DATABASE_URL names (SQLite when unset; CI runs this file against PostgreSQL too)."""

import os

from django.db import connection


def test_unknown_host_is_refused(client):
    response = client.get("/", headers={"Host": "evil.example.com"})

    assert response.status_code == 400


def test_the_suite_runs_on_the_database_database_url_names():
    # CI runs the suite twice; this makes sure the PostgreSQL run really is on PostgreSQL.
    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"

    assert connection.vendor == expected
