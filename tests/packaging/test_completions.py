"""The shell completions offer the subcommands, the verbosity words, the
options and their values: bash's by driving its completion function as bash
does on TAB, fish's through `complete -C`, zsh's by typing TAB into an
interactive zsh (zsh_complete.zsh)."""

import os
import tempfile
import unittest
from pathlib import Path

from common import COMMANDS, LAYOUTS, OPTIONS, SOURCE_DIR, VERBOSITIES, describe, run

BASH_COMPLETION = SOURCE_DIR / "completions" / "xen-boot-builder.bash"
ZSH_COMPLETION = SOURCE_DIR / "completions" / "_xen-boot-builder"
FISH_COMPLETION = SOURCE_DIR / "completions" / "xen-boot-builder.fish"

# Sources the completion, then completes the words given as arguments (the
# last one is the word under the cursor) the way bash does on TAB: COMP_WORDS,
# COMP_CWORD, COMP_LINE and COMP_POINT set, the function that `complete -p`
# names called with the command, the current word and the previous one.
BASH_DRIVER = r"""
source "$1"; shift
spec=$(complete -p xen-boot-builder) || exit 1
[[ $spec =~ -F\ ([^ ]+)\ xen-boot-builder$ ]] || { echo "unexpected: $spec" >&2; exit 1; }
COMP_WORDS=(xen-boot-builder "$@")
COMP_CWORD=$#
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"${BASH_REMATCH[1]}" xen-boot-builder "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


class FolderWithAFileAndAFolder:
    """A temporary folder holding `esp-folder/` and `esp-file`."""

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="xbb-completion-")
        self.path = Path(self.tmp.name)
        (self.path / "esp-folder").mkdir()
        (self.path / "esp-file").write_text("")
        return self.path

    def __exit__(self, *exc):
        self.tmp.cleanup()


class Bash(unittest.TestCase):
    def complete(self, *words):
        result = run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", BASH_COMPLETION, *words])
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(result.stderr, "")
        return sorted(line for line in result.stdout.splitlines() if line)

    def test_first_word_is_a_subcommand_or_a_verbosity(self):
        self.assertEqual(self.complete(""), sorted(COMMANDS + VERBOSITIES))
        self.assertEqual(self.complete("pl"), ["plan"])
        self.assertEqual(self.complete("d"), ["debug", "default"])

    def test_verbosity_after_build_plan_and_watch(self):
        for command in ["build", "plan", "watch"]:
            with self.subTest(command=command):
                self.assertEqual(self.complete(command, ""), sorted(VERBOSITIES))
        self.assertEqual(self.complete("--esp", "/boot", "watch", "de"), ["debug", "default"])

    def test_nothing_after_a_complete_command_line(self):
        self.assertEqual(self.complete("build", "info", ""), [])
        self.assertEqual(self.complete("info", ""), [])
        self.assertEqual(self.complete("verify", ""), [])

    def test_options(self):
        self.assertEqual(self.complete("--"), sorted(OPTIONS))
        self.assertEqual(self.complete("--no"), ["--no-default"])

    def test_source_and_layout_values(self):
        self.assertEqual(self.complete("--source", ""), ["entries", "profiles"])
        self.assertEqual(self.complete("--source", "p"), ["profiles"])
        # `--source=p`, which bash splits at the `=` (COMP_WORDBREAKS).
        self.assertEqual(self.complete("--source", "=", "p"), ["profiles"])
        self.assertEqual(self.complete("--source", "="), ["entries", "profiles"])
        self.assertEqual(self.complete("--layout", ""), LAYOUTS)
        self.assertEqual(self.complete("build", "--layout", "u"), ["unified"])

    def test_esp_and_root_complete_folders_only(self):
        with FolderWithAFileAndAFolder() as folder:
            for option in ["--esp", "--root"]:
                with self.subTest(option=option):
                    self.assertEqual(self.complete(option, f"{folder}/esp"), [f"{folder}/esp-folder"])

    def test_inspect_completes_files(self):
        with FolderWithAFileAndAFolder() as folder:
            self.assertEqual(
                self.complete("inspect", f"{folder}/esp"),
                [f"{folder}/esp-file", f"{folder}/esp-folder"],
            )

    def test_option_values_are_skipped_when_finding_the_subcommand(self):
        self.assertEqual(self.complete("--root", "build", ""), sorted(COMMANDS + VERBOSITIES))
        self.assertEqual(self.complete("--source", "=", "entries", "b"), ["build"])


class CommandLineCases:
    """What fish and zsh, which both complete a whole command line, must
    offer. A class using it has `complete(line)` and `SYNTAX_CHECK`, the
    shell's command that parses its completion file without running it."""

    def test_syntax(self):
        result = run(self.SYNTAX_CHECK)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""), describe(result))

    def test_first_word_is_a_subcommand_or_a_verbosity(self):
        self.assertEqual(self.complete("xen-boot-builder "), sorted(COMMANDS + VERBOSITIES))

    def test_verbosity_after_build_plan_and_watch(self):
        for command in ["build", "plan", "watch"]:
            with self.subTest(command=command):
                self.assertEqual(self.complete(f"xen-boot-builder {command} "), sorted(VERBOSITIES))
        self.assertEqual(self.complete("xen-boot-builder build info "), [])

    def test_options(self):
        self.assertEqual(self.complete("xen-boot-builder --"), sorted(OPTIONS))


