/* seekrun docs: search on every page; the lineage graph on index.html. No libraries, no network. */
(function () {
  "use strict";
  var D = window.SEEKRUN_DATA || {nodes: []};
  var root = document.body.getAttribute("data-root") || "";
  var byId = {};
  D.nodes.forEach(function (n, i) { n.index = i; byId[n.id] = n; });

  function pageOf(n) { return root + "nodes/" + n.page; }

  /* ---- search: every word in the id or the description ---- */
  var input = document.getElementById("search"), list = document.getElementById("search-results");
  function matches(text) {
    var words = text.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return [];
    return D.nodes.filter(function (n) {
      var hay = (n.id + " " + n.description).toLowerCase();
      return words.every(function (w) { return hay.indexOf(w) >= 0; });
    });
  }
  function showResults() {
    var found = matches(input.value);
    list.innerHTML = "";
    found.slice(0, 30).forEach(function (n) {
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = pageOf(n); a.textContent = n.id; a.setAttribute("data-node-id", n.id);
      li.appendChild(a);
      if (n.description) { var s = document.createElement("span"); s.textContent = " " + n.description.slice(0, 90); li.appendChild(s); }
      list.appendChild(li);
    });
    if (found.length > 30) { var more = document.createElement("li"); more.textContent = (found.length - 30) + " more"; list.appendChild(more); }
    list.style.display = input.value.trim() ? "block" : "none";
    if (graph) graph.highlight(found);
  }
  if (input) {
    input.addEventListener("input", showResults);
    input.addEventListener("keydown", function (e) {
      if (e.key !== "Enter") return;
      var found = matches(input.value);
      if (found.length && graph && D.large) { graph.focus(found[0].id); }
      else if (found.length) { window.location.href = pageOf(found[0]); }
    });
  }

  /* ---- the lineage graph ---- */
  var graph = null, svg = document.getElementById("graph");
  if (svg) graph = makeGraph(svg);

  function makeGraph(svg) {
    var NS = "http://www.w3.org/2000/svg", W = 230, H = 30, DX = 280, DY = 44;
    var view = {x: 0, y: 0, w: 1000, h: 600}, shown = [], children = null;
    function kids() {
      if (children) return children;
      children = D.nodes.map(function () { return []; });
      D.nodes.forEach(function (n) { n.inputs.forEach(function (p) { children[p].push(n.index); }); });
      return children;
    }
    function around(i, levels) {
      var keep = {}; keep[i] = true;
      [function (k) { return D.nodes[k].inputs; }, function (k) { return kids()[k]; }].forEach(function (step) {
        var frontier = [i];
        for (var l = 0; l < levels; l++) {
          var next = [];
          frontier.forEach(function (k) { step(k).forEach(function (j) { if (!keep[j]) { keep[j] = true; next.push(j); } }); });
          frontier = next;
        }
      });
      return Object.keys(keep).map(Number).sort(function (a, b) { return a - b; });
    }
    function draw(indices, selected) {
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      var inSet = {}, layer = {}, rows = {};
      indices.forEach(function (i) { inSet[i] = true; });
      indices.forEach(function (i) {  /* data order is build order: inputs come first */
        var l = 0;
        D.nodes[i].inputs.forEach(function (p) { if (inSet[p]) l = Math.max(l, layer[p] + 1); });
        layer[i] = l;
      });
      var pos = {};
      indices.forEach(function (i) { var l = layer[i]; rows[l] = (rows[l] || 0); pos[i] = {x: l * DX + 10, y: rows[l] * DY + 10}; rows[l]++; });
      var edges = document.createElementNS(NS, "g");
      svg.appendChild(edges);
      indices.forEach(function (i) {
        D.nodes[i].inputs.forEach(function (p) {
          if (!inSet[p]) return;
          var a = pos[p], b = pos[i], path = document.createElementNS(NS, "path");
          var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
          path.setAttribute("d", "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + x2 + "," + y2);
          path.setAttribute("class", "edge");
          edges.appendChild(path);
        });
      });
      indices.forEach(function (i) {
        var n = D.nodes[i], g = document.createElementNS(NS, "g"), r = document.createElementNS(NS, "rect");
        var t = document.createElementNS(NS, "text"), tip = document.createElementNS(NS, "title");
        g.setAttribute("class", "node" + (i === selected ? " selected" : ""));
        g.setAttribute("data-node-id", n.id);
        g.setAttribute("transform", "translate(" + pos[i].x + "," + pos[i].y + ")");
        r.setAttribute("width", W); r.setAttribute("height", H); r.setAttribute("rx", 6);
        r.setAttribute("fill", D.colours[n.kind] || "#eeeeee");
        r.setAttribute("stroke", D.strokes[n.status] || "#9e9e9e");
        r.setAttribute("stroke-width", n.status ? 3 : 1);
        if (!n.status) r.setAttribute("stroke-dasharray", "4 3");
        t.setAttribute("x", 8); t.setAttribute("y", 19);
        t.textContent = n.id.length > 33 ? n.id.slice(0, 32) + "\u2026" : n.id;
        tip.textContent = n.id + " (" + (n.status || "never built") + ")" + (n.description ? ": " + n.description : "");
        g.appendChild(r); g.appendChild(t); g.appendChild(tip);
        g.addEventListener("click", function () { window.location.href = pageOf(n); });
        svg.appendChild(g);
      });
      shown = indices;
      var cols = 0, maxRows = 0;
      Object.keys(rows).forEach(function (l) { cols = Math.max(cols, +l + 1); maxRows = Math.max(maxRows, rows[l]); });
      fit(cols * DX, maxRows * DY + 10);
    }
    function fit(w, h) { view = {x: 0, y: 0, w: Math.max(w, 400), h: Math.max(h, 200)}; apply(); }
    function apply() { svg.setAttribute("viewBox", view.x + " " + view.y + " " + view.w + " " + view.h); }
    function zoom(f, cx, cy) {
      cx = cx === undefined ? view.x + view.w / 2 : cx; cy = cy === undefined ? view.y + view.h / 2 : cy;
      view = {x: cx - (cx - view.x) * f, y: cy - (cy - view.y) * f, w: view.w * f, h: view.h * f}; apply();
    }
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, view.x + (e.clientX - r.left) / r.width * view.w,
           view.y + (e.clientY - r.top) / r.height * view.h);
    }, {passive: false});
    var drag = null;
    svg.addEventListener("mousedown", function (e) { drag = {x: e.clientX, y: e.clientY, vx: view.x, vy: view.y}; });
    window.addEventListener("mouseup", function () { drag = null; });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      var r = svg.getBoundingClientRect();
      view.x = drag.vx - (e.clientX - drag.x) / r.width * view.w;
      view.y = drag.vy - (e.clientY - drag.y) / r.height * view.h; apply();
    });
    document.getElementById("zoom-in").addEventListener("click", function () { zoom(1 / 1.3); });
    document.getElementById("zoom-out").addEventListener("click", function () { zoom(1.3); });
    document.getElementById("zoom-fit").addEventListener("click", function () { draw(shown, current); });
    var legend = document.getElementById("legend");
    Object.keys(D.colours).forEach(function (k) {
      if (!D.nodes.some(function (n) { return n.kind === k; })) return;
      var s = document.createElement("span"); s.className = "key"; s.style.background = D.colours[k]; s.textContent = k;
      legend.appendChild(s);
    });
    var current = null;
    function focus(id) {
      var n = byId[id];
      if (!n) return;
      current = n.index;
      draw(around(n.index, 2), n.index);
      document.getElementById("mode").setAttribute("data-selected", id);
      if (window.location.hash !== "#node=" + encodeURIComponent(id)) history.replaceState(null, "", "#node=" + encodeURIComponent(id));
    }
    function highlight(found) {
      var hit = {};
      found.forEach(function (n) { hit[n.id] = true; });
      Array.prototype.forEach.call(svg.querySelectorAll("g.node"), function (g) {
        g.classList.toggle("match", !!hit[g.getAttribute("data-node-id")]);
      });
    }
    var wanted = decodeURIComponent((window.location.hash.match(/^#node=(.+)$/) || [])[1] || "");
    if (D.large) {
      var start = byId[wanted] ? wanted : null;
      if (!start && D.nodes.length) {  /* the node with the most dependents */
        var best = 0;
        kids().forEach(function (c, i) { if (c.length > kids()[best].length) best = i; });
        start = D.nodes[best].id;
      }
      if (start) focus(start);
    } else {
      draw(D.nodes.map(function (n) { return n.index; }), byId[wanted] ? byId[wanted].index : null);
    }
    window.addEventListener("hashchange", function () {
      var id = decodeURIComponent((window.location.hash.match(/^#node=(.+)$/) || [])[1] || "");
      if (D.large && byId[id]) focus(id);
    });
    return {focus: focus, highlight: highlight};
  }
})();
