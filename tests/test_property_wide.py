"""Issue 10 section 5: property tests that make "an incremental build always equals a clean build"
a guarantee, checked against an independent model (tests/propmodel.py), not against seekrun.

Hypothesis draws a project: a seekrun or a Seeknal-flavour project (seeknal_project.yml, nodes
under seeknal/, shared values in seeknal/common/consts.yml used as {{ consts.k_<node> }}), with
csv, parquet, json, jsonl and glob sources (NULLs, strings, dates, header-only files, extra
columns), SQL transforms (several templates), Python nodes (decorators in a .py under the node
paths, and YAML ``python: pylib/<name>.py:scale``, some using a helper module), feature groups,
aggregations, rules (one always passes, one has severity warn), profiles and file exposures,
several nodes per file, env vars.  Then it draws a sequence of steps: edits that change
something (data, SQL, kinds, renames, deletions with their users, column and type changes, a
deliberate failure and its fix, env and common values, helper code), edits that must change
nothing (ref-style switches, SQL whitespace, YAML key order, comments, descriptions, tags,
moving a node to another file, touching files), restores of old files byte for byte, and
invocations (--full, --dry-run, --threads 1..4, filters, --continue-on-error, kills with
SEEKRUN_FAULT at random points, in a real subprocess).

After every run, the model says exactly which nodes must run (and which must fail), and what
every table (rows and DuckDB column types), exposure file and feature-store file holds; the
run must match it exactly: nothing that did not need to run ran, nothing that needed to run
was left out.  Profiles, and rule messages, are not computed by the model: they are compared
with a clean --full build in a fresh copy at the end of each example (a profile is a function of
its input table, which the model checks after every step, and the exact-rerun check makes sure
a profile reruns whenever its input changed).

Runtime: the example counts scale with the hypothesis profile (tests/conftest.py: ci by
default, HYPOTHESIS_PROFILE=long for 20x, dev for 3 examples).
"""
from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from conftest import cli, examples, target_snapshot
from propmodel import (D0, LEAF_TEMPLATES, SQL_TEMPLATES_1, UNMODELED, WORDS, Data, Fail, Model, Node, Table,
                       csv_value, read_state, tagged_rows, table_key)

KINDS_WEIGHTED = ["transform"] * 4 + ["python", "python", "feature_group", "aggregation", "rule", "profile",
                                      "exposure", "exposure"]
EXPOSURE_FORMATS = ("csv", "parquet", "json", "jsonl")
FILE_NAMES = ("a", "b", "c", "sub/d", "sub/e")


# ---- data strategies ---------------------------------------------------------------------------
def value(ty: str):
    if ty == "BIGINT":
        return st.integers(-3, 30).map(lambda i: None if i < 0 else i)
    if ty == "DOUBLE":
        return st.integers(-6, 60).map(lambda i: None if i < 0 else i / 2)
    if ty == "DATE":
        return st.integers(-1, 8).map(lambda i: None if i < 0 else D0 + dt.timedelta(days=i))
    if ty == "VARCHAR":
        return st.integers(-1, len(WORDS) - 1).map(lambda i: None if i < 0 else WORDS[i])
    raise AssertionError(ty)


ID = st.integers(0, 6).map(lambda i: None if i == 0 else i)
DEFAULTS = {"BIGINT": 1, "DOUBLE": 0.5, "DATE": D0, "VARCHAR": "ab"}


def draw_data(draw, cols, min_rows=1, max_rows=5) -> Data:
    """Rows for these columns; every column has a non-NULL value (an all-NULL column would make
    DuckDB guess another type: not what this test is about)."""
    strategies = [ID if c == "id" else value(t) for c, t in cols]
    rows = draw(st.lists(st.tuples(*strategies), min_size=min_rows, max_size=max_rows))
    rows = [list(r) for r in rows]
    for j, (_, t) in enumerate(cols):
        if rows and all(r[j] is None for r in rows):
            rows[0][j] = DEFAULTS[t]
    return Data(tuple(cols), tuple(tuple(r) for r in rows))


def draw_cols(draw) -> tuple:
    cols = [("id", "BIGINT"), ("v", draw(st.sampled_from(["BIGINT", "DOUBLE"]))), ("d", "DATE")]
    if draw(st.booleans()):
        cols.append(("s", "VARCHAR"))
    if draw(st.booleans()):
        cols.append(("x", draw(st.sampled_from(["BIGINT", "VARCHAR"]))))
    return tuple(cols)


