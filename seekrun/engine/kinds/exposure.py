"""exposure: the upstream result written out.

``type: file`` writes its first input's table to ``params.path`` (or top-level ``path``)
as csv, parquet, json (one array) or jsonl (one object a line), by ``params.format``
(or top-level ``format``; default: the file extension).  The path must stay inside the
project: checked at parse time (``..``, absolute paths and symlinks pointing out are
refused) and again before writing.  The file is written atomically (a temporary file
in the same folder, fsync, rename), so a failed or killed build leaves the last good
file in place.

An exposure has no table (``HAS_TABLE = False``); its file is its output, so a deleted
file means "output missing" and reruns it.  Every param is a build field, so changing
the path or format reruns it.

Other types (api, database, notification) parse, and are not executable: parse warns, run
skips them and builds the rest.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from seekrun import faults
from seekrun.fsutil import commit_file
from seekrun.engine.base import (BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config, inside,
                                 sql_literal, table_name)

ENGINE_VERSION = 1
HAS_TABLE = False
FORMATS = ("csv", "parquet", "json", "jsonl")
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json",
              ".jsonl": "jsonl", ".ndjson": "jsonl"}
COMPRESSION_SUFFIXES = (".gz", ".zst")
COMPRESSIONS = {"parquet": ("uncompressed", "snappy", "gzip", "zstd", "brotli", "lz4", "lz4_raw"),
                "text": ("none", "auto", "gzip", "zstd")}


def _settings(cfg: dict) -> tuple[object, tuple, object, tuple]:
    """(path, its key path, format, its key path): params first, then the top-level keys."""
    params = cfg.get("params") if isinstance(cfg.get("params"), dict) else {}
    if params.get("path") is not None:
        path, path_key = params["path"], ("params", "path")
    else:
        path, path_key = cfg.get("path"), ("path",)
    if params.get("format") is not None:
        fmt, fmt_key = params["format"], ("params", "format")
    else:
        fmt, fmt_key = cfg.get("format"), ("format",)
    return path, path_key, fmt, fmt_key


def format_of(path: str, fmt) -> str | None:
    if fmt is not None:
        return str(fmt).lower()
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return EXTENSIONS.get(os.path.splitext(name)[1])


def _resolve(path: str, root: Path) -> tuple[str | None, str]:
    """(project-relative path, '') or (None, why it is refused)."""
    full = path if os.path.isabs(path) else os.path.join(str(root), path)
    if not inside(root, full):
        return None, (f"path '{path}' resolves outside the project directory: "
                      "write exposures to a path inside the project")
    real, base = os.path.realpath(full), os.path.realpath(root)
    if real == base or os.path.isdir(real):
        return None, f"path '{path}' is a folder: give a file name, e.g. output/result.csv"
    return os.path.relpath(real, base).replace(os.sep, "/"), ""


def prepare(rec: dict, built: dict, pc) -> None:
    """Parse time: a file exposure's path and format are checked; its file is its output."""
    if built.get("type") != "file":  # Seeknal's api, database, notification... exposures
        if not rec.get("python"):
            pc.not_executable = (f"exposure type '{built.get('type')}' is not supported (seekrun writes only "
                                 "'type: file' exposures)")
        return
    path, path_key, fmt, fmt_key = _settings(built)
    if not rec["inputs"]:
        pc.error(("type",), "an exposure writes its input: add 'inputs:' (or 'depends_on:') with '- ref: <node>'")
    if path is None:
        pc.error(("params",) if built.get("params") else ("type",),
                 "type: file needs a path: add 'params: {path: output/<file>.csv}' (or a top-level 'path:')")
        return
    if not isinstance(path, str) or not path.strip():
        pc.error(path_key, "path must be a file path string")
        return
    rel, why = _resolve(path, pc.root)
    if rel is None:
        pc.error(path_key, why)
        return
    chosen = format_of(path, fmt)
    if chosen is None:
        pc.error(path_key, f"cannot tell the format of '{path}' from its extension: "
                           f"add 'format:' ({', '.join(FORMATS)})")
        return
    if chosen not in FORMATS:
        pc.error(fmt_key, f"format '{fmt}' is not supported: use one of {', '.join(FORMATS)}")
        return
    params = built.get("params") if isinstance(built.get("params"), dict) else {}
    compression = params.get("compression")
    if compression is not None:
        allowed = COMPRESSIONS["parquet" if chosen == "parquet" else "text"]
        if not isinstance(compression, str) or compression.lower() not in allowed:
            pc.error(("params", "compression"), f"compression {compression!r} is not one DuckDB writes for "
                                                f"{chosen}: use one of {', '.join(allowed)}")
            return
    for key in ("delimiter", "delim", "sep"):
        delim = params.get(key)
        if delim is not None and (not isinstance(delim, str) or len(delim.encode()) != 1):
            pc.error(("params", key), f"{key} must be one character, e.g. ';' or '\\t'")
            return
    rec["output_files"] = [rel]
    rec["output_lines"] = {rel: pc.line(path_key)}


