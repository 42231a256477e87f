"""How the kinds build on Spark: the same BuildContext calls as on DuckDB (execute, materialize,
write_rows, DESCRIBE, a Python node's context), answered by a Spark session. SQL is transpiled
from DuckDB's dialect by sqlglot (seekrun/parser/transpile.py), unless the node's is Spark SQL
already; each table is written as a new version folder in the warehouse (seekrun/engines/spark_store.py),
which the engine switches to only when the build succeeded."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seekrun.engines import spark_store
from seekrun.kinds.base import BuildContext, BuildResult, NodeFailure, UnsupportedNode


class _Rows:
    """A DataFrame's rows as a DuckDB cursor's result (what kinds read back: counts, DESCRIBE)."""

    def __init__(self, rows, columns=()):
        self._rows = [tuple(r) for r in rows]
        self.description = [(c,) for c in columns]

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self):
        return list(self._rows)


def duckdb_type(spark_type) -> str:
    """A Spark column type by its DuckDB name (what the kinds check columns against)."""
    from sqlglot import exp

    dtype = exp.DataType.build(spark_type.simpleString(), dialect="spark")
    named = {exp.DataType.Type.TEXT: "VARCHAR", exp.DataType.Type.INT: "INTEGER", exp.DataType.Type.FLOAT: "FLOAT",
             exp.DataType.Type.TIMESTAMPTZ: "TIMESTAMP WITH TIME ZONE"}
    return named.get(dtype.this) or dtype.sql(dialect="duckdb")


@dataclass
class SparkBuildContext(BuildContext):
    spark: object = None
    engine: object = None
    version: Path | None = None  # the new version folder the build wrote
    _formatter: object = None

    def formatter(self):
        """An in-memory DuckDB: it writes values as DuckDB's text (a profile's), checks DuckDB type
        names, and writes a built table's files as DuckDB would."""
        if self._formatter is None:
            from seekrun.engines.spark_profile import Formatter

            self._formatter = Formatter()
        return self._formatter

    def close(self) -> None:
        if self._formatter is not None:
            self._formatter.close()
            self._formatter = None

    def materialize_union(self, ids: list[str]) -> int | None:
        """By name, as DuckDB's UNION ALL BY NAME (Spark SQL has no BY NAME: the DataFrame API's
        unionByName, with a column one lacks as NULL)."""
        from functools import reduce

        try:
            frames = _as_duckdb_widens(self.node["id"], [self.spark.table(spark_store.table_ref(i)) for i in ids])
            union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
        except NodeFailure:
            raise
        except Exception as exc:
            raise NodeFailure(self.redact(_message(exc))) from None
        return self._save(union)

    def describes(self, sql: str) -> bool:
        try:
            self._run(self._spark_sql(sql)).schema
            return True
        except NodeFailure:
            return False

    def valid_type(self, dtype: str) -> bool:
        import duckdb

        try:
            self.formatter().con.sqltype(dtype)  # DuckDB's types: the SQL is DuckDB's, transpiled
            return True
        except duckdb.Error:
            return False

    def copy_table(self, path, options: str) -> None:
        """The built version's Parquet, written to a file by DuckDB's COPY (a local file: the same
        layout, names and Parquet types as a DuckDB build writes)."""
        from seekrun.kinds.base import sql_literal

        if self.version is None:
            raise NodeFailure(f"{self.node['id']}: built no table on Spark to write")
        files = sql_literal((self.version / "*.parquet").as_posix())
        try:  # (no hive_partitioning: a key=value folder in the warehouse's path is not a column)
            self.formatter().con.execute(f"COPY (SELECT * FROM read_parquet({files}, hive_partitioning = false)) "
                                         f"TO {sql_literal(str(path))} "
                                         f"({options})")
        except Exception as exc:
            raise NodeFailure(self.redact(f"{self.node['id']}: {exc}")) from None

    def read_source(self, node: dict) -> BuildResult:
        from seekrun.engines.spark_source import read

        return read(node, self)

    def profile_column(self, source: str, name: str, typ: str, top: int, now: float) -> list[tuple]:
        from seekrun.engines.spark_profile import column_rows

        return column_rows(self, source, name, typ, top, now)

    def _spark_sql(self, sql: str) -> str:
        from seekrun.parser.transpile import Refused, to_spark

        if self.node.get("dialect") == "spark":
            return self.sql(sql)  # the node's own SQL, written in Spark's dialect
        try:
            return to_spark(self.sql(sql), columns=self._input_columns)
        except Refused as exc:
            raise NodeFailure(self.redact(f"{self.node['id']}: cannot run on Spark: {exc}")) from None

    def _input_columns(self, table: str) -> dict[str, str] | None:
        """An input's {column: DuckDB type}, from its table in the session (what decides the
        integer casts the parse could not: seekrun/parser/transpile.py's check_casts)."""
        if table not in (self.node.get("inputs") or ()):
            return None
        try:
            fields = self.spark.table(spark_store.table_ref(table)).schema.fields
        except Exception:
            return None
        return {f.name: duckdb_type(f.dataType) for f in fields}

    def _run(self, text: str, params: list | None = None):
        try:
            return self.spark.sql(text, args=list(params)) if params else self.spark.sql(text)
        except Exception as exc:
            raise NodeFailure(self.redact(_message(exc))) from None

    def execute(self, sql: str, params: list | None = None):
        head, _, rest = sql.lstrip().partition(" ")
        if head.upper() == "DESCRIBE":  # the columns, by their DuckDB type names, as DuckDB answers
            query = rest if rest.lstrip()[:6].upper() in ("SELECT", "WITH (", "(SELEC") else f"SELECT * FROM {rest}"
            df = self._run(self._spark_sql(query))
            return _Rows([(f.name, duckdb_type(f.dataType)) for f in df.schema.fields], ("column_name", "column_type"))
        df = self._run(self._spark_sql(sql), params)
        try:
            return _Rows(_collect(df), df.columns)
        except Exception as exc:
            raise NodeFailure(self.redact(_message(exc))) from None

    def materialize(self, select_sql: str, table: str | None = None) -> int | None:
        if table is not None and table != self.table:
            raise UnsupportedNode(f"{self.node['id']}: builds a second table, which the Spark engine does not")
        return self._save(self._run(self._spark_sql(select_sql)))

    def write_rows(self, columns: list[tuple[str, str]], rows: list[tuple]) -> int:
        from sqlglot import exp

        schema = ", ".join(f"`{c}` {exp.DataType.build(t, dialect='duckdb').sql(dialect='spark')}" for c, t in columns)
        try:
            df = self.spark.createDataFrame([tuple(r) for r in rows], schema)
        except Exception as exc:
            raise NodeFailure(self.redact(_message(exc))) from None
        self._save(df.coalesce(1))
        return len(rows)

    def python_context(self, seeknal: bool = False):
        from seekrun.engines.spark_python import SparkPythonContext

        return SparkPythonContext(self, seeknal)

    def store_python(self, result, func: str) -> BuildResult:
        from seekrun.engines.spark_python import frame

        return BuildResult(self._save(frame(result, self, func)))

    def _save(self, df) -> int:
        """Write a new version folder (never over an existing one: the default mode); its rows."""
        dest = spark_store.new_version(self.engine.warehouse, self.node["id"])
        self.version = dest
        try:
            df.write.parquet(str(dest))
        except Exception as exc:
            raise NodeFailure(self.redact(_message(exc))) from None
        self.engine.register(self.node["id"], str(dest))  # (its own checks read it: a feature group's keys)
        rows = _footer_rows(dest)
        if rows is not None:
            return rows
        try:
            return int(self.spark.read.parquet(str(dest)).count())
        except Exception as exc:
            raise NodeFailure(self.redact(_message(exc))) from None


