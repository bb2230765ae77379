"""The independent ESP checker the crash tests rely on: it must find what
would not boot, or the sweep would hold vacuously. An ESP made by a real run
is damaged one way at a time, in the unified layout and in the shared one."""

import re
import shutil
import subprocess
import unittest

import espcheck
from safetylib import XEN_417_EFI, copy_tree, describe, make_root, run_tool, scratch_folder


class BuiltEsp(unittest.TestCase):
    """A root of two generations, built once per class in `layouts` (the
    last one on the root's ESP, each earlier one on a copy of the ESP before
    it, kept as `cls.<layout>`); each test works on its own copy."""

    layouts = ("unified",)

    @classmethod
    def setUpClass(cls):
        cls.holder = unittest.TestCase()
        cls.folder = scratch_folder(cls.holder, f"xbb-espcheck-{cls.__name__}-")
        cls.root = make_root(cls.holder, cls.folder / "root", "--generations", "2")
        for layout in cls.layouts[:-1]:
            setattr(cls, layout, cls.folder / layout)
            copy_tree(cls.root.esp, getattr(cls, layout))
        for layout in cls.layouts:
            esp = cls.root.esp if layout == cls.layouts[-1] else getattr(cls, layout)
            result = run_tool(cls.root, esp, extra_args=("--layout", layout))
            if result.returncode != 0:
                raise AssertionError(f"{layout} run failed: " + describe(result))

    @classmethod
    def tearDownClass(cls):
        cls.holder.doCleanups()

    def setUp(self):
        self.esp = self.folder / f"esp-{self._testMethodName}"
        copy_tree(self.root.esp, self.esp)
        self.addCleanup(shutil.rmtree, self.esp)


class EspCheckTest(BuiltEsp):
    def write_loader_conf(self, *lines):
        (self.esp / "loader/loader.conf").write_text("".join(line + "\n" for line in lines))

    def test_a_complete_esp_has_no_problem(self):
        self.assertEqual(espcheck.problems(self.esp), [])
        self.assertEqual(espcheck.bootable_entries(self.esp), {
            "nixos-generation-1.conf", "nixos-generation-2.conf", "xen-generation-1.conf", "xen-generation-2.conf"})

    def test_truncated_image(self):
        image = self.esp / "EFI/xen/xen-generation-1.efi"
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
        self.assertNotIn("xen-generation-1.conf", espcheck.bootable_entries(self.esp))
        self.assertTrue(any("beyond the end of the file" in p for p in espcheck.problems(self.esp)))

    def test_image_without_configuration(self):
        shutil.copyfile(XEN_417_EFI, self.esp / "EFI/xen/xen-generation-1.efi")
        self.assertNotIn("xen-generation-1.conf", espcheck.bootable_entries(self.esp))
        self.assertTrue(any("has no .config, no -cfg= and no configuration file beside it" in p
                            for p in espcheck.problems(self.esp)))

    def test_missing_ramdisk_and_kernel(self):
        entry = self.root.entry(1)
        (self.esp / entry["initrd"].lstrip("/")).unlink()
        self.assertEqual({i for i in espcheck.bootable_entries(self.esp) if "generation-1" in i}, set())
        (self.esp / entry["linux"].lstrip("/")).unlink()
        self.assertEqual({i for i in espcheck.bootable_entries(self.esp) if i.startswith("xen-")}, set())

    def test_missing_image(self):
        (self.esp / "EFI/xen/xen-generation-2.efi").unlink()
        self.assertEqual(espcheck.bootable_entries(self.esp) & {"xen-generation-2.conf"}, set())
        self.assertTrue(any("default entry xen-generation-2.conf does not boot" in p
                            for p in espcheck.default_problems(self.esp)))

    def test_default_naming_no_entry(self):
        self.write_loader_conf("timeout 5", "default xen-generation-3.conf")
        self.assertEqual(espcheck.default_problems(self.esp),
                         ["loader.conf: default xen-generation-3.conf matches no entry"])

    def test_last_default_counts_and_may_omit_conf(self):
        self.write_loader_conf("default xen-generation-3.conf", "# default nothing", "default xen-generation-1")
        self.assertEqual(espcheck.default_problems(self.esp), [])

    def test_preferred_wins_over_default(self):
        (self.esp / "EFI/xen/xen-generation-2.efi").unlink()
        self.write_loader_conf("default xen-generation-1.conf", "preferred xen-generation-2.conf")
        self.assertEqual(len(espcheck.default_problems(self.esp)), 1)
        self.write_loader_conf("default xen-generation-2.conf", "preferred xen-generation-1.conf")
        self.assertEqual(espcheck.default_problems(self.esp), [])

    def test_glob_default_and_boot_counter(self):
        entries = self.esp / "loader/entries"
        (entries / "xen-generation-2.conf").rename(entries / "xen-generation-2+2-1.conf")
        self.write_loader_conf("default xen-generation-2.conf")
        self.assertEqual(espcheck.default_problems(self.esp), [])
        self.write_loader_conf("default xen-*")
        self.assertEqual(espcheck.default_problems(self.esp), [])
        (self.esp / "EFI/xen/xen-generation-1.efi").unlink()
        self.assertEqual(len(espcheck.default_problems(self.esp)), 1)

    def test_missing_loader_conf(self):
        (self.esp / "loader/loader.conf").unlink()
        self.assertEqual(espcheck.default_problems(self.esp), ["loader/loader.conf is missing or not a regular file"])


