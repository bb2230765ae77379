"""The fixture generator writes what NixOS writes (background.md sections 1
and 2), so the other integration tests stand on real formats."""

import hashlib
import json
import os
import re
import unittest
from pathlib import Path

from common import XEN_417_EFI, RootTestCase, make_root, parse_loader_entry, run_mkroot, sha256_file

GENERATION_SCHEME_ORDER = ["title", "sort-key", "version", "linux", "initrd", "options", "machine-id"]
HASH_SCHEME_ORDER = ["title", "version", "linux", "initrd", "options", "machine-id", "sort-key"]
STORE_HASH = r"^/nix/store/[0-9a-df-np-sv-z]{32}"
STORE_NAME = re.compile(STORE_HASH + r"-[^/]+")


def keys_in_file_order(text):
    return [key for key, _ in parse_loader_entry(text)]


def assert_keys_sorted(test, pairs_list, where):
    """json object_pairs_hook result: every object's keys in sorted order."""
    keys = [key for key, _ in pairs_list]
    test.assertEqual(keys, sorted(keys), f"keys not sorted in {where}")
    return dict(pairs_list)


def tree_listing(folder):
    """Every path under `folder` with its content hash or link target."""
    listing = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = str(path.relative_to(folder))
        if path.is_symlink():
            listing[relative] = ("link", os.readlink(path))
        elif path.is_file():
            listing[relative] = ("file", sha256_file(path))
        else:
            listing[relative] = ("dir", None)
    return listing


class GenerationSchemeEntries(RootTestCase):
    def test_entries_have_nixos_names_line_order_and_trailing_newline(self):
        root = make_root(self, "--generations", "2", "--specialisation", "debug", "--profile", "lab")
        names = sorted(p.name for p in (root.esp / "loader/entries").iterdir())
        self.assertEqual(
            names,
            sorted(
                [
                    "nixos-generation-1.conf",
                    "nixos-generation-1-specialisation-debug.conf",
                    "nixos-generation-2.conf",
                    "nixos-generation-2-specialisation-debug.conf",
                    "nixos-lab-generation-1.conf",
                    "nixos-lab-generation-1-specialisation-debug.conf",
                    "nixos-lab-generation-2.conf",
                    "nixos-lab-generation-2-specialisation-debug.conf",
                ]
            ),
        )
        for name in names:
            text = (root.esp / "loader/entries" / name).read_text()
            self.assertTrue(text.endswith("\n"), name)
            self.assertEqual(keys_in_file_order(text), GENERATION_SCHEME_ORDER, name)

    def test_titles_name_profile_and_specialisation(self):
        root = make_root(self, "--generations", "1", "--specialisation", "debug", "--profile", "lab")
        titles = {
            name: dict(parse_loader_entry((root.esp / "loader/entries" / name).read_text()))["title"]
            for name in [
                "nixos-generation-1.conf",
                "nixos-generation-1-specialisation-debug.conf",
                "nixos-lab-generation-1.conf",
                "nixos-lab-generation-1-specialisation-debug.conf",
            ]
        }
        self.assertEqual(
            titles,
            {
                "nixos-generation-1.conf": "NixOS",
                "nixos-generation-1-specialisation-debug.conf": "NixOS (debug)",
                "nixos-lab-generation-1.conf": "NixOS [lab]",
                "nixos-lab-generation-1-specialisation-debug.conf": "NixOS [lab] (debug)",
            },
        )

    def test_loader_conf_defaults_to_newest_generation(self):
        root = make_root(self, "--generations", "3")
        self.assertEqual(
            (root.esp / "loader/loader.conf").read_text(),
            "timeout 5\ndefault nixos-generation-3.conf\neditor 0\nconsole-mode keep\n",
        )

    def test_default_option_moves_loader_conf_and_system_profile(self):
        root = make_root(self, "--generations", "3", "--default", "2")
        conf = (root.esp / "loader/loader.conf").read_text().splitlines()
        self.assertIn("default nixos-generation-2.conf", conf)
        self.assertEqual(os.readlink(root.path / "nix/var/nix/profiles/system"), "system-2-link")
        self.assertEqual(root.manifest["default_entry"], "nixos-generation-2.conf")


