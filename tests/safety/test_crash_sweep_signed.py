"""Crash sweep (crashsweep.py says what must hold at every crash point) over
a signed update in the self-contained layout (issue 11): images that carry
kernel and initrd, signed with a test key by sbsign and checked by sbverify
before they are renamed into place; an image added, two rewritten, one
removed.

The crash points are the tool's own mutating calls (the shim unsets its
settings before any child starts, so sbsign and sbverify run unharmed):
every write, sync, rename and removal of the run, before and after each
signing. A crash inside sbsign itself is not simulated; it would end sbsign,
not the tool, which is the failing-signer case. Besides (a)-(d), every image
under a final name must carry a signature the certificate verifies (images
are compared without their signature, whose signing time differs between
runs: safetylib.SignedImages).
"""

import unittest

from crashsweep import CrashSweep
from safetylib import SignedSelfContainedUpdate


class SignedCrashSweepTest(CrashSweep):
    def test_signed_update_in_the_self_contained_layout(self):
        self.sweep(SignedSelfContainedUpdate)


if __name__ == "__main__":
    unittest.main()
