"""Boot tests: what xen-boot-builder writes boots Xen and dom0 under QEMU.

Each test builds a NixOS-like root with fixtures/mkroot.py (real Xen image,
real Debian kernel, the marker initrd from boot.py), runs the built binary on
its ESP exactly as NixOS would, adds systemd-boot and boots the ESP. The
expectations come from mkroot's manifest.json, never from the tool.

Environment (set by tests/CMakeLists.txt): XBB_DEPS_DIR, XBB_BINARY,
XBB_SOURCE_DIR, and optionally XBB_BOOT_LOG_DIR (serial logs are kept there).
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import boot

# Xen and dom0 parameters from boot-test.md: everything on the serial port,
# a small dom0. mkroot appends generation=<N> (and specialisation=<name>) to
# the kernel parameters, which tells the generations apart in the log.
XEN_PARAMS = " ".join(boot.XEN_PARAMS)
DOM0_PARAMS = " ".join(boot.DOM0_PARAMS)

def environment(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set (tests/CMakeLists.txt sets it)")
    return value


def read_xen_config(image: Path) -> dict[str, dict[str, str]]:
    """The `.config` section of a Xen image, read with objcopy (an oracle
    independent of the tool), as {section: {key: value}}."""
    with tempfile.TemporaryDirectory(prefix="xbb-config-") as scratch:
        dump = Path(scratch) / "config"
        subprocess.run(
            ["objcopy", "-O", "binary", "--only-section=.config", str(image), str(dump)],
            check=True, capture_output=True,
        )
        text = dump.read_text()
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = sections.setdefault(line.strip()[1:-1], {})
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value
    return sections


def entry_field(entry_file: Path, key: str) -> str:
    for line in entry_file.read_text().splitlines():
        words = line.split(maxsplit=1)
        if words and words[0] == key:
            return words[1].strip() if len(words) > 1 else ""
    raise AssertionError(f"{entry_file}: no '{key}' line")


class BootTest(unittest.TestCase):
    def setUp(self) -> None:
        self.binary = Path(environment("XBB_BINARY"))
        self.mkroot = Path(environment("XBB_SOURCE_DIR")) / "fixtures/mkroot.py"
        scratch = tempfile.TemporaryDirectory(prefix="xbb-boot-")
        self.addCleanup(scratch.cleanup)
        self.work = Path(scratch.name)
        self.marker = boot.new_marker()
        self.initrd = boot.build_initrd(self.work / "initrd.gz", self.marker)

    # -- steps ---------------------------------------------------------------

    def make_root(self, *mkroot_args: str, xen: str = "4.17") -> dict:
        """Runs mkroot with the real inputs; returns its manifest."""
        self.root = self.work / "root"
        self.esp = self.root / "boot"
        argv = [
            sys.executable, str(self.mkroot), str(self.root),
            "--kernel", str(boot.kernel()), "--initrd", str(self.initrd),
            "--xen-efi", str(boot.xen_efi(xen)),
            "--xen-params", XEN_PARAMS, "--kernel-params", DOM0_PARAMS,
            *mkroot_args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, f"mkroot failed:\n{done.stdout}{done.stderr}")
        return json.loads((self.root / "manifest.json").read_text())

    def run_tool(self) -> None:
        """Runs our binary on the root's ESP as NixOS's install hook would."""
        argv = [str(self.binary), "--root", str(self.root), "--esp", str(self.esp), "info"]
        done = subprocess.run(argv, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    def boot_esp(self) -> boot.BootResult:
        """Boots the ESP with no menu delay (the only loader.conf line the
        test changes besides an explicit default) and reports the time."""
        boot.set_loader_option(self.esp, "timeout", "0")
        log_dir = os.environ.get("XBB_BOOT_LOG_DIR")
        log_file = None
        if log_dir:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            log_file = Path(log_dir) / f"{self.id().rsplit('.', 1)[-1]}.log"
        result = boot.boot_tree(self.esp, self.marker, log_file=log_file, work=self.work)
        sys.stderr.write(
            f"[boot] {self.id()}: {result.outcome} in {result.seconds:.1f} s "
            f"(QEMU CPU {result.cpu_seconds:.1f} s), "
            f"Xen {boot.xen_version(result.text)}\n"
        )
        return result

    # -- expectations (from the manifest) --------------------------------------

    @staticmethod
    def system(manifest: dict, generation: int, specialisation: str | None = None) -> dict:
        for entry in manifest["entries"]:
            if (entry["generation"] == generation and entry["specialisation"] == specialisation
                    and entry["profile"] is None):
                return entry
        raise AssertionError(f"manifest has no generation {generation} specialisation {specialisation}")

    def assert_booted_system(self, result: boot.BootResult, system: dict, xen: str = "4.17") -> None:
        boot.assert_booted(
            result,
            expect_entry=system["xen_entry"],
            expect_xen_cmdline_contains=system["xen_params"],
            expect_dom0_cmdline_contains=[f"init={system['init']}", *system["kernel_params"]],
            expect_builtin_config=True,
        )
        version = boot.xen_version(result.text)
        self.assertTrue(version and version.startswith(xen + "."), f"Xen {version}, expected {xen}.x")

    # -- cases -----------------------------------------------------------------

    def test_unified_generation_default(self) -> None:
        manifest = self.make_root("--scheme", "generation", "--generations", "3")
        self.run_tool()
        self.assert_booted_system(self.boot_esp(), self.system(manifest, manifest["default_generation"]))

    def test_hash_boot_counting_preferred(self) -> None:
        manifest = self.make_root("--scheme", "hash", "--generations", "2", "--boot-counting", "3")
        self.assertIn("preferred ", manifest["loader_conf"])
        self.run_tool()
        system = self.system(manifest, manifest["default_generation"])
        result = self.boot_esp()
        self.assert_booted_system(result, system)
        # The Xen entry counts boot attempts as its source entry does, and
        # systemd-boot started it with the tries the source had.
        self.assertEqual(boot.selected_entry(result.text), f"{system['xen_entry'][:-5]}{system['counter']}.conf")
        # systemd-boot 252 ignores `preferred` (it boots by `default`), so
        # only the file can show that it names the Xen entry now.
        loader_conf = (self.esp / "loader/loader.conf").read_text().splitlines()
        self.assertIn(f"preferred {system['xen_entry']}", loader_conf)

    def test_older_generation_by_loader_conf(self) -> None:
        manifest = self.make_root("--scheme", "generation", "--generations", "3")
        self.run_tool()
        older = self.system(manifest, 1)
        self.assertNotEqual(older["generation"], manifest["default_generation"])
        boot.set_loader_option(self.esp, "default", older["xen_entry"])
        self.assert_booted_system(self.boot_esp(), older)

    def test_specialisation(self) -> None:
        manifest = self.make_root("--scheme", "generation", "--generations", "2", "--specialisation", "tuned")
        self.run_tool()
        special = self.system(manifest, manifest["default_generation"], "tuned")
        boot.set_loader_option(self.esp, "default", special["xen_entry"])
        self.assert_booted_system(self.boot_esp(), special)

    def test_unified_generation_default_xen_4_20(self) -> None:
        manifest = self.make_root("--scheme", "generation", "--generations", "2", xen="4.20")
        self.run_tool()
        self.assert_booted_system(
            self.boot_esp(), self.system(manifest, manifest["default_generation"]), xen="4.20"
        )

    def test_negative_control_missing_kernel(self) -> None:
        """The check can fail: with the kernel named by the default entry's
        `.config` deleted from the ESP, the boot must fail at Xen's loader."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2")
        self.run_tool()
        system = self.system(manifest, manifest["default_generation"])
        entry = self.esp / "loader/entries" / system["xen_entry"]
        image = self.esp / entry_field(entry, "efi").lstrip("/")
        config = read_xen_config(image)
        section = config[config["global"]["default"]]
        kernel_name = section["kernel"].split()[0]
        self.assertTrue(kernel_name.startswith("\\"), f"kernel= {kernel_name!r} is not an absolute ESP path")
        kernel = self.esp / kernel_name.lstrip("\\").replace("\\", "/")
        self.assertTrue(kernel.is_file(), f"{kernel}: the kernel .config names is not on the ESP")
        kernel.unlink()
        result = self.boot_esp()
        boot.assert_boot_failed(result, "Open failed for")
        self.assertIn(f"Open failed for {kernel_name}", result.text)


