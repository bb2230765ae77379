"""The systemd units: `systemd-analyze verify` finds nothing to say about
them, the services' sandbox rates as tightly as it was written, and every
unit's ESP is the one the sandbox lets it write."""

import os
import re
import unittest
from pathlib import Path

from common import describe, run

# The units as configured for this build tree: ExecStart= runs the built
# program, which verify checks is there.
UNITS_DIR = Path(os.environ["XBB_TEST_UNITS_DIR"])
SERVICES = ["xen-boot-builder.service", "xen-boot-builder-update.service"]
PATH_UNIT = "xen-boot-builder-update.path"

# systemd-analyze security (systemd 252) rates an unsandboxed root service
# 9.6 and these 1.1; dropping a setting it scores raises that.
MAX_EXPOSURE = "11"


def settings(unit):
    """{key: [values in order]} of a unit file, all sections together."""
    found = {}
    for line in (UNITS_DIR / unit).read_text().splitlines():
        match = re.match(r"^(\w+)=(.*)$", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


class Units(unittest.TestCase):
    def test_verify_reports_nothing(self):
        # --man=no: verify would run man(1) for Documentation=; the page is
        # checked by its own test. No PID 1 is needed.
        units = [UNITS_DIR / unit for unit in SERVICES + [PATH_UNIT]]
        result = run(["systemd-analyze", "verify", "--man=no", *units])
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""), describe(result))

    def test_services_are_sandboxed(self):
        for service in SERVICES:
            with self.subTest(service=service):
                result = run(
                    ["systemd-analyze", "security", "--offline=yes", "--no-pager",
                     f"--threshold={MAX_EXPOSURE}", UNITS_DIR / service]
                )
                self.assertEqual(result.returncode, 0, describe(result))

    def test_services_write_only_the_esp_they_are_given(self):
        for service in SERVICES:
            with self.subTest(service=service):
                unit = settings(service)
                (esp,) = [value.split("=", 1)[1] for value in unit["Environment"] if value.startswith("efiMountPoint=")]
                self.assertEqual(unit["ProtectSystem"], ["strict"])
                self.assertEqual(unit["ReadWritePaths"], [esp])
                self.assertEqual(unit["RequiresMountsFor"], [esp])
                self.assertEqual(unit["CapabilityBoundingSet"], [""])

    def test_path_unit_watches_profiles_and_the_services_esp(self):
        (esp,) = [
            value.split("=", 1)[1]
            for value in settings("xen-boot-builder-update.service")["Environment"]
            if value.startswith("efiMountPoint=")
        ]
        self.assertEqual(
            settings(PATH_UNIT)["PathChanged"],
            ["/nix/var/nix/profiles", "/nix/var/nix/profiles/system-profiles", f"{esp}/loader/entries"],
        )


if __name__ == "__main__":
    unittest.main()
