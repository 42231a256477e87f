"""An independent model of a seekrun project, for the property tests (tests/test_property_wide.py).

The model holds a project as data (sources with their rows, nodes with a handful of SQL and
Python templates, feature groups, aggregations, rules, profiles, exposures, env vars, Seeknal
common values, a helper module) and renders it to files.  It never asks seekrun anything:

- ``evaluate`` computes, in Python, the table each node builds (rows AND DuckDB column types:
  BIGINT, HUGEINT, DOUBLE, VARCHAR, DATE, DECIMAL(10,2)), or predicts that DuckDB refuses the
  build (``Fail``: a VARCHAR in arithmetic, a missing column, a ragged CSV, duplicate feature
  group keys, a deliberate CAST('boom' AS INTEGER)).  Profiles and rule messages are the
  only outputs it does not compute (the tests compare those with a clean build in a fresh copy).
- ``plan`` and ``outcomes`` say exactly which nodes must run: a node runs when it is new,
  failed last time, its own definition changed (``own``: the semantic content, so a ref-style
  switch, SQL whitespace, key order, comments, descriptions and tags are not changes), one of
  its inputs was rebuilt from something else, or its output is missing or not what was
  recorded (after a kill between a commit and its journal line).  A filtered-out node keeps its
  reason; a node whose input was never built is blocked.
- ``apply_*`` update what the model remembers (the records, the tables and output files that
  are in the database and on disk), as the real run did.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import heapq
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

NUMERIC = ("BIGINT", "HUGEINT", "DOUBLE")
DEC = "DECIMAL(10,2)"
WORDS = ("ab", "cd", "x y", "Zed")
D0 = dt.date(2024, 1, 1)
UNMODELED = "unmodeled"  # a profile's table: compared with a clean build, not computed here


class Fail(Exception):
    """The model's prediction: DuckDB (or seekrun's checks) refuses this build."""


def sig(obj) -> str:
    return hashlib.sha1(repr(obj).encode()).hexdigest()[:16]


def stable(seed: int, key: str) -> int:
    return zlib.crc32(f"{seed}:{key}".encode())


# ---- tables --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    cols: tuple  # ((name, DuckDB type), ...)
    rows: tuple  # tuples of Python values: int, float, str, date, Decimal, None

    def names(self) -> list[str]:
        return [c for c, _ in self.cols]

    def has(self, name: str) -> bool:
        return name in self.names()

    def typ(self, name: str) -> str:
        for c, t in self.cols:
            if c == name:
                return t
        raise Fail(f"column {name} not found")

    def idx(self, name: str) -> int:
        if not self.has(name):
            raise Fail(f"column {name} not found")
        return self.names().index(name)

    def col(self, name: str) -> list:
        i = self.idx(name)
        return [r[i] for r in self.rows]


def tagged_rows(rows) -> list:
    """Rows as sorted lists of (Python type name, value): 1, 1.0 and Decimal(1) differ."""
    return sorted((tuple((type(v).__name__, v) for v in r) for r in rows), key=repr)


def table_key(t: Table) -> tuple:
    return (tuple(t.names()), tuple(ty for _, ty in t.cols), tagged_rows(t.rows))


def promote(*types: str) -> str:
    """The type of + and * over these column types (a literal integer keeps the type)."""
    if any(t not in NUMERIC for t in types):
        raise Fail(f"no arithmetic on {types}")
    if "DOUBLE" in types:
        return "DOUBLE"
    return "HUGEINT" if "HUGEINT" in types else "BIGINT"


def num(value, ty: str):
    return None if value is None else (float(value) if ty == "DOUBLE" else value)


def to_varchar(v) -> str | None:
    """CAST(v AS VARCHAR) as DuckDB prints it (for the values the generator makes)."""
    if v is None:
        return None
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


# ---- source data ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    """What a data file holds: columns with the types the generator means, rows, and whether
    the file is made ragged (a row with one field too many after line 3)."""
    cols: tuple
    rows: tuple
    ragged: bool = False

    def table(self, fmt: str) -> Table:
        if self.ragged:
            raise Fail("ragged CSV")
        if fmt == "csv" and not self.rows:  # a header alone: DuckDB reads every column as VARCHAR
            return Table(tuple((c, "VARCHAR") for c, _ in self.cols), ())
        return Table(self.cols, self.rows)


def csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


@lru_cache(maxsize=4096)
def render_data(data: Data, fmt: str) -> bytes:
    names = [c for c, _ in data.cols]
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        for r in data.rows:
            w.writerow([csv_value(v) for v in r])
        if data.ragged:
            w.writerow([csv_value(v) for v in data.rows[-1]] + ["7"])
        return out.getvalue().encode()
    if fmt in ("json", "jsonl"):
        objs = [{n: (v.isoformat() if isinstance(v, dt.date) else v) for n, v in zip(names, r)}
                for r in data.rows]
        if fmt == "json":
            return (json.dumps(objs, indent=1) + "\n").encode()
        return "".join(json.dumps(o) + "\n" for o in objs).encode()
    if fmt == "parquet":
        import tempfile

        import duckdb

        with tempfile.TemporaryDirectory() as tmp:
            con = duckdb.connect()
            try:
                con.execute("CREATE TABLE t (" + ", ".join(f'"{c}" {t}' for c, t in data.cols) + ")")
                if data.rows:
                    con.executemany("INSERT INTO t VALUES (" + ", ".join("?" * len(names)) + ")",
                                    [list(r) for r in data.rows])
                path = os.path.join(tmp, "d.parquet")
                con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
            finally:
                con.close()
            return Path(path).read_bytes()
    raise AssertionError(fmt)


# ---- nodes ---------------------------------------------------------------------------------
TABLE_KINDS = ("source", "transform", "feature_group", "aggregation", "rule", "profile", "model")
SQL_TEMPLATES_1 = ("add", "filter", "agg", "strcat")  # one input, output has id, v, d
SQL_TEMPLATES_2 = ("join",)
LEAF_TEMPLATES = ("dec",)  # only rules, profiles and exposures read it (its v is a DECIMAL)
NO_K = ("agg", "dec")  # templates whose SQL has no constant


@dataclass
class Node:
    kind: str
    name: str
    inputs: list = field(default_factory=list)
    tmpl: str = ""  # SQL template (transform, feature_group) or "mul" (Python nodes)
    k: int = 0
    kmode: str = "lit"  # lit | env | common  (where the SQL constant comes from)
    fail: bool = False  # a deliberate failure: CAST('boom' AS INTEGER) / raise in Python
    features: bool = True  # feature_group: {v: DOUBLE, d: DATE} (False: features: null)
    offline: bool = False  # feature_group: target/feature_store/<name>.parquet
    basic: tuple = ("sum", "count")  # aggregation
    window: int = 3
    severity: str = "error"  # rule: error (a check that always passes) or warn
    fmt: str = "csv"  # exposure format; source format (csv, parquet, json, jsonl, glob)
    where: str = "output"  # exposure folder: output (exposure_paths) or target/exports
    py: str = ""  # "" | deco (decorator in a node .py file) | yaml (python: pylib/<name>.py:scale)
    helper: bool = False  # the Python code multiplies by prophelp.FACTOR instead of k
    # metadata and rendering style: never a reason to run
    description: str = "a node"
    tags: list = field(default_factory=list)
    refstyle: list = field(default_factory=list)  # per input: ref | dotted | input
    ws: int = 0
    comments: int = 0
    order: int = 0
    file: str = ""  # the YAML (or .py) file that holds it

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.name}"

    @property
    def has_table(self) -> bool:
        return self.kind != "exposure"

    @property
    def is_source(self) -> bool:
        return self.kind == "source"

    def core(self) -> bool:
        """Its table has id, v (a number) and d: any SQL or Python template can read it."""
        if self.kind in ("source", "model", "feature_group"):
            return True
        return self.kind == "transform" and self.tmpl not in LEAF_TEMPLATES

    def env_name(self) -> str:
        return f"SRP_{self.name.upper()}"

    def out_files(self) -> list[str]:
        if self.kind == "exposure":
            ext = self.fmt
            return [f"{self.where}/{self.name}.{ext}"]
        if self.kind == "feature_group" and self.offline:
            return [f"target/feature_store/{self.name}.parquet"]
        return []


# ---- state records -------------------------------------------------------------------------
@dataclass
class Rec:
    status: str  # success | failed
    own: str | None
    ins: dict | None
    out: str | None
    files: dict = field(default_factory=dict)  # output file -> the table it held when recorded


@dataclass
class PlanItem:
    needs: bool
    selected: bool
    blocked: bool
    runs: bool
    new: bool
    expected: str


class Model:
    """The project (what the files say) and the build state (what seekrun should remember and
    what should be in the database and output files)."""

    def __init__(self, flavour: str = "seekrun"):
        self.flavour = flavour
        self.nodes: dict[str, Node] = {}  # insertion order is a topological order
        self.data: dict[str, dict[str, Data]] = {}  # source id -> {data file rel: Data}
        self.env: dict[str, str] = {}
        self.common: dict[str, int] = {"spare": 1}
        self.factor = 2
        self.helper_notes = 0
        self.pyfile_notes: dict[str, int] = {}  # decorator .py file -> comment lines
        self.counter = 0
        # the build state
        self.records: dict[str, Rec] = {}
        self.tables: dict[str, object] = {}  # node id -> Table | UNMODELED (what the database holds)
        self.stamps: dict[str, str | None] = {}  # node id -> the output hash of the build its table is
        self.files: dict[str, Table] = {}  # output file rel -> the table it holds
        self.claimed: dict[str, str] = {}  # output file -> the node whose killed build wrote it, unrecorded
        self.loose: set[str] = set()  # rewritten unrecorded with the recorded content: bytes may differ
        # after a kill: id -> (the table its interrupted build made, that build's output hash):
        # committed without its record, or not committed at all; nobody knows which
        self.uncertain: dict[str, tuple] = {}

    # ---- the project -------------------------------------------------------------------
    @property
    def node_dir(self) -> str:
        return "nodes" if self.flavour == "seekrun" else "seeknal"

    def fresh_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def order(self) -> list[str]:
        return list(self.nodes)

    def children(self, nid: str) -> list[str]:
        return [n.id for n in self.nodes.values() if nid in n.inputs]

    def downstream(self, roots) -> set[str]:
        out, stack = set(), [r for r in roots if r in self.nodes]
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack.extend(self.children(n))
        return out

    def replace_id(self, old: str, node: Node) -> None:
        """Put node where old was (a rename or a kind change), and point users at it."""
        self.nodes = {(node.id if k == old else k): (node if k == old else v) for k, v in self.nodes.items()}
        for other in self.nodes.values():
            other.inputs = [node.id if i == old else i for i in other.inputs]
        if old in self.data:
            self.data[node.id] = self.data.pop(old)

    def kval(self, node: Node) -> int:
        if node.kmode == "common":
            return self.common[f"k_{node.name}"]
        if node.kmode == "env":
            return int(self.env[node.env_name()])
        return node.k

    def py_files(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in self.nodes.values():
            if n.py == "deco":
                out.setdefault(n.file, []).append(n.id)
        return out

    def yml_files(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in self.nodes.values():
            if n.py != "deco":
                out.setdefault(n.file, []).append(n.id)
        return out

    def code_file(self, node: Node) -> str | None:
        if node.py == "deco":
            return node.file
        if node.py == "yaml":
            return f"pylib/{node.name}.py"
        return None

    def imports_helper(self, code_rel: str) -> bool:
        if code_rel.startswith("pylib/"):
            return any(n.helper for n in self.nodes.values() if n.py == "yaml" and self.code_file(n) == code_rel)
        return any(n.helper for n in self.nodes.values() if n.py == "deco" and n.file == code_rel)

    # ---- rendering -------------------------------------------------------------------------
    def ref(self, node: Node, i: int) -> str:
        style = node.refstyle[i] if i < len(node.refstyle) else "ref"
        target = node.inputs[i]
        if style == "ref":
            return f"ref('{target}')"
        if style == "dotted":
            return target
        return f"input_{i}"

    def kexpr(self, node: Node) -> str:
        if node.kmode == "env":
            return f"{{{{ env_var('{node.env_name()}') }}}}"
        if node.kmode == "common":
            return f"{{{{ consts.k_{node.name} }}}}"
        return str(node.k)

    def sql(self, node: Node) -> str:
        r = [self.ref(node, i) for i in range(len(node.inputs))]
        k = self.kexpr(node)
        boom = " + (SELECT CAST('boom' AS INTEGER))" if node.fail else ""
        t = node.tmpl
        if t == "add":
            parts = ["SELECT id,", f"v + {k}{boom} AS v,", "d", f"FROM {r[0]}"]
        elif t == "filter":
            parts = ["SELECT *", f"FROM {r[0]}", f"WHERE v >= {k}{boom}"]
        elif t == "agg":
            parts = ["SELECT id,", f"sum(v){boom} AS v,", "max(d) AS d,", "count(*) AS n", f"FROM {r[0]}",
                     "GROUP BY id"]
        elif t == "strcat":
            parts = ["SELECT id, v, d,", f"CAST(v AS VARCHAR) || '-{k}'{boom.replace('+', '||')} AS s",
                     f"FROM {r[0]}"]
        elif t == "dec":
            parts = [f"SELECT id, CAST(v{boom} AS DECIMAL(10,2)) AS v, d", f"FROM {r[0]}"]
        elif t == "join":
            parts = ["SELECT a.id,", f"a.v + b.v + {k}{boom} AS v,", "a.d", f"FROM {r[0]} AS a",
                     f"JOIN {r[1]} AS b ON a.id = b.id"]
        elif t == "fgsel":
            parts = ["SELECT id,", f"max(v){boom} AS v,", "max(d) AS d", f"FROM {r[0]}",
                     f"WHERE id IS NOT NULL AND {k} = {k}", "GROUP BY id"]
        else:
            raise AssertionError(t)
        head = "".join(f"-- note {c}\n" for c in range(node.comments % 3))
        if node.ws % 3 == 0:
            body = " ".join(parts)
        elif node.ws % 3 == 1:
            body = "\n".join(parts)
        else:
            body = "\n".join(("    " if i else "") + p.replace(" ", "  ") for i, p in enumerate(parts))
        return head + body

    def render_yaml_node(self, node: Node) -> str:
        items: list[tuple[str, str]] = [("kind", f"kind: {node.kind}\n"), ("name", f"name: {node.name}\n"),
                                        ("description", f"description: {json.dumps(node.description)}\n"),
                                        ("tags", f"tags: [{', '.join(node.tags)}]\n")]
        refs = "".join(f"  - ref: {i}\n" for i in node.inputs)
        if node.kind == "source":
            table = f"data/{node.name}/*.csv" if node.fmt == "glob" else f"data/{node.name}.{node.fmt}"
            items += [("source", f"source: {'csv' if node.fmt == 'glob' else node.fmt}\n"),
                      ("table", f"table: {table}\n")]
        elif node.kind in ("transform", "feature_group") and not node.py:
            sql = "".join(f"  {line}\n" for line in self.sql(node).splitlines())
            items += [("inputs", f"inputs:\n{refs}"), ("transform", f"transform: |\n{sql}")]
            if node.kind == "feature_group":
                items += [("entity", "entity:\n  name: thing\n  join_keys: [id]\n")]
                if node.offline:
                    items += [("materialization", "materialization:\n  offline:\n    enabled: true\n"
                                                  "    format: parquet\n")]
                items += [("features", "features:\n  v: {dtype: DOUBLE}\n  d: {dtype: DATE}\n" if node.features
                           else "features: null\n")]
        elif node.kind == "model":
            items += [("inputs", f"inputs:\n{refs}"), ("python", f"python: pylib/{node.name}.py:scale\n"),
                      ("params", f"params:\n  m: {node.k}\n")]
        elif node.kind == "aggregation":
            rolling = f"    rolling:\n      - window: [{node.window}]\n        aggs: [sum, count]\n"
            items += [("inputs", f"inputs:\n{refs}"), ("id_col", "id_col: id\n"),
                      ("feature_date_col", "feature_date_col: d\n"),
                      ("features", f"features:\n  - name: v\n    column: v\n    basic: [{', '.join(node.basic)}]\n"
                                   + rolling)]
        elif node.kind == "rule":
            if node.severity == "error":
                rule = ('rule:\n  - name: ids_present\n    type: "null"\n    columns: [id]\n'
                        '    params:\n      max_null_percentage: 1.0\n')
            else:
                rule = ('rule:\n  - name: v_present\n    type: "null"\n    columns: [v]\n'
                        '  - name: id_unique\n    type: uniqueness\n    columns: [id]\n')
            items += [("inputs", f"inputs:\n{refs}"), ("rule", rule),
                      ("params", f"params:\n  severity: {node.severity}\n")]
        elif node.kind == "profile":
            items += [("inputs", f"inputs:\n{refs}"), ("profile", "profile:\n  params:\n    max_top_values: 3\n")]
        elif node.kind == "exposure":
            items += [("type", "type: file\n"), ("depends_on", f"depends_on:\n{refs}"),
                      ("params", f"params:\n  format: {node.fmt}\n  path: {node.out_files()[0]}\n")]
        else:
            raise AssertionError(node.kind)
        if node.order:
            items.sort(key=lambda kv: stable(node.order, kv[0]))
        notes = "".join(f"# note {c}\n" for c in range(node.comments // 3))
        return notes + "".join(text for _, text in items)

    def render_py_file(self, rel: str) -> str:
        ids = self.py_files()[rel]
        lines = ["from seekrun.pipeline import transform\n"]
        if self.imports_helper(rel):
            lines.append("import prophelp\n")
        lines += [f"# note {i}\n" for i in range(self.pyfile_notes.get(rel, 0))]
        for nid in ids:
            n = self.nodes[nid]
            factor = "{prophelp.FACTOR}" if n.helper else str(n.k)
            lines += ["\n\n", f"@transform(name={n.name!r}, inputs={n.inputs!r}, tags={n.tags!r},\n",
                      f"           description={n.description!r})\n", f"def {n.name}(ctx):\n"]
            if n.fail:
                lines.append("    raise RuntimeError('boom')\n")
            lines.append(f"    return ctx.ref({n.inputs[0]!r}).project(f\"id, v * {factor} AS v, d\")\n")
        return "".join(lines)

    def render_pylib(self, node: Node) -> str:
        lines = []
        if node.helper:
            lines.append("import prophelp\n\n\n")
        lines.append("def scale(ctx):\n")
        lines.append("    m = prophelp.FACTOR\n" if node.helper else "    m = int(ctx.params['m'])\n")
        if node.fail:
            lines.append("    raise RuntimeError('boom')\n")
        lines.append("    return ctx.ref(0).project(f'id, v * {m} AS v, d')\n")
        return "".join(lines)

    def render_helper(self) -> str:
        notes = "".join(f"# note {i}\n" for i in range(self.helper_notes))
        return f'"""Shared factor for the property tests\' Python nodes."""\n{notes}FACTOR = {self.factor}\n'

    def render_common(self) -> str:
        params = "".join(f"      {k}: {v}\n" for k, v in sorted(self.common.items()))
        return f"transformations:\n  - id: consts\n    params:\n{params}"

    def render(self) -> dict[str, bytes]:
        """Every file of the project (without target/ and outputs)."""
        files: dict[str, bytes] = {}
        marker = "name: propproj\nexposure_paths: [output]\n"
        files["seekrun_project.yml" if self.flavour == "seekrun" else "seeknal_project.yml"] = marker.encode()
        if self.flavour == "seeknal":
            files["seeknal/common/consts.yml"] = self.render_common().encode()
        files["prophelp.py"] = self.render_helper().encode()
        for rel, ids in self.yml_files().items():
            files[rel] = "---\n".join(self.render_yaml_node(self.nodes[i]) for i in ids).encode()
        for rel in self.py_files():
            files[rel] = self.render_py_file(rel).encode()
        for n in self.nodes.values():
            if n.py == "yaml":
                files[self.code_file(n)] = self.render_pylib(n).encode()
        for sid, parts in self.data.items():
            fmt = self.nodes[sid].fmt
            for rel, d in parts.items():
                files[rel] = render_data(d, "csv" if fmt == "glob" else fmt)
        return files

    # ---- what a node is (its semantic content) ------------------------------------------------
    def own(self, nid: str, files: dict[str, bytes]) -> str:
        n = self.nodes[nid]
        base = (n.kind, tuple(n.inputs))
        if n.kind == "source":
            return sig((base, n.fmt, tuple((rel, files[rel]) for rel in sorted(self.data[nid]))))
        code = self.code_file(n)
        if code is not None:
            helper = files["prophelp.py"] if self.imports_helper(code) else None
            extra = (n.k,) if n.py == "yaml" else ()
            return sig((base, files[code], helper, extra))
        if n.kind in ("transform", "feature_group"):
            kpart = ("env", n.env_name(), self.env[n.env_name()]) if n.kmode == "env" else ("text", self.kval(n))
            if n.tmpl in NO_K:
                kpart = None
            fg = (n.features, n.offline) if n.kind == "feature_group" else ()
            return sig((base, n.tmpl, kpart, n.fail, fg))
        if n.kind == "aggregation":
            return sig((base, n.basic, n.window))
        if n.kind == "rule":
            return sig((base, n.severity))
        if n.kind == "exposure":
            return sig((base, n.fmt, n.where))
        return sig(base)

    # ---- evaluation ----------------------------------------------------------------------------
    def evaluate(self, nid: str, tables: dict[str, object]):
        """The table node nid builds from these input tables (or what an exposure writes).
        Raises Fail when the build must fail."""
        n = self.nodes[nid]
        if n.kind == "source":
            fmt = n.fmt
            parts = [self.data[nid][rel] for rel in sorted(self.data[nid])]
            if fmt == "glob":
                tabs = [p.table("csv") for p in parts]
                return Table(tabs[0].cols, tuple(r for t in tabs for r in t.rows))
            return parts[0].table(fmt)
        ins = []
        for i in n.inputs:
            t = tables.get(i)
            if not isinstance(t, Table):
                raise AssertionError(f"{nid}: input {i} has no modeled table ({t!r})")
            ins.append(t)
        if n.kind == "exposure":
            return ins[0]
        if n.kind == "profile":
            return UNMODELED
        if n.kind == "rule":
            return rule_table(n, ins[0])
        if n.kind == "aggregation":
            return aggregation_table(n, ins[0])
        if n.fail and not (not n.py and n.tmpl == "join" and _pruned(ins[0], ins[1])):
            raise Fail("boom")
        if n.py:
            t = ins[0]
            factor = self.factor if n.helper else n.k
            ty = promote(t.typ("v"))
            i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
            return Table((("id", t.typ("id")), ("v", ty), ("d", t.typ("d"))),
                         tuple((r[i_id], num(None if r[i_v] is None else r[i_v] * factor, ty), r[i_d])
                               for r in t.rows))
        out = sql_table(n.tmpl, self.kval(n), ins)
        if n.kind == "feature_group":
            out = feature_group_table(n, out)
        return out

    # ---- planning ------------------------------------------------------------------------------
    def output_ok(self, nid: str, strict: bool = False) -> bool:
        """Whether nid's outputs are what its record says: its table is stamped with the record's
        output hash; each of its files exists, was recorded, and holds what was recorded (byte
        for byte: ``strict`` counts a file rewritten unrecorded with the same rows as changed)."""
        n, rec = self.nodes[nid], self.records[nid]
        if n.has_table and (nid not in self.tables or self.stamps.get(nid) != rec.out):
            return False
        for rel in n.out_files():
            want = rec.files.get(rel)
            if rel not in self.files or want is None or table_key(self.files[rel]) != table_key(want):
                return False
            if strict and rel in self.loose:
                return False
        return True

    def plan(self, files: dict[str, bytes], selected: set[str], full: bool = False,
             strict: bool = False) -> dict[str, PlanItem]:
        items: dict[str, PlanItem] = {}
        actual: dict[str, str | None] = {}
        for nid in self.order():
            n = self.nodes[nid]
            own = self.own(nid, files)
            ins = {p: actual[p] for p in n.inputs}
            expected = sig(("out", nid, own, tuple(ins[p] for p in n.inputs)))
            rec = self.records.get(nid)
            # --full rebuilds what it selects (all of it without a filter), and only that
            needs = ((full and nid in selected) or rec is None or rec.status != "success" or rec.own != own or rec.ins != ins
                     or not self.output_ok(nid, strict))
            sel = nid in selected
            blocked = needs and sel and any(actual[p] is None for p in n.inputs)
            runs = needs and sel and not blocked
            if runs:
                actual[nid] = expected
            elif rec is not None and rec.out is not None and self.output_ok(nid, strict):
                actual[nid] = rec.out
            else:
                actual[nid] = None
            items[nid] = PlanItem(needs, sel, blocked, runs, rec is None, expected)
        return items

    def removed(self) -> list[str]:
        """Recorded nodes no longer in the project, and the tables a killed run committed (and
        stamped) without recording them, for nodes since removed: those go too."""
        return sorted({*(nid for nid in self.records if nid not in self.nodes),
                       *(nid for nid in self.stamps if nid not in self.nodes and nid not in self.records)})

    def guard_refuses(self) -> bool:  # counts recorded builds only
        removed, built = len([n for n in self.records if n not in self.nodes]), len(self.records)
        return bool(removed) and (removed * 2 > built or removed == built)

    def outcomes(self, items: dict[str, PlanItem]) -> dict[str, object]:
        """For each node that runs: the table it builds if its inputs in this run succeed, or a
        Fail.  (A node whose input fails is skipped, whatever it would have given.)"""
        tables = dict(self.tables)
        out: dict[str, object] = {}
        for nid in self.order():
            if not items[nid].runs:
                continue
            n = self.nodes[nid]
            if any(isinstance(out.get(p), Fail) for p in n.inputs):
                out[nid] = Fail("an input failed")
                continue
            try:
                out[nid] = self.evaluate(nid, tables)
            except Fail as exc:
                out[nid] = exc
                continue
            tables[nid] = out[nid]
        return out

    def statuses(self, items, outcomes, continue_on_error: bool, threads: int) -> dict[str, str] | None:
        """success | failed | skipped for each node that runs; None when it depends on timing
        (a failure without --continue-on-error on several threads)."""
        runs = [nid for nid in self.order() if items[nid].runs]
        if not any(isinstance(outcomes[n], Fail) for n in runs):
            return {n: "success" for n in runs}
        if continue_on_error:
            st: dict[str, str] = {}
            for nid in runs:
                if any(st.get(p) in ("failed", "skipped") for p in self.nodes[nid].inputs):
                    st[nid] = "skipped"
                else:
                    st[nid] = "failed" if isinstance(outcomes[nid], Fail) else "success"
            return st
        if threads != 1:
            return None
        # one worker: ready nodes leave in node-id order; nothing new starts after a failure
        members = set(runs)
        waiting = {n: sum(1 for p in dict.fromkeys(self.nodes[n].inputs) if p in members) for n in runs}
        ready = [n for n in runs if waiting[n] == 0]
        heapq.heapify(ready)
        st = {n: "skipped" for n in runs}
        while ready:
            nid = heapq.heappop(ready)
            if isinstance(outcomes[nid], Fail):
                st[nid] = "failed"
                break
            st[nid] = "success"
            for c in runs:
                if nid in self.nodes[c].inputs:
                    waiting[c] -= 1
                    if waiting[c] == 0:
                        heapq.heappush(ready, c)
        return st

    # ---- remembering -------------------------------------------------------------------------
    def in_use(self) -> set[str]:
        return {rel for n in self.nodes.values() for rel in n.out_files()}

    def commit(self, nid: str, table, stamp: str, rels: list[str]) -> None:
        """A build's outputs are in place (committed; recorded or not): its table with its
        stamp, and its files."""
        n = self.nodes[nid]
        if n.has_table:
            self.tables[nid], self.stamps[nid] = table, stamp
        if n.kind == "feature_group" and not n.offline:  # offline turned off: the build deletes its file
            self.files.pop(f"target/feature_store/{n.name}.parquet", None)
        for rel in rels:
            self.files[rel] = table
            self.loose.discard(rel)

    def commit_unrecorded(self, nid: str, table, stamp: str, rels: list[str]) -> None:
        """A killed build committed its outputs and its record was not written: its files are
        claimed (seekrun's), and one that holds what was recorded may differ in its bytes."""
        rec = self.records.get(nid)
        same = {rel for rel in rels if rec is not None and rel in rec.files
                and table_key(rec.files[rel]) == table_key(table)}
        self.commit(nid, table, stamp, rels)
        self.loose |= same
        for rel in rels:
            self.claimed[rel] = nid

    def apply_success(self, nid: str, files: dict[str, bytes], table, actual_ins: dict) -> None:
        """A successful build, from its inputs' output hashes as they were when it started: it
        is recorded with the files it wrote; the files its last record had and it no longer
        writes go (unless another node writes them now)."""
        n = self.nodes[nid]
        own = self.own(nid, files)
        out = sig(("out", nid, own, tuple(actual_ins[p] for p in n.inputs)))
        old = self.records.get(nid)
        self.commit(nid, table, out, n.out_files())
        for rel in (old.files if old else {}):
            if rel not in n.out_files() and rel not in self.in_use():
                self.files.pop(rel, None)
        self.records[nid] = Rec("success", own, actual_ins, out, {rel: table for rel in n.out_files()})
        for rel in n.out_files():
            if self.claimed.get(rel) == nid:
                del self.claimed[rel]
        self.uncertain.pop(nid, None)

    def apply_failure(self, nid: str) -> None:
        rec = self.records.get(nid)
        self.records[nid] = Rec("failed", rec.own, rec.ins, rec.out, rec.files) if rec else \
            Rec("failed", None, None, None)

    def drop_stale_claims(self) -> None:
        """At the start of a writing run: a claimed file that no node writes any more goes."""
        use = self.in_use()
        for rel, nid in list(self.claimed.items()):
            if rel not in use:
                del self.claimed[rel]
                self.files.pop(rel, None)
                self.loose.discard(rel)

    def apply_removals(self) -> list[str]:
        gone = self.removed()
        for nid in gone:
            self.forget(nid)
        return gone

    def apply_removals_recorded(self, gone) -> None:
        for nid in gone:
            self.forget(nid)

    def forget(self, nid: str) -> None:
        """A node removed from the project: its table is dropped, its recorded files deleted."""
        rec = self.records.pop(nid, None)
        self.tables.pop(nid, None)
        self.stamps.pop(nid, None)
        self.uncertain.pop(nid, None)
        for rel in (rec.files if rec else {}):
            if rel not in self.in_use():
                self.files.pop(rel, None)
                self.loose.discard(rel)

    def built_from_records(self, nid: str, files: dict[str, bytes]) -> str:
        """The output hash of a build of nid started now: from its inputs' recorded outputs."""
        n = self.nodes[nid]
        return sig(("out", nid, self.own(nid, files),
                    tuple(self.records[p].out if p in self.records else None for p in n.inputs)))

    def apply_run(self, statuses: dict[str, str], files: dict[str, bytes], outcomes: dict) -> None:
        """What a run did (statuses of the nodes that ran), in topological order: each success is
        recorded with its inputs' output hashes as recorded when it started."""
        for nid in self.order():
            st = statuses.get(nid)
            if st == "success":
                ins = {p: (self.records[p].out if p in self.records else None) for p in self.nodes[nid].inputs}
                self.apply_success(nid, files, outcomes[nid], ins)
            elif st == "failed":
                self.apply_failure(nid)

    # ---- after a kill: outputs that may or may not have been committed ------------------------
    def scenario(self, which: str) -> None:
        """The uncertain builds A: not committed (as the model has them); B: committed without
        their record (C: and files that hold the recorded rows differ in their bytes)."""
        if which == "A":
            return
        for nid, (table, stamp, rels) in self.uncertain.items():
            if nid in self.nodes:
                self.commit_unrecorded(nid, table, stamp, rels)

    def state(self):
        return (dict(self.records), dict(self.tables), dict(self.stamps), dict(self.files), dict(self.claimed),
                set(self.loose))

    def set_state(self, state) -> None:
        (self.records, self.tables, self.stamps, self.files, self.claimed, self.loose) = (
            dict(state[0]), dict(state[1]), dict(state[2]), dict(state[3]), dict(state[4]), set(state[5]))

    def plans(self, files: dict[str, bytes], selected: set[str], full: bool = False):
        """The plans in scenarios A, B and C (one plan when nothing is uncertain); files
        rewritten unrecorded with their recorded rows count as changed in C only."""
        out = []
        for which in ("A", "B", "C") if self.uncertain or self.loose else ("A",):
            saved = self.state()
            try:
                self.scenario(which)
                out.append(self.plan(files, selected, full, strict=which == "C"))
            finally:
                self.set_state(saved)
        return out

    def settle(self, ran: set[str], plans, selected: set[str], status: dict[str, str]) -> None:
        """After a run: an uncertain build this run would have rerun if its outputs did not
        match its record (selected, not blocked in C), and that it found up to date (cached),
        is known now: committed (B) when its node needed to run without it, else not (A).  (One
        skipped because a failure stopped the run says nothing: it stays uncertain.)  A loose
        file whose node this run would have rerun matched its record byte for byte."""
        a, c = plans[0], plans[-1]
        for nid in list(self.uncertain):
            if nid not in self.nodes or nid in ran:
                self.uncertain.pop(nid)
            elif nid in selected and not c[nid].blocked and status.get(nid) == "cached":
                table, stamp, rels = self.uncertain.pop(nid)
                if a[nid].needs and not a[nid].blocked:
                    self.commit_unrecorded(nid, table, stamp, rels)
                    self.loose -= set(rels)
        for rel in list(self.loose):
            owner = next((n for n, v in self.nodes.items() if rel in v.out_files()), None)
            if owner is None or owner in ran or (owner in selected and not c[owner].blocked
                                                 and status.get(owner) == "cached"):
                self.loose.discard(rel)