# ---- the generator -----------------------------------------------------------------------------
class Gen:
    """Builds and edits a Model with hypothesis' draw."""

    def __init__(self, draw, m: Model):
        self.draw, self.m = draw, m

    def d(self, strategy, label=None):
        return self.draw(strategy, label=label) if label else self.draw(strategy)

    # ---- choices ---------------------------------------------------------------------------
    def core_ids(self, before: str | None = None) -> list[str]:
        order = self.m.order()
        limit = order.index(before) if before in order else len(order)
        return [n for n in order[:limit] if self.m.nodes[n].core()]

    def readable_ids(self, before: str | None = None) -> list[str]:
        """What a rule, profile or exposure may read: a table the model computes."""
        order = self.m.order()
        limit = order.index(before) if before in order else len(order)
        return [n for n in order[:limit] if self.m.nodes[n].core()
                or self.m.nodes[n].kind == "aggregation" or self.m.nodes[n].tmpl in LEAF_TEMPLATES]

    def style(self, node: Node) -> Node:
        node.refstyle = [self.d(st.sampled_from(["ref", "dotted", "input"])) for _ in node.inputs]
        node.ws = self.d(st.integers(0, 2))
        node.comments = self.d(st.integers(0, 5))
        node.order = self.d(st.integers(0, 3))
        node.tags = self.d(st.lists(st.sampled_from(["red", "blue"]), max_size=2, unique=True))
        return node

    def yml_file(self) -> str:
        return f"{self.m.node_dir}/{self.d(st.sampled_from(FILE_NAMES))}.yml"

    def kmode(self) -> str:
        modes = ["lit", "lit", "env"] + (["common"] if self.m.flavour == "seeknal" else [])
        return self.d(st.sampled_from(modes))

    def set_k(self, node: Node, k: int) -> None:
        if node.kmode == "common":
            self.m.common[f"k_{node.name}"] = k
        elif node.kmode == "env":
            self.m.env[node.env_name()] = str(k)
        node.k = k

    # ---- new nodes -------------------------------------------------------------------------
    def add_source(self) -> str:
        fmt = self.d(st.sampled_from(["csv", "csv", "parquet", "json", "jsonl", "glob"]))
        node = self.style(Node("source", self.m.fresh_name("s"), fmt=fmt))
        node.file = self.yml_file()
        self.m.nodes[node.id] = node
        cols = draw_cols(self.draw)
        if fmt == "glob":
            parts = self.d(st.integers(1, 3))
            self.m.data[node.id] = {f"data/{node.name}/p{i}.csv": draw_data(self.draw, cols) for i in range(parts)}
        else:
            self.m.data[node.id] = {f"data/{node.name}.{fmt}": draw_data(self.draw, cols)}
        return node.id

    def add_node(self, kind: str | None = None) -> str | None:
        m = self.m
        kind = kind or self.d(st.sampled_from(KINDS_WEIGHTED))
        core = self.core_ids()
        if not core:
            return None
        if kind == "transform":
            tmpls = list(SQL_TEMPLATES_1) + (["join"] if len(core) >= 2 else []) + ["dec"]
            tmpl = self.d(st.sampled_from(tmpls))
            n_in = 2 if tmpl == "join" else 1
            inputs = self.d(st.lists(st.sampled_from(core), min_size=n_in, max_size=n_in, unique=True))
            node = Node("transform", m.fresh_name("t"), inputs, tmpl=tmpl, kmode=self.kmode())
        elif kind == "python":
            node = Node("transform", m.fresh_name("p"), [self.d(st.sampled_from(core))], tmpl="mul",
                        py=self.d(st.sampled_from(["deco", "yaml"])), helper=self.d(st.booleans()))
            if node.py == "yaml":
                node.kind = "model"
        elif kind == "feature_group":
            node = Node("feature_group", m.fresh_name("f"), [self.d(st.sampled_from(core))], tmpl="fgsel",
                        kmode=self.kmode(), features=self.d(st.booleans()), offline=self.d(st.booleans()))
        elif kind == "aggregation":
            basic = self.d(st.lists(st.sampled_from(["sum", "count", "max", "avg"]), min_size=1, max_size=3,
                                    unique=True))
            node = Node("aggregation", m.fresh_name("a"), [self.d(st.sampled_from(core))], basic=tuple(basic),
                        window=self.d(st.integers(1, 7)))
        else:
            readable = self.readable_ids()
            target = [self.d(st.sampled_from(readable))]
            if kind == "rule":
                node = Node("rule", m.fresh_name("r"), target, severity=self.d(st.sampled_from(["error", "warn"])))
            elif kind == "profile":
                node = Node("profile", m.fresh_name("q"), target)
            else:
                node = Node("exposure", m.fresh_name("e"), target, fmt=self.d(st.sampled_from(EXPOSURE_FORMATS)),
                            where=self.d(st.sampled_from(["output", "target/exports"])))
        self.style(node)
        if node.py == "deco":
            node.file = f"{m.node_dir}/py{self.d(st.integers(0, 1))}.py"
            node.tags = list(node.tags)
        else:
            node.file = self.yml_file()
        node.k = self.d(st.integers(0, 9))
        self.set_k(node, node.k)
        m.nodes[node.id] = node
        return node.id

    # ---- edits -----------------------------------------------------------------------------
    # Each returns a label, or None when it does not apply.  The model decides what must run;
    # edits in NOOP must leave nothing to run (checked).

    def pick(self, ids: list[str], label: str) -> str | None:
        return self.d(st.sampled_from(sorted(ids)), label) if ids else None

    def sources(self, fmts=None) -> list[str]:
        return [n for n, v in self.m.nodes.items() if v.is_source and (fmts is None or v.fmt in fmts)]

    def e_data_rows(self):
        sid = self.pick(self.sources(), "source")
        if sid is None:
            return None
        parts = self.m.data[sid]
        rel = self.d(st.sampled_from(sorted(parts)))
        new = draw_data(self.draw, parts[rel].cols, min_rows=1)
        if new == parts[rel]:
            return None  # the same rows drawn again: not an edit
        parts[rel] = new
        return f"new rows {rel}"

    def e_data_same_size(self):
        """One digit changed in place (same byte count); sometimes the old mtime put back."""
        sid = self.pick(self.sources(("csv",)), "csv source")
        if sid is None:
            return None
        rel = next(iter(self.m.data[sid]))
        data = self.m.data[sid][rel]
        cells = [(i, j) for i, r in enumerate(data.rows) for j, (c, t) in enumerate(data.cols)
                 if t == "BIGINT" and r[j] is not None and c != "id"]
        if not cells or data.ragged:
            return None
        i, j = self.d(st.sampled_from(cells))
        old = data.rows[i][j]
        new = self.d(st.integers(0, 9) if old < 10 else st.integers(10, 30)).__int__()
        if new == old:
            return None
        rows = [list(r) for r in data.rows]
        rows[i][j] = new
        self.m.data[sid][rel] = Data(data.cols, tuple(tuple(r) for r in rows))
        self.keep_mtime = rel if self.d(st.booleans()) else None
        return f"same-size edit {rel}"

    def e_data_empty(self):
        sid = self.pick(self.sources(("csv", "parquet")), "source")
        if sid is None:
            return None
        rel = next(iter(self.m.data[sid]))
        self.m.data[sid][rel] = Data(self.m.data[sid][rel].cols, ())
        return f"empty {rel}"

    def e_data_columns(self):
        """Add or drop an extra column, or change the type of v or x."""
        sid = self.pick(self.sources(), "source")
        if sid is None:
            return None
        parts = self.m.data[sid]
        cols = list(next(iter(parts.values())).cols)
        names = [c for c, _ in cols]
        options = [("add", c, t) for c, t in (("s", "VARCHAR"), ("x", "BIGINT"), ("x", "VARCHAR")) if c not in names]
        options += [("drop", c, None) for c in names if c in ("s", "x")]
        options += [("retype", c, {"BIGINT": "DOUBLE", "DOUBLE": "BIGINT", "VARCHAR": "BIGINT"}[t])
                    for c, t in cols if c in ("v", "x")]
        what, col, ty = self.d(st.sampled_from(options))
        if what == "add":
            cols.append((col, ty))
        elif what == "drop":
            cols = [(c, t) for c, t in cols if c != col]
        else:
            cols = [(c, ty if c == col else t) for c, t in cols]
        for rel in parts:
            parts[rel] = draw_data(self.draw, tuple(cols), min_rows=1)
        return f"{what} column {col} {ty or ''} in {sid}"

    def e_data_ragged(self):
        """A CSV with a row that has one field too many (after line 3): the source fails; the
        next edit of this kind fixes it."""
        sid = self.pick(self.sources(("csv",)), "csv source")
        if sid is None:
            return None
        rel = next(iter(self.m.data[sid]))
        data = self.m.data[sid][rel]
        if data.ragged:
            self.m.data[sid][rel] = Data(data.cols, data.rows)
            return f"fix ragged {rel}"
        if not data.rows:
            return None
        self.m.data[sid][rel] = Data(data.cols, data.rows, ragged=True)
        return f"ragged {rel}"

    def e_glob_parts(self):
        sid = self.pick(self.sources(("glob",)), "glob source")
        if sid is None:
            return None
        parts = self.m.data[sid]
        name = self.m.nodes[sid].name
        if len(parts) > 1 and self.d(st.booleans()):
            rel = self.d(st.sampled_from(sorted(parts)))
            del parts[rel]
            return f"drop part {rel}"
        free = [f"data/{name}/p{i}.csv" for i in range(5) if f"data/{name}/p{i}.csv" not in parts]
        rel = self.d(st.sampled_from(free))
        parts[rel] = draw_data(self.draw, next(iter(parts.values())).cols)
        return f"add part {rel}"

    def e_k(self):
        ids = [n for n, v in self.m.nodes.items() if v.kind in ("transform", "feature_group", "model")]
        nid = self.pick(ids, "node")
        if nid is None:
            return None
        node = self.m.nodes[nid]
        cur = self.m.kval(node)
        k = self.d(st.integers(0, 9).filter(lambda x: x != cur))
        self.set_k(node, k)
        return f"k {nid} = {k} ({node.kmode})"

    def e_kmode(self):
        ids = [n for n, v in self.m.nodes.items() if v.kind in ("transform", "feature_group") and not v.py]
        nid = self.pick(ids, "sql node")
        if nid is None:
            return None
        node = self.m.nodes[nid]
        value = self.m.kval(node)
        modes = [m for m in ("lit", "env", "common") if m != node.kmode
                 and (m != "common" or self.m.flavour == "seeknal")]
        node.kmode = self.d(st.sampled_from(modes))
        self.set_k(node, value)
        return f"kmode {nid} -> {node.kmode}"

    def e_template(self):
        ids = [n for n, v in self.m.nodes.items() if v.kind == "transform" and not v.py and len(v.inputs) == 1]
        nid = self.pick(ids, "transform")
        if nid is None:
            return None
        node = self.m.nodes[nid]
        options = [t for t in SQL_TEMPLATES_1 if t != node.tmpl]
        if not self.m.children(nid) and node.tmpl != "dec":
            options.append("dec")
        node.tmpl = self.d(st.sampled_from(options))
        return f"template {nid} -> {node.tmpl}"

    def e_fail(self):
        ids = [n for n, v in self.m.nodes.items() if v.kind in ("transform", "feature_group", "model")]
        nid = self.pick(ids, "node")
        if nid is None:
            return None
        self.m.nodes[nid].fail = not self.m.nodes[nid].fail
        return f"{'break' if self.m.nodes[nid].fail else 'fix'} {nid}"

    def e_rewire(self):
        options = []
        for nid, node in self.m.nodes.items():
            if node.is_source:
                continue
            pool = self.readable_ids(before=nid) if node.kind in ("rule", "profile", "exposure") else \
                self.core_ids(before=nid)
            for slot in range(len(node.inputs)):
                targets = [p for p in pool if p not in node.inputs]
                if targets:
                    options.append((nid, slot, tuple(targets)))
        if not options:
            return None
        nid, slot, targets = self.d(st.sampled_from(options))
        new = self.d(st.sampled_from(targets))
        self.m.nodes[nid].inputs[slot] = new
        return f"rewire {nid}[{slot}] -> {new}"

    def e_kind_options(self):
        """feature group settings, aggregation features, rule severity, exposure format/place."""
        ids = [n for n, v in self.m.nodes.items() if v.kind in ("feature_group", "aggregation", "rule", "exposure")]
        nid = self.pick(ids, "node")
        if nid is None:
            return None
        node = self.m.nodes[nid]
        if node.kind == "feature_group":
            if self.d(st.booleans()):
                node.features = not node.features
            else:
                node.offline = not node.offline
        elif node.kind == "aggregation":
            node.basic = tuple(self.d(st.lists(st.sampled_from(["sum", "count", "max", "avg"]), min_size=1,
                                               max_size=3, unique=True).filter(lambda b: tuple(b) != node.basic)))
            node.window = self.d(st.integers(1, 7))
        elif node.kind == "rule":
            node.severity = "warn" if node.severity == "error" else "error"
        else:
            if self.d(st.booleans()):
                node.fmt = self.d(st.sampled_from([f for f in EXPOSURE_FORMATS if f != node.fmt]))
            else:
                node.where = "target/exports" if node.where == "output" else "output"
        return f"options {nid}"

    def e_python(self):
        """Helper factor, a comment in the helper or in a decorator file, a node switching
        between its own factor and the helper's."""
        what = self.d(st.sampled_from(["factor", "helper_note", "file_note", "use_helper"]))
        py = [n for n, v in self.m.nodes.items() if v.py]
        if what == "factor":
            self.m.factor = self.d(st.integers(1, 5).filter(lambda f: f != self.m.factor))
            return f"helper FACTOR = {self.m.factor}"
        if what == "helper_note":
            self.m.helper_notes += 1
            return "helper comment"
        if what == "file_note":
            files = sorted(self.m.py_files())
            if not files:
                return None
            rel = self.d(st.sampled_from(files))
            self.m.pyfile_notes[rel] = self.m.pyfile_notes.get(rel, 0) + 1
            return f"comment in {rel}"
        nid = self.pick(py, "python node")
        if nid is None:
            return None
        self.m.nodes[nid].helper = not self.m.nodes[nid].helper
        return f"helper use {nid} = {self.m.nodes[nid].helper}"

    def e_kind_change(self):
        ids = [n for n, v in self.m.nodes.items() if not v.py and (
            v.kind == "feature_group" or (v.kind == "transform" and v.tmpl not in LEAF_TEMPLATES))]
        nid = self.pick(ids, "sql node")
        if nid is None:
            return None
        old = self.m.nodes[nid]
        node = copy.deepcopy(old)
        if old.kind == "transform":
            node.kind, node.features, node.offline = "feature_group", False, False
        else:
            node.kind = "transform"
        self.m.replace_id(nid, node)
        return f"kind {nid} -> {node.id}"

    def e_rename(self):
        nid = self.pick(self.m.order(), "node")
        node = copy.deepcopy(self.m.nodes[nid])
        old_name = node.name
        node.name = self.m.fresh_name(old_name[0])
        if node.kmode == "common":
            self.m.common[f"k_{node.name}"] = self.m.common[f"k_{old_name}"]
        if node.kmode == "env":
            self.m.env[node.env_name()] = self.m.env[f"SRP_{old_name.upper()}"]
        if node.is_source:
            parts = self.m.data[nid]
            self.m.data[nid] = {rel.replace(f"data/{old_name}", f"data/{node.name}", 1): d for rel, d in parts.items()}
        self.m.replace_id(nid, node)
        return f"rename {nid} -> {node.id}"

    def e_delete(self):
        """Delete a node with everything downstream of it (at least one source stays)."""
        nid = self.pick(self.m.order(), "node")
        gone = self.m.downstream({nid})
        if not [n for n in self.sources() if n not in gone]:
            return None
        for n in gone:
            del self.m.nodes[n]
            self.m.data.pop(n, None)
        return f"delete {sorted(gone)}"

    def e_add(self):
        if self.d(st.integers(0, 4)) == 0:
            return f"add {self.add_source()}"
        nid = self.add_node()
        return None if nid is None else f"add {nid}"

    def e_env_common(self):
        """Change the value of an env var or a common value that nodes use, or one nobody uses."""
        used_env = [n for n, v in self.m.nodes.items() if v.kmode == "env"]
        used_common = [n for n, v in self.m.nodes.items() if v.kmode == "common"]
        what = self.d(st.sampled_from(["env", "common", "spare"]))
        users = used_env if what == "env" else used_common if what == "common" else []
        if users:
            node = self.m.nodes[self.d(st.sampled_from(sorted(users)))]
            old = self.m.kval(node)
            self.set_k(node, self.d(st.integers(0, 9).filter(lambda x: x != old)))
            return f"{what} value for {node.id} = {node.k}"
        if self.m.flavour != "seeknal":
            return None
        self.m.common["spare"] += 1
        return "common spare (unused)"

    # ---- no-op edits -------------------------------------------------------------------------
    def e_noop_style(self):
        """Ref style, SQL whitespace, comments, key order, description, tags, file placement."""
        ids = [n for n, v in self.m.nodes.items() if v.py != "deco"]
        nid = self.pick(ids, "yaml node")
        node = self.m.nodes[nid]
        what = self.d(st.sampled_from(["refstyle", "ws", "comments", "order", "description", "tags", "move"]))
        if what == "refstyle" and node.inputs and node.kind in ("transform", "feature_group"):
            slot = self.d(st.integers(0, len(node.inputs) - 1))
            node.refstyle[slot] = self.d(st.sampled_from([s for s in ("ref", "dotted", "input")
                                                          if s != node.refstyle[slot]]))
        elif what == "ws":
            node.ws += 1
        elif what == "comments":
            node.comments += 1
        elif what == "order":
            node.order += 1
        elif what == "description":
            node.description += " more"
        elif what == "tags":
            node.tags = ["blue"] if node.tags != ["blue"] else ["red"]
        elif what == "move":
            node.file = self.d(st.sampled_from([f for f in (f"{self.m.node_dir}/{n}.yml" for n in FILE_NAMES)
                                                if f != node.file]))
        else:
            return None
        return f"no-op {what} {nid}"

    def e_noop_common_inline(self):
        """A common value written out as the same literal (or back): the rendered SQL is equal."""
        ids = [n for n, v in self.m.nodes.items() if v.kmode in ("lit", "common") and not v.py
               and v.kind in ("transform", "feature_group")]
        nid = self.pick(ids, "sql node") if self.m.flavour == "seeknal" else None
        if nid is None:
            return None
        node = self.m.nodes[nid]
        value = self.m.kval(node)
        node.kmode = "lit" if node.kmode == "common" else "common"
        self.set_k(node, value)
        return f"no-op inline/common {nid}"


