"""PostgreSQL sources against a real PostgreSQL 15 server (started by tests/pgserver.py): what a
user sees when reading a table or a query, with the connection in params, in `connection:` or
in profiles.yml; re-read on every run with early cutoff; secrets; errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pgserver
from conftest import all_tables, cli, clean_build, reasons, run_results, table, target_snapshot, write_project

pg = pgserver.fixture()

PROFILE = pgserver.profile_yaml("shop")

TABLES = """
CREATE SCHEMA IF NOT EXISTS raw;
DROP TABLE IF EXISTS raw.orders, public.customers;
CREATE TABLE raw.orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), ratio numeric,
                         paid boolean, ordered date, at timestamptz, tags text[], meta jsonb, n bigint);
INSERT INTO raw.orders VALUES
  (1, 'ann', 10.50, 0.25, true, '2024-01-02', '2024-01-02 10:00:00+02', '{a,b}', '{"k": 1}', 10000000000),
  (2, 'bob', 99.99, NULL, false, '2024-01-03', NULL, NULL, NULL, 2),
  (3, 'ann', 5.00, 1.5, true, '2024-02-01', '2024-02-01 00:00:00+00', '{}', '[]', NULL);
CREATE TABLE public.customers (name text PRIMARY KEY, region text);
INSERT INTO public.customers VALUES ('ann', 'north'), ('bob', 'south');
"""

NODES = """\
kind: source
name: orders
source: postgresql
table: raw.orders
params:
  connection: local_pg
---
kind: source
name: customers
source: postgres
table: customers
connection: local_pg
---
kind: source
name: big_orders
source: postgresql
params:
  connection: local_pg
  query: SELECT id, customer, amount FROM raw.orders WHERE amount > 50
---
kind: transform
name: spend
inputs: [source.orders, source.customers]
transform: |
  SELECT c.region, o.customer, sum(o.amount) AS total, count(*) AS n
  FROM ref('source.orders') o JOIN ref('source.customers') c ON c.name = o.customer
  GROUP BY ALL