# ---- the templates, in Python ---------------------------------------------------------------
def sql_table(tmpl: str, k: int, ins: list[Table]) -> Table:
    t = ins[0]
    if tmpl == "add":
        ty = promote(t.typ("v"))
        i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
        return Table((("id", t.typ("id")), ("v", ty), ("d", t.typ("d"))),
                     tuple((r[i_id], num(None if r[i_v] is None else r[i_v] + k, ty), r[i_d]) for r in t.rows))
    if tmpl == "filter":
        promote(t.typ("v"))  # VARCHAR >= 3: DuckDB refuses the comparison
        i_v = t.idx("v")
        return Table(t.cols, tuple(r for r in t.rows if r[i_v] is not None and r[i_v] >= k))
    if tmpl == "agg":
        vt = promote(t.typ("v"))
        ty = "DOUBLE" if vt == "DOUBLE" else "HUGEINT"
        i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
        groups: dict = {}
        for r in t.rows:
            groups.setdefault(r[i_id], []).append(r)
        rows = []
        for key, rs in groups.items():
            vs = [r[i_v] for r in rs if r[i_v] is not None]
            ds = [r[i_d] for r in rs if r[i_d] is not None]
            rows.append((key, num(sum(vs), ty) if vs else None, max(ds) if ds else None, len(rs)))
        return Table((("id", t.typ("id")), ("v", ty), ("d", t.typ("d")), ("n", "BIGINT")), tuple(rows))
    if tmpl == "strcat":
        i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
        return Table((("id", t.typ("id")), ("v", t.typ("v")), ("d", t.typ("d")), ("s", "VARCHAR")),
                     tuple((r[i_id], r[i_v], r[i_d], None if r[i_v] is None else f"{to_varchar(r[i_v])}-{k}")
                           for r in t.rows))
    if tmpl == "dec":
        i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
        return Table((("id", t.typ("id")), ("v", DEC), ("d", t.typ("d"))),
                     tuple((r[i_id], None if r[i_v] is None else Decimal(r[i_v]).quantize(Decimal("0.01")),
                            r[i_d]) for r in t.rows))
    if tmpl == "fgsel":
        i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
        groups = {}
        for r in t.rows:
            if r[i_id] is not None:
                groups.setdefault(r[i_id], []).append(r)
        rows = []
        for key, rs in groups.items():
            vs = [r[i_v] for r in rs if r[i_v] is not None]
            ds = [r[i_d] for r in rs if r[i_d] is not None]
            rows.append((key, max(vs) if vs else None, max(ds) if ds else None))
        return Table((("id", t.typ("id")), ("v", t.typ("v")), ("d", t.typ("d"))), tuple(rows))
    if tmpl == "join":
        a, b = ins
        ty = promote(a.typ("v"), b.typ("v"))
        a_id, a_v, a_d, b_id, b_v = a.idx("id"), a.idx("v"), a.idx("d"), b.idx("id"), b.idx("v")
        rows = []
        for ra in a.rows:
            for rb in b.rows:
                if ra[a_id] is not None and ra[a_id] == rb[b_id]:
                    v = None if ra[a_v] is None or rb[b_v] is None else ra[a_v] + rb[b_v] + k
                    rows.append((ra[a_id], num(v, ty), ra[a_d]))
        return Table((("id", a.typ("id")), ("v", ty), ("d", a.typ("d"))), tuple(rows))
    raise AssertionError(tmpl)