class SharedLayoutTest(BuiltEsp):
    """An ESP in the shared layout: one image without .config, a
    configuration file per entry named by `options <image> -cfg=<file>`.
    Beside it, the unified ESP of the same root, for an image with .config."""

    layouts = ("unified", "shared")

    def setUp(self):
        super().setUp()
        images = sorted((self.esp / "EFI/xen").glob("xen-*.efi"))
        self.assertEqual(len(images), 1, "the shared layout wrote more than one image")
        self.image = images[0]

    def entry(self, generation):
        return self.esp / f"loader/entries/xen-generation-{generation}.conf"

    def set_options(self, generation, options):
        path = self.entry(generation)
        text = re.sub(r"(?m)^options .*\n", "", path.read_text())
        path.write_text(text + (f"options {options}\n" if options is not None else ""))

    def xen_bootable(self):
        return {ident for ident in espcheck.bootable_entries(self.esp) if ident.startswith("xen-")}

    def test_a_complete_shared_esp_has_no_problem(self):
        self.assertEqual(espcheck.problems(self.esp), [])
        self.assertEqual(self.xen_bootable(), {"xen-generation-1.conf", "xen-generation-2.conf"})
        self.assertIn(f"options {self.image.name} -cfg=xen-generation-1.cfg", self.entry(1).read_text())

    def test_missing_configuration_file(self):
        (self.esp / "EFI/xen/xen-generation-1.cfg").unlink()
        self.assertEqual(self.xen_bootable(), {"xen-generation-2.conf"})
        self.assertTrue(any("-cfg=" in p and "does not exist" in p for p in espcheck.problems(self.esp)))

    def test_configuration_file_is_what_is_checked(self):
        config = self.esp / "EFI/xen/xen-generation-1.cfg"
        config.write_text(re.sub(r"(?m)^kernel=\S+", r"kernel=\\EFI\\nixos\\gone.efi", config.read_text()))
        self.assertEqual(self.xen_bootable(), {"xen-generation-2.conf"})
        self.assertTrue(any("kernel=" in p and "gone.efi" in p for p in espcheck.problems(self.esp)))

    def test_embedded_configuration_wins_over_the_cfg_option(self):
        shutil.copyfile(self.unified / "EFI/xen/xen-generation-1.efi", self.image)
        for generation in (1, 2):
            config = self.esp / f"EFI/xen/xen-generation-{generation}.cfg"
            config.write_text(re.sub(r"(?m)^kernel=\S+", r"kernel=\\EFI\\nixos\\gone.efi", config.read_text()))
        self.assertEqual(self.xen_bootable(), {"xen-generation-1.conf", "xen-generation-2.conf"})

    def test_the_first_word_of_the_options_is_skipped(self):
        self.set_options(1, "-cfg=xen-generation-1.cfg")
        self.assertEqual(self.xen_bootable(), {"xen-generation-2.conf"})
        self.assertTrue(any("no configuration file beside it" in p for p in espcheck.problems(self.esp)))

    def test_cfg_option_as_two_words(self):
        self.set_options(1, f"{self.image.name} -cfg xen-generation-1.cfg")
        self.set_options(2, f"{self.image.name} -cfg xen-generation-9.cfg")
        self.assertEqual(self.xen_bootable(), {"xen-generation-1.conf"})

    def test_a_word_that_is_no_option_names_the_section(self):
        self.set_options(1, f"{self.image.name} -cfg=xen-generation-1.cfg nixos")
        self.set_options(2, f"{self.image.name} -cfg=xen-generation-2.cfg other")
        self.assertEqual(self.xen_bootable(), {"xen-generation-1.conf"})
        self.assertTrue(any("has no section [other]" in p for p in espcheck.problems(self.esp)))

    def test_without_cfg_a_file_named_after_the_image_is_used(self):
        self.set_options(1, None)
        self.assertEqual(self.xen_bootable(), {"xen-generation-2.conf"})
        shutil.copyfile(self.esp / "EFI/xen/xen-generation-1.cfg", self.esp / "EFI/xen/xen.cfg")
        self.assertEqual(self.xen_bootable(), {"xen-generation-1.conf", "xen-generation-2.conf"})



class SelfContainedLayoutTest(BuiltEsp):
    """An ESP in the self-contained layout: each image carries .kernel and
    .ramdisk, and its configuration's kernel= names no file on the ESP."""

    layouts = ("self-contained",)

    def test_embedded_kernel_and_ramdisk_need_no_file(self):
        shutil.rmtree(self.esp / "EFI/nixos")
        xen = {ident for ident in espcheck.bootable_entries(self.esp) if ident.startswith("xen-")}
        self.assertEqual(xen, {"xen-generation-1.conf", "xen-generation-2.conf"})

    def test_without_its_kernel_section_the_image_needs_the_file(self):
        image = self.esp / "EFI/xen/xen-generation-1.efi"
        result = subprocess.run(["objcopy", "--remove-section", ".kernel", str(image)],
                                capture_output=True, text=True, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("xen-generation-1.conf", espcheck.bootable_entries(self.esp))
        self.assertTrue(any("kernel= " in p and "does not exist" in p for p in espcheck.problems(self.esp)),
                        espcheck.problems(self.esp))

if __name__ == "__main__":
    unittest.main()
