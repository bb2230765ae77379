"""`--lanzaboote` with signing on a Lanzaboote ESP (issue 11).

The root is what Lanzaboote leaves (mkroot --scheme lanzaboote): stubs in
EFI/Linux, content-named kernels and initrds in EFI/nixos, its systemd-boot in
EFI/systemd and EFI/BOOT, loader.conf with `default nixos-*`, no loader
entries. The tool runs as the NixOS module runs it: `--lanzaboote --sign-key
KEY --sign-cert CERT`, with a key and certificate made here by openssl.

What it owes: none of Lanzaboote's files touched (bytes, inode and mtime);
one entry loader/entries/xen-<rest>.conf per generation, sorting next to
Lanzaboote's (sort-key `lanza`, or the bootspec's
org.nix-community.lanzaboote sort_key); self-contained signed images
(objcopy and sbverify are the oracles, never the tool's reader); every Xen
entry still bootable after Lanzaboote's garbage collection empties EFI/nixos;
a second run writes and signs nothing; verify with another certificate fails
naming the image; a failing initrd secrets tool costs only its generation,
whose old image stays.
"""

import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import (
    ToolTestCase,
    build,
    copy_root,
    describe,
    extract_section,
    make_template_root,
    parse_loader_entry,
    run_on_root,
    run_tool,
    rewrite_bootspec,
    run_traced,
    section_headers,
    snapshot_esp,
    warnings_of,
    xen_entry_files,
    xen_image_files,
)

LANZABOOTE_ROOT = ("--scheme", "lanzaboote", "--generations", "2", "--specialisation", "debug")
# Lanzaboote's folders and file: a run must not write, remove or add anything there.
LANZABOOTE_PLACES = ("EFI/Linux/", "EFI/nixos/", "EFI/systemd/", "EFI/BOOT/", "loader/loader.conf")


