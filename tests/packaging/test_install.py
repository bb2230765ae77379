"""`cmake --install` puts every file where packagers and the tools that read
them look: the program, its man page and the JSON Schemas of its --json
output, the systemd units and the completions for bash, zsh and fish; the
units start the installed program."""

import os
import re
import stat
import tempfile
import unittest
from pathlib import Path

from common import BUILD_DIR, SOURCE_DIR, describe, run

CMAKE = os.environ["XBB_CMAKE"]
VERSION = os.environ["XBB_VERSION"]
BINDIR = os.environ["XBB_INSTALL_BINDIR"]
MANDIR = os.environ["XBB_INSTALL_MANDIR"]
DATADIR = os.environ["XBB_INSTALL_DATADIR"]
UNITDIR = os.environ["XBB_INSTALL_UNITDIR"]

PROGRAM = f"{BINDIR}/xen-boot-builder"
MAN_PAGE = f"{MANDIR}/man1/xen-boot-builder.1"
SERVICE = f"{UNITDIR}/xen-boot-builder.service"
UPDATE_SERVICE = f"{UNITDIR}/xen-boot-builder-update.service"
UPDATE_PATH = f"{UNITDIR}/xen-boot-builder-update.path"
BASH_COMPLETION = f"{DATADIR}/bash-completion/completions/xen-boot-builder"
ZSH_COMPLETION = f"{DATADIR}/zsh/site-functions/_xen-boot-builder"
FISH_COMPLETION = f"{DATADIR}/fish/vendor_completions.d/xen-boot-builder.fish"
JSON_SCHEMAS = {
    f"{DATADIR}/xen-boot-builder/json/{command}.schema.json": f"man/json/{command}.schema.json"
    for command in ["plan", "list", "verify", "inspect"]
}


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="xbb-install-")
        cls.destdir = Path(cls.tmp.name)
        cls.result = run([CMAKE, "--install", BUILD_DIR], env={**os.environ, "DESTDIR": cls.tmp.name})

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def staged(self, installed_path):
        """Where `installed_path` is under DESTDIR."""
        return self.destdir / installed_path.lstrip("/")

    def test_install_succeeds(self):
        self.assertEqual(self.result.returncode, 0, describe(self.result))

    def test_installs_exactly_the_program_man_page_json_schemas_units_and_completions(self):
        installed = {
            "/" + str(path.relative_to(self.destdir))
            for path in self.destdir.rglob("*")
            if not path.is_dir()
        }
        self.assertEqual(
            installed,
            {
                PROGRAM,
                MAN_PAGE,
                SERVICE,
                UPDATE_SERVICE,
                UPDATE_PATH,
                BASH_COMPLETION,
                ZSH_COMPLETION,
                FISH_COMPLETION,
                *JSON_SCHEMAS,
            },
        )

    def test_installed_program_runs_and_says_its_version(self):
        program = self.staged(PROGRAM)
        self.assertTrue(program.stat().st_mode & stat.S_IXUSR, f"{program} is not executable")
        result = run([program, "--version"])
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(result.stdout, f"xen-boot-builder {VERSION}\n")

    def test_man_page_json_schemas_and_completions_are_the_sources(self):
        for installed, source in [
            (MAN_PAGE, "man/xen-boot-builder.1"),
            *JSON_SCHEMAS.items(),
            (BASH_COMPLETION, "completions/xen-boot-builder.bash"),
            (ZSH_COMPLETION, "completions/_xen-boot-builder"),
            (FISH_COMPLETION, "completions/xen-boot-builder.fish"),
        ]:
            with self.subTest(installed=installed):
                self.assertEqual(
                    self.staged(installed).read_bytes(), (SOURCE_DIR / source).read_bytes()
                )

    def test_services_start_the_installed_program(self):
        for unit, arguments in [(SERVICE, ["watch", "default"]), (UPDATE_SERVICE, ["default"])]:
            with self.subTest(unit=unit):
                text = self.staged(unit).read_text()
                exec_start = re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE)
                self.assertEqual(exec_start, [" ".join([PROGRAM, *arguments])])

    def test_units_have_no_placeholder_left(self):
        for unit in [SERVICE, UPDATE_SERVICE, UPDATE_PATH]:
            with self.subTest(unit=unit):
                self.assertEqual(re.findall(r"@\w+@", self.staged(unit).read_text()), [])

    def test_path_unit_starts_the_one_shot_service(self):
        text = self.staged(UPDATE_PATH).read_text()
        self.assertEqual(re.findall(r"^Unit=(.*)$", text, re.MULTILINE), ["xen-boot-builder-update.service"])


if __name__ == "__main__":
    unittest.main()
