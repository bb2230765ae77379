"""The memo (issue 18): a build run keeps in its record
(EFI/xen/xen-boot-builder.json) the fingerprint of everything it read, taken
on the partition as it leaves it, and what it said; the next build run that
finds the same inputs says it again and stops, without discovering, reading
bootspecs or planning.

What such a run does is seen from outside with strace -y (the files it
opens, reads, renames and unlinks). What it owes is what a full run owes:
each case is compared with a twin root that got the same change but whose
record holds no memo (its memo line set to null, the rest of the record
untouched), so that it takes the full path. Twins are separate copies of one
template (records name host paths, so a copy is a root the tool has not
seen); their outputs are compared with the root's path replaced and their
ESPs by content, without the record.

Crash safety of the record is tests/safety's."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from unittest import mock

import common
from common import (
    RECORD,
    SOURCE_DIR,
    XEN_420_EFI,
    ToolTestCase,
    copy_root,
    make_root,
    describe,
    make_template_root,
    parse_loader_entry,
    rewrite_bootspec,
    run_on_root,
    run_traced,
    snapshot_esp,
    tool_argv,
    tool_environment,
    use_xen_efi,
    without_record,
)
from test_fast_path import CHANGES, READS, Traced

sys.path.insert(0, str(SOURCE_DIR / "tests" / "safety"))
import espcheck  # noqa: E402  (tests/safety: reads an ESP as firmware, systemd-boot and Xen would)

NEW_PARAMS = ["dom0_mem=2048M,max:2048M", "loglvl=all"]
MEMO_LINE = re.compile(r'^"memo": .*,$', re.MULTILINE)


# ---------------------------------------------------------------- helpers


def without_memo(root):
    """Set the record's memo line to null, the rest of the record as it is:
    the next run reads everything (the full path) and says what it finds."""
    record = root.esp / RECORD
    text = record.read_text()
    new, count = MEMO_LINE.subn('"memo": null,', text, count=1)
    if count != 1:
        raise AssertionError(f"no memo line in the record:\n{text[:400]}")
    record.write_text(new)
    return text


def initrd_outside_efi_nixos(root):
    """Generation 2's source entry names a copy of its initrd in EFI/other."""
    entry = root.esp / "loader/entries/nixos-generation-2.conf"
    fields = dict(parse_loader_entry(entry.read_text()))
    (root.esp / "EFI/other").mkdir()
    shutil.copyfile(root.esp / fields["initrd"].lstrip("/"), root.esp / "EFI/other/initrd.efi")
    entry.write_text(entry.read_text().replace(fields["initrd"], "/EFI/other/initrd.efi"))


def memo_of(root):
    """The record's memo line (None when it holds no memo)."""
    match = MEMO_LINE.search((root.esp / RECORD).read_text())
    if not match:
        raise AssertionError("the record has no memo line")
    return None if match.group(0) == '"memo": null,' else match.group(0)


def contents(esp):
    """Every file and link under the ESP (but the record) by content."""
    return {path: state[2] for path, state in without_record(snapshot_esp(esp)).items()}


def bootspecs(root):
    return {os.path.realpath(path) for path in (root.path / "nix/store").glob("*/boot.json")}


def xen_efis(root):
    return {os.path.realpath(path) for path in (root.path / "nix/store").glob("*/boot/xen*.efi")}


def source_entries(root):
    return {os.path.realpath(path) for path in (root.esp / "loader/entries").glob("nixos-*.conf")}


