"""The generated reference in docs/ (sql.md, http.md, settings.md) is what
scripts/docs makes from a freshly installed extension: a COMMENT ON text, a
signature, a grant or a setting changed without regenerating fails here."""

import difflib
import os
import sys
import unittest

import harness

sys.path.insert(0, os.path.join(harness.SRC, "scripts"))
import gendocs  # noqa: E402


class GeneratedDocs(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster("docs")

    def generate(self):
        conn = self.cluster.connect()
        try:
            return gendocs.generate(conn)
        finally:
            conn.close()

    def test_docs_are_up_to_date(self):
        for name, text in sorted(self.generate().items()):
            with self.subTest(file=name):
                path = os.path.join(harness.SRC, "docs", name)
                self.assertTrue(os.path.exists(path), "docs/%s is missing: run scripts/docs" % name)
                with open(path) as f:
                    committed = f.read()
                if committed != text:
                    diff = "".join(list(difflib.unified_diff(
                        committed.splitlines(True), text.splitlines(True),
                        "docs/" + name + " (committed)", "docs/" + name + " (generated now)"))[:60])
                    self.fail("docs/%s is stale: run scripts/docs\n%s" % (name, diff))

    def test_a_changed_comment_shows_in_the_docs(self):
        # the comparison above can fail: the texts come from the catalogs
        before = self.generate()
        conn = self.cluster.connect(autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute("COMMENT ON FUNCTION billing.run_expiry() IS 'changed for the test'")
                cur.execute("COMMENT ON FUNCTION api.ping() IS 'Ping changed\n\nfor the test'")
                after = gendocs.generate(conn)
        finally:
            conn.rollback()
            conn.close()
        self.assertNotEqual(before["sql.md"], after["sql.md"])
        self.assertIn("changed for the test", after["sql.md"])
        self.assertIn("**Ping changed.** for the test", after["http.md"])
        self.assertEqual(before["settings.md"], after["settings.md"])

    def test_every_object_a_user_or_admin_touches_has_a_contract(self):
        docs = self.generate()
        for name in ("sql.md", "http.md"):
            with self.subTest(file=name):
                self.assertNotIn("*No description.*", docs[name])
                self.assertNotRegex(docs[name], r"\| `[a-z_]+` \| `[^`]+`( not null)? \|  \|",
                                    "a column without a description")
        for line in docs["settings.md"].splitlines():
            if line.startswith("| `billing."):
                self.assertFalse(line.rstrip().endswith("|  |"), line)


if __name__ == "__main__":
    unittest.main()
