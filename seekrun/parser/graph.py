"""Graph checks at parse time: cycles, reported as full paths a -> b -> c -> a."""
from __future__ import annotations


def find_cycles(deps: dict[str, list[str]]) -> list[list[str]]:
    """Each cycle once, as [a, b, ..., a] in dependency direction; linear time (Kahn, then a walk)."""
    indeg = {n: 0 for n in deps}
    children: dict[str, list[str]] = {n: [] for n in deps}
    for n, parents in deps.items():
        for p in dict.fromkeys(parents):
            indeg[n] += 1
            children[p].append(n)
    queue = [n for n, d in indeg.items() if d == 0]
    while queue:
        n = queue.pop()
        for c in children[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    stuck = sorted(n for n, d in indeg.items() if d > 0)
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in stuck:
        if start in done:
            continue
        # walk parent links inside the stuck set until a node repeats
        path: list[str] = []
        pos: dict[str, int] = {}
        node = start
        while node not in pos and node not in done:
            pos[node] = len(path)
            path.append(node)
            node = min(p for p in deps[node] if indeg.get(p, 0) > 0)
        done.update(path)
        if node in pos:
            loop = path[pos[node]:]  # child -> parent order
            loop.reverse()  # parent -> child: a -> b means b depends on a
            k = loop.index(min(loop))
            loop = loop[k:] + loop[:k]
            cycles.append(loop + [loop[0]])
    return cycles
