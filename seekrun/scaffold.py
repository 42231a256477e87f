"""`seekrun init [DIR]`: a small working project to start from.

A marker, a source with a tiny CSV, a transform, a rule, a `.gitignore` for target/, a README
stub, and the node JSON Schema (`.seekrun/node.schema.json`) that the node files name in
their first line, so an editor with a YAML language server knows their keys. Nothing is
ever overwritten: if any of the files exists, nothing is written and the error lists them.
"""
from __future__ import annotations

import re
from pathlib import Path

FORMATS = ("seekrun", "seeknal")
SCHEMA_REL = ".seekrun/node.schema.json"

_CSV = """customer_id,name,country,signed_up,active
1,Ada,NL,2026-01-05,true
2,Grace,US,2026-02-11,true
3,Edsger,NL,2026-03-02,false
4,Barbara,US,2026-03-20,true
5,Donald,DE,2026-04-01,true
"""
_SOURCE = """kind: source
name: customers
description: Customers, one row each (data/customers.csv).
owner: data-team
tags: [daily]
source: csv
table: data/customers.csv
columns:
  customer_id: The customer's id
  name: Their name
  country: ISO country code
  signed_up: The day they signed up
  active: Whether they are active
"""
_TRANSFORM = """kind: transform
name: active_customers
description: Active customers and how many days they have been with us.
owner: data-team
tags: [daily]
inputs:
  - ref: source.customers
transform: |
  SELECT customer_id, name, country, signed_up,
         date_diff('day', signed_up, DATE '2026-12-01') AS tenure_days
  FROM ref('source.customers')
  WHERE active
"""
_RULE = """kind: rule
name: customers_are_valid
description: Every customer has an id, the ids are unique, and countries are known.
owner: data-team
tags: [daily, quality]
inputs:
  - ref: source.customers
rule:
  - type: "null"
    columns: [customer_id, country]
  - type: uniqueness
    columns: [customer_id]
params:
  severity: error
"""
_README = """# {name}

A seekrun project. Build it with

```bash
seekrun run        # builds what changed since the last run
seekrun ls         # the nodes, and whether each would run now
seekrun docs --serve 8080   # a browsable site of the nodes and their lineage
```

Nodes live under `{nodes}/`: one YAML document per node. `{schema}` is their JSON Schema
(`seekrun schema --out {schema}` refreshes it after an upgrade); the first line of each node
file points a YAML language server (e.g. VS Code's YAML extension) at it.
"""


def project_name(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", folder.name).strip("_") or "my_project"
    return name if not name[0].isdigit() else f"p_{name}"


def planned_files(folder: Path, fmt: str) -> dict[str, str]:
    """Relative path -> text of every file `init` writes."""
    from seekrun import schema

    name = project_name(folder)
    nodes = "nodes" if fmt == "seekrun" else "seeknal"
    marker = "seekrun_project.yml" if fmt == "seekrun" else "seeknal_project.yml"
    project = f"name: {name}\n" + ("node_paths: [nodes]\n" if fmt == "seekrun" else "version: '1.0'\n")
    modeline = f"# yaml-language-server: $schema=../../{SCHEMA_REL}\n"
    return {
        marker: project,
        "data/customers.csv": _CSV,
        f"{nodes}/sources/customers.yml": modeline + _SOURCE,
        f"{nodes}/transforms/active_customers.yml": modeline + _TRANSFORM,
        f"{nodes}/rules/customers_are_valid.yml": modeline + _RULE,
        ".gitignore": "target/\n",
        "README.md": _README.format(name=name, nodes=nodes, schema=SCHEMA_REL),
        SCHEMA_REL: schema.text(),
    }


def init(folder: Path, fmt: str) -> list[str]:
    """Write the project (refusing, with every clash named, if any file is there); the paths written."""
    from seekrun.errors import Diagnostic, UsageError
    from seekrun.fsutil import atomic_write_bytes

    if fmt not in FORMATS:
        raise UsageError([Diagnostic("", None, f"--format is {' or '.join(FORMATS)} (got '{fmt}')")])
    if folder.exists() and not folder.is_dir():
        raise UsageError([Diagnostic(str(folder), None, "exists and is not a folder: give a new or empty folder")])
    files = planned_files(folder.resolve() if folder.exists() else folder.absolute(), fmt)
    markers = ("seekrun_project.yml", "seeknal_project.yml")
    clashes = [rel for rel in [*files, *(m for m in markers if m not in files)]
               if (folder / rel).exists() or (folder / rel).is_symlink()]
    if clashes:
        raise UsageError([Diagnostic(str(folder / rel), None,
                                     ("a project is already here" if rel in markers else "exists")
                                     + ": seekrun init never overwrites a file (choose another folder, or move it)")
                          for rel in clashes])
    for rel, body in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, body.encode("utf-8"))
    return list(files)
