"""The fast path (issue 9): a run with nothing to change neither reads the
bodies of images nor rebuilds them; it trusts its record
(EFI/xen/xen-boot-builder.json) where an image's size and mtime are the
recorded ones and a read of its headers and .config (a few KiB, issue 15)
finds them as recorded, and must still notice and repair each of: a missing
image, a truncated one, one replaced by other bytes (another mtime, or the
same stamp with damaged headers), an image whose configuration would
change, and a record that is missing, damaged or of another version (then
it reads, never trusts, writes nothing else and rewrites the record).

What a run reads and writes is seen from outside with strace -y: the files
behind every read, mmap and open, and every rename and unlink. Each case runs
in both layouts."""

import json
import os
import sys
import unittest
from collections import Counter

from common import (
    PROGRESS_LINE,
    RECORD,
    SOURCE_DIR,
    ToolTestCase,
    copy_root,
    describe,
    extract_section,
    expected_xen_config,
    make_template_root,
    parse_loader_entry,
    rewrite_bootspec,
    run_on_root,
    run_traced,
    snapshot_esp,
    without_record,
)

sys.path.insert(0, str(SOURCE_DIR / "tests" / "safety"))
import espcheck  # noqa: E402  (tests/safety: reads an ESP as firmware, systemd-boot and Xen would)

READS = "read,pread64,readv,preadv,preadv2,mmap,sendfile,copy_file_range,splice"
CHANGES = "renameat,renameat2,rename,unlinkat,unlink"
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
NEW_PARAMS = ["dom0_mem=2048M,max:2048M", "loglvl=all"]
# What the check of an image the record vouches for reads of it: its headers
# (4 KiB) and its .config (under 1 KiB here), never its body.
CHECK_BYTES = 8 * 1024


class Traced:
    """What one traced run did, as real paths: the files it opened (and how
    often), read (read, mmap...), opened for writing, renamed into place and
    unlinked."""

    def __init__(self, result, calls):
        self.result = result
        self.opened, self.read, self.written, self.renamed, self.unlinked = set(), set(), set(), set(), set()
        self.mapped = set()
        self.opens, self.bytes_read = Counter(), Counter()
        for call in calls:
            if call.result < 0:
                continue
            if call.name == "openat":
                path = os.path.realpath(os.path.join(call.fd_paths[0], call.strings[0]) if call.fd_paths
                                        else call.strings[0])
                self.opened.add(path)
                self.opens[path] += 1
                if any(flag in call.arguments for flag in WRITE_FLAGS):
                    self.written.add(path)
            elif call.name in CHANGES.split(","):
                folder = call.fd_paths[-1] if call.fd_paths else ""
                target = os.path.realpath(os.path.join(folder, call.strings[-1]))
                (self.renamed if call.name.startswith("rename") else self.unlinked).add(target)
            elif call.fd_paths:
                path = os.path.realpath(call.fd_paths[-1])
                self.read.add(path)
                if call.name == "mmap":
                    self.mapped.add(path)
                else:
                    self.bytes_read[path] += call.result


