#!/usr/bin/env python3
"""Measure the peers (dbt-core + dbt-duckdb, Seeknal) against the floor on the same graphspec graph.

The same graph, operations and measurement as benchmarks/run.py (whose Bench class,
measure() and header() this reuses): every operation runs as a whole process,
alternating with the floor (../shared/bench/floor_duckdb.py) in this invocation, and
the table gives medians with each wall time as a ratio to this run's floor median.

Each peer lives in its own virtualenv outside the repo; the default places are
../peers/dbt-venv and ../peers/seeknal-venv beside the repo (override with --dbt /
--seeknal, or SEEKRUN_DBT / SEEKRUN_SEEKNAL, each an executable or a venv folder).
Run this with the interpreter that runs benchmarks/run.py: the floor uses its duckdb.

usage: python benchmarks/peers/run_peers.py --nodes 1000 [--rounds 1] [--peers dbt,seeknal]
peers: dbt       dbt-core + dbt-duckdb, each CSV a read_csv_auto model (the floor's statement)
       dbt-seed  the same, each CSV a dbt seed (dbt's own loader; lets state:modified see data)
       seeknal   Seeknal 2.x
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(HERE))
from run import Bench, header, measure, run_one  # noqa: E402
import render_dbt  # noqa: E402
import render_seeknal  # noqa: E402

PEERS_HOME = Path(os.environ.get("SEEKRUN_PEERS", BENCH.parent.parent / "peers"))
INSTALL = {
    "dbt": ("dbt", "SEEKRUN_DBT", PEERS_HOME / "dbt-venv",
            'python3 -m venv {venv} && {venv}/bin/pip install "dbt-core~=1.11.0" dbt-duckdb'),
    "seeknal": ("seeknal", "SEEKRUN_SEEKNAL", PEERS_HOME / "seeknal-venv",
                "python3 -m venv {venv} && {venv}/bin/pip install seeknal"),
}


def find_exe(tool: str, given: str | None) -> tuple[Path | None, str]:
    """The peer's executable (from --opt, env var or the default venv) and how to install it."""
    name, env, venv, pip = INSTALL[tool]
    p = Path(given or os.environ.get(env) or venv)
    if p.is_dir():
        p = p / "bin" / name
    hint = (f"{tool}: {p} not found. Install it outside the repo with\n    {pip.format(venv=venv)}\n"
            f"  or point --{tool} / {env} at an existing {name} executable or virtualenv.")
    return (p if p.is_file() and os.access(p, os.X_OK) else None), hint


