"""What the packaging tests share: where the build, the sources and the
install folders are (ctest passes them in the environment), and running a
program to completion."""

import os
import subprocess
from pathlib import Path

SOURCE_DIR = Path(os.environ["XBB_SOURCE_DIR"])
BUILD_DIR = Path(os.environ["XBB_BUILD_DIR"])
BINARY = Path(os.environ["XBB_BINARY"])

COMMANDS = ["build", "plan", "verify", "inspect", "watch", "list"]
VERBOSITIES = ["quiet", "default", "info", "debug"]
OPTIONS = [
    "--esp",
    "--root",
    "--xbootldr",
    "--extra-esp",
    "--source",
    "--layout",
    "--ucode",
    "--sign-key",
    "--sign-cert",
    "--lanzaboote",
    "--keep-debug-sections",
    "--debounce",
    "--helper-timeout",
    "--debounce-max",
    "--no-default",
    "--rebuild",
    "--json",
    "--help",
    "--version",
]
LAYOUTS = ["auto", "self-contained", "shared", "unified"]


def run(argv, **kwargs):
    """Runs argv (no shell) and returns the completed process, output as text."""
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def describe(result):
    return (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
