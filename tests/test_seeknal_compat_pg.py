"""Compatibility item 7 (database sources): tests/seeknal_compat/seeknal/pg/, in Seeknal's own
syntax, against a real PostgreSQL 15 server seeded from tests/seeknal_compat/data/pg_seed.sql,
with the connection in Seeknal's profiles.yml layout (data/pg_profiles.yml, copied to the
project's profiles.yml).

Seeknal 2.13 itself cannot read PostgreSQL here: it goes through DuckDB's postgres extension,
which this DuckDB (2.0.1) cannot download.  `seeknal run --profile profiles.yml` on a copy of
this project, on the same server, stopped at the first source with
  Failed to load from PostgreSQL '127.0.0.1:<port>/compat', table 'customers': IO Error: Failed
  to download extension "postgres_scanner" ...
(it did resolve the profile's connection: the host, port and database in that message are the
profile's).  So the expected rows below are what PostgreSQL 15 itself gave for the same SELECTs
on the same seed (psql), and the source tables are compared with the seed rows as PostgreSQL
returns them.
"""
from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

import pgserver
from conftest import all_tables, cli, clean_build, reasons, run_results, table

COMPAT = Path(__file__).resolve().parent / "seeknal_compat"
pg = pgserver.fixture()


@pytest.fixture
def project(pg, tmp_path, monkeypatch):
    pgserver.fresh_database(pg, "compat", (COMPAT / "data" / "pg_seed.sql").read_text(), monkeypatch,
                            tmp_path / "no_home", prefix="SEEKNAL_COMPAT_PG")
    root = tmp_path / "compat"
    (root / "seeknal").mkdir(parents=True)
    shutil.copy(COMPAT / "seeknal_project.yml", root)
    shutil.copytree(COMPAT / "seeknal" / "pg", root / "seeknal" / "pg")
    (root / "data").mkdir()
    for f in (COMPAT / "data").glob("pg_*"):
        shutil.copy(f, root / "data")
    shutil.copy(COMPAT / "data" / "pg_profiles.yml", root / "profiles.yml")
    return root


SUBSCRIPTIONS = [  # the seed's raw.subscriptions, as PostgreSQL returns it
    (1, "c1", "basic", Decimal("9.99"), "2024-01-05", None),
    (2, "c2", "pro", Decimal("29.00"), "2024-01-20", "2024-03-01"),
    (3, "c3", "pro", Decimal("29.00"), "2024-02-11", None),
    (4, "c1", "team", Decimal("99.50"), "2024-03-02", None),
    (5, "c4", "basic", Decimal("9.99"), "2024-03-15", "2024-04-15"),
]
# PostgreSQL 15 on the seed: the transforms' SELECTs, run by psql
MRR_BY_PLAN = [("basic", 1, Decimal("9.99")), ("pro", 1, Decimal("29.00")), ("team", 1, Decimal("99.50"))]
BY_COUNTRY = [("FR", 1, 1), ("NL", 3, 0)]


def _dates_as_text(rows):
    return [tuple(v.isoformat() if hasattr(v, "isoformat") else v for v in r) for r in rows]


def test_pg_project_builds_like_postgresql_itself(project):
    parse = cli("parse", "-p", str(project))
    assert parse.exit_code == 0, parse.output
    assert "not found" not in parse.output
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert _dates_as_text(table(project, "source.pg_subscriptions")) == SUBSCRIPTIONS
    assert table(project, "source.pg_customers") == [("c1", "NL", True), ("c2", "DE", False), ("c3", "NL", True),
                                                     ("c4", "FR", True)]
    assert table(project, "source.pg_open_subscriptions") == [(1, "c1", "basic", Decimal("9.99")),
                                                              (3, "c3", "pro", Decimal("29.00")),
                                                              (4, "c1", "team", Decimal("99.50"))]
    assert table(project, "transform.pg_mrr_by_plan") == MRR_BY_PLAN
    assert table(project, "transform.pg_subscriptions_by_country") == BY_COUNTRY


def test_pg_project_rereads_and_cuts_off(project, pg):
    assert cli("run", "-p", str(project)).exit_code == 0
    again = cli("run", "-p", str(project))
    assert again.exit_code == 0, again.output
    assert set(reasons(project).values()) == {"re-read (database source)"}
    assert run_results(project)["transform.pg_mrr_by_plan"]["status"] == "cached"

    pg.sql("UPDATE raw.subscriptions SET cancelled_on = '2024-05-01' WHERE subscription_id = 3", "compat")
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert reasons(project)["transform.pg_mrr_by_plan"] == "upstream source.pg_open_subscriptions changed"
    assert reasons(project)["transform.pg_subscriptions_by_country"] == "upstream source.pg_subscriptions changed"
    assert table(project, "transform.pg_mrr_by_plan") == [("basic", 1, Decimal("9.99")),
                                                          ("team", 1, Decimal("99.50"))]
    assert table(project, "transform.pg_subscriptions_by_country") == [("FR", 1, 1), ("NL", 3, 1)]
    assert all_tables(project) == clean_build(project, project.parent)