def section_file_range(image, section):
    """(file offset, size) of a PE section, as binutils' objdump -h says."""
    result = subprocess.run(["objdump", "-h", str(image)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"objdump -h {image} failed: {result.stderr}")
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[0].isdigit() and fields[1] == section:
            return int(fields[5], 16), int(fields[2], 16)
    raise AssertionError(f"{image} has no {section} section")


def overwrite_keeping_stamp(path, offset, data):
    """Replace bytes of a file in place, then give it back its mtime: same
    size, same mtime, other bytes."""
    info = path.stat()
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (info.st_size, info.st_mtime_ns):
        raise AssertionError(f"{path}: could not keep its stamp")


def touch_later(path):
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def image_of(root, entry_name):
    """The ESP path of the image a Xen entry boots."""
    fields = dict(parse_loader_entry((root.esp / "loader/entries" / entry_name).read_text()))
    return fields["efi"].lstrip("/")


class Memo:
    """The cases, for one layout (LAYOUT)."""

    LAYOUT = None
    TEMPLATE_OPTIONS = ("--generations", "3")

    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, *cls.TEMPLATE_OPTIONS)

    # ------------------------------------------------------------ running

    def built_root(self, prepare=None, *argv):
        """A copy of the template, `prepare`d, on which a build ran once."""
        root = copy_root(self, self.template)
        if prepare:
            prepare(root)
        result = run_on_root(root, "--layout", self.LAYOUT, *argv, "quiet")
        self.assertIn(result.returncode, (0, 1), "first run failed: " + describe(result))
        self.assertIsNotNone(memo_of(root), "the first run kept no memo")
        return root

    def traced(self, root, *argv, verbosity="info"):
        argv = argv if "--layout" in argv else ("--layout", self.LAYOUT, *argv)
        result, calls = run_traced(self, root, *argv, verbosity, calls=f"openat,{READS},{CHANGES}",
                                   fd_paths=True)
        return Traced(result, calls)

    def outcome(self, root, result):
        """What a run said and left, comparable between twins."""
        here = str(root.path)
        return {
            "exit": result.returncode,
            "stdout": result.stdout.replace(here, "ROOT"),
            "stderr": result.stderr.replace(here, "ROOT"),
            "esp": contents(root.esp),
        }

    # ------------------------------------------------------------ oracles

    def assert_answered_from_memo(self, root, run):
        """The run read no bootspec, no xen.efi, no Xen entry or .cfg, each
        source entry and the record once, and wrote nothing."""
        self.assertEqual(run.opened & bootspecs(root), set(), "a bootspec was opened")
        self.assertEqual(run.opened & xen_efis(root), set(), "xen.efi was opened")
        configurations = {path for path in run.opened
                          if re.search(r"/loader/entries/xen-[^/]*\.conf$|/EFI/xen/[^/]*\.cfg$", path)}
        self.assertEqual(configurations, set(), "a Xen entry or configuration file was opened")
        self.assertEqual({path: run.opens[path] for path in source_entries(root)},
                         {path: 1 for path in source_entries(root)}, "a source entry was read twice")
        self.assertEqual(run.opens[os.path.realpath(root.esp / RECORD)], 1, "the record was read twice")
        self.assertEqual((run.written, run.renamed, run.unlinked), (set(), set(), set()), "it wrote")

    def assert_full_path(self, root, run):
        """The run did not stop at the memo: having scanned the source
        entries, it discovered (read them again) and read its record again."""
        twice = {path for path in source_entries(root) if run.opens[path] >= 2}
        self.assertTrue(twice or run.opens[os.path.realpath(root.esp / RECORD)] >= 2,
                        "the run answered from the memo: " + describe(run.result))

    def assert_same_as_full_run(self, change, *argv, prepare=None, first=(), boots=True):
        """Two twins built alike get `change`; the one whose memo is removed
        takes the full path; the other must take it too (the memo no longer
        matches) and say and do exactly what it did, leaving an ESP that boots
        (unless the change broke what the tool leaves alone: not `boots`).
        Returns the root that kept its memo and its run."""
        root, twin = self.built_root(prepare, *first), self.built_root(prepare, *first)
        for each in (root, twin):
            change(each)
        before = snapshot_esp(root.esp)
        without_memo(twin)
        full = self.traced(twin, *argv)
        self.assert_full_path(twin, full)
        run = self.traced(root, *argv)
        self.assert_full_path(root, run)
        self.assertEqual(self.outcome(root, run.result), self.outcome(twin, full.result))
        if boots:
            self.assertEqual(espcheck.problems(root.esp), [])
        self.before = before
        return root, run

    def assert_answers_as_a_full_run(self, root, verbosities=("default", "info")):
        """On a root just built: a run per verbosity answers from the memo and
        says (stdout, stderr, exit status) what the full run says on the same
        partition."""
        for verbosity in verbosities:
            with self.subTest(verbosity=verbosity):
                before = snapshot_esp(root.esp)
                record = root.esp / RECORD
                run = self.traced(root, verbosity=verbosity)
                self.assert_answered_from_memo(root, run)
                self.assertEqual(snapshot_esp(root.esp), before)
                text = without_memo(root)
                full = self.traced(root, verbosity=verbosity)
                self.assert_full_path(root, full)
                self.assertEqual(self.outcome(root, full.result), self.outcome(root, run.result))
                record.write_text(text)

    # ------------------------------------------------------------ 1. it answers

    def test_unchanged_run_answers_from_the_memo_as_a_full_run(self):
        root = self.built_root()
        self.assert_answers_as_a_full_run(root)

    def test_answer_repeats_warnings_and_the_default_entry_error(self):
        # Generation 1 has no Xen extension, generation 3 (the default) lost
        # its initrd from the ESP (a warning and exit 1), and a hand-made Xen
        # entry is left alone (a warning).
        root = make_root(self, "--generations", "3", "--no-xen", "1")
        (root.esp / "loader/entries/xen-custom.conf").write_text("title mine\nefi /EFI/xen/mine.efi\n")
        entry = (root.esp / "loader/entries/nixos-generation-3.conf").read_text()
        initrd = next(line.split()[1] for line in entry.splitlines() if line.startswith("initrd "))
        (root.esp / initrd.lstrip("/")).unlink()
        first = run_on_root(root, "--layout", self.LAYOUT, "quiet")
        self.assertEqual(first.returncode, 1, describe(first))
        self.assertIsNotNone(memo_of(root))
        run = self.traced(root)
        self.assertEqual(run.result.returncode, 1)
        self.assertIn("nixos-generation-3, the default boot entry, got no Xen entry", run.result.stderr)
        self.assertIn("left alone 1 file(s)", run.result.stderr)
        self.assert_answers_as_a_full_run(root)

    def test_answer_for_a_root_without_xen_says_none_found(self):
        root = make_root(self, "--generations", "2", "--no-xen", "1,2")
        first = run_on_root(root, "--layout", self.LAYOUT, "quiet")
        self.assertEqual(first.returncode, 0, describe(first))
        self.assertIsNotNone(memo_of(root))
        self.assert_answers_as_a_full_run(root)

    # ------------------------------------------------------------ 2. each input invalidates it

    def test_source_entry_text_changed(self):
        def change(root):
            entry = root.esp / "loader/entries/nixos-generation-2.conf"
            entry.write_text(entry.read_text().replace("title NixOS", "title NixOS renamed"))

        root, run = self.assert_same_as_full_run(change)
        self.assertIn("NixOS renamed (with Xen Hypervisor)",
                      (root.esp / "loader/entries/xen-generation-2.conf").read_text())

    def test_source_entry_options_changed(self):
        def change(root):
            entry = root.esp / "loader/entries/nixos-generation-2.conf"
            entry.write_text(entry.read_text().replace("loglevel=4", "loglevel=7"))

        self.assert_same_as_full_run(change)

    def test_new_source_entry(self):
        def change(root):
            entries = root.esp / "loader/entries"
            text = (entries / "nixos-generation-2.conf").read_text()
            (entries / "nixos-generation-4.conf").write_text(text.replace("generation=2", "generation=4"))

        root, run = self.assert_same_as_full_run(change)
        self.assertTrue((root.esp / "loader/entries/xen-generation-4.conf").is_file())

    def test_source_entry_renamed_with_the_same_text(self):
        def change(root):
            entries = root.esp / "loader/entries"
            (entries / "nixos-generation-2.conf").rename(entries / "nixos-generation-2a.conf")

        root, run = self.assert_same_as_full_run(change)
        self.assertTrue((root.esp / "loader/entries/xen-generation-2a.conf").is_file())

    def test_source_entry_removed(self):
        root, run = self.assert_same_as_full_run(
            lambda root: (root.esp / "loader/entries/nixos-generation-1.conf").unlink())
        self.assertFalse((root.esp / "loader/entries/xen-generation-1.conf").exists())

    def test_xen_entry_edited_by_hand(self):
        def change(root):
            entry = root.esp / "loader/entries/xen-generation-2.conf"
            entry.write_text(entry.read_text() + "# mine\n")
            touch_later(entry)

        root, run = self.assert_same_as_full_run(change)
        self.assertNotIn("# mine", (root.esp / "loader/entries/xen-generation-2.conf").read_text())

    def test_xen_entry_deleted(self):
        root, run = self.assert_same_as_full_run(
            lambda root: (root.esp / "loader/entries/xen-generation-2.conf").unlink())
        self.assertTrue((root.esp / "loader/entries/xen-generation-2.conf").is_file())

    def test_source_entry_added_while_a_run_writes_is_built_by_the_next_run(self):
        # A run plans the generations it found; when a source entry appears
        # while it writes (systemd-boot's installer does not take the tool's
        # lock), the memo it keeps must not cover the new entry, or the next
        # run would answer "No change" and never build it. strace holds the
        # run at its first rename long enough to add the entry then.
        root = self.built_root()
        xen_entry = sorted((root.esp / "loader/entries").glob("xen-generation-1*.conf"))[0]
        xen_entry.unlink()  # something for the run to write
        source = root.esp / "loader/entries/nixos-generation-2.conf"
        added = root.esp / "loader/entries/nixos-generation-9.conf"
        held = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=renameat,rename,renameat2",
             "-e", "inject=renameat,rename,renameat2:delay_enter=1500000:when=1",
             *tool_argv(["--root", root.path, "--esp", root.esp, "--layout", self.LAYOUT, "quiet"])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tool_environment(None))
        deadline = time.monotonic() + 60
        while not any(".xbb-tmp-" in path.name for path in root.esp.rglob("*")):
            self.assertIsNone(held.poll(), "the run ended before writing anything")
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        shutil.copyfile(source, added)
        _, stderr = held.communicate(timeout=120)
        self.assertEqual(held.returncode, 0, stderr)
        self.assertTrue(xen_entry.exists(), "the held run wrote its entry")
        self.assertFalse((root.esp / "loader/entries/xen-generation-9.conf").exists(),
                         "the held run found the new entry after all: nothing tested")
        result = run_on_root(root, "--layout", self.LAYOUT, "default")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertTrue((root.esp / "loader/entries/xen-generation-9.conf").is_file(), describe(result))

    def test_another_build_of_the_program_takes_the_full_path(self):
        # Another build of the same version may decide otherwise: the memo is
        # that of the program that kept it (its path and its stamp).
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        copy = Path(folder.name) / "xen-boot-builder"
        shutil.copy2(common.BINARY, copy)
        root = self.built_root()
        with mock.patch.object(common, "BINARY", copy):
            self.assert_full_path(root, self.traced(root))  # another program's memo
            fresh = self.built_root()  # built by the copy: its own memo
            self.assert_answered_from_memo(fresh, self.traced(fresh))
            touch_later(copy)
            self.assert_full_path(fresh, self.traced(fresh))  # the same path, rebuilt

    def test_leftover_temporary_file_in_efi_xen(self):
        def change(root):
            (root.esp / "EFI/xen/xen-generation-2.cfg.xbb-tmp-0123456789abcdef").write_bytes(b"half")

        self.assert_same_as_full_run(change)

    def test_image_damaged_in_its_headers_under_the_same_stamp_is_made_again(self):
        def change(root):
            image = root.esp / image_of(root, "xen-generation-2.conf")
            overwrite_keeping_stamp(image, 0, b"XX")  # no longer an MZ executable

        root, run = self.assert_same_as_full_run(change)
        image = image_of(root, "xen-generation-2.conf")
        self.assertIn(os.path.realpath(root.esp / image), run.renamed)
        self.assertEqual((root.esp / image).read_bytes()[:2], b"MZ")

    def test_loader_conf_default_changed(self):
        def change(root):
            conf = root.esp / "loader/loader.conf"
            conf.write_text(re.sub(r"(?m)^default .*$", "default nixos-generation-2.conf", conf.read_text()))

        root, run = self.assert_same_as_full_run(change)
        self.assertIn("default xen-generation-2.conf", (root.esp / "loader/loader.conf").read_text())

    def test_bootspec_rewritten_in_the_store(self):
        def change(root):
            def set_xen_params(document):
                document["org.xenproject.bootspec.v1"]["xenParams"] = NEW_PARAMS
                document["org.xenproject.bootspec.v2"]["params"] = NEW_PARAMS

            rewrite_bootspec(root, root.entry(2), set_xen_params)

        self.assert_same_as_full_run(change)

    def test_bootspec_gaining_the_xen_extension(self):
        def prepare(root):
            def drop_xen(document):
                for key in [key for key in document if key.startswith("org.xenproject.")]:
                    del document[key]

            path = root.store_path(root.entry(2)["toplevel"] + "/boot.json")
            shutil.copyfile(path, root.path.parent / "boot.json")
            rewrite_bootspec(root, root.entry(2), drop_xen)

        def change(root):
            path = root.store_path(root.entry(2)["toplevel"] + "/boot.json")
            path.write_text((root.path.parent / "boot.json").read_text())
            touch_later(path)

        root, run = self.assert_same_as_full_run(change, prepare=prepare)
        self.assertTrue((root.esp / "loader/entries/xen-generation-2.conf").is_file())

    def assert_no_memo_until_it_appears(self, hide, show):
        """While a host file a generation needs is missing, a run keeps no
        memo (none names the file to watch for its coming back); once it is
        there, the next run builds what a full run builds."""
        root, twin = copy_root(self, self.template), copy_root(self, self.template)
        for each in (root, twin):
            hide(each)
            result = run_on_root(each, "--layout", self.LAYOUT, "default")
            self.assertIn(result.returncode, (0, 1), describe(result))
            self.assertIn("skipped", result.stderr, describe(result))
            self.assertIsNone(memo_of(each), "a memo kept while a file is missing")
            show(each)
        without_memo(twin)
        full = self.traced(twin)
        run = self.traced(root)
        self.assert_full_path(root, run)
        self.assertEqual(self.outcome(root, run.result), self.outcome(twin, full.result))
        self.assertEqual(espcheck.problems(root.esp), [])
        return root

    def test_missing_bootspec_appearing(self):
        parked = {}

        def hide(root):
            path = root.store_path(root.entry(2)["toplevel"] + "/boot.json")
            parked[root.path] = root.path.parent / "boot.json"
            shutil.move(path, parked[root.path])

        def show(root):
            shutil.move(parked[root.path], root.store_path(root.entry(2)["toplevel"] + "/boot.json"))

        root = self.assert_no_memo_until_it_appears(hide, show)
        self.assertTrue((root.esp / "loader/entries/xen-generation-2.conf").is_file())

    def test_missing_xen_efi_appearing(self):
        parked = {}

        def hide(root):
            xen_efi = os.path.realpath(root.store_path(root.manifest["xen_efi"]))
            parked[root.path] = root.path.parent / "xen.efi"
            shutil.move(xen_efi, parked[root.path])

        def show(root):
            shutil.move(parked[root.path], os.path.realpath(root.store_path(root.manifest["xen_efi"])))

        root = self.assert_no_memo_until_it_appears(hide, show)
        self.assertEqual(len(list((root.esp / "loader/entries").glob("xen-*.conf"))), 3)

    def test_xen_efi_touched(self):
        def change(root):
            touch_later(os.path.realpath(root.store_path(root.manifest["xen_efi"])))

        root, run = self.assert_same_as_full_run(change)
        self.assertIn(os.path.realpath(root.store_path(root.manifest["xen_efi"])), run.read)

    def test_kernel_removed_from_efi_nixos(self):
        def change(root):
            linux = dict(parse_loader_entry((root.esp / "loader/entries/nixos-generation-2.conf").read_text()))["linux"]
            (root.esp / linux.lstrip("/")).unlink()

        # The full run warns about generation 2 (and leaves its Xen entry as
        # it is: the ESP no longer boots it, which is not the memo's doing).
        root, run = self.assert_same_as_full_run(change, boots=False)
        self.assertIn("nixos-generation-2", run.result.stderr)

    def test_initrd_outside_efi_nixos_removed(self):
        # The memo names the kernels and initrds outside EFI/nixos (whose
        # listing the scan covers) and checks each is still a regular file.
        root, run = self.assert_same_as_full_run(lambda root: (root.esp / "EFI/other/initrd.efi").unlink(),
                                                 prepare=initrd_outside_efi_nixos, boots=False)
        self.assertIn("nixos-generation-2", run.result.stderr)

    def test_initrd_outside_efi_nixos_replaced_by_a_folder(self):
        def change(root):
            (root.esp / "EFI/other/initrd.efi").unlink()
            (root.esp / "EFI/other/initrd.efi").mkdir()

        root, run = self.assert_same_as_full_run(change, prepare=initrd_outside_efi_nixos, boots=False)
        self.assertIn("nixos-generation-2", run.result.stderr)

    def test_option_layout_changed(self):
        other = "shared" if self.LAYOUT == "unified" else "unified"
        root, run = self.assert_same_as_full_run(lambda root: None, "--layout", other)
        self.assertNotEqual(contents(root.esp), {path: state[2] for path, state in without_record(self.before).items()})

    def test_option_no_default(self):
        self.assert_same_as_full_run(lambda root: None, "--no-default")

    def test_option_keep_debug_sections(self):
        # Debian's 4.20 image has .debug_* sections (4.17's has none).
        def prepare(root):
            use_xen_efi(root, root.entry(2), XEN_420_EFI, "xen-4.20.0-boot", version="4.20.0")

        root, run = self.assert_same_as_full_run(lambda root: None, "--keep-debug-sections", prepare=prepare)
        self.assertNotEqual(contents(root.esp), {path: state[2] for path, state in without_record(self.before).items()})

    def test_option_given_at_the_first_run_and_left_out(self):
        self.assert_same_as_full_run(lambda root: None, first=("--no-default",))

    def test_record_text_edited_with_its_memo_intact(self):
        def change(root):
            record = root.esp / RECORD
            text = record.read_text()
            memo = memo_of(root)
            edited = text.replace("[global]", "[global-edited]", 1)
            self.assertNotEqual(edited, text)
            record.write_text(edited)
            self.assertEqual(memo_of(root), memo)

        self.assert_same_as_full_run(change)

    # ------------------------------------------------------------ 3. not used where it must not be

    def test_debug_verbosity_takes_the_full_path(self):
        root = self.built_root()
        run = self.traced(root, verbosity="debug")
        self.assertEqual(run.result.returncode, 0, describe(run.result))
        self.assertIn("found 3 generation(s)", run.result.stdout + run.result.stderr)
        self.assertIn(os.path.realpath(root.store_path(root.manifest["xen_efi"])), run.opened)

    def test_rebuild_takes_the_full_path(self):
        root = self.built_root()
        run = self.traced(root, "--rebuild")
        self.assertEqual(run.result.returncode, 0, describe(run.result))
        images = {os.path.realpath(path) for path in (root.esp / "EFI/xen").glob("*.efi")}
        self.assertTrue(images)
        self.assertLessEqual(images, run.renamed, "--rebuild did not write every image again")

    def test_plan_and_list_are_unchanged_by_a_memo(self):
        root = self.built_root()
        commands = [("plan", "info"), ("plan", "--json"), ("list",), ("--json", "list")]

        def outputs():
            said = {}
            for command in commands:
                result = run_on_root(root, "--layout", self.LAYOUT, *command)
                self.assertEqual(result.returncode, 0, describe(result))
                said[command] = (result.stdout, result.stderr)
            return said

        with_memo = outputs()
        text = without_memo(root)
        self.assertEqual(with_memo, outputs())
        (root.esp / RECORD).write_text(text)
        # A change the memo has not seen: plan must show it, list its outcome.
        entry = root.esp / "loader/entries/nixos-generation-2.conf"
        entry.write_text(entry.read_text().replace("title NixOS", "title NixOS renamed"))
        changed = outputs()
        self.assertIn("xen-generation-2", changed[("plan", "info")][0])
        self.assertNotEqual(changed[("plan", "--json")], with_memo[("plan", "--json")])
        without_memo(root)
        self.assertEqual(changed, outputs())


