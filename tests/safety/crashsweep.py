"""The crash sweep (see test_crash_sweep.py): an update run is ended at each
of its mutating file system calls in turn (the crashpoint shim; a write is
torn in half first), and after each simulated crash the ESP must still boot:

(a) loader.conf's default names an existing, bootable entry;
(b) every Xen entry bootable before the run and after a complete run is
    bootable now (old or new version);
(c) every file under a final name is byte-identical to its version before
    the run or to its version after a complete run (nothing half-written);
(d) a complete run from there reaches the same ESP as an uninterrupted run,
    with no temporaries left.

The run's record of the images it wrote holds their mtimes, so it is never
the same twice: (c) and (d) leave it out of their comparisons, and instead it
must be complete JSON and vouch only for images it describes (same size and
mtime as recorded means the recorded digest), after the crash and after the
run that follows.

A scenario (safetylib.Scenario) may compare a view of each snapshot in (c)
and (d) (signed images: without their signature, which holds its signing
time, and whether it verifies; see safetylib.SignedImages), and require
more of the ESPs before and after a complete run.
"""

import shutil
import sys
import time
import unittest

import espcheck
from safetylib import (CRASH_STATUS, RECORD, copy_tree, describe, final_files, is_record, record_problems, run_tool,
                       scratch_folder, snapshot, temporaries, tree_difference, without_record, xen_bootable)


def read_trace(path):
    """Call number -> "call name" as the shim traced it."""
    calls = {}
    for line in path.read_text().splitlines():
        number, _, what = line.partition(" ")
        calls[int(number)] = what
    return calls


class CrashSweep(unittest.TestCase):
    """The sweep of one scenario (a class of safetylib: Update and its kin);
    test classes call self.sweep(scenario)."""

    def prepare(self, scenario):
        self.folder = scratch_folder(self, "xbb-crash-")
        self.update = scenario(self, self.folder / "update")
        self.before = self.update.before
        self.before_tree = self.comparable(self.before, snapshot(self.before))
        self.before_bootable = xen_bootable(self.before)

    def comparable(self, esp, tree):
        """The scenario's view of a snapshot of `esp`, for comparisons."""
        return self.update.comparable(esp, tree)

    def complete_run(self):
        """The uninterrupted update: its ESP, and the calls the shim counted."""
        esp = self.folder / "complete"
        copy_tree(self.before, esp)
        count_file = self.folder / "count"
        trace_file = self.folder / "trace"
        result = run_tool(self.update.root, esp, extra_args=self.update.RUN_ARGS,
                          preload_env={"XBB_CRASH_COUNT": count_file, "XBB_CRASH_TRACE": trace_file})
        self.assertEqual(result.returncode, 0, "complete update run failed: " + describe(result))
        calls = int(count_file.read_text().split()[0])
        return esp, calls, read_trace(trace_file)

    def check_complete_run(self, esp):
        """The update did what it is for, so that the sweep is not vacuous."""
        self.assertEqual(espcheck.problems(esp), [])
        self.assertEqual(self.update.esp_problems(self.before), [], "before the run")
        self.assertEqual(self.update.esp_problems(esp), [], "after the run")
        self.assertEqual(self.before_bootable, self.update.before_xen)
        self.assertEqual(xen_bootable(esp), self.update.after_xen)
        after = self.comparable(esp, snapshot(esp))
        for image in self.update.rewritten:
            self.assertNotEqual(after[image], self.before_tree[image], f"{image} was not rewritten")
        for path in self.update.removed:
            self.assertIn(path, self.before_tree)
            self.assertNotIn(path, after)
        for path in self.update.added:
            self.assertNotIn(path, self.before_tree)
            self.assertIn(path, after)
        self.assertEqual(temporaries(after), [])
        self.assertTrue(any(is_record(path) for path in after), f"no {RECORD}")
        self.assertEqual(record_problems(esp), [])

    def crash_problems(self, esp, after_tree, must_boot):
        status = espcheck.entry_problems(esp)
        problems = [f"(a) {problem}" for problem in espcheck.default_problems(esp, status)]
        for ident in sorted(must_boot - xen_bootable(esp, status)):
            problems.append(f"(b) {ident} does not boot: {status.get(ident, 'missing')}")
        tree = snapshot(esp)
        for path, state in without_record(final_files(self.comparable(esp, tree))).items():
            if state != self.before_tree.get(path) and state != after_tree.get(path):
                problems.append(f"(c) {path} matches neither its version before nor after the run")
        problems += [f"(c) {problem}" for problem in record_problems(esp)]
        return problems

    def recovery_problems(self, esp, after_tree):
        result = run_tool(self.update.root, esp, extra_args=self.update.RUN_ARGS)
        if result.returncode != 0:
            return ["(d) the run after the crash failed: " + describe(result)]
        tree = snapshot(esp)
        problems = [f"(d) {line}" for line in tree_difference(without_record(final_files(self.comparable(esp, tree))),
                                                              without_record(final_files(after_tree)))]
        if not any(is_record(path) for path in tree):
            problems.append(f"(d) no {RECORD}")
        problems += [f"(d) {problem}" for problem in record_problems(esp)]
        problems += [f"(d) temporary left: {path}" for path in temporaries(tree)]
        return problems

    def sweep(self, scenario):
        self.prepare(scenario)
        started = time.monotonic()
        after, calls, trace = self.complete_run()
        self.check_complete_run(after)
        after_tree = self.comparable(after, snapshot(after))
        must_boot = self.before_bootable & xen_bootable(after)
        self.assertGreater(calls, 10, "the shim counted too few calls: is it interposing?")

        failures = []
        for k in range(1, calls + 1):
            esp = self.folder / f"crash-{k}"
            copy_tree(self.before, esp)
            result = run_tool(self.update.root, esp, extra_args=self.update.RUN_ARGS, preload_env={"XBB_CRASH_AT": k})
            if result.returncode not in (CRASH_STATUS, 0):
                problems = ["the crashed run exited " + describe(result)]
            else:
                problems = self.crash_problems(esp, after_tree, must_boot)
                problems += self.recovery_problems(esp, after_tree)
            if problems:
                failures.append(f"crash point {k} ({trace.get(k, '?')}):\n  " + "\n  ".join(problems))
            shutil.rmtree(esp)

        held = calls - len(failures)
        summary = f"crash sweep ({scenario.__name__}): {calls} crash points, {held} held ({time.monotonic() - started:.1f} s)"
        print(summary, file=sys.stderr)
        self.assertEqual(failures, [], summary + "\n" + "\n".join(failures))
