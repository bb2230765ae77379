"""Hostile ESP contents and inputs:

- symlinks planted at names the tool writes (an entry, an image) or removes
  are neither followed nor written through: the targets outside the ESP keep
  their bytes and the ESP gets regular files;
- a symlinked folder (`EFI/xen`, `loader/entries`) makes the run refuse, with
  a message, writing nothing outside the ESP and changing nothing on it;
- a bootspec parameter with a newline (which could inject a second `kernel=`
  line) gets its generation refused with a message naming the generation and
  the field, while the other generations get their entries;
- a source entry whose name has a character outside [A-Za-z0-9+_.-] gets no
  Xen entry, and no file with that name is made.
"""

import json
import re
import unittest

import espcheck
from safetylib import describe, make_root, run_tool, scratch_folder, snapshot, tree_difference, xen_bootable

GENERATIONS = 3
ALL_XEN = {f"xen-generation-{n}.conf" for n in range(1, GENERATIONS + 1)}
INJECTED = "kernel=\\EFI\\evil\\bzImage"


class HostileEspTest(unittest.TestCase):
    def setUp(self):
        self.folder = scratch_folder(self, "xbb-hostile-")
        self.root = make_root(self, self.folder / "root", "--generations", str(GENERATIONS))
        self.esp = self.root.esp
        self.outside = self.folder / "outside"
        self.outside.mkdir()

    def outside_file(self, name, text):
        path = self.outside / name
        path.write_text(text)
        return path

    def test_planted_file_symlinks_are_replaced_not_followed(self):
        entry_target = self.outside_file("entry.conf", "title outside the ESP\n")
        image_target = self.outside_file("image.efi", "not an image, outside the ESP\n")
        stale_target = self.outside_file("stale.conf", "a stale name pointing outside\n")
        planted = {
            "loader/entries/xen-generation-1.conf": entry_target,
            "EFI/xen/xen-generation-1.efi": image_target,
            "loader/entries/xen-generation-9.conf": stale_target,
        }
        for relative, target in planted.items():
            (self.esp / relative).parent.mkdir(parents=True, exist_ok=True)
            (self.esp / relative).symlink_to(target)
        outside_before = snapshot(self.outside)

        result = run_tool(self.root, self.esp)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(tree_difference(snapshot(self.outside), outside_before), [],
                         "a file outside the ESP changed")
        for relative in ("loader/entries/xen-generation-1.conf", "EFI/xen/xen-generation-1.efi"):
            path = self.esp / relative
            self.assertFalse(path.is_symlink(), f"{relative} is still a symlink")
            self.assertTrue(path.is_file(), f"{relative} is not a regular file")
        stale = self.esp / "loader/entries/xen-generation-9.conf"
        self.assertFalse(stale.is_symlink() or stale.exists(), "the stale symlinked entry was kept")
        self.assertEqual(espcheck.problems(self.esp), [])
        self.assertEqual(xen_bootable(self.esp), ALL_XEN)

    def check_symlinked_folder_refused(self, relative):
        target = self.outside / "folder"
        target.mkdir()
        (target / "existing").write_text("outside\n")
        link = self.esp / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_dir():
            for child in link.iterdir():
                child.rename(target / child.name)
            link.rmdir()
        link.symlink_to(target)
        outside_before = snapshot(self.outside)
        esp_before = snapshot(self.esp)

        result = run_tool(self.root, self.esp)
        self.assertNotEqual(result.returncode, 0, "a run through a symlinked folder succeeded: " + describe(result))
        self.assertIn("symlink", result.stderr, describe(result))
        self.assertIn(relative, result.stderr, describe(result))
        self.assertEqual(tree_difference(snapshot(self.outside), outside_before), [], "wrote outside the ESP")
        self.assertEqual(tree_difference(snapshot(self.esp), esp_before), [], "changed the ESP")

    def test_symlinked_image_folder_is_refused(self):
        self.check_symlinked_folder_refused("EFI/xen")

    def test_symlinked_entries_folder_is_refused(self):
        self.check_symlinked_folder_refused("loader/entries")

    def edit_bootspec(self, generation, edit):
        boot_json = self.root.store_path(self.root.entry(generation)["toplevel"]) / "boot.json"
        document = json.loads(boot_json.read_text())
        edit(document)
        boot_json.chmod(0o644)
        boot_json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")

    def test_parameters_with_a_newline_refuse_only_their_generation(self):
        def xen_params(document):
            for key, field in (("org.xenproject.bootspec.v1", "xenParams"), ("org.xenproject.bootspec.v2", "params")):
                document[key][field].append("loglvl=all\n" + INJECTED)

        def kernel_params(document):
            document["org.nixos.bootspec.v1"]["kernelParams"].append("quiet\n" + INJECTED)

        self.edit_bootspec(1, xen_params)
        self.edit_bootspec(2, kernel_params)
        result = run_tool(self.root, self.esp, "info")
        self.assertEqual(result.returncode, 0, "the default generation 3 is fine: " + describe(result))
        output = result.stdout + result.stderr
        for generation, fields in ((1, ("params", "xenParams")), (2, ("kernelParams",))):
            lines = [line for line in output.splitlines() if re.search(rf"generation-{generation}\b", line)]
            self.assertTrue(any(field in line for line in lines for field in fields),
                            f"no message names generation {generation} and {' or '.join(fields)}: "
                            + describe(result))
        self.assertEqual(xen_bootable(self.esp), {f"xen-generation-{GENERATIONS}.conf"})
        self.assertFalse((self.esp / "loader/entries/xen-generation-1.conf").exists())
        self.assertFalse((self.esp / "loader/entries/xen-generation-2.conf").exists())
        self.assertEqual(espcheck.problems(self.esp), [])
        for path in self.esp.rglob("*"):
            if path.is_file():
                self.assertNotIn(b"EFI\\evil", path.read_bytes(), f"injected text in {path}")

    def test_entry_names_outside_the_allowed_characters_are_refused(self):
        entries = self.esp / "loader/entries"
        source = entries / self.root.entry(2)["entry"]
        odd = entries / "nixos-generation-2;reboot.conf"
        odd.write_bytes(source.read_bytes())
        result = run_tool(self.root, self.esp, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertIn("nixos-generation-2;reboot", result.stdout + result.stderr,
                      "no message names the refused entry: " + describe(result))
        self.assertEqual([path for path in self.esp.rglob("*") if ";" in path.name], [odd])
        self.assertEqual(xen_bootable(self.esp), ALL_XEN)
        self.assertEqual(espcheck.problems(self.esp), [])


if __name__ == "__main__":
    unittest.main()
