"""DuckDB SQL on Spark: a corpus of DuckDB queries, each run on DuckDB and, transpiled by
seekrun (sqlglot plus its refusals, seekrun/parser/transpile.py), on Spark local[2], over the same
rows (DuckDB writes them to Parquet, Spark reads that Parquet: the engines' interchange). The
expected Spark result of each query is DuckDB's. And the constructs refused, each with its message.
"""
from __future__ import annotations

import datetime
import decimal

import pytest

from spark_helpers import needs_spark

pytestmark = needs_spark

SETUP = """
CREATE SCHEMA src;
CREATE TABLE src.t AS SELECT * FROM (VALUES
  (1, 2.5::DOUBLE, 'apple', DATE '2024-01-01', TIMESTAMP '2024-01-01 10:00:00', 'a'),
  (2, -1.5, 'Banana', DATE '2024-01-15', TIMESTAMP '2024-01-15 23:59:59', 'b'),
  (3, NULL, NULL, DATE '2024-02-29', NULL, 'a'),
  (4, 10.0, 'cherry pie', NULL, TIMESTAMP '2024-03-01 00:00:01', 'b'),
  (5, 0.125, 'date', DATE '2023-12-31', TIMESTAMP '2023-12-31 12:30:00', NULL)
) v(id, x, s, d, ts, g)
"""
QUERIES = [
 "SELECT id, x * 2 AS y FROM src.t",
 "SELECT id, upper(s) AS u, lower(s) AS l FROM src.t",
 "SELECT id, length(s) AS n FROM src.t",
 "SELECT id, substring(s, 2, 3) AS sub FROM src.t",
 "SELECT id, s || '!' AS e FROM src.t",
 "SELECT id, concat(s, '-', id) AS c FROM src.t",
 "SELECT id, coalesce(x, 0) AS x0 FROM src.t",
 "SELECT id, ifnull(s, 'none') AS s0 FROM src.t",
 "SELECT id, CASE WHEN x > 1 THEN 'big' WHEN x IS NULL THEN 'none' ELSE 'small' END AS c FROM src.t",
 "SELECT g, count(*) AS n, sum(x) AS sx, avg(x) AS ax, min(id) AS lo, max(id) AS hi FROM src.t GROUP BY g",
 "SELECT count(DISTINCT g) AS n FROM src.t",
 "SELECT g, sum(x) FILTER (WHERE id > 1) AS sx FROM src.t GROUP BY g",
 "SELECT id, row_number() OVER (PARTITION BY g ORDER BY id DESC) AS rn FROM src.t",
 "SELECT id, sum(id) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS w FROM src.t",
 "SELECT id, lag(id) OVER (ORDER BY id) AS prev FROM src.t",
 "SELECT id FROM src.t ORDER BY x LIMIT 3",
 "SELECT id, x FROM src.t ORDER BY x DESC",
 "SELECT id, d + INTERVAL 1 DAY AS next_day FROM src.t",
 "SELECT id, d - INTERVAL 30 DAY AS before FROM src.t",
 "SELECT id, year(d) AS y, month(d) AS m, day(d) AS dd FROM src.t",
 "SELECT id, date_trunc('month', d) AS mth FROM src.t",
 "SELECT id, strftime(d, '%Y/%m/%d') AS f FROM src.t",
 "SELECT id, date_diff('day', DATE '2024-01-01', d) AS days FROM src.t",
 "SELECT id, CAST(d AS VARCHAR) AS ds FROM src.t",
 "SELECT id, CAST(ts AS DATE) AS day FROM src.t",
 "SELECT id, CAST(round(x) AS INTEGER) AS r FROM src.t",
 "SELECT id, round(x, 1) AS r FROM src.t",
 "SELECT id, abs(x) AS a, floor(x) AS f, ceil(x) AS c FROM src.t",
 "SELECT id, id % 3 AS m, id // 2 AS q, id / 2 AS h FROM src.t",
 "SELECT id, greatest(id, 3) AS g, least(id, 3) AS l FROM src.t",
 "SELECT id FROM src.t WHERE s LIKE '%an%'",
 "SELECT id FROM src.t WHERE s ILIKE 'b%'",
 "SELECT id FROM src.t WHERE id IN (SELECT id FROM src.t WHERE x > 0)",
 "SELECT a.id, b.id AS other FROM src.t a JOIN src.t b ON a.g = b.g AND a.id < b.id",
 "SELECT a.id, b.s FROM src.t a LEFT JOIN src.t b ON a.id = b.id + 1",
 "WITH c AS (SELECT g, count(*) AS n FROM src.t GROUP BY g) SELECT g, n FROM c WHERE n > 1",
 "SELECT id FROM src.t QUALIFY row_number() OVER (PARTITION BY g ORDER BY id) = 1",
 "SELECT g, string_agg(s, ',') AS ss FROM src.t WHERE g = 'a' GROUP BY g",
 "SELECT id, regexp_replace(s, '[aeiou]', '_', 'g') AS r FROM src.t",
 "SELECT id, trim('  ' || s || '  ') AS t FROM src.t",
 "SELECT id, starts_with(s, 'a') AS sw FROM src.t",
 "SELECT arg_max(s, id) AS last_s FROM src.t",
 "SELECT id, x BETWEEN 0 AND 5 AS inside FROM src.t",
 "SELECT DISTINCT g FROM src.t",
 "SELECT id, nullif(g, 'a') AS n FROM src.t",
 "SELECT median(x) AS m FROM src.t",
 "SELECT id, round(CAST(CAST(id AS DECIMAL(10, 2)) * 17.99 / 2 AS DECIMAL(18, 6)), 2) AS half FROM src.t",
 "SELECT id, CAST(id AS DECIMAL(10, 2)) * 17.99 / 2 AS half FROM src.t",  # DOUBLE division on both
 "SELECT id, CAST(id AS DECIMAL(10, 2)) / 4 AS q FROM src.t",
 "SELECT g, avg(CAST(id AS DECIMAL(10, 2))) / 3 AS a FROM src.t GROUP BY g",
 # integer casts of values the inputs' types prove whole (decided when the node runs: check_casts)
 "SELECT g, CAST(sum(id) AS BIGINT) AS s, CAST(count(*) AS INTEGER) AS n FROM src.t GROUP BY g",
 "SELECT id, CAST(id * 2 AS SMALLINT) AS twice, CAST(x > 1 AS INTEGER) AS big FROM src.t",
 "WITH w AS (SELECT id + 1 AS n FROM src.t) SELECT CAST(n AS TINYINT) AS n FROM w",
]
# src.t's columns as DuckDB types them (test_the_columns_are_duckdbs checks), what a node's run gives check_casts
COLUMNS = {"src.t": {"id": "INTEGER", "x": "DOUBLE", "s": "VARCHAR", "d": "DATE", "ts": "TIMESTAMP", "g": "VARCHAR"}}
REFUSED = [
 ("SELECT g, list(id ORDER BY id) AS ids FROM src.t GROUP BY g", "ordered aggregate"),
 ("SELECT g, string_agg(s, ',' ORDER BY s) AS ss FROM src.t GROUP BY g", "ordered aggregate"),
 ("SELECT CAST(x AS INTEGER) AS n FROM src.t", "lossy cast CAST(x AS INT) of a DOUBLE"),
 ("SELECT x::BIGINT AS n FROM src.t", "lossy cast CAST(x AS BIGINT) of a DOUBLE"),
 ("SELECT TRY_CAST(s AS INTEGER) AS n FROM src.t", "lossy cast TRY_CAST(s AS INT) of a VARCHAR"),
 ("WITH w AS (SELECT x * 2 AS y FROM src.t) SELECT CAST(y AS INTEGER) AS n FROM w", "lossy cast CAST(y AS INT) of a DOUBLE"),
 ("SELECT CAST(nothing AS INTEGER) AS n FROM src.t", "lossy cast CAST(nothing AS INT) of a value whose type is not known"),
 ("SELECT CAST(id AS HUGEINT) AS n FROM src.t", "Spark has no such type"),
 ("SELECT CAST(round(x) AS UBIGINT) AS n FROM src.t", "Spark has no such type"),
 ("SELECT * EXCLUDE (ts) FROM src.t", "Spark's * has no EXCLUDE"),
 ("SELECT * REPLACE (id + 1 AS id) FROM src.t", "Spark's * has no EXCLUDE"),
 ("SELECT id FROM src.t UNION ALL BY NAME SELECT id FROM src.t", "Spark SQL has no BY NAME"),
 ("SELECT my_macro(id) FROM src.t", "function my_macro()"),
 ("SELECT regexp_replace(s, 'a', '_') AS r FROM src.t", "DuckDB replaces the first match only"),
 ("SELECT round(CAST(id AS DECIMAL(10, 2)) * 17.99 / 2, 2) AS half FROM src.t", "rounding a DOUBLE"),
 ("SELECT round(CAST(s AS DOUBLE), 1) AS r FROM src.t", "rounding a DOUBLE"),
 ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM src.t", "ordered-set aggregate"),
]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    import duckdb

    from seekrun.engines.spark import SparkEngine

    root = tmp_path_factory.mktemp("corpus")
    con = duckdb.connect()
    for statement in SETUP.strip().split(";"):
        con.execute(statement)
    con.execute(f"COPY src.t TO '{root}/t.parquet' (FORMAT parquet)")
    spark = SparkEngine(root, root / "target", {})
    spark.register("src.t", str(root / "t.parquet"))
    yield con, spark.session()
    spark.close()
    con.close()


