"""The rebuilder: verifying traces decide, per node, whether it must run and why.

A node's trace records the hashes it was built from: its config hash (and per-field
hashes, to name what changed), its source data hash, and the output hash of each
input at the time.  Its own output hash is a function of those, so the whole plan can
be worked out before anything runs, and a rebuilt node with unchanged inputs keeps its
output hash (its dependents stay cached).  Reasons are data, checked cheapest first.

A node flagged ``reread`` (a database source: its data cannot be stat'ed) runs on every run,
and its output hash is the hash of what it read (``content_output_hash``), known only once it
has run.  Its dependents are planned against its last output; those that are cached by that
plan are rechecked when it has run (``PlanItem.recheck``): unchanged data leaves them cached.

A node flagged ``content_output`` (a task) runs only when it must, but its output hash is
likewise the content of what it produced: a rerun that wrote the same bytes leaves its
dependents cached (early cutoff), decided when it has run, by the same recheck.  One flagged
``always`` (a task that declares nothing it reads or writes) runs on every run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from seekrun.hashing import hash_parts
from seekrun.manifest import Manifest
from seekrun.parser.kinds import RUNTIME_FIELDS, field_label, value_change


@dataclass(frozen=True)
class Reason:
    code: str  # new | full | previous_run_failed | config_changed | value_changed | source_data_changed
    #            | upstream_changed | output_missing | output_changed | reread | always
    detail: str = ""

    def __str__(self) -> str:
        return {
            "new": "new",
            "full": "--full",
            "previous_run_failed": "previous run failed",
            "config_changed": f"config changed: {self.detail}",
            "value_changed": self.detail,  # e.g. "today changed (2026-11-30 -> 2026-12-01)"
            "source_data_changed": self.detail or "source data changed",
            "upstream_changed": f"upstream {self.detail} changed",
            "output_missing": "output missing",
            "output_changed": "output does not match its last build (an interrupted run, or changed "
                              "outside seekrun)",
            "reread": f"re-read ({self.detail})",
            "always": f"always ({self.detail})",
        }.get(self.code, self.code)


def output_hash(node: dict, input_outputs: list[str | None]) -> str:
    """The fingerprint of what a node builds: its config, its data and its inputs' outputs."""
    h = node["hashes"]
    return hash_parts(node["kind"], h["config"], h.get("data"), *input_outputs)


def content_output_hash(node: dict, data_hash: str) -> str:
    """The output hash of a ``reread`` node: what it read, whatever its config (the same table
    read through another connection is the same table)."""
    return hash_parts(node["kind"], "content", data_hash)


def decide(node: dict, record: dict | None, input_outputs: dict[str, str | None], *,
           full: bool, output_problem: Callable[[], str | None] = lambda: None) -> Reason | None:
    """Why node must run now, or None if its recorded build is still valid.
    ``output_problem()`` (asked last: it may have to hash files) says whether the outputs
    there now are the recorded ones: None, "missing" or "changed"."""
    if full:
        return Reason("full")
    if record is None:
        return Reason("new")
    if record.get("status") != "success":
        return Reason("previous_run_failed")
    hashes = node["hashes"]
    if record.get("config_hash") != hashes["config"]:
        old_fields = record.get("fields") or {}
        changed = [k for k, v in hashes["fields"].items() if old_fields.get(k) != v]
        changed += [k for k in old_fields if k not in hashes["fields"]]
        if len(changed) > 1 and "generated_sql" in changed:
            changed.remove("generated_sql")  # follows from the config fields named with it
        # {{ today }} etc. (parser/runvars.py) say how they changed; a value newly used or no
        # longer used goes with the SQL change that explains it
        values = [value_change(k, old_fields[k], hashes["fields"][k]) for k in changed
                  if k in RUNTIME_FIELDS and old_fields.get(k) and hashes["fields"].get(k)]
        from seekrun.params import is_param_field, param_changes  # run params: DAY changed (a -> b)

        values += [c for k in changed if is_param_field(k) and k in old_fields and k in hashes["fields"]
                   for c in param_changes(k, old_fields[k], hashes["fields"][k])]
        rest = [k for k in changed if k not in RUNTIME_FIELDS
                and not (is_param_field(k) and k in old_fields and k in hashes["fields"])]
        if values and not rest:
            return Reason("value_changed", "; ".join(values))
        labels = [field_label(node["kind"], k) for k in rest] or ["config"]
        return Reason("config_changed", "; ".join([", ".join(labels), *values]))
    if record.get("data_hash") != hashes.get("data") and not node.get("reread"):
        return Reason("source_data_changed", "a file it reads changed" if node.get("task") else "")
    recorded_inputs = record.get("inputs") or {}
    for input_id, out in input_outputs.items():
        if recorded_inputs.get(input_id) != out:
            return Reason("upstream_changed", input_id)
    problem = output_problem()
    if problem is not None:
        return Reason("output_missing" if problem == "missing" else "output_changed")
    if node.get("reread"):
        return Reason("reread", str(node["reread"]))
    if node.get("always"):  # a task that cannot be proven unchanged (or says so)
        return Reason("always", str(node["always"]))
    return None


