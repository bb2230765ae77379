"""Boot tests: what xen-boot-builder writes boots Xen and dom0 under QEMU.

Each test builds a NixOS-like root with fixtures/mkroot.py (real Xen image,
real Debian kernel, the marker initrd from boot.py), runs the built binary on
its ESP exactly as NixOS would, adds systemd-boot and boots the ESP. The
expectations come from mkroot's manifest.json, never from the tool.

Environment (set by tests/CMakeLists.txt): XBB_DEPS_DIR, XBB_BINARY,
XBB_SOURCE_DIR, and optionally XBB_BOOT_LOG_DIR (serial logs are kept there).
"""

import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
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
        return parse_xen_config(dump.read_text())


def parse_xen_config(text: str) -> dict[str, dict[str, str]]:
    """A Xen configuration file's text as {section: {key: value}}."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = sections.setdefault(line.strip()[1:-1], {})
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value
    return sections


def pe_section_sizes(image: Path) -> dict[str, int]:
    """{section name: size} of a PE image, as objdump (an oracle independent
    of the tool) lists them."""
    listing = subprocess.run(["objdump", "-h", str(image)], check=True, capture_output=True, text=True).stdout
    rows = re.findall(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s", listing, re.MULTILINE)
    return {name: int(size, 16) for name, size in rows}


def loaded_module_sizes(text: str) -> dict[str, int]:
    """{module: size} of what Xen's EFI loader loaded from sections of its own
    image: it prints `kernel: 0xSTART-0xEND` for an embedded `.kernel` (and
    the file name instead of `kernel` for a file; `ucode` for an embedded
    `.ucode`)."""
    rows = re.findall(r"^(kernel|ramdisk|ucode): 0x([0-9a-f]+)-0x([0-9a-f]+)$", text, re.MULTILINE)
    return {name: int(end, 16) - int(start, 16) for name, start, end in rows}


def loader_conf_value(esp: Path, key: str) -> str:
    return entry_field(esp / "loader/loader.conf", key)


def entry_field(entry_file: Path, key: str) -> str:
    for line in entry_file.read_text().splitlines():
        words = line.split(maxsplit=1)
        if words and words[0] == key:
            return words[1].strip() if len(words) > 1 else ""
    raise AssertionError(f"{entry_file}: no '{key}' line")


class BootCase(unittest.TestCase):
    """The steps and expectations every boot test uses. KERNEL_PACKAGE: the
    unpacked Debian kernel package whose kernel is dom0."""

    KERNEL_PACKAGE = "linux-image"

    def setUp(self) -> None:
        self.binary = Path(environment("XBB_BINARY"))
        self.mkroot = Path(environment("XBB_SOURCE_DIR")) / "fixtures/mkroot.py"
        scratch = tempfile.TemporaryDirectory(prefix="xbb-boot-")
        self.addCleanup(scratch.cleanup)
        self.work = Path(scratch.name)
        self.marker = boot.new_marker()
        self.kernel = boot.kernel(self.KERNEL_PACKAGE)
        self.initrd = boot.build_initrd(self.work / "initrd.gz", self.marker, self.kernel)

    # -- steps ---------------------------------------------------------------

    def make_root(self, *mkroot_args: str, xen: str = "4.17") -> dict:
        """Runs mkroot with the real inputs; returns its manifest."""
        self.root = self.work / "root"
        self.esp = self.root / "boot"
        argv = [
            sys.executable, str(self.mkroot), str(self.root),
            "--kernel", str(self.kernel), "--initrd", str(self.initrd),
            "--xen-efi", str(boot.xen_efi(xen)),
            "--xen-params", XEN_PARAMS, "--kernel-params", DOM0_PARAMS,
            *(["--xen-version", boot.XEN_RELEASES[xen]] if xen in boot.XEN_RELEASES else []),
            *mkroot_args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, f"mkroot failed:\n{done.stdout}{done.stderr}")
        return json.loads((self.root / "manifest.json").read_text())

    def run_tool(self, *options: str) -> None:
        """Runs our binary on the root's ESP as NixOS's install hook would."""
        argv = [str(self.binary), "--root", str(self.root), "--esp", str(self.esp), *options, "info"]
        done = subprocess.run(argv, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    def boot_esp(self, secure_boot: boot.SigningKey | None = None,
                 systemd_boot_suite: str = "bookworm") -> boot.BootResult:
        """Boots the ESP with no menu delay (the only loader.conf line the
        test changes besides an explicit default) and reports the time; with
        `secure_boot`, under the Secure Boot firmware that trusts that key;
        with the systemd-boot of `systemd_boot_suite` (boot.SYSTEMD_BOOT_PACKAGES)."""
        boot.set_loader_option(self.esp, "timeout", "0")
        result = boot.boot_tree(self.esp, self.marker, log_file=self.log_file(), work=self.work,
                                secure_boot=secure_boot, systemd_boot_suite=systemd_boot_suite)
        self.report(result)
        return result

    def boot_disk(self, *partitions: boot.Partition) -> boot.BootResult:
        """Boots a GPT disk with these partitions, one of them the ESP
        (self.esp), with no menu delay, and reports the time."""
        boot.set_loader_option(self.esp, "timeout", "0")
        result = boot.boot_disk(list(partitions), self.marker, log_file=self.log_file(), work=self.work)
        self.report(result)
        return result

    def log_file(self) -> Path | None:
        """Where the serial log of this test's boot is kept, if anywhere."""
        log_dir = os.environ.get("XBB_BOOT_LOG_DIR")
        if not log_dir:
            return None
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        return Path(log_dir) / f"{self.id().rsplit('.', 1)[-1]}.log"

    def report(self, result: boot.BootResult) -> None:
        sys.stderr.write(
            f"[boot] {self.id()}: {result.outcome} in {result.seconds:.1f} s "
            f"(QEMU CPU {result.cpu_seconds:.1f} s), "
            f"Xen {boot.xen_version(result.text)}\n"
        )

    def entry_image(self, system: dict) -> Path:
        """The image `system`'s Xen entry starts (its `efi` line)."""
        entry = self.esp / "loader/entries" / system["xen_entry"]
        self.assertTrue(entry.is_file(), f"{entry}: the tool wrote no entry")
        image = self.esp / entry_field(entry, "efi").lstrip("/")
        self.assertTrue(image.is_file(), f"{image}: the entry's image is missing")
        return image

    def remove_esp_kernels(self, image: Path) -> None:
        """Deletes the ESP's EFI/nixos (every kernel and initrd copy) and
        checks that no file outside `image`'s folder holds the kernel or the
        initrd any more: a boot can only use what the images embed."""
        shutil.rmtree(self.esp / "EFI/nixos")
        embedded = {hashlib.sha256(path.read_bytes()).digest() for path in (self.kernel, self.initrd)}
        for path in self.esp.rglob("*"):
            if path.is_file() and path.parent != image.parent:
                self.assertNotIn(hashlib.sha256(path.read_bytes()).digest(), embedded,
                                 f"{path}: a kernel or initrd file is still on the ESP")

    # -- expectations (from the manifest) --------------------------------------

    @staticmethod
    def system(manifest: dict, generation: int, specialisation: str | None = None) -> dict:
        for entry in manifest["entries"]:
            if (entry["generation"] == generation and entry["specialisation"] == specialisation
                    and entry["profile"] is None):
                return entry
        raise AssertionError(f"manifest has no generation {generation} specialisation {specialisation}")

    def assert_booted_system(self, result: boot.BootResult, system: dict, xen: str = "4.17",
                             shared: bool = False) -> None:
        """The boot reached /init through `system`'s Xen entry, with its Xen
        and dom0 parameters, reading its configuration from the image's
        .config, or (`shared`) from the file its -cfg= option names."""
        boot.assert_booted(
            result,
            expect_entry=system["xen_entry"],
            expect_xen_cmdline_contains=system["xen_params"],
            expect_dom0_cmdline_contains=[f"init={system['init']}", *system["kernel_params"]],
            expect_builtin_config=not shared,
            expect_config_from_option=shared,
        )
        self.assert_xen_version(result, xen)

    def assert_xen_version(self, result: boot.BootResult, xen: str) -> None:
        version = boot.xen_version(result.text)
        self.assertTrue(version and version.startswith(xen + "."), f"Xen {version}, expected {xen}.x")

    def assert_debug_sections_left_out(self, image: Path, source: Path, added: set[str]) -> None:
        """`image` holds `source`'s sections without its .debug_* ones (the
        default), and the `added` ones. `.reloc` (DISCARDABLE too, in a Xen
        linked before GNU ld 2.46) stays: Xen's EFI loader relocates itself
        with it."""
        source_sections, sections = pe_section_sizes(source), pe_section_sizes(image)
        self.assertTrue(any(name.startswith(".debug_") for name in source_sections))
        self.assertEqual([name for name in sections if name.startswith(".debug_")], [], f"{image}: {sections}")
        self.assertEqual(set(sections), {name for name in source_sections if not name.startswith(".debug_")}
                         | added)
        self.assertIn(".reloc", sections)
        self.assertEqual(sections[".reloc"], source_sections[".reloc"])