def versions(exe: Path, dists: list[str]) -> str:
    """Installed versions of dists in the peer's own venv (the python beside its executable)."""
    code = ("import importlib.metadata as m, sys\n"
            "print(', '.join(f'{d} {m.version(d)}' for d in sys.argv[1:]))")
    try:
        out = subprocess.run([str(exe.parent / "python"), "-c", code, *dists],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "versions unknown"


class PeerBench(Bench):
    """Bench with the project rendered for a peer; subclasses say how to run and count."""

    name = "peer"    # the project folder's name, under the work folder
    title = ""       # the table's heading
    transforms = ""  # folder of the transform files, relative to the project

    def __init__(self, n: int, rounds: int, rows: int, workdir: Path, exe: Path):
        super().__init__(n, rounds, rows, workdir)  # makes the graph (and a seekrun project)
        shutil.rmtree(self.proj, ignore_errors=True)
        self.proj = workdir / self.name
        self.exe = exe
        self.render()
        self.commands: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.failed: list[str] = []

    def render(self) -> None:
        raise NotImplementedError

    def cli(self, *args: str) -> list[str]:
        return [str(self.exe), *args]

    def snapshot(self) -> None:
        """Called right before each measured process (after the operation's own set-up)."""

    def op(self, label, cmd, before=None, after=None, expected=None):
        def prepare():
            if before:
                before()
            self.snapshot()
        self.commands.append((label, " ".join([self.exe.name, *cmd[1:]])))
        self.label = label
        try:
            super().op(label, cmd, before=prepare, after=after, expected=expected)
        except SystemExit as e:  # measure() exits on a non-zero exit code: keep going
            self.failed.append(label)
            self.notes.append(f"{label}: {str(e).strip().splitlines()[0]}")
            print(f"  {label:<36} FAILED", flush=True)
            self.render()  # undo any edit the failed operation left behind
            self.rebuild()

    def rebuild(self) -> None:
        """Bring the project back to a complete, current build (outside the timing)."""

    def edit_transform(self, name: str, on: bool) -> None:
        path = self.proj / self.transforms / self.transform_file(name)
        text = path.read_text()
        path.write_text(text.replace("% 1000", "% 997") if on else text.replace("% 997", "% 1000"))

    def transform_file(self, name: str) -> str:
        raise NotImplementedError

    def picks(self) -> tuple[str, str]:
        small, large = self.pick_transforms()
        print(f"{self.title} N={self.n}: small edit {small} ({len(self.downstream(small))} downstream), "
              f"large edit {large} ({len(self.downstream(large))} downstream)", flush=True)
        return small, large

    def markdown(self) -> str:
        lines = super().markdown().rstrip("\n").replace("### N = ", f"### {self.title}: N = ", 1).split("\n")
        lines[-1:-1] = [f"| {label} | failed | | | | |" for label in self.failed]  # above the RSS row
        md = "\n".join(lines) + "\n\nCommands (in the project folder):\n"
        md += "".join(f"- {label}: `{cmd}`\n" for label, cmd in self.commands)
        if self.notes:
            md += "\nNotes:\n" + "".join(f"- {n}\n" for n in self.notes)
        return md


class DbtBench(PeerBench):
    """dbt has no change detection of its own: the incremental operations use its
    state comparison, `--select state:modified+ --state state/`, with state/ holding the
    manifest of the previous build (refreshed after every build, outside the timing)."""

    name, transforms = "dbt", "models"
    csv_as = "model"

    def render(self) -> None:
        render_dbt.render(self.graph, self.proj, self.csv_as)
        vers = versions(self.exe, ["dbt-core", "dbt-duckdb", "duckdb"])
        self.title = f"dbt ({vers}; CSVs as {self.csv_as}s)"
        # a model per CSV runs with `dbt run`; seeds need `dbt build` (= seed + run; no tests here)
        self.verb = "run" if self.csv_as == "model" else "build"

    def transform_file(self, name: str) -> str:
        return f"{name}.sql"

    def incremental(self) -> list[str]:
        return self.cli(self.verb, "--select", "state:modified+", "--state", "state")

    def save_state(self) -> None:
        (self.proj / "state").mkdir(exist_ok=True)
        shutil.copyfile(self.proj / "target" / "manifest.json", self.proj / "state" / "manifest.json")

    def settle(self) -> None:
        measure(self.incremental(), cwd=self.proj)
        self.save_state()

    def clean(self) -> None:
        shutil.rmtree(self.proj / "target", ignore_errors=True)
        for f in ("bench.duckdb", "bench.duckdb.wal"):
            (self.proj / f).unlink(missing_ok=True)

    def snapshot(self) -> None:
        (self.proj / "target" / "run_results.json").unlink(missing_ok=True)

    def ran(self):
        path = self.proj / "target" / "run_results.json"
        if not path.exists():
            return "n/a"
        res = json.loads(path.read_text())["results"]
        errors = sum(1 for r in res if r["status"] == "error")
        if errors:
            self.notes.append(f"{self.label}: {errors} node(s) failed")
        return sum(1 for r in res if r["status"] in ("success", "error"))

    def rebuild(self) -> None:
        self.clean()
        measure(self.cli(self.verb), cwd=self.proj)
        self.save_state()

    def run_all(self) -> None:
        small, large = self.picks()
        target = self.proj / "target"
        self.op("CLI start (--version)", self.cli("--version"))
        self.op("parse, cold", self.cli("parse"), before=lambda: shutil.rmtree(target, ignore_errors=True))
        self.op("parse, warm", self.cli("parse"))
        self.op("full build, --threads 1", self.cli(self.verb, "--threads", "1"), before=self.clean,
                after=self.save_state, expected=self.n)
        self.op("full build, default threads", self.cli(self.verb), before=self.clean,
                after=self.save_state, expected=self.n)
        self.op(f"no-op, plain `dbt {self.verb}`", self.cli(self.verb), after=self.save_state, expected=0)
        self.op("no-op run", self.incremental(), after=self.save_state, expected=0)
        for label, name in (("edit, small downstream", small), ("edit, large downstream", large)):
            self.op(label, self.incremental(), before=lambda nm=name: self.edit_transform(nm, True),
                    after=lambda nm=name: (self.save_state(), self.edit_transform(nm, False), self.settle()),
                    expected=len(self.downstream(name)))
        csv = self.proj / "data" / "src_00000.csv"
        self.op("touch one source CSV", self.incremental(), before=lambda: os.utime(csv),
                after=self.save_state, expected=0)
        self.op("change one source CSV", self.incremental(), before=lambda: self.edit_csv(True),
                after=lambda: (self.save_state(), self.edit_csv(False), self.settle()),
                expected=len(self.downstream("src_00000")))
        threads = (self.proj / "profiles.yml").read_text().split("threads:")[1].split()[0]
        self.notes.insert(0, f"default threads = profiles.yml `threads: {threads}`")
        self.notes.insert(1, "`dbt --version` also asks PyPI for the latest dbt-core (1 s timeout)")
        if self.csv_as == "model":
            self.notes.append("CSVs are read by read_csv_auto models, so dbt cannot see a changed CSV: "
                              "state:modified+ compares the project files only")
        self.parse_noop_rss()

    def parse_noop_rss(self) -> None:
        parse = measure(self.cli("parse"), cwd=self.proj)
        noop = measure(self.incremental(), cwd=self.proj)
        self.peak = max(parse["rss"], noop["rss"])


class DbtSeedBench(DbtBench):
    name = "dbt-seed"
    csv_as = "seed"


class SeeknalBench(PeerBench):
    """Seeknal decides for itself what to rerun (`seeknal run`); the nodes that ran are those
    whose last_run in target/run_state.json changed during the measured process."""

    name, transforms = "seeknal", "seeknal/transforms"

    def render(self) -> None:
        render_seeknal.render(self.graph, self.proj)
        self.title = f"Seeknal ({versions(self.exe, ['seeknal', 'duckdb'])})"

    def transform_file(self, name: str) -> str:
        return f"{name}.yml"

    def state(self) -> dict | None:
        path = self.proj / "target" / "run_state.json"
        try:
            return json.loads(path.read_text())["nodes"]
        except (OSError, ValueError, KeyError):
            return None

    def snapshot(self) -> None:
        self.before_state = self.state() or {}

    def ran(self):
        after = self.state()
        if after is None:
            return "n/a"
        last = {k: v.get("last_run") for k, v in self.before_state.items()}
        changed = [k for k, v in after.items() if last.get(k) != v.get("last_run")]
        failed = sum(1 for k in changed if after[k].get("status") != "success")
        if failed:
            self.notes.append(f"{self.label}: {failed} node(s) failed, yet seeknal exited 0")
        return len(changed)

    def settle(self) -> None:
        measure(self.cli("run"), cwd=self.proj)

    def rebuild(self) -> None:
        shutil.rmtree(self.proj / "target", ignore_errors=True)
        measure(self.cli("run", "--full"), cwd=self.proj)

    def run_all(self) -> None:
        small, large = self.picks()
        target = self.proj / "target"
        clean = lambda: shutil.rmtree(target, ignore_errors=True)  # noqa: E731
        self.op("CLI start (--version)", self.cli("--version"))
        self.op("parse, cold", self.cli("parse"), before=clean)
        self.op("parse, warm", self.cli("parse"))
        # Seeknal runs nodes one at a time unless told --parallel: its default is --threads 1
        self.op("full build, --threads 1", self.cli("run", "--full"), before=clean, expected=self.n)
        self.op("full build, --parallel", self.cli("run", "--full", "--parallel"), before=clean,
                after=self.rebuild, expected=self.n)
        self.op("no-op run", self.cli("run"), expected=0)
        for label, name in (("edit, small downstream", small), ("edit, large downstream", large)):
            self.op(label, self.cli("run"), before=lambda nm=name: self.edit_transform(nm, True),
                    after=lambda nm=name: (self.edit_transform(nm, False), self.settle()),
                    expected=len(self.downstream(name)))
        csv = self.proj / "data" / "src_00000.csv"
        self.op("touch one source CSV", self.cli("run"), before=lambda: os.utime(csv), expected=0)
        self.op("change one source CSV", self.cli("run"), before=lambda: self.edit_csv(True),
                after=lambda: (self.edit_csv(False), self.settle()),
                expected=len(self.downstream("src_00000")))
        self.notes.insert(0, "Seeknal's default is sequential (= --threads 1); "
                             "`--parallel` uses its default of 4 workers")
        self.notes.insert(1, "Seeknal also reruns the sources up to two hops upstream of each transform "
                             "it reruns, so its counts can exceed the downstream closure")
        self.parse_noop_rss()

    def parse_noop_rss(self) -> None:
        parse = measure(self.cli("parse"), cwd=self.proj)
        noop = measure(self.cli("run"), cwd=self.proj)
        self.peak = max(parse["rss"], noop["rss"])


PEERS = {"dbt": ("dbt", DbtBench), "dbt-seed": ("dbt", DbtSeedBench), "seeknal": ("seeknal", SeeknalBench)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[1000])
    ap.add_argument("--rounds", type=int, default=1, help="default 1: the peers are slow")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--peers", help="comma-separated, from: " + ", ".join(PEERS)
                    + " (default: dbt and seeknal, whichever are installed)")
    ap.add_argument("--dbt", help="dbt executable or its virtualenv (env SEEKRUN_DBT)")
    ap.add_argument("--seeknal", help="seeknal executable or its virtualenv (env SEEKRUN_SEEKNAL)")
    ap.add_argument("--markdown", type=Path, help="append the results as markdown to this file")
    ap.add_argument("--workdir", type=Path, help="where to make the scratch folders (default: the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work folders")
    a = ap.parse_args()

    wanted = a.peers.split(",") if a.peers else ["dbt", "seeknal"]
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    exes, missing = {}, []
    for tool in sorted({PEERS[p][0] for p in wanted}):
        exe, hint = find_exe(tool, getattr(a, tool))
        if exe:
            exes[tool] = exe
        else:
            missing.append(hint)
    for hint in missing:
        print(hint, file=sys.stderr)
    runnable = [p for p in wanted if PEERS[p][0] in exes]
    if not runnable or (a.peers and missing):
        sys.exit(1)

    text = header().replace("benchmarks/run.py", "benchmarks/peers/run_peers.py") + "\n"
    print(text, flush=True)
    for n in a.nodes:
        for peer in runnable:
            tool, cls = PEERS[peer]
            text += run_one(lambda work: cls(n, a.rounds, a.rows, work, exes[tool]),
                            f"seekrun-peer-{peer}-{n}-", a.keep, a.workdir)
    if a.markdown:
        with open(a.markdown, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
