"""DuckDB SQL to Spark SQL, with sqlglot; refused, naming the construct, where the meaning
would change. Never a regex: every rule below looks at sqlglot's syntax tree.

What is refused (each a trap that sqlglot translates into SQL that runs and means something else,
or into SQL Spark cannot run, found by running both engines on tests/test_spark_transpile.py's
corpus):

- what sqlglot itself reports as unsupported in Spark;
- ordered aggregates (``list(x ORDER BY y)``, ``string_agg(s, ',' ORDER BY s)``): Spark's
  collect_list and listagg would drop the order;
- a CAST (or TRY_CAST, ``::``) to an integer type of a value that may hold a fraction: DuckDB
  rounds 2.5 to 3, Spark truncates it to 2. An integer literal, a round/floor/ceil/trunc call and
  a value sqlglot types as an integer (or a BOOLEAN, or a DECIMAL of scale 0) pass; one it types
  as anything else is refused at parse; one whose type depends on its inputs' columns (``CAST(sum(q)
  AS BIGINT)``) is decided when the node runs, from its inputs' schemas (check_casts);
- types Spark has no equivalent of (HUGEINT, unsigned integers, UUID, ...);
- ``* EXCLUDE``/``* REPLACE``: Spark's ``*`` has no such options;
- ``UNION [ALL] BY NAME``: Spark SQL's set operations match columns by position only;
- functions sqlglot does not know (it would pass DuckDB's name through, and Spark's function of
  that name, if any, may differ);
- ``regexp_replace`` without the ``'g'`` option: DuckDB replaces the first match, Spark every one;
- ``round(x, d)`` of a division or a DOUBLE cast: the engines round a DOUBLE's halfway values
  differently (a DOUBLE column's are not seen at parse: its halfway cases may still differ).

And rewrites where the engines type an expression differently (see _rewrite): ``/`` divides as
DOUBLE on Spark too, and DATE +/- INTERVAL is a TIMESTAMP_NTZ (DuckDB's TIMESTAMP). Left as it is:
``avg()`` of a DECIMAL is a DECIMAL on Spark, a DOUBLE on DuckDB (the same value to 6 places).
"""
from __future__ import annotations

from functools import lru_cache

INTEGER_TYPES = {"TINYINT", "SMALLINT", "INT", "BIGINT", "INT128", "UTINYINT", "USMALLINT", "UINT", "UBIGINT",
                 "UINT128", "UMEDIUMINT", "MEDIUMINT"}
NO_SPARK_TYPE = {"INT128", "UINT128", "UTINYINT", "USMALLINT", "UINT", "UBIGINT", "UMEDIUMINT", "UUID", "BIT",
                 "TIMETZ", "TIME", "UNION", "ENUM", "HUGEINT", "UHUGEINT", "VARINT", "BIGNUM"}
ROUNDING = ("Round", "Floor", "Ceil", "Trunc")


class Refused(Exception):
    """Not translated: the message names the construct and what to write instead."""


def to_spark(sql: str, columns=None) -> str:
    """Spark SQL meaning what the DuckDB ``sql`` means; Refused if that cannot be promised.
    ``columns``: when the node runs, ``columns(table)`` gives an input's {column: DuckDB type}
    (table: ``kind.name``), which decides the integer casts the parse could not (check_casts)."""
    out, undecided = _translate(sql)
    if columns is not None and undecided:
        check_casts(sql, columns)
    return out


@lru_cache(maxsize=4096)
def _translate(sql: str) -> tuple[str, bool]:
    """(the Spark SQL, whether an integer cast in it waits for its inputs' types)."""
    import sqlglot
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except ParseError as exc:
        raise Refused(f"sqlglot cannot read this DuckDB SQL ({_first(exc)})") from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise Refused("expected exactly one statement")
    tree = trees[0]
    _refuse(tree)
    undecided = False
    for cast, typed in _integer_casts(tree, None):
        if typed is None:
            undecided = True
        elif not _integer_valued(typed):
            raise _lossy(cast, typed)
    tree = tree.transform(_rewrite)
    try:
        return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE), undecided
    except UnsupportedError as exc:
        raise Refused(f"sqlglot cannot write it for Spark: {_first(exc)}") from None


