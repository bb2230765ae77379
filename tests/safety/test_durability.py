"""Durability order, read from an strace log of real runs: each final name on
the ESP (Xen entries, Xen images, loader.conf) is produced only by a rename
from a temporary in the same folder; the temporary was written and then
flushed (fsync on the descriptor its openat returned) before the rename; the
folder was flushed (fsync on a descriptor opened with O_DIRECTORY) after the
rename; a removal or a new folder is followed by a flush of the folder
holding it; no final name is ever opened for writing or written through
directly.

Also: `plan`, and a run with nothing to do, make no mutating call at all (as
the crashpoint shim counts them) and leave the ESP as it was."""

import os
import re
import subprocess
import unittest

from safetylib import Update, describe, is_temporary, make_root, run_tool, scratch_folder, snapshot, tool_command

TRACED = "openat,write,rename,renameat,renameat2,fsync,fdatasync,unlink,unlinkat,mkdirat,close,fcntl,dup,dup2,dup3"
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")

LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<result>-?\d+|\?)")
FD_ARG = re.compile(r"^\s*(?P<fd>AT_FDCWD|-?\d+)(?:<(?P<path>[^>]*)>)?")
STRING_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Event:
    def __init__(self, index, kind, path, **details):
        self.index = index
        self.kind = kind
        self.path = path
        self.details = details


def split_args(args):
    """Top-level comma-separated arguments (strings may hold commas)."""
    parts, current, in_string, escaped = [], "", False, False
    for char in args:
        if in_string:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            current += char
        elif char == ",":
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


