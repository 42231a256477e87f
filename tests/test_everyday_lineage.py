"""`seekrun lineage`: the subgraph a selector picks, N levels up and down, as JSON, as dot that
graphviz draws, and as Mermaid that Mermaid itself (the library GitHub renders with) draws in a
real headless Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import cli

def _graph(sample, *args) -> dict:
    res = cli("lineage", "-p", str(sample), "--format", "json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_lineage_json_is_the_whole_project_by_default(sample):
    manifest_edges = None
    graph = _graph(sample)
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == 25 and len(set(ids)) == 25
    assert all(n["selected"] and n["status"] is None for n in graph["nodes"])
    assert cli("run", "-p", str(sample)).exit_code == 0
    graph = _graph(sample)
    manifest_edges = {(e["from"], e["to"]) for e in json.loads((sample / "target/manifest.json").read_text())["edges"]}
    assert {(e["from"], e["to"]) for e in graph["edges"]} == manifest_edges
    assert {n["status"] for n in graph["nodes"]} == {"success"}
    # build order: every edge goes forward
    pos = {n["id"]: i for i, n in enumerate(graph["nodes"])}
    assert all(pos[e["from"]] < pos[e["to"]] for e in graph["edges"])
    node = next(n for n in graph["nodes"] if n["id"] == "transform.clean_orders")
    assert node == {"id": "transform.clean_orders", "kind": "transform", "name": "clean_orders",
                    "file": "nodes/transforms/orders.yml", "line": 2, "status": "success", "selected": True}


def test_upstream_and_downstream_take_that_many_levels(sample):
    only = _graph(sample, "-s", "transform.clean_orders")
    assert [n["id"] for n in only["nodes"]] == ["transform.clean_orders"] and only["edges"] == []
    up1 = _graph(sample, "-s", "transform.customer_360", "--upstream", "1")
    assert {n["id"] for n in up1["nodes"]} == {"transform.customer_360", "transform.customer_orders",
                                               "transform.customer_activity", "source.products",
                                               "transform.clean_orders"}
    assert [n["id"] for n in up1["nodes"] if not n["selected"]] != []
    assert {n["id"] for n in up1["nodes"] if n["selected"]} == {"transform.customer_360"}
    up2 = {n["id"] for n in _graph(sample, "-s", "transform.customer_360", "--upstream", "2")["nodes"]}
    assert up2 > {n["id"] for n in up1["nodes"]} and "source.orders" in up2 and "source.customers" in up2
    down = _graph(sample, "-s", "source.orders", "--downstream", "1")
    assert {n["id"] for n in down["nodes"]} == {"source.orders", "transform.clean_orders", "rule.orders_quality"}
    assert {(e["from"], e["to"]) for e in down["edges"]} == {("source.orders", "transform.clean_orders"),
                                                          ("source.orders", "rule.orders_quality")}
    # the same as the selector's own graph operators
    plus = {n["id"] for n in _graph(sample, "-s", "2+transform.customer_360")["nodes"]}
    assert plus == up2


def test_lineage_bad_options_are_usage_errors(sample):
    res = cli("lineage", "-p", str(sample), "--format", "png")
    assert res.exit_code == 2 and "--format is mermaid, dot, json (got 'png')" in res.stderr
    res = cli("lineage", "-p", str(sample), "--upstream", "-1")
    assert res.exit_code == 2 and "0 or more" in res.stderr
    res = cli("lineage", "-p", str(sample), "-s", "transform.nosuch")
    assert res.exit_code == 2 and "transform.nosuch" in res.stderr


@pytest.fixture(scope="module")
def dot():
    found = shutil.which("dot")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):  # as .ci/run does
        subprocess.run(["apt-get", "install", "-y", "-qq", "graphviz"], capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("dot")
    if found is None:
        pytest.skip("graphviz's dot is not installed and cannot be (apt-get install graphviz)")
    return found


def test_dot_output_passes_graphviz(sample, dot, tmp_path):
    assert cli("run", "-p", str(sample)).exit_code == 0
    text = cli("lineage", "-p", str(sample), "--format", "dot").stdout
    proc = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    svg = proc.stdout
    assert svg.count('class="node"') == 25 and svg.count('class="edge"') == len(_graph(sample)["edges"])
    assert "transform.clean_orders" in svg
    assert 'stroke="#2e7d32"' in svg  # outlined by the last run's status (success)
    (tmp_path / "lineage.svg").write_text(svg)


@pytest.fixture(scope="module")
def mermaid_js(tmp_path_factory):
    """Mermaid (the library GitHub renders ```mermaid blocks with), from the npm registry."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch Mermaid to render the output")
    where = tmp_path_factory.mktemp("mermaid")
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(where),
                           "mermaid@11"], capture_output=True, text=True, timeout=600)
    js = where / "node_modules/mermaid/dist/mermaid.min.js"
    if proc.returncode != 0 or not js.is_file():
        pytest.skip(f"cannot install mermaid from the npm registry: {proc.stderr.strip()[-300:]}")
    return js


def _render(browser, mermaid_js: Path, text: str, shot: Path) -> dict:
    page = browser.new_page()
    try:
        page.set_content("<html><body><div id='out'></div></body></html>")
        page.add_script_tag(path=str(mermaid_js))
        counts = page.evaluate("""async (text) => {
            mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});
            const {svg} = await mermaid.render('lineage', text);
            document.getElementById('out').innerHTML = svg;
            const out = document.getElementById('out');
            return {nodes: out.querySelectorAll('g.node').length,
                    edges: out.querySelectorAll('.edgePaths path').length,
                    labels: Array.from(out.querySelectorAll('g.node')).map(n => n.textContent.trim())};
        }""", text)
        page.screenshot(path=str(shot), full_page=True)
        return counts
    finally:
        page.close()


def test_mermaid_output_renders_in_mermaid(sample, mermaid_js, browser, tmp_path):
    assert cli("run", "-p", str(sample)).exit_code == 0
    text = cli("lineage", "-p", str(sample)).stdout
    assert text.startswith("flowchart LR\n")
    graph = _graph(sample)
    counts = _render(browser, mermaid_js, text, tmp_path / "lineage.png")
    assert counts["nodes"] == 25 and counts["edges"] == len(graph["edges"])
    assert sorted(counts["labels"]) == sorted(n["id"] for n in graph["nodes"])
    assert (tmp_path / "lineage.png").stat().st_size > 10_000
    # a subgraph too, with a node whose name Mermaid would read as a keyword
    (sample / "nodes/transforms/end.yml").write_text(
        "kind: transform\nname: end\ninputs:\n  - ref: transform.clean_orders\n"
        "transform: SELECT * FROM ref('transform.clean_orders')\n")
    text = cli("lineage", "-p", str(sample), "-s", "transform.end", "--upstream", "1").stdout
    assert re.search(r'n\d+\["transform.end"\]', text)
    counts = _render(browser, mermaid_js, text, tmp_path / "sub.png")
    assert sorted(counts["labels"]) == ["transform.clean_orders", "transform.end"] and counts["edges"] == 1
