"""A Spark session the caller gave (``DAGRunner(spark_session=...)``): used for a run, then left
as it was. seekrun's result settings are set for the run and the caller's put back; the tables
(and databases) it registers in the session's catalog are dropped after, by their catalog names;
a table of the caller's by a node's name is never replaced."""
from __future__ import annotations

from seekrun.kinds.base import NodeFailure


def borrow(engine, spark) -> None:
    """seekrun's result settings (UTC, microsecond timestamps) for this
    run, its own values put back at close."""
    from seekrun.engines.spark import DEFAULT_CONF, RESULT_CONF

    engine._borrowed = True
    for key in RESULT_CONF:
        try:
            engine._conf_before[key] = spark.conf.get(key, None)
        except Exception:
            engine._conf_before[key] = None
        spark.conf.set(key, DEFAULT_CONF[key])


def refuse_theirs(engine, spark, kind: str, name: str) -> None:
    """A caller's catalog may hold a table by a node's name that seekrun did not make (a
    metastore's): it is never dropped to make room."""
    if not spark.catalog.tableExists(f"`{kind}`.`{name}`"):
        return
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED `{kind}`.`{name}`").collect()
    where = next((str(r[1]) for r in rows if str(r[0]).strip() == "Location"), "")
    if not ours(engine, where):
        raise NodeFailure(f"the Spark session's catalog already has a table {kind}.{name} that seekrun did "
                          f"not make ({where or 'no location'}): seekrun names each input's table after its "
                          "node; build with a session whose catalog does not have it")


def ours(engine, location: str) -> bool:
    """Whether a table's location is one seekrun registers: a warehouse version, an export."""
    import os
    from urllib.parse import unquote, urlparse

    path = unquote(urlparse(location).path) if location.startswith("file:") else location
    if not path:
        return False
    real = os.path.realpath(path)
    return any(real.startswith(os.path.realpath(base) + os.sep)
               for base in (engine.warehouse, engine.target_dir / "interchange"))


def give_back(engine, spark) -> None:
    """The session as it was: the tables and databases seekrun made dropped (the
    Parquet they read stays), its settings put back."""
    for item in sorted(engine._made, key=lambda m: "." not in m):  # tables, then their databases
        kind, _, name = item.partition(".")
        try:
            spark.sql(f"DROP TABLE IF EXISTS `{kind}`.`{name}`" if name else f"DROP DATABASE IF EXISTS `{kind}`")
        except Exception:
            pass  # (a database the caller has since put a table in stays)
    engine._made.clear()
    for key, value in engine._conf_before.items():
        try:
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        except Exception:
            pass
    engine._conf_before.clear()
