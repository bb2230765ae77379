"""Crash sweep (crashsweep.py says what must hold at every crash point) over
three runs: an update with generation-named entries (one generation added,
one removed, one with new Xen parameters, one with a new kernel); the same
with content-addressed entries, boot counting and `preferred`; and the first
run on an ESP laid out by the shell script (images in EFI/nixos, moved to
EFI/xen). test_crash_sweep_layouts.py sweeps the image layouts. The
crashpoint shim itself is tested here first.
"""

import os
import subprocess
import sys
import unittest

from crashsweep import CrashSweep
from safetylib import CRASH_STATUS, HashUpdate, Migration, Update, crashpoint, scratch_folder


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"0123456789abcdef")
os.fsync(fd)
os.rename(sys.argv[1], sys.argv[1] + ".final")
"""


class CrashpointShimTest(unittest.TestCase):
    """The instrument itself: it counts a small writer's calls and ends it at
    the chosen one, tearing a write in half."""

    def run_writer(self, folder, env):
        env = dict(os.environ, LD_PRELOAD=str(crashpoint()), **{k: str(v) for k, v in env.items()})
        return subprocess.run([sys.executable, "-c", WRITER, str(folder / "file")], env=env,
                              capture_output=True, text=True, check=False)

    def test_counts_and_crashes_at_each_call(self):
        folder = scratch_folder(self, "xbb-shim-")
        trace = folder / "trace"
        result = self.run_writer(folder, {"XBB_CRASH_TRACE": trace, "XBB_CRASH_COUNT": folder / "count"})
        self.assertEqual(result.returncode, 0, result.stderr)
        calls = [line.split(" ")[1] for line in trace.read_text().splitlines()]
        self.assertIn(calls[-4], ("open", "open64", "openat", "openat64"))
        self.assertEqual(calls[-3:], ["write", "fsync", "rename"])
        self.assertEqual((folder / "count").read_text().split(), [str(len(calls)), "1"])
        first = len(calls) - 3
        (folder / "file.final").unlink()

        expected = {first: None, first + 1: b"01234567", first + 2: b"0123456789abcdef"}
        for k, content in expected.items():
            with self.subTest(k=k):
                result = self.run_writer(folder, {"XBB_CRASH_AT": k})
                self.assertEqual(result.returncode, CRASH_STATUS, result.stderr)
                path = folder / "file"
                self.assertEqual(path.read_bytes() if path.exists() else None, content)
                self.assertFalse((folder / "file.final").exists())
                if path.exists():
                    path.unlink()

    def test_failing_writes_report_no_space(self):
        folder = scratch_folder(self, "xbb-shim-")
        result = self.run_writer(folder, {"XBB_ENOSPC_AT": 1})
        self.assertEqual(result.returncode, 1)
        self.assertIn("No space left on device", result.stderr)
        self.assertEqual((folder / "file").read_bytes(), b"")


class CrashSweepTest(CrashSweep):
    def test_generation_named_entries(self):
        self.sweep(Update)

    def test_content_addressed_entries_with_boot_counting(self):
        self.sweep(HashUpdate)

    def test_migration_from_the_shell_scripts_layout(self):
        self.sweep(Migration)


if __name__ == "__main__":
    unittest.main()
