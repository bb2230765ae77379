"""`build` and `verify` judge bootability the same way (issue 8): what
`verify` would call not bootable, `build` refuses for that generation, with
the reason. For each input below, the build exits 0, warns naming the
generation and the reason, gives every other generation its entry, and
`verify` then finds everything on the ESP bootable:

- a byte outside ASCII in Xen or kernel parameters (Xen's configuration
  parser takes ASCII only);
- a control character (VT, FF, ESC, DEL) in them (Xen ends the line there);
- a source entry whose `linux` file is not on the ESP;
- a kernel file name with a space (Xen splits the kernel= line at it);
- a xen.efi that is a PE32+ image for the Windows subsystem, not an EFI
  application."""

import shutil
import unittest

from common import (
    XEN_417_EFI,
    ToolTestCase,
    copy_root,
    describe,
    make_template_root,
    pe_subsystem,
    rewrite_bootspec,
    run_bounded_on_root,
    run_on_root,
    set_pe_subsystem,
    warnings_of,
    xen_entry_files,
    xen_image_files,
)

GENERATIONS = 3
VICTIM = 2  # not the default generation (the newest): the run must succeed
WINDOWS_CUI = 3  # IMAGE_SUBSYSTEM_WINDOWS_CUI: a console program
EFI_APPLICATION = 10
CONTROL_CHARACTERS = {"VT": "\x0b", "FF": "\x0c", "ESC": "\x1b", "DEL": "\x7f"}


def set_xen_params(value):
    def change(document):
        for key, field in (("org.xenproject.bootspec.v1", "xenParams"), ("org.xenproject.bootspec.v2", "params")):
            document[key][field] = ["dom0_mem=512M", value]

    return change


def set_kernel_params(value):
    def change(document):
        document["org.nixos.bootspec.v1"]["kernelParams"] = ["quiet", value]

    return change


PARAMETERS = {"Xen parameters": set_xen_params, "kernel parameters": set_kernel_params}


def set_entry_line(root, entry, key, value):
    path = root.esp / "loader/entries" / entry["entry"]
    lines = path.read_text().splitlines(keepends=True)
    changed = [f"{key} {value}\n" if line.startswith(f"{key} ") else line for line in lines]
    if changed == lines:
        raise AssertionError(f"{path} has no {key} line")
    path.write_text("".join(changed))


class BuildAndVerifyAgree(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", str(GENERATIONS))

    def fresh_root(self):
        root = copy_root(self, self.template)
        return root, root.entry(VICTIM)

    def assert_refused_and_verified(self, root, victim, *reason):
        """The build refuses only `victim`, with a warning naming it and
        carrying every word of `reason`; verify then accepts the ESP."""
        result = run_bounded_on_root(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        others = [e for e in root.entries if e is not victim]
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in others), describe(result))
        self.assertEqual(xen_image_files(root), sorted(e["xen_image"] for e in others), describe(result))
        label = f"nixos-{victim['rest']}:"
        about_victim = [w for w in warnings_of(result) if w.startswith(label)]
        self.assertTrue(any(all(word in w for word in reason) for w in about_victim), describe(result))
        verified = run_on_root(root, "verify")
        self.assertEqual(verified.returncode, 0, describe(verified))
        self.assertNotIn("BROKEN", verified.stdout, describe(verified))
        self.assertIn(f"{len(others)} Xen entries checked, all bootable", verified.stdout, describe(verified))

    def test_parameters_outside_ascii(self):
        for where, setter in PARAMETERS.items():
            with self.subTest(parameters=where):
                root, victim = self.fresh_root()
                rewrite_bootspec(root, victim, setter("console=vga,keep\u00e9"))
                self.assert_refused_and_verified(root, victim, "ASCII")

    def test_control_characters_in_parameters(self):
        for where, setter in PARAMETERS.items():
            for name, character in CONTROL_CHARACTERS.items():
                with self.subTest(parameters=where, character=name):
                    root, victim = self.fresh_root()
                    rewrite_bootspec(root, victim, setter(f"loglvl=all{character}evil=1"))
                    self.assert_refused_and_verified(root, victim, f"\\x{ord(character):02x}")

    def test_linux_file_not_on_the_esp(self):
        root, victim = self.fresh_root()
        set_entry_line(root, victim, "linux", "/EFI/nixos/absent-bzImage.efi")
        self.assert_refused_and_verified(root, victim, "absent-bzImage.efi")

    def test_kernel_file_name_with_a_space(self):
        root, victim = self.fresh_root()
        spaced = "/EFI/nixos/my kernel.efi"
        shutil.copyfile(root.esp_path(victim["linux"]), root.esp_path(spaced))
        set_entry_line(root, victim, "linux", spaced)
        self.assert_refused_and_verified(root, victim, "my kernel.efi")

    def test_windows_subsystem_xen_efi(self):
        root, victim = self.fresh_root()
        self.assertEqual(pe_subsystem(XEN_417_EFI), EFI_APPLICATION)
        absolute = "/nix/store/" + "1" * 32 + "-windows-console/xen.efi"
        image = root.store_path(absolute)
        image.parent.mkdir(parents=True)
        shutil.copyfile(XEN_417_EFI, image)
        set_pe_subsystem(image, WINDOWS_CUI)

        def change(document):
            document["org.xenproject.bootspec.v1"]["xen"] = absolute
            document["org.xenproject.bootspec.v2"]["efiPath"] = absolute

        rewrite_bootspec(root, victim, change)
        self.assert_refused_and_verified(root, victim, str(image), "Subsystem")


if __name__ == "__main__":
    unittest.main()
