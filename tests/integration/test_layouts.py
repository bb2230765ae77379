"""The two image layouts on generated roots (spec 3.3, issue 9).

`unified` (the default) is what test_build covers. `shared`: one image per
distinct xen.efi, EFI/xen/xen-<version>-<8 hex of its SHA-256>.efi, without
.config and without the .debug_* sections, and one configuration file per
entry, EFI/xen/xen-<rest>.cfg, selected by `options <image> -cfg=<file>`.
Every entry's configuration is found the way Xen finds it (espcheck, the
independent reader the crash tests use: the first word of the options
skipped, -cfg= relative to the image's folder, an embedded .config winning),
images are checked against objcopy --strip-debug, and files outside the
tool's folders stay untouched. Switching layouts takes one run each way, and
images no entry uses any more go only after their entries. --layout takes
only those two names, and the shared layout not with --source profiles.
`auto`, the default (issue 16), picks per entry: AutoLayout."""

import hashlib
import json
import shutil
import subprocess
import sys
import unittest

from common import (
    BINARY,
    MARKER,
    RECORD,
    SOURCE_DIR,
    XEN_420_EFI,
    ToolTestCase,
    assert_sections_of_stripped,
    build,
    copy_root,
    describe,
    expected_xen_config,
    expected_xen_entry,
    make_root,
    make_template_root,
    parse_loader_entry,
    run_on_root,
    run_traced,
    run_tool,
    section_headers,
    sha256_file,
    snapshot_esp,
    tool_environment,
    use_xen_efi,
    warnings_of,
    xen_efi_with_config,
    xen_entry_files,
)

sys.path.insert(0, str(SOURCE_DIR / "tests" / "safety"))
import espcheck  # noqa: E402  (tests/safety: reads an ESP as firmware, systemd-boot and Xen would)

XEN_420_VERSION = "4.20.4"
CALLS = {"renameat": "rename", "renameat2": "rename", "rename": "rename", "unlinkat": "unlink", "unlink": "unlink"}


def ours(path):
    """ESP paths in the tool's folders (spec 3)."""
    return path.startswith("EFI/xen/") or path.startswith("loader/entries/xen-")


def xen_folder(root):
    """Every name in EFI/xen, as ESP paths."""
    return sorted(f"EFI/xen/{path.name}" for path in (root.esp / "EFI/xen").iterdir())


def shared_images(root):
    return sorted((root.esp / "EFI/xen").glob("xen-*.efi"))


def shared_name(version, image):
    """The name the shared layout owes an image: its Xen version (when the
    bootspec gives one) and the first 8 hex digits of its SHA-256."""
    digest = sha256_file(image)[:8]
    return f"xen-{version}-{digest}.efi" if version else f"xen-{digest}.efi"


def expected_shared_entry(entry, image_name):
    """Spec 3.1 with the options line of 3.3's shared layout."""
    pairs = expected_xen_entry(entry)
    pairs[2] = ("efi", f"/EFI/xen/{image_name}")
    pairs.insert(3, ("options", f"{image_name} -cfg=xen-{entry['rest']}.cfg"))
    return pairs


def configuration_xen_finds(esp, entry_file):
    """(text, origin) of the configuration Xen would read for an entry:
    origin is ".config" or the -cfg file's name."""
    fields = dict(parse_loader_entry(entry_file.read_text()))
    image = espcheck.esp_file(esp, fields["efi"])
    config_file, _ = espcheck.load_options(fields.get("options", ""))
    return espcheck.xen_configuration(esp, image, config_file, entry_file.name)


def hash_of(text):
    """What snapshot_esp records of a file with this text."""
    return hashlib.sha256(text.encode()).hexdigest()


def xen_bootable(esp):
    return {ident for ident in espcheck.bootable_entries(esp) if ident.startswith("xen-")}


