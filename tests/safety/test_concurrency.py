"""Two runs on one ESP at the same time: either both finish, one after the
other, or the second fails with a clear message about the lock; in both cases
the ESP ends up as one run alone leaves it (compared with a control run on a
copy), with no temporaries.

Runs started together may not overlap on a fast machine, so a second test
makes the overlap certain: the first run is stopped (crashpoint shim,
XBB_STALL_AT) just before its first write into a temporary, the second run is
started then, and the first is released a moment later.

A third test holds the lock from this (Python) process: the run says that it
waits and for which process, writes nothing meanwhile, and finishes once the
lock is released. A fourth does the same to `verify`, which takes the lock
shared: it never reads an ESP that a build is changing; a fifth to `plan` and
`list`, which take it shared too."""

import fcntl
import os
import subprocess
import time
import unittest

from safetylib import (binary, copy_tree, crashpoint, describe, final_files, make_root, record_problems, run_tool,
                       scratch_folder, snapshot, temporaries, tool_command, tree_difference, without_record)

LOCK_MESSAGE = "lock"
WAIT_LIMIT = 120  # seconds a stalled run may take to reach its stall point


def start(root, esp, extra_env=None, verbosity="quiet"):
    env = dict(os.environ, NO_COLOR="1")
    env.pop("efiMountPoint", None)
    if extra_env:
        env.update({key: str(value) for key, value in extra_env.items()})
        env["LD_PRELOAD"] = str(crashpoint())
    return subprocess.Popen(tool_command(root, esp, verbosity),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


class ConcurrencyTest(unittest.TestCase):
    def setUp(self):
        self.folder = scratch_folder(self, "xbb-concurrency-")
        self.root = make_root(self, self.folder / "root", "--generations", "6", "--specialisation", "debug")
        self.pristine = self.folder / "pristine"
        copy_tree(self.root.esp, self.pristine)
        control = self.folder / "control"
        copy_tree(self.pristine, control)
        result = run_tool(self.root, control)
        self.assertEqual(result.returncode, 0, "control run failed: " + describe(result))
        self.expected = final_files(snapshot(control))

    def check_outcome(self, first, second, esp):
        outcomes = sorted([first.returncode, second.returncode])
        if outcomes != [0, 0]:
            self.assertEqual(outcomes[0], 0, "neither run succeeded:\n" + describe(first) + "\n" + describe(second))
            failed = first if first.returncode != 0 else second
            self.assertIn(LOCK_MESSAGE, failed.stderr.lower(),
                          "a run failed for another reason than the lock: " + describe(failed))
        self.check_tree(esp)

    def check_tree(self, esp):
        """No temporaries, every file but the record as the control run left
        it (the record holds mtimes), and a record that tells the truth."""
        tree = snapshot(esp)
        self.assertEqual(temporaries(tree), [])
        self.assertEqual(set(final_files(tree)), set(self.expected))
        self.assertEqual(tree_difference(without_record(final_files(tree)), without_record(self.expected)), [])
        self.assertEqual(record_problems(esp), [])

    def test_two_runs_started_together(self):
        for round_number in range(3):
            with self.subTest(round=round_number):
                esp = self.folder / f"together-{round_number}"
                copy_tree(self.pristine, esp)
                processes = [start(self.root, esp), start(self.root, esp)]
                first, second = [finish(process) for process in processes]
                self.check_outcome(first, second, esp)

    def first_write_call(self):
        """The number of the first write into a temporary, as the shim counts."""
        esp = self.folder / "traced"
        copy_tree(self.pristine, esp)
        trace = self.folder / "trace"
        result = run_tool(self.root, esp, preload_env={"XBB_CRASH_TRACE": trace})
        self.assertEqual(result.returncode, 0, describe(result))
        for line in trace.read_text().splitlines():
            number, call, _ = line.split(" ", 2)
            if call in ("write", "pwrite", "pwrite64", "writev"):
                return int(number)
        self.fail("the traced run wrote nothing")

    def test_second_run_while_the_first_is_writing(self):
        stall_at = self.first_write_call()
        esp = self.folder / "overlap"
        copy_tree(self.pristine, esp)
        stall_file = self.folder / "stalled"
        first = start(self.root, esp, {"XBB_STALL_AT": stall_at, "XBB_STALL_FILE": stall_file})
        deadline = time.monotonic() + WAIT_LIMIT
        while not stall_file.exists():
            if first.poll() is not None:
                self.fail("the first run ended before its first write: " + describe(finish(first)))
            self.assertLess(time.monotonic(), deadline, "the first run never reached its first write")
            time.sleep(0.02)
        second = start(self.root, esp)
        try:
            second_result = finish_within(second, 2.0)
        finally:
            stall_file.unlink()
        first_result = finish(first)
        if second_result is None:
            second_result = finish(second)
        self.check_outcome(first_result, second_result, esp)

    def test_run_waiting_for_the_lock_names_its_holder_then_finishes(self):
        esp = self.folder / "held"
        copy_tree(self.pristine, esp)
        before = snapshot(esp)
        folder = os.open(esp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            run = start(self.root, esp, verbosity="default")
            waiting = run.stderr.readline()
            self.assertIsNone(run.poll(), "the run ended while the lock was held: " + waiting)
            self.assertEqual(waiting.partition(" (")[0],
                             f"warning: waiting for the lock on {esp} held by process {os.getpid()}")
            self.assertIn("test_concurrency", waiting, "the holder's command line is not shown")
            self.assertEqual(snapshot(esp), before, "the run wrote while the lock was held")
        finally:
            os.close(folder)
        result = finish(run)
        result.stderr = waiting + result.stderr
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(result.stderr, waiting, "more than the one waiting notice on stderr")
        self.check_tree(esp)


    def test_verify_waits_for_a_build_to_release_the_lock(self):
        esp = self.folder / "verified"
        copy_tree(self.pristine, esp)
        self.assertEqual(run_tool(self.root, esp).returncode, 0)
        folder = os.open(esp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            env = dict(os.environ, NO_COLOR="1")
            verify = subprocess.Popen([str(binary()), "--esp", str(esp), "verify"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env)
            waiting = verify.stderr.readline()
            self.assertIsNone(verify.poll(), "verify ended while a build held the lock: " + waiting)
            self.assertEqual(waiting.partition(" (")[0],
                             f"xen-boot-builder: waiting for the lock on {esp} held by process {os.getpid()}")
        finally:
            os.close(folder)
        result = finish(verify)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertIn("all bootable", result.stdout)

    def test_plan_and_list_wait_for_a_build_to_release_the_lock(self):
        esp = self.folder / "planned"
        copy_tree(self.pristine, esp)
        self.assertEqual(run_tool(self.root, esp).returncode, 0)
        for command, argv in (("plan", ["plan", "info"]), ("list", ["list"])):
            with self.subTest(command=command):
                folder = os.open(esp, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    fcntl.flock(folder, fcntl.LOCK_EX)
                    env = dict(os.environ, NO_COLOR="1")
                    env.pop("efiMountPoint", None)
                    reader = subprocess.Popen(
                        tool_command(self.root, esp, argv[-1], argv[:-1]),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                    # It waits, quietly for list (its stdout is the document): it has
                    # not ended a second after it started.
                    self.assertIsNone(finish_within(reader, 1.0), f"{command} read the ESP while a build held the lock")
                finally:
                    os.close(folder)
                result = finish(reader)
                self.assertEqual(result.returncode, 0, describe(result))
                if command == "plan":
                    self.assertTrue(result.stderr.startswith(
                        f"warning: waiting for the lock on {esp} held by process {os.getpid()} ("), describe(result))
                    self.assertIn("No change", result.stdout)
                else:
                    self.assertIn("xen-generation-6", result.stdout)


def finish_within(process, seconds):
    """The process's result if it ends within `seconds`, else None (it keeps running)."""
    try:
        stdout, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


if __name__ == "__main__":
    unittest.main()
