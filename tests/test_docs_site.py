"""`seekrun docs`: the static site, opened from file:// in a real headless Chromium (Debian's,
driven by Playwright), as a user would click through it; --serve; a 10,000-node project; bad input."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, cli, target_snapshot, write_project


def _docs(project: Path, *args: str) -> Path:
    res = cli("docs", "-p", str(project), "--json", *args)
    assert res.exit_code == 0, res.output
    return Path(json.loads(res.stdout)["out"])


def _manifest(project: Path) -> dict:
    return json.loads((project / "target/manifest.json").read_text())["nodes"]


def _ran_last(project: Path) -> set[str]:
    """Nodes that ran (were built or failed) in the last run: not cached, not skipped."""
    results = json.loads((project / "target/run_results.json").read_text())["results"]
    return {r["node_id"] for r in results if r["status"] not in ("cached", "skipped")}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_the_site_in_a_browser(sample, browser, tmp_path):
    assert cli("run", "-p", str(sample)).exit_code == 0
    # a second run that builds only part of the project: its timeline is the one shown
    with open(sample / "data/products.csv", "a") as f:
        f.write("9,Cup Warmer,equipment,19.00\n")
    assert cli("run", "-p", str(sample)).exit_code == 0
    ran = _ran_last(sample)
    assert 1 < len(ran) < 25
    out = _docs(sample)
    nodes = _manifest(sample)
    requested: list[str] = []
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("request", lambda r: requested.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto((out / "index.html").as_uri())
        # 3. the lineage graph has one element per node, coloured by kind, outlined by status
        graph = page.locator("#graph g.node[data-node-id]")
        assert graph.count() == len(nodes) == 25
        assert sorted(graph.evaluate_all("gs => gs.map(g => g.dataset.nodeId)")) == sorted(nodes)
        fills = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('#graph g.node'))
            .map(g => [g.dataset.nodeId, g.querySelector('rect').getAttribute('fill')]))""")
        by_kind: dict[str, set[str]] = {}
        for nid, fill in fills.items():
            by_kind.setdefault(nodes[nid]["kind"], set()).add(fill)
        assert all(len(f) == 1 for f in by_kind.values()), by_kind  # one colour per kind
        assert len({f for fs in by_kind.values() for f in fs}) == len(by_kind)  # and a different one each
        assert page.locator("#legend .key").count() == len(by_kind)
        # zoom: the buttons change what the graph shows
        before = page.get_attribute("#graph", "viewBox")
        page.click("#zoom-in")
        assert float(page.get_attribute("#graph", "viewBox").split()[2]) < float(before.split()[2])
        page.click("#zoom-fit")
        assert page.get_attribute("#graph", "viewBox") == before
        # 5. search finds a node by a word of its description, and marks it in the graph
        page.fill("#search", "favourite")
        found = page.locator("#search-results a[data-node-id]").evaluate_all("as => as.map(a => a.dataset.nodeId)")
        assert "transform.customer_360" in found and "source.customers" not in found
        assert page.locator('#graph g.node.match[data-node-id="transform.customer_360"]').count() == 1
        page.fill("#search", "")
        # 4. clicking a node opens its page, which shows its SQL as it runs
        page.click('#graph g.node[data-node-id="transform.customer_360"]')
        page.wait_for_url(re.compile(r"/nodes/transform\.customer_360\.html$"))
        assert page.get_attribute("h1.node-title", "data-node-id") == "transform.customer_360"
        sql = page.inner_text("pre.sql")
        assert "favourite_category" in sql and "category_spend" in sql
        assert "Full name (PII)." in page.inner_text("table.columns")
        assert "DOUBLE" in page.inner_text("table.columns")  # types from the database
        assert "growth-team" in page.inner_text("table.facts")
        page.click("table.facts a:text('transform.customer_orders')")  # inputs are links
        page.wait_for_url(re.compile(r"/nodes/transform\.customer_orders\.html$"))
        # 6. the timeline has one bar per node that ran in the latest run
        page.goto((out / "runs.html").as_uri())
        bars = page.locator("#timeline rect.bar")
        assert bars.count() == len(ran)
        assert set(bars.evaluate_all("bs => bs.map(b => b.dataset.nodeId)")) == ran
        assert page.locator("#timeline rect.bar.critical").count() >= 1
        assert page.locator("table.runs tr").count() == 3  # header + the two runs
        # 7. a screenshot of the lineage page
        page.goto((out / "index.html").as_uri())
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        assert (tmp_path / "docs.png").stat().st_size > 10_000
    finally:
        page.close()
    assert errors == []
    # nothing was loaded from anywhere but the site's own files
    assert requested and all(u.startswith(out.as_uri() + "/") for u in requested), \
        [u for u in requested if not u.startswith(out.as_uri())]


def test_the_site_links_nothing_outside_itself(sample):
    assert cli("run", "-p", str(sample)).exit_code == 0
    out = _docs(sample)
    pages = list(out.rglob("*.html"))
    assert len(pages) == 25 + 2
    for page in pages:
        links = _Links()
        links.feed(page.read_text())
        for url in links.urls:
            assert not re.match(r"^([a-z]+:)?//", url), (page, url)
            if not url.startswith("#"):  # every relative link leads to a file of the site
                assert (page.parent / url.split("#")[0]).resolve().is_file(), (page, url)


