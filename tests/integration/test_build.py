"""The drop-in build: what `xen-boot-builder <verbosity>` leaves on the ESP
(spec sections 1, 3.1, 3.2, 3.4, 4 and 5). Every expectation comes from the
fixture's manifest and the spec, and the ESP is read with plain parsing and
binutils, never with the tool's own readers."""

import shutil
import tempfile
import unittest
from pathlib import Path

from common import (
    PROGRESS_LINE,
    RECORD,
    XEN_420_EFI,
    ToolTestCase,
    assert_same_build_id,
    assert_sections_of_stripped,
    build,
    describe,
    expected_xen_config,
    expected_xen_entry,
    extract_section,
    make_root,
    pe_header,
    read_entry_pairs,
    rewrite_bootspec,
    run_on_root,
    run_tool,
    section_headers,
    snapshot_esp,
    with_esp_bound_on_boot,
    xen_entry_files,
    xen_image_files,
)

# End of the last section of Debian's xen-4.17-amd64.efi (ImageBase +
# SizeOfImage, boot-test.md): where the .config section must go.
XEN_417_CONFIG_VMA = 0xFFFF82D041000000
# Debian 13's xen-4.20-amd64.efi has no .pad and nine .debug_* sections after
# .reloc; ImageBase + SizeOfImage, the next 2 MiB boundary past the last of
# them (boot-test.md: boots there), when they are kept.
XEN_420_CONFIG_VMA = 0xFFFF82D042400000
# Without them (the default), the next 2 MiB boundary past .reloc, which ends
# at 0xffff82d0409497a8.
XEN_420_STRIPPED_CONFIG_VMA = 0xFFFF82D040A00000


def change_lines(stdout, kind):
    """Names reported by `info` with a +, - or ~ mark (detail dropped)."""
    names = set()
    for line in stdout.splitlines():
        if line.startswith(kind):
            names.add(line[1:].split(" ", 1)[0])
    return names


def xen_stems(entries):
    return {f"xen-{entry['rest']}" for entry in entries}


