"""Times whole runs of the built tool on a generated 20-generation root: the
first run (everything written) and a second run (nothing to do). Prints the
median and spread of several runs; asserts nothing."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]
BINARY = Path(sys.argv[1])
DEPS = Path(os.environ.get("XBB_DEPS_DIR", SOURCE / ".cache" / "deps"))
GENERATIONS = 20
REPEAT = 5


def run(root):
    start = time.perf_counter()
    subprocess.run([BINARY, "--root", root, "--esp", root / "boot", "quiet"], check=True)
    return time.perf_counter() - start


def describe(name, seconds):
    print(f"{name:<34} median {statistics.median(seconds) * 1000:8.1f} ms"
          f"  min {min(seconds) * 1000:8.1f} ms  max {max(seconds) * 1000:8.1f} ms"
          f"  ({len(seconds)} runs, {GENERATIONS} generations)")


def main():
    with tempfile.TemporaryDirectory(prefix="xbb-bench-") as scratch:
        template = Path(scratch) / "template"
        subprocess.run([sys.executable, SOURCE / "fixtures/mkroot.py", template,
                        "--generations", str(GENERATIONS), "--xen-efi",
                        DEPS / "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi"],
                       check=True, stdout=subprocess.DEVNULL)
        first, second = [], []
        for i in range(REPEAT):
            root = Path(scratch) / f"run{i}"
            shutil.copytree(template, root, symlinks=True)
            first.append(run(root))
            second.append(run(root))
            shutil.rmtree(root)
        describe("first run (writes every entry)", first)
        describe("second run (no change)", second)
        print(f"per entry, first run: {statistics.median(first) / GENERATIONS * 1000:.1f} ms")


main()
