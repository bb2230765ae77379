"""Boot partitions (issue 16): an Extended Boot Loader partition
(--xbootldr) and mirrored ESPs (--extra-esp).

XBOOTLDR: NixOS's installer puts its entries and kernels on the XBOOTLDR
partition and keeps loader.conf on the ESP; the tool must read the entries
there, write its Xen entries, images and record there (Xen reads from the
partition it started from), retarget the ESP's loader.conf, and remove what it
left on the ESP before. The roots come from mkroot, whose ESP is split the way
NixOS's installer splits it. Every result is read back independently:
plain files, `verify` with and without the partition, and the JSON
documents."""

import json
import shutil
import unittest
from pathlib import Path

from common import (
    MARKER,
    RECORD,
    ToolTestCase,
    copy_root,
    describe,
    make_root,
    make_template_root,
    run_tool,
    snapshot_esp,
    warnings_of,
)


def split_off_xbootldr(root):
    """Moves the ESP's NixOS entries (nixos-*.conf) and EFI/nixos to
    <root>/xbootldr, as NixOS's installer lays them out with
    xbootldrMountPoint (it writes them there and removes the ESP's); the
    tool's own files stay where they are. Returns the folder."""
    xbootldr = root.path / "xbootldr"
    (xbootldr / "loader/entries").mkdir(parents=True)
    (xbootldr / "EFI").mkdir()
    for entry in (root.esp / "loader/entries").glob("nixos-*.conf"):
        shutil.move(entry, xbootldr / "loader/entries" / entry.name)
    shutil.move(root.esp / "EFI/nixos", xbootldr / "EFI/nixos")
    return xbootldr


def run_split(root, xbootldr, *argv):
    return run_tool("--root", root.path, "--esp", root.esp, "--xbootldr", xbootldr, *argv)


def xen_names(folder):
    return sorted(path.name for path in (folder / "loader/entries").glob("xen-*.conf"))


def loader_conf_value(esp, key):
    for line in (esp / "loader/loader.conf").read_text().splitlines():
        words = line.split(maxsplit=1)
        if words and words[0] == key:
            return words[1]
    return None


