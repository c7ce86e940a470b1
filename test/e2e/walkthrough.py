"""The README's getting-started walk-through as one bash script: every ```sh
block as printed, every ```sql block fed as printed to psql (as the reader's
psql on the stack would get it), in the README's order.  Only the ports are
those of the stack under test.  test_start.py runs it against a started stack."""

import os
import re

HEADING = "## Getting started"
SQL_END = "__WALKTHROUGH_SQL__"


def blocks(readme_text):
    """[(language, text)] of the fenced sql and sh blocks under HEADING, in order."""
    if "\n" + HEADING + "\n" not in readme_text:
        raise AssertionError("the README has no %r section" % HEADING)
    section = readme_text.split("\n" + HEADING + "\n", 1)[1]
    section = re.split(r"\n## ", section, 1)[0]
    return re.findall(r"^```(sql|sh)\n(.*?)^```", section, re.S | re.M)


def script(found, psql, pg_port, http_port):
    """One bash script for the blocks; psql is the psql binary to use."""
    parts = []
    for lang, text in found:
        text = text.replace("127.0.0.1:13000", "127.0.0.1:%d" % http_port)
        if lang == "sh":
            # (echo: curl prints no newline after a JSON answer)
            parts.append("echo '--- sh block'\n" + text + "echo\n")
        else:
            parts.append("echo '--- sql block'\n"
                         "%s -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p %d -U postgres -d billing <<'%s'\n%s%s"
                         % (psql, pg_port, SQL_END, text, SQL_END))
    return "\n".join(parts) + "\n"


def curl_home(folder):
    """A curl config folder (CURL_HOME) that makes curl fail on an HTTP error,
    with the body shown, as a reader would notice one."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".curlrc"), "w") as f:
        f.write("fail-with-body\nsilent\nshow-error\n")
    return folder
