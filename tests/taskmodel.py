"""A model of a project mixing SQL nodes and task nodes, for tests/test_property_tasks.py.

Every table has the columns (id BIGINT, v BIGINT, w VARCHAR), so any node can read any other.
Node shapes (``Node.shape``):

- ``src``: a csv source on data/<name>.csv;
- ``tsrc``: a csv source on a task's output out/<task>.csv (``table:`` only: seekrun wires the edge);
- ``xf``: a SQL transform over one or two tables (filter, map, agg, join, union);
- ``xtag``: a SQL transform that adds a task's captured value (``{{ output('V_x') }}``) to ``v``;
- ``tfiles``: ``sh bin/<name>.sh``, reading its script and a glob data/raw/<name>/*.txt, writes
  out/<name>.csv (header plus the parts' lines, through a filter: sort, awk, sed, head);
- ``tchain``: an awk/sed/head/cp over another task's output file (``files:``: wired by seekrun);
- ``texport``: a Python script (``python:``, or an argv command with ``${inputs.0}``) that turns
  its table input, exported as Parquet, into out/<name>.csv with DuckDB;
- ``tval``: ``output: V_<name>``, the first or last line of data/raw/<name>.txt, or the line
  count of another task's output;
- ``tuse``: a one-row csv built from ``${V_x}`` (``depends_on`` its producer).

The model never asks seekrun anything: a node's definition (``spec``, the YAML fields without
their description and comments, plus a ``python:`` file's text) and the files it reads are
taken from what the model writes, and a task's output content from the files on disk after
the run (compared with a clean build in a fresh folder, so they are known to be right).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

PY = sys.executable
WORDS = ("ab", "cd", "ef", "Zed")
HEADER = "id,v,w"
TYPES = {"types": {"id": "BIGINT", "v": "BIGINT", "w": "VARCHAR"}}
TABLES = ("src", "tsrc", "xf", "xtag")
CSV_TASKS = ("tfiles", "tchain", "texport", "tuse")
FILTERS = ("LC_ALL=C sort -t, -k1,1n -k2,2n -k3,3", "cat", "awk -F, -v OFS=, '{print $1, $2 * 2, $3}'",
           "sed 's/,ab$/,AB/'", "LC_ALL=C sort -u | head -n 3")
CHAINS = ("cp {src} {out}", "awk -F, -v OFS=, 'NR == 1 || $2 % 2 == 0' {src} > {out}",
          "head -n 3 {src} > {out}", "sed 's/,cd$/,CD/' {src} > {out}")
VALUES = ("head -n 1 {src}", "tail -n 1 {src}")   # raw mode
COUNTS = ("wc -l < {src}", "grep -c , {src}")      # count mode: the same number (every line has a comma)
SQL = {
    "filter": "SELECT id, v, w FROM ref('{a}') WHERE v >= {k}",
    "map": "SELECT id, v + {k} AS v, w FROM ref('{a}')",
    "agg": "SELECT CAST(count(*) AS BIGINT) AS id, CAST(coalesce(sum(v), 0) + {k} AS BIGINT) AS v, 'agg' AS w "
           "FROM ref('{a}')",
    "join": "SELECT a.id, a.v + b.v + {k} AS v, a.w FROM ref('{a}') a JOIN ref('{b}') b ON a.id = b.id",
    "union": "SELECT id, v, w FROM ref('{a}') UNION ALL SELECT id, v + {k} AS v, w FROM ref('{b}')",
}
ONE_INPUT, TWO_INPUTS = ("filter", "map", "agg"), ("join", "union")


@dataclass
class Node:
    shape: str
    name: str
    inputs: list[str] = field(default_factory=list)  # every node it reads, the wired producers included
    tmpl: str = ""  # xf: a key of SQL
    k: int = 0
    variant: int = 0  # tfiles: FILTERS; tchain: CHAINS; tval: VALUES or COUNTS
    noop: int = 0  # edits to its script or command that change no output (comments, `true`)
    argv: bool = False  # texport: an argv command with ${inputs.0} instead of python:
    count: bool = False  # tval: counts the lines of an input task's output
    fail: bool = False  # a task: its program exits 3 (after writing its output)
    desc: int = 0  # metadata only
    comments: int = 0

    @property
    def kind(self) -> str:
        return "source" if self.shape in ("src", "tsrc") else "transform" if self.shape in TABLES else "task"

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.name}"

    @property
    def out(self) -> str | None:
        return f"out/{self.name}.csv" if self.shape in CSV_TASKS else None

    @property
    def value(self) -> str | None:
        return f"V_{self.name}" if self.shape == "tval" else None


def script(n: Node) -> tuple[str, str] | None:
    """The file a task's program is in (path, text), if it has one."""
    notes = "".join("# a note\n" if i % 2 == 0 else "true\n" for i in range(n.noop))
    if n.shape == "tfiles":
        return f"bin/{n.name}.sh", (f"# builds out/{n.name}.csv from data/raw/{n.name}/\n{notes}mkdir -p out\n"
                                    f"{{ echo {HEADER}; cat data/raw/{n.name}/*.txt | {FILTERS[n.variant]}; }} "
                                    f"> out/{n.name}.csv\n" + ("exit 3\n" if n.fail else ""))
    if n.shape == "texport":
        notes = "".join(f"# note {i}\n" for i in range(n.noop))
        return f"scripts/{n.name}.py", (
            "import os\nimport sys\n\nimport duckdb\n\n" + notes + f"K = {n.k}\n"
            "src = sys.argv[1] if len(sys.argv) > 1 else os.environ['SEEKRUN_INPUT_0']\n"
            "os.makedirs('out', exist_ok=True)\n"
            f"duckdb.sql(f\"COPY (SELECT id, v + {{K}} AS v, w FROM read_parquet('{{src}}') ORDER BY ALL) \"\n"
            f"           \"TO 'out/{n.name}.csv' (HEADER, DELIMITER ',')\")\n" + ("sys.exit(3)\n" if n.fail else ""))
    return None