---
kind: transform
name: regions
inputs: [transform.spend]
transform: SELECT region, sum(total) AS total FROM ref('transform.spend') GROUP BY region
"""


@pytest.fixture
def shop(pg, tmp_path, monkeypatch):
    """A fresh database `shop` with raw.orders and customers, and a project reading it."""
    pgserver.fresh_database(pg, "shop", TABLES, monkeypatch, tmp_path / "home_seeknal")
    return write_project(tmp_path / "proj", {"profiles.yml": PROFILE, "nodes/shop.yml": NODES,
                                             "data/x.csv": "a\n1\n",
                                             "nodes/local.yml": "kind: source\nname: local\nsource: csv\n"
                                                                "table: data/x.csv\n"})


def test_table_and_query_sources_build_with_duckdb_types(shop):
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 0, res.output
    assert "OK     source.orders" in res.stdout and "3 rows" in res.stdout
    from conftest import query

    types = dict(query(shop, "SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = 'source' AND table_name = 'orders'"))
    assert types == {"id": "INTEGER", "customer": "VARCHAR", "amount": "DECIMAL(10,2)", "ratio": "DOUBLE",
                     "paid": "BOOLEAN", "ordered": "DATE", "at": "TIMESTAMP WITH TIME ZONE", "tags": "VARCHAR[]",
                     "meta": "VARCHAR", "n": "BIGINT"}
    rows = query(shop, "SELECT id, customer, amount::VARCHAR, ratio, paid, ordered::VARCHAR, "
                       "strftime(timezone('UTC', \"at\"), '%Y-%m-%d %H:%M'), tags, meta, n FROM source.orders ORDER BY id")
    assert rows == [(1, "ann", "10.50", 0.25, True, "2024-01-02", "2024-01-02 08:00", ["a", "b"], '{"k": 1}',
                     10000000000),
                    (2, "bob", "99.99", None, False, "2024-01-03", None, None, None, 2),
                    (3, "ann", "5.00", 1.5, True, "2024-02-01", "2024-02-01 00:00", [], "[]", None)]
    assert [tuple(map(str, r)) for r in table(shop, "source.big_orders")] == [("2", "bob", "99.99")]
    assert table(shop, "source.customers") == [("ann", "north"), ("bob", "south")]
    assert [(r, str(t)) for r, t in table(shop, "transform.regions")] == [("north", "15.50"), ("south", "99.99")]


def test_reread_every_run_and_unchanged_data_leaves_downstream_cached(shop, pg):
    assert cli("run", "-p", str(shop)).exit_code == 0
    plan = cli("run", "-p", str(shop), "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "RUN    source.orders  (re-read (database source))" in plan.stdout
    assert "source.local" not in plan.stdout  # what reads a re-read source is decided once it has read
    assert ("MAYBE  transform.spend  (runs if what source.orders or source.customers read has changed: "
            "database sources are re-read every run)") in plan.stdout
    assert "Plan: 3 to run, 2 to check after re-reading, 1 cached, 0 skipped" in plan.stdout

    again = cli("run", "-p", str(shop))
    assert again.exit_code == 0, again.output
    assert reasons(shop) == {"source.orders": "re-read (database source)",
                             "source.customers": "re-read (database source)",
                             "source.big_orders": "re-read (database source)"}
    results = run_results(shop)
    assert results["transform.spend"]["status"] == "cached" and results["transform.regions"]["status"] == "cached"
    assert results["source.local"]["status"] == "cached"

    pg.sql("UPDATE raw.orders SET amount = 20.50 WHERE id = 1", "shop")
    changed = cli("run", "-p", str(shop))
    assert changed.exit_code == 0, changed.output
    assert reasons(shop)["transform.spend"] == "upstream source.orders changed"
    assert reasons(shop)["transform.regions"] == "upstream transform.spend changed"
    assert "source.customers" in reasons(shop) and run_results(shop)["source.local"]["status"] == "cached"
    assert [(r, str(t)) for r, t in table(shop, "transform.regions")] == [("north", "25.50"), ("south", "99.99")]
    assert all_tables(shop) == clean_build(shop, shop.parent)  # incremental equals clean

    # the cutoff is at the database source (its output hash is what it read); a transform's output
    # hash follows its inputs, so a change spend's rows do not show still reruns what is below it
    pg.sql("UPDATE raw.orders SET paid = NOT paid", "shop")
    cut = cli("run", "-p", str(shop))
    assert cut.exit_code == 0, cut.output
    assert reasons(shop).get("transform.spend") == "upstream source.orders changed"
    assert "transform.regions" in reasons(shop)  # spend's output hash follows its inputs: regions reruns
    assert all_tables(shop) == clean_build(shop, shop.parent)

    # the same rows read another way (a query instead of the table): the source runs for its new
    # config, and what is built from it stays cached
    nodes = (shop / "nodes" / "shop.yml").read_text()
    (shop / "nodes" / "shop.yml").write_text(nodes.replace(
        "table: raw.orders\nparams:\n  connection: local_pg\n",
        "params:\n  connection: local_pg\n  query: SELECT * FROM raw.orders\n", 1))
    same = cli("run", "-p", str(shop))
    assert same.exit_code == 0, same.output
    assert reasons(shop)["source.orders"] == "config changed: reader params, source path"
    assert run_results(shop)["transform.spend"]["status"] == "cached"


def test_secrets_never_reach_target_or_messages(shop, pg, monkeypatch):
    nodes = (shop / "nodes" / "shop.yml").read_text()
    inline = """\
---
kind: source
name: inline
source: postgresql
table: raw.orders
params:
  host: 127.0.0.1
  port: "{{ env_var('TEST_PG_PORT') }}"
  database: shop
  user: seekrun
  password: "{{ env_var('TEST_PG_PASSWORD') }}"