class LayoutTestCase(ToolTestCase):
    def build_layout(self, root, layout, *options):
        return build(self, root, "info", "--layout", layout, *options)

    def check_shared(self, root, entries, version):
        """The ESP holds one image for `entries` (all made from one xen.efi),
        one configuration per entry, entries that select them, and nothing
        else of ours; everything boots and `verify` agrees. Returns the image."""
        images = shared_images(root)
        self.assertEqual(len(images), 1, images)
        image = images[0]
        self.assertEqual(image.name, shared_name(version, image))
        self.assertNotIn(".config", section_headers(image))
        configs = [f"EFI/xen/xen-{entry['rest']}.cfg" for entry in entries]
        self.assertEqual(xen_folder(root), sorted([f"EFI/xen/{image.name}", RECORD, *configs]))
        self.assertEqual(xen_entry_files(root), sorted(entry["xen_entry"] for entry in entries))
        for entry in entries:
            entry_file = root.esp / "loader/entries" / entry["xen_entry"]
            text = entry_file.read_text()
            self.assertTrue(text.startswith(MARKER + "\n"), entry["xen_entry"])
            self.assertEqual(parse_loader_entry(text), expected_shared_entry(entry, image.name), entry["xen_entry"])
            config, origin = configuration_xen_finds(root.esp, entry_file)
            self.assertEqual(origin, f"xen-{entry['rest']}.cfg")
            self.assertEqual(config, expected_xen_config(entry), entry["xen_entry"])
        self.check_boots(root, entries)
        return image

    def check_unified(self, root, entries):
        """Each entry its own image with its configuration embedded, and
        nothing else of ours."""
        self.assertEqual(xen_folder(root), sorted([RECORD, *(f"EFI/xen/{e['xen_image']}" for e in entries)]))
        self.assertEqual(xen_entry_files(root), sorted(entry["xen_entry"] for entry in entries))
        for entry in entries:
            entry_file = root.esp / "loader/entries" / entry["xen_entry"]
            self.assertEqual(parse_loader_entry(entry_file.read_text()), expected_xen_entry(entry))
            config, origin = configuration_xen_finds(root.esp, entry_file)
            self.assertEqual(origin, ".config")
            self.assertEqual(config, expected_xen_config(entry))
        self.check_boots(root, entries)

    def check_boots(self, root, entries):
        self.assertEqual(espcheck.problems(root.esp), [])
        self.assertEqual(xen_bootable(root.esp), {entry["xen_entry"] for entry in entries})
        result = run_tool("--esp", root.esp, "--json", "verify")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertTrue(json.loads(result.stdout)["ok"], result.stdout)

    def check_untouched_outside(self, before, after, loader_conf=None):
        """Files outside EFI/xen and loader/entries/xen-* are as they were
        (loader.conf: `loader_conf` when given), and none appeared."""
        outside_before = {path: state for path, state in before.items() if not ours(path)}
        outside_after = {path: state for path, state in after.items() if not ours(path)}
        if loader_conf is not None:
            del outside_before["loader/loader.conf"]
            self.assertEqual(outside_after.pop("loader/loader.conf")[2], loader_conf)
        self.assertEqual(outside_after, outside_before)