def spark_reads(sql: str, inputs: list[str]) -> str | None:
    """For ``dialect: spark``: why this Spark SQL cannot be run as the node's (it does not parse,
    or it reads a table or a file that is not one of its inputs), or None."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        trees = [t for t in sqlglot.parse(sql, read="spark") if t is not None]
    except ParseError as exc:
        return f"its Spark SQL does not parse ({_first(exc)})"
    if len(trees) != 1:
        return "expected exactly one Spark SQL statement"
    declared = {i.lower() for i in inputs}
    ctes = {c.alias_or_name.lower() for c in trees[0].find_all(exp.CTE)}
    for table in trees[0].find_all(exp.Table):
        name = ".".join(p for p in (table.catalog, table.db, table.name) if p).lower()
        if name in declared or (not table.db and name in ctes):
            continue
        if table.db and table.db.lower() in ("parquet", "csv", "json", "orc", "text", "delta", "avro"):
            return f"it reads the file {table.name} directly: make it a source node and read that instead"
        return f"it reads {name or table.sql(dialect='spark')}, which is not one of its inputs: add it to inputs"
    return None


def _first(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def _refuse(tree) -> None:
    from sqlglot import exp

    for node in tree.walk():
        if isinstance(node, exp.Order) and isinstance(node.parent, exp.AggFunc):
            raise Refused(f"ordered aggregate {node.parent.sql('duckdb')[:80]}: Spark's aggregate would lose the "
                          "order; sort afterwards (array_sort) or aggregate without ORDER BY")
        if isinstance(node, exp.WithinGroup):
            raise Refused(f"ordered-set aggregate {node.sql('duckdb')[:80]}: write it without WITHIN GROUP "
                          "(quantile_cont(x, 0.5), median(x))")
        if isinstance(node, (exp.Cast, exp.TryCast)):
            _check_type(node.args.get("to"))
        if isinstance(node, exp.Star) and (node.args.get("except_") or node.args.get("except")
                                           or node.args.get("replace") or node.args.get("rename")):
            raise Refused(f"{node.sql('duckdb')}: Spark's * has no EXCLUDE or REPLACE; list the columns")
        if isinstance(node, exp.SetOperation) and node.args.get("by_name"):
            raise Refused(f"{type(node).__name__.upper()} ... BY NAME: Spark SQL has no BY NAME (it would match the "
                          "columns by position); select the same columns in the same order in every branch")
        if isinstance(node, exp.Anonymous):
            raise Refused(f"function {node.name}() is not one sqlglot knows how to write for Spark: use a "
                          "function both engines share, or set dialect: spark and write Spark SQL")
        if isinstance(node, exp.DataType) and not isinstance(node.parent, (exp.Cast, exp.TryCast)):
            _check_type(node)
        if isinstance(node, exp.Round) and _is_double(node.this) and node.args.get("decimals") is not None:
            raise Refused(f"{node.sql('duckdb')[:80]}: rounding a DOUBLE to decimal places gives different halfway "
                          "results on DuckDB and Spark (round(53.97 / 2, 2) is 26.98 on one, 26.99 on the other); "
                          "round a DECIMAL instead: round(CAST(x AS DECIMAL(18, 6)), 2)")
        if isinstance(node, exp.RegexpReplace):
            flags = node.args.get("modifiers")
            if flags is None or flags.name != "g":
                raise Refused(f"{node.sql('duckdb')[:80]}: DuckDB replaces the first match only (and reads its "
                              "options), Spark replaces every match; add the 'g' option to replace every match "
                              "on both")


def check_casts(sql: str, columns) -> None:
    """Refused if an integer cast whose operand's type the parse could not know is of a value
    that may hold a fraction, now that ``columns(table)`` gives its inputs' column types."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    schema: dict = {}
    for table in tree.find_all(exp.Table):
        if table.db and table.name:
            found = columns(f"{table.db}.{table.name}")
            if found is not None:
                schema.setdefault(table.db, {})[table.name] = found
    for cast, typed in _integer_casts(tree, schema):
        if not _integer_valued(typed):
            raise _lossy(cast, typed)


