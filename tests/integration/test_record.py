"""The record (EFI/xen/xen-boot-builder.json) never outranks the ESP (issue
15, items 4, 5, 12, 13): damage that keeps an image's size and mtime is
found by the cheap check of each image (headers, section table, .config)
and repaired; `verify` BROKEN is repaired by the next build; --rebuild
writes every image; the record never makes a hand-made file the tool's; a
record that cannot be read or replaced costs a warning, not the run; `info`
names every file written with what it is; hand-made files are warned about
on every run."""

import json
import os
import shutil
import unittest

from common import (
    RECORD,
    ToolTestCase,
    copy_root,
    describe,
    make_template_root,
    parse_loader_entry,
    run_on_root,
    run_tool,
    sha256_file,
    snapshot_esp,
    warnings_of,
)


def change_lines(stdout):
    """The `info` lines that report a change: {(mark, name): detail}."""
    changes = {}
    for line in stdout.splitlines():
        if line[:1] in "+-~" and len(line) > 1:
            name, _, detail = line[1:].partition(" ")
            changes[(line[0], name)] = detail.strip("()")
    return changes


class RecordCase:
    """Each test starts from its own copy of a root of three generations on
    which the tool ran once in LAYOUT."""

    LAYOUT = None

    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3")

    def setUp(self):
        super().setUp()
        self.root = copy_root(self, self.template)
        self.esp = self.root.esp
        self.build(verbosity="quiet")
        self.before = snapshot_esp(self.esp)

    def build(self, *argv, verbosity="info"):
        result = run_on_root(self.root, "--layout", self.LAYOUT, *argv, verbosity)
        self.assertEqual(result.returncode, 0, describe(result))
        return result

    def verify(self):
        return run_tool("--esp", self.esp, "verify")

    def image_of(self, generation):
        entry = self.esp / "loader/entries" / self.root.entry(generation)["xen_entry"]
        return dict(parse_loader_entry(entry.read_text()))["efi"].lstrip("/")

    def replace_keeping_stamp(self, esp_path, data):
        """Writes `data` (of the file's size) in place, and gives the file
        back its mtime: what the record holds of it stays true."""
        path = self.esp / esp_path
        info = path.stat()
        self.assertEqual(len(data), info.st_size)
        path.write_bytes(data)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    def assert_repaired(self, esp_path):
        self.assertEqual(snapshot_esp(self.esp)[esp_path][2], self.before[esp_path][2])
        result = self.verify()
        self.assertEqual(result.returncode, 0, describe(result))

    def test_image_with_zeroed_headers_and_its_old_stamp_breaks_verify_and_the_next_build_repairs_it(self):
        image = self.image_of(2)
        data = bytearray((self.esp / image).read_bytes())
        data[:4096] = bytes(4096)
        self.replace_keeping_stamp(image, bytes(data))
        self.assertNotEqual(self.verify().returncode, 0, "verify did not find the damage")
        self.build()
        self.assert_repaired(image)

    def test_broken_entry_reported_by_verify_is_repaired_by_the_next_build(self):
        image = self.image_of(3)
        data = bytearray((self.esp / image).read_bytes())
        data[0:2] = b"XX"
        self.replace_keeping_stamp(image, bytes(data))
        broken = run_tool("--esp", self.esp, "--json", "verify")
        self.assertNotEqual(broken.returncode, 0, describe(broken))
        self.assertTrue(any(check["problems"] for check in json.loads(broken.stdout)["entries"]))
        self.build()
        self.assert_repaired(image)

    def test_rebuild_writes_every_image_again(self):
        for argv in (["build"], []):
            with self.subTest(argv=argv):
                images = {path: state for path, state in snapshot_esp(self.esp).items()
                          if path.startswith("EFI/xen/") and path.endswith(".efi")}
                result = run_on_root(self.root, "--layout", self.LAYOUT, "--rebuild", *argv, "info")
                self.assertEqual(result.returncode, 0, describe(result))
                after = snapshot_esp(self.esp)
                for path, (inode, _, content) in images.items():
                    self.assertNotEqual(after[path][0], inode, f"{path} was not written again")
                    self.assertEqual(after[path][2], content, f"{path} changed its bytes")
                self.assertNotIn("No change", result.stdout.splitlines(), describe(result))
                self.assertEqual(self.verify().returncode, 0)

    def test_rebuild_is_refused_by_commands_that_write_no_image(self):
        for argv in (["verify"], ["list"], ["inspect", self.esp / self.image_of(1)], ["watch"]):
            with self.subTest(command=argv[0]):
                result = run_on_root(self.root, "--rebuild", *argv)
                self.assertEqual(result.returncode, 2, describe(result))
                self.assertIn("--rebuild", result.stderr)

    def test_hand_made_image_listed_in_the_record_with_its_true_stamp_is_left_alone(self):
        mine = self.esp / "EFI/xen/mine.efi"
        shutil.copyfile(self.root.store_path(self.root.manifest["xen_efi"]), mine)
        record_path = self.esp / RECORD
        record = json.loads(record_path.read_text())
        info = mine.stat()
        record["images"]["EFI/xen/mine.efi"] = {
            "size": info.st_size, "mtime_ns": info.st_mtime_ns, "digest": sha256_file(mine),
            "recipe": "0" * 64, "config": "",
        }
        record_path.write_text(json.dumps(record))
        content = sha256_file(mine)
        for run in range(2):
            result = self.build()
            self.assertTrue(mine.is_file(), f"run {run + 1} removed a hand-made file")
            self.assertEqual(sha256_file(mine), content)
            self.assertEqual(warnings_of(result),
                             ["left alone 1 file(s) that xen-boot-builder did not write: EFI/xen/mine.efi"],
                             f"run {run + 1}: " + describe(result))

    def test_folder_at_the_record_path_costs_a_warning_not_the_run(self):
        record = self.esp / RECORD
        record.unlink()
        record.mkdir()
        for run in range(2):
            result = self.build()
            self.assertEqual(len(warnings_of(result)), 1, f"run {run + 1}: " + describe(result))
            self.assertIn(RECORD, warnings_of(result)[0])
            self.assertIn("No change", result.stdout.splitlines(), describe(result))
        self.assertTrue(record.is_dir())
        self.assertEqual({path: state for path, state in snapshot_esp(self.esp).items()},
                         {path: state for path, state in self.before.items() if path != RECORD})

    def test_a_deleted_image_is_reported_with_what_it_is(self):
        image = self.image_of(2)
        (self.esp / image).unlink()
        result = self.build()
        self.assertNotIn("No change", result.stdout.splitlines(), describe(result))
        if self.LAYOUT == "shared":
            name = os.path.basename(image)[: -len(".efi")]
            self.assertEqual(change_lines(result.stdout), {("~", name): "shared xen image"},
                             describe(result))
        else:
            self.assertEqual(change_lines(result.stdout), {("~", "xen-generation-2"): "xen image"},
                             describe(result))
        self.assert_repaired(image)


class UnifiedRecord(RecordCase, ToolTestCase):
    LAYOUT = "unified"

    def test_same_size_image_swapped_in_with_the_old_mtime_is_rebuilt(self):
        # Generation 3's image in generation 2's place: same size, other .config.
        image, other = self.image_of(2), self.image_of(3)
        data = (self.esp / other).read_bytes()
        self.assertEqual(len(data), (self.esp / image).stat().st_size, "the images differ in size")
        self.replace_keeping_stamp(image, data)
        result = self.build()
        self.assertEqual(set(change_lines(result.stdout)), {("~", "xen-generation-2")},
                         describe(result))
        self.assert_repaired(image)


class SharedRecord(RecordCase, ToolTestCase):
    LAYOUT = "shared"

    def test_a_deleted_configuration_file_is_reported_as_the_xen_config(self):
        config = "EFI/xen/xen-generation-2.cfg"
        (self.esp / config).unlink()
        result = self.build()
        self.assertEqual(change_lines(result.stdout), {("~", "xen-generation-2"): "xen config"},
                         describe(result))
        self.assert_repaired(config)


if __name__ == "__main__":
    unittest.main()