class Model:
    def __init__(self):
        self.nodes: dict[str, Node] = {}  # in creation order: a topological order
        self.data: dict[str, str] = {}  # data files (sources' csvs, tasks' raw files)

    def fresh(self) -> str:
        return f"n{len(self.nodes)}"

    def add(self, n: Node) -> str:
        self.nodes[n.id] = n
        return n.id

    def of(self, *shapes) -> list[str]:
        return [nid for nid, n in self.nodes.items() if n.shape in shapes]

    def children(self, nid: str) -> list[str]:
        return [c for c, n in self.nodes.items() if nid in n.inputs]

    def closure(self, ids) -> set[str]:
        out, todo = set(), list(ids)
        while todo:
            nid = todo.pop()
            if nid not in out:
                out.add(nid)
                todo += self.children(nid)
        return out

    # ---- rendering ---------------------------------------------------------------------------
    def spec(self, n: Node) -> dict:
        """The node's YAML fields, without metadata."""
        ins = n.inputs
        if n.shape == "src":
            return {"kind": "source", "name": n.name, "source": "csv", "table": f"data/{n.name}.csv", "params": TYPES}
        if n.shape == "tsrc":
            return {"kind": "source", "name": n.name, "source": "csv", "table": self.nodes[ins[0]].out,
                    "params": TYPES}
        if n.shape == "xf":
            sql = SQL[n.tmpl].format(a=ins[0], b=ins[-1], k=n.k)
            return {"kind": "transform", "name": n.name, "inputs": [{"ref": i} for i in ins], "transform": sql}
        if n.shape == "xtag":
            val = self.nodes[ins[1]].value
            sql = f"SELECT id, v + {{{{ output('{val}') }}}} + {n.k} AS v, w FROM ref('{ins[0]}')"
            return {"kind": "transform", "name": n.name, "inputs": [{"ref": i} for i in ins], "transform": sql}
        task = {"kind": "task", "name": n.name}
        pre = "true; " * n.noop
        spec = self._task(n, task, pre)
        if n.fail and isinstance(spec.get("command"), str) and n.shape != "tfiles":
            spec["command"] += "; exit 3"
        return spec

    def _task(self, n: Node, task: dict, pre: str) -> dict:
        ins = n.inputs
        if n.shape == "tfiles":
            return {**task, "command": f"sh bin/{n.name}.sh", "files": [f"bin/{n.name}.sh", f"data/raw/{n.name}/*.txt"],
                    "outputs": [n.out]}
        if n.shape == "tchain":
            src = self.nodes[ins[0]].out
            return {**task, "command": pre + CHAINS[n.variant].format(src=src, out=n.out), "files": [src],
                    "outputs": [n.out]}
        if n.shape == "texport":
            if n.argv:
                return {**task, "inputs": [{"ref": ins[0]}], "command": [PY, f"scripts/{n.name}.py", "${inputs.0}"],
                        "files": [f"scripts/{n.name}.py"], "outputs": [n.out]}
            return {**task, "inputs": [{"ref": ins[0]}], "python": f"scripts/{n.name}.py", "outputs": [n.out]}
        if n.shape == "tval":
            if n.count:
                src = self.nodes[ins[0]].out
                return {**task, "command": pre + COUNTS[n.variant].format(src=src), "files": [src], "output": n.value}
            src = f"data/raw/{n.name}.txt"
            return {**task, "command": pre + VALUES[n.variant].format(src=src), "files": [src], "output": n.value}
        if n.shape == "tuse":
            val = self.nodes[ins[0]].value
            return {**task, "depends_on": [{"ref": ins[0]}], "outputs": [n.out],
                    "command": pre + f"mkdir -p out; printf '{HEADER}\\n%s,%s,use\\n' {n.k} \"${{{val}}}\" > {n.out}"}
        raise AssertionError(n.shape)

    def yaml(self, n: Node) -> str:
        lines = [f"# comment {i}" for i in range(n.comments)]
        for key, val in self.spec(n).items():
            lines.append(f"{key}: {json.dumps(val)}")
            if key == "name" and n.desc:
                lines.append(f"description: {json.dumps(f'version {n.desc} of the words about it')}")
        return "\n".join(lines) + "\n"

    def files(self) -> dict[str, str]:
        """Every file of the project the model writes (task outputs are the tasks' own)."""
        out = {"seekrun_project.yml": "name: tasks\n", **self.data}
        for n in self.nodes.values():
            out[f"nodes/{n.name}.yml"] = self.yaml(n)
            s = script(n)
            if s:
                out[s[0]] = s[1]
        return out

    # ---- what the rebuilder is allowed to look at --------------------------------------------
    def definition(self, n: Node) -> str:
        s = script(n)
        own = s[1] if s and n.shape == "texport" and not n.argv else ""  # a python: file is code
        return json.dumps(self.spec(n), sort_keys=True) + own

    def read_files(self, n: Node) -> list[str]:
        """The files a node reads that no task writes (their content is its data)."""
        if n.shape == "src":
            return [f"data/{n.name}.csv"]
        if n.shape == "tfiles":
            return [f"bin/{n.name}.sh", *sorted(p for p in self.data if p.startswith(f"data/raw/{n.name}/"))]
        if n.shape == "texport" and n.argv:
            return [f"scripts/{n.name}.py"]
        if n.shape == "tval" and not n.count:
            return [f"data/raw/{n.name}.txt"]
        return []

    def captured(self, n: Node, read) -> str | None:
        """A tval's value, from the files it read (``read(rel) -> text``) after the run."""
        if n.shape != "tval":
            return None
        if n.count:
            return str(read(self.nodes[n.inputs[0]].out).count("\n"))
        lines = read(f"data/raw/{n.name}.txt").splitlines()
        return (lines[0] if n.variant == 0 else lines[-1]).strip()
