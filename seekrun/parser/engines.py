"""Which engine builds each node: ``engine: duckdb|spark`` in the project file (the default) and
on a node (it wins), and the project's ``spark:`` settings.

- A node on Spark has ``engine: "spark"`` in the manifest, its SQL as Spark runs it
  (``spark_sql``: DuckDB SQL transpiled by sqlglot, seekrun/parser/transpile.py), and the
  engine among its hashed fields: moving a node between engines rebuilds it and what depends
  on it, once. A node on DuckDB hashes as before (``engine: duckdb`` written out changes nothing).
- The project default applies to the kinds Spark can build (SPARK_KINDS), fan-outs included,
  but not to Python nodes (their code is written for DuckDB relations or for DataFrames: a
  Python transform says ``engine: spark`` itself, and gets Spark DataFrames), sources (DuckDB's
  strict reader stays the default reader: a source says ``engine: spark`` itself to have Spark
  read its files) or profiles (their quantiles are approximated differently); those stay on DuckDB, and their tables reach Spark nodes as
  Parquet. ``engine: spark`` on a node of another kind is an error, and so is an exposure's
  (it writes files on this machine, from any engine's tables).
- SQL that cannot be promised to mean the same on Spark is refused here, naming the construct.
- ``dialect: spark`` on a transform: its SQL is Spark SQL already, run as written (never
  transpiled, never checked by DuckDB); it needs the node on Spark, and it is hashed.
- pyspark, sqlglot and Java are looked for (not imported, not started) when any node is on Spark.
- ``spark:`` (master, remote, conf, warehouse) says how to run, not what is built: changing it
  rebuilds nothing, except that a new warehouse holds no tables yet ("output missing").
"""
from __future__ import annotations

import os
import shutil

from seekrun.errors import Diagnostic

ENGINES = ("duckdb", "spark")
SPARK_KINDS = frozenset({"source", "transform", "aggregation", "rule", "profile", "feature_group"})
OWN_ENGINE_ONLY = frozenset({"source", "profile"})  # moved to Spark only by their own engine: spark
SPARK_KEYS = ("master", "remote", "conf", "warehouse")
INSTALL = "pip install 'seekrun[spark]'"


def read_project(project, cfg: dict, line, errors: list[Diagnostic]) -> None:
    """``engine:`` and ``spark:`` of the project file, into project.engine and project.spark."""
    marker = project.marker
    engine = cfg.get("engine")
    if engine is not None:
        if engine not in ENGINES:
            errors.append(Diagnostic(marker, line("engine"), f"engine '{engine}' is not one seekrun has: write "
                                                             "engine: duckdb or engine: spark"))
        else:
            project.engine = engine
    spark = cfg.get("spark")
    if spark is None:
        return
    if not isinstance(spark, dict):
        errors.append(Diagnostic(marker, line("spark"), "spark must be a mapping, e.g. spark: {master: 'local[2]'}"))
        return
    for key, value in spark.items():
        if key not in SPARK_KEYS:
            errors.append(Diagnostic(marker, line("spark"), f"spark.{key} is not a Spark setting seekrun reads: "
                                                                 f"use {', '.join(SPARK_KEYS)}"))
        elif key == "conf":
            if not isinstance(value, dict):
                errors.append(Diagnostic(marker, line("spark"), "spark.conf must be a mapping of Spark settings "
                                                                     "to values, e.g. {spark.sql.shuffle.partitions: 8}"))
        elif value is not None and not isinstance(value, str):
            errors.append(Diagnostic(marker, line("spark"), f"spark.{key} must be a string"))
        elif key == "warehouse" and value and "://" in value:
            errors.append(Diagnostic(marker, line("spark"), f"spark.warehouse '{value}' is a URL: seekrun keeps Spark "
                                                                 "tables in a local (or mounted) folder only so far; "
                                                                 "give a path"))
    project.spark = {k: v for k, v in spark.items() if k in SPARK_KEYS and v is not None}