class SharedLayout(LayoutTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3", "--specialisation", "debug")

    def test_one_image_and_one_configuration_per_entry(self):
        root = copy_root(self, self.template)
        before = snapshot_esp(root.esp)
        self.build_layout(root, "shared")
        image = self.check_shared(root, root.xen_entries(), root.manifest["xen_version"])
        self.assertEqual(len(root.xen_entries()), 6)
        source = root.store_path(root.manifest["xen_efi"])
        assert_sections_of_stripped(self, image, source)
        # Debian's 4.17 image has no debug sections: its copy is the xen.efi itself.
        self.assertEqual(sha256_file(image), sha256_file(source))
        default = root.manifest["default_entry"]
        retargeted = root.manifest["loader_conf"].replace(f"default {default}",
                                                          f"default xen-{default.removeprefix('nixos-')}")
        self.check_untouched_outside(before, snapshot_esp(root.esp), loader_conf=hash_of(retargeted))

    def test_xen_420_image_is_its_xen_efi_without_debug_sections(self):
        self.assertTrue(XEN_420_EFI.is_file(), f"missing real input {XEN_420_EFI} (run .ci/setup)")
        root = make_root(self, "--generations", "2", "--xen-efi", str(XEN_420_EFI), "--xen-version", XEN_420_VERSION)
        self.build_layout(root, "shared")
        image = self.check_shared(root, root.xen_entries(), XEN_420_VERSION)
        self.assertTrue(any(name.startswith(".debug_") for name in section_headers(XEN_420_EFI)))
        assert_sections_of_stripped(self, image, XEN_420_EFI)
        self.assertLess(image.stat().st_size, XEN_420_EFI.stat().st_size // 8)

    def test_bootspec_without_version_names_the_image_by_its_digest_alone(self):
        root = make_root(self, "--generations", "2", "--xen-v1", "1,2")
        self.build_layout(root, "shared")
        image = self.check_shared(root, root.xen_entries(), None)
        self.assertRegex(image.name, r"^xen-[0-9a-f]{8}\.efi$")

    def test_xen_efi_with_a_config_section_is_refused_for_its_generation(self):
        root = copy_root(self, self.template)
        victim = root.entry(1)
        configured = xen_efi_with_config(self, root.store_path(root.manifest["xen_efi"]),
                                         "[global]\ndefault=xen\n\n[xen]\nkernel=vmlinuz\n")
        store_path = use_xen_efi(root, victim, configured, "xen-with-config")
        result = self.build_layout(root, "shared")
        warnings = warnings_of(result)
        self.assertEqual(len(warnings), 1, describe(result))
        self.assertIn("nixos-generation-1", warnings[0])
        self.assertIn(store_path, warnings[0])
        self.assertIn(".config", warnings[0])
        self.check_shared(root, [entry for entry in root.xen_entries() if entry is not victim],
                          root.manifest["xen_version"])

    def test_files_made_by_hand_in_its_folders_are_left_alone(self):
        root = copy_root(self, self.template)
        folder = root.esp / "EFI/xen"
        folder.mkdir(parents=True)
        hand_config = folder / "mine.cfg"
        hand_config.write_text(expected_xen_config(root.entry(1)).removeprefix(MARKER + "\n"))
        # A shared image's name, but not the digest of its bytes.
        hand_image = folder / f"xen-{root.manifest['xen_version']}-00000000.efi"
        shutil.copyfile(root.store_path(root.manifest["xen_efi"]), hand_image)
        hand_entry = root.esp / "loader/entries/xen-mine.conf"
        hand_entry.write_text(f"title mine\nefi /EFI/xen/{hand_image.name}\noptions x -cfg=mine.cfg\n")
        before = {path: hash_of(path.read_text(errors="replace")) for path in (hand_config, hand_image, hand_entry)}
        result = run_on_root(root, "--layout", "shared", "default")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual({path: hash_of(path.read_text(errors="replace")) for path in before}, before)
        warnings = warnings_of(result)
        self.assertEqual(len(warnings), 1, describe(result))
        for path in ("EFI/xen/mine.cfg", f"EFI/xen/{hand_image.name}", "loader/entries/xen-mine.conf"):
            self.assertIn(path, warnings[0])
        self.check_boots(root, [*root.xen_entries(), {"xen_entry": "xen-mine.conf"}])


class SwitchingLayouts(LayoutTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3", "--specialisation", "debug")

    def switch(self, root, layout):
        """Runs the switch under strace: its result and the names it renamed
        into place and unlinked, in order."""
        result, calls = run_traced(self, root, "--layout", layout, "info", calls="renameat,renameat2,rename,unlinkat,unlink")
        self.assertEqual(result.returncode, 0, describe(result))
        events = [(CALLS[call.name], call.strings[-1]) for call in calls if call.result == 0]
        return result, events

    def check_removed_after_entries(self, events, removed):
        """Every file in `removed` was unlinked, each after the last entry was
        renamed into place: no entry pointed at a missing file."""
        renamed_entries = [i for i, (call, name) in enumerate(events) if call == "rename" and name.endswith(".conf")]
        self.assertNotEqual(renamed_entries, [], events)
        for name in removed:
            unlinked = [i for i, event in enumerate(events) if event == ("unlink", name)]
            self.assertEqual(len(unlinked), 1, f"{name}: {events}")
            self.assertGreater(unlinked[0], max(renamed_entries), f"{name} removed before the entries moved off it")

    def test_unified_to_shared_in_one_run(self):
        root = copy_root(self, self.template)
        build(self, root)
        self.check_unified(root, root.xen_entries())
        before = snapshot_esp(root.esp)
        _, events = self.switch(root, "shared")
        self.check_shared(root, root.xen_entries(), root.manifest["xen_version"])
        self.check_removed_after_entries(events, [entry["xen_image"] for entry in root.xen_entries()])
        self.check_untouched_outside(before, snapshot_esp(root.esp))

    def test_shared_to_unified_in_one_run(self):
        root = copy_root(self, self.template)
        self.build_layout(root, "shared")
        image = self.check_shared(root, root.xen_entries(), root.manifest["xen_version"])
        before = snapshot_esp(root.esp)
        _, events = self.switch(root, "unified")
        self.check_unified(root, root.xen_entries())
        self.check_removed_after_entries(
            events, [image.name, *(f"xen-{entry['rest']}.cfg" for entry in root.xen_entries())])
        self.check_untouched_outside(before, snapshot_esp(root.esp))


def run_default(root, *argv):
    """The binary on the root with no --layout: what a user gets."""
    return subprocess.run([str(BINARY), "--root", str(root.path), "--esp", str(root.esp), *argv],
                          capture_output=True, text=True, check=False, env=tool_environment(), timeout=300)


class AutoLayout(LayoutTestCase):
    """`auto`, the default: shared for a xen.efi without .config, unified for
    one with its own, self-contained when signing; `list` and `plan` say which
    each entry got and why."""

    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3", "--specialisation", "debug")

    def layouts_listed(self, root, *options):
        result = run_default(root, *options, "--json", "list")
        self.assertEqual(result.returncode, 0, describe(result))
        return {g["label"]: g["layout"] for g in json.loads(result.stdout)["generations"]}

    def test_default_run_shares_one_image_per_xen_build(self):
        root = copy_root(self, self.template)
        result = run_default(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(warnings_of(result), [])
        self.check_shared(root, root.xen_entries(), root.manifest["xen_version"])
        listed = self.layouts_listed(root)
        self.assertEqual(set(listed), {f"nixos-{e['rest']}" for e in root.xen_entries()})
        for layout in listed.values():
            self.assertEqual(layout, {"kind": "shared", "reason": "one image per Xen build"})
        again = run_default(root, "info")
        self.assertIn("No change", again.stdout, describe(again))

    def test_xen_efi_with_its_own_config_gets_a_unified_image_not_skipped(self):
        root = copy_root(self, self.template)
        victim = root.entry(1)
        configured = xen_efi_with_config(self, root.store_path(root.manifest["xen_efi"]),
                                         "[global]\ndefault=xen\n\n[xen]\nkernel=vmlinuz\n")
        use_xen_efi(root, victim, configured, "xen-with-config")
        result = run_default(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(warnings_of(result), [], "auto never skips such a generation")
        image = root.esp / "EFI/xen" / victim["xen_image"]
        self.assertTrue(image.is_file(), xen_folder(root))
        entry_file = root.esp / "loader/entries" / victim["xen_entry"]
        config, origin = configuration_xen_finds(root.esp, entry_file)
        self.assertEqual(origin, ".config")
        self.assertEqual(config, expected_xen_config(victim))
        others = [entry for entry in root.xen_entries() if entry is not victim]
        self.assertEqual(len(shared_images(root)), 2, "one shared image, and the victim's own")
        self.check_boots(root, root.xen_entries())
        listed = self.layouts_listed(root)
        self.assertEqual(listed[f"nixos-{victim['rest']}"],
                         {"kind": "unified", "reason": "its xen.efi carries a .config of its own"})
        for entry in others:
            self.assertEqual(listed[f"nixos-{entry['rest']}"]["kind"], "shared")

    def test_plan_and_list_text_say_the_layout_and_why(self):
        root = copy_root(self, self.template)
        listed = run_default(root, "list")
        self.assertEqual(listed.returncode, 0, describe(listed))
        self.assertIn("  layout:    shared (one image per Xen build)\n", listed.stdout)
        asked = run_default(root, "--layout", "unified", "--json", "plan")
        self.assertEqual(asked.returncode, 0, describe(asked))
        for generation in json.loads(asked.stdout)["generations"]:
            if generation["status"] == "xen-entry":
                self.assertEqual(generation["layout"], {"kind": "unified", "reason": "--layout unified"})
        debug = run_default(root, "plan", "debug")
        self.assertIn("(shared: one image per Xen build)", debug.stdout + debug.stderr)

    def test_an_esp_laid_out_unified_switches_in_one_default_run(self):
        root = copy_root(self, self.template)
        build(self, root, "info", "--layout", "unified")
        self.check_unified(root, root.xen_entries())
        result = run_default(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.check_shared(root, root.xen_entries(), root.manifest["xen_version"])

    def test_the_shell_scripts_layout_switches_in_one_default_run(self):
        root = make_root(self, "--generations", "2", "--legacy-xen-images")
        legacy = sorted((root.esp / "EFI/nixos").glob("xen-*.efi"))
        self.assertNotEqual(legacy, [], "mkroot left no script images")
        result = run_default(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(sorted((root.esp / "EFI/nixos").glob("xen-*.efi")), [])
        self.check_shared(root, root.xen_entries(), root.manifest["xen_version"])


class LayoutOption(ToolTestCase):
    def assert_usage_error(self, *argv):
        root = make_root(self, "--generations", "1")
        before = snapshot_esp(root.esp)
        result = run_on_root(root, *argv, "info")
        self.assertEqual(result.returncode, 2, describe(result))
        self.assertEqual(snapshot_esp(root.esp), before)
        return result

    def test_unknown_layout_is_a_usage_error(self):
        result = self.assert_usage_error("--layout", "split")
        self.assertIn("split", result.stderr)

    def test_profiles_source_needs_the_self_contained_layout(self):
        for layout in ("shared", "unified"):
            with self.subTest(layout=layout):
                result = self.assert_usage_error("--source", "profiles", "--layout", layout)
                self.assertIn("--layout self-contained", result.stderr)


class StaleSharedImages(LayoutTestCase):
    def test_an_image_no_entry_uses_goes_after_its_entries(self):
        root = make_root(self, "--generations", "3")
        self.build_layout(root, "shared")
        (old_image,) = shared_images(root)
        newest = root.entry(3)
        use_xen_efi(root, newest, XEN_420_EFI, f"xen-{XEN_420_VERSION}-boot", version=XEN_420_VERSION)
        self.build_layout(root, "shared")
        images = {image.name for image in shared_images(root)}
        new_image = next(name for name in images if name != old_image.name)
        self.assertEqual(images, {old_image.name, new_image})
        self.assertTrue(new_image.startswith(f"xen-{XEN_420_VERSION}-"), new_image)
        for entry in root.xen_entries():
            fields = dict(parse_loader_entry((root.esp / "loader/entries" / entry["xen_entry"]).read_text()))
            self.assertEqual(fields["efi"], f"/EFI/xen/{new_image if entry is newest else old_image.name}")
        self.assertEqual(espcheck.problems(root.esp), [])

        # Generations 1 and 2 collected: nothing uses the old image any more.
        for generation in (1, 2):
            (root.esp / "loader/entries" / root.entry(generation)["entry"]).unlink()
        result, calls = run_traced(self, root, "--layout", "shared", "info", calls="unlinkat,unlink")
        self.assertEqual(result.returncode, 0, describe(result))
        unlinked = [call.strings[-1] for call in calls if call.result == 0]
        self.assertEqual(sorted(unlinked), sorted([old_image.name, "xen-generation-1.conf", "xen-generation-2.conf",
                                                   "xen-generation-1.cfg", "xen-generation-2.cfg"]))
        self.assertGreater(unlinked.index(old_image.name), unlinked.index("xen-generation-1.conf"))
        self.assertGreater(unlinked.index(old_image.name), unlinked.index("xen-generation-2.conf"))
        self.assertEqual(xen_folder(root), sorted([f"EFI/xen/{new_image}", RECORD, "EFI/xen/xen-generation-3.cfg"]))
        self.assertEqual(xen_entry_files(root), ["xen-generation-3.conf"])
        self.assertEqual(espcheck.problems(root.esp), [])
        assert_sections_of_stripped(self, root.esp / "EFI/xen" / new_image, XEN_420_EFI)


if __name__ == "__main__":
    unittest.main()
