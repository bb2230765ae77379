"""Issue 18, startup: a run loads only the libraries its command needs.
libsystemd (the watch daemon's sd_notify) and libcrypto (SHA-256) are not
linked; they are loaded when first needed. The dynamic linker lists every
library it loads with LD_DEBUG=files."""

import os
import re
import subprocess
import unittest

from common import ToolTestCase, describe, make_root, tool_argv, tool_environment

LAZY = re.compile(r"file=(\S*lib(?:systemd|crypto)\.so\S*) \[\d+\];\s+(needed by|dynamically loaded by)")


def loaded_lazily(test, *argv):
    """The lazily loaded libraries a run of the tool with `argv` loaded, with
    how ("needed by" a linked library, "dynamically loaded by" dlopen)."""
    env = tool_environment()
    env["LD_DEBUG"] = "files"
    result = subprocess.run(tool_argv(argv), capture_output=True, text=True, check=False, env=env,
                            timeout=300)
    test.assertEqual(result.returncode, 0, describe(result))
    return {(os.path.basename(name), how) for name, how in LAZY.findall(result.stderr)}


class Startup(ToolTestCase):
    def test_version_loads_neither_libsystemd_nor_libcrypto(self):
        self.assertEqual(loaded_lazily(self, "--version"), set())

    def test_build_never_loads_libsystemd_and_loads_libcrypto_itself(self):
        # A build hashes what it writes: libcrypto comes, but with dlopen, by
        # its absolute path, and without libsystemd.
        root = make_root(self, "--generations", "2")
        loaded = loaded_lazily(self, "--root", root.path, "--esp", root.esp, "build")
        self.assertEqual(loaded, {("libcrypto.so.3", "dynamically loaded by")})


if __name__ == "__main__":
    unittest.main()
