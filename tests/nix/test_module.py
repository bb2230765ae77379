"""nix/module.nix, and nixpkgs' Xen module with the upstream patch applied,
evaluated with nixpkgs' own lib.evalModules (nixpkgs' lib and boot.nix from
XBB_SHARED_DIR) and a module declaring the NixOS options involved
(nixos.nix); eval.nix returns what is asserted on."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ["XBB_SOURCE_DIR"])
SHARED_DIR = Path(os.environ["XBB_SHARED_DIR"]).resolve()
HERE = Path(__file__).resolve().parent
NIX = SOURCE_DIR / "nix"
XEN_BOOT = Path("nixos/modules/virtualisation/xen/boot.nix")
PATCHED = NIX / "nixpkgs" / XEN_BOOT
PATCH = NIX / "nixpkgs" / "xen-boot.patch"
REAL = SHARED_DIR / "nixpkgs" / XEN_BOOT
# build-users-group: nix-bin's default names a group that a machine without
# a Nix daemon lacks, and warns about it.
NIX_ARGS = ["nix-instantiate", "--option", "build-users-group", ""]

# A machine with Xen on systemd-boot, and one with Lanzaboote.
BASE = """
  virtualisation.xen.enable = true;
  boot.initrd.systemd.enable = true;
"""
SYSTEMD_BOOT = BASE + "boot.loader.systemd-boot.enable = true;\n"
LANZABOOTE = BASE + """
  boot.lanzaboote.enable = true;
  boot.lanzaboote.pkiBundle = "/var/lib/sbctl";
