"""Issue 2: config_hash stability (whitespace, comments, metadata) and change (SQL, inputs, params);
source data_hash by content; the stat-keyed file-hash cache in target/state/."""
from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from conftest import cli, write_project

T_FILE = "nodes/t.yml"
BASE_T = """\
    kind: transform
    name: t
    description: first version
    owner: team_a
    tags: [daily]
    columns:
      id: the id
    inputs:
      - ref: source.a
    transform: |
      SELECT id, upper(v) AS v, 'a' AS label
      FROM ref('source.a')
      WHERE id > 1
    """

SOURCES = """\
    kind: source
    name: a
    source: csv
    table: data/a.csv
    params:
      header: true
    ---
    kind: source
    name: b
    source: csv
    table: data/b.csv
    """

EXPOSURE = """\
    kind: exposure
    name: out
    type: file
    params: {format: csv, path: target/exports/t.csv}
    depends_on:
      - ref: transform.t
    """

A_CSV = "id,v\n1,x\n2,y\n"
B_CSV = "id,v\n3,z\n"


def project(tmp_path: Path) -> Path:
    proj = write_project(tmp_path / "p", {
        "data/a.csv": A_CSV, "data/b.csv": B_CSV,
        "nodes/sources.yml": SOURCES, T_FILE: BASE_T, "nodes/exposure.yml": EXPOSURE,
    })
    old = time.time() - 100  # not "just modified": the cache may trust the stat
    for name in ("a.csv", "b.csv"):
        os.utime(proj / "data" / name, (old, old))
    return proj


def parse_hashes(proj: Path) -> dict[str, dict]:
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    nodes = json.loads((proj / "target" / "manifest.json").read_text())["nodes"]
    return {nid: n["hashes"] for nid, n in nodes.items()}


def write(proj: Path, rel: str, text: str) -> None:
    (proj / rel).write_text(textwrap.dedent(text))


def edit_t(proj: Path, old: str, new: str) -> None:
    text = textwrap.dedent(BASE_T)
    assert old in text, old
    (proj / T_FILE).write_text(text.replace(old, new))


# ---------------------------------------------------------------------------------------------
# config_hash: unchanged


SQL_BODY = "  SELECT id, upper(v) AS v, 'a' AS label\n  FROM ref('source.a')\n  WHERE id > 1\n"

SAME_HASH_EDITS = {
    "sql-whitespace": (SQL_BODY, "  SELECT   id,\n      upper( v )  AS v,\n\n      'a'   AS label\n"
                                 "  FROM    ref('source.a')\n  WHERE id>1\n\n"),
    "sql-line-comments": (SQL_BODY, "  -- pick the columns\n  SELECT id, upper(v) AS v, 'a' AS label -- the label\n"
                                    "  FROM ref('source.a')\n  WHERE id > 1  -- skip the first\n"),
    "sql-block-comment": (SQL_BODY, "  SELECT id, /* shout */ upper(v) AS v, 'a' AS label\n  /* multi\n"
                                    "     line */ FROM ref('source.a')\n  WHERE id > 1\n"),
    "sql-folded-style": ("transform: |\n" + SQL_BODY,
                         "transform: >\n  SELECT id, upper(v) AS v, 'a' AS label\n  FROM ref('source.a')\n"
                         "  WHERE id > 1\n"),
    "description": ("description: first version", "description: a much better description"),
    "owner": ("owner: team_a", "owner: team_b"),
    "tags": ("tags: [daily]", "tags: [hourly, pii]"),
    "columns": ("columns:\n  id: the id\n", "columns:\n  id: {description: the key, dtype: INTEGER}\n"
                                            "  v: upper-cased\n"),
    "drop-metadata": ("description: first version\nowner: team_a\ntags: [daily]\ncolumns:\n  id: the id\n", ""),
    "yaml-comments": ("kind: transform\nname: t\n",
                      "# the main transform\nkind: transform  # a transform\n# its name:\nname: t\n"),
    "key-order": (None, None),  # handled below
}


@pytest.mark.parametrize("case", list(SAME_HASH_EDITS), ids=list(SAME_HASH_EDITS))
def test_config_hash_unchanged(tmp_path, case):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    if case == "key-order":
        write(proj, T_FILE, """\
            transform: |
              SELECT id, upper(v) AS v, 'a' AS label
              FROM ref('source.a')
              WHERE id > 1
            inputs:
              - ref: source.a
            columns:
              id: the id
            tags: [daily]
            owner: team_a
            name: t
            description: first version
            kind: transform
            """)
    else:
        old, new = SAME_HASH_EDITS[case]
        edit_t(proj, old, new)
    after = parse_hashes(proj)
    assert after["transform.t"]["config"] == before["transform.t"]["config"], case
    assert after == before  # and nothing else moved either


