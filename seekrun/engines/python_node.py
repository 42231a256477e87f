"""Python nodes: a function, named by ``python: path/to/file.py:function``, that builds a table.

Two ways to declare one, with the same record and the same build:

- in YAML, on kind model or any SQL-producing kind: ``python: pipelines/clv.py:compute``
  (the path is relative to the project root);
- by decorators in .py files under the node paths (seekrun/pipeline.py,
  seekrun/parser/python_nodes.py), read from the syntax tree at parse time.

At parse time (``prepare``, seekrun/kinds/python_spec.py) the file is checked (inside the project, exists, parses,
defines the function) and listed in ``rec["live_files"]``: its content hash enters the
node's hash on every parse, so editing the function body reruns the node and its
dependents.  User code is never imported during parse.

At run time (``build``) the file is imported from its path under a unique module name
(one per file content, so an edited file is imported afresh), the function is called
with a ``PythonContext`` and its result (a DuckDB relation, a pandas or polars
DataFrame, or a pyarrow Table) becomes the node's table.  pandas, polars and pyarrow
are imported only when the function returned one of their objects.

Files written for Seeknal run as they are: ``import seeknal`` finds seekrun's stand-in
(seekrun/engines/seeknal_shim) unless Seeknal is installed, ``ctx.ref`` gives them pandas
DataFrames and ``ctx.duckdb`` is the node's own in-memory connection, as in Seeknal
(seekrun/engines/python_context.py).  A PEP 723 ``# /// script`` header is not acted on:
the file runs with seekrun's interpreter, and one warning names any listed dependency it
cannot import (seekrun/engines/script_header.py).  Under SEEKRUN_DEBUG=1 a failure shows the
traceback of the user's own frames.
"""
from __future__ import annotations

import ast
import os
import sys
import threading
from pathlib import Path
from typing import Any

from seekrun.kinds.base import BuildContext, BuildResult, NodeFailure, UnsupportedNode, quote_ident
from seekrun.kinds.python_spec import resolve_file, split_spec, top_level_names
from seekrun.engines.user_code import format_user_traceback, project_code, project_path, user_frames

_import_lock = threading.Lock()
_modules: dict[tuple[str, str], Any] = {}  # (real path, content hash) -> imported module


# ---- run time ------------------------------------------------------------------------------
def _where(exc: BaseException, root: Path) -> str:
    """' (at file:line in function)' for the innermost frame in the user's files."""
    frames = user_frames(exc, root)
    if not frames:
        return ""
    rel, line, func, _ = frames[-1]
    return f" (at {rel}:{line}" + (f" in {func}" if func and func != "<module>" else "") + ")"


def _describe(exc: BaseException, root: Path) -> str:
    msg = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc).strip()
    text = f"{type(exc).__name__}: {msg}{_where(exc, root)}" if msg else f"{type(exc).__name__}{_where(exc, root)}"
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("seeknal.") and _shim_in_use():
        text += (f" (seekrun provides seeknal.pipeline only; for {exc.name}, install Seeknal for the Python "
                 f"running seekrun: {sys.executable})")
    if os.environ.get("SEEKRUN_DEBUG") and user_frames(exc, root):
        text += "\n" + format_user_traceback(exc, root)
    return text


def _shim_in_use() -> bool:
    from seekrun.engines.seeknal_shim import real_seeknal_installed

    return not real_seeknal_installed()


def load_function(node: dict, root: Path):
    """Import the node's file (never at parse time) and return its function."""
    try:
        file, func = split_spec(node.get("python"))
        path, rel = resolve_file(file, root)
    except ValueError as exc:
        raise NodeFailure(str(exc)) from None
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise NodeFailure(f"cannot read python file '{rel}': {exc.strerror or exc}") from None
    from seekrun.hashing import hash_bytes

    # the node's code hash covers the helper modules it imports, so an edited helper is
    # imported afresh in a long-lived process too
    digest = hash_bytes(source + str(node.get("hashes", {}).get("fields", {}).get("code")).encode())
    key = (os.path.realpath(path), digest)
    with _import_lock:
        module = _modules.get(key)
        if module is None:
            module = _import(path, rel, source, digest, root, node["id"])
            _modules[key] = module
    fn = getattr(module, func, None)
    if fn is None:
        raise NodeFailure(f"python file '{rel}' has no function '{func}'")
    if not callable(fn):
        raise NodeFailure(f"'{func}' in '{rel}' is a {type(fn).__name__}, not a function")
    return fn


def _import(path: Path, rel: str, source: bytes, digest: str, root: Path, node_id: str):
    import importlib.util

    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    name = f"_seekrun_user_{digest}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Compiled from the bytes just hashed, not through the loader: no stale or new __pycache__.
    sys.modules[name] = module
    try:
        with project_code(root), project_path(root, path):
            exec(compile(source, str(path), "exec"), module.__dict__)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:  # SystemExit at import must fail the node, not end seekrun
        sys.modules.pop(name, None)
        raise NodeFailure(f"importing {rel} failed: {_describe(exc, root)}") from None
    return module




