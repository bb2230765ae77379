"""What keeps an ESP bootable whatever happens (spec section 5 and the
defects of the shell script listed in section 1)."""

import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from common import (
    BINARY,
    tool_argv,
    RECORD,
    ToolTestCase,
    build,
    describe,
    expected_xen_entry,
    make_root,
    read_entry_pairs,
    rewrite_bootspec,
    run_on_root,
    snapshot_esp,
    tool_environment,
    xen_entry_files,
)

HERE = Path(__file__).resolve().parent


def outside_folder(test):
    folder = Path(tempfile.mkdtemp(prefix="xbb-outside-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    return folder


def all_file_bytes(folder):
    return b"".join(path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file())


class UnsafeBootspecValues(ToolTestCase):
    def inject(self, root, generation, change):
        rewrite_bootspec(root, root.entry(generation), change)

    def test_newline_in_xen_params_rejects_only_that_generation(self):
        root = make_root(self, "--generations", "3")

        def add_kernel_line(document):
            params = ["dom0_mem=512M\nkernel=evil.efi"]
            document["org.xenproject.bootspec.v1"]["xenParams"] = params
            document["org.xenproject.bootspec.v2"]["params"] = params

        self.inject(root, 1, add_kernel_line)
        result = build(self, root)
        self.assertIn("params", result.stderr.lower(), describe(result))
        self.assertTrue(
            "generation-1" in result.stderr or root.entry(1)["toplevel"] in result.stderr, describe(result)
        )
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf", "xen-generation-3.conf"])
        self.assertNotIn(b"evil", all_file_bytes(root.esp / "EFI/xen"))

    def test_newline_in_kernel_params_rejects_only_that_generation(self):
        root = make_root(self, "--generations", "2")

        def add_section(document):
            document["org.nixos.bootspec.v1"]["kernelParams"] = ["quiet\n[evil]"]

        self.inject(root, 1, add_section)
        result = build(self, root)
        self.assertIn("kernelparams", result.stderr.lower(), describe(result))
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf"])
        self.assertNotIn(b"[evil]", all_file_bytes(root.esp / "EFI/xen"))

    def test_empty_sort_key_gives_no_empty_line(self):
        root = make_root(self, "--generations", "1")
        entry = root.entry(1)
        source = root.esp / "loader/entries" / entry["entry"]
        source.write_text(source.read_text().replace("sort-key nixos\n", "sort-key\n"))
        build(self, root)
        text = (root.esp / "loader/entries/xen-generation-1.conf").read_text()
        self.assertNotIn("sort-key", text)
        self.assertTrue(all(line.strip() for line in text.splitlines()), text)

    def test_source_entry_without_sort_key_gives_entry_without_one(self):
        root = make_root(self, "--generations", "1")
        entry = root.entry(1)
        source = root.esp / "loader/entries" / entry["entry"]
        source.write_text(source.read_text().replace("sort-key nixos\n", ""))
        build(self, root)
        self.assertEqual(
            read_entry_pairs(root, "xen-generation-1.conf"), [
                ("title", "NixOS (with Xen Hypervisor)"),
                ("version", entry["version"]),
                ("efi", "/EFI/xen/xen-generation-1.efi"),
                ("machine-id", entry["machine_id"]),
            ],
        )


class StaysInsideTheEsp(ToolTestCase):
    def test_symlinked_xen_entry_is_not_written_through(self):
        root = make_root(self, "--generations", "1")
        target = outside_folder(self) / "precious.conf"
        target.write_text("precious\n")
        link = root.esp / "loader/entries/xen-generation-1.conf"
        link.symlink_to(target)
        result = run_on_root(root, "info")
        self.assertEqual(target.read_text(), "precious\n")
        refused = result.returncode == 1 and "symlink" in result.stderr
        replaced = (
            result.returncode == 0
            and not link.is_symlink()
            and read_entry_pairs(root, link.name) == expected_xen_entry(root.entry(1))
        )
        self.assertTrue(refused or replaced, describe(result))

    def test_symlinked_xen_folder_is_not_written_through(self):
        root = make_root(self, "--generations", "1")
        outside = outside_folder(self)
        folder = root.esp / "EFI/xen"
        folder.symlink_to(outside, target_is_directory=True)
        result = run_on_root(root, "info")
        self.assertEqual(list(outside.iterdir()), [])
        refused = result.returncode == 1 and "EFI/xen" in result.stderr and xen_entry_files(root) == []
        replaced = result.returncode == 0 and not folder.is_symlink() and (folder / "xen-generation-1.efi").is_file()
        self.assertTrue(refused or replaced, describe(result))

    def test_run_leaves_only_entries_and_images(self):
        root = make_root(self, "--generations", "2", "--specialisation", "debug")
        before = set(snapshot_esp(root.esp))
        build(self, root)
        added = set(snapshot_esp(root.esp)) - before
        expected = {f"loader/entries/{e['xen_entry']}" for e in root.entries}
        expected |= {f"EFI/xen/{e['xen_image']}" for e in root.entries}
        expected.add(RECORD)
        self.assertEqual(added - expected, set())
        self.assertEqual(expected - added, set())


class NoHelperPrograms(ToolTestCase):
    def test_build_runs_no_other_program(self):
        root = make_root(self, "--generations", "2")
        trace = outside_folder(self) / "execve.trace"
        result = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
             str(BINARY), "--root", str(root.path), "--esp", str(root.esp), "info"],
            capture_output=True, text=True, check=False, env=tool_environment(),
        )
        self.assertEqual(result.returncode, 0, describe(result))
        calls = [line for line in trace.read_text().splitlines() if "execve(" in line]
        self.assertEqual(len(calls), 1, "\n".join(calls))
        self.assertEqual(xen_entry_files(root), ["xen-generation-1.conf", "xen-generation-2.conf"])


class FullEsp(ToolTestCase):
    def run_in_small_esp(self, root, size_kib, *argv):
        mountpoint = outside_folder(self) / "esp"
        mountpoint.mkdir()
        result = subprocess.run(
            [sys.executable, str(HERE / "in_small_esp.py"), str(size_kib), str(root.esp), str(mountpoint),
             "--", *tool_argv(["--root", root.path, *argv])],
            capture_output=True, text=True, check=False, env=tool_environment(), cwd=HERE,
        )
        self.assertEqual(result.returncode, 0, f"small ESP helper failed:\n{result.stderr}")
        return json.loads(result.stdout)

    def test_short_esp_changes_nothing_and_says_what_is_missing(self):
        root = make_root(self, "--generations", "3")
        image_size = root.store_path(root.manifest["xen_efi"]).stat().st_size
        used_kib = sum(p.stat().st_size for p in root.esp.rglob("*") if p.is_file()) // 1024
        # Room for one unified image, not for three.
        run = self.run_in_small_esp(root, used_kib + 64 + image_size // 1024 + 512, "info")
        self.assertLess(run["free_before"], 3 * image_size)
        self.assertNotEqual(run["returncode"], 0, run["stderr"])
        self.assertRegex(run["stderr"].lower(), r"space|room|bytes")
        self.assertEqual(run["after"], run["before"])

    def test_roomy_esp_gets_every_entry(self):
        root = make_root(self, "--generations", "2")
        image_size = root.store_path(root.manifest["xen_efi"]).stat().st_size
        run = self.run_in_small_esp(root, (4 * image_size) // 1024 + 1024, "info")
        self.assertEqual(run["returncode"], 0, run["stderr"])
        self.assertIn("loader/entries/xen-generation-2.conf", run["after"])


if __name__ == "__main__":
    unittest.main()
