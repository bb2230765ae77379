"""The tool on a real FAT32 file system, as ESPs are: an image made with
mkfs.vfat and mounted with Debian's fusefat (the kernel here has no vfat, but
/dev/fuse works). A build, a rerun that must write nothing, `verify`, and a
generation collected between runs; afterwards the image is unmounted and
fsck.vfat must find it clean. fusefat reports 0 blocks in statfs for FAT32,
so these runs also cover a file system that does not say how big it is.

The ESP starts as what systemd-boot's installer wrote (mkroot's ESP tree,
copied onto the mount); expectations come from mkroot's manifest and the
spec, read with plain parsing and binutils."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from common import (
    RECORD,
    ToolTestCase,
    describe,
    expected_xen_config,
    expected_xen_entry,
    extract_section,
    make_root,
    parse_loader_entry,
    run_tool,
    section_headers,
    sha256_file,
    without_record,
)

IMAGE_MIB = 64  # FAT32 with 512-byte clusters: about 129,000 clusters
MOUNT_WAIT = 10  # seconds fusefat may take to mount or to exit after unmounting
OLD_MTIME = 1577836800  # 2020-01-01 00:00:00, even (FAT keeps mtimes in 2 s steps)


class FatEsp:
    """A FAT32 image mounted read-write with fusefat (in the foreground, so
    that unmounting can wait for it to finish writing the image)."""

    def __init__(self, test):
        self.test = test
        folder = Path(tempfile.mkdtemp(prefix="xbb-fat-"))
        test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.image = folder / "esp.img"
        self.path = folder / "esp"
        self.path.mkdir()
        with open(self.image, "wb") as image:
            image.truncate(IMAGE_MIB << 20)
        self.run("mkfs.vfat", "-F", "32", self.image)
        self.log = folder / "fusefat.log"
        with open(self.log, "wb") as log:
            self.daemon = subprocess.Popen(
                ["fusefat", "-f", "-o", "rw+", str(self.image), str(self.path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        test.addCleanup(self.unmount)
        deadline = time.monotonic() + MOUNT_WAIT
        while not os.path.ismount(self.path):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                test.fail(f"fusefat did not mount {self.image}: {self.log.read_text(errors='replace')}")
            time.sleep(0.02)

    def run(self, *argv):
        result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=False)
        self.test.assertEqual(result.returncode, 0, f"{' '.join(map(str, argv))}: {describe(result)}")
        return result

    def unmount(self):
        """Unmount (once) and wait until fusefat has exited."""
        if os.path.ismount(self.path):
            result = subprocess.run(["fusermount", "-u", str(self.path)], capture_output=True, text=True)
            if result.returncode != 0:
                subprocess.run(["fusermount", "-u", "-z", str(self.path)], capture_output=True)
        try:
            self.daemon.wait(timeout=MOUNT_WAIT)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    def fsck(self):
        """Unmount, then check the image without repairing it."""
        self.unmount()
        self.test.assertEqual(self.daemon.returncode, 0, self.log.read_text(errors="replace"))
        return subprocess.run(["fsck.vfat", "-n", str(self.image)], capture_output=True, text=True, check=False)


def copy_esp(source, destination):
    """Copy an ESP tree, contents only: FAT keeps no owners or modes."""
    for folder, _, files in os.walk(source):
        target = Path(destination) / Path(folder).relative_to(source)
        target.mkdir(exist_ok=True)
        for name in files:
            shutil.copyfile(Path(folder) / name, target / name)


def files_on(esp):
    """Every file under the ESP: relative path -> (sha256, mtime in ns)."""
    return {
        str(path.relative_to(esp)): (sha256_file(path), path.stat().st_mtime_ns)
        for path in sorted(Path(esp).rglob("*"))
        if path.is_file()
    }


def age_every_file(esp):
    """Set every file's mtime to OLD_MTIME, so that a rewrite with the same
    bytes still shows."""
    for path in Path(esp).rglob("*"):
        if path.is_file():
            os.utime(path, (OLD_MTIME, OLD_MTIME))


class FatTestCase(ToolTestCase):
    def setUp(self):
        super().setUp()
        for tool in ("mkfs.vfat", "fsck.vfat", "fusefat", "fusermount"):
            self.assertIsNotNone(shutil.which(tool), f"missing {tool} (run .ci/setup)")

    def fat_esp_for(self, root):
        """A fresh FAT32 ESP holding what systemd-boot's installer wrote for `root`."""
        fat = FatEsp(self)
        copy_esp(root.esp, fat.path)
        return fat

    def run_on_fat(self, root, fat, *argv):
        return run_tool("--root", root.path, "--esp", fat.path, *argv)

    def build_on_fat(self, root, fat):
        result = self.run_on_fat(root, fat, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        return result

    def check_xen_entries(self, root, fat, entries):
        """Exactly `entries` (manifest entries) have Xen entries and images, as
        the spec owes them."""
        esp = fat.path
        self.assertEqual(sorted(p.name for p in (esp / "loader/entries").glob("xen-*.conf")),
                         sorted(entry["xen_entry"] for entry in entries))
        self.assertEqual(sorted(f"EFI/xen/{p.name}" for p in (esp / "EFI/xen").iterdir()),
                         sorted([RECORD, *(f"EFI/xen/{entry['xen_image']}" for entry in entries)]))
        source = root.store_path(root.manifest["xen_efi"])
        source_sections = section_headers(source)
        for entry in entries:
            text = (esp / "loader/entries" / entry["xen_entry"]).read_text()
            self.assertEqual(parse_loader_entry(text), expected_xen_entry(entry), entry["xen_entry"])
            image = esp / "EFI/xen" / entry["xen_image"]
            self.assertEqual(extract_section(image, ".config").decode(), expected_xen_config(entry), image.name)
            image_sections = section_headers(image)
            self.assertEqual(set(image_sections) - set(source_sections), {".config"}, image.name)
            for name in (".text", ".rodata", ".init", ".data", ".reloc"):
                self.assertEqual(extract_section(image, name), extract_section(source, name), f"{image.name} {name}")

    def check_verify(self, fat, entries):
        result = run_tool("--esp", fat.path, "--json", "verify")
        self.assertEqual(result.returncode, 0, describe(result))
        report = json.loads(result.stdout)
        self.assertTrue(report["ok"], result.stdout)
        self.assertEqual(sorted(check["entry"] for check in report["entries"]),
                         sorted(entry["xen_entry"] for entry in entries))
        self.assertEqual([check for check in report["entries"] if check["problems"]], [])

    def check_rerun_writes_nothing(self, root, fat):
        """Aged files make the record's stamps stale: the rerun reads the
        images and rewrites only the record; the next one trusts the record
        and writes nothing at all."""
        age_every_file(fat.path)
        before = files_on(fat.path)
        result = self.build_on_fat(root, fat)
        after = files_on(fat.path)
        self.assertEqual(without_record(after), without_record(before), "the rerun wrote to the ESP: " + describe(result))
        result = self.build_on_fat(root, fat)
        self.assertEqual(files_on(fat.path), after, "the second rerun wrote to the ESP: " + describe(result))

    def check_image_is_clean(self, fat):
        result = fat.fsck()
        self.assertEqual(result.returncode, 0, describe(result))


class BuildOnFat32(FatTestCase):
    def test_build_rerun_and_verify_on_a_fat32_esp(self):
        root = make_root(self, "--generations", "3", "--specialisation", "debug")
        fat = self.fat_esp_for(root)
        installed = files_on(fat.path)

        self.assertEqual(os.statvfs(fat.path).f_blocks, 0, "fusefat now reports a size: no longer the case tested")

        result = self.build_on_fat(root, fat)

        self.assertIn(f"warning: {fat.path}: the file system reports no size (f_blocks 0); free space not checked",
                      result.stderr.splitlines())
        self.check_xen_entries(root, fat, root.xen_entries())
        default = root.manifest["default_entry"]
        self.assertEqual(
            (fat.path / "loader/loader.conf").read_text(),
            root.manifest["loader_conf"].replace(f"default {default}", f"default xen-{default.removeprefix('nixos-')}"),
        )
        after = files_on(fat.path)
        self.assertEqual({path: after[path] for path in installed if path != "loader/loader.conf"},
                         {path: state for path, state in installed.items() if path != "loader/loader.conf"},
                         "files systemd-boot's installer wrote were changed")
        self.assertEqual([path for path in after if ".xbb-tmp-" in path], [])

        self.check_rerun_writes_nothing(root, fat)
        self.check_verify(fat, root.xen_entries())
        self.check_image_is_clean(fat)

    def test_collected_generation_loses_its_xen_entry_and_image_on_a_fat32_esp(self):
        root = make_root(self, "--generations", "3")
        fat = self.fat_esp_for(root)
        self.build_on_fat(root, fat)
        self.check_xen_entries(root, fat, root.xen_entries())

        # What a garbage collection and systemd-boot's installer do to
        # generation 1: its profile link, its entry and the files only it used go.
        collected = root.entry(1)
        kept = [entry for entry in root.xen_entries() if entry["generation"] != 1]
        (root.path / "nix/var/nix/profiles/system-1-link").unlink()
        (fat.path / "loader/entries" / collected["entry"]).unlink()
        still_used = {entry[key] for entry in kept for key in ("linux", "initrd")}
        for key in ("linux", "initrd"):
            if collected[key] not in still_used:
                (fat.path / collected[key].lstrip("/")).unlink()
        age_every_file(fat.path)
        before = files_on(fat.path)

        result = self.build_on_fat(root, fat)

        self.assertIn(f"-{collected['xen_entry'].removesuffix('.conf')}", result.stdout.splitlines(), describe(result))
        self.check_xen_entries(root, fat, kept)
        after = files_on(fat.path)
        gone = {f"loader/entries/{collected['xen_entry']}", f"EFI/xen/{collected['xen_image']}"}
        self.assertEqual(set(before) - set(after), gone)
        self.assertEqual(without_record(after), {path: before[path] for path in without_record(after)},
                         "files of the other generations were rewritten")
        self.check_verify(fat, kept)
        self.check_image_is_clean(fat)


if __name__ == "__main__":
    unittest.main()
