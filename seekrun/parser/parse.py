"""Parse a project: read node files (cached by stat), check the graph, hash, build the manifest.

Every problem is collected; parse_project raises one ProjectError holding all of them.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

from seekrun import __version__
from seekrun.errors import Diagnostic, ProjectError, suggest  # noqa: F401 (suggest: re-exported)
from seekrun.hashing import FileHashCache, hash_bytes, hash_obj, hash_parts, stat_sig
from seekrun.manifest import MANIFEST_VERSION, Manifest
from seekrun.parser.cache import ParseCache
from seekrun.parser.checks import check_graph, check_input_tables, check_outputs
from seekrun.parser.data_files import check_sources
from seekrun.parser.live import live_files
from seekrun.parser.parallel import Reader, map_forked
from seekrun.parser import engines
from seekrun.parser.pools import check_pools, metadata as pool_metadata
from seekrun.parser.records import read_file
from seekrun.controls import RECORD_KEYS as CONTROL_RECORD_KEYS
from seekrun.project import Project, find_project

__all__ = ["parse_project", "ParseResult", "suggest"]


@dataclass
class ParseResult:
    project: Project
    manifest: Manifest
    warnings: list[Diagnostic]
    file_cache: FileHashCache
    parse_cache: "ParseCache"
    notes: list[str] = field(default_factory=list)  # verbose-only remarks
    digest: str = ""  # fingerprint of the manifest content


def parse_project(project_dir: Path | str = ".", *, strict: bool = False,
                  file_cache: FileHashCache | None = None, use_cache: bool = True,
                  run_values=None, run_params: dict | None = None) -> ParseResult:
    """``run_values``: this run's {{ today }}, {{ run_date }}... (parser/runvars.py; default: now).
    ``run_params``: the params given on the command line (seekrun/params.py), over the defaults."""
    project = project_dir if isinstance(project_dir, Project) else find_project(project_dir)
    from seekrun import params

    resolved = params.apply_to_project(project, run_params)  # UsageError for an unknown one
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    notes: list[str] = []
    records: dict[str, dict] = {}
    digests: list[str] = []  # one per file, in path order
    broken: list[str] = []  # files that could not be read (or hold a failed document of unknown name)
    failed: dict[str, str] = {}  # node a failed document meant to define -> "file:line" of its error
    cache = ParseCache(project.state_dir / "parse_cache" if use_cache else None)
    common, common_digest = load_common(project, errors)
    workflow = project.workflow if project.flavour == "workflow" else None
    if workflow is not None:  # the records depend on which document of the file runs
        common_digest = f"workflow:{workflow}"
        warnings.extend(project.warnings)
        notes.extend(project.notes)
    if cache.meta.get("common") != common_digest:
        cache.clear()  # shared config changed: templates may render differently
        cache.meta["common"] = common_digest
    lender = getattr(project, "borrowed_parse_cache", None) if workflow is None else None
    # --state DIR (a pull request's CI run): some files are new here; a worker gets ready to
    # read them while the files are listed, statted and looked up (it leaves if none are)
    reader = Reader(_warm_reader) if lender is not None else None
    try:
        yml_files, py_files = project.node_files(errors)
        root_prefix = str(project.root) + os.sep
        # 1. stat every file; cached records for unchanged ones, the rest read (in parallel when many)
        entries: list[tuple[str, list, int, dict | None]] = []
        for path in [*yml_files, *py_files]:
            spath = str(path)
            rel = spath[len(root_prefix):].replace(os.sep, "/") if spath.startswith(root_prefix) else spath
            try:
                st = os.stat(path)
            except OSError as exc:  # e.g. a broken symlink
                errors.append(Diagnostic(rel, None, f"cannot read this file ({exc.strerror}): fix or remove it"))
                broken.append(rel)
                continue
            sig = stat_sig(st)
            cache.seen.add(rel)
            entries.append((rel, sig, st.st_mtime_ns, cache.get(rel, sig)))
        if lender is not None:  # --state DIR: what that build parsed, byte for byte
            lender = ParseCache(lender)
            for i, (rel, sig, mtime_ns, entry) in enumerate(entries):
                lent = lender.lend(rel, project.root, common_digest) if entry is None else None
                if lent is not None:  # not copied into this cache: a CI checkout is fresh each time (new
                    entries[i] = (rel, sig, mtime_ns, lent)  # stats, no hits), and lending again is cheap
        misses = [rel for rel, _, _, entry in entries if entry is None]
        cache.reads += len(misses)
        from seekrun.parser.sql_check import check_files, connection

        warm: list = []  # the SQL check's DuckDB, opened while another process reads the files
        read = dict(zip(misses, (reader.map if reader else map_forked)(
            partial(_read_one, project.root, common, workflow=workflow), misses,
            meanwhile=(lambda: warm.append(connection())) if misses else None)))
    except BaseException:
        if reader is not None:
            reader.close()
        raise
    try:  # the new files' SQL through DuckDB's parser (after the fork: duckdb is loaded now)
        check_files(read, connect=(lambda: warm.pop()) if warm else connection)
    finally:
        for con in warm:  # not needed (no SQL to check)
            con.close()
    # 2. collect, in file order
    folded: dict[str, dict] = {}  # lower-cased id -> record: DuckDB names ignore case
    for rel, sig, mtime_ns, entry in entries:
        if entry is None:
            recs, errs, warns, file_notes, digest = read[rel]
            if errs:  # the file's other documents still count (the parse fails, but every error is found)
                _note_failed(rel, recs, errs, broken, failed)
                errors.extend(errs)
                warnings.extend(warns)
                notes.extend(file_notes)
                _add_records(rel, recs, records, folded, errors)
                continue
            entry = {"records": recs, "warnings": [[w.line, w.message] for w in warns], "notes": file_notes,
                     "digest": digest}
            cache.put(rel, sig, entry, mtime_ns)
        warnings.extend(Diagnostic(rel, line, msg, "warning") for line, msg in entry["warnings"])
        notes.extend(entry["notes"])
        digests.append(entry["digest"])
        _add_records(rel, entry["records"], records, folded, errors)
    from seekrun.parser import instances, runvars

    instances.expand(records, resolved, project.env, errors, project.dotenv_values)  # table fan-outs: instance nodes
    runvars.apply(records, run_values, errors)  # after the cache: {{ today }} etc. into the nodes that use them
    params.apply_vars(records, resolved, errors, project.marker)  # {{ var('DAY') }}: the same, for run params
    if any(r["kind"] in ("semantic_model", "metric") for r in records.values()):
        from seekrun.semantic.link import link  # metrics name measures in other files

        link(records, errors, bool(broken))
    if any(r.get("task") or r.get("uses_outputs") for r in records.values()):
        from seekrun.parser.tasks import link as link_tasks  # files written by tasks feed what reads them

        link_tasks(records, errors, project.root, resolved, project.env)
    if any(r["kind"] == "dag" for r in records.values()):
        from seekrun.workflows.link import check_children

        check_children(records, errors, project.root)  # every parse: a child file may be gone since
    check_pools(records, project, errors)  # against the project file's pools (not in the cached records)
    engines.apply(records, project, errors, cache)  # engine: spark (the project's default is not in the cached records)
    check_graph(records, errors, broken, failed)
    warnings.extend(Diagnostic(rec["file"], rec["line"], f"{nid}: not executable by seekrun: {rec['not_executable']}",
                               "warning") for nid, rec in records.items() if rec.get("not_executable"))
    if file_cache is None:
        file_cache = FileHashCache(project.state_dir / "file_hashes.json")
    data = check_sources(project, records, errors, warnings, file_cache)
    check_outputs(project, records, data, errors)
    check_input_tables(records, errors)
    if strict:
        errors.extend(Diagnostic(w.path, w.line, w.message + " (an error under --strict)") for w in warnings
                      if w.message.startswith("unknown key"))
    from seekrun.parser.env_hashes import env_hashes

    env, new_env_key = env_hashes(project, records, errors)
    live = live_files(project, records, errors, file_cache, cache)
    if errors:
        raise ProjectError(errors)
    now = time.time()
    manifest = _build_manifest(project, records, data, env, live, now)
    digest = hash_parts(str(MANIFEST_VERSION), __version__, project.name, project.database, str(project.timeout),
                        str(project.max_active_nodes), json.dumps(project.pools, sort_keys=True), common_digest,
                        project.engine, json.dumps(project.spark, sort_keys=True),
                        *([f"keep_runs={project.keep_runs}"] if project.keep_runs else []),
                        *digests,
                        *(f"{n}={d[1]}" for n, d in sorted(data.items())),
                        *(f"{n}={h}" for n, h in sorted(env.items())),
                        *(f"{n}~{h}" for n, h in sorted(live.items())), *runvars.digest_parts(records),
                        *params.digest_parts(records), *instances.digest_parts(records),
                        *(f"param {k}={v}" for k, v in resolved.items()),
                        *sorted({clock(r["volatile"], now) for r in records.values() if r.get("volatile")}))
    manifest.new_env_key = new_env_key  # not part of the manifest: saved into target/state by its first writer
    warnings = sorted(warnings) + not_nodes_summary(notes)
    return ParseResult(project, manifest, warnings, file_cache, cache, notes, digest)


def not_nodes_summary(notes: list[str]) -> list[Diagnostic]:
    """One line for every YAML document that is not a node (no 'kind', no node keys), and one for
    the files that are not valid YAML but have no 'kind:' line: Seeknal projects keep hundreds
    of them beside the nodes (question/SQL pairs, tests). -v lists them."""
    from seekrun.errors import first_few
    from seekrun.parser.records import NOT_A_NODE, NOT_YAML

    out = []
    docs = [n for n in notes if n.endswith(NOT_A_NODE)]
    if docs:
        files = list(dict.fromkeys(n.rsplit(":", 2)[0] for n in docs))
        what = "1 YAML document is not a node" if len(docs) == 1 else f"{len(docs)} YAML documents are not nodes"
        out.append(Diagnostic("", None, f"{what} (no 'kind'), ignored: {first_few(files, 3)} (-v lists them)",
                              "warning"))
    bad = [n.split(": " + NOT_YAML)[0].rsplit(":", 1)[0] for n in notes if NOT_YAML in n]
    if bad:
        what = "1 file is not valid YAML" if len(bad) == 1 else f"{len(bad)} files are not valid YAML"
        out.append(Diagnostic("", None, f"{what} and {'has' if len(bad) == 1 else 'have'} no 'kind:' line, so "
                                        f"{'it is not a node' if len(bad) == 1 else 'they are not nodes'}: ignored: "
                                        f"{first_few(bad, 3)} (-v lists them, with YAML's error)", "warning"))
    return out


def _add_records(rel: str, recs: list[dict], records: dict[str, dict], folded: dict[str, dict], errors) -> None:
    for rec in recs:
        other = records.get(rec["id"]) or folded.get(rec["id"].lower())
        if other is not None:
            same = "" if other["id"] == rec["id"] else (
                f" as '{other['id']}' (table names ignore case, so both would be one table)")
            errors.append(Diagnostic(rel, rec["line"],
                f"duplicate node id '{rec['id']}': also defined in {other['file']}:{other['line']}{same}; "
                "rename one of them"))
            continue
        records[rec["id"]] = rec
        folded[rec["id"].lower()] = rec


def _note_failed(rel: str, recs: list[dict], errs: list[Diagnostic], broken: list[str], failed: dict) -> None:
    """Which nodes a file with errors may have lost: those its failed documents meant to define
    (by id or name), or any node at all when a document's name is not known or the file could
    not be read."""
    for err in errs:  # (a Python file's errors do not say which node they lost)
        if err.node == "" or (err.node is None and (not recs or rel.endswith(".py"))):
            if rel not in broken:
                broken.append(rel)
        elif err.node:
            failed.setdefault(err.node, f"{rel}:{err.line}" if err.line else rel)


def _warm_reader() -> None:
    """What reading a node file loads (in a worker, while the parent stats the files)."""
    import seekrun.parser.models  # noqa: F401  (pydantic)
    import seekrun.parser.yaml_load  # noqa: F401


def _read_one(root: Path, common: dict | None, rel: str, workflow: str | None = None):
    """Parse one node file (YAML, or Python with decorators): records, diagnostics and a digest.
    Records are a function of the file's bytes (and seeknal/common, whose digest is in the
    project digest), so the digest is a hash of the bytes."""
    try:
        raw = (root / rel).read_bytes()
    except OSError as exc:
        return [], [Diagnostic(rel, None, f"cannot read this file ({exc.strerror or exc}): fix its permissions "
                                          "or remove it")], [], [], ""
    if b"\x00" in raw and not rel.endswith(".py"):
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        return [], [Diagnostic(rel, line, "file holds a NUL byte: node files are text; remove it")], [], [], ""
    if workflow is not None:
        from seekrun.workflows.load import read_records

        out = read_records(raw, rel, root, workflow)
    elif rel.endswith(".py"):
        from seekrun.parser.python_nodes import read_python_file

        out = read_python_file(raw, rel, root)
    else:
        out = read_file(raw, rel, common, root)
    return (*out, hash_parts(rel, hash_bytes(raw)))


def load_common(project: Project, errors: list[Diagnostic]) -> tuple[dict | None, str | None]:
    """Seeknal's shared config: seeknal/common/*.yml lists (sources, rules, transformations) of
    entries with an `id`. Returns (id -> entry, digest of the files)."""
    if not project.common_dir:
        return None, None
    from seekrun.fsutil import too_deep
    from seekrun.parser.yaml_load import decode, load_documents

    folder = project.root / project.common_dir
    common: dict[str, dict] = {}
    where: dict[str, str] = {}
    parts: list[str] = []
    from seekrun.project import regular_file_problem

    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]) if folder.is_dir() else []:
        rel = f"{project.common_dir}/{path.name}"
        why = regular_file_problem(path, project.root)
        if why is not None:
            errors.append(Diagnostic(rel, None, f"this shared config file {why.split(':')[0]}: fix or remove it"))
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            errors.append(Diagnostic(rel, None, f"cannot read this file ({exc.strerror}): fix or remove it"))
            continue
        parts += [rel, hash_obj(raw.decode("utf-8", "replace"))]
        try:
            docs = load_documents(decode(raw, rel), rel)
        except ProjectError as exc:
            errors.extend(exc.diagnostics)
            continue
        for doc in docs:
            if not isinstance(doc.data, dict):
                continue
            for section, entries in doc.data.items():
                for entry in entries if isinstance(entries, list) else []:
                    if not isinstance(entry, dict) or "id" not in entry:
                        continue
                    if too_deep(entry):
                        errors.append(Diagnostic(rel, doc.line, f"common id '{entry['id']}' nests too deeply: "
                                                                "flatten it"))
                        continue
                    cid = str(entry["id"])
                    if cid in common:
                        errors.append(Diagnostic(rel, doc.line, f"common id '{cid}' ({section}) is also "
                                                                f"defined in {where[cid]}: rename one"))
                        continue
                    common[cid], where[cid] = json.loads(json.dumps(entry, default=str)), rel
    return common, hash_parts(*parts)


def clock(period: int, now: float) -> str:
    """The tick of a clock with this period (seconds): a node whose result depends on the time
    (a freshness rule measured against now) has it among its hashed fields."""
    return f"{period}s:{int(now // period)}"


def _build_manifest(project: Project, records: dict[str, dict], data, env, live, now: float) -> Manifest:
    nodes: dict[str, dict] = {}
    for nid in sorted(records):
        rec = records[nid]
        fields = rec["field_hashes"]
        if nid in env:
            fields = {**fields, "env": env[nid]}
        if nid in live:
            fields = {**fields, "code": live[nid]}
        if rec.get("volatile"):  # e.g. a freshness rule measured against now
            fields = {**fields, "clock": clock(rec["volatile"], now)}
        node = {
            "id": nid, "name": rec["name"], "kind": rec["kind"], "description": rec["description"],
            "owner": rec["owner"], "tags": rec["tags"], "file": rec["file"], "line": rec["line"],
            "config": rec["config"], "inputs": rec["inputs"],
            "hashes": {"config": hash_obj(fields), "fields": fields},
        }
        lines = {k: rec[f"{k}_line"] for k in ("sql", "table") if rec.get(f"{k}_line")}
        if lines:
            node["lines"] = lines  # where errors found at run time point
        if rec.get("built_config") is not None:
            node["build_config"] = rec["built_config"]
        if "compiled_sql" in rec:
            node["compiled_sql"] = rec["compiled_sql"]
        for key in ("python", "live_files", "generated_sql", "output_files", "feature_order", "reread",
                    "not_executable", "task", "content_output", "process_outputs", "always", "fed_files",
                    "consumes", "run_params", "gather_text", "instance_of", "fanout_group", "empty_sql",
                    "engine", "spark_sql", "dialect",
                    *CONTROL_RECORD_KEYS):
            if rec.get(key):
                node[key] = rec[key]
        if rec.get("gather") is not None:  # a fan-out's node: the union of its instances (parser/instances.py)
            node["gather"] = rec["gather"]
        if rec.get("fanout"):  # foreach / matrix: an instance's hash leaves the item list out
            from seekrun.parser.fanout import base_hash

            sp = rec["fanout"]
            own = {**fields, "env": sp["env_base"]} if sp.get("env_base") is not None else fields
            node["fanout"] = {**{k: v for k, v in sp.items() if k != "env_base"}, "base": base_hash(own, sp)}
        if nid in data or rec["kind"] == "source":
            files, digest = data.get(nid, ([], None))
            node["data_files"] = files
            node["hashes"]["data"] = digest
        if rec["unknown_keys"]:
            node["unknown_keys"] = rec["unknown_keys"]
        nodes[nid] = node
    metadata = {
        "manifest_version": MANIFEST_VERSION,
        "seekrun_version": __version__,
        "project_name": project.name,
        "database": project.database,
        **({"timeout": project.timeout, "timeout_text": project.timeout_text} if project.timeout else {}),
        **({"handlers": project.handlers} if project.handlers else {}),
        **({"workflow": project.marker} if project.flavour == "workflow" else {}),
        **({"params": dict(project.run_params)} if project.run_params else {}),
        **pool_metadata(project),  # max_active_nodes, pools: run controls, in no node's hash
        **({"keep_runs": project.keep_runs} if project.keep_runs else {}),  # history: {keep_runs: N}
        **({"spark": project.spark} if project.spark else {}),  # how Spark runs (seekrun/parser/engines.py)
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Manifest(metadata, nodes)