@dataclass
class PlanItem:
    node_id: str
    reason: Reason | None  # None: cached
    selected: bool  # passes the filters
    expected_output: str
    blocked_by: str | None = None  # an unbuilt input that is not going to be built
    recheck: bool = False  # cached as planned against a re-read input's last output: decided again when it has run
    after_reread: tuple[str, ...] = ()  # a recheck node: the re-read nodes whose reads decide it
    not_executable: str | None = None  # why seekrun cannot build this node (it is skipped)
    deferred: str | None = None  # --defer: read from another build, standing for this output hash

    @property
    def runs(self) -> bool:
        return (self.reason is not None and self.selected and self.blocked_by is None
                and self.not_executable is None)


def plan(manifest: Manifest, records: dict[str, dict], output_problem: Callable[[str], str | None], *,
         full: bool, selected: set[str], defer: Callable[[str], str | None] | None = None) -> dict[str, PlanItem]:
    """Decide every node in topological order.

    A node that runs will have its expected output hash; one that does not keeps the
    output it has (its recorded hash), so its dependents are judged against the table
    that will really be there.  Filters never make a node look clean: a node left out
    keeps its reason and runs on the next unfiltered run.  With ``defer`` (--defer), a node
    left out that is not up to date here stands for another build's output, whose hash
    ``defer(nid)`` gives (None: that build has none to read), if that output is what this
    node builds here.
    """
    items: dict[str, PlanItem] = {}
    actual: dict[str, str | None] = {}
    # actual[] is a guess until the re-read nodes it was guessed from have run: node -> those nodes
    tentative: dict[str, tuple[str, ...]] = {}
    cannot: set[str] = set()  # not executable, or blocked by one that is: never built (their builds go)
    for nid in manifest.topological_order():
        node = manifest.nodes[nid]
        record = records.get(nid)
        inputs = {p: actual[p] for p in manifest.parents(nid)}
        checked: list = []

        def problem(nid=nid) -> str | None:
            if not checked:
                checked.append(output_problem(nid))
            return checked[0]

        # --full dirties what it selects, nothing else: a node left out keeps its own reason
        reason = decide(node, record, inputs, full=full and nid in selected, output_problem=problem)
        expected = output_hash(node, [actual[p] for p in manifest.parents(nid)])
        item = PlanItem(nid, reason, nid in selected, expected, not_executable=node.get("not_executable"))
        if item.reason is not None and item.selected:
            item.blocked_by = next((p for p in inputs if actual[p] is None), None)
        guessed = tuple(dict.fromkeys(s for p in inputs for s in tentative.get(p, ())))
        if item.runs:
            actual[nid] = expected
            if (node.get("reread") or node.get("content_output")) and record is not None \
                    and record.get("output_hash"):
                # its output hash is what it reads: planned as if it read what it read last time
                # (whatever made it run), and what that guess leaves cached is rechecked
                actual[nid] = record["output_hash"]
                guessed = (*guessed, nid)
        elif item.not_executable is not None or item.blocked_by in cannot:
            actual[nid], guessed = None, ()  # never built: what reads it cannot run either
            cannot.add(nid)
        elif defer is not None and not item.selected and reason is not None and (other := defer(nid)) is not None \
                and (other == expected or node.get("reread")):
            # read from the other build: its table is a build of this node as it is here, from
            # these inputs (its stamp is the output hash this plan expects; a re-read source's
            # is what it read, which no plan can know)
            item.deferred = actual[nid] = other
            guessed = ()
        elif record is not None and record.get("output_hash") and problem() is None:
            actual[nid] = record["output_hash"]
            # selected or not: a node left out by a filter is decided after the re-read too
            # (cached if what was read is unchanged, else left out: still needs to run)
            item.recheck = bool(guessed) and reason is None
            guessed = guessed if item.recheck else ()
            item.after_reread = guessed
        else:
            actual[nid], guessed = None, ()
        if guessed:
            tentative[nid] = guessed
        items[nid] = item
    return items


def trace(node: dict, input_outputs: dict[str, str | None], output: str,
          output_hashes: dict[str, str] | None = None, data_hash: str | None = "") -> dict:
    """The record stored after a successful build: what it was built from (the inputs' output
    hashes as they were when it ran), its own output hash, and the files it wrote with their
    content hashes (to see them changed, and to clean them up on removal).  ``data_hash``
    overrides the node's (None: the data read is not known to be the hashed data)."""
    h = node["hashes"]
    out = {"config_hash": h["config"], "fields": h["fields"],
           "data_hash": h.get("data") if data_hash == "" else data_hash,
           "inputs": input_outputs, "output_hash": output}
    if node.get("output_files"):
        out["output_files"] = node["output_files"]
        out["output_hashes"] = output_hashes or {}
    return out