def feature_group_table(n: Node, t: Table) -> Table:
    ids = t.col("id")
    if any(i is None for i in ids):
        raise Fail("NULL join key")
    if len(set(ids)) != len(ids):
        raise Fail("join keys are not unique")
    if not n.features:
        return t
    i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
    if t.typ("d") not in ("DATE", "VARCHAR") or (t.typ("d") == "VARCHAR" and t.rows):
        raise Fail("cannot cast d to DATE")
    if t.typ("v") not in NUMERIC and t.rows:
        raise Fail("cannot cast v to DOUBLE")
    return Table((("id", t.typ("id")), ("v", "DOUBLE"), ("d", "DATE")),
                 tuple((r[i_id], None if r[i_v] is None else float(r[i_v]), r[i_d]) for r in t.rows))


def aggregation_table(n: Node, t: Table) -> Table:
    i_id, i_v, i_d = t.idx("id"), t.idx("v"), t.idx("d")
    if t.typ("d") not in ("DATE",):
        raise Fail("feature_date_col is not a DATE")
    vt = t.typ("v")
    if ("sum" in n.basic or "avg" in n.basic or True) and vt not in NUMERIC:  # rolling sum needs a number
        raise Fail("sum over a non-number")
    dates = [r[i_d] for r in t.rows if r[i_d] is not None]
    app = max(dates) if dates else None
    sum_t = "DOUBLE" if vt == "DOUBLE" else "HUGEINT"
    types = {"sum": sum_t, "count": "BIGINT", "max": vt, "avg": "DOUBLE"}
    cols = [("id", t.typ("id")), ("application_date", "DATE")]
    cols += [(f"v_{a}", types[a]) for a in n.basic]
    cols += [(f"v_sum_{n.window}d", sum_t), (f"v_count_{n.window}d", "BIGINT")]

    def agg(name: str, vs: list, ty: str):
        if name == "count":
            return len(vs)
        if not vs:
            return None
        if name == "sum":
            return num(sum(vs), ty)
        if name == "max":
            return max(vs)
        if name == "avg":
            return sum(vs) / len(vs)
        raise AssertionError(name)

    groups: dict = {}
    for r in t.rows:
        groups.setdefault(r[i_id], []).append(r)
    rows = []
    for key, rs in groups.items():
        base = [r[i_v] for r in rs if r[i_v] is not None and r[i_d] is not None and app is not None
                and r[i_d] <= app]
        window = [r[i_v] for r in rs if r[i_v] is not None and r[i_d] is not None and app is not None
                  and app - dt.timedelta(days=n.window) < r[i_d] <= app]
        row = [key, app] + [agg(a, base, types[a]) for a in n.basic]
        row += [agg("sum", window, sum_t), agg("count", window, "BIGINT")]
        rows.append(tuple(row))
    return Table(tuple(cols), tuple(rows))


