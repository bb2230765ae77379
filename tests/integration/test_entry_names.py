"""Odd systemd-boot entries (issue 8): names the tool cannot mirror, things
in loader/entries that are not entries, and `init=` values that do not name
the init of a store toplevel. Each costs at most its own generation, with a
warning naming it: the run goes on, the other generations get their entries,
and it exits 0 (the odd entry is never the default one here)."""

import os
import shutil
import unittest

from common import (
    ToolTestCase,
    copy_root,
    describe,
    expected_xen_config,
    extract_section,
    make_template_root,
    run_bounded_on_root,
    snapshot_esp,
    warnings_of,
    xen_entry_files,
    xen_image_files,
)

GENERATIONS = 3
VICTIM = 2  # not the default generation (the newest)
LONGEST_ENTRY_NAME = 255  # bytes in a FAT (and ext4) file name


def entry_path(root, entry):
    return root.esp / "loader/entries" / entry["entry"]


def set_options_init(root, entry, options_init):
    """Replace the `init=` word of the entry's options line by `options_init`
    (one or more words)."""
    path = entry_path(root, entry)
    text = path.read_text()
    word = f"init={entry['init']}"
    if word not in text:
        raise AssertionError(f"{path} has no {word}")
    path.write_text(text.replace(word, options_init))


def kernel_line(config):
    """The kernel= line of a Xen configuration: the kernel and its command line."""
    return next(line for line in config.splitlines() if line.startswith("kernel="))


class EntryNamesTestCase(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", str(GENERATIONS))

    def setUp(self):
        super().setUp()
        self.fresh_root()

    def fresh_root(self):
        self.root = copy_root(self, self.template)
        self.victim = self.root.entry(VICTIM)
        self.others = [e for e in self.root.entries if e is not self.victim]

    def run_build(self, verbosity="info"):
        result = run_bounded_on_root(self.root, verbosity)
        self.assertFalse(result.timed_out, describe(result))
        self.assertEqual(result.returncode, 0, describe(result))
        return result

    def assert_others_have_entries(self, result, victim_too=False):
        expected = self.root.entries if victim_too else self.others
        self.assertEqual(xen_entry_files(self.root), sorted(e["xen_entry"] for e in expected), describe(result))
        self.assertEqual(xen_image_files(self.root), sorted(e["xen_image"] for e in expected), describe(result))

    def assert_warned(self, result, *words):
        """One warning carries every word (the file or generation, and why)."""
        self.assertTrue(any(all(w in line for w in words) for line in warnings_of(result)), describe(result))


class EntryNames(EntryNamesTestCase):
    def test_entry_name_too_long_to_mirror_skips_only_its_generation(self):
        rest = "a" * (LONGEST_ENTRY_NAME - len("nixos-") - len(".conf"))
        name = f"nixos-{rest}.conf"
        self.assertEqual(len(name), LONGEST_ENTRY_NAME)
        entry_path(self.root, self.victim).rename(self.root.esp / "loader/entries" / name)
        result = self.run_build()
        self.assert_others_have_entries(result)
        self.assert_warned(result, name)
        self.assertEqual([p for p in snapshot_esp(self.root.esp) if rest in p], [f"loader/entries/{name}"])

    def test_entry_named_nixos_dash_conf_gets_no_xen_dash_conf(self):
        entry_path(self.root, self.victim).rename(self.root.esp / "loader/entries/nixos-.conf")
        result = self.run_build()
        self.assert_others_have_entries(result)
        self.assert_warned(result, "nixos-.conf")
        self.assertFalse((self.root.esp / "loader/entries/xen-.conf").exists())
        self.assertFalse((self.root.esp / "EFI/xen/xen-.efi").exists())

    def test_folder_and_fifo_named_like_entries_are_reported(self):
        folder = self.root.esp / "loader/entries/nixos-generation-7.conf"
        folder.mkdir()
        fifo = self.root.esp / "loader/entries/nixos-generation-8.conf"
        os.mkfifo(fifo)
        result = self.run_build("default")
        self.assert_others_have_entries(result, victim_too=True)
        self.assert_warned(result, folder.name)
        self.assert_warned(result, fifo.name)
        self.assertTrue(folder.is_dir())
        self.assertEqual(list(folder.iterdir()), [])
        self.assertTrue(fifo.is_fifo())


class InitParameter(EntryNamesTestCase):
    def test_last_of_two_init_parameters_wins_as_in_linux(self):
        first = self.root.entry(1)
        set_options_init(self.root, self.victim, f"init={first['init']} init={self.victim['init']}")
        result = self.run_build()
        self.assert_others_have_entries(result, victim_too=True)
        image = self.root.esp / "EFI/xen" / self.victim["xen_image"]
        config = extract_section(image, ".config").decode()
        self.assertEqual(kernel_line(config), kernel_line(expected_xen_config(self.victim)))
        self.assertIn(f" init={self.victim['init']} ", kernel_line(config))

    def test_init_outside_a_store_toplevel_is_refused(self):
        toplevel = self.victim["toplevel"]
        outside = "/opt/system"
        cases = {
            "'..' component": toplevel.replace("/nix/store/", "/nix/store/../store/") + "/init",
            "outside /nix/store": f"{outside}/init",
            "not <toplevel>/init": f"{toplevel}/sbin/init",
        }
        for case, init in cases.items():
            with self.subTest(case=case):
                self.fresh_root()
                # A complete toplevel outside the store: a tool that reads it builds an entry.
                shutil.copytree(self.root.store_path(toplevel), self.root.store_path(outside), symlinks=True)
                set_options_init(self.root, self.victim, f"init={init}")
                result = self.run_build()
                self.assert_others_have_entries(result)
                self.assert_warned(result, self.victim["entry"], f"init={init}")
                victim_warnings = [w for w in warnings_of(result) if self.victim["entry"] in w]
                self.assertFalse(any("boot.json" in w for w in victim_warnings), describe(result))



class SameXenName(EntryNamesTestCase):
    """Two source entries that give one Xen name (issue 15, item 7): the one
    systemd-boot lists first keeps it, the other is skipped with a warning,
    and the next run writes nothing (the image does not flip between them)."""

    def test_entry_listed_first_keeps_the_xen_name_and_a_second_run_writes_nothing(self):
        counted = self.root.esp / "loader/entries/nixos-generation-2+2-1.conf"
        shutil.copyfile(entry_path(self.root, self.victim), counted)
        first = self.root.entry(1)
        # The counted copy boots another toplevel: which one won shows in the image.
        text = counted.read_text()
        counted.write_text(text.replace(f"init={self.victim['init']}", f"init={first['init']}"))
        result = self.run_build()
        self.assert_warned(result, self.victim["entry"], counted.name, "xen-generation-2")
        self.assertEqual(
            [name for name in xen_entry_files(self.root) if name.startswith("xen-generation-2")],
            ["xen-generation-2+3.conf"],
            describe(result),
        )
        config = extract_section(self.root.esp / "EFI/xen" / self.victim["xen_image"], ".config").decode()
        self.assertIn(f" init={first['init']} ", kernel_line(config))
        before = snapshot_esp(self.root.esp)
        again = self.run_build()
        self.assertIn("No change", again.stdout.splitlines(), describe(again))
        self.assertEqual(snapshot_esp(self.root.esp), before)


if __name__ == "__main__":
    unittest.main()