class Trace:
    """The file system events of a traced run, with every descriptor resolved
    to the path it was opened with (not the path it has later)."""

    def __init__(self, log_text):
        self.events = []
        self.fds = {}  # fd -> (path, is_folder)
        pending = {}
        for raw in log_text.splitlines():
            if "<unfinished ...>" in raw:
                pid = raw.split()[0]
                pending[pid] = raw.split("<unfinished ...>")[0]
                continue
            resumed = re.match(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$", raw)
            if resumed:
                raw = pending.pop(resumed.group(1), "") + resumed.group(2)
            match = LINE.match(raw)
            if match:
                self.handle(match.group("call"), split_args(match.group("args")), match.group("result"))

    def dir_path(self, argument):
        match = FD_ARG.match(argument)
        if match.group("fd") == "AT_FDCWD":
            return match.group("path") or os.getcwd()
        return self.fds.get(int(match.group("fd")), (match.group("path"), False))[0]

    def fd_entry(self, argument):
        return self.fds.get(int(FD_ARG.match(argument).group("fd")), (None, False))

    @staticmethod
    def name(argument):
        return STRING_ARG.match(argument).group(1)

    def resolve(self, dir_argument, name_argument):
        name = self.name(name_argument)
        if name.startswith("/"):
            return os.path.normpath(name)
        return os.path.normpath(os.path.join(self.dir_path(dir_argument), name))

    def add(self, kind, path, **details):
        self.events.append(Event(len(self.events), kind, path, **details))

    def handle(self, call, args, result):
        ok = result not in ("?",) and int(result) >= 0
        if call == "openat" and ok:
            path = self.resolve(args[0], args[1])
            flags = args[2]
            self.fds[int(result)] = (path, "O_DIRECTORY" in flags)
            if any(flag in flags for flag in WRITE_FLAGS):
                self.add("open-write", path, flags=flags)
        elif call in ("fcntl",) and ok and args[1].startswith("F_DUPFD"):
            self.fds[int(result)] = self.fd_entry(args[0])
        elif call in ("dup", "dup2", "dup3") and ok:
            self.fds[int(result)] = self.fd_entry(args[0])
        elif call == "close" and ok:
            self.fds.pop(int(FD_ARG.match(args[0]).group("fd")), None)
        elif call in ("fsync", "fdatasync") and ok:
            path, is_folder = self.fd_entry(args[0])
            self.add("fsync", path, folder=is_folder)
        elif call == "write" and ok:
            path, _ = self.fd_entry(args[0])
            self.add("write", path)
        elif call in ("renameat", "renameat2") and ok:
            self.add("rename", self.resolve(args[2], args[3]), source=self.resolve(args[0], args[1]))
        elif call == "rename" and ok:
            self.add("rename", os.path.abspath(self.name(args[1])), source=os.path.abspath(self.name(args[0])))
        elif call == "mkdirat" and ok:
            self.add("mkdir", self.resolve(args[0], args[1]))
        elif call == "unlinkat" and ok:
            self.add("unlink", self.resolve(args[0], args[1]))
        elif call == "unlink" and ok:
            self.add("unlink", os.path.abspath(self.name(args[0])))


def is_final_name(esp, path):
    """Whether `path` is a name the tool owns on the ESP (not a temporary)."""
    relative = os.path.relpath(path, esp)
    folder, name = os.path.split(relative)
    if is_temporary(name):
        return False
    return (folder == "loader/entries" and name.startswith("xen-") and name.endswith(".conf")) \
        or (folder == "EFI/xen" and name.endswith(".efi")) \
        or relative == "loader/loader.conf"


class DurabilityTest(unittest.TestCase):
    def traced_run(self, root, esp):
        log = self.folder / "strace.log"
        command = ["strace", "-f", "-y", "-e", f"trace={TRACED}", "-o", str(log),
                   *tool_command(root, esp)]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
        self.assertEqual(result.returncode, 0, "traced run failed: " + describe(result))
        return Trace(log.read_text())

    def check_order(self, trace, esp, written):
        esp = os.path.realpath(esp)
        events = trace.events
        problems = []
        for event in events:
            if event.kind == "open-write" and is_final_name(esp, event.path):
                problems.append(f"{event.path} opened for writing directly ({event.details['flags']})")
            if event.kind == "write" and event.path and is_final_name(esp, event.path):
                problems.append(f"{event.path} written through directly")

        renames = {}
        for event in events:
            if event.kind == "rename" and is_final_name(esp, event.path):
                renames.setdefault(event.path, []).append(event)
        for relative in written:
            final = os.path.join(esp, relative)
            if final not in renames:
                problems.append(f"{relative} was not produced by a rename")
                continue
            for rename in renames[final]:
                problems += self.rename_problems(events, rename, relative)

        for event in events:
            removal = event.kind == "unlink" and not is_temporary(event.path)
            if (removal or event.kind == "mkdir") and event.path.startswith(esp + "/"):
                folder = os.path.dirname(event.path)
                if not any(e.kind == "fsync" and e.details["folder"] and e.path == folder
                           for e in events[event.index + 1:]):
                    problems.append(f"{event.kind} of {event.path} not followed by a flush of {folder}")
        return problems

    @staticmethod
    def rename_problems(events, rename, relative):
        problems = []
        source, folder = rename.details["source"], os.path.dirname(rename.path)
        if os.path.dirname(source) != folder:
            problems.append(f"{relative} renamed from {source}, outside its folder")
        if not is_temporary(source):
            problems.append(f"{relative} renamed from {source}, not a temporary")
        earlier = events[:rename.index]
        created = [e for e in earlier if e.kind == "open-write" and e.path == source]
        writes = [e for e in earlier if e.kind == "write" and e.path == source]
        flushes = [e for e in earlier if e.kind == "fsync" and e.path == source]
        if not created:
            problems.append(f"{relative}: temporary {source} was not created by this run")
        if not writes:
            problems.append(f"{relative}: nothing written to temporary {source}")
        if not flushes or (writes and flushes[-1].index < writes[-1].index):
            problems.append(f"{relative}: temporary {source} not flushed after its last write, before the rename")
        if not any(e.kind == "fsync" and e.details["folder"] and e.path == folder for e in events[rename.index + 1:]):
            problems.append(f"{relative}: folder {folder} not flushed after the rename")
        return problems

    def owned_files_written(self, before, after):
        """Final names whose bytes the run changed or created."""
        return sorted(path for path, state in after.items()
                      if state[0] == "file" and is_final_name("/esp", "/esp/" + path) and before.get(path) != state)

    def setUp(self):
        self.folder = scratch_folder(self, "xbb-durability-")

    def test_fresh_build_writes_through_flushed_temporaries(self):
        root = make_root(self, self.folder / "root", "--generations", "3", "--specialisation", "debug",
                         "--legacy-xen-images")
        before = snapshot(root.esp)
        trace = self.traced_run(root, root.esp)
        after = snapshot(root.esp)
        written = self.owned_files_written(before, after)
        self.assertEqual(len(written), 13, f"expected 6 images, 6 entries and loader.conf, got {written}")
        self.assertIn(os.path.realpath(root.esp / "EFI/xen"), [e.path for e in trace.events if e.kind == "mkdir"])
        self.assertEqual([path for path in after if is_temporary(path)], [])
        self.assertEqual(self.check_order(trace, root.esp, written), [])

    def mutating_calls(self, root, command=()):
        """The trace of the mutating calls of one run, as the crashpoint shim counts them."""
        trace = self.folder / "calls"
        if trace.exists():
            trace.unlink()
        result = run_tool(root, root.esp, "info", preload_env={"XBB_CRASH_TRACE": trace}, extra_args=command)
        self.assertEqual(result.returncode, 0, describe(result))
        return trace.read_text().splitlines() if trace.exists() else []

    def test_plan_and_a_run_with_nothing_to_do_change_nothing(self):
        root = make_root(self, self.folder / "root", "--generations", "3", "--specialisation", "debug")
        pristine = snapshot(root.esp)
        self.assertEqual(self.mutating_calls(root, ("plan",)), [], "plan made mutating calls")
        self.assertEqual(snapshot(root.esp), pristine)
        self.assertNotEqual(self.mutating_calls(root), [], "the first run wrote nothing")
        built = snapshot(root.esp)
        self.assertEqual(self.mutating_calls(root), [], "a run with nothing to do made mutating calls")
        self.assertEqual(snapshot(root.esp), built)

    def test_checker_catches_the_shell_scripts_mistakes(self):
        # A log as strace writes it for a writer that creates an entry in
        # place, and renames an image from an unflushed temporary without
        # flushing the folder.
        log = "\n".join([
            '7 openat(AT_FDCWD</>, "/esp/loader/entries", O_RDONLY|O_DIRECTORY) = 3</esp/loader/entries>',
            '7 openat(3</esp/loader/entries>, "xen-a.conf", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 4</esp/loader/entries/xen-a.conf>',
            '7 write(4</esp/loader/entries/xen-a.conf>, "title x\\n", 8) = 8',
            '7 close(4</esp/loader/entries/xen-a.conf>) = 0',
            '7 fsync(3</esp/loader/entries>) = 0',
            '7 openat(AT_FDCWD</>, "/esp/EFI/xen", O_RDONLY|O_DIRECTORY) = 4</esp/EFI/xen>',
            '7 openat(4</esp/EFI/xen>, "xen-a.efi.xbb-tmp-1", O_WRONLY|O_CREAT|O_EXCL, 0644) = 5</esp/EFI/xen/xen-a.efi.xbb-tmp-1>',
            '7 write(5</esp/EFI/xen/xen-a.efi.xbb-tmp-1>, "MZ", 2) = 2',
            '7 close(5</esp/EFI/xen/xen-a.efi.xbb-tmp-1>) = 0',
            '7 renameat(4</esp/EFI/xen>, "xen-a.efi.xbb-tmp-1", 4</esp/EFI/xen>, "xen-a.efi") = 0',
            '7 +++ exited with 0 +++',
        ])
        problems = self.check_order(Trace(log), "/esp", ["loader/entries/xen-a.conf", "EFI/xen/xen-a.efi"])
        self.assertEqual(problems, [
            "/esp/loader/entries/xen-a.conf opened for writing directly (O_WRONLY|O_CREAT|O_TRUNC)",
            "/esp/loader/entries/xen-a.conf written through directly",
            "loader/entries/xen-a.conf was not produced by a rename",
            "EFI/xen/xen-a.efi: temporary /esp/EFI/xen/xen-a.efi.xbb-tmp-1 not flushed after its last write, "
            "before the rename",
            "EFI/xen/xen-a.efi: folder /esp/EFI/xen not flushed after the rename",
        ])

    def test_update_replaces_files_through_flushed_temporaries(self):
        update = Update(self, self.folder / "update")
        before = snapshot(update.root.esp)
        trace = self.traced_run(update.root, update.root.esp)
        after = snapshot(update.root.esp)
        written = self.owned_files_written(before, after)
        for expected in ("EFI/xen/xen-generation-3.efi", "EFI/xen/xen-generation-5.efi",
                         "EFI/xen/xen-generation-7.efi", "loader/entries/xen-generation-7.conf",
                         "loader/loader.conf"):
            self.assertIn(expected, written)
        self.assertIn("unlink", {e.kind for e in trace.events}, "the update removed nothing")
        self.assertEqual(self.check_order(trace, update.root.esp, written), [])


if __name__ == "__main__":
    unittest.main()