def _rows(rows) -> list[tuple]:
    out = [tuple(float(v) if isinstance(v, decimal.Decimal) else v for v in r) for r in rows]
    return sorted(out, key=repr)


def test_the_corpus_is_large_enough():
    assert len(QUERIES) >= 30 and len(REFUSED) >= 10


@pytest.mark.parametrize("sql", QUERIES)
def test_a_query_means_the_same_on_spark(engines, sql):
    from seekrun.parser.transpile import to_spark

    con, spark = engines
    expected = _rows(con.execute(sql).fetchall())
    got = _rows(tuple(r) for r in spark.sql(to_spark(sql, columns=COLUMNS.get)).collect())
    assert got == expected, to_spark(sql)


def test_date_plus_interval_is_a_timestamp_on_both(engines):
    con, spark = engines
    from seekrun.parser.transpile import to_spark

    sql = "SELECT d + INTERVAL 1 DAY AS t FROM src.t WHERE id = 1"
    assert con.execute(sql).fetchall() == [(datetime.datetime(2024, 1, 2),)]
    assert [tuple(r) for r in spark.sql(to_spark(sql)).collect()] == [(datetime.datetime(2024, 1, 2),)]


@pytest.mark.parametrize("sql,message", REFUSED)
def test_a_construct_that_would_change_meaning_is_refused(sql, message):
    from seekrun.parser.transpile import Refused, to_spark

    with pytest.raises(Refused, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        to_spark(sql, columns=COLUMNS.get)


def test_the_columns_are_duckdbs(engines):
    con, _ = engines
    assert dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE src.t)").fetchall()) == COLUMNS["src.t"]


@pytest.mark.parametrize("sql,at_parse", [
    ("SELECT CAST(avg(id) AS INTEGER) AS n FROM src.t", "lossy cast CAST(AVG(id) AS INT) of a DOUBLE"),
    ("SELECT CAST(2.5 AS INTEGER) AS n", "lossy cast CAST(2.5 AS INT) of a DOUBLE"),
    ("SELECT CAST(id / 2 AS BIGINT) AS n FROM src.t", "lossy cast CAST(id / 2 AS BIGINT) of a DOUBLE"),
    ("SELECT CAST(count(*) AS INTEGER) AS n FROM src.t", None),
    ("SELECT CAST(x AS INTEGER) AS n FROM src.t", None),  # x's type: known only when it runs
])
def test_an_integer_cast_is_refused_at_parse_only_where_its_type_is_known_there(sql, at_parse):
    from seekrun.parser.transpile import Refused, to_spark

    if at_parse is None:
        assert to_spark(sql).startswith("SELECT CAST(")
    else:
        with pytest.raises(Refused, match=at_parse.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            to_spark(sql)
