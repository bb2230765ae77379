"""`--source profiles`: machines without systemd-boot entries (Lanzaboote,
spec 2.3) get Xen entries from the system profile links. Their kernels are
not reachable as loader entry lines, so each image carries the kernel and
initrd as `.kernel` and `.ramdisk` sections (spec 3.3)."""

import os
import unittest

from common import (
    ToolTestCase,
    build,
    describe,
    extract_section,
    make_root,
    read_entry_pairs,
    run_on_root,
    snapshot_esp,
    warnings_of,
    xen_entry_files,
    xen_image_files,
)

LANZABOOTE_ROOT = (
    "--scheme", "lanzaboote", "--generations", "3", "--no-xen", "1",
    "--specialisation", "debug", "--profile", "lab", "--profile-generations", "1",
)


def config_lines(image):
    return dict(
        line.split("=", 1)
        for line in extract_section(image, ".config").decode().splitlines()
        if "=" in line
    )


class ProfilesSource(ToolTestCase):
    def test_every_profile_generation_with_xen_gets_an_entry(self):
        root = make_root(self, *LANZABOOTE_ROOT)
        build(self, root, "info", "--source", "profiles")
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.xen_entries()))
        self.assertEqual(xen_image_files(root), sorted(e["xen_image"] for e in root.xen_entries()))
        self.assertEqual(len(xen_entry_files(root)), 6)

    def test_entries_are_titled_like_systemd_boots_and_point_at_their_image(self):
        root = make_root(self, *LANZABOOTE_ROOT)
        build(self, root, "info", "--source", "profiles")
        for entry in root.xen_entries():
            fields = dict(read_entry_pairs(root, entry["xen_entry"]))
            self.assertEqual(fields["title"], f"{entry['title']} (with Xen Hypervisor)")
            self.assertEqual(fields["efi"], f"/EFI/xen/{entry['xen_image']}")
            self.assertIn(f"Generation {entry['generation']} ", fields["version"])

    def test_images_embed_kernel_initrd_and_command_lines(self):
        root = make_root(self, *LANZABOOTE_ROOT)
        build(self, root, "info", "--source", "profiles")
        for entry in root.xen_entries():
            image = root.esp / "EFI/xen" / entry["xen_image"]
            bootspec_kernel = root.store_path(os.readlink(root.store_path(entry["toplevel"] + "/kernel")))
            self.assertEqual(extract_section(image, ".kernel"), root.esp_path(entry["linux"]).read_bytes())
            self.assertEqual(extract_section(image, ".kernel"), bootspec_kernel.read_bytes())
            self.assertEqual(extract_section(image, ".ramdisk"), root.esp_path(entry["initrd"]).read_bytes())
            config = config_lines(image)
            self.assertEqual(config["options"], " ".join(entry["xen_params"]))
            self.assertEqual(
                config["kernel"].split(" ")[1:], [f"init={entry['init']}", *entry["kernel_params"]]
            )

    def test_files_lanzaboote_owns_are_left_alone(self):
        root = make_root(self, *LANZABOOTE_ROOT)
        before = {p: s for p, s in snapshot_esp(root.esp).items() if p.startswith(("EFI/Linux/", "EFI/nixos/"))}
        build(self, root, "info", "--source", "profiles")
        self.assertNotEqual(xen_entry_files(root), [])
        after = snapshot_esp(root.esp)
        self.assertEqual({p: after.get(p) for p in before}, before)

    def test_second_run_writes_nothing(self):
        root = make_root(self, *LANZABOOTE_ROOT)
        build(self, root, "info", "--source", "profiles")
        self.assertNotEqual(xen_entry_files(root), [])
        before = snapshot_esp(root.esp)
        result = build(self, root, "info", "--source", "profiles")
        self.assertIn("No change", result.stdout.splitlines(), describe(result))
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_two_links_with_one_generation_number_give_one_entry_that_stays(self):
        root = make_root(self, "--scheme", "lanzaboote", "--generations", "3")
        profiles = root.path / "nix/var/nix/profiles"
        # system-03-link names generation 3 too, but boots generation 1's
        # toplevel, whose older label ("Generation 3 <label>") systemd-boot
        # lists after generation 3's own.
        os.symlink(os.readlink(profiles / "system-1-link"), profiles / "system-03-link")
        result = build(self, root, "info", "--source", "profiles")
        warned = [w for w in warnings_of(result) if "system-3-link" in w and "system-03-link" in w]
        self.assertEqual(len(warned), 1, describe(result))
        self.assertIn("xen-generation-3", warned[0])
        self.assertIn("kept /nix/var/nix/profiles/system-3-link", warned[0])
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.xen_entries()))
        kept = os.readlink(profiles / "system-3-link")
        self.assertIn(f" init={kept}/init ", config_lines(root.esp / "EFI/xen" / root.entry(3)["xen_image"])["kernel"] + " ")
        before = snapshot_esp(root.esp)
        again = build(self, root, "info", "--source", "profiles")
        self.assertIn("No change", again.stdout.splitlines(), describe(again))
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_unknown_source_exits_2(self):
        root = make_root(self, "--generations", "1")
        result = run_on_root(root, "--source", "lanzaboote", "info")
        self.assertEqual(result.returncode, 2, describe(result))


if __name__ == "__main__":
    unittest.main()