class Fish(CommandLineCases, unittest.TestCase):
    SYNTAX_CHECK = ["fish", "--no-execute", FISH_COMPLETION]

    def setUp(self):
        self.home = tempfile.TemporaryDirectory(prefix="xbb-fish-home-")
        self.addCleanup(self.home.cleanup)

    def complete(self, line):
        script = f"source {FISH_COMPLETION}; complete -C '{line}'"
        env = {**os.environ, "HOME": self.home.name, "XDG_CONFIG_HOME": self.home.name, "XDG_DATA_HOME": self.home.name}
        result = run(["fish", "--no-config", "-c", script], env=env)
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(result.stderr, "")
        return sorted(line.split("\t", 1)[0] for line in result.stdout.splitlines())

    def test_option_values(self):
        self.assertEqual(self.complete("xen-boot-builder --source "), ["entries", "profiles"])
        self.assertEqual(self.complete("xen-boot-builder --layout="), [f"--layout={layout}" for layout in LAYOUTS])

    def test_esp_completes_folders_and_inspect_files(self):
        with FolderWithAFileAndAFolder() as folder:
            self.assertEqual(self.complete(f"xen-boot-builder --esp {folder}/esp"), [f"{folder}/esp-folder/"])
            self.assertEqual(
                self.complete(f"xen-boot-builder inspect {folder}/esp"),
                [f"{folder}/esp-file", f"{folder}/esp-folder/"],
            )


class Zsh(CommandLineCases, unittest.TestCase):
    SYNTAX_CHECK = ["zsh", "-n", ZSH_COMPLETION]

    def complete(self, line):
        """The words zsh offers on TAB after `line` (file names without their folder)."""
        with tempfile.TemporaryDirectory(prefix="xbb-zsh-") as home:
            out = Path(home) / "offered"
            result = run(
                ["zsh", "-f", Path(__file__).with_name("zsh_complete.zsh"), out, ZSH_COMPLETION.parent, line],
                env={**os.environ, "HOME": home},
            )
            self.assertEqual(result.returncode, 0, describe(result))
            self.assertTrue(out.exists(), f"zsh completed nothing for {line!r}")
            offered = out.read_text().splitlines()
        self.assertEqual(offered[-1:], ["--done--"], f"zsh did not finish completing {line!r}")
        return sorted(set(offered[:-1]))

    def test_option_values(self):
        self.assertEqual(self.complete("xen-boot-builder --source "), ["entries", "profiles"])
        self.assertEqual(self.complete("xen-boot-builder --source="), ["entries", "profiles"])
        self.assertEqual(self.complete("xen-boot-builder --layout "), LAYOUTS)

    def test_esp_completes_folders_and_inspect_files(self):
        with FolderWithAFileAndAFolder() as folder:
            self.assertEqual(self.complete(f"xen-boot-builder --esp {folder}/esp"), ["esp-folder"])
            self.assertEqual(self.complete(f"xen-boot-builder inspect {folder}/esp"), ["esp-file", "esp-folder"])


if __name__ == "__main__":
    unittest.main()