CHANGE_EDITS = ["e_data_rows", "e_data_rows", "e_data_same_size", "e_data_empty", "e_data_columns", "e_data_ragged",
                "e_glob_parts", "e_k", "e_k", "e_kmode", "e_template", "e_fail", "e_rewire", "e_kind_options",
                "e_python", "e_kind_change", "e_rename", "e_delete", "e_add", "e_add", "e_env_common", "restore"]
NOOP_EDITS = ["e_noop_style", "e_noop_style", "e_noop_common_inline", "touch"]


# ---- reading what a run left -------------------------------------------------------------------
TIMELY_PROFILE_METRICS = ("profiled_at", "freshness_hours")


def db_tables(root: Path) -> dict[str, tuple]:
    """Every node table: {id: (names, DuckDB types, rows tagged with their Python types)}."""
    import duckdb

    path = root / "target" / "seekrun.duckdb"
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for schema, name in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name <> '_seekrun'").fetchall():
            desc = con.execute(f'DESCRIBE "{schema}"."{name}"').fetchall()
            rows = con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
            if schema == "profile":  # rows that say when it was built (Seeknal's freshness_hours too)
                rows = [r for r in rows if r[1] not in TIMELY_PROFILE_METRICS]
            out[f"{schema}.{name}"] = (tuple(d[0] for d in desc), tuple(d[1] for d in desc), tagged_rows(rows))
        return out
    finally:
        con.close()