def output_files(node: dict, root: Path) -> list[Path]:
    return [Path(root) / rel for rel in node.get("output_files") or []]


def check(node: dict, ctx: BuildContext) -> str | None:
    cfg = build_config(node)
    kind = cfg.get("type")
    if kind != "file":
        raise UnsupportedNode(f"{node['id']}: exposure type '{kind}' is not supported by seekrun "
                              "(only 'type: file' runs): change it to type: file, or remove the node")
    if not node.get("output_files"):
        raise UnsupportedNode(f"{node['id']}: exposure has no output path")
    return None


def _options(fmt: str, path: str, params: dict) -> list[str]:
    opts = [f"FORMAT {'json' if fmt == 'jsonl' else fmt}"]
    if fmt == "csv":
        opts.append(f"HEADER {sql_literal(bool(params.get('header', True)))}")
        delim = params.get("delimiter", params.get("delim", params.get("sep")))
        if delim is None and path.lower().endswith(".tsv"):
            delim = "\t"
        if delim is not None:
            opts.append(f"DELIMITER {sql_literal(str(delim))}")
    elif fmt == "json":
        opts.append("ARRAY true")
    if params.get("compression") is not None:
        opts.append(f"COMPRESSION {sql_literal(str(params['compression']))}")
    return opts


def build(node: dict, ctx: BuildContext) -> BuildResult:
    check(node, ctx)
    cfg = build_config(node)
    params = cfg.get("params") if isinstance(cfg.get("params"), dict) else {}
    path, _, fmt, _ = _settings(cfg)
    fmt = format_of(str(path), fmt)
    rel = node["output_files"][0]
    final = ctx.root / rel
    if not inside(ctx.root, final):  # a symlink made since parse
        ctx.fail(f"path '{rel}' now resolves outside the project directory: not written")
    source = node["inputs"][0]
    if source not in ctx.nodes:
        ctx.fail(f"input {source} is not in the project")
    from seekrun.engine.kinds import executor

    if not getattr(executor(ctx.nodes[source]["kind"]), "HAS_TABLE", True):
        ctx.fail(f"input {source} has no table to write (it is a {ctx.nodes[source]['kind']})")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Same folder (same file system, so the rename is atomic), same suffix (compression by extension).
    tmp = final.parent / f".seekrun-tmp-{uuid.uuid4().hex[:12]}-{final.name}"
    try:
        row = ctx.execute(f"COPY (SELECT * FROM {table_name(source)}) TO {sql_literal(str(tmp))} "
                          f"({', '.join(_options(fmt, str(path), params))})").fetchone()
        if not tmp.is_file():
            raise NodeFailure(f"DuckDB did not write {rel}")
        faults.point("exposure_write", node["id"])
        if ctx.on_file is not None:
            ctx.on_file(rel, tmp)
        commit_file(tmp, final)
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass
    return BuildResult(int(row[0]) if row and row[0] is not None else None)
