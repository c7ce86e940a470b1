"""The shape of the C code: no two files call each other in a loop.

Read from the built objects (nm): a file "calls" another when it uses a
symbol the other defines.  billing.c (the module's entry) is the top and
calls each capability's init; common.c (the shared helpers) is the bottom
and calls nothing of ours, nor does http_client.c (the providers' libcurl).
"""
import glob
import os
import subprocess
import unittest

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")


def call_graph():
    defs, uses = {}, {}
    for obj in sorted(glob.glob(os.path.join(SRC, "*.o"))):
        name = os.path.basename(obj)[:-2]
        out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
        d, u = set(), set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDBR":
                d.add(parts[2])
            elif len(parts) == 2 and parts[0] == "U":
                u.add(parts[1])
        defs[name], uses[name] = d, u
    owner = {s: f for f, d in defs.items() for s in d}
    return {f: {owner[s] for s in uses[f] if s in owner and owner[s] != f} for f in defs}


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


class Layers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edges = call_graph()
        if len(cls.edges) < 10:
            raise unittest.SkipTest("the extension is not built in src/ (scripts/test builds it)")

    def test_no_two_files_call_each_other_in_a_loop(self):
        self.assertEqual(cycles(self.edges), [])

    def test_the_entry_point_on_top_and_the_helpers_at_the_bottom(self):
        self.assertEqual(self.edges["common"], set())
        # The providers' HTTP client is theirs to call, never the other way.
        self.assertEqual(self.edges["http_client"], set())
        callers_of_billing = {f for f, e in self.edges.items() if "billing" in e}
        self.assertEqual(callers_of_billing, set())

    def test_the_cycle_check_sees_a_cycle(self):
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])


if __name__ == "__main__":
    unittest.main()