def _integer_casts(tree, schema):
    """(cast as written, its operand's type, or None where not known) for each integer cast of
    something but an integer literal or a rounding call; typed on a copy of ``tree`` (by sqlglot,
    with ``schema``: {db: {table: {column: type}}}), so the SQL written from ``tree`` is untouched."""
    from sqlglot import exp

    typed = tree.copy()
    found = []
    for node in typed.find_all(exp.Cast, exp.TryCast):
        to = node.args.get("to")
        if to is None or to.this is None or to.this.name not in INTEGER_TYPES:
            continue
        operand = node.this
        if isinstance(operand, exp.Literal) and not operand.is_string and "." not in operand.name:
            continue
        if type(operand).__name__ in ROUNDING:
            continue
        node.meta["seekrun_cast"] = len(found)
        found.append(node.sql("duckdb")[:80])
    if not found:
        return []
    try:
        from sqlglot.optimizer.annotate_types import annotate_types

        if schema:
            from sqlglot.optimizer.qualify import qualify

            typed = qualify(typed, schema=schema, dialect="duckdb", validate_qualify_columns=False,
                            identify=False)
        annotate_types(typed, schema=schema or None, dialect="duckdb")
    except Exception:  # (typing is best effort: what it cannot type stays unknown, and is refused when it runs)
        return [(text, None) for text in found]
    seen: dict[int, list] = {}  # (qualify may copy a cast, as into a GROUP BY, or rewrite one away)
    for cast in typed.find_all(exp.Cast, exp.TryCast):
        if "seekrun_cast" in cast.meta:
            kind = cast.this.type
            if kind is None or kind.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
                kind = exp.DataType.build("DOUBLE") if _is_double(cast.this) else None  # (DuckDB's / is DOUBLE)
            seen.setdefault(cast.meta["seekrun_cast"], []).append(kind)
    out = []
    for i, text in enumerate(found):
        kinds = seen.get(i) or [None]  # every copy of it must be whole-valued
        if any(k is None for k in kinds):
            out.append((text, None))
        else:
            out.append((text, next((k for k in kinds if not _integer_valued(k)), kinds[0])))
    return out


def _integer_valued(dtype) -> bool:
    """A type whose values hold no fraction: an integer, a BOOLEAN, a DECIMAL of scale 0."""
    from sqlglot import exp

    if dtype is None:
        return False
    if dtype.this in exp.DataType.INTEGER_TYPES or dtype.this == exp.DataType.Type.BOOLEAN:
        return True
    if dtype.this == exp.DataType.Type.DECIMAL:
        params = dtype.expressions
        return len(params) == 2 and params[1].name == "0"
    return False


def _lossy(cast: str, dtype) -> Refused:
    name = dtype.sql("duckdb") if dtype is not None else ""
    what = f" of a {'VARCHAR' if name == 'TEXT' else name}" if dtype is not None else " of a value whose type is not known"
    return Refused(f"lossy cast {cast}{what}: DuckDB rounds a fraction to the nearest integer, "
                   "Spark truncates it; write CAST(round(x) AS ...) or CAST(trunc(x) AS ...)")


def _check_type(dtype) -> None:
    if dtype is None or dtype.this is None:
        return
    name = dtype.this.name
    if name in NO_SPARK_TYPE:
        raise Refused(f"type {dtype.sql('duckdb')}: Spark has no such type; use BIGINT, DECIMAL(38, 0), "
                      "STRING or TIMESTAMP")


def _rewrite(node):
    """Where DuckDB and Spark type an expression differently, make Spark's what DuckDB's is:

    - ``/`` is DOUBLE division in DuckDB for every numeric type; Spark divides DECIMALs exactly
      (round(179.97 / 2, 2) is 89.98 on DuckDB, 89.99 on Spark), so Spark divides as DOUBLE;
    - a DATE plus or minus an INTERVAL is a TIMESTAMP in DuckDB, a DATE in Spark."""
    from sqlglot import exp

    if isinstance(node, exp.Table) and node.db and isinstance(node.this, exp.Identifier):
        from seekrun.tablenames import catalog_name  # (a fan-out instance's table: by_region[us])

        name = catalog_name(node.name)
        if name != node.name:
            node = node.copy()
            node.set("this", exp.to_identifier(name, quoted=True))
            return node
    if isinstance(node, exp.Div):
        return exp.Div(this=exp.Cast(this=node.this.copy(), to=exp.DataType.build("DOUBLE")),
                       expression=node.expression.copy())
    if isinstance(node, (exp.Add, exp.Sub)) and isinstance(node.left, exp.Interval) != isinstance(node.right,
                                                                                                   exp.Interval):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("TIMESTAMP_NTZ", dialect="spark"))
    return node


def _is_double(node) -> bool:
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _is_double(node.this)
    if isinstance(node, exp.Div):
        return True
    return isinstance(node, exp.Cast) and node.args.get("to") is not None and node.args["to"].this in (
        exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)