class Xbootldr(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3", "--specialisation", "debug")

    def check_installed_on(self, root, xbootldr):
        """Every Xen entry on XBOOTLDR with the files it names there; none of
        the tool's files on the ESP; the ESP's loader.conf names the default
        generation's Xen entry; verify agrees only when told of XBOOTLDR."""
        expected = sorted(entry["xen_entry"] for entry in root.xen_entries())
        self.assertEqual(xen_names(xbootldr), expected)
        self.assertEqual(xen_names(root.esp), [])
        self.assertFalse((root.esp / "EFI/xen").exists(), list((root.esp / "EFI/xen").glob("*"))
                         if (root.esp / "EFI/xen").exists() else None)
        self.assertTrue((xbootldr / RECORD).is_file())
        for name in expected:
            text = (xbootldr / "loader/entries" / name).read_text()
            self.assertTrue(text.startswith(MARKER + "\n"), name)
            efi = next(line.split(maxsplit=1)[1] for line in text.splitlines() if line.startswith("efi "))
            self.assertTrue((xbootldr / efi.lstrip("/")).is_file(), f"{name}: {efi} is not on XBOOTLDR")
        default = root.manifest["default_entry"]
        self.assertEqual(loader_conf_value(root.esp, "default"), "xen-" + default.removeprefix("nixos-"))
        verified = run_tool("--esp", root.esp, "--xbootldr", xbootldr, "--json", "verify")
        self.assertEqual(verified.returncode, 0, describe(verified))
        document = json.loads(verified.stdout)
        self.assertEqual(sorted(check["entry"] for check in document["entries"]), expected)
        alone = run_tool("--esp", root.esp, "verify")
        self.assertEqual(alone.returncode, 1, "the ESP alone has no entry its default selects: " + describe(alone))
        self.assertIn("selects no entry", alone.stdout)

    def test_fresh_install_goes_to_xbootldr_and_a_rerun_writes_nothing(self):
        root = copy_root(self, self.template)
        xbootldr = split_off_xbootldr(root)
        result = run_split(root, xbootldr, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(warnings_of(result), [])
        self.check_installed_on(root, xbootldr)
        before = (snapshot_esp(root.esp), snapshot_esp(xbootldr))
        again = run_split(root, xbootldr, "info")
        self.assertEqual(again.returncode, 0, describe(again))
        self.assertIn("No change", again.stdout)
        self.assertEqual((snapshot_esp(root.esp), snapshot_esp(xbootldr)), before)

    def test_without_it_such_a_machine_gets_no_xen_entry(self):
        root = copy_root(self, self.template)
        xbootldr = split_off_xbootldr(root)
        result = run_tool("--root", root.path, "--esp", root.esp, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertIn("none found", result.stdout)
        self.assertEqual(xen_names(xbootldr), [])

    def test_migration_from_the_esp_removes_the_old_files_last(self):
        root = copy_root(self, self.template)
        first = run_tool("--root", root.path, "--esp", root.esp, "info")
        self.assertEqual(first.returncode, 0, describe(first))
        self.assertNotEqual(xen_names(root.esp), [])
        hand_made = root.esp / "EFI/xen/mine.efi"
        hand_made.write_bytes(b"not ours")
        xbootldr = split_off_xbootldr(root)
        result = run_split(root, xbootldr, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_names(root.esp), [])
        self.assertEqual(sorted(path.name for path in (root.esp / "EFI/xen").iterdir()), ["mine.efi"])
        self.assertTrue(any("EFI/xen/mine.efi" in warning for warning in warnings_of(result)), describe(result))
        self.assertIn(f"on {root.esp}", result.stdout, "the ESP's removals are reported as such")
        hand_made.unlink()
        (root.esp / "EFI/xen").rmdir()
        self.check_installed_on(root, xbootldr)

    def test_plan_and_list_read_both_partitions_and_write_nothing(self):
        root = copy_root(self, self.template)
        xbootldr = split_off_xbootldr(root)
        before = (snapshot_esp(root.esp), snapshot_esp(xbootldr))
        planned = run_split(root, xbootldr, "--json", "plan")
        self.assertEqual(planned.returncode, 0, describe(planned))
        document = json.loads(planned.stdout)
        self.assertIn("loader/loader.conf", document["writes"])
        self.assertIn(f"loader/entries/{root.xen_entries()[0]['xen_entry']}", document["writes"])
        listed = run_split(root, xbootldr, "--json", "list")
        self.assertEqual(listed.returncode, 0, describe(listed))
        generations = json.loads(listed.stdout)["generations"]
        self.assertEqual(sorted(g["label"] for g in generations if g["status"] == "xen-entry"),
                         sorted(f"nixos-{e['rest']}" for e in root.xen_entries()))
        self.assertEqual((snapshot_esp(root.esp), snapshot_esp(xbootldr)), before)

    def test_xbootldr_that_is_the_esp_is_the_same_as_none(self):
        with_option = copy_root(self, self.template)
        without = copy_root(self, self.template)
        one = run_split(with_option, with_option.esp, "info")
        other = run_tool("--root", without.path, "--esp", without.esp, "info")
        self.assertEqual(one.returncode, 0, describe(one))
        self.assertEqual(other.returncode, 0, describe(other))
        self.assertEqual(one.stdout, other.stdout)
        self.assertEqual(xen_names(with_option.esp), xen_names(without.esp))
        contents = lambda esp: {path: state[2] for path, state in snapshot_esp(esp).items() if path != RECORD}
        self.assertEqual(contents(with_option.esp), contents(without.esp))


class ExtraEsp(ToolTestCase):
    """Mirrored ESPs on a Lanzaboote-like machine: generations from the
    profiles, self-contained images that need nothing else on the ESP."""

    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--scheme", "lanzaboote", "--generations", "2")

    def mirror(self, root, name):
        esp = root.path / name
        (esp / "loader").mkdir(parents=True)
        return esp

    def test_each_extra_esp_gets_the_same_entries_and_images(self):
        root = copy_root(self, self.template)
        second, third = self.mirror(root, "esp2"), self.mirror(root, "esp3")
        result = run_tool("--root", root.path, "--esp", root.esp, "--source", "profiles",
                          "--extra-esp", second, "--extra-esp", third, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        main = xen_names(root.esp)
        self.assertNotEqual(main, [])
        for esp in (second, third):
            self.assertEqual(xen_names(esp), main)
            for name in main:
                self.assertEqual((esp / "loader/entries" / name).read_bytes(),
                                 (root.esp / "loader/entries" / name).read_bytes())
            images = sorted(path.name for path in (esp / "EFI/xen").glob("*.efi"))
            self.assertEqual(images, sorted(path.name for path in (root.esp / "EFI/xen").glob("*.efi")))
            for image in images:
                self.assertEqual((esp / "EFI/xen" / image).read_bytes(), (root.esp / "EFI/xen" / image).read_bytes())
            verified = run_tool("--esp", esp, "verify")
            self.assertEqual(verified.returncode, 0, describe(verified))
            self.assertIn(f"on {esp}", result.stdout)
        again = run_tool("--root", root.path, "--esp", root.esp, "--source", "profiles",
                         "--extra-esp", second, "--extra-esp", third, "info")
        self.assertIn("No change", again.stdout, describe(again))

    def test_a_failure_on_one_esp_is_named_and_the_others_are_updated(self):
        root = copy_root(self, self.template)
        missing = root.path / "not-mounted"
        good = self.mirror(root, "esp2")
        result = run_tool("--root", root.path, "--esp", root.esp, "--source", "profiles",
                          "--extra-esp", missing, "--extra-esp", good, "info")
        self.assertEqual(result.returncode, 1, describe(result))
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        self.assertEqual(len(errors), 1, describe(result))
        self.assertIn(str(missing), errors[0])
        self.assertNotEqual(xen_names(root.esp), [])
        self.assertEqual(xen_names(good), xen_names(root.esp))

    def test_verify_refuses_extra_esps(self):
        root = copy_root(self, self.template)
        result = run_tool("--esp", root.esp, "--extra-esp", self.mirror(root, "esp2"), "verify")
        self.assertEqual(result.returncode, 2, describe(result))
        self.assertIn("--extra-esp", result.stderr)


if __name__ == "__main__":
    unittest.main()