def apply(records: dict[str, dict], project, errors: list[Diagnostic], cache=None) -> None:
    """Each record's engine; Spark nodes get their Spark SQL and the engine in their hash.
    ``cache``: the parse cache, whose meta keeps each SQL text's translation (or refusal), so a
    parse of unchanged files neither imports sqlglot nor transpiles again."""
    from seekrun.hashing import hash_obj

    memo = _Memo(cache)
    spark_nodes = []
    for nid, rec in list(records.items()):
        config = rec.get("config") or {}
        own = config.get("engine")
        if own is not None and own not in ENGINES:
            errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: engine '{own}' is not one seekrun has: "
                                                               "write engine: duckdb or engine: spark"))
            continue
        dialect = _dialect(nid, rec, config, own or project.engine, errors)
        if dialect is False or (own or project.engine) != "spark":
            continue
        if (rec.get("python") or rec["kind"] in OWN_ENGINE_ONLY) and own != "spark":
            continue  # a Python node moves to Spark only by its own engine (its code is written for one), a
            # source too (DuckDB's strict reader is the contract: its table reaches Spark as Parquet), and a
            # profile (its quantiles are approximated differently, and it refuses nested columns there)
        why = _cannot(rec)
        if why is not None:
            if own == "spark":
                errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: {why}; remove 'engine: spark' to "
                                                                   "build it on DuckDB"))
            if dialect == "spark":  # (its SQL is Spark's: it cannot stay on DuckDB)
                errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: dialect: spark, but {why}"))
            continue  # the project's default: this node stays on DuckDB
        sql = rec.get("generated_sql") or rec.get("compiled_sql") or ""
        spark_sql = None
        if dialect == "spark":
            spark_sql = sql  # already Spark SQL: run as written
            if "{{" in sql:  # (it would be filled in by DuckDB's quoting rules, and its tables go unchecked)
                errors.append(Diagnostic(rec["file"], rec.get("sql_line") or rec["line"],
                                         f"{nid}: env_var() is not filled into Spark SQL (dialect: spark): write "
                                         "this node in DuckDB's dialect to use it"))
                continue
            from seekrun.parser.transpile import spark_reads

            why = memo.get(("reads", sql, *(rec.get("inputs") or [])), lambda: spark_reads(sql, rec.get("inputs") or []))
            if why is not None:
                errors.append(Diagnostic(rec["file"], rec.get("sql_line") or rec["line"], f"{nid}: {why}"))
                continue
        else:
            from seekrun.parser.transpile import Refused, to_spark

            try:
                translated = [memo.spark(text, to_spark) for text in _user_sql(rec, sql) if "{{" not in text]
            except Refused as exc:  # (with env_var() in, it is transpiled, and checked, when it runs)
                where = rec.get("sql_line") or rec["line"]
                errors.append(Diagnostic(rec["file"], where, f"{nid}: cannot run on Spark: {exc}"))
                continue
            if rec["kind"] != "rule" and translated:
                spark_sql = translated[0]
        hashes = {**rec["field_hashes"], "engine": hash_obj("spark")}
        extra = {}
        if dialect == "spark":
            hashes["dialect"] = hash_obj("spark")
            extra["dialect"] = "spark"
        records[nid] = {**rec, "engine": "spark", "spark_sql": spark_sql, "field_hashes": hashes, **extra}
        spark_nodes.append(nid)
    memo.save()
    if spark_nodes:
        problem = missing_requirements(project.spark)
        if problem:
            rec = records[spark_nodes[0]]
            errors.append(Diagnostic(rec["file"], rec["line"], f"{spark_nodes[0]} runs on Spark, but {problem}"))


