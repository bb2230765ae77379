"""Hostile inputs in the store (issue 8, "Crashes, hangs and unbounded
memory"): a bootspec nested 50,000 arrays deep; a FIFO or a character device
where a bootspec, a xen.efi, a kernel or an initrd is expected; a 1 GB sparse
efiPath; a 100 MB boot.json; a number too large for a double in an extension
the tool does not read.

Each costs at most its own generation (spec 5): the run ends (killed after
HANG_TIMEOUT seconds otherwise) within a bounded memory, warns naming the
generation and the file, the other generations get their entries, and it
exits 0, or 1 when the hostile generation is the default one."""

import json
import os
import stat
import unittest

from common import (
    ToolTestCase,
    copy_root,
    describe,
    make_template_root,
    rewrite_bootspec,
    run_bounded_on_root,
    warnings_of,
    xen_entry_files,
)

GENERATIONS = 3
VICTIM = 2  # not the default generation (the newest): the run must succeed
PEAK_RSS_LIMIT = 200 << 20  # a run over a few MB of inputs needs far less
HOSTILE_DIR = "/nix/store/" + "0" * 32 + "-hostile"
DEEP = 50_000
BIG_BOOTSPEC = 100 << 20
SPARSE_IMAGE = 1 << 30


def bootspec_path(root, entry):
    return root.store_path(entry["toplevel"] + "/boot.json")


def hostile_store_file(root, name):
    """A new store path for a hostile file: (its /nix/store path, its host path)."""
    absolute = f"{HOSTILE_DIR}/{name}"
    host = root.store_path(absolute)
    host.parent.mkdir(parents=True, exist_ok=True)
    return absolute, host


def make_fifo(path):
    os.mkfifo(path, 0o444)


def make_zero_device(path):
    """A character device like /dev/zero (major 1, minor 5): endless bytes."""
    os.mknod(path, stat.S_IFCHR | 0o444, os.makedev(1, 5))


def bootspec_text_with(root, entry, first_key_text):
    """The entry's bootspec as NixOS wrote it, with `"key": value` text
    inserted as its first member (followed by every real key)."""
    text = bootspec_path(root, entry).read_text()
    return "{" + first_key_text + ", " + text.lstrip()[1:]


def replace_bootspec(root, entry, make):
    path = bootspec_path(root, entry)
    path.unlink()
    make(path)
    return path


def point_xen_at(root, entry, absolute):
    def change(document):
        document["org.xenproject.bootspec.v1"]["xen"] = absolute
        document["org.xenproject.bootspec.v2"]["efiPath"] = absolute

    rewrite_bootspec(root, entry, change)


def point_boot_file_at(key, absolute):
    def change(document):
        document["org.nixos.bootspec.v1"][key] = absolute

    return change


class HostileStore(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.entries_root = make_template_root(cls, "--generations", str(GENERATIONS))
        # Kernels and initrds are read from the store only to be embedded:
        # from the profiles, as on a Lanzaboote machine.
        cls.profiles_root = make_template_root(
            cls, "--scheme", "lanzaboote", "--generations", str(GENERATIONS)
        )

    def run_with_victim(self, root, victim, named, source=()):
        """Run the build; require that only `victim` lost its entry, with a
        warning naming it and `named` (the hostile file's host path)."""
        result = run_bounded_on_root(root, *source, "info")
        self.assertFalse(result.timed_out, describe(result))
        self.assertEqual(result.returncode, 1 if victim["is_default"] else 0, describe(result))
        self.assertLess(result.peak_rss, PEAK_RSS_LIMIT, describe(result))
        others = sorted(e["xen_entry"] for e in root.xen_entries() if e is not victim)
        self.assertEqual(xen_entry_files(root), others, describe(result))
        label = f"nixos-{victim['rest']}"
        about_victim = [w for w in warnings_of(result) if w.startswith(label + ":")]
        self.assertTrue(any(str(named) in w for w in about_victim), describe(result))
        if victim["is_default"]:
            errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
            self.assertTrue(any(label in line for line in errors), describe(result))
        return result

    def test_deeply_nested_bootspec_costs_only_its_generation(self):
        for number in (VICTIM, GENERATIONS):  # another generation, then the default one
            with self.subTest(victim=number):
                root = copy_root(self, self.entries_root)
                victim = root.entry(number)
                deep = '"com.example.deep": ' + "[" * DEEP + "]" * DEEP
                text = bootspec_text_with(root, victim, deep)
                path = replace_bootspec(root, victim, lambda p: p.write_text(text))
                self.run_with_victim(root, victim, path)

    def test_non_regular_inputs_are_refused_before_reading(self):
        # (what, source, how to plant it): a FIFO blocks whoever opens it, a
        # device like /dev/zero never ends.
        kinds = {"FIFO": make_fifo, "character device": make_zero_device}
        for kind, make in kinds.items():
            for what in ("boot.json", "efiPath", "kernel", "initrd"):
                with self.subTest(input=what, kind=kind):
                    if what in ("kernel", "initrd"):
                        root = copy_root(self, self.profiles_root)
                        source = ("--source", "profiles")
                    else:
                        root = copy_root(self, self.entries_root)
                        source = ()
                    victim = root.entry(VICTIM)
                    if what == "boot.json":
                        path = replace_bootspec(root, victim, make)
                    else:
                        absolute, path = hostile_store_file(root, what)
                        make(path)
                        if what == "efiPath":
                            point_xen_at(root, victim, absolute)
                        else:
                            rewrite_bootspec(root, victim, point_boot_file_at(what, absolute))
                    result = self.run_with_victim(root, victim, path, source)
                    self.assertTrue(
                        any("regular file" in w for w in warnings_of(result)), describe(result)
                    )

    def test_sparse_1gb_efipath_is_refused_without_reading_it(self):
        root = copy_root(self, self.entries_root)
        victim = root.entry(VICTIM)
        absolute, path = hostile_store_file(root, "xen.efi")
        with open(path, "wb") as image:
            image.truncate(SPARSE_IMAGE)
        point_xen_at(root, victim, absolute)
        self.run_with_victim(root, victim, path)

    def test_100mb_bootspec_is_refused_without_reading_it(self):
        root = copy_root(self, self.entries_root)
        victim = root.entry(VICTIM)
        path = bootspec_path(root, victim)
        real = path.read_text().lstrip()[1:]
        path.chmod(0o644)
        with open(path, "w") as bootspec:
            bootspec.write('{"com.example.big": [')
            chunk = "0," * (1 << 19)
            for _ in range(BIG_BOOTSPEC // len(chunk)):
                bootspec.write(chunk)
            bootspec.write("0], " + real)
        self.assertGreaterEqual(path.stat().st_size, BIG_BOOTSPEC)
        self.run_with_victim(root, victim, path)

    def test_huge_number_in_an_unread_extension_does_not_matter(self):
        root = copy_root(self, self.entries_root)
        victim = root.entry(VICTIM)
        text = bootspec_text_with(root, victim, '"com.example": {"n": 1e400}')
        json.loads(text)  # Python reads it too (as infinity): the document is valid JSON
        path = bootspec_path(root, victim)
        path.chmod(0o644)
        path.write_text(text)
        result = run_bounded_on_root(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.xen_entries()))
        self.assertEqual(warnings_of(result), [], describe(result))


if __name__ == "__main__":
    unittest.main()
