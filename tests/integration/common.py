"""Shared helpers of the integration tests: build a NixOS-like root with
fixtures/mkroot.py, run the built xen-boot-builder, and read the ESP
independently of the tool (plain text parsing and binutils' objcopy)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("XBB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
MKROOT = SOURCE_DIR / "fixtures" / "mkroot.py"
DEPS_DIR = Path(os.environ.get("XBB_DEPS_DIR", SOURCE_DIR / ".cache" / "deps"))
XEN_417_EFI = DEPS_DIR / "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi"
XEN_420_EFI = DEPS_DIR / "xen-hypervisor-4.20-amd64/boot/xen-4.20-amd64.efi"


# ---------------------------------------------------------------- roots


class Root:
    """A root made by mkroot: its folder, its ESP and its manifest."""

    def __init__(self, path):
        self.path = Path(path)
        self.esp = self.path / "boot"
        self.manifest = json.loads((self.path / "manifest.json").read_text())

    @property
    def entries(self):
        return self.manifest["entries"]

    def entry(self, generation, profile=None, specialisation=None):
        for entry in self.entries:
            if (entry["generation"], entry["profile"], entry["specialisation"]) == (
                generation,
                profile,
                specialisation,
            ):
                return entry
        raise KeyError(f"no entry for generation {generation} {profile} {specialisation}")

    def xen_entries(self):
        return [entry for entry in self.entries if entry["has_xen"]]

    def store_path(self, absolute):
        """`/nix/store/...` as a path under this root."""
        return self.path / absolute.lstrip("/")

    def esp_path(self, esp_absolute):
        """`/EFI/...` (as an entry line says) as a path under the ESP."""
        return self.esp / esp_absolute.lstrip("/")


def run_mkroot(root_dir, *options):
    """Run mkroot.py as a program; returns the completed process."""
    return subprocess.run(
        [sys.executable, str(MKROOT), str(root_dir), *options],
        capture_output=True,
        text=True,
        check=False,
    )


def make_root(test, *options):
    """Build a root in a temporary folder removed when `test` ends."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-root-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    result = run_mkroot(folder / "root", *options)
    test.assertEqual(result.returncode, 0, f"mkroot {' '.join(options)} failed:\n{result.stderr}")
    return Root(folder / "root")


# ---------------------------------------------------------------- ESP readers


def parse_loader_entry(text):
    """A systemd-boot entry as a list of (key, value) pairs, in file order."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        pairs.append((key, value.strip()))
    return pairs


def entry_fields(text):
    """A systemd-boot entry as a dict (last value wins for repeated keys)."""
    return dict(parse_loader_entry(text))


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_tools(test):
    """Fail (never skip) when a real input the tests need is missing."""
    test.assertTrue(XEN_417_EFI.is_file(), f"missing real input {XEN_417_EFI} (run .ci/setup)")


class RootTestCase(unittest.TestCase):
    def setUp(self):
        check_tools(self)
