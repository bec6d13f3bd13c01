"""alloc_heavy.py - an allocation-heavy, deterministic Python workload.

Run by tests/preload (output compared with and without libcapheap_malloc.so)
and timed by bench/preload.sh. It does a fixed amount of work, about 1-2 s
under glibc on a 2020s x86-64 core, and prints a few lines that depend only on
that work: no timings, no addresses, no hash-order-dependent iteration (dicts
keep insertion order; sets are only counted or sorted), so the output is the
same on every run and under every allocator.

Where the C allocator is hit: CPython serves objects up to 512 bytes from its
own pools (pymalloc), so the phases below lean on what goes to malloc: big
strings and bytes (joins, json text, repeated concatenation), growing lists
and dicts (their item arrays and hash tables are realloc'd as they grow),
sorting (a temporary array the size of the list), and many short-lived
medium-sized containers.

Usage: python3 alloc_heavy.py [scale]   (scale defaults to 1; the tests use 1)
"""

import json
import sys


class Rng:
    """A tiny LCG: the same numbers on every Python and platform."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return self.state >> 33

    def below(self, n):
        return self.next() % n


def fnv(text, h=0xCBF29CE484222325):
    """FNV-1a over a str, for short checksums of long outputs."""
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ---------------------------------------------------------------- phase 1: dicts and lists
def phase_containers(rng, scale):
    total = 0
    for round_ in range(6 * scale):
        d = {}
        for i in range(20000):
            key = "k%d_%d" % (rng.below(50000), round_)
            d.setdefault(key, []).append(i)
        big = [v for v in d.values() if len(v) > 1]
        total += len(d) + sum(len(v) for v in big)
        merged = {}
        for k, v in d.items():
            merged[k[: 1 + len(k) // 2]] = v[:3] * 4
        total += len(merged)
        rows = [[rng.below(1000) for _ in range(40)] for _ in range(600)]
        cols = [list(c) for c in zip(*rows)]
        total += sum(sum(c) for c in cols) % 100003
    return "containers %d" % total


# ---------------------------------------------------------------- phase 2: strings
def phase_strings(rng, scale):
    h = 0xCBF29CE484222325
    lengths = 0
    for round_ in range(60 * scale):
        words = ["w%x" % rng.next() for _ in range(6000)]
        text = " ".join(words)
        up = text.upper().replace("W", "<w>")
        parts = up.split(">")
        rebuilt = ">".join(reversed(parts))
        acc = ""
        for w in words[:1500]:
            acc += w  # repeated concatenation: realloc of a growing str
        blob = (rebuilt + acc).encode() * 3
        lengths += len(blob) + len(parts)
        h ^= hash(len(blob)) & 0xFFFF
        h = fnv(acc[-64:] + rebuilt[:64], h)
    return "strings %d %016x" % (lengths, h)


# ---------------------------------------------------------------- phase 3: json round trips
def phase_json(rng, scale):
    h = 0xCBF29CE484222325
    size = 0
    for round_ in range(12 * scale):
        doc = {
            "round": round_,
            "items": [
                {
                    "id": i,
                    "name": "item-%d-%d" % (round_, rng.below(100000)),
                    "tags": ["t%d" % rng.below(50) for _ in range(rng.below(6))],
                    "price": rng.below(100000) / 100.0,
                    "nested": {"a": [rng.below(10) for _ in range(8)], "b": None, "c": True},
                }
                for i in range(1200)
            ],
        }
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        again = json.dumps(back, sort_keys=True, indent=1)
        if json.loads(again) != doc:
            raise SystemExit("json round trip differs")
        size += len(text) + len(again)
        h = fnv(text[-200:], h)
    return "json %d %016x" % (size, h)


# ---------------------------------------------------------------- phase 4: sorting
def phase_sorting(rng, scale):
    h = 0
    for round_ in range(4 * scale):
        nums = [rng.next() for _ in range(60000)]
        nums.sort()
        strs = sorted(("%08x" % (n & 0xFFFFFFFF)) for n in nums[::2])
        pairs = sorted(zip(strs, range(len(strs))), key=lambda p: (p[0][::-1], -p[1]))
        h = (h * 31 + nums[len(nums) // 2] + len(strs) + pairs[0][1] + pairs[-1][1]) & 0xFFFFFFFFFFFFFFFF
    return "sorting %016x" % h


# ---------------------------------------------------------------- phase 5: an object graph
class Node:
    __slots__ = ("ident", "label", "children", "weights", "parent")

    def __init__(self, ident, label, parent):
        self.ident = ident
        self.label = label
        self.children = []
        self.weights = {}
        self.parent = parent


class Leaf:
    def __init__(self, ident, payload):
        self.ident = ident
        self.payload = payload
        self.meta = {"len": len(payload), "first": payload[:4]}


def build_tree(rng, depth, fanout, counter, parent=None):
    counter[0] += 1
    node = Node(counter[0], "n%d" % counter[0], parent)
    if depth == 0:
        for _ in range(fanout):
            counter[0] += 1
            leaf = Leaf(counter[0], "x" * (40 + rng.below(600)))
            node.children.append(leaf)
            node.weights[leaf.ident] = rng.below(1000)
        return node
    for _ in range(fanout):
        child = build_tree(rng, depth - 1, fanout, counter, node)
        node.children.append(child)
        node.weights[child.ident] = rng.below(1000)
    return node


def walk(node):
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Leaf):
            total += n.meta["len"]
            continue
        total += sum(n.weights.values())
        stack.extend(n.children)
    return total


def phase_graph(rng, scale):
    results = []
    for round_ in range(2 * scale):
        counter = [0]
        root = build_tree(rng, 5, 6, counter)
        # rewire: move every third subtree under a sibling, dropping references
        for child in root.children[::3]:
            if child.children:
                child.children = child.children[1:] + [Node(counter[0] + 1, "extra", child)]
        results.append((counter[0], walk(root)))
        del root
    return "graph " + " ".join("%d:%d" % r for r in results)


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rng = Rng(20240611)
    for phase in (phase_containers, phase_strings, phase_json, phase_sorting, phase_graph):
        print(phase(rng, scale))
    print("done")


if __name__ == "__main__":
    main()
