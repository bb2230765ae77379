"""The unit tests are labelled needs-deps test by test, not suite by suite
(tests/CMakeLists.txt): the Nix package's check phase (`ctest -LE needs-deps`)
runs every unit test that needs no Debian image, root, binutils or sbsign,
and skips the others."""

import os
import re
import unittest

from common import BUILD_DIR, describe, run

UNIT_TESTS = BUILD_DIR / "tests" / "xbb_unit_tests"


def listed(*labels):
    """The names of the tests `ctest -N` lists with these label options."""
    result = run(["ctest", "--test-dir", BUILD_DIR, "-N", *labels])
    if result.returncode != 0:
        raise AssertionError(describe(result))
    return set(re.findall(r"^\s*Test\s+#\d+: (\S+)$", result.stdout, re.MULTILINE))


class UnitLabels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.without_deps = listed("-L", "unit", "-LE", "needs-deps")
        cls.with_deps = listed("-L", "unit", "-L", "needs-deps")

    def test_a_test_on_synthetic_images_runs_without_deps(self):
        self.assertIn("PeParse.RefusesPe32", self.without_deps)
        self.assertNotIn("PeParse.RefusesPe32", self.with_deps)

    def test_a_test_on_debians_image_in_the_same_suite_needs_deps(self):
        self.assertIn("PeParse.Xen417HeaderFactsMatchObjdump", self.with_deps)
        self.assertNotIn("PeParse.Xen417HeaderFactsMatchObjdump", self.without_deps)

    def test_tests_without_the_label_pass_without_the_debian_images_and_tools(self):
        # No Debian images (XBB_DEPS_DIR names nothing) and no binutils or
        # sbsign (an empty PATH): a test that needs them fails here.
        self.assertGreater(len(self.without_deps), 100)
        environment = dict(os.environ, XBB_DEPS_DIR="/nonexistent/xbb-deps", PATH="/nonexistent")
        result = run([UNIT_TESTS, "--gtest_filter=" + ":".join(sorted(self.without_deps))], env=environment)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertIn(f"[  PASSED  ] {len(self.without_deps)} tests.", result.stdout)


if __name__ == "__main__":
    unittest.main()