class _Memo:
    """Translations by the hash of what they were made from, kept in the parse cache's meta
    (only this parse's: an entry no node uses any more goes)."""

    def __init__(self, cache):
        self.cache = cache
        self.old = (cache.meta.get("spark_sql") if cache is not None else None) or {}
        self.used: dict = {}
        self._versions = None

    def versions(self) -> tuple:
        """What a translation depends on besides the SQL: this transpiler's source (so a change to
        a rule never leaves an old translation in the cache) and sqlglot's version file (read as
        bytes: importlib.metadata is slow)."""
        if self._versions is None:
            from importlib.util import find_spec

            from seekrun.hashing import hash_bytes

            def digest(path: str) -> str | None:
                try:
                    with open(path, "rb") as f:
                        return hash_bytes(f.read())
                except OSError:
                    return None

            here = os.path.dirname(os.path.abspath(__file__))
            rules = [digest(os.path.join(here, "transpile.py")), digest(os.path.join(here, "..", "tablenames.py"))]
            try:
                spec = find_spec("sqlglot")
                folder = list(spec.submodule_search_locations or [])[0]
                self._versions = (rules, digest(os.path.join(folder, "_version.py")))
            except (ImportError, ValueError, AttributeError, IndexError):
                self._versions = (rules, None)
        return self._versions

    def get(self, parts: tuple, make):
        from seekrun.hashing import hash_obj

        key = hash_obj([*self.versions(), *parts])
        if key in self.old:
            self.used[key] = self.old[key]
        else:
            self.used[key] = make()
        return self.used[key]

    def spark(self, sql: str, to_spark) -> str:
        from seekrun.parser.transpile import Refused

        def make():
            try:
                return {"sql": to_spark(sql)}
            except Refused as exc:
                return {"refused": str(exc)}
        got = self.get(("to_spark", sql), make)
        if "refused" in got:
            raise Refused(got["refused"])
        return got["sql"]

    def save(self) -> None:
        if self.cache is not None and (self.used or "spark_sql" in self.cache.meta):
            if self.used:
                self.cache.meta["spark_sql"] = self.used
            else:
                self.cache.meta.pop("spark_sql", None)


def _dialect(nid: str, rec: dict, config: dict, engine: str, errors: list[Diagnostic]):
    """The node's ``dialect:`` (None: DuckDB's), or False after an error."""
    dialect = config.get("dialect")
    if dialect is None or dialect == "duckdb":
        return None
    if dialect != "spark":
        errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: dialect '{dialect}' is not one seekrun reads: "
                                                           "write dialect: duckdb or dialect: spark"))
        return False
    if rec["kind"] != "transform" or rec.get("python"):
        errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: dialect: spark is for a transform's own SQL "
                                                           "(seekrun writes this node's SQL itself): remove it"))
        return False
    if engine != "spark":
        errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: dialect: spark means its SQL is Spark SQL, "
                                                           "which DuckDB does not run: add engine: spark"))
        return False
    return "spark"


def _user_sql(rec: dict, sql: str) -> list[str]:
    """The SQL to transpile: a rule's custom checks one by one (seekrun writes its other checks
    for the engine at run time), any other node's SQL."""
    if rec["kind"] != "rule":
        return [sql] if sql else []
    rule = (rec.get("built_config") or rec.get("config") or {}).get("rule")
    checks = rule if isinstance(rule, list) else [rule]
    return [c["sql"] for c in checks if isinstance(c, dict) and isinstance(c.get("sql"), str)]


def _cannot(rec: dict) -> str | None:
    if rec["kind"] == "exposure":
        return ("an exposure writes its files on this machine, by DuckDB, from its inputs' tables (a Spark "
                "table's Parquet as it is): it has nothing to run on Spark")
    if rec["kind"] not in SPARK_KINDS:
        return f"{rec['kind']} nodes cannot run on Spark yet (Spark builds: {', '.join(sorted(SPARK_KINDS))})"
    if rec.get("python") and rec["kind"] != "transform":
        return f"a Python {rec['kind']} cannot run on Spark yet (a Python transform can)"
    if rec["kind"] == "source":
        from seekrun.kinds.source import READERS

        fmt = (rec.get("built_config") or rec.get("config") or {}).get("source")
        if fmt not in READERS:
            return f"a {fmt} source cannot run on Spark (Spark reads {', '.join(sorted(READERS))} files)"
    return None


def missing_requirements(spark: dict) -> str | None:
    """What is missing to run Spark nodes here (looked for, never imported or started)."""
    from importlib.util import find_spec

    for module in ("pyspark", "sqlglot"):
        try:
            found = find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None:
            return f"{module} is not installed: {INSTALL}"
    if spark.get("remote"):
        return None  # Spark Connect: the server runs the JVM
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return None
    if shutil.which("java"):
        return None
    return ("Java is not found (JAVA_HOME is not set and no java on PATH): install Java 17 or later "
            "(apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME")
