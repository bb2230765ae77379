"""Messages name what they are about (issue 8, "Error messages that do not
name what they are about" and "a devicetree line in the source entry gets no
warning"): an empty `--esp`, a symlink loop in the store (shown with the
--root prefix, as the file really is), and a devicetree line that the Xen
entry cannot carry."""

import unittest

from common import (
    ToolTestCase,
    copy_root,
    describe,
    make_template_root,
    run_bounded_on_root,
    run_tool,
    warnings_of,
    xen_entry_files,
)

VICTIM = 2


class Messages(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3")

    def test_empty_esp_option_is_named(self):
        for command in (("verify",), ("info",)):
            with self.subTest(command=command):
                result = run_tool("--esp", "", *command)
                self.assertNotEqual(result.returncode, 0, describe(result))
                self.assertIn("--esp", result.stderr, describe(result))
                self.assertNotIn("error: : ", result.stderr, describe(result))

    def test_symlink_loop_is_shown_under_the_root(self):
        root = copy_root(self, self.template)
        victim = root.entry(VICTIM)
        bootspec = root.store_path(victim["toplevel"] + "/boot.json")
        bootspec.unlink()
        bootspec.symlink_to("boot.json")
        result = run_bounded_on_root(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(
            xen_entry_files(root), sorted(e["xen_entry"] for e in root.entries if e is not victim), describe(result)
        )
        loop = [w for w in warnings_of(result) if w.startswith(f"nixos-{victim['rest']}:") and "symbolic links" in w]
        self.assertEqual(len(loop), 1, describe(result))
        self.assertIn(str(root.store_path(victim["toplevel"])), loop[0], describe(result))

    def test_devicetree_line_of_the_source_entry_is_warned_about(self):
        root = copy_root(self, self.template)
        victim = root.entry(VICTIM)
        entry = root.esp / "loader/entries" / victim["entry"]
        entry.write_text(entry.read_text() + "devicetree /EFI/nixos/board.dtb\n")
        result = run_bounded_on_root(root, "default")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.entries), describe(result))
        about = [w for w in warnings_of(result) if w.startswith(f"nixos-{victim['rest']}:")]
        self.assertTrue(any("devicetree" in w for w in about), describe(result))


if __name__ == "__main__":
    unittest.main()