class HarnessTest(unittest.TestCase):
    """The marker initrd, listed by the system's cpio (an independent reader)."""

    def test_initrd_contents(self) -> None:
        with tempfile.TemporaryDirectory(prefix="xbb-initrd-") as scratch:
            initrd = boot.build_initrd(Path(scratch) / "initrd.gz", "XBB-BOOT-OK test")
            listing = subprocess.run(
                ["cpio", "-itv", "--quiet"], input=gzip.decompress(initrd.read_bytes()),
                capture_output=True, check=True,
            ).stdout.decode()
        lines = {line.split()[-1]: line for line in listing.splitlines() if "->" not in line}
        links = {line.split()[-3]: line.split()[-1] for line in listing.splitlines() if "->" in line}
        self.assertRegex(lines["dev/console"], r"^crw-------\s.*\b5,\s*1\b")
        self.assertRegex(lines["init"], r"^-rwxr-xr-x")
        self.assertRegex(lines["bin/busybox"], r"^-rwxr-xr-x")
        self.assertEqual(int(lines["bin/busybox"].split()[4]), boot.busybox().stat().st_size)
        self.assertEqual(links["bin/sh"], "busybox")
        self.assertIn("lib/efivarfs.ko", lines)


if __name__ == "__main__":
    unittest.main()
