"""exposure: the upstream result written out.

``type: file`` writes its input's table to ``params.path`` (or top-level ``path``) as csv,
parquet, json (one array) or jsonl (one object a line), by ``params.format`` (or top-level
``format``; default: the file extension).  The path must stay inside the project: checked
at parse time (``..``, absolute paths and symlinks pointing out are refused) and again
before writing.

Several inputs: each input's table is written to its own file, named after the input: the
input's node name is added to the file name before its extension, so ``path:
output/export.csv`` with inputs ``transform.orders`` and ``source.customers`` writes
``output/export_orders.csv`` and ``output/export_customers.csv`` (Seeknal writes only the
first input, silently).  Two inputs with the same name are a parse error, and so is an
input without a table (another exposure).

``params.partition_by: [col, ...]`` (or one column name) makes each output a folder in Hive
layout, ``<path>/col=<value>/data_0.<ext>``, written with DuckDB's ``COPY ... (PARTITION_BY
...)`` (see seekrun/partitioned.py; Seeknal 2.13 ignores partition_by on exposures).  A
partition column missing from the input fails the node, naming the columns there are.

Every write is atomic: a temporary file (or folder) beside the output, fsync, then a rename
(a folder: an atomic exchange); all of a node's outputs are written before any is put in
place, so a failed or killed build leaves the last good outputs.

An exposure has no table (``HAS_TABLE = False``); its files are its output, recorded with
their content hashes (a folder: the hash of every file in it), so a deleted or edited file,
or a partition file deleted, edited or added, reruns it.  Every param is a build field, so
changing the path, format or partitioning reruns it.

Other types (api, database, notification) parse, and are not executable: parse warns, run
skips them and builds the rest.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from seekrun import faults, partitioned
from seekrun.fsutil import commit_file
from seekrun.kinds.base import (BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config, inside,
                                 sql_literal, table_name)

ENGINE_VERSION = 1  # unchanged: a single-input, unpartitioned exposure writes the same file
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


def _resolve(path: str, root: Path, folder_ok: bool = False) -> tuple[str | None, str]:
    """(project-relative path, '') or (None, why it is refused). folder_ok: a partitioned
    write, whose output is a folder."""
    full = path if os.path.isabs(path) else os.path.join(str(root), path)
    if not inside(root, full):
        return None, (f"path '{path}' resolves outside the project directory: "
                      "write exposures to a path inside the project")
    real, base = os.path.realpath(full), os.path.realpath(root)
    if real == base:
        return None, f"path '{path}' is the project folder: give a name, e.g. output/result"
    if os.path.isdir(real) and not folder_ok:
        return None, (f"path '{path}' is a folder: give a file name, e.g. output/result.csv (a folder left "
                      "by an earlier partition_by write: delete it)")
    return os.path.relpath(real, base).replace(os.sep, "/"), ""


def _split_name(name: str) -> tuple[str, str]:
    """('export', '.csv.gz') from 'export.csv.gz': the name and its extension(s)."""
    lower, tail = name.lower(), ""
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            name, tail = name[: -len(suffix)], name[-len(suffix):]
            break
    stem, ext = os.path.splitext(name)
    return (stem, ext + tail) if stem else (name, tail)


def per_input_path(rel: str, input_id: str) -> str:
    """Where one of several inputs is written: its node name added before the extension."""
    folder, _, name = rel.rpartition("/")
    stem, ext = _split_name(name)
    named = f"{stem}_{input_id.partition('.')[2]}{ext}"
    return f"{folder}/{named}" if folder else named


def _targets(rel: str, inputs: list[str]) -> list[str]:
    return [rel] if len(inputs) == 1 else [per_input_path(rel, i) for i in inputs]


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
    params = built.get("params") if isinstance(built.get("params"), dict) else {}
    partition = None
    if params.get("partition_by") is not None:
        partition = partitioned.check_config(params["partition_by"], pc.error, ("params", "partition_by"))
        if partition is None:
            return
    # partitioned, the output is a folder (an existing one may be the last write)
    rel, why = _resolve(path, pc.root, folder_ok=partition is not None)
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
    from seekrun.parser.kinds import TABLELESS_KINDS

    listed = "inputs" if built.get("inputs") else "depends_on" if built.get("depends_on") else None
    where = (listed,) if listed else ("type",)
    for i, ref in enumerate(rec["inputs"]):
        if ref.partition(".")[0] in TABLELESS_KINDS:
            at = (listed, i) if listed and len(built[listed]) == len(rec["inputs"]) else where
            pc.error(at, f"input {ref} has no table to write (an {ref.partition('.')[0]} writes files): "
                         f"remove it from {listed or 'inputs'}")
            return
    names: dict[str, str] = {}
    for ref in rec["inputs"] if len(rec["inputs"]) > 1 else ():
        name = ref.partition(".")[2]
        if name.lower() in names:
            pc.error(where,
                     f"inputs {names[name.lower()]} and {ref} would both be written to "
                     f"'{per_input_path(rel, ref)}' (each input goes to a file named after it): "
                     "write them with two exposures")
            return
        names[name.lower()] = ref
    files = _targets(rel, rec["inputs"])
    rec["output_files"] = files
    rec["output_lines"] = {f: pc.line(path_key) for f in files}


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
    partition = partitioned.columns_of(params.get("partition_by")) if params.get("partition_by") is not None else None
    from seekrun.kinds import executor

    staged: list[tuple[str, Path, Path]] = []  # (rel, temp, final)
    rows = 0
    try:
        for source, rel in zip(node["inputs"], node["output_files"]):
            final = ctx.root / rel
            if not inside(ctx.root, final):  # a symlink made since parse
                ctx.fail(f"path '{rel}' now resolves outside the project directory: not written")
            if source not in ctx.nodes:
                ctx.fail(f"input {source} is not in the project")
            if not getattr(executor(ctx.nodes[source]["kind"]), "HAS_TABLE", True):
                ctx.fail(f"input {source} has no table to write (it is a {ctx.nodes[source]['kind']})")
            final.parent.mkdir(parents=True, exist_ok=True)
            opts = _options(fmt, str(path), params)
            if partition is not None:
                cols = partitioned.resolve_columns(ctx, table_name(source), partition, f"{source} -> {rel}")
                opts.append(partitioned.clause(cols))
                tmp = partitioned.temp_folder(final)
            else:
                # Same folder (same file system, so the rename is atomic), same suffix (compression by extension).
                tmp = final.parent / f".seekrun-tmp-{uuid.uuid4().hex[:12]}-{final.name}"
            staged.append((rel, tmp, final))
            row = ctx.execute(f"COPY (SELECT * FROM {table_name(source)}) TO {sql_literal(str(tmp))} "
                              f"({', '.join(opts)})").fetchone()
            if not tmp.exists():
                raise NodeFailure(f"DuckDB did not write {rel}")
            rows += int(row[0]) if row and row[0] is not None else 0
        faults.point("exposure_write", node["id"])
        for rel, tmp, final in staged:
            if ctx.on_file is not None:
                ctx.on_file(rel, tmp)
            if tmp.is_dir():
                partitioned.swap_in(tmp, final)
            else:
                commit_file(tmp, final)
    finally:
        for _, tmp, _ in staged:
            if os.path.lexists(tmp):
                partitioned.remove_path(tmp)
    return BuildResult(rows)
