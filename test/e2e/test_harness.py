"""The harness's own helpers, where a race in them would fail other tests
once in a while: here the race is forced."""

import subprocess
import unittest
from unittest import mock

import harness


class Exited(unittest.TestCase):

    def test_a_process_gone_between_open_and_read_has_exited(self):
        proc = subprocess.Popen(["sleep", "60"])
        self.addCleanup(proc.kill)
        real_open = open

        def open_then_vanish(path, *args, **kwargs):
            # the open succeeds while the process lives; it is gone (reaped)
            # before the read, as when it exits in between
            f = real_open(path, *args, **kwargs)
            proc.kill()
            proc.wait()
            return f

        self.assertFalse(harness.exited(proc.pid))
        with mock.patch.object(harness, "open", open_then_vanish, create=True):
            self.assertTrue(harness.exited(proc.pid))

    def test_a_running_process_has_not_exited(self):
        proc = subprocess.Popen(["sleep", "60"])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        self.assertFalse(harness.exited(proc.pid))


if __name__ == "__main__":
    unittest.main()
