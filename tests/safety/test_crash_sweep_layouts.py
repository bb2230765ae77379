"""Crash sweep (crashsweep.py says what must hold at every crash point) over
the image layouts: an update in the shared layout that also brings a new Xen
build and collects the last generation of an old one (an image added, one
removed, .cfg files rewritten); and the switch from the unified layout to
the shared one and back, each in one run; the first run of the default
layout, `auto`, on an ESP the shell script laid out; and the first run with
--xbootldr after NixOS moved its entries to an Extended Boot Loader partition
(the ESP and that partition side by side in one disk folder).
"""

import unittest

from crashsweep import CrashSweep
from safetylib import MigrationToAuto, SharedToUnified, SharedUpdate, UnifiedToShared, XbootldrMigration


class LayoutCrashSweepTest(CrashSweep):
    def test_update_in_the_shared_layout_with_a_new_xen_build(self):
        self.sweep(SharedUpdate)

    def test_switch_from_unified_to_shared(self):
        self.sweep(UnifiedToShared)

    def test_switch_from_shared_to_unified(self):
        self.sweep(SharedToUnified)

    def test_first_default_run_on_the_shell_scripts_layout(self):
        self.sweep(MigrationToAuto)

    def test_move_to_an_extended_boot_loader_partition(self):
        self.sweep(XbootldrMigration)


if __name__ == "__main__":
    unittest.main()
