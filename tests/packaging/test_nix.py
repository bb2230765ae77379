"""nix/package.nix and nix/module.nix are valid Nix (nixpkgs itself is not
here to evaluate them against)."""

import unittest

from common import SOURCE_DIR, describe, run


class NixFiles(unittest.TestCase):
    def test_parse(self):
        for name in ["package.nix", "module.nix"]:
            with self.subTest(file=name):
                # build-users-group: nix-bin's default names a group that a
                # machine without a Nix daemon lacks, and warns about it.
                result = run(
                    ["nix-instantiate", "--option", "build-users-group", "", "--parse", SOURCE_DIR / "nix" / name]
                )
                self.assertEqual(result.returncode, 0, describe(result))
                self.assertEqual(result.stderr, "")


if __name__ == "__main__":
    unittest.main()
