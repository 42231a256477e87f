"""Checks across nodes, after every file is read: refs and the graph, and the files nodes write."""
from __future__ import annotations

from seekrun.errors import Diagnostic, suggest
from seekrun.parser.graph import find_cycles
from seekrun.project import DEFAULT_DATABASE, Project, seekrun_owned


def check_graph(records: dict[str, dict], errors: list[Diagnostic], broken: list[str],
                failed: dict[str, str] | None = None) -> None:
    """``broken``: files whose nodes are unknown (they could not be read); ``failed``: the nodes
    (ids, or names) that documents with errors meant to define, with where their error is."""
    known = records.keys()
    folded = {k.lower(): k for k in known}  # DuckDB resolves table names ignoring case
    failed = failed or {}
    from seekrun.errors import first_few

    maybe = f" (unless it is defined in {first_few(broken)}, which has an error that stops it being read)" \
        if broken else ""

    def missing(ref: str) -> str:
        where = failed.get(ref) or failed.get(ref.partition(".")[2])
        if where is not None:  # said plainly: the node is there, its definition has an error
            return f"is defined at {where}, which has an error: fix that first"
        return f"does not exist{maybe or suggest(ref, known)}"

    for rec in records.values():
        seen: set[str] = set()
        nid, rel = rec["id"], rec["file"]
        for ref, line in zip(rec["inputs"], rec["input_lines"]):
            if ref in seen:
                errors.append(Diagnostic(rel, line, f"{nid}: input '{ref}' is listed twice"))
            seen.add(ref)
            if ref not in known:
                errors.append(Diagnostic(rel, line, f"{nid}: ref '{ref}' {missing(ref)}"))
        if not (rec.get("sql_refs") or rec.get("sql_tables")):
            continue
        declared = {r.lower() for r in seen}
        ref_lines = rec.get("sql_ref_lines") or {}

        # what the SQL reads: the lexer's refs (ref(), input_N, kind.name after FROM/JOIN) and
        # every table in DuckDB's parse tree (which tells a table from alias.column)
        for ref in [*rec.get("sql_refs", ()), *rec.get("sql_tables", ())]:
            low = ref.lower()
            if low in declared:
                continue
            declared.add(low)
            real = folded.get(low)
            line = ref_lines.get(ref, rec.get("sql_line"))
            if real is not None:
                errors.append(Diagnostic(rel, line, f"{nid}: SQL uses '{real}' but it is not declared in inputs: "
                                                    f"add '- ref: {real}' to inputs"))
            else:
                errors.append(Diagnostic(rel, line, f"{nid}: SQL refers to '{ref}', which {missing(ref)}"))
    for cycle in find_cycles({nid: [r for r in rec["inputs"] if r in known] for nid, rec in records.items()}):
        first = records[cycle[0]]
        errors.append(Diagnostic(first["file"], first["inputs_line"],
            f"dependency cycle: {' -> '.join(cycle)}: remove one of these refs"))


def check_outputs(project: Project, records: dict[str, dict], data, errors: list[Diagnostic]) -> None:
    """Files written by nodes (exposures) go under target/ or a folder the project file lists in
    exposure_paths, and must not be seekrun's own files, another node's inputs or code, or
    written by two nodes."""
    roots = ["target", *project.exposure_paths]
    readers = {f: nid for nid, (files, _) in data.items() for f in files}
    readers.update({f: nid for nid, rec in records.items() for f in rec.get("live_files") or []})
    database = project.rel(project.database_path)
    owners: dict[str, str] = {}
    for nid in sorted(records):
        rec = records[nid]
        for f in rec.get("output_files") or []:
            why = None
            if rec["kind"] != "feature_group" and _seekrun_owned(f):
                why = "it is one of seekrun's own files in target/"
            elif f.rpartition("/")[2].startswith(".seekrun"):
                why = "names starting with .seekrun are seekrun's own (its list of written files, its temp files)"
            elif f == database or f == database + ".wal":
                why = "it is seekrun's database"
            elif rec.get("task") and _own_pattern(f, rec["task"]["files"]):
                # listed by name among what it reads: refused from its first run (a glob that
                # matches its own output does not count: a task never reads what it writes)
                why = f"{nid} reads it (files: {_own_pattern(f, rec['task']['files'])})"
            elif f in readers:
                why = f"{readers[f]} reads it"
            elif f in owners:
                why = f"{owners[f]} writes it too"
            elif f.endswith((".yml", ".yaml", ".py")) and any(f.startswith(p.rstrip("/") + "/")
                                                              for p in project.node_paths):
                why = "it would be read as a node file"
            if why is None and not rec.get("process_outputs") and not any(f.startswith(r + "/") for r in roots):
                folder = f.split("/")[0] if "/" in f and not f.startswith(".") else None  # never suggest .git
                fix = (f"add 'exposure_paths: [{folder}]' to {project.marker}, or write under target/" if folder
                       else "write it under target/ or a folder listed in exposure_paths")
                errors.append(Diagnostic(rec["file"], (rec.get("output_lines") or {}).get(f, rec["line"]),
                    f"{nid}: cannot write '{f}': files are written only under target/ and the folders listed "
                    f"in exposure_paths in {project.marker}: {fix}"))
                owners.setdefault(f, nid)
                continue
            if why:
                errors.append(Diagnostic(rec["file"], (rec.get("output_lines") or {}).get(f, rec["line"]),
                    f"{nid}: cannot write '{f}': {why}; choose another path"))
            owners.setdefault(f, nid)


def _own_pattern(rel: str, patterns) -> str | None:
    """The entry of a task's ``files`` that names one of its own outputs."""
    import os

    for pattern in patterns:
        if os.path.normpath(str(pattern)).replace(os.sep, "/") == rel:
            return str(pattern)
    return None


def _seekrun_owned(rel: str) -> bool:
    """seekrun's own files, and the default database (with its write-ahead log)."""
    return seekrun_owned(rel) or rel in (DEFAULT_DATABASE, DEFAULT_DATABASE + ".wal")




def check_input_tables(records: dict[str, dict], errors: list[Diagnostic]) -> None:
    """Every input a node reads is a table: a node of a kind without one (an exposure) cannot be
    an input."""
    from seekrun.parser.kinds import TABLELESS_KINDS

    # a task orders what reads it (its output hash enters their traces), with no table to read
    tableless = {nid for nid, rec in records.items() if rec["kind"] in TABLELESS_KINDS and not rec.get("task")}
    if not tableless:
        return
    for nid in sorted(records):
        rec = records[nid]
        if rec.get("task") or rec.get("gather") is not None:
            continue  # a task is ordered after its inputs; only tables are passed to it (kinds/task_run.py);
            # a fan-out's node waits on its instances, and reads their tables only if they have them
        for ref, line in zip(rec["inputs"], rec["input_lines"]):
            other = records.get(ref) if ref in tableless else None
            if other is not None:
                errors.append(Diagnostic(rec["file"], line,
                    f"{nid}: input '{ref}' is {'an' if other['kind'][0] in 'aeiou' else 'a'} {other['kind']}, which writes a file and has no table to read: "
                    "use the node it writes as the input instead"))