def _as_duckdb_widens(nid: str, frames: list) -> list:
    """Instances whose column is text in one and a number in another: DuckDB's union makes it
    text, Spark's (ANSI) a number. Integers are cast to text (the same text on both); any other
    mix is refused, naming the column."""
    from pyspark.sql.types import IntegralType, StringType

    seen: dict[str, list] = {}
    for df in frames:
        for f in df.schema.fields:
            seen.setdefault(f.name.lower(), []).append(f.dataType)
    to_text = set()
    for name, types in seen.items():
        if any(isinstance(t, StringType) for t in types) and not all(isinstance(t, StringType) for t in types):
            if not all(isinstance(t, (StringType, IntegralType)) for t in types):
                raise NodeFailure(f"{nid}: its instances give column {name} as text in one and "
                                  f"{', '.join(sorted({t.simpleString() for t in types} - {'string'}))} in another: "
                                  "cast it to one type in the node's SQL")
            to_text.add(name)
    if not to_text:
        return frames
    return [df.select(*[df[f"`{f.name}`"].cast("string").alias(f.name) if f.name.lower() in to_text
                        else df[f"`{f.name}`"] for f in df.schema.fields]) for df in frames]


def _collect(df) -> list[tuple]:
    """A query's rows, timestamps as the values they are: a TIMESTAMP (Spark's TIMESTAMP_NTZ) as a
    naive datetime, a TIMESTAMP WITH TIME ZONE as one in UTC (pyspark would turn either into the
    Python process's local time)."""
    from datetime import datetime, timedelta, timezone

    from pyspark.sql.types import TimestampNTZType, TimestampType

    kinds = [f.dataType for f in df.schema.fields]
    if not any(isinstance(t, (TimestampType, TimestampNTZType)) for t in kinds):
        return [tuple(r) for r in df.collect()]
    names = [f"c{i}" for i in range(len(kinds))]  # (by position: generated names can repeat)
    exprs = [f"unix_micros(CAST({n} AS TIMESTAMP))" if isinstance(t, (TimestampType, TimestampNTZType)) else n
             for n, t in zip(names, kinds)]
    epoch = datetime(1970, 1, 1)

    def stamp(value, kind):
        if value is None or not isinstance(kind, (TimestampType, TimestampNTZType)):
            return value
        naive = epoch + timedelta(microseconds=value)  # (the session's time zone is UTC: seekrun sets it)
        return naive if isinstance(kind, TimestampNTZType) else naive.replace(tzinfo=timezone.utc)

    return [tuple(stamp(v, t) for v, t in zip(r, kinds)) for r in df.toDF(*names).selectExpr(*exprs).collect()]


def _footer_rows(folder: Path) -> int | None:
    """The rows Spark wrote, from the Parquet files' footers (no Spark job), or None."""
    try:
        import pyarrow.parquet as pq

        files = sorted(folder.glob("*.parquet"))
        return sum(pq.ParquetFile(p).metadata.num_rows for p in files) if files else None
    except Exception:  # (no pyarrow, a file it cannot read: Spark counts instead)
        return None


def _message(exc: Exception) -> str:
    """A Spark error in one line: its message, without the JVM's stack (and its root cause, if
    the message does not say it)."""
    import re

    raw = str(exc)
    causes = re.findall(r"Caused by: (?:[\w.$]+: )?(.+)", raw)
    text = " ".join(raw.split())
    text = re.sub(r"^An error occurred while calling [\w.]+\. : (?:[\w.$]+: )?", "", text)
    for cut in (" JVM stacktrace:", " == SQL", " at org.", " at java.", " at scala.", "\n"):
        text = text.split(cut)[0]
    if causes:
        cause = " ".join(causes[-1].split()).split(" at org.")[0].strip()
        if cause and cause not in text:
            text = f"{text} ({cause})"
    return text[:500] or exc.__class__.__name__