class FastPath:
    """The cases, for one layout (LAYOUT). Each test starts from a root of
    its own on which the tool ran once (the record names host paths, so a
    copy of a root is a root it has not seen)."""

    LAYOUT = None

    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3")

    def setUp(self):
        super().setUp()
        self.fresh_root()

    def fresh_root(self):
        self.root = copy_root(self, self.template)
        self.esp = self.root.esp
        self.xen_efi = os.path.realpath(self.root.store_path(self.root.manifest["xen_efi"]))
        result = run_on_root(self.root, "--layout", self.LAYOUT, "quiet")
        self.assertEqual(result.returncode, 0, "first run failed: " + describe(result))
        self.before = snapshot_esp(self.esp)

    # ------------------------------------------------------------ helpers

    def run_traced(self, *argv, verbosity="info"):
        result, calls = run_traced(self, self.root, "--layout", self.LAYOUT, *argv, verbosity,
                                   calls=f"openat,{READS},{CHANGES}", fd_paths=True)
        self.assertEqual(result.returncode, 0, describe(result))
        return Traced(result, calls)

    def images(self):
        """Real paths of the images on the ESP."""
        return {os.path.realpath(path) for path in (self.esp / "EFI/xen").glob("*.efi")}

    def image_of(self, generation):
        """The ESP path of the image generation's Xen entry boots."""
        entry = self.esp / "loader/entries" / self.root.entry(generation)["xen_entry"]
        return dict(parse_loader_entry(entry.read_text()))["efi"].lstrip("/")

    def configuration_file_of(self, generation):
        """The ESP path of the file holding the generation's configuration:
        its image (unified) or its .cfg (shared)."""
        if self.LAYOUT == "unified":
            return self.image_of(generation)
        return f"EFI/xen/xen-{self.root.entry(generation)['rest']}.cfg"

    def esp_real(self, esp_path):
        return os.path.realpath(self.esp / esp_path)

    def changed(self):
        """ESP paths whose state (inode, mtime, content) differs from the
        first run's, or that appeared or went."""
        after = snapshot_esp(self.esp)
        return {path for path in set(after) | set(self.before) if after.get(path) != self.before.get(path)}

    def check_reads_no_image(self, run):
        """No image body was read, nor xen.efi."""
        self.check_reads_no_image_body(run)
        self.assertNotIn(self.xen_efi, run.read, "xen.efi was read")

    def check_reads_no_image_body(self, run):
        """Each image on the ESP was opened once, and read for its headers
        and .config only."""
        self.assertEqual(run.mapped & self.images(), set(), "an image on the ESP was mapped")
        self.assertEqual({image: run.opens[image] for image in self.images()},
                         {image: 1 for image in self.images()}, "an image was not opened once")
        for image in self.images():
            self.assertLessEqual(run.bytes_read[image], CHECK_BYTES, f"{image}: its body was read")

    def check_repaired(self, esp_path):
        """The file is back as the first run wrote it, the ESP boots, and the
        record vouches for the new file (the next run reads no image)."""
        self.assertEqual(snapshot_esp(self.esp)[esp_path][2], self.before[esp_path][2])
        self.assertEqual(espcheck.problems(self.esp), [])
        self.check_reads_no_image(self.run_traced())

    # ------------------------------------------------------------ cases

    def test_second_run_writes_nothing_and_reads_no_image(self):
        run = self.run_traced(verbosity="default")
        self.assertEqual(run.result.stdout, PROGRESS_LINE + "\n", describe(run.result))
        self.assertEqual(run.result.stderr, "")
        self.assertEqual(self.changed(), set())
        self.assertEqual((run.written, run.renamed, run.unlinked), (set(), set(), set()))
        self.check_reads_no_image(run)

    def test_missing_image_is_written_again(self):
        image = self.image_of(2)
        (self.esp / image).unlink()
        run = self.run_traced()
        self.assertIn(self.esp_real(image), run.renamed)
        self.assertEqual(self.changed(), {image, RECORD})
        self.check_repaired(image)

    def test_truncated_image_is_read_and_written_again(self):
        image = self.esp / self.image_of(2)
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
        run = self.run_traced()
        self.assertIn(os.path.realpath(image), run.read)
        self.assertIn(os.path.realpath(image), run.renamed)
        self.assertEqual(self.changed(), {self.image_of(2), RECORD})
        self.check_repaired(self.image_of(2))

    def test_image_replaced_by_other_bytes_of_the_same_size_is_read_and_written_again(self):
        image = self.esp / self.image_of(2)
        data = bytearray(image.read_bytes())
        data[0x100:0x200] = bytes(0x100)
        info = image.stat()
        image.write_bytes(bytes(data))
        os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        self.assertEqual(image.stat().st_size, info.st_size)
        run = self.run_traced()
        self.assertIn(os.path.realpath(image), run.read)
        self.assertIn(os.path.realpath(image), run.renamed)
        self.check_repaired(self.image_of(2))

    def test_image_damaged_under_the_same_size_and_mtime_is_read_and_written_again(self):
        # The stamp alone is no longer the contract (issue 15): the headers
        # that no longer parse are found by the check, and the image is made again.
        image = self.esp / self.image_of(2)
        data = bytearray(image.read_bytes())
        data[0:2] = b"XX"  # no longer an MZ executable
        info = image.stat()
        image.write_bytes(bytes(data))
        os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns))
        run = self.run_traced()
        self.assertGreater(run.bytes_read[os.path.realpath(image)], CHECK_BYTES, "the image was not read whole")
        self.assertIn(os.path.realpath(image), run.renamed)
        self.check_repaired(self.image_of(2))

    def test_verify_reads_every_image(self):
        result, calls = run_traced(self, self.root, "verify", calls=f"openat,{READS}", fd_paths=True)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(Traced(result, calls).read & self.images(), self.images())

    def test_changed_configuration_rewrites_only_its_file_and_reads_no_image(self):
        entry = self.root.entry(2)

        def set_xen_params(document):
            document["org.xenproject.bootspec.v1"]["xenParams"] = NEW_PARAMS
            document["org.xenproject.bootspec.v2"]["params"] = NEW_PARAMS

        rewrite_bootspec(self.root, entry, set_xen_params)
        run = self.run_traced()
        carrier = self.configuration_file_of(2)
        # A unified image is made again (from xen.efi), a shared layout
        # rewrites the .cfg only; the record follows, as it keeps the stamp of
        # each image, configuration and entry it vouches for.
        self.assertEqual(self.changed(), {carrier, RECORD})
        self.check_reads_no_image_body(run)
        self.assertEqual(run.renamed, {self.esp_real(carrier), self.esp_real(RECORD)})
        expected = expected_xen_config(dict(entry, xen_params=NEW_PARAMS))
        if self.LAYOUT == "unified":
            self.assertEqual(extract_section(self.esp / carrier, ".config").decode(), expected)
        else:
            self.assertEqual((self.esp / carrier).read_text(), expected)
        self.assertEqual(espcheck.problems(self.esp), [])

    def test_unusable_record_means_reading_and_writing_nothing_else(self):
        def with_field(text, key, change):
            document = json.loads(text)
            document[key] = change(document[key])
            return json.dumps(document)

        damages = {
            "missing": lambda text: None,
            "garbage": lambda text: "\x00\xffnot a record at all\n",
            "truncated": lambda text: text[: len(text) // 2],
            "another version": lambda text: with_field(text, "version", lambda version: version + 1),
            "another format": lambda text: with_field(text, "format", lambda name: name + " of another tool"),
        }
        for damage, change in damages.items():
            with self.subTest(damage=damage):
                self.fresh_root()
                record = self.esp / RECORD
                original = record.read_text()
                text = change(original)
                if text is None:
                    record.unlink()
                else:
                    record.write_text(text)
                before = snapshot_esp(self.esp)
                run = self.run_traced()
                self.assertEqual(run.read & self.images(), self.images(), "not every image was read")
                self.assertEqual({image: run.opens[image] for image in self.images()},
                                 {image: 1 for image in self.images()}, "an image was read more than once")
                self.assertEqual(run.renamed, {self.esp_real(RECORD)})
                self.assertEqual(run.unlinked, set())
                after = snapshot_esp(self.esp)
                self.assertEqual(without_record(after), without_record(before))
                self.assertEqual(record.read_text(), original)
                self.assertEqual(espcheck.problems(self.esp), [])
                self.check_reads_no_image(self.run_traced())

    def test_touched_xen_efi_is_read_again_and_equal_images_are_not_written(self):
        info = os.stat(self.xen_efi)
        os.utime(self.xen_efi, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        run = self.run_traced()
        self.assertIn(self.xen_efi, run.read)
        self.assertEqual(run.renamed, {self.esp_real(RECORD)})
        self.assertEqual(self.changed(), {RECORD})
        self.check_reads_no_image(self.run_traced())


class UnifiedFastPath(FastPath, ToolTestCase):
    LAYOUT = "unified"


class SharedFastPath(FastPath, ToolTestCase):
    LAYOUT = "shared"


if __name__ == "__main__":
    unittest.main()