"""
TOOL = "/nix/store/00000000000000000000000000000000-xen-boot-builder/bin/xen-boot-builder"


def nix_string(value):
    return json.dumps(str(value))


def evaluate(modules, config, extra_modules=""):
    """Evaluates `config` (the body of a module taking lib) with `modules`
    (Nix expressions); returns eval.nix's result, or raises with Nix's error."""
    expression = (
        f"import {HERE / 'eval.nix'} {{\n"
        f"  shared = {SHARED_DIR};\n"
        f"  modules = [ {' '.join(modules)} {extra_modules} ];\n"
        f"  config = {{ lib, ... }}: {{\n{config}\n  }};\n"
        "}\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".nix") as file:
        file.write(expression)
        file.flush()
        result = subprocess.run(
            NIX_ARGS + ["--eval", "--strict", "--json", file.name],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    if result.returncode != 0:
        raise AssertionError(f"evaluation failed:\n{result.stderr}\n{expression}")
    return json.loads(result.stdout)


# nixpkgs' boot.nix, imported as NixOS imports it (a path under modulesPath,
# which disabledModules names), with this project's module.
OURS = [f'({SHARED_DIR}/nixpkgs/nixos/modules + "/virtualisation/xen/boot.nix")', str(NIX / "module.nix")]


class Variants:
    """The assertions, run on one way of getting xen-boot-builder into NixOS
    (modules: the Xen modules to evaluate)."""

    modules = None

    def eval(self, config):
        return evaluate(self.modules, config)

    def test_user_and_module_commands_are_kept_and_the_tool_runs_once(self):
        other = '{ boot.loader.systemd-boot.extraInstallCommands = "echo other module"; }'
        result = evaluate(
            self.modules,
            SYSTEMD_BOOT + 'boot.loader.systemd-boot.extraInstallCommands = "echo mine";',
            other,
        )
        commands = result["extraInstallCommands"]
        self.assertEqual(result["failedAssertions"], [])
        self.assertEqual(commands.count(TOOL), 1, commands)
        self.assertNotIn("xenBootBuilder", commands)
        self.assertIn("echo mine", commands)
        self.assertIn("echo other module", commands)
        # Ours first: other commands may copy the ESP elsewhere.
        self.assertLess(commands.index(TOOL), commands.index("echo mine"))
        self.assertEqual(
            commands.splitlines()[0],
            f"efiMountPoint=/boot {TOOL} --layout auto --helper-timeout 60 default",
        )

    def test_options_reach_the_command_line(self):
        result = self.eval(
            SYSTEMD_BOOT
            + """
            boot.loader.efi.efiSysMountPoint = "/efi";
            virtualisation.xen.boot.builderVerbosity = "debug";
            virtualisation.xen.boot.builder = {
              layout = "self-contained";
              helperTimeout = 120;
              signing.keyFile = "/etc/sb/db.key";
              signing.certFile = "/etc/sb/db.pem";
              extraArgs = [ "--ucode" "/boot/ucode.img" ];
            };
            """
        )
        self.assertEqual(
            result["extraInstallCommands"],
            f"efiMountPoint=/efi {TOOL} --layout self-contained --helper-timeout 120 "
            "--sign-key /etc/sb/db.key --sign-cert /etc/sb/db.pem --ucode /boot/ucode.img debug\n",
        )

    def test_xbootldr_reaches_the_install_command(self):
        result = self.eval(
            SYSTEMD_BOOT
            + """
            boot.loader.efi.efiSysMountPoint = "/efi";
            boot.loader.systemd-boot.xbootldrMountPoint = "/boot";
            """
        )
        self.assertEqual(result["failedAssertions"], [])
        self.assertEqual(
            result["extraInstallCommands"],
            f"efiMountPoint=/efi {TOOL} --layout auto --xbootldr /boot --helper-timeout 60 default\n",
        )

    def test_xbootldr_reaches_the_daemon_and_it_can_write_there(self):
        result = self.eval(
            SYSTEMD_BOOT
            + """
            boot.loader.efi.efiSysMountPoint = "/efi";
            boot.loader.systemd-boot.xbootldrMountPoint = "/boot";
            virtualisation.xen.boot.builder.watch.enable = true;
            """
        )
        daemon = result["services"]["xen-boot-builder"]
        self.assertEqual(
            daemon["serviceConfig"]["ExecStart"],
            ["", f'"{TOOL}" "--layout" "auto" "--xbootldr" "/boot" "--helper-timeout" "60" "watch" "default"'],
        )
        self.assertEqual(daemon["serviceConfig"]["ReadWritePaths"], ["", "/efi", "/boot"])
        self.assertEqual(daemon["unitConfig"]["RequiresMountsFor"], ["/efi", "/boot"])
        self.assertEqual(daemon["environment"], {"efiMountPoint": "/efi"})

    def test_xbootldr_on_the_esp_is_one_writable_path(self):
        daemon = self.eval(
            SYSTEMD_BOOT
            + """
            boot.loader.systemd-boot.xbootldrMountPoint = "/boot";
            virtualisation.xen.boot.builder.watch.enable = true;
            """
        )["services"]["xen-boot-builder"]
        self.assertEqual(daemon["serviceConfig"]["ReadWritePaths"], ["", "/boot"])
        self.assertEqual(daemon["unitConfig"]["RequiresMountsFor"], ["/boot"])

    def test_lanzaboote_units_get_xbootldr_and_extra_esps_in_order(self):
        result = self.eval(
            LANZABOOTE
            + """
            boot.loader.efi.efiSysMountPoint = "/efi";
            boot.loader.systemd-boot.xbootldrMountPoint = "/boot";
            boot.lanzaboote.extraEfiSysMountPoints = [ "/efi3" "/efi2" ];
            """
        )
        self.assertEqual(result["failedAssertions"], [])
        update = result["services"]["xen-boot-builder-update"]
        guard = result["services"]["xen-boot-builder-shutdown"]
        command = update["serviceConfig"]["ExecStart"][1]
        self.assertTrue(
            command.startswith(
                f'"{TOOL}" "--lanzaboote" "--xbootldr" "/boot" '
                '"--extra-esp" "/efi3" "--extra-esp" "/efi2" "--helper-timeout" "60" '
            ),
            command,
        )
        self.assertEqual(command.count("--extra-esp"), 2)
        self.assertEqual(guard["serviceConfig"]["ExecStop"], command)
        partitions = ["/efi", "/boot", "/efi3", "/efi2"]
        self.assertEqual(update["serviceConfig"]["ReadWritePaths"], [""] + partitions)
        self.assertEqual(update["unitConfig"]["RequiresMountsFor"], partitions)
        # The shutdown run writes the same partitions, and they stay mounted
        # until it has finished.
        self.assertEqual(guard["serviceConfig"]["ReadWritePaths"], partitions)
        self.assertEqual(guard["unitConfig"]["RequiresMountsFor"], partitions)

    def test_lanzaboote_daemon_mirrors_to_extra_esps(self):
        result = self.eval(
            LANZABOOTE
            + """
            boot.lanzaboote.extraEfiSysMountPoints = [ "/boot2" ];
            virtualisation.xen.boot.builder.watch.enable = true;
            """
        )
        daemon = result["services"]["xen-boot-builder"]
        self.assertIn('"--lanzaboote" "--extra-esp" "/boot2" ', daemon["serviceConfig"]["ExecStart"][1])
        self.assertEqual(daemon["serviceConfig"]["ReadWritePaths"], ["", "/boot", "/boot2"])
        self.assertEqual(daemon["unitConfig"]["RequiresMountsFor"], ["/boot", "/boot2"])

    def test_extra_esps_of_a_disabled_lanzaboote_are_not_used(self):
        # Without Lanzaboote nothing installs systemd-boot on its mirrors.
        result = self.eval(SYSTEMD_BOOT + 'boot.lanzaboote.extraEfiSysMountPoints = [ "/boot2" ];')
        self.assertNotIn("--extra-esp", result["extraInstallCommands"])

    def test_lanzaboote_runs_the_path_unit_signed_with_its_keys(self):
        result = self.eval(LANZABOOTE)
        self.assertEqual(result["failedAssertions"], [])
        self.assertEqual(result["extraInstallCommands"], "")
        self.assertEqual(result["packages"], ["xen-boot-builder"])
        self.assertEqual(result["paths"]["xen-boot-builder-update"]["wantedBy"], ["multi-user.target"])
        update = result["services"]["xen-boot-builder-update"]
        command = (
            f'"{TOOL}" "--lanzaboote" "--helper-timeout" "60" "--sign-key" "/var/lib/sbctl/keys/db/db.key" '
            '"--sign-cert" "/var/lib/sbctl/keys/db/db.pem" "default"'
        )
        self.assertEqual(update["serviceConfig"]["ExecStart"], ["", command])
        self.assertEqual(update["serviceConfig"]["ReadWritePaths"], ["", "/boot"])
        self.assertEqual(update["environment"], {"efiMountPoint": "/boot"})
        self.assertEqual(update["unitConfig"]["RequiresMountsFor"], ["/boot"])
        self.assertEqual(result["lanzabooteSettings"]["default"], "xen-*")
        self.assertNotIn("xen-boot-builder", result["services"])

    def test_lanzaboote_keys_follow_its_key_options(self):
        result = self.eval(LANZABOOTE + 'boot.lanzaboote.privateKeyFile = "/etc/lzbt/db.key";')
        start = result["services"]["xen-boot-builder-update"]["serviceConfig"]["ExecStart"][1]
        self.assertIn('"--sign-key" "/etc/lzbt/db.key"', start)

    def test_lanzaboote_default_entry_can_be_overridden(self):
        result = self.eval(LANZABOOTE + 'boot.lanzaboote.settings.default = "@saved";')
        self.assertEqual(result["lanzabooteSettings"]["default"], "@saved")

    def test_shutdown_waits_for_the_update_after_a_switch(self):
        services = self.eval(LANZABOOTE)["services"]
        update = services["xen-boot-builder-update"]
        guard = services["xen-boot-builder-shutdown"]
        # Stopped in reverse start order: the guard first, and the update
        # service only once the guard's run (which waits for the update's lock)
        # is done; both before the ESP is unmounted.
        self.assertIn("xen-boot-builder-shutdown.service", update["before"])
        self.assertEqual(guard["wantedBy"], ["multi-user.target"])
        self.assertEqual(guard["unitConfig"]["RequiresMountsFor"], ["/boot"])
        self.assertEqual(guard["serviceConfig"]["Type"], "oneshot")
        self.assertTrue(guard["serviceConfig"]["RemainAfterExit"])
        self.assertNotIn("ExecStart", guard["serviceConfig"])
        self.assertEqual(guard["serviceConfig"]["ExecStop"], update["serviceConfig"]["ExecStart"][1])
        self.assertEqual(guard["serviceConfig"]["ReadWritePaths"], ["/boot"])
        self.assertEqual(guard["environment"], {"efiMountPoint": "/boot"})
        self.assertNotIn("DefaultDependencies", guard["unitConfig"])

    def test_watch_runs_the_sandboxed_daemon_and_no_install_command(self):
        result = self.eval(
            SYSTEMD_BOOT
            + """
            boot.loader.systemd-boot.extraInstallCommands = "echo mine";
            boot.loader.efi.efiSysMountPoint = "/efi";
            virtualisation.xen.boot.builder.watch.enable = true;
            """
        )
        self.assertEqual(result["extraInstallCommands"], "echo mine")
        self.assertEqual(result["paths"], {})
        self.assertEqual(result["packages"], ["xen-boot-builder"])
        daemon = result["services"]["xen-boot-builder"]
        self.assertEqual(daemon["wantedBy"], ["multi-user.target"])
        self.assertEqual(
            daemon["serviceConfig"]["ExecStart"],
            ["", f'"{TOOL}" "--layout" "auto" "--helper-timeout" "60" "watch" "default"'],
        )
        # The package's unit carries the sandbox; the drop-in makes this
        # machine's ESP its only writable path.
        self.assertEqual(daemon["serviceConfig"]["ReadWritePaths"], ["", "/efi"])
        self.assertEqual(daemon["unitConfig"]["RequiresMountsFor"], ["/efi"])
        self.assertEqual(daemon["environment"], {"efiMountPoint": "/efi"})
        self.assertEqual(
            daemon["serviceConfig"]["ExecReload"],
            ["", "/nix/store/00000000000000000000000000000000-coreutils/bin/kill -HUP $MAINPID"],
        )

    def assert_fails(self, config, message):
        self.assertIn(message, self.eval(config)["failedAssertions"])

    def test_assertions_fire_for_bad_combinations(self):
        self.assert_fails(
            SYSTEMD_BOOT + 'virtualisation.xen.boot.builder.signing.keyFile = "/etc/sb/db.key";',
            "virtualisation.xen.boot.builder.signing: set both keyFile and certFile, or neither.",
        )
        self.assert_fails(
            LANZABOOTE + 'virtualisation.xen.boot.builder.layout = "unified";',
            "virtualisation.xen.boot.builder.layout: Lanzaboote's Xen entries are always "
            "self-contained; leave layout unset.",
        )
        self.assert_fails(
            BASE + "boot.loader.limine.enable = true; virtualisation.xen.boot.builder.watch.enable = true;",
            "virtualisation.xen.boot.builder.watch.enable: the daemon writes systemd-boot entries; "
            "enable systemd-boot or Lanzaboote.",
        )
        self.assert_fails(BASE, "Xen only supports booting on systemd-boot, Lanzaboote or Limine.")


class Module(Variants, unittest.TestCase):
    """nix/module.nix with nixpkgs' boot.nix."""

    modules = OURS

    def test_declarations_match_nixpkgs_boot_nix(self):
        # Disabling nixpkgs' module drops its options and bootspec
        # extensions; the module's own declare the same.
        real = evaluate([OURS[0]], SYSTEMD_BOOT)
        ours = self.eval(SYSTEMD_BOOT)
        self.assertEqual(ours["xenOptions"], real["xenOptions"])
        self.assertEqual(ours["bootspec"], real["bootspec"])
        self.assertLessEqual(set(real["failedAssertions"]), set(ours["failedAssertions"]))
        # Without the module, nixpkgs' script runs: the harness sees it.
        self.assertIn("xenBootBuilder", real["extraInstallCommands"])

    def test_old_option_names_still_work(self):
        result = self.eval(
            SYSTEMD_BOOT
            + """
            virtualisation.xen.bootBuilder.layout = "shared";
            virtualisation.xen.bootBuilder.verbosity = "quiet";
            """
        )
        self.assertIn("--layout shared --helper-timeout 60 quiet", result["extraInstallCommands"])


