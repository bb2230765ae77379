"""`list`: every generation found, with its Xen entry and files or why it has
none, and which one systemd-boot boots by default; as text and as JSON.
Expectations come from mkroot's manifest, never from the tool."""

import json
import shutil
import unittest

from common import ToolTestCase, build, describe, make_root, run_on_root, snapshot_esp


def label(entry):
    return "nixos-" + entry["rest"]


class List(ToolTestCase):
    def setUp(self):
        super().setUp()
        self.root = make_root(
            self, "--generations", "4", "--missing-bootspec", "1", "--no-xen", "2", "--default", "3",
            "--specialisation", "debug",
        )

    def list_json(self):
        result = run_on_root(self.root, "--json", "list")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(result.stderr, "")
        return json.loads(result.stdout)

    def test_every_generation_with_its_entry_or_why_it_has_none(self):
        document = self.list_json()
        by_label = {generation["label"]: generation for generation in document["generations"]}
        self.assertEqual(set(by_label), {label(entry) for entry in self.root.entries})
        for entry in self.root.entries:
            shown = by_label[label(entry)]
            with self.subTest(generation=label(entry)):
                self.assertEqual(shown["generation"], entry["generation"])
                self.assertEqual(shown["source"], "loader/entries/" + entry["entry"])
                self.assertEqual(shown["default"], entry["is_default"])
                if not entry["has_bootspec"]:
                    self.assertEqual(shown["status"], "skipped")
                    self.assertIn("boot.json: cannot open", shown["reason"])
                    self.assertIsNone(shown["entry"])
                elif not entry["has_xen"]:
                    self.assertEqual(shown["status"], "no-xen")
                    self.assertEqual(shown["reason"], "its bootspec has no Xen extension")
                    self.assertIsNone(shown["entry"])
                    self.assertEqual(shown["files"], [])
                else:
                    self.assertEqual(shown["status"], "xen-entry")
                    self.assertIsNone(shown["reason"])
                    self.assertEqual(shown["entry"], "loader/entries/" + entry["xen_entry"])
                    self.assertEqual(shown["files"], ["EFI/xen/" + entry["xen_image"]])
                    self.assertEqual(shown["xen_efi"], entry["xen_efi"])
        self.assertEqual([g["label"] for g in document["generations"] if g["default"]], ["nixos-generation-3"])

    def test_installed_once_a_build_wrote_the_entry(self):
        self.assertFalse(any(g["installed"] for g in self.list_json()["generations"]))
        build(self, self.root)
        built = [g for g in self.list_json()["generations"] if g["status"] == "xen-entry"]
        self.assertEqual(len(built), 4)
        self.assertTrue(all(g["installed"] for g in built))
        (self.root.esp / "EFI/xen/xen-generation-4.efi").unlink()
        after = {g["label"]: g["installed"] for g in self.list_json()["generations"] if g["status"] == "xen-entry"}
        self.assertEqual(after["nixos-generation-4"], False)
        self.assertEqual(after["nixos-generation-3"], True)

    def test_list_writes_nothing(self):
        before = snapshot_esp(self.root.esp)
        self.list_json()
        result = run_on_root(self.root, "list")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(snapshot_esp(self.root.esp), before)

    def test_text_names_each_generation_and_marks_the_default(self):
        build(self, self.root)
        result = run_on_root(self.root, "list")
        self.assertEqual(result.returncode, 0, describe(result))
        lines = result.stdout.splitlines()
        self.assertIn("nixos-generation-3 (default)", lines)
        self.assertEqual([line for line in lines if line.endswith("(default)")], ["nixos-generation-3 (default)"])
        at = lines.index("nixos-generation-3 (default)")
        self.assertEqual(lines[at + 1], "  Xen entry: loader/entries/xen-generation-3.conf")
        self.assertEqual(lines[at + 2], "  file:      EFI/xen/xen-generation-3.efi")
        at = lines.index("nixos-generation-2")
        self.assertEqual(lines[at + 1], "  no Xen entry: its bootspec has no Xen extension")
        at = lines.index("nixos-generation-1")
        self.assertTrue(lines[at + 1].startswith("  skipped: "), lines[at + 1])

    def test_a_missing_esp_is_an_error_of_its_kind(self):
        shutil.rmtree(self.root.esp)
        result = run_on_root(self.root, "--json", "list")
        self.assertEqual(result.returncode, 1, describe(result))
        document = json.loads(result.stdout)
        self.assertEqual(document["error"]["kind"], "esp-missing")
        self.assertIn("cannot open the ESP", document["error"]["message"])
        self.assertIn("cannot open the ESP", result.stderr)

    def test_list_takes_no_verbosity(self):
        result = run_on_root(self.root, "list", "info")
        self.assertEqual(result.returncode, 1, describe(result))
        self.assertIn("too many arguments for list", result.stderr)


if __name__ == "__main__":
    unittest.main()
