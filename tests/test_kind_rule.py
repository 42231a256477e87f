"""Issue 4: kind `rule`.

Every test builds a small real project in tmp_path, runs the real CLI on a real DuckDB
file, and checks what a user sees: exit codes, the rows of "rule"."<name>" (worked out
by hand from the data written here), messages, and target/run_results.json.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli, query, ran, run_results, write_project
from engine_matrix import duckdb_only

pytestmark = pytest.mark.usefixtures("kind_engine")  # DuckDB, then Spark (tests/engine_matrix.py)

COLUMNS = [("check", "VARCHAR"), ("type", "VARCHAR"), ("column", "VARCHAR"), ("status", "VARCHAR"),
           ("violations", "BIGINT"), ("message", "VARCHAR")]


def rows(project: Path, name: str) -> list[tuple]:
    """The rule's result rows, in the order the checks are listed."""
    return query(project, f'SELECT * FROM "rule"."{name}"')


def source(name: str, path: str) -> str:
    return f"kind: source\nname: {name}\nsource: csv\ntable: {path}\n"


# ---- one test per check type: table contents by hand ---------------------------------------

def test_null_check_one_row_per_column_and_fraction_threshold(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": "id,name,score\n1,ann,10\n2,,20\n3,cid,\n4,dan,40\n",
        "nodes/t.yml": source("t", "data/t.csv"),
        "nodes/q.yml": """\
            kind: rule
            name: q
            inputs: [source.t]
            rule:
              - type: "null"
                columns: [id, name]
              - type: null            # unquoted: YAML's null, still the null check
                column: score
                params:
                  max_null_percentage: 0.25
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1, res.output
    # the table is written even though the rule failed
    assert query(project, "SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_schema = 'rule' AND table_name = 'q' ORDER BY ordinal_position") == COLUMNS
    assert rows(project, "q") == [
        ("null_1", "null", "id", "pass", 0, "no NULLs in 4 rows"),
        ("null_1", "null", "name", "fail", 1, "1 of 4 rows are NULL (25%); no NULLs allowed"),
        ("null_2", "null", "score", "pass", 1, "1 of 4 rows are NULL (25%); allowed 25%"),
    ]
    rr = run_results(project)["rule.q"]
    assert rr["status"] == "failed"
    assert rr["error"] == ("1 of 3 checks failed: null_1 (name): 1 of 4 rows are NULL (25%); no NULLs allowed "
                           "(results in table rule.q)")
    assert "FAILED rule.q: 1 of 3 checks failed" in res.output


def test_range_check_bounds_are_inclusive_and_nulls_ignored(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": "id,score,day\n1,15,2024-03-01\n2,35,2024-03-02\n3,14.5,2024-03-03\n4,35.01,\n5,,2024-03-04\n",
        "nodes/t.yml": source("t", "data/t.csv"),
        "nodes/q.yml": """\
            kind: rule
            name: q
            inputs: [source.t]
            rule:
              - type: range
                column: score
                params: {min_val: 15, max_val: 35}
              - type: range
                name: ids_positive
                columns: [id]
                params: {min_val: 1}
              - type: range
                name: not_after_march_2
                column: day
                params: {max_val: "2024-03-02"}
            params:
              severity: warn
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert rows(project, "q") == [
        ("range", "range", "score", "warn", 2, "2 of 4 non-NULL values are not in [15, 35]"),
        ("ids_positive", "range", "id", "pass", 0, "all 5 non-NULL values are >= 1"),
        ("not_after_march_2", "range", "day", "warn", 2, "2 of 4 non-NULL values are not <= 2024-03-02"),
    ]


def test_uniqueness_counts_rows_in_duplicate_groups_and_ignores_null_keys(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": "id,v\n1,a\n2,a\n2,b\n3,a\n3,a\n3,b\n4,a\n,a\n,a\n",
        "nodes/t.yml": source("t", "data/t.csv"),
        "nodes/q.yml": """\
            kind: rule
            name: q
            inputs: [source.t]
            rule:
              - type: uniqueness
                columns: [id]
              - type: uniqueness
                columns: [id, v]
              - type: uniqueness
                name: id_mostly_unique
                column: id
                params: {max_duplicate_percentage: 0.6}
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1, res.output
    # id: key 2 twice, key 3 three times -> 5 rows in duplicate groups; the two NULL ids are ignored
    assert rows(project, "q") == [
        ("uniqueness_1", "uniqueness", "id", "fail", 5,
         "2 duplicate keys covering 5 of 9 rows (55.56%): id=3 (3 rows); id=2 (2 rows)"),
        ("uniqueness_2", "uniqueness", "id, v", "fail", 2,
         "1 duplicate key covering 2 of 9 rows (22.22%): id=3, v='a' (2 rows)"),
        ("id_mostly_unique", "uniqueness", "id", "pass", 5,
         "2 duplicate keys covering 5 of 9 rows (55.56%): id=3 (3 rows); id=2 (2 rows); allowed 60%"),
    ]
    assert run_results(project)["rule.q"]["error"].startswith("2 of 3 checks failed: uniqueness_1 (id): ")


def test_freshness_against_reference_time_and_now(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": "ts,d\n2024-03-01 10:00:00,2024-03-01\n2024-03-03 10:00:00,2024-03-03\n,\n",
        "nodes/t.yml": source("t", "data/t.csv"),
        "nodes/typed.yml": """\
            kind: transform
            name: typed
            inputs: [source.t]
            transform: |
              SELECT CAST(ts AS TIMESTAMP) AS ts, CAST(d AS DATE) AS d,
                     CAST(NULL AS TIMESTAMP) AS never
              FROM input_0
            """,
        "nodes/q.yml": """\
            kind: rule
            name: q
            inputs: [transform.typed]
            rule:
              - type: freshness
                name: fresh_2d
                column: ts
                params: {max_age: 2d, reference_time: "2024-03-05"}
              - type: freshness
                name: stale_12h
                column: ts
                params: {max_age: 12h, reference_time: "2024-03-05 12:00:00"}
              - type: freshness
                name: date_exactly_24h
                column: d
                params: {max_age: 24h, reference_time: "2024-03-04"}
              - type: freshness
                name: vs_now
                column: ts
                params: {max_age: 30d}
              - type: freshness
                name: empty
                column: never
                params: {max_age: 90m}
            params:
              severity: warn
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    got = rows(project, "q")
    assert got[:3] == [
        ("fresh_2d", "freshness", "ts", "pass", 0,
         "latest ts is 2024-03-03 10:00:00, 1d 14h old as of 2024-03-05; within 2d"),
        ("stale_12h", "freshness", "ts", "warn", 1,
         "latest ts is 2024-03-03 10:00:00, 2d 2h old as of 2024-03-05 12:00:00; older than the max age 12h"),
        ("date_exactly_24h", "freshness", "d", "pass", 0,
         "latest d is 2024-03-03, 1d old as of 2024-03-04; within 24h"),
    ]
    # data from March 2024 is older than 30 days today
    assert got[3][:5] == ("vs_now", "freshness", "ts", "warn", 1)
    assert got[3][5].startswith("latest ts is 2024-03-03 10:00:00, ") and got[3][5].endswith(
        " old as of now; older than the max age 30d")
    assert got[4] == ("empty", "freshness", "never", "warn", 1,
                      "no values in never: cannot tell how fresh the data is (max age 90m)")
    warnings = run_results(project)["rule.q"]["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("3 of 5 checks failed (severity warn): stale_12h (ts): ")


def test_sql_assertion_rows_counts_and_every_way_to_name_an_input(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": "id,score\n1,-5\n2,-1\n3,0\n4,7\n5,-2\n",
        "data/lookup.csv": "id\n1\n2\n3\n",
        "nodes/t.yml": source("t", "data/t.csv") + "---\n" + source("lookup", "data/lookup.csv"),
        "nodes/q.yml": """\
            kind: rule
            name: q
            inputs:
              - ref: source.t
              - ref: source.lookup
            rule:
              - name: negative_rows
                type: sql_assertion
                sql: SELECT * FROM input_0 WHERE score < 0
              - name: count_zero
                type: sql_assertion
                sql: SELECT count(*) FROM ref('source.t') WHERE score > 100
              - name: count_one
                type: sql_assertion
                sql: SELECT count(*) AS bad FROM source.t WHERE score = 0
              - name: seeknal_input_data
                type: sql_assertion
                sql: SELECT id, score FROM input_data WHERE score > 1000;
              - name: seeknal_view_name
                type: sql_assertion
                sql: |
                  SELECT t.id FROM input_0 AS t
                  WHERE t.id NOT IN (SELECT id FROM source_lookup)
              - name: custom_sql
                type: custom
                sql: SELECT 1 WHERE (SELECT avg(score) FROM input_0) > 5
            params:
              severity: warn
              error_message: "Scores look wrong"
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert rows(project, "q") == [
        ("negative_rows", "sql_assertion", None, "warn", 3, "the query returns 3 rows (must return none)"),
        ("count_zero", "sql_assertion", None, "pass", 0, "the count is 0"),
        ("count_one", "sql_assertion", None, "warn", 1, "the query counts 1 violation (must be 0)"),
        ("seeknal_input_data", "sql_assertion", None, "pass", 0, "the query returns no rows"),
        ("seeknal_view_name", "sql_assertion", None, "warn", 2, "the query returns 2 rows (must return none)"),
        ("custom_sql", "custom", None, "pass", 0, "the query returns no rows"),
    ]
    expected = ("Scores look wrong: 3 of 6 checks failed (severity warn): "
                "negative_rows: the query returns 3 rows (must return none); "
                "count_one: the query counts 1 violation (must be 0); "
                "seeknal_view_name: the query returns 2 rows (must return none) (results in table rule.q)")
    assert run_results(project)["rule.q"]["warnings"] == [expected]
    assert run_results(project)["rule.q"]["status"] == "success"
    assert f"warning: {expected}" in res.output


def test_profile_check_warn_and_fail_thresholds(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": "id,score,note,one\n1,10,x,5\n2,20,,\n3,30,,\n4,,,\n",
        "nodes/t.yml": source("t", "data/t.csv"),
        "nodes/p.yml": "kind: profile\nname: p\ninputs: [source.t]\n",
        "nodes/pc.yml": """\
            kind: rule
            name: pc_warn
            inputs: [profile.p]
            rule:
              type: profile_check
              checks:
                - metric: row_count
                  fail: "= 0"
                - column: score
                  metric: avg
                  warn: "> 15"
                  fail: "> 25"
                - column: score
                  metric: null_percent
                  warn: "between 20 and 30"
                - column: score
                  metric: max
                  fail: ">= 31"
                - column: one
                  metric: stddev
                  warn: "> 100"
                - column: score
                  metric: distinct_count
                  warn: "!= 3"
            ---
            kind: rule
            name: pc_fail
            inputs: [profile.p]
            rule:
              type: profile_check
              checks:
                - column: note
                  metric: null_percent
                  warn: "> 10"
                  fail: "> 50"
                - column: score
                  metric: stddev
                  fail: "== 10"
                - column: score
                  metric: min
                  warn: "< 5"
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1, res.output
    # score: 10, 20, 30, NULL -> avg 20, sample stddev 10, 25% NULL, 3 distinct; one: a single 5 -> stddev NULL
    assert rows(project, "pc_warn") == [
        ("row_count", "profile_check", None, "pass", 0, "row_count = 4 (fail if = 0)"),
        ("avg", "profile_check", "score", "warn", 1, "avg of score = 20.0, which meets the warn threshold '> 15'"),
        ("null_percent", "profile_check", "score", "warn", 1,
         "null_percent of score = 25.0, which meets the warn threshold 'between 20 and 30'"),
        ("max", "profile_check", "score", "pass", 0, "max of score = 30 (fail if >= 31)"),
        ("stddev", "profile_check", "one", "warn", 1,
         "stddev of one is NULL, which counts as meeting the warn threshold '> 100'"),
        ("distinct_count", "profile_check", "score", "pass", 0, "distinct_count of score = 3 (warn if != 3)"),
    ]
    assert rows(project, "pc_fail") == [
        ("null_percent", "profile_check", "note", "fail", 1,
         "null_percent of note = 75.0, which meets the fail threshold '> 50'"),
        ("stddev", "profile_check", "score", "fail", 1, "stddev of score = 10.0, which meets the fail threshold '== 10'"),
        ("min", "profile_check", "score", "pass", 0, "min of score = 10 (warn if < 5)"),
    ]
    results = run_results(project)
    assert results["rule.pc_warn"]["status"] == "success"
    assert results["rule.pc_warn"]["warnings"] == [
        "3 of 6 checks warned: avg (score): avg of score = 20.0, which meets the warn threshold '> 15'; "
        "null_percent (score): null_percent of score = 25.0, which meets the warn threshold 'between 20 and 30'; "
        "stddev (one): stddev of one is NULL, which counts as meeting the warn threshold '> 100' "
        "(results in table rule.pc_warn)"]
    assert results["rule.pc_fail"]["status"] == "failed"
    assert results["rule.pc_fail"]["error"].startswith("2 of 3 checks failed: null_percent (note): ")


# ---- severity, dependents, fixing a failure ---------------------------------------------------

SEVERITY_FILES = {
    "data/t.csv": "id,amount\n1,10\n2,-3\n3,7\n",
    "nodes/t.yml": source("t", "data/t.csv"),
    "nodes/rules.yml": """\
        kind: rule
        name: soft
        inputs: [source.t]
        rule: {type: range, column: amount, params: {min_val: 0}}
        params: {severity: warn}
        ---
        kind: rule
        name: hard
        inputs: [source.t]
        rule: {type: range, column: amount, params: {min_val: 0}}
        """,
    "nodes/after.yml": """\
        kind: transform
        name: after_soft
        inputs: [rule.soft, source.t]
        transform: SELECT sum(amount) AS total FROM source.t
        ---
        kind: transform
        name: after_hard
        inputs: [rule.hard, source.t]
        transform: SELECT sum(amount) AS total FROM source.t
        """,
}


def test_warn_severity_succeeds_with_warning_error_severity_fails_and_skips_dependents(tmp_path):
    project = write_project(tmp_path / "p", SEVERITY_FILES)
    # --continue-on-error: the independent branch (soft) always gets to run
    res = cli("run", "-p", str(project), "--continue-on-error")
    assert res.exit_code == 1, res.output
    msg = "1 of 1 check {verb}: range (amount): 1 of 3 non-NULL values are not >= 0 (results in table rule.{name})"
    results = run_results(project)
    assert results["rule.soft"]["status"] == "success"
    assert results["rule.soft"]["warnings"] == [msg.format(verb="failed (severity warn)", name="soft")]
    assert results["transform.after_soft"]["status"] == "success"
    assert results["rule.hard"]["status"] == "failed"
    assert results["rule.hard"]["error"] == msg.format(verb="failed", name="hard")
    assert results["transform.after_hard"]["status"] == "skipped"
    assert results["transform.after_hard"]["error"] == "upstream rule.hard failed"
    assert "       warning: " + msg.format(verb="failed (severity warn)", name="soft") in res.output
    assert "FAILED rule.hard: " + msg.format(verb="failed", name="hard") in res.output
    assert "Not run because of the failure: transform.after_hard" in res.output
    assert rows(project, "soft") == [("range", "range", "amount", "warn", 1, "1 of 3 non-NULL values are not >= 0")]
    assert rows(project, "hard") == [("range", "range", "amount", "fail", 1, "1 of 3 non-NULL values are not >= 0")]
    assert query(project, "SELECT total FROM transform.after_soft") == [(14,)]
    assert query(project, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'after_hard'") == [(0,)]


def test_failing_rule_fixed_by_editing_the_data(tmp_path):
    project = write_project(tmp_path / "p", SEVERITY_FILES)
    assert cli("run", "-p", str(project), "--continue-on-error").exit_code == 1
    (project / "data/t.csv").write_text("id,amount\n1,10\n2,3\n3,7\n")
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    results = run_results(project)
    assert results["source.t"]["reason"] == "source data changed"
    assert results["rule.hard"]["reason"] == "previous run failed"
    assert results["rule.hard"]["status"] == "success" and results["rule.hard"]["warnings"] == []
    assert results["transform.after_hard"]["reason"] == "new"
    assert rows(project, "hard") == [("range", "range", "amount", "pass", 0, "all 3 non-NULL values are >= 0")]
    assert query(project, "SELECT total FROM transform.after_hard") == [(20,)]
    assert cli("run", "-p", str(project)).output.startswith("Nothing to do")


def test_failing_rule_fixed_by_editing_the_rule(tmp_path):
    project = write_project(tmp_path / "p", SEVERITY_FILES)
    assert cli("run", "-p", str(project), "--continue-on-error").exit_code == 1
    path = project / "nodes/rules.yml"
    path.write_text(path.read_text().replace(
        "name: hard\ninputs: [source.t]\nrule: {type: range, column: amount, params: {min_val: 0}}",
        "name: hard\ninputs: [source.t]\nrule: {type: range, column: amount, params: {min_val: -5}}"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ran(project) == {"rule.hard", "transform.after_hard"}
    results = run_results(project)
    assert results["rule.hard"]["reason"] == "previous run failed"
    assert results["transform.after_hard"]["reason"] == "new"
    assert rows(project, "hard") == [("range", "range", "amount", "pass", 0, "all 3 non-NULL values are >= -5")]
    # a later real edit of a passing rule is a config change
    path.write_text(path.read_text().replace("min_val: -5", "min_val: -4"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ran(project) == {"rule.hard", "transform.after_hard"}
    assert run_results(project)["rule.hard"]["reason"] == "config changed: rule"
    assert run_results(project)["transform.after_hard"]["reason"] == "upstream rule.hard changed"


def test_severity_edit_reruns_the_rule_and_dependents_description_edit_reruns_nothing(tmp_path):
    project = write_project(tmp_path / "p", SEVERITY_FILES)
    cli("run", "-p", str(project), "--continue-on-error")
    path = project / "nodes/rules.yml"
    path.write_text(path.read_text().replace("name: soft\n", "name: soft\ndescription: amounts are not negative\n"
                                                              "tags: [quality]\n"))
    res = cli("run", "-p", str(project))
    assert ran(project) == {"rule.hard"}  # only the failed one retries
    path.write_text(path.read_text().replace("params: {severity: warn}", "params: {severity: error}"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1
    assert ran(project) == {"rule.soft", "rule.hard"}
    results = run_results(project)
    assert results["rule.soft"]["reason"] == "config changed: params"
    assert results["rule.soft"]["status"] == "failed"
    assert results["transform.after_soft"]["status"] == "skipped"


# ---- sql_assertion refs and canonical SQL -------------------------------------------------------

REF_FILES = {
    "data/a.csv": "id\n1\n2\n",
    "data/b.csv": "id\n1\n",
    "nodes/sources.yml": source("a", "data/a.csv") + "---\n" + source("b", "data/b.csv"),
}


def test_sql_assertion_with_undeclared_ref_is_a_parse_error(tmp_path):
    project = write_project(tmp_path / "p", {**REF_FILES, "nodes/rules/r.yml": """\
        kind: rule
        name: r
        inputs:
          - ref: source.a
        rule:
          - type: "null"
            column: id
          - type: sql_assertion
            sql: |
              SELECT a.id FROM input_0 AS a
              WHERE a.id NOT IN (SELECT id FROM source.b)
        """})
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert ("nodes/rules/r.yml:9: rule.r: SQL uses 'source.b' but it is not declared in inputs: "
            "add '- ref: source.b' to inputs") in res.output
    assert not (project / "target" / "seekrun.duckdb").exists()
    # a ref to a node that does not exist
    path = project / "nodes/rules/r.yml"
    path.write_text(path.read_text().replace("FROM source.b", "FROM ref('source.bb')"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert "nodes/rules/r.yml:9: rule.r: SQL refers to 'source.bb', which does not exist (did you mean 'source.b'?)" \
        in res.output
    # out-of-range input_N
    path.write_text(path.read_text().replace("ref('source.bb')", "input_3"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert "nodes/rules/r.yml:9: rule.r: input_3 is out of range: the rule declares 1 input (input_0)" \
        in res.output


def test_sql_assertion_whitespace_and_comment_edit_runs_nothing_real_edit_reruns_it(tmp_path):
    project = write_project(tmp_path / "p", {**REF_FILES, "nodes/rules/r.yml": """\
        kind: rule
        name: r
        inputs: [source.a, source.b]
        rule:
          type: sql_assertion
          sql: SELECT a.id FROM input_0 a JOIN source.b b ON a.id = b.id WHERE a.id > 1
        params: {severity: warn}
        """})
    assert cli("run", "-p", str(project)).exit_code == 0
    assert rows(project, "r") == [("sql_assertion", "sql_assertion", None, "pass", 0, "the query returns no rows")]
    path = project / "nodes/rules/r.yml"
    path.write_text(path.read_text().replace(
        "  sql: SELECT a.id FROM input_0 a JOIN source.b b ON a.id = b.id WHERE a.id > 1\n",
        "  sql: |\n"
        "    -- ids above one must not be in b\n"
        "    SELECT a.id\n"
        "    FROM   input_0 a\n"
        "    JOIN   source.b b ON a.id = b.id   /* same join */\n"
        "    WHERE  a.id > 1;\n"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Nothing to do"), res.output
    assert ran(project) == set()
    # a check's description is documentation too
    path.write_text(path.read_text().replace("  type: sql_assertion\n",
                                             "  type: sql_assertion\n  description: no id above one in b\n"))
    res = cli("run", "-p", str(project))
    assert res.output.startswith("Nothing to do"), res.output
    path.write_text(path.read_text().replace("WHERE  a.id > 1;", "WHERE  a.id >= 1;"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ran(project) == {"rule.r"}
    assert run_results(project)["rule.r"]["reason"] == "config changed: rule"
    assert rows(project, "r") == [("sql_assertion", "sql_assertion", None, "warn", 1,
                                   "the query returns 1 row (must return none)")]


# ---- config validated at parse time; run-time config problems -----------------------------------

def test_bad_rule_config_is_reported_with_file_and_line(tmp_path):
    project = write_project(tmp_path / "p", {**REF_FILES, "nodes/bad.yml": """\
        kind: rule
        name: bad
        inputs: [source.a]
        rule:
          - type: "null"
            colums: [id]
          - type: range
            column: id
            params: {min: 3}
          - type: "null"
            column: id
            params: {max_null_percentage: 5}
          - type: freshness
            column: id
            params: {max_age: soon}
          - type: profile_check
            checks:
              - metric: avgg
                fail: "> x"
          - type: nope
        params:
          severity: fatal
          foo: 1
        """})
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    for line in [
        "nodes/bad.yml:5: rule.bad: a null check needs 'column: <name>' or 'columns: [<name>, ...]'",
        "nodes/bad.yml:6: rule.bad: unknown key 'colums' in a null check (did you mean 'columns'?)",
        "nodes/bad.yml:9: rule.bad: unknown param 'min' for a range check (did you mean 'min_val'?)",
        "nodes/bad.yml:12: rule.bad: max_null_percentage is a fraction of rows between 0 and 1 (0.05 allows 5%)",
        "nodes/bad.yml:15: rule.bad: max_age 'soon' is not a duration",
        "nodes/bad.yml:16: rule.bad: a profile_check reads a profile node: add '- ref: profile.<name>' to inputs",
        "nodes/bad.yml:18: rule.bad: metric 'avgg' is not one seekrun profiles compute (did you mean 'avg'?)",
        "nodes/bad.yml:19: rule.bad: bad fail threshold '> x': write an operator",
        "nodes/bad.yml:20: rule.bad: unknown check type 'nope'",
        "nodes/bad.yml:22: rule.bad: severity must be 'error' or 'warn', not 'fatal'",
        "nodes/bad.yml:23: rule.bad: unknown rule param 'foo'",
    ]:
        assert line in res.output, line
    assert not (project / "target" / "seekrun.duckdb").exists()


def test_missing_column_fails_the_node_even_with_warn_severity(tmp_path):
    project = write_project(tmp_path / "p", {**REF_FILES, "nodes/r.yml": """\
        kind: rule
        name: r
        inputs: [source.a]
        rule: {type: "null", column: idd}
        params: {severity: warn}
        """})
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1, res.output
    assert run_results(project)["rule.r"]["error"] == \
        "check 'null': column 'idd' is not in source.a (did you mean 'id'?) (columns: id)"


@duckdb_only("the rule is skipped at parse: only the DuckDB source runs")
def test_custom_rule_without_sql_is_not_executable(tmp_path):
    """Issue 11 (compatibility 8): said at parse; run skips it and builds the rest."""
    project = write_project(tmp_path / "p", {**REF_FILES, "nodes/r.yml": """\
        kind: rule
        name: r
        inputs: [source.a]
        rule:
          type: custom
          params: {function: my_module.check}
        """})
    res = cli("parse", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ("nodes/r.yml:1: warning: rule.r: not executable by seekrun: check 'custom' is a 'custom' rule without "
            "'sql': seekrun runs custom rules only as SQL") in res.stderr
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert run_results(project)["rule.r"]["status"] == "skipped"
    assert run_results(project)["source.a"]["status"] == "success"


def test_sql_assertion_syntax_error_is_refused_before_anything_runs(tmp_path):
    project = write_project(tmp_path / "p", {**REF_FILES, "nodes/r.yml": """\
        kind: rule
        name: r
        inputs: [source.a]
        rule:
          type: sql_assertion
          sql: SELECT * FROM input_0 WHERE id >> > 3 )
        """})
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert "nodes/r.yml:6: rule.r: check sql_assertion: SQL does not parse: syntax error at or near \">\"" in res.output
    assert not (project / "target" / "seekrun.duckdb").exists()