def strip_message(key: tuple) -> tuple:
    """A rule table without its message column (the model does not write messages)."""
    names, types, rows = key
    return names[:5], types[:5], sorted((r[:5] for r in rows), key=repr)


def file_key(path: Path, fmt: str):
    """An output file's content, comparable with model_file_key: rows (and types where the
    format has them), in any order."""
    if fmt == "parquet":
        import duckdb

        con = duckdb.connect()
        try:
            cur = con.execute(f"SELECT * FROM read_parquet('{path}')")
            names = tuple(d[0] for d in cur.description)
            rows = cur.fetchall()
            types = tuple(r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall())
        finally:
            con.close()
        return names, types, tagged_rows(rows)
    text = path.read_text()
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(text)))
        return tuple(lines[0]), sorted(lines[1:])
    objs = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines() if line.strip()]
    return len(objs), sorted((tuple((k, type(v).__name__, v) for k, v in o.items()) for o in objs), key=repr)


def model_file_key(t: Table, fmt: str):
    """What DuckDB's COPY writes for this table: parquet keeps types (HUGEINT becomes DOUBLE);
    CSV prints values (NULL as nothing, 2.5, 3.0, 3.00, 2024-01-02); JSON has numbers, strings
    and null (a DECIMAL as a number, a date as a string)."""
    if fmt == "parquet":
        types = tuple("DOUBLE" if ty == "HUGEINT" else ty for _, ty in t.cols)
        rows = [tuple(float(v) if ty == "HUGEINT" and v is not None else v for v, (_, ty) in zip(r, t.cols))
                for r in t.rows]
        return tuple(t.names()), types, tagged_rows(rows)
    if fmt == "csv":
        return tuple(t.names()), sorted([csv_value(v) for v in r] for r in t.rows)

    def js(v):
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, Decimal):
            return float(v)
        return v

    objs = [tuple((c, type(js(v)).__name__, js(v)) for c, v in zip(t.names(), r)) for r in t.rows]
    return len(objs), sorted(objs, key=repr)


TEMP = re.compile(r"(\.tmp-\d+$)|(^\.seekrun-tmp-)|(\.parquet\..*\.tmp$)")


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and TEMP.search(p.name))


def bounds(plans) -> tuple[set[str], set[str]]:
    """(the nodes that run in every scenario, the nodes that run in some)."""
    runs = [{n for n, it in p.items() if it.runs} for p in plans]
    return set.intersection(*runs), set.union(*runs)


def union(plans) -> dict:
    """One plan item per node: runs if it runs in some scenario; the rest from scenario C."""
    from dataclasses import replace

    return {n: replace(plans[-1][n], runs=any(p[n].runs for p in plans)) for n in plans[0]}