class XenEntries(ToolTestCase):
    def test_each_xen_generation_gets_an_entry_with_source_title_version_and_keys(self):
        root = make_root(self, "--generations", "2", "--specialisation", "debug")
        build(self, root)
        for entry in root.xen_entries():
            self.assertEqual(read_entry_pairs(root, entry["xen_entry"]), expected_xen_entry(entry), entry["xen_entry"])

    def test_xen_entries_exist_for_exactly_the_generations_with_xen(self):
        root = make_root(self, "--generations", "4", "--no-xen", "1,3")
        build(self, root)
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.xen_entries()))
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf", "xen-generation-4.conf"])
        self.assertEqual(xen_image_files(root), ["xen-generation-2.efi", "xen-generation-4.efi"])

    def test_content_named_entries_keep_their_hash_in_the_xen_name(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2", "--specialisation", "debug")
        build(self, root)
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.entries))
        for entry in root.entries:
            self.assertEqual(read_entry_pairs(root, entry["xen_entry"]), expected_xen_entry(entry))

    def test_boot_counted_source_gives_a_counted_xen_entry_with_all_tries(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2", "--boot-counting", "2-1")
        build(self, root)
        expected = sorted(f"xen-{e['rest']}+3.conf" for e in root.entries)
        self.assertEqual(xen_entry_files(root), expected)
        for entry in root.entries:
            self.assertEqual(read_entry_pairs(root, f"xen-{entry['rest']}+3.conf"), expected_xen_entry(entry))

    def test_absent_machine_id_gives_no_machine_id_line(self):
        root = make_root(self, "--generations", "1", "--no-machine-id")
        build(self, root)
        text = (root.esp / "loader/entries/xen-generation-1.conf").read_text()
        self.assertNotIn("machine-id", text)
        self.assertNotIn("\n\n", text)
        self.assertEqual(read_entry_pairs(root, "xen-generation-1.conf"), expected_xen_entry(root.entry(1)))

    def test_v1_only_and_efipath_bootspecs_get_entries(self):
        root = make_root(self, "--generations", "3", "--xen-v1", "1", "--legacy-efipath", "2")
        build(self, root)
        self.assertEqual(
            xen_entry_files(root), ["xen-generation-1.conf", "xen-generation-2.conf", "xen-generation-3.conf"]
        )
        for entry in root.entries:
            image = root.esp / "EFI/xen" / entry["xen_image"]
            self.assertEqual(extract_section(image, ".config").decode(), expected_xen_config(entry))

    def test_profile_generations_get_entries(self):
        root = make_root(self, "--generations", "1", "--profile", "lab", "--profile-generations", "2")
        build(self, root)
        self.assertEqual(
            xen_entry_files(root),
            ["xen-generation-1.conf", "xen-lab-generation-1.conf", "xen-lab-generation-2.conf"],
        )
        lab = root.entry(2, profile="lab")
        self.assertEqual(read_entry_pairs(root, "xen-lab-generation-2.conf"), expected_xen_entry(lab))


class XenImages(ToolTestCase):
    def test_image_carries_the_configuration_the_spec_owes(self):
        root = make_root(
            self, "--generations", "2", "--specialisation", "debug",
            "--xen-params", "dom0_mem=512M,max:512M console=com1", "--kernel-params", "console=hvc0 quiet",
        )
        build(self, root)
        for entry in root.xen_entries():
            image = root.esp / "EFI/xen" / entry["xen_image"]
            self.assertEqual(extract_section(image, ".config").decode(), expected_xen_config(entry), entry["xen_image"])

    def test_image_is_the_generations_xen_efi_plus_a_config_section(self):
        root = make_root(self, "--generations", "1")
        build(self, root)
        source = root.store_path(root.manifest["xen_efi"])
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        source_sections, image_sections = section_headers(source), section_headers(image)
        self.assertEqual(set(image_sections) - set(source_sections), {".config"})
        for name, header in source_sections.items():
            self.assertEqual(image_sections[name], header, name)
        for name in (".text", ".rodata", ".init", ".data", ".reloc"):
            self.assertEqual(extract_section(image, name), extract_section(source, name), name)

    def test_debug_directory_still_finds_the_build_id(self):
        root = make_root(self, "--generations", "1")
        build(self, root)
        source = root.store_path(root.manifest["xen_efi"])
        assert_same_build_id(self, root.esp / "EFI/xen/xen-generation-1.efi", source)

    def test_config_section_lands_at_the_end_of_debians_417_image(self):
        root = make_root(self, "--generations", "1")
        build(self, root)
        headers = section_headers(root.esp / "EFI/xen/xen-generation-1.efi")
        self.assertEqual(headers[".config"][1], XEN_417_CONFIG_VMA)

    def test_xen_420_image_leaves_out_its_debug_sections_and_gets_config_after_reloc(self):
        self.assertTrue(XEN_420_EFI.is_file(), f"missing real input {XEN_420_EFI} (run .ci/setup)")
        root = make_root(self, "--generations", "1", "--xen-efi", str(XEN_420_EFI))
        build(self, root)
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        self.assertTrue(any(name.startswith(".debug_") for name in section_headers(XEN_420_EFI)))
        stripped = assert_sections_of_stripped(self, image, XEN_420_EFI, added=[".config"])
        image_sections = section_headers(image)
        self.assertEqual(image_sections[".config"][1], XEN_420_STRIPPED_CONFIG_VMA)
        self.assertEqual(extract_section(image, ".config").decode(), expected_xen_config(root.entry(1)))
        source_header, image_header = pe_header(stripped), pe_header(image)
        for field in ("AddressOfEntryPoint", "ImageBase", "SectionAlignment", "FileAlignment", "SizeOfCode",
                      "SizeOfUninitializedData", "Subsystem"):
            self.assertEqual(image_header[field], source_header[field], field)
        config_raw_size = -(-image_sections[".config"][0] // image_header["FileAlignment"]) * image_header["FileAlignment"]
        self.assertEqual(image_header["SizeOfInitializedData"], source_header["SizeOfInitializedData"] + config_raw_size)
        self.assertEqual(image_header["SizeOfImage"], XEN_420_STRIPPED_CONFIG_VMA + 0x200000 - image_header["ImageBase"])

    def test_xen_420_image_keeps_its_debug_sections_when_asked_and_gets_config_after_them(self):
        self.assertTrue(XEN_420_EFI.is_file(), f"missing real input {XEN_420_EFI} (run .ci/setup)")
        root = make_root(self, "--generations", "1", "--xen-efi", str(XEN_420_EFI))
        build(self, root, "info", "--keep-debug-sections")
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        source_sections, image_sections = section_headers(XEN_420_EFI), section_headers(image)
        self.assertEqual(list(image_sections), [*source_sections, ".config"])
        self.assertEqual({name: image_sections[name] for name in source_sections}, source_sections)
        for name in (".text", ".reloc", ".debug_info", ".debug_aranges"):
            self.assertEqual(extract_section(image, name), extract_section(XEN_420_EFI, name), name)
        self.assertEqual(image_sections[".config"][1], XEN_420_CONFIG_VMA)
        self.assertEqual(extract_section(image, ".config").decode(), expected_xen_config(root.entry(1)))

    def test_kernel_and_ramdisk_come_from_the_source_entry_lines(self):
        root = make_root(self, "--generations", "1")
        entry = root.entry(1)
        entry_file = root.esp / "loader/entries" / entry["entry"]
        linux, initrd = "/EFI/nixos/vmlinuz-custom.efi", "/EFI/nixos/initrd-with-secrets.efi"
        shutil.copyfile(root.esp_path(entry["linux"]), root.esp_path(linux))
        shutil.copyfile(root.esp_path(entry["initrd"]), root.esp_path(initrd))
        text = entry_file.read_text()
        text = text.replace(f"linux {entry['linux']}\n", f"linux {linux}\n")
        text = text.replace(f"initrd {entry['initrd']}\n", f"initrd {initrd}\n")
        entry_file.write_text(text)
        build(self, root)
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        self.assertEqual(
            extract_section(image, ".config").decode(), expected_xen_config(entry, linux=linux, initrd=initrd)
        )


class Bootspecs(ToolTestCase):
    def test_missing_bootspec_warns_and_other_generations_still_get_entries(self):
        root = make_root(self, "--generations", "3", "--missing-bootspec", "1")
        result = build(self, root)
        self.assertIn(root.entry(1)["toplevel"], result.stderr)
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf", "xen-generation-3.conf"])

    def test_missing_bootspec_of_the_default_generation_fails_the_run(self):
        root = make_root(self, "--generations", "3", "--missing-bootspec", "3")
        result = run_on_root(root, "info")
        self.assertNotEqual(result.returncode, 0, describe(result))
        self.assertIn(root.entry(3)["toplevel"], result.stderr)
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf", "xen-generation-2.conf"])

    def test_changed_bootspec_rewrites_only_its_own_image(self):
        root = make_root(self, "--generations", "3")
        build(self, root)
        before = snapshot_esp(root.esp)
        second = root.entry(2)
        new_params = ["dom0_mem=2048M", "loglvl=all"]

        def set_xen_params(document):
            document["org.xenproject.bootspec.v1"]["xenParams"] = new_params
            document["org.xenproject.bootspec.v2"]["params"] = new_params

        rewrite_bootspec(root, second, set_xen_params)
        result = build(self, root)
        self.assertEqual(change_lines(result.stdout, "~"), {"xen-generation-2"}, describe(result))
        after = snapshot_esp(root.esp)
        self.assertEqual(set(after), set(before))
        changed = {path for path in before if before[path] != after[path]}
        # The record follows the image it describes.
        self.assertEqual(changed, {"EFI/xen/xen-generation-2.efi", RECORD})
        expected = expected_xen_config(dict(second, xen_params=new_params))
        self.assertEqual(extract_section(root.esp / "EFI/xen/xen-generation-2.efi", ".config").decode(), expected)


class LoaderConf(ToolTestCase):
    def loader_conf(self, root):
        return (root.esp / "loader/loader.conf").read_text()

    def test_default_moves_to_the_xen_entry_of_the_default_generation(self):
        root = make_root(self, "--generations", "3", "--default", "2")
        build(self, root)
        self.assertEqual(
            self.loader_conf(root),
            root.manifest["loader_conf"].replace("default nixos-generation-2.conf", "default xen-generation-2.conf"),
        )

    def test_default_stays_when_the_default_generation_has_no_xen(self):
        root = make_root(self, "--generations", "3", "--no-xen", "3")
        build(self, root)
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf", "xen-generation-2.conf"])
        self.assertEqual(self.loader_conf(root), root.manifest["loader_conf"])

    def test_content_named_default_moves_to_its_xen_entry(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2")
        build(self, root)
        default = root.manifest["default_entry"]
        self.assertEqual(
            self.loader_conf(root),
            root.manifest["loader_conf"].replace(f"default {default}", f"default xen-{default.removeprefix('nixos-')}"),
        )

    def test_boot_counting_preferred_and_glob_default_move_to_xen(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2", "--boot-counting", "3")
        build(self, root)
        default = root.manifest["default_entry"]
        expected = root.manifest["loader_conf"]
        expected = expected.replace(f"preferred {default}", f"preferred xen-{default.removeprefix('nixos-')}")
        expected = expected.replace("default nixos-*", "default xen-*")
        self.assertEqual(self.loader_conf(root), expected)

    def test_no_default_option_leaves_loader_conf_alone(self):
        root = make_root(self, "--generations", "2")
        before = snapshot_esp(root.esp)["loader/loader.conf"]
        build(self, root, "info", "--no-default")
        self.assertEqual(snapshot_esp(root.esp)["loader/loader.conf"], before)
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf", "xen-generation-2.conf"])


class StaleFiles(ToolTestCase):
    def test_hand_made_xen_files_are_left_alone_with_one_warning(self):
        root = make_root(self, "--generations", "1")
        custom_entry = root.esp / "loader/entries/xen-custom.conf"
        custom_entry.write_text("title my Xen\nefi /EFI/xen/my-xen.efi\n")
        (root.esp / "EFI/xen").mkdir(parents=True)
        custom_image = root.esp / "EFI/xen/my-xen.efi"
        custom_image.write_bytes(b"my image")
        result = run_on_root(root, "default")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_entry_files(root), ["xen-custom.conf", "xen-generation-1.conf"])
        self.assertEqual(xen_image_files(root), ["my-xen.efi", "xen-generation-1.efi"])
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        self.assertEqual(len(warnings), 1, describe(result))
        self.assertIn("loader/entries/xen-custom.conf", warnings[0])
        self.assertIn("EFI/xen/my-xen.efi", warnings[0])
        self.assertEqual(custom_image.read_bytes(), b"my image")

    def test_stale_files_it_wrote_are_removed(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        stale_entry = root.esp / "loader/entries/xen-generation-1.conf"
        stale_entry.rename(root.esp / "loader/entries/xen-generation-99.conf")
        (root.esp / "EFI/xen/xen-generation-1.efi").rename(root.esp / "EFI/xen/xen-generation-99.efi")
        result = build(self, root)
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf", "xen-generation-2.conf"])
        self.assertEqual(xen_image_files(root), ["xen-generation-1.efi", "xen-generation-2.efi"])
        self.assertEqual(change_lines(result.stdout, "-"), {"xen-generation-99"}, describe(result))
        self.assertNotIn("warning:", result.stderr)

    def test_entries_of_collected_generations_are_removed(self):
        root = make_root(self, "--generations", "3")
        build(self, root)
        (root.esp / "loader/entries/nixos-generation-1.conf").unlink()
        result = build(self, root)
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf", "xen-generation-3.conf"])
        self.assertEqual(xen_image_files(root), ["xen-generation-2.efi", "xen-generation-3.efi"])
        self.assertEqual(change_lines(result.stdout, "-"), {"xen-generation-1"}, describe(result))

    def test_images_left_by_the_shell_script_are_removed(self):
        root = make_root(self, "--generations", "2", "--legacy-xen-images")
        self.assertEqual(len(root.manifest["legacy_xen_images"]), 2)
        build(self, root)
        self.assertEqual(sorted((root.esp / "EFI/nixos").glob("xen-*")), [])
        self.assertEqual(xen_image_files(root), ["xen-generation-1.efi", "xen-generation-2.efi"])

    def test_files_systemd_boot_owns_are_left_alone(self):
        root = make_root(self, "--generations", "2", "--specialisation", "debug", "--legacy-xen-images")
        legacy = set(root.manifest["legacy_xen_images"])
        before = {path: state for path, state in snapshot_esp(root.esp).items() if path not in legacy}
        del before["loader/loader.conf"]
        build(self, root)
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.entries))
        after = snapshot_esp(root.esp)
        self.assertEqual({path: after.get(path) for path in before}, before)


class RepeatedRuns(ToolTestCase):
    def test_second_run_writes_nothing(self):
        root = make_root(self, "--scheme", "hash", "--generations", "3", "--specialisation", "debug", "--boot-counting", "3")
        build(self, root)
        self.assertEqual(xen_entry_files(root), sorted(f"xen-{e['rest']}+3.conf" for e in root.entries))
        before = snapshot_esp(root.esp)
        build(self, root)
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_twenty_generations_second_run_reports_no_change_and_writes_nothing(self):
        root = make_root(self, "--generations", "20")
        first = build(self, root, "info")
        self.assertEqual(len(change_lines(first.stdout, "+")), 20, describe(first))
        before = snapshot_esp(root.esp)
        second = build(self, root, "info")
        self.assertIn("No change", second.stdout.splitlines(), describe(second))
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_second_run_reports_no_change(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        result = build(self, root, "info")
        self.assertIn("No change", result.stdout.splitlines(), describe(result))
        self.assertEqual(change_lines(result.stdout, "+") | change_lines(result.stdout, "-"), set())

    def test_counted_xen_entry_keeps_its_counter_when_unchanged(self):
        root = make_root(self, "--scheme", "hash", "--generations", "1", "--boot-counting", "3")
        build(self, root)
        entry = root.entry(1)
        counted = root.esp / "loader/entries" / f"xen-{entry['rest']}+3.conf"
        spent = counted.with_name(f"xen-{entry['rest']}+1-2.conf")
        counted.rename(spent)
        before = snapshot_esp(root.esp)
        build(self, root)
        self.assertEqual(xen_entry_files(root), [spent.name])
        self.assertEqual(snapshot_esp(root.esp), before)


class Output(ToolTestCase):
    def test_info_lists_every_added_entry(self):
        root = make_root(self, "--generations", "3", "--no-xen", "2", "--specialisation", "debug")
        result = build(self, root, "info")
        self.assertEqual(change_lines(result.stdout, "+"), xen_stems(root.xen_entries()), describe(result))
        self.assertEqual(change_lines(result.stdout, "-"), set())

    def test_default_verbosity_prints_one_progress_line(self):
        root = make_root(self, "--generations", "1")
        result = build(self, root, "default")
        self.assertEqual(result.stdout, PROGRESS_LINE + "\n", describe(result))

    def test_a_run_with_nothing_to_change_still_says_done(self):
        root = make_root(self, "--generations", "2")
        build(self, root, "default")
        again = build(self, root, "default")
        self.assertEqual(again.stdout, PROGRESS_LINE + "\n", describe(again))

    def test_quiet_prints_nothing(self):
        root = make_root(self, "--generations", "2", "--missing-bootspec", "1")
        result = build(self, root, "quiet")
        self.assertEqual(result.stdout, "")
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf"])


class DropInCommandLine(ToolTestCase):
    def assert_usage_failure(self, root, argv, status):
        before = snapshot_esp(root.esp)
        result = run_on_root(root, *argv)
        self.assertEqual(result.returncode, status, describe(result))
        self.assertNotEqual(result.stderr, "")
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_no_argument_exits_1(self):
        self.assert_usage_failure(make_root(self, "--generations", "1"), [], 1)

    def test_two_arguments_exit_1(self):
        self.assert_usage_failure(make_root(self, "--generations", "1"), ["info", "debug"], 1)

    def test_unknown_verbosity_exits_2(self):
        self.assert_usage_failure(make_root(self, "--generations", "1"), ["loud"], 2)

    def test_esp_comes_from_efiMountPoint_without_esp_option(self):
        root = make_root(self, "--generations", "1")
        result = run_tool("--root", root.path, "info", efi_mount_point=root.esp)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf"])

    def test_esp_option_wins_over_efiMountPoint(self):
        root = make_root(self, "--generations", "1")
        elsewhere = Path(tempfile.mkdtemp(prefix="xbb-other-esp-"))
        self.addCleanup(shutil.rmtree, elsewhere, ignore_errors=True)
        result = run_tool("--root", root.path, "--esp", root.esp, "info", efi_mount_point=elsewhere)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf"])
        self.assertEqual(list(elsewhere.iterdir()), [])

    def test_esp_defaults_to_slash_boot(self):
        root = make_root(self, "--generations", "1")
        result = run_tool("--root", root.path, "info", preexec_fn=with_esp_bound_on_boot(root.esp))
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf"])


if __name__ == "__main__":
    unittest.main()