RULE_COLS = (("check", "VARCHAR"), ("type", "VARCHAR"), ("column", "VARCHAR"), ("status", "VARCHAR"),
             ("violations", "BIGINT"), ("message", "VARCHAR"))


def rule_table(n: Node, t: Table) -> Table:
    """The rule's results without the message text (None here; compared with a clean build)."""
    if n.severity == "error":
        nulls = sum(1 for v in t.col("id") if v is None)  # max_null_percentage 1.0: always passes
        rows = [("ids_present", "null", "id", "pass", nulls, None)]
    else:
        v_col, ids = t.col("v"), t.col("id")
        nulls = sum(1 for v in v_col if v is None)
        counts: dict = {}
        for i in ids:
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        dup_rows = sum(c for c in counts.values() if c > 1)
        rows = [("v_present", "null", "v", "warn" if nulls else "pass", nulls, None),
                ("id_unique", "uniqueness", "id", "warn" if dup_rows else "pass", dup_rows, None)]
    return Table(RULE_COLS, tuple(rows))


# ---- reading what seekrun left ---------------------------------------------------------------
def read_state(root: Path) -> dict[str, dict]:
    """The node records seekrun would load: execution_state.json with its journal replayed
    (torn lines skipped), read here without seekrun's code."""
    state_dir = root / "target" / "state"
    nodes: dict[str, dict] = {}
    try:
        nodes = dict(json.loads((state_dir / "execution_state.json").read_bytes())["nodes"])
    except (OSError, ValueError, KeyError, TypeError):
        nodes = {}
    try:
        raw = (state_dir / "execution_state.journal").read_bytes()
    except OSError:
        raw = b""
    for line in raw.splitlines():
        try:
            rec = json.loads(line)
            nid = rec["id"]
        except (ValueError, KeyError, TypeError):
            continue
        if rec.get("removed"):
            nodes.pop(nid, None)
        elif "entry" in rec:
            nodes[nid] = rec["entry"]
    return nodes


def _pruned(a: Table, b: Table) -> bool:
    """Whether DuckDB (2.0) skips the join's failing scalar subquery: when both sides have
    non-null ids whose ranges do not overlap, its join filter (min/max of the build side)
    prunes the whole probe side and the projection never runs.  Anything else (a side empty
    or all null, ranges that overlap, with or without a match) evaluates it and fails."""
    x = [r[a.idx("id")] for r in a.rows if r[a.idx("id")] is not None]
    y = [r[b.idx("id")] for r in b.rows if r[b.idx("id")] is not None]
    return bool(x and y) and (max(x) < min(y) or max(y) < min(x))