def test_source_yaml_comments_and_key_order_keep_hash(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    write(proj, "nodes/sources.yml", """\
        # raw inputs
        name: a
        table: data/a.csv   # the orders
        params: {header: true}
        source: csv
        kind: source
        description: now documented
        ---
        kind: source
        name: b
        source: csv
        table: data/b.csv
        """)
    after = parse_hashes(proj)
    assert after["source.a"] == before["source.a"]


# ---------------------------------------------------------------------------------------------
# config_hash: changed


CHANGED_HASH_EDITS = {
    "sql-predicate": ("WHERE id > 1", "WHERE id > 2"),
    "sql-column": ("upper(v) AS v", "lower(v) AS v"),
    "string-literal": ("'a' AS label", "'b' AS label"),
    "whitespace-inside-literal": ("'a' AS label", "'a ' AS label"),
    "comment-marker-inside-literal": ("'a' AS label", "'a -- b' AS label"),
    "quoted-identifier": ("AS label", 'AS "Label"'),
    "add-input": ("inputs:\n  - ref: source.a\n", "inputs:\n  - ref: source.a\n  - ref: source.b\n"),
}


@pytest.mark.parametrize("case", list(CHANGED_HASH_EDITS), ids=list(CHANGED_HASH_EDITS))
def test_config_hash_changed(tmp_path, case):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    old, new = CHANGED_HASH_EDITS[case]
    edit_t(proj, old, new)
    after = parse_hashes(proj)
    assert after["transform.t"]["config"] != before["transform.t"]["config"], case
    assert after["source.a"] == before["source.a"]


def test_changing_which_node_input_0_names_changes_hash(tmp_path):
    proj = project(tmp_path)
    write(proj, T_FILE, "kind: transform\nname: t\ninputs:\n  - ref: source.a\ntransform: SELECT * FROM input_0\n")
    before = parse_hashes(proj)
    # same SQL text, different input: the build changes
    write(proj, T_FILE, "kind: transform\nname: t\ninputs:\n  - ref: source.b\ntransform: SELECT * FROM input_0\n")
    after = parse_hashes(proj)
    assert after["transform.t"]["config"] != before["transform.t"]["config"]


def test_reordering_inputs_changes_hash(tmp_path):
    proj = project(tmp_path)
    sql = "transform: SELECT * FROM input_0 EXCEPT SELECT * FROM input_1\n"
    write(proj, T_FILE, "kind: transform\nname: t\ninputs: [{ref: source.a}, {ref: source.b}]\n" + sql)
    before = parse_hashes(proj)
    write(proj, T_FILE, "kind: transform\nname: t\ninputs: [{ref: source.b}, {ref: source.a}]\n" + sql)
    after = parse_hashes(proj)
    assert after["transform.t"]["config"] != before["transform.t"]["config"]


@pytest.mark.parametrize("new", ["params:\n  header: false\n", "params:\n  header: true\n  delim: ';'\n", ""],
                         ids=["value", "added", "removed"])
def test_reader_params_change_source_hash(tmp_path, new):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    text = textwrap.dedent(SOURCES)
    (proj / "nodes/sources.yml").write_text(text.replace("params:\n  header: true\n", new, 1))
    after = parse_hashes(proj)
    assert after["source.a"]["config"] != before["source.a"]["config"]
    assert after["source.a"]["data"] == before["source.a"]["data"]
    assert after["source.b"] == before["source.b"]


def test_source_table_path_change_changes_hash(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    shutil.copy(proj / "data/a.csv", proj / "data/a_copy.csv")
    text = textwrap.dedent(SOURCES)
    (proj / "nodes/sources.yml").write_text(text.replace("table: data/a.csv", "table: data/a_copy.csv"))
    after = parse_hashes(proj)
    assert after["source.a"]["config"] != before["source.a"]["config"]


def test_exposure_params_change_hash(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    write(proj, "nodes/exposure.yml", EXPOSURE.replace("target/exports/t.csv", "target/exports/t2.csv"))
    after = parse_hashes(proj)
    assert after["exposure.out"]["config"] != before["exposure.out"]["config"]


FEATURE_GROUP = """\
    kind: feature_group
    name: fg
    description: per-id features
    entity: {name: thing, join_keys: [id]}
    materialization: {event_time_col: ts, offline: {enabled: true, format: parquet}}
    features:
      n: {dtype: INTEGER}
    inputs:
      - ref: source.a
    transform: |
      SELECT id, count(*) AS n, now() AS ts FROM input_0 GROUP BY id
    """


@pytest.mark.parametrize("old,new,same", [
    ("count(*) AS n, now()", "count( * )   AS n,\n  now()", True),
    ("GROUP BY id\n", "GROUP BY id  -- one row per id\n", True),
    ("description: per-id features", "description: renamed", True),
    ("GROUP BY id", "WHERE v <> 'x' GROUP BY id", False),
    ("n: {dtype: INTEGER}", "n: {dtype: BIGINT}", False),
    ("join_keys: [id]", "join_keys: [id, v]", False),
    ("offline: {enabled: true", "offline: {enabled: false", False),
], ids=["ws", "comment", "description", "sql", "feature-dtype", "join-keys", "offline-format"])
def test_feature_group_hash(tmp_path, old, new, same):
    proj = project(tmp_path)
    write(proj, "nodes/fg.yml", FEATURE_GROUP)
    before = parse_hashes(proj)["feature_group.fg"]["config"]
    text = textwrap.dedent(FEATURE_GROUP)
    assert old in text
    (proj / "nodes/fg.yml").write_text(text.replace(old, new))
    after = parse_hashes(proj)["feature_group.fg"]["config"]
    assert (after == before) is same


# ---------------------------------------------------------------------------------------------
# data_hash


def test_data_hash_changes_with_bytes(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    (proj / "data/a.csv").write_text(A_CSV + "3,w\n")
    after = parse_hashes(proj)
    assert after["source.a"]["data"] != before["source.a"]["data"]
    assert after["source.a"]["config"] == before["source.a"]["config"]
    assert after["source.b"] == before["source.b"]


def test_data_hash_changes_with_same_size_edit(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    csv = proj / "data/a.csv"
    csv.write_text(A_CSV.replace("x", "q"))  # same size, new mtime
    assert csv.stat().st_size == len(A_CSV)
    after = parse_hashes(proj)
    assert after["source.a"]["data"] != before["source.a"]["data"]


def test_data_hash_unchanged_after_touch(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    csv = proj / "data/a.csv"
    os.utime(csv)  # touch: now
    assert parse_hashes(proj) == before
    later = time.time() - 10
    os.utime(csv, (later, later))
    assert parse_hashes(proj) == before


def test_data_hash_unchanged_when_file_replaced_by_same_bytes(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    csv = proj / "data/a.csv"
    tmp = proj / "data/a.csv.new"
    tmp.write_text(A_CSV)
    os.replace(tmp, csv)  # new inode, new mtime, same bytes
    assert parse_hashes(proj) == before


def test_data_hash_covers_every_file_of_a_glob(tmp_path):
    proj = write_project(tmp_path / "p", {
        "data/parts/p1.csv": "id\n1\n", "data/parts/p2.csv": "id\n2\n",
        "nodes/s.yml": "kind: source\nname: parts\nsource: csv\ntable: data/parts/*.csv\n",
    })
    h1 = parse_hashes(proj)["source.parts"]["data"]
    (proj / "data/parts/p3.csv").write_text("id\n3\n")
    h2 = parse_hashes(proj)["source.parts"]["data"]
    assert h2 != h1
    (proj / "data/parts/p2.csv").write_text("id\n9\n")
    h3 = parse_hashes(proj)["source.parts"]["data"]
    assert h3 not in (h1, h2)


# ---------------------------------------------------------------------------------------------
# the file-hash cache (target/state/file_hashes.json)


def _parse_with_cache(proj: Path):
    from seekrun.hashing import FileHashCache
    from seekrun.parser.parse import parse_project

    cache = FileHashCache(proj / "target" / "state" / "file_hashes.json")
    result = parse_project(proj, file_cache=cache)
    return cache, result.manifest.nodes


def test_cache_is_written_and_unchanged_stat_is_not_reread(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    assert (proj / "target" / "state" / "file_hashes.json").is_file()
    cache, nodes = _parse_with_cache(proj)
    assert cache.reads == 0
    assert nodes["source.a"]["hashes"]["data"] == before["source.a"]["data"]


def test_cache_after_touch(tmp_path):
    proj = project(tmp_path)
    before = parse_hashes(proj)
    csv = proj / "data/a.csv"
    later = time.time() - 50
    os.utime(csv, (later, later))  # touch: stat changed, bytes not

    # a parse that sees the new stat must read the file once (and keeps the hash)
    cache, nodes = _parse_with_cache(proj)
    assert cache.reads == 1
    assert nodes["source.a"]["hashes"]["data"] == before["source.a"]["data"]

    # `seekrun parse` records the new stat; from then on nothing is re-read
    assert parse_hashes(proj) == before
    cache, nodes = _parse_with_cache(proj)
    assert cache.reads == 0
    assert nodes["source.a"]["hashes"]["data"] == before["source.a"]["data"]


@pytest.mark.parametrize("table", ["./data/a.csv", "data/../data/a.csv"], ids=["dot-slash", "dot-dot"])
def test_cache_not_reread_for_unnormalised_table_paths(tmp_path, table):
    proj = write_project(tmp_path / "p", {
        "data/a.csv": A_CSV,
        "nodes/s.yml": f"kind: source\nname: a\nsource: csv\ntable: {table}\n",
    })
    old = time.time() - 100
    os.utime(proj / "data" / "a.csv", (old, old))
    first = parse_hashes(proj)
    assert first["source.a"]["data"]
    cache, nodes = _parse_with_cache(proj)
    assert nodes["source.a"]["hashes"]["data"] == first["source.a"]["data"]
    assert cache.reads == 0, "a file whose stat has not changed was re-read"