def test_a_secret_never_reaches_the_site(tmp_path, monkeypatch):
    secret = "s3cr3t-Docs-Value-42"
    monkeypatch.setenv("SEEKRUN_DOCS_SECRET", secret)
    proj = write_project(tmp_path / "p", {"nodes/a.yml": """\
        kind: transform
        name: a
        description: "a secret comparison"
        transform: SELECT 1 AS n WHERE 'x' <> '{{ env_var('SEEKRUN_DOCS_SECRET') }}'
        """})
    assert cli("run", "-p", str(proj)).exit_code == 0
    out = _docs(proj)
    text = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "SELECT 1 AS n" in text and secret not in text


def test_docs_serve_serves_on_localhost_and_stops_on_sigterm(sample):
    assert cli("run", "-p", str(sample)).exit_code == 0
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "docs", "-p", str(sample), "--serve", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[1])
        assert lines[0].startswith("Wrote 27 pages") and match, lines
        base = match.group(0)
        with urllib.request.urlopen(base + "index.html", timeout=10) as resp:
            assert resp.status == 200 and b'<svg id="graph"' in resp.read()
        with urllib.request.urlopen(base + "nodes/transform.customer_360.html", timeout=10) as resp:
            assert b"favourite_category" in resp.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "Stopped." in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "index.html", timeout=2)


def test_docs_serve_rejects_a_bad_port(sample):
    res = cli("docs", "-p", str(sample), "--serve", "70000")
    assert res.exit_code == 2 and res.stderr.splitlines()[0] == "--serve takes a port number, 0 to 65535"


def test_bad_input_leaves_the_last_site_as_it_was(sample):
    assert cli("run", "-p", str(sample)).exit_code == 0
    _docs(sample)
    before = target_snapshot(sample)
    (sample / "nodes/transforms/broken.yml").write_text("kind: transform\nname: broken\ninputs:\n  - ref: transform.nope\n"
                                                       "transform: SELECT 1\n")
    (sample / "nodes/transforms/broken2.yml").write_text("kind: transform\nname: [oops\n")
    res = cli("docs", "-p", str(sample))
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert any(line.startswith("nodes/transforms/broken.yml:") and "transform.nope" in line for line in err), err
    assert any(line.startswith("nodes/transforms/broken2.yml:") for line in err), err  # all errors, together
    assert "Traceback" not in res.output
    assert target_snapshot(sample) == before
    assert not list(sample.glob("target/.docs.seekrun-*"))


def _big_project(root: Path, n: int) -> Path:
    """n nodes in 20 folders: 50 CSV sources, the rest transforms reading one recent node."""
    import random

    rnd = random.Random(3)
    (root / "data").mkdir(parents=True)
    (root / "data/s.csv").write_text("id,v\n1,2\n")
    (root / "seekrun_project.yml").write_text("name: big\n")
    ids: list[str] = []
    for i in range(n):
        folder = root / "nodes" / f"area_{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if i < 50:
            text = f"kind: source\nname: s{i:05d}\ndescription: raw feed {i}\nsource: csv\ntable: data/s.csv\n"
            ids.append(f"source.s{i:05d}")
        else:
            dep = rnd.choice(ids[-200:])
            text = (f"kind: transform\nname: t{i:05d}\ndescription: step {i} marker{i}x\ninputs:\n  - ref: {dep}\n"
                    f"transform: SELECT id, v + 1 AS v FROM ref('{dep}')\n")
            ids.append(f"transform.t{i:05d}")
        (folder / f"n{i:05d}.yml").write_text(text)
    return root


def test_a_10000_node_project_loads_and_responds(tmp_path, browser):
    proj = _big_project(tmp_path / "big", 10_000)
    assert cli("parse", "-p", str(proj)).exit_code == 0
    t0 = time.perf_counter()
    out = _docs(proj)
    built = time.perf_counter() - t0
    assert len(list((out / "nodes").iterdir())) == 10_000
    assert built < 60, built
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        t0 = time.perf_counter()
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("#graph g.node")
        loaded = time.perf_counter() - t0
        assert page.get_attribute("#mode", "data-mode") == "neighbourhood"
        shown = page.locator("#graph g.node").count()
        assert 2 <= shown <= 2_000, shown  # a neighbourhood, not the whole project
        assert loaded < 10, loaded
        # the graph responds: a node's link focuses the graph on it
        t0 = time.perf_counter()
        page.evaluate("() => { window.location.hash = '#node=transform.t05000'; }")
        page.wait_for_selector('#graph g.node.selected[data-node-id="transform.t05000"]')
        manifest = _manifest(proj)
        parents = {r["ref"] if isinstance(r, dict) else r for r in manifest["transform.t05000"].get("inputs") or []}
        shown_ids = set(page.locator("#graph g.node").evaluate_all("gs => gs.map(g => g.dataset.nodeId)"))
        assert parents <= shown_ids and "transform.t05000" in shown_ids
        # search, then Enter: the graph moves to the first match
        page.fill("#search", "marker7777x")
        assert page.locator("#search-results a[data-node-id]").evaluate_all(
            "as => as.map(a => a.dataset.nodeId)") == ["transform.t07777"]
        page.press("#search", "Enter")
        page.wait_for_selector('#graph g.node.selected[data-node-id="transform.t07777"]')
        assert page.get_attribute("#mode", "data-selected") == "transform.t07777"
        responded = time.perf_counter() - t0
        assert responded < 5, responded
    finally:
        page.close()
    assert errors == []