# ---- the world: a model, its files, and the runs -------------------------------------------------
class World:
    def __init__(self, m: Model, scratch: Path, draw):
        self.m, self.scratch, self.draw = m, scratch, draw
        self.root = scratch / "proj"
        self.root.mkdir()
        self.disk: dict[str, bytes] = {}
        self.versions: dict[str, list[tuple[bytes, object]]] = {}
        self.log: list[str] = []
        self.undo: list[tuple] = []
        self.g = Gen(draw, m)
        self.g.keep_mtime = None
        # files written long ago (the usual case: the parse cache and the file-hash cache answer
        # from the stat) or just now (entries are "racy" and files are read again)
        self.backdate = draw(st.booleans(), label="backdate files")
        self.clock = 1_600_000_000 * 10**9

    def say(self, text: str) -> None:
        self.log.append(text)

    def why(self, *detail) -> str:
        """An assertion message: the steps so far, one a line, then the details.  With
        PROPERTY_DUMP=<folder> set, the project as it is now is copied there, to look at."""
        if os.environ.get("PROPERTY_DUMP"):
            shutil.rmtree(os.environ["PROPERTY_DUMP"], ignore_errors=True)
            shutil.copytree(self.root, os.environ["PROPERTY_DUMP"], symlinks=True)
        return "\n".join(["steps:", *(f"  {line}" for line in self.log), *(repr(d) for d in detail)])

    # ---- files -----------------------------------------------------------------------------
    def version_of(self, rel: str):
        """What restoring this file means in the model (None: it is not restored)."""
        m = self.m
        if rel.startswith("data/"):
            for sid, parts in m.data.items():
                if rel in parts:
                    return ("data", sid, parts[rel])
            return None
        if rel == "prophelp.py":
            return ("helper", m.factor, m.helper_notes)
        if rel.endswith("common/consts.yml"):
            return ("common", dict(m.common))
        ids = m.yml_files().get(rel)
        if ids and len(ids) == 1:
            return ("node", copy.deepcopy(m.nodes[ids[0]]))
        return None

    def sync(self) -> None:
        files = self.m.render()
        for rel, data in files.items():
            if self.disk.get(rel) != data:
                path = self.root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                old_ns = path.stat().st_mtime_ns if self.g.keep_mtime == rel and path.exists() else None
                path.write_bytes(data)
                if old_ns is None and self.backdate:
                    self.clock += 10**9
                    old_ns = self.clock
                if old_ns is not None:
                    os.utime(path, ns=(old_ns, old_ns))
                self.disk[rel] = data
                snap = self.version_of(rel)
                if snap is not None:
                    self.versions.setdefault(rel, []).append((data, snap))
        for rel in sorted(set(self.disk) - set(files)):
            (self.root / rel).unlink()
            del self.disk[rel]
        self.g.keep_mtime = None
        env = {k: v for k, v in os.environ.items() if k.startswith("SRP_")}
        for k in env:
            if k not in self.m.env:
                del os.environ[k]
        os.environ.update(self.m.env)

    def project_state(self):
        m = self.m
        return copy.deepcopy((m.nodes, m.data, m.env, m.common, m.factor, m.helper_notes, m.pyfile_notes))

    def set_project_state(self, state) -> None:
        m = self.m
        (m.nodes, m.data, m.env, m.common, m.factor, m.helper_notes, m.pyfile_notes) = copy.deepcopy(state)

    # ---- edits -----------------------------------------------------------------------------
    def edit(self, noop: bool | None = None) -> str | None:
        if noop is None:
            noop = self.draw(st.integers(0, 3), label="no-op?") == 0
        name = self.draw(st.sampled_from(NOOP_EDITS if noop else CHANGE_EDITS), label="edit")
        if name == "restore":
            return self.restore()
        before = self.project_state()
        if name == "touch":
            label = self.touch()
        else:
            label = getattr(self.g, name)()
        if label is None:
            self.set_project_state(before)
            return None
        self.undo.append(before)
        self.sync()
        self.say(label)
        event(f"edit {name}")
        return label

    def touch(self) -> str:
        rels = sorted(r for r in self.disk if not r.endswith("_project.yml"))
        rel = self.draw(st.sampled_from(rels), label="touch")
        path = self.root / rel
        ns = path.stat().st_mtime_ns + self.draw(st.sampled_from([1, 1_000_000, 3_000_000_000]))
        os.utime(path, ns=(ns, ns))
        return f"touch {rel}"

    def revert(self) -> str | None:
        """Undo the last edit: every file it changed is put back."""
        if not self.undo:
            return None
        self.set_project_state(self.undo.pop())
        self.sync()
        self.say("revert")
        event("revert")
        return "revert"

    def restore(self) -> str | None:
        """Put back an earlier version of one file, byte for byte (a data file, a one-node YAML
        file, the helper module, the common file), when the project stays valid with it."""
        m = self.m
        options = []
        for rel, versions in sorted(self.versions.items()):
            for data, snap in versions:
                if data != self.disk.get(rel) and self.restorable(rel, snap):
                    options.append((rel, data, snap))
        if not options:
            return None
        rel, data, snap = self.draw(st.sampled_from(options), label="restore")
        before = self.project_state()
        what = snap[0]
        if what == "data":
            m.data[snap[1]][rel] = snap[2]
        elif what == "helper":
            m.factor, m.helper_notes = snap[1], snap[2]
        elif what == "common":
            m.common = dict(snap[1])
        else:
            old = copy.deepcopy(snap[1])
            cur = m.nodes[old.id]
            old.helper, old.fail = (cur.helper, cur.fail) if old.py == "yaml" else (old.helper, old.fail)
            if old.kmode == "common":
                m.common[f"k_{old.name}"] = m.common.get(f"k_{old.name}", old.k)
            m.nodes[old.id] = old
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # the old bytes themselves
        self.disk[rel] = data
        rendered = m.render()
        assert rendered.get(rel) == data, (rel, "the model does not render the restored version")
        self.undo.append(before)
        self.sync()
        self.say(f"restore {rel}")
        event(f"restore {snap[0]}")
        return f"restore {rel}"

    def restorable(self, rel: str, snap) -> bool:
        m = self.m
        what = snap[0]
        if what == "data":
            sid = snap[1]
            if sid not in m.data:
                return False
            others = [d for r, d in m.data[sid].items() if r != rel]
            return all(d.cols == snap[2].cols for d in others) and (m.nodes[sid].fmt != "glob" or not snap[2].ragged)
        if what == "helper":
            return True
        if what == "common":
            used = {f"k_{n.name}" for n in m.nodes.values() if n.kmode == "common"}
            return used <= set(snap[1])
        old: Node = snap[1]
        cur = m.nodes.get(old.id)
        if cur is None or cur.file != rel or m.yml_files().get(rel) != [old.id] or cur.py != old.py:
            return False
        order = m.order()
        pos = order.index(old.id)
        if any(i not in order[:pos] for i in old.inputs):
            return False
        if old.kmode == "env" and old.env_name() not in m.env:
            return False
        if (old.tmpl in LEAF_TEMPLATES or not old.core()) and m.children(old.id):
            return False  # its users read id, v and d
        return all(m.nodes[i].core() or (old.kind in ("rule", "profile", "exposure") and i in self.g.readable_ids())
                   for i in old.inputs)

    def delete_output(self) -> str | None:
        rels = sorted(r for r in self.m.files if (self.root / r).exists())
        pick = self.draw(st.integers(0, 99), label="delete output")  # drawn whatever exists (see fault())
        if not rels:
            return None
        rel = rels[pick % len(rels)]
        (self.root / rel).unlink()
        self.m.files.pop(rel)
        self.m.loose.discard(rel)
        self.say(f"delete output {rel}")
        return rel

    # ---- runs ------------------------------------------------------------------------------
    def selection(self, filt: list[str]) -> set[str]:
        """What the filters select (README): --types and --tags select (several values of one
        flag: any of them), --nodes selects those nodes and everything downstream,
        --exclude-tags leaves out; different flags narrow each other."""
        m = self.m
        given: dict[str, list[str]] = {}
        for flag, val in zip(filt[::2], filt[1::2]):
            given.setdefault(flag, []).append(val)
        sel = set(m.nodes)
        if "--types" in given:
            sel &= {n for n, v in m.nodes.items() if v.kind in given["--types"]}
        if "--nodes" in given:
            sel &= m.downstream(set(given["--nodes"]))
        if "--tags" in given:
            sel &= {n for n, v in m.nodes.items() if set(v.tags) & set(given["--tags"])}
        for tag in given.get("--exclude-tags", []):
            sel -= {n for n, v in m.nodes.items() if tag in v.tags}
        return sel

    def draw_filter(self) -> list[str]:
        m = self.m
        tags = sorted({t for v in m.nodes.values() for t in v.tags})
        out: list[str] = []
        for _ in range(self.draw(st.integers(1, 2), label="filters")):
            which = self.draw(st.sampled_from(["types", "nodes"] + (["tags", "exclude-tags"] if tags else [])),
                              label="filter")
            if which == "types":
                out += ["--types", self.draw(st.sampled_from(sorted({v.kind for v in m.nodes.values()})))]
            elif which == "nodes":
                out += ["--nodes", self.draw(st.sampled_from(m.order()))]
            else:
                out += [f"--{which}", self.draw(st.sampled_from(tags))]
        return out

    def run(self, *, full=False, dry=False, filt=(), threads=None, coe=False, allow=None, kill=None,
            expect_nothing=False):
        m = self.m
        filt = list(filt)
        args = ["run", "-p", str(self.root), *filt]
        if full:
            args.append("--full")
        if threads:
            args += ["--threads", str(threads)]
        if coe:
            args.append("--continue-on-error")
        if dry:
            args.append("--dry-run")
        refuses = m.guard_refuses() and not dry
        if allow is None:
            allow = refuses and self.draw(st.booleans(), label="allow removals at once")
        if refuses and not allow:  # the removal guard: exit 2, nothing changed
            before = target_snapshot(self.root)
            res = cli(*args)
            assert res.exit_code == 2 and "--allow-removals" in res.output, self.why(res.output)
            # (a temp file a killed run left may go: it was never output)
            def kept(snap):
                return {k: v for k, v in snap.items() if not TEMP.search(Path(k).name)}
            assert kept(target_snapshot(self.root)) == kept(before), self.why()
            self.say("(refused: removals)")
            allow = True
        if allow:
            args.append("--allow-removals")
        label = " ".join(a for a in args[3:]) or "(run)"
        if kill:
            label += f" SEEKRUN_FAULT={kill}"
        self.say(label)
        selected = self.selection(filt)
        plans = m.plans(self.disk, selected, full)
        if expect_nothing:  # a check of the model itself: no-op edits change no node's content
            plain = m.plan(self.disk, set(m.nodes))
            assert not any(it.needs for it in plain.values()) and not m.removed(), \
                self.why("model: a no-op edit left work", [n for n, it in plain.items() if it.needs])
        if dry:
            return self.dry_run(args, plans)
        outcomes = m.outcomes(union(plans))
        if kill:
            return self.kill_run(args, kill, threads or 1, plans, outcomes)
        res = cli(*args)
        return self.after_run(res.exit_code, res.stdout + res.stderr, plans, outcomes, threads or 2, coe, full,
                              selected)

    def dry_run(self, args, plans):
        before = target_snapshot(self.root)
        res = cli(*args, "--json")
        assert res.exit_code == 0, self.why(res.output)
        assert target_snapshot(self.root) == before, self.why("a dry run wrote under target/")
        data = json.loads(res.stdout)
        pending = {r["node_id"] for r in data["results"] if r["status"] == "pending"}
        lo, hi = bounds(plans)
        assert lo <= pending <= hi, self.why("dry run plan", pending, lo)
        assert sorted(data["removed_nodes"]) == self.m.removed(), self.why(data["removed_nodes"])

    def after_run(self, code, output, plans, outcomes, threads, coe, full, selected):
        m = self.m
        results = json.loads((self.root / "target" / "run_results.json").read_text())["results"]
        status = {r["node_id"]: r["status"] for r in results}
        reasons = {r["node_id"]: r["reason"] for r in results}
        assert set(status) == set(m.nodes), self.why(set(status) ^ set(m.nodes))
        ran = {n for n, s in status.items() if s in ("success", "failed")}
        lo, hi = bounds(plans)
        may = union(plans)
        assert ran <= hi, self.why("ran outside the plan", ran - hi, output)
        expected = m.statuses(may, outcomes, coe, threads) if len(plans) == 1 else None
        if expected is not None:
            got = {n: status[n] for n in expected}
            assert got == expected, self.why("ran", {n: (got[n], expected[n]) for n in got if got[n] != expected[n]},
                                     output)
        else:  # a failure stops the run, and which nodes were done by then depends on timing
            for n in ran:
                want = "failed" if isinstance(outcomes[n], Fail) else "success"
                assert status[n] == want, self.why(n, status[n], want, output)
                assert all(status.get(p) == "success" for p in m.nodes[n].inputs if may[p].runs), self.why(n)
            if not any(isinstance(outcomes[n], Fail) for n in hi) or coe:
                assert lo <= ran, self.why("needed to run and did not", lo - ran)
            expected = {n: status[n] for n in ran}
        for n in m.order():
            needs = {p[n].needs for p in plans}
            if n in expected:
                assert status[n] == expected[n], self.why(n, status[n], expected[n])
            elif n in lo:
                assert status[n] == "skipped", self.why(n, status[n])  # after a failure
            elif n in hi:
                assert status[n] in ("cached", "skipped"), self.why(n, status[n])  # its kill left it as recorded
            elif len(needs) == 1:
                assert status[n] == ("skipped" if needs == {True} else "cached"), self.why(n, status[n], needs)
            if n in ran and full:
                assert reasons[n] == "--full", self.why(n, reasons[n])
            elif n in ran and all(p[n].new for p in plans):
                assert reasons[n] == "new", self.why(n, reasons[n])
        failed = any(s == "failed" for s in expected.values())
        event("run with a failure" if failed else "run without failures")
        assert code == (1 if failed else 0), self.why(code, output)
        drops = sorted(re.findall(r"^DROP\s+(\S+)", output, re.M))
        # a killed run may have built (unrecorded) a node since removed: its table goes if so
        orphans = {n for n in m.uncertain if n not in m.nodes}
        assert set(m.removed()) <= set(drops) <= set(m.removed()) | orphans, self.why(drops, m.removed(), orphans)
        nothing = all(s == "cached" for s in status.values()) and not drops
        if len(plans) == 1:
            assert nothing == (not any(it.needs for it in plans[0].values()) and not m.removed()), self.why(status)
        assert ("Nothing to do" in output) == nothing, self.why(output)
        # remember what the run did
        m.drop_stale_claims()
        m.apply_removals()
        m.apply_run(expected, self.disk, outcomes)
        m.settle(ran, plans, selected, status)
        self.check_outputs()
        return expected

    def kill_run(self, args, spec, threads, plans, outcomes):
        """A real process that SIGKILLs itself at a fault point (SEEKRUN_FAULT)."""
        m = self.m
        before = read_state(self.root)
        proc = subprocess.run([sys.executable, "-m", "seekrun", *args], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "SEEKRUN_FAULT": spec})
        event(f"kill {spec.partition(':' if spec.startswith(('after', 'exposure')) else '#')[0]} "
              f"{'fired' if proc.returncode == -9 else 'not reached'}")
        if proc.returncode != -9:  # the point was not reached: a normal run
            assert proc.returncode in (0, 1), self.why(proc.returncode, proc.stderr)
            return self.after_run(proc.returncode, proc.stdout + proc.stderr, plans, outcomes, threads,
                                  False, False, set(m.nodes))
        after = read_state(self.root)
        may = union(plans)
        hi = bounds(plans)[1]
        changed = {n for n, e in after.items() if e != before.get(n)}
        assert changed <= hi, self.why("recorded outside the plan", changed - hi)
        for nid in sorted(set(before) - set(after)):
            assert nid not in m.nodes, self.why(nid)
        statuses = {n: after[n]["status"] for n in changed}
        for n, s in statuses.items():
            want = "failed" if isinstance(outcomes[n], Fail) else "success"
            assert s == want, self.why(n, s, want)
        if not (spec == "plan" or spec.startswith("write:manifest.json")):
            m.drop_stale_claims()  # done by every run that got as far as writing
        m.apply_removals_recorded(set(before) - set(after))
        if not (spec == "plan" or spec.startswith("write:manifest.json")):
            # a table committed unrecorded for a node since removed: the run drops it (no
            # record, no journal line), and had it done so before the kill?  Not known
            for nid in [n for n in m.stamps if n not in m.nodes and n not in m.records]:
                m.uncertain[nid] = (m.tables.pop(nid, None), m.stamps.pop(nid), [])
            # a removal still recorded: its table (and files) went first, its journal line
            # after, so the kill may have come in between; the next run sees the output missing
            there = db_tables(self.root)
            for nid in [n for n in after if n not in m.nodes and n in m.records]:
                if nid not in there and m.tables.pop(nid, None) is not None:
                    m.stamps.pop(nid, None)
                for rel in list(m.records[nid].files):
                    if rel in m.files and not (self.root / rel).exists():
                        del m.files[rel]
        m.apply_run(statuses, self.disk, outcomes)
        for nid in changed:
            m.uncertain.pop(nid, None)
        point, _, rest = spec.partition(":")
        node = rest.partition("#")[0] if point in ("after_commit", "exposure_write") else None
        if spec == "plan" or spec.startswith("write:manifest.json"):  # before anything is built
            assert not changed, self.why("recorded by a run killed before it built anything", changed)
        if point == "after_commit":  # committed, its record not written
            assert node not in changed and not isinstance(outcomes[node], Fail), self.why(node)
            m.uncertain.pop(node, None)
            m.commit_unrecorded(node, outcomes[node], m.built_from_records(node, self.disk), m.nodes[node].out_files())
        # Which builds were committed but not recorded?  Known when the kill came before any
        # build, after all of them (the state fold, the last writes), or on one thread at a
        # node's own point; otherwise (a journal line, or other workers) any unrecorded one.
        after_all = spec.startswith(("state_fold", "write:"))
        exact = after_all or spec == "plan" or (threads == 1 and point in ("after_commit", "exposure_write"))
        if not exact:
            for nid in hi - changed - {node}:
                if not isinstance(outcomes[nid], Fail):
                    m.uncertain[nid] = (outcomes[nid], m.built_from_records(nid, self.disk), m.nodes[nid].out_files())
        self.say(f"(killed: recorded {sorted(changed)}, uncertain {sorted(m.uncertain)})")

    def check_outputs(self) -> None:
        """The database, the exposure files and the feature store are what the model says."""
        m = self.m
        unknown = set(m.uncertain)  # a kill may or may not have replaced these
        got = {n: t for n, t in db_tables(self.root).items() if n not in unknown}
        want_ids = {n for n, t in m.tables.items() if n not in unknown}
        assert set(got) == want_ids, self.why("tables", set(got) ^ want_ids)
        for nid, table in m.tables.items():
            if table == UNMODELED or nid in unknown:
                continue
            key = table_key(table)
            if nid.startswith("rule."):
                assert strip_message(got[nid]) == strip_message(key), self.why(nid, got[nid], key)
            else:
                assert got[nid] == key, self.why(nid, got[nid], key)
        unknown_files = {rel for n, (_, _, rels) in m.uncertain.items() for rel in rels}
        unknown_files |= {rel for n in unknown if n in m.nodes for rel in m.nodes[n].out_files()}
        on_disk = {str(p.relative_to(self.root)) for folder in ("output", "target/exports", "target/feature_store")
                   for p in (self.root / folder).glob("*") if p.is_file() and not p.name.startswith(".")}
        on_disk -= unknown_files
        assert on_disk == set(m.files) - unknown_files, self.why("output files", on_disk ^ set(m.files))
        for rel, table in m.files.items():
            if rel in unknown_files:
                continue
            fmt = rel.rsplit(".", 1)[1]
            assert file_key(self.root / rel, fmt) == model_file_key(table, fmt), self.why(rel)
        assert not temp_files(self.root), self.why(temp_files(self.root))

    # ---- the end: a clean build in a fresh copy ----------------------------------------------
    def clean_compare(self) -> None:
        """Everything the model does not compute (profiles, rule messages, bytes of output files
        up to row order) against a clean --full build of a fresh copy."""
        m = self.m
        fresh = self.scratch / "fresh"
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(self.root, fresh, ignore=shutil.ignore_patterns("target", "output"))
        res = cli("run", "-p", str(fresh), "--full", "--continue-on-error")
        plan = m.plan(self.disk, set(m.nodes))
        ok: set[str] = set()
        for nid in m.order():  # up to date, and so is everything it is built from
            if not plan[nid].needs and all(p in ok for p in m.nodes[nid].inputs):
                ok.add(nid)
        assert res.exit_code == (0 if ok == set(m.nodes) else 1), self.why(res.output)
        clean, here = db_tables(fresh), db_tables(self.root)
        for nid in ok:
            if m.nodes[nid].has_table:
                assert clean[nid] == here[nid], self.why("clean build differs", nid, clean[nid], here[nid])
            for rel in m.nodes[nid].out_files():
                fmt = rel.rsplit(".", 1)[1]
                assert file_key(fresh / rel, fmt) == file_key(self.root / rel, fmt), self.why(rel)
                if fmt in ("csv", "jsonl"):
                    assert sorted((fresh / rel).read_bytes().splitlines()) == \
                        sorted((self.root / rel).read_bytes().splitlines()), self.why(rel)
        shutil.rmtree(fresh, ignore_errors=True)