def _check_static(node: dict, root: Path) -> None:
    """Before the run: the file is there, parses and defines the function (nothing is imported)."""
    try:
        file, func = split_spec(node.get("python"))
        path, rel = resolve_file(file, root)
    except ValueError as exc:
        raise UnsupportedNode(f"{node['id']}: {exc}") from None
    if not path.is_file():
        raise UnsupportedNode(f"{node['id']}: python file '{rel}' not found")
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        raise UnsupportedNode(f"{node['id']}: python file '{rel}'{f' line {line}' if line else ''} does not "
                              f"parse: {getattr(exc, 'msg', None) or exc}") from None
    names = top_level_names(tree)
    if names is not None and func not in names:
        raise UnsupportedNode(f"{node['id']}: python file '{rel}' has no function '{func}'")


def check(node: dict, ctx: BuildContext) -> str | None:
    _check_static(node, ctx.root)
    return None


_RETURN_HINT = ("return a DuckDB relation (e.g. ctx.ref(...) or ctx.con.sql(...)), "
                "a pandas or polars DataFrame, or a pyarrow Table")


def _tabular(result: Any, ctx: BuildContext, func: str):
    """The object to register with DuckDB; optional libraries are imported only if returned."""
    if isinstance(result, ctx.duckdb.DuckDBPyRelation):
        return result
    top = (type(result).__module__ or "").split(".")[0]
    if top == "pandas":
        import pandas

        if isinstance(result, pandas.DataFrame):
            return result
    elif top == "polars":
        import polars

        if isinstance(result, polars.LazyFrame):
            return result.collect()
        if isinstance(result, polars.DataFrame):
            return result
    elif top == "pyarrow":
        import pyarrow

        if isinstance(result, pyarrow.Table):
            return result
        if isinstance(result, pyarrow.RecordBatch):
            return pyarrow.Table.from_batches([result])
    what = "None (no return statement?)" if result is None else (
        f"a {type(result).__module__}.{type(result).__qualname__}" if top != "builtins" else
        f"a {type(result).__name__}")
    raise NodeFailure(f"{func}() returned {what}: {_RETURN_HINT}")


def build(node: dict, ctx: BuildContext) -> BuildResult:
    func = node["python"].rpartition(":")[2]
    file = node["python"].rpartition(":")[0]
    from seekrun.engines import script_header

    missing = _header_missing(ctx, file)
    try:
        fn = load_function(node, ctx.root)
    except NodeFailure as exc:
        if missing and "ModuleNotFoundError" in str(exc):  # most likely why: say so in the failure
            raise NodeFailure(f"{exc}; {script_header.note(missing)}") from None
        raise
    warning = script_header.warn_once(file, missing)
    if warning:
        ctx.warn(warning)
    seeknal = _written_for_seeknal(fn)
    pctx = ctx.python_context(seeknal)  # (on Spark: DataFrames, seekrun/engines/spark_python.py)
    try:
        with project_code(ctx.root), project_path(ctx.root, ctx.root / file):
            result = fn(pctx)
        return ctx.store_python(result, func)
    except KeyboardInterrupt:
        raise
    except NodeFailure:
        raise
    except BaseException as exc:  # the user's error: this node fails, seekrun goes on
        raise NodeFailure(ctx.redact(f"{func}() raised {_describe(exc, ctx.root)}")) from None
    finally:
        pctx.close()


def _header_missing(ctx: BuildContext, file: str) -> tuple[str, ...]:
    """The dependencies the file's PEP 723 header lists that this interpreter cannot import."""
    from seekrun.engines.script_header import missing

    try:
        text = (Path(ctx.root) / file).read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return ()
    return missing(text)


def _written_for_seeknal(fn) -> bool:
    """Whether the function was decorated by Seeknal's API (seekrun's stand-in or Seeknal itself)."""
    meta = getattr(fn, "__dict__", {}).get("_seeknal_node")
    return isinstance(meta, dict) or (getattr(fn, "__seekrun__", None) or {}).get("api") == "seeknal"


def store(result: Any, ctx: BuildContext, func: str) -> BuildResult:
    obj = _tabular(result, ctx, func)
    is_relation = isinstance(obj, ctx.duckdb.DuckDBPyRelation)
    tmp = f"__seekrun_py_{threading.get_ident()}_{id(obj)}"
    for attempt in (1, 2):
        try:
            ctx.cur.register(tmp, obj)
            try:
                rows = ctx.materialize(f"SELECT * FROM {quote_ident(tmp)}")
            finally:
                try:
                    ctx.cur.unregister(tmp)
                except Exception:
                    pass
            return BuildResult(rows)
        except (ctx.duckdb.Error, NodeFailure) as exc:
            text = str(exc).strip()
            if is_relation and "another database" in text and attempt == 1:
                try:  # a relation on ctx.duckdb (or any other connection): its rows, through Arrow
                    obj = obj.to_arrow_table()
                    continue
                except ctx.duckdb.Error:
                    raise NodeFailure(f"{func}() returned a relation made on another DuckDB connection that is "
                                      "closed: return ctx.duckdb.sql(...).df(), or make it with ctx.ref(...), "
                                      "ctx.sql(...) or ctx.con.sql(...)") from None
            raise NodeFailure(ctx.redact(f"{func}() result could not be stored: {text.replace(tmp, 'result')}")) \
                from None
    raise AssertionError("unreachable")  # pragma: no cover