class UnifiedMemo(Memo, ToolTestCase):
    LAYOUT = "unified"

    def test_image_config_damaged_under_the_same_stamp_is_made_again(self):
        def change(root):
            image = root.esp / image_of(root, "xen-generation-2.conf")
            offset, size = section_file_range(image, ".config")
            data = image.read_bytes()[offset:offset + size]
            overwrite_keeping_stamp(image, offset + size - 2, b"#" if data[-2:-1] != b"#" else b"!")

        root, run = self.assert_same_as_full_run(change)
        image = root.esp / image_of(root, "xen-generation-2.conf")
        self.assertIn(os.path.realpath(image), run.renamed)


class DefaultLayoutMemo(Memo, ToolTestCase):
    """The default layout is shared here (Debian's xen.efi has no .config):
    each entry's configuration is a .cfg file of its own."""

    LAYOUT = "auto"

    def test_configuration_file_edited(self):
        def change(root):
            cfg = root.esp / "EFI/xen/xen-generation-2.cfg"
            cfg.write_text(cfg.read_text().replace("[global]", "[global] "))
            touch_later(cfg)

        root, run = self.assert_same_as_full_run(change)
        self.assertIn(os.path.realpath(root.esp / "EFI/xen/xen-generation-2.cfg"), run.renamed)


if __name__ == "__main__":
    unittest.main()
