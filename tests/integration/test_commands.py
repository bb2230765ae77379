"""The subcommands users expect besides the drop-in form (spec section 4):
build, plan, verify, inspect, --help, --version."""

import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import (
    BINARY,
    XEN_417_EFI,
    ToolTestCase,
    build,
    copy_root,
    describe,
    extract_section,
    make_root,
    make_template_root,
    run_bounded,
    run_on_root,
    run_tool,
    sha256_file,
    snapshot_esp,
    tool_environment,
    without_record,
    xen_entry_files,
)
from daemon import Daemon
from test_lanzaboote import make_key


def marked(stdout, kind):
    return {line[1:].split(" ", 1)[0] for line in stdout.splitlines() if line.startswith(kind)}


def esp_contents(root):
    """Path -> content of every file, but the record, which differs between
    ESPs built at different times."""
    return {path: state[2] for path, state in without_record(snapshot_esp(root.esp)).items()}


def on_root(root):
    return ("--root", root.path, "--esp", root.esp)


class Plan(ToolTestCase):
    def test_plan_lists_what_build_would_add_and_writes_nothing(self):
        root = make_root(self, "--generations", "3", "--no-xen", "1")
        before = snapshot_esp(root.esp)
        result = run_on_root(root, "plan", "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(marked(result.stdout, "+"), {"xen-generation-2", "xen-generation-3"})
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_plan_after_build_reports_no_change(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        result = run_on_root(root, "plan", "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertIn("No change", result.stdout.splitlines())


class OptionsForOneCommand(ToolTestCase):
    def test_json_only_where_a_document_is_printed(self):
        root = make_root(self, "--generations", "1")
        before = snapshot_esp(root.esp)
        for argv in (["--json", "build"], ["--json", "info"], ["--json", "watch"]):
            with self.subTest(argv=argv):
                result = run_on_root(root, *argv)
                self.assertEqual(result.returncode, 2, describe(result))
                self.assertIn("--json: only plan, list, verify and inspect print JSON", result.stderr)
        self.assertEqual(snapshot_esp(root.esp), before)

    def test_debounce_only_for_watch(self):
        root = make_root(self, "--generations", "1")
        result = run_on_root(root, "--debounce", "10", "build")
        self.assertEqual(result.returncode, 2, describe(result))
        self.assertIn("--debounce: only watch waits for changes", result.stderr)
        result = run_on_root(root, "--debounce-max", "10", "build")
        self.assertEqual(result.returncode, 2, describe(result))
        self.assertIn("--debounce-max: only watch waits for changes", result.stderr)

    def test_numeric_option_values_never_wrap(self):
        root = make_root(self, "--generations", "1")
        before = snapshot_esp(root.esp)
        for option in ("--debounce", "--debounce-max"):
            for value in ("-1", "4294967295", "18446744073709551616", "86400001", "1e3", "+5", "5ms"):
                with self.subTest(option=option, value=value):
                    # A value taken would start the daemon: bounded.
                    result = run_bounded(*on_root(root), f"{option}={value}", "watch", timeout=10)
                    self.assertEqual(result.returncode, 2, describe(result))
                    self.assertEqual(
                        result.stderr.splitlines()[0],
                        f"xen-boot-builder: {option}: '{value}' is not a whole number from 0 to 86400000",
                    )
            result = run_bounded(*on_root(root), option, "-1", "watch", timeout=10)
            self.assertEqual(result.returncode, 2, describe(result))
        self.assertEqual(snapshot_esp(root.esp), before)


# Which command takes which option, as README's "Usage" and the man page's
# OPTIONS say (not as the program prints it): every other option is refused.
BUILD_OPTIONS = {"--esp", "--xbootldr", "--extra-esp", "--root", "--source", "--layout", "--ucode", "--sign-key",
                 "--sign-cert", "--lanzaboote", "--keep-debug-sections", "--no-default", "--helper-timeout"}
TAKES = {
    "build": BUILD_OPTIONS | {"--rebuild"},
    "plan": BUILD_OPTIONS | {"--rebuild", "--json"},
    "list": BUILD_OPTIONS | {"--json"},
    "watch": BUILD_OPTIONS | {"--debounce", "--debounce-max"},
    "verify": {"--esp", "--xbootldr", "--sign-cert", "--helper-timeout", "--json"},
    "inspect": {"--json"},
}
EVERY_OPTION = set().union(*TAKES.values())


class EachCommandTakesItsOptions(ToolTestCase):
    """The verb table: an option a command does not use is refused with exit
    2 and one line naming the option and the command; the ones it uses are
    taken."""

    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "1")
        folder = Path(tempfile.mkdtemp(prefix="xbb-verbs-"))
        cls.addClassCleanup(shutil.rmtree, folder, ignore_errors=True)
        cls.key, cls.cert = make_key(folder, "db")
        cls.ucode = folder / "ucode.bin"
        cls.ucode.write_bytes(b"\0" * 1024)

    def setUp(self):
        self.root = copy_root(self, self.template)
        self.mirror = self.root.path / "esp2"
        (self.mirror / "loader").mkdir(parents=True)

    def given(self, option):
        """The option with a value the commands that take it accept."""
        values = {
            "--esp": [self.root.esp],
            "--xbootldr": [self.root.esp],
            "--extra-esp": [self.mirror],
            "--root": [self.root.path],
            "--source": ["entries"],
            "--layout": ["unified"],
            "--ucode": [self.ucode],
            "--sign-key": [self.key],
            "--sign-cert": [self.cert],
            "--helper-timeout": ["30"],
            "--debounce": ["10"],
            "--debounce-max": ["20"],
        }
        return [option, *values.get(option, [])]

    def needs(self, option, command):
        """What an option taken cannot go without."""
        if option == "--ucode":
            return ["--layout", "self-contained"]
        if option == "--sign-key":
            return ["--sign-cert", self.cert]
        if option == "--sign-cert" and command != "verify":
            return ["--sign-key", self.key]
        return []

    def command_line(self, command, options, drop_in=False):
        """`options`, then --root and --esp where the command takes them and
        `options` has none, then the command and its argument."""
        where = []
        for option, value in (("--root", self.root.path), ("--esp", self.root.esp)):
            if option in TAKES[command] and option not in options:
                where += [option, value]
        tail = {"inspect": ["inspect", XEN_417_EFI], "build": ["info"] if drop_in else ["build", "info"]}
        return [str(arg) for arg in [*options, *where, *tail.get(command, [command])]]

    def run_exactly(self, argv):
        return subprocess.run([str(BINARY), *argv], capture_output=True, text=True, check=False,
                              env=tool_environment(), stdin=subprocess.DEVNULL, timeout=60)

    def test_every_option_a_command_does_not_take_is_refused_naming_both(self):
        before = snapshot_esp(self.root.esp)
        forms = [(command, False) for command in TAKES] + [("build", True)]
        for command, drop_in in forms:
            for option in sorted(EVERY_OPTION - TAKES[command]):
                argv = self.command_line(command, self.given(option), drop_in)
                with self.subTest(argv=argv):
                    result = self.run_exactly(argv)
                    self.assertEqual(result.returncode, 2, describe(result))
                    lines = result.stderr.splitlines()
                    self.assertEqual(len(lines), 2, describe(result))
                    self.assertTrue(lines[0].startswith("xen-boot-builder: "), describe(result))
                    self.assertRegex(lines[0], rf"(?<![\w-]){re.escape(option)}(?![\w-])")
                    self.assertRegex(lines[0], rf"\b{command}\b")
                    self.assertEqual(lines[1], "Try 'xen-boot-builder --help'.")
        self.assertEqual(snapshot_esp(self.root.esp), before)

    def test_every_option_a_command_takes_is_taken(self):
        for command in ("build", "plan", "list", "verify", "inspect"):
            for option in sorted(TAKES[command]):
                argv = self.command_line(command, [*self.given(option), *self.needs(option, command)])
                with self.subTest(argv=argv):
                    result = self.run_exactly(argv)
                    # 1 is a run that found something wrong (a signature
                    # verify does not accept, a mirror without kernels): the
                    # option was taken.
                    self.assertIn(result.returncode, (0, 1), describe(result))
                    self.assertNotIn("--help", result.stderr, describe(result))

    def test_every_option_watch_takes_is_taken(self):
        for option in sorted(TAKES["watch"]):
            argv = self.command_line("watch", [*self.given(option), *self.needs(option, "watch")])
            with self.subTest(argv=argv):
                daemon = Daemon(self, argv)
                self.addCleanup(daemon.kill)
                daemon.wait_ready()
                self.assertEqual(daemon.stop(), 0, daemon.describe())


class Build(ToolTestCase):
    def test_build_subcommand_does_what_the_drop_in_form_does(self):
        options = ("--scheme", "hash", "--generations", "2", "--specialisation", "debug")
        drop_in, subcommand = make_root(self, *options), make_root(self, *options)
        build(self, drop_in, "info")
        result = run_on_root(subcommand, "build", "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertNotEqual(xen_entry_files(subcommand), [])
        self.assertEqual(esp_contents(subcommand), esp_contents(drop_in))


class HelpAndVersion(ToolTestCase):
    def test_help_names_the_verbosities_and_exits_0(self):
        result = run_tool("--help")
        self.assertEqual(result.returncode, 0, describe(result))
        for word in ("quiet", "default", "info", "debug", "--esp", "--root"):
            self.assertIn(word, result.stdout)

    def test_version_prints_name_and_version(self):
        result = run_tool("--version")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertRegex(result.stdout, r"^xen-boot-builder \d+\.\d+\.\d+\n$")


class Verify(ToolTestCase):
    """`verify`: is every Xen entry on the ESP bootable."""

    def test_verify_accepts_a_fresh_build(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        result = run_on_root(root, "verify")
        self.assertEqual(result.returncode, 0, describe(result))

    def test_verify_names_a_truncated_image(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        image.write_bytes(image.read_bytes()[:65536])
        result = run_on_root(root, "verify")
        self.assertNotEqual(result.returncode, 0, describe(result))
        self.assertIn("xen-generation-1", result.stdout + result.stderr)

    def test_verify_names_a_missing_kernel(self):
        root = make_root(self, "--generations", "1")
        build(self, root)
        kernel = root.esp_path(root.entry(1)["linux"])
        kernel.unlink()
        result = run_on_root(root, "verify")
        self.assertNotEqual(result.returncode, 0, describe(result))
        self.assertIn(kernel.name, result.stdout + result.stderr)

    def test_verify_names_an_entry_whose_image_is_missing(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        (root.esp / "EFI/xen/xen-generation-2.efi").unlink()
        result = run_on_root(root, "verify")
        self.assertNotEqual(result.returncode, 0, describe(result))
        self.assertIn("xen-generation-2", result.stdout + result.stderr)


class Inspect(ToolTestCase):
    """`inspect <image>`: sections and embedded configuration."""

    def test_inspect_shows_sections_of_debians_image(self):
        result = run_tool("inspect", XEN_417_EFI)
        self.assertEqual(result.returncode, 0, describe(result))
        for name in (".text", ".rodata", ".buildid", ".init", ".data", ".bss", ".reloc", ".pad"):
            self.assertRegex(result.stdout, re.escape(name) + r"\b")

    def test_inspect_shows_the_embedded_configuration(self):
        root = make_root(self, "--generations", "1")
        build(self, root)
        image = root.esp / "EFI/xen/xen-generation-1.efi"
        before = sha256_file(image)
        result = run_tool("inspect", image)
        self.assertEqual(result.returncode, 0, describe(result))
        for line in extract_section(image, ".config").decode().splitlines():
            if line:
                self.assertIn(line, result.stdout)
        self.assertEqual(sha256_file(image), before)


if __name__ == "__main__":
    unittest.main()
