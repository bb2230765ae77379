"""Crash sweep (crashsweep.py says what must hold at every crash point) over
the image layouts: an update in the shared layout that also brings a new Xen
build and collects the last generation of an old one (an image added, one
removed, .cfg files rewritten); and the switch from the unified layout to
the shared one and back, each in one run; and the first run of the default
layout, `auto`, on an ESP the shell script laid out.
"""

import unittest

from crashsweep import CrashSweep
from safetylib import MigrationToAuto, SharedToUnified, SharedUpdate, UnifiedToShared


class LayoutCrashSweepTest(CrashSweep):
    def test_update_in_the_shared_layout_with_a_new_xen_build(self):
        self.sweep(SharedUpdate)

    def test_switch_from_unified_to_shared(self):
        self.sweep(UnifiedToShared)

    def test_switch_from_shared_to_unified(self):
        self.sweep(SharedToUnified)

    def test_first_default_run_on_the_shell_scripts_layout(self):
        self.sweep(MigrationToAuto)


if __name__ == "__main__":
    unittest.main()
