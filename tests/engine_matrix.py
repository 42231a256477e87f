"""The kind tests (tests/test_kind_*.py) on both engines: each test runs once as written
(DuckDB) and once with the project's default ``engine: spark`` (Spark local[2]), asserting the
same tables, files, statuses and messages. The Spark half shares one session per test module:
the real CLI, in this process, builds through it as a caller's session (the Python API's
``DAGRunner(spark_session=...)``), so no test pays for a JVM start.

A test that checks what only DuckDB does (DuckDB's own types, its error text, a kind Spark does
not build) says so with ``@duckdb_only("why")``; its Spark half is skipped with that reason.
Where Spark is missing here, the Spark half is skipped saying what to install."""
from __future__ import annotations

import pytest

ENGINES = ("duckdb", "spark")
current = {"engine": "duckdb"}  # what write_project gives the tests of the running half
built = {"ran": 0, "on_spark": 0}  # the Spark half: nodes the running test's runs ran, and how many on Spark


def duckdb_only(why: str):
    return pytest.mark.duckdb_only(why)


def ident(name: str) -> str:
    """A quoted column name as the running half's SQL writes it (what `seekrun show` prints)."""
    return f"`{name}`" if current["engine"] == "spark" else f'"{name}"'


def on_spark() -> bool:
    return current["engine"] == "spark"


QUANTILES = ("p25", "p50", "p75")
ROUNDED = ("avg", "sum", "stddev")


def assert_same_profile(got: list[tuple], want: list[tuple]) -> None:
    """A profile's rows as the test expects them. On DuckDB: exactly. On Spark, within the
    tolerances seekrun/engines/spark_profile.py documents: avg, sum and stddev to 12
    significant digits (summed in another order), and p25..p75 a value between the column's
    min and max (Spark's percentile_approx returns one of the column's values, DuckDB's
    approx_quantile may interpolate); every other row exactly."""
    if not on_spark():
        assert got == want
        return
    assert [r[:2] for r in got] == [r[:2] for r in want]
    bounds = {(r[0], r[1]): r[2] for r in want if r[1] in ("min", "max")}
    for g, w in zip(got, want):
        if w[1] in QUANTILES and w[2] is not None and g[2] is not None:
            low, high = float(bounds[(w[0], "min")]), float(bounds[(w[0], "max")])
            assert low <= float(g[2]) <= high, (g, w)
        elif w[1] in ROUNDED and w[2] is not None and g[2] is not None:
            assert float(f"{float(g[2]):.12g}") == float(f"{float(w[2]):.12g}"), (g, w)
        else:
            assert g == w


def marker_for(text: str) -> str:
    """A project file as the running half builds it (the Spark half: engine: spark added)."""
    if current["engine"] != "spark" or "\nengine:" in "\n" + text:
        return text
    return text.rstrip("\n") + "\nengine: spark\n"


def node_text(text: str) -> str:
    """A node file as the running half builds it: on the Spark half a profile says engine: spark
    itself (the project default leaves profiles on DuckDB)."""
    if current["engine"] != "spark":
        return text
    docs = text.split("\n---\n")
    return "\n---\n".join(d.rstrip("\n") + "\nengine: spark\n" if "\nkind: profile\n" in "\n" + d + "\n" else d
                           for d in docs)


# SQL the sample project writes that Spark would read differently: round() of a division is
# refused at parse; round(price * rate, 2) of a DOUBLE is not seen at parse, and its halfway values
# round differently. On Spark those nodes stay on DuckDB, as a user would pin them. (Its
# CAST(sum(quantity) AS BIGINT)s run on Spark: quantity is an integer, which the run checks.)
SAMPLE_PINNED = {"nodes/transforms/customer_360.yml": "customer_360",
                 "nodes/transforms/product_prices_fx.yml": "product_prices_fx"}


def pin_sample(project) -> None:
    """A copy of the sample project as it runs on Spark: SAMPLE_PINNED's nodes say engine: duckdb."""
    for rel, name in SAMPLE_PINNED.items():
        f = project / rel
        text = f.read_text()
        assert f"name: {name}\n" in text, (rel, name)
        f.write_text(text.replace(f"name: {name}\n", f"name: {name}\nengine: duckdb\n", 1))


def pytest_configure(config):
    config.addinivalue_line("markers", "duckdb_only(why): a kind test of what only DuckDB does (engine_matrix.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = item.get_closest_marker("duckdb_only")
        spec = getattr(item, "callspec", None)
        if mark is not None and spec is not None and spec.params.get("kind_engine") == "spark":
            item.add_marker(pytest.mark.skip(reason=f"DuckDB only: {mark.args[0] if mark.args else ''}"))


@pytest.fixture(scope="module", params=ENGINES)
def kind_engine(request):
    """The engine the module's kind tests run on (module scope: all of one half, then the other)."""
    if request.param == "duckdb":
        yield "duckdb"
        return
    from seekrun.parser.engines import missing_requirements

    why = missing_requirements({})
    if why is not None:
        pytest.skip(why)
    import seekrun
    from seekrun import runner
    from seekrun.engines.spark import SparkEngine
    from seekrun.runner import DAGRunner

    where = request.getfixturevalue("tmp_path_factory").mktemp("kind-spark")
    engine = SparkEngine(where, where, {})
    session = engine.session()
    class OnTheSession(DAGRunner):
        def __init__(self, *args, spark_session=None, **kwargs):
            super().__init__(*args, spark_session=spark_session or session, **kwargs)

        def run(self, *args, **kwargs):
            summary = super().run(*args, **kwargs)
            count_ran(self.manifest, summary)
            return summary

    patch = pytest.MonkeyPatch()
    # seekrun's own name first: reading it imports seekrun.runner's class, which must still be
    # the real one for undo() to put back
    patch.setattr(seekrun, "DAGRunner", OnTheSession, raising=False)  # (the Python API's)
    patch.setattr(runner, "DAGRunner", OnTheSession)  # (the CLI imports it when it runs)
    current["engine"] = "spark"
    try:
        yield "spark"
    finally:
        current["engine"] = "duckdb"
        patch.undo()
        engine.close()


def count_ran(manifest, summary) -> None:
    """Count the nodes a run ran (built, or failed while building), and those on Spark."""
    for result in summary.results:
        if result.attempts:
            built["ran"] += 1
            built["on_spark"] += (manifest.nodes[result.node_id].get("engine") or "duckdb") == "spark"


@pytest.fixture(autouse=True)
def builds_on_spark(request):
    """On the Spark half, a test whose runs ran nodes must have run one on Spark: one whose nodes
    all stay on DuckDB (sources, Python nodes, tasks) would pass without testing Spark at all."""
    built.update(ran=0, on_spark=0)
    yield
    if on_spark() and built["ran"] and not built["on_spark"]:
        pytest.fail(f"{request.node.name}: its runs ran {built['ran']} node(s), none on Spark: "
                    "mark it @duckdb_only(why) or give a node engine: spark", pytrace=False)
