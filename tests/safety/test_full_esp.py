"""A full ESP.

Too small for the plan (a real size-limited tmpfs, needs root): the run exits
non-zero before writing anything, says how many bytes are missing (a number
consistent with the images it had to write, and enough: freeing exactly that
much lets the run succeed), and the ESP is byte-for-byte unchanged.

Space running out mid-run despite the check (another writer; simulated by the
crashpoint shim failing the k-th and every later write with ENOSPC, for every
k): the run exits non-zero naming the cause, leaves no temporaries, and the
ESP still boots everything it booted before, with a valid default.
"""

import os
import re
import shutil
import subprocess
import unittest

import espcheck
from safetylib import (CRASH_STATUS, XEN_417_EFI, Update, copy_tree, describe, final_files, make_root,
                       run_tool, scratch_folder, snapshot, temporaries, tree_difference, xen_bootable)

MIB = 1024 * 1024
PAGE = 4096
IMAGES = 3          # generations, one unified image each
OWNED_FILES = 7     # 3 images, 3 entries, loader.conf
IMAGE_GROWTH = 64 * 1024   # .config plus header growth, at most, per image
ROUNDING = 2 * PAGE        # allocation rounding and margin, at most, per file


def free_bytes(folder):
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


class SmallEspTest(unittest.TestCase):
    def setUp(self):
        self.folder = scratch_folder(self, "xbb-full-")
        self.esp = self.folder / "esp"
        self.esp.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "xbb-test-esp", str(self.esp)],
                                 capture_output=True, text=True, check=False)
        self.assertEqual(mounted.returncode, 0, f"cannot mount a tmpfs (tests need root): {mounted.stderr}")
        self.addCleanup(subprocess.run, ["umount", str(self.esp)], check=True)

    def fill(self, leave):
        """Fills the ESP with a ballast file until `leave` bytes are free."""
        ballast = self.esp / "ballast"
        size = free_bytes(self.esp) - leave
        self.assertGreater(size, 0)
        with open(ballast, "wb") as out:
            out.write(b"\xa5" * size)
        self.assertLessEqual(abs(free_bytes(self.esp) - leave), PAGE)
        return ballast

    def test_too_small_changes_nothing_and_says_how_much_is_missing(self):
        root = make_root(self, self.folder / "root", "--generations", str(IMAGES))
        shutil.copytree(root.esp, self.esp, symlinks=True, dirs_exist_ok=True)
        ballast = self.fill(4 * MIB)
        before = snapshot(self.esp)
        free = free_bytes(self.esp)

        result = run_tool(root, self.esp)
        self.assertNotEqual(result.returncode, 0, "run on a too small ESP succeeded: " + describe(result))
        self.assertEqual(tree_difference(snapshot(self.esp), before), [], "the failed run changed the ESP")

        output = result.stdout + result.stderr
        numbers = re.findall(r"(\d+) bytes", output)
        self.assertTrue(numbers, "no byte count in the message: " + describe(result))
        missing = int(numbers[0])
        xen_size = XEN_417_EFI.stat().st_size
        at_least = IMAGES * xen_size - free
        at_most = IMAGES * (xen_size + IMAGE_GROWTH) + OWNED_FILES * (ROUNDING + PAGE) - free
        self.assertGreaterEqual(missing, at_least, output)
        self.assertLessEqual(missing, at_most, output)

        # Freeing exactly what it said was missing is enough.
        pages = (missing + PAGE - 1) // PAGE
        with open(ballast, "r+b") as out:
            out.truncate(ballast.stat().st_size - pages * PAGE)
        retry = run_tool(root, self.esp)
        self.assertEqual(retry.returncode, 0, "with the missing bytes freed: " + describe(retry))
        self.assertEqual(espcheck.problems(self.esp), [])
        self.assertEqual(xen_bootable(self.esp), {f"xen-generation-{n}.conf" for n in range(1, IMAGES + 1)})


class SpaceRunsOutMidRunTest(unittest.TestCase):
    def setUp(self):
        self.folder = scratch_folder(self, "xbb-enospc-")
        self.update = Update(self, self.folder / "update")

    def test_every_failing_write_leaves_a_consistent_esp(self):
        before = self.update.before
        before_tree = snapshot(before)
        before_bootable = xen_bootable(before)
        complete = self.folder / "complete"
        copy_tree(before, complete)
        count_file = self.folder / "count"
        result = run_tool(self.update.root, complete, preload_env={"XBB_CRASH_COUNT": count_file})
        self.assertEqual(result.returncode, 0, describe(result))
        writes = int(count_file.read_text().split()[1])
        after_tree = snapshot(complete)
        self.assertGreaterEqual(writes, 5, "the update wrote too few files to be a test")

        failures = []
        for k in range(1, writes + 1):
            esp = self.folder / f"enospc-{k}"
            copy_tree(before, esp)
            result = run_tool(self.update.root, esp, preload_env={"XBB_ENOSPC_AT": k})
            problems = []
            if result.returncode in (0, CRASH_STATUS):
                problems.append("expected a failure exit: " + describe(result))
            if "No space left on device" not in result.stderr:
                problems.append("the message does not name the cause: " + describe(result))
            tree = snapshot(esp)
            problems += [f"temporary left: {path}" for path in temporaries(tree)]
            problems += espcheck.default_problems(esp)
            problems += [f"{ident} no longer boots" for ident in sorted(before_bootable - xen_bootable(esp))]
            for path, state in final_files(tree).items():
                if state != before_tree.get(path) and state != after_tree.get(path):
                    problems.append(f"{path} matches neither its version before nor after the run")
            if problems:
                failures.append(f"write {k} of {writes} failing:\n  " + "\n  ".join(problems))
            shutil.rmtree(esp)
        self.assertEqual(failures, [], "\n".join(failures))


if __name__ == "__main__":
    unittest.main()