def make_key(folder, name):
    """A self-signed key and certificate (PEM), the key private to us."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    os.close(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return key, cert


def lanzaboote_template_with_keys(cls, *names):
    """For setUpClass: a Lanzaboote template root in cls.template, and a key
    and certificate for each name, removed with the class."""
    cls.template = make_template_root(cls, *LANZABOOTE_ROOT)
    keys = Path(tempfile.mkdtemp(prefix="xbb-keys-"))
    cls.addClassCleanup(shutil.rmtree, keys, ignore_errors=True)
    return [make_key(keys, name) for name in names]


def signature_verifies(image, cert):
    """sbverify (Debian's sbsigntool): the independent check of a signature."""
    result = subprocess.run(["sbverify", "--cert", str(cert), str(image)], capture_output=True, text=True)
    return result.returncode == 0


def lanzaboote_part(snapshot):
    return {path: state for path, state in snapshot.items() if path.startswith(LANZABOOTE_PLACES)}


class Lanzaboote(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        (cls.key, cls.cert), (cls.other_key, cls.other_cert) = lanzaboote_template_with_keys(cls, "db", "other")

    def signing(self):
        return ("--lanzaboote", "--sign-key", self.key, "--sign-cert", self.cert)

    def built(self):
        """A copy of the template root after one signed --lanzaboote run."""
        root = copy_root(self, self.template)
        build(self, root, "info", *self.signing())
        return root

    def image(self, root, entry):
        return root.esp / "EFI/xen" / entry["xen_image"]

    def verify(self, root, cert):
        return run_tool("--esp", root.esp, "--sign-cert", cert, "verify")

    def test_lanzaboote_files_are_untouched(self):
        root = copy_root(self, self.template)
        before = lanzaboote_part(snapshot_esp(root.esp))
        self.assertEqual(sorted(before), root.manifest["lanzaboote_files"])
        build(self, root, "info", *self.signing())
        self.assertEqual(lanzaboote_part(snapshot_esp(root.esp)), before)
        self.assertIn("default nixos-*", (root.esp / "loader/loader.conf").read_text().splitlines())

    def test_one_entry_per_generation_sorting_with_lanzaboote(self):
        root = self.built()
        self.assertEqual(xen_entry_files(root), sorted(e["xen_entry"] for e in root.xen_entries()))
        self.assertEqual(xen_image_files(root), sorted(e["xen_image"] for e in root.xen_entries()))
        for entry in root.xen_entries():
            fields = dict(parse_loader_entry((root.esp / "loader/entries" / entry["xen_entry"]).read_text()))
            self.assertEqual(fields["sort-key"], "lanza", entry["xen_entry"])
            self.assertEqual(fields["efi"], f"/EFI/xen/{entry['xen_image']}")

    def test_sort_key_from_the_bootspec(self):
        root = copy_root(self, make_template_root(type(self), *LANZABOOTE_ROOT, "--lanzaboote-sort-key", "zz-lanza"))
        build(self, root, "info", *self.signing())
        self.assertEqual(len(root.xen_entries()), 4)
        for entry in root.xen_entries():
            fields = dict(parse_loader_entry((root.esp / "loader/entries" / entry["xen_entry"]).read_text()))
            self.assertEqual(fields["sort-key"], "zz-lanza", entry["xen_entry"])

    def test_a_sort_key_that_cannot_be_used_is_said_and_lanza_used(self):
        root = copy_root(self, make_template_root(type(self), *LANZABOOTE_ROOT))
        extension = "org.nix-community.lanzaboote"
        cases = {1: (7, "must be a string"), 2: ("zz\tlanza", "holds a control character (zz\\x09lanza)")}
        for number, (key, _) in cases.items():
            rewrite_bootspec(root, root.entry(number), lambda document, key=key: document.update({extension: {"sort_key": key}}))
        result = build(self, root, "info", *self.signing())
        for number, (_, why) in cases.items():
            boot_json = root.store_path(root.entry(number)["toplevel"] + "/boot.json")
            expected = (f"nixos-generation-{number}: {boot_json}: {extension}.sort_key: {why}; "
                        'its Xen entry sorts with "lanza"')
            self.assertIn(expected, warnings_of(result), describe(result))
        for entry in root.xen_entries():
            fields = dict(parse_loader_entry((root.esp / "loader/entries" / entry["xen_entry"]).read_text()))
            self.assertEqual(fields["sort-key"], "lanza", entry["xen_entry"])

    def test_images_are_self_contained_and_signed(self):
        root = self.built()
        for entry in root.xen_entries():
            image = self.image(root, entry)
            self.assertLessEqual({".config", ".kernel", ".ramdisk"}, set(section_headers(image)), image)
            toplevel = root.store_path(entry["toplevel"])
            kernel = root.store_path(os.readlink(toplevel / "kernel"))
            initrd = root.store_path(os.readlink(toplevel / "initrd"))
            self.assertEqual(extract_section(image, ".kernel"), kernel.read_bytes(), image)
            self.assertEqual(extract_section(image, ".ramdisk"), initrd.read_bytes(), image)
            config = extract_section(image, ".config").decode()
            self.assertNotIn("ramdisk=", config)
            self.assertNotIn("\\", config, f"{image}: its configuration names a file on the ESP")
            self.assertTrue(signature_verifies(image, self.cert), f"{image}: sbverify finds no signature by db.pem")
            self.assertFalse(signature_verifies(image, self.other_cert))

    def test_entries_stay_bootable_after_lanzaboote_collects_its_files(self):
        root = self.built()
        for path in (root.esp / "EFI/nixos").iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        result = self.verify(root, self.cert)
        self.assertEqual(result.returncode, 0, describe(result))
        for entry in root.xen_entries():
            self.assertIn(f"ok      {entry['xen_entry']}", result.stdout.splitlines())

    def test_second_run_writes_and_signs_nothing(self):
        root = self.built()
        before = snapshot_esp(root.esp)
        result, calls = run_traced(self, root, *self.signing(), "info", calls="execve")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertIn("No change", result.stdout.splitlines(), describe(result))
        self.assertEqual(snapshot_esp(root.esp), before)
        started = [Path(call.strings[0]).name for call in calls if call.name == "execve" and call.strings]
        self.assertNotIn("sbsign", started)

    def test_verify_with_another_certificate_names_each_image(self):
        root = self.built()
        result = self.verify(root, self.other_cert)
        self.assertEqual(result.returncode, 1, describe(result))
        broken = [line for line in result.stdout.splitlines() if line.startswith("BROKEN")]
        for entry in root.xen_entries():
            self.assertTrue(
                any(f"EFI/xen/{entry['xen_image']}" in line for line in broken),
                f"no BROKEN line names {entry['xen_image']}:\n{result.stdout}",
            )

    def test_failing_initrd_secrets_tool_costs_only_its_generation(self):
        """Generation 1 gets initrd secrets whose tool fails, generation 2 new
        Xen parameters: 2's image is rewritten, 1's old image stays (bytes,
        inode, mtime), and the warning names the tool."""
        root = self.built()
        old, new = root.entry(1), root.entry(2)
        tool = "/nix/store/00000000000000000000000000000000-append-initrd-secrets/bin/append-initrd-secrets"
        script = root.store_path(tool)
        script.parent.mkdir(parents=True)
        script.write_text("#!/bin/sh\necho 'cannot read /etc/secrets/host_key' >&2\nexit 1\n")
        script.chmod(0o555)
        rewrite_bootspec(root, old, lambda spec: spec["org.nixos.bootspec.v1"].update(initrdSecrets=tool))
        rewrite_bootspec(root, new, lambda spec: spec["org.xenproject.bootspec.v2"].update(params=["dom0_mem=2G"]))
        before = snapshot_esp(root.esp)
        old_image = f"EFI/xen/{old['xen_image']}"
        new_image = f"EFI/xen/{new['xen_image']}"
        result = run_on_root(root, *self.signing(), "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertTrue(any(tool in warning for warning in warnings_of(result)), describe(result))
        after = snapshot_esp(root.esp)
        self.assertEqual(after[old_image], before[old_image])
        self.assertEqual(after[f"loader/entries/{old['xen_entry']}"], before[f"loader/entries/{old['xen_entry']}"])
        self.assertNotEqual(after[new_image][2], before[new_image][2])
        self.assertIn("options=dom0_mem=2G", extract_section(root.esp / new_image, ".config").decode().splitlines())
        verified = self.verify(root, self.cert)
        self.assertEqual(verified.returncode, 0, describe(verified))


if __name__ == "__main__":
    unittest.main()