# ---- strategies for whole examples -------------------------------------------------------------
@st.composite
def projects(draw) -> Model:
    m = Model(flavour=draw(st.sampled_from(["seekrun", "seeknal"]), label="flavour"))
    g = Gen(draw, m)
    for _ in range(draw(st.integers(1, 2), label="sources")):
        g.add_source()
    for _ in range(draw(st.integers(1, 6), label="nodes")):
        g.add_node()
    return m


def start(m: Model, tmp: str, draw) -> World:
    w = World(m, Path(tmp), draw)
    w.sync()
    w.say(f"project: {m.flavour}: " + ", ".join(m.order()))
    for n in m.nodes.values():
        event(f"kind {n.kind}{' ' + n.py if n.py else ''}{' ' + n.fmt if n.is_source else ''}")
    w.run(threads=draw(st.integers(1, 4), label="threads"))
    return w


def invocation(w: World) -> dict:
    draw = w.draw
    mode = draw(st.sampled_from(["plain", "plain", "plain", "full", "dry", "filter", "coe"]), label="invocation")
    kw: dict = {"threads": draw(st.sampled_from([None, 1, 2, 3, 4]), label="threads")}
    if mode == "full":
        kw["full"] = True
        if draw(st.booleans(), label="full with a filter"):
            kw["filt"] = w.draw_filter()
    elif mode == "dry":
        kw["dry"] = True
    elif mode == "filter":
        kw["filt"] = w.draw_filter()
    elif mode == "coe":
        kw["coe"] = True
    return kw


