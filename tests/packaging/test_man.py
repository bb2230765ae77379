"""The man page: groff reads it without a warning, every hyphen of an option
is escaped (\\-, so that it renders as a hyphen-minus), and it documents
exactly the subcommands, options and verbosity words that `--help` prints."""

import re
import unittest

from common import BINARY, OPTIONS, SOURCE_DIR, describe, run

MAN_PAGE = SOURCE_DIR / "man" / "xen-boot-builder.1"

OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def plain(troff_line):
    """The words of a troff text or font-macro line, escapes and quotes removed."""
    line = re.sub(r"^\.[A-Z]+\s*", "", troff_line)
    line = re.sub(r"\\f[BIRP]", "", line)
    return line.replace("\\-", "-").replace('"', " ")


def tags_by_section(page):
    """{section name: [text of each .TP paragraph's tag line]}."""
    sections, section, lines = {}, None, page.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(".SH "):
            section = line[4:].strip('"')
            sections[section] = []
        elif line == ".TP" and section is not None:
            sections[section].append(plain(lines[index + 1]))
    return sections


class ManLint(unittest.TestCase):
    def test_groff_reads_it_without_warnings(self):
        result = run(["groff", "-man", "-ww", "-z", MAN_PAGE])
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""), describe(result))


    def test_every_hyphen_of_every_option_is_escaped(self):
        # An unescaped '-' renders as U+2010 in a UTF-8 locale: an option
        # copied from the page would not work.
        page = MAN_PAGE.read_text()
        for option in OPTIONS:
            escaped = option.replace("-", "\\-")
            spelled = re.compile("".join(r"\\?-" if c == "-" else re.escape(c) for c in option) + r"(?![\w\\-])")
            self.assertEqual(set(spelled.findall(page)), {escaped}, f"{option}: every hyphen written \\-")


class ManCoversHelp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        result = run([BINARY, "--help"])
        if result.returncode != 0:
            raise AssertionError(describe(result))
        cls.help = result.stdout
        cls.tags = tags_by_section(MAN_PAGE.read_text())

    def section_words(self, section):
        self.assertIn(section, self.tags, f"the man page has no {section} section")
        return {tag.split()[0] for tag in self.tags[section]}

    def test_help_lists_commands_and_options(self):
        # The parsing below found something to compare.
        self.assertIn("Commands:\n", self.help)
        self.assertIn("Options:\n", self.help)

    def test_every_option_has_a_paragraph_and_every_paragraph_an_option(self):
        options = set(OPTION.findall(self.help))
        documented = {option for tag in self.tags.get("OPTIONS", []) for option in OPTION.findall(tag)}
        self.assertIn("--help", options)
        self.assertEqual(documented, options)

    def test_the_completion_tests_know_every_option(self):
        # test_completions checks that each completion offers OPTIONS: this
        # keeps that list the one --help prints.
        self.assertEqual(set(OPTIONS), set(OPTION.findall(self.help.split("Options:\n", 1)[1])) - {"-h"})

    def test_every_command_has_a_paragraph_and_every_paragraph_a_command(self):
        block = self.help.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        commands = set(re.findall(r"^  ([a-z][\w-]*)  ", block, re.MULTILINE))
        self.assertIn("build", commands)
        self.assertEqual(self.section_words("COMMANDS"), commands)

    def test_every_verbosity_has_a_paragraph(self):
        usage = self.help.split("\n\n", 1)[0]
        words = {word for group in re.findall(r"[<\[]((?:\w+\|)+\w+)[>\]]", usage) for word in group.split("|")}
        self.assertIn("debug", words)
        self.assertEqual(self.section_words("VERBOSITY"), words)


if __name__ == "__main__":
    unittest.main()
