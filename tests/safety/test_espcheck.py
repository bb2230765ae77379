"""The independent ESP checker the crash tests rely on: it must find what
would not boot, or the sweep would hold vacuously. An ESP made by a real run
is damaged one way at a time."""

import shutil
import unittest

import espcheck
from safetylib import XEN_417_EFI, copy_tree, describe, make_root, run_tool, scratch_folder


class EspCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.holder = unittest.TestCase()
        cls.folder = scratch_folder(cls.holder, "xbb-espcheck-")
        cls.root = make_root(cls.holder, cls.folder / "root", "--generations", "2")
        result = run_tool(cls.root, cls.root.esp)
        if result.returncode != 0:
            raise AssertionError("run failed: " + describe(result))

    @classmethod
    def tearDownClass(cls):
        cls.holder.doCleanups()

    def setUp(self):
        self.esp = self.folder / f"esp-{self._testMethodName}"
        copy_tree(self.root.esp, self.esp)
        self.addCleanup(shutil.rmtree, self.esp)

    def write_loader_conf(self, *lines):
        (self.esp / "loader/loader.conf").write_text("".join(line + "\n" for line in lines))

    def test_a_complete_esp_has_no_problem(self):
        self.assertEqual(espcheck.problems(self.esp), [])
        self.assertEqual(espcheck.bootable_entries(self.esp), {
            "nixos-generation-1.conf", "nixos-generation-2.conf", "xen-generation-1.conf", "xen-generation-2.conf"})

    def test_truncated_image(self):
        image = self.esp / "EFI/xen/xen-generation-1.efi"
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
        self.assertNotIn("xen-generation-1.conf", espcheck.bootable_entries(self.esp))
        self.assertTrue(any("beyond the end of the file" in p for p in espcheck.problems(self.esp)))

    def test_image_without_configuration(self):
        shutil.copyfile(XEN_417_EFI, self.esp / "EFI/xen/xen-generation-1.efi")
        self.assertNotIn("xen-generation-1.conf", espcheck.bootable_entries(self.esp))
        self.assertTrue(any("no .config section" in p for p in espcheck.problems(self.esp)))

    def test_missing_ramdisk_and_kernel(self):
        entry = self.root.entry(1)
        (self.esp / entry["initrd"].lstrip("/")).unlink()
        self.assertEqual({i for i in espcheck.bootable_entries(self.esp) if "generation-1" in i}, set())
        (self.esp / entry["linux"].lstrip("/")).unlink()
        self.assertEqual({i for i in espcheck.bootable_entries(self.esp) if i.startswith("xen-")}, set())

    def test_missing_image(self):
        (self.esp / "EFI/xen/xen-generation-2.efi").unlink()
        self.assertEqual(espcheck.bootable_entries(self.esp) & {"xen-generation-2.conf"}, set())
        self.assertTrue(any("default entry xen-generation-2.conf does not boot" in p
                            for p in espcheck.default_problems(self.esp)))

    def test_default_naming_no_entry(self):
        self.write_loader_conf("timeout 5", "default xen-generation-3.conf")
        self.assertEqual(espcheck.default_problems(self.esp),
                         ["loader.conf: default xen-generation-3.conf matches no entry"])

    def test_last_default_counts_and_may_omit_conf(self):
        self.write_loader_conf("default xen-generation-3.conf", "# default nothing", "default xen-generation-1")
        self.assertEqual(espcheck.default_problems(self.esp), [])

    def test_preferred_wins_over_default(self):
        (self.esp / "EFI/xen/xen-generation-2.efi").unlink()
        self.write_loader_conf("default xen-generation-1.conf", "preferred xen-generation-2.conf")
        self.assertEqual(len(espcheck.default_problems(self.esp)), 1)
        self.write_loader_conf("default xen-generation-2.conf", "preferred xen-generation-1.conf")
        self.assertEqual(espcheck.default_problems(self.esp), [])

    def test_glob_default_and_boot_counter(self):
        entries = self.esp / "loader/entries"
        (entries / "xen-generation-2.conf").rename(entries / "xen-generation-2+2-1.conf")
        self.write_loader_conf("default xen-generation-2.conf")
        self.assertEqual(espcheck.default_problems(self.esp), [])
        self.write_loader_conf("default xen-*")
        self.assertEqual(espcheck.default_problems(self.esp), [])
        (self.esp / "EFI/xen/xen-generation-1.efi").unlink()
        self.assertEqual(len(espcheck.default_problems(self.esp)), 1)

    def test_missing_loader_conf(self):
        (self.esp / "loader/loader.conf").unlink()
        self.assertEqual(espcheck.default_problems(self.esp), ["loader/loader.conf is missing or not a regular file"])


if __name__ == "__main__":
    unittest.main()