class BootTest(BootCase):
    def profiles_image_without_esp_kernels(self) -> tuple[dict, Path]:
        """A Lanzaboote root (no loader entries, generations only in the
        system profiles), populated with `--source profiles`; then every
        kernel and initrd copy in the ESP's EFI/nixos is deleted, so a boot
        can only use what the Xen image embeds. Returns the default
        generation's system and its Xen image."""
        manifest = self.make_root("--scheme", "lanzaboote", "--generations", "2")
        self.run_tool("--source", "profiles")
        system = self.system(manifest, manifest["default_generation"])
        entry = self.esp / "loader/entries" / system["xen_entry"]
        self.assertTrue(entry.is_file(), f"{entry}: the tool wrote no entry for the default generation")
        image = self.esp / entry_field(entry, "efi").lstrip("/")
        self.assertTrue(image.is_file(), f"{image}: the entry's image is missing")
        # systemd-boot's default must pick this generation's Xen entry, not a
        # Lanzaboote stub in EFI/Linux (whose ids are nixos-*.efi).
        default = loader_conf_value(self.esp, "default")
        self.assertTrue(fnmatch.fnmatchcase(system["xen_entry"], default),
                        f"loader.conf default {default!r} does not name {system['xen_entry']}")
        copies = {self.esp / e[kind].lstrip("/") for e in manifest["entries"] for kind in ("linux", "initrd")}
        for copy in copies:
            self.assertTrue(copy.is_file(), f"{copy}: mkroot's copy is missing")
        shutil.rmtree(self.esp / "EFI/nixos")
        return system, image

    # -- cases -----------------------------------------------------------------

    def test_unified_generation_default(self) -> None:
        manifest = self.make_root("--scheme", "generation", "--generations", "3")
        self.run_tool("--layout", "unified")
        self.assert_booted_system(self.boot_esp(), self.system(manifest, manifest["default_generation"]))

    def test_default_layout_on_a_fresh_esp(self) -> None:
        """The default layout (auto) with Debian's xen.efi, which carries no
        .config: one shared image, and the default generation boots with
        its own configuration file."""
        manifest = self.make_root("--scheme", "generation", "--generations", "3")
        self.run_tool()
        self.assertEqual(len(list((self.esp / "EFI/xen").glob("*.efi"))), 1)
        self.assert_booted_system(self.boot_esp(), self.system(manifest, manifest["default_generation"]),
                                  shared=True)

    def test_default_layout_after_the_shell_script(self) -> None:
        """An ESP as the shell script left it (entries naming
        EFI/nixos/xen-<rest>.efi, a unified image each), switched by one
        default run: the script's images are gone and the default boots."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2")
        self.run_tool("--layout", "unified")
        for system in manifest["entries"]:
            image = self.esp / "EFI/xen" / system["xen_image"]
            image.rename(self.esp / "EFI/nixos" / system["xen_image"])
            entry = self.esp / "loader/entries" / system["xen_entry"]
            entry.write_text(re.sub(r"(?m)^efi .*$", f"efi /EFI/nixos/{system['xen_image']}", entry.read_text()))
        self.run_tool()
        self.assertEqual(list((self.esp / "EFI/nixos").glob("xen-*.efi")), [])
        self.assert_booted_system(self.boot_esp(), self.system(manifest, manifest["default_generation"]),
                                  shared=True)

    def test_hash_boot_counting_preferred(self) -> None:
        manifest = self.make_root("--scheme", "hash", "--generations", "2", "--boot-counting", "3")
        self.assertIn("preferred ", manifest["loader_conf"])
        self.run_tool("--layout", "unified")
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
        self.run_tool("--layout", "unified")
        older = self.system(manifest, 1)
        self.assertNotEqual(older["generation"], manifest["default_generation"])
        boot.set_loader_option(self.esp, "default", older["xen_entry"])
        self.assert_booted_system(self.boot_esp(), older)

    def test_specialisation(self) -> None:
        manifest = self.make_root("--scheme", "generation", "--generations", "2", "--specialisation", "tuned")
        self.run_tool("--layout", "unified")
        special = self.system(manifest, manifest["default_generation"], "tuned")
        boot.set_loader_option(self.esp, "default", special["xen_entry"])
        self.assert_booted_system(self.boot_esp(), special)

    def test_unified_generation_default_xen_4_20(self) -> None:
        """Debian 13's 4.20 image, written without its nine .debug_* sections
        (the default): the stripped image boots."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2", xen="4.20")
        self.run_tool("--layout", "unified")
        system = self.system(manifest, manifest["default_generation"])
        image = self.entry_image(system)
        self.assert_debug_sections_left_out(image, boot.xen_efi("4.20"), {".config"})
        self.assertLess(image.stat().st_size, boot.xen_efi("4.20").stat().st_size // 8)
        self.assert_booted_system(self.boot_esp(), system, xen="4.20")

    def test_shared_layout_older_generation(self) -> None:
        """Two entries share one image, each with its own configuration file;
        the older one, chosen in loader.conf, boots with its own dom0 command
        line (generation=1, which only its configuration carries)."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2")
        self.run_tool("--layout", "shared")
        older, newer = self.system(manifest, 1), self.system(manifest, 2)
        images = sorted((self.esp / "EFI/xen").glob("*.efi"))
        self.assertEqual(len(images), 1, images)
        self.assertNotIn(".config", pe_section_sizes(images[0]))
        for system in (older, newer):
            entry = self.esp / "loader/entries" / system["xen_entry"]
            self.assertEqual(entry_field(entry, "efi"), f"/EFI/xen/{images[0].name}")
            config = f"xen-{system['rest']}.cfg"
            self.assertEqual(entry_field(entry, "options"), f"{images[0].name} -cfg={config}")
            self.assertTrue((self.esp / "EFI/xen" / config).is_file(), config)
        self.assertIn("generation=1", older["kernel_params"])
        self.assertNotIn("generation=1", newer["kernel_params"])
        boot.set_loader_option(self.esp, "default", older["xen_entry"])
        result = self.boot_esp()
        self.assert_booted_system(result, older, shared=True)
        self.assertNotIn("generation=2", boot.dom0_command_line(result.text).split())

    def test_negative_control_missing_kernel(self) -> None:
        """The check can fail: with the kernel named by the default entry's
        `.config` deleted from the ESP, the boot must fail at Xen's loader."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2")
        self.run_tool("--layout", "unified")
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


    def test_profiles_embedded_kernel(self) -> None:
        """Issue 4, case 6: a unified image carrying `.kernel` and `.ramdisk`
        boots with no kernel or initrd file on the ESP."""
        system, image = self.profiles_image_without_esp_kernels()
        sections = pe_section_sizes(image)
        for name in (".config", ".kernel", ".ramdisk"):
            self.assertIn(name, sections, f"{image}: no {name} section")
        self.assertEqual(sections[".kernel"], self.kernel.stat().st_size)
        self.assertEqual(sections[".ramdisk"], self.initrd.stat().st_size)
        result = self.boot_esp()
        self.assert_booted_system(result, system)
        # Xen names embedded modules "kernel"/"ramdisk" where it would print a
        # file name; the sizes tie them to the real kernel and initrd.
        self.assertEqual(
            loaded_module_sizes(result.text),
            {"kernel": self.kernel.stat().st_size, "ramdisk": self.initrd.stat().st_size},
        )

    def test_profiles_without_embedded_kernel_fails(self) -> None:
        """The check can fail: the same image with its `.kernel` section
        stripped (by objcopy) leaves Xen looking for the kernel's file name
        from `.config`, which is not on the ESP."""
        _, image = self.profiles_image_without_esp_kernels()
        subprocess.run(["objcopy", "--remove-section", ".kernel", str(image)], check=True, capture_output=True)
        sections = pe_section_sizes(image)
        self.assertNotIn(".kernel", sections)
        self.assertIn(".config", sections)
        self.assertIn(".ramdisk", sections)
        config = read_xen_config(image)
        kernel_name = config[config["global"]["default"]]["kernel"].split()[0]
        result = self.boot_esp()
        boot.assert_boot_failed(result, "Open failed for")
        self.assertIn(f"Open failed for {kernel_name}", result.text)


class SecureBootTest(BootCase):
    """Issue 11: under Secure Boot enforced (Debian's snakeoil firmware, its
    key in db) a self-contained image the tool signed boots with no kernel or
    initrd file on the ESP, and the firmware refuses the same image unsigned
    or signed with another key. Dom0 is Debian 13's 6.12 kernel (Debian 12's
    halts under the SMM firmware). The root is a Lanzaboote ESP, run with
    --lanzaboote as the NixOS module does; loader.conf's default names the
    Xen entry, as `boot.lanzaboote.settings.default` would.

    Which entry systemd-boot started cannot be read here: dom0 locks itself
    down under Secure Boot and refuses the efivarfs module /init would load
    ("Key was rejected by service"). The dom0 command line (the generation's
    init= and generation=<N>, which only its image's .config carries) and the
    embedded module sizes tie the boot to the image instead."""

    KERNEL_PACKAGE = "linux-image-trixie"

    def setUp(self) -> None:
        super().setUp()
        keys = self.work / "keys"
        keys.mkdir(mode=0o700)
        self.trusted = boot.snakeoil_key(keys)
        self.other = boot.new_key(keys, "other")

    def lanzaboote_image(self, signing: boot.SigningKey) -> tuple[dict, Path]:
        """The default generation's image, written by the tool with
        --lanzaboote and signed with `signing`; then Lanzaboote's kernel and
        initrd copies are deleted, so that no file on the ESP holds the
        kernel or initrd (only the images embed them)."""
        manifest = self.make_root("--scheme", "lanzaboote", "--generations", "2")
        self.run_tool("--lanzaboote", "--sign-key", str(signing.key), "--sign-cert", str(signing.cert))
        system = self.system(manifest, manifest["default_generation"])
        image = self.entry_image(system)
        sections = pe_section_sizes(image)
        for name in (".config", ".kernel", ".ramdisk"):
            self.assertIn(name, sections, f"{image}: no {name} section")
        self.remove_esp_kernels(image)
        boot.set_loader_option(self.esp, "default", system["xen_entry"])
        return system, image

    def assert_refused(self, result: boot.BootResult, image: Path) -> None:
        """The firmware refused the image systemd-boot (itself signed with
        the trusted key, so it ran) tried to start."""
        boot.assert_boot_failed(result, "Access Denied")
        self.assertIn(f"Error loading \\EFI\\xen\\{image.name}: Access Denied", result.text)
        self.assertIsNone(boot.xen_version(result.text), "Xen started")

    def signed_xen_4_22_image(self, layout: str) -> tuple[dict, Path]:
        """A systemd-boot ESP (generation entries, kernels in EFI/nixos) with
        Xen 4.22.0, the image of its default generation written by the tool
        in `layout` and signed with the trusted key."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2", xen="4.22")
        self.run_tool("--layout", layout, "--sign-key", str(self.trusted.key), "--sign-cert", str(self.trusted.cert))
        system = self.system(manifest, manifest["default_generation"])
        image = self.entry_image(system)
        self.assertTrue(boot.signature_verifies(image, self.trusted.cert),
                        f"{image}: sbverify finds no signature by the snakeoil key")
        return system, image

    def assert_secure_boot_reached_dom0(self, result: boot.BootResult, system: dict) -> None:
        """Dom0 reached /init under Secure Boot with `system`'s parameters,
        from the kernel and initrd embedded in the image."""
        boot.assert_booted(
            result,
            expect_xen_cmdline_contains=system["xen_params"],
            expect_dom0_cmdline_contains=[f"init={system['init']}", *system["kernel_params"]],
        )
        self.assertIn("UEFI Secure Boot is enabled.", result.text)
        self.assertIn("Kernel is locked down from EFI Secure Boot", result.text)
        self.assertEqual(
            loaded_module_sizes(result.text),
            {"kernel": self.kernel.stat().st_size, "ramdisk": self.initrd.stat().st_size},
        )

    def test_secure_boot_signed_image(self) -> None:
        system, image = self.lanzaboote_image(self.trusted)
        self.assertTrue(boot.signature_verifies(image, self.trusted.cert),
                        f"{image}: sbverify finds no signature by the snakeoil key")
        self.assert_secure_boot_reached_dom0(self.boot_esp(secure_boot=self.trusted), system)

    def test_xen_4_22_self_contained_signed(self) -> None:
        """Xen 4.22.0 (nixpkgs' Xen), self-contained and signed, with no
        kernel or initrd file on the ESP: boots under Secure Boot. Xen 4.21+
        takes the embedded `.kernel` as verified by the image's signature."""
        system, image = self.signed_xen_4_22_image("self-contained")
        self.remove_esp_kernels(image)
        result = self.boot_esp(secure_boot=self.trusted)
        self.assert_secure_boot_reached_dom0(result, system)
        self.assert_xen_version(result, "4.22")

    def test_xen_4_22_signed_unified_kernel_refused(self) -> None:
        """Control, why self-contained is the Secure Boot layout: a signed
        unified image (the kernel a file on the ESP) passes the firmware and
        Xen 4.22 starts, but Xen, with no shim to verify the kernel file,
        refuses it."""
        _, image = self.signed_xen_4_22_image("unified")
        sections = pe_section_sizes(image)
        self.assertIn(".config", sections)
        self.assertNotIn(".kernel", sections)
        result = self.boot_esp(secure_boot=self.trusted)
        boot.assert_boot_failed(result, "Refusing to boot unverified kernel")
        self.assert_xen_version(result, "4.22")
        self.assertIn("Kernel was not verified", result.text)
        self.assertIn("Refusing to boot unverified kernel with UEFI SecureBoot enabled", result.text)

    def test_secure_boot_unsigned_image_refused(self) -> None:
        """Negative control: the signed image with its signature removed
        (sbattach --remove; every other byte stays) is refused."""
        _, image = self.lanzaboote_image(self.trusted)
        self.assertTrue(boot.signature_verifies(image, self.trusted.cert),
                        f"{image}: sbverify finds no signature by the snakeoil key")
        subprocess.run(["sbattach", "--remove", str(image)], check=True, capture_output=True)
        self.assertFalse(boot.signature_verifies(image, self.trusted.cert))
        self.assert_refused(self.boot_esp(secure_boot=self.trusted), image)

    def test_secure_boot_other_key_refused(self) -> None:
        """Negative control: an image the tool signed with a key the firmware
        does not trust is refused."""
        _, image = self.lanzaboote_image(self.other)
        self.assertTrue(boot.signature_verifies(image, self.other.cert),
                        f"{image}: sbverify finds no signature by the other key")
        self.assertFalse(boot.signature_verifies(image, self.trusted.cert))
        self.assert_refused(self.boot_esp(secure_boot=self.trusted), image)


class CurrentNixosTest(BootCase):
    """What NixOS runs now: Xen 4.22.0 (nixpkgs' Xen, built from the
    release tag) and systemd-boot 262 (Debian sid's), with Debian 12's kernel
    as dom0."""

    def test_xen_4_22_default_layout(self) -> None:
        """Xen 4.22.0 in the default layout, auto: its xen.efi carries no
        .config, so one shared image and a -cfg= file per entry."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2", xen="4.22")
        self.run_tool()
        system = self.system(manifest, manifest["default_generation"])
        self.assertIn("-cfg=", (self.esp / "loader/entries" / system["xen_entry"]).read_text())
        self.assert_booted_system(self.boot_esp(), system, xen="4.22", shared=True)

    def test_xen_4_22_unified(self) -> None:
        """Xen 4.22.0 unified: its debug sections left out, `.reloc` kept."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2", xen="4.22")
        self.run_tool("--layout", "unified")
        system = self.system(manifest, manifest["default_generation"])
        self.assert_debug_sections_left_out(self.entry_image(system), boot.xen_efi("4.22"), {".config"})
        self.assert_booted_system(self.boot_esp(), system, xen="4.22")

    def test_xen_4_22_ucode(self) -> None:
        """--ucode with Xen 4.22.0 (built with CONFIG_MICROCODE_LOADING): the
        self-contained image carries Debian's AMD microcode as `.ucode`,
        `inspect` lists it, and Xen's EFI loader loads it (`ucode: 0x...`)
        and boots on. QEMU's qemu64 CPU (AMD family 0Fh) is one Xen updates
        no microcode on: it logs `Microcode loading not available`."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2", xen="4.22")
        ucode = boot.amd_microcode()
        self.run_tool("--layout", "self-contained", "--ucode", str(ucode))
        system = self.system(manifest, manifest["default_generation"])
        image = self.entry_image(system)
        self.assert_debug_sections_left_out(image, boot.xen_efi("4.22"),
                                            {".config", ".kernel", ".ramdisk", ".ucode"})
        self.assertEqual(pe_section_sizes(image)[".ucode"], ucode.stat().st_size)
        done = subprocess.run([str(self.binary), "inspect", str(image)], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertRegex(done.stdout, rf"(?m)^\s+\d+\s+\.ucode\s+0x[0-9a-f]+\s+{ucode.stat().st_size:#x}\s")
        result = self.boot_esp()
        self.assert_booted_system(result, system, xen="4.22")
        self.assertEqual(
            loaded_module_sizes(result.text),
            {"kernel": self.kernel.stat().st_size, "ramdisk": self.initrd.stat().st_size,
             "ucode": ucode.stat().st_size},
        )

    def preferred_older_generation(self) -> tuple[dict, dict]:
        """A content-addressed ESP (entries nixos-<sha256>+3.conf) whose
        loader.conf prefers the older of two generations (`preferred
        nixos-<hash>.conf`, `default nixos-*`), after the tool ran: loader.conf
        says `preferred xen-<hash>.conf` and `default xen-*`; in the default
        layout (shared, for Xen 4.22). Returns the preferred and the newest
        generation."""
        manifest = self.make_root("--scheme", "hash", "--generations", "2", "--default", "1",
                                  "--boot-counting", "3", xen="4.22")
        self.run_tool()
        preferred, newest = self.system(manifest, 1), self.system(manifest, 2)
        self.assertRegex(preferred["entry"], r"^nixos-[0-9a-f]{64}\+3\.conf$")
        for system in (preferred, newest):
            self.assertTrue((self.esp / "loader/entries" / f"{system['xen_entry'][:-5]}+3.conf").is_file(),
                            f"{system['xen_entry']}: no Xen entry with the source's boot counter")
        loader_conf = (self.esp / "loader/loader.conf").read_text().splitlines()
        self.assertIn(f"preferred {preferred['xen_entry']}", loader_conf)
        self.assertIn("default xen-*", loader_conf)
        return preferred, newest

    def test_systemd_boot_262_preferred_generation(self) -> None:
        """systemd-boot 262 honours `preferred` (from 260): the preferred
        older generation boots, not the newest that `default xen-*` picks."""
        self.assertGreaterEqual(boot.systemd_boot_version(boot.systemd_boot("sid")), 260)
        preferred, _ = self.preferred_older_generation()
        result = self.boot_esp(systemd_boot_suite="sid")
        self.assert_booted_system(result, preferred, xen="4.22", shared=True)
        self.assertIn("generation=1", boot.dom0_command_line(result.text).split())

    def test_systemd_boot_252_ignores_preferred(self) -> None:
        """Control: the same ESP under Debian 12's systemd-boot 252, which
        knows no `preferred`, boots the newest generation (`default xen-*`)."""
        self.assertLess(boot.systemd_boot_version(boot.systemd_boot("bookworm")), 260)
        _, newest = self.preferred_older_generation()
        result = self.boot_esp()
        self.assert_booted_system(result, newest, xen="4.22", shared=True)
        self.assertIn("generation=2", boot.dom0_command_line(result.text).split())


class BootPartitionsTest(BootCase):
    """Issue 16: Xen entries on an Extended Boot Loader partition (XBOOTLDR)
    beside the ESP, and on a mirrored ESP booted alone."""

    def files(self, folder: Path) -> dict[str, bytes]:
        """{path relative to `folder`: contents} of every file under it."""
        return {str(path.relative_to(folder)): path.read_bytes()
                for path in sorted(folder.rglob("*")) if path.is_file()}

    def xbootldr_root(self) -> dict:
        """A systemd-boot root as NixOS's installer lays it out with
        `boot.loader.systemd-boot.xbootldrMountPoint`: mkroot's loader/entries
        and EFI/nixos moved from the ESP to the XBOOTLDR folder
        (self.xbootldr), loader.conf left on the ESP. The tool, run with
        --xbootldr, must write the Xen entries, images and configuration
        files on the XBOOTLDR folder, beside the kernels they name, and
        nothing on the ESP but loader.conf, whose default it retargets.
        Returns the default generation's system."""
        manifest = self.make_root("--scheme", "generation", "--generations", "2")
        self.xbootldr = self.work / "xbootldr"
        for folder in ("loader/entries", "EFI/nixos"):
            (self.xbootldr / folder).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(self.esp / folder, self.xbootldr / folder)
        esp_before = self.files(self.esp)
        self.run_tool("--xbootldr", str(self.xbootldr))
        esp_after = self.files(self.esp)
        self.assertEqual(set(esp_after), set(esp_before), "the tool added or removed files on the ESP")
        self.assertEqual({name for name in esp_before if esp_after[name] != esp_before[name]},
                         {"loader/loader.conf"})
        self.assertFalse((self.xbootldr / "loader/loader.conf").exists())
        system = self.system(manifest, manifest["default_generation"])
        default = loader_conf_value(self.esp, "default")
        self.assertTrue(fnmatch.fnmatchcase(system["xen_entry"], default),
                        f"loader.conf default {default!r} does not name {system['xen_entry']}")
        for each in manifest["entries"]:
            self.assert_xen_entry_on_xbootldr(each)
        return system

    def assert_xen_entry_on_xbootldr(self, system: dict) -> None:
        """`system`'s Xen entry is on the XBOOTLDR folder, and so are its
        image (in EFI/xen), its configuration file (shared layout, the
        default for Debian's xen.efi), and the kernel and initrd that file
        names (both systemd-boot and Xen read from the partition the entry is on)."""
        entry = self.xbootldr / "loader/entries" / system["xen_entry"]
        self.assertTrue(entry.is_file(), f"{entry}: the tool wrote no entry")
        image = self.xbootldr / entry_field(entry, "efi").lstrip("/")
        self.assertEqual(image.parent, self.xbootldr / "EFI/xen")
        self.assertTrue(image.is_file(), f"{image}: the entry's image is missing")
        config_name = re.search(r"-cfg=(\S+)", entry_field(entry, "options"))
        self.assertIsNotNone(config_name, f"{entry}: no -cfg= option (not the shared layout)")
        config = parse_xen_config((image.parent / config_name.group(1)).read_text())
        section = config[config["global"]["default"]]
        for key in ("kernel", "ramdisk"):
            named = section[key].split()[0]
            self.assertTrue(named.startswith("\\"), f"{key}={named!r} is not an absolute path")
            path = self.xbootldr / named.lstrip("\\").replace("\\", "/")
            self.assertTrue(path.is_file(), f"{path}: the {key} the configuration names is not on XBOOTLDR")

    def xbootldr_disk(self, type_guid: str) -> boot.BootResult:
        """Boots the ESP and the XBOOTLDR folder as one GPT disk, the second
        partition of type `type_guid`."""
        return self.boot_disk(boot.Partition(self.esp, boot.ESP_TYPE, "ESP"),
                              boot.Partition(self.xbootldr, type_guid, "XBOOTLDR"))

    def test_xbootldr_xen_entry_default(self) -> None:
        """systemd-boot on the ESP finds the Xen entries on the XBOOTLDR
        partition, starts the default one, and Xen loads its configuration,
        kernel and initrd from that partition."""
        system = self.xbootldr_root()
        self.assert_booted_system(self.xbootldr_disk(boot.XBOOTLDR_TYPE), system, shared=True)

    def test_xbootldr_negative_control_linux_data_type(self) -> None:
        """The check can fail: the same disk with the XBOOTLDR partition
        typed Linux data. systemd-boot (252) reads entries from no such
        partition: its menu offers only `Reboot Into Firmware Interface`
        (shown for 10 s although loader.conf says `timeout 0`) and no Xen
        starts."""
        self.xbootldr_root()
        result = self.xbootldr_disk(boot.LINUX_DATA_TYPE)
        boot.assert_boot_failed(result, "Reboot Into Firmware Interface")
        self.assertEqual(boot.first_menu(result.text), "Reboot Into Firmware Interface")
        self.assertIsNone(boot.xen_version(result.text), "Xen started")

    def test_extra_esp_boots_alone(self) -> None:
        """Mirrored ESPs on a Lanzaboote machine: the second ESP starts as
        Lanzaboote leaves every ESP it installs to (a copy of the first);
        one run with --extra-esp gives it the same Xen entries and images
        as the main ESP and retargets its loader.conf. Then, with its kernel
        and initrd copies deleted and the main ESP gone, the second ESP
        alone boots the default generation from the image's embedded kernel
        and initrd."""
        manifest = self.make_root("--scheme", "lanzaboote", "--generations", "2")
        mirror = self.work / "esp2"
        shutil.copytree(self.esp, mirror, symlinks=True)
        self.run_tool("--source", "profiles", "--extra-esp", str(mirror))
        system = self.system(manifest, manifest["default_generation"])

        def xen_files(esp: Path) -> dict[str, bytes]:
            """The Xen entries, images and configuration files (not the
            record, which may say which partition it describes)."""
            return {name: data for name, data in self.files(esp).items()
                    if any(fnmatch.fnmatchcase(name, pattern)
                           for pattern in ("loader/entries/xen-*", "EFI/xen/*.efi", "EFI/xen/*.cfg"))}

        on_mirror = xen_files(mirror)
        self.assertIn(f"loader/entries/{system['xen_entry']}", on_mirror)
        self.assertEqual(on_mirror, xen_files(self.esp), "the extra ESP's Xen files differ from the main ESP's")
        default = loader_conf_value(mirror, "default")
        self.assertTrue(fnmatch.fnmatchcase(system["xen_entry"], default),
                        f"the extra ESP's loader.conf default {default!r} does not name {system['xen_entry']}")
        shutil.rmtree(self.esp)
        self.esp = mirror
        image = self.entry_image(system)
        self.remove_esp_kernels(image)
        result = self.boot_esp()
        self.assert_booted_system(result, system)
        self.assertEqual(
            loaded_module_sizes(result.text),
            {"kernel": self.kernel.stat().st_size, "ramdisk": self.initrd.stat().st_size},
        )


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

    def test_disk_partitions(self) -> None:
        """make_disk's GPT disk, read back by sfdisk (the table: types, names,
        1 MiB alignment) and mtools (each partition's files)."""
        with tempfile.TemporaryDirectory(prefix="xbb-disk-") as scratch:
            work = Path(scratch)
            trees = {"ESP": work / "esp", "XBOOTLDR": work / "xbootldr"}
            for label, tree in trees.items():
                (tree / "loader").mkdir(parents=True)
                (tree / "loader/owner").write_text(label)
            image = boot.make_disk([boot.Partition(trees["ESP"], boot.ESP_TYPE, "ESP"),
                                    boot.Partition(trees["XBOOTLDR"], boot.XBOOTLDR_TYPE, "XBOOTLDR")],
                                   work / "disk.img")
            sfdisk = shutil.which("sfdisk", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            listing = subprocess.run([sfdisk, "--json", str(image)], capture_output=True, check=True, text=True)
            table = json.loads(listing.stdout)["partitiontable"]
            self.assertEqual(table["label"], "gpt")
            partitions = table["partitions"]
            self.assertEqual([(p["type"].lower(), p["name"]) for p in partitions],
                             [(boot.ESP_TYPE, "ESP"), (boot.XBOOTLDR_TYPE, "XBOOTLDR")])
            self.assertEqual(partitions[0]["start"], boot.MIB_SECTORS)
            self.assertEqual(partitions[1]["start"], partitions[0]["start"] + partitions[0]["size"])
            for partition, label in zip(partitions, trees):
                self.assertEqual(partition["start"] % boot.MIB_SECTORS, 0)
                content = subprocess.run(
                    ["mtype", "-i", f"{image}@@{partition['start'] * boot.SECTOR}", "::/loader/owner"],
                    capture_output=True, check=True, text=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
                ).stdout
                self.assertEqual(content, label)


if __name__ == "__main__":
    unittest.main()