def fault(w: World) -> tuple[str, int] | None:
    """A fault point for the next run (which may never reach it: then it is a normal run), or
    None when that run has nothing to do.

    The draws are the same whatever the model holds: what a run killed on several threads
    recorded depends on timing, and hypothesis must be able to replay an example's draws."""
    m, draw = w.m, w.draw
    runs = sorted(bounds(m.plans(w.disk, set(m.nodes)))[1])
    pick = draw(st.integers(0, 99), label="fault point")
    threads = draw(st.sampled_from([1, 1, 2, 4]), label="threads of the killed run")
    which = draw(st.integers(0, 99), label="killed at")
    if not runs and not m.removed():
        return None
    exposures = [n for n in runs if m.nodes[n].kind == "exposure"]
    points = ["plan", "journal", "journal", "state_fold", "state_folded", "write:manifest.json",
              "write:execution_state.json", "write:run_results.json", "write:file_hashes.json"]
    if runs:
        points += ["after_commit"] * 6
    if exposures:
        points += ["exposure_write"] * 3
    point = points[pick % len(points)]
    if point == "after_commit":
        return f"after_commit:{runs[which % len(runs)]}", threads
    if point == "exposure_write":
        return f"exposure_write:{exposures[which % len(exposures)]}", threads
    if point == "journal":
        return f"journal#{1 + which % max(1, len(runs) + len(exposures))}", threads
    return point, threads