class HashSchemeEntries(RootTestCase):
    def test_entry_name_is_sha256_of_its_bytes_without_trailing_newline(self):
        root = make_root(self, "--scheme", "hash", "--generations", "3", "--specialisation", "debug")
        files = sorted((root.esp / "loader/entries").iterdir())
        self.assertEqual(len(files), 6)
        for path in files:
            data = path.read_bytes()
            self.assertEqual(path.name, f"nixos-{hashlib.sha256(data).hexdigest()}.conf")
            self.assertFalse(data.endswith(b"\n"), path.name)
            self.assertEqual(keys_in_file_order(data.decode()), HASH_SCHEME_ORDER, path.name)

    def test_boot_counting_names_and_preferred_loader_conf(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2", "--boot-counting", "3")
        for path in (root.esp / "loader/entries").iterdir():
            match = re.fullmatch(r"nixos-([0-9a-f]{64})\+3\.conf", path.name)
            self.assertIsNotNone(match, path.name)
            self.assertEqual(match.group(1), hashlib.sha256(path.read_bytes()).hexdigest())
        conf = (root.esp / "loader/loader.conf").read_text().splitlines()
        preferred = [line for line in conf if line.startswith("preferred ")]
        self.assertEqual(len(preferred), 1)
        self.assertIn("default nixos-*", conf)
        preferred_id = preferred[0].split(" ", 1)[1]
        counted = preferred_id.removesuffix(".conf") + "+3.conf"
        self.assertTrue((root.esp / "loader/entries" / counted).is_file())
        self.assertEqual(root.entry(2)["entry"], counted)

    def test_loader_conf_default_names_an_existing_entry(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2")
        conf = (root.esp / "loader/loader.conf").read_text().splitlines()
        defaults = [line.split(" ", 1)[1] for line in conf if line.startswith("default ")]
        self.assertEqual(len(defaults), 1)
        self.assertTrue((root.esp / "loader/entries" / defaults[0]).is_file())


class LanzabooteEsp(RootTestCase):
    def test_lanzaboote_esp_has_stubs_and_content_named_copies_but_no_entries(self):
        root = make_root(self, "--scheme", "lanzaboote", "--generations", "2", "--specialisation", "debug")
        self.assertFalse((root.esp / "loader/entries").exists())
        self.assertIn("default nixos-*", (root.esp / "loader/loader.conf").read_text().splitlines())
        for entry in root.entries:
            self.assertIsNone(entry["entry"])
            self.assertTrue(root.esp_path(entry["stub"]).is_file())
            self.assertTrue(Path(entry["stub"]).name.startswith(f"nixos-{entry['rest']}-"))
            for key, kind in (("linux", "kernel"), ("initrd", "initrd")):
                self.assertRegex(entry[key], rf"^/EFI/nixos/{kind}-6\.12\.7-[0-9a-df-np-sv-z]{{52}}\.efi$")
            kernel_link = os.readlink(root.store_path(entry["toplevel"] + "/kernel"))
            self.assertEqual(root.esp_path(entry["linux"]).read_bytes(), root.store_path(kernel_link).read_bytes())

    def test_manifest_lists_every_file_lanzaboote_wrote(self):
        root = make_root(self, "--scheme", "lanzaboote", "--generations", "2", "--specialisation", "debug")
        on_esp = sorted(path.relative_to(root.esp).as_posix() for path in root.esp.rglob("*") if path.is_file())
        self.assertEqual(root.manifest["lanzaboote_files"], on_esp)
        for path in ("EFI/systemd/systemd-bootx64.efi", "EFI/BOOT/BOOTX64.EFI", "loader/loader.conf"):
            self.assertIn(path, on_esp)

    def test_lanzaboote_sort_key_in_every_bootspec(self):
        root = make_root(self, "--scheme", "lanzaboote", "--generations", "2", "--specialisation", "debug",
                         "--lanzaboote-sort-key", "zz-lanza")
        for entry in root.entries:
            document = json.loads(root.store_path(entry["toplevel"] + "/boot.json").read_text())
            self.assertEqual(document["org.nix-community.lanzaboote"], {"sort_key": "zz-lanza"})
            for child in document["org.nixos.specialisation.v1"].values():
                self.assertEqual(child["org.nix-community.lanzaboote"], {"sort_key": "zz-lanza"})
        plain = make_root(self, "--scheme", "lanzaboote", "--generations", "1")
        document = json.loads(plain.store_path(plain.entries[0]["toplevel"] + "/boot.json").read_text())
        self.assertNotIn("org.nix-community.lanzaboote", document)


class EntriesPointAtRealFiles(RootTestCase):
    def test_linux_initrd_and_init_lines_resolve_under_the_root(self):
        root = make_root(self, "--generations", "2", "--specialisation", "debug")
        for entry in root.entries:
            fields = dict(parse_loader_entry((root.esp / "loader/entries" / entry["entry"]).read_text()))
            init = fields["options"].split()[0].removeprefix("init=")
            toplevel = init.removesuffix("/init")
            self.assertEqual(toplevel, entry["toplevel"])
            self.assertTrue(root.store_path(init).is_file())
            bootspec = json.loads(root.store_path(toplevel + "/boot.json").read_text())["org.nixos.bootspec.v1"]
            for line, store_key in (("linux", "kernel"), ("initrd", "initrd")):
                store_file = bootspec[store_key]
                parts = Path(store_file).parts
                self.assertEqual(fields[line], f"/EFI/nixos/{parts[3]}-{parts[-1]}.efi")
                self.assertEqual(
                    root.esp_path(fields[line]).read_bytes(), root.store_path(store_file).read_bytes()
                )
            self.assertEqual(fields["options"].split()[1:], bootspec["kernelParams"])
            self.assertIn(f"generation={entry['generation']}", bootspec["kernelParams"])

    def test_real_kernel_and_initrd_are_copied_into_store_and_esp(self):
        kernel = XEN_417_EFI  # any real file of some size will do
        initrd = Path(__file__)
        root = make_root(self, "--generations", "1", "--kernel", str(kernel), "--initrd", str(initrd))
        entry = root.entry(1)
        self.assertEqual(root.esp_path(entry["linux"]).read_bytes(), kernel.read_bytes())
        self.assertEqual(root.esp_path(entry["initrd"]).read_bytes(), initrd.read_bytes())

    def test_toplevel_links_are_absolute_store_paths(self):
        root = make_root(self, "--generations", "1", "--specialisation", "debug")
        top = root.store_path(root.entry(1)["toplevel"])
        for link in ("kernel", "initrd", "specialisation/debug"):
            target = os.readlink(top / link)
            self.assertRegex(target, STORE_NAME)
            self.assertTrue(root.store_path(target).exists(), link)
        self.assertEqual(os.readlink(top / "specialisation/debug"), root.entry(1, specialisation="debug")["toplevel"])


class Bootspecs(RootTestCase):
    def bootspec(self, root, entry):
        text = root.store_path(entry["toplevel"] + "/boot.json").read_text()
        return text, json.loads(text, object_pairs_hook=lambda pairs: assert_keys_sorted(self, pairs, entry["toplevel"]))

    def test_bootspec_is_sorted_two_space_json_with_required_keys(self):
        root = make_root(self, "--generations", "1", "--specialisation", "debug")
        text, document = self.bootspec(root, root.entry(1))
        self.assertTrue(text.endswith("}\n"))
        self.assertTrue(text.startswith('{\n  "org.nixos.bootspec.v1": {\n    "init": '))
        v1 = document["org.nixos.bootspec.v1"]
        self.assertEqual(
            set(v1), {"init", "initrd", "kernel", "kernelParams", "label", "system", "toplevel"}
        )
        self.assertEqual(v1["init"], v1["toplevel"] + "/init")
        self.assertEqual(document["org.nixos.systemd-boot"], {"sortKey": "nixos"})

    def test_specialisation_embeds_the_childs_whole_bootspec(self):
        root = make_root(self, "--generations", "1", "--specialisation", "debug")
        _, parent = self.bootspec(root, root.entry(1))
        _, child = self.bootspec(root, root.entry(1, specialisation="debug"))
        self.assertEqual(parent["org.nixos.specialisation.v1"], {"debug": child})
        self.assertEqual(child["org.nixos.specialisation.v1"], {})
        self.assertEqual(child["org.nixos.systemd-boot"], {"sortKey": "nixos-debug"})
        self.assertNotEqual(
            child["org.xenproject.bootspec.v2"]["params"], parent["org.xenproject.bootspec.v2"]["params"]
        )

    def test_xen_extension_variants(self):
        root = make_root(
            self, "--generations", "4", "--no-xen", "1", "--xen-v1", "2", "--legacy-efipath", "3",
            "--xen-params", "dom0_mem=512M console=com1",
        )
        variants = {n: self.bootspec(root, root.entry(n))[1] for n in range(1, 5)}
        xen_keys = {n: sorted(k for k in doc if k.startswith("org.xenproject.")) for n, doc in variants.items()}
        self.assertEqual(xen_keys[1], [])
        self.assertEqual(xen_keys[2], ["org.xenproject.bootspec.v1"])
        self.assertEqual(xen_keys[3], ["org.xenproject.bootspec.v1"])
        self.assertEqual(xen_keys[4], ["org.xenproject.bootspec.v1", "org.xenproject.bootspec.v2"])
        efi = root.manifest["xen_efi"]
        params = ["dom0_mem=512M", "console=com1"]
        self.assertEqual(variants[2]["org.xenproject.bootspec.v1"], {"xen": efi, "xenParams": params})
        self.assertEqual(variants[3]["org.xenproject.bootspec.v1"], {"efiPath": efi, "xenParams": params})
        v2 = variants[4]["org.xenproject.bootspec.v2"]
        self.assertEqual((v2["efiPath"], v2["params"], v2["version"]), (efi, params, "4.17.7"))
        self.assertEqual(
            [root.entry(n)["xen_extension"] for n in range(1, 5)], [None, "v1", "v1-efipath", "v2"]
        )

    def test_xen_image_in_store_is_the_real_debian_image(self):
        root = make_root(self, "--generations", "1")
        store_image = root.store_path(root.manifest["xen_efi"])
        self.assertRegex(root.manifest["xen_efi"], STORE_HASH + r"-xen-4\.17\.7-boot/boot/xen-4\.17\.efi$")
        self.assertEqual(sha256_file(store_image), sha256_file(XEN_417_EFI))

    def test_missing_bootspec_keeps_entry_but_has_no_boot_json(self):
        root = make_root(self, "--generations", "2", "--missing-bootspec", "1")
        entry = root.entry(1)
        self.assertFalse(root.store_path(entry["toplevel"] + "/boot.json").exists())
        self.assertTrue(root.store_path(entry["toplevel"] + "/init").is_file())
        self.assertTrue((root.esp / "loader/entries" / entry["entry"]).is_file())
        self.assertFalse(entry["has_xen"])
        self.assertTrue(root.entry(2)["has_xen"])


class Profiles(RootTestCase):
    def test_profile_links_point_at_toplevels(self):
        root = make_root(self, "--generations", "2", "--profile", "lab", "--profile-generations", "3")
        profiles = root.path / "nix/var/nix/profiles"
        for n in (1, 2):
            self.assertEqual(os.readlink(profiles / f"system-{n}-link"), root.entry(n)["toplevel"])
        for n in (1, 2, 3):
            self.assertEqual(
                os.readlink(profiles / f"system-profiles/lab-{n}-link"), root.entry(n, profile="lab")["toplevel"]
            )
        self.assertEqual(os.readlink(profiles / "system"), "system-2-link")
        self.assertEqual(os.readlink(profiles / "system-profiles/lab"), "lab-3-link")


class ManifestAndDeterminism(RootTestCase):
    def test_same_arguments_give_identical_trees(self):
        options = ("--scheme", "hash", "--generations", "2", "--specialisation", "s", "--legacy-xen-images")
        first, second = make_root(self, *options), make_root(self, *options)
        self.assertEqual(tree_listing(first.path), tree_listing(second.path))

    def test_seed_changes_store_hashes(self):
        first = make_root(self, "--generations", "1")
        second = make_root(self, "--generations", "1", "--seed", "7")
        self.assertNotEqual(first.entry(1)["toplevel"], second.entry(1)["toplevel"])

    def test_manifest_names_expected_xen_files(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2", "--boot-counting", "2-1", "--no-xen", "1")
        second = root.entry(2)
        self.assertEqual(second["entry"], f"nixos-{second['rest']}+2-1.conf")
        self.assertEqual(second["xen_entry"], f"xen-{second['rest']}.conf")
        self.assertEqual(second["xen_image"], f"xen-{second['rest']}.efi")
        self.assertEqual([e["has_xen"] for e in root.entries], [False, True])

    def test_legacy_xen_images_are_planted_for_xen_entries(self):
        root = make_root(self, "--generations", "2", "--no-xen", "1", "--legacy-xen-images")
        self.assertEqual(root.manifest["legacy_xen_images"], ["EFI/nixos/xen-generation-2.efi"])
        self.assertTrue((root.esp / "EFI/nixos/xen-generation-2.efi").is_file())

    def test_machine_id_line_can_be_left_out(self):
        root = make_root(self, "--generations", "1", "--no-machine-id")
        text = (root.esp / "loader/entries/nixos-generation-1.conf").read_text()
        self.assertNotIn("machine-id", text)


class CommandLine(RootTestCase):
    def test_refuses_to_replace_a_folder_it_did_not_make(self):
        root = make_root(self, "--generations", "1")
        foreign = root.path.parent / "foreign"
        foreign.mkdir()
        (foreign / "precious").write_text("keep me")
        result = run_mkroot(foreign, "--force")
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual((foreign / "precious").read_text(), "keep me")

    def test_force_replaces_an_earlier_tree(self):
        root = make_root(self, "--generations", "1")
        result = run_mkroot(root.path, "--force", "--generations", "2")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue((root.esp / "loader/entries/nixos-generation-2.conf").is_file())

    def test_missing_xen_image_is_an_error(self):
        result = run_mkroot("/nonexistent-parent/never-made", "--xen-efi", "/nonexistent/xen.efi")
        self.assertEqual(result.returncode, 2)
        self.assertIn("/nonexistent/xen.efi", result.stderr)

    def test_lanzaboote_sort_key_needs_the_lanzaboote_scheme(self):
        result = run_mkroot("/nonexistent-parent/never-made", "--lanzaboote-sort-key", "x")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--lanzaboote-sort-key: only with --scheme lanzaboote", result.stderr)


if __name__ == "__main__":
    unittest.main()
