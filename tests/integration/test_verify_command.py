"""`verify` on what users put in front of it (issue 8, "verify" and "Error
messages"): a bare `default` line in loader.conf, a folder that is not an
ESP, an image that is not a PE file, and an image for the Windows subsystem.
Each answer names what it is about and exits as the judgement says."""

import unittest

from common import (
    ToolTestCase,
    build,
    copy_root,
    describe,
    make_template_root,
    pe_subsystem,
    run_tool,
    set_pe_subsystem,
)

WINDOWS_CUI = 3


def broken_lines(result):
    return [line for line in result.stdout.splitlines() if line.startswith("BROKEN")]


class VerifyCommand(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "2")

    def built_root(self):
        root = copy_root(self, self.template)
        build(self, root)
        return root

    def verify(self, esp):
        return run_tool("--esp", esp, "verify")

    def test_bare_default_line_is_ignored_as_systemd_boot_ignores_it(self):
        # systemd-boot skips a loader.conf line without a value and boots the
        # first entry of its menu: the ESP stays bootable.
        root = self.built_root()
        loader_conf = root.esp / "loader/loader.conf"
        lines = [line for line in loader_conf.read_text().splitlines() if not line.startswith("default ")]
        loader_conf.write_text("\n".join(lines + ["default"]) + "\n")
        result = self.verify(root.esp)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(broken_lines(result), [], describe(result))

    def test_folder_without_loader_is_not_an_esp(self):
        folder = copy_root(self, self.template).path / "not-an-esp"
        (folder / "EFI/xen").mkdir(parents=True)
        result = self.verify(folder)
        self.assertNotEqual(result.returncode, 0, describe(result))
        self.assertIn(str(folder), result.stderr, describe(result))
        self.assertIn("not an ESP", result.stderr, describe(result))
        self.assertNotIn("all bootable", result.stdout, describe(result))

    def test_message_about_a_bad_image_names_the_image(self):
        root = self.built_root()
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        image.write_bytes(b"this is not a PE image\n" * 64)
        result = self.verify(root.esp)
        self.assertNotEqual(result.returncode, 0, describe(result))
        broken = broken_lines(result)
        self.assertEqual(len(broken), 1, describe(result))
        self.assertIn("EFI/xen/xen-generation-1.efi", broken[0].split(": ", 1)[1], describe(result))

    def test_windows_subsystem_image_is_not_bootable(self):
        root = self.built_root()
        image = root.esp / "EFI/xen/xen-generation-2.efi"
        set_pe_subsystem(image, WINDOWS_CUI)
        self.assertEqual(pe_subsystem(image), WINDOWS_CUI)
        result = self.verify(root.esp)
        self.assertNotEqual(result.returncode, 0, describe(result))
        broken = broken_lines(result)
        self.assertEqual(len(broken), 1, describe(result))
        self.assertIn("xen-generation-2.conf", broken[0], describe(result))
        self.assertIn("EFI/xen/xen-generation-2.efi", broken[0], describe(result))
        self.assertIn("Subsystem", broken[0], describe(result))


if __name__ == "__main__":
    unittest.main()