# ---- the properties -----------------------------------------------------------------------------
@contextmanager
def world(model: Model, data, prefix: str):
    """A World built and run once in a scratch folder; the SRP_ env vars it set are unset after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            yield start(model, tmp, data.draw)
        finally:
            for k in list(os.environ):
                if k.startswith("SRP_"):
                    del os.environ[k]


@settings(max_examples=examples(14))
@given(model=projects(), data=st.data())
def test_incremental_runs_equal_the_model(model: Model, data):
    """Random edits, each followed by a random invocation; every run does exactly what the
    model says and leaves exactly the tables and files it computes."""
    with world(model, data, "seekrun-wide-") as w:
        for _ in range(data.draw(st.integers(1, 6), label="steps")):
            clean_before = not any(it.needs for it in w.m.plan(w.disk, set(w.m.nodes)).values()) \
                and not w.m.removed() and not w.m.uncertain
            labels = [w.edit() for _ in range(data.draw(st.integers(1, 2), label="edits"))]
            quiet = all(lb is None or lb.startswith(("no-op", "touch")) for lb in labels)
            if data.draw(st.integers(0, 7), label="delete an output?") == 0:
                quiet = w.delete_output() is None and quiet
            if data.draw(st.integers(0, 9), label="kill?") == 0 and (kill := fault(w)) is not None:
                w.run(kill=kill[0], threads=kill[1])
                quiet = False
            w.run(**invocation(w), expect_nothing=quiet and clean_before)
        w.run()
        w.clean_compare()


@settings(max_examples=examples(8))
@given(model=projects(), data=st.data())
def test_filtered_runs_run_exactly_the_selected_nodes_that_need_it(model: Model, data):
    """Filters only limit what runs now: after edits, each filtered run runs exactly the selected
    nodes that need to run (and are not blocked by an unbuilt input); a plain run then finishes
    the job, and the one after it has nothing to do."""
    with world(model, data, "seekrun-filter-") as w:
        for _ in range(data.draw(st.integers(1, 3), label="rounds")):
            for _ in range(data.draw(st.integers(1, 3), label="edits")):
                w.edit(noop=False)
            for _ in range(data.draw(st.integers(1, 3), label="filtered runs")):
                w.run(filt=w.draw_filter(), full=data.draw(st.integers(0, 4), label="full") == 0,
                      threads=data.draw(st.sampled_from([None, 1, 3]), label="threads"))
            w.run()
            w.run()  # exactly the nodes that keep failing (and what they block), or nothing
        w.clean_compare()


@settings(max_examples=examples(10))
@given(model=projects(), data=st.data())
def test_edits_reverts_kills_and_restores_interleaved(model: Model, data):
    """Random interleavings of edits, reverts, kills at random points (after_commit: between a
    node's commit and its journal line; exposure_write, journal, the state fold, the manifest and
    other writes; sometimes twice in a row) and restores of old files.  After each step a normal
    run: it must equal the model (exactly the nodes that must run ran, or, after a kill on
    several threads, at least those and at most those plus the ones that were in flight), and
    the run right after it must have nothing to do (or rerun exactly what keeps failing)."""
    with world(model, data, "seekrun-kill-") as w:
        for _ in range(data.draw(st.integers(1, 4), label="steps")):
            for _ in range(data.draw(st.integers(1, 3), label="actions")):
                action = data.draw(st.sampled_from(["edit", "edit", "revert", "restore", "kill", "kill", "kill",
                                                    "kill twice"]), label="action")
                if action == "edit":
                    w.edit()
                elif action == "revert":
                    w.revert()
                elif action == "restore":
                    w.restore()
                else:
                    # give the killed run something to do (an edit drawn whatever the model holds:
                    # what an earlier kill recorded depends on timing, see fault())
                    w.edit(noop=False)
                    for _ in range(2 if action == "kill twice" else 1):
                        if (kill := fault(w)) is not None:
                            w.run(kill=kill[0], threads=kill[1])
            w.run()
            w.run()
        w.clean_compare()