"""
    (shop / "nodes" / "shop.yml").write_text(nodes + inline)
    outputs = [cli("parse", "-p", str(shop)), cli("run", "-p", str(shop)),
               cli("show", "-p", str(shop), "source.inline")]
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    monkeypatch.setenv("TEST_PG_PASSWORD", pgserver.PASSWORD + "-wrong")
    bad = cli("run", "-p", str(shop))
    assert bad.exit_code == 2 and "password authentication failed" in bad.stderr
    for r in [*outputs, bad]:
        assert pgserver.PASSWORD not in r.output
    for rel, data in target_snapshot(shop).items():
        assert pgserver.PASSWORD.encode() not in data, rel
    assert table(shop, "source.inline") == table(shop, "source.orders")


def test_profile_lookup_order(shop, tmp_path, monkeypatch):
    pg_port = str(int(__import__("os").environ["TEST_PG_PORT"]))
    broken = PROFILE.replace("${TEST_PG_PORT}", "1")
    (shop / "profiles.yml").unlink()
    home = tmp_path / "home_seeknal"
    home.mkdir()
    (home / "profiles.yml").write_text(PROFILE)  # Seeknal's own folder: used when the project has none
    assert cli("run", "-p", str(shop)).exit_code == 0

    (shop / "profiles.yml").write_text(broken)  # the project's own profiles.yml comes first
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2 and "127.0.0.1:1/shop" in res.stderr, res.output

    (shop / "profiles-dev.yml").write_text(PROFILE)  # SEEKRUN_ENV=dev (Seeknal's --env dev)
    monkeypatch.setenv("SEEKRUN_ENV", "dev")
    assert cli("run", "-p", str(shop)).exit_code == 0

    (shop / "elsewhere.yml").write_text(broken)
    monkeypatch.setenv("SEEKRUN_PROFILE", "elsewhere.yml")  # Seeknal's --profile: wins over all
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2 and "127.0.0.1:1/shop" in res.stderr
    monkeypatch.setenv("SEEKRUN_PROFILE", "missing.yml")
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2 and "SEEKRUN_PROFILE names" in res.stderr and "missing.yml" in res.stderr
    assert pg_port


def test_source_defaults_give_the_connection(shop):
    (shop / "profiles.yml").write_text(PROFILE + "source_defaults:\n  postgresql:\n    connection: local_pg\n")
    write_project(shop, {"nodes/shop.yml": "kind: source\nname: orders\nsource: postgresql\ntable: raw.orders\n"},
                  marker=None)
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 0, res.output
    assert len(table(shop, "source.orders")) == 3


def test_connection_problems_exit_2_before_anything_runs(shop):
    before = target_snapshot(shop)
    nodes = NODES.replace("connection: local_pg\n  query", "connection: local_gp\n  query")
    nodes = nodes.replace("table: customers", "table: nowhere")
    (shop / "nodes" / "shop.yml").write_text(nodes)
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("nodes/shop.yml:")]
    assert any(ln.startswith("nodes/shop.yml:11: source.customers: cannot read table public.nowhere from "
                             "PostgreSQL at 127.0.0.1:") and 'relation "public.nowhere" does not exist' in ln
               for ln in lines), res.stderr
    assert any("source.big_orders: profiles.yml: no connection named 'local_gp' (did you mean 'local_pg'?)" in ln
               for ln in lines), res.stderr
    assert "not found" not in res.output and "Traceback" not in res.output
    assert target_snapshot(shop) == before

    (shop / "profiles.yml").unlink()
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2
    assert "connection 'local_pg' needs a profiles.yml with 'connections: {local_pg: ...}'" in res.stderr


def test_server_down_names_the_server(shop):
    (shop / "profiles.yml").write_text(PROFILE.replace("${TEST_PG_PORT}", "1"))
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/shop as seekrun: connection to server at" in res.stderr
    assert "source data file" not in res.output


@pytest.mark.parametrize("node, message", [
    ("source: postgresql\nparams: {connection: x, query: DELETE FROM t}\n",
     "params.query must be one read-only SELECT"),
    ("source: postgresql\nparams: {connection: x, hots: h}\ntable: t\n", "'hots' is not a postgresql source param"),
    ("source: postgresql\ntable: a.b.c\n", "table 'a.b.c' must be <table> or <schema>.<table>"),
    ("source: postgresql\nparams: {connection: x}\n", "a postgresql source needs 'table: <schema>.<table>'"),
    ("source: csv\nparams: {header: true}\n", "field 'table': a csv source reads a file: add 'table: <file path or glob>'"),
])
def test_parse_refuses_bad_database_config(tmp_path, node, message):
    proj = write_project(tmp_path / "p", {"nodes/s.yml": "kind: source\nname: s\n" + node})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2 and message in res.stderr, res.output
    assert res.stderr.startswith("nodes/s.yml:")


def test_other_database_kinds_parse_and_are_not_executable(tmp_path):
    proj = write_project(tmp_path / "p", {"nodes/s.yml": "kind: source\nname: wh\nsource: snowflake\n"
                                                         "table: db.sales\nparams: {connection: sf}\n"})
    assert cli("parse", "-p", str(proj)).exit_code == 0
    res = cli("run", "-p", str(proj))
    assert "not executable by seekrun: snowflake sources are not supported by seekrun yet" in res.output
    assert "not found" not in res.output


def test_missing_driver_says_what_to_install(shop):
    code = ("import sys; sys.modules['psycopg'] = None; sys.argv = ['seekrun', 'run', '-p', sys.argv[1]]; "
            "from seekrun.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(shop)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "reading PostgreSQL needs the 'psycopg' package: pip install 'seekrun[postgres]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_parse_imports_no_driver(shop):
    code = ("import sys; from seekrun.parser.parse import parse_project; parse_project(sys.argv[1]); "
            "print(json.dumps(sorted(m for m in ('psycopg', 'pyarrow') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", "import json; " + code, str(shop)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_intervals_keep_months_and_other_types_come_as_text(shop, pg):
    write_project(shop, {"nodes/shop.yml": """\
        kind: source
        name: odd
        source: postgresql
        params:
          connection: local_pg
          query: >-
            SELECT '1 mon 2 days 03:04:05.5'::interval AS iv, '-1 day'::interval AS neg,
                   '10.0.0.1'::inet AS ip, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
                   'NaN'::numeric AS nan
        """}, marker=None)
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 0, res.output
    from conftest import query

    assert query(shop, "SELECT iv = INTERVAL '1 month 2 days 3 hours 4 minutes 5.5 seconds', "
                       "neg = INTERVAL '-1 day', ip, id, isnan(nan) FROM source.odd") == \
        [(True, True, "10.0.0.1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", True)]


def test_query_with_env_value_percent_and_trailing_comment(shop, pg, monkeypatch):
    pg.sql("INSERT INTO public.customers VALUES ('o''neil', 'west'), ('anna%', 'east')", "shop")
    monkeypatch.setenv("WHO", "o'neil")
    write_project(shop, {"nodes/shop.yml": """\
        kind: source
        name: picked
        source: postgresql
        params:
          connection: local_pg
          query: |
            SELECT name, region FROM customers
            WHERE name = '{{ env_var('WHO') }}' OR name LIKE 'ann%'  -- the env value is data, quoted
        """}, marker=None)
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 0, res.output
    assert sorted(table(shop, "source.picked")) == [("ann", "north"), ("anna%", "east"), ("o'neil", "west")]


# ---- review fixes: row order, redaction of every connection secret ------------------------
def _pg_rows(pg, sql: str, dbname: str = "shop") -> list[tuple]:
    import psycopg

    with psycopg.connect(**pg.conninfo(dbname), autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def _downstream_cached(shop) -> None:
    assert set(reasons(shop)) == {"source.orders", "source.customers", "source.big_orders"}, reasons(shop)
    results = run_results(shop)
    assert results["transform.spend"]["status"] == "cached" and results["transform.regions"]["status"] == "cached"


def test_row_order_does_not_defeat_early_cutoff(shop, pg):
    assert cli("run", "-p", str(shop)).exit_code == 0
    assert [r[0] for r in _pg_rows(pg, "SELECT id FROM raw.orders")] == [1, 2, 3]
    pg.sql("UPDATE raw.orders SET amount = amount WHERE id = 2", "shop")  # same values, new physical order
    assert [r[0] for r in _pg_rows(pg, "SELECT id FROM raw.orders")] == [1, 3, 2]
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 0, res.output
    _downstream_cached(shop)

    pg.sql("UPDATE raw.orders SET customer = customer WHERE id = 1", "shop")
    pg.sql("VACUUM FULL raw.orders", "shop")
    assert [r[0] for r in _pg_rows(pg, "SELECT id FROM raw.orders")] == [3, 2, 1]
    assert cli("run", "-p", str(shop)).exit_code == 0
    _downstream_cached(shop)
    assert all_tables(shop) == clean_build(shop, shop.parent)

    # two values swapped between rows: the same values per column, other rows: reruns
    pg.sql("UPDATE raw.orders SET customer = CASE id WHEN 1 THEN 'bob' ELSE 'ann' END WHERE id IN (1, 2)", "shop")
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 0, res.output
    assert reasons(shop)["transform.spend"] == "upstream source.orders changed"
    assert all_tables(shop) == clean_build(shop, shop.parent)


def test_content_hash_counts_duplicates_and_tells_values_apart(shop, pg):
    pg.sql("CREATE TABLE public.events (k text, v int, f float8, iv interval);"
           "INSERT INTO events VALUES ('x', 1, 0.0, '1 mon'), ('x', 1, 0.0, '1 mon'), ('y', 2, 1, '1 day'),"
           "('y', 2, 1, '1 day')", "shop")
    write_project(shop, {"nodes/shop.yml": """\
        kind: source
        name: events
        source: postgresql
        table: events
        params: {connection: local_pg}
        ---
        kind: transform
        name: counted
        inputs: [source.events]
        transform: SELECT k, count(*) AS n, sum(f) AS f, min(iv) AS iv FROM ref('source.events') GROUP BY k
        """}, marker=None)
    assert cli("run", "-p", str(shop)).exit_code == 0

    def reruns(change: str) -> bool:
        for statement in change.split(";"):  # one by one: VACUUM runs outside a transaction
            pg.sql(statement, "shop")
        res = cli("run", "-p", str(shop))
        assert res.exit_code == 0, res.output
        assert all_tables(shop) == clean_build(shop, shop.parent)
        return "transform.counted" in reasons(shop)

    assert not reruns("UPDATE events SET v = v WHERE k = 'x'; VACUUM FULL events")
    assert reruns("INSERT INTO events VALUES ('y', 2, 1, '1 day')")  # a row duplicated once more
    assert reruns("DELETE FROM events WHERE k = 'y'; INSERT INTO events VALUES ('y', 2, 1, '1 day'),"
                  "('y', 2, 1, '1 day')")  # back to two of each
    # pairs replaced by other pairs: the same count, XOR of the row hashes the same (0), the sum not
    assert reruns("UPDATE events SET k = CASE k WHEN 'x' THEN 'z' ELSE 'w' END, v = v + 10")
    assert reruns("UPDATE events SET f = '-0'::float8 WHERE f = 0")  # DuckDB's hash() says 0.0 = -0.0
    assert reruns("UPDATE events SET iv = '30 days' WHERE iv = '1 mon'")  # and 1 month = 30 days
    assert not reruns("UPDATE events SET f = f; VACUUM FULL events")


SECRET_USER = "usr_Hidden_9931"
SECRET_TYPE = "pg_Hidden_Type_5521"


def _secret_free(results: list, shop, *values: str) -> None:
    for value in values:
        for r in results:
            assert value not in r.output, r.output
        if (shop / "target" / "run_results.json").exists():
            assert value not in (shop / "target" / "run_results.json").read_text()
        for rel, data in target_snapshot(shop).items():
            assert value.encode() not in data, rel


@pytest.mark.parametrize("spelling", ["${TEST_PG_USER}", "{{ env_var('TEST_PG_USER') }}"])
def test_every_value_from_the_environment_is_redacted(shop, pg, monkeypatch, spelling):
    pg.sql(f"DO $$ BEGIN CREATE ROLE \"{SECRET_USER}\" LOGIN PASSWORD '{pgserver.PASSWORD}'; "
           "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.sql(f'GRANT USAGE ON SCHEMA raw TO "{SECRET_USER}"', "shop")
    pg.sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA raw, public TO "{SECRET_USER}"', "shop")
    monkeypatch.setenv("TEST_PG_USER", SECRET_USER)
    (shop / "profiles.yml").write_text(PROFILE.replace("user: seekrun", f'user: "{spelling}"'))
    ok = cli("run", "-p", str(shop))
    assert ok.exit_code == 0, ok.output
    assert len(table(shop, "source.orders")) == 3

    monkeypatch.setenv("TEST_PG_PASSWORD", pgserver.PASSWORD + "-wrong")  # the server names the user
    wrong = cli("run", "-p", str(shop))
    assert wrong.exit_code == 2 and "password authentication failed for user" in wrong.stderr, wrong.output
    assert "as ***" in wrong.stderr

    monkeypatch.setenv("TEST_PG_PASSWORD", pgserver.PASSWORD)
    monkeypatch.setenv("TEST_PG_PORT", "1")  # refused
    refused = cli("run", "-p", str(shop))
    assert refused.exit_code == 2 and "cannot connect to PostgreSQL at 127.0.0.1:1/shop as ***" in refused.stderr
    _secret_free([ok, wrong, refused], shop, SECRET_USER, pgserver.PASSWORD, pgserver.PASSWORD + "-wrong")


def test_check_redacts_a_bad_input_from_the_connection(shop, monkeypatch):
    monkeypatch.setenv("TEST_PG_TYPE", SECRET_TYPE)
    (shop / "profiles.yml").write_text(PROFILE.replace("type: postgresql", "type: ${TEST_PG_TYPE}"))
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2 and "connection 'local_pg' is of type '***', not postgresql" in res.stderr, res.output
    _secret_free([res], shop, SECRET_TYPE, SECRET_TYPE.lower())

    # a connection name from env_var() that names no connection
    monkeypatch.setenv("TEST_PG_CONN", "conn_Hidden_7781")
    (shop / "profiles.yml").write_text(PROFILE)
    (shop / "nodes" / "shop.yml").write_text(NODES.replace("connection: local_pg\n  query",
                                                           "connection: \"{{ env_var('TEST_PG_CONN') }}\"\n  query"))
    res = cli("run", "-p", str(shop))
    assert res.exit_code == 2 and "no connection named '***'" in res.stderr, res.output
    _secret_free([res], shop, "conn_Hidden_7781")


def test_password_like_keys_and_dsn_passwords_in_a_profile_are_registered(shop, tmp_path):
    from seekrun import profiles, secrets

    (shop / "profiles.yml").write_text(PROFILE + """\
  other:
    type: postgresql
    url: postgresql://someone:url-Pa%40ss-0042@db.example:5432/x?sslmode=require
    connection_string: "host=h password='kv-Pass-0043' user=u"
    jdbc_url: jdbc:postgresql://h/db?user=u&password=jdbc-Pass-0044
    db_password: key-Pass-0045
    api_key: key-Api-0046
    options: {client_secret: nested-0047}
    host: db.example
""")
    secrets.reset()
    profiles.connection(shop, "other")
    text = " ".join(["url-Pa%40ss-0042", "url-Pa@ss-0042", "kv-Pass-0043", "jdbc-Pass-0044", "key-Pass-0045",
                     "key-Api-0046", "nested-0047", "db.example", "someone"])
    assert secrets.redact(text) == " ".join(["***"] * 7 + ["db.example", "someone"])
