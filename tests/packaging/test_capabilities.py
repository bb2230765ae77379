"""The units give the program no capability (CapabilityBoundingSet= empty):
root writing a root-owned ESP needs none. The built program runs as root
with an empty bounding set, as systemd starts it, on a NixOS-like root whose
ESP is root's alone (as NixOS mounts its vfat ESP, umask=0077)."""

import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

from common import BINARY, SOURCE_DIR, describe, run

# What systemd does with CapabilityBoundingSet= and NoNewPrivileges=yes.
WITHOUT_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]
NOBODY = 65534


class NoCapabilities(unittest.TestCase):
    def setUp(self):
        self.assertEqual(os.geteuid(), 0, "this test runs the program as root")
        folder = Path(tempfile.mkdtemp(prefix="xbb-caps-"))
        self.addCleanup(shutil.rmtree, folder)
        self.root = folder / "root"
        result = run([sys.executable, SOURCE_DIR / "fixtures" / "mkroot.py", self.root, "--generations", "2"])
        self.assertEqual(result.returncode, 0, describe(result))
        self.esp = self.root / "boot"
        for path in [self.esp, *self.esp.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)

    def build(self, *prefix):
        return run([*prefix, BINARY, "--root", self.root, "--esp", self.esp, "info"])

    def xen_entries(self):
        return sorted(path.name for path in (self.esp / "loader" / "entries").glob("xen-*.conf"))

    def test_builds_a_root_owned_esp_without_capabilities(self):
        result = self.build(*WITHOUT_CAPABILITIES)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(self.xen_entries(), ["xen-generation-1.conf", "xen-generation-2.conf"])
        again = self.build(*WITHOUT_CAPABILITIES)
        self.assertEqual(again.returncode, 0, describe(again))
        self.assertIn("No change", again.stdout)

    def test_without_capabilities_root_cannot_write_another_users_folder(self):
        # The control: setpriv did take CAP_DAC_OVERRIDE away, so the run above
        # succeeded on ownership alone.
        entries = self.esp / "loader" / "entries"
        os.chown(entries, NOBODY, NOBODY)
        result = self.build(*WITHOUT_CAPABILITIES)
        self.assertNotEqual(result.returncode, 0, describe(result))
        self.assertIn("Permission denied", result.stderr)
        self.assertEqual(self.xen_entries(), [])
        with_capabilities = self.build()
        self.assertEqual(with_capabilities.returncode, 0, describe(with_capabilities))


if __name__ == "__main__":
    unittest.main()