class UpstreamPatch(Variants, unittest.TestCase):
    """nixpkgs' boot.nix with nix/nixpkgs/xen-boot.patch applied, alone."""

    @classmethod
    def setUpClass(cls):
        cls.tree = Path(tempfile.mkdtemp())
        target = cls.tree / XEN_BOOT
        target.parent.mkdir(parents=True)
        shutil.copyfile(REAL, target)
        with open(PATCH, "rb") as patch:
            result = subprocess.run(
                ["patch", "--batch", "--forward", "-p1", "-d", cls.tree],
                stdin=patch,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            raise AssertionError(f"the patch does not apply:\n{result.stdout}{result.stderr}")
        cls.modules = [str(target)]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tree)

    def test_patch_gives_the_module_that_nix_module_imports(self):
        self.assertEqual((self.tree / XEN_BOOT).read_bytes(), PATCHED.read_bytes())


class Parse(unittest.TestCase):
    def test_every_nix_file_parses(self):
        files = sorted(NIX.rglob("*.nix")) + sorted(HERE.glob("*.nix"))
        self.assertGreaterEqual(len(files), 6)
        for path in files:
            with self.subTest(file=str(path)):
                result = subprocess.run(
                    NIX_ARGS + ["--parse", path], capture_output=True, text=True, check=False
                )
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stderr, "")


if __name__ == "__main__":
    unittest.main()
